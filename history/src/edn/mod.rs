//! A small EDN reader (enough for Jepsen histories and Porcupine's kv data)
//! and the Jepsen EDN history reader and writer.
//!
//! A Jepsen history is a sequence of maps, one per line, such as
//! `{:type :invoke, :f :cas, :value [1 2], :process 0, :time 123, :index 5}`;
//! a file holding one vector of such maps is accepted too. With
//! `jepsen.independent` the value of a client op is a `[key value]` pair;
//! Porcupine's kv data instead puts the key in a `:key` field.

mod parse;

use crate::{Fun, Op, OpType, ParseError, Process, Value};
pub use parse::{write_str, Edn, Reader};
use std::fmt::{self, Write as _};

/// Converts an EDN value into a history [`Value`]: lists and vectors become
/// lists, keywords and other shapes keep their EDN text.
pub fn to_value(e: &Edn) -> Value {
    match e {
        Edn::Nil => Value::Nil,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.clone()),
        Edn::Vector(v) | Edn::List(v) => Value::List(v.iter().map(to_value).collect()),
        other => Value::Str(other.to_string()),
    }
}

fn name_of(e: &Edn) -> Option<&str> {
    match e {
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => Some(s),
        _ => None,
    }
}

/// Converts one Jepsen op map into an [`Op`]. `independent` splits client
/// values `[key value]` into key and value.
pub fn op_from_edn(e: &Edn, independent: bool) -> Result<Op, String> {
    // A tagged record (`#jepsen.history.Op{...}`) is read as its map.
    let e = match e {
        Edn::Tagged(_, inner) => inner.as_ref(),
        e => e,
    };
    let Edn::Map(_) = e else {
        return Err(format!("expected an op map, found {}", short(e)));
    };
    let ty = e.get("type").ok_or("op has no :type")?;
    let kind = name_of(ty)
        .and_then(OpType::parse)
        .ok_or_else(|| format!("unknown op type {}", short(ty)))?;
    let f = e.get("f").ok_or("op has no :f")?;
    let f = Fun::parse(name_of(f).ok_or_else(|| format!("bad :f {}", short(f)))?);
    let process = match e.get("process").ok_or("op has no :process")? {
        Edn::Int(p) if *p >= 0 => Process::Client(*p as u64),
        other => match name_of(other) {
            Some(n) => Process::Named(n.to_string()),
            None => return Err(format!("bad :process {}", short(other))),
        },
    };
    let mut op = Op::new(
        kind,
        process,
        f,
        e.get("value").map(to_value).unwrap_or(Value::Nil),
    );
    op.key = e.get("key").map(to_value);
    if let Some(t) = e.get("time") {
        op.time = match t {
            Edn::Int(t) if *t >= 0 => *t as u64,
            other => return Err(format!("bad :time {}", short(other))),
        };
    }
    op.error = e.get("error").map(|v| match v {
        Edn::Keyword(k) => k.clone(),
        Edn::Str(s) => s.clone(),
        other => other.to_string(),
    });
    op.zxid = uint_field(e, "zxid");
    op.node = uint_field(e, "node");
    op.session = uint_field(e, "session");
    if independent && op.process.is_client() && op.key.is_none() && !op.f.keyless() {
        split_independent(&mut op)?;
    }
    Ok(op)
}

/// Splits a `jepsen.independent` value `[key value]` into key and value.
pub fn split_independent(op: &mut Op) -> Result<(), String> {
    match std::mem::take(&mut op.value) {
        Value::List(mut v) if v.len() == 2 => {
            op.value = v.pop().expect("two elements");
            op.key = v.pop();
            Ok(())
        }
        other => Err(format!(
            "--independent expects values of the form [key value], found {other}"
        )),
    }
}

/// A field the checker does not need: a non-negative integer, or nothing
/// whatever else it holds (Jepsen's `:node "n4"`).
fn uint_field(e: &Edn, name: &str) -> Option<u64> {
    match e.get(name) {
        Some(Edn::Int(i)) if *i >= 0 => Some(*i as u64),
        _ => None,
    }
}

fn short(e: &Edn) -> String {
    let mut s = e.to_string();
    if s.len() > 60 {
        let mut cut = 57;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Reads a Jepsen EDN history: one op map per form (normally one per line),
/// or a single top-level vector of op maps. Returns each op with the line it
/// starts on.
pub fn read_ops(src: &str, independent: bool) -> Result<Vec<(usize, Op)>, ParseError> {
    let mut r = Reader::new(src);
    let mut out = Vec::new();
    let mut first = true;
    while let Some((line, form)) = r.next_form()? {
        if first {
            first = false;
            if let Edn::Vector(items) | Edn::List(items) = &form {
                // a whole history as one vector or list
                for it in items {
                    let op = op_from_edn(it, independent).map_err(|m| ParseError::at(line, m))?;
                    out.push((line, op));
                }
                if r.next_form()?.is_some() {
                    return Err(ParseError::at(
                        line,
                        "expected a single vector or list of ops, or one op map per line",
                    ));
                }
                return Ok(out);
            }
        }
        let op = op_from_edn(&form, independent).map_err(|m| ParseError::at(line, m))?;
        out.push((line, op));
    }
    Ok(out)
}

/// Writes ops as a Jepsen EDN history, one map per line, with `:index`.
/// Ops that carry a key are written in `jepsen.independent` form, their value
/// as a `[key value]` pair, which Jepsen's checkers (and our reader's
/// auto-detection) understand.
pub fn write_ops<'a>(
    out: &mut impl std::io::Write,
    ops: impl IntoIterator<Item = &'a Op>,
) -> std::io::Result<()> {
    let mut line = String::with_capacity(160);
    for (i, op) in ops.into_iter().enumerate() {
        line.clear();
        let _ = write_op(&mut line, i, op);
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

fn write_op(s: &mut String, index: usize, op: &Op) -> fmt::Result {
    write!(s, "{{:type :{}, :f ", op.kind)?;
    write_name(s, op.f.name())?;
    s.push_str(", :value ");
    match &op.key {
        Some(k) => write!(s, "[{} {}]", k, op.value)?,
        None => write!(s, "{}", op.value)?,
    }
    s.push_str(", :process ");
    match &op.process {
        Process::Client(p) => write!(s, "{p}")?,
        Process::Named(n) => write_name(s, n)?,
    }
    write!(s, ", :time {}, :index {index}", op.time)?;
    if let Some(e) = &op.error {
        s.push_str(", :error ");
        write_name(s, e)?;
    }
    if let Some(z) = op.zxid {
        write!(s, ", :zxid {z}")?;
    }
    if let Some(n) = op.node {
        write!(s, ", :node {n}")?;
    }
    if let Some(n) = op.session {
        write!(s, ", :session {n}")?;
    }
    s.push('}');
    Ok(())
}

/// A keyword when the name is a plain identifier, a string otherwise.
fn write_name(s: &mut String, name: &str) -> fmt::Result {
    let plain = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'?' | b'!' | b'.' | b'*' | b'/')
        });
    if plain {
        write!(s, ":{name}")
    } else {
        write_str(s, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(s: &str) -> Result<Vec<Edn>, ParseError> {
        let mut r = Reader::new(s);
        let mut v = Vec::new();
        while let Some((_, e)) = r.next_form()? {
            v.push(e);
        }
        Ok(v)
    }

    #[test]
    fn parses_jepsen_op_map() {
        let v =
            parse_all(r#"{:type :invoke, :f :cas, :value [1 2], :process 0, :time 123, :index 5}"#)
                .unwrap();
        let op = op_from_edn(&v[0], false).unwrap();
        assert_eq!(op.kind, OpType::Invoke);
        assert_eq!(op.f, Fun::Cas);
        assert_eq!(op.value, Value::pair(Value::Int(1), Value::Int(2)));
        assert_eq!(op.process, Process::Client(0));
        assert_eq!(op.time, 123);
    }

    #[test]
    fn parses_scalars_and_nesting() {
        let v = parse_all(
            r#"nil true -3 12N 1.5 "a\"b\n" \c :k/x sym #{1} #inst "2020" (1 [2]) #_ 9 ;c"#,
        )
        .unwrap();
        assert_eq!(v[0], Edn::Nil);
        assert_eq!(v[1], Edn::Bool(true));
        assert_eq!(v[2], Edn::Int(-3));
        assert_eq!(v[3], Edn::Int(12));
        assert_eq!(v[4], Edn::Number("1.5".into()));
        assert_eq!(v[5], Edn::Str("a\"b\n".into()));
        assert_eq!(v[6], Edn::Char('c'));
        assert_eq!(v[7], Edn::Keyword("k/x".into()));
        assert_eq!(v[8], Edn::Symbol("sym".into()));
        assert_eq!(v[9], Edn::Set(vec![Edn::Int(1)]));
        assert!(matches!(v[10], Edn::Tagged(ref t, _) if t == "inst"));
        assert_eq!(v.len(), 12);
    }

    #[test]
    fn independent_values_are_split() {
        let v = parse_all(r#"{:type :invoke, :f :cas, :value [7 [1 2]], :process 0}"#).unwrap();
        let op = op_from_edn(&v[0], true).unwrap();
        assert_eq!(op.key, Some(Value::Int(7)));
        assert_eq!(op.value, Value::pair(Value::Int(1), Value::Int(2)));
        let v = parse_all(r#"{:type :invoke, :f :read, :value nil, :process 0}"#).unwrap();
        assert!(op_from_edn(&v[0], true)
            .unwrap_err()
            .contains("[key value]"));
    }

    #[test]
    fn malformed_input_names_the_line() {
        let e = read_ops(
            "{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read",
            false,
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not closed"), "{}", e.message);
        let e = read_ops("\n\n{:type :frob, :f :read, :process 0}", false).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unknown op type :frob"), "{}", e.message);
        let e = read_ops("{:type :ok :f}", false).unwrap_err();
        assert!(e.message.contains("odd number"), "{}", e.message);
        let e = read_ops("}", false).unwrap_err();
        assert!(e.message.contains("unexpected '}'"), "{}", e.message);
        let e = read_ops("\"abc", false).unwrap_err();
        assert!(
            e.message.contains("string opened on line 1"),
            "{}",
            e.message
        );
        let deep = "[".repeat(10_000);
        assert!(read_ops(&deep, false).is_err());
    }

    #[test]
    fn vector_of_ops_is_accepted() {
        let ops = read_ops(
            "[{:type :invoke, :f :read, :process 0}\n {:type :ok, :f :read, :value 3, :process 0}]",
            false,
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].1.value, Value::Int(3));
    }

    #[test]
    fn write_then_read_round_trips() {
        let mut a = Op::new(
            OpType::Invoke,
            Process::Client(3),
            Fun::Cas,
            Value::pair(1.into(), 2.into()),
        );
        a.key = Some(Value::Int(9));
        a.time = 77;
        let mut b = Op::new(
            OpType::Info,
            Process::Client(3),
            Fun::Cas,
            Value::pair(1.into(), 2.into()),
        );
        b.key = Some(Value::Int(9));
        b.error = Some("timed-out".into());
        b.zxid = Some(5);
        b.node = Some(2);
        b.session = Some(4);
        let mut n = Op::new(
            OpType::Info,
            Process::Named("nemesis".into()),
            Fun::Other("start".into()),
            Value::Str("a b".into()),
        );
        n.time = 80;
        let ops = vec![a, b, n];
        let mut buf = Vec::new();
        write_ops(&mut buf, &ops).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with(
                "{:type :invoke, :f :cas, :value [9 [1 2]], :process 3, :time 77, :index 0}"
            ),
            "{text}"
        );
        let back: Vec<Op> = read_ops(&text, true)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(back, ops);
    }
}
