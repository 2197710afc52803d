//! `faultline mixes`: the nemesis matrix. Every fault kind alone and every
//! pair of kinds, each over the same seeds, each seed in a child process
//! under the watchdog like `bench`; one line per mix with its runs,
//! violations, unknowns, leader changes and the time the ensemble took to
//! serve again after healing.

use crate::campaign::run_seeds;
use crate::flags::{self, parse_duration_ms, parse_seeds, RunFlags, SeedRange};
use crate::output::{campaign_dir, write};
use crate::run::RunResult;
use clap::Args;
use faultline_checker::Validity;
use faultline_nemesis::NemesisKind;
use serde::Serialize;
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
    /// Runs in parallel (0 or absent: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the runs go (default: a new folder under target/faultline/).
    #[arg(long)]
    pub out: Option<String>,
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

/// `faultline mixes`: see the module docs. Exit 1 on any violation, else 3
/// on any unknown, else 0.
pub fn mixes_cmd(m: MixesArgs) -> anyhow::Result<u8> {
    let kinds = match &m.kinds {
        Some(list) => NemesisKind::parse_list(list).map_err(anyhow::Error::msg)?,
        None => NemesisKind::parse_list("all").map_err(anyhow::Error::msg)?,
    };
    let jobs = flags::jobs(m.jobs);
    let root = campaign_dir("mixes", m.out.as_deref())?;
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
        let a = RunFlags::from_flags(&flags)?;
        let dir = root.join(mix.replace(',', "+"));
        let out = campaign_dir("mixes", Some(&dir.display().to_string()))?;
        let t = Instant::now();
        let results = run_seeds(&a, &seeds, &out, jobs, false, &|_| {})?;
        let row = mix_row(mix, &a, &results, t.elapsed().as_secs_f64());
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
    let json = root.join("mixes.json");
    write(&json, serde_json::to_string_pretty(&rows)?.as_bytes())?;
    let verdict = if invalid > 0 {
        Validity::Invalid
    } else if unknown > 0 {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    eprintln!(
        "\n{}: {} mixes, {runs} runs: {invalid} invalid, {unknown} unknown in {:.1} s; {}",
        verdict.to_string().to_uppercase(),
        rows.len(),
        start.elapsed().as_secs_f64(),
        json.display()
    );
    Ok(verdict.exit_code() as u8)
}

/// The line of one mix from its runs.
fn mix_row(mix: &str, a: &RunFlags, results: &[RunResult], wall_s: f64) -> MixRow {
    let count = |v: Validity| results.iter().filter(|r| r.result == v).count();
    let mut rec: Vec<u64> = results.iter().filter_map(|r| r.recovery_ms).collect();
    rec.sort_unstable();
    MixRow {
        nemesis: mix.to_string(),
        runs: results.len(),
        invalid: count(Validity::Invalid),
        unknown: count(Validity::Unknown),
        leader_changes: results.iter().map(|r| r.leader_changes as f64).sum::<f64>()
            / results.len().max(1) as f64,
        recovery_p50_ms: rec.get(rec.len() / 2).copied(),
        recovery_max_ms: rec.last().copied(),
        not_recovered: results.len() - rec.len(),
        wall_s,
        failures: results
            .iter()
            .filter(|r| r.result != Validity::Valid)
            .map(|r| a.reproduce(r.seed))
            .collect(),
    }
}
