//! A process's session (ZAB.md §9): opened once however many servers it
//! takes, an ephemeral key it owns (a lock-like pattern: create its own
//! key, read the others'), silences past its timeout so that expiry really
//! happens, idle spells kept alive by pings, and now and then a close by
//! the client itself. Everything is recorded in the history.

use crate::{now_ns, Call, Slot};
use faultline_history::{Fun, Op, OpType, Process, Value};
use faultline_node::client::CallError;
use faultline_node::{ClientOp, ClientResponse, Outcome};
use rand::Rng;
use std::time::Duration;

/// Where the ephemeral keys begin: slot `i` owns key `EPHEMERAL_KEYS + i`.
/// Register keys stay below.
pub const EPHEMERAL_KEYS: u64 = 1_000;

/// The shortest and longest session timeout a process asks for, in server
/// ticks (10 ms): longer than the client's op timeout, so that a client
/// waiting on one answer never loses its session for that alone.
pub const SESSION_TIMEOUT_TICKS: (u64, u64) = (120, 200);

/// One op in fifteen hundred (a few times a run), a process goes silent
/// (no request, no ping) for 0.8 to 1.6 times its timeout, then at once
/// makes sure of its ephemeral key (a lock holder back from a pause):
/// around its timeout, its session may be expiring just then.
const SILENCE_ODDS: f64 = 1.0 / 1500.0;

/// One op in three thousand, a process closes its session and goes on
/// with a new one.
const CLOSE_ODDS: f64 = 1.0 / 3000.0;

/// One op in a thousand, a process idles for one to two and a half times
/// its timeout, but keeps its session alive: it pings whenever it has been
/// idle for a third of its timeout (ZooKeeper's client), moving to another
/// server when a ping goes unanswered.
const IDLE_ODDS: f64 = 1.0 / 1000.0;

impl Slot {
    /// The process's ephemeral key.
    pub(crate) fn ephemeral_key(&self) -> u64 {
        EPHEMERAL_KEYS + self.slot
    }

    /// The key a process takes when it is back from a silence or a pause
    /// (a second lock), owned by the session that took it.
    fn resume_key(&self) -> u64 {
        EPHEMERAL_KEYS + self.cfg.processes as u64 + self.slot
    }

    /// A session op (no key) of the current process.
    fn session_op(&self, kind: OpType, f: Fun, value: Value) -> Op {
        let mut op = Op::new(kind, Process::Client(self.process), f, value);
        op.time = now_ns();
        op.session = Some(self.session());
        op
    }

    /// Opens the process's session: one `open-session` op, however many
    /// servers it takes (the same request, executed at most once, is sent
    /// again until the ensemble answers). Leaves the slot connected.
    pub(crate) async fn open(&mut self) {
        let asked = self
            .rng
            .random_range(SESSION_TIMEOUT_TICKS.0..=SESSION_TIMEOUT_TICKS.1);
        let invoke = self.session_op(OpType::Invoke, Fun::OpenSession, Value::Int(asked as i64));
        self.rec.push(invoke);
        let seq = self.seq + 1;
        loop {
            self.dial().await;
            let client = self.conn.as_mut().expect("connected");
            let op = ClientOp::CreateSession { timeout: asked };
            let res = client.call_seq(seq, op, self.cfg.op_timeout).await;
            if let Ok(r) = res {
                if let Outcome::Opened { timeout } = r.outcome {
                    self.seen = self.seen.max(r.zxid);
                    self.seq = seq;
                    self.timeout = timeout;
                    self.opened = true;
                    self.holds = false;
                    let mut ok =
                        self.session_op(OpType::Ok, Fun::OpenSession, Value::Int(timeout as i64));
                    ok.zxid = Some(r.zxid.0);
                    ok.node = Some(r.node);
                    self.rec.push(ok);
                    return;
                }
            }
            self.conn = None;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the process does now for its session, if anything, before its
    /// next register op: create its ephemeral key when it does not hold
    /// it (every twentieth op), go silent, or close its session.
    pub(crate) async fn tend(&mut self) {
        if !self.opened {
            return;
        }
        if self.rng.random_bool(SILENCE_ODDS) {
            // Half the silences end right about the timeout (when the
            // leader may be closing the session just then), half anywhere
            // from 0.8 to 1.6 timeouts.
            let t = self.timeout * 10;
            let ms = if self.rng.random_bool(0.5) {
                t + self.rng.random_range(0..=60) - 40
            } else {
                t * self.rng.random_range(80..=160) / 100
            };
            if !self.control.sleep(Duration::from_millis(ms)).await {
                return;
            }
            return self.resumed().await;
        }
        if self.rng.random_bool(IDLE_ODDS) {
            let t = self.timeout * 10;
            let ms = t * self.rng.random_range(100..=250) / 100;
            return self.idle(Duration::from_millis(ms)).await;
        }
        if self.rng.random_bool(CLOSE_ODDS) {
            self.close().await;
            return self.retire();
        }
        if !self.holds && self.counter % 20 == 1 {
            self.acquire(self.ephemeral_key()).await;
        }
    }

    /// Sends no request for `length`, but pings every third of the
    /// session timeout (each ping recorded as a `ping` op).
    async fn idle(&mut self, length: Duration) {
        let every = Duration::from_millis(self.timeout * 10 / 3);
        let mut left = length;
        while left >= every && self.opened {
            if !self.control.sleep(every).await {
                return;
            }
            left -= every;
            self.ping().await;
        }
        self.control.sleep(left).await;
    }

    /// One ping: `ok` when the server answered `Pong`; otherwise `fail` (a
    /// ping has no effect) and the next request goes to another server,
    /// or, on `SessionExpired`, the slot goes on with a new session. The
    /// answer carries no zxid the client keeps (as ZooKeeper's client
    /// skips ping replies), so none is recorded.
    async fn ping(&mut self) {
        self.connect().await;
        let invoke = self.session_op(OpType::Invoke, Fun::Ping, Value::Nil);
        self.rec.push(invoke);
        let res = self.call_next(ClientOp::Ping).await;
        let (kind, error, node) = match res {
            Ok(r) if r.outcome == Outcome::Pong => (OpType::Ok, None, Some(r.node)),
            Ok(r) if r.outcome == Outcome::SessionExpired => {
                (OpType::Fail, Some("session-expired"), Some(r.node))
            }
            Ok(r) => (OpType::Fail, Some("not-ready"), Some(r.node)),
            Err(CallError::Timeout) => (OpType::Fail, Some("timeout"), None),
            Err(CallError::Disconnected(_)) => (OpType::Fail, Some("disconnected"), None),
        };
        let mut done = self.session_op(kind, Fun::Ping, Value::Nil);
        done.error = error.map(str::to_string);
        done.node = node;
        self.rec.push(done);
        match error {
            None => {}
            Some("session-expired") => self.retire(),
            Some(_) => self.conn = None,
        }
    }

    /// Back from a silence or a pause: the process makes sure of its
    /// ephemeral key at once (a lock holder back from a pause).
    pub(crate) async fn resumed(&mut self) {
        if self.opened {
            self.acquire(self.resume_key()).await;
        }
    }

    /// Creates ephemeral key `key` for the process's session.
    async fn acquire(&mut self, key: u64) {
        self.counter += 1;
        let value = (self.process as i64 + 1) * 1_000_000 + self.counter;
        let call = Call {
            f: Fun::CreateEphemeral,
            key,
            op: ClientOp::CreateEphemeral { key, value },
            value: Value::Int(value),
        };
        self.run_one(call).await;
    }

    /// The client leaves: it closes its session if it has one open.
    pub(crate) async fn leave(&mut self) {
        if self.opened {
            self.close().await;
            self.opened = false;
        }
    }

    /// Sends `op` on the current connection with the next sequence number
    /// and waits for its answer (up to the op timeout).
    async fn call_next(&mut self, op: ClientOp) -> Result<ClientResponse, CallError> {
        let client = self.conn.as_mut().expect("connected");
        let seq = client.next_seq();
        let res = client.call_seq(seq, op, self.cfg.op_timeout).await;
        self.seq = seq;
        res
    }

    /// Closes the session (recorded as `close-session`).
    async fn close(&mut self) {
        self.connect().await;
        let call = Call {
            f: Fun::CloseSession,
            key: 0,
            op: ClientOp::CloseSession,
            value: Value::Nil,
        };
        let mut invoke = self.op(self.process, OpType::Invoke, &call, Value::Nil);
        invoke.key = None;
        self.rec.push(invoke);
        let res = self.call_next(ClientOp::CloseSession).await;
        let (kind, error, resp) = match res {
            Ok(r) if r.outcome == Outcome::Written => (OpType::Ok, None, Some(r)),
            Ok(r) if r.outcome == Outcome::SessionExpired => {
                (OpType::Fail, Some("session-expired"), Some(r))
            }
            Ok(r) => (OpType::Info, Some("not-closed"), Some(r)),
            Err(_) => (OpType::Info, Some("timeout"), None),
        };
        let mut done = self.op(self.process, kind, &call, Value::Nil);
        done.key = None;
        done.error = error.map(str::to_string);
        if let Some(r) = resp {
            done.zxid = Some(r.zxid.0);
            done.node = Some(r.node);
        }
        self.rec.push(done);
    }
}
