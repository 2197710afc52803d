//! `faultline perf`: benchmark figures for the checker. Only figures
//! measured in this run are printed as figures; Porcupine's timings are not
//! measured here, so they appear as a named reference (who measured them,
//! where, when), never as a ratio against ours.
//!
//! Every figure is a median over `--runs` repetitions in this process; parse
//! time is reported apart from check time. Wall-clock time is fine here: this
//! code never runs inside a simulation.

use anyhow::{bail, Context as _};
use clap::Args;
use faultline_checker::synth::{register_history, SynthConfig};
use faultline_checker::{check, Budget, LinReport, ModelKind, Validity};
use faultline_history::{jsonl, read_file, History, ReadOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `faultline perf`.
#[derive(Args, Debug)]
pub struct PerfArgs {
    /// Directory holding Porcupine's data (`jepsen/`, `kv/`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/porcupine"))]
    pub data: PathBuf,
    /// Repetitions of each small benchmark (the median is reported).
    #[arg(long, default_value_t = 11)]
    pub runs: usize,
    /// Invocations in the generated history (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub big_ops: usize,
    /// Keys in the generated history.
    #[arg(long, default_value_t = 1000)]
    pub big_keys: usize,
    /// Concurrent processes in the generated history.
    #[arg(long, default_value_t = 100)]
    pub big_processes: usize,
    /// Invocations in the generated single-key ("hot key") histories (0
    /// skips them).
    #[arg(long, default_value_t = 10_000)]
    pub hot_ops: usize,
    /// Seeds of each hot-key bench campaign (`--keys 1 --clients 50`, and
    /// `--keys 1 --clients 20 --workload strict`) simulated here and
    /// checked with and without the reductions (0 skips them).
    #[arg(long, default_value_t = 3)]
    pub hot_seeds: u64,
    /// Threads for the per-key searches (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Which benchmarks to run.
    #[arg(long, value_enum, default_value = "all")]
    pub suite: Suite,
    /// Seeds of the default campaign run (in this process, one after the
    /// other) for the default-run figures of the node suite.
    #[arg(long, default_value_t = 5)]
    pub run_seeds: u64,
    /// Simulated seconds each node benchmark runs for.
    #[arg(long, default_value_t = 5.0)]
    pub node_seconds: f64,
}

/// Benchmark suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// The checker (Porcupine's corpus and a generated history).
    Checker,
    /// The ZAB node under turmoil: the default run's speed and phases,
    /// and the ensemble's throughput.
    Node,
    /// Both.
    All,
}

fn median(v: Vec<Duration>) -> Duration {
    median_by(v, Ord::cmp)
}

/// The middle value of `v` (the upper one of an even count) in the order
/// `cmp` gives; `v` must not be empty.
pub(crate) fn median_by<T: Copy>(
    mut v: Vec<T>,
    cmp: impl FnMut(&T, &T) -> std::cmp::Ordering,
) -> T {
    v.sort_by(cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn time_check(h: &History, model: ModelKind, runs: usize, jobs: usize) -> (Duration, LinReport) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let r = check(h, model, &Budget::default(), jobs).expect("corpus fits its model");
        times.push(t.elapsed());
        last = Some(r);
    }
    (median(times), last.expect("ran at least once"))
}

fn read(path: &Path) -> anyhow::Result<History> {
    let p = path.to_str().context("non-UTF-8 path")?;
    Ok(read_file(p, ReadOptions::default())?.0)
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Porcupine's figures for our corpus: not measured by this command.
const PORCUPINE_ETCD: &str = "Porcupine (Go, 2-core machine of this kind, Nov 2026): ~350 ms in one process, 657 ms as 102 separate runs";
const PORCUPINE_C50_OK: &str = "Porcupine (same machine kind, Nov 2026): 153 ms";
const PORCUPINE_C50_BAD: &str = "Porcupine (same machine kind, Nov 2026): 24 ms without explanation; its explaining mode did not finish in 60 s / 24 GB";

fn line(name: &str, ours: Duration, reference: Option<&str>, target_ms: Option<f64>) {
    let mut s = format!("{name:<34} {:>10.2} ms", ms(ours));
    if let Some(t) = target_ms {
        s += &format!(
            "   target <= {t} ms: {}",
            if ms(ours) <= t { "met" } else { "MISSED" }
        );
    }
    out!("{s}");
    if let Some(r) = reference {
        out!("{:<34} reference, not measured here: {r}", "");
    }
}

/// Runs the benchmarks and prints the figures.
pub fn run(a: PerfArgs) -> anyhow::Result<u8> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !(a.node_seconds > 0.0 && a.node_seconds < 1e6) {
        bail!("--node-seconds must be a positive number");
    }
    if a.run_seeds == 0 {
        bail!("--run-seeds must be at least 1");
    }
    if a.suite != Suite::Node {
        checker(&a)?;
    }
    if a.suite != Suite::Checker {
        // First, while this process has run nothing else: its peak memory
        // is then the default runs'.
        crate::perf_run::report(a.run_seeds)?;
        if let Some(p) = peak_rss_mib() {
            out!("  peak resident memory after the default runs alone: {p:.0} MiB");
        }
        crate::perf_node::report(Duration::from_secs_f64(a.node_seconds));
    }
    if let Some(p) = peak_rss_mib() {
        out!("peak resident memory of this run: {p:.0} MiB");
    }
    Ok(0)
}

fn checker(a: &PerfArgs) -> anyhow::Result<()> {
    let jdir = a.data.join("jepsen");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&jdir)
        .with_context(|| format!("{}: cannot read the corpus", jdir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)) // etcd_095 is empty
        .collect();
    logs.sort();
    out!(
        "faultline perf: median of {} runs, {} threads",
        a.runs,
        threads(a.jobs)
    );
    out!();

    // 1. The etcd corpus.
    etcd_corpus(a, &logs)?;

    // 2. Porcupine's kv histories.
    for (name, porcupine, target) in [
        ("c50-ok", PORCUPINE_C50_OK, Some(75.0)),
        ("c50-bad", PORCUPINE_C50_BAD, Some(2000.0)),
    ] {
        let path = a.data.join("kv").join(format!("{name}.txt"));
        let t = Instant::now();
        let h = read(&path)?;
        let parse = t.elapsed();
        let (d, r) = time_check(&h, ModelKind::Kv, a.runs, a.jobs);
        out!(
            "kv {name}: {} ops, parsed in {:.2} ms, verdict {}",
            r.ops,
            ms(parse),
            r.result
        );
        let label = if r.result == Validity::Invalid {
            "  check + explanation"
        } else {
            "  check"
        };
        line(label, d, Some(porcupine), target);
    }
    out!();

    // 3. A generated history.
    if a.big_ops > 0 {
        big(a)?;
    }
    // 4. One hot key, with and without the reductions.
    if a.hot_ops > 0 || a.hot_seeds > 0 {
        hot_key(a)?;
    }
    Ok(())
}

/// Checks Porcupine's etcd corpus (`logs`) `--runs` times: the median
/// total, against Porcupine's figure, and the slowest file.
fn etcd_corpus(a: &PerfArgs, logs: &[PathBuf]) -> anyhow::Result<()> {
    let t = Instant::now();
    let etcd: Vec<History> = logs
        .iter()
        .map(|p| read(p))
        .collect::<anyhow::Result<_>>()?;
    let parse = t.elapsed();
    let mut totals = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    let mut invalid = 0;
    for run in 0..a.runs {
        let t = Instant::now();
        for (h, p) in etcd.iter().zip(logs) {
            let t1 = Instant::now();
            let r = check(h, ModelKind::CasRegister, &Budget::default(), a.jobs).expect("fits");
            if run == 0 {
                invalid += (r.result == Validity::Invalid) as usize;
                let d = t1.elapsed();
                if d > slowest.0 {
                    slowest = (d, p.file_name().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        totals.push(t.elapsed());
    }
    out!(
        "etcd corpus: {} histories ({} not linearizable), parsed in {:.2} ms",
        etcd.len(),
        invalid,
        ms(parse)
    );
    line(
        "  check all, total",
        median(totals),
        Some(PORCUPINE_ETCD),
        Some(330.0),
    );
    out!(
        "  slowest file (first run): {} in {:.2} ms",
        slowest.1,
        ms(slowest.0)
    );
    out!();
    Ok(())
}

/// Checks `h` side by side: without any reduction, with the search's
/// reductions but no zones, and with everything (30 s and a 1 GiB search
/// cache each at most), one line each.
fn side_by_side(h: &History, model: ModelKind, jobs: usize) {
    let runs = [
        ("  without reductions", true, true),
        ("  search reductions, no zones", false, true),
        ("  with reductions", false, false),
    ];
    for (label, no_reductions, no_certificates) in runs {
        let budget = Budget {
            deadline: Some(Instant::now() + Duration::from_secs(30)),
            max_bytes: Some(1 << 30),
            no_reductions,
            no_certificates,
            ..Budget::default()
        };
        let t = Instant::now();
        let r = check(h, model, &budget, jobs).expect("fits its model");
        let d = t.elapsed();
        out!(
            "{label:<34} {:>10.2} ms   verdict {}, {} ops searched, {} states",
            ms(d),
            r.result,
            r.ops,
            r.states_explored
        );
    }
}

/// One hot key: generated single-key histories of 100 processes with 1%
/// crashed ops and values unique per write, then the histories of the
/// hot-key bench campaigns, each checked side by side with and without the
/// sound reductions.
fn hot_key(a: &PerfArgs) -> anyhow::Result<()> {
    out!();
    let models = [(ModelKind::Register, false), (ModelKind::CasRegister, true)];
    for (model, cas) in models.into_iter().filter(|_| a.hot_ops > 0) {
        let cfg = SynthConfig {
            seed: 1,
            processes: 100,
            keys: 0,
            ops: a.hot_ops,
            cas,
            values: 1 << 40,
            fail_probability: 0.05,
            info_probability: 0.01,
        };
        let h = register_history(&cfg);
        out!(
            "hot key, {}: {} invocations on one key, 100 processes, 1% crashed",
            model.name(),
            a.hot_ops
        );
        side_by_side(&h, model, a.jobs);
    }
    let campaigns: [&[&str]; 2] = [
        &["--keys", "1", "--clients", "50"],
        &["--keys", "1", "--clients", "20", "--workload", "strict"],
    ];
    for flags in campaigns {
        for seed in 1..=a.hot_seeds {
            let t = Instant::now();
            let h = crate::campaign::linearizable_history(flags, seed)?;
            out!(
                "bench {} --seed {seed}: {} events on one key, simulated in {:.0} ms",
                flags.join(" "),
                h.len(),
                ms(t.elapsed())
            );
            side_by_side(&h, ModelKind::CasRegister, a.jobs);
        }
    }
    Ok(())
}

fn threads(jobs: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

fn big(a: &PerfArgs) -> anyhow::Result<()> {
    let cfg = SynthConfig {
        seed: 1,
        processes: a.big_processes,
        keys: a.big_keys,
        ops: a.big_ops,
        cas: true,
        values: 5,
        fail_probability: 0.05,
        info_probability: 0.01,
    };
    let t = Instant::now();
    let h = register_history(&cfg);
    let gen = t.elapsed();
    out!(
        "generated: {} invocations ({} events) over {} keys, {} processes, in {:.0} ms",
        a.big_ops,
        h.len(),
        a.big_keys,
        a.big_processes,
        ms(gen)
    );
    let dir = std::env::temp_dir().join(format!("faultline-perf-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("big.jsonl");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        jsonl::write_ops(&mut w, h.ops())?;
    }
    let size = std::fs::metadata(&file)?.len();
    drop(h);
    let t = Instant::now();
    let h = read(&file)?;
    let parse = t.elapsed();
    std::fs::remove_dir_all(&dir).ok();
    out!(
        "  read back from JSON lines ({:.0} MiB) in {:.0} ms",
        size as f64 / 1048576.0,
        ms(parse)
    );
    let (d, r) = time_check(&h, ModelKind::CasRegister, 1, a.jobs);
    if r.result != Validity::Valid {
        bail!(
            "the generated history must be linearizable, got {}",
            r.result
        );
    }
    line("  check (verdict: valid)", d, None, Some(10_000.0));
    line("  read + check", d + parse, None, Some(10_000.0));
    out!("  states explored: {}", r.states_explored);
    Ok(())
}
