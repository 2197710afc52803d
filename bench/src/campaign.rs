//! Campaigns: seeds run in parallel, each in a child process (this
//! executable with `bench --internal-seed`) under a wall-clock watchdog, so
//! that a hung or crashed run costs one seed's verdict (unknown), never the
//! campaign; then the campaign's summary, page and JUnit file.

use crate::flags::{self, BenchArgs, RunFlags, DEFAULT_SEEDS};
use crate::interrupt::{self, interrupted, Interrupted};
use crate::output::{
    campaign_config, campaign_dir, campaign_report, run_dir, write, write_run_dir,
};
use crate::run::{self, RunResult};
use crate::seed::{self, aborted, Abort};
use crate::summary::{self, junit_xml, SeedLine, Summary, LONG_ELECTION_MS};
use anyhow::{bail, Context as _};
use faultline_checker::{CheckOutcome, Validity};
use faultline_nemesis::Schedule;
use faultline_node::Bugs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// `faultline bench`: runs the command; returns the exit code.
pub fn bench(a: BenchArgs) -> anyhow::Result<u8> {
    if let Some(seed) = a.internal_seed {
        seed::keep_first_panic();
        let out = PathBuf::from(a.out.as_deref().unwrap_or("."));
        let r = seed::one(&a.run, seed, &out)?;
        out!("{}", serde_json::to_string(&r)?);
        return Ok(0);
    }
    if !a.internal_twice.is_empty() {
        return twice(&a.run, &a.internal_twice);
    }
    if a.list_bugs {
        if a.run.system == "raft" {
            for (name, what) in faultline_raftkv::Bugs::ALL {
                out!("{name:<24} {what}");
            }
        } else {
            for (name, what) in Bugs::ALL {
                out!("{name:<24} {what}");
            }
        }
        return Ok(0);
    }
    let seeds = seeds_of(&a)?;
    // Bad input is reported before anything runs or is created.
    let base = a.run.config(seeds[0])?;
    a.run.load_schedule()?;
    let jobs = flags::jobs(a.jobs);
    let out = campaign_dir("bench", a.out.as_deref())?;
    interrupt::catch();
    eprintln!(
        "faultline bench: {} seeds, {} voters + {} observers{}, {} clients, {} ms chaos, nemesis {}, workload {}, {} jobs",
        seeds.len(),
        base.voters,
        base.observers,
        if base.joiner { " + 1 joiner" } else { "" },
        base.processes,
        base.chaos_ms,
        a.run.nemesis,
        a.run.workload,
        jobs
    );
    let start = Instant::now();
    let bar = indicatif::ProgressBar::new(seeds.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {elapsed} ({eta} left) {msg}",
        )
        .expect("a valid template"),
    );
    let each = |r: &RunResult| {
        bar.inc(1);
        if r.result != Validity::Valid {
            bar.set_message("(failures found)");
        }
        let line = format!(
            "  seed {:>4}: {:<7} {:>5} ops, {:>2} faults, {:>2} leader changes, {:>2} expiries, {:.1} s leaderless, {:.1} s sim in {:.1} s{}",
            r.seed,
            r.result.to_string(),
            r.ops,
            r.faults,
            r.leader_changes,
            r.session_expiries.unwrap_or(0),
            r.longest_leaderless_ms as f64 / 1000.0,
            r.sim_s,
            r.wall_s,
            failed(r)
        );
        // Without a terminal the bar is hidden: keep the per-seed lines in
        // the log anyway.
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let results = run_seeds(&a.run, &seeds, &out, jobs, a.check_determinism, &each)?;
    bar.finish_and_clear();
    if interrupted() {
        eprintln!(
            "\ninterrupted: {} of {} seeds finished; the summary covers those",
            results.len(),
            seeds.len()
        );
    }
    summarize(&a, &base, &results, &out, start.elapsed().as_secs_f64())
}

/// The campaign's seeds: `--seed`, `--seeds` or the default campaign's,
/// then only `--shard`'s share.
fn seeds_of(a: &BenchArgs) -> anyhow::Result<Vec<u64>> {
    let mut seeds: Vec<u64> = match (a.seed, a.seeds) {
        (Some(s), _) => vec![s],
        (None, Some(r)) => r.iter().collect(),
        (None, None) => (1..=DEFAULT_SEEDS).collect(),
    };
    if let Some((k, n)) = a.shard {
        seeds = seeds
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n == k - 1)
            .map(|(_, s)| s)
            .collect();
        if seeds.is_empty() {
            bail!("shard {k}/{n} holds no seed");
        }
    }
    Ok(seeds)
}

/// `--internal-twice`: each seed run twice in this one process; prints
/// `seed hash1 hash2` per seed.
fn twice(flags: &RunFlags, seeds: &[u64]) -> anyhow::Result<u8> {
    for &seed in seeds {
        let cfg = flags.config(seed)?;
        let schedule = Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &run::topology(&cfg));
        let mut hashes = Vec::new();
        for _ in 0..2 {
            let (r, _) = run::run(&cfg, &schedule)
                .map_err(|e| anyhow::anyhow!("seed {seed}: {}", e.message()))?;
            hashes.push(r.history_hash);
        }
        out!("{seed} {} {}", hashes[0], hashes[1]);
    }
    Ok(0)
}

/// Runs `seeds` of `flags` in child processes, `jobs` at a time (with
/// `determinism`, each twice), calling `each` as each run ends; the results
/// in seed order. An error (the bench could not start a run or write its
/// files) ends the campaign.
pub(crate) fn run_seeds(
    flags: &RunFlags,
    seeds: &[u64],
    out: &Path,
    jobs: usize,
    determinism: bool,
    each: &(dyn Fn(&RunResult) + Sync),
) -> anyhow::Result<Vec<RunResult>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<RunResult>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(seeds.len()) {
            s.spawn(|| loop {
                if interrupted() {
                    break; // Ctrl-C: no new run
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                match deterministic(flags, seed, out, determinism) {
                    Ok(r) => {
                        each(&r);
                        results.lock().expect("no panics").push(r);
                    }
                    Err(e) if e.is::<Interrupted>() => {}
                    Err(e) => errors
                        .lock()
                        .expect("no panics")
                        .push(format!("seed {seed}: {e:#}")),
                }
            });
        }
    });
    if let Some(e) = errors.into_inner().expect("no panics").first() {
        bail!("{e}");
    }
    let mut results = results.into_inner().expect("no panics");
    results.sort_by_key(|r| r.seed);
    Ok(results)
}

/// The names of a run's failed checks, for its progress line.
fn failed(r: &RunResult) -> String {
    let f: Vec<&str> = r.failed_checks().map(|c| c.name.as_str()).collect();
    if f.is_empty() {
        String::new()
    } else {
        format!("  [{}]", f.join(", "))
    }
}

/// Runs one seed; with `twice`, two times, each in a fresh process (the
/// promise is: same seed, same binary, same history), and adds a
/// `determinism` check comparing the history hashes.
fn deterministic(
    flags: &RunFlags,
    seed: u64,
    out: &Path,
    twice: bool,
) -> anyhow::Result<RunResult> {
    let mut first = watched(flags, seed, out)?;
    if !twice {
        return Ok(first);
    }
    let second = watched(flags, seed, out)?;
    let same = first.history_hash == second.history_hash;
    first.checks.push(CheckOutcome {
        name: "determinism".into(),
        result: if same {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        summary: "a second run of the seed, in a fresh process, gives a byte-identical history"
            .into(),
        anomalies: if same {
            vec![]
        } else {
            vec![format!(
                "history hash {} then {}",
                first.history_hash, second.history_hash
            )]
        },
        ops: vec![],
    });
    if !same {
        first.result = Validity::Invalid;
    }
    write(
        &run_dir(out, seed).join("verdict.json"),
        serde_json::to_string_pretty(&first)?.as_bytes(),
    )?;
    Ok(first)
}

/// Runs one seed in a child process (this executable with
/// `bench --internal-seed`) under the wall-clock watchdog: a run that does
/// not finish in time is killed and reported as unknown, and so is a child
/// that dies without a result.
pub(crate) fn watched(flags: &RunFlags, seed: u64, out: &Path) -> anyhow::Result<RunResult> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut args = vec!["bench".to_string()];
    args.extend(flags.to_args(true));
    args.extend([
        "--out".into(),
        out.display().to_string(),
        "--internal-seed".into(),
        seed.to_string(),
    ]);
    let mut child = std::process::Command::new(exe)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start a run")?;
    let limit = std::time::Duration::from_secs(flags.watchdog);
    let started = Instant::now();
    // Drain both pipes while the child runs, so that it never blocks on a
    // full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out_reader = drain(Box::new(child.stdout.take().expect("piped")));
    let err_reader = drain(Box::new(child.stderr.take().expect("piped")));
    let (kind, why) = loop {
        if interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Interrupted.into());
        }
        if let Some(status) = child.try_wait()? {
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            let last = stdout.lines().last().unwrap_or("");
            let parsed = serde_json::from_str::<RunResult>(last);
            if let (true, Ok(r)) = (status.success(), parsed) {
                return Ok(r);
            }
            if interrupted() {
                return Err(Interrupted.into()); // Ctrl-C reached it too
            }
            // The child died outside `catch_unwind` (abort, signal, out of
            // memory) or printed no result: the bench's own failure, so the
            // seed is unknown and the campaign goes on.
            let tail = stderr.trim().lines().last().unwrap_or("no message");
            let why = format!("the run's process ended abnormally ({status}): {tail}");
            break (Abort::Harness, why);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let why = format!(
                "the run did not finish within {} s of wall time and was stopped",
                flags.watchdog
            );
            break (Abort::Watchdog, why);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let cfg = flags.config(seed)?;
    let (result, artifacts) = aborted(&cfg, kind, &why, started, &Schedule::default());
    write_run_dir(out, &cfg, &result, &artifacts, flags)?;
    Ok(result)
}

/// This process's command line, as the user typed it (for pages).
pub(crate) fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut parts = vec!["faultline".to_string()];
    parts.extend(args.into_iter().skip(1));
    parts.join(" ")
}

/// Writes the campaign's summary, page and JUnit file, prints the verdict
/// with every failing seed's findings and reproduce line; returns the exit
/// code.
fn summarize(
    a: &BenchArgs,
    base: &run::RunConfig,
    results: &[RunResult],
    out: &Path,
    wall_s: f64,
) -> anyhow::Result<u8> {
    let mut summary = Summary::new(
        results,
        wall_s,
        summary::slowest(results),
        campaign_config(base)?,
        results
            .iter()
            .map(|r| SeedLine::of(r, a.reproduce(r.seed)))
            .collect(),
    );
    if interrupted() {
        summary.interrupt();
    }
    let json = serde_json::to_string_pretty(&summary)?;
    write(&out.join("summary.json"), json.as_bytes())?;
    write(
        &out.join("index.html"),
        campaign_report(
            results,
            &summary.seeds,
            &faultline_reports::CampaignInfo {
                title: "bench campaign",
                command: &command_line(),
                bug: a.run.bug.as_deref(),
                config_json: &serde_json::to_string_pretty(&summary.config)?,
            },
            out,
        )
        .as_bytes(),
    )?;
    let junit = a
        .junit
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| out.join("junit.xml"));
    write(&junit, junit_xml(results).as_bytes())?;
    eprintln!();
    eprintln!(
        "{}: {} runs: {} valid, {} invalid, {} unknown in {wall_s:.1} s; reports in {}",
        summary.result.to_string().to_uppercase(),
        results.len(),
        summary.valid,
        summary.invalid,
        summary.unknown,
        out.display()
    );
    let f = summary.sessions;
    if f.judged_runs > 0 {
        eprintln!(
            "sessions: {} expiries; at least one in {} of {} runs; no leader for {:.0} s or more in {} runs",
            f.expiries,
            f.runs_with_expiry,
            f.judged_runs,
            LONG_ELECTION_MS as f64 / 1000.0,
            f.runs_with_long_election
        );
    }
    if let Some(c) = &summary.slowest_check {
        eprintln!(
            "slowest check: {} {:.0} ms (seed {})",
            c.check, c.ms, c.seed
        );
    }
    for r in results.iter().filter(|r| r.result != Validity::Valid) {
        for c in r.failed_checks() {
            eprintln!(
                "  seed {}: {} {}: {}",
                r.seed,
                c.name,
                c.result,
                c.anomalies.first().map_or("", |s| s.as_str())
            );
        }
        eprintln!(
            "  report: {}",
            run_dir(out, r.seed).join("report.html").display()
        );
        eprintln!("  reproduce: {}", a.reproduce(r.seed));
        if r.result == Validity::Invalid {
            eprintln!("  shrink: {}", a.run.shrink_command(r.seed));
        }
    }
    if a.json {
        out!("{json}");
    }
    Ok(summary.result.exit_code() as u8)
}

/// Runs one seed of the campaign these `bench` flags describe, in this
/// thread, and returns the history the linearizability check reads (client
/// local reads left out), for `perf`.
pub fn linearizable_history(
    flags: &[&str],
    seed: u64,
) -> anyhow::Result<faultline_history::History> {
    let cfg = RunFlags::from_flags(flags)?.config(seed)?;
    let schedule = Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &run::topology(&cfg));
    let (_, art) = run::run(&cfg, &schedule).map_err(|e| anyhow::anyhow!(e.message()))?;
    Ok(faultline_history::History::new(art.history)?)
}
