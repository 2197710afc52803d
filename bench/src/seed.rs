//! One seed in this process (the child a campaign starts per seed): the
//! run, with node assertion failures told apart from the bench's own
//! failures, and its run directory written whatever happened.

use crate::flags::RunFlags;
use crate::output::write_run_dir;
use crate::run::{self, RunArtifacts, RunConfig, RunResult};
use faultline_checker::Validity;
use faultline_nemesis::Schedule;
use faultline_workload::Recorder;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The first panic message of this process (see `--internal-seed`), with
/// the source file that raised it.
static FIRST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

/// Keeps the first panic message of the process (a server assertion): the
/// panic that reaches the run is tokio's generic one.
pub fn keep_first_panic() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let mut first = FIRST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let file = info.location().map_or("", |l| l.file()).to_string();
            *first = Some((format!("{msg}{at}"), file));
        }
    }));
}

/// Runs one seed in this thread, catching node assertion failures, and
/// writes its run directory under `out`.
pub fn one(flags: &RunFlags, seed: u64, out: &Path) -> anyhow::Result<RunResult> {
    let cfg = flags.config(seed)?;
    let schedule = match flags.load_schedule()? {
        Some(s) => s,
        None => Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &run::topology(&cfg)),
    };
    let started = Instant::now();
    let rec = Recorder::default();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match flags.internal_fault.as_deref() {
            Some("panic") => panic!("injected fault in the harness"),
            Some("abort") => std::process::abort(),
            _ => run::run_recorded(&cfg, &schedule, &rec),
        }
    }));
    let stopped = outcome.as_ref().map_or(true, |r| r.is_err());
    let (result, artifacts) = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(abort)) => {
            let kind = if abort.is_watchdog() {
                Abort::Watchdog
            } else {
                Abort::Harness
            };
            aborted(&cfg, kind, &abort.message(), started, &schedule)
        }
        Err(panic) => {
            let first = FIRST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
            let (msg, file) = first.unwrap_or_else(|| {
                let m = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into());
                (m, String::new())
            });
            if crate::system::is_server_code(&file) {
                let why = format!("a server assertion failed: {msg}");
                aborted(&cfg, Abort::Node, &why, started, &schedule)
            } else {
                let why = format!("the bench itself panicked (not the node): {msg}");
                aborted(&cfg, Abort::Harness, &why, started, &schedule)
            }
        }
    };
    let (result, artifacts) = if stopped {
        with_history(result, artifacts, rec.ops())
    } else {
        (result, artifacts)
    };
    write_run_dir(out, &cfg, &result, &artifacts, flags)?;
    Ok(result)
}

/// An aborted run with the history recorded until it stopped: its ops
/// on the page and in the history files, and its hash, so that a replay
/// can be told the same or not.
fn with_history(
    mut result: RunResult,
    mut artifacts: RunArtifacts,
    ops: Vec<faultline_history::Op>,
) -> (RunResult, RunArtifacts) {
    use faultline_history::OpType;
    result.ops = ops.iter().filter(|o| o.kind == OpType::Invoke).count();
    result.ok = ops.iter().filter(|o| o.kind == OpType::Ok).count();
    result.history_hash = crate::judge::history_hash(&ops);
    artifacts.history = ops;
    (result, artifacts)
}

/// Why a run ended without a verdict of its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// The wall-clock watchdog stopped it: unknown.
    Watchdog,
    /// An assertion of the node (the system under test) failed: invalid.
    Node,
    /// The bench itself failed (a panic outside the node, a simulation
    /// error, a child process that died): unknown, never charged to the
    /// node.
    Harness,
}

pub fn aborted(
    cfg: &RunConfig,
    kind: Abort,
    why: &str,
    started: Instant,
    schedule: &Schedule,
) -> (RunResult, RunArtifacts) {
    let (name, result, summary) = match kind {
        Abort::Watchdog => (
            "watchdog",
            Validity::Unknown,
            "the run finished within its wall-clock limit",
        ),
        Abort::Node => (
            "node-invariants",
            Validity::Invalid,
            "no server assertion failed",
        ),
        Abort::Harness => (
            "harness",
            Validity::Unknown,
            "the bench ran the seed to the end",
        ),
    };
    let check = faultline_checker::CheckOutcome {
        name: name.into(),
        result,
        summary: summary.into(),
        anomalies: vec![why.to_string()],
        ops: vec![],
    };
    (
        RunResult {
            seed: cfg.seed,
            result: check.result,
            checks: vec![check],
            not_applicable: Vec::new(),
            ops: 0,
            ok: 0,
            faults: 0,
            leader_changes: 0,
            protocol_errors: 0,
            sim_s: 0.0,
            wall_s: started.elapsed().as_secs_f64(),
            check_ms: Vec::new(),
            history_hash: String::new(),
            nemesis_log: Vec::new(),
            latency_ms: (0.0, 0.0),
            latency_hist: Vec::new(),
            recovery_ms: None,
            session_expiries: None,
            longest_leaderless_ms: 0,
        },
        RunArtifacts {
            history: Vec::new(),
            schedule: schedule.clone(),
            trace: Vec::new(),
            leaders: Vec::new(),
            messages_per_second: Vec::new(),
            phases: Vec::new(),
        },
    )
}
