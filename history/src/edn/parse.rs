//! The EDN reader: values ([`Edn`]) and a streaming [`Reader`] of the
//! forms of a text, enough for Jepsen histories and Porcupine's kv data
//! (maps, vectors, lists, sets, keywords, strings, numbers, tags, discards,
//! with a depth limit).

use crate::ParseError;
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
            b'#' => self.dispatch(depth),
            b'"' => self.string(),
            b'\\' => self.character(),
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

    /// After `#`: a set, or a tagged value.
    fn dispatch(&mut self, depth: usize) -> Result<Edn, ParseError> {
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

    /// After a backslash: a character literal.
    fn character(&mut self) -> Result<Edn, ParseError> {
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
