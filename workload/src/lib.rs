//! The workload: client processes that issue reads, writes and
//! compare-and-sets against the ensemble and record every operation
//! Jepsen-style (invoke, then ok / fail / info).
//!
//! Many processes share one client host (turmoil's step cost grows steeply
//! with the host count). Each process is a ZooKeeper session: it connects to
//! a random server and moves to another after an error. An op whose outcome
//! the client cannot know (timeout, lost connection, ConnectionLoss on a
//! write) completes as `info`, and the process is retired: its slot goes on
//! with a new process id (and session), as in Jepsen. Reads that get no
//! answer complete as `fail`: a read has no effect, so it certainly did not
//! happen. Every random choice comes from the seed.
//!
//! Process ids: slot `i` of `N` runs processes `i`, `i + N`, `i + 2N`, ...
//! (one per session, a new one after each retirement), all below
//! [`PIPELINED`]; a read pipelined behind process `p`'s write is recorded
//! as process `p + PIPELINED` on `p`'s session; final readers are
//! [`FINAL_READERS`] + 0, 1, ... Every client op names its session
//! (`Op::session`), so no check has to decode these ranges.

use faultline_history::{Fun, Op, OpType, Process, Value};
use faultline_node::client::{CallError, Client};
use faultline_node::{ClientOp, ClientResponse, Outcome, Sid, Zxid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

mod session;
pub use session::{EPHEMERAL_KEYS, SESSION_TIMEOUT_TICKS};

/// Where the process ids of reads pipelined behind a write begin.
pub const PIPELINED: u64 = 500_000_000;

/// Where the process ids of the final readers begin.
pub const FINAL_READERS: u64 = 1_000_000_000;

/// The named workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Reads, writes and cas; four reads in five are local (sequentially
    /// consistent), one a sync-read (linearizable).
    Register,
    /// Linearizable sync-reads, writes and cas: every op must be
    /// linearizable.
    Strict,
}

impl WorkloadKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Strict => "strict",
        }
    }
}

/// What the clients do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadConfig {
    /// Which workload.
    pub kind: WorkloadKind,
    /// Concurrent client processes.
    pub processes: usize,
    /// Keys are `0..keys`.
    pub keys: u64,
    /// Mean pause between a process's ops.
    pub think: Duration,
    /// An op with no answer after this long is `info` (or `fail` for a
    /// read).
    pub op_timeout: Duration,
    /// Servers clients may connect to, by id and host name.
    pub servers: Vec<(Sid, String)>,
    /// The servers' client port.
    pub port: u16,
    /// Seed of every random choice.
    pub seed: u64,
}

/// The history being recorded, shared by every process of a client host.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    ops: Rc<RefCell<Vec<Op>>>,
}

impl Recorder {
    fn push(&self, op: Op) {
        self.ops.borrow_mut().push(op);
    }

    /// The ops recorded so far, in order.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.borrow().clone()
    }
}

/// Switches the runner flips between phases.
#[derive(Clone, Debug, Default)]
pub struct Control {
    stop: Rc<Cell<bool>>,
    /// Wakes the processes sleeping when the workload stops.
    woken: Rc<tokio::sync::Notify>,
    /// Slots paused by the nemesis, until a simulated time (ns).
    paused: Rc<RefCell<BTreeMap<u64, u64>>>,
}

impl Control {
    /// Asks every process to stop after its current op; a process that
    /// is thinking, silent, idle or paused stops at once.
    pub fn stop(&self) {
        self.stop.set(true);
        self.woken.notify_waiters();
    }

    fn stopped(&self) -> bool {
        self.stop.get()
    }

    /// Sleeps for `d`, or until the workload stops: whether it slept the
    /// whole time.
    async fn sleep(&self, d: Duration) -> bool {
        if self.stopped() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.woken.notified() => false,
        }
    }

    /// Process slot `slot` sends nothing, no request and no ping, from its
    /// next op until `until_ns` of simulated time.
    pub fn pause(&self, slot: u64, until_ns: u64) {
        self.paused.borrow_mut().insert(slot, until_ns);
    }

    /// How long slot `slot` must stay quiet from now, if it is paused.
    fn pause_left(&self, slot: u64) -> Option<Duration> {
        let until = *self.paused.borrow().get(&slot)?;
        let now = now_ns();
        (until > now).then(|| Duration::from_nanos(until - now))
    }
}

fn now_ns() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_nanos() as u64
}

fn key_value(k: u64) -> Option<Value> {
    Some(Value::Int(k as i64))
}

fn opt_value(v: Option<i64>) -> Value {
    v.map_or(Value::Nil, Value::Int)
}

/// One process slot: its current process id, session and connection.
struct Slot {
    cfg: Rc<WorkloadConfig>,
    rec: Recorder,
    rng: ChaCha8Rng,
    process: u64,
    conn: Option<Client>,
    /// Sequence number and highest zxid seen, carried across reconnects.
    seq: u64,
    seen: Zxid,
    /// Last value this process saw per key (for plausible cas).
    last: BTreeMap<u64, Option<i64>>,
    counter: i64,
    /// Whether the current process's session is open.
    opened: bool,
    /// The slot's index (it owns ephemeral key `EPHEMERAL_KEYS + slot`).
    slot: u64,
    /// The session timeout granted, ticks.
    timeout: u64,
    /// Whether the current session holds the slot's ephemeral key.
    holds: bool,
    /// The workload's switches (its sleeps end when it stops).
    control: Control,
}

/// What a process asks for, before it is sent.
#[derive(Clone, Debug)]
struct Call {
    f: Fun,
    key: u64,
    op: ClientOp,
    value: Value,
}

impl Slot {
    fn next_call(&mut self) -> Call {
        let key = self.rng.random_range(0..self.cfg.keys);
        let roll: f64 = self.rng.random();
        self.counter += 1;
        let fresh = (self.process as i64 + 1) * 1_000_000 + self.counter;
        if roll < 0.5 {
            // One read in ten looks at another process's ephemeral key.
            let key = if self.rng.random_bool(0.1) {
                EPHEMERAL_KEYS + self.rng.random_range(0..self.cfg.processes as u64)
            } else {
                key
            };
            // The register workload's reads are local, one in five a
            // sync-read (so that every campaign asks for both kinds).
            let (f, op) = match self.cfg.kind {
                WorkloadKind::Register if roll >= 0.1 => (Fun::LocalRead, ClientOp::Read { key }),
                _ => (Fun::SyncRead, ClientOp::SyncRead { key }),
            };
            Call {
                f,
                key,
                op,
                value: Value::Nil,
            }
        } else if roll < 0.8 {
            Call {
                f: Fun::Write,
                key,
                op: ClientOp::Write { key, value: fresh },
                value: Value::Int(fresh),
            }
        } else {
            let from = self.last.get(&key).copied().flatten();
            Call {
                f: Fun::Cas,
                key,
                op: ClientOp::Cas {
                    key,
                    from,
                    to: fresh,
                },
                value: Value::pair(opt_value(from), Value::Int(fresh)),
            }
        }
    }

    /// The session of the slot's current process.
    fn session(&self) -> u64 {
        self.process + 1
    }

    /// An op of `process` on this slot's session.
    fn op(&self, process: u64, kind: OpType, call: &Call, value: Value) -> Op {
        let mut op = Op::new(kind, Process::Client(process), call.f.clone(), value);
        op.key = key_value(call.key);
        op.time = now_ns();
        op.session = Some(self.session());
        op
    }

    /// Connects to a random server, trying others until one answers.
    async fn connect(&mut self) {
        if self.opened {
            self.dial().await;
        } else {
            self.open().await;
        }
    }

    /// Connects to a random server, trying others until one answers.
    async fn dial(&mut self) {
        while self.conn.is_none() {
            let i = self.rng.random_range(0..self.cfg.servers.len());
            let host = self.cfg.servers[i].1.clone();
            let session = self.session();
            match Client::connect(&host, self.cfg.port, session, Duration::from_millis(500)).await {
                Ok(mut c) => {
                    c.resume(self.seq, self.seen);
                    self.conn = Some(c);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// A write with a read of the same key pipelined behind it on the same
    /// session (recorded as the companion process `process + PIPELINED`).
    async fn run_pipelined(&mut self, write: Call) {
        self.connect().await;
        let read = Call {
            f: Fun::LocalRead,
            key: write.key,
            op: ClientOp::Read { key: write.key },
            value: Value::Nil,
        };
        let (main, companion) = (self.process, self.process + PIPELINED);
        self.rec
            .push(self.op(main, OpType::Invoke, &write, write.value.clone()));
        self.rec
            .push(self.op(companion, OpType::Invoke, &read, Value::Nil));
        let client = self.conn.as_mut().expect("connected");
        let s1 = client.next_seq();
        let (w, r) = client
            .call_pair(
                (s1, write.op.clone()),
                (s1 + 1, read.op.clone()),
                self.cfg.op_timeout,
            )
            .await;
        self.seq = s1 + 1;
        self.seen = self.seen.max(client.seen());
        // The read first: completing the write may retire the process.
        self.complete(companion, &read, r);
        self.complete(main, &write, w);
    }

    /// Runs one op and records it.
    async fn run_one(&mut self, call: Call) {
        self.connect().await;
        self.rec
            .push(self.op(self.process, OpType::Invoke, &call, call.value.clone()));
        let client = self.conn.as_mut().expect("connected");
        let seq = client.next_seq();
        let res = client
            .call_seq(seq, call.op.clone(), self.cfg.op_timeout)
            .await;
        self.seq = seq;
        self.seen = self.seen.max(client.seen());
        self.complete(self.process, &call, res);
    }

    /// Records the completion of `process`'s op; an `info` of the slot's
    /// own process retires it.
    fn complete(&mut self, process: u64, call: &Call, res: Result<ClientResponse, CallError>) {
        let read = matches!(call.f, Fun::LocalRead | Fun::SyncRead);
        let (kind, value, error, resp) = match res {
            Ok(r) => match &r.outcome {
                Outcome::Value(v) => {
                    self.last.insert(call.key, *v);
                    (OpType::Ok, opt_value(*v), None, Some(r))
                }
                Outcome::Written => {
                    match call.op {
                        ClientOp::Write { value, .. } | ClientOp::Cas { to: value, .. } => {
                            self.last.insert(call.key, Some(value));
                        }
                        ClientOp::CreateEphemeral { key, .. } if key == self.ephemeral_key() => {
                            self.holds = true
                        }
                        _ => {}
                    }
                    (OpType::Ok, call.value.clone(), None, Some(r))
                }
                Outcome::CasFailed { actual } => {
                    self.last.insert(call.key, *actual);
                    let why = if call.f == Fun::CreateEphemeral {
                        "node-exists"
                    } else {
                        "cas-mismatch"
                    };
                    (OpType::Fail, call.value.clone(), Some(why), Some(r))
                }
                Outcome::NotReady => {
                    self.conn = None; // try another server
                    (OpType::Fail, call.value.clone(), Some("not-ready"), Some(r))
                }
                Outcome::ConnectionLoss => {
                    self.conn = None;
                    let kind = if read { OpType::Fail } else { OpType::Info };
                    (kind, call.value.clone(), Some("connection-loss"), Some(r))
                }
                // A definite failure: the process goes on with a new
                // session (below).
                Outcome::SessionExpired => {
                    self.conn = None;
                    let e = Some("session-expired");
                    (OpType::Fail, call.value.clone(), e, Some(r))
                }
                Outcome::Opened { .. } | Outcome::Pong => {
                    self.conn = None;
                    let kind = if read { OpType::Fail } else { OpType::Info };
                    (kind, call.value.clone(), Some("unexpected-answer"), Some(r))
                }
            },
            Err(e) => {
                self.conn = None;
                let kind = if read { OpType::Fail } else { OpType::Info };
                let why = match e {
                    CallError::Timeout => "timeout",
                    CallError::Disconnected(_) => "disconnected",
                };
                (kind, call.value.clone(), Some(why), None)
            }
        };
        let mut op = self.op(process, kind, call, value);
        op.error = error.map(str::to_string);
        if let Some(r) = resp {
            op.zxid = Some(r.zxid.0);
            op.node = Some(r.node);
        }
        let expired = error == Some("session-expired");
        self.rec.push(op);
        if (kind == OpType::Info || expired) && process == self.process {
            self.retire();
        }
    }

    /// The slot goes on as a new process with a new session.
    fn retire(&mut self) {
        self.process += self.cfg.processes as u64;
        assert!(
            self.process < PIPELINED,
            "client process ids stay below the pipelined range"
        );
        self.seq = 0;
        self.seen = Zxid(0);
        self.last.clear();
        self.opened = false;
        self.holds = false;
        self.conn = None;
    }
}

/// Client process `i`'s random stream for `seed`: stream `i` of one key
/// drawn from the seed, so every (seed, process) pair has its own stream.
/// (Seeding each process with `seed ^ (K + i)` gave seeds of one aligned
/// block of 16 the same streams, shuffled among their processes: nearby
/// seeds were not other draws of the workload.)
fn process_rng(seed: u64, i: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_0000);
    rng.set_stream(i);
    rng
}

/// Runs the client processes on the current (client) host until
/// `control.stop()`; each records into `rec`.
pub async fn run(cfg: WorkloadConfig, rec: Recorder, control: Control) {
    let cfg = Rc::new(cfg);
    let mut tasks = Vec::new();
    for i in 0..cfg.processes {
        let mut slot = Slot {
            rng: process_rng(cfg.seed, i as u64),
            cfg: cfg.clone(),
            rec: rec.clone(),
            process: i as u64,
            conn: None,
            seq: 0,
            seen: Zxid(0),
            last: BTreeMap::new(),
            counter: 0,
            opened: false,
            slot: i as u64,
            timeout: 0,
            holds: false,
            control: control.clone(),
        };
        let control = control.clone();
        tasks.push(tokio::task::spawn_local(async move {
            while !control.stopped() {
                if let Some(left) = control.pause_left(slot.slot) {
                    if !control.sleep(left).await {
                        break;
                    }
                    slot.resumed().await;
                }
                slot.tend().await;
                if control.stopped() {
                    break;
                }
                let call = slot.next_call();
                let pipeline = call.f == Fun::Write
                    && slot.cfg.kind == WorkloadKind::Register
                    && slot.rng.random_bool(0.2);
                if pipeline {
                    slot.run_pipelined(call).await;
                } else {
                    slot.run_one(call).await;
                }
                let think = slot.cfg.think.mul_f64(slot.rng.random_range(0.5..1.5));
                control.sleep(think).await;
            }
            // A client that leaves closes its session.
            slot.leave().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Final reads: after healing and quiescence, reads every key at each of
/// `servers` (local reads, so each replica's state shows), as processes
/// [`FINAL_READERS`] + 0, 1, ..., each on a session of its own, all
/// servers at once (the cluster is quiet: nothing else runs). Recorded
/// like every other op.
pub async fn final_reads(cfg: WorkloadConfig, servers: Vec<(Sid, String)>, rec: Recorder) {
    let cfg = Rc::new(WorkloadConfig {
        servers: servers.clone(),
        ..cfg
    });
    let mut readers = Vec::new();
    for (i, (sid, _)) in servers.into_iter().enumerate() {
        let mut slot = Slot {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xF1A1),
            cfg: Rc::new(WorkloadConfig {
                servers: cfg.servers.iter().filter(|s| s.0 == sid).cloned().collect(),
                ..(*cfg).clone()
            }),
            rec: rec.clone(),
            process: FINAL_READERS + i as u64,
            conn: None,
            seq: 0,
            seen: Zxid(0),
            last: BTreeMap::new(),
            counter: 0,
            opened: false,
            slot: i as u64,
            timeout: 0,
            holds: false,
            control: Control::default(),
        };
        let ephemeral = EPHEMERAL_KEYS..EPHEMERAL_KEYS + 2 * cfg.processes as u64;
        let keys: Vec<u64> = (0..cfg.keys).chain(ephemeral).collect();
        readers.push(tokio::task::spawn_local(async move {
            for key in keys {
                let call = Call {
                    f: Fun::LocalRead,
                    key,
                    op: ClientOp::Read { key },
                    value: Value::Nil,
                };
                slot.run_one(call).await;
            }
            slot.leave().await;
        }));
    }
    for r in readers {
        r.await.expect("a final reader never panics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;
    use std::collections::BTreeSet;

    /// Nearby seeds are other draws: no two (seed, process) pairs of 64
    /// consecutive seeds and 16 processes share a stream.
    #[test]
    fn every_seed_and_process_has_its_own_stream() {
        let mut firsts = BTreeSet::new();
        for seed in 30_000..30_064 {
            for i in 0..16 {
                let mut r = process_rng(seed, i);
                assert!(firsts.insert((r.next_u64(), r.next_u64())), "{seed} {i}");
            }
        }
        // The same pair is the same stream: a seed replays.
        assert_eq!(process_rng(7, 3).next_u64(), process_rng(7, 3).next_u64());
    }
}
