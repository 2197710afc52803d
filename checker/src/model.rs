//! Sequential specifications: the [`Model`] trait and the `register`,
//! `cas-register` and `kv` models.
//!
//! A model turns each history operation into a model op ([`Model::prepare`])
//! and says which ops are legal in which state ([`Model::step`]), as
//! Porcupine's `Model` does. The checker applies Jepsen's semantics before a
//! model sees anything: `fail` ops are dropped (they did not happen), and an
//! `info` op (or one never completed) is *optional*: it may be linearized at
//! any point after its invocation, or never. A model therefore needs no
//! notion of an unknown result: an unknown cas or write is prepared exactly
//! as a successful one, and an unknown read, which constrains nothing, is not
//! prepared at all.

use faultline_history::{Fun, OpType, Pair, Value};
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification, checked per partition (key).
pub trait Model: Sync {
    /// The state of one partition. Equal states must behave identically.
    type State: Clone + Eq + Hash + Send + Debug;
    /// An operation with its observed result (when known).
    type Op: Clone + Send + Sync + Debug;

    /// The model's command-line name.
    fn name(&self) -> &'static str;

    /// The initial state of every partition.
    fn init(&self) -> Self::State;

    /// Translates a client operation whose outcome is `ok` or `info` (never
    /// `fail`) into a model op. `Ok(None)` drops it: it constrains nothing
    /// (e.g. a read whose result is unknown). `Err` says why the op does not
    /// belong to this model.
    fn prepare(&self, pair: &Pair<'_>) -> Result<Option<Self::Op>, String>;

    /// The state after `op`, or `None` when `op` (with its observed result)
    /// is illegal in `state`. Must be deterministic and must not depend on
    /// anything but its arguments.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The partition an op belongs to; ops of different partitions are
    /// checked independently (P-compositionality). Default: the op's key.
    fn partition(&self, pair: &Pair<'_>) -> Option<Value> {
        pair.invoke.key.clone()
    }

    /// Which ops of one partition the search may leave out: `ops` are the
    /// partition's ops, each with whether it is optional (crashed: `info`
    /// or never completed). Only optional ops may be marked, and only when
    /// no linearization needs them: the partition must be linearizable
    /// with the marked ops removed iff it is with them. Default: none.
    fn prunable(&self, ops: &[(&Self::Op, bool)]) -> Vec<bool> {
        vec![false; ops.len()]
    }

    /// Whether `op` is blind: legal in every state, and leaving a state
    /// that does not depend on the one before (a write). The search uses it
    /// to place crashed ops just in time: an optional op directly followed
    /// by a blind one is never needed. Default: no op is blind.
    fn blind(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Whether `op` never changes the state, in any state where it is
    /// legal (a read). The search linearizes such an op as soon as it is
    /// legal, without trying alternatives. Default: none is.
    fn read_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// A candidate linearization of one partition found without a search
    /// (indices into `items`; optional ops left out never happened), or
    /// `None`. The checker verifies it (model steps and real-time order)
    /// before it counts, so a wrong candidate only costs the time it took.
    /// Default: none.
    fn certificate(&self, _items: &[crate::wgl::Item<Self::Op>]) -> Option<Vec<usize>> {
        None
    }

    /// A short human description of an op, e.g. `cas 1->2`, `read -> 3`.
    fn describe_op(&self, op: &Self::Op) -> String;

    /// A short human description of a state.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// The result a completed op reported: the completion's value when the op
/// is `ok`, `None` when unknown.
fn observed<'a>(pair: &'a Pair<'_>) -> Option<&'a Value> {
    match (pair.outcome(), pair.complete) {
        (OpType::Ok, Some(c)) => Some(&c.value),
        _ => None,
    }
}

/// A register op: read with its observed value, write, or compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned this value.
    Read(Value),
    /// Write this value.
    Write(Value),
    /// Set `to` if the register holds `from`.
    Cas(Value, Value),
}

/// A single register per key, initially `initial` (`nil` unless given):
/// reads (`read`, `sync-read`) and writes, plus compare-and-set when `cas`
/// is true (`cas-register`).
#[derive(Clone, Debug)]
pub struct Register {
    /// Whether `cas` ops are allowed.
    pub cas: bool,
    /// Every key's value before the first op.
    pub initial: Value,
    /// Knossos's reading: an ok read of `nil` says nothing (as if its
    /// result were unknown) instead of "the register held nil".
    pub nil_reads_unknown: bool,
}

impl Register {
    /// A register (`cas`: a cas-register) starting at `nil`.
    pub fn new(cas: bool) -> Register {
        Register {
            cas,
            initial: Value::Nil,
            nil_reads_unknown: false,
        }
    }
}

impl Model for Register {
    type State = Value;
    type Op = RegisterOp;

    fn name(&self) -> &'static str {
        if self.cas {
            "cas-register"
        } else {
            "register"
        }
    }

    fn init(&self) -> Value {
        self.initial.clone()
    }

    fn prepare(&self, pair: &Pair<'_>) -> Result<Option<RegisterOp>, String> {
        let inv = pair.invoke;
        match &inv.f {
            Fun::Read | Fun::SyncRead => Ok(observed(pair)
                .filter(|v| !(self.nil_reads_unknown && **v == Value::Nil))
                .map(|v| RegisterOp::Read(v.clone()))),
            Fun::Write => Ok(Some(RegisterOp::Write(inv.value.clone()))),
            Fun::Cas if self.cas => match inv.value.as_pair() {
                Some((from, to)) => Ok(Some(RegisterOp::Cas(from.clone(), to.clone()))),
                None => Err(format!("cas value must be [from to], found {}", inv.value)),
            },
            Fun::Cas => Err(
                "cas is not an operation of the register model; use --model cas-register".into(),
            ),
            other => Err(format!(
                ":{other} is not an operation of the {} model (read, write{})",
                self.name(),
                if self.cas { ", cas" } else { "" }
            )),
        }
    }

    fn step(&self, state: &Value, op: &RegisterOp) -> Option<Value> {
        match op {
            RegisterOp::Read(v) => (v == state).then(|| state.clone()),
            RegisterOp::Write(v) => Some(v.clone()),
            RegisterOp::Cas(from, to) => (from == state).then(|| to.clone()),
        }
    }

    /// A crashed write (or cas) whose value no completed read returned and
    /// no cas expects is never needed: linearized, it would only leave a
    /// value in the register that no later op may see until the next write
    /// overwrites it, so the same order without it is just as legal.
    fn prunable(&self, ops: &[(&RegisterOp, bool)]) -> Vec<bool> {
        let mut observed: std::collections::BTreeSet<&Value> = Default::default();
        for (op, _) in ops {
            match op {
                RegisterOp::Read(v) | RegisterOp::Cas(v, _) => {
                    observed.insert(v);
                }
                RegisterOp::Write(_) => {}
            }
        }
        ops.iter()
            .map(|(op, optional)| {
                *optional
                    && match op {
                        RegisterOp::Write(v) | RegisterOp::Cas(_, v) => !observed.contains(v),
                        RegisterOp::Read(_) => false,
                    }
            })
            .collect()
    }

    fn blind(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Write(_))
    }

    fn read_only(&self, op: &RegisterOp) -> bool {
        match op {
            RegisterOp::Read(_) => true,
            RegisterOp::Cas(from, to) => from == to,
            RegisterOp::Write(_) => false,
        }
    }

    /// The zones of a register with unique values (see [`crate::zones`]).
    fn certificate(&self, items: &[crate::wgl::Item<RegisterOp>]) -> Option<Vec<usize>> {
        crate::zones::candidate(items, &self.initial)
    }

    fn describe_op(&self, op: &RegisterOp) -> String {
        match op {
            RegisterOp::Read(v) => format!("read -> {v}"),
            RegisterOp::Write(v) => format!("write {v}"),
            RegisterOp::Cas(f, t) => format!("cas {f}->{t}"),
        }
    }

    fn describe_state(&self, state: &Value) -> String {
        state.to_string()
    }
}

/// A kv op on one key's string, as in Porcupine's kv data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// A get that returned this string.
    Get(String),
    /// Replace the string.
    Put(String),
    /// Append to the string.
    Append(String),
}

/// Porcupine's kv model: every key holds a string, initially empty; `get`,
/// `put` and `append`. Partitioned by key.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kv;

fn kv_string(v: &Value) -> Result<String, String> {
    match v {
        Value::Nil => Ok(String::new()),
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(format!("kv values must be strings, found {other}")),
    }
}

impl Model for Kv {
    type State = String;
    type Op = KvOp;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> String {
        String::new()
    }

    fn prepare(&self, pair: &Pair<'_>) -> Result<Option<KvOp>, String> {
        let inv = pair.invoke;
        match inv.f {
            Fun::Get | Fun::Read | Fun::SyncRead => observed(pair)
                .map(kv_string)
                .transpose()
                .map(|v| v.map(KvOp::Get)),
            Fun::Put | Fun::Write => Ok(Some(KvOp::Put(kv_string(&inv.value)?))),
            Fun::Append => Ok(Some(KvOp::Append(kv_string(&inv.value)?))),
            ref other => Err(format!(
                ":{other} is not an operation of the kv model (get, put, append)"
            )),
        }
    }

    fn step(&self, state: &String, op: &KvOp) -> Option<String> {
        match op {
            KvOp::Get(v) => (v == state).then(|| state.clone()),
            KvOp::Put(v) => Some(v.clone()),
            KvOp::Append(v) => {
                let mut s = String::with_capacity(state.len() + v.len());
                s.push_str(state);
                s.push_str(v);
                Some(s)
            }
        }
    }

    fn blind(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Put(_))
    }

    fn read_only(&self, op: &KvOp) -> bool {
        match op {
            KvOp::Get(_) => true,
            KvOp::Append(s) => s.is_empty(),
            KvOp::Put(_) => false,
        }
    }

    fn describe_op(&self, op: &KvOp) -> String {
        match op {
            KvOp::Get(v) => format!("get -> {v:?}"),
            KvOp::Put(v) => format!("put {v:?}"),
            KvOp::Append(v) => format!("append {v:?}"),
        }
    }

    fn describe_state(&self, state: &String) -> String {
        format!("{state:?}")
    }
}

/// The models `faultline check` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Read/write register per key.
    Register,
    /// Read/write/cas register per key.
    CasRegister,
    /// Porcupine's string kv store (get/put/append).
    Kv,
}

impl ModelKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<ModelKind> {
        Some(match s {
            "register" => ModelKind::Register,
            "cas-register" => ModelKind::CasRegister,
            "kv" => ModelKind::Kv,
            _ => return None,
        })
    }

    /// Picks the model from the functions a history's client ops use:
    /// get/put/append means `kv`, any cas means `cas-register`, otherwise
    /// `register`.
    pub fn detect(h: &faultline_history::History) -> ModelKind {
        let mut cas = false;
        for p in h.pairs() {
            match p.invoke.f {
                Fun::Get | Fun::Put | Fun::Append => return ModelKind::Kv,
                Fun::Cas => cas = true,
                _ => {}
            }
        }
        if cas {
            ModelKind::CasRegister
        } else {
            ModelKind::Register
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegisterOp::*;

    fn v(i: i64) -> Value {
        Value::Int(i)
    }

    #[rustfmt::skip]
    #[test]
    fn register_steps() {
        let m = Register::new(true);
        let cases: &[(Value, RegisterOp, Option<Value>)] = &[
            (Value::Nil, Read(Value::Nil), Some(Value::Nil)),
            (Value::Nil, Read(v(1)),       None),
            (v(1),       Read(v(1)),       Some(v(1))),
            (v(1),       Write(v(2)),      Some(v(2))),
            (v(1),       Cas(v(1), v(3)),  Some(v(3))),
            (v(2),       Cas(v(1), v(3)),  None),
            (Value::Nil, Cas(Value::Nil, v(0)), Some(v(0))),
        ];
        for (s, op, want) in cases {
            assert_eq!(&m.step(s, op), want, "{s} {op:?}");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn kv_steps() {
        let m = Kv;
        let cases: &[(&str, KvOp, Option<&str>)] = &[
            ("",   KvOp::Get("".into()),     Some("")),
            ("",   KvOp::Get("x".into()),    None),
            ("x",  KvOp::Append("y".into()), Some("xy")),
            ("xy", KvOp::Put("z".into()),    Some("z")),
        ];
        for (s, op, want) in cases {
            assert_eq!(m.step(&s.to_string(), op).as_deref(), *want, "{s} {op:?}");
        }
    }
}
