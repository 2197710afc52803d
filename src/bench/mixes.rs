//! `faultline mixes`: the nemesis matrix. Every fault kind alone and every
//! pair of kinds, each over the same seeds, each seed in a child process
//! under the watchdog like `bench`; one line per mix with its runs,
//! violations, unknowns, leader changes and the time the ensemble took to
//! serve again after healing.

use super::{parse_duration_ms, parse_seeds, reproduce, watched, BenchArgs, SeedRange};
use anyhow::Context as _;
use clap::{Args, FromArgMatches as _};
use faultline_checker::Validity;
use faultline_nemesis::NemesisKind;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Arguments of `faultline mixes`.
#[derive(Args, Debug)]
pub struct MixesArgs {
    /// Seeds per mix: N (1..=N) or a range A..B.
    #[arg(long, default_value = "20", value_parser = parse_seeds)]
    pub seeds: SeedRange,
    /// The kinds to combine (comma-separated; default: every kind).
    #[arg(long)]
    pub kinds: Option<String>,
    /// Only each kind alone, no pairs.
    #[arg(long)]
    pub singles: bool,
    /// Chaos phase per run.
    #[arg(long, default_value = "20s", value_parser = parse_duration_ms)]
    pub duration: u64,
    /// Runs in parallel (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the runs go.
    #[arg(long, default_value = "reports/mixes")]
    pub out: String,
}

/// One line of the nemesis matrix.
#[derive(Serialize)]
struct MixRow {
    nemesis: String,
    runs: usize,
    invalid: usize,
    unknown: usize,
    /// Mean leader changes per run.
    leader_changes: f64,
    /// Time from healing until every server served again: median and
    /// maximum over the runs that recovered within the quiesce phase (ms).
    recovery_p50_ms: Option<u64>,
    recovery_max_ms: Option<u64>,
    /// Runs that did not recover within the quiesce phase.
    not_recovered: usize,
    wall_s: f64,
    /// A reproduce command for every failing seed.
    failures: Vec<String>,
}

/// The mixes of `kinds`: each alone, then each unordered pair.
fn mixes(kinds: &[NemesisKind], singles: bool) -> Vec<String> {
    let mut out: Vec<String> = kinds.iter().map(|k| k.name().to_string()).collect();
    if !singles {
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                out.push(format!("{},{}", a.name(), b.name()));
            }
        }
    }
    out
}

/// Runs `seeds` of `a` in child processes, `jobs` at a time.
fn run_seeds(
    a: &BenchArgs,
    seeds: &[u64],
    out: &Path,
    jobs: usize,
) -> anyhow::Result<Vec<super::RunResult>> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(seeds.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let r = watched(a, seed, out);
                results.lock().expect("no panics").push(r);
            });
        }
    });
    let mut v = results
        .into_inner()
        .expect("no panics")
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    v.sort_by_key(|r| r.seed);
    Ok(v)
}

/// `faultline mixes`: see the module docs. Exit 1 on any violation, else 3
/// on any unknown, else 0.
pub fn mixes_cmd(m: MixesArgs) -> anyhow::Result<u8> {
    let kinds = match &m.kinds {
        Some(list) => NemesisKind::parse_list(list).map_err(anyhow::Error::msg)?,
        None => NemesisKind::parse_list("all").map_err(anyhow::Error::msg)?,
    };
    let jobs = m
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let seeds: Vec<u64> = m.seeds.iter().collect();
    let all = mixes(&kinds, m.singles);
    eprintln!(
        "faultline mixes: {} mixes x {} seeds ({}..{}), {} ms chaos, {jobs} jobs",
        all.len(),
        seeds.len(),
        m.seeds.first,
        m.seeds.last,
        m.duration
    );
    eprintln!(
        "{:<36} {:>5} {:>7} {:>7} {:>8} {:>14} {:>8}",
        "nemesis", "runs", "invalid", "unknown", "leaders", "recovery ms", "wall s"
    );
    let start = Instant::now();
    let mut rows = Vec::new();
    for mix in &all {
        let flags = ["--nemesis", mix, "--duration", &format!("{}ms", m.duration)];
        let a = BenchArgs::from_flags(&flags)?;
        let out = PathBuf::from(&m.out).join(mix.replace(',', "+"));
        std::fs::create_dir_all(out.join("runs"))
            .with_context(|| format!("{}: cannot create", out.display()))?;
        let t = Instant::now();
        let results = run_seeds(&a, &seeds, &out, jobs)?;
        let count = |v: Validity| results.iter().filter(|r| r.result == v).count();
        let mut rec: Vec<u64> = results.iter().filter_map(|r| r.recovery_ms).collect();
        rec.sort_unstable();
        let row = MixRow {
            nemesis: mix.clone(),
            runs: results.len(),
            invalid: count(Validity::Invalid),
            unknown: count(Validity::Unknown),
            leader_changes: results.iter().map(|r| r.leader_changes as f64).sum::<f64>()
                / results.len().max(1) as f64,
            recovery_p50_ms: rec.get(rec.len() / 2).copied(),
            recovery_max_ms: rec.last().copied(),
            not_recovered: results.len() - rec.len(),
            wall_s: t.elapsed().as_secs_f64(),
            failures: results
                .iter()
                .filter(|r| r.result != Validity::Valid)
                .map(|r| reproduce(&a, r.seed))
                .collect(),
        };
        eprintln!(
            "{:<36} {:>5} {:>7} {:>7} {:>8.1} {:>14} {:>8.1}",
            row.nemesis,
            row.runs,
            row.invalid,
            row.unknown,
            row.leader_changes,
            match (row.recovery_p50_ms, row.recovery_max_ms) {
                (Some(p), Some(x)) => format!("{p} / {x}"),
                _ => "-".into(),
            },
            row.wall_s
        );
        for f in &row.failures {
            eprintln!("  reproduce: {f}");
        }
        rows.push(row);
    }
    let invalid: usize = rows.iter().map(|r| r.invalid).sum();
    let unknown: usize = rows.iter().map(|r| r.unknown).sum();
    let runs: usize = rows.iter().map(|r| r.runs).sum();
    std::fs::write(
        PathBuf::from(&m.out).join("mixes.json"),
        serde_json::to_string_pretty(&rows)?,
    )
    .with_context(|| format!("{}: cannot write mixes.json", m.out))?;
    let verdict = if invalid > 0 {
        Validity::Invalid
    } else if unknown > 0 {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    eprintln!(
        "\n{}: {} mixes, {runs} runs: {invalid} invalid, {unknown} unknown in {:.1} s; {}/mixes.json",
        verdict.to_string().to_uppercase(),
        rows.len(),
        start.elapsed().as_secs_f64(),
        m.out
    );
    Ok(verdict.exit_code() as u8)
}

impl BenchArgs {
    /// `bench` arguments from these flags, every other one at its default
    /// (the defaults live in one place: the clap definition).
    pub fn from_flags(flags: &[&str]) -> anyhow::Result<BenchArgs> {
        let cmd = <BenchArgs as clap::Args>::augment_args(clap::Command::new("bench"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("bench").chain(flags.iter().copied()))
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("")))?;
        Ok(BenchArgs::from_arg_matches(&matches)?)
    }
}
