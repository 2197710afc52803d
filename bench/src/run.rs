//! One bench run: seed -> configuration -> turmoil simulation -> phases
//! (warm-up, chaos, heal, quiesce, final reads) -> history, node traces and
//! committed txns -> checks -> verdict.

use crate::cluster::Cluster;
use crate::judge::{judge, Phases};
use crate::system::{host, RoleChange, ServerView, System, CLIENT_PORT};
use crate::zab::Zab;
use faultline_checker::health::Window;
use faultline_checker::zk::ReplicaEnd;
use faultline_checker::CheckOutcome;
use faultline_checker::Validity;
use faultline_history::Op;
use faultline_nemesis::{Entry, Nemesis, NemesisKind, Schedule, Sid, Target, Topology};
use faultline_node::Bugs;
use faultline_workload::{self as workload, Control, Recorder, WorkloadConfig, WorkloadKind};
use serde::Serialize;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Everything that defines a run; printed at start and saved with it.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// The seed: every random choice of the run comes from it.
    pub seed: u64,
    /// Voters.
    pub voters: u64,
    /// Observers.
    pub observers: u64,
    /// Whether a joining server is configured (started by `add-node`).
    pub joiner: bool,
    /// The workload.
    pub workload: WorkloadKind,
    /// Concurrent client processes.
    pub processes: usize,
    /// Keys.
    pub keys: u64,
    /// Mean think time between a process's ops, ms.
    pub think_ms: u64,
    /// Client op timeout, ms.
    pub op_timeout_ms: u64,
    /// Warm-up before faults, ms.
    pub warmup_ms: u64,
    /// Chaos phase, ms.
    pub chaos_ms: u64,
    /// Phase after healing during which the workload goes on, ms.
    pub quiesce_ms: u64,
    /// Bound for a successful write after healing, ms.
    pub liveness_ms: u64,
    /// The faults drawn from.
    pub nemesis: Vec<NemesisKind>,
    /// Injected protocol bugs.
    pub bugs: Bugs,
    /// Wall-clock limit of the run, s.
    pub watchdog_s: u64,
    /// Time an fsync takes on every server, ms (drawn from the seed: disks
    /// differ, and slow ones widen the window between write and sync).
    pub fsync_ms: u64,
    /// Committed txns between snapshots on every server; the DIFF window
    /// (committed txns kept beyond the snapshot) is half of it. Drawn from
    /// the seed: the shorter it is, the more often a lagging server is
    /// synced by SNAP.
    pub snapshot_interval: u64,
    /// Whether what leaders report committed is used, as a cross-check of
    /// the durable evidence and to fill in reads below every server's log.
    pub leader_reports: bool,
}

/// The result of one run.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// Valid, invalid or unknown.
    pub result: Validity,
    /// Every check.
    pub checks: Vec<CheckOutcome>,
    /// The checks that do not apply to the system under test (it keeps no
    /// evidence they could read), by name: not run, and not passed.
    #[serde(default)]
    pub not_applicable: Vec<String>,
    /// Client ops invoked.
    pub ops: usize,
    /// Ops that completed ok.
    pub ok: usize,
    /// Fault events applied.
    pub faults: usize,
    /// Leader changes seen in the trace.
    pub leader_changes: usize,
    /// Times a learner dropped its leader on a message it could not accept
    /// (and went back to LOOKING to sync again).
    #[serde(default)]
    pub protocol_errors: usize,
    /// Simulated seconds.
    pub sim_s: f64,
    /// Wall seconds.
    pub wall_s: f64,
    /// Wall milliseconds each check took, in check order (for figures
    /// only: wall time never reaches a verdict).
    #[serde(default)]
    pub check_ms: Vec<(String, f64)>,
    /// Hash of the history (FNV-1a of its JSON lines): equal runs, equal
    /// hashes.
    pub history_hash: String,
    /// What the nemesis did, in time order.
    pub nemesis_log: Vec<Entry>,
    /// Latency percentiles of ok ops, ms (p50, p99).
    pub latency_ms: (f64, f64),
    /// Counts of ok-op latencies per bucket of
    /// `faultline_reports::plots::LATENCY_EDGES_MS`.
    #[serde(default)]
    pub latency_hist: Vec<u64>,
    /// Simulated time from healing until every server served clients again
    /// under one established leader (`None`: not within the quiesce phase).
    #[serde(default)]
    pub recovery_ms: Option<u64>,
}

impl RunResult {
    /// The checks that did not find the run valid, in check order.
    pub fn failed_checks(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.checks.iter().filter(|c| c.result != Validity::Valid)
    }
}

/// Files a run leaves behind, in memory.
pub struct RunArtifacts {
    /// The history.
    pub history: Vec<Op>,
    /// The schedule.
    pub schedule: Schedule,
    /// Node trace and protocol events, one JSON object per line.
    pub trace: Vec<String>,
    /// Established leaderships: (start ns, end ns, server, epoch).
    pub leaders: Vec<(u64, Option<u64>, Sid, u64)>,
    /// Protocol messages sent by all servers, per simulated second.
    pub messages_per_second: Vec<(u64, u64)>,
}

/// The topology a configuration describes.
pub fn topology(cfg: &RunConfig) -> Topology {
    let servers: Vec<Sid> = (1..=cfg.voters + cfg.observers).collect();
    Topology {
        voters: (1..=cfg.voters).collect(),
        joiner: cfg.joiner.then_some(cfg.voters + cfg.observers + 1),
        servers,
    }
}

fn build_sim<'a>(cfg: &RunConfig) -> turmoil::Sim<'a> {
    faultline_node::sim::builder(cfg.seed).build()
}

/// Why a run could not finish.
#[derive(Debug)]
pub enum Abort {
    /// The wall-clock watchdog fired.
    Watchdog,
    /// The simulation failed (a host returned an error).
    Sim(String),
}

impl Abort {
    /// Whether the watchdog fired (unknown) rather than the run failing.
    pub fn is_watchdog(&self) -> bool {
        matches!(self, Abort::Watchdog)
    }

    /// One line for the verdict.
    pub fn message(&self) -> String {
        match self {
            Abort::Watchdog => "the wall-clock watchdog stopped the run".into(),
            Abort::Sim(e) => format!("the simulation failed: {e}"),
        }
    }
}

/// Runs one seed against the ZAB node. Panics of the simulation (node
/// assertions) are caught by the caller.
pub fn run(cfg: &RunConfig, schedule: &Schedule) -> Result<(RunResult, RunArtifacts), Abort> {
    run_system(cfg, schedule, Box::new(Zab::new(cfg)))
}

/// Runs one seed against `system`: warm-up, chaos (the schedule applied by
/// the nemesis), heal, quiesce, convergence, final reads, a power cycle of
/// every server, then the checks on the history and the system's evidence.
pub fn run_system<'a>(
    cfg: &RunConfig,
    schedule: &Schedule,
    system: Box<dyn System + 'a>,
) -> Result<(RunResult, RunArtifacts), Abort> {
    let wall = Instant::now();
    let topo = topology(cfg);
    let mut c = Cluster::new(build_sim(cfg), system);
    for &s in &topo.servers {
        c.start(s);
    }
    let rec = Recorder::default();
    let control = Control::default();
    let finals = Rc::new(Cell::new(false));
    let final_servers: Rc<std::cell::RefCell<Vec<(Sid, String)>>> = Rc::default();
    let done = Rc::new(Cell::new(false));
    let wl = WorkloadConfig {
        kind: cfg.workload,
        processes: cfg.processes,
        keys: cfg.keys,
        think: Duration::from_millis(cfg.think_ms),
        op_timeout: Duration::from_millis(cfg.op_timeout_ms),
        servers: topo.servers.iter().map(|s| (*s, host(*s))).collect(),
        port: CLIENT_PORT,
        seed: cfg.seed,
    };
    {
        let (wl, rec, control, finals, done) = (
            wl.clone(),
            rec.clone(),
            control.clone(),
            finals.clone(),
            done.clone(),
        );
        let final_servers = final_servers.clone();
        let admin = c.system.admin();
        c.sim.client("clients", async move {
            let admin = admin.map(tokio::task::spawn_local);
            workload::run(wl.clone(), rec.clone(), control).await;
            while !finals.get() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Some(a) = admin {
                a.abort();
            }
            let servers = final_servers.borrow().clone();
            workload::final_reads(wl, servers, rec).await;
            done.set(true);
            Ok(())
        });
    }
    let watchdog = Duration::from_secs(cfg.watchdog_s);
    let step = |c: &mut Cluster, n: &mut Nemesis| -> Result<(), Abort> {
        if wall.elapsed() > watchdog {
            return Err(Abort::Watchdog);
        }
        c.sim.step().map_err(|e| Abort::Sim(e.to_string()))?;
        n.step(c);
        Ok(())
    };
    let mut nemesis = Nemesis::new();
    let n = &mut nemesis;
    let ms = |c: &Cluster| c.now_ms();
    // Warm-up.
    let mut warm_ns = None;
    while ms(&c) < cfg.warmup_ms {
        step(&mut c, n)?;
        if warm_ns.is_none() && all_serving(&c) {
            warm_ns = Some(c.sim.elapsed().as_nanos() as u64);
        }
    }
    let chaos_ns = c.sim.elapsed().as_nanos() as u64;
    // Chaos.
    let chaos_start = ms(&c);
    for ev in &schedule.events {
        while ms(&c) < chaos_start + ev.at_ms {
            step(&mut c, n)?;
        }
        n.apply(&mut c, &ev.fault);
    }
    while ms(&c) < chaos_start + cfg.chaos_ms {
        step(&mut c, n)?;
    }
    // Heal everything.
    let heal_ns = c.sim.elapsed().as_nanos() as u64;
    n.heal(&mut c);
    // Quiesce: the workload goes on (liveness), then stops.
    let quiesce_end = ms(&c) + cfg.quiesce_ms;
    let healed_at = ms(&c);
    let mut recovery_ms = None;
    let mut recovered_ns = None;
    while ms(&c) < quiesce_end {
        step(&mut c, n)?;
        if recovery_ms.is_none() && all_serving(&c) {
            recovery_ms = Some(ms(&c) - healed_at);
            recovered_ns = Some(c.sim.elapsed().as_nanos() as u64);
        }
    }
    control.stop();
    let stop_ns = c.sim.elapsed().as_nanos() as u64;
    let windows = vec![
        Window {
            name: "warm-up",
            phase_ns: 0,
            start_ns: warm_ns,
            end_ns: chaos_ns,
        },
        Window {
            name: "after healing",
            phase_ns: heal_ns,
            start_ns: recovered_ns,
            end_ns: stop_ns,
        },
    ];
    // Wait for the replicas to converge (bounded), then read everything.
    let converge_end = ms(&c) + 10_000;
    while ms(&c) < converge_end && !converged(&c) {
        step(&mut c, n)?;
    }
    *final_servers.borrow_mut() = c.started.iter().map(|s| (*s, host(*s))).collect();
    finals.set(true);
    let finals_end = ms(&c) + 60_000;
    while !done.get() && ms(&c) < finals_end {
        step(&mut c, n)?;
    }
    // Let the servers notice the clients are gone, then read their tables.
    let drain_end = ms(&c) + 500;
    while ms(&c) < drain_end {
        step(&mut c, n)?;
    }
    let footprints: Vec<_> = c
        .started
        .iter()
        .filter_map(|s| c.system.footprint(*s))
        .collect();
    let sim_s = c.sim.elapsed().as_secs_f64();
    let ops = rec.ops();
    let ends = replica_ends(&c);
    power_cycle(&mut c, |c| step(c, &mut Nemesis::new()))?;
    let started: Vec<Sid> = c.started.iter().copied().collect();
    let evidence = c.system.evidence(&started);
    let roles = c.system.role_changes();
    let mut result = judge(
        cfg,
        &ops,
        Phases {
            heal_ns,
            stop_ns,
            windows,
            footprints,
        },
        &evidence,
        &roles,
        nemesis.into_log(),
        (sim_s, wall.elapsed().as_secs_f64()),
        &ends,
    );
    result.recovery_ms = recovery_ms;
    Ok((
        result,
        RunArtifacts {
            history: ops,
            schedule: schedule.clone(),
            trace: evidence.trace,
            leaders: leader_spans(&roles),
            messages_per_second: evidence.messages_per_second,
        },
    ))
}

/// The live replicas' last committed position and digest, as they serve.
fn replica_ends(c: &Cluster) -> Vec<ReplicaEnd> {
    c.started
        .iter()
        .map(|s| (s, c.view(*s)))
        .filter(|(_, v)| v.up)
        .map(|(s, v)| ReplicaEnd {
            sid: *s,
            last_committed: v.position,
            digest: v.digest,
        })
        .collect()
}

/// Cuts the power of every server at once (unsynced writes are lost) and
/// starts them again, so that each host reads back its files as a restart
/// does: the durable evidence the run is judged on.
fn power_cycle(
    c: &mut Cluster,
    mut step: impl FnMut(&mut Cluster) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let at = c.sim.elapsed();
    c.power_cycle();
    let read_back = |c: &Cluster| c.started.iter().all(|s| c.system.read_back_since(*s, at));
    while !read_back(c) {
        step(c)?;
    }
    Ok(())
}

/// Every started server is up and serving, under one established leader.
fn all_serving(c: &Cluster) -> bool {
    c.leader().is_some()
        && c.started.iter().all(|s| {
            let v = c.view(*s);
            v.up && v.serving
        })
}

fn converged(c: &Cluster) -> bool {
    let v: Vec<ServerView> = c.started.iter().map(|s| c.view(*s)).collect();
    v.iter().all(|s| s.up && s.serving)
        && v.windows(2)
            .all(|w| w[0].position == w[1].position && w[0].digest == w[1].digest)
}

/// Each established leadership, from its establishment to the leader's next
/// change of role (or the next leader's establishment).
fn leader_spans(roles: &[RoleChange]) -> Vec<(u64, Option<u64>, Sid, u64)> {
    let mut spans: Vec<(u64, Option<u64>, Sid, u64)> = Vec::new();
    for r in roles {
        if let Some(open) = spans.last_mut().filter(|o| o.1.is_none()) {
            if open.2 == r.sid || r.leads {
                open.1 = Some(r.time_ns);
            }
        }
        if r.leads {
            spans.push((r.time_ns, None, r.sid, r.epoch));
        }
    }
    spans
}
