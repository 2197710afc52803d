//! One bench run: seed -> configuration -> turmoil simulation -> phases
//! (warm-up, chaos, heal, quiesce, final reads) -> history, node traces and
//! committed txns -> checks -> verdict.

use crate::cluster::{host, Cluster, NORMAL_LATENCY_MS};
use crate::judge::{judge, Phases};
use faultline_checker::health::{ServerFootprint, Window};
use faultline_checker::zk::ReplicaEnd;
use faultline_checker::CheckOutcome;
use faultline_checker::Validity;
use faultline_history::Op;
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
    // `holding` is judged only when the clients can neither fill a hold
    // queue (a process has at most a write and a pipelined read
    // outstanding) nor outwait a held request's timeout.
    let holding_judged = configs.values().all(|sc: &ShellConfig| {
        let n = &sc.node;
        let hold_ms = n.hold_timeout * n.tick.as_millis() as u64;
        2 * cfg.processes < n.hold_queue_max && cfg.op_timeout_ms < hold_ms
    });
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
            holding_judged,
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
