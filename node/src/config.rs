//! The node's configuration: ensemble, timing (in ticks), client holding,
//! snapshots, and the bug switches of ZAB.md §8 (all off by default).

use crate::Sid;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Injectable protocol bugs (ZAB.md §8). Each one is a real change in a
/// protocol code path; all are off in a correct node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bugs {
    /// ACK a proposal before it is fsynced.
    pub ack_before_fsync: bool,
    /// Commit on the first ACK from anyone (including non-voters).
    pub commit_without_quorum: bool,
    /// Elect by server id only, ignoring epoch and zxid (and let the
    /// elected leader keep leading when a follower's history is newer).
    pub elect_ignore_zxid: bool,
    /// Sync always by DIFF, never TRUNC.
    pub skip_trunc: bool,
    /// Accept any LEADERINFO and old-epoch proposals; do not persist the
    /// accepted epoch.
    pub no_epoch_fencing: bool,
    /// ACK NEWLEADER (and persist currentEpoch) before the synced txns are
    /// durable.
    pub ack_newleader_early: bool,
    /// Sync is not a quorum operation (ZOOKEEPER-1675), taken further: the
    /// leader answers syncs at once from its committed state, confirming
    /// nothing, and notices a lost quorum only after twenty times syncLimit,
    /// serving stale reads meanwhile.
    pub stale_leader_reads: bool,
    /// A learner serves reads from its restored log before it is synced.
    pub serve_before_uptodate: bool,
    /// Commit without the predecessor committed; apply COMMITs without
    /// checking the pending head.
    pub out_of_order_commit: bool,
    /// While a reconfig is pending, a single quorum: the old
    /// configuration's majority, counting the joining server as a voter
    /// before its activation.
    pub reconfig_single_quorum: bool,
    /// Reads are not held behind the session's pending writes.
    pub session_fifo_off: bool,
    /// The expiry clock runs while there is no leader: a new leader counts
    /// each session's timeout from when it lost its previous leader.
    #[serde(default)]
    pub expire_during_election: bool,
    /// The leader does not check that a session is closing when it
    /// prepares an ephemeral create, so a create ordered after the
    /// closeSession leaves a key with a dead owner.
    #[serde(default)]
    pub orphan_ephemeral: bool,
    /// A follower expires the sessions that touched it by its own clock.
    #[serde(default)]
    pub follower_local_expiry: bool,
}

impl Bugs {
    /// Every switch: its command-line name and one line on what it breaks.
    pub const ALL: [(&'static str, &'static str); 14] = [
        ("ack-before-fsync", "ACK a proposal before it is fsynced"),
        (
            "commit-without-quorum",
            "commit on the first ACK from anyone, non-voters included",
        ),
        (
            "elect-ignore-zxid",
            "elect by server id only, ignoring epoch and zxid",
        ),
        ("skip-trunc", "sync always by DIFF, never TRUNC"),
        (
            "no-epoch-fencing",
            "accept any LEADERINFO; do not persist the accepted epoch",
        ),
        (
            "ack-newleader-early",
            "ACK NEWLEADER before the synced txns are durable",
        ),
        (
            "stale-leader-reads",
            "a leader that lost its quorum keeps serving reads and syncs",
        ),
        (
            "serve-before-uptodate",
            "a learner serves reads from its restored log before it is synced",
        ),
        (
            "out-of-order-commit",
            "commit without the predecessor; apply COMMITs out of order",
        ),
        (
            "reconfig-single-quorum",
            "a reconfig needs only the new configuration's quorum",
        ),
        (
            "session-fifo-off",
            "reads are not held behind the session's pending writes",
        ),
        (
            "expire-during-election",
            "session timeouts run on while there is no leader",
        ),
        (
            "orphan-ephemeral",
            "an ephemeral create is accepted from a closing session",
        ),
        (
            "follower-local-expiry",
            "a follower expires sessions by its own clock",
        ),
    ];

    /// Turns on the switch named `name` (kebab-case); false if unknown.
    pub fn enable(&mut self, name: &str) -> bool {
        let flag = match name {
            "ack-before-fsync" => &mut self.ack_before_fsync,
            "commit-without-quorum" => &mut self.commit_without_quorum,
            "elect-ignore-zxid" => &mut self.elect_ignore_zxid,
            "skip-trunc" => &mut self.skip_trunc,
            "no-epoch-fencing" => &mut self.no_epoch_fencing,
            "ack-newleader-early" => &mut self.ack_newleader_early,
            "stale-leader-reads" => &mut self.stale_leader_reads,
            "serve-before-uptodate" => &mut self.serve_before_uptodate,
            "out-of-order-commit" => &mut self.out_of_order_commit,
            "reconfig-single-quorum" => &mut self.reconfig_single_quorum,
            "session-fifo-off" => &mut self.session_fifo_off,
            "expire-during-election" => &mut self.expire_during_election,
            "orphan-ephemeral" => &mut self.orphan_ephemeral,
            "follower-local-expiry" => &mut self.follower_local_expiry,
            _ => return false,
        };
        *flag = true;
        true
    }
}

fn min_session_timeout() -> u64 {
    20
}

fn max_session_timeout() -> u64 {
    200
}

/// Everything a node needs to know before it starts. Timeouts are counted
/// in ticks of `tick`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// This server's id.
    pub sid: Sid,
    /// Voters of the initial configuration (every server of an ensemble is
    /// given the same one).
    pub voters: Vec<Sid>,
    /// Observers of the initial configuration.
    pub observers: Vec<Sid>,
    /// Length of a tick.
    pub tick: Duration,
    /// Ticks a leader waits for a quorum in discovery and synchronization.
    pub init_limit: u64,
    /// Ticks of silence after which a leader loses a learner and a learner
    /// abandons its leader.
    pub sync_limit: u64,
    /// Ticks an election waits for a better vote once a quorum agrees.
    pub finalize_wait: u64,
    /// First interval (ticks) between notification rounds; doubles up to
    /// `max_notification_interval`.
    pub notification_interval: u64,
    /// Cap of the notification interval.
    pub max_notification_interval: u64,
    /// Hold client requests while the server is not serving (the lecture's
    /// behaviour); `false` gives ZooKeeper's ConnectionLoss.
    pub hold_requests: bool,
    /// Bound of the hold queue; overflow answers NotReady.
    pub hold_queue_max: usize,
    /// Ticks a held request may wait before it is answered NotReady.
    pub hold_timeout: u64,
    /// Committed txns between snapshots.
    pub snapshot_interval: u64,
    /// Committed txns kept in memory (for DIFF) beyond the last snapshot.
    pub committed_log_window: usize,
    /// Shortest session timeout granted, in ticks (ZooKeeper's 2 ticks of
    /// its tickTime; our 10 ms tick is finer, so 2 session ticks of 100 ms).
    #[serde(default = "min_session_timeout")]
    pub min_session_timeout: u64,
    /// Longest session timeout granted, in ticks (ZooKeeper's 20 ticks).
    #[serde(default = "max_session_timeout")]
    pub max_session_timeout: u64,
    /// Protocol bugs to inject.
    pub bugs: Bugs,
}

impl NodeConfig {
    /// A configuration with the defaults below for server `sid` of an
    /// ensemble of `voters` and `observers`: tick 10 ms, initLimit 20,
    /// syncLimit 10, finalize 2 ticks, notifications every 5 ticks (up to
    /// 100), holding on with 1,000 requests for up to 500 ticks, a snapshot
    /// every 1,000 txns, a DIFF window of 500, and session timeouts of 20
    /// to 200 ticks.
    ///
    /// A `sid` in neither list is a joiner: it syncs as a non-voting
    /// participant until a reconfig makes it a voter (ZAB.md §3.6).
    pub fn new(sid: Sid, voters: Vec<Sid>, observers: Vec<Sid>) -> NodeConfig {
        assert!(!voters.is_empty(), "an ensemble has voters");
        NodeConfig {
            sid,
            voters,
            observers,
            tick: Duration::from_millis(10),
            init_limit: 20,
            sync_limit: 10,
            finalize_wait: 2,
            notification_interval: 5,
            max_notification_interval: 100,
            hold_requests: true,
            hold_queue_max: 1000,
            hold_timeout: 500,
            snapshot_interval: 1000,
            committed_log_window: 500,
            min_session_timeout: min_session_timeout(),
            max_session_timeout: max_session_timeout(),
            bugs: Bugs::default(),
        }
    }
}
