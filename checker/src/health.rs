//! Checks that a correct cluster is not only safe but well, after
//! TigerBeetle's liveness mode and stateright's `sometimes` expectations:
//! a node that keeps every safety property while limping (a leader that
//! steps down whenever it can, followers that re-sync on every commit, a
//! follower that stops applying commits but keeps serving) is a broken
//! node, and these checks say so with numbers.
//!
//! * `timeliness`: ZooKeeper's promise that a client's view is up to date
//!   within a bound: no local read invoked at `t` returns a state missing
//!   a txn whose COMMIT a leader sent before `t - bound` (judged from the
//!   client history and the hosts' records of COMMITs sent).
//! * `stability`: in the fault-free windows (the warm-up once every server
//!   serves, and the time after healing once every server serves again)
//!   no leader is established and no synchronization starts, and the
//!   clients' throughput after healing is at least a floor relative to
//!   the warm-up's.
//!
//! * `holding`: a server that cannot serve a request holds it until it can
//!   (ZAB.md §9), for up to the hold timeout (5 s, longer than any client
//!   waits): the only `not-ready` answers a client may see are those of a
//!   server behind what the session already saw (the reply's zxid is then
//!   below the session's), or of a full hold queue (not judged when the
//!   clients could fill it).
//! * `hygiene`: at the end of the run, once every client is gone and the
//!   cluster is quiet, no server still holds client requests, no leader
//!   has outstanding proposals or syncs, and every in-memory log is within
//!   the snapshot interval plus the DIFF window.
//!
//! Plain data in, no turmoil, no node crate.

use crate::verdict::{outcome, zx, CheckOutcome};
use faultline_history::{Fun, History, OpType, Process};
use std::collections::BTreeMap;

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `timeliness`: see the module docs. `commits` are (time, zxid) of every
/// COMMIT a leader sent, in any order.
pub fn timeliness(h: &History, commits: &[(u64, u64)], bound_ns: u64) -> CheckOutcome {
    let mut commits = commits.to_vec();
    commits.sort();
    // Running maximum of the committed zxid over commit time.
    let mut head: Vec<(u64, u64)> = Vec::with_capacity(commits.len());
    for (t, z) in commits {
        let z = head.last().map_or(z, |&(_, m)| m.max(z));
        head.push((t, z));
    }
    let head_at = |t: u64| -> Option<u64> {
        let i = head.partition_point(|(ct, _)| *ct <= t);
        (i > 0).then(|| head[i - 1].1)
    };
    // When the first txn after `z` was committed, if any was.
    let missed_since = |z: u64| -> Option<u64> {
        let i = head.partition_point(|(_, m)| *m <= z);
        head.get(i).map(|(t, _)| *t)
    };
    let mut anomalies = Vec::new();
    let mut involved = Vec::new();
    let mut reads = 0;
    let mut worst = 0u64;
    for (i, op) in h.ops().iter().enumerate() {
        if op.kind != OpType::Ok || op.f != Fun::LocalRead || !op.process.is_client() {
            continue;
        }
        let (Some(z), Some(inv)) = (op.zxid, h.partner(i)) else {
            continue;
        };
        reads += 1;
        let invoked = h.ops()[inv].time;
        let Some(since) = missed_since(z).filter(|t| *t < invoked) else {
            continue;
        };
        let lag = invoked - since;
        worst = worst.max(lag);
        if lag > bound_ns {
            involved.push(i);
            anomalies.push(format!(
                "op {i}: process {} read at zxid {} from server {}, missing txns committed {:.3} s before the read was invoked (head then {}; bound {:.3} s)",
                op.process,
                zx(z),
                op.node.map_or("?".into(), |n| n.to_string()),
                secs(lag),
                head_at(invoked).map_or("-".into(), zx),
                secs(bound_ns)
            ));
        }
    }
    let mut o = outcome(
        "timeliness",
        format!(
            "{reads} local reads at most {:.3} s behind the committed head (worst {:.3} s)",
            secs(bound_ns),
            secs(worst)
        ),
        anomalies,
    );
    involved.truncate(400);
    o.ops = involved;
    o
}

/// A fault-free window of a run, as the runner saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// What it is ("warm-up", "after healing").
    pub name: &'static str,
    /// The phase it lies in starts here (ns).
    pub phase_ns: u64,
    /// From when (ns): every server serves, under one established leader.
    /// `None`: that never happened in the phase, itself a failure (a
    /// correct cluster gets there within a second).
    pub start_ns: Option<u64>,
    /// Until when (ns).
    pub end_ns: u64,
}

/// `stability`: see the module docs. `established` are (time, server,
/// epoch) of every establishment, `syncs` (time, leader, learner) of every
/// synchronization started; `floor` is the least throughput after healing,
/// as a fraction of the warm-up's (both in successful client ops per
/// second over their windows).
pub fn stability(
    h: &History,
    windows: &[Window],
    established: &[(u64, u64, u64)],
    syncs: &[(u64, u64, u64)],
    floor: f64,
) -> CheckOutcome {
    let mut anomalies = Vec::new();
    let mut rates = Vec::new();
    for w in windows {
        let Some(start_ns) = w.start_ns else {
            anomalies.push(format!(
                "{}: never did every server serve under one established leader ({:.3}-{:.3} s)",
                w.name,
                secs(w.phase_ns),
                secs(w.end_ns)
            ));
            continue;
        };
        let inside = |t: u64| t > start_ns && t < w.end_ns;
        for (t, sid, epoch) in established.iter().filter(|e| inside(e.0)) {
            anomalies.push(format!(
                "server {sid} established epoch {epoch} at {:.3} s, in the fault-free window {} ({:.3}-{:.3} s)",
                secs(*t),
                w.name,
                secs(start_ns),
                secs(w.end_ns)
            ));
        }
        for (t, leader, to) in syncs.iter().filter(|e| inside(e.0)) {
            anomalies.push(format!(
                "leader {leader} started a synchronization of server {to} at {:.3} s, in the fault-free window {} ({:.3}-{:.3} s)",
                secs(*t),
                w.name,
                secs(start_ns),
                secs(w.end_ns)
            ));
        }
        let ok = h
            .ops()
            .iter()
            .filter(|o| o.kind == OpType::Ok && o.process.is_client() && inside(o.time))
            .count();
        let len = w.end_ns.saturating_sub(start_ns);
        if len > 0 {
            rates.push((w.name, ok as f64 / secs(len)));
        }
    }
    let mut summary = format!(
        "no establishment and no synchronization in {} fault-free windows",
        windows.len()
    );
    if let [(a, first), (b, then)] = rates[..] {
        let ratio = if first > 0.0 { then / first } else { 1.0 };
        summary.push_str(&format!(
            "; throughput {b} {then:.0} ops/s, {ratio:.2} of {a} {first:.0} ops/s (floor {floor:.2})"
        ));
        if ratio < floor {
            anomalies.push(format!(
                "throughput {b} is {then:.0} ops/s, {ratio:.2} of the {a}'s {first:.0} ops/s (floor {floor:.2})"
            ));
        }
    }
    outcome("stability", summary, anomalies)
}

/// The session a client op ran on: the one it names, or else (a client
/// that does not name sessions, as Jepsen's) its process, a session each.
fn session_of(op: &faultline_history::Op) -> Option<(bool, u64)> {
    match (&op.process, op.session) {
        (Process::Client(_), Some(s)) => Some((true, s)),
        (Process::Client(c), None) => Some((false, *c)),
        _ => None,
    }
}

/// `holding`: see the module docs. `judged`: false when the clients could
/// have more requests outstanding than the hold queue takes, or wait
/// longer than the hold timeout (legal `not-ready` answers of another
/// kind).
pub fn holding(h: &History, judged: bool) -> CheckOutcome {
    let mut anomalies = Vec::new();
    let mut involved = Vec::new();
    let mut not_ready = 0;
    // Highest zxid each session had been answered with so far (every
    // reply the client read is recorded, in the order it arrived).
    let mut seen: BTreeMap<(bool, u64), u64> = BTreeMap::new();
    for (i, op) in h.ops().iter().enumerate() {
        let (Some(session), Some(z)) = (session_of(op), op.zxid) else {
            continue;
        };
        if op.kind == OpType::Invoke {
            continue;
        }
        let before = seen.get(&session).copied().unwrap_or(0);
        if op.error.as_deref() == Some("not-ready") {
            not_ready += 1;
            if judged && z >= before {
                involved.push(i);
                anomalies.push(format!(
                    "op {i}: server {} answered process {} not-ready at zxid {}, not behind its session (which had seen {}): the request was not held",
                    op.node.map_or("?".into(), |n| n.to_string()),
                    op.process,
                    zx(z),
                    zx(before)
                ));
            }
        }
        seen.insert(session, before.max(z));
    }
    let mut o = outcome(
        "holding",
        if !judged {
            format!("not judged: the clients could fill the hold queue or outwait its timeout ({not_ready} not-ready answers)")
        } else {
            format!("{not_ready} not-ready answers, each from a server behind its session")
        },
        anomalies,
    );
    involved.truncate(400);
    o.ops = involved;
    o
}

/// A server's in-memory tables at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFootprint {
    /// The server.
    pub sid: u64,
    /// Client requests held, pending or blocked.
    pub client_requests: usize,
    /// Logged txns in memory after its last snapshot.
    pub log_entries: usize,
    /// The most `log_entries` may be: snapshot interval plus DIFF window.
    pub log_bound: usize,
    /// A leader's outstanding proposals and syncs.
    pub leader_backlog: usize,
    /// Sessions open in its replicated state (the engine waits for the
    /// abandoned ones to expire before it probes).
    pub open_sessions: usize,
}

/// `hygiene`: see the module docs.
pub fn hygiene(servers: &[ServerFootprint]) -> CheckOutcome {
    let mut anomalies = Vec::new();
    for s in servers {
        if s.client_requests > 0 {
            anomalies.push(format!(
                "server {} still holds {} client requests after every client left",
                s.sid, s.client_requests
            ));
        }
        if s.leader_backlog > 0 {
            anomalies.push(format!(
                "leader {} still has {} outstanding proposals or syncs in a quiet cluster",
                s.sid, s.leader_backlog
            ));
        }
        if s.log_entries > s.log_bound {
            anomalies.push(format!(
                "server {} keeps {} log entries in memory (bound {}: snapshot interval plus DIFF window)",
                s.sid, s.log_entries, s.log_bound
            ));
        }
    }
    let most = servers.iter().map(|s| s.log_entries).max().unwrap_or(0);
    outcome(
        "hygiene",
        format!(
            "{} servers at the end: no client request or leader backlog left, in-memory logs within bound (largest {most} entries)",
            servers.len()
        ),
        anomalies,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_history::{Op, Process, Value};

    fn op(kind: OpType, p: u64, f: Fun, t: u64, zxid: Option<u64>) -> Op {
        let mut o = Op::new(kind, Process::Client(p), f, Value::Nil);
        o.key = Some(Value::Int(0));
        o.time = t;
        o.zxid = zxid;
        o
    }

    fn read(invoked: u64, zxid: u64) -> History {
        History::new(vec![
            op(OpType::Invoke, 0, Fun::LocalRead, invoked, None),
            op(OpType::Ok, 0, Fun::LocalRead, invoked + 1, Some(zxid)),
        ])
        .unwrap()
    }

    #[test]
    fn a_read_too_far_behind_the_committed_head_is_flagged() {
        let commits = [(100, 1), (200, 2), (300, 3)];
        // Invoked at 1000, missing txn 3 committed at 300: 700 behind.
        assert_eq!(
            timeliness(&read(1000, 2), &commits, 800).result,
            crate::Validity::Valid
        );
        let o = timeliness(&read(1000, 2), &commits, 600);
        assert_eq!(o.result, crate::Validity::Invalid);
        assert!(
            o.anomalies[0].contains("missing txns committed"),
            "{:?}",
            o.anomalies
        );
        assert_eq!(o.ops, vec![1]);
        // Up to date: never behind, whatever the bound.
        assert_eq!(
            timeliness(&read(1000, 3), &commits, 0).result,
            crate::Validity::Valid
        );
        // Missing only what was committed after the invocation: fine.
        assert_eq!(
            timeliness(&read(250, 2), &commits, 0).result,
            crate::Validity::Valid
        );
    }

    fn windows() -> Vec<Window> {
        vec![
            Window {
                name: "warm-up",
                phase_ns: 0,
                start_ns: Some(0),
                end_ns: 1_000_000_000,
            },
            Window {
                name: "after healing",
                phase_ns: 4_000_000_000,
                start_ns: Some(5_000_000_000),
                end_ns: 6_000_000_000,
            },
        ]
    }

    fn busy(rate_a: u64, rate_b: u64) -> History {
        let mut ops = Vec::new();
        for (from, n) in [(0u64, rate_a), (5_000_000_000, rate_b)] {
            for i in 0..n {
                let t = from + 1 + i * (1_000_000_000 / n.max(1)) / 2;
                ops.push(op(OpType::Invoke, i, Fun::Write, t, None));
                ops.push(op(OpType::Ok, i, Fun::Write, t + 1, Some(1)));
            }
        }
        History::new(ops).unwrap()
    }

    #[test]
    fn stability_flags_elections_syncs_and_low_throughput() {
        let h = busy(100, 90);
        let o = stability(&h, &windows(), &[(0, 1, 1)], &[(0, 1, 2)], 0.5);
        assert_eq!(o.result, crate::Validity::Valid, "{:?}", o.anomalies);
        assert!(o.summary.contains("0.90 of warm-up"), "{}", o.summary);
        let o = stability(
            &h,
            &windows(),
            &[(5_500_000_000, 2, 3)],
            &[(500, 1, 2)],
            0.5,
        );
        assert_eq!(o.anomalies.len(), 2, "{:?}", o.anomalies);
        assert!(o.anomalies[0].contains("synchronization of server 2"));
        assert!(o.anomalies[1].contains("established epoch 3"));
        let o = stability(&busy(100, 20), &windows(), &[], &[], 0.5);
        assert!(
            o.anomalies[0].contains("0.20 of the warm-up"),
            "{:?}",
            o.anomalies
        );
        // A cluster that never had every server serving after healing.
        let mut w = windows();
        w[1].start_ns = None;
        let o = stability(&h, &w, &[], &[], 0.5);
        assert_eq!(o.anomalies.len(), 1, "{:?}", o.anomalies);
        assert!(o.anomalies[0].starts_with("after healing: never did every server serve"));
    }

    #[test]
    fn only_a_server_behind_the_session_may_answer_not_ready() {
        let reply = |kind, p: u64, t: u64, z: u64, err: Option<&str>| {
            let mut o = op(kind, p, Fun::LocalRead, t, Some(z));
            o.error = err.map(str::to_string);
            o
        };
        let h = |z: u64| {
            History::new(vec![
                op(OpType::Invoke, 0, Fun::LocalRead, 1, None),
                reply(OpType::Ok, 0, 2, 5, None),
                op(OpType::Invoke, 0, Fun::LocalRead, 3, None),
                reply(OpType::Fail, 0, 4, z, Some("not-ready")),
            ])
            .unwrap()
        };
        // Behind the session's zxid 5: legal.
        assert_eq!(holding(&h(4), true).result, crate::Validity::Valid);
        // Not behind: the request should have been held.
        let o = holding(&h(5), true);
        assert_eq!(o.result, crate::Validity::Invalid);
        assert!(o.anomalies[0].contains("was not held"), "{:?}", o.anomalies);
        assert_eq!(o.ops, vec![3]);
        // A queue the clients could fill: not judged.
        assert_eq!(holding(&h(5), false).result, crate::Validity::Valid);
        // A read pipelined under another process id shares its writer's
        // session, which the ops name.
        let on = |mut o: Op| {
            o.session = Some(1);
            o
        };
        let hp = |session_named: bool| {
            let ops = vec![
                op(OpType::Invoke, 0, Fun::LocalRead, 1, None),
                reply(OpType::Ok, 0, 2, 5, None),
                op(OpType::Invoke, 77, Fun::LocalRead, 3, None),
                reply(OpType::Fail, 77, 4, 4, Some("not-ready")),
            ];
            let ops = if session_named {
                ops.into_iter().map(on).collect()
            } else {
                ops
            };
            History::new(ops).unwrap()
        };
        assert_eq!(holding(&hp(true), true).result, crate::Validity::Valid);
        // Without sessions named, process 77 is a session of its own that
        // had seen nothing: its not-ready was not behind.
        assert_eq!(holding(&hp(false), true).result, crate::Validity::Invalid);
    }

    #[test]
    fn hygiene_flags_leftovers_and_unbounded_logs() {
        let clean = ServerFootprint {
            sid: 1,
            client_requests: 0,
            log_entries: 30,
            log_bound: 30,
            leader_backlog: 0,
            open_sessions: 0,
        };
        assert_eq!(
            hygiene(std::slice::from_ref(&clean)).result,
            crate::Validity::Valid
        );
        let dirty = ServerFootprint {
            client_requests: 2,
            log_entries: 31,
            leader_backlog: 1,
            ..clean
        };
        let o = hygiene(&[dirty]);
        assert_eq!(o.anomalies.len(), 3, "{:?}", o.anomalies);
    }
}
