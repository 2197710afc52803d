//! Self-contained HTML reports: one page per bench run, one per campaign,
//! and one for a history checked with `faultline check --html`. Each page is
//! a single file with its SVG plots and styles inlined, usable offline.
//!
//! A run page shows the verdict first, then every check with its anomalies,
//! the reproduce command, the operation timeline (faults shaded, the leader
//! of each epoch in its own lane, the witness operations of a violation
//! outlined, details on hover), latency and throughput over time, and the
//! configuration and fault schedule. Large runs stay usable: the timeline is
//! cut into windows of at most [`WINDOW_OPS`] operations, and operations
//! that share a pixel in a lane are drawn once.
//!
//! This crate never sees turmoil or the node: the runner hands it plain
//! data.

pub use campaign::{campaign_page, CampaignInfo, CampaignRow};
mod campaign;
mod lanes;
pub mod plots;
mod sessions;
#[cfg(test)]
mod test_ops;
pub mod timeline;

use faultline_checker::CheckOutcome;
use faultline_checker::Validity;
use faultline_history::History;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Operations per timeline window.
pub const WINDOW_OPS: usize = 10_000;

/// A fault interval on the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Start (simulated ns).
    pub start_ns: u64,
    /// End, if it was repaired.
    pub end_ns: Option<u64>,
    /// What it was.
    pub label: String,
}

/// An interval during which a server led an established epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderSpan {
    /// Start (simulated ns).
    pub start_ns: u64,
    /// End, if it stopped leading before the run ended.
    pub end_ns: Option<u64>,
    /// The leader.
    pub sid: u64,
    /// The epoch.
    pub epoch: u64,
}

/// Everything a run page shows.
pub struct RunPage<'a> {
    /// Page title, e.g. `seed 40`.
    pub title: String,
    /// The verdict.
    pub result: Validity,
    /// Command that replays the run, if it failed.
    pub reproduce: Option<String>,
    /// The checks.
    pub checks: &'a [CheckOutcome],
    /// The history.
    pub history: &'a History,
    /// Faults, in time order.
    pub faults: Vec<Span>,
    /// Leaders, in time order.
    pub leaders: Vec<LeaderSpan>,
    /// Extra facts as (name, value) rows: seed, ops, latencies, ...
    pub facts: Vec<(String, String)>,
    /// The configuration, as pretty JSON.
    pub config_json: Option<String>,
    /// Protocol messages sent by the servers per simulated second (empty
    /// for external histories).
    pub messages_per_second: Vec<(u64, u64)>,
    /// When each phase of the run began (ns) and its name (empty for
    /// external histories): marked on the timeline.
    pub phases: Vec<(u64, String)>,
    /// Sessions and processes that begin at or after this time (the
    /// final reads) get lanes in a band of their own, below the others.
    pub band_from_ns: Option<u64>,
}

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1180px}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}\
.verdict{font-size:1.3em;font-weight:bold;padding:.5em .8em;border-radius:4px;display:inline-block}\
.valid{background:#e8f5e9;color:#1b5e20}.invalid{background:#ffebee;color:#b71c1c}.unknown{background:#fff8e1;color:#8d6e00}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;font-size:.92em}\
code,pre{background:#f5f5f5;padding:.1em .3em}pre{padding:.6em;overflow:auto;max-height:28em}\
.anomaly{font-family:monospace;font-size:.88em;white-space:pre-wrap}svg{max-width:100%;height:auto}\
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

fn verdict_line(result: Validity, what: &str) -> String {
    let word = match result {
        Validity::Valid => "VALID",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "UNKNOWN",
    };
    format!("<p class=\"verdict {result}\">{word}: {}</p>\n", esc(what))
}

fn checks_table(checks: &[CheckOutcome]) -> String {
    let mut s = String::from(
        "<table><tr><th>check</th><th>result</th><th>what it checked</th><th>anomalies</th></tr>\n",
    );
    for c in checks {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>",
            esc(&c.name),
            c.result,
            c.result,
            esc(&c.summary)
        );
        for a in &c.anomalies {
            let _ = write!(s, "<div class=\"anomaly\">{}</div>", esc(a));
        }
        if c.result != Validity::Valid && !c.ops.is_empty() {
            s.push_str("<a href=\"#violation\">show on the timeline</a>");
        }
        s.push_str("</td></tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// Time windows of the timeline, each holding at most [`WINDOW_OPS`]
/// invocations.
fn windows(h: &History) -> Vec<(u64, u64)> {
    let times: Vec<u64> = h
        .ops()
        .iter()
        .filter(|o| o.process.is_client() && o.kind == faultline_history::OpType::Invoke)
        .map(|o| o.time)
        .collect();
    let end = h.ops().iter().map(|o| o.time).max().unwrap_or(0) + 1;
    if times.len() <= WINDOW_OPS {
        return vec![(0, end)];
    }
    let mut w = Vec::new();
    let mut start = 0;
    for chunk in times.chunks(WINDOW_OPS).skip(1) {
        w.push((start, chunk[0]));
        start = chunk[0];
    }
    w.push((start, end));
    w
}

/// Renders a run page.
pub fn run_page(p: &RunPage) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "<h1>faultline: {}</h1>", esc(&p.title));
    let failed: Vec<&str> = p
        .checks
        .iter()
        .filter(|c| c.result != Validity::Valid)
        .map(|c| c.name.as_str())
        .collect();
    let what = if failed.is_empty() {
        format!("all {} checks passed", p.checks.len())
    } else {
        format!("failed: {}", failed.join(", "))
    };
    b.push_str(&verdict_line(p.result, &what));
    if let Some(r) = &p.reproduce {
        let _ = writeln!(b, "<p>reproduce: <code>{}</code></p>", esc(r));
    }
    b.push_str("<h2>Checks</h2>\n");
    b.push_str(&checks_table(p.checks));
    if !p.facts.is_empty() {
        b.push_str("<h2>Run</h2>\n<table>");
        for (k, v) in &p.facts {
            let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        b.push_str("</table>\n");
    }
    let highlight: BTreeSet<usize> = p
        .checks
        .iter()
        .flat_map(|c| c.ops.iter().copied())
        .collect();
    b.push_str("<h2>Timeline</h2>\n");
    b.push_str(&legend(p, &highlight));
    let axis = timelines(&mut b, p, &highlight);
    if axis == plots::Axis::Seconds {
        b.push_str("<h2>Latency</h2>\n");
        b.push_str(&plots::latency(p.history));
        b.push_str("<h2>Throughput and availability</h2>\n");
        b.push_str(&plots::throughput(p.history));
        if !p.messages_per_second.is_empty() {
            b.push_str("<h2>Messages per operation</h2>\n");
            b.push_str(&plots::messages_per_op(p.history, &p.messages_per_second));
        }
    }
    if !p.faults.is_empty() {
        b.push_str("<h2>Fault schedule</h2>\n<table><tr><th>start (s)</th><th>end (s)</th><th>fault</th></tr>");
        for f in &p.faults {
            let _ = write!(
                b,
                "<tr><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                f.start_ns as f64 / 1e9,
                f.end_ns
                    .map_or("-".into(), |e| format!("{:.3}", e as f64 / 1e9)),
                esc(&f.label)
            );
        }
        b.push_str("</table>\n");
    }
    b.push_str(&sessions::section(p.history));
    if let Some(c) = &p.config_json {
        let _ = writeln!(b, "<h2>Configuration</h2>\n<pre>{}</pre>", esc(c));
    }
    page(&p.title, &b)
}

/// The timeline's legend: only what the timeline shows.
fn legend(p: &RunPage, highlight: &BTreeSet<usize>) -> String {
    let outcomes: BTreeSet<faultline_history::OpType> =
        p.history.pairs().map(|x| x.outcome()).collect();
    let entries = [
        (
            outcomes.contains(&faultline_history::OpType::Ok),
            "background:#2e7d32",
            "ok",
        ),
        (
            outcomes.contains(&faultline_history::OpType::Fail),
            "background:#c62828",
            "fail",
        ),
        (
            outcomes.contains(&faultline_history::OpType::Info),
            "background:#ef6c00",
            "info (unknown)",
        ),
        (!p.faults.is_empty(), "background:#fff3c4", "fault"),
        (
            !p.leaders.is_empty(),
            "background:#a7c4e8",
            "leader (top band)",
        ),
        (
            !highlight.is_empty(),
            "border:2px solid #6a1b9a",
            "operations of a violation, marked &#9660; above the lanes",
        ),
    ];
    let mut s = String::from("<p class=\"legend\">");
    for (shown, style, what) in entries {
        if shown {
            let _ = write!(s, "<span style=\"{style}\"></span>{what}");
        }
    }
    s.push_str(". Hover for details.</p>\n");
    s
}

/// The run's timeline, one plot per window of ops (folded but the first
/// when there are several); returns the axis the history's times use.
fn timelines(b: &mut String, p: &RunPage, highlight: &BTreeSet<usize>) -> plots::Axis {
    let ws = windows(p.history);
    // Histories without times carry their positions as times.
    let max_time = p.history.ops().iter().map(|o| o.time).max().unwrap_or(0);
    let axis = if max_time < p.history.len() as u64 {
        plots::Axis::Positions
    } else {
        plots::Axis::Seconds
    };
    // The window of the first op of a violation: marked, and open.
    let first_marked = highlight
        .iter()
        .next()
        .and_then(|&i| p.history.ops().get(i))
        .map(|o| o.time);
    let marked = first_marked.map(|t| {
        ws.iter()
            .position(|w| t < w.1)
            .unwrap_or(ws.len().saturating_sub(1))
    });
    for (i, w) in ws.iter().enumerate() {
        if marked == Some(i) {
            b.push_str("<div id=\"violation\">\n");
        }
        if ws.len() > 1 {
            let _ = writeln!(
                b,
                "<details{}><summary>window {} of {}: {:.2} s to {:.2} s</summary>",
                if i == 0 || marked == Some(i) {
                    " open"
                } else {
                    ""
                },
                i + 1,
                ws.len(),
                w.0 as f64 / 1e9,
                w.1 as f64 / 1e9
            );
        }
        let marks = timeline::Marks {
            highlight,
            phases: &p.phases,
            band_from_ns: p.band_from_ns,
        };
        b.push_str(&timeline::timeline(
            p.history, &p.faults, &p.leaders, &marks, *w, axis,
        ));
        if ws.len() > 1 {
            b.push_str("</details>\n");
        }
        if marked == Some(i) {
            b.push_str("</div>\n");
        }
    }
    axis
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_history::{Fun, Op, OpType, Process, Value};

    fn history() -> History {
        let mut ops = Vec::new();
        for (i, (p, kind, v)) in [
            (0, OpType::Invoke, 1),
            (1, OpType::Invoke, 0),
            (0, OpType::Ok, 1),
            (1, OpType::Ok, 7),
            (2, OpType::Invoke, 2),
            (2, OpType::Info, 2),
        ]
        .into_iter()
        .enumerate()
        {
            let f = if p == 1 { Fun::Read } else { Fun::Write };
            let value = if p == 1 && kind == OpType::Invoke {
                Value::Nil
            } else {
                Value::Int(v)
            };
            let mut op = Op::new(kind, Process::Client(p), f, value);
            op.key = Some(Value::Int(0));
            op.time = (i as u64 + 1) * 100_000_000;
            ops.push(op);
        }
        History::new(ops).unwrap()
    }

    fn check(name: &str, result: Validity, anomalies: &[&str], ops: Vec<usize>) -> CheckOutcome {
        CheckOutcome {
            name: name.into(),
            result,
            summary: format!("what {name} checks"),
            anomalies: anomalies.iter().map(|s| s.to_string()).collect(),
            ops,
        }
    }

    fn page_for(checks: &[CheckOutcome], result: Validity) -> String {
        let h = history();
        run_page(&RunPage {
            title: "seed 9".into(),
            result,
            reproduce: (result != Validity::Valid)
                .then(|| "cargo run --release -- bench --seed 9".into()),
            checks,
            history: &h,
            faults: vec![Span {
                start_ns: 150_000_000,
                end_ns: Some(350_000_000),
                label: "isolated leader 3".into(),
            }],
            phases: vec![(0, "warm-up".into()), (100_000_000, "chaos".into())],
            band_from_ns: None,
            leaders: vec![LeaderSpan {
                start_ns: 0,
                end_ns: None,
                sid: 3,
                epoch: 2,
            }],
            facts: vec![("ops invoked".into(), "3".into())],
            config_json: Some("{\"seed\": 9}".into()),
            messages_per_second: vec![(0, 40)],
        })
    }

    #[test]
    fn a_valid_run_page_shows_its_verdict_checks_and_ops() {
        let checks = [
            check("linearizable", Validity::Valid, &[], vec![]),
            check("durability", Validity::Valid, &[], vec![]),
        ];
        let html = page_for(&checks, Validity::Valid);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("VALID: all 2 checks passed"));
        assert!(html.contains(">linearizable<") && html.contains(">durability<"));
        assert!(
            html.contains("<title>#0 p0 write k0 1 ok"),
            "hover details per op"
        );
        assert!(html.contains("isolated leader 3"), "the fault is labelled");
        assert!(html.contains("server 3 leads epoch 2"), "the leader lane");
        assert!(!html.contains("class=\"w\""), "nothing to highlight");
        assert!(!html.contains("reproduce:"));
        assert_eq!(
            html.matches("<svg").count() - html.matches("<svg y=").count(),
            4,
            "timeline, latency, throughput, messages per op"
        );
    }

    #[test]
    fn an_invalid_run_page_highlights_the_witness() {
        let checks = [
            check("linearizable", Validity::Valid, &[], vec![]),
            check(
                "read-guarantees",
                Validity::Invalid,
                &["op 3: process 1 read key 0 = 7 <stale>"],
                vec![1, 3],
            ),
        ];
        let html = page_for(&checks, Validity::Invalid);
        assert!(html.contains("INVALID: failed: read-guarantees"));
        assert!(html.contains("reproduce: <code>cargo run --release -- bench --seed 9</code>"));
        assert!(
            html.contains("op 3: process 1 read key 0 = 7 &lt;stale&gt;"),
            "anomalies escaped"
        );
        assert_eq!(
            html.matches("<rect class=\"w\"").count(),
            1,
            "the offending read is outlined"
        );
        assert!(html.contains("<rect class=\"w\" x=") && html.contains("#1 p1 read k0 ok 7"));
        // A marker on the timeline, and a link from the anomaly to it.
        assert_eq!(html.matches("<path class=\"mark\"").count(), 1);
        assert!(html.contains("<title>violation: op #1</title>"));
        assert!(html.contains("<a href=\"#violation\">show on the timeline</a>"));
        assert!(html.contains("<div id=\"violation\">"));
        // A check that names an op by its completion marks it too.
        let by_completion = [check("durability", Validity::Invalid, &["lost"], vec![3])];
        let html = page_for(&by_completion, Validity::Invalid);
        assert!(
            html.contains("<title>violation: op #1</title>"),
            "marked by its ack"
        );
        let valid = page_for(&checks[..1], Validity::Valid);
        assert!(!valid.contains("id=\"violation\"") && !valid.contains("class=\"mark\""));
        assert!(
            !valid.contains("operations of a violation"),
            "the legend lists only what shows"
        );
        assert!(html.contains("operations of a violation"));
    }

    #[test]
    fn large_runs_are_cut_into_windows() {
        let mut ops = Vec::new();
        for i in 0..(WINDOW_OPS as u64 * 2 + 10) {
            let mut a = Op::new(
                OpType::Invoke,
                Process::Client(i % 7),
                Fun::Write,
                Value::Int(i as i64),
            );
            a.time = i * 2_000_000;
            let mut b = a.clone();
            b.kind = OpType::Ok;
            b.time += 1_000_000;
            ops.push(a);
            ops.push(b);
        }
        let h = History::new(ops).unwrap();
        assert_eq!(windows(&h).len(), 3);
        let checks = [check("linearizable", Validity::Valid, &[], vec![])];
        let html = run_page(&RunPage {
            title: "big".into(),
            result: Validity::Valid,
            reproduce: None,
            checks: &checks,
            history: &h,
            faults: vec![],
            leaders: vec![],
            facts: vec![],
            config_json: None,
            messages_per_second: vec![],
            phases: vec![],
            band_from_ns: None,
        });
        assert!(html.contains("window 3 of 3"));
        // One bar per lane and pixel column: far fewer bars than ops.
        let bars = html.matches("<rect class=").count();
        assert!(
            bars < WINDOW_OPS * 2,
            "{bars} bars for {} ops",
            WINDOW_OPS * 2 + 10
        );
    }
}
