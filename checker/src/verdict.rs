//! Verdicts and witnesses, as data (JSON via serde) and as readable text.

use faultline_history::{OpType, Process, Value};
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};

/// The three answers a check can give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// Every check passed.
    Valid,
    /// A violation was found; see the witnesses.
    Invalid,
    /// A check ran out of its budget before reaching a verdict.
    Unknown,
}

impl Validity {
    /// The verdict of several: invalid if any is, else unknown if any is,
    /// else valid (also for none).
    pub fn combine(all: impl IntoIterator<Item = Validity>) -> Validity {
        let mut out = Validity::Valid;
        for v in all {
            match v {
                Validity::Invalid => return Validity::Invalid,
                Validity::Unknown => out = Validity::Unknown,
                Validity::Valid => {}
            }
        }
        out
    }

    /// The process exit code of DESIGN.md: 0 valid, 1 invalid, 3 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 3,
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        })
    }
}

/// A reference to one client operation of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpRef {
    /// The process that ran it.
    pub process: Process,
    /// The model's description, e.g. `cas 1->2`.
    pub description: String,
    /// ok, or info for an op whose outcome is unknown.
    pub outcome: OpType,
    /// Index of its invocation in the history.
    pub invoke_index: usize,
    /// Index of its completion, if any.
    pub complete_index: Option<usize>,
    /// Invocation time (ns, or position for formats without times).
    pub invoke_time: u64,
    /// Completion time, if any.
    pub complete_time: Option<u64>,
}

/// One op of a linearizable prefix and the state after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The op.
    pub op: OpRef,
    /// The model state after it.
    pub state_after: String,
}

/// An op concurrent with the blocked one (their intervals overlap), and
/// what it would do after the prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The op.
    pub op: OpRef,
    /// Whether the longest prefix already linearized it.
    pub in_prefix: bool,
    /// For an op not in the prefix: the state it would lead to from the
    /// prefix's state, `None` if it is illegal there.
    pub state_after: Option<String>,
}

/// Why a partition is not linearizable, in terms a person can check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Witness {
    /// The key (partition), `None` for a single-register history.
    pub key: Option<Value>,
    /// The op that no linearization can place before it returned.
    pub op: OpRef,
    /// The state after the longest linearizable prefix.
    pub state: String,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// Its last ops (at most 50), in linearization order.
    pub prefix: Vec<Step>,
    /// How many ops are concurrent with `op` (overlapping intervals).
    pub concurrent_total: usize,
    /// The first of them (at most 100), with what each would do next.
    pub concurrent: Vec<Candidate>,
    /// The whole story in one paragraph.
    pub explanation: String,
}

/// A partition whose search ran out of budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnknownKey {
    /// The key.
    pub key: Option<Value>,
    /// Ops in that partition.
    pub ops: usize,
    /// Which budget ran out.
    pub reason: String,
}

/// The result of a linearizability check over a whole history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinReport {
    /// Invalid if any partition is, else unknown if any is, else valid.
    pub result: Validity,
    /// The model used.
    pub model: String,
    /// Client ops checked (failed ops, set-aside ops, unknown reads and
    /// pruned crashed writes excluded).
    pub ops: usize,
    /// Partitions (keys) checked.
    pub keys: usize,
    /// (linearized set, state) configurations visited, over all keys.
    pub states_explored: u64,
    /// One witness per non-linearizable key, in key order.
    pub anomalies: Vec<Witness>,
    /// Keys whose search ran out of budget, in key order.
    pub unknown: Vec<UnknownKey>,
    /// Keys not searched to the end because another key was already found
    /// not linearizable, in key order.
    pub skipped: Vec<Option<Value>>,
    /// Ops no register or kv model judges, left out: local reads (only
    /// sequentially consistent), session ops (open, close, ping, ephemeral
    /// create) and ops on ephemeral keys, which vanish with their session
    /// (ZAB.md §9).
    pub set_aside: usize,
    /// Ops that completed `fail`, left out: they did not happen.
    pub failed: usize,
}

fn key_name(k: &Option<Value>) -> String {
    match k {
        Some(k) => format!("key {k}"),
        None => "single register".to_string(),
    }
}

fn span(op: &OpRef) -> String {
    match op.complete_index {
        Some(c) if op.outcome == OpType::Ok => format!("ops {}..{}", op.invoke_index, c),
        _ => format!("ops {}..(unknown)", op.invoke_index),
    }
}

fn op_line(op: &OpRef) -> String {
    format!(
        "process {:<5} {:<28} {:<5} {}",
        op.process.to_string(),
        op.description,
        op.outcome.to_string(),
        span(op)
    )
}

impl Witness {
    /// Readable multi-line text: the blocked op, the end of the prefix and
    /// the concurrent ops with what each would do.
    pub fn render(&self, prefix_lines: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}: cannot place", key_name(&self.key));
        let _ = writeln!(s, "    {}", op_line(&self.op));
        let shown = self.prefix.len().min(prefix_lines);
        let _ = writeln!(
            s,
            "  longest linearizable prefix: {} ops{}",
            self.prefix_len,
            if shown < self.prefix_len {
                format!(" (last {shown} shown)")
            } else {
                String::new()
            }
        );
        for st in &self.prefix[self.prefix.len() - shown..] {
            let _ = writeln!(s, "    {}  => {}", op_line(&st.op), st.state_after);
        }
        let _ = writeln!(s, "  state after the prefix: {}", self.state);
        let _ = writeln!(
            s,
            "  operations concurrent with it: {}",
            self.concurrent_total
        );
        for c in &self.concurrent {
            let what = match (&c.state_after, c.in_prefix) {
                (_, true) => "in the prefix".to_string(),
                (Some(st), false) => format!("legal next => {st}"),
                (None, false) => "illegal next".to_string(),
            };
            let _ = writeln!(s, "    {}  {}", op_line(&c.op), what);
        }
        if self.concurrent.len() < self.concurrent_total {
            let _ = writeln!(
                s,
                "    ... {} more",
                self.concurrent_total - self.concurrent.len()
            );
        }
        let _ = writeln!(s, "  {}", self.explanation);
        s
    }
}

impl LinReport {
    /// Readable text for a terminal: one summary line, then each witness and
    /// each key left unknown.
    pub fn render(&self, prefix_lines: usize) -> String {
        let mut s = String::new();
        let headline = match self.result {
            Validity::Valid => "linearizable".to_string(),
            Validity::Invalid => format!(
                "NOT linearizable ({} of {} keys)",
                self.anomalies.len(),
                self.keys
            ),
            Validity::Unknown => format!(
                "UNKNOWN ({} of {} keys unfinished)",
                self.unknown.len(),
                self.keys
            ),
        };
        let _ = writeln!(
            s,
            "{headline}: {} model, {} ops, {} keys, {} states explored",
            self.model, self.ops, self.keys, self.states_explored
        );
        for w in &self.anomalies {
            s.push('\n');
            s.push_str(&w.render(prefix_lines));
        }
        for u in &self.unknown {
            let _ = writeln!(
                s,
                "{}: unknown ({} ops): {}",
                key_name(&u.key),
                u.ops,
                u.reason
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                s,
                "{} more keys were not searched to the end: a violation had already been found",
                self.skipped.len()
            );
        }
        if self.failed > 0 {
            let _ = writeln!(
                s,
                "{} failed ops left out (they did not happen)",
                self.failed
            );
        }
        if self.set_aside > 0 {
            let _ = writeln!(
                s,
                "{} local reads, session ops and ops on ephemeral keys set aside (the bench judges them by its read-guarantees and sessions checks, from the servers' logs)",
                self.set_aside
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::Validity::{self, *};

    #[test]
    fn invalid_dominates_unknown_dominates_valid() {
        assert_eq!(Validity::combine([]), Valid);
        assert_eq!(Validity::combine([Valid, Unknown, Valid]), Unknown);
        assert_eq!(Validity::combine([Unknown, Invalid, Valid]), Invalid);
        assert_eq!(
            [Valid, Invalid, Unknown].map(Validity::exit_code),
            [0, 1, 3]
        );
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check's name.
    pub name: String,
    /// Valid, invalid or unknown.
    pub result: Validity,
    /// One line on what was checked.
    pub summary: String,
    /// Each violation, readably (at most 20).
    pub anomalies: Vec<String>,
    /// History indices of the operations the violations involve (for
    /// highlighting in reports).
    #[serde(default)]
    pub ops: Vec<usize>,
}

const ANOMALIES_KEPT: usize = 20;

/// A check's outcome from its anomalies: valid when there are none, else
/// invalid with at most 20 of them kept (and a count of the rest).
pub(crate) fn outcome(name: &str, summary: String, anomalies: Vec<String>) -> CheckOutcome {
    let result = if anomalies.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    let mut anomalies = anomalies;
    let total = anomalies.len();
    anomalies.truncate(ANOMALIES_KEPT);
    if total > ANOMALIES_KEPT {
        anomalies.push(format!("... and {} more", total - ANOMALIES_KEPT));
    }
    CheckOutcome {
        name: name.to_string(),
        result,
        summary,
        anomalies,
        ops: Vec::new(),
    }
}

/// A zxid as anomalies write it: `epoch:counter`.
pub(crate) fn zx(z: u64) -> String {
    format!("{}:{}", z >> 32, z & 0xffff_ffff)
}

/// The integer a history value holds, if it is one.
pub(crate) fn int(v: &faultline_history::Value) -> Option<i64> {
    match v {
        faultline_history::Value::Int(i) => Some(*i),
        _ => None,
    }
}
