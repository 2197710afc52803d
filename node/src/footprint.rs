//! What a server holds in memory that should drain or stay bounded: the
//! end-of-run hygiene probes read it (a node that keeps the requests of
//! closed connections forever, or never trims its in-memory log, is
//! correct for a while and then falls over).

use crate::core::{Node, Role};

/// Sizes of a server's in-memory tables. See [`Node::footprint`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Client requests held, waiting for an outcome, or blocked behind
    /// their session's writes. Zero once no client is connected.
    pub client_requests: usize,
    /// Logged txns kept in memory after the last snapshot. At most the
    /// snapshot interval plus the DIFF window plus the uncommitted tail,
    /// once a snapshot is possible.
    pub log_entries: usize,
    /// A leader's outstanding proposals and syncs awaiting a ping round.
    /// Zero once the workload has stopped and the cluster is quiet.
    pub leader_backlog: usize,
    /// Sessions open in its replicated state (neither closed nor expired).
    /// Zero once every client has left and the sessions they abandoned
    /// have expired.
    pub open_sessions: usize,
}

impl Node {
    /// The sizes of this server's in-memory tables now.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            client_requests: self.requests.len(),
            log_entries: self.log.len(),
            leader_backlog: match &self.role {
                Role::Leading(l) => l.backlog(),
                _ => 0,
            },
            open_sessions: self.store().live.len(),
        }
    }
}
