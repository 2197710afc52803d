//! Jepsen's text forms of a history: its log (`jepsen.log`, or the
//! console, as in Porcupine's etcd data) and its `history.txt`.
//!
//! ```text
//! INFO  jepsen.util - 3  :invoke  :cas  [0 4]
//! 2024-03-01 10:00:00,123{GMT}\tINFO\t[jepsen worker 3] jepsen.util: 3\t:fail\t:read\tnil\t:timed-out
//! INFO\t[jepsen worker 3] jepsen.util: 3\t:ok\t:read\t4
//! ```
//!
//! A log's op lines carry `jepsen.util - ` (the old layout) or
//! `jepsen.util: ` (current Jepsen's `%d{ISO8601}{GMT}\t%p\t[%t] %c: %m`
//! and console `%p\t[%t] %c: %m`) before `<process> :<type> :<f> <value>
//! [<error>]` (tabs or spaces); other log lines are skipped. `history.txt`
//! has one such op per line and nothing else. A keyword alone in a
//! completion's value position (`:timed-out`) is taken as the op's error,
//! not its value.

use crate::edn::{self, Edn};
use crate::{Fun, Op, OpType, ParseError, Process};

/// What precedes an op in a log line, in each layout.
const MARKERS: [&str; 2] = ["jepsen.util - ", "jepsen.util: "];

/// Whether a line of text is an op line of a Jepsen log.
pub fn is_log_line(line: &str) -> bool {
    MARKERS.iter().any(|m| line.contains(m))
}

/// Reads the op lines of a Jepsen log, with their line numbers.
pub fn read_ops(src: &str) -> Result<Vec<(usize, Op)>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let Some(rest) = MARKERS
            .iter()
            .find_map(|m| line.find(m).map(|at| &line[at + m.len()..]))
        else {
            continue;
        };
        // jepsen.util also logs messages that are not ops ("Relative time
        // begins now"): an op line has a keyword (its type) second.
        if !rest
            .split_whitespace()
            .nth(1)
            .is_some_and(|t| t.starts_with(':'))
        {
            continue;
        }
        let op = parse_line(rest).map_err(|m| ParseError::at(i + 1, m))?;
        out.push((i + 1, op));
    }
    Ok(out)
}

/// Whether a line looks like one of `history.txt`'s: tab-separated
/// process, `:type` and `:f`.
pub fn is_txt_line(line: &str) -> bool {
    let mut f = line.split('\t');
    let process = f.next().unwrap_or("");
    let kind = f.next().unwrap_or("");
    let fun = f.next().unwrap_or("");
    let process_ok = process.parse::<u64>().is_ok() || process.starts_with(':');
    process_ok && kind.strip_prefix(':').and_then(OpType::parse).is_some() && fun.starts_with(':')
}

/// Reads Jepsen's `history.txt`: one op per non-blank line.
pub fn read_txt(src: &str) -> Result<Vec<(usize, Op)>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let op = parse_line(line).map_err(|m| ParseError::at(i + 1, m))?;
        out.push((i + 1, op));
    }
    Ok(out)
}

fn parse_line(rest: &str) -> Result<Op, String> {
    let mut fields = rest.trim_start().splitn(2, char::is_whitespace);
    let proc_tok = fields.next().unwrap_or("");
    let rest = fields.next().unwrap_or("").trim_start();
    let mut fields = rest.splitn(2, char::is_whitespace);
    let type_tok = fields.next().unwrap_or("");
    let rest = fields.next().unwrap_or("").trim_start();
    let mut fields = rest.splitn(2, char::is_whitespace);
    let f_tok = fields.next().unwrap_or("");
    let value_text = fields.next().unwrap_or("").trim();

    let quoted = proc_tok
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .filter(|n| !n.is_empty());
    let process = if let Ok(p) = proc_tok.parse::<u64>() {
        Process::Client(p)
    } else if let Some(n) = proc_tok.strip_prefix(':').filter(|n| !n.is_empty()) {
        Process::Named(n.to_string())
    } else if let Some(n) = quoted {
        Process::Named(n.to_string())
    } else {
        return Err(format!("bad process {proc_tok:?} in log line"));
    };
    let kind = type_tok
        .strip_prefix(':')
        .and_then(OpType::parse)
        .ok_or_else(|| format!("unknown op type {type_tok:?}"))?;
    let f = f_tok
        .strip_prefix(':')
        .filter(|f| !f.is_empty())
        .ok_or_else(|| format!("bad function {f_tok:?}"))?;
    let mut op = Op::new(kind, process, Fun::parse(f), crate::Value::Nil);
    if value_text.is_empty() {
        return Ok(op);
    }
    let mut r = edn::Reader::new(value_text);
    let bad = |e: ParseError| format!("bad value {value_text:?}: {}", e.message);
    let (_, v) = r
        .next_form()
        .map_err(bad)?
        .ok_or_else(|| format!("bad value {value_text:?}"))?;
    // Jepsen prints an op's error after its value.
    let error = r.next_form().map_err(bad)?.map(|(_, e)| e);
    if r.next_form().map_err(bad)?.is_some() {
        return Err(format!(
            "trailing text after value and error {value_text:?}"
        ));
    }
    match (v, error) {
        (Edn::Keyword(k), None) if kind != OpType::Invoke => op.error = Some(k),
        (v, e) => {
            op.value = edn::to_value(&v);
            op.error = e.map(|e| match e {
                Edn::Keyword(k) | Edn::Str(k) => k,
                other => other.to_string(),
            });
        }
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn reads_tab_and_space_separated_lines() {
        let src = "INFO  jepsen.util - 3\t:invoke\t:cas\t[0 4]\n\
                   some other log line\n\
                   INFO  jepsen.util - 3   :fail   :cas    [0 4]\n\
                   INFO  jepsen.util - 1\t:fail\t:read\t:timed-out\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n";
        let ops = read_ops(src).unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].1.value, Value::pair(0.into(), 4.into()));
        assert_eq!(ops[1].0, 3);
        assert_eq!(ops[1].1.kind, OpType::Fail);
        assert_eq!(ops[2].1.error.as_deref(), Some("timed-out"));
        assert_eq!(ops[2].1.value, Value::Nil);
        assert_eq!(ops[3].1.process, Process::Named("nemesis".into()));
    }

    #[test]
    fn reads_current_jepsen_layouts_with_errors_after_values() {
        let src = "2024-03-01 10:00:00,120{GMT}\tINFO\t[main] jepsen.util: Relative time begins now\n\
                   2024-03-01 10:00:00,123{GMT}\tINFO\t[jepsen worker 3] jepsen.util: 3\t:invoke\t:read\tnil\n\
                   INFO\t[jepsen worker 3] jepsen.util: 3\t:fail\t:read\tnil\t:timed-out\n\
                   INFO\t[jepsen worker 0] jepsen.util: \"p0\"\t:info\t:write\t3\t[:socket \"closed\"]\n";
        let ops = read_ops(src).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].0, 2);
        assert_eq!(ops[1].1.error.as_deref(), Some("timed-out"));
        assert_eq!(ops[1].1.value, Value::Nil);
        assert_eq!(ops[2].1.process, Process::Named("p0".into()));
        assert_eq!(ops[2].1.value, Value::Int(3));
        assert_eq!(ops[2].1.error.as_deref(), Some("[:socket \"closed\"]"));
    }

    #[test]
    fn reads_history_txt() {
        let src = "0\t:invoke\t:write\t3\n\
                   0\t:ok\t:write\t3\n\
                   :nemesis\t:info\t:start\tnil\n\
                   \n\
                   1\t:invoke\t:cas\t[3 4]\n\
                   1\t:fail\t:cas\t[3 4]\t:mismatch\n";
        assert!(src.lines().all(|l| l.is_empty() || is_txt_line(l)));
        let ops = read_txt(src).unwrap();
        assert_eq!(ops.len(), 5);
        assert_eq!(ops[4].0, 6);
        assert_eq!(ops[4].1.error.as_deref(), Some("mismatch"));
        assert_eq!(ops[4].1.value, Value::pair(3.into(), 4.into()));
        assert!(!is_txt_line("INFO  jepsen.util - 3\t:invoke\t:cas\t[0 4]"));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = read_ops("x\nINFO  jepsen.util - 3\t:bogus\t:read\tnil").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown op type"), "{}", e.message);
        let e = read_ops("INFO  jepsen.util - 3\t:invoke\t:cas\t[0 4").unwrap_err();
        assert!(e.message.contains("bad value"), "{}", e.message);
        let e = read_ops("INFO  jepsen.util - x\t:invoke\t:read\tnil").unwrap_err();
        assert!(e.message.contains("bad process"), "{}", e.message);
    }
}
