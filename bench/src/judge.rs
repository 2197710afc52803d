//! The checks of one run: from the recorded history, the hosts' evidence
//! and the runner's phase marks to a `RunResult` (linearizability, the
//! ZooKeeper checks, durability and discovery from the evidence, the
//! health checks), with the run's figures (latencies, op counts, the
//! history hash).

use crate::run::{leader_spans, topology, RunConfig, RunResult};
use crate::system::{Durable, Evidence, RoleChange};
use faultline_checker::durable::LoggedTxn;
use faultline_checker::durable::{Journal, Record};
use faultline_checker::health::{self, ServerFootprint, Window};
use faultline_checker::sessions::{self, LeaderTime, SessionRun};
use faultline_checker::zk::{self, CommittedTxn, LeaderEntry, ReplicaEnd};
use faultline_checker::CheckOutcome;
use faultline_checker::{check, Budget, ModelKind, Validity};
use faultline_checker::{discovery, durable};
use faultline_history::{History, Op, OpType};
use faultline_nemesis::{Entry, Sid};
use faultline_workload::WorkloadKind;
use std::collections::BTreeMap;
use std::time::Instant;

/// The linearizability check over the whole history: the checker sets
/// the clients' local reads (sequentially consistent in ZooKeeper, judged
/// by read-guarantees instead), session ops and ephemeral keys aside, so
/// every op number in an anomaly is the op's index in the run's history
/// (as in the run page's hover text).
fn linearizable(h: &History, kind: WorkloadKind) -> CheckOutcome {
    let summary = match kind {
        WorkloadKind::Register => "writes, cas and sync-reads, per key (cas-register model)",
        WorkloadKind::Strict => "sync-reads, writes and cas, per key (cas-register model)",
    };
    let budget = Budget {
        deadline: None,
        max_steps: Some(20_000_000),
        max_bytes: Some(1 << 30),
        no_reductions: false,
        no_certificates: false,
    };
    match check(h, ModelKind::CasRegister, &budget, 1) {
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
            ops: witness_ops(&r),
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

/// The history indices of each witness's blocked op and the ops
/// concurrent with it.
fn witness_ops(r: &faultline_checker::LinReport) -> Vec<usize> {
    let mut v = Vec::new();
    for w in &r.anomalies {
        for op in std::iter::once(&w.op).chain(w.concurrent.iter().map(|c| &c.op)) {
            v.push(op.invoke_index);
            v.extend(op.complete_index);
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
    let mut h = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut h, &buf);
    format!("{:016x}", std::hash::Hasher::finish(&h))
}

/// The run's phase boundaries the checks use (simulated ns).
pub(crate) struct Phases {
    /// Everything was healed.
    pub(crate) heal_ns: u64,
    /// The workload was told to stop.
    pub(crate) stop_ns: u64,
    /// The fault-free windows once every server served.
    pub(crate) windows: Vec<Window>,
    /// The servers' in-memory tables at the end.
    pub(crate) footprints: Vec<ServerFootprint>,
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

/// How much earlier than its timeout of leader time a correct leader may
/// expire a session, counted from a request it surely heard of (ZAB.md
/// §9's "one tick plus the network delay bound", made concrete): its tick
/// and the next (20 ms), and a learner that serves for up to syncLimit
/// after losing its leader while its touches cannot reach it (100 ms),
/// rounded up.
const SESSION_SLACK_MS: u64 = 150;

/// How long a touch may take to reach the leader (a learner's report with
/// its next ping reply: a tick plus a round trip under the latency
/// nemesis's 80 ms links) and the close to commit (an fsync of up to 20
/// ms and another round trip), rounded up: requests served within this of
/// the close's commit are not counted as the client's last contact.
const SESSION_REPORT_MS: u64 = 400;

/// How long past its timeout of leader time a silent session may stay
/// open: the expiry tick, the close's proposal, fsync and commit.
const SESSION_LATE_MS: u64 = 1000;

/// The checks that read a system's durable evidence.
const DURABLE_CHECKS: [&str; 7] = [
    "read-guarantees",
    "sessions",
    "durability",
    "quorum-acks",
    "discovery",
    "timeliness",
    "stability",
];

/// The checks run so far, with the wall time each took.
#[derive(Default)]
struct Checks {
    list: Vec<CheckOutcome>,
    ms: Vec<(String, f64)>,
}

impl Checks {
    /// Runs one check and keeps its outcome and wall time.
    fn run(&mut self, f: impl FnOnce() -> CheckOutcome) {
        let t = Instant::now();
        let o = f();
        self.ms
            .push((o.name.clone(), t.elapsed().as_secs_f64() * 1000.0));
        self.list.push(o);
    }
}

/// Every check of one run, from the history, the run's phases and the
/// system's evidence; the checks the evidence cannot support are listed as
/// not applicable rather than passed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn judge(
    cfg: &RunConfig,
    ops: &[Op],
    phases: Phases,
    ev: &Evidence,
    roles: &[RoleChange],
    nemesis_log: Vec<Entry>,
    (sim_s, wall_s): (f64, f64),
    ends: &[ReplicaEnd],
) -> RunResult {
    let mut checks = Checks::default();
    let mut not_applicable = Vec::new();
    let history = History::new(ops.to_vec());
    let leaders = leaders(roles);
    let h = match &history {
        Ok(h) => Some(h),
        Err(e) => {
            checks.list.push(CheckOutcome {
                name: "history".into(),
                result: Validity::Invalid,
                summary: "the recorded history is well-formed".into(),
                anomalies: vec![e.to_string()],
                ops: vec![],
            });
            None
        }
    };
    if let Some(h) = h {
        checks.run(|| linearizable(h, cfg.workload));
    }
    let mut last = ends.iter().map(|e| e.last_committed).max().unwrap_or(0);
    let mut expiries = None;
    let end_ns = (sim_s * 1e9) as u64;
    let led = leader_spans(roles);
    let spans: Vec<(u64, Option<u64>)> = led.iter().map(|&(a, b, _, _)| (a, b)).collect();
    let sids: Vec<u64> = led.iter().map(|&(_, _, s, _)| s).collect();
    // COMMITs sent, establishments and sync starts, read once from the
    // journals for sessions, timeliness and stability.
    let records = ev.durable.as_ref().map(|d| evidence_records(&d.journals));
    match &ev.durable {
        Some(d) => {
            let topo = topology(cfg);
            let dh = durable_checks(h, d, ev, &topo.voters, &mut checks);
            last = dh.keys().next_back().copied().unwrap_or(0);
            if let Some(h) = h {
                let mut commit_ns = BTreeMap::new();
                for &(t, z) in records.iter().flat_map(|r| &r.0) {
                    commit_ns.entry(z).or_insert(t);
                }
                let complete_from = durable::gaps(&d.files).last().map_or(0, |g| g.1);
                let run = SessionRun {
                    tick_ns: d.tick_ns,
                    txns: &dh,
                    complete_from,
                    commit_ns: &commit_ns,
                    leaders: LeaderTime {
                        spans: &spans,
                        sids: &sids,
                    },
                    heal_ns: phases.heal_ns,
                    end_ns,
                    slack_ns: SESSION_SLACK_MS * 1_000_000,
                    late_ns: SESSION_LATE_MS * 1_000_000,
                    report_ns: SESSION_REPORT_MS * 1_000_000,
                };
                checks.run(|| {
                    let (o, counts) = sessions::sessions(h, &run);
                    expiries = Some(counts.expiries);
                    o
                });
            }
        }
        None => {
            let judged = ev.logs.is_some();
            not_applicable.extend(
                DURABLE_CHECKS
                    .iter()
                    .filter(|c| !(judged && **c == "durability"))
                    .map(|c| c.to_string()),
            );
            if let (Some(h), Some((logs, voters))) = (h, &ev.logs) {
                checks.run(|| faultline_checker::rlog::durability(h, logs, voters));
            }
        }
    }
    checks.run(|| zk::convergence(ends, last, h));
    if let Some(h) = h {
        checks.run(|| {
            zk::liveness(
                h,
                &leaders,
                phases.heal_ns,
                cfg.liveness_ms * 1_000_000,
                phases.stop_ns,
            )
        });
    }
    checks.run(|| zk::leadership(&leaders));
    if let (Some(h), Some((commits, established, syncs))) = (h, &records) {
        checks.run(|| health::timeliness(h, commits, TIMELINESS_MS * 1_000_000));
        checks.run(|| health::stability(h, &phases.windows, established, syncs, THROUGHPUT_FLOOR));
    }
    match (h, ev.holding) {
        (Some(h), Some(judged)) => checks.run(|| health::holding(h, judged)),
        (_, None) => not_applicable.push("holding".into()),
        _ => {}
    }
    if phases.footprints.is_empty() {
        not_applicable.push("hygiene".into());
    } else {
        checks.run(|| health::hygiene(&phases.footprints));
    }
    let Checks { list, ms } = checks;
    let mut r = figures(ops, &leaders, ev, nemesis_log);
    r.seed = cfg.seed;
    r.result = Validity::combine(list.iter().map(|c| c.result));
    r.checks = list;
    r.check_ms = ms;
    r.not_applicable = not_applicable;
    r.session_expiries = expiries;
    r.longest_leaderless_ms = longest_leaderless(&spans, end_ns) / 1_000_000;
    (r.sim_s, r.wall_s) = (sim_s, wall_s);
    r
}

/// Every establishment of a leader, in time order.
fn leaders(roles: &[RoleChange]) -> Vec<LeaderEntry> {
    roles
        .iter()
        .filter(|r| r.leads)
        .map(|r| LeaderEntry {
            time_ns: r.time_ns,
            sid: r.sid,
            epoch: r.epoch,
        })
        .collect()
}

/// The run's figures (op counts, latencies, faults, leader changes, the
/// history hash), before any check is attached.
fn figures(ops: &[Op], leaders: &[LeaderEntry], ev: &Evidence, log: Vec<Entry>) -> RunResult {
    let latencies = ok_latencies(ops);
    RunResult {
        seed: 0,
        result: Validity::Valid,
        checks: Vec::new(),
        not_applicable: Vec::new(),
        ops: ops.iter().filter(|o| o.kind == OpType::Invoke).count(),
        ok: ops.iter().filter(|o| o.kind == OpType::Ok).count(),
        faults: log.len(),
        leader_changes: leaders.len(),
        protocol_errors: ev.protocol_errors,
        sim_s: 0.0,
        wall_s: 0.0,
        check_ms: Vec::new(),
        history_hash: history_hash(ops),
        nemesis_log: log,
        latency_ms: percentiles(&latencies),
        latency_hist: histogram(&latencies),
        recovery_ms: None,
        session_expiries: None,
        longest_leaderless_ms: 0,
    }
}

/// The longest time without an established leader between the first
/// establishment and `end_ns`, given the leadership spans in time order.
fn longest_leaderless(spans: &[(u64, Option<u64>)], end_ns: u64) -> u64 {
    let mut longest = 0;
    let mut covered = None::<u64>; // a leader was established until here
    for &(a, b) in spans {
        if let Some(c) = covered {
            longest = longest.max(a.saturating_sub(c));
        }
        let b = b.unwrap_or(end_ns);
        covered = Some(covered.map_or(b, |c| c.max(b)));
    }
    if let Some(c) = covered {
        longest = longest.max(end_ns.saturating_sub(c));
    }
    longest
}

/// The checks that read the durable evidence: ZooKeeper's read guarantees
/// (against the committed history: the durable one, with what leaders
/// reported below every server's log when the reports are used),
/// durability, quorum ACKs, discovery and the cross-check of the leaders'
/// reports. Returns the durable history.
fn durable_checks(
    h: Option<&History>,
    d: &Durable,
    ev: &Evidence,
    initial_voters: &[Sid],
    checks: &mut Checks,
) -> BTreeMap<u64, LoggedTxn> {
    let files = &d.files;
    let (mut dh, conflicts) = durable::durable_history(files);
    // What the latest established epoch's lineage left out was never
    // committed: it is no part of the history (see `superseded`).
    dh.retain(|z, _| !d.superseded.contains(z));
    let final_voters = dh
        .values()
        .rev()
        .find_map(|t| t.reconfig.clone())
        .unwrap_or_else(|| initial_voters.to_vec());
    let mut committed: BTreeMap<u64, CommittedTxn> = dh
        .values()
        .map(|t| {
            let c = CommittedTxn {
                zxid: t.zxid,
                set: t.set,
                origin: t.origin,
                deletes: t.deletes.clone(),
                acks: vec![],
                voters: vec![],
                describe: t.describe.clone(),
            };
            (t.zxid, c)
        })
        .collect();
    if let Some((map, _)) = &ev.reported {
        for (z, t) in map {
            committed.entry(*z).or_insert_with(|| t.clone());
        }
    }
    if let Some(h) = h {
        // What leaders reported fills the gaps in the logs; without the
        // reports, reads that depend on a gap are not judged.
        let gaps = if ev.reported.is_some() {
            vec![]
        } else {
            durable::gaps(files)
        };
        checks.run(|| zk::read_guarantees(h, &committed, &gaps));
        checks.run(|| durable::durability(h, files, &dh, &conflicts, &final_voters));
    }
    checks.run(|| durable::quorum_acks(&d.journals, &dh, initial_voters));
    let mut voter_sets = vec![initial_voters.to_vec()];
    voter_sets.extend(dh.values().filter_map(|t| t.reconfig.clone()));
    checks.run(|| discovery::discovery(&d.journals, &voter_sets));
    if let Some((map, report_conflicts)) = &ev.reported {
        let mut o = durable::leader_reports(map, files, &dh);
        if !report_conflicts.is_empty() {
            o.anomalies.extend(report_conflicts.iter().cloned());
            o.result = Validity::Invalid;
        }
        checks.list.push(o);
    }
    dh
}

/// Per-protocol records from the journals: (time, zxid) of every COMMIT a
/// leader sent, (time, server, epoch) of every establishment and (time,
/// leader, learner) of every synchronization started.
#[allow(clippy::type_complexity)]
fn evidence_records(
    journals: &[Journal],
) -> (Vec<(u64, u64)>, Vec<(u64, u64, u64)>, Vec<(u64, u64, u64)>) {
    let (mut commits, mut established, mut syncs) = (Vec::new(), Vec::new(), Vec::new());
    for j in journals {
        for (t, r) in &j.records {
            match r {
                Record::Commit(z) => commits.push((*t, *z)),
                Record::Established(e) => established.push((*t, j.sid, *e)),
                Record::SyncSent(to) => syncs.push((*t, j.sid, *to)),
                _ => {}
            }
        }
    }
    (commits, established, syncs)
}

#[cfg(test)]
mod tests {
    use super::longest_leaderless;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_longest_gap_between_leaders_and_after_the_last_counts() {
        // Led 1-3 s, none until 7 s, led to 8 s, none to the end (10 s).
        let spans = [(S, Some(3 * S)), (7 * S, Some(8 * S))];
        assert_eq!(longest_leaderless(&spans, 10 * S), 4 * S);
        assert_eq!(longest_leaderless(&spans, 13 * S), 5 * S);
        // Time before the first leader does not count; an open span lasts.
        assert_eq!(longest_leaderless(&[(5 * S, None)], 10 * S), 0);
        assert_eq!(longest_leaderless(&[], 10 * S), 0);
        // Back to back leaders: no gap.
        let spans = [(S, Some(2 * S)), (2 * S, None)];
        assert_eq!(longest_leaderless(&spans, 10 * S), 0);
    }
}
