//! The shared vocabulary of faultline: operations and histories in Jepsen's
//! model, plus readers and writers for the formats other tools produce.
//!
//! An operation is *invoked* by a client process and then completes as `ok`
//! (it happened), `fail` (it certainly did not happen) or `info` (unknown: it
//! may have happened at any time after its invocation). A process that got
//! `info` is retired and should never invoke again; some tools' histories
//! do, and Knossos accepts them: the `info` op stays open to the end, as
//! always, and the new invocation is a new op (counted, see
//! [`History::reinvoked_after_info`]). An invocation with no completion at
//! the end of a history is treated like `info`.
//!
//! [`History::new`] checks these rules, so every `History` value is
//! well-formed: completions match an open invocation of the same process and
//! function, and no process has two operations open at once.
//!
//! Formats (see [`Format`]): our own JSON lines ([`jsonl`]), Jepsen EDN
//! histories ([`edn`]), Jepsen console logs as in Porcupine's etcd data
//! ([`jepsen_log`]) and Porcupine's kv format (EDN maps with a `:key`).

pub mod edn;
mod error;
pub mod jepsen_log;
pub mod jsonl;
mod op;
mod read;

pub use error::{HistoryError, ParseError};
pub use op::{Fun, Op, OpType, Process, Value};
pub use read::{detect_format, read_bytes, read_file, read_str, Format, ReadOptions};

use std::collections::BTreeMap;

/// A well-formed history: a sequence of operations in the order they were
/// observed, where every completion matches an earlier open invocation.
///
/// The position of an op in [`History::ops`] is its index; the checker orders
/// events by index (the real-time order of the log), and `time` is for people.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    ops: Vec<Op>,
    /// For each op index: the index of the matching op (invoke -> completion,
    /// completion -> invoke), or `None` for an invocation never completed and
    /// for ops outside the client protocol (e.g. nemesis `info` events).
    partner: Vec<Option<u32>>,
    /// Invocations by a process after an `info` had retired it.
    reinvoked: usize,
}

/// One client operation: an invocation and, if it completed, its completion.
#[derive(Clone, Copy, Debug)]
pub struct Pair<'a> {
    /// Index of the invocation in the history.
    pub invoke_index: usize,
    /// The invocation.
    pub invoke: &'a Op,
    /// Index of the completion, if the op completed.
    pub complete_index: Option<usize>,
    /// The completion (`ok`, `fail` or `info`), if any.
    pub complete: Option<&'a Op>,
}

impl<'a> Pair<'a> {
    /// The outcome: `Ok`, `Fail`, or `Info` for both an explicit `info` and a
    /// missing completion (the op may have happened at any time after invoke).
    pub fn outcome(&self) -> OpType {
        match self.complete {
            Some(c) => c.kind,
            None => OpType::Info,
        }
    }
}

impl History {
    /// Builds a history, checking Jepsen's well-formedness rules. On error the
    /// returned [`HistoryError`] names the index of the offending op.
    pub fn new(ops: Vec<Op>) -> Result<History, HistoryError> {
        assert!(
            ops.len() < u32::MAX as usize,
            "histories are limited to 2^32-1 operations"
        );
        let mut partner = vec![None; ops.len()];
        // process -> index of its open invocation
        let mut open: BTreeMap<&Process, usize> = BTreeMap::new();
        // process -> index of the `info` that retired it
        let mut retired: BTreeMap<&Process, usize> = BTreeMap::new();
        let mut reinvoked = 0;
        for (i, op) in ops.iter().enumerate() {
            if !op.process.is_client() {
                // Nemesis and other non-client events are kept for reports but
                // take no part in pairing.
                continue;
            }
            if op.kind == OpType::Invoke && retired.remove(&op.process).is_some() {
                // Accepted (as Knossos does): the `info` op stays open to
                // the end; this is a new op of the same process.
                reinvoked += 1;
            }
            if let Some(&r) = retired.get(&op.process) {
                return Err(HistoryError {
                    index: i,
                    message: format!(
                        "process {} was retired by :info at op {} and cannot {} again",
                        op.process,
                        r,
                        if op.kind == OpType::Invoke {
                            "invoke"
                        } else {
                            "complete"
                        }
                    ),
                });
            }
            match op.kind {
                OpType::Invoke => {
                    if let Some(&j) = open.get(&op.process) {
                        return Err(HistoryError {
                            index: i,
                            message: format!(
                                "process {} invokes while its op {} is still open",
                                op.process, j
                            ),
                        });
                    }
                    open.insert(&op.process, i);
                }
                OpType::Ok | OpType::Fail | OpType::Info => {
                    let Some(j) = open.remove(&op.process) else {
                        return Err(HistoryError {
                            index: i,
                            message: format!(
                                "unmatched completion: process {} has no open invocation",
                                op.process
                            ),
                        });
                    };
                    if ops[j].f != op.f {
                        return Err(HistoryError {
                            index: i,
                            message: format!(
                                "completion :{} does not match the invocation :{} (op {}) of process {}",
                                op.f, ops[j].f, j, op.process
                            ),
                        });
                    }
                    if ops[j].key != op.key && op.key.is_some() {
                        return Err(HistoryError {
                            index: i,
                            message: format!(
                                "completion key {} does not match the invocation's key (op {})",
                                fmt_key(&op.key),
                                j
                            ),
                        });
                    }
                    partner[i] = Some(j as u32);
                    partner[j] = Some(i as u32);
                    if op.kind == OpType::Info {
                        retired.insert(&op.process, i);
                    }
                }
            }
        }
        Ok(History {
            ops,
            partner,
            reinvoked,
        })
    }

    /// How many invocations came from a process after an `info` had
    /// retired it (each a new op; the `info` op stays open to the end).
    pub fn reinvoked_after_info(&self) -> usize {
        self.reinvoked
    }

    /// All ops in observation order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of ops (invocations and completions).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the history holds no op.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Consumes the history and returns its ops.
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    /// The index of the op matched with op `i` (its completion or invocation).
    pub fn partner(&self, i: usize) -> Option<usize> {
        self.partner[i].map(|p| p as usize)
    }

    /// Every client operation, in invocation order. Completions carry the
    /// key of their invocation when they omit it.
    pub fn pairs(&self) -> impl Iterator<Item = Pair<'_>> + '_ {
        self.ops.iter().enumerate().filter_map(move |(i, op)| {
            if op.kind != OpType::Invoke || !op.process.is_client() {
                return None;
            }
            let c = self.partner(i);
            Some(Pair {
                invoke_index: i,
                invoke: op,
                complete_index: c,
                complete: c.map(|c| &self.ops[c]),
            })
        })
    }
}

fn fmt_key(k: &Option<Value>) -> String {
    match k {
        Some(v) => v.to_string(),
        None => "(none)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpType, p: u64, f: Fun, v: Value) -> Op {
        Op::new(kind, Process::Client(p), f, v)
    }

    #[test]
    fn pairs_match_by_process() {
        let h = History::new(vec![
            op(OpType::Invoke, 0, Fun::Write, Value::Int(1)),
            op(OpType::Invoke, 1, Fun::Read, Value::Nil),
            op(OpType::Ok, 1, Fun::Read, Value::Int(1)),
            op(OpType::Ok, 0, Fun::Write, Value::Int(1)),
            op(OpType::Invoke, 1, Fun::Read, Value::Nil),
        ])
        .unwrap();
        let pairs: Vec<_> = h.pairs().collect();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0].complete_index, Some(3));
        assert_eq!(pairs[1].complete_index, Some(2));
        assert_eq!(pairs[2].complete_index, None);
        assert_eq!(pairs[2].outcome(), OpType::Info);
    }

    #[test]
    fn rejects_unmatched_completion() {
        let e = History::new(vec![op(OpType::Ok, 0, Fun::Read, Value::Nil)]).unwrap_err();
        assert_eq!(e.index, 0);
        assert!(e.message.contains("unmatched completion"), "{e}");
    }

    #[test]
    fn rejects_double_invoke_and_mismatched_f() {
        let e = History::new(vec![
            op(OpType::Invoke, 0, Fun::Read, Value::Nil),
            op(OpType::Invoke, 0, Fun::Read, Value::Nil),
        ])
        .unwrap_err();
        assert_eq!(e.index, 1);
        let e = History::new(vec![
            op(OpType::Invoke, 0, Fun::Read, Value::Nil),
            op(OpType::Ok, 0, Fun::Write, Value::Int(1)),
        ])
        .unwrap_err();
        assert!(e.message.contains("does not match"), "{e}");
    }

    #[test]
    fn a_process_may_invoke_again_after_info_as_knossos_accepts() {
        let h = History::new(vec![
            op(OpType::Invoke, 0, Fun::Write, Value::Int(1)),
            op(OpType::Info, 0, Fun::Write, Value::Int(1)),
            op(OpType::Invoke, 0, Fun::Read, Value::Nil),
            op(OpType::Ok, 0, Fun::Read, Value::Int(1)),
        ])
        .unwrap();
        assert_eq!(h.reinvoked_after_info(), 1);
        let outcomes: Vec<OpType> = h.pairs().map(|p| p.outcome()).collect();
        assert_eq!(outcomes, vec![OpType::Info, OpType::Ok]);
        // A completion with nothing open is still refused.
        let e = History::new(vec![
            op(OpType::Invoke, 0, Fun::Write, Value::Int(1)),
            op(OpType::Info, 0, Fun::Write, Value::Int(1)),
            op(OpType::Ok, 0, Fun::Write, Value::Int(1)),
        ])
        .unwrap_err();
        assert_eq!(e.index, 2);
        assert!(e.message.contains("retired"), "{e}");
    }

    #[test]
    fn nemesis_ops_take_no_part_in_pairing() {
        let mut n = op(OpType::Info, 0, Fun::Other("start".into()), Value::Nil);
        n.process = Process::Named("nemesis".into());
        let h = History::new(vec![n.clone(), n]).unwrap();
        assert_eq!(h.pairs().count(), 0);
    }
}
