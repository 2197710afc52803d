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

pub use crate::acks::quorum_acks;
use crate::verdict::{int, zx, CheckOutcome};
use crate::zk::CommittedTxn;
use faultline_history::{Fun, History, OpType};
use std::collections::{BTreeMap, BTreeSet};

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
    /// The keys it deletes (a closed session's ephemeral keys).
    pub deletes: Vec<i64>,
    /// What it does to sessions, if anything.
    pub session: Option<crate::sessions::SessionTxn>,
    /// A readable description.
    pub describe: String,
}

impl LoggedTxn {
    fn same(&self, o: &LoggedTxn) -> bool {
        (
            self.set,
            self.origin,
            &self.reconfig,
            &self.deletes,
            &self.session,
        ) == (o.set, o.origin, &o.reconfig, &o.deletes, &o.session)
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
    /// The host, as leader, sent this learner a DIFF, TRUNC or SNAP (for
    /// the epoch it last accepted).
    SyncSent(u64),
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
    /// The epoch file now holds (acceptedEpoch, currentEpoch), durably.
    Epochs {
        /// acceptedEpoch.
        accepted: u64,
        /// currentEpoch.
        current: u64,
    },
}

/// What one server's host wrote and sent, with simulated times (ns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// The server.
    pub sid: u64,
    /// Its records in the order they happened, with simulated times (ns).
    pub records: Vec<(u64, Record)>,
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

/// The epochs some leader established (its first UPTODATE), from the
/// hosts' records.
pub fn established(journals: &[Journal]) -> BTreeSet<u64> {
    journals
        .iter()
        .flat_map(|j| &j.records)
        .filter_map(|(_, r)| match r {
            Record::Established(e) => Some(*e),
            _ => None,
        })
        .collect()
}

/// The zxids of logged txns that the lineage of the latest established
/// epoch leaves out: they were never committed, and stay in the log of a
/// server that never synced again (the union of the logs would replay
/// them into a history no server applied). The lineage: a log holding the
/// first txn of epoch E shows what came right before it (the last txn of
/// an older epoch e, or its snapshot); from the highest established epoch
/// with such a log, txns of e after that point and every txn of an epoch
/// between e and E are left out, then the same from e, and so on while a
/// log shows where each epoch began. Epochs above it, and anything below
/// the first epoch whose beginning no log shows, are kept.
pub fn superseded(files: &[ServerFiles], established: &BTreeSet<u64>) -> BTreeSet<u64> {
    // Epoch -> the zxid right before its first txn, as logs show it.
    let mut pred: BTreeMap<u64, u64> = BTreeMap::new();
    for f in files {
        let mut prev = f.base;
        for t in &f.log {
            if t.zxid >> 32 > prev >> 32 {
                let p = pred.entry(t.zxid >> 32).or_insert(prev);
                *p = (*p).max(prev);
            }
            prev = t.zxid;
        }
    }
    let mut out = BTreeSet::new();
    let Some(mut epoch) = established
        .iter()
        .rev()
        .copied()
        .find(|e| pred.contains_key(e))
    else {
        return out;
    };
    let held: BTreeSet<u64> = files
        .iter()
        .flat_map(|f| f.log.iter().map(|t| t.zxid))
        .collect();
    while let Some(&before) = pred.get(&epoch) {
        let from = before >> 32;
        out.extend(
            held.range(before + 1..epoch << 32)
                .copied()
                .filter(|z| z >> 32 >= from),
        );
        if from == 0 || from >= epoch {
            break;
        }
        epoch = from;
    }
    out
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
    Configs::new(h, initial).voters_for(z)
}

/// The configurations of a durable history, indexed once: what
/// [`voters_for`] answers, for many zxids.
pub struct Configs {
    initial: Vec<u64>,
    /// Every reconfig's zxid and new voters.
    reconfigs: BTreeMap<u64, Vec<u64>>,
}

impl Configs {
    /// The index of `h`'s reconfigs, with `initial` in force before them.
    pub fn new(h: &BTreeMap<u64, LoggedTxn>, initial: &[u64]) -> Configs {
        Configs {
            initial: initial.to_vec(),
            reconfigs: h
                .iter()
                .filter_map(|(z, t)| t.reconfig.clone().map(|r| (*z, r)))
                .collect(),
        }
    }

    /// The voter sets a commit of `z` needs a majority of (see
    /// [`voters_for`]).
    pub fn voters_for(&self, z: u64) -> Vec<Vec<u64>> {
        let before = self
            .reconfigs
            .range(..z)
            .next_back()
            .map_or_else(|| self.initial.clone(), |(_, r)| r.clone());
        let mut sets = vec![before];
        if let Some(new) = self.reconfigs.get(&z) {
            if *new != sets[0] {
                sets.push(new.clone());
            }
        }
        sets
    }
}

/// An acknowledged write or cas: history index of the completion, zxid,
/// key and value written, description.
pub(crate) type Acked = (usize, u64, Option<(i64, i64)>, String);

/// Every acknowledged write and cas that names where it was applied, its
/// position described by `at` (a zxid, a log index).
pub(crate) fn acked_writes(h: &History, at: fn(u64) -> String) -> Vec<Acked> {
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
            "{} by process {} (key {}, value {}, {})",
            p.invoke.f,
            p.invoke.process,
            key.map_or("-".into(), |k| k.to_string()),
            value.map_or("-".into(), |v| v.to_string()),
            at(z)
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
    for (i, z, set, what) in acked_writes(h, |z| format!("zxid {}", zx(z))) {
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
    recovered_states(files, &mut anomalies);
    let unverified = files.iter().filter(|f| f.replayed.is_none()).count();
    let mut o = crate::verdict::outcome(
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

/// Every server's recovered state against the durable history replayed
/// to where its files end; servers whose end lies beyond the complete part
/// of the history are compared with each other: equal last zxids, equal
/// states.
fn recovered_states(files: &[ServerFiles], anomalies: &mut Vec<String>) {
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
    crate::verdict::outcome(
        "leader-reports",
        format!(
            "{} txns leaders reported committed, against the durable history",
            reported.len()
        ),
        anomalies,
    )
}
