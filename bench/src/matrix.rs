//! `faultline matrix`: every bug switch against the default campaign's
//! seeds, in order, until a run catches it.

use crate::campaign::watched;
use crate::flags::{self, parse_duration_ms, parse_seeds, RunFlags, SeedRange};
use crate::output::{campaign_dir, write};
use crate::run::RunResult;
use crate::shrink::{shrink_run, ShrinkArgs, Shrunk};
use anyhow::bail;
use clap::Args;
use faultline_checker::Validity;
use faultline_node::Bugs;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// Seeds tried per bug, in order, before it counts as missed: N
    /// (1..=N) or a range A..B.
    #[arg(long, default_value = "20", value_parser = parse_seeds)]
    pub seeds: SeedRange,
    /// Chaos phase per run.
    #[arg(long, default_value = "20s", value_parser = parse_duration_ms)]
    pub duration: u64,
    /// Only these bugs (comma-separated; default: all).
    #[arg(long)]
    pub bugs: Option<String>,
    /// Runs in parallel (0 or absent: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the runs go (default: a new folder under target/faultline/).
    #[arg(long)]
    pub out: Option<String>,
    /// Also shrink each bug's first detection (see `faultline shrink`)
    /// and report the minimal sizes.
    #[arg(long)]
    pub shrink: bool,
}

/// One row of the detection matrix.
#[derive(Serialize)]
struct MatrixRow {
    bug: String,
    workload: String,
    /// The first seed whose run was invalid, if any.
    first_detection: Option<u64>,
    /// Runs it took, with the wall time they took.
    runs: u64,
    wall_s: f64,
    checks: Vec<String>,
    reproduce: Option<String>,
    /// The first detection, shrunk (with `--shrink`).
    #[serde(skip_serializing_if = "Option::is_none")]
    shrunk: Option<Shrunk>,
}

/// `faultline matrix`: for every bug switch, runs the default campaign's
/// seeds in order until one detects the bug, and prints seeds-to-first-
/// detection and wall time; `stale-leader-reads` is run with both
/// workloads (under `register` its stale local reads would be legal
/// sequential consistency, but a leader serving without a quorum breaks
/// timeliness, stability and the register workload's sync-reads).
/// Exit 1 when a bug is missed.
pub fn matrix(m: MatrixArgs) -> anyhow::Result<u8> {
    let names: Vec<String> = match &m.bugs {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => Bugs::ALL.iter().map(|(n, _)| n.to_string()).collect(),
    };
    for n in &names {
        if !Bugs::default().enable(n) {
            bail!("unknown bug {n:?} (see faultline bench --list-bugs)");
        }
    }
    let root = campaign_dir("matrix", m.out.as_deref())?;
    let mut cases: Vec<(String, &str)> = names
        .iter()
        .map(|n| {
            let workload = if n == "stale-leader-reads" {
                "strict"
            } else {
                "register"
            };
            (n.clone(), workload)
        })
        .collect();
    if names.iter().any(|n| n == "stale-leader-reads") {
        cases.push(("stale-leader-reads".into(), "register"));
    }
    let mut rows = Vec::new();
    for (bug, workload) in cases {
        let row = hunt(&m, &root, &bug, workload)?;
        eprintln!(
            "{:<24} {:<9} {:<28} {:>3} runs {:>6.1} s  {}",
            row.bug,
            row.workload,
            match row.first_detection {
                Some(s) => format!("caught at seed {s}"),
                None => "MISSED".to_string(),
            },
            row.runs,
            row.wall_s,
            row.checks.join(", ")
        );
        if let Some(s) = &row.shrunk {
            eprintln!(
                "{:<24} shrunk to {} ({}) in {} runs, {:.1} s",
                "",
                s.to.describe(),
                s.check,
                s.runs,
                s.wall_s
            );
        }
        rows.push(row);
    }
    let json = serde_json::to_string_pretty(&rows)?;
    write(&root.join("matrix.json"), json.as_bytes())?;
    eprintln!("matrix: {}", root.join("matrix.json").display());
    let missed = rows.iter().any(|r| r.first_detection.is_none());
    Ok(if missed { 1 } else { 0 })
}

/// Runs the matrix's seeds in order, a batch of `--jobs` at a time, with
/// `bug` switched on, until a run is invalid: the row of that bug.
fn hunt(m: &MatrixArgs, root: &Path, bug: &str, workload: &str) -> anyhow::Result<MatrixRow> {
    let jobs = flags::jobs(m.jobs);
    let duration = format!("{}ms", m.duration);
    let a = RunFlags::from_flags(&[
        "--bug",
        bug,
        "--workload",
        workload,
        "--duration",
        &duration,
    ])?;
    let dir = root.join(format!("{bug}-{workload}"));
    let out = campaign_dir("matrix", Some(&dir.display().to_string()))?;
    let start = Instant::now();
    let mut found: Option<RunResult> = None;
    let mut runs = 0;
    let mut seed = m.seeds.first;
    while seed <= m.seeds.last && found.is_none() {
        let batch: Vec<u64> = (seed..=m.seeds.last).take(jobs).collect();
        seed += batch.len() as u64;
        let results: Vec<anyhow::Result<RunResult>> = std::thread::scope(|s| {
            let (a, out) = (&a, &out);
            let handles: Vec<_> = batch
                .iter()
                .map(|&k| s.spawn(move || watched(a, k, out)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panics"))
                .collect()
        });
        for r in results {
            let r = r?;
            runs += 1;
            if r.result == Validity::Invalid && found.as_ref().is_none_or(|f| r.seed < f.seed) {
                found = Some(r);
            }
        }
    }
    let shrunk = match (&found, m.shrink) {
        (Some(r), true) => {
            let mut args = ShrinkArgs::for_seed(r.seed, a.clone());
            args.jobs = m.jobs;
            args.out = Some(
                root.join(format!("shrink-{bug}-{workload}"))
                    .display()
                    .to_string(),
            );
            shrink_run(&args)?
        }
        _ => None,
    };
    Ok(MatrixRow {
        shrunk,
        bug: bug.to_string(),
        workload: workload.into(),
        first_detection: found.as_ref().map(|r| r.seed),
        runs,
        wall_s: start.elapsed().as_secs_f64(),
        checks: found
            .as_ref()
            .map(|r| {
                r.failed_checks()
                    .filter(|c| c.result == Validity::Invalid)
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
        reproduce: found.as_ref().map(|r| a.reproduce(r.seed)),
    })
}
