//! Sessions (ZAB.md §9): timeouts, touches, expiry by the leader alone,
//! ephemeral keys, and no expiry while there is no leader.
//!
//! * Every client request and ping touches its session at the server it
//!   reaches. A learner keeps the sessions touched since its last PING
//!   reply and sends them with the next one; the leader touches each.
//! * Only an established leader expires: its tracker holds a deadline per
//!   open session; a session past its deadline is marked closing (none of
//!   its new requests is accepted) and `closeSession` is proposed, which
//!   deletes the session's ephemeral keys in the same txn.
//! * A newly established leader gives every open session a full fresh
//!   timeout, so the time without a leader never counts.
//! * A learner that gets a request of a session it has not seen since it
//!   began following asks the leader whether the session lives (ZooKeeper's
//!   REVALIDATE, on a client's reconnect) and holds the session's requests
//!   until it knows: a live session goes on (and was touched at the
//!   leader), a dead or closing one gets `SessionExpired`.

use crate::core::{Node, Role};
use crate::msg::PeerMsg;
use crate::{ClientOp, Outcome, Txn, TxnOp};
use std::collections::{BTreeMap, BTreeSet};

/// A server's session bookkeeping that is not replicated.
#[derive(Debug, Default)]
pub(crate) struct Touches {
    /// Sessions touched here since the last PING reply (learners).
    touched: BTreeSet<u64>,
    /// When this server last lost (or left) its leadership: the tick it
    /// started looking.
    lost_leader_at: u64,
    /// `follower_local_expiry`: deadlines by this server's own clock, for
    /// the sessions that touched it.
    local: BTreeMap<u64, u64>,
    /// Sessions the leader confirmed alive to this learner since it began
    /// following it.
    known: BTreeSet<u64>,
}

/// The leader's session tracker.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Open sessions and the tick their timeout runs out.
    deadlines: BTreeMap<u64, u64>,
    /// Sessions whose closeSession is proposed: no new request of theirs
    /// is accepted.
    closing: BTreeSet<u64>,
}

impl Node {
    fn tracker(&mut self) -> Option<&mut Tracker> {
        match &mut self.role {
            Role::Leading(l) if l.established => Some(&mut l.tracker),
            _ => None,
        }
    }

    /// The session timeout granted for a request of `asked` ticks.
    pub(crate) fn clamp_timeout(&self, asked: u64) -> u64 {
        asked.clamp(self.cfg.min_session_timeout, self.cfg.max_session_timeout)
    }

    /// A request or ping of `session` reached this server.
    pub(crate) fn session_touch(&mut self, session: u64) {
        let now = self.now;
        if self.cfg.bugs.follower_local_expiry {
            if let Some(&t) = self.store.live.get(&session) {
                self.touches.local.insert(session, now + t);
            }
        }
        let timeout = self.store.live.get(&session).copied();
        match self.tracker() {
            Some(tr) => {
                if let (Some(d), Some(t)) = (tr.deadlines.get_mut(&session), timeout) {
                    *d = now + t;
                }
            }
            None => {
                self.touches.touched.insert(session);
            }
        }
    }

    /// The sessions touched here since the last report, for a PING reply.
    pub(crate) fn take_touched(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.touches.touched)
            .into_iter()
            .collect()
    }

    /// This server stopped following or leading.
    pub(crate) fn sessions_lost_leader(&mut self) {
        self.touches.lost_leader_at = self.now;
        self.touches.known.clear();
    }

    /// Whether this server may run `op` of `session` without asking the
    /// leader first: a leader knows its sessions; a learner knows those the
    /// leader confirmed to it; opening a session goes to the leader anyway.
    pub(crate) fn session_known_here(&self, session: u64, op: &ClientOp) -> bool {
        !matches!(self.role, Role::Learning(_))
            || matches!(op, ClientOp::CreateSession { .. })
            || self.touches.known.contains(&session)
    }

    /// Holds a request of a session this learner does not know and asks
    /// the leader about the session (again for each request that joins the
    /// wait, so that a lost question is asked again; the first answer
    /// releases them all).
    pub(crate) fn revalidate(&mut self, conn: u64, req: crate::ClientRequest) {
        let Role::Learning(l) = &self.role else {
            unreachable!("only learners revalidate")
        };
        let leader = l.leader;
        let session = req.session;
        let waiting = self.requests.revalidating.entry(session).or_default();
        waiting.push((conn, req));
        self.send(leader, PeerMsg::Revalidate { session });
    }

    /// The leader's answer to a REVALIDATE: the waiting requests run (the
    /// session lives) or get `SessionExpired`.
    pub(crate) fn on_revalidated(&mut self, session: u64, alive: bool) {
        let Some(waiting) = self.requests.revalidating.remove(&session) else {
            return;
        };
        if alive {
            self.touches.known.insert(session);
        }
        for (conn, req) in waiting {
            if alive {
                self.on_client(conn, req);
            } else {
                let z = self.store.applied;
                self.reply(conn, session, req.seq, Outcome::SessionExpired, z);
            }
        }
    }

    /// The leader answers a learner's REVALIDATE: a session lives if it
    /// was not closed and is not closing (a session never opened is
    /// sessionless and lives); a live one is touched.
    pub(crate) fn leader_revalidate(&mut self, from: crate::Sid, session: u64) {
        let closing = self
            .tracker()
            .is_some_and(|tr| tr.closing.contains(&session));
        let alive = !closing && !self.store.closed.contains(&session);
        if alive {
            self.session_touch(session);
        }
        self.send(from, PeerMsg::Revalidated { session, alive });
    }

    /// A leader was just established: every open session gets a full fresh
    /// timeout, so the time without a leader never counts (with
    /// `expire_during_election`, the clock ran on from when this server
    /// lost its previous leader). What touched us before is covered by
    /// the fresh timeouts.
    pub(crate) fn sessions_establish(&mut self) {
        let start = if self.cfg.bugs.expire_during_election {
            self.touches.lost_leader_at
        } else {
            self.now
        };
        let deadlines = self
            .store
            .live
            .iter()
            .map(|(s, t)| (*s, start + t))
            .collect();
        self.touches.touched.clear();
        if let Some(tr) = self.tracker() {
            tr.deadlines = deadlines;
            tr.closing.clear();
        }
    }

    /// A txn was applied here: the leader tracks sessions opened and drops
    /// sessions closed.
    pub(crate) fn sessions_on_applied(&mut self, txn: &Txn) {
        let now = self.now;
        match txn.op {
            TxnOp::CreateSession { session, timeout } => {
                if let Some(tr) = self.tracker() {
                    tr.deadlines.insert(session, now + timeout);
                }
            }
            TxnOp::CloseSession { session, .. } => {
                self.touches.local.remove(&session);
                if let Some(tr) = self.tracker() {
                    tr.deadlines.remove(&session);
                    tr.closing.remove(&session);
                }
            }
            _ => {}
        }
    }

    /// Whether the leader accepts `op` of `session` now. An open session
    /// must not be closing (`orphan_ephemeral` skips that check for an
    /// ephemeral create); a closed one is refused; a session never opened
    /// is sessionless, which may do anything but own ephemeral keys or be
    /// closed. Opening a session is accepted unless it was closed.
    pub(crate) fn session_admits(&mut self, session: u64, op: &ClientOp) -> bool {
        if self.store.closed.contains(&session) {
            return false;
        }
        let open = self.store.live.contains_key(&session);
        let closing = self
            .tracker()
            .is_some_and(|tr| tr.closing.contains(&session));
        match op {
            ClientOp::CreateSession { .. } => !closing,
            ClientOp::CreateEphemeral { .. } => {
                open && (!closing || self.cfg.bugs.orphan_ephemeral)
            }
            ClientOp::CloseSession => open && !closing,
            _ => !closing,
        }
    }

    /// Marks `session` closing (its closeSession is being proposed).
    pub(crate) fn session_closing(&mut self, session: u64) {
        if let Some(tr) = self.tracker() {
            tr.closing.insert(session);
        }
    }

    /// The leader's expiry, once a tick: every open session past its
    /// deadline is marked closing and its closeSession proposed.
    pub(crate) fn sessions_leader_tick(&mut self) {
        let now = self.now;
        let Some(tr) = self.tracker() else { return };
        let due: Vec<u64> = tr
            .deadlines
            .iter()
            .filter(|(s, d)| **d <= now && !tr.closing.contains(s))
            .map(|(s, _)| *s)
            .collect();
        for s in due {
            self.session_closing(s);
            let keys = self.owned_after_outstanding(s);
            self.propose(TxnOp::CloseSession { session: s, keys }, None);
            if !matches!(self.role, Role::Leading(_)) {
                return;
            }
        }
    }

    /// `follower_local_expiry`: a learner that serves expires, by its own
    /// clock, the sessions that touched it, asking the leader to close them.
    pub(crate) fn sessions_learner_tick(&mut self) {
        if !self.cfg.bugs.follower_local_expiry || !self.serving() {
            return;
        }
        let now = self.now;
        let due: Vec<u64> = self
            .touches
            .local
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(s, _)| *s)
            .collect();
        let Role::Learning(l) = &self.role else {
            return;
        };
        let leader = l.leader;
        for s in due {
            self.touches.local.remove(&s);
            let op = ClientOp::CloseSession;
            // A sequence number past any the client uses: never a duplicate.
            self.send(
                leader,
                PeerMsg::Request {
                    session: s,
                    seq: u64::MAX,
                    op,
                },
            );
        }
    }

    /// The answer to a read or ping of a session this server knows is
    /// closed (it has applied everything the session saw): `SessionExpired`.
    pub(crate) fn session_unknown_here(&self, session: u64) -> Option<Outcome> {
        self.store
            .closed
            .contains(&session)
            .then_some(Outcome::SessionExpired)
    }
}
