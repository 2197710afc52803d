//! Followers and observers: registration, synchronization (§3.3, rule D3)
//! and broadcast (§3.4) from the learner's side.

use crate::core::{Node, Output, Persist, ProtocolEvent, Role, SyncMode};
use crate::msg::PeerMsg;
use crate::{Sid, Txn, Zxid};

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Sent LEARNERINFO; waiting for LEADERINFO.
    Registering,
    /// Sent ACKEPOCH; waiting for DIFF, TRUNC or SNAP.
    Discovered { epoch: u64 },
    /// Receiving the initial history.
    Syncing {
        epoch: u64,
        snap: bool,
        txns: Vec<Txn>,
        committed: Zxid,
    },
    /// Got NEWLEADER; waiting for the synced txns (through `upto`) to be
    /// durable. PROPOSALs, COMMITs and INFORMs the leader forwards
    /// meanwhile are logged and noted, as ZooKeeper queues them.
    Persisting {
        epoch: u64,
        committed: Zxid,
        upto: Zxid,
    },
    /// ACKed NEWLEADER; waiting for UPTODATE.
    WaitUpToDate { epoch: u64 },
    /// Serving clients, following the broadcast.
    Broadcast { epoch: u64 },
}

/// A follower's or observer's state.
#[derive(Debug)]
pub(crate) struct Learner {
    pub(crate) leader: Sid,
    pub(crate) observer: bool,
    phase: Phase,
    last_heard: u64,
    /// The phase seen at the last tick and the tick it was first seen.
    watched: (std::mem::Discriminant<Phase>, u64),
}

impl Learner {
    pub(crate) fn new(leader: Sid, observer: bool, now: u64) -> Learner {
        Learner {
            leader,
            observer,
            phase: Phase::Registering,
            last_heard: now,
            watched: (std::mem::discriminant(&Phase::Registering), now),
        }
    }

    pub(crate) fn up_to_date(&self) -> bool {
        matches!(self.phase, Phase::Broadcast { .. })
    }
}

impl Node {
    fn learner(&mut self) -> &mut Learner {
        match &mut self.role {
            Role::Learning(l) => l,
            _ => unreachable!("only a learner has learner state"),
        }
    }

    fn learner_ref(&self) -> &Learner {
        match &self.role {
            Role::Learning(l) => l,
            _ => unreachable!("only a learner has learner state"),
        }
    }

    pub(crate) fn learner_start(&mut self) {
        let l = self.learner_ref();
        let (leader, observer) = (l.leader, l.observer);
        let msg = PeerMsg::LearnerInfo {
            accepted_epoch: self.accepted_epoch,
            observer,
        };
        self.send(leader, msg);
    }

    pub(crate) fn learner_tick(&mut self) {
        // A leader that was still LOOKING when our LEARNERINFO arrived
        // dropped it: repeat it until LEADERINFO comes (ZooKeeper's learner
        // retries its connection to the leader likewise).
        if self.learner_ref().phase == Phase::Registering && self.now.is_multiple_of(2) {
            self.learner_start();
        }
        let now = self.now;
        let l = self.learner();
        let phase = std::mem::discriminant(&l.phase);
        if phase != l.watched.0 {
            l.watched = (phase, now);
        }
        let l = self.learner_ref();
        let limit = if l.up_to_date() {
            self.cfg.sync_limit
        } else {
            self.cfg.init_limit
        };
        if now.saturating_sub(l.last_heard) > limit {
            return self.start_looking();
        }
        // Pings keep a link alive even when a frame of the sync was lost
        // inside it (simulated TCP never retransmits): a sync that makes no
        // progress for `sync_patience` ticks is given up and started again,
        // with twice the patience next time.
        if !l.up_to_date() && now.saturating_sub(l.watched.1) > self.sync_patience {
            self.sync_patience = (2 * self.sync_patience).min(64 * self.cfg.init_limit);
            return self.protocol_error("sync stalled");
        }
        self.sessions_learner_tick();
    }

    pub(crate) fn learner_recv(&mut self, msg: PeerMsg) {
        let now = self.now;
        self.learner().last_heard = now;
        match msg {
            PeerMsg::LeaderInfo { epoch } => self.on_leader_info(epoch),
            PeerMsg::Diff { .. } | PeerMsg::Trunc { .. } | PeerMsg::Snap { .. } => {
                self.on_sync_mode(msg)
            }
            PeerMsg::Proposal { txn } => self.on_proposal(txn),
            PeerMsg::Commit { zxid } => self.on_commit(zxid),
            PeerMsg::Inform { txn } => self.on_inform(txn),
            PeerMsg::NewLeader { epoch } => self.on_new_leader(epoch),
            PeerMsg::UpToDate => self.on_up_to_date(),
            PeerMsg::Ping { round } => {
                let leader = self.learner_ref().leader;
                let touched = self.take_touched();
                self.send(leader, PeerMsg::PingAck { round, touched });
            }
            PeerMsg::Executed {
                session,
                seq,
                outcome,
                zxid,
            } => self.requests_executed(session, seq, outcome, zxid),
            PeerMsg::SyncDone { session, seq } => self.requests_sync_done(session, seq),
            PeerMsg::Revalidated { session, alive } => self.on_revalidated(session, alive),
            _ => {}
        }
    }

    /// A packet the protocol does not allow here: ZooKeeper shuts the
    /// learner down; we go back to LOOKING. `_why` documents the cause.
    fn protocol_error(&mut self, why: &str) {
        self.out.push(Output::Event(ProtocolEvent::ProtocolError {
            reason: why.to_string(),
        }));
        self.start_looking();
    }

    fn on_leader_info(&mut self, epoch: u64) {
        match self.learner_ref().phase {
            Phase::Registering => {}
            // The answer to a repeated LEARNERINFO.
            Phase::Discovered { epoch: e } if e == epoch => return,
            _ => return self.protocol_error("LEADERINFO out of order"),
        }
        let last = self.last_logged();
        let reply = if self.cfg.bugs.no_epoch_fencing {
            // No promise is persisted or checked.
            PeerMsg::AckEpoch {
                last_zxid: last,
                current_epoch: Some(self.current_epoch),
            }
        } else if epoch > self.accepted_epoch {
            self.accepted_epoch = epoch;
            self.persist_epochs(); // D2: durable before ACKEPOCH
            PeerMsg::AckEpoch {
                last_zxid: last,
                current_epoch: Some(self.current_epoch),
            }
        } else if epoch == self.accepted_epoch {
            PeerMsg::AckEpoch {
                last_zxid: last,
                current_epoch: None,
            }
        } else {
            return self.start_looking();
        };
        let leader = self.learner_ref().leader;
        self.send(leader, reply);
        self.learner().phase = Phase::Discovered { epoch };
    }

    fn on_sync_mode(&mut self, msg: PeerMsg) {
        let Phase::Discovered { epoch } = self.learner_ref().phase else {
            return self.protocol_error("sync out of order");
        };
        let mut snap = false;
        let mode = match &msg {
            PeerMsg::Trunc { to, .. } => SyncMode::Trunc(*to),
            PeerMsg::Snap { store } => SyncMode::Snap(store.applied),
            _ => SyncMode::Diff,
        };
        let leader = self.learner_ref().leader;
        self.out.push(Output::Event(ProtocolEvent::Sync {
            leader,
            epoch,
            mode,
        }));
        // What the leader says is committed, of what we hold after this.
        let mut committed = self.store.applied;
        match msg {
            PeerMsg::Diff { committed: c } => {
                committed = committed.max(c.min(self.last_logged()));
            }
            PeerMsg::Trunc { to, committed: c } => {
                assert!(
                    to >= self.certain,
                    "I4: server {} told to truncate to {} below committed {}",
                    self.cfg.sid,
                    to,
                    self.certain
                );
                self.truncate(to);
                committed = self.store.applied.max(c.min(to));
            }
            PeerMsg::Snap { store } => {
                assert!(
                    store.applied >= self.certain,
                    "I4: server {} got a snapshot at {} below committed {}",
                    self.cfg.sid,
                    store.applied,
                    self.certain
                );
                // Replaced in memory; made durable at NEWLEADER (D3a).
                self.base = (*store).clone();
                self.store = *store;
                self.log.clear();
                self.synced = self.store.applied;
                self.refresh_membership();
                committed = self.store.applied;
                snap = true;
            }
            _ => unreachable!("only sync modes reach here"),
        }
        self.learner().phase = Phase::Syncing {
            epoch,
            snap,
            txns: Vec::new(),
            committed,
        };
    }

    fn on_proposal(&mut self, txn: Txn) {
        let last = self.last_logged();
        let observer = self.learner_ref().observer;
        match &mut self.learner().phase {
            Phase::Syncing { txns, .. } => {
                // §3.3: zxid = last + 1, a jump only into a new epoch's
                // first txn; a gap (a frame lost inside a link) must not
                // become a hole in the log.
                let prev = txns.last().map_or(last, |t| t.zxid);
                let next = txn.zxid == prev.next()
                    || (txn.zxid.epoch() > prev.epoch() && txn.zxid.counter() == 1);
                if !next {
                    return self.protocol_error("sync proposal out of order");
                }
                txns.push(txn);
            }
            Phase::Persisting { epoch, .. }
            | Phase::WaitUpToDate { epoch }
            | Phase::Broadcast { epoch }
                if !observer =>
            {
                // I6: PROPOSAL = lastQueued + 1 within an epoch; a jump only
                // into a new epoch (J4925).
                let epoch = *epoch;
                let in_order = txn.zxid == last.next()
                    || (txn.zxid.epoch() > last.epoch() && txn.zxid.counter() == 1);
                if !in_order || txn.zxid.epoch() != epoch {
                    return self.protocol_error("proposal out of order");
                }
                let z = txn.zxid;
                self.append(vec![txn]);
                if self.cfg.bugs.ack_before_fsync {
                    let leader = self.learner_ref().leader;
                    self.send(leader, PeerMsg::Ack { zxid: z });
                }
            }
            _ => self.protocol_error("unexpected proposal"),
        }
    }

    fn on_commit(&mut self, zxid: Zxid) {
        let last = self.last_logged();
        match &mut self.learner().phase {
            Phase::Syncing { committed, .. } => *committed = (*committed).max(zxid),
            // Applied, in order, once NEWLEADER is acknowledged.
            Phase::Persisting { committed, .. } if zxid <= last => {
                *committed = (*committed).max(zxid)
            }
            Phase::WaitUpToDate { .. } | Phase::Broadcast { .. } => {
                let head = self
                    .log
                    .get(self.log.partition_point(|t| t.zxid <= self.store.applied))
                    .map(|t| t.zxid);
                if head == Some(zxid) {
                    self.certain = self.certain.max(zxid);
                    self.commit_to(zxid);
                } else if self.cfg.bugs.out_of_order_commit {
                    if let Ok(i) = self.log.binary_search_by_key(&zxid, |t| t.zxid) {
                        let txn = self.log[i].clone();
                        if txn.zxid > self.store.applied {
                            self.store.apply(&txn);
                            self.requests_on_applied(&txn);
                        }
                    }
                } else {
                    // I6: COMMIT must match the pending head.
                    self.protocol_error("commit does not match the pending head");
                }
            }
            _ => self.protocol_error("unexpected commit"),
        }
    }

    fn on_inform(&mut self, txn: Txn) {
        if !self.learner_ref().observer {
            return self.protocol_error("INFORM to a follower");
        }
        let last = self.last_logged();
        match &mut self.learner().phase {
            Phase::Syncing {
                txns, committed, ..
            } => {
                if txn.zxid <= txns.last().map_or(last, |t| t.zxid) {
                    return self.protocol_error("inform out of order");
                }
                *committed = txn.zxid;
                txns.push(txn);
            }
            Phase::Persisting { committed, .. } => {
                if txn.zxid <= last {
                    return self.protocol_error("inform out of order");
                }
                // Logged now, applied once NEWLEADER is acknowledged.
                *committed = txn.zxid;
                self.append(vec![txn]);
            }
            Phase::WaitUpToDate { .. } | Phase::Broadcast { .. } => {
                if txn.zxid <= last {
                    return self.protocol_error("inform out of order");
                }
                // D5: observers log only committed txns.
                let z = txn.zxid;
                self.append(vec![txn]);
                self.certain = self.certain.max(z);
                self.commit_to(z);
            }
            _ => self.protocol_error("unexpected inform"),
        }
    }

    /// D3: persist the snapshot (SNAP), append and fsync the synced txns,
    /// then persist currentEpoch, and only then ACK NEWLEADER.
    fn on_new_leader(&mut self, epoch: u64) {
        let phase = std::mem::replace(&mut self.learner().phase, Phase::Registering);
        let Phase::Syncing {
            epoch: e,
            snap,
            txns,
            committed,
        } = phase
        else {
            return self.protocol_error("NEWLEADER out of order");
        };
        if e != epoch {
            return self.protocol_error("NEWLEADER for another epoch");
        }
        // The configuration follows from the synced history itself (the
        // store and any reconfig in the log).
        if snap {
            self.persist(Persist::Install(Box::new(self.base.clone())));
        }
        self.append(txns);
        let upto = self.last_logged();
        self.learner().phase = Phase::Persisting {
            epoch,
            committed,
            upto,
        };
        if self.cfg.bugs.ack_newleader_early || self.synced >= upto {
            self.finish_new_leader();
        }
    }

    fn finish_new_leader(&mut self) {
        let Phase::Persisting {
            epoch, committed, ..
        } = self.learner_ref().phase
        else {
            unreachable!("called while persisting")
        };
        self.commit_to(committed);
        self.current_epoch = epoch;
        if self.accepted_epoch < epoch {
            // Only under no_epoch_fencing, which skipped the promise.
            self.accepted_epoch = epoch;
        }
        self.persist_epochs();
        let l = self.learner_ref();
        let (leader, observer) = (l.leader, l.observer);
        self.send(
            leader,
            PeerMsg::Ack {
                zxid: Zxid::new(epoch, 0),
            },
        );
        // Outstanding proposals of this epoch received during sync, as far
        // as they are durable (D1); the rest are ACKed as their fsync ends.
        let synced = self.synced;
        if !observer && synced.epoch() == epoch && synced.counter() > 0 {
            self.send(leader, PeerMsg::Ack { zxid: synced });
        }
        self.learner().phase = Phase::WaitUpToDate { epoch };
    }

    fn on_up_to_date(&mut self) {
        let Phase::WaitUpToDate { epoch } = self.learner_ref().phase else {
            return self.protocol_error("UPTODATE out of order");
        };
        self.learner().phase = Phase::Broadcast { epoch };
        self.sync_patience = 2 * self.cfg.init_limit;
        // The leader is established: its initial history is committed.
        self.certain = self.certain.max(self.store.applied);
        self.trace();
        self.requests_start_serving();
    }

    pub(crate) fn learner_synced(&mut self) {
        let synced = self.synced;
        let l = self.learner_ref();
        let (leader, observer) = (l.leader, l.observer);
        match l.phase {
            Phase::Persisting { upto, .. } if synced >= upto => self.finish_new_leader(),
            Phase::WaitUpToDate { epoch } | Phase::Broadcast { epoch }
                if !observer
                    && !self.cfg.bugs.ack_before_fsync
                    && synced.epoch() == epoch
                    && synced.counter() > 0 =>
            {
                // D1: ACK once durable; one ACK covers every zxid up to it.
                self.send(leader, PeerMsg::Ack { zxid: synced });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Durable, Input};
    use crate::NodeConfig;
    use crate::TxnOp;

    fn txn(e: u64, c: u64) -> Txn {
        Txn {
            zxid: Zxid::new(e, c),
            origin: None,
            op: TxnOp::Set {
                key: 1,
                value: c as i64,
            },
        }
    }

    /// Server 2, following server 1, told to sync by DIFF from scratch.
    fn syncing_learner() -> Node {
        syncing_learner_with(NodeConfig::new(2, vec![1, 2, 3], vec![]))
    }

    /// The same with this configuration.
    fn syncing_learner_with(cfg: NodeConfig) -> Node {
        let mut n = Node::new(cfg);
        n.step(Input::Recover(Durable::default()));
        n.role = Role::Learning(Learner::new(1, false, 0));
        n.learner().phase = Phase::Discovered { epoch: 2 };
        n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::Diff {
                committed: Zxid::new(1, 3),
            },
        });
        n
    }

    fn proposal(n: &mut Node, t: Txn) -> Vec<Output> {
        n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::Proposal { txn: t },
        })
    }

    fn dropped_leader(out: &[Output]) -> bool {
        out.iter()
            .any(|o| matches!(o, Output::Event(ProtocolEvent::ProtocolError { .. })))
    }

    /// The leader keeps pinging (so the learner never times out on
    /// silence) while the sync makes no progress: the learner must go back
    /// to LOOKING within its patience.
    fn gives_up_while_pinged(n: &mut Node) {
        for round in 0..n.sync_patience + 2 {
            n.step(Input::Tick);
            n.step(Input::Recv {
                from: 1,
                msg: PeerMsg::Ping { round },
            });
        }
        assert_eq!(n.state(), crate::PeerState::Looking, "still waiting");
    }

    /// Issue 18: a learner whose sync stalls (here UPTODATE never comes,
    /// as when its frame is lost inside a link that pings keep alive) gives
    /// up and looks for a leader again, as ZooKeeper's initLimit makes it.
    #[test]
    fn a_stalled_sync_is_given_up() {
        let mut n = syncing_learner();
        n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::NewLeader { epoch: 2 },
        });
        n.step(Input::Synced(Zxid(0)));
        assert!(matches!(n.learner_ref().phase, Phase::WaitUpToDate { .. }));
        gives_up_while_pinged(&mut n);
    }

    /// Issue 18's seeds 23 and 109: the follower never got its sync mode
    /// (its ACKEPOCH or the leader's DIFF lost inside the link) and waited
    /// in discovery while the leader's pings kept it from timing out.
    #[test]
    fn a_stalled_discovery_is_given_up() {
        let mut n = Node::new(NodeConfig::new(2, vec![1, 2, 3], vec![]));
        n.step(Input::Recover(Durable::default()));
        n.role = Role::Learning(Learner::new(1, false, 0));
        n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::LeaderInfo { epoch: 2 },
        });
        assert!(matches!(n.learner_ref().phase, Phase::Discovered { .. }));
        gives_up_while_pinged(&mut n);
    }

    /// Seed 42 of `mixes` (packet-loss): a learner applies a prospective
    /// leader's initial history at NEWLEADER, before UPTODATE says it is
    /// committed; a snapshot written then held txns a later leader
    /// truncated, and the server's files recovered them after a restart.
    /// No snapshot may hold a txn not known committed.
    #[test]
    fn no_snapshot_before_the_initial_history_is_known_committed() {
        let mut cfg = NodeConfig::new(2, vec![1, 2, 3], vec![]);
        cfg.snapshot_interval = 2;
        let mut n = syncing_learner_with(cfg);
        for c in 1..=3 {
            proposal(&mut n, txn(1, c));
            n.step(Input::Recv {
                from: 1,
                msg: PeerMsg::Commit {
                    zxid: Zxid::new(1, c),
                },
            });
        }
        let mut out = n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::NewLeader { epoch: 2 },
        });
        out.extend(n.step(Input::Synced(Zxid::new(1, 3))));
        assert_eq!(n.store.applied, Zxid::new(1, 3), "applied at NEWLEADER");
        let snapshots = |out: &[Output]| {
            out.iter()
                .filter(|o| matches!(o, Output::Persist(crate::core::Persist::Snapshot(_))))
                .count()
        };
        assert_eq!(snapshots(&out), 0, "not known committed yet");
        n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::UpToDate,
        });
        // Committed now: the next fsync or commit may snapshot.
        proposal(&mut n, txn(2, 1));
        let mut out = n.step(Input::Synced(Zxid::new(2, 1)));
        out.extend(n.step(Input::Recv {
            from: 1,
            msg: PeerMsg::Commit {
                zxid: Zxid::new(2, 1),
            },
        }));
        assert_eq!(snapshots(&out), 1);
    }

    /// (c) §3.3: during sync each PROPOSAL must be the last one + 1 (or a
    /// new epoch's first txn); a gap means a lost frame.
    #[test]
    fn sync_proposals_must_be_contiguous() {
        let mut n = syncing_learner();
        assert!(!dropped_leader(&proposal(&mut n, txn(1, 1))));
        assert!(!dropped_leader(&proposal(&mut n, txn(1, 2))));
        // 1:3 was lost on the way.
        assert!(dropped_leader(&proposal(&mut n, txn(1, 4))));
        assert_eq!(n.state(), crate::PeerState::Looking);

        let mut n = syncing_learner();
        assert!(!dropped_leader(&proposal(&mut n, txn(1, 1))));
        // A new epoch starts at counter 1, not later.
        assert!(dropped_leader(&proposal(&mut n, txn(2, 2))));
        let mut n = syncing_learner();
        assert!(!dropped_leader(&proposal(&mut n, txn(1, 1))));
        assert!(!dropped_leader(&proposal(&mut n, txn(2, 1))));
    }
}
