//! The server's core, pure and sans-IO: raft-rs's `RawNode` over an
//! in-memory log ([`LogStore`], the mirror of the durable one), the
//! key-value state machine, and the client requests waiting on either.
//!
//! The shell drives it: [`Core::tick`], [`Core::recv`] and
//! [`Core::client`] feed it; [`Core::ready`] hands out what raft-rs wants
//! done (messages to send at once, entries and hard state to persist, the
//! messages that must wait for that), and [`Core::persisted`] tells it the
//! persistence is done (raft-rs's Ready contract: nothing that depends on
//! it is sent or counted before), giving the rest: more messages and the
//! answers to clients whose requests were applied.
//!
//! Writes (and session opens and closes, ephemeral creates) go through the
//! log: any server proposes them (a follower forwards the proposal to its
//! leader) and the proposing server answers once it applies the entry.
//! Reads are linearizable through ReadIndex: the leader confirms its
//! leadership with a quorum and names a commit index; the server answers
//! once it has applied that far.

use crate::kv::{Command, Kv};
use crate::storage::LogStore;
use crate::Bugs;
use faultline_node::{ClientOp, ClientRequest, ClientResponse, Outcome, Zxid};
use protobuf::Message as _;
use raft::prelude::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, Entry, EntryType,
    HardState, Message, Ready, Snapshot,
};
use raft::{RawNode, StateRole};
use std::collections::BTreeMap;

/// A client connection, as the shell numbers them.
pub type Conn = u64;

/// Writes left waiting this many ticks are answered `ConnectionLoss` (the
/// client gave up long ago).
const STALE_TICKS: u64 = 300;

/// Reads left waiting this many ticks for a read index are answered
/// `NotReady` (a leader answers within a heartbeat round; one that does
/// not, e.g. to a server it does not count yet, never will).
const READ_TICKS: u64 = 50;

/// The raft parameters and membership of one server.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This server's id (the bench's sid).
    pub id: u64,
    /// The voters every server starts with.
    pub voters: Vec<u64>,
    /// The learners (non-voting, the bench's observers) every server
    /// starts with.
    pub learners: Vec<u64>,
    /// Ticks without a leader's message before a follower campaigns. Its
    /// random spread is the shell's (see `shell`), not raft-rs's.
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// Applied entries between the server's own snapshots (the log before
    /// a snapshot leaves memory; a follower that needs it gets the
    /// snapshot).
    pub snapshot_every: u64,
    /// The bug switches of the integration.
    pub bugs: Bugs,
}

/// What the shell must write to disk, and sync, before it calls
/// [`Core::persisted`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Persist {
    /// A snapshot from the leader this server installed: written first,
    /// and the log restarts after it.
    pub snapshot: Option<Snapshot>,
    /// Entries to append; an entry replaces any at its index or after.
    pub entries: Vec<Entry>,
    /// The new hard state (term, vote, commit), if it changed.
    pub hard_state: Option<HardState>,
}

/// A batch of work for the shell, from [`Core::ready`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Messages to send once `persist` is durable (raft-rs would let a
    /// leader's appends go before; sending all after is simpler and as
    /// safe).
    pub send: Vec<Message>,
    /// What to persist before [`Core::persisted`].
    pub persist: Persist,
    /// Answers for clients.
    pub replies: Vec<(Conn, ClientResponse)>,
}

/// What [`Core::persisted`] gives: messages that waited for persistence,
/// and answers for clients.
#[derive(Debug, Default)]
pub struct After {
    /// Messages to send now.
    pub send: Vec<Message>,
    /// Answers for clients.
    pub replies: Vec<(Conn, ClientResponse)>,
}

/// A request waiting in the core, with the tick it arrived at.
#[derive(Clone, Debug)]
struct Waiting {
    conn: Conn,
    req: ClientRequest,
    since: u64,
}

/// One server.
pub struct Core {
    raw: RawNode<LogStore>,
    snapshot_every: u64,
    kv: Kv,
    id: u64,
    bugs: Bugs,
    ticks: u64,
    /// The term and leader when last looked at: a change fails what waits.
    term: u64,
    leader: u64,
    /// Log writes proposed here, by (session, seq).
    writes: BTreeMap<(u64, u64), Waiting>,
    /// Reads waiting for their read index, by context.
    reading: BTreeMap<u64, Waiting>,
    /// Reads with a read index, waiting for the state to be applied that
    /// far.
    indexed: Vec<(u64, Waiting)>,
    /// Voters being added, by id.
    adding: BTreeMap<u64, Waiting>,
    next_ctx: u64,
    /// The Ready handed out by [`Core::ready`], until it is persisted.
    unpersisted: Option<Ready>,
    /// A snapshot taken and not yet handed to the shell.
    taken: Option<Snapshot>,
}

impl Core {
    /// A server whose durable state is `storage` (empty on first start,
    /// else read back from its files) and whose state machine is `kv`
    /// (the entries up to `kv.applied` applied: the snapshot's state).
    pub fn new(cfg: &CoreConfig, storage: LogStore, kv: Kv) -> raft::Result<Core> {
        let rc = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_tick,
            heartbeat_tick: cfg.heartbeat_tick,
            // raft-rs draws a randomized election timeout from the thread
            // RNG; one value only keeps replays exact. The shell spreads
            // the timeouts from the seed.
            min_election_tick: cfg.election_tick,
            max_election_tick: cfg.election_tick + 1,
            applied: kv.applied,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&rc, storage, &logger)?;
        Ok(Core {
            raw,
            snapshot_every: cfg.snapshot_every.max(1),
            kv,
            id: cfg.id,
            bugs: cfg.bugs,
            ticks: 0,
            term: 0,
            leader: 0,
            writes: BTreeMap::new(),
            reading: BTreeMap::new(),
            indexed: Vec::new(),
            adding: BTreeMap::new(),
            next_ctx: 1,
            unpersisted: None,
            taken: None,
        })
    }

    /// One tick of the raft clock. Requests left waiting too long are
    /// answered; reads wait for no leader.
    pub fn tick(&mut self) -> Vec<(Conn, ClientResponse)> {
        self.ticks += 1;
        self.raw.tick();
        self.maybe_snapshot();
        let now = self.ticks;
        let older = move |w: &Waiting, ticks: u64| now - w.since > ticks;
        let no_leader = self.raw.raft.leader_id == raft::INVALID_ID;
        let lost = take_where(&mut self.writes, |w| older(w, STALE_TICKS));
        let mut unready = take_where(&mut self.reading, |w| no_leader || older(w, READ_TICKS));
        // A read with its index waits for this server to apply that far;
        // one still catching up answers it `NotReady` in the end.
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.indexed)
            .into_iter()
            .partition(|(_, w)| older(w, STALE_TICKS));
        self.indexed = keep;
        unready.extend(old.into_iter().map(|(_, w)| w));
        let lost = lost
            .iter()
            .map(|w| self.answer(w, Outcome::ConnectionLoss, 0));
        let unready = unready.iter().map(|w| self.answer(w, Outcome::NotReady, 0));
        lost.chain(unready).collect()
    }

    /// Client connection `conn` closed: nothing it waits for is answered.
    pub fn client_gone(&mut self, conn: Conn) {
        self.writes.retain(|_, w| w.conn != conn);
        self.reading.retain(|_, w| w.conn != conn);
        self.indexed.retain(|(_, w)| w.conn != conn);
        self.adding.retain(|_, w| w.conn != conn);
    }

    /// A snapshot message to `to` was handed to its link (`sent`) or
    /// dropped for want of one. raft-rs waits for this word before it
    /// deals with that follower again: on either it probes the follower,
    /// which asks for the snapshot again if it did not get it.
    pub fn snapshot_sent(&mut self, to: u64, sent: bool) {
        let status = if sent {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
    }

    /// The link to `peer` broke: what was sent on it may be lost.
    pub fn unreachable(&mut self, peer: u64) {
        self.raw.report_unreachable(peer);
    }

    /// A message from a peer. Messages raft-rs refuses (from a peer it no
    /// longer knows) are dropped, as a network would.
    pub fn recv(&mut self, m: Message) {
        let _ = self.raw.step(m);
    }

    /// A client's request on connection `conn`; answers given at once.
    pub fn client(&mut self, conn: Conn, req: ClientRequest) -> Vec<(Conn, ClientResponse)> {
        let w = Waiting {
            conn,
            req,
            since: self.ticks,
        };
        let no_leader = self.raw.raft.leader_id == raft::INVALID_ID;
        match w.req.op.clone() {
            ClientOp::Ping => vec![self.answer(&w, Outcome::Pong, self.kv.applied)],
            ClientOp::Read { key } | ClientOp::SyncRead { key } => {
                if self.bugs.local_reads {
                    return vec![self.answer(&w, self.kv.read(key), self.kv.applied)];
                }
                if no_leader {
                    return vec![self.answer(&w, Outcome::NotReady, 0)];
                }
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                self.raw.read_index(ctx.to_be_bytes().to_vec());
                self.reading.insert(ctx, w);
                Vec::new()
            }
            ClientOp::AddVoter { sid } => {
                let mut cc = ConfChangeV2::default();
                let mut one = ConfChangeSingle::default();
                one.set_change_type(ConfChangeType::AddNode);
                one.node_id = sid;
                cc.set_changes(vec![one].into());
                // Joint consensus (C_old,new, then C_new, left by raft-rs
                // on its own), not the one-voter-at-a-time shortcut.
                cc.set_transition(ConfChangeTransition::Implicit);
                if no_leader || self.raw.propose_conf_change(Vec::new(), cc).is_err() {
                    return vec![self.answer(&w, Outcome::NotReady, 0)];
                }
                self.adding.insert(sid, w);
                Vec::new()
            }
            op => {
                let c = Command {
                    origin: self.id,
                    session: w.req.session,
                    seq: w.req.seq,
                    op,
                };
                if no_leader || self.raw.propose(Vec::new(), c.encode()).is_err() {
                    return vec![self.answer(&w, Outcome::NotReady, 0)];
                }
                self.writes.insert((c.session, c.seq), w);
                Vec::new()
            }
        }
    }

    /// What raft-rs wants done now, if anything. The shell persists
    /// `persist`, then calls [`Core::persisted`] before the next `ready`.
    pub fn ready(&mut self) -> Option<Batch> {
        assert!(self.unpersisted.is_none(), "a Ready is still unpersisted");
        if !self.raw.has_ready() {
            return None;
        }
        let mut rd = self.raw.ready();
        let mut b = Batch {
            send: rd.take_messages(),
            ..Batch::default()
        };
        if rd.snapshot().get_metadata().index > 0 {
            let snap = rd.snapshot().clone();
            self.raw.mut_store().install(&snap);
            self.kv = postcard::from_bytes(&snap.data).expect("a snapshot holds a state");
            assert_eq!(
                self.kv.applied,
                snap.get_metadata().index,
                "the snapshot's state"
            );
            b.persist.snapshot = Some(snap);
        }
        for rs in rd.read_states() {
            let ctx = u64::from_be_bytes(rs.request_ctx.as_slice().try_into().unwrap_or([0; 8]));
            if let Some(w) = self.reading.remove(&ctx) {
                self.indexed.push((rs.index, w));
            }
        }
        let committed = rd.take_committed_entries();
        b.replies = self.apply(committed);
        if !rd.entries().is_empty() {
            self.raw.mut_store().append(rd.entries());
            b.persist.entries = rd.entries().clone();
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs.clone());
            b.persist.hard_state = Some(hs.clone());
        }
        self.maybe_snapshot();
        b.send.extend(rd.take_persisted_messages());
        self.unpersisted = Some(rd);
        b.replies.extend(self.noticed());
        Some(b)
    }

    /// The last [`Core::ready`]'s persistence is done.
    pub fn persisted(&mut self) -> After {
        let rd = self.unpersisted.take().expect("persisted after ready");
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        let mut a = After {
            send: light.take_messages(),
            replies: self.apply(light.take_committed_entries()),
        };
        self.raw.advance_apply();
        self.maybe_snapshot();
        a.replies.extend(self.noticed());
        a
    }

    /// Applies committed entries; the answers for this server's clients.
    fn apply(&mut self, entries: Vec<Entry>) -> Vec<(Conn, ClientResponse)> {
        let mut out = Vec::new();
        for e in entries {
            if e.index <= self.kv.applied {
                continue;
            }
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    let c = if e.data.is_empty() {
                        None
                    } else {
                        Some(Command::decode(&e.data).expect("entries hold commands"))
                    };
                    let outcome = self.kv.apply(e.index, c.as_ref());
                    if let (Some(c), Some(o)) = (c, outcome) {
                        if c.origin == self.id {
                            if let Some(w) = self.writes.remove(&(c.session, c.seq)) {
                                out.push(self.answer(&w, o, e.index));
                            }
                        }
                    }
                }
                EntryType::EntryConfChange => {
                    unreachable!("raftkv proposes ConfChangeV2 only, and so does raft-rs")
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data).expect("a conf change");
                    if let Ok(cs) = self.raw.apply_conf_change(&cc) {
                        self.raw.mut_store().set_conf_state(cs);
                    }
                    self.kv.apply(e.index, None);
                    for one in cc.get_changes() {
                        if let Some(w) = self.adding.remove(&one.node_id) {
                            out.push(self.answer(&w, Outcome::Written, e.index));
                        }
                    }
                }
            }
        }
        let applied = self.kv.applied;
        let (done, wait): (Vec<_>, Vec<_>) =
            self.indexed.drain(..).partition(|(i, _)| *i <= applied);
        self.indexed = wait;
        for (_, w) in done {
            let key = w.req.op.key();
            out.push(self.answer(&w, self.kv.read(key), applied));
        }
        out
    }

    /// Takes a snapshot of the applied state when `snapshot_every`
    /// entries were applied since the last one, or when raft-rs wanted to
    /// send one the latest does not serve (it predates the recipient's
    /// joining) and more is applied now; the log before it leaves memory.
    /// The shell writes it ([`Core::taken`]).
    fn maybe_snapshot(&mut self) {
        let store = self.raw.store();
        let at = self.kv.applied;
        let due = at >= store.snap_index() + self.snapshot_every;
        let wanted = store.wanted() && at > store.snap_index();
        if !due && !wanted {
            return;
        }
        let Some(term) = store.term_of(at) else {
            return;
        };
        let mut snap = Snapshot {
            data: postcard::to_stdvec(&self.kv)
                .expect("a state encodes")
                .into(),
            ..Snapshot::default()
        };
        let meta = snap.mut_metadata();
        meta.index = at;
        meta.term = term;
        meta.set_conf_state(store.conf_state().clone());
        self.raw.mut_store().compact(&snap);
        self.taken = Some(snap);
    }

    /// The latest snapshot taken since the last call, for the shell to
    /// write.
    pub fn taken(&mut self) -> Option<Snapshot> {
        self.taken.take()
    }

    /// Answers what waits when the term or the leader changed: a write may
    /// still commit (`ConnectionLoss`), a read has no effect (`NotReady`).
    fn noticed(&mut self) -> Vec<(Conn, ClientResponse)> {
        let (term, leader) = (self.raw.raft.term, self.raw.raft.leader_id);
        if (term, leader) == (self.term, self.leader) {
            return Vec::new();
        }
        self.term = term;
        self.leader = leader;
        let mut lost = take_where(&mut self.writes, |_| true);
        lost.extend(take_where(&mut self.adding, |_| true));
        let unready = take_where(&mut self.reading, |_| true);
        let lost = lost
            .iter()
            .map(|w| self.answer(w, Outcome::ConnectionLoss, 0));
        let unready = unready.iter().map(|w| self.answer(w, Outcome::NotReady, 0));
        lost.chain(unready).collect()
    }

    fn answer(&self, w: &Waiting, outcome: Outcome, at: u64) -> (Conn, ClientResponse) {
        (
            w.conn,
            ClientResponse {
                session: w.req.session,
                seq: w.req.seq,
                outcome,
                zxid: Zxid(at),
                node: self.id,
            },
        )
    }

    /// Whether this server leads its term.
    pub fn leading(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Its term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The leader it knows of (0: none).
    pub fn leader(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// The state machine.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// The voters of its configuration, in id order.
    pub fn voters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.raw.raft.prs().conf().voters().ids().iter().collect();
        v.sort_unstable();
        v
    }

    /// Entries in its in-memory log (after its latest snapshot).
    pub fn log_entries(&self) -> usize {
        self.raw.store().len()
    }

    /// Client requests waiting in the core.
    pub fn waiting(&self) -> usize {
        self.writes.len() + self.reading.len() + self.indexed.len() + self.adding.len()
    }
}

/// Removes from `m` the requests `pred` picks, in key order.
fn take_where<K: Ord + Clone>(
    m: &mut BTreeMap<K, Waiting>,
    pred: impl Fn(&Waiting) -> bool,
) -> Vec<Waiting> {
    let keys: Vec<K> = m
        .iter()
        .filter(|(_, w)| pred(w))
        .map(|(k, _)| k.clone())
        .collect();
    keys.iter().map(|k| m.remove(k).expect("listed")).collect()
}
