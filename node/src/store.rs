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
    /// The sum behind [`Store::digest`], kept up to date by
    /// [`Store::apply`] once computed (the fields change nowhere else).
    #[serde(skip)]
    running: Running,
}

/// A store's running entry sum: not part of its state (never serialized,
/// never compared), only a cache of what its contents give.
#[derive(Clone, Debug, Default)]
struct Running(std::cell::Cell<Option<u64>>);

impl PartialEq for Running {
    fn eq(&self, _: &Running) -> bool {
        true
    }
}

impl Eq for Running {}

/// The kinds of entry a store digest sums.
const DATA: u64 = 1;
const SESSION: u64 = 2;
const LIVE: u64 = 3;
const OWNER: u64 = 4;
const CLOSED: u64 = 5;

/// One entry's share of the digest: FNV-1a over its kind and fields,
/// then a 64-bit finalizer so that sums of shares do not cancel.
fn share(kind: u64, fields: &[u64]) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(&kind.to_le_bytes());
    for f in fields {
        h.write(&f.to_le_bytes());
    }
    let mut z = h.finish();
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
        // The digest's running sum: each entry's share out as it goes,
        // in as it comes.
        let mut sum = self.running.0.get().unwrap_or(0);
        let mut swap = |old: Option<u64>, new: Option<u64>| {
            sum = sum
                .wrapping_sub(old.unwrap_or(0))
                .wrapping_add(new.unwrap_or(0));
        };
        let data = |k: Key, v: i64| share(DATA, &[k, v as u64]);
        match &txn.op {
            TxnOp::Set { key, value } => {
                let old = self.data.insert(*key, *value);
                swap(old.map(|v| data(*key, v)), Some(data(*key, *value)));
            }
            TxnOp::Reconfig { voters, observers } => {
                self.config = Some((voters.clone(), observers.clone()));
            }
            TxnOp::CasFailed { .. } => {}
            TxnOp::CreateSession { session, timeout } => {
                let old = self.live.insert(*session, *timeout);
                swap(
                    old.map(|t| share(LIVE, &[*session, t])),
                    Some(share(LIVE, &[*session, *timeout])),
                );
            }
            TxnOp::CloseSession { session, .. } => {
                let old = self.live.remove(session);
                swap(old.map(|t| share(LIVE, &[*session, t])), None);
                if self.closed.insert(*session) {
                    swap(None, Some(share(CLOSED, &[*session])));
                }
                let owned: Vec<Key> = self.owned_by(*session).collect();
                for k in owned {
                    let o = self.owners.remove(&k);
                    swap(o.map(|o| share(OWNER, &[k, o])), None);
                    let v = self.data.remove(&k);
                    swap(v.map(|v| data(k, v)), None);
                }
            }
            TxnOp::SetEphemeral { key, value, owner } => {
                let old = self.data.insert(*key, *value);
                swap(old.map(|v| data(*key, v)), Some(data(*key, *value)));
                let old = self.owners.insert(*key, *owner);
                swap(
                    old.map(|o| share(OWNER, &[*key, o])),
                    Some(share(OWNER, &[*key, *owner])),
                );
            }
        }
        if let Some((session, seq)) = txn.origin {
            let old = self
                .sessions
                .insert(session, (seq, txn.outcome(), txn.zxid));
            swap(
                old.map(|(q, _, z)| share(SESSION, &[session, q, z.0])),
                Some(share(SESSION, &[session, seq, txn.zxid.0])),
            );
        }
        if self.running.0.get().is_some() {
            self.running.0.set(Some(sum));
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

    /// A digest of the data, sessions and configuration: equal stores
    /// have equal digests on every replica, whatever order their txns
    /// came in. The entries' shares are summed (kept up to date as txns
    /// apply, so that a server can publish its digest every tick without
    /// walking its store), then hashed with the configuration.
    pub fn digest(&self) -> u64 {
        let sum = match self.running.0.get() {
            Some(sum) => sum,
            None => {
                let sum = self.entry_sum();
                self.running.0.set(Some(sum));
                sum
            }
        };
        let mut h = fnv::FnvHasher::default();
        h.write(&sum.to_le_bytes());
        if let Some((v, o)) = &self.config {
            for s in v.iter().chain(o) {
                h.write(&s.to_le_bytes());
            }
        }
        h.finish()
    }

    /// Every entry's share, summed afresh.
    fn entry_sum(&self) -> u64 {
        let data = self.data.iter().map(|(k, v)| share(DATA, &[*k, *v as u64]));
        let sessions = (self.sessions.iter()).map(|(s, (q, _, z))| share(SESSION, &[*s, *q, z.0]));
        let live = self.live.iter().map(|(s, t)| share(LIVE, &[*s, *t]));
        let owners = self.owners.iter().map(|(k, o)| share(OWNER, &[*k, *o]));
        let closed = self.closed.iter().map(|s| share(CLOSED, &[*s]));
        data.chain(sessions)
            .chain(live)
            .chain(owners)
            .chain(closed)
            .fold(0, u64::wrapping_add)
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
    fn the_running_digest_is_the_one_computed_afresh() {
        // Every kind of txn, applied to a store whose digest is kept up to
        // date, gives the digest of the same contents summed from nothing;
        // the same contents reached in another order give it too.
        let txn = |c: u64, origin: Option<(u64, u64)>, op: TxnOp| Txn {
            zxid: Zxid::new(1, c),
            origin,
            op,
        };
        let ops = vec![
            txn(
                1,
                None,
                TxnOp::CreateSession {
                    session: 4,
                    timeout: 30,
                },
            ),
            txn(
                2,
                Some((4, 1)),
                TxnOp::SetEphemeral {
                    key: 100,
                    value: 1,
                    owner: 4,
                },
            ),
            txn(3, Some((9, 1)), TxnOp::Set { key: 1, value: 5 }),
            txn(4, Some((9, 2)), TxnOp::Set { key: 1, value: -7 }),
            txn(
                5,
                Some((9, 3)),
                TxnOp::CasFailed {
                    key: 1,
                    actual: Some(-7),
                },
            ),
            txn(
                6,
                None,
                TxnOp::Reconfig {
                    voters: vec![1, 2, 3],
                    observers: vec![4],
                },
            ),
            txn(
                7,
                None,
                TxnOp::CloseSession {
                    session: 4,
                    keys: vec![100],
                },
            ),
            txn(8, Some((9, 4)), TxnOp::Set { key: 2, value: 0 }),
        ];
        let mut s = Store::default();
        let _ = s.digest(); // from now on kept up to date
        let mut seen = std::collections::BTreeSet::new();
        for t in &ops {
            s.apply(t);
            let afresh = Store {
                running: Running::default(),
                ..s.clone()
            };
            assert_eq!(s.digest(), afresh.digest(), "after {}", t.zxid);
            assert!(seen.insert(s.digest()), "every step changes it");
        }
        // Key 2 then key 1, against key 1 then key 2.
        let (mut a, mut b) = (Store::default(), Store::default());
        a.apply(&set(Zxid::new(1, 1), None, 1, 5));
        a.apply(&set(Zxid::new(1, 2), None, 2, 6));
        b.apply(&set(Zxid::new(1, 1), None, 2, 6));
        b.apply(&set(Zxid::new(1, 2), None, 1, 5));
        assert_eq!(a.digest(), b.digest());
        // Swapped values are another state.
        let mut c = Store::default();
        c.apply(&set(Zxid::new(1, 1), None, 1, 6));
        c.apply(&set(Zxid::new(1, 2), None, 2, 5));
        assert_ne!(a.digest(), c.digest());
    }
}
