//! `faultline check FILE`: read a history in any supported format and check
//! it for linearizability.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use faultline_checker::{check_from, Budget, LinReport, ModelKind, RegisterOptions};
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
    /// Jepsen log: jepsen.log or the console (as in Porcupine's etcd data).
    JepsenLog,
    /// Jepsen's history.txt (tab-separated process, type, f, value).
    HistoryTxt,
    /// A JSON array of op objects (as elle-cli ships them).
    Json,
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
            FormatArg::HistoryTxt => Format::HistoryTxt,
            FormatArg::Json => Format::Json,
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
    /// Every register starts at this value (an EDN value: `0`, `nil`,
    /// `"a"`) instead of nil, as Jepsen's `(model/cas-register 0)`; for
    /// the register and cas-register models.
    #[arg(long, value_name = "VALUE", value_parser = parse_initial)]
    pub initial: Option<faultline_history::Value>,
    /// Read an ok read of nil as Knossos does: it constrains nothing (as if
    /// its result were unknown). By default it says the register held nil.
    #[arg(long)]
    pub knossos_nil_reads: bool,
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

/// Parses one EDN value (`--initial`).
pub fn parse_initial(s: &str) -> Result<faultline_history::Value, String> {
    use faultline_history::edn::Reader;
    let mut r = Reader::new(s);
    let form = r
        .next_form()
        .map_err(|e| format!("{s:?} is not an EDN value: {}", e.message))?;
    let Some((_, v)) = form else {
        return Err("an initial value is required (e.g. 0 or nil)".into());
    };
    if !matches!(r.next_form(), Ok(None)) {
        return Err(format!("{s:?} is more than one value"));
    }
    Ok(faultline_history::edn::to_value(&v))
}

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
    /// Invocations by a process after an `info` had retired it.
    reinvoked_after_info: usize,
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

/// The note on processes that invoked again after an `info`.
fn reinvoke_note(n: usize) -> String {
    format!(
        "{n} ops were invoked by a process after an :info had retired it: accepted, as Knossos does (each :info op stays open to the end, a new op follows)"
    )
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
        facts: {
            let mut f = vec![("operations".into(), h.pairs().count().to_string())];
            if h.reinvoked_after_info() > 0 {
                f.push(("note".into(), reinvoke_note(h.reinvoked_after_info())));
            }
            f
        },
        config_json: None,
        messages_per_second: Vec::new(),
        phases: Vec::new(),
        band_from_ns: None,
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
    if (a.initial.is_some() || a.knossos_nil_reads) && kind == ModelKind::Kv {
        anyhow::bail!(
            "--initial and --knossos-nil-reads apply to the register and cas-register models, not kv"
        );
    }
    let opts = RegisterOptions {
        initial: a.initial.clone(),
        nil_reads_unknown: a.knossos_nil_reads,
    };
    let report =
        check_from(&history, kind, &opts, &budget, a.jobs).with_context(|| a.file.clone())?;
    let reinvoked = history.reinvoked_after_info();
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
            reinvoked_after_info: reinvoked,
            report: &report,
        };
        crate::stdout(format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        let mut text = format!("{}: {}", a.file, report.render(10));
        if reinvoked > 0 {
            text.push_str(&reinvoke_note(reinvoked));
            text.push('\n');
        }
        text.push_str(&format!(
            "checked in {:.1} ms\n",
            elapsed.as_secs_f64() * 1e3
        ));
        crate::stdout(&text)?;
    }
    Ok(report.result.exit_code() as u8)
}
