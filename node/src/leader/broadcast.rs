//! The leader in broadcast (§3.4): client writes become proposals,
//! proposals commit on a quorum of durable ACKs in zxid order, and
//! linearizable reads wait for a ping round a quorum answered.

use super::{PendingSync, Phase};
use crate::core::{Node, Output, ProtocolEvent, Role};
use crate::msg::PeerMsg;
use crate::{ClientOp, Key, Outcome, Sid, Txn, TxnOp, Zxid};
use std::collections::BTreeSet;

impl Node {
    /// Turns a client write or cas into a txn against the state after all
    /// outstanding proposals, unless `(session, seq)` already executed or
    /// is outstanding.
    pub(crate) fn leader_submit(&mut self, origin: Sid, session: u64, seq: u64, op: ClientOp) {
        assert!(
            self.leader_ref().established,
            "only an established leader proposes"
        );
        if let Some((outcome, zxid)) = self.store.executed(session, seq) {
            return self.answer(origin, session, seq, outcome, zxid);
        }
        let l = self.leader_ref();
        if l.proposed_sessions
            .get(&session)
            .is_some_and(|(s, _)| *s >= seq)
        {
            return; // outstanding: its commit answers every server waiting on it
        }
        if !self.session_admits(session, &op) {
            let z = self.store.applied;
            return self.answer(origin, session, seq, Outcome::SessionExpired, z);
        }
        let l = self.leader_ref();
        let current = |k: Key| {
            l.overlay
                .get(&k)
                .map(|(v, _)| *v)
                .unwrap_or_else(|| self.store.get(k))
        };
        let txn_op = match op {
            ClientOp::Write { key, value } => TxnOp::Set { key, value },
            ClientOp::Cas { key, from, to } => {
                let actual = current(key);
                if actual == from {
                    TxnOp::Set { key, value: to }
                } else {
                    TxnOp::CasFailed { key, actual }
                }
            }
            ClientOp::AddVoter { sid } => match self.reconfig_add(sid) {
                Some(op) => op,
                None => {
                    let z = self.store.applied;
                    return self.answer(origin, session, seq, Outcome::NotReady, z);
                }
            },
            ClientOp::CreateSession { timeout } => match self.store.live.get(&session) {
                // Opened already (a retried create): the same answer.
                Some(&t) => {
                    let z = self.store.applied;
                    return self.answer(origin, session, seq, Outcome::Opened { timeout: t }, z);
                }
                None => TxnOp::CreateSession {
                    session,
                    timeout: self.clamp_timeout(timeout),
                },
            },
            ClientOp::CloseSession => {
                self.session_closing(session);
                let keys = self.owned_after_outstanding(session);
                TxnOp::CloseSession { session, keys }
            }
            ClientOp::CreateEphemeral { key, value } => match current(key) {
                None => TxnOp::SetEphemeral {
                    key,
                    value,
                    owner: session,
                },
                actual => TxnOp::CasFailed { key, actual },
            },
            ClientOp::Read { .. } | ClientOp::SyncRead { .. } | ClientOp::Ping => {
                unreachable!("reads and pings are not proposed")
            }
        };
        self.propose(txn_op, Some((session, seq)));
    }

    /// Answers a request without a new txn: to our own client, or to the
    /// learner that forwarded it.
    pub(super) fn answer(
        &mut self,
        origin: Sid,
        session: u64,
        seq: u64,
        outcome: Outcome,
        zxid: Zxid,
    ) {
        if origin == self.cfg.sid {
            self.requests_executed(session, seq, outcome, zxid);
        } else {
            let msg = PeerMsg::Executed {
                session,
                seq,
                outcome,
                zxid,
            };
            self.send(origin, msg);
        }
    }

    /// The reconfig txn adding `sid` as a voter, or `None` when it must be
    /// refused: a reconfig is pending (ReconfigInProgress), `sid` is not a
    /// synced participant, or the new configuration lacks a synced quorum
    /// (NewConfigNoQuorum).
    pub(super) fn reconfig_add(&self, sid: Sid) -> Option<TxnOp> {
        if self.pending_voters.is_some() || self.is_voter(sid) {
            return None;
        }
        let l = self.leader_ref();
        let synced: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, p)| p.phase == Phase::UpToDate && !p.observer)
            .map(|(s, _)| *s)
            .chain([self.cfg.sid])
            .collect();
        if !synced.contains(&sid) {
            return None;
        }
        let mut voters = self.voters.clone();
        voters.insert(sid);
        let n = synced.iter().filter(|s| voters.contains(s)).count();
        if n * 2 <= voters.len() {
            return None;
        }
        Some(TxnOp::Reconfig {
            voters: voters.into_iter().collect(),
            observers: self
                .observers
                .iter()
                .copied()
                .filter(|&s| s != sid)
                .collect(),
        })
    }

    /// The ephemeral keys `session` owns once every outstanding proposal
    /// is applied: what its closeSession deletes.
    pub(crate) fn owned_after_outstanding(&self, session: u64) -> Vec<Key> {
        let l = self.leader_ref();
        let mut owned: BTreeSet<Key> = self.store.owned_by(session).collect();
        for (k, (o, _)) in &l.owner_overlay {
            if *o == Some(session) {
                owned.insert(*k);
            } else {
                owned.remove(k);
            }
        }
        owned.into_iter().collect()
    }

    /// Logs a txn and sends it to every forwarded voter.
    pub(crate) fn propose(&mut self, op: TxnOp, origin: Option<(u64, u64)>) {
        let mut acks = BTreeSet::new();
        if self.cfg.bugs.ack_before_fsync {
            acks.insert(self.cfg.sid);
        }
        let store = &self.store;
        let Role::Leading(l) = &mut self.role else {
            unreachable!("only a leader proposes")
        };
        let zxid = l.last_proposed.next();
        l.last_proposed = zxid;
        match &op {
            TxnOp::Set { key, value } => {
                let owner = l
                    .owner_overlay
                    .get(key)
                    .map_or_else(|| store.owners.get(key).copied(), |(o, _)| *o);
                l.overlay.insert(*key, (Some(*value), zxid));
                l.owner_overlay.insert(*key, (owner, zxid));
            }
            TxnOp::SetEphemeral { key, value, owner } => {
                l.overlay.insert(*key, (Some(*value), zxid));
                l.owner_overlay.insert(*key, (Some(*owner), zxid));
            }
            TxnOp::CloseSession { keys, .. } => {
                for &k in keys {
                    l.overlay.insert(k, (None, zxid));
                    l.owner_overlay.insert(k, (None, zxid));
                }
            }
            _ => {}
        }
        if let Some((session, seq)) = origin {
            l.proposed_sessions.insert(session, (seq, zxid));
        }
        l.proposals.insert(zxid, acks);
        let txn = Txn { zxid, origin, op };
        let to: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, p)| p.forwarded() && !p.observer)
            .map(|(s, _)| *s)
            .collect();
        self.append(vec![txn.clone()]);
        for s in to {
            self.send(s, PeerMsg::Proposal { txn: txn.clone() });
        }
        self.try_commit();
    }

    /// Commits outstanding proposals in zxid order while each has a quorum.
    pub(super) fn try_commit(&mut self) {
        loop {
            let l = self.leader_ref();
            let Some((&z, acks)) = l.proposals.first_key_value() else {
                break;
            };
            let ok = if self.cfg.bugs.commit_without_quorum {
                !acks.is_empty()
            } else {
                self.is_quorum(acks)
            };
            if !ok {
                if self.cfg.bugs.out_of_order_commit {
                    // Commit a later proposal that has its quorum without
                    // waiting for its predecessors.
                    let later = l
                        .proposals
                        .iter()
                        .find(|(_, a)| self.is_quorum(*a))
                        .map(|(z, _)| *z);
                    if let Some(z) = later {
                        let acks = self.lead().proposals.remove(&z).expect("found");
                        self.commit_one(z, acks);
                        continue;
                    }
                }
                break;
            }
            let acks = self.lead().proposals.remove(&z).expect("first");
            self.commit_one(z, acks);
        }
        self.check_syncs();
    }

    pub(super) fn commit_one(&mut self, z: Zxid, acks: BTreeSet<Sid>) {
        let i = self
            .log
            .binary_search_by_key(&z, |t| t.zxid)
            .expect("a proposal is in our log");
        let txn = self.log[i].clone();
        let to: Vec<(Sid, bool)> = self
            .leader_ref()
            .learners
            .iter()
            .filter(|(_, p)| p.forwarded())
            .map(|(s, p)| (*s, p.observer))
            .collect();
        for (s, observer) in to {
            let msg = if observer {
                PeerMsg::Inform { txn: txn.clone() }
            } else {
                PeerMsg::Commit { zxid: z }
            };
            self.send(s, msg);
        }
        self.certain = self.certain.max(z);
        let voters = self.quorum_sets();
        self.out.push(Output::Event(ProtocolEvent::Committed {
            txn: txn.clone(),
            acks: acks.into_iter().collect(),
            voters,
        }));
        if self.cfg.bugs.out_of_order_commit && z != self.next_unapplied() {
            // Apply it alone, skipping whatever precedes it.
            self.store.apply(&txn);
            self.requests_on_applied(&txn);
        } else {
            self.commit_to(z);
        }
        let l = self.lead();
        l.overlay.retain(|_, (_, zz)| *zz > z);
        l.owner_overlay.retain(|_, (_, zz)| *zz > z);
        l.proposed_sessions.retain(|_, (_, zz)| *zz > z);
    }

    /// Records the log entries in `(from, to]` as committed by the
    /// establishment of this leader's epoch (a quorum ACKed NEWLEADER).
    pub(super) fn record_committed(&mut self, from: Zxid, to: Zxid) {
        let start = self.log.partition_point(|t| t.zxid <= from);
        let end = self.log.partition_point(|t| t.zxid <= to);
        let mut acks: Vec<Sid> = self.leader_ref().newleader_acks.iter().copied().collect();
        acks.push(self.cfg.sid);
        acks.sort_unstable();
        let voters = self.quorum_sets();
        for i in start..end {
            let txn = self.log[i].clone();
            self.out.push(Output::Event(ProtocolEvent::Committed {
                txn,
                acks: acks.clone(),
                voters: voters.clone(),
            }));
        }
    }

    pub(super) fn next_unapplied(&self) -> Zxid {
        let i = self.log.partition_point(|t| t.zxid <= self.store.applied);
        self.log.get(i).map_or(Zxid(u64::MAX), |t| t.zxid)
    }

    /// A linearizable read: wait until everything proposed so far commits
    /// and a quorum answers a ping round sent after now.
    pub(crate) fn start_sync(&mut self, origin: Sid, session: u64, seq: u64) {
        let applied = self.store.applied;
        let l = self.lead();
        l.ping_round += 1;
        let round = l.ping_round;
        // The last txn proposed so far (the epoch marker is no txn).
        let zxid = l.proposals.last_key_value().map_or(applied, |(z, _)| *z);
        l.syncs.push(PendingSync {
            origin,
            session,
            seq,
            zxid,
            round,
        });
        self.send_pings(round);
        self.check_syncs();
    }

    pub(super) fn send_pings(&mut self, round: u64) {
        let to: Vec<Sid> = self
            .leader_ref()
            .learners
            .iter()
            .filter(|(_, p)| p.forwarded())
            .map(|(s, _)| *s)
            .collect();
        for s in to {
            self.send(s, PeerMsg::Ping { round });
        }
    }

    pub(super) fn check_syncs(&mut self) {
        let me = self.cfg.sid;
        let stale = self.cfg.bugs.stale_leader_reads;
        let l = self.leader_ref();
        let mut done = Vec::new();
        for (i, s) in l.syncs.iter().enumerate() {
            let confirmed: Vec<Sid> = l
                .learners
                .iter()
                .filter(|(_, p)| p.acked_round >= s.round && p.phase >= Phase::AckedNewLeader)
                .map(|(sid, _)| *sid)
                .chain([me])
                .collect();
            // stale_leader_reads answers at once from the committed state,
            // confirming nothing.
            if stale || (self.store.applied >= s.zxid && self.is_quorum(&confirmed)) {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let s = self.lead().syncs.remove(i);
            if s.origin == me {
                self.requests_sync_done(s.session, s.seq);
            } else {
                let msg = PeerMsg::SyncDone {
                    session: s.session,
                    seq: s.seq,
                };
                self.send(s.origin, msg);
            }
        }
    }
}
