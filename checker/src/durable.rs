//! Durability judged from evidence the system under test cannot fake: the
//! servers' files as they lie on the simulated disk after a final power
//! loss, and the disk layer's and the network shell's own records of when
//! each log entry became durable and when each ACK and COMMIT left a host.
//! The protocol core's account of itself (what leaders report committed)
//! is only a cross-check ([`leader_reports`]).
//!
//! * [`durable_history`]: the union of every server's log. No zxid may
//!   hold two different txns on two servers (I2), and each log must be a
//!   contiguous chain (I6: counters go up by one within an epoch, a new
//!   epoch starts at counter 1).
//! * [`durability`]: every acknowledged write is in that history at its
//!   zxid (even when the key is overwritten later), is held at the end by a
//!   majority of the voters, and every server's recovered state equals the
//!   history replayed (I4, I10).
//! * [`quorum_acks`]: an ACK leaves a host only once the disk made the
//!   entry durable (D1; NEWLEADER's ACK only once every synced txn is, D3),
//!   and a leader sends COMMIT for `z` only when `z` is durable on a
//!   majority of the voters (I5).

use crate::zk::{CheckOutcome, CommittedTxn};
use faultline_history::{Fun, History, OpType, Value};
use std::collections::BTreeMap;

/// A txn as it lies in a server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedTxn {
    /// Its zxid.
    pub zxid: u64,
    /// The key it set and the value (`None` for txns that set nothing).
    pub set: Option<(i64, i64)>,
    /// The client session and sequence number it executed, if any.
    pub origin: Option<(u64, u64)>,
    /// For a membership change: the new voters.
    pub reconfig: Option<Vec<u64>>,
    /// A readable description.
    pub describe: String,
}

impl LoggedTxn {
    fn same(&self, o: &LoggedTxn) -> bool {
        (self.set, self.origin, &self.reconfig) == (o.set, o.origin, &o.reconfig)
    }
}

/// One server's files after the final power loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFiles {
    /// The server.
    pub sid: u64,
    /// Its log starts after this zxid (0: from the beginning; else the zxid
    /// of a snapshot it installed from a leader).
    pub base: u64,
    /// Every record of its log, in file order.
    pub log: Vec<LoggedTxn>,
    /// The state its files recover to: (last zxid, digest).
    pub recovered: (u64, u64),
    /// The digest of the durable history replayed up to `recovered.0`,
    /// when that history is complete up to there.
    pub replayed: Option<u64>,
}

/// What a host did, as its disk layer and network shell recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The disk layer changed what the log holds.
    Disk(DiskEvent),
    /// The host sent an ACK for this zxid.
    Ack(u64),
    /// The host received an ACK for this zxid from this server.
    AckReceived(u64, u64),
    /// The host sent its first COMMIT (or INFORM) for this zxid outside a
    /// learner's synchronization.
    Commit(u64),
    /// The host, as leader, established this epoch (its first UPTODATE),
    /// committing its initial history: every txn of an older epoch in its
    /// log.
    Established(u64),
}

/// What the disk layer recorded (mirrors the node's journal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskEvent {
    /// The files were opened at a (re)start: the log holds these records,
    /// durably; state up to `base` is in an installed snapshot.
    Opened {
        /// The zxids of the log's records.
        log: Vec<u64>,
        /// The log's base.
        base: u64,
    },
    /// Records appended, not yet durable.
    Appended(Vec<u64>),
    /// Every record through this zxid is durable.
    Synced(u64),
    /// Records after this zxid were cut off; the rest is durable.
    Truncated(u64),
    /// A snapshot at this zxid replaced the state; the log is empty.
    Installed(u64),
}

/// What one server's host wrote and sent, with simulated times (ns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// The server.
    pub sid: u64,
    /// Its records in the order they happened, with simulated times (ns).
    pub records: Vec<(u64, Record)>,
}

fn zx(z: u64) -> String {
    format!("{}:{}", z >> 32, z & 0xffff_ffff)
}

/// The union of the servers' logs by zxid, and every violation found
/// building it: a zxid held with two different txns (I2), or a log that is
/// not a contiguous chain (I6).
pub fn durable_history(files: &[ServerFiles]) -> (BTreeMap<u64, LoggedTxn>, Vec<String>) {
    let mut h: BTreeMap<u64, (LoggedTxn, u64)> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for f in files {
        let mut prev = f.base;
        for t in &f.log {
            let next_ok = (t.zxid >> 32 == prev >> 32 && t.zxid == prev + 1)
                || (t.zxid >> 32 > prev >> 32 && t.zxid & 0xffff_ffff == 1);
            if !next_ok {
                anomalies.push(format!(
                    "server {}'s log jumps from zxid {} to {} (I6: a log is a contiguous chain)",
                    f.sid,
                    zx(prev),
                    zx(t.zxid)
                ));
            }
            prev = t.zxid;
            match h.get(&t.zxid) {
                Some((o, by)) if !o.same(t) => anomalies.push(format!(
                    "zxid {} is `{}` on server {by} but `{}` on server {} (I2)",
                    zx(t.zxid),
                    o.describe,
                    t.describe,
                    f.sid
                )),
                Some(_) => {}
                None => {
                    h.insert(t.zxid, (t.clone(), f.sid));
                }
            }
        }
    }
    (h.into_iter().map(|(z, (t, _))| (z, t)).collect(), anomalies)
}

/// How far the servers' logs, chained together, hold the whole history
/// from its start: a log with base 0 holds everything up to its last
/// record (it is a contiguous chain, I6), and a log whose base lies within
/// what is already held extends it to its own last record. The union of
/// the logs is complete up to the returned zxid, and may have gaps beyond
/// it (where every server installed a snapshot).
pub fn complete_through(files: &[ServerFiles]) -> u64 {
    let mut held = 0u64;
    let mut grown = true;
    while grown {
        grown = false;
        for f in files {
            let last = f.log.last().map_or(f.base, |t| t.zxid);
            if f.base <= held && last > held {
                held = last;
                grown = true;
            }
        }
    }
    held
}

/// The ranges of zxids `(after, through]` below the end of the logs that
/// no server's log holds (each log holds `(base, last record]`): where
/// every server installed a snapshot past them.
pub fn gaps(files: &[ServerFiles]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = files
        .iter()
        .filter_map(|f| f.log.last().map(|t| (f.base, t.zxid)))
        .collect();
    spans.sort();
    let mut out = Vec::new();
    let mut held = 0u64;
    for (a, b) in spans {
        if a > held {
            out.push((held, a));
        }
        held = held.max(b);
    }
    out
}

/// The voters whose majority a commit of `z` needs, from the durable
/// history: the configuration in force before `z` (the last reconfig below
/// it, else `initial`), and for a reconfig also the new one.
pub fn voters_for(h: &BTreeMap<u64, LoggedTxn>, initial: &[u64], z: u64) -> Vec<Vec<u64>> {
    let before = h
        .range(..z)
        .rev()
        .find_map(|(_, t)| t.reconfig.clone())
        .unwrap_or_else(|| initial.to_vec());
    let mut sets = vec![before];
    if let Some(new) = h.get(&z).and_then(|t| t.reconfig.clone()) {
        if new != sets[0] {
            sets.push(new);
        }
    }
    sets
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// An acknowledged write or cas: history index of the completion, zxid,
/// key and value written, description.
type Acked = (usize, u64, Option<(i64, i64)>, String);

fn acked_writes(h: &History) -> Vec<Acked> {
    let mut out = Vec::new();
    for p in h.pairs() {
        if p.outcome() != OpType::Ok || !matches!(p.invoke.f, Fun::Write | Fun::Cas) {
            continue;
        }
        let c = p.complete.expect("ok ops completed");
        let Some(z) = c.zxid else { continue };
        let key = p.invoke.key.as_ref().and_then(int);
        let value = match p.invoke.f {
            Fun::Cas => p.invoke.value.as_pair().and_then(|(_, to)| int(to)),
            _ => int(&p.invoke.value),
        };
        let what = format!(
            "{} by process {} (key {}, value {}, zxid {})",
            p.invoke.f,
            p.invoke.process,
            key.map_or("-".into(), |k| k.to_string()),
            value.map_or("-".into(), |v| v.to_string()),
            zx(z)
        );
        out.push((p.complete_index.unwrap_or(0), z, key.zip(value), what));
    }
    out
}

/// The servers whose log spans `z` (its first record at or below it, its
/// last at or above): a log is a contiguous chain, so such a server holds
/// `z` if `z` is in its history.
fn covering(files: &[ServerFiles], z: u64) -> Vec<u64> {
    files
        .iter()
        .filter(|f| {
            let (Some(a), Some(b)) = (f.log.first(), f.log.last()) else {
                return false;
            };
            a.zxid <= z && z <= b.zxid
        })
        .map(|f| f.sid)
        .collect()
}

/// `durability`, from the servers' files: see the module docs. `voters`
/// are the voters at the end of the run; `conflicts` the violations
/// [`durable_history`] found.
pub fn durability(
    h: &History,
    files: &[ServerFiles],
    dh: &BTreeMap<u64, LoggedTxn>,
    conflicts: &[String],
    voters: &[u64],
) -> CheckOutcome {
    let mut anomalies: Vec<String> = conflicts.to_vec();
    let mut ops = Vec::new();
    // The end of the durable history: its last txn, or a snapshot past it.
    let last = files
        .iter()
        .map(|f| f.base)
        .chain(dh.keys().next_back().copied())
        .max()
        .unwrap_or(0);
    let (mut acked, mut beyond_logs) = (0, 0);
    for (i, z, set, what) in acked_writes(h) {
        acked += 1;
        match dh.get(&z) {
            Some(t) if t.set != set => {
                ops.push(i);
                anomalies.push(format!(
                    "acknowledged {what}, but the servers' logs hold `{}` there",
                    t.describe
                ));
                continue;
            }
            Some(_) => {}
            None if z > last => {
                ops.push(i);
                anomalies.push(format!(
                    "acknowledged {what} is lost: beyond the end of every server's durable log ({})",
                    zx(last)
                ));
                continue;
            }
            None => {
                let covering = covering(files, z);
                if covering.is_empty() {
                    beyond_logs += 1;
                } else {
                    ops.push(i);
                    anomalies.push(format!(
                        "acknowledged {what} is lost: the durable logs of servers {covering:?} pass over that zxid without it"
                    ));
                }
                continue;
            }
        }
        let holders: Vec<u64> = files
            .iter()
            .filter(|f| voters.contains(&f.sid))
            .filter(|f| f.base >= z || f.log.binary_search_by_key(&z, |t| t.zxid).is_ok())
            .map(|f| f.sid)
            .collect();
        if holders.len() * 2 <= voters.len() {
            ops.push(i);
            anomalies.push(format!(
                "acknowledged {what} is durable on voters {holders:?} only, not a majority of {voters:?} (I4)"
            ));
        }
    }
    for f in files {
        if let Some(r) = f.replayed {
            if r != f.recovered.1 {
                anomalies.push(format!(
                    "server {}'s files recover a state at zxid {} that differs from the durable history replayed (a txn lost or applied twice)",
                    f.sid,
                    zx(f.recovered.0)
                ));
            }
        }
    }
    // Servers whose end lies beyond the complete part of the history are
    // compared with each other: equal last zxids, equal states.
    let mut by_end: BTreeMap<u64, &ServerFiles> = BTreeMap::new();
    for f in files {
        match by_end.get(&f.recovered.0) {
            Some(o) if o.recovered.1 != f.recovered.1 => anomalies.push(format!(
                "servers {} and {} recover different states at zxid {} from their files",
                o.sid,
                f.sid,
                zx(f.recovered.0)
            )),
            Some(_) => {}
            None => {
                by_end.insert(f.recovered.0, f);
            }
        }
    }
    let unverified = files.iter().filter(|f| f.replayed.is_none()).count();
    let mut o = crate::zk::outcome(
        "durability",
        format!(
            "{acked} acknowledged writes against the {} txns in {} servers' durable logs ({beyond_logs} older than every log); \
             recovered states against their replay ({unverified} beyond the complete history, compared with each other)",
            dh.len(),
            files.len()
        ),
        anomalies,
    );
    ops.truncate(400);
    o.ops = ops;
    o
}

/// One server's log as the disk layer's journal tells it, over time.
#[derive(Default)]
struct DiskState {
    base: u64,
    chain: Vec<u64>,
    durable: u64,
}

impl DiskState {
    fn apply(&mut self, e: &DiskEvent) {
        match e {
            DiskEvent::Opened { log, base } => {
                self.base = *base;
                self.chain = log.clone();
                self.durable = log.last().copied().unwrap_or(*base);
            }
            DiskEvent::Appended(z) => self.chain.extend(z),
            DiskEvent::Synced(z) => self.durable = self.durable.max(*z),
            DiskEvent::Truncated(to) => {
                self.chain.retain(|z| z <= to);
                self.durable = self.chain.last().copied().unwrap_or(self.base);
            }
            DiskEvent::Installed(base) => {
                self.base = *base;
                self.chain.clear();
                self.durable = *base;
            }
        }
    }

    /// Whether `z` is durably on this disk (in the log or below the
    /// installed snapshot).
    fn holds(&self, z: u64) -> bool {
        z <= self.base || (z <= self.durable && self.chain.binary_search(&z).is_ok())
    }

    fn pending(&self) -> bool {
        self.chain.last().is_some_and(|l| *l > self.durable)
    }
}

/// `quorum-acks`: see the module docs. `initial` are the voters of the
/// initial configuration.
pub fn quorum_acks(
    journals: &[Journal],
    dh: &BTreeMap<u64, LoggedTxn>,
    initial: &[u64],
) -> CheckOutcome {
    let mut anomalies = Vec::new();
    let (mut acks, mut commits) = (0, 0);
    // D1 and D3, per server, in the order the host did things.
    for j in journals {
        let mut d = DiskState::default();
        for (t, r) in &j.records {
            let z = match r {
                Record::Disk(e) => {
                    d.apply(e);
                    continue;
                }
                Record::Ack(z) => *z,
                _ => continue,
            };
            acks += 1;
            if z & 0xffff_ffff == 0 {
                if d.pending() {
                    anomalies.push(format!(
                        "server {} ACKed NEWLEADER of epoch {} at {:.3} s while its log was durable only through {} (D3)",
                        j.sid,
                        z >> 32,
                        *t as f64 / 1e9,
                        zx(d.durable)
                    ));
                }
            } else if !d.holds(z) {
                anomalies.push(format!(
                    "server {} ACKed zxid {} at {:.3} s before its disk made it durable (D1)",
                    j.sid,
                    zx(z),
                    *t as f64 / 1e9
                ));
            }
        }
    }
    // I5: at each first COMMIT, a majority of each voter set holds z. All
    // hosts' records merged by time; at equal times disk records first
    // (within one host the order of its own records is kept).
    let mut merged: Vec<(u64, bool, u64, &Record)> = journals
        .iter()
        .flat_map(|j| {
            j.records
                .iter()
                .map(move |(t, r)| (*t, !matches!(r, Record::Disk(_)), j.sid, r))
        })
        .collect();
    merged.sort_by_key(|(t, commit, _, _)| (*t, *commit));
    let mut disks: BTreeMap<u64, DiskState> = BTreeMap::new();
    // Per leader: the highest ACK received from each server (one ACK
    // covers every zxid of its epoch up to it).
    let mut acked: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut committed = 0u64;
    for (t, _, sid, r) in merged {
        // The zxids this record commits, and the lowest ACK that counts.
        let (zs, need): (Vec<u64>, Option<u64>) = match r {
            Record::Disk(e) => {
                disks.entry(sid).or_default().apply(e);
                continue;
            }
            Record::AckReceived(from, z) => {
                let a = acked.entry(sid).or_default().entry(*from).or_default();
                *a = (*a).max(*z);
                continue;
            }
            Record::Commit(z) if *z > committed => (vec![*z], None),
            Record::Established(e) => (
                disks.get(&sid).map_or(vec![], |d| {
                    d.chain
                        .iter()
                        .copied()
                        .filter(|z| *z > committed && z >> 32 < *e)
                        .collect()
                }),
                Some(e << 32),
            ),
            _ => continue,
        };
        let what = match r {
            Record::Established(e) => format!("established epoch {e}, committing zxid"),
            _ => "committed zxid".to_string(),
        };
        for z in zs {
            committed = committed.max(z);
            commits += 1;
            // The ACKs that count for z: of its epoch, at or above it (for
            // an initial history: the NEWLEADER ACKs of the new epoch).
            let floor = need.unwrap_or(z);
            let ackers: Vec<u64> = acked
                .get(&sid)
                .map(|m| {
                    m.iter()
                        .filter(|(_, a)| **a >> 32 == floor >> 32 && **a >= floor)
                        .map(|(v, _)| *v)
                        .collect()
                })
                .unwrap_or_default();
            for set in voters_for(dh, initial, z) {
                let holding: Vec<u64> = set
                    .iter()
                    .copied()
                    .filter(|v| disks.get(v).is_some_and(|d| d.holds(z)))
                    .collect();
                if holding.len() * 2 <= set.len() {
                    anomalies.push(format!(
                        "server {sid} {what} {} at {:.3} s when it was durable only on {holding:?}, not a majority of voters {set:?} (I5)",
                        zx(z),
                        t as f64 / 1e9
                    ));
                }
                let counted = set
                    .iter()
                    .filter(|v| {
                        ackers.contains(v)
                            || (**v == sid && disks.get(v).is_some_and(|d| d.holds(z)))
                    })
                    .count();
                if counted * 2 <= set.len() {
                    anomalies.push(format!(
                        "server {sid} {what} {} at {:.3} s having received ACKs from {ackers:?} only, not a majority of voters {set:?} (I5)",
                        zx(z),
                        t as f64 / 1e9
                    ));
                }
            }
        }
    }
    crate::zk::outcome(
        "quorum-acks",
        format!(
            "{acks} ACKs against the disks' fsync records; {commits} commits (first COMMITs and initial histories at establishment) against the voters' durable logs"
        ),
        anomalies,
    )
}

/// `leader-reports`: a cross-check of the node's own account. Every txn a
/// leader reported committed must be in the durable history at its zxid,
/// unless no server's log spans that zxid any more.
pub fn leader_reports(
    reported: &BTreeMap<u64, CommittedTxn>,
    files: &[ServerFiles],
    dh: &BTreeMap<u64, LoggedTxn>,
) -> CheckOutcome {
    let last = dh.keys().next_back().copied().unwrap_or(0);
    let mut anomalies = Vec::new();
    for (z, c) in reported {
        match dh.get(z) {
            Some(t) if (t.set, t.origin) != (c.set, c.origin) => anomalies.push(format!(
                "a leader reported zxid {} committed as `{}`, but the servers' logs hold `{}`",
                zx(*z),
                c.describe,
                t.describe
            )),
            None if *z > last || !covering(files, *z).is_empty() => anomalies.push(format!(
                "a leader reported zxid {} (`{}`) committed, but no server's log holds it",
                zx(*z),
                c.describe
            )),
            _ => {}
        }
    }
    crate::zk::outcome(
        "leader-reports",
        format!(
            "{} txns leaders reported committed, against the durable history",
            reported.len()
        ),
        anomalies,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Validity;
    use faultline_history::{Op, Process};

    const E1: u64 = 1 << 32;
    const E2: u64 = 2 << 32;

    fn set(z: u64, k: i64, v: i64) -> LoggedTxn {
        LoggedTxn {
            zxid: z,
            set: Some((k, v)),
            origin: None,
            reconfig: None,
            describe: format!("set {k}={v}"),
        }
    }

    fn files(sid: u64, base: u64, log: Vec<LoggedTxn>) -> ServerFiles {
        let last = log.last().map_or(base, |t| t.zxid);
        ServerFiles {
            sid,
            base,
            log,
            recovered: (last, 7),
            replayed: Some(7),
        }
    }

    fn write(p: u64, k: i64, v: i64, zxid: u64) -> Vec<Op> {
        let mut i = Op::new(
            OpType::Invoke,
            Process::Client(p),
            Fun::Write,
            Value::Int(v),
        );
        i.key = Some(Value::Int(k));
        let mut o = i.clone();
        o.kind = OpType::Ok;
        o.zxid = Some(zxid);
        vec![i, o]
    }

    fn check(h: &History, f: &[ServerFiles]) -> CheckOutcome {
        let (dh, conflicts) = durable_history(f);
        durability(h, f, &dh, &conflicts, &[1, 2, 3])
    }

    #[test]
    fn a_write_that_reached_the_new_leader_only_inside_a_snapshot_is_durable() {
        // Seed 2077's shape: server 1 logged E1+1..E1+3 and sent a SNAP at
        // E1+3 to server 2, which then led epoch 2; no leader ever reported
        // E1+2 committed, but it is on the disks of 1 and 3, and server 2's
        // log starts after the snapshot holding it.
        let f = [
            files(
                1,
                0,
                vec![set(E1 + 1, 0, 1), set(E1 + 2, 0, 2), set(E1 + 3, 1, 3)],
            ),
            files(2, E1 + 3, vec![set(E2 + 1, 0, 4)]),
            files(
                3,
                0,
                vec![
                    set(E1 + 1, 0, 1),
                    set(E1 + 2, 0, 2),
                    set(E1 + 3, 1, 3),
                    set(E2 + 1, 0, 4),
                ],
            ),
        ];
        let h = History::new(write(0, 0, 2, E1 + 2)).unwrap();
        let o = check(&h, &f);
        assert_eq!(o.result, Validity::Valid, "{:?}", o.anomalies);
        // The leaders' reports lack E1+2: the cross-check does not mind a
        // txn they never reported, only one they reported wrongly.
        let (dh, _) = durable_history(&f);
        assert_eq!(
            leader_reports(&BTreeMap::new(), &f, &dh).result,
            Validity::Valid
        );
    }

    #[test]
    fn a_lost_write_is_caught_even_when_its_key_is_overwritten_later() {
        // The write at E1+2 was acknowledged, then lost by every server (a
        // power loss before fsync); epoch 2 overwrote the key, so every
        // final state equals the replay of what survived.
        let survived = vec![set(E1 + 1, 0, 1), set(E2 + 1, 0, 9)];
        let f = [
            files(1, 0, survived.clone()),
            files(2, 0, survived.clone()),
            files(3, 0, survived),
        ];
        let h = History::new(write(0, 0, 2, E1 + 2)).unwrap();
        let o = check(&h, &f);
        assert_eq!(o.result, Validity::Invalid);
        assert!(o.anomalies[0].contains("is lost"), "{:?}", o.anomalies);
        assert_eq!(o.ops, vec![1]);
        // Lost at the end of the history, too.
        let f = [files(1, 0, vec![set(E1 + 1, 0, 1)])];
        let o = check(&h, &f);
        assert!(
            o.anomalies[0].contains("beyond the end"),
            "{:?}",
            o.anomalies
        );
    }

    #[test]
    fn a_write_held_by_a_minority_or_replaced_is_a_violation() {
        let f = [
            files(1, 0, vec![set(E1 + 1, 0, 1)]),
            files(2, 0, vec![]),
            files(3, 0, vec![]),
        ];
        let h = History::new(write(0, 0, 1, E1 + 1)).unwrap();
        assert!(check(&h, &f).anomalies[0].contains("not a majority"));
        let h = History::new(write(0, 0, 5, E1 + 1)).unwrap();
        assert!(check(&h, &f).anomalies[0].contains("logs hold `set 0=1`"));
        // A write older than every log (all installed snapshots past it)
        // is counted, not judged.
        let f = [files(1, E1 + 5, vec![]), files(2, E1 + 5, vec![])];
        assert_eq!(check(&h, &f).result, Validity::Valid);
    }

    #[test]
    fn logs_must_agree_chain_and_recover_to_their_replay() {
        let (_, c) = durable_history(&[
            files(1, 0, vec![set(E1 + 1, 0, 1)]),
            files(2, 0, vec![set(E1 + 1, 0, 2)]),
        ]);
        assert!(c[0].contains("(I2)"), "{c:?}");
        let (_, c) = durable_history(&[files(1, 0, vec![set(E1 + 1, 0, 1), set(E1 + 3, 0, 1)])]);
        assert!(c[0].contains("(I6"), "{c:?}");
        let mut f = files(1, 0, vec![set(E1 + 1, 0, 1)]);
        f.replayed = Some(8);
        let o = check(&History::default(), &[f]);
        assert!(o.anomalies[0].contains("differs"), "{:?}", o.anomalies);
    }

    #[test]
    fn history_completeness_and_configurations() {
        let a = files(1, 0, vec![set(E1 + 1, 0, 1), set(E1 + 2, 0, 1)]);
        let b = files(2, E1 + 1, vec![set(E1 + 2, 0, 1), set(E2 + 1, 0, 1)]);
        let c = files(3, E2 + 1, vec![set(E2 + 2, 0, 1)]);
        assert_eq!(complete_through(&[c.clone(), b.clone(), a.clone()]), E2 + 2);
        // Without server 1, nothing holds epoch 1's start: a log that begins
        // at epoch 2's first txn must not pass for the whole history.
        assert_eq!(complete_through(&[b.clone(), c.clone()]), 0);
        assert_eq!(complete_through(&[files(4, 0, vec![])]), 0);
        assert_eq!(gaps(&[b.clone(), c.clone()]), vec![(0, E1 + 1)]);
        assert_eq!(gaps(&[a.clone(), c.clone()]), vec![(E1 + 2, E2 + 1)]);
        let mut h = BTreeMap::new();
        for t in [set(E1 + 2, 0, 1), set(E2 + 1, 0, 1)] {
            h.insert(t.zxid, t);
        }
        let mut r = set(E1 + 1, 0, 0);
        r.set = None;
        r.reconfig = Some(vec![1, 2, 3, 4]);
        h.insert(E1 + 1, r);
        assert_eq!(
            voters_for(&h, &[1, 2, 3], E1 + 1),
            vec![vec![1, 2, 3], vec![1, 2, 3, 4]]
        );
        assert_eq!(voters_for(&h, &[1, 2, 3], E1 + 2), vec![vec![1, 2, 3, 4]]);
    }

    fn journal(sid: u64, records: Vec<(u64, Record)>) -> Journal {
        Journal { sid, records }
    }

    fn opened() -> (u64, Record) {
        (
            0,
            Record::Disk(DiskEvent::Opened {
                log: vec![],
                base: 0,
            }),
        )
    }

    /// Three voters; server 1 leads epoch 1 and commits E1+1 at time 30.
    fn broadcast(follower_acks_early: bool, leader_waits: bool) -> Vec<Journal> {
        let mut js = Vec::new();
        for s in [2, 3] {
            let mut r = vec![
                opened(),
                (10, Record::Disk(DiskEvent::Appended(vec![E1 + 1]))),
            ];
            if follower_acks_early {
                r.push((11, Record::Ack(E1 + 1)));
            }
            r.push((20, Record::Disk(DiskEvent::Synced(E1 + 1))));
            if !follower_acks_early {
                r.push((21, Record::Ack(E1 + 1)));
            }
            js.push(journal(s, r));
        }
        let mut l = vec![
            opened(),
            (5, Record::Disk(DiskEvent::Appended(vec![E1 + 1]))),
            (6, Record::Disk(DiskEvent::Synced(E1 + 1))),
        ];
        if leader_waits {
            l.push((22, Record::AckReceived(2, E1 + 1)));
        }
        l.push((30, Record::Commit(E1 + 1)));
        js.insert(0, journal(1, l));
        js
    }

    fn dh1() -> BTreeMap<u64, LoggedTxn> {
        [(E1 + 1, set(E1 + 1, 0, 1))].into_iter().collect()
    }

    #[test]
    fn acks_and_commits_follow_the_disks() {
        let ok = quorum_acks(&broadcast(false, true), &dh1(), &[1, 2, 3]);
        assert_eq!(ok.result, Validity::Valid, "{:?}", ok.anomalies);
        // D1: an ACK before the fsync.
        let o = quorum_acks(&broadcast(true, true), &dh1(), &[1, 2, 3]);
        assert!(
            o.anomalies.iter().all(|a| a.contains("(D1)")),
            "{:?}",
            o.anomalies
        );
        assert_eq!(o.anomalies.len(), 2);
        // I5: a commit on the leader's own ACK alone, although the data was
        // in fact durable on a majority by then.
        let o = quorum_acks(&broadcast(false, false), &dh1(), &[1, 2, 3]);
        assert_eq!(o.anomalies.len(), 1, "{:?}", o.anomalies);
        assert!(o.anomalies[0].contains("received ACKs from []"));
        // I5: a commit when only the leader's disk holds the txn.
        let mut js = broadcast(false, true);
        for j in &mut js[1..] {
            j.records
                .retain(|(_, r)| !matches!(r, Record::Disk(DiskEvent::Synced(_))));
        }
        js[0]
            .records
            .insert(3, (22, Record::AckReceived(3, E1 + 1)));
        let o = quorum_acks(&js, &dh1(), &[1, 2, 3]);
        assert!(
            o.anomalies
                .iter()
                .any(|a| a.contains("durable only on [1]")),
            "{:?}",
            o.anomalies
        );
    }

    #[test]
    fn newleader_acks_and_establishment_need_durable_synced_history() {
        // Server 2 is synced with E1+1 and ACKs NEWLEADER of epoch 2.
        let follower = |ack_at: u64| {
            let mut r = vec![
                opened(),
                (10, Record::Disk(DiskEvent::Appended(vec![E1 + 1]))),
                (ack_at, Record::Ack(E2)),
                (20, Record::Disk(DiskEvent::Synced(E1 + 1))),
            ];
            r.sort_by_key(|(t, _)| *t);
            journal(2, r)
        };
        let leader = journal(
            1,
            vec![
                (
                    0,
                    Record::Disk(DiskEvent::Opened {
                        log: vec![E1 + 1],
                        base: 0,
                    }),
                ),
                (25, Record::AckReceived(2, E2)),
                (30, Record::Established(2)),
            ],
        );
        let o = quorum_acks(&[leader.clone(), follower(21)], &dh1(), &[1, 2, 3]);
        assert_eq!(o.result, Validity::Valid, "{:?}", o.anomalies);
        let o = quorum_acks(&[leader.clone(), follower(12)], &dh1(), &[1, 2, 3]);
        assert!(o.anomalies[0].contains("(D3)"), "{:?}", o.anomalies);
        // Established on the leader's own word alone.
        let mut alone = leader;
        alone.records.remove(1);
        let o = quorum_acks(&[alone, follower(21)], &dh1(), &[1, 2, 3]);
        assert!(
            o.anomalies
                .iter()
                .any(|a| a.contains("established epoch 2")),
            "{:?}",
            o.anomalies
        );
    }
}
