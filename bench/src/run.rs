//! One bench run: seed -> configuration -> turmoil simulation -> phases
//! (warm-up, chaos, heal, quiesce, final reads) -> history, node traces and
//! committed txns -> checks -> verdict.

use crate::cluster::Cluster;
use crate::judge::{judge, Phases};
use crate::raft::Raft;
use crate::system::{host, RoleChange, ServerView, System, SystemKind, CLIENT_PORT};
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
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Everything that defines a run; printed at start and saved with it
/// (`config.json`, read back by `faultline shrink RUN_DIR`).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
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
    /// The system under test (ZAB when absent: configurations written
    /// before there was a choice).
    #[serde(default)]
    pub system: SystemKind,
    /// raftkv's bug switches (with `system: raft`).
    #[serde(default)]
    pub raft_bugs: faultline_raftkv::Bugs,
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
    /// Sessions the logs show expired (closed without their client
    /// asking), as the `sessions` check counted them (`None`: not judged).
    #[serde(default)]
    pub session_expiries: Option<usize>,
    /// The longest time, after the first leader was established, with no
    /// established leader (elections, no quorum), ms.
    #[serde(default)]
    pub longest_leaderless_ms: u64,
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
    /// When each phase of the run began (ns) and its name, in order; the
    /// last is the final reads.
    pub phases: Vec<(u64, String)>,
}

/// The topology a configuration describes.
pub fn topology(cfg: &RunConfig) -> Topology {
    let servers: Vec<Sid> = (1..=cfg.voters + cfg.observers).collect();
    Topology {
        voters: (1..=cfg.voters).collect(),
        joiner: cfg.joiner.then_some(cfg.voters + cfg.observers + 1),
        servers,
        clients: cfg.processes as u64,
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

/// Runs one seed against the system `cfg` names. Panics of the
/// simulation (server assertions) are caught by the caller.
pub fn run(cfg: &RunConfig, schedule: &Schedule) -> Result<(RunResult, RunArtifacts), Abort> {
    run_recorded(cfg, schedule, &Recorder::default())
}

/// [`run`], recording the history into `rec`, which the caller keeps: a
/// run that a server assertion or the watchdog stops keeps the history up
/// to that point.
pub fn run_recorded(
    cfg: &RunConfig,
    schedule: &Schedule,
    rec: &Recorder,
) -> Result<(RunResult, RunArtifacts), Abort> {
    match cfg.system {
        SystemKind::Zab => run_system_with(cfg, schedule, Box::new(Zab::new(cfg)), rec),
        SystemKind::Raft => run_system_with(cfg, schedule, Box::new(Raft::new(cfg)), rec),
    }
}

/// Runs one seed against `system`: warm-up, chaos (the schedule applied by
/// the nemesis), heal, quiesce, convergence, final reads, a power cycle of
/// every server, then the checks on the history and the system's evidence.
pub fn run_system<'a>(
    cfg: &RunConfig,
    schedule: &Schedule,
    system: Box<dyn System + 'a>,
) -> Result<(RunResult, RunArtifacts), Abort> {
    run_system_with(cfg, schedule, system, &Recorder::default())
}

/// [`run_system`], recording the history into `rec`.
fn run_system_with<'a>(
    cfg: &RunConfig,
    schedule: &Schedule,
    system: Box<dyn System + 'a>,
    rec: &Recorder,
) -> Result<(RunResult, RunArtifacts), Abort> {
    let topo = topology(cfg);
    let mut r = Runner {
        c: Cluster::new(build_sim(cfg), system),
        n: Nemesis::new(),
        wall: Instant::now(),
        watchdog: Duration::from_secs(cfg.watchdog_s),
    };
    for &s in &topo.servers {
        r.c.start(s);
    }
    let clients = Clients::spawn(&mut r.c, cfg, &topo, rec.clone());
    r.c.clients = Some(clients.control.clone());
    let marks = r.drive(cfg, schedule, &clients)?;
    let final_ns = r.final_reads(&clients)?;
    let footprints: Vec<_> =
        r.c.started
            .iter()
            .filter_map(|s| r.c.system.footprint(*s))
            .collect();
    let sim_s = r.c.sim.elapsed().as_secs_f64();
    let ops = clients.rec.ops();
    let ends = replica_ends(&r.c);
    // Nothing reacts any more: the nemesis's work is done.
    let nemesis_log = std::mem::take(&mut r.n).into_log();
    r.power_cycle()?;
    let started: Vec<Sid> = r.c.started.iter().copied().collect();
    let evidence = r.c.system.evidence(&started);
    let roles = r.c.system.role_changes();
    let phases = Phases {
        heal_ns: marks.heal_ns,
        stop_ns: marks.stop_ns,
        windows: marks.windows(),
        footprints,
    };
    let wall_s = r.wall.elapsed().as_secs_f64();
    let mut result = judge(
        cfg,
        &ops,
        phases,
        &evidence,
        &roles,
        nemesis_log,
        (sim_s, wall_s),
        &ends,
    );
    result.recovery_ms = marks.recovered.map(|r| r.0);
    let artifacts = RunArtifacts {
        history: ops,
        schedule: schedule.clone(),
        trace: evidence.trace,
        leaders: leader_spans(&roles),
        messages_per_second: evidence.messages_per_second,
        phases: vec![
            (0, "warm-up".into()),
            (marks.chaos_ns, "chaos".into()),
            (marks.heal_ns, "healed: quiesce".into()),
            (marks.stop_ns, "clients stop".into()),
            (final_ns, "final reads".into()),
        ],
    };
    Ok((result, artifacts))
}

/// Simulated nanoseconds since the start.
fn now_ns(c: &Cluster) -> u64 {
    c.sim.elapsed().as_nanos() as u64
}

/// The client host's shared state: the history being recorded and the
/// switches the phases flip.
struct Clients {
    rec: Recorder,
    control: Control,
    /// Set when the final reads may start.
    finals: Rc<Cell<bool>>,
    /// The servers the final reads go to.
    final_servers: Rc<RefCell<Vec<(Sid, String)>>>,
    /// Set when the final reads are done.
    done: Rc<Cell<bool>>,
}

impl Clients {
    /// Starts the client host: the workload (with the system's admin task
    /// beside it) until stopped, then the final reads once allowed.
    fn spawn(c: &mut Cluster, cfg: &RunConfig, topo: &Topology, rec: Recorder) -> Clients {
        let clients = Clients {
            rec,
            control: Control::default(),
            finals: Rc::default(),
            final_servers: Rc::default(),
            done: Rc::default(),
        };
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
        let (rec, control) = (clients.rec.clone(), clients.control.clone());
        let (finals, done) = (clients.finals.clone(), clients.done.clone());
        let final_servers = clients.final_servers.clone();
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
        clients
    }
}

/// When the phases began and ended (simulated ns).
struct Marks {
    /// Every server served under one leader in the warm-up.
    warm_ns: Option<u64>,
    chaos_ns: u64,
    heal_ns: u64,
    /// Every server served again after healing: (ms after healing, ns).
    recovered: Option<(u64, u64)>,
    /// The workload was told to stop.
    stop_ns: u64,
}

impl Marks {
    /// The fault-free windows `stability` judges.
    fn windows(&self) -> Vec<Window> {
        vec![
            Window {
                name: "warm-up",
                phase_ns: 0,
                start_ns: self.warm_ns,
                end_ns: self.chaos_ns,
            },
            Window {
                name: "after healing",
                phase_ns: self.heal_ns,
                start_ns: self.recovered.map(|r| r.1),
                end_ns: self.stop_ns,
            },
        ]
    }
}

/// The simulation as the phases drive it: the cluster, the nemesis and
/// the wall-clock watchdog.
struct Runner<'a> {
    c: Cluster<'a>,
    n: Nemesis,
    wall: Instant,
    watchdog: Duration,
}

impl Runner<'_> {
    /// One simulation step, then the nemesis's reactions.
    fn step(&mut self) -> Result<(), Abort> {
        if self.wall.elapsed() > self.watchdog {
            return Err(Abort::Watchdog);
        }
        self.c.sim.step().map_err(|e| Abort::Sim(e.to_string()))?;
        self.n.step(&mut self.c);
        Ok(())
    }

    /// Steps until `end_ms` or until `done`, calling `each` after every
    /// step.
    fn until(
        &mut self,
        end_ms: u64,
        done: impl Fn(&Cluster) -> bool,
        mut each: impl FnMut(&Cluster),
    ) -> Result<(), Abort> {
        while self.c.now_ms() < end_ms && !done(&self.c) {
            self.step()?;
            each(&self.c);
        }
        Ok(())
    }

    /// Warm-up, chaos, heal and quiesce, then the workload stops: the
    /// phases' marks.
    fn drive(
        &mut self,
        cfg: &RunConfig,
        schedule: &Schedule,
        clients: &Clients,
    ) -> Result<Marks, Abort> {
        let mut warm_ns = None;
        self.until(
            cfg.warmup_ms,
            |_| false,
            |c| {
                if warm_ns.is_none() && all_serving(c) {
                    warm_ns = Some(now_ns(c));
                }
            },
        )?;
        let chaos_ns = now_ns(&self.c);
        self.chaos(cfg, schedule)?;
        let heal_ns = now_ns(&self.c);
        self.n.heal(&mut self.c);
        // Quiesce: the workload goes on (liveness), then stops.
        let healed_at = self.c.now_ms();
        let mut recovered = None;
        self.until(
            healed_at + cfg.quiesce_ms,
            |_| false,
            |c| {
                if recovered.is_none() && all_serving(c) {
                    recovered = Some((c.now_ms() - healed_at, now_ns(c)));
                }
            },
        )?;
        clients.control.stop();
        Ok(Marks {
            warm_ns,
            chaos_ns,
            heal_ns,
            recovered,
            stop_ns: now_ns(&self.c),
        })
    }

    /// The chaos phase: every scheduled fault at its time.
    fn chaos(&mut self, cfg: &RunConfig, schedule: &Schedule) -> Result<(), Abort> {
        let start = self.c.now_ms();
        for ev in &schedule.events {
            self.until(start + ev.at_ms, |_| false, |_| {})?;
            self.n.apply(&mut self.c, &ev.fault);
        }
        self.until(start + cfg.chaos_ms, |_| false, |_| {})
    }

    /// After the workload stopped: waits for the replicas to converge
    /// (bounded), reads every key at every server, and lets the servers
    /// notice the clients are gone.
    /// Waits for convergence, runs the final reads and the drain; returns
    /// when the final reads began (ns).
    fn final_reads(&mut self, clients: &Clients) -> Result<u64, Abort> {
        self.until(self.c.now_ms() + 10_000, converged, |_| {})?;
        let begun = now_ns(&self.c);
        *clients.final_servers.borrow_mut() =
            self.c.started.iter().map(|s| (*s, host(*s))).collect();
        clients.finals.set(true);
        let done = clients.done.clone();
        self.until(self.c.now_ms() + 60_000, move |_| done.get(), |_| {})?;
        // Sessions the clients abandoned expire within the longest
        // timeout, then the cluster is quiet: the drain ends there, or as
        // soon as every server is drained and they agree (see `quiet`; a
        // system that shows no footprint is drained for the whole bound).
        let longest = workload::SESSION_TIMEOUT_TICKS.1 * 10;
        self.until(self.c.now_ms() + longest + 500, quiet, |_| {})?;
        Ok(begun)
    }

    /// Cuts the power of every server at once (unsynced writes are lost)
    /// and starts them again, so that each host reads back its files as a
    /// restart does: the durable evidence the run is judged on.
    fn power_cycle(&mut self) -> Result<(), Abort> {
        let at = self.c.sim.elapsed();
        self.c.power_cycle();
        let read_back = |c: &Cluster| c.started.iter().all(|s| c.system.read_back_since(*s, at));
        self.until(u64::MAX, read_back, |_| {})
    }
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

/// Every started server is up and serving, under one established leader.
fn all_serving(c: &Cluster) -> bool {
    c.leader().is_some()
        && c.started.iter().all(|s| {
            let v = c.view(*s);
            v.up && v.serving
        })
}

/// Every started server is drained (no open session, no client request,
/// no leader backlog, its in-memory log trimmed to its bound) and they
/// have converged. With no client left nothing can undo it, so ending the
/// drain here judges what the whole drain would have.
fn quiet(c: &Cluster) -> bool {
    c.started.iter().all(|s| {
        c.system.footprint(*s).is_some_and(|f| {
            f.open_sessions == 0
                && f.client_requests == 0
                && f.leader_backlog == 0
                && f.log_entries <= f.log_bound
        })
    }) && converged(c)
}

fn converged(c: &Cluster) -> bool {
    let v: Vec<ServerView> = c.started.iter().map(|s| c.view(*s)).collect();
    v.iter().all(|s| s.up && s.serving)
        && v.windows(2)
            .all(|w| w[0].position == w[1].position && w[0].digest == w[1].digest)
}

/// Each established leadership, from its establishment to the leader's next
/// change of role (or the next leader's establishment).
pub(crate) fn leader_spans(roles: &[RoleChange]) -> Vec<(u64, Option<u64>, Sid, u64)> {
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
