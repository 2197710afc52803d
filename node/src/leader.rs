//! The leader: discovery (§3.2) and synchronization (§3.3) from the
//! leader's side; broadcast (§3.4) is in `broadcast`.

use crate::core::{Node, Role};
use crate::msg::PeerMsg;
use crate::{Key, Sid, Txn, Zxid};
use std::collections::{BTreeMap, BTreeSet};

mod broadcast;

/// Where a registered learner is in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Sent LEARNERINFO; waiting for its ACKEPOCH.
    Registered,
    /// Sent ACKEPOCH with its last zxid; waiting to be synced.
    AckedEpoch(Zxid),
    /// Sync data and NEWLEADER queued; it now gets every broadcast.
    Syncing,
    /// ACKed NEWLEADER.
    AckedNewLeader,
    /// Sent UPTODATE: it serves clients.
    UpToDate,
}

#[derive(Debug)]
struct Peer {
    observer: bool,
    accepted_epoch: u64,
    phase: Phase,
    last_heard: u64,
    acked_round: u64,
}

impl Peer {
    /// Whether it receives the broadcast stream.
    fn forwarded(&self) -> bool {
        self.phase >= Phase::Syncing
    }
}

/// A linearizable read waiting for its sync point.
#[derive(Debug)]
struct PendingSync {
    origin: Sid,
    session: u64,
    seq: u64,
    /// Everything proposed before the request must be committed.
    zxid: Zxid,
    /// A quorum must answer a ping round sent after the request arrived.
    round: u64,
}

/// The leader's state.
#[derive(Debug)]
pub(crate) struct Leader {
    /// The epoch it leads; 0 until discovery decides it.
    pub(crate) epoch: u64,
    /// Whether a quorum acknowledged NEWLEADER.
    pub(crate) established: bool,
    started: u64,
    /// Our `(currentEpoch, lastZxid)` when we started, to compare with the
    /// learners' (`StateSummary.isMoreRecentThan`).
    summary: (u64, Zxid),
    learners: BTreeMap<Sid, Peer>,
    epoch_acks: BTreeSet<Sid>,
    newleader_acks: BTreeSet<Sid>,
    /// Outstanding proposals and the voters that ACKed each.
    proposals: BTreeMap<Zxid, BTreeSet<Sid>>,
    last_proposed: Zxid,
    /// Values written (or deleted, with a session) by outstanding
    /// proposals (key -> value, zxid).
    overlay: BTreeMap<Key, (Option<i64>, Zxid)>,
    /// Owners of ephemeral keys after outstanding proposals (key ->
    /// owner, zxid).
    owner_overlay: BTreeMap<Key, (Option<u64>, Zxid)>,
    /// Sessions with an outstanding proposal (session -> seq, zxid).
    proposed_sessions: BTreeMap<u64, (u64, Zxid)>,
    ping_round: u64,
    syncs: Vec<PendingSync>,
    /// Open sessions' deadlines (ZAB.md §9).
    pub(crate) tracker: crate::sessions::Tracker,
}

impl Leader {
    /// Outstanding proposals and syncs awaiting a ping round.
    pub(crate) fn backlog(&self) -> usize {
        self.proposals.len() + self.syncs.len()
    }

    pub(crate) fn new(now: u64) -> Leader {
        Leader {
            epoch: 0,
            established: false,
            started: now,
            summary: (0, Zxid(0)),
            learners: BTreeMap::new(),
            epoch_acks: BTreeSet::new(),
            newleader_acks: BTreeSet::new(),
            proposals: BTreeMap::new(),
            last_proposed: Zxid(0),
            overlay: BTreeMap::new(),
            owner_overlay: BTreeMap::new(),
            proposed_sessions: BTreeMap::new(),
            ping_round: 0,
            syncs: Vec::new(),
            tracker: Default::default(),
        }
    }
}

impl Node {
    fn lead(&mut self) -> &mut Leader {
        match &mut self.role {
            Role::Leading(l) => l,
            _ => unreachable!("only a leader has leader state"),
        }
    }

    fn leader_ref(&self) -> &Leader {
        match &self.role {
            Role::Leading(l) => l,
            _ => unreachable!("only a leader has leader state"),
        }
    }

    pub(crate) fn leader_start(&mut self) {
        let summary = (self.current_epoch, self.last_logged());
        self.lead().summary = summary;
        self.check_epoch_quorum();
    }

    /// Discovery: once a quorum of voters (us included) has connected,
    /// propose `1 + max(acceptedEpoch)` and persist it as ours.
    fn check_epoch_quorum(&mut self) {
        let me = self.cfg.sid;
        let l = self.leader_ref();
        if l.epoch != 0 {
            return;
        }
        let connected: Vec<Sid> = l.learners.keys().copied().chain([me]).collect();
        if !self.is_quorum(&connected) {
            return;
        }
        let max = l
            .learners
            .values()
            .map(|p| p.accepted_epoch)
            .chain([self.accepted_epoch])
            .max()
            .expect("we are connected");
        let epoch = max + 1;
        self.accepted_epoch = epoch;
        self.persist_epochs();
        let l = self.lead();
        l.epoch = epoch;
        l.epoch_acks.insert(me);
        let to: Vec<Sid> = l.learners.keys().copied().collect();
        for s in to {
            self.send(s, PeerMsg::LeaderInfo { epoch });
        }
        self.trace();
        self.check_epoch_acks();
    }

    /// On a quorum of ACKEPOCH (us included), persist currentEpoch and
    /// sync everyone who acknowledged.
    fn check_epoch_acks(&mut self) {
        let l = self.leader_ref();
        if l.epoch == 0 || self.current_epoch == l.epoch || !self.is_quorum(&l.epoch_acks) {
            return;
        }
        let epoch = l.epoch;
        let ready: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, p)| matches!(p.phase, Phase::AckedEpoch(_)))
            .map(|(s, _)| *s)
            .collect();
        self.current_epoch = epoch;
        self.persist_epochs();
        for s in ready {
            self.sync_learner(s);
        }
        self.check_established();
    }

    pub(crate) fn leader_recv(&mut self, from: Sid, msg: PeerMsg) {
        let now = self.now;
        if let Some(p) = self.lead().learners.get_mut(&from) {
            p.last_heard = now;
        }
        match msg {
            PeerMsg::LearnerInfo {
                accepted_epoch,
                observer,
            } => self.on_learner_info(from, accepted_epoch, observer),
            PeerMsg::AckEpoch {
                last_zxid,
                current_epoch,
            } => self.on_ack_epoch(from, last_zxid, current_epoch),
            PeerMsg::Ack { zxid } => self.on_ack(from, zxid),
            PeerMsg::PingAck { round, touched } => {
                if let Some(p) = self.lead().learners.get_mut(&from) {
                    p.acked_round = p.acked_round.max(round);
                }
                for s in touched {
                    self.session_touch(s);
                }
                self.check_syncs();
            }
            // Client requests and syncs only from learners this leadership
            // brought up to date: a server still following an earlier
            // leadership of ours has not seen its commits, and confirming
            // its sync would let it serve that stale state as linearizable.
            PeerMsg::Request { session, seq, op } if self.serves_learner(from) => {
                self.leader_submit(from, session, seq, op);
            }
            PeerMsg::Sync { session, seq } if self.serves_learner(from) => {
                self.start_sync(from, session, seq);
            }
            PeerMsg::Revalidate { session } if self.serves_learner(from) => {
                self.leader_revalidate(from, session);
            }
            // Messages meant for learners, or from a stale leadership.
            _ => {}
        }
    }

    /// Whether `s` is a learner of this leadership that was sent UPTODATE
    /// (and the leadership is established).
    fn serves_learner(&self, s: Sid) -> bool {
        let l = self.leader_ref();
        l.established
            && l.learners
                .get(&s)
                .is_some_and(|p| p.phase == Phase::UpToDate)
    }

    fn on_learner_info(&mut self, from: Sid, accepted_epoch: u64, observer: bool) {
        let now = self.now;
        let l = self.lead();
        l.learners.insert(
            from,
            Peer {
                observer,
                accepted_epoch,
                phase: Phase::Registered,
                last_heard: now,
                acked_round: 0,
            },
        );
        l.newleader_acks.remove(&from);
        let epoch = l.epoch;
        if epoch != 0 {
            self.send(from, PeerMsg::LeaderInfo { epoch });
        } else {
            self.check_epoch_quorum();
        }
    }

    fn on_ack_epoch(&mut self, from: Sid, last_zxid: Zxid, current_epoch: Option<u64>) {
        let voter = self.is_voter(from);
        let guard = !self.cfg.bugs.elect_ignore_zxid;
        let l = self.lead();
        let Some(p) = l.learners.get_mut(&from) else {
            return;
        };
        if p.phase != Phase::Registered || l.epoch == 0 {
            return;
        }
        p.phase = Phase::AckedEpoch(last_zxid);
        if let Some(ce) = current_epoch {
            if voter && (ce, last_zxid) > l.summary && guard {
                // A learner knows a more recent history: we must not lead.
                // (elect_ignore_zxid drops this guard too: the lagging
                // leader's history becomes the new epoch's.)
                return self.start_looking();
            }
            if voter {
                l.epoch_acks.insert(from);
            }
        }
        if self.current_epoch == self.leader_ref().epoch {
            self.sync_learner(from);
        } else {
            self.check_epoch_acks();
        }
    }

    /// The point up to which our log is committed, as sync reports it: the
    /// whole log before establishment (it is the new epoch's initial
    /// history), the applied state afterwards.
    fn sync_committed(&self) -> Zxid {
        if self.leader_ref().established {
            self.store.applied
        } else {
            self.last_logged()
        }
    }

    /// The sync decision of ZAB.md §3.3, then the missing entries and
    /// NEWLEADER; from here on the learner gets every broadcast.
    fn sync_learner(&mut self, s: Sid) {
        let l = self.leader_ref();
        let p = &l.learners[&s];
        let Phase::AckedEpoch(peer_last) = p.phase else {
            unreachable!("synced after ACKEPOCH")
        };
        let observer = p.observer;
        let last = self.last_logged();
        let min_c = self.base.applied;
        let skip_trunc = self.cfg.bugs.skip_trunc;
        let committed = self.sync_committed();
        let has = |z: Zxid| z == min_c || self.log.binary_search_by_key(&z, |t| t.zxid).is_ok();
        // ZAB.md §3.3 compares the peer with the last *committed* zxid
        // (maxC): a peer holding more, such as a restarted follower that
        // replayed an uncommitted tail into its state (D4), is cut back to
        // it, and the outstanding proposals follow as PROPOSALs. Before
        // establishment the whole log is the initial history.
        let max_c = committed;
        // (message, entries after this zxid)
        let (head, from) = if peer_last == max_c {
            (PeerMsg::Diff { committed }, max_c)
        } else if peer_last > max_c {
            if skip_trunc {
                (PeerMsg::Diff { committed }, peer_last.min(last))
            } else {
                (
                    PeerMsg::Trunc {
                        to: max_c,
                        committed,
                    },
                    max_c,
                )
            }
        } else if peer_last >= min_c {
            if has(peer_last) || skip_trunc {
                (PeerMsg::Diff { committed }, peer_last)
            } else {
                // The peer holds an orphan: cut back to the largest zxid we
                // share below it.
                let i = self.log.partition_point(|t| t.zxid < peer_last);
                let to = if i == 0 { min_c } else { self.log[i - 1].zxid };
                (PeerMsg::Trunc { to, committed }, to)
            }
        } else {
            // A snapshot holds only what we know committed: before
            // establishment the rest of our initial history may still be
            // truncated by a later leader if we never establish, and a
            // learner cannot truncate into its snapshot. The rest follows
            // as PROPOSALs (and COMMITs), into the learner's log.
            let mut snap = self.base.clone();
            let cut = self.certain.max(min_c).min(committed);
            for t in self.log.iter().take_while(|t| t.zxid <= cut) {
                snap.apply(t);
            }
            let at = snap.applied;
            (
                PeerMsg::Snap {
                    store: Box::new(snap),
                },
                at,
            )
        };
        self.send(s, head);
        let start = self.log.partition_point(|t| t.zxid <= from);
        let entries: Vec<Txn> = self.log[start..].to_vec();
        for txn in entries {
            let z = txn.zxid;
            if observer {
                if z <= committed {
                    self.send(s, PeerMsg::Inform { txn });
                }
            } else {
                self.send(s, PeerMsg::Proposal { txn });
                if z <= committed {
                    self.send(s, PeerMsg::Commit { zxid: z });
                }
            }
        }
        let epoch = self.leader_ref().epoch;
        self.send(s, PeerMsg::NewLeader { epoch });
        self.lead().learners.get_mut(&s).expect("registered").phase = Phase::Syncing;
    }

    fn on_ack(&mut self, from: Sid, zxid: Zxid) {
        let voter = self.is_voter(from);
        let counts = voter || self.cfg.bugs.commit_without_quorum;
        let exact_acks = self.cfg.bugs.out_of_order_commit;
        let l = self.lead();
        let epoch = l.epoch;
        let established = l.established;
        let Some(p) = l.learners.get_mut(&from) else {
            return;
        };
        if zxid == Zxid::new(epoch, 0) && p.phase == Phase::Syncing {
            if established {
                p.phase = Phase::UpToDate;
                self.send(from, PeerMsg::UpToDate);
            } else {
                p.phase = Phase::AckedNewLeader;
                if voter {
                    l.newleader_acks.insert(from);
                }
                self.check_established();
            }
            return;
        }
        if zxid.epoch() == epoch && zxid.counter() > 0 && counts && p.forwarded() {
            if exact_acks {
                // out_of_order_commit: an ACK counts for its own zxid only,
                // so a later proposal can reach its quorum first.
                if let Some(acks) = l.proposals.get_mut(&zxid) {
                    acks.insert(from);
                }
            } else {
                // An ACK of z says the learner's log is durable up to z.
                for (_, acks) in l.proposals.range_mut(..=zxid) {
                    acks.insert(from);
                }
            }
            self.try_commit();
        }
    }

    pub(crate) fn leader_synced(&mut self) {
        let me = self.cfg.sid;
        let synced = self.synced;
        let l = self.lead();
        if l.established {
            for (_, acks) in l.proposals.range_mut(..=synced) {
                acks.insert(me);
            }
            self.try_commit();
        } else {
            self.check_established();
        }
    }

    /// Establishment: a quorum of NEWLEADER ACKs, ours included once our
    /// own log is durable and currentEpoch persisted.
    fn check_established(&mut self) {
        let me = self.cfg.sid;
        let ready = self.synced >= self.last_logged();
        let l = self.leader_ref();
        if l.established || l.epoch == 0 || self.current_epoch != l.epoch || !ready {
            return;
        }
        let acks: Vec<Sid> = l.newleader_acks.iter().copied().chain([me]).collect();
        if !self.is_quorum(&acks) {
            return;
        }
        let epoch = l.epoch;
        let last = self.last_logged();
        let l = self.lead();
        l.established = true;
        l.last_proposed = Zxid::new(epoch, 0);
        self.sessions_establish();
        // The initial history is committed: report what was not known to
        // be committed before.
        self.record_committed(self.certain, last);
        self.certain = self.certain.max(last);
        self.commit_to(last);
        let ready: Vec<Sid> = self
            .leader_ref()
            .learners
            .iter()
            .filter(|(_, p)| p.phase == Phase::AckedNewLeader)
            .map(|(s, _)| *s)
            .collect();
        for s in ready {
            self.lead().learners.get_mut(&s).expect("registered").phase = Phase::UpToDate;
            self.send(s, PeerMsg::UpToDate);
        }
        self.trace();
        self.requests_start_serving();
    }

    pub(crate) fn leader_tick(&mut self) {
        let now = self.now;
        let l = self.leader_ref();
        if !l.established {
            if now.saturating_sub(l.started) > self.cfg.init_limit {
                self.start_looking();
            }
            return;
        }
        // stale_leader_reads: the leader notices a lost quorum only after
        // twenty times syncLimit, serving syncs meanwhile (below).
        let sync_limit = if self.cfg.bugs.stale_leader_reads {
            20 * self.cfg.sync_limit
        } else {
            self.cfg.sync_limit
        };
        let alive: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, p)| p.phase >= Phase::AckedNewLeader && now - p.last_heard <= sync_limit)
            .map(|(s, _)| *s)
            .chain([self.cfg.sid])
            .collect();
        if !self.is_quorum(&alive) {
            return self.start_looking();
        }
        let l = self.lead();
        l.ping_round += 1;
        let round = l.ping_round;
        self.send_pings(round);
        self.sessions_leader_tick();
    }

    pub(crate) fn leader_lost_learner(&mut self, peer: Sid) {
        if self.cfg.bugs.stale_leader_reads {
            // The bug keeps counting a learner whose link broke until the
            // (stretched) syncLimit runs out.
            return;
        }
        let l = self.lead();
        l.learners.remove(&peer);
        l.syncs.retain(|s| s.origin != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Durable, Input, Output};
    use crate::NodeConfig;
    use crate::{Store, TxnOp};

    fn txn(c: u64) -> Txn {
        Txn {
            zxid: Zxid::new(1, c),
            origin: None,
            op: TxnOp::Set {
                key: 1,
                value: c as i64,
            },
        }
    }

    /// Seed 1436 of the default campaign: a prospective leader synced a
    /// lagging learner by SNAP with its whole initial history in the
    /// snapshot, never established, and a later leader without that
    /// history's tail told the learner to TRUNC into its snapshot. A
    /// snapshot sent in SNAP must hold only what the leader knows
    /// committed; the rest goes into the learner's log as PROPOSALs.
    #[test]
    fn a_snap_before_establishment_holds_only_known_committed_txns() {
        // Server 3 restarts holding a snapshot at 1:10 (committed) and
        // 1:11..1:20 in its log, of which it knows none committed.
        let mut snapshot = Store::default();
        for c in 1..=10 {
            snapshot.apply(&txn(c));
        }
        let mut n = Node::new(NodeConfig::new(3, vec![1, 2, 3], vec![]));
        n.step(Input::Recover(Durable {
            accepted_epoch: 1,
            current_epoch: 1,
            snapshot,
            log: (11..=20).map(txn).collect(),
        }));
        n.role = Role::Leading(Box::new(Leader::new(n.now)));
        n.leader_start();
        for s in [1, 2] {
            n.step(Input::Recv {
                from: s,
                msg: PeerMsg::LearnerInfo {
                    accepted_epoch: 1,
                    observer: false,
                },
            });
        }
        // Server 1 is behind the snapshot; server 2 is not.
        n.step(Input::Recv {
            from: 2,
            msg: PeerMsg::AckEpoch {
                last_zxid: Zxid::new(1, 20),
                current_epoch: Some(1),
            },
        });
        let out = n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::AckEpoch {
                last_zxid: Zxid::new(1, 5),
                current_epoch: Some(1),
            },
        });
        let to_1: Vec<&PeerMsg> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send { to: 1, msg } => Some(msg),
                _ => None,
            })
            .collect();
        let Some(PeerMsg::Snap { store }) = to_1.first() else {
            panic!("a SNAP first: {to_1:?}")
        };
        assert_eq!(store.applied, Zxid::new(1, 10), "only the committed part");
        let proposed: Vec<Zxid> = to_1
            .iter()
            .filter_map(|m| match m {
                PeerMsg::Proposal { txn } => Some(txn.zxid),
                _ => None,
            })
            .collect();
        assert_eq!(
            proposed,
            (11..=20).map(|c| Zxid::new(1, c)).collect::<Vec<_>>()
        );
        assert!(matches!(to_1.last(), Some(PeerMsg::NewLeader { .. })));
    }
}
