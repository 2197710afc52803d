//! The node's vocabulary: server ids, zxids, transactions, the replicated
//! store, and the client protocol.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A server id (ZooKeeper's `myid`), 1-based.
pub type Sid = u64;

/// A transaction id: `epoch << 32 | counter`. Counter 0 is an epoch marker
/// (no transaction); the first transaction of an epoch has counter 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid of `epoch` and `counter`.
    pub fn new(epoch: u64, counter: u64) -> Zxid {
        assert!(
            epoch < (1 << 32) && counter < (1 << 32),
            "zxid parts fit 32 bits"
        );
        Zxid(epoch << 32 | counter)
    }

    /// The epoch part.
    pub fn epoch(self) -> u64 {
        self.0 >> 32
    }

    /// The counter part.
    pub fn counter(self) -> u64 {
        self.0 & 0xffff_ffff
    }

    /// The next zxid in the same epoch.
    pub fn next(self) -> Zxid {
        assert!(self.counter() < 0xffff_fffe, "zxid counter exhausted");
        Zxid(self.0 + 1)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch(), self.counter())
    }
}

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
}

impl ClientOp {
    /// The key the op touches.
    pub fn key(&self) -> Key {
        match self {
            ClientOp::Read { key }
            | ClientOp::SyncRead { key }
            | ClientOp::Write { key, .. }
            | ClientOp::Cas { key, .. } => *key,
            ClientOp::AddVoter { .. } => 0,
        }
    }

    /// True for ops that change state (they go through the leader).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            ClientOp::Write { .. } | ClientOp::Cas { .. } | ClientOp::AddVoter { .. }
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

/// A change to the replicated state, as logged and replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Set a key.
    Set { key: Key, value: i64 },
    /// A cas that did not match: logged so that its reply is ordered with
    /// the writes around it and deduplicated like them (ZooKeeper's error
    /// txn).
    CasFailed { key: Key, actual: Option<i64> },
    /// A membership change: the new set of voters and observers.
    Reconfig {
        voters: Vec<Sid>,
        observers: Vec<Sid>,
    },
}

/// A logged transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// Its zxid.
    pub zxid: Zxid,
    /// The client request it executes, if any: `(session, seq)`.
    pub origin: Option<(u64, u64)>,
    /// The change.
    pub op: TxnOp,
}

impl Txn {
    /// The reply a client gets once this txn is applied.
    pub fn outcome(&self) -> Outcome {
        match &self.op {
            TxnOp::Set { .. } | TxnOp::Reconfig { .. } => Outcome::Written,
            TxnOp::CasFailed { actual, .. } => Outcome::CasFailed { actual: *actual },
        }
    }
}

/// The replicated state: the key-value map and, per session, the last
/// request executed and its outcome (for at-most-once execution of retried
/// or re-forwarded requests).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    /// The data.
    pub data: BTreeMap<Key, i64>,
    /// session -> (last seq executed, its outcome, its zxid).
    pub sessions: BTreeMap<u64, (u64, Outcome, Zxid)>,
    /// The configuration set by the last reconfig (voters, observers);
    /// `None`: the initial configuration.
    pub config: Option<(Vec<Sid>, Vec<Sid>)>,
    /// The zxid of the last txn applied.
    pub applied: Zxid,
}

impl Store {
    /// Applies a txn; zxids must increase.
    pub fn apply(&mut self, txn: &Txn) {
        assert!(
            txn.zxid > self.applied,
            "txns apply in zxid order: {} after {}",
            txn.zxid,
            self.applied
        );
        match &txn.op {
            TxnOp::Set { key, value } => {
                self.data.insert(*key, *value);
            }
            TxnOp::Reconfig { voters, observers } => {
                self.config = Some((voters.clone(), observers.clone()));
            }
            TxnOp::CasFailed { .. } => {}
        }
        if let Some((session, seq)) = txn.origin {
            self.sessions
                .insert(session, (seq, txn.outcome(), txn.zxid));
        }
        self.applied = txn.zxid;
    }

    /// The value of a key.
    pub fn get(&self, key: Key) -> Option<i64> {
        self.data.get(&key).copied()
    }

    /// The outcome of `(session, seq)` if that request was already
    /// decided: its own outcome when it is the session's last executed
    /// request; for an older one, `ConnectionLoss` (indeterminate): it may
    /// have executed before the later one (its outcome is no longer kept)
    /// or never, so neither `Written` nor the definite `NotReady` would be
    /// true. It is never executed now (at most once, in session order).
    pub fn executed(&self, session: u64, seq: u64) -> Option<(Outcome, Zxid)> {
        match self.sessions.get(&session) {
            Some((s, o, z)) if *s == seq => Some((o.clone(), *z)),
            Some((s, _, z)) if *s > seq => Some((Outcome::ConnectionLoss, *z)),
            _ => None,
        }
    }

    /// A digest of the data and sessions (FNV-1a over the ordered
    /// contents); equal stores have equal digests on every replica.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |x: u64| {
            for b in x.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for (k, v) in &self.data {
            eat(*k);
            eat(*v as u64);
        }
        for (s, (seq, _, z)) in &self.sessions {
            eat(*s);
            eat(*seq);
            eat(z.0);
        }
        if let Some((v, o)) = &self.config {
            for s in v.iter().chain(o) {
                eat(*s);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_parts() {
        let z = Zxid::new(3, 7);
        assert_eq!((z.epoch(), z.counter()), (3, 7));
        assert!(Zxid::new(2, 100) < Zxid::new(3, 1));
        assert_eq!(z.next(), Zxid::new(3, 8));
    }

    #[test]
    fn store_applies_and_dedupes() {
        let mut s = Store::default();
        s.apply(&Txn {
            zxid: Zxid::new(1, 1),
            origin: Some((9, 1)),
            op: TxnOp::Set { key: 1, value: 5 },
        });
        assert_eq!(s.get(1), Some(5));
        assert_eq!(s.executed(9, 1), Some((Outcome::Written, Zxid::new(1, 1))));
        assert_eq!(s.executed(9, 2), None);
        // (d) An older request may have executed before the later one: the
        // answer must not be the definite NotReady ("certainly did not
        // take effect"), and never a second execution.
        s.apply(&Txn {
            zxid: Zxid::new(1, 3),
            origin: Some((9, 3)),
            op: TxnOp::Set { key: 1, value: 7 },
        });
        assert_eq!(
            s.executed(9, 1),
            Some((Outcome::ConnectionLoss, Zxid::new(1, 3)))
        );
        let d = s.digest();
        s.apply(&Txn {
            zxid: Zxid::new(1, 4),
            origin: None,
            op: TxnOp::Set { key: 1, value: 6 },
        });
        assert_ne!(d, s.digest());
    }
}
