//! faultline's own history format: JSON lines, one op per line.
//!
//! ```text
//! {"index":0,"type":"invoke","process":0,"f":"cas","key":3,"value":[1,2],"time":1000}
//! {"index":1,"type":"ok","process":0,"f":"cas","key":3,"value":[1,2],"time":2500,"zxid":4294967298,"node":2,"session":1}
//! ```
//!
//! Fields: `type` (invoke/ok/fail/info), `process` (integer, or a name such
//! as "nemesis"), `f`, `value` (null, bool, integer, string or array), and
//! optionally `key` (`null` means none), `time` (ns), `error`, `zxid`, `node`,
//! `session` (the client session, which several processes may share). `index` is written
//! for readers' convenience and ignored on input (the line order is the
//! history order). Blank lines are skipped; unknown fields are ignored.

use crate::{Op, ParseError};
use serde::Serialize;

/// Reads JSON-lines ops, each with its 1-based line number.
pub fn read_ops(src: &str) -> Result<Vec<(usize, Op)>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let op: Op = serde_json::from_str(t).map_err(|e| {
            // serde_json appends "at line 1 column N"; the column is useful,
            // the line is ours to give.
            let msg = e.to_string();
            let msg = msg
                .rsplit_once(" at line ")
                .map(|(m, pos)| match pos.split_once(" column ") {
                    Some((_, col)) => format!("{m} (column {col})"),
                    None => m.to_string(),
                })
                .unwrap_or(msg);
            ParseError::at(i + 1, msg)
        })?;
        out.push((i + 1, op));
    }
    Ok(out)
}

/// Reads a JSON array of op objects (as elle-cli ships histories), each
/// op with the line its object starts on.
pub fn read_array(src: &str) -> Result<Vec<(usize, Op)>, ParseError> {
    let values: Vec<serde_json::Value> = serde_json::from_str(src).map_err(|e| {
        ParseError::at(
            e.line(),
            format!("not a JSON array of ops: {}", strip_position(&e)),
        )
    })?;
    let starts = object_lines(src);
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let line = starts.get(i).copied().unwrap_or(0);
            serde_json::from_value::<Op>(v)
                .map(|op| (line, op))
                .map_err(|e| ParseError::at(line, format!("op {i}: {e}")))
        })
        .collect()
}

/// serde_json's message without its "at line L column C" (we give lines).
fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    msg.rsplit_once(" at line ")
        .map_or(msg.clone(), |(m, _)| m.to_string())
}

/// The line each top-level object of a JSON array starts on (depth 1 `{`
/// outside strings).
fn object_lines(src: &str) -> Vec<usize> {
    let (mut depth, mut line, mut in_str, mut escaped) = (0usize, 1usize, false, false);
    let mut out = Vec::new();
    for c in src.chars() {
        match c {
            '\n' => line += 1,
            _ if in_str => match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            },
            '"' => in_str = true,
            '[' | '{' => {
                if c == '{' && depth == 1 {
                    out.push(line);
                }
                depth += 1;
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

#[derive(Serialize)]
struct Line<'a> {
    index: usize,
    #[serde(flatten)]
    op: &'a Op,
}

/// Writes ops as JSON lines, each with its `index`.
pub fn write_ops<'a>(
    out: &mut impl std::io::Write,
    ops: impl IntoIterator<Item = &'a Op>,
) -> std::io::Result<()> {
    for (index, op) in ops.into_iter().enumerate() {
        serde_json::to_writer(&mut *out, &Line { index, op })?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fun, OpType, Process, Value};

    #[test]
    fn round_trip() {
        let mut a = Op::new(
            OpType::Invoke,
            Process::Client(1),
            Fun::Cas,
            Value::pair(1.into(), 2.into()),
        );
        a.key = Some(Value::Str("k".into()));
        a.time = 5;
        let mut b = a.clone();
        b.kind = OpType::Ok;
        b.zxid = Some(1 << 32 | 7);
        b.node = Some(3);
        b.session = Some(2);
        let n = Op::new(
            OpType::Info,
            Process::Named("nemesis".into()),
            Fun::Other("partition-halves".into()),
            Value::Nil,
        );
        let ops = vec![a, b, n];
        let mut buf = Vec::new();
        write_ops(&mut buf, &ops).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with(r#"{"index":0,"type":"invoke","process":1,"f":"cas","key":"k","value":[1,2],"time":5}"#), "{text}");
        let back: Vec<Op> = read_ops(&text)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(back, ops);
    }

    #[test]
    fn errors_name_line_and_cause() {
        let e = read_ops("\n{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"}\n{\"type\":\"done\",\"process\":0,\"f\":\"read\"}").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.message.contains("unknown variant `done`"),
            "{}",
            e.message
        );
        let e = read_ops("{\"type\":\"invoke\",\"process\":0,\"f\":\"re").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("EOF"), "{}", e.message);
        let e = read_ops("{\"type\":\"invoke\",\"process\":-1,\"f\":\"read\"}").unwrap_err();
        assert!(e.message.contains("negative process"), "{}", e.message);
        let e = read_ops("{\"process\":0,\"f\":\"read\"}").unwrap_err();
        assert!(e.message.contains("missing field `type`"), "{}", e.message);
    }
}
