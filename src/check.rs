//! `faultline check FILE`: read a history in any supported format and check
//! it for linearizability.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use faultline_checker::{check, Budget, LinReport, ModelKind};
use faultline_history::{read_file, Format, ReadOptions};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Models on the command line (`auto` picks from the ops' functions).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelArg {
    /// kv if the history uses get/put/append, cas-register if it uses cas,
    /// register otherwise.
    Auto,
    /// Read/write register per key.
    Register,
    /// Read/write/compare-and-set register per key.
    CasRegister,
    /// String key-value store with get/put/append (Porcupine's kv).
    Kv,
}

/// Formats on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// Detect from the content.
    Auto,
    /// faultline JSON lines.
    Jsonl,
    /// Jepsen EDN history (history.edn).
    Edn,
    /// Jepsen console log (as in Porcupine's etcd data).
    JepsenLog,
    /// Porcupine's kv format.
    PorcupineKv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Auto => Format::Auto,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Edn => Format::Edn,
            FormatArg::JepsenLog => Format::JepsenLog,
            FormatArg::PorcupineKv => Format::PorcupineKv,
        }
    }
}

/// Arguments of `faultline check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history file.
    pub file: String,
    /// The sequential model to check against.
    #[arg(long, value_enum, default_value = "auto")]
    pub model: ModelArg,
    /// The history format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Values are jepsen.independent [key value] pairs (detected when
    /// unambiguous).
    #[arg(long)]
    pub independent: bool,
    /// Print the verdict as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Give up after SECS seconds and answer unknown (exit 3).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Threads for the per-key searches (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Also write an HTML report of the history and verdict to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// Search without the sound reductions (crashed ops placed just in
    /// time, commuting reads, pruning of unobserved crashed writes): the
    /// same verdict, found more slowly; for comparisons and as a
    /// cross-check.
    #[arg(long)]
    pub no_reductions: bool,
}

/// Cache memory one key's search may use before it gives up as unknown
/// (approximate: heap data inside states is not counted).
pub const SEARCH_MEMORY_BYTES: usize = 2 << 30;

/// Parses a positive number of seconds.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v.is_finite() && v < 1e9) {
        return Err(format!("{s:?} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[derive(Serialize)]
struct JsonVerdict<'a> {
    file: &'a str,
    format: &'a str,
    elapsed_ms: f64,
    #[serde(flatten)]
    report: &'a LinReport,
}

/// Nemesis intervals of a Jepsen history: a `start` op opens one, a `stop`
/// op closes it.
fn nemesis_spans(h: &faultline_history::History) -> Vec<faultline_reports::Span> {
    let mut spans: Vec<faultline_reports::Span> = Vec::new();
    for op in h.ops().iter().filter(|o| !o.process.is_client()) {
        let f = op.f.name();
        if f.contains("stop") {
            for s in spans.iter_mut().filter(|s| s.end_ns.is_none()) {
                s.end_ns = Some(op.time);
            }
        } else if f.contains("start") && !spans.iter().any(|s| s.end_ns.is_none()) {
            spans.push(faultline_reports::Span {
                start_ns: op.time,
                end_ns: None,
                label: format!("nemesis {} {}", f, op.value),
            });
        }
    }
    spans
}

fn html_report(file: &str, h: &faultline_history::History, r: &LinReport) -> String {
    let mut ops = Vec::new();
    for w in &r.anomalies {
        for op in std::iter::once(&w.op).chain(w.concurrent.iter().map(|c| &c.op)) {
            ops.push(op.invoke_index);
            ops.extend(op.complete_index);
        }
    }
    let check = faultline_checker::CheckOutcome {
        name: "linearizable".into(),
        result: r.result,
        summary: format!(
            "{} model: {} ops over {} keys, {} states explored",
            r.model, r.ops, r.keys, r.states_explored
        ),
        anomalies: r
            .anomalies
            .iter()
            .map(|w| w.render(10))
            .chain(
                r.unknown
                    .iter()
                    .map(|u| format!("key {:?}: {}", u.key, u.reason)),
            )
            .collect(),
        ops,
    };
    let checks = [check];
    let page = faultline_reports::RunPage {
        title: file.to_string(),
        result: r.result,
        reproduce: Some(format!("faultline check {file} --model {}", r.model)),
        checks: &checks,
        history: h,
        faults: nemesis_spans(h),
        leaders: Vec::new(),
        facts: vec![("operations".into(), h.pairs().count().to_string())],
        config_json: None,
        messages_per_second: Vec::new(),
    };
    faultline_reports::run_page(&page)
}

/// Runs the command; returns the exit code, or an error for bad input.
pub fn run(a: CheckArgs) -> anyhow::Result<u8> {
    let start = Instant::now();
    let opts = ReadOptions {
        format: a.format.into(),
        independent: a.independent.then_some(true),
    };
    let (history, format) = read_file(&a.file, opts)?;
    let kind = match a.model {
        ModelArg::Auto => ModelKind::detect(&history),
        ModelArg::Register => ModelKind::Register,
        ModelArg::CasRegister => ModelKind::CasRegister,
        ModelArg::Kv => ModelKind::Kv,
    };
    let budget = Budget {
        deadline: a.timeout.map(|t| start + t),
        max_steps: None,
        max_bytes: Some(SEARCH_MEMORY_BYTES),
        no_reductions: a.no_reductions,
        no_certificates: false,
    };
    let report = check(&history, kind, &budget, a.jobs).with_context(|| a.file.clone())?;
    let elapsed = start.elapsed();
    if let Some(path) = &a.html {
        let page = html_report(&a.file, &history, &report);
        faultline_bench::output::write(std::path::Path::new(path), page.as_bytes())?;
    }
    if a.json {
        let v = JsonVerdict {
            file: &a.file,
            format: format.name(),
            elapsed_ms: elapsed.as_secs_f64() * 1e3,
            report: &report,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}: {}", a.file, report.render(10));
        println!("checked in {:.1} ms", elapsed.as_secs_f64() * 1e3);
    }
    Ok(report.result.exit_code() as u8)
}
