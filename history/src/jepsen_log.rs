//! Jepsen console logs, as in Porcupine's etcd data:
//!
//! ```text
//! INFO  jepsen.util - 3  :invoke  :cas  [0 4]
//! INFO  jepsen.util - 3  :fail  :read  :timed-out
//! ```
//!
//! Each op line is `jepsen.util - <process> :<type> :<f> <value>` (tabs or
//! spaces); other log lines are skipped. A keyword in a completion's value
//! position (`:timed-out`) is taken as the op's error, not its value.

use crate::edn::{self, Edn};
use crate::{Fun, Op, OpType, ParseError, Process};

const MARKER: &str = "jepsen.util - ";

/// Reads the op lines of a Jepsen console log, with their line numbers.
pub fn read_ops(src: &str) -> Result<Vec<(usize, Op)>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        let op = parse_line(&line[at + MARKER.len()..]).map_err(|m| ParseError::at(i + 1, m))?;
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

    let process = if let Ok(p) = proc_tok.parse::<u64>() {
        Process::Client(p)
    } else if let Some(n) = proc_tok.strip_prefix(':').filter(|n| !n.is_empty()) {
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
    let (_, v) = r
        .next_form()
        .map_err(|e| format!("bad value {value_text:?}: {}", e.message))?
        .ok_or_else(|| format!("bad value {value_text:?}"))?;
    if r.next_form().map_err(|e| e.message)?.is_some() {
        return Err(format!("trailing text after value {value_text:?}"));
    }
    match v {
        Edn::Keyword(k) if kind != OpType::Invoke => op.error = Some(k),
        v => op.value = edn::to_value(&v),
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
