//! Ops for the renderers' unit tests.

use faultline_history::{Fun, Op, OpType, Process, Value};

/// An op of client `process` (session `process + 1`) on key 1000 at
/// `t_ms`.
pub(crate) fn op(kind: OpType, process: u64, f: Fun, value: i64, t_ms: u64) -> Op {
    let mut o = Op::new(kind, Process::Client(process), f, Value::Int(value));
    o.key = Some(Value::Int(1000));
    o.time = t_ms * 1_000_000;
    o.session = Some(process + 1);
    o
}
