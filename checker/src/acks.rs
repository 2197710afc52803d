//! `quorum-acks`, judged from the hosts' journals alone: an ACK leaves a
//! host only once its disk made the entry durable (D1; NEWLEADER's ACK
//! only once every synced txn is, D3), and a leader sends COMMIT for `z`
//! only when `z` is durable on a majority of the voters (I5).

use crate::durable::{Configs, DiskEvent, Journal, LoggedTxn, Record};
use crate::verdict::{zx, CheckOutcome};
use std::collections::BTreeMap;

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
            DiskEvent::Epochs { .. } => {}
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
    let acks = acks_after_fsync(journals, &mut anomalies);
    let commits = commits_on_quorum(journals, dh, initial, &mut anomalies);
    crate::verdict::outcome(
        "quorum-acks",
        format!(
            "{acks} ACKs against the disks' fsync records; {commits} commits (first COMMITs and initial histories at establishment) against the voters' durable logs"
        ),
        anomalies,
    )
}

/// D1 and D3, per server, in the order the host did things.
/// Returns the number of ACKs judged.
fn acks_after_fsync(journals: &[Journal], anomalies: &mut Vec<String>) -> usize {
    let mut acks = 0;
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
    acks
}

/// I5: at each commit, a majority of each voter set holds the txn durably
/// and the leader has received their ACKs.
fn commits_on_quorum(
    journals: &[Journal],
    dh: &BTreeMap<u64, LoggedTxn>,
    initial: &[u64],
    anomalies: &mut Vec<String>,
) -> usize {
    let mut commits = 0;
    let configs = Configs::new(dh, initial);
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
            anomalies.extend(judge_commit(
                (t, sid, z, &what),
                configs.voters_for(z),
                &ackers,
                &disks,
            ));
        }
    }
    commits
}

/// The violations of one commit of `z` by `sid` at `t`: for each voter
/// set, fewer than a majority durably holding `z`, or fewer than a majority
/// whose ACKs the leader had (its own disk counts for itself).
fn judge_commit(
    (t, sid, z, what): (u64, u64, u64, &str),
    sets: Vec<Vec<u64>>,
    ackers: &[u64],
    disks: &BTreeMap<u64, DiskState>,
) -> Vec<String> {
    let mut out = Vec::new();
    for set in sets {
        let holding: Vec<u64> = set
            .iter()
            .copied()
            .filter(|v| disks.get(v).is_some_and(|d| d.holds(z)))
            .collect();
        if holding.len() * 2 <= set.len() {
            out.push(format!(
                "server {sid} {what} {} at {:.3} s when it was durable only on {holding:?}, not a majority of voters {set:?} (I5)",
                zx(z),
                t as f64 / 1e9
            ));
        }
        let counted = set
            .iter()
            .filter(|v| {
                ackers.contains(v) || (**v == sid && disks.get(v).is_some_and(|d| d.holds(z)))
            })
            .count();
        if counted * 2 <= set.len() {
            out.push(format!(
                "server {sid} {what} {} at {:.3} s having received ACKs from {ackers:?} only, not a majority of voters {set:?} (I5)",
                zx(z),
                t as f64 / 1e9
            ));
        }
    }
    out
}
