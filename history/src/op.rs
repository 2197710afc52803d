//! Operations: [`Op`], its type, process, function and values.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Jepsen's four event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client started the operation.
    Invoke,
    /// The operation happened, with the completion's value as its result.
    Ok,
    /// The operation certainly did not happen.
    Fail,
    /// Unknown: the operation may have happened at any time after its
    /// invocation, or never. The process is retired afterwards.
    Info,
}

impl OpType {
    /// The Jepsen keyword name (`invoke`, `ok`, `fail`, `info`).
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    /// Parses a Jepsen type name (without the leading colon).
    pub fn parse(s: &str) -> Option<OpType> {
        Some(match s {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            _ => return None,
        })
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who performed an op: a numbered client process, or a named one. Every
/// process is a client except Jepsen's `:nemesis`, whose events take no
/// part in invoke/complete pairing (a client may be named: `:client-a`,
/// `"p0"`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    /// A client process (Jepsen's integer process ids).
    Client(u64),
    /// A named process: `nemesis`, or a client with a name.
    Named(String),
}

/// The one process name that is not a client.
pub const NEMESIS: &str = "nemesis";

impl Process {
    /// True for client processes, whose ops are checked: every process but
    /// the nemesis.
    pub fn is_client(&self) -> bool {
        match self {
            Process::Client(_) => true,
            Process::Named(n) => n != NEMESIS,
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Named(n) => write!(f, ":{n}"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Named(n) => s.serialize_str(n),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer process id or a name such as \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("negative process id {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                Ok(Process::Named(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The function of an op. Register workloads use `read`, `sync-read`,
/// `write` and `cas`; Porcupine's kv data uses `get`, `put` and `append`;
/// anything else (e.g. nemesis `start`/`stop`) is kept as `Other`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fun {
    /// Read a register: linearizable, as Jepsen means it.
    Read,
    /// A local read (ZooKeeper's read served by whichever server the client
    /// is connected to): only sequentially consistent, so no
    /// linearizability check judges it (the bench's `read-guarantees`
    /// does, against the servers' logs).
    LocalRead,
    /// A linearizable read (ZooKeeper: `sync` then read).
    SyncRead,
    /// Write a register.
    Write,
    /// Compare-and-set: value `[from to]`.
    Cas,
    /// kv: read a key's string.
    Get,
    /// kv: set a key's string.
    Put,
    /// kv: append to a key's string.
    Append,
    /// A client session was opened (ZooKeeper's createSession): value the
    /// timeout granted, in the server's ticks.
    OpenSession,
    /// A client session was closed by its client.
    CloseSession,
    /// Create an ephemeral key owned by the process's session, if absent:
    /// value the value written.
    CreateEphemeral,
    /// A client's keep-alive ping on its session (ZooKeeper's PING, sent
    /// when the client has been idle for a third of its timeout): no key,
    /// no effect, answered by the server it reached.
    Ping,
    /// Any other function name.
    Other(String),
}

impl Fun {
    /// The name as written in histories (kebab-case, no colon).
    pub fn name(&self) -> &str {
        match self {
            Fun::Read => "read",
            Fun::LocalRead => "local-read",
            Fun::SyncRead => "sync-read",
            Fun::Write => "write",
            Fun::Cas => "cas",
            Fun::Get => "get",
            Fun::Put => "put",
            Fun::Append => "append",
            Fun::OpenSession => "open-session",
            Fun::CloseSession => "close-session",
            Fun::CreateEphemeral => "create-ephemeral",
            Fun::Ping => "ping",
            Fun::Other(s) => s,
        }
    }

    /// Whether the op belongs to the session machinery (ZAB.md §9) rather
    /// than to a register: opening and closing sessions, ephemeral keys,
    /// pings.
    pub fn is_session(&self) -> bool {
        matches!(
            self,
            Fun::OpenSession | Fun::CloseSession | Fun::CreateEphemeral | Fun::Ping
        )
    }

    /// Whether the function never takes a key (opening and closing a
    /// session, pings): such ops keep their plain value in a
    /// `jepsen.independent` history.
    pub fn keyless(&self) -> bool {
        matches!(self, Fun::OpenSession | Fun::CloseSession | Fun::Ping)
    }

    /// Parses a function name (without the leading colon).
    pub fn parse(s: &str) -> Fun {
        match s {
            "read" => Fun::Read,
            "local-read" => Fun::LocalRead,
            "sync-read" => Fun::SyncRead,
            "write" => Fun::Write,
            "cas" => Fun::Cas,
            "get" => Fun::Get,
            "put" => Fun::Put,
            "append" => Fun::Append,
            "open-session" => Fun::OpenSession,
            "close-session" => Fun::CloseSession,
            "create-ephemeral" => Fun::CreateEphemeral,
            "ping" => Fun::Ping,
            other => Fun::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Fun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Fun {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Fun {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Fun::parse(&s))
    }
}

/// A value carried by an op: nil, a boolean, an integer, a string, or a list
/// (e.g. cas `[from to]`, or a `jepsen.independent` `[key value]` pair).
/// Values of other shapes from foreign histories (maps, sets) are kept as
/// their EDN text in `Str`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// No value (`nil` / JSON `null`).
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A list of values.
    List(Vec<Value>),
}

impl Value {
    /// The two elements of a 2-element list, e.g. cas `[from to]`.
    pub fn as_pair(&self) -> Option<(&Value, &Value)> {
        match self {
            Value::List(v) if v.len() == 2 => Some((&v[0], &v[1])),
            _ => None,
        }
    }

    /// Builds a 2-element list.
    pub fn pair(a: Value, b: Value) -> Value {
        Value::List(vec![a, b])
    }
}

impl fmt::Display for Value {
    /// EDN-style text: `nil`, `true`, `3`, `"x"`, `[1 2]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => crate::edn::write_str(f, s),
            Value::List(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Str(v) => s.serialize_str(v),
            Value::List(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("null, a boolean, an integer, a string or an array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Nil)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Nil)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Int)
                    .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Err(E::custom(format!(
                    "floating-point value {v} is not supported"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Value::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One event of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The process that performed it.
    pub process: Process,
    /// The function.
    pub f: Fun,
    /// The key for multi-key workloads (`None`: a single register).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The argument (on invoke) or the result (on ok).
    #[serde(default)]
    pub value: Value,
    /// Simulated (or wall) time in nanoseconds; formats without times use the
    /// op's position.
    #[serde(default)]
    pub time: u64,
    /// Why the op failed or is unknown (e.g. `timed-out`), if known. Read
    /// from any JSON value (a non-string is kept as its JSON text).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub error: Option<String>,
    /// Node-supplied: the zxid at which the op was applied or read. Read
    /// leniently: a value that is not a non-negative integer is dropped,
    /// never an error (the linearizability check does not use it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_uint"
    )]
    pub zxid: Option<u64>,
    /// Node-supplied: the server that answered (read leniently, like
    /// `zxid`: Jepsen stores carry node names such as `"n4"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_uint"
    )]
    pub node: Option<u64>,
    /// The client session the op ran on, when the client names it.
    /// Several processes may share a session: a read pipelined behind a
    /// write runs on the write's session under a process id of its own
    /// (a process has one op open at a time), and the server executes the
    /// session's requests in order. Read leniently, like `zxid`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_uint"
    )]
    pub session: Option<u64>,
}

/// A field the checker does not need: a non-negative integer, or nothing
/// (whatever else it holds).
fn lenient_uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_u64())
}

/// A text field: a string as is, any other JSON value as its JSON text,
/// `null` as nothing.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

impl Op {
    /// An op with no key, time 0 and no node-supplied fields.
    pub fn new(kind: OpType, process: Process, f: Fun, value: Value) -> Op {
        Op {
            kind,
            process,
            f,
            key: None,
            value,
            time: 0,
            error: None,
            zxid: None,
            session: None,
            node: None,
        }
    }
}

impl fmt::Display for Op {
    /// One readable line: `process 3 ok read k=1 2 @1.2ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} {} {}", self.process, self.kind, self.f)?;
        if let Some(k) = &self.key {
            write!(f, " key={k}")?;
        }
        write!(f, " {}", self.value)?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}
