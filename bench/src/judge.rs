//! The checks of one run: from the recorded history, the hosts' evidence
//! and the runner's phase marks to a `RunResult` (linearizability, the
//! ZooKeeper checks, durability and discovery from the evidence, the
//! health checks), with the run's figures (latencies, op counts, the
//! history hash).

use crate::cluster::Cluster;
use crate::evidence;
use crate::run::{topology, RunConfig, RunResult};
use faultline_checker::health::{self, ServerFootprint, Window};
use faultline_checker::zk::{self, CommittedTxn, LeaderEntry, ReplicaEnd};
use faultline_checker::CheckOutcome;
use faultline_checker::{check, Budget, ModelKind, Validity};
use faultline_checker::{discovery, durable};
use faultline_history::{Fun, History, Op, OpType};
use faultline_nemesis::Sid;
use faultline_node::{PeerState, ProtocolEvent};
use faultline_workload::WorkloadKind;
use std::collections::BTreeMap;
use std::time::Instant;

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
pub(crate) struct Phases {
    /// Everything was healed.
    pub(crate) heal_ns: u64,
    /// The workload was told to stop.
    pub(crate) stop_ns: u64,
    /// The fault-free windows once every server served.
    pub(crate) windows: Vec<Window>,
    /// The servers' in-memory tables at the end.
    pub(crate) footprints: Vec<ServerFootprint>,
    /// Whether the servers' hold settings let `holding` judge (see
    /// `health::holding`).
    pub(crate) holding_judged: bool,
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

pub(crate) fn judge(
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
        timed(&mut checks, &mut || {
            health::holding(h, phases.holding_judged)
        });
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
