//! One bench run: seed -> configuration -> turmoil simulation -> phases
//! (warm-up, chaos, heal, quiesce, final reads) -> history, node traces and
//! committed txns -> checks -> verdict.

use super::cluster::{host, Cluster, NORMAL_LATENCY_MS};
use super::evidence;
use faultline_checker::health::{self, ServerFootprint, Window};
use faultline_checker::zk::{self, CheckOutcome, CommittedTxn, LeaderEntry, ReplicaEnd};
use faultline_checker::{check, Budget, ModelKind, Validity};
use faultline_checker::{discovery, durable};
use faultline_history::{Fun, History, Op, OpType};
use faultline_nemesis::{self as nemesis, NemesisKind, Schedule, Sid, Target, Topology};
use faultline_node::shell::ShellConfig;
use faultline_node::{Bugs, NodeConfig, PeerState, ProtocolEvent};
use faultline_workload::{self as workload, Control, Recorder, WorkloadConfig, WorkloadKind};
use serde::Serialize;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

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
    /// What each applied fault did, with its simulated time (ms).
    pub nemesis_log: Vec<(u64, String)>,
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
    let mut b = turmoil::Builder::new();
    b.rng_seed(cfg.seed)
        .simulation_duration(Duration::from_secs(24 * 3600))
        .tick_duration(Duration::from_millis(1))
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tcp_capacity(4096)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(NORMAL_LATENCY_MS));
    b.build()
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

/// Runs one seed. Panics of the simulation (node assertions) are caught by
/// the caller.
pub fn run(cfg: &RunConfig, schedule: &Schedule) -> Result<(RunResult, RunArtifacts), Abort> {
    let wall = Instant::now();
    let topo = topology(cfg);
    let mut all: Vec<Sid> = topo.servers.clone();
    all.extend(topo.joiner);
    let hosts: BTreeMap<Sid, String> = all.iter().map(|s| (*s, host(*s))).collect();
    let mut configs = BTreeMap::new();
    for &s in &all {
        let mut node = NodeConfig::new(
            s,
            topo.voters.clone(),
            (cfg.voters + 1..=cfg.voters + cfg.observers).collect(),
        );
        node.bugs = cfg.bugs.clone();
        node.snapshot_interval = cfg.snapshot_interval;
        node.committed_log_window = (cfg.snapshot_interval / 2) as usize;
        let mut shell = ShellConfig::new(node, hosts.clone());
        shell.fsync_latency = Duration::from_millis(cfg.fsync_ms);
        configs.insert(s, shell);
    }
    let mut c = Cluster::new(build_sim(cfg), configs);
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
        port: 2181,
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
        let add_voter = c.add_voter.clone();
        let first_final = 1_000_000_000;
        c.sim.client("clients", async move {
            let admin = tokio::task::spawn_local(admin_loop(wl.clone(), add_voter));
            workload::run(wl.clone(), rec.clone(), control).await;
            while !finals.get() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            admin.abort();
            let servers = final_servers.borrow().clone();
            workload::final_reads(wl, servers, rec, first_final).await;
            done.set(true);
            Ok(())
        });
    }
    let watchdog = Duration::from_secs(cfg.watchdog_s);
    let step = |c: &mut Cluster| -> Result<(), Abort> {
        if wall.elapsed() > watchdog {
            return Err(Abort::Watchdog);
        }
        c.sim.step().map_err(|e| Abort::Sim(e.to_string()))?;
        c.after_step();
        Ok(())
    };
    let ms = |c: &Cluster| c.now_ms();
    // Warm-up.
    let mut warm_ns = None;
    while ms(&c) < cfg.warmup_ms {
        step(&mut c)?;
        if warm_ns.is_none() && all_serving(&c) {
            warm_ns = Some(c.sim.elapsed().as_nanos() as u64);
        }
    }
    let chaos_ns = c.sim.elapsed().as_nanos() as u64;
    // Chaos.
    let chaos_start = ms(&c);
    let mut log = Vec::new();
    for ev in &schedule.events {
        while ms(&c) < chaos_start + ev.at_ms {
            step(&mut c)?;
        }
        let what = nemesis::apply(&mut c, &ev.fault);
        log.push((ms(&c), what));
    }
    while ms(&c) < chaos_start + cfg.chaos_ms {
        step(&mut c)?;
    }
    // Heal everything.
    c.disarm();
    let heal_ns = c.sim.elapsed().as_nanos() as u64;
    for f in [
        nemesis::Fault::RepairNetwork,
        nemesis::Fault::NormalNetwork,
        nemesis::Fault::RestartCrashed,
    ] {
        let what = nemesis::apply(&mut c, &f);
        log.push((ms(&c), format!("heal: {what}")));
    }
    // Quiesce: the workload goes on (liveness), then stops.
    let quiesce_end = ms(&c) + cfg.quiesce_ms;
    let healed_at = ms(&c);
    let mut recovery_ms = None;
    let mut recovered_ns = None;
    while ms(&c) < quiesce_end {
        step(&mut c)?;
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
        step(&mut c)?;
    }
    *final_servers.borrow_mut() = c.started.iter().map(|s| (*s, host(*s))).collect();
    finals.set(true);
    let finals_end = ms(&c) + 60_000;
    while !done.get() && ms(&c) < finals_end {
        step(&mut c)?;
    }
    // Let the servers notice the clients are gone, then read their tables.
    let drain_end = ms(&c) + 500;
    while ms(&c) < drain_end {
        step(&mut c)?;
    }
    let footprints = footprints(&c, cfg);
    let sim_s = c.sim.elapsed().as_secs_f64();
    log.append(&mut c.late_log);
    log.sort_by_key(|(t, _)| *t);
    let ops = rec.ops();
    let ends = replica_ends(&c);
    power_cycle(&mut c, step)?;
    let mut result = judge(
        cfg,
        &c,
        &ops,
        Phases {
            heal_ns,
            stop_ns,
            windows,
            footprints,
        },
        log.clone(),
        (sim_s, wall.elapsed().as_secs_f64()),
        &ends,
    );
    result.recovery_ms = recovery_ms;
    let trace = trace_lines(&c);
    let leaders = leader_spans(&c);
    let mut messages: BTreeMap<u64, u64> = BTreeMap::new();
    for p in c.probes.values() {
        for (s, n) in p.messages_by_second() {
            *messages.entry(s).or_default() += n;
        }
    }
    Ok((
        result,
        RunArtifacts {
            history: ops,
            schedule: schedule.clone(),
            trace,
            leaders,
            messages_per_second: messages.into_iter().collect(),
        },
    ))
}

async fn admin_loop(wl: WorkloadConfig, add_voter: Rc<Cell<Option<Sid>>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(sid) = add_voter.get() else { continue };
        let mut seq = 1;
        'retry: loop {
            for (_, h) in &wl.servers {
                let Ok(mut cl) = faultline_node::client::Client::connect(
                    h,
                    wl.port,
                    999_999_999,
                    Duration::from_millis(300),
                )
                .await
                else {
                    continue;
                };
                if let Ok(r) = cl
                    .call_seq(
                        seq,
                        faultline_node::ClientOp::AddVoter { sid },
                        Duration::from_secs(1),
                    )
                    .await
                {
                    if r.outcome == faultline_node::Outcome::Written {
                        break 'retry;
                    }
                    seq += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        add_voter.set(None);
    }
}

/// The live replicas' last committed zxid and digest, as they serve.
/// Every running server's in-memory tables, with the log bound its
/// configuration implies.
fn footprints(c: &Cluster, cfg: &RunConfig) -> Vec<ServerFootprint> {
    let log_bound = (cfg.snapshot_interval + cfg.snapshot_interval / 2) as usize;
    c.started
        .iter()
        .map(|s| (*s, c.probes[s].status()))
        .filter(|(_, st)| st.up)
        .map(|(sid, st)| ServerFootprint {
            sid,
            client_requests: st.footprint.client_requests,
            log_entries: st.footprint.log_entries,
            log_bound,
            leader_backlog: st.footprint.leader_backlog,
        })
        .collect()
}

fn replica_ends(c: &Cluster) -> Vec<ReplicaEnd> {
    c.started
        .iter()
        .map(|s| (s, c.probes[s].status()))
        .filter(|(_, st)| st.up)
        .map(|(s, st)| ReplicaEnd {
            sid: *s,
            last_committed: st.last_committed.0,
            digest: st.digest,
        })
        .collect()
}

/// Cuts the power of every server at once (unsynced writes are lost) and
/// starts them again, so that each host reads back its files as a restart
/// does: the durable evidence the run is judged on.
fn power_cycle(
    c: &mut Cluster,
    step: impl Fn(&mut Cluster) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let at = c.sim.elapsed();
    for s in c.started.clone() {
        c.sim.crash(host(s));
        c.probes[&s].mark_down();
    }
    for s in c.started.clone() {
        c.sim.bounce(host(s));
    }
    let read_back = |c: &Cluster| {
        c.started
            .iter()
            .all(|s| c.probes[s].image_time().is_some_and(|t| t >= at))
    };
    while !read_back(c) {
        step(c)?;
    }
    Ok(())
}

/// Every started server is up and serving, under one established leader.
fn all_serving(c: &Cluster) -> bool {
    c.leader().is_some()
        && c.started.iter().all(|s| {
            let st = c.probes[s].status();
            st.up && st.serving
        })
}

fn converged(c: &Cluster) -> bool {
    let st: Vec<_> = c.started.iter().map(|s| c.probes[s].status()).collect();
    st.iter().all(|s| s.up && s.serving)
        && st
            .windows(2)
            .all(|w| w[0].last_committed == w[1].last_committed && w[0].digest == w[1].digest)
}

fn trace_lines(c: &Cluster) -> Vec<String> {
    let mut lines = Vec::new();
    for (s, p) in &c.probes {
        for (t, ev) in p.trace() {
            lines.push((
                t,
                *s,
                serde_json::json!({"t_ns": t.as_nanos() as u64, "trace": ev}).to_string(),
            ));
        }
        for (t, ev) in p.events() {
            if let ProtocolEvent::Sync { .. } | ProtocolEvent::ProtocolError { .. } = ev {
                lines.push((
                    t,
                    *s,
                    serde_json::json!({"t_ns": t.as_nanos() as u64, "sid": s, "event": ev})
                        .to_string(),
                ));
            }
        }
    }
    lines.sort_by_key(|l| (l.0, l.1));
    lines.into_iter().map(|l| l.2).collect()
}

/// Each established leadership, from its establishment to the leader's next
/// change of role (or the next leader's establishment).
fn leader_spans(c: &Cluster) -> Vec<(u64, Option<u64>, Sid, u64)> {
    let mut events: Vec<(u64, Sid, bool, u64)> = Vec::new();
    for (s, p) in &c.probes {
        for (t, ev) in p.trace() {
            let leads = ev.role == PeerState::Leading && ev.serving;
            events.push((t.as_nanos() as u64, *s, leads, ev.epoch));
        }
    }
    events.sort();
    let mut spans: Vec<(u64, Option<u64>, Sid, u64)> = Vec::new();
    for (t, s, leads, epoch) in events {
        if let Some(open) = spans.last_mut().filter(|o| o.1.is_none()) {
            if open.2 == s || leads {
                open.1 = Some(t);
            }
        }
        if leads {
            spans.push((t, None, s, epoch));
        }
    }
    spans
}

/// What leaders reported committed (with the ACK sets they counted), by
/// zxid, and the violations in those reports themselves (I2, I5).
fn leader_reported(c: &Cluster) -> (BTreeMap<u64, CommittedTxn>, Vec<String>) {
    let mut committed = Vec::new();
    for p in c.probes.values() {
        for (_, ev) in p.events() {
            if let ProtocolEvent::Committed { txn, acks, voters } = ev {
                committed.push(CommittedTxn {
                    zxid: txn.zxid.0,
                    set: evidence::sets(&txn),
                    origin: txn.origin,
                    acks,
                    voters,
                    describe: evidence::describe(&txn),
                });
            }
        }
    }
    zk::committed_history(&committed)
}

/// The linearizability check: writes and cas (and sync-reads); local reads
/// are checked by `read-guarantees` instead.
/// The part of a history the linearizability check reads: everything but
/// the clients' local reads (sequentially consistent in ZooKeeper, judged
/// by read-guarantees instead), with each op's index in the full history.
pub(crate) fn linearizable_part(
    ops: &[Op],
) -> (Result<History, faultline_history::HistoryError>, Vec<usize>) {
    let index_map: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !(o.f == Fun::Read && o.process.is_client()))
        .map(|(i, _)| i)
        .collect();
    let keep: Vec<Op> = index_map.iter().map(|&i| ops[i].clone()).collect();
    (History::new(keep), index_map)
}

fn linearizable(ops: &[Op], kind: WorkloadKind) -> CheckOutcome {
    let (h, index_map) = linearizable_part(ops);
    let summary = match kind {
        WorkloadKind::Register => "writes, cas and sync-reads, per key (cas-register model)",
        WorkloadKind::Strict => "sync-reads, writes and cas, per key (cas-register model)",
    };
    let h = match h {
        Ok(h) => h,
        Err(e) => {
            return CheckOutcome {
                name: "linearizable".into(),
                result: Validity::Invalid,
                summary: summary.into(),
                anomalies: vec![format!("malformed history: {e}")],
                ops: vec![],
            }
        }
    };
    let budget = Budget {
        deadline: None,
        max_steps: Some(20_000_000),
        max_bytes: Some(1 << 30),
        no_reductions: false,
        no_certificates: false,
    };
    match check(&h, ModelKind::CasRegister, &budget, 1) {
        Ok(r) => CheckOutcome {
            name: "linearizable".into(),
            result: r.result,
            summary: format!("{summary}: {} ops, {} keys", r.ops, r.keys),
            anomalies: r
                .anomalies
                .iter()
                .map(|w| w.explanation.clone())
                .chain(
                    r.unknown
                        .iter()
                        .map(|u| format!("key {:?}: {}", u.key, u.reason)),
                )
                .collect(),
            ops: witness_ops(&r, &index_map),
        },
        Err(e) => CheckOutcome {
            name: "linearizable".into(),
            result: Validity::Invalid,
            summary: summary.into(),
            anomalies: vec![e.to_string()],
            ops: vec![],
        },
    }
}

/// The history indices (in the full history) of each witness's blocked op
/// and the ops concurrent with it.
fn witness_ops(r: &faultline_checker::LinReport, index_map: &[usize]) -> Vec<usize> {
    let mut v = Vec::new();
    for w in &r.anomalies {
        for op in std::iter::once(&w.op).chain(w.concurrent.iter().map(|c| &c.op)) {
            v.push(index_map[op.invoke_index]);
            if let Some(c) = op.complete_index {
                v.push(index_map[c]);
            }
        }
    }
    v.truncate(400);
    v
}

/// Latencies (ms) of the ops that completed ok.
fn ok_latencies(ops: &[Op]) -> Vec<f64> {
    let mut open: BTreeMap<&faultline_history::Process, u64> = BTreeMap::new();
    let mut lat = Vec::new();
    for o in ops {
        match o.kind {
            OpType::Invoke => {
                open.insert(&o.process, o.time);
            }
            OpType::Ok => {
                if let Some(t) = open.remove(&o.process) {
                    lat.push((o.time - t) as f64 / 1e6);
                }
            }
            _ => {
                open.remove(&o.process);
            }
        }
    }
    lat
}

fn histogram(lat: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; faultline_reports::plots::LATENCY_EDGES_MS.len()];
    for l in lat {
        counts[faultline_reports::plots::latency_bucket(*l)] += 1;
    }
    counts
}

fn percentiles(lat: &[f64]) -> (f64, f64) {
    if lat.is_empty() {
        return (0.0, 0.0);
    }
    let mut lat = lat.to_vec();
    lat.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

/// FNV-1a over the history's JSON lines.
pub fn history_hash(ops: &[Op]) -> String {
    let mut buf = Vec::new();
    faultline_history::jsonl::write_ops(&mut buf, ops).expect("in memory");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in buf {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The run's phase boundaries the checks use (simulated ns).
struct Phases {
    /// Everything was healed.
    heal_ns: u64,
    /// The workload was told to stop.
    stop_ns: u64,
    /// The fault-free windows once every server served.
    windows: Vec<Window>,
    /// The servers' in-memory tables at the end.
    footprints: Vec<ServerFootprint>,
}

/// How far behind the committed head a local read may be (see
/// `health::timeliness`): five times syncLimit (100 ms), after which a
/// follower cut off from its leader has long stopped serving. The worst
/// lag measured on correct runs is ~105 ms (1,200 runs of the default,
/// strict and mixed campaigns).
const TIMELINESS_MS: u64 = 500;

/// The least throughput after healing, as a fraction of the warm-up's
/// (measured on correct runs: at least 0.89).
const THROUGHPUT_FLOOR: f64 = 0.5;

fn judge(
    cfg: &RunConfig,
    c: &Cluster,
    ops: &[Op],
    phases: Phases,
    nemesis_log: Vec<(u64, String)>,
    (sim_s, wall_s): (f64, f64),
    ends: &[ReplicaEnd],
) -> RunResult {
    let mut checks = Vec::new();
    let mut check_ms = Vec::new();
    let mut timed = |checks: &mut Vec<CheckOutcome>, f: &mut dyn FnMut() -> CheckOutcome| {
        let t = Instant::now();
        let o = f();
        check_ms.push((o.name.clone(), t.elapsed().as_secs_f64() * 1000.0));
        checks.push(o);
    };
    let history = History::new(ops.to_vec());
    let mut leaders = Vec::new();
    let mut leader_changes = 0;
    for (s, p) in &c.probes {
        for (t, ev) in p.trace() {
            if ev.role == PeerState::Leading && ev.serving {
                leaders.push(LeaderEntry {
                    time_ns: t.as_nanos() as u64,
                    sid: *s,
                    epoch: ev.epoch,
                });
                leader_changes += 1;
            }
        }
    }
    leaders.sort_by_key(|l| (l.time_ns, l.sid));
    // The evidence: files, disk journals, ACK and COMMIT records.
    let ev: BTreeMap<Sid, _> = c
        .started
        .iter()
        .map(|s| (*s, c.probes[s].evidence()))
        .collect();
    let files = evidence::server_files(&ev);
    let (dh, conflicts) = durable::durable_history(&files);
    let journals = evidence::journals(&ev);
    let topo = topology(cfg);
    let final_voters = dh
        .values()
        .rev()
        .find_map(|t| t.reconfig.clone())
        .unwrap_or_else(|| topo.voters.clone());
    // The committed history the reads are judged against: the durable one,
    // with (when used) what leaders reported below every server's log.
    let reported = if cfg.leader_reports {
        Some(leader_reported(c))
    } else {
        None
    };
    let mut committed: BTreeMap<u64, CommittedTxn> = dh
        .values()
        .map(|t| {
            let c = CommittedTxn {
                zxid: t.zxid,
                set: t.set,
                origin: t.origin,
                acks: vec![],
                voters: vec![],
                describe: t.describe.clone(),
            };
            (t.zxid, c)
        })
        .collect();
    if let Some((map, _)) = &reported {
        for (z, t) in map {
            committed.entry(*z).or_insert_with(|| t.clone());
        }
    }
    let last = dh.keys().next_back().copied().unwrap_or(0);
    match &history {
        Ok(h) => {
            timed(&mut checks, &mut || linearizable(ops, cfg.workload));
            // What leaders reported fills the gaps in the logs; without
            // the reports, reads that depend on a gap are not judged.
            let gaps = if reported.is_some() {
                vec![]
            } else {
                durable::gaps(&files)
            };
            timed(&mut checks, &mut || {
                zk::read_guarantees(h, &committed, &gaps)
            });
            timed(&mut checks, &mut || {
                durable::durability(h, &files, &dh, &conflicts, &final_voters)
            });
        }
        Err(e) => checks.push(CheckOutcome {
            name: "history".into(),
            result: Validity::Invalid,
            summary: "the recorded history is well-formed".into(),
            anomalies: vec![e.to_string()],
            ops: vec![],
        }),
    }
    timed(&mut checks, &mut || {
        durable::quorum_acks(&journals, &dh, &topo.voters)
    });
    let mut voter_sets = vec![topo.voters.clone()];
    voter_sets.extend(dh.values().filter_map(|t| t.reconfig.clone()));
    timed(&mut checks, &mut || {
        discovery::discovery(&journals, &voter_sets)
    });
    if let Some((map, report_conflicts)) = &reported {
        let mut o = durable::leader_reports(map, &files, &dh);
        if !report_conflicts.is_empty() {
            o.anomalies.extend(report_conflicts.iter().cloned());
            o.result = Validity::Invalid;
        }
        checks.push(o);
    }
    timed(&mut checks, &mut || zk::convergence(ends, last));
    if let Ok(h) = &history {
        timed(&mut checks, &mut || {
            zk::liveness(
                h,
                &leaders,
                phases.heal_ns,
                cfg.liveness_ms * 1_000_000,
                phases.stop_ns,
            )
        });
    }
    timed(&mut checks, &mut || zk::leadership(&leaders));
    if let Ok(h) = &history {
        let (commits, established, syncs) = evidence::protocol_records(&journals);
        timed(&mut checks, &mut || {
            health::timeliness(h, &commits, TIMELINESS_MS * 1_000_000)
        });
        timed(&mut checks, &mut || {
            health::stability(h, &phases.windows, &established, &syncs, THROUGHPUT_FLOOR)
        });
    }
    if let Ok(h) = &history {
        // A process has at most a write and a pipelined read outstanding,
        // and gives up on an op long before a held request times out.
        let n = NodeConfig::new(1, vec![1], vec![]);
        let hold_ms = n.hold_timeout * n.tick.as_millis() as u64;
        let judged = 2 * cfg.processes < n.hold_queue_max && cfg.op_timeout_ms < hold_ms;
        timed(&mut checks, &mut || health::holding(h, judged));
    }
    timed(&mut checks, &mut || health::hygiene(&phases.footprints));
    let result = Validity::combine(checks.iter().map(|c| c.result));
    let invoked = ops.iter().filter(|o| o.kind == OpType::Invoke).count();
    let latencies = ok_latencies(ops);
    let ok = ops.iter().filter(|o| o.kind == OpType::Ok).count();
    RunResult {
        seed: cfg.seed,
        result,
        checks,
        ops: invoked,
        ok,
        faults: nemesis_log.len(),
        leader_changes,
        protocol_errors: c
            .probes
            .values()
            .flat_map(|p| p.events())
            .filter(|(_, e)| matches!(e, ProtocolEvent::ProtocolError { .. }))
            .count(),
        sim_s,
        wall_s,
        check_ms,
        history_hash: history_hash(ops),
        nemesis_log,
        latency_ms: percentiles(&latencies),
        latency_hist: histogram(&latencies),
        recovery_ms: None,
    }
}
