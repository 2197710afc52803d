//! The search's state and moves: each candidate a child run under the
//! watchdog in its own folder, `--jobs` at a time; the best run so far
//! replaced only by a candidate seen to fail the same check; a budget of
//! runs and wall time (and Ctrl-C) that ends it with the best so far.

use super::reduce::Cand;
use super::Size;
use crate::campaign::watched;
use crate::interrupt::Interrupted;
use crate::output::write;
use anyhow::Context as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Instant;

/// The search: where candidates go, what must fail, the budget, and the
/// smallest failing run found so far.
pub(super) struct Search {
    pub out: PathBuf,
    /// The check every kept candidate fails (`--check`, or the
    /// original's first failed check).
    pub target: String,
    /// Candidate runs started, the original included.
    pub runs: usize,
    pub jobs: usize,
    pub max_runs: usize,
    pub deadline: Option<Instant>,
    /// Why the search ended early (`max-runs`, `timeout`, `interrupted`).
    pub stopped: Option<&'static str>,
    /// The smallest run seen to fail the target, and its folder.
    pub best: Cand,
    pub best_dir: PathBuf,
    /// The best run's history hash.
    pub best_hash: String,
    /// Whether stderr is a terminal (the progress line rewrites itself).
    tty: bool,
}

/// What one candidate run gave: whether it failed the target, its folder
/// and its history hash.
pub(super) struct Outcome {
    pub fails: bool,
    pub dir: PathBuf,
    pub hash: String,
    /// The checks it failed, in the order they ran.
    pub failed: Vec<String>,
}

impl Search {
    /// A search from `original`, not yet run.
    pub fn new(out: PathBuf, original: Cand, jobs: usize, max_runs: usize) -> Search {
        Search {
            best_dir: out.join("candidates").join("0"),
            out,
            target: String::new(),
            runs: 0,
            jobs,
            max_runs,
            deadline: None,
            stopped: None,
            best: original,
            best_hash: String::new(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Runs `c` in `dir` (its schedule written there); whether it failed
    /// the target check. Ctrl-C gives the error [`Interrupted`].
    pub fn attempt(&self, dir: PathBuf, c: &Cand) -> anyhow::Result<Outcome> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let file = dir.join("schedule.json");
        write(&file, serde_json::to_string_pretty(&c.schedule)?.as_bytes())?;
        let mut flags = c.flags.clone();
        flags.schedule = Some(file.display().to_string());
        let r = watched(&flags, c.seed, &dir)?;
        let fails = r.failed_checks().any(|k| k.name == self.target);
        let failed = r.failed_checks().map(|k| k.name.clone()).collect();
        Ok(Outcome {
            fails,
            dir,
            failed,
            hash: r.history_hash,
        })
    }

    /// Whether the budget allows another run; records why not.
    fn budget_left(&mut self) -> bool {
        if self.stopped.is_none() {
            if crate::interrupt::interrupted() {
                self.stopped = Some("interrupted");
            } else if self.runs >= self.max_runs {
                self.stopped = Some("max-runs");
            } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.stopped = Some("timeout");
            }
        }
        self.stopped.is_none()
    }

    /// Runs `cands` in order, `jobs` at a time, until one fails the
    /// target: it becomes the best run and its index is returned. `None`
    /// when none does or the budget ran out first.
    pub fn first_failing(&mut self, cands: &[Cand]) -> anyhow::Result<Option<usize>> {
        let mut next = 0;
        while next < cands.len() && self.budget_left() {
            let n = self
                .jobs
                .min(cands.len() - next)
                .min(self.max_runs - self.runs);
            let base = self.runs;
            let outcomes: Vec<anyhow::Result<Outcome>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..n)
                    .map(|k| {
                        let dir = self.out.join("candidates").join((base + k).to_string());
                        let (me, c) = (&*self, &cands[next + k]);
                        s.spawn(move || me.attempt(dir, c))
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("no panics"))
                    .collect()
            });
            self.runs += n;
            let mut found = None;
            for (k, o) in outcomes.into_iter().enumerate() {
                let o = match o {
                    Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
                        self.stopped = Some("interrupted");
                        continue;
                    }
                    o => o?,
                };
                if o.fails && found.is_none() {
                    found = Some(next + k);
                    self.best = cands[next + k].clone();
                    self.best_dir = o.dir;
                    self.best_hash = o.hash;
                } else {
                    let _ = std::fs::remove_dir_all(o.dir);
                }
            }
            next += n;
            self.progress();
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The progress line: runs tried and the best run's size (rewritten
    /// in place on a terminal, a line per batch otherwise).
    pub fn progress(&self) {
        let line = format!(
            "  {} runs tried; now {}",
            self.runs,
            Size::of(&self.best).describe()
        );
        if self.tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the progress line on a terminal.
    pub fn end_progress(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Delta debugging over the episodes of the best run's schedule: try
/// dropping each of n chunks; on a candidate that still fails, keep the
/// rest and coarsen, else refine, until single episodes cannot be dropped
/// or the budget runs out.
pub(super) fn ddmin(search: &mut Search) -> anyhow::Result<()> {
    let full = search.best.clone();
    let mut keep: Vec<usize> = (0..full.schedule.episodes().len()).collect();
    let mut n = 2;
    while !keep.is_empty() && search.stopped.is_none() {
        let size = keep.len().div_ceil(n);
        let sets: Vec<Vec<usize>> = keep
            .chunks(size)
            .map(|chunk| {
                keep.iter()
                    .copied()
                    .filter(|e| !chunk.contains(e))
                    .collect()
            })
            .collect();
        let cands: Vec<Cand> = sets
            .iter()
            .map(|k| Cand {
                seed: full.seed,
                schedule: full.schedule.with_episodes(k),
                flags: full.flags.clone(),
            })
            .collect();
        match search.first_failing(&cands)? {
            Some(i) => {
                keep = sets[i].clone();
                n = (n - 1).max(2);
            }
            None if n >= keep.len() => break,
            None => n = (2 * n).min(keep.len()),
        }
    }
    Ok(())
}
