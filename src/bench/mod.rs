//! `faultline bench`: fault campaigns against the ZAB node, with every
//! check, run directories, `summary.json` and `junit.xml`.

mod cluster;
mod evidence;
mod judge;
mod mixes;
mod run;

use anyhow::{bail, Context as _};
use clap::Args;
use faultline_checker::Validity;
use faultline_nemesis::{NemesisKind, Schedule};
use faultline_node::Bugs;
use faultline_workload::WorkloadKind;
pub use mixes::{mixes_cmd, MixesArgs};
use run::{RunConfig, RunResult};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Arguments of `faultline bench`. With no flags: the embedded default
/// campaign.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Run seeds 1..=N, or the range A..B (both ends included).
    #[arg(long, value_parser = parse_seeds)]
    pub seeds: Option<SeedRange>,
    /// Voters.
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// Observers.
    #[arg(long, default_value_t = 1)]
    pub observers: u64,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Keys.
    #[arg(long, default_value_t = 5)]
    pub keys: u64,
    /// Chaos phase per run, e.g. `10s` or `1500ms`.
    #[arg(long, default_value = "20s", value_parser = parse_duration_ms)]
    pub duration: u64,
    /// Faults: a comma-separated list of names, `all` or `none`.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Workload: register or strict.
    #[arg(long, default_value = "register")]
    pub workload: String,
    /// Replay this schedule (JSON, as saved in a run directory) instead of
    /// drawing one from the seed.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Runs in parallel (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where reports go.
    #[arg(long, default_value = "reports")]
    pub out: String,
    /// Print the campaign summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where to write the JUnit XML (default: OUT/junit.xml).
    #[arg(long)]
    pub junit: Option<String>,
    /// Wall-clock limit of one run, in seconds.
    #[arg(long, default_value_t = 300)]
    pub watchdog: u64,
    /// Inject a protocol bug into every server (see --list-bugs).
    #[arg(long)]
    pub bug: Option<String>,
    /// List the bug switches and exit.
    #[arg(long)]
    pub list_bugs: bool,
    /// Run only shard K of N (1-based): the seeds whose position modulo N
    /// is K-1, so that CI jobs can split a campaign; see `faultline merge`.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Run every seed twice and compare the history hashes.
    #[arg(long)]
    pub check_determinism: bool,
    /// Judge without what leaders report committed (the durable files and
    /// the disk and network records alone; the reports are otherwise a
    /// cross-check).
    #[arg(long)]
    pub no_leader_reports: bool,
    /// Internal: run this one seed in this process and print its result
    /// as JSON (the campaign runs each seed in such a child process, so
    /// that the watchdog can stop a hung run).
    #[arg(long, hide = true)]
    pub internal_seed: Option<u64>,
    /// Internal, for the bench's own tests: make the run of each seed fail
    /// in the bench itself (`panic`: a panic in the harness; `abort`: the
    /// child process aborts), to show that such a failure is `unknown`.
    #[arg(long, hide = true)]
    pub internal_fault: Option<String>,
    /// Internal, for the determinism test: run each given seed twice in
    /// this one process and print `seed hash1 hash2` per seed.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub internal_twice: Vec<u64>,
}

/// Seeds `first..=last`, from `--seeds N` (1..=N) or `--seeds A..B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    /// The first seed.
    pub first: u64,
    /// The last seed (included).
    pub last: u64,
}

impl SeedRange {
    /// The seeds, in order.
    pub fn iter(self) -> std::ops::RangeInclusive<u64> {
        self.first..=self.last
    }
}

/// Parses `N` (seeds 1..=N, N >= 1) or `A..B` (A <= B, both included).
pub fn parse_seeds(s: &str) -> Result<SeedRange, String> {
    let bad = || format!("{s:?} is not a seed count N or a range A..B with A <= B");
    let (first, last) = match s.split_once("..") {
        Some((a, b)) => (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        ),
        None => (1, s.trim().parse().map_err(|_| bad())?),
    };
    if last == 0 || first > last {
        return Err(bad());
    }
    Ok(SeedRange { first, last })
}

/// Parses `K/N` with 1 <= K <= N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a shard K/N with 1 <= K <= N");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// The first panic message of this process (see `--internal-seed`).
/// With whether it was raised in the node crate (an assertion of the system
/// under test) rather than in the bench.
static FIRST_PANIC: Mutex<Option<(String, bool)>> = Mutex::new(None);

/// Seeds of the default campaign.
const DEFAULT_SEEDS: u64 = 200;

/// Parses `10s`, `1500ms` or a plain number of seconds into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 10s, 1500ms)"))?;
    if !(v > 0.0 && v * mult < 1e9) {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok((v * mult) as u64)
}

/// `summary.json`: one schema, written by `bench` and by `merge` (which
/// reads the shards' summaries back with it).
#[derive(Serialize, serde::Deserialize)]
struct Summary {
    result: Validity,
    runs: usize,
    valid: usize,
    invalid: usize,
    unknown: usize,
    wall_s: f64,
    /// The check that took longest over every run (wall time; for figures
    /// only).
    slowest_check: Option<SlowestCheck>,
    /// The campaign's configuration (the first seed's `RunConfig`).
    config: serde_json::Value,
    seeds: Vec<SeedLine>,
}

impl Summary {
    /// The summary of `results` (their verdicts counted and combined).
    fn new(
        results: &[RunResult],
        wall_s: f64,
        slowest_check: Option<SlowestCheck>,
        config: serde_json::Value,
        seeds: Vec<SeedLine>,
    ) -> Summary {
        let count = |v: Validity| results.iter().filter(|r| r.result == v).count();
        Summary {
            result: Validity::combine(results.iter().map(|r| r.result)),
            runs: results.len(),
            valid: count(Validity::Valid),
            invalid: count(Validity::Invalid),
            unknown: count(Validity::Unknown),
            wall_s,
            slowest_check,
            config,
            seeds,
        }
    }
}

#[derive(Clone, Serialize, serde::Deserialize)]
struct SlowestCheck {
    seed: u64,
    check: String,
    ms: f64,
}

#[derive(Clone, Serialize, serde::Deserialize)]
struct SeedLine {
    seed: u64,
    result: Validity,
    failed_checks: Vec<String>,
    ops: usize,
    ok: usize,
    faults: usize,
    leader_changes: usize,
    protocol_errors: usize,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    sim_s: f64,
    wall_s: f64,
    history_hash: String,
    reproduce: Option<String>,
}

fn reproduce(a: &BenchArgs, seed: u64) -> String {
    let mut s = format!("cargo run --release -- bench --seed {seed}");
    if a.nodes != 5 {
        let _ = write!(s, " --nodes {}", a.nodes);
    }
    if a.observers != 1 {
        let _ = write!(s, " --observers {}", a.observers);
    }
    if a.clients != 10 {
        let _ = write!(s, " --clients {}", a.clients);
    }
    if a.keys != 5 {
        let _ = write!(s, " --keys {}", a.keys);
    }
    let _ = write!(s, " --duration {}ms", a.duration_ms());
    if a.nemesis != "all" {
        let _ = write!(s, " --nemesis {}", a.nemesis);
    }
    if a.workload != "register" {
        let _ = write!(s, " --workload {}", a.workload);
    }
    if let Some(f) = &a.schedule {
        let _ = write!(s, " --schedule {f}");
    }
    if let Some(b) = &a.bug {
        let _ = write!(s, " --bug {b}");
    }
    if a.no_leader_reports {
        s.push_str(" --no-leader-reports");
    }
    s
}

impl BenchArgs {
    fn duration_ms(&self) -> u64 {
        self.duration
    }
}

fn config(a: &BenchArgs, seed: u64) -> anyhow::Result<RunConfig> {
    let nemesis = NemesisKind::parse_list(&a.nemesis).map_err(anyhow::Error::msg)?;
    let workload = match a.workload.as_str() {
        "register" => WorkloadKind::Register,
        "strict" => WorkloadKind::Strict,
        w => bail!("unknown workload {w:?} (known: register, strict)"),
    };
    if a.nodes == 0 || a.nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    if a.clients == 0 || a.keys == 0 {
        bail!("--clients and --keys must be at least 1");
    }
    let mut bugs = Bugs::default();
    if let Some(b) = &a.bug {
        if !bugs.enable(b) {
            let names: Vec<&str> = Bugs::ALL.iter().map(|(n, _)| *n).collect();
            bail!("unknown bug {b:?} (known: {})", names.join(", "));
        }
    }
    Ok(RunConfig {
        seed,
        voters: a.nodes,
        observers: a.observers,
        joiner: nemesis.contains(&NemesisKind::AddNode),
        workload,
        processes: a.clients,
        keys: a.keys,
        think_ms: 20,
        op_timeout_ms: 1000,
        warmup_ms: 1000,
        chaos_ms: a.duration_ms(),
        quiesce_ms: 3000,
        liveness_ms: 5000,
        nemesis,
        bugs,
        watchdog_s: a.watchdog,
        // 1..=20 ms, a pure function of the seed.
        fsync_ms: 1 + (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) % 20,
        // 20..=200 txns, a pure function of the seed.
        snapshot_interval: 20 + (seed.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 40) % 181,
        leader_reports: !a.no_leader_reports,
    })
}

/// Runs the command; returns the exit code.
pub fn run(a: BenchArgs) -> anyhow::Result<u8> {
    if let Some(seed) = a.internal_seed {
        // Keep the first panic message of the run (a server assertion);
        // the panic that reaches us is tokio's generic one.
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
                // The node crate's client side runs in the workload.
                let in_node = info.location().is_some_and(|l| {
                    l.file().starts_with("node/src/") && l.file() != "node/src/client.rs"
                });
                *first = Some((format!("{msg}{at}"), in_node));
            }
        }));
        let fixed = load_schedule(&a)?;
        let r = one(&a, seed, fixed.as_ref(), Path::new(&a.out))?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(0);
    }
    if !a.internal_twice.is_empty() {
        for &seed in &a.internal_twice {
            let cfg = config(&a, seed)?;
            let schedule =
                Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &run::topology(&cfg));
            let mut hashes = Vec::new();
            for _ in 0..2 {
                let (r, _) = run::run(&cfg, &schedule)
                    .map_err(|e| anyhow::anyhow!("seed {seed}: {}", e.message()))?;
                hashes.push(r.history_hash);
            }
            println!("{seed} {} {}", hashes[0], hashes[1]);
        }
        return Ok(0);
    }
    if a.list_bugs {
        for (name, what) in Bugs::ALL {
            println!("{name:<24} {what}");
        }
        return Ok(0);
    }
    let mut seeds: Vec<u64> = match (a.seed, a.seeds) {
        (Some(s), _) => vec![s],
        (None, Some(r)) => r.iter().collect(),
        (None, None) => (1..=DEFAULT_SEEDS).collect(),
    };
    if let Some((k, n)) = a.shard {
        seeds = seeds
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n == k - 1)
            .map(|(_, s)| s)
            .collect();
        if seeds.is_empty() {
            bail!("shard {k}/{n} holds no seed");
        }
    }
    let base = config(&a, seeds[0])?;
    load_schedule(&a)?; // bad input is reported before anything runs
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let out = PathBuf::from(&a.out);
    std::fs::create_dir_all(out.join("runs"))
        .with_context(|| format!("{}: cannot create", out.display()))?;
    eprintln!(
        "faultline bench: {} seeds, {} voters + {} observers{}, {} clients, {} ms chaos, nemesis {}, workload {}, {} jobs",
        seeds.len(),
        base.voters,
        base.observers,
        if base.joiner { " + 1 joiner" } else { "" },
        base.processes,
        base.chaos_ms,
        a.nemesis,
        a.workload,
        jobs
    );
    let start = Instant::now();
    let bar = indicatif::ProgressBar::new(seeds.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {elapsed} ({eta} left) {msg}",
        )
        .expect("a valid template"),
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<RunResult>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(seeds.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                match deterministic(&a, seed, &out) {
                    Ok(r) => {
                        bar.inc(1);
                        if r.result != Validity::Valid {
                            bar.set_message("(failures found)");
                        }
                        let line = format!(
                            "  seed {:>4}: {:<7} {:>5} ops, {:>2} faults, {:>2} leader changes, {:.1} s sim in {:.1} s{}",
                            r.seed,
                            r.result.to_string(),
                            r.ops,
                            r.faults,
                            r.leader_changes,
                            r.sim_s,
                            r.wall_s,
                            failed(&r)
                        );
                        // Without a terminal the bar is hidden: keep the
                        // per-seed lines in the log anyway.
                        if bar.is_hidden() {
                            eprintln!("{line}");
                        } else {
                            bar.println(line);
                        }
                        results.lock().expect("no panics").push(r);
                    }
                    Err(e) => errors.lock().expect("no panics").push(format!("seed {seed}: {e:#}")),
                }
            });
        }
    });
    bar.finish_and_clear();
    let errors = errors.into_inner().expect("no panics");
    if let Some(e) = errors.first() {
        bail!("{e}");
    }
    let mut results = results.into_inner().expect("no panics");
    results.sort_by_key(|r| r.seed);
    let code = summarize(&a, &base, &results, &out, start.elapsed().as_secs_f64())?;
    Ok(code)
}

fn failed(r: &RunResult) -> String {
    let f: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.result != Validity::Valid)
        .map(|c| c.name.as_str())
        .collect();
    if f.is_empty() {
        String::new()
    } else {
        format!("  [{}]", f.join(", "))
    }
}

fn load_schedule(a: &BenchArgs) -> anyhow::Result<Option<Schedule>> {
    match &a.schedule {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("{f}: cannot read"))?;
            Ok(Some(Schedule::from_json(&text).with_context(|| f.clone())?))
        }
        None => Ok(None),
    }
}

/// Runs one seed; with `--check-determinism`, twice, each in a fresh
/// process (the promise is: same seed, same binary, same history), and adds
/// a `determinism` check comparing the history hashes.
fn deterministic(a: &BenchArgs, seed: u64, out: &Path) -> anyhow::Result<RunResult> {
    let mut first = watched(a, seed, out)?;
    if !a.check_determinism {
        return Ok(first);
    }
    let second = watched(a, seed, out)?;
    let same = first.history_hash == second.history_hash;
    first.checks.push(faultline_checker::CheckOutcome {
        name: "determinism".into(),
        result: if same {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        summary: "a second run of the seed, in a fresh process, gives a byte-identical history"
            .into(),
        anomalies: if same {
            vec![]
        } else {
            vec![format!(
                "history hash {} then {}",
                first.history_hash, second.history_hash
            )]
        },
        ops: vec![],
    });
    if !same {
        first.result = Validity::Invalid;
    }
    let dir = out.join("runs").join(format!("seed-{seed}"));
    write(
        &dir.join("verdict.json"),
        serde_json::to_string_pretty(&first)?.as_bytes(),
    )?;
    Ok(first)
}

/// The command line of a child process running `seed` as `a` describes.
fn child_args(a: &BenchArgs, seed: u64, out: &Path) -> Vec<String> {
    let mut v: Vec<String> = vec!["bench".into()];
    let mut flag = |k: &str, val: String| {
        v.push(format!("--{k}"));
        v.push(val);
    };
    flag("nodes", a.nodes.to_string());
    flag("observers", a.observers.to_string());
    flag("clients", a.clients.to_string());
    flag("keys", a.keys.to_string());
    flag("duration", format!("{}ms", a.duration));
    flag("nemesis", a.nemesis.clone());
    flag("workload", a.workload.clone());
    flag("out", out.display().to_string());
    flag("watchdog", a.watchdog.to_string());
    if let Some(f) = &a.schedule {
        flag("schedule", f.clone());
    }
    if let Some(b) = &a.bug {
        flag("bug", b.clone());
    }
    if a.no_leader_reports {
        v.push("--no-leader-reports".into());
    }
    if let Some(f) = &a.internal_fault {
        v.push("--internal-fault".into());
        v.push(f.clone());
    }
    v.push("--internal-seed".into());
    v.push(seed.to_string());
    v
}

/// Runs one seed in a child process (this binary with `--internal-seed`)
/// under the wall-clock watchdog: a run that does not finish in time is
/// killed and reported as unknown.
fn watched(a: &BenchArgs, seed: u64, out: &Path) -> anyhow::Result<RunResult> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let args = child_args(a, seed, out);
    let mut child = std::process::Command::new(exe)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start a run")?;
    let limit = std::time::Duration::from_secs(a.watchdog);
    let started = Instant::now();
    // Drain both pipes while the child runs, so that it never blocks on a
    // full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out_reader = drain(Box::new(child.stdout.take().expect("piped")));
    let err_reader = drain(Box::new(child.stderr.take().expect("piped")));
    loop {
        if let Some(status) = child.try_wait()? {
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            let last = stdout.lines().last().unwrap_or("");
            let parsed = serde_json::from_str::<RunResult>(last);
            if let (true, Ok(r)) = (status.success(), parsed) {
                return Ok(r);
            }
            // The child died outside `catch_unwind` (abort, signal, out of
            // memory) or printed no result: the bench's own failure, so the
            // seed is unknown and the campaign goes on.
            let cfg = config(a, seed)?;
            let tail = stderr.trim().lines().last().unwrap_or("no message");
            let why = format!("the run's process ended abnormally ({status}): {tail}");
            let (result, artifacts) =
                aborted(&cfg, Abort::Harness, &why, started, &Schedule::default());
            write_run_dir(out, &cfg, &result, &artifacts, &reproduce(a, seed))?;
            return Ok(result);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let cfg = config(a, seed)?;
            let schedule = Schedule::default();
            let why = format!(
                "the run did not finish within {} s of wall time and was stopped",
                a.watchdog
            );
            let (result, artifacts) = aborted(&cfg, Abort::Watchdog, &why, started, &schedule);
            write_run_dir(out, &cfg, &result, &artifacts, &reproduce(a, seed))?;
            return Ok(result);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs one seed of the campaign these `bench` flags describe, in this
/// thread, and returns the history the linearizability check reads (client
/// local reads left out), for `perf`.
pub(crate) fn linearizable_history(
    flags: &[&str],
    seed: u64,
) -> anyhow::Result<faultline_history::History> {
    let a = BenchArgs::from_flags(flags)?;
    let cfg = config(&a, seed)?;
    let schedule = Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &run::topology(&cfg));
    let (_, art) = run::run(&cfg, &schedule).map_err(|e| anyhow::anyhow!(e.message()))?;
    Ok(judge::linearizable_part(&art.history).0?)
}

/// Runs one seed in this thread, catching node assertion failures, and
/// writes its run directory.
fn one(
    a: &BenchArgs,
    seed: u64,
    fixed: Option<&Schedule>,
    out: &Path,
) -> anyhow::Result<RunResult> {
    let cfg = config(a, seed)?;
    let schedule = fixed.cloned().unwrap_or_else(|| {
        Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &run::topology(&cfg))
    });
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match a.internal_fault.as_deref() {
            Some("panic") => panic!("injected fault in the harness"),
            Some("abort") => std::process::abort(),
            _ => run::run(&cfg, &schedule),
        }
    }));
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
            let (msg, in_node) = first.unwrap_or_else(|| {
                let m = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into());
                (m, false)
            });
            if in_node {
                let why = format!("a server assertion failed: {msg}");
                aborted(&cfg, Abort::Node, &why, started, &schedule)
            } else {
                let why = format!("the bench itself panicked (not the node): {msg}");
                aborted(&cfg, Abort::Harness, &why, started, &schedule)
            }
        }
    };
    write_run_dir(out, &cfg, &result, &artifacts, &reproduce(a, seed))?;
    Ok(result)
}

/// Why a run ended without a verdict of its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abort {
    /// The wall-clock watchdog stopped it: unknown.
    Watchdog,
    /// An assertion of the node (the system under test) failed: invalid.
    Node,
    /// The bench itself failed (a panic outside the node, a simulation
    /// error, a child process that died): unknown, never charged to the
    /// node.
    Harness,
}

fn aborted(
    cfg: &RunConfig,
    kind: Abort,
    why: &str,
    started: Instant,
    schedule: &Schedule,
) -> (RunResult, run::RunArtifacts) {
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
        },
        run::RunArtifacts {
            history: Vec::new(),
            schedule: schedule.clone(),
            trace: Vec::new(),
            leaders: Vec::new(),
            messages_per_second: Vec::new(),
        },
    )
}

/// Writes a file whole or not at all.
fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

fn write_run_dir(
    out: &Path,
    cfg: &RunConfig,
    r: &RunResult,
    art: &run::RunArtifacts,
    reproduce: &str,
) -> anyhow::Result<()> {
    let dir = out.join("runs").join(format!("seed-{}", cfg.seed));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    write(
        &dir.join("config.json"),
        serde_json::to_string_pretty(cfg)?.as_bytes(),
    )?;
    write(
        &dir.join("schedule.json"),
        serde_json::to_string_pretty(&art.schedule)?.as_bytes(),
    )?;
    let mut h = Vec::new();
    faultline_history::jsonl::write_ops(&mut h, &art.history)?;
    write(&dir.join("history.jsonl"), &h)?;
    let mut e = Vec::new();
    faultline_history::edn::write_ops(&mut e, &art.history)?;
    write(&dir.join("history.edn"), &e)?;
    write(
        &dir.join("trace.jsonl"),
        (art.trace.join("\n") + "\n").as_bytes(),
    )?;
    write(
        &dir.join("verdict.json"),
        serde_json::to_string_pretty(r)?.as_bytes(),
    )?;
    write(
        &dir.join("report.html"),
        run_report(cfg, r, art, reproduce).as_bytes(),
    )?;
    Ok(())
}

/// Fault intervals from the applied log: a fault opens an interval, the
/// next repair closes it; adding a node is a moment.
fn fault_spans(log: &[(u64, String)]) -> Vec<faultline_reports::Span> {
    let mut spans: Vec<faultline_reports::Span> = Vec::new();
    for (ms, what) in log {
        let ns = ms * 1_000_000;
        let repair = what.starts_with("heal:")
            || what.starts_with("repaired")
            || what.starts_with("normal network")
            || what.starts_with("restarted");
        if repair {
            for s in spans.iter_mut().filter(|s| s.end_ns.is_none()) {
                s.end_ns = Some(ns);
            }
        } else {
            let moment = what.starts_with("started joiner") || what.starts_with("no leader");
            spans.push(faultline_reports::Span {
                start_ns: ns,
                end_ns: moment.then_some(ns + 100_000_000),
                label: what.clone(),
            });
        }
    }
    spans
}

fn run_report(cfg: &RunConfig, r: &RunResult, art: &run::RunArtifacts, reproduce: &str) -> String {
    let history = faultline_history::History::new(art.history.clone()).unwrap_or_default();
    let page = faultline_reports::RunPage {
        title: format!("seed {}", cfg.seed),
        result: r.result,
        reproduce: (r.result != Validity::Valid).then(|| reproduce.to_string()),
        checks: &r.checks,
        history: &history,
        faults: fault_spans(&r.nemesis_log),
        leaders: art
            .leaders
            .iter()
            .map(
                |&(start_ns, end_ns, sid, epoch)| faultline_reports::LeaderSpan {
                    start_ns,
                    end_ns,
                    sid,
                    epoch,
                },
            )
            .collect(),
        facts: vec![
            ("ops invoked".into(), r.ops.to_string()),
            ("ops ok".into(), r.ok.to_string()),
            ("faults applied".into(), r.faults.to_string()),
            ("leader changes".into(), r.leader_changes.to_string()),
            (
                "learner protocol errors (back to LOOKING)".into(),
                r.protocol_errors.to_string(),
            ),
            (
                "latency p50 / p99".into(),
                format!("{:.1} / {:.1} ms", r.latency_ms.0, r.latency_ms.1),
            ),
            (
                "simulated / wall time".into(),
                format!("{:.1} s / {:.2} s", r.sim_s, r.wall_s),
            ),
            ("history hash".into(), r.history_hash.clone()),
        ],
        config_json: serde_json::to_string_pretty(cfg).ok(),
        messages_per_second: art.messages_per_second.clone(),
    };
    faultline_reports::run_page(&page)
}

fn summarize(
    a: &BenchArgs,
    base: &RunConfig,
    results: &[RunResult],
    out: &Path,
    wall_s: f64,
) -> anyhow::Result<u8> {
    let summary = Summary::new(
        results,
        wall_s,
        slowest_check(results).map(|(seed, check, ms)| SlowestCheck {
            seed,
            check: check.to_string(),
            ms,
        }),
        serde_json::to_value(base)?,
        results
            .iter()
            .map(|r| SeedLine {
                seed: r.seed,
                result: r.result,
                failed_checks: r
                    .checks
                    .iter()
                    .filter(|c| c.result != Validity::Valid)
                    .map(|c| c.name.clone())
                    .collect(),
                ops: r.ops,
                ok: r.ok,
                faults: r.faults,
                leader_changes: r.leader_changes,
                protocol_errors: r.protocol_errors,
                latency_p50_ms: r.latency_ms.0,
                latency_p99_ms: r.latency_ms.1,
                sim_s: r.sim_s,
                wall_s: r.wall_s,
                history_hash: r.history_hash.clone(),
                reproduce: (r.result != Validity::Valid).then(|| reproduce(a, r.seed)),
            })
            .collect(),
    );
    let (result, valid, invalid, unknown) = (
        summary.result,
        summary.valid,
        summary.invalid,
        summary.unknown,
    );
    let json = serde_json::to_string_pretty(&summary)?;
    write(&out.join("summary.json"), json.as_bytes())?;
    write(
        &out.join("index.html"),
        campaign_report(results, &serde_json::to_string_pretty(base)?).as_bytes(),
    )?;
    let junit = a
        .junit
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| out.join("junit.xml"));
    write(&junit, junit_xml(results).as_bytes())?;
    eprintln!();
    eprintln!(
        "{}: {} runs: {valid} valid, {invalid} invalid, {unknown} unknown in {wall_s:.1} s; reports in {}",
        result.to_string().to_uppercase(),
        results.len(),
        out.display()
    );
    if let Some((seed, name, ms)) = slowest_check(results) {
        eprintln!("slowest check: {name} {ms:.0} ms (seed {seed})");
    }
    for r in results.iter().filter(|r| r.result != Validity::Valid) {
        for c in r.checks.iter().filter(|c| c.result != Validity::Valid) {
            eprintln!(
                "  seed {}: {} {}: {}",
                r.seed,
                c.name,
                c.result,
                c.anomalies.first().map_or("", |s| s.as_str())
            );
        }
        eprintln!("  reproduce: {}", reproduce(a, r.seed));
    }
    if a.json {
        println!("{json}");
    }
    Ok(result.exit_code() as u8)
}

/// The check that took longest over every run: (seed, check, ms).
fn slowest_check(results: &[RunResult]) -> Option<(u64, &str, f64)> {
    results
        .iter()
        .flat_map(|r| r.check_ms.iter().map(|(n, ms)| (r.seed, n.as_str(), *ms)))
        .max_by(|a, b| a.2.total_cmp(&b.2))
}

/// Arguments of `faultline matrix`.
#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// Seeds tried per bug, in order, before it counts as missed: N
    /// (1..=N) or a range A..B.
    #[arg(long, default_value = "20", value_parser = parse_seeds)]
    pub seeds: SeedRange,
    /// Chaos phase per run.
    #[arg(long, default_value = "20s", value_parser = parse_duration_ms)]
    pub duration: u64,
    /// Only these bugs (comma-separated; default: all).
    #[arg(long)]
    pub bugs: Option<String>,
    /// Runs in parallel (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the runs go.
    #[arg(long, default_value = "reports/matrix")]
    pub out: String,
}

/// One row of the detection matrix.
#[derive(Serialize)]
struct MatrixRow {
    bug: String,
    workload: String,
    /// The first seed whose run was invalid, if any.
    first_detection: Option<u64>,
    /// Runs it took, with the wall time they took.
    runs: u64,
    wall_s: f64,
    checks: Vec<String>,
    reproduce: Option<String>,
}

/// `faultline matrix`: for every bug switch, runs the default campaign's
/// seeds in order until one detects the bug, and prints seeds-to-first-
/// detection and wall time; `stale-leader-reads` is run with both
/// workloads (under `register` its stale local reads would be legal
/// sequential consistency, but a leader serving without a quorum breaks
/// timeliness, stability and the register workload's sync-reads).
/// Exit 1 when a bug is missed.
pub fn matrix(m: MatrixArgs) -> anyhow::Result<u8> {
    let names: Vec<String> = match &m.bugs {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => Bugs::ALL.iter().map(|(n, _)| n.to_string()).collect(),
    };
    for n in &names {
        if !Bugs::default().enable(n) {
            bail!("unknown bug {n:?} (see faultline bench --list-bugs)");
        }
    }
    let jobs = m
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut rows = Vec::new();
    let mut cases: Vec<(String, &str)> = names
        .iter()
        .map(|n| {
            let workload = if n == "stale-leader-reads" {
                "strict"
            } else {
                "register"
            };
            (n.clone(), workload)
        })
        .collect();
    if names.iter().any(|n| n == "stale-leader-reads") {
        cases.push(("stale-leader-reads".into(), "register"));
    }
    let mut ok = true;
    for (bug, workload) in cases {
        let a = BenchArgs {
            seed: None,
            seeds: None,
            nodes: 5,
            observers: 1,
            clients: 10,
            keys: 5,
            duration: m.duration,
            nemesis: "all".into(),
            workload: workload.into(),
            schedule: None,
            jobs: None,
            out: m.out.clone(),
            json: false,
            junit: None,
            watchdog: 300,
            bug: Some(bug.clone()),
            list_bugs: false,
            shard: None,
            check_determinism: false,
            no_leader_reports: false,
            internal_seed: None,
            internal_fault: None,
            internal_twice: Vec::new(),
        };
        let out = PathBuf::from(&m.out).join(format!("{bug}-{workload}"));
        std::fs::create_dir_all(out.join("runs"))
            .with_context(|| format!("{}: cannot create", out.display()))?;
        let start = Instant::now();
        let mut found: Option<RunResult> = None;
        let mut runs = 0;
        let mut seed = m.seeds.first;
        while seed <= m.seeds.last && found.is_none() {
            let batch: Vec<u64> = (seed..=m.seeds.last).take(jobs).collect();
            seed += batch.len() as u64;
            let results: Vec<anyhow::Result<RunResult>> = std::thread::scope(|s| {
                let (a, out) = (&a, &out);
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&k| s.spawn(move || watched(a, k, out)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("no panics"))
                    .collect()
            });
            for r in results {
                let r = r?;
                runs += 1;
                if r.result == Validity::Invalid && found.as_ref().is_none_or(|f| r.seed < f.seed) {
                    found = Some(r);
                }
            }
        }
        let wall_s = start.elapsed().as_secs_f64();
        let detected = found.is_some();
        ok &= detected;
        let row = MatrixRow {
            bug: bug.clone(),
            workload: workload.into(),
            first_detection: found.as_ref().map(|r| r.seed),
            runs,
            wall_s,
            checks: found
                .as_ref()
                .map(|r| {
                    r.checks
                        .iter()
                        .filter(|c| c.result == Validity::Invalid)
                        .map(|c| c.name.clone())
                        .collect()
                })
                .unwrap_or_default(),
            reproduce: found.as_ref().map(|r| reproduce(&a, r.seed)),
        };
        eprintln!(
            "{:<24} {:<9} {:<28} {:>3} runs {:>6.1} s  {}",
            row.bug,
            row.workload,
            match row.first_detection {
                Some(s) => format!("caught at seed {s}"),
                None => "MISSED".to_string(),
            },
            row.runs,
            row.wall_s,
            row.checks.join(", ")
        );
        rows.push(row);
    }
    let json = serde_json::to_string_pretty(&rows)?;
    write(&PathBuf::from(&m.out).join("matrix.json"), json.as_bytes())?;
    Ok(if ok { 0 } else { 1 })
}

/// Arguments of `faultline merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Output directories of `faultline bench --shard K/N` runs.
    #[arg(required = true)]
    pub dirs: Vec<String>,
    /// Where the merged `summary.json` and `junit.xml` go.
    #[arg(long, default_value = "reports")]
    pub out: String,
}

/// Merges sharded campaigns: every run's verdict, one summary, one JUnit
/// file, and the exit code of the whole campaign.
pub fn merge(a: MergeArgs) -> anyhow::Result<u8> {
    let mut results: std::collections::BTreeMap<u64, RunResult> = Default::default();
    let mut lines: std::collections::BTreeMap<u64, SeedLine> = Default::default();
    let mut config = serde_json::Value::Null;
    let mut wall_s = 0.0;
    let mut slowest: Option<SlowestCheck> = None;
    for d in &a.dirs {
        let dir = Path::new(d);
        let sp = dir.join("summary.json");
        let text = std::fs::read_to_string(&sp)
            .with_context(|| format!("{}: cannot read", sp.display()))?;
        let v: Summary = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench summary", sp.display()))?;
        if config.is_null() {
            config = v.config;
        }
        wall_s += v.wall_s;
        if let Some(c) = v.slowest_check {
            if slowest.as_ref().is_none_or(|s| c.ms > s.ms) {
                slowest = Some(c);
            }
        }
        for line in v.seeds {
            let seed = line.seed;
            let vp = dir
                .join("runs")
                .join(format!("seed-{seed}"))
                .join("verdict.json");
            let vt = std::fs::read_to_string(&vp)
                .with_context(|| format!("{}: cannot read", vp.display()))?;
            let r: RunResult = serde_json::from_str(&vt)
                .with_context(|| format!("{}: not a run verdict", vp.display()))?;
            results.insert(seed, r);
            lines.insert(seed, line);
        }
    }
    let results: Vec<RunResult> = results.into_values().collect();
    let merged = Summary::new(
        &results,
        wall_s,
        slowest,
        config.clone(),
        lines.into_values().collect(),
    );
    let (result, valid, invalid, unknown) =
        (merged.result, merged.valid, merged.invalid, merged.unknown);
    let out = PathBuf::from(&a.out);
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    write(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&merged)?.as_bytes(),
    )?;
    write(&out.join("junit.xml"), junit_xml(&results).as_bytes())?;
    write(
        &out.join("index.html"),
        campaign_report(&results, &serde_json::to_string_pretty(&config)?).as_bytes(),
    )?;
    eprintln!(
        "{}: {} runs merged from {} directories: {valid} valid, {invalid} invalid, {unknown} unknown",
        result.to_string().to_uppercase(),
        results.len(),
        a.dirs.len()
    );
    Ok(result.exit_code() as u8)
}

fn campaign_report(results: &[RunResult], config: &str) -> String {
    let rows: Vec<faultline_reports::CampaignRow> = results
        .iter()
        .map(|r| faultline_reports::CampaignRow {
            seed: r.seed,
            result: r.result,
            failed: r
                .checks
                .iter()
                .filter(|c| c.result != Validity::Valid)
                .map(|c| c.name.clone())
                .collect(),
            ops: r.ops,
            faults: r.faults,
            latency_ms: r.latency_ms,
            anomaly: r.checks.iter().find_map(|c| c.anomalies.first().cloned()),
            link: format!("runs/seed-{}/report.html", r.seed),
        })
        .collect();
    let mut hist = vec![0u64; faultline_reports::plots::LATENCY_EDGES_MS.len()];
    for r in results {
        for (h, c) in hist.iter_mut().zip(&r.latency_hist) {
            *h += c;
        }
    }
    faultline_reports::campaign_page("bench campaign", &rows, &hist, config)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One test case per (seed, check).
fn junit_xml(results: &[RunResult]) -> String {
    let cases: usize = results.iter().map(|r| r.checks.len()).sum();
    let failures: usize = results
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| c.result == Validity::Invalid)
        .count();
    let skipped: usize = results
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| c.result == Validity::Unknown)
        .count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"faultline bench\" tests=\"{cases}\" failures=\"{failures}\" skipped=\"{skipped}\">"
    );
    for r in results {
        let _ = writeln!(
            s,
            "  <testsuite name=\"seed-{}\" tests=\"{}\" time=\"{:.3}\">",
            r.seed,
            r.checks.len(),
            r.wall_s
        );
        for c in &r.checks {
            let _ = write!(
                s,
                "    <testcase classname=\"seed-{}\" name=\"{}\"",
                r.seed,
                xml_escape(&c.name)
            );
            match c.result {
                Validity::Valid => s.push_str("/>\n"),
                Validity::Invalid => {
                    let _ = writeln!(
                        s,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        xml_escape(c.anomalies.first().map_or("", |a| a.as_str())),
                        xml_escape(&c.anomalies.join("\n"))
                    );
                }
                Validity::Unknown => {
                    let _ = writeln!(
                        s,
                        "><skipped message=\"{}\"/></testcase>",
                        xml_escape(c.anomalies.first().map_or("unknown", |a| a.as_str()))
                    );
                }
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}
