//! Messages between servers (ZAB.md §2). Election notifications and quorum
//! packets share one FIFO link per pair of servers; the shell reports a link
//! that broke (and so may have lost messages) as [`crate::Input::LinkDown`].

use crate::{ClientOp, Outcome, Sid, Store, Txn, Zxid};
use serde::{Deserialize, Serialize};

/// A server's role as reported in election notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeerState {
    /// Running an election.
    Looking,
    /// Following a leader.
    Following,
    /// Leading.
    Leading,
    /// Observing a leader (never votes).
    Observing,
}

/// A vote: the proposed leader and its `(epoch, zxid)`. Votes are ordered
/// by `(epoch, zxid, leader)`, the order of fast leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// Proposed leader.
    pub leader: Sid,
    /// Its last logged zxid.
    pub zxid: Zxid,
    /// Its current epoch.
    pub epoch: u64,
}

impl Vote {
    /// The election order key.
    pub fn key(&self) -> (u64, Zxid, Sid) {
        (self.epoch, self.zxid, self.leader)
    }
}

/// A message between servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// FLE vote (§3.1).
    Notification {
        /// The sender's vote.
        vote: Vote,
        /// The sender's election round.
        round: u64,
        /// The sender's state.
        state: PeerState,
    },
    /// Learner -> leader: register (§3.2).
    LearnerInfo {
        /// The learner's accepted epoch.
        accepted_epoch: u64,
        /// Whether it is an observer.
        observer: bool,
    },
    /// Leader -> learner: the proposed new epoch.
    LeaderInfo {
        /// The epoch.
        epoch: u64,
    },
    /// Learner -> leader: promise and state summary.
    AckEpoch {
        /// Its last logged zxid.
        last_zxid: Zxid,
        /// Its current epoch, or `None` when it made no new promise.
        current_epoch: Option<u64>,
    },
    /// Leader -> learner: sync by sending the missing entries.
    Diff {
        /// The leader's last committed zxid: the learner's entries up to
        /// here are committed.
        committed: Zxid,
    },
    /// Leader -> learner: truncate the log after this zxid, then entries.
    Trunc {
        /// Keep entries up to here.
        to: Zxid,
        /// The leader's last committed zxid.
        committed: Zxid,
    },
    /// Leader -> learner: replace the state with this snapshot.
    Snap {
        /// The snapshot.
        store: Box<Store>,
    },
    /// Leader -> voter: accept this txn.
    Proposal {
        /// The txn.
        txn: Txn,
    },
    /// Leader -> voter: deliver this zxid.
    Commit {
        /// The zxid.
        zxid: Zxid,
    },
    /// Leader -> observer: deliver this committed txn.
    Inform {
        /// The txn.
        txn: Txn,
    },
    /// Leader -> learner: end of the initial history of `epoch`.
    NewLeader {
        /// The new epoch. (The configuration is not sent: a learner takes
        /// it from the history it was synced with, the store and any
        /// reconfig in its log.)
        epoch: u64,
    },
    /// Learner -> leader: `zxid` (and everything before it) is durable.
    Ack {
        /// The zxid (`epoch << 32` acknowledges NEWLEADER).
        zxid: Zxid,
    },
    /// Leader -> learner: start serving clients.
    UpToDate,
    /// Leader -> learner: liveness probe carrying a round number.
    Ping {
        /// Round.
        round: u64,
    },
    /// Learner -> leader: answer to a probe, with the sessions touched at
    /// the learner since its last answer (ZAB.md §9).
    PingAck {
        /// Round.
        round: u64,
        /// Sessions touched.
        touched: Vec<u64>,
    },
    /// Learner -> leader: a client reached this learner on a session it
    /// has not seen since it began following: does the session live?
    /// (ZooKeeper's REVALIDATE.)
    Revalidate {
        /// Session.
        session: u64,
    },
    /// Leader -> learner: whether the session lives (open, or never
    /// opened, and not closing); a live session was touched.
    Revalidated {
        /// Session.
        session: u64,
        /// Whether it lives.
        alive: bool,
    },
    /// Learner -> leader: a client write or cas, forwarded.
    Request {
        /// Session.
        session: u64,
        /// Sequence number.
        seq: u64,
        /// The op.
        op: ClientOp,
    },
    /// Leader -> learner: a forwarded request that had already executed.
    Executed {
        /// Session.
        session: u64,
        /// Sequence number.
        seq: u64,
        /// Its outcome.
        outcome: Outcome,
        /// Its zxid.
        zxid: Zxid,
    },
    /// Learner -> leader: a linearizable read wants a sync point.
    Sync {
        /// Session.
        session: u64,
        /// Sequence number.
        seq: u64,
    },
    /// Leader -> learner: everything proposed before the sync is committed
    /// and a quorum confirmed the leadership after it arrived.
    SyncDone {
        /// Session.
        session: u64,
        /// Sequence number.
        seq: u64,
    },
}

/// A frame on a server-to-server link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of a link: who is dialing.
    Hello {
        /// The dialer.
        sid: Sid,
    },
    /// Keeps an idle link alive.
    Heartbeat,
    /// A protocol message.
    Msg(PeerMsg),
}
