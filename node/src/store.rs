//! The replicated state: transactions as logged and replicated (`Txn`,
//! `TxnOp`) and the store they are applied to (`Store`).

use crate::api::{Key, Outcome};
use crate::ids::{Sid, Zxid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher as _;

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
    /// createSession: the session is open, with this timeout (ticks).
    CreateSession { session: u64, timeout: u64 },
    /// closeSession: the session is closed and every key it owns deleted,
    /// in this one txn, on every path a txn takes. `keys` are the keys the
    /// leader found the session owning when it proposed the close (what a
    /// reader of the log learns the txn deletes); applying it deletes
    /// every key the session owns.
    CloseSession { session: u64, keys: Vec<Key> },
    /// Create an ephemeral key owned by `owner`.
    SetEphemeral { key: Key, value: i64, owner: u64 },
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
            TxnOp::Set { .. }
            | TxnOp::Reconfig { .. }
            | TxnOp::CloseSession { .. }
            | TxnOp::SetEphemeral { .. } => Outcome::Written,
            TxnOp::CasFailed { actual, .. } => Outcome::CasFailed { actual: *actual },
            TxnOp::CreateSession { timeout, .. } => Outcome::Opened { timeout: *timeout },
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
    /// Open sessions (ZAB.md §9) and their timeouts, in ticks.
    #[serde(default)]
    pub live: BTreeMap<u64, u64>,
    /// The owner session of every ephemeral key.
    #[serde(default)]
    pub owners: BTreeMap<Key, u64>,
    /// Sessions closed (expired or closed by their client): a request of
    /// one gets `SessionExpired`. A session id never opened is sessionless
    /// (no timeout, no ephemeral keys), as the admin client and the
    /// protocol tests use it.
    #[serde(default)]
    pub closed: BTreeSet<u64>,
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
            TxnOp::CreateSession { session, timeout } => {
                self.live.insert(*session, *timeout);
            }
            TxnOp::CloseSession { session, .. } => {
                self.live.remove(session);
                self.closed.insert(*session);
                let owned: Vec<Key> = self.owned_by(*session).collect();
                for k in owned {
                    self.owners.remove(&k);
                    self.data.remove(&k);
                }
            }
            TxnOp::SetEphemeral { key, value, owner } => {
                self.data.insert(*key, *value);
                self.owners.insert(*key, *owner);
            }
        }
        if let Some((session, seq)) = txn.origin {
            self.sessions
                .insert(session, (seq, txn.outcome(), txn.zxid));
        }
        self.applied = txn.zxid;
    }

    /// The ephemeral keys `session` owns.
    pub fn owned_by(&self, session: u64) -> impl Iterator<Item = Key> + '_ {
        self.owners
            .iter()
            .filter(move |(_, o)| **o == session)
            .map(|(k, _)| *k)
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
        let mut h = fnv::FnvHasher::default();
        let mut eat = |x: u64| h.write(&x.to_le_bytes());
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
        for (s, t) in &self.live {
            eat(*s);
            eat(*t);
        }
        for (k, o) in &self.owners {
            eat(*k);
            eat(*o);
        }
        for s in &self.closed {
            eat(*s);
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(zxid: Zxid, origin: Option<(u64, u64)>, key: Key, value: i64) -> Txn {
        Txn {
            zxid,
            origin,
            op: TxnOp::Set { key, value },
        }
    }

    #[test]
    fn store_applies_and_dedupes() {
        let mut s = Store::default();
        s.apply(&set(Zxid::new(1, 1), Some((9, 1)), 1, 5));
        assert_eq!(s.get(1), Some(5));
        assert_eq!(s.executed(9, 1), Some((Outcome::Written, Zxid::new(1, 1))));
        assert_eq!(s.executed(9, 2), None);
        // (d) An older request may have executed before the later one: the
        // answer must not be the definite NotReady ("certainly did not
        // take effect"), and never a second execution.
        s.apply(&set(Zxid::new(1, 3), Some((9, 3)), 1, 7));
        assert_eq!(
            s.executed(9, 1),
            Some((Outcome::ConnectionLoss, Zxid::new(1, 3)))
        );
        let d = s.digest();
        s.apply(&set(Zxid::new(1, 4), None, 1, 6));
        assert_ne!(d, s.digest());
    }

    #[test]
    fn close_session_takes_its_ephemeral_keys_in_the_same_txn() {
        let mut s = Store::default();
        let txn = |c: u64, op: TxnOp| Txn {
            zxid: Zxid::new(1, c),
            origin: None,
            op,
        };
        s.apply(&txn(
            1,
            TxnOp::CreateSession {
                session: 4,
                timeout: 30,
            },
        ));
        s.apply(&txn(
            2,
            TxnOp::SetEphemeral {
                key: 100,
                value: 1,
                owner: 4,
            },
        ));
        s.apply(&set(Zxid::new(1, 3), None, 100, 2)); // still session 4's
        s.apply(&set(Zxid::new(1, 4), None, 5, 9));
        let open = s.digest();
        assert_eq!(s.owned_by(4).collect::<Vec<_>>(), vec![100]);
        s.apply(&txn(
            5,
            TxnOp::CloseSession {
                session: 4,
                keys: vec![100],
            },
        ));
        assert_eq!((s.get(100), s.get(5)), (None, Some(9)));
        assert!(s.live.is_empty() && s.owners.is_empty() && s.closed.contains(&4));
        assert_ne!(open, s.digest());
    }

    #[test]
    fn digest_is_fnv1a_over_the_ordered_contents() {
        // The value the hand-written FNV-1a gave before the fnv crate took
        // over: digests (and so every run's convergence evidence) are
        // unchanged.
        let mut s = Store::default();
        s.apply(&set(Zxid::new(1, 1), Some((9, 1)), 1, 5));
        s.apply(&set(Zxid::new(1, 2), None, 3, -7));
        assert_eq!(s.digest(), 0x381521cfe84d224);
    }
}
