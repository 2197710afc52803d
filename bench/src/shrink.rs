//! `faultline shrink`: a failing run made smaller while it still fails the
//! same check (issue 13, first step): delta debugging over the schedule's
//! fault episodes (a fault and its repairs go together), then a chaos
//! phase cut to end after the last kept fault. Every candidate is a
//! deterministic run of the same seed with an explicit schedule, run in a
//! child process under the watchdog; a candidate that does not fail the
//! same check is never the result.

use crate::campaign::watched;
use crate::flags::{self, RunFlags};
use crate::output::{campaign_dir, run_dir, write};
use crate::run::RunResult;
use anyhow::{bail, Context as _};
use clap::Args;
use faultline_nemesis::Schedule;
use std::path::{Path, PathBuf};

/// Arguments of `faultline shrink`.
#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// The failing seed.
    #[arg(long)]
    pub seed: u64,
    /// The run's flags, as for `bench`.
    #[command(flatten)]
    pub run: RunFlags,
    /// Give up after this many candidate runs, with the smallest failing
    /// run found so far.
    #[arg(long, default_value_t = 200)]
    pub max_runs: usize,
    /// Candidates run in parallel (0 or absent: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the result goes (default: a new folder under
    /// target/faultline/).
    #[arg(long)]
    pub out: Option<String>,
}

/// The search's state: where candidates go, how many ran, what must fail.
struct Search<'a> {
    a: &'a ShrinkArgs,
    out: PathBuf,
    target: String,
    runs: usize,
    jobs: usize,
}

impl Search<'_> {
    /// Runs the seed with `schedule` and `duration_ms` in a fresh folder;
    /// whether it failed the target check, with its result and folder.
    fn attempt(
        &self,
        n: usize,
        schedule: &Schedule,
        duration_ms: u64,
    ) -> anyhow::Result<(bool, PathBuf, RunResult)> {
        let dir = self.out.join("candidates").join(n.to_string());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let file = dir.join("schedule.json");
        write(&file, serde_json::to_string_pretty(schedule)?.as_bytes())?;
        let mut flags = self.a.run.clone();
        flags.schedule = Some(file.display().to_string());
        flags.duration = duration_ms;
        let r = watched(&flags, self.a.seed, &dir)?;
        let fails = r.failed_checks().any(|c| c.name == self.target);
        Ok((fails, dir, r))
    }

    /// Runs candidates in parallel (`jobs` at a time, in order) and
    /// returns the first, in candidate order, that fails the target.
    fn first_failing(&mut self, cands: &[(Schedule, u64)]) -> anyhow::Result<Option<usize>> {
        for batch in (0..cands.len()).collect::<Vec<_>>().chunks(self.jobs) {
            if self.runs >= self.a.max_runs {
                return Ok(None);
            }
            let base = self.runs;
            let outcomes: Vec<anyhow::Result<(bool, PathBuf, RunResult)>> =
                std::thread::scope(|s| {
                    let hs: Vec<_> = batch
                        .iter()
                        .enumerate()
                        .map(|(k, &i)| {
                            let (sch, d) = &cands[i];
                            let me = &*self;
                            s.spawn(move || me.attempt(base + k + 1, sch, *d))
                        })
                        .collect();
                    hs.into_iter()
                        .map(|h| h.join().expect("no panics"))
                        .collect()
                });
            self.runs += batch.len();
            for (k, o) in outcomes.into_iter().enumerate() {
                let (fails, dir, _) = o?;
                if fails {
                    return Ok(Some(batch[k]));
                }
                let _ = std::fs::remove_dir_all(dir);
            }
            eprintln!("  {} runs tried", self.runs);
        }
        Ok(None)
    }
}

/// `s` with its episodes moved close together: the first starts at
/// 300 ms, each next one 500 ms after the one before ended (the gaps in
/// each episode kept).
fn compressed(s: &Schedule) -> Schedule {
    let mut events = Vec::new();
    let mut next = 300;
    for r in s.episodes() {
        let ev = &s.events[r];
        let start = ev[0].at_ms;
        let shift = |at: u64| next + (at - start);
        let end = ev.iter().map(|e| shift(e.at_ms)).max().unwrap_or(next);
        events.extend(ev.iter().map(|e| faultline_nemesis::Event {
            at_ms: shift(e.at_ms),
            fault: e.fault.clone(),
        }));
        next = end + 500;
    }
    Schedule { events }
}

/// The chaos phase that ends 1.5 s after the last event of `s` (at least
/// 1 s), never longer than `max_ms`.
fn chaos_for(s: &Schedule, max_ms: u64) -> u64 {
    let last = s.events.iter().map(|e| e.at_ms).max().unwrap_or(0);
    (last + 1500).max(1000).min(max_ms)
}

/// A shrunk run, as `matrix --shrink` reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shrunk {
    /// The check the run fails, before and after.
    pub check: String,
    /// Fault episodes before and after.
    pub from_episodes: usize,
    pub episodes: usize,
    /// Chaos phase before and after, ms.
    pub from_chaos_ms: u64,
    pub chaos_ms: u64,
    /// Candidate runs it took, and their wall time.
    pub runs: usize,
    pub wall_s: f64,
    /// The command that replays the shrunk run.
    pub reproduce: String,
}

/// `faultline shrink`: see the module docs. Exit 1 with the shrunk run
/// (it fails), 2 (an error) when the seed does not fail to begin with.
pub fn shrink(a: ShrinkArgs) -> anyhow::Result<u8> {
    match shrink_run(&a)? {
        Some(_) => Ok(1),
        None => bail!(
            "seed {} is valid with these flags: nothing to shrink",
            a.seed
        ),
    }
}

/// Shrinks `a.seed`'s run; `None` when it does not fail.
pub(crate) fn shrink_run(a: &ShrinkArgs) -> anyhow::Result<Option<Shrunk>> {
    let started = std::time::Instant::now();
    let cfg = a.run.config(a.seed)?;
    let full = match a.run.load_schedule()? {
        Some(s) => s,
        None => Schedule::generate(
            a.seed,
            &cfg.nemesis,
            cfg.chaos_ms,
            &crate::run::topology(&cfg),
        ),
    };
    let out = campaign_dir("shrink", a.out.as_deref())?;
    let mut search = Search {
        a,
        out: out.clone(),
        target: String::new(),
        runs: 1,
        jobs: flags::jobs(a.jobs),
    };
    let (_, _, first) = search.attempt(0, &full, a.run.duration)?;
    let Some(target) = first.failed_checks().next().map(|c| c.name.clone()) else {
        return Ok(None);
    };
    search.target = target.clone();
    let episodes = full.episodes().len();
    eprintln!(
        "faultline shrink: seed {} fails {target}; {episodes} fault episodes, {} ms of chaos",
        a.seed, a.run.duration
    );
    let keep = ddmin(&mut search, &full, episodes)?;
    let mut kept = full.with_episodes(&keep);
    // A shorter chaos phase: first the kept episodes moved close together
    // from the start, then as they were; each ending 1.5 s after its last
    // fault.
    let mut found = None;
    for cand in [compressed(&kept), kept.clone()] {
        let short = chaos_for(&cand, a.run.duration);
        search.runs += 1;
        let (fails, dir, _) = search.attempt(search.runs, &cand, short)?;
        if fails {
            found = Some((short, dir));
            kept = cand;
            break;
        }
    }
    let (duration, final_dir) = if let Some(f) = found {
        f
    } else {
        // Replay the kept schedule at full length: the result is a run
        // seen to fail the same check, written whole.
        search.runs += 1;
        let (again, d, _) = search.attempt(search.runs, &kept, a.run.duration)?;
        assert!(
            again,
            "a kept set of episodes failed {target} before, deterministically"
        );
        (a.run.duration, d)
    };
    let reproduce = finish(
        a,
        &out,
        &final_dir,
        &kept,
        duration,
        (episodes, search.runs),
    )?;
    Ok(Some(Shrunk {
        check: target,
        from_episodes: episodes,
        episodes: kept.episodes().len(),
        from_chaos_ms: a.run.duration,
        chaos_ms: duration,
        runs: search.runs,
        wall_s: started.elapsed().as_secs_f64(),
        reproduce,
    }))
}

/// Delta debugging over the episodes `0..episodes` of `full`: try
/// dropping each of n chunks; on a candidate that still fails, keep the
/// rest and coarsen, else refine, until single episodes cannot be dropped
/// or the budget runs out. Returns the episodes kept.
fn ddmin(search: &mut Search<'_>, full: &Schedule, episodes: usize) -> anyhow::Result<Vec<usize>> {
    let duration = search.a.run.duration;
    let mut keep: Vec<usize> = (0..episodes).collect();
    let mut n = 2;
    while !keep.is_empty() && search.runs < search.a.max_runs {
        let size = keep.len().div_ceil(n);
        let cands: Vec<Vec<usize>> = keep
            .chunks(size)
            .map(|chunk| {
                keep.iter()
                    .copied()
                    .filter(|e| !chunk.contains(e))
                    .collect()
            })
            .collect();
        let scheds: Vec<(Schedule, u64)> = cands
            .iter()
            .map(|k| (full.with_episodes(k), duration))
            .collect();
        match search.first_failing(&scheds)? {
            Some(i) => {
                keep = cands[i].clone();
                n = (n - 1).max(2);
            }
            None if n >= keep.len() => break,
            None => n = (2 * n).min(keep.len()),
        }
        eprintln!("  {} episodes left", keep.len());
    }
    Ok(keep)
}

/// Writes the result: the shrunk run's folder (its page saying what it
/// was shrunk from), its schedule; prints the sizes and the command that
/// replays it, which it returns.
fn finish(
    a: &ShrinkArgs,
    out: &Path,
    run: &Path,
    schedule: &Schedule,
    duration: u64,
    (from_episodes, runs): (usize, usize),
) -> anyhow::Result<String> {
    let file = out.join("schedule.json");
    write(&file, serde_json::to_string_pretty(schedule)?.as_bytes())?;
    let sizes = format!(
        "shrunk from {from_episodes} fault episodes / {:.1} s of chaos to {} / {:.1} s in {runs} runs",
        a.run.duration as f64 / 1000.0,
        schedule.episodes().len(),
        duration as f64 / 1000.0
    );
    let dst = run_dir(out, a.seed);
    std::fs::create_dir_all(&dst)?;
    for e in std::fs::read_dir(run_dir(run, a.seed))? {
        let e = e?;
        let mut bytes = std::fs::read(e.path())?;
        if e.file_name() == "report.html" {
            bytes = with_note(&bytes, &sizes);
        }
        write(&dst.join(e.file_name()), &bytes)?;
    }
    let _ = std::fs::remove_dir_all(out.join("candidates"));
    let mut flags = a.run.clone();
    flags.schedule = Some(file.display().to_string());
    flags.duration = duration;
    let reproduce = flags.reproduce(a.seed);
    eprintln!("{sizes}");
    eprintln!("  report: {}", dst.join("report.html").display());
    eprintln!("  reproduce: {reproduce}");
    Ok(reproduce)
}

/// A run page with `note` under its title.
fn with_note(page: &[u8], note: &str) -> Vec<u8> {
    let page = String::from_utf8_lossy(page).into_owned();
    let p = format!("<p class=\"shrunk\">{}</p>\n", faultline_reports::esc(note));
    match page.find("</h1>\n") {
        Some(at) => {
            let at = at + "</h1>\n".len();
            format!("{}{p}{}", &page[..at], &page[at..]).into_bytes()
        }
        None => page.into_bytes(),
    }
}
