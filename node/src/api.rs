//! The client protocol: what a client asks a server (`ClientRequest`, with
//! its `ClientOp`) and what it is answered (`ClientResponse`, with its
//! `Outcome`), framed by `wire`.

use crate::ids::{Sid, Zxid};
use serde::{Deserialize, Serialize};

/// A key of the store.
pub type Key = u64;

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Read served locally by the server (sequentially consistent).
    Read { key: Key },
    /// Linearizable read: the leader confirms with a quorum that it still
    /// leads and everything it proposed before is committed.
    SyncRead { key: Key },
    /// Write a value.
    Write { key: Key, value: i64 },
    /// Set `to` if the key holds `from` (`None`: the key is absent).
    Cas {
        key: Key,
        from: Option<i64>,
        to: i64,
    },
    /// Make a synced non-voting participant a voter (ZAB.md §3.6). Answered
    /// `NotReady` when a reconfig is pending or the new configuration has no
    /// synced quorum.
    AddVoter { sid: Sid },
    /// Open the session (ZAB.md §9) asking for this timeout, in ticks; the
    /// server clamps it to `[min_session_timeout, max_session_timeout]`.
    /// The session exists once its createSession txn commits; answered
    /// `Opened` with the timeout granted.
    CreateSession { timeout: u64 },
    /// Close the session: it and its ephemeral keys go in one txn.
    CloseSession,
    /// Touch the session (a client idle for a third of its timeout sends
    /// one); answered `Pong` at once by the server it reaches.
    Ping,
    /// Create `key` = `value`, owned by the session, if the key is absent
    /// (else `CasFailed` with what it holds); it goes with its session.
    CreateEphemeral { key: Key, value: i64 },
}

impl ClientOp {
    /// The key the op touches.
    pub fn key(&self) -> Key {
        match self {
            ClientOp::Read { key }
            | ClientOp::SyncRead { key }
            | ClientOp::Write { key, .. }
            | ClientOp::Cas { key, .. }
            | ClientOp::CreateEphemeral { key, .. } => *key,
            ClientOp::AddVoter { .. }
            | ClientOp::CreateSession { .. }
            | ClientOp::CloseSession
            | ClientOp::Ping => 0,
        }
    }

    /// True for ops that change state (they go through the leader).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            ClientOp::Write { .. }
                | ClientOp::Cas { .. }
                | ClientOp::AddVoter { .. }
                | ClientOp::CreateSession { .. }
                | ClientOp::CloseSession
                | ClientOp::CreateEphemeral { .. }
        )
    }
}

/// A client request: `(session, seq)` identifies it for at-most-once
/// execution; a session's requests are executed in `seq` order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The client's session.
    pub session: u64,
    /// Per-session sequence number, increasing.
    pub seq: u64,
    /// The operation.
    pub op: ClientOp,
    /// The highest zxid this session has seen. A server that has not
    /// applied it yet answers `NotReady` instead of serving a read from its
    /// past (ZooKeeper refuses such a session: `CLIENT_ZXID_AHEAD`), so a
    /// session never goes back in time, even across reconnects.
    #[serde(default)]
    pub seen: Zxid,
}

/// The outcome of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A read's value (`None`: absent).
    Value(Option<i64>),
    /// A write or a successful cas took effect.
    Written,
    /// A cas found another value (it did not take effect).
    CasFailed { actual: Option<i64> },
    /// The server could not take the request (hold queue full or hold
    /// timeout): it certainly did not take effect.
    NotReady,
    /// ZooKeeper's behaviour: the server left its role; a write may or may
    /// not have taken effect.
    ConnectionLoss,
    /// The session was opened with this timeout (ticks).
    Opened { timeout: u64 },
    /// The session is closed, closing, or unknown: the request certainly
    /// did not take effect, and the client must open a new session.
    SessionExpired,
    /// The answer to a ping.
    Pong,
}

/// A server's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    /// Of the request.
    pub session: u64,
    /// Of the request.
    pub seq: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The zxid the op was applied at (writes) or read at (reads).
    pub zxid: Zxid,
    /// The server that answered.
    pub node: Sid,
}
