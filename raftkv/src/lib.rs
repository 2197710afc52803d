//! A replicated key-value server on TiKV's raft-rs (`raft::RawNode`), the
//! second system under faultline's bench (issue 15). Like the ZAB node it
//! is a pure core ([`core`]: raft-rs, the state machine, waiting client
//! requests) in a thin turmoil shell ([`shell`]: TCP between peers, the
//! durable log on the simulated disk, clients), and it speaks the same
//! client protocol (`faultline_node::client`), so the bench's workload
//! drives it unchanged.
//!
//! Determinism: raft-rs draws each election timeout from the thread RNG;
//! the core pins its range to one value and the shell spreads elections
//! from the seed instead (it skips a follower's ticks with a seeded coin),
//! so one seed replays one run exactly without patching the library.

/// The raft-rs this server is built on (its entries are in the images).
pub use raft;

pub mod core;
pub mod disk;
pub mod kv;
pub mod shell;
pub mod storage;

/// Bugs the integration can be built with (never in raft-rs itself), for
/// the bench to catch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bugs {
    /// Tell raft-rs entries and hard state are persisted when they are
    /// only written, not synced (synced later): a leader and followers
    /// acknowledge writes a power loss can take back.
    pub ack_before_persist: bool,
    /// Serve reads from the local state at once, without ReadIndex: a
    /// deposed leader or a lagging follower answers stale values.
    pub local_reads: bool,
}

impl Bugs {
    /// Every switch: its `--bug` name and what it breaks.
    pub const ALL: [(&'static str, &'static str); 2] = [
        (
            "ack-before-persist",
            "entries and hard state reported persisted to raft-rs before they are synced",
        ),
        (
            "local-reads",
            "reads served from the local state, without ReadIndex",
        ),
    ];

    /// Turns on the switch named `name`; false if there is none.
    pub fn enable(&mut self, name: &str) -> bool {
        match name {
            "ack-before-persist" => self.ack_before_persist = true,
            "local-reads" => self.local_reads = true,
            _ => return false,
        }
        true
    }
}
