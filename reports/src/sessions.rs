//! The run page's sessions section: each client session's lifetime as the
//! history shows it (opened, the ephemeral keys it created, how it ended,
//! and for an expiry the silence before it).

use crate::esc;
use faultline_history::{Fun, History, OpType, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Default)]
struct Life {
    processes: Vec<String>,
    opened_ns: Option<u64>,
    timeout: Option<i64>,
    keys: Vec<String>,
    /// When its client asked to close it (ok).
    closed_ns: Option<u64>,
    /// The first answer saying it had expired.
    expired_ns: Option<u64>,
    /// The last invocation before that answer's request.
    silent_from_ns: Option<u64>,
    last_invoke_ns: Option<u64>,
}

fn secs(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

fn lives(h: &History) -> BTreeMap<u64, Life> {
    let mut out: BTreeMap<u64, Life> = BTreeMap::new();
    for p in h.pairs() {
        let Some(s) = p.invoke.session else { continue };
        let l = out.entry(s).or_default();
        let proc_name = p.invoke.process.to_string();
        if !l.processes.contains(&proc_name) {
            l.processes.push(proc_name);
        }
        let before = l.last_invoke_ns;
        l.last_invoke_ns = Some(p.invoke.time);
        let Some(done) = p.complete else { continue };
        match (&p.invoke.f, done.kind) {
            (Fun::OpenSession, OpType::Ok) => {
                l.opened_ns = Some(done.time);
                if let Value::Int(t) = done.value {
                    l.timeout = Some(t);
                }
            }
            (Fun::CreateEphemeral, OpType::Ok) => {
                if let Some(k) = &p.invoke.key {
                    l.keys.push(k.to_string());
                }
            }
            (Fun::CloseSession, OpType::Ok) => l.closed_ns = Some(done.time),
            _ => {}
        }
        if done.error.as_deref() == Some("session-expired") && l.expired_ns.is_none() {
            l.expired_ns = Some(done.time);
            l.silent_from_ns = before;
        }
    }
    out
}

/// The sessions section, or nothing when the history has no session.
pub fn section(h: &History) -> String {
    let lives = lives(h);
    if lives.values().all(|l| l.opened_ns.is_none()) {
        return String::new();
    }
    let expired = lives.values().filter(|l| l.expired_ns.is_some()).count();
    let mut s = String::new();
    let _ = write!(
        s,
        "<h2>Sessions</h2>\n<details><summary>{} sessions, {expired} seen expired by their clients</summary>\
         <table><tr><th>session</th><th>process</th><th>opened (s)</th><th>timeout (ticks)</th>\
         <th>ephemeral keys it created</th><th>end</th></tr>",
        lives.len()
    );
    for (id, l) in &lives {
        let end = match (l.closed_ns, l.expired_ns) {
            (Some(c), _) => format!("closed by its client at {} s", secs(c)),
            (None, Some(e)) => match l.silent_from_ns {
                Some(f) => format!(
                    "expired: told at {} s; silent from {} s ({:.3} s)",
                    secs(e),
                    secs(f),
                    e.saturating_sub(f) as f64 / 1e9
                ),
                None => format!("expired: told at {} s", secs(e)),
            },
            (None, None) => "open at its client's last op".into(),
        };
        let _ = write!(
            s,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.processes.join(", ")),
            l.opened_ns.map_or("-".into(), secs),
            l.timeout.map_or("-".into(), |t| t.to_string()),
            esc(&l.keys.join(", ")),
            esc(&end)
        );
    }
    s.push_str("</table></details>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_history::{Op, Process};

    fn op(kind: OpType, f: Fun, t_ms: u64, error: Option<&str>) -> Op {
        let mut o = Op::new(kind, Process::Client(3), f, Value::Int(150));
        o.time = t_ms * 1_000_000;
        o.session = Some(4);
        o.error = error.map(str::to_string);
        o
    }

    #[test]
    fn an_expiry_shows_with_the_silence_before_it() {
        let h = History::new(vec![
            op(OpType::Invoke, Fun::OpenSession, 0, None),
            op(OpType::Ok, Fun::OpenSession, 10, None),
            op(OpType::Invoke, Fun::Write, 100, None),
            op(OpType::Ok, Fun::Write, 110, None),
            op(OpType::Invoke, Fun::Write, 2500, None),
            op(OpType::Fail, Fun::Write, 2510, Some("session-expired")),
        ])
        .unwrap();
        let s = section(&h);
        assert!(s.contains("1 sessions, 1 seen expired"), "{s}");
        assert!(
            s.contains("expired: told at 2.510 s; silent from 0.100 s (2.410 s)"),
            "{s}"
        );
        assert!(section(&History::new(vec![]).unwrap()).is_empty());
    }
}
