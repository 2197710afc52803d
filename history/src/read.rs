//! Reading a history from a file or string in any supported format.

use crate::{edn, jepsen_log, jsonl, Fun, History, Op, ParseError, Value};
use std::fmt;

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Detect from the content (see [`detect_format`]).
    Auto,
    /// faultline's JSON lines ([`crate::jsonl`]).
    Jsonl,
    /// A Jepsen EDN history ([`crate::edn`]).
    Edn,
    /// A Jepsen log, `jepsen.log` or the console ([`crate::jepsen_log`]).
    JepsenLog,
    /// Jepsen's `history.txt`: tab-separated process, type, f, value.
    HistoryTxt,
    /// A JSON array of op objects (as elle-cli ships histories).
    Json,
    /// Porcupine's kv format: EDN op maps with a `:key` field.
    PorcupineKv,
}

impl Format {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
            Format::HistoryTxt => "history-txt",
            Format::Json => "json",
            Format::PorcupineKv => "porcupine-kv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to read a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// The format, or `Auto`.
    pub format: Format,
    /// `Some(true)`: values are `jepsen.independent` `[key value]` pairs;
    /// `Some(false)`: they are not; `None`: detect (only when unambiguous).
    pub independent: Option<bool>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: Format::Auto,
            independent: None,
        }
    }
}

/// Reads and validates a history file. Every error names the file and, where
/// one applies, the line.
pub fn read_file(path: &str, opts: ReadOptions) -> Result<(History, Format), ParseError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ParseError::at(0, format!("cannot read: {}", io_reason(&e))).with_path(path)
    })?;
    read_bytes(&bytes, opts).map_err(|e| e.with_path(path))
}

/// Reads and validates a history from raw bytes, which must be text.
pub fn read_bytes(bytes: &[u8], opts: ReadOptions) -> Result<(History, Format), ParseError> {
    read_str(to_text(bytes)?, opts)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ if e.raw_os_error() == Some(21) => "is a directory".to_string(),
        _ => e.to_string(),
    }
}

/// Checks that bytes are text: no NUL byte and valid UTF-8.
fn to_text(bytes: &[u8]) -> Result<&str, ParseError> {
    let line_of = |at: usize| 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(ParseError::at(
            line_of(at),
            "not a text file (binary data: a NUL byte)",
        ));
    }
    std::str::from_utf8(bytes)
        .map_err(|e| ParseError::at(line_of(e.valid_up_to()), "not a text file (invalid UTF-8)"))
}

/// Detects the format from the first non-blank lines, or says why it cannot.
pub fn detect_format(src: &str) -> Result<Format, ParseError> {
    let mut lines = src
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with(';'));
    let Some((n, first)) = lines.next() else {
        return Err(ParseError::at(0, "empty history: no operations"));
    };
    let t = first.trim_start();
    if t.starts_with("{\"") || t.starts_with("{ \"") {
        return Ok(Format::Jsonl);
    }
    // `[` then an object with a string key: a JSON array of ops.
    let after = src.trim_start().strip_prefix('[').map(str::trim_start);
    if after.is_some_and(|a| a.starts_with('{') && a[1..].trim_start().starts_with('"')) {
        return Ok(Format::Json);
    }
    if t.starts_with('{') || t.starts_with('[') || t.starts_with('(') || t.starts_with("#") {
        let kv_like = t.contains(":key ")
            && (t.contains(":f :get") || t.contains(":f :put") || t.contains(":f :append"));
        return Ok(if kv_like {
            Format::PorcupineKv
        } else {
            Format::Edn
        });
    }
    if jepsen_log::is_txt_line(first) {
        return Ok(Format::HistoryTxt);
    }
    if src.lines().take(1000).any(jepsen_log::is_log_line) {
        return Ok(Format::JepsenLog);
    }
    Err(ParseError::at(
        n + 1,
        "cannot detect the history format (expected JSON lines, a JSON array, Jepsen EDN, history.txt, a Jepsen log or Porcupine kv); use --format",
    ))
}

/// Reads and validates a history from text. Returns the format used.
pub fn read_str(src: &str, opts: ReadOptions) -> Result<(History, Format), ParseError> {
    let format = match opts.format {
        Format::Auto => detect_format(src)?,
        f => f,
    };
    let forced = opts.independent == Some(true);
    let mut ops = match format {
        Format::Jsonl => jsonl::read_ops(src)?,
        Format::Edn | Format::PorcupineKv => edn::read_ops(src, forced)?,
        Format::JepsenLog => jepsen_log::read_ops(src)?,
        Format::HistoryTxt => jepsen_log::read_txt(src)?,
        Format::Json => jsonl::read_array(src)?,
        Format::Auto => unreachable!("resolved above"),
    };
    if ops.is_empty() && is_empty_collection(src) {
        // `[]` or `()`: a history of no operations, as written.
        return Ok((
            History::new(Vec::new()).expect("empty is well-formed"),
            format,
        ));
    }
    if ops.is_empty() {
        return Err(ParseError::at(
            0,
            format!("empty history: no operations found (read as {format})"),
        ));
    }
    let json = matches!(format, Format::Jsonl | Format::Json);
    if forced && json {
        for (line, op) in ops.iter_mut() {
            if op.process.is_client() && op.key.is_none() && !op.f.keyless() {
                edn::split_independent(op).map_err(|m| ParseError::at(*line, m))?;
            }
        }
    } else if opts.independent.is_none() && !json && looks_independent(&ops) {
        for (line, op) in ops.iter_mut() {
            if op.process.is_client() && !op.f.keyless() {
                edn::split_independent(op).map_err(|m| ParseError::at(*line, m))?;
            }
        }
    }
    if ops.iter().all(|(_, o)| o.time == 0) {
        for (i, (_, o)) in ops.iter_mut().enumerate() {
            o.time = i as u64;
        }
    }
    let lines: Vec<usize> = ops.iter().map(|(l, _)| *l).collect();
    let ops: Vec<Op> = ops.into_iter().map(|(_, o)| o).collect();
    let h = History::new(ops).map_err(|e| ParseError::at(lines[e.index], e.message))?;
    Ok((h, format))
}

/// Whether the text, comments and whitespace aside, is an empty list or
/// vector.
fn is_empty_collection(src: &str) -> bool {
    let t: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace() && *c != ',')
        .collect();
    t == "[]" || t == "()"
}

/// True when every client register or kv op carries a
/// `jepsen.independent` `[key value]` value and none has a `:key`: a read
/// invocation's value is `[k nil]` instead of `nil`, a write's is a pair, and
/// a cas's second element is itself a `[from to]` pair.
fn looks_independent(ops: &[(usize, Op)]) -> bool {
    let mut seen = false;
    for (_, op) in ops {
        if !op.process.is_client() {
            continue;
        }
        if op.key.is_some() {
            return false;
        }
        let shaped = match op.f {
            Fun::Read | Fun::SyncRead | Fun::Write | Fun::Get | Fun::Put | Fun::Append => {
                op.value.as_pair().is_some()
            }
            Fun::Cas => matches!(op.value.as_pair(), Some((_, Value::List(v))) if v.len() == 2),
            _ => continue,
        };
        if !shaped {
            // completions of failed/unknown reads may carry no value
            if op.value == Value::Nil && op.kind != crate::OpType::Invoke {
                continue;
            }
            return false;
        }
        seen = true;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpType;

    #[test]
    fn detects_each_format() {
        assert_eq!(
            detect_format("{\"type\":\"invoke\"}").unwrap(),
            Format::Jsonl
        );
        assert_eq!(
            detect_format("\n{:type :invoke, :f :read}").unwrap(),
            Format::Edn
        );
        assert_eq!(
            detect_format("{:process 3, :type :invoke, :f :append, :key \"4\", :value \"x\"}")
                .unwrap(),
            Format::PorcupineKv
        );
        assert_eq!(
            detect_format("INFO  jepsen.util - 0\t:invoke\t:read\tnil").unwrap(),
            Format::JepsenLog
        );
        let e = detect_format("hello world").unwrap_err();
        assert!(e.message.contains("--format"), "{}", e.message);
        assert!(detect_format("  \n\n")
            .unwrap_err()
            .message
            .contains("empty"));
    }

    #[test]
    fn independent_is_detected_only_when_unambiguous() {
        let src = "{:type :invoke, :f :read, :value [1 nil], :process 0}\n\
                   {:type :ok, :f :read, :value [1 5], :process 0}\n\
                   {:type :invoke, :f :cas, :value [2 [1 2]], :process 1}\n";
        let (h, _) = read_str(src, ReadOptions::default()).unwrap();
        assert_eq!(h.ops()[1].key, Some(Value::Int(1)));
        assert_eq!(h.ops()[1].value, Value::Int(5));
        assert_eq!(h.ops()[2].value, Value::pair(1.into(), 2.into()));
        // a plain cas register: [from to] of scalars is not independent
        let src = "{:type :invoke, :f :cas, :value [1 2], :process 1}\n";
        let (h, _) = read_str(src, ReadOptions::default()).unwrap();
        assert_eq!(h.ops()[0].key, None);
    }

    #[test]
    fn keyless_session_ops_keep_their_value_in_an_independent_history() {
        // As the bench writes it: keyed ops as [key value], session ops
        // (open, ping) with their plain value.
        let src = "{:type :invoke, :f :open-session, :value 150, :process 0, :session 1}\n\
                   {:type :ok, :f :open-session, :value 150, :process 0, :session 1}\n\
                   {:type :invoke, :f :write, :value [3 7], :process 0, :session 1}\n\
                   {:type :ok, :f :write, :value [3 7], :process 0, :session 1}\n\
                   {:type :invoke, :f :ping, :value nil, :process 0, :session 1}\n\
                   {:type :ok, :f :ping, :value nil, :process 0, :session 1, :node 2}\n";
        for independent in [None, Some(true)] {
            let opts = ReadOptions {
                independent,
                ..ReadOptions::default()
            };
            let (h, _) = read_str(src, opts).unwrap();
            assert_eq!(h.ops()[1].value, Value::Int(150));
            assert_eq!(h.ops()[1].key, None);
            assert_eq!(h.ops()[3].key, Some(Value::Int(3)));
            assert_eq!(h.ops()[3].value, Value::Int(7));
            assert_eq!(h.ops()[5].f, Fun::Ping);
            assert_eq!(h.ops()[5].node, Some(2));
        }
    }

    #[test]
    fn fields_the_checker_does_not_use_never_make_an_op_unreadable() {
        let edn = "{:type :invoke, :f :read, :value nil, :process 0, :node \"n4\", :zxid :x, :session [1]}\n\
                   {:type :ok, :f :read, :value 3, :process 0, :node \"n4\", :error {:a 1}}\n";
        let jsonl = "{\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"process\":0,\"node\":\"n4\",\"zxid\":-1,\"session\":\"s\"}\n\
                     {\"type\":\"ok\",\"f\":\"read\",\"value\":3,\"process\":0,\"node\":\"n4\",\"error\":{\"a\":1}}\n";
        for src in [edn, jsonl] {
            let (h, _) = read_str(src, ReadOptions::default()).unwrap();
            assert_eq!(h.ops()[0].node, None);
            assert_eq!(h.ops()[0].zxid, None);
            assert_eq!(h.ops()[0].session, None);
            assert_eq!(h.ops()[1].value, Value::Int(3));
            assert!(h.ops()[1].error.is_some());
        }
    }

    #[test]
    fn wrapped_histories_json_arrays_and_tagged_records_are_read() {
        let op = |t: &str| format!("{{:type :{t}, :f :write, :value 1, :process 0}}");
        for (open, close) in [("[", "]"), ("(", ")")] {
            let src = format!("{open}{}\n {}{close}\n", op("invoke"), op("ok"));
            let (h, f) = read_str(&src, ReadOptions::default()).unwrap();
            assert_eq!((h.ops().len(), f), (2, Format::Edn), "{src}");
        }
        for empty in ["[]", "()", "[ ]\n", "; nothing\n[]"] {
            let (h, _) = read_str(empty, ReadOptions::default()).unwrap();
            assert!(h.ops().is_empty(), "{empty}");
        }
        let tagged = "#jepsen.history.Op{:index 0, :time 5, :type :invoke, :process 0, :f :read, :value nil}\n\
                      #jepsen.history.Op{:index 1, :time 9, :type :ok, :process 0, :f :read, :value 2}\n";
        let (h, _) = read_str(tagged, ReadOptions::default()).unwrap();
        assert_eq!(h.ops()[1].value, Value::Int(2));
        assert_eq!(h.ops()[1].time, 9);
        let json =
            "[\n  {\"type\": \"invoke\", \"f\": \"write\", \"value\": 1, \"process\": 0},\n  \
                    {\"type\": \"ok\", \"f\": \"write\", \"value\": 1, \"process\": 0}\n]\n";
        let (h, f) = read_str(json, ReadOptions::default()).unwrap();
        assert_eq!((h.ops().len(), f), (2, Format::Json));
        let bad = "[\n{\"type\": \"invoke\", \"f\": \"write\", \"process\": 0},\n{\"type\": \"done\", \"f\": \"write\", \"process\": 0}]";
        let e = read_str(bad, ReadOptions::default()).unwrap_err();
        assert_eq!(e.line, 3, "{}", e.message);
        assert!(e.message.contains("op 1"), "{}", e.message);
        // history.txt is detected
        let (h, f) = read_str(
            "0\t:invoke\t:read\tnil\n0\t:ok\t:read\t1\n",
            ReadOptions::default(),
        )
        .unwrap();
        assert_eq!((h.ops().len(), f), (2, Format::HistoryTxt));
    }

    #[test]
    fn named_processes_are_clients_except_the_nemesis() {
        let src = "{:type :invoke, :f :write, :value 1, :process :client-a}\n\
                   {:type :invoke, :f :read, :value nil, :process \"p0\"}\n\
                   {:type :info, :f :start, :value nil, :process :nemesis}\n\
                   {:type :ok, :f :write, :value 1, :process :client-a}\n\
                   {:type :ok, :f :read, :value 1, :process \"p0\"}\n";
        let (h, _) = read_str(src, ReadOptions::default()).unwrap();
        assert_eq!(h.pairs().count(), 2);
        assert!(!h.ops()[2].process.is_client());
    }

    #[test]
    fn bad_input_gives_file_and_line() {
        let opts = ReadOptions::default();
        let e = read_str("{\"type\":\"ok\",\"process\":0,\"f\":\"read\"}\n", opts).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("unmatched completion"));
        let e = read_str("", opts).unwrap_err();
        assert!(e.message.contains("empty"));
        let e = to_text(b"ab\ncd\0").unwrap_err();
        assert_eq!(e.line, 2);
        let e = to_text(b"\n\n\xff\xfe").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("<input>:3: not a text file"));
        let e = read_file("/nonexistent/h.edn", opts).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/h.edn: cannot read: no such file"
        );
        // a Jepsen log with no op line at all
        let e = read_str(
            "INFO  jepsen.util - \n",
            ReadOptions {
                format: Format::JepsenLog,
                independent: None,
            },
        )
        .unwrap_err();
        assert!(e.message.contains("empty history"), "{}", e.message);
    }

    #[test]
    fn times_default_to_positions() {
        let src =
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t3\n";
        let (h, f) = read_str(src, ReadOptions::default()).unwrap();
        assert_eq!(f, Format::JepsenLog);
        assert_eq!(h.ops()[1].time, 1);
        assert_eq!(h.ops()[1].kind, OpType::Ok);
    }
}
