//! A small EDN reader (enough for Jepsen histories and Porcupine's kv data)
//! and the Jepsen EDN history reader and writer.
//!
//! A Jepsen history is a sequence of maps, one per line, such as
//! `{:type :invoke, :f :cas, :value [1 2], :process 0, :time 123, :index 5}`;
//! a file holding one vector of such maps is accepted too. With
//! `jepsen.independent` the value of a client op is a `[key value]` pair;
//! Porcupine's kv data instead puts the key in a `:key` field.

use crate::{Fun, Op, OpType, ParseError, Process, Value};
use std::fmt::{self, Write as _};

/// An EDN value.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// An integer (also `123N` when it fits in 64 bits).
    Int(i64),
    /// Any other number, kept as its text.
    Number(String),
    /// A string.
    Str(String),
    /// A character literal such as `\a`.
    Char(char),
    /// A keyword, without its leading colon.
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// `( ... )`
    List(Vec<Edn>),
    /// `[ ... ]`
    Vector(Vec<Edn>),
    /// `{ k v ... }` in source order.
    Map(Vec<(Edn, Edn)>),
    /// `#{ ... }`
    Set(Vec<Edn>),
    /// `#tag value`
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// Looks up a keyword key in a map.
    pub fn get(&self, keyword: &str) -> Option<&Edn> {
        match self {
            Edn::Map(kv) => kv.iter().find_map(|(k, v)| match k {
                Edn::Keyword(s) if s == keyword => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, open: &str, v: &[Edn], close: &str) -> fmt::Result {
            f.write_str(open)?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    f.write_char(' ')?;
                }
                write!(f, "{x}")?;
            }
            f.write_str(close)
        }
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Number(s) => f.write_str(s),
            Edn::Str(s) => write_str(f, s),
            Edn::Char(c) => write!(f, "\\{c}"),
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::Symbol(s) => f.write_str(s),
            Edn::List(v) => seq(f, "(", v, ")"),
            Edn::Vector(v) => seq(f, "[", v, "]"),
            Edn::Set(v) => seq(f, "#{", v, "}"),
            Edn::Map(kv) => {
                f.write_char('{')?;
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_char('}')
            }
            Edn::Tagged(t, v) => write!(f, "#{t} {v}"),
        }
    }
}

/// Writes `s` as an EDN (and JSON-compatible) string literal.
pub fn write_str(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// A streaming reader of top-level EDN forms with line tracking.
pub struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

const MAX_DEPTH: usize = 256;

impl<'a> Reader<'a> {
    /// Reads forms from `src`.
    pub fn new(src: &'a str) -> Reader<'a> {
        Reader {
            src: src.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// The next top-level form and the line it starts on, `None` at the end.
    pub fn next_form(&mut self) -> Result<Option<(usize, Edn)>, ParseError> {
        self.skip(0)?;
        if self.pos >= self.src.len() {
            return Ok(None);
        }
        let line = self.line;
        let v = self.value(0)?;
        Ok(Some((line, v)))
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.line, msg)
    }

    fn skip_ws(&mut self) {
        while let Some(&c) = self.src.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Skips whitespace, comments and `#_` discarded forms.
    fn skip(&mut self, depth: usize) -> Result<(), ParseError> {
        loop {
            self.skip_ws();
            if self.src.get(self.pos..self.pos + 2) != Some(b"#_") {
                return Ok(());
            }
            self.pos += 2;
            self.value(depth + 1)?;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Edn, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("EDN nested too deeply"));
        }
        self.skip(depth)?;
        let Some(&c) = self.src.get(self.pos) else {
            return Err(self.err("unexpected end of input"));
        };
        match c {
            b'{' => {
                self.pos += 1;
                let items = self.seq(b'}', depth, "map")?;
                if items.len() % 2 != 0 {
                    return Err(self.err("map literal has an odd number of forms"));
                }
                let mut kv = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    kv.push((k, v));
                }
                Ok(Edn::Map(kv))
            }
            b'[' => {
                self.pos += 1;
                Ok(Edn::Vector(self.seq(b']', depth, "vector")?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Edn::List(self.seq(b')', depth, "list")?))
            }
            b'#' => {
                self.pos += 1;
                match self.src.get(self.pos) {
                    Some(b'{') => {
                        self.pos += 1;
                        Ok(Edn::Set(self.seq(b'}', depth, "set")?))
                    }
                    _ => {
                        let tag = self.token();
                        if tag.is_empty() {
                            return Err(self.err("'#' must be followed by a tag, '{' or '_'"));
                        }
                        let v = self.value(depth + 1)?;
                        Ok(Edn::Tagged(tag, Box::new(v)))
                    }
                }
            }
            b'"' => self.string(),
            b'\\' => {
                self.pos += 1;
                let t = self.token();
                let ch = match t.as_str() {
                    "newline" => '\n',
                    "space" => ' ',
                    "tab" => '\t',
                    "return" => '\r',
                    _ => {
                        let mut cs = t.chars();
                        match (cs.next(), cs.next()) {
                            (Some(c), None) => c,
                            _ => return Err(self.err(format!("bad character literal \\{t}"))),
                        }
                    }
                };
                Ok(Edn::Char(ch))
            }
            b':' => {
                self.pos += 1;
                let t = self.token();
                if t.is_empty() {
                    return Err(self.err("empty keyword"));
                }
                Ok(Edn::Keyword(t))
            }
            b'}' | b']' | b')' => Err(self.err(format!("unexpected '{}'", c as char))),
            _ => {
                let start_line = self.line;
                let t = self.token();
                if t.is_empty() {
                    let ch = std::str::from_utf8(&self.src[self.pos..])
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or('?');
                    return Err(ParseError::at(
                        start_line,
                        format!("unexpected character {ch:?}"),
                    ));
                }
                Ok(atom(t))
            }
        }
    }

    fn seq(&mut self, close: u8, depth: usize, what: &str) -> Result<Vec<Edn>, ParseError> {
        let open_line = self.line;
        let mut out = Vec::new();
        loop {
            self.skip(depth)?;
            match self.src.get(self.pos) {
                None => {
                    return Err(ParseError::at(
                        self.line,
                        format!(
                        "unexpected end of input: {what} opened on line {open_line} is not closed"
                    ),
                    ))
                }
                Some(&c) if c == close => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => out.push(self.value(depth + 1)?),
            }
        }
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(&c) = self.src.get(self.pos) {
            if c.is_ascii_whitespace()
                || matches!(
                    c,
                    b',' | b'{' | b'}' | b'[' | b']' | b'(' | b')' | b'"' | b';'
                )
            {
                break;
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    fn string(&mut self) -> Result<Edn, ParseError> {
        let open_line = self.line;
        self.pos += 1; // opening quote
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.src.get(self.pos) else {
                return Err(ParseError::at(
                    self.line,
                    format!(
                        "unexpected end of input: string opened on line {open_line} is not closed"
                    ),
                ));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    buf.push(c);
                }
                b'\\' => {
                    let Some(&e) = self.src.get(self.pos) else {
                        continue;
                    };
                    self.pos += 1;
                    match e {
                        b'n' => buf.push(b'\n'),
                        b't' => buf.push(b'\t'),
                        b'r' => buf.push(b'\r'),
                        b'"' => buf.push(b'"'),
                        b'\\' => buf.push(b'\\'),
                        b'u' => {
                            let hex = self
                                .src
                                .get(self.pos..self.pos + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.err("bad \\u escape in string"))?;
                            self.pos += 4;
                            let mut tmp = [0u8; 4];
                            buf.extend_from_slice(hex.encode_utf8(&mut tmp).as_bytes());
                        }
                        other => {
                            return Err(
                                self.err(format!("unknown escape \\{} in string", other as char))
                            )
                        }
                    }
                }
                _ => buf.push(c),
            }
        }
        String::from_utf8(buf)
            .map(Edn::Str)
            .map_err(|_| self.err("string is not valid UTF-8"))
    }
}

fn atom(t: String) -> Edn {
    match t.as_str() {
        "nil" => return Edn::Nil,
        "true" => return Edn::Bool(true),
        "false" => return Edn::Bool(false),
        _ => {}
    }
    let b = t.as_bytes();
    let numeric = b[0].is_ascii_digit()
        || (matches!(b[0], b'-' | b'+') && b.len() > 1 && b[1].is_ascii_digit());
    if numeric {
        let digits = t.strip_suffix('N').unwrap_or(&t);
        if let Ok(i) = digits.parse::<i64>() {
            return Edn::Int(i);
        }
        return Edn::Number(t);
    }
    Edn::Symbol(t)
}

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
    op.zxid = uint_field(e, "zxid")?;
    op.node = uint_field(e, "node")?;
    op.session = uint_field(e, "session")?;
    if independent && op.process.is_client() && op.key.is_none() {
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

fn uint_field(e: &Edn, name: &str) -> Result<Option<u64>, String> {
    match e.get(name) {
        None | Some(Edn::Nil) => Ok(None),
        Some(Edn::Int(i)) if *i >= 0 => Ok(Some(*i as u64)),
        Some(other) => Err(format!("bad :{name} {}", short(other))),
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
            if let Edn::Vector(items) = &form {
                // a whole history as one vector
                for it in items {
                    let op = op_from_edn(it, independent).map_err(|m| ParseError::at(line, m))?;
                    out.push((line, op));
                }
                if r.next_form()?.is_some() {
                    return Err(ParseError::at(
                        line,
                        "expected a single vector of ops or one op map per line",
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
