//! The pure protocol core: [`Node::step`] takes one [`Input`] and returns
//! the [`Output`]s to act on. No async, no clock (time is the count of
//! `Tick` inputs), no randomness, no I/O: the shell moves bytes, timers and
//! disk writes.
//!
//! Durability contract with the shell: `Persist::Append` writes log entries
//! without syncing them; the shell fsyncs later (group commit) and reports
//! `Input::Synced(z)` once everything up to `z` is durable. Every other
//! `Persist` is durable before the shell acts on the next output. The core
//! never sends anything that promises durability (an ACK) before the
//! matching `Synced`.

use crate::config::NodeConfig;
use crate::election::Election;
use crate::leader::Leader;
use crate::learner::Learner;
use crate::msg::{PeerMsg, PeerState, Vote};
use crate::requests::Requests;
use crate::{ClientRequest, ClientResponse, Sid, Store, Txn, Zxid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the core is told.
#[derive(Clone, Debug)]
pub enum Input {
    /// The durable state read back at (re)start. Must be the first input.
    Recover(Durable),
    /// One tick of time passed.
    Tick,
    /// A message from another server.
    Recv {
        /// Sender.
        from: Sid,
        /// Message.
        msg: PeerMsg,
    },
    /// The link to `peer` broke: messages sent on it may have been lost.
    LinkDown {
        /// The peer.
        peer: Sid,
    },
    /// The log is durable up to this zxid.
    Synced(Zxid),
    /// A client request on connection `conn`.
    Client {
        /// The client connection (shell-assigned).
        conn: u64,
        /// The request.
        req: ClientRequest,
    },
    /// A client connection closed.
    ClientGone {
        /// The connection.
        conn: u64,
    },
}

/// A durable change the shell must make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// Append these txns to the log (not synced until `Input::Synced`).
    Append(Vec<Txn>),
    /// Drop every log entry after `to` (durable at once).
    Truncate {
        /// Last zxid kept.
        to: Zxid,
    },
    /// Write this snapshot of the server's own state (durable at once).
    Snapshot(Box<Store>),
    /// Install this snapshot from a leader (SNAP, durable at once): it
    /// replaces the state, and every log entry is dropped (older entries
    /// may be orphans the leader's history does not hold).
    Install(Box<Store>),
    /// Write the epoch files (durable at once, atomically).
    Epochs {
        /// acceptedEpoch.
        accepted: u64,
        /// currentEpoch.
        current: u64,
    },
}

/// What the core asks the shell to do, in order.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send a message to a server.
    Send {
        /// Destination.
        to: Sid,
        /// Message.
        msg: PeerMsg,
    },
    /// Answer a client.
    Reply {
        /// The client connection.
        conn: u64,
        /// The response.
        resp: ClientResponse,
    },
    /// Make a change durable.
    Persist(Persist),
    /// Record a change of role, epoch or leader.
    Trace(TraceEvent),
    /// Record a protocol event worth showing in reports and tests.
    Event(ProtocolEvent),
}

/// How a learner was synchronized (ZAB.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMode {
    /// The learner's log is a prefix of the leader's history.
    Diff,
    /// The learner held entries the leader does not have: cut back to here.
    Trunc(Zxid),
    /// The learner was too far behind: state replaced by a snapshot at here.
    Snap(Zxid),
}

/// A protocol event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtocolEvent {
    /// This leader committed `txn`: a quorum acknowledged it, or it is part
    /// of the initial history this leader established. The union of these
    /// over all servers is the committed history.
    Committed {
        /// The txn.
        txn: Txn,
        /// The servers whose durable ACK (or NEWLEADER ACK) the leader
        /// counted, itself included once its own log was synced.
        acks: Vec<Sid>,
        /// The voters whose majority the commit needed (both sets while a
        /// reconfig is pending).
        voters: Vec<Vec<Sid>>,
    },
    /// This learner dropped its leader on a message it could not accept
    /// (it goes back to LOOKING and will sync again).
    ProtocolError {
        /// What was wrong.
        reason: String,
    },
    /// This learner is being synced by `leader` for `epoch`.
    Sync {
        /// The leader.
        leader: Sid,
        /// The epoch.
        epoch: u64,
        /// How.
        mode: SyncMode,
    },
}

/// The durable state of a server, as read back after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// acceptedEpoch.
    pub accepted_epoch: u64,
    /// currentEpoch.
    pub current_epoch: u64,
    /// The latest snapshot (empty store at zxid 0 when none).
    pub snapshot: Store,
    /// Log entries after the snapshot, in zxid order.
    pub log: Vec<Txn>,
}

/// One entry of the node event trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Ticks since the node (re)started.
    pub tick: u64,
    /// The server.
    pub sid: Sid,
    /// Its role.
    pub role: PeerState,
    /// For a leader: the epoch it leads (0 before discovery decided it);
    /// otherwise the server's current epoch.
    pub epoch: u64,
    /// The leader it follows or is.
    pub leader: Option<Sid>,
    /// Whether the leader is established (or the learner up to date).
    pub serving: bool,
    /// Its last committed (applied) zxid.
    pub last_committed: Zxid,
    /// Its last logged zxid.
    pub last_logged: Zxid,
}

/// The server's role and its role-specific state.
#[derive(Debug)]
pub(crate) enum Role {
    /// Not yet recovered from disk.
    Down,
    Looking(Election),
    Leading(Box<Leader>),
    /// Following or observing a leader.
    Learning(Learner),
}

/// A ZAB server. See the module docs.
#[derive(Debug)]
pub struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) now: u64,
    pub(crate) accepted_epoch: u64,
    pub(crate) current_epoch: u64,
    /// The state at the start of `log` (the last snapshot).
    pub(crate) base: Store,
    /// Logged txns after `base`, in zxid order, committed or not.
    pub(crate) log: Vec<Txn>,
    /// Highest zxid known durable.
    pub(crate) synced: Zxid,
    /// The applied state: `store.applied` is the last committed zxid.
    pub(crate) store: Store,
    /// Highest zxid known to be committed cluster-wide (ZAB.md I4).
    pub(crate) certain: Zxid,
    /// Voters of the committed configuration (as applied here).
    pub(crate) voters: BTreeSet<Sid>,
    /// Observers of the committed configuration.
    pub(crate) observers: BTreeSet<Sid>,
    /// Voters of a reconfig logged but not yet applied: until it commits,
    /// every quorum needs a majority of both configurations (§3.6).
    pub(crate) pending_voters: Option<BTreeSet<Sid>>,
    /// Servers outside our configuration that we heard of (a joiner that
    /// became a voter, or leads, while we were away): notifications go to
    /// them too, so that we find a leader our stale configuration lacks.
    pub(crate) heard_of: BTreeSet<Sid>,
    pub(crate) round: u64,
    pub(crate) vote: Vote,
    pub(crate) role: Role,
    pub(crate) requests: Requests,
    pub(crate) out: Vec<Output>,
    pub(crate) applied_since_snapshot: u64,
    /// Ticks a learner's sync may go without progress before it is given
    /// up: twice initLimit, doubled after each sync given up (so a slow but
    /// working network still gets through), reset once a sync completes.
    pub(crate) sync_patience: u64,
    /// Session touches not yet reported, and when the leader was lost.
    pub(crate) touches: crate::sessions::Touches,
}

impl Node {
    /// A server that has not yet read its disk; the first input must be
    /// `Input::Recover`.
    pub fn new(cfg: NodeConfig) -> Node {
        let voters = cfg.voters.iter().copied().collect();
        let observers = cfg.observers.iter().copied().collect();
        let sync_patience = 2 * cfg.init_limit;
        Node {
            vote: Vote {
                leader: cfg.sid,
                zxid: Zxid(0),
                epoch: 0,
            },
            cfg,
            now: 0,
            accepted_epoch: 0,
            current_epoch: 0,
            base: Store::default(),
            log: Vec::new(),
            synced: Zxid(0),
            store: Store::default(),
            certain: Zxid(0),
            voters,
            observers,
            pending_voters: None,
            heard_of: BTreeSet::new(),
            round: 0,
            role: Role::Down,
            requests: Requests::default(),
            out: Vec::new(),
            applied_since_snapshot: 0,
            sync_patience,
            touches: Default::default(),
        }
    }

    /// This server's id.
    pub fn sid(&self) -> Sid {
        self.cfg.sid
    }

    /// Advances the state machine by one input.
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        match input {
            Input::Recover(d) => self.recover(d),
            _ if matches!(self.role, Role::Down) => {
                panic!("the first input of a node must be Recover")
            }
            Input::Tick => self.tick(),
            Input::Recv { from, msg } => self.recv(from, msg),
            Input::LinkDown { peer } => self.link_down(peer),
            Input::Synced(z) => self.on_synced(z),
            Input::Client { conn, req } => self.on_client(conn, req),
            Input::ClientGone { conn } => self.requests.forget_conn(conn),
        }
        self.check_invariants();
        std::mem::take(&mut self.out)
    }

    /// The last committed zxid.
    pub fn last_committed(&self) -> Zxid {
        self.store.applied
    }

    /// The current epoch (of the last NEWLEADER this server accepted, or
    /// the epoch it leads once discovery decided it).
    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// The last logged zxid.
    pub fn last_logged(&self) -> Zxid {
        self.log.last().map_or(self.base.applied, |t| t.zxid)
    }

    /// The highest zxid this server knows to be committed cluster-wide
    /// (what ZAB.md I4 protects from truncation).
    pub fn known_committed(&self) -> Zxid {
        self.certain
    }

    /// Logged txns after the last snapshot, committed or not.
    pub fn log_entries(&self) -> &[Txn] {
        &self.log
    }

    /// The applied state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current role as election notifications report it.
    pub fn state(&self) -> PeerState {
        match &self.role {
            Role::Down | Role::Looking(_) => PeerState::Looking,
            Role::Leading(_) => PeerState::Leading,
            Role::Learning(l) if l.observer => PeerState::Observing,
            Role::Learning(_) => PeerState::Following,
        }
    }

    /// Whether the server answers clients now.
    pub fn serving(&self) -> bool {
        match &self.role {
            Role::Leading(l) => l.established,
            Role::Learning(l) => l.up_to_date(),
            _ => false,
        }
    }

    /// The leader this server follows or is, if any.
    pub fn leader(&self) -> Option<Sid> {
        match &self.role {
            Role::Leading(_) => Some(self.cfg.sid),
            Role::Learning(l) => Some(l.leader),
            _ => None,
        }
    }

    /// The voters of the configuration this server knows.
    pub fn voters(&self) -> Vec<Sid> {
        self.voters.iter().copied().collect()
    }

    pub(crate) fn is_voter(&self, s: Sid) -> bool {
        self.voters.contains(&s)
    }

    /// A configured observer (never a voter).
    pub(crate) fn is_observer(&self) -> bool {
        self.observers.contains(&self.cfg.sid)
    }

    /// The voter sets a quorum must currently hold a majority of.
    pub(crate) fn quorum_sets(&self) -> Vec<Vec<Sid>> {
        let mut v = vec![self.voters.iter().copied().collect::<Vec<_>>()];
        v.extend(
            self.pending_voters
                .iter()
                .map(|p| p.iter().copied().collect()),
        );
        v
    }

    /// Whether `set` holds a majority of the voters, and of the voters of
    /// a pending reconfig if there is one.
    pub(crate) fn is_quorum<'a>(&self, set: impl IntoIterator<Item = &'a Sid> + Clone) -> bool {
        let majority = |voters: &BTreeSet<Sid>| {
            let n = set
                .clone()
                .into_iter()
                .filter(|s| voters.contains(s))
                .count();
            n * 2 > voters.len()
        };
        match &self.pending_voters {
            None => majority(&self.voters),
            Some(new) if self.cfg.bugs.reconfig_single_quorum => {
                // The bug: one quorum, the old configuration's size, but
                // counting the joining server as if it were already a voter.
                let n = set.clone().into_iter().filter(|s| new.contains(s)).count();
                n * 2 > self.voters.len()
            }
            Some(new) => majority(&self.voters) && majority(new),
        }
    }

    /// Recomputes the configuration from the applied store and the log
    /// beyond it (after recovery, commits of a reconfig, TRUNC and SNAP).
    pub(crate) fn refresh_membership(&mut self) {
        match &self.store.config {
            Some((v, o)) => {
                self.voters = v.iter().copied().collect();
                self.observers = o.iter().copied().collect();
            }
            None => {
                self.voters = self.cfg.voters.iter().copied().collect();
                self.observers = self.cfg.observers.iter().copied().collect();
            }
        }
        let start = self.log.partition_point(|t| t.zxid <= self.store.applied);
        self.pending_voters = self.log[start..].iter().rev().find_map(|t| match &t.op {
            crate::TxnOp::Reconfig { voters, .. } => Some(voters.iter().copied().collect()),
            _ => None,
        });
    }

    /// Every other server of the configuration.
    pub(crate) fn peers(&self) -> Vec<Sid> {
        let mut all: BTreeSet<Sid> = self.voters.iter().chain(&self.observers).copied().collect();
        all.extend(self.pending_voters.iter().flatten());
        all.extend(&self.heard_of);
        all.remove(&self.cfg.sid);
        all.into_iter().collect()
    }

    pub(crate) fn send(&mut self, to: Sid, msg: PeerMsg) {
        assert!(to != self.cfg.sid, "a server never sends to itself");
        self.out.push(Output::Send { to, msg });
    }

    pub(crate) fn persist(&mut self, p: Persist) {
        self.out.push(Output::Persist(p));
    }

    pub(crate) fn persist_epochs(&mut self) {
        assert!(
            self.accepted_epoch >= self.current_epoch,
            "acceptedEpoch >= currentEpoch (I8)"
        );
        self.persist(Persist::Epochs {
            accepted: self.accepted_epoch,
            current: self.current_epoch,
        });
    }

    pub(crate) fn trace(&mut self) {
        let epoch = match &self.role {
            Role::Leading(l) => l.epoch,
            _ => self.current_epoch,
        };
        let ev = TraceEvent {
            tick: self.now,
            sid: self.cfg.sid,
            role: self.state(),
            epoch,
            leader: self.leader(),
            serving: self.serving(),
            last_committed: self.store.applied,
            last_logged: self.last_logged(),
        };
        self.out.push(Output::Trace(ev));
    }

    fn tick(&mut self) {
        self.now += 1;
        match &self.role {
            Role::Looking(_) => self.election_tick(),
            Role::Leading(_) => self.leader_tick(),
            Role::Learning(_) => self.learner_tick(),
            Role::Down => unreachable!("checked in step"),
        }
        self.requests_tick();
    }

    fn recv(&mut self, from: Sid, msg: PeerMsg) {
        if let PeerMsg::Notification { vote, round, state } = msg {
            return self.on_notification(from, vote, round, state);
        }
        match &self.role {
            Role::Leading(_) => self.leader_recv(from, msg),
            Role::Learning(l) if l.leader == from => self.learner_recv(msg),
            // A quorum packet from a server we do not follow (a stale
            // leader, or a learner of a leadership we gave up): ignore it;
            // the link and timeouts sort the rest out.
            _ => {}
        }
    }

    fn link_down(&mut self, peer: Sid) {
        match &mut self.role {
            Role::Leading(_) => self.leader_lost_learner(peer),
            Role::Learning(l) if l.leader == peer => self.start_looking(),
            _ => {}
        }
    }

    /// Leaves any role for a new election. Clients are held (or failed with
    /// ConnectionLoss when holding is off).
    pub(crate) fn start_looking(&mut self) {
        self.round += 1;
        self.vote = self.initial_vote();
        self.role = Role::Looking(Election::new(self.now, self.cfg.notification_interval));
        self.sessions_lost_leader();
        self.requests_stop_serving();
        self.trace();
        self.election_start();
    }

    /// The node's own invariants (ZAB.md §6, N rows), checked after every
    /// step; they stay on in release builds.
    fn check_invariants(&self) {
        assert!(
            self.accepted_epoch >= self.current_epoch || self.cfg.bugs.no_epoch_fencing,
            "I8: acceptedEpoch {} >= currentEpoch {}",
            self.accepted_epoch,
            self.current_epoch
        );
        assert!(
            self.store.applied <= self.last_logged(),
            "only logged txns are applied"
        );
        assert!(self.synced <= self.last_logged(), "synced <= logged");
        assert!(
            self.base.applied <= self.store.applied,
            "the snapshot precedes the applied state"
        );
    }
}
