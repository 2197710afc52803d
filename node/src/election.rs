//! Fast leader election (ZAB.md §3.1, `FastLeaderElection.lookForLeader`).
//!
//! Votes are ordered by `(epoch, zxid, sid)`; a non-voter never wins. A
//! LOOKING server adopts better votes, rebroadcasts, and decides once the
//! votes equal to its own form a quorum and `finalize_wait` ticks bring no
//! better one. Servers that already follow or lead answer LOOKING senders
//! with their vote, so a restarted server, an observer or a joiner finds an
//! established leader once a quorum reports it and it reports LEADING.
//! The result is only a hint: safety comes from discovery (§3.2).

use crate::core::{Node, Role};
use crate::leader::Leader;
use crate::learner::Learner;
use crate::msg::{PeerMsg, PeerState, Vote};
use crate::{Sid, Zxid};
use std::collections::BTreeMap;

/// The state of one election.
#[derive(Debug)]
pub(crate) struct Election {
    /// Votes of this round from voters (including our own).
    recv: BTreeMap<Sid, Vote>,
    /// Votes of servers that are no longer looking, with their state.
    out_of_election: BTreeMap<Sid, (Vote, PeerState)>,
    /// When to decide, once a quorum agrees with our vote.
    finalize_at: Option<u64>,
    /// When to send our notifications again.
    next_notify: u64,
    interval: u64,
}

impl Election {
    pub(crate) fn new(now: u64, interval: u64) -> Election {
        Election {
            recv: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            finalize_at: None,
            next_notify: now + interval,
            interval,
        }
    }
}

impl Node {
    /// Our own vote: ourselves with our `(currentEpoch, lastLoggedZxid)`;
    /// a non-voter's (observer's or joiner's) vote names nobody and loses
    /// to every voter's.
    pub(crate) fn initial_vote(&self) -> Vote {
        if !self.is_voter(self.cfg.sid) {
            Vote {
                leader: 0,
                zxid: Zxid(0),
                epoch: 0,
            }
        } else {
            Vote {
                leader: self.cfg.sid,
                zxid: self.last_logged(),
                epoch: self.current_epoch,
            }
        }
    }

    /// Whether vote `a` beats vote `b`.
    fn better(&self, a: &Vote, b: &Vote) -> bool {
        if !self.is_voter(a.leader) {
            return false;
        }
        if !self.is_voter(b.leader) {
            return true;
        }
        if self.cfg.bugs.elect_ignore_zxid {
            return a.leader > b.leader;
        }
        a.key() > b.key()
    }

    fn election(&mut self) -> &mut Election {
        match &mut self.role {
            Role::Looking(e) => e,
            _ => unreachable!("only a looking server has an election"),
        }
    }

    fn notification(&self) -> PeerMsg {
        PeerMsg::Notification {
            vote: self.vote,
            round: self.round,
            state: self.state(),
        }
    }

    fn broadcast_vote(&mut self) {
        let msg = self.notification();
        for p in self.peers() {
            self.send(p, msg.clone());
        }
    }

    pub(crate) fn election_start(&mut self) {
        let (me, vote) = (self.cfg.sid, self.vote);
        if self.is_voter(me) {
            self.election().recv.insert(me, vote);
        }
        self.broadcast_vote();
        self.check_decision();
    }

    pub(crate) fn election_tick(&mut self) {
        let now = self.now;
        let max = self.cfg.max_notification_interval;
        let e = self.election();
        if e.finalize_at.is_some_and(|t| now >= t) {
            return self.decide();
        }
        if now >= e.next_notify {
            e.interval = (e.interval * 2).min(max);
            e.next_notify = now + e.interval;
            self.broadcast_vote();
        }
    }

    pub(crate) fn on_notification(&mut self, from: Sid, vote: Vote, round: u64, state: PeerState) {
        let me = self.cfg.sid;
        let known = self.peers();
        for s in [from, vote.leader] {
            if s != 0 && s != me && !known.contains(&s) {
                self.heard_of.insert(s);
                if matches!(self.role, Role::Looking(_)) && s != from {
                    // Ask the leader we just heard of for its vote.
                    let msg = self.notification();
                    self.send(s, msg);
                }
            }
        }
        if !matches!(self.role, Role::Looking(_)) {
            // Help a looking server find us (or our leader).
            if state == PeerState::Looking {
                let msg = self.notification();
                self.send(from, msg);
            }
            return;
        }
        if state == PeerState::Looking {
            self.looking_notification(from, vote, round);
        } else {
            self.settled_notification(from, vote, round, state);
        }
    }

    fn looking_notification(&mut self, from: Sid, vote: Vote, round: u64) {
        if round < self.round {
            // A laggard: tell it where we are.
            let msg = self.notification();
            self.send(from, msg);
            return;
        }
        if round > self.round {
            self.round = round;
            self.election().recv.clear();
            let mine = self.initial_vote();
            self.vote = if self.better(&vote, &mine) {
                vote
            } else {
                mine
            };
            self.election().finalize_at = None;
            let (me, v) = (self.cfg.sid, self.vote);
            if self.is_voter(me) {
                self.election().recv.insert(me, v);
            }
            self.broadcast_vote();
        } else if self.better(&vote, &self.vote) {
            self.vote = vote;
            self.election().finalize_at = None;
            let (me, v) = (self.cfg.sid, self.vote);
            if self.is_voter(me) {
                self.election().recv.insert(me, v);
            }
            self.broadcast_vote();
        }
        if self.is_voter(from) {
            self.election().recv.insert(from, vote);
        }
        self.check_decision();
    }

    /// A quorum of this round's votes equal to ours starts the finalize
    /// wait.
    fn check_decision(&mut self) {
        let vote = self.vote;
        let agreeing: Vec<Sid> = self
            .election()
            .recv
            .iter()
            .filter(|(_, v)| **v == vote)
            .map(|(s, _)| *s)
            .collect();
        if self.is_voter(vote.leader) && self.is_quorum(&agreeing) {
            let at = self.now + self.cfg.finalize_wait;
            let e = self.election();
            if e.finalize_at.is_none() {
                e.finalize_at = Some(at);
            }
        }
    }

    fn settled_notification(&mut self, from: Sid, vote: Vote, round: u64, state: PeerState) {
        self.election().out_of_election.insert(from, (vote, state));
        if round == self.round && self.is_voter(from) {
            self.election().recv.insert(from, vote);
        }
        // Join an established leader: a quorum of voters report it, and it
        // reports LEADING itself.
        let leader = vote.leader;
        let ooe = &self.election().out_of_election;
        let reporting: Vec<Sid> = ooe
            .iter()
            .filter(|(_, (v, s))| v.leader == leader && *s != PeerState::Looking)
            .map(|(s, _)| *s)
            .collect();
        let leads = ooe
            .get(&leader)
            .is_some_and(|(_, s)| *s == PeerState::Leading);
        if leads && leader != self.cfg.sid && self.is_quorum(&reporting) {
            self.round = round.max(self.round);
            self.vote = vote;
            self.follow(leader);
        }
    }

    fn decide(&mut self) {
        let leader = self.vote.leader;
        if leader == self.cfg.sid {
            self.role = Role::Leading(Box::new(Leader::new(self.now)));
            self.trace();
            self.leader_start();
        } else {
            self.follow(leader);
        }
    }

    fn follow(&mut self, leader: Sid) {
        let observer = self.is_observer();
        self.role = Role::Learning(Learner::new(leader, observer, self.now));
        self.trace();
        self.learner_start();
    }
}
