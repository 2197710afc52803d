//! Client requests at a server (ZAB.md §5): local reads held behind the
//! session's pending writes (FIFO), writes and syncs through the leader,
//! and requests held while the server is not serving.
//!
//! A server that is not serving holds requests in a bounded queue (overflow
//! or hold timeout: `NotReady`) and runs them once it serves again. Writes
//! and syncs it accepted but could not finish are submitted again to the
//! new leader, which executes each `(session, seq)` at most once. With
//! `hold_requests` off, the server answers `ConnectionLoss` instead, as
//! ZooKeeper does.

use crate::core::{Node, Output, Role};
use crate::msg::PeerMsg;
use crate::{ClientOp, ClientRequest, ClientResponse, Outcome, Txn, Zxid};
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug)]
struct Held {
    conn: u64,
    req: ClientRequest,
    deadline: u64,
}

/// The client-facing state of a server.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// Requests that arrived while not serving.
    held: VecDeque<Held>,
    /// Accepted writes and syncs waiting for their outcome: (session, seq)
    /// -> (conn, op).
    pending: BTreeMap<(u64, u64), (u64, ClientOp)>,
    /// Reads waiting for their session's earlier writes.
    blocked_reads: Vec<(u64, ClientRequest)>,
    /// Requests of sessions this learner asked the leader about, in
    /// arrival order per session.
    pub(crate) revalidating: BTreeMap<u64, Vec<(u64, ClientRequest)>>,
}

impl Requests {
    /// Requests held, pending or blocked.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
            + self.pending.len()
            + self.blocked_reads.len()
            + self.revalidating.values().map(Vec::len).sum::<usize>()
    }

    /// Drops everything of a closed connection.
    pub(crate) fn forget_conn(&mut self, conn: u64) {
        self.held.retain(|h| h.conn != conn);
        self.pending.retain(|_, (c, _)| *c != conn);
        self.blocked_reads.retain(|(c, _)| *c != conn);
        for waiting in self.revalidating.values_mut() {
            waiting.retain(|(c, _)| *c != conn);
        }
    }
}

impl Node {
    pub(crate) fn reply(
        &mut self,
        conn: u64,
        session: u64,
        seq: u64,
        outcome: Outcome,
        zxid: Zxid,
    ) {
        let resp = ClientResponse {
            session,
            seq,
            outcome,
            zxid,
            node: self.cfg.sid,
        };
        self.out.push(Output::Reply { conn, resp });
    }

    pub(crate) fn on_client(&mut self, conn: u64, req: ClientRequest) {
        // Every request touches its session where it lands, held or not.
        self.session_touch(req.session);
        if self.serving() {
            return self.execute(conn, req);
        }
        let applied = self.store.applied;
        if self.cfg.bugs.serve_before_uptodate && matches!(req.op, ClientOp::Read { .. }) {
            let v = self.store.get(req.op.key());
            return self.reply(conn, req.session, req.seq, Outcome::Value(v), applied);
        }
        if !self.cfg.hold_requests {
            return self.reply(conn, req.session, req.seq, Outcome::ConnectionLoss, applied);
        }
        if self.requests.held.len() >= self.cfg.hold_queue_max {
            return self.reply(conn, req.session, req.seq, Outcome::NotReady, applied);
        }
        let deadline = self.now + self.cfg.hold_timeout;
        self.requests.held.push_back(Held {
            conn,
            req,
            deadline,
        });
    }

    fn execute(&mut self, conn: u64, req: ClientRequest) {
        if !self.session_known_here(req.session, &req.op) {
            return self.revalidate(conn, req);
        }
        let ClientRequest {
            session,
            seq,
            op,
            seen,
        } = req.clone();
        if seen > self.store.applied && !op.is_write() {
            // This server is behind what the session already saw.
            let z = self.store.applied;
            return self.reply(conn, session, seq, Outcome::NotReady, z);
        }
        if !op.is_write() {
            // We have applied everything the session saw: if it is closed
            // here, it is closed.
            if let Some(o) = self.session_unknown_here(session) {
                let z = self.store.applied;
                return self.reply(conn, session, seq, o, z);
            }
        }
        match op {
            ClientOp::Ping => {
                let z = self.store.applied;
                self.reply(conn, session, seq, Outcome::Pong, z);
            }
            ClientOp::Read { key } => {
                let behind = !self.cfg.bugs.session_fifo_off
                    && self
                        .requests
                        .pending
                        .range((session, 0)..(session, seq))
                        .next()
                        .is_some();
                if behind {
                    self.requests.blocked_reads.push((conn, req));
                } else {
                    let v = self.store.get(key);
                    let z = self.store.applied;
                    self.reply(conn, session, seq, Outcome::Value(v), z);
                }
            }
            ClientOp::SyncRead { .. }
            | ClientOp::Write { .. }
            | ClientOp::Cas { .. }
            | ClientOp::AddVoter { .. }
            | ClientOp::CreateSession { .. }
            | ClientOp::CloseSession
            | ClientOp::CreateEphemeral { .. } => {
                self.requests
                    .pending
                    .insert((session, seq), (conn, op.clone()));
                self.submit(session, seq, op);
            }
        }
    }

    /// Sends an accepted write or sync to the leader (ourselves included).
    fn submit(&mut self, session: u64, seq: u64, op: ClientOp) {
        let me = self.cfg.sid;
        match (&self.role, op) {
            (Role::Leading(_), ClientOp::SyncRead { .. }) => self.start_sync(me, session, seq),
            (Role::Leading(_), op) => self.leader_submit(me, session, seq, op),
            (Role::Learning(l), ClientOp::SyncRead { .. }) => {
                let leader = l.leader;
                self.send(leader, PeerMsg::Sync { session, seq });
            }
            (Role::Learning(l), op) => {
                let leader = l.leader;
                self.send(leader, PeerMsg::Request { session, seq, op });
            }
            _ => unreachable!("only a serving server submits"),
        }
    }

    /// A txn was applied: answer the client waiting for it here, if any;
    /// a closed session's requests still waiting here get SessionExpired
    /// (none of them can take effect any more).
    pub(crate) fn requests_on_applied(&mut self, txn: &Txn) {
        if let Some((session, seq)) = txn.origin {
            if self.serving() {
                self.requests_executed(session, seq, txn.outcome(), txn.zxid);
            }
        }
        if let crate::TxnOp::CloseSession { session, .. } = txn.op {
            self.expire_requests(session);
        }
    }

    /// Answers every request of `session` waiting here SessionExpired.
    fn expire_requests(&mut self, session: u64) {
        let z = self.store.applied;
        let r = &mut self.requests;
        let pending: Vec<(u64, u64)> = r
            .pending
            .range((session, 0)..=(session, u64::MAX))
            .map(|(k, (conn, _))| (k.1, *conn))
            .collect();
        r.pending.retain(|(s, _), _| *s != session);
        let mut blocked = Vec::new();
        r.blocked_reads.retain(|(conn, req)| {
            let mine = req.session == session;
            if mine {
                blocked.push((req.seq, *conn));
            }
            !mine
        });
        let mut held = Vec::new();
        r.held.retain(|h| {
            let mine = h.req.session == session;
            if mine {
                held.push((h.req.seq, h.conn));
            }
            !mine
        });
        for (seq, conn) in pending.into_iter().chain(blocked).chain(held) {
            self.reply(conn, session, seq, Outcome::SessionExpired, z);
        }
    }

    /// The outcome of a write became known (applied here, or reported by
    /// the leader for a duplicate).
    pub(crate) fn requests_executed(
        &mut self,
        session: u64,
        seq: u64,
        outcome: Outcome,
        zxid: Zxid,
    ) {
        if let Some((conn, _)) = self.requests.pending.remove(&(session, seq)) {
            self.reply(conn, session, seq, outcome, zxid);
            self.unblock_reads(session);
        }
    }

    /// The leader confirmed a sync: read locally now.
    pub(crate) fn requests_sync_done(&mut self, session: u64, seq: u64) {
        if let Some((conn, op)) = self.requests.pending.remove(&(session, seq)) {
            let v = self.store.get(op.key());
            let z = self.store.applied;
            self.reply(conn, session, seq, Outcome::Value(v), z);
            self.unblock_reads(session);
        }
    }

    fn unblock_reads(&mut self, session: u64) {
        let blocked = std::mem::take(&mut self.requests.blocked_reads);
        for (conn, req) in blocked {
            if req.session == session {
                self.execute(conn, req);
            } else {
                self.requests.blocked_reads.push((conn, req));
            }
        }
    }

    /// The server stopped serving (it is looking for a leader).
    pub(crate) fn requests_stop_serving(&mut self) {
        // Requests waiting for a revalidation go back to being held (they
        // ask the next leader), or are answered like the rest below.
        let waiting = std::mem::take(&mut self.requests.revalidating);
        let z = self.store.applied;
        for (conn, req) in waiting.into_values().flatten() {
            if self.cfg.hold_requests {
                let deadline = self.now + self.cfg.hold_timeout;
                self.requests.held.push_back(Held {
                    conn,
                    req,
                    deadline,
                });
            } else {
                self.reply(conn, req.session, req.seq, Outcome::ConnectionLoss, z);
            }
        }
        if self.cfg.hold_requests {
            return;
        }
        let pending = std::mem::take(&mut self.requests.pending);
        for ((session, seq), (conn, _)) in pending {
            self.reply(conn, session, seq, Outcome::ConnectionLoss, z);
        }
        let blocked = std::mem::take(&mut self.requests.blocked_reads);
        for (conn, req) in blocked {
            self.reply(conn, req.session, req.seq, Outcome::ConnectionLoss, z);
        }
    }

    /// The server serves again: finish or resubmit what it accepted, then
    /// run the held requests in arrival order.
    pub(crate) fn requests_start_serving(&mut self) {
        let pending: Vec<((u64, u64), ClientOp)> = self
            .requests
            .pending
            .iter()
            .map(|(k, (_, op))| (*k, op.clone()))
            .collect();
        for ((session, seq), op) in pending {
            if let Some((outcome, zxid)) = self.store.executed(session, seq) {
                self.requests_executed(session, seq, outcome, zxid);
            } else {
                self.submit(session, seq, op);
            }
            if !self.serving() {
                return; // a leader that lost its quorum while resubmitting
            }
        }
        while let Some(h) = self.requests.held.pop_front() {
            self.execute(h.conn, h.req);
            if !self.serving() {
                return;
            }
        }
    }

    /// Held requests past their deadline get NotReady.
    pub(crate) fn requests_tick(&mut self) {
        let now = self.now;
        let z = self.store.applied;
        while self
            .requests
            .held
            .front()
            .is_some_and(|h| h.deadline <= now)
        {
            let h = self.requests.held.pop_front().expect("checked");
            self.reply(h.conn, h.req.session, h.req.seq, Outcome::NotReady, z);
        }
    }
}
