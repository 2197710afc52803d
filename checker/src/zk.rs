//! The checks of a bench run beyond linearizability, over plain data (the
//! runner converts the node's traces and events; this module never sees
//! turmoil or the node crate):
//!
//! * `read-guarantees`: ZooKeeper's promise for local reads: every read
//!   returns the value the committed history holds at the zxid the reply
//!   names, and a process never sees zxids go backwards (monotonic reads,
//!   read-your-writes, even across reconnects).
//! * `committed_history`: what leaders reported committed, with the I2
//!   and I5 violations of those reports themselves (a cross-check; the
//!   durability checks judge from the servers' disks, see
//!   [`crate::durable`]).
//! * `convergence`: after healing and quiescence every live replica has the
//!   same last committed zxid and state digest (I10).
//! * `liveness`: after healing, every kind of operation the clients issue
//!   (write, local read, sync-read) succeeds within a bound (I12).
//! * `leadership`: at most one leader is established per epoch (I1).

use crate::verdict::{int, outcome, zx, CheckOutcome};
use faultline_history::{Fun, History, OpType, Process, Value};
use serde::Serialize;
use std::collections::BTreeMap;

/// A committed txn as the checks need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommittedTxn {
    /// Its zxid.
    pub zxid: u64,
    /// The key it set, and the value (`None` for txns that set nothing,
    /// such as a cas that did not match).
    pub set: Option<(i64, i64)>,
    /// The client session and sequence number it executed, if any.
    pub origin: Option<(u64, u64)>,
    /// The keys it deletes (a closed session's ephemeral keys).
    pub deletes: Vec<i64>,
    /// The servers whose durable ACK the committing leader counted.
    pub acks: Vec<u64>,
    /// The voter sets the commit needed a majority of.
    pub voters: Vec<Vec<u64>>,
    /// A readable description.
    pub describe: String,
}

/// One entry of the node event trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaderEntry {
    /// Simulated time (ns).
    pub time_ns: u64,
    /// The server.
    pub sid: u64,
    /// The epoch it established.
    pub epoch: u64,
}

/// A live replica at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaEnd {
    /// The server.
    pub sid: u64,
    /// Its last committed zxid.
    pub last_committed: u64,
    /// Its state digest.
    pub digest: u64,
}

fn key_of(v: &Option<Value>) -> Option<i64> {
    v.as_ref().and_then(int)
}

/// The committed history by zxid, and every violation found building it:
/// a zxid committed with two different txns (I2), or a commit without
/// durable ACKs from a majority of the voters (I5).
pub fn committed_history(txns: &[CommittedTxn]) -> (BTreeMap<u64, CommittedTxn>, Vec<String>) {
    let mut map: BTreeMap<u64, CommittedTxn> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for t in txns {
        for v in &t.voters {
            let n = t.acks.iter().filter(|a| v.contains(a)).count();
            if n * 2 <= v.len() {
                conflicts.push(format!(
                    "zxid {} (`{}`) was committed with durable ACKs from {:?}, not a majority of voters {v:?} (I5)",
                    zx(t.zxid),
                    t.describe,
                    t.acks
                ));
            }
        }
        match map.get(&t.zxid) {
            Some(prev) if (prev.set, prev.origin) != (t.set, t.origin) => conflicts.push(format!(
                "zxid {} committed as both `{}` and `{}` (I2)",
                zx(t.zxid),
                prev.describe,
                t.describe
            )),
            Some(_) => {}
            None => {
                map.insert(t.zxid, t.clone());
            }
        }
    }
    (map, conflicts)
}

/// Value of `key` at `zxid`, if the committed history can tell: not when
/// a gap (a range of zxids no evidence covers, `(after, through]`) lies
/// between the key's last write at or below `zxid` and `zxid`.
fn known_value_at(
    history: &BTreeMap<u64, CommittedTxn>,
    gaps: &[(u64, u64)],
    key: i64,
    zxid: u64,
) -> Option<Option<i64>> {
    // The last txn at or before `zxid` that set or deleted the key.
    let last_write = history
        .range(..=zxid)
        .rev()
        .find(|(_, t)| t.set.is_some_and(|(k, _)| k == key) || t.deletes.contains(&key))
        .map(|(z, t)| (*z, t.set.filter(|(k, _)| *k == key).map(|(_, v)| v)));
    let since = last_write.map_or(0, |(z, _)| z);
    if gaps.iter().any(|&(a, b)| a < zxid && b > since) {
        return None;
    }
    Some(last_write.and_then(|(_, v)| v))
}

/// `read-guarantees`: see the module docs. Local reads are checked this
/// way (sync-reads are checked for linearizability instead). `gaps` are
/// ranges of zxids `(after, through]` the committed history does not cover;
/// a read whose value depends on one is counted, not judged.
pub fn read_guarantees(
    h: &History,
    committed: &BTreeMap<u64, CommittedTxn>,
    gaps: &[(u64, u64)],
) -> CheckOutcome {
    let mut anomalies = Vec::new();
    let mut involved = Vec::new();
    let mut reads = 0;
    let mut unjudged = 0;
    let mut last_zxid: BTreeMap<&Process, (u64, usize)> = BTreeMap::new();
    let before = session_predecessors(h);
    for (i, op) in h.ops().iter().enumerate() {
        if op.kind != OpType::Ok || !op.process.is_client() {
            continue;
        }
        let Some(z) = op.zxid else { continue };
        if let Some(&(prev, at)) = last_zxid.get(&op.process) {
            if z < prev {
                involved.extend([at, i]);
                anomalies.push(format!(
                    "process {} went back in time: op {i} ({} key {}) at zxid {} after op {at} at zxid {}",
                    op.process,
                    op.f,
                    key_of(&op.key).map_or("-".into(), |k| k.to_string()),
                    zx(z),
                    zx(prev)
                ));
            }
        }
        let e = last_zxid.entry(&op.process).or_insert((z, i));
        if z >= e.0 {
            *e = (z, i);
        }
        if op.f == Fun::LocalRead {
            if let Some(bad) = read_misses_session_write(h, &before, i) {
                involved.extend([bad.0, i]);
                anomalies.push(bad.1);
            }
            reads += 1;
            let Some(k) = key_of(&op.key) else { continue };
            let Some(want) = known_value_at(committed, gaps, k, z) else {
                unjudged += 1;
                continue;
            };
            if int(&op.value) != want {
                involved.push(i);
                anomalies.push(format!(
                    "op {i}: process {} read key {k} = {} at zxid {} from server {}, but the committed history holds {} there",
                    op.process,
                    op.value,
                    zx(z),
                    op.node.map_or("?".into(), |n| n.to_string()),
                    want.map_or("nil".into(), |v| v.to_string())
                ));
            }
        }
    }
    let mut o = outcome(
        "read-guarantees",
        format!(
            "{reads} local reads against the committed history ({unjudged} in a range no evidence covers); \
             zxids per process never decrease; pipelined reads follow their session's writes"
        ),
        anomalies,
    );
    involved.truncate(400);
    o.ops = involved;
    o
}

/// For each invocation, the same session's previous invocation, if any
/// (one pass over the history).
fn session_predecessors(h: &History) -> Vec<Option<usize>> {
    let mut last: BTreeMap<u64, usize> = BTreeMap::new();
    let mut out = vec![None; h.len()];
    for (i, o) in h.ops().iter().enumerate() {
        if let (OpType::Invoke, Some(s)) = (o.kind, o.session) {
            out[i] = last.insert(s, i);
        }
    }
    out
}

/// A read that shares its session with another process's write (a read
/// pipelined behind the write, invoked before the write's answer) must be
/// served at or after the zxid of that write when the write succeeded:
/// ZooKeeper executes a session's requests in order. Only histories whose
/// ops name their sessions are judged. Returns the write's index and the
/// anomaly.
fn read_misses_session_write(
    h: &History,
    before: &[Option<usize>],
    read: usize,
) -> Option<(usize, String)> {
    let op = &h.ops()[read];
    op.session?;
    // The session's last invocation before the read's, by another process
    // (the read's own process going back in time is flagged on its own).
    let w = before[h.partner(read)?]?;
    let main = &h.ops()[w].process;
    if *main == op.process {
        return None;
    }
    let done = &h.ops()[h.partner(w)?];
    if done.kind != OpType::Ok || !matches!(done.f, Fun::Write | Fun::Cas) {
        return None;
    }
    let (wz, rz) = (done.zxid?, op.zxid?);
    (rz < wz).then(|| {
        (
            w,
            format!(
                "op {read}: a read pipelined after process {main}'s {} (op {w}, zxid {}) on the same session was served at zxid {} (session order)",
                done.f,
                zx(wz),
                zx(rz)
            ),
        )
    })
}

/// `convergence`: every live replica ends at the same zxid and digest,
/// which is the end of the committed history.
pub fn convergence(
    replicas: &[ReplicaEnd],
    expected_last: u64,
    h: Option<&History>,
) -> CheckOutcome {
    let mut anomalies = Vec::new();
    let mut named: Vec<u64> = Vec::new(); // the servers the anomalies name
    for r in replicas {
        if r.last_committed != expected_last {
            named.push(r.sid);
            anomalies.push(format!(
                "server {} ended at zxid {}, not at the end of the committed history {}",
                r.sid,
                zx(r.last_committed),
                zx(expected_last)
            ));
        }
    }
    if let Some(first) = replicas.first() {
        for r in &replicas[1..] {
            if r.last_committed == first.last_committed && r.digest != first.digest {
                named.extend([first.sid, r.sid]);
                anomalies.push(format!(
                    "servers {} and {} diverge at zxid {} (different state digests)",
                    first.sid,
                    r.sid,
                    zx(r.last_committed)
                ));
            }
        }
    }
    let mut o = outcome(
        "convergence",
        format!("{} live replicas after quiescence", replicas.len()),
        anomalies,
    );
    // Each named server's last answer in the history (a final read of its
    // state), so that the report points at it.
    if let Some(h) = h {
        for sid in named {
            let last = h
                .ops()
                .iter()
                .rposition(|op| op.kind == OpType::Ok && op.node == Some(sid));
            o.ops.extend(last.filter(|i| !o.ops.contains(i)));
        }
    }
    o
}

/// The operation kinds `liveness` asks of a healed cluster: a name and
/// which ops are of that kind.
const LIVE_KINDS: [(&str, &[Fun]); 3] = [
    ("write", &[Fun::Write, Fun::Cas]),
    ("local read", &[Fun::LocalRead]),
    ("sync-read", &[Fun::SyncRead]),
];

/// `liveness`: after the heal at `heal_ns`, every kind of operation the
/// clients issue (a write or cas, a local read, a sync-read) succeeds
/// within `bound_ns` and before the workload stops at `stop_ns` (I12). A
/// cluster that elects a leader but never answers one kind (sync-reads
/// that wait forever, say) is not live: failed and timed-out reads
/// constrain nothing in the other checks, so this one must count them.
/// A kind no client invoked after the heal is not judged (named in the
/// summary).
pub fn liveness(
    h: &History,
    leaders: &[LeaderEntry],
    heal_ns: u64,
    bound_ns: u64,
    stop_ns: u64,
) -> CheckOutcome {
    let mut anomalies = Vec::new();
    let leader_at = leaders
        .iter()
        .map(|l| l.time_ns)
        .filter(|t| *t >= heal_ns)
        .min();
    let deadline = stop_ns.min(heal_ns + bound_ns);
    let mut judged = Vec::new();
    let mut unjudged = Vec::new();
    let client = |o: &&faultline_history::Op| {
        o.process.is_client() && o.time >= heal_ns && o.time <= stop_ns
    };
    for (name, funs) in LIVE_KINDS {
        // This kind's client ops after the heal, before the workload stopped.
        let of_kind = || {
            h.ops()
                .iter()
                .filter(client)
                .filter(|o| funs.contains(&o.f))
        };
        let invoked = of_kind().filter(|o| o.kind == OpType::Invoke).count();
        if invoked == 0 {
            unjudged.push(name);
            continue;
        }
        judged.push(name);
        let first_ok = of_kind()
            .filter(|o| o.kind == OpType::Ok)
            .map(|o| o.time)
            .min();
        match first_ok {
            Some(t) if t <= deadline => {}
            Some(t) => anomalies.push(format!(
                "the first {name} after healing succeeded only {:.2} s later (bound {:.2} s)",
                (t - heal_ns) as f64 / 1e9,
                (deadline - heal_ns) as f64 / 1e9
            )),
            None => anomalies.push(format!(
                "no {name} succeeded after healing ({invoked} invoked; leader established after the heal: {})",
                leader_at.map_or("none".into(), |t| format!(
                    "{:.2} s later",
                    (t - heal_ns) as f64 / 1e9
                ))
            )),
        }
    }
    let mut summary = format!(
        "a successful {} within {:.1} s of healing",
        judged.join(", a "),
        deadline.saturating_sub(heal_ns) as f64 / 1e9
    );
    if !unjudged.is_empty() {
        summary.push_str(&format!(
            " (not judged, none invoked after healing: {})",
            unjudged.join(", ")
        ));
    }
    outcome("liveness", summary, anomalies)
}

/// `leadership`: at most one server establishes leadership per epoch.
pub fn leadership(leaders: &[LeaderEntry]) -> CheckOutcome {
    let mut by_epoch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for l in leaders {
        let v = by_epoch.entry(l.epoch).or_default();
        if !v.contains(&l.sid) {
            v.push(l.sid);
        }
    }
    let anomalies = by_epoch
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(e, v)| format!("epoch {e} has two established leaders: {v:?} (I1)"))
        .collect();
    outcome(
        "leadership",
        format!("{} epochs established, one leader each", by_epoch.len()),
        anomalies,
    )
}
