//! The replicated state machine: keys and values, the sessions clients
//! open (for at-most-once execution: each session's last request and its
//! outcome) and the ephemeral keys they own. Pure: the same commands in
//! the same order give the same state on every server.

use faultline_node::{ClientOp, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a normal log entry carries: a client's request, and the server
/// that proposed it (which answers the client once it applies it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The server the client sent it to.
    pub origin: u64,
    /// The client's session.
    pub session: u64,
    /// Its sequence number in the session.
    pub seq: u64,
    /// What to do (a write, cas, session open or close, ephemeral create).
    pub op: ClientOp,
}

impl Command {
    /// The bytes a log entry holds.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a command always encodes")
    }

    /// The command in an entry's bytes; `None` if they are not one.
    pub fn decode(data: &[u8]) -> Option<Command> {
        postcard::from_bytes(data).ok()
    }
}

/// One open session: its last executed request and that request's outcome
/// (a retry of it gets the same answer and is not executed again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The last sequence number executed.
    pub last_seq: u64,
    /// Its outcome.
    pub last: Outcome,
}

/// The state every server applies the committed log to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    /// Keys and their values.
    pub data: BTreeMap<u64, i64>,
    /// Ephemeral keys and the session that owns each.
    pub owners: BTreeMap<u64, u64>,
    /// Open sessions.
    pub sessions: BTreeMap<u64, Session>,
    /// The index of the last entry applied.
    pub applied: u64,
}

impl Kv {
    /// Applies the committed entry `index` holding `c` (or an entry with
    /// no command: `None`); returns the outcome for the client. Entries
    /// are applied once each, in index order.
    pub fn apply(&mut self, index: u64, c: Option<&Command>) -> Option<Outcome> {
        assert!(
            index > self.applied,
            "entry {index} applied after {}",
            self.applied
        );
        self.applied = index;
        let c = c?;
        if let ClientOp::CreateSession { timeout } = c.op {
            if let Some(s) = self.sessions.get(&c.session) {
                return Some(s.last.clone());
            }
            let last = Outcome::Opened { timeout };
            self.sessions.insert(
                c.session,
                Session {
                    last_seq: c.seq,
                    last: last.clone(),
                },
            );
            return Some(last);
        }
        let Some(s) = self.sessions.get(&c.session) else {
            return Some(Outcome::SessionExpired);
        };
        if c.seq == s.last_seq {
            return Some(s.last.clone());
        }
        if c.seq < s.last_seq {
            // An older request arriving again: it was executed or skipped
            // long ago; which, the session no longer remembers.
            return Some(Outcome::ConnectionLoss);
        }
        let out = self.execute(c);
        if let Some(s) = self.sessions.get_mut(&c.session) {
            s.last_seq = c.seq;
            s.last = out.clone();
        }
        Some(out)
    }

    /// Executes a request of an open session.
    fn execute(&mut self, c: &Command) -> Outcome {
        match &c.op {
            ClientOp::Write { key, value } => {
                self.data.insert(*key, *value);
                Outcome::Written
            }
            ClientOp::Cas { key, from, to } => {
                let actual = self.data.get(key).copied();
                if actual == *from {
                    self.data.insert(*key, *to);
                    Outcome::Written
                } else {
                    Outcome::CasFailed { actual }
                }
            }
            ClientOp::CreateEphemeral { key, value } => match self.data.get(key) {
                Some(v) => Outcome::CasFailed { actual: Some(*v) },
                None => {
                    self.data.insert(*key, *value);
                    self.owners.insert(*key, c.session);
                    Outcome::Written
                }
            },
            ClientOp::CloseSession => {
                let owned: Vec<u64> = self
                    .owners
                    .iter()
                    .filter(|(_, s)| **s == c.session)
                    .map(|(k, _)| *k)
                    .collect();
                for k in owned {
                    self.owners.remove(&k);
                    self.data.remove(&k);
                }
                self.sessions.remove(&c.session);
                Outcome::Written
            }
            op => panic!("{op:?} is never a log command"),
        }
    }

    /// A read of `key` now.
    pub fn read(&self, key: u64) -> Outcome {
        Outcome::Value(self.data.get(&key).copied())
    }

    /// A digest of the keys, values and owners: equal states, equal
    /// digests.
    pub fn digest(&self) -> u64 {
        use std::hash::Hasher as _;
        let mut h = fnv::FnvHasher::default();
        for (k, v) in &self.data {
            h.write_u64(*k);
            h.write_i64(*v);
            h.write_u64(self.owners.get(k).copied().unwrap_or(0));
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(session: u64, seq: u64, op: ClientOp) -> Command {
        Command {
            origin: 1,
            session,
            seq,
            op,
        }
    }

    #[test]
    fn requests_execute_at_most_once_per_session() {
        let mut kv = Kv::default();
        let open = cmd(7, 1, ClientOp::CreateSession { timeout: 100 });
        assert_eq!(
            kv.apply(1, Some(&open)),
            Some(Outcome::Opened { timeout: 100 })
        );
        let cas = cmd(
            7,
            2,
            ClientOp::Cas {
                key: 1,
                from: None,
                to: 5,
            },
        );
        assert_eq!(kv.apply(2, Some(&cas)), Some(Outcome::Written));
        // The same request again (a retry that was proposed twice): the
        // first outcome, not executed again.
        assert_eq!(kv.apply(3, Some(&cas)), Some(Outcome::Written));
        assert_eq!(kv.data.get(&1), Some(&5));
        let w = cmd(7, 3, ClientOp::Write { key: 1, value: 9 });
        assert_eq!(kv.apply(4, Some(&w)), Some(Outcome::Written));
        assert_eq!(kv.apply(5, Some(&cas)), Some(Outcome::ConnectionLoss));
        assert_eq!(kv.data.get(&1), Some(&9));
        let other = cmd(8, 1, ClientOp::Write { key: 1, value: 0 });
        assert_eq!(kv.apply(6, Some(&other)), Some(Outcome::SessionExpired));
        assert_eq!(kv.applied, 6);
    }

    #[test]
    fn a_closed_session_takes_its_ephemeral_keys() {
        let mut kv = Kv::default();
        kv.apply(1, Some(&cmd(7, 1, ClientOp::CreateSession { timeout: 9 })));
        let e = cmd(
            7,
            2,
            ClientOp::CreateEphemeral {
                key: 1000,
                value: 1,
            },
        );
        assert_eq!(kv.apply(2, Some(&e)), Some(Outcome::Written));
        let before = kv.digest();
        assert_eq!(kv.read(1000), Outcome::Value(Some(1)));
        kv.apply(3, Some(&cmd(7, 3, ClientOp::CloseSession)));
        assert_eq!(kv.read(1000), Outcome::Value(None));
        assert!(kv.sessions.is_empty() && kv.owners.is_empty());
        assert_ne!(kv.digest(), before);
        assert_eq!(kv.apply(4, None), None);
    }

    #[test]
    fn commands_survive_their_encoding() {
        let c = cmd(3, 4, ClientOp::Write { key: 2, value: -1 });
        assert_eq!(Command::decode(&c.encode()), Some(c));
        assert_eq!(Command::decode(&[0xff, 0xff, 0xff]), None);
    }
}
