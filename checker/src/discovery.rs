//! `discovery`: ZAB's discovery rules (ZAB.md D1–D3), judged from what the
//! hosts' disk layers wrote and their shells sent, never from the
//! protocol core's account of itself.
//!
//! A prospective leader may act on epoch `e` only once a quorum has
//! promised it: a majority of the voters must have durably written
//! acceptedEpoch = `e` (the promise an ACKEPOCH stands for) before
//!
//! * any server durably writes currentEpoch = `e` (a leader after its
//!   quorum of ACKEPOCH, a learner on NEWLEADER), and
//! * a leader whose acceptedEpoch is `e` starts a synchronization (sends a
//!   DIFF, TRUNC or SNAP).
//!
//! A leader that skips the quorum can hand a lagging server an epoch
//! nobody else promised, and that server may later win an election and
//! truncate committed txns (ZOOKEEPER-4643's mechanism); the damage shows
//! only under rare schedules, the broken rule in every election.
//!
//! Membership changes make "the voters" a moving target; the check accepts
//! a majority of any voter set the run had (the initial one or one a
//! reconfig committed), so it never calls a correct run invalid.

use crate::durable::{DiskEvent, Journal, Record};
use crate::verdict::{outcome, CheckOutcome};
use std::collections::{BTreeMap, BTreeSet};

/// Something that needs epoch `epoch` promised by a quorum first.
struct Use {
    time: u64,
    sid: u64,
    epoch: u64,
    what: &'static str,
}

/// `discovery`: see the module docs. `voter_sets` are every voter set the
/// run had; a promise counts if it completes a majority of one of them.
pub fn discovery(journals: &[Journal], voter_sets: &[Vec<u64>]) -> CheckOutcome {
    // epoch -> server -> when it first durably promised it.
    let mut promised: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut uses: Vec<Use> = Vec::new();
    for j in journals {
        let mut accepted = 0;
        let mut current = 0;
        let mut synced: BTreeSet<u64> = BTreeSet::new();
        for (t, r) in &j.records {
            match r {
                Record::Disk(DiskEvent::Epochs {
                    accepted: a,
                    current: c,
                }) => {
                    promised.entry(*a).or_default().entry(j.sid).or_insert(*t);
                    if *c != current && *c > 0 {
                        uses.push(Use {
                            time: *t,
                            sid: j.sid,
                            epoch: *c,
                            what: "wrote currentEpoch",
                        });
                    }
                    (accepted, current) = (*a, *c);
                }
                // The first sync of each epoch is the one that matters:
                // later ones come no earlier.
                Record::SyncSent(_) if accepted > 0 && synced.insert(accepted) => {
                    uses.push(Use {
                        time: *t,
                        sid: j.sid,
                        epoch: accepted,
                        what: "started a synchronization",
                    });
                }
                _ => {}
            }
        }
    }
    let mut anomalies = Vec::new();
    let mut epochs = BTreeSet::new();
    for u in &uses {
        epochs.insert(u.epoch);
        let by: BTreeSet<u64> = promised
            .get(&u.epoch)
            .map(|m| {
                m.iter()
                    .filter(|(_, at)| **at <= u.time)
                    .map(|(s, _)| *s)
                    .collect()
            })
            .unwrap_or_default();
        let quorum = voter_sets
            .iter()
            .any(|v| v.iter().filter(|s| by.contains(s)).count() * 2 > v.len());
        if !quorum {
            anomalies.push(format!(
                "server {} {} for epoch {} at {:.3} s, when only {:?} had promised it (acceptedEpoch {} durable); voters {:?} (D2)",
                u.sid,
                u.what,
                u.epoch,
                u.time as f64 / 1e9,
                by,
                u.epoch,
                voter_sets
            ));
        }
    }
    outcome(
        "discovery",
        format!(
            "{} epochs acted on ({} currentEpoch writes and sync starts), each after a quorum durably promised it",
            epochs.len(),
            uses.len()
        ),
        anomalies,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(t: u64, a: u64, c: u64) -> (u64, Record) {
        (
            t,
            Record::Disk(DiskEvent::Epochs {
                accepted: a,
                current: c,
            }),
        )
    }

    fn journal(sid: u64, records: Vec<(u64, Record)>) -> Journal {
        Journal { sid, records }
    }

    /// Leader 1 of three voters chooses epoch 2; server 2 promises at
    /// `promise_at`; the leader writes currentEpoch and syncs at 20.
    fn run(promise_at: u64) -> Vec<Journal> {
        vec![
            journal(
                1,
                vec![
                    epochs(10, 2, 0),
                    epochs(20, 2, 2),
                    (20, Record::SyncSent(2)),
                ],
            ),
            journal(2, vec![epochs(promise_at, 2, 0), epochs(30, 2, 2)]),
            journal(3, vec![]),
        ]
    }

    #[test]
    fn acting_after_a_quorum_of_promises_is_valid() {
        let o = discovery(&run(15), &[vec![1, 2, 3]]);
        assert!(o.anomalies.is_empty(), "{:?}", o.anomalies);
        assert!(
            o.summary.starts_with("1 epochs acted on (3 "),
            "{}",
            o.summary
        );
    }

    #[test]
    fn acting_before_a_quorum_is_flagged() {
        // Server 2's promise comes after the leader acted.
        let o = discovery(&run(25), &[vec![1, 2, 3]]);
        assert_eq!(o.anomalies.len(), 2, "{:?}", o.anomalies);
        assert!(o.anomalies[0].contains("server 1 wrote currentEpoch for epoch 2"));
        assert!(o.anomalies[1].contains("started a synchronization"));
        // With five voters, two promises are not a majority either.
        let o = discovery(&run(15), &[vec![1, 2, 3, 4, 5]]);
        assert_eq!(o.anomalies.len(), 3, "{:?}", o.anomalies);
        // A reconfigured voter set that the promises do cover is accepted.
        let o = discovery(&run(15), &[vec![1, 2, 3, 4, 5], vec![1, 2, 4]]);
        assert!(o.anomalies.is_empty(), "{:?}", o.anomalies);
    }

    #[test]
    fn a_promise_of_another_epoch_does_not_count() {
        let mut j = run(15);
        j[1].records[0] = epochs(15, 3, 0);
        let o = discovery(&j, &[vec![1, 2, 3]]);
        assert!(!o.anomalies.is_empty());
    }
}
