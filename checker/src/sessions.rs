//! `sessions`: ZooKeeper's session guarantees (ZAB.md §9), judged from the
//! client history and the servers' durable logs, never from the node's
//! account of itself.
//!
//! * **S1 no early expiry**: a session is expired (closed without its
//!   client asking) only after its client was silent for its whole
//!   timeout, counted over time with an established leader. The client's
//!   last contact is the invocation of its last request answered through
//!   the leader (a write, cas, sync-read, open, close or ephemeral create),
//!   or answered by the established leader itself (a local read or a
//!   ping); an unanswered one may never have arrived, and a follower's
//!   local answer may come from a server cut off from the leader, whose
//!   touches never reach it. That request was made long enough before the
//!   close for its touch to have been reported; `slack` covers the
//!   leader's ticks and a learner that serves for a while after losing its
//!   leader.
//! * **S2 expiry happens**: a session whose client falls silent (no
//!   request at all) after healing for its timeout plus `late_ns` of
//!   leader time is closed by the end of the run.
//! * **S3 ephemerals follow their owner**: an ephemeral key is created only
//!   for an open session, and a session's close deletes exactly the keys it
//!   owns, so that none outlives it (reads of those keys are judged against
//!   the same history by `read-guarantees`).
//! * **S4 nothing after close**: no txn of a session and no answered op of
//!   it takes effect at a zxid after its close.

use crate::durable::LoggedTxn;
use crate::verdict::{outcome, zx, CheckOutcome};
use faultline_history::{Fun, History, OpType, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What a txn does to sessions, as the logs say.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SessionTxn {
    /// The session opened with this timeout (server ticks).
    Open { session: u64, timeout: u64 },
    /// The session closed (by its client or by an expiry: the history
    /// tells which).
    Close { session: u64 },
    /// An ephemeral key created for `owner`.
    Ephemeral { key: i64, owner: u64 },
}

/// Time with an established leader: the leadership spans (start, end ns;
/// an open end lasts to the end of the run).
pub struct LeaderTime<'a> {
    /// The spans, in time order.
    pub spans: &'a [(u64, Option<u64>)],
    /// The server that led each span (empty when not known).
    pub sids: &'a [u64],
}

impl LeaderTime<'_> {
    /// Whether server `sid` was the established leader all through
    /// `[from, to]`.
    pub fn led_by(&self, sid: u64, from: u64, to: u64) -> bool {
        self.spans
            .iter()
            .zip(self.sids)
            .any(|(&(a, b), &s)| s == sid && a <= from && b.is_none_or(|b| b >= to))
    }

    /// Nanoseconds of `[from, to)` some leader was established.
    pub fn within(&self, from: u64, to: u64) -> u64 {
        self.spans
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.max(from), b.unwrap_or(u64::MAX).min(to));
                b.saturating_sub(a)
            })
            .sum()
    }
}

/// The run's facts the check needs besides the history and the logs.
pub struct SessionRun<'a> {
    /// The servers' tick, ns (session timeouts are counted in ticks).
    pub tick_ns: u64,
    /// The txns' session effects, by zxid (from the durable history).
    pub txns: &'a BTreeMap<u64, LoggedTxn>,
    /// Every txn above this zxid is in `txns` (below it, servers' logs may
    /// have been trimmed past snapshots): sessions opened below it are
    /// taken as open from the history, and their keys are judged only from
    /// what the logs show.
    pub complete_from: u64,
    /// When each txn was committed (a leader sent its COMMIT), ns.
    pub commit_ns: &'a BTreeMap<u64, u64>,
    /// Leader time.
    pub leaders: LeaderTime<'a>,
    /// When every fault was healed, and when the run's evidence ends, ns.
    pub heal_ns: u64,
    pub end_ns: u64,
    /// How much earlier than its timeout of leader time a correct leader
    /// may expire a session: its tick, a learner's report of touches one
    /// ping later, and a learner that serves for up to syncLimit after it
    /// lost its leader (its touches never reach the leader).
    pub slack_ns: u64,
    /// How long past its timeout of leader time a silent session may stay
    /// open (the expiry tick, the close's proposal and commit).
    pub late_ns: u64,
    /// How long a touch may take to reach the leader and the leader's
    /// close to be committed: a served request older than this before the
    /// close's commit was known to the leader when it decided.
    pub report_ns: u64,
}

#[derive(Default)]
struct Session {
    timeout_ns: Option<u64>,
    /// Its requests answered through the leader (ok, or a definite
    /// failure the leader decided): (invoked, answered, history index), in
    /// order.
    served: Vec<(u64, u64, usize)>,
    /// Its local reads and pings answered ok: (invoked, answered, server,
    /// history index), in order.
    local: Vec<(u64, u64, u64, usize)>,
    /// The zxid its open-session was answered at.
    opened_at: Option<u64>,
    /// Invocation time of its last request of any kind.
    last_any: Option<u64>,
    /// The history index of that invocation.
    last_any_index: Option<usize>,
    /// Answered ops: (zxid, history index).
    answered: Vec<(u64, usize)>,
    /// Whether its client asked to close it.
    asked_close: bool,
}

/// Each session's contacts and answered ops, from the history.
fn sessions_of(h: &History, tick_ns: u64) -> BTreeMap<u64, Session> {
    let mut out: BTreeMap<u64, Session> = BTreeMap::new();
    for p in h.pairs() {
        let Some(s) = p.invoke.session else { continue };
        let e = out.entry(s).or_default();
        e.asked_close |= p.invoke.f == Fun::CloseSession;
        let t = p.invoke.time;
        if e.last_any.is_none_or(|x| t >= x) {
            e.last_any = Some(t);
            e.last_any_index = Some(p.invoke_index);
        }
        let Some(done) = p.complete else { continue };
        // Only answers the leader took part in prove that the server was
        // in touch with it (a local read may come from a server cut off
        // from the leader, whose touches never reach it).
        let via_leader = !matches!(p.invoke.f, Fun::Read | Fun::LocalRead | Fun::Ping);
        let decided = matches!(done.error.as_deref(), Some("cas-mismatch" | "node-exists"));
        if via_leader && done.node.is_some() && (done.kind == OpType::Ok || decided) {
            e.served.push((t, done.time, p.invoke_index));
        }
        if let (false, OpType::Ok, Some(n)) = (via_leader, done.kind, done.node) {
            e.local.push((t, done.time, n, p.invoke_index));
        }
        if p.invoke.f == Fun::OpenSession && done.kind == OpType::Ok {
            if let Value::Int(ticks) = done.value {
                e.timeout_ns = Some(ticks as u64 * tick_ns);
            }
            e.opened_at = done.zxid;
        }
        let answered_ok = done.kind == OpType::Ok && done.error.is_none();
        if let (true, Some(z)) = (answered_ok, done.zxid) {
            if p.invoke.f != Fun::OpenSession {
                e.answered.push((z, p.complete_index.expect("completed")));
            }
        }
    }
    out
}

/// What the `sessions` check counted (figures for the campaign summary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Sessions in the history.
    pub sessions: usize,
    /// Closes in the logs where every txn is known.
    pub closes: usize,
    /// Of those, closes no client asked for: expiries.
    pub expiries: usize,
    /// Expiries judged against their client's silence (S1).
    pub judged: usize,
    /// Sessions silent after healing long enough to be judged for S2.
    pub overdue: usize,
}

/// `sessions`: see the module docs. Also returns what it counted.
pub fn sessions(h: &History, run: &SessionRun<'_>) -> (CheckOutcome, SessionCounts) {
    let mut anomalies = Vec::new();
    let mut ops = Vec::new();
    let clients = sessions_of(h, run.tick_ns);
    // Sessions open where the logs begin to be complete, as their
    // clients saw them open (their createSession may lie below).
    let mut open: BTreeMap<u64, u64> = clients
        .iter()
        .filter_map(|(s, c)| {
            c.opened_at
                .filter(|z| *z <= run.complete_from)
                .map(|z| (*s, z))
        })
        .collect();
    let mut closed: BTreeMap<u64, u64> = BTreeMap::new(); // session -> its close's zxid
    let mut owners: BTreeMap<i64, u64> = BTreeMap::new();
    // The create-ephemeral op of each (key, value) (values are unique), so
    // that S3 anomalies point at the ops they are about.
    let creates = ephemeral_creates(h);
    let create_op = |t: &LoggedTxn| t.set.and_then(|kv| creates.get(&kv).copied());
    let mut created: BTreeMap<i64, Option<usize>> = BTreeMap::new(); // key -> its create op
    let (mut expiries, mut judged) = (0, 0);
    for (&z, t) in run.txns.range(run.complete_from + 1..) {
        let Some(eff) = &t.session else {
            s4_from_logs(z, t, &closed, &mut anomalies);
            continue;
        };
        match eff {
            SessionTxn::Open { session, .. } => {
                open.insert(*session, z);
            }
            SessionTxn::Ephemeral { key, owner } => {
                if !open.contains_key(owner) {
                    ops.extend(create_op(t));
                    anomalies.push(format!(
                        "S3: ephemeral key {key} created at zxid {} for session {owner}, which is not open there",
                        zx(z)
                    ));
                }
                owners.insert(*key, *owner);
                created.insert(*key, create_op(t));
            }
            SessionTxn::Close { session, .. } => {
                // An expiry is a close its client never asked for, whatever
                // the txn claims (a leader's close has no origin; a close a
                // follower forwarded has one).
                let expired = !clients.get(session).is_some_and(|c| c.asked_close);
                let owned: BTreeSet<i64> = owners
                    .iter()
                    .filter(|(_, o)| *o == session)
                    .map(|(k, _)| *k)
                    .collect();
                let deleted: BTreeSet<i64> = t.deletes.iter().copied().collect();
                // Only a session whose whole life the logs show.
                let whole = open.get(session).is_some_and(|o| *o > run.complete_from);
                if whole && owned != deleted {
                    let differ = owned.symmetric_difference(&deleted);
                    ops.extend(differ.filter_map(|k| created.get(k).copied().flatten()));
                    anomalies.push(format!(
                        "S3: session {session}'s close at zxid {} deletes keys {deleted:?}, but it owns {owned:?}",
                        zx(z)
                    ));
                }
                owners.retain(|_, o| o != session);
                open.remove(session);
                closed.insert(*session, z);
                if expired {
                    expiries += 1;
                    judged +=
                        early_expiry(*session, z, &clients, run, &mut anomalies, &mut ops) as usize;
                }
            }
        }
        s4_from_logs(z, t, &closed, &mut anomalies);
    }
    for (k, o) in &owners {
        if closed.contains_key(o) {
            ops.extend(created.get(k).copied().flatten());
            anomalies.push(format!(
                "S3: ephemeral key {k} outlives its owner session {o}"
            ));
        }
    }
    // S4 from the history: an answered op of a closed session after the
    // close.
    for (s, c) in &clients {
        if let Some(&cz) = closed.get(s) {
            for &(z, i) in c.answered.iter().filter(|(z, _)| *z > cz) {
                ops.push(i);
                anomalies.push(format!(
                    "S4: op {i} of session {s} took effect at zxid {} after the session closed at zxid {}",
                    zx(z),
                    zx(cz)
                ));
            }
        }
    }
    let counts = SessionCounts {
        sessions: clients.len(),
        closes: closed.len(),
        expiries,
        judged,
        overdue: late_expiries(&clients, &closed, run, &mut anomalies, &mut ops),
    };
    let mut o = outcome(
        "sessions",
        format!(
            "{} sessions in the history, {} closes in the logs ({} expiries, {} judged against their client's silence), {} silent sessions judged for expiry",
            counts.sessions, counts.closes, counts.expiries, counts.judged, counts.overdue
        ),
        anomalies,
    );
    ops.truncate(400);
    o.ops = ops;
    (o, counts)
}

/// The invocation of each `create-ephemeral` op, by (key, value).
fn ephemeral_creates(h: &History) -> BTreeMap<(i64, i64), usize> {
    h.pairs()
        .filter(|p| p.invoke.f == Fun::CreateEphemeral)
        .filter_map(|p| {
            let key = crate::verdict::int(p.invoke.key.as_ref()?)?;
            let value = crate::verdict::int(&p.invoke.value)?;
            Some(((key, value), p.invoke_index))
        })
        .collect()
}

/// S4 from the logs: a txn executing a request of a session closed at an
/// earlier zxid.
fn s4_from_logs(z: u64, t: &LoggedTxn, closed: &BTreeMap<u64, u64>, anomalies: &mut Vec<String>) {
    if let Some((s, _)) = t.origin {
        if let Some(&cz) = closed.get(&s).filter(|cz| **cz < z) {
            anomalies.push(format!(
                "S4: zxid {} executes a request of session {s}, closed at zxid {}",
                zx(z),
                zx(cz)
            ));
        }
    }
}

/// S1 for the expiry of `session` at zxid `z`; false when it cannot be
/// judged (no commit time, no timeout or no answered request known).
fn early_expiry(
    session: u64,
    z: u64,
    clients: &BTreeMap<u64, Session>,
    run: &SessionRun<'_>,
    anomalies: &mut Vec<String>,
    ops: &mut Vec<usize>,
) -> bool {
    let (Some(&at), Some(c)) = (run.commit_ns.get(&z), clients.get(&session)) else {
        return false;
    };
    // The last request answered early enough before the close was
    // committed that its touch surely reached the leader before it
    // decided: the server that answered was in touch with the leader then,
    // and reports the touch (made when the request arrived, after its
    // invocation) with its next ping reply.
    let Some(timeout) = c.timeout_ns else {
        return false;
    };
    let reported_by = at.saturating_sub(run.report_ns);
    let through_leader = c.served.iter().rev().find(|(_, a, _)| *a < reported_by);
    // A local answer of the established leader: it touched the session
    // itself.
    let by_leader = c
        .local
        .iter()
        .rev()
        .filter(|(_, a, _, _)| *a < reported_by)
        .find(|&&(i, a, n, _)| run.leaders.led_by(n, i, a))
        .map(|&(i, a, _, index)| (i, a, index));
    let Some((last, _, index)) = through_leader.copied().into_iter().chain(by_leader).max() else {
        return false;
    };
    let silent = run.leaders.within(last, at);
    if silent + run.slack_ns < timeout {
        ops.push(index);
        anomalies.push(format!(
            "S1: session {session} expired at zxid {} ({:.3} s) after only {:.3} s of leader time since its last answered request ({:.3} s); its timeout is {:.3} s",
            zx(z),
            at as f64 / 1e9,
            silent as f64 / 1e9,
            last as f64 / 1e9,
            timeout as f64 / 1e9
        ));
    }
    true
}

/// S2: sessions silent after healing for their timeout plus `late_ns` of
/// leader time must be closed. Returns how many were judged.
fn late_expiries(
    clients: &BTreeMap<u64, Session>,
    closed: &BTreeMap<u64, u64>,
    run: &SessionRun<'_>,
    anomalies: &mut Vec<String>,
    ops: &mut Vec<usize>,
) -> usize {
    let mut judged = 0;
    for (s, c) in clients {
        let (Some(timeout), Some(last)) = (c.timeout_ns, c.last_any) else {
            continue;
        };
        // Only silences that begin after healing (an earlier close may lie
        // below where the logs are complete).
        if last < run.heal_ns {
            continue;
        }
        let silent = run.leaders.within(last, run.end_ns);
        if silent <= timeout + run.late_ns {
            continue;
        }
        judged += 1;
        if !closed.contains_key(s) {
            ops.extend(c.last_any_index);
            anomalies.push(format!(
                "S2: session {s} was never closed, though its client was silent for {:.3} s of leader time after healing (timeout {:.3} s)",
                silent as f64 / 1e9,
                timeout as f64 / 1e9
            ));
        }
    }
    judged
}
