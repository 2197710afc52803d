//! `faultline shrink` (issue 13): a failing run made smaller while it
//! still fails the same check. First delta debugging over the schedule's
//! fault episodes (a fault and its repairs go together); then a shorter
//! chaos phase (the kept episodes moved close together, each made
//! shorter, the tail after the last fault cut); then a smaller cluster and
//! workload (fewer clients, keys and observers, no joiner, a longer think
//! time); a run still too large to read at a glance is tried under other
//! draws of the workload (the next seeds) and shrunk again. Every candidate
//! is a deterministic run of a seed with an explicit schedule and flags, run in a child process under the
//! watchdog, `--jobs` at a time; a candidate that does not fail the same
//! check is never kept, and the result is replayed from its reproduce
//! line and checked to fail again, with the same history, before it is
//! reported.

mod redraw;
mod reduce;
mod search;

use crate::campaign::watched;
use crate::flags::{self, parse_duration_ms, RunFlags};
use crate::output::{campaign_dir, run_dir, write};
use crate::run::RunConfig;
use anyhow::{bail, Context as _};
use clap::Args;
use faultline_nemesis::{NemesisKind, Schedule};
use redraw::{redraw, Draws};
use reduce::{
    chaos_for, compressed, gap_scaled, scaled, shortenings, spans, time_scaled, Cand, FACTORS,
    TOPOLOGY_STEPS,
};
use search::{ddmin, Search};
use std::path::Path;
use std::time::{Duration, Instant};

/// The default budget of candidate runs: about 40 s of wall time on 2
/// cores when every candidate is a full default run, much less once they
/// are small.
pub const MAX_RUNS: usize = 400;

/// Arguments of `faultline shrink`.
#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// A failing run's folder, as `bench` leaves it (its `config.json` and
    /// `schedule.json` say what ran), instead of `--seed` and run flags.
    #[arg(
        value_name = "RUN_DIR",
        conflicts_with = "seed",
        required_unless_present = "seed"
    )]
    pub run_dir: Option<String>,
    /// The failing seed (with the run's flags, as for `bench`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The run's flags, as for `bench`.
    #[command(flatten)]
    pub run: RunFlags,
    /// The check the shrunk run must fail (default: the first check the
    /// run fails); one it does not fail is an error.
    #[arg(long)]
    pub check: Option<String>,
    /// Give up after this many candidate runs, with the smallest failing
    /// run found so far.
    #[arg(long, default_value_t = MAX_RUNS)]
    pub max_runs: usize,
    /// Give up after this much wall time (e.g. `60s`), with the smallest
    /// failing run found so far (the runs under way finish first).
    #[arg(long, value_parser = parse_duration_ms)]
    pub timeout: Option<u64>,
    /// Candidates run in parallel (0 or absent: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the result goes (default: a new folder under
    /// target/faultline/).
    #[arg(long)]
    pub out: Option<String>,
}

impl ShrinkArgs {
    /// Arguments that shrink `seed`'s run with `run`, every other one at
    /// its default.
    pub fn for_seed(seed: u64, run: RunFlags) -> ShrinkArgs {
        ShrinkArgs {
            run_dir: None,
            seed: Some(seed),
            run,
            check: None,
            max_runs: MAX_RUNS,
            timeout: None,
            jobs: None,
            out: None,
        }
    }

    /// The seed and flags of the run to shrink: given, or read from the
    /// run folder.
    fn resolve(&self) -> anyhow::Result<(u64, RunFlags)> {
        let Some(dir) = &self.run_dir else {
            let seed = self
                .seed
                .expect("clap requires --seed without a run folder");
            return Ok((seed, self.run.clone()));
        };
        let given = RunFlags {
            watchdog: self.run.watchdog,
            ..RunFlags::default()
        };
        if self.run != given {
            bail!("a run folder carries its own flags: give none but --watchdog with it");
        }
        let dir = Path::new(dir);
        let file = dir.join("config.json");
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "{}: cannot read (is {} a failing run's folder?)",
                file.display(),
                dir.display()
            )
        })?;
        let cfg: RunConfig = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a run configuration", file.display()))?;
        let mut run = RunFlags::from_config(&cfg)
            .with_context(|| format!("{}: no bench flags give it", file.display()))?;
        run.watchdog = self.run.watchdog;
        let schedule = dir.join("schedule.json");
        if !schedule.is_file() {
            bail!("{}: missing", schedule.display());
        }
        run.schedule = Some(schedule.display().to_string());
        Ok((cfg.seed, run))
    }
}

/// How big a run is: what shrinking makes smaller.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Size {
    /// Its seed (another than the original's after a redraw).
    pub seed: u64,
    /// Fault episodes in its schedule.
    pub episodes: usize,
    /// Its chaos phase, ms.
    pub chaos_ms: u64,
    /// Client processes.
    pub clients: usize,
    /// Keys.
    pub keys: u64,
    /// Observers.
    pub observers: u64,
    /// Whether a joining server is configured.
    pub joiner: bool,
    /// Mean think time, ms.
    pub think_ms: u64,
}

impl Size {
    fn of(c: &Cand) -> Size {
        let joiner = NemesisKind::parse_list(&c.flags.nemesis)
            .is_ok_and(|k| k.contains(&NemesisKind::AddNode));
        Size {
            seed: c.seed,
            episodes: c.schedule.episodes().len(),
            chaos_ms: c.flags.duration,
            clients: c.flags.clients,
            keys: c.flags.keys,
            observers: c.flags.observers,
            joiner,
            think_ms: c.flags.think,
        }
    }

    /// What a reviewer reads first, smaller is better: fault episodes,
    /// then chaos time, then clients.
    fn rank(&self) -> (usize, u64, usize) {
        (self.episodes, self.chaos_ms, self.clients)
    }

    /// Whether the run is small enough to read at a glance: at most
    /// [`SMALL_EPISODES`] fault episodes and [`SMALL_CHAOS_MS`] of chaos.
    fn is_small(&self) -> bool {
        self.episodes <= SMALL_EPISODES && self.chaos_ms <= SMALL_CHAOS_MS
    }

    /// `31 fault episodes / 20.0 s / 10 clients`.
    fn headline(&self) -> String {
        format!(
            "{} fault episodes / {:.1} s / {} clients",
            self.episodes,
            self.chaos_ms as f64 / 1000.0,
            self.clients
        )
    }

    /// The headline with keys, observers, joiner and think time.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} keys, {} observers, {}, {} ms think time",
            self.headline(),
            self.keys,
            self.observers,
            if self.joiner { "a joiner" } else { "no joiner" },
            self.think_ms
        )
    }

    /// What the page and the console say: `shrunk from 31 fault episodes
    /// / 20.0 s / 10 clients to 2 / 3.0 s / 3 clients in N runs`, then
    /// what else changed.
    fn note(&self, to: &Size, runs: usize) -> String {
        let mut s = format!(
            "shrunk from {} to {} / {:.1} s / {} clients in {runs} runs",
            self.headline(),
            to.episodes,
            to.chaos_ms as f64 / 1000.0,
            to.clients
        );
        let mut also = Vec::new();
        if to.seed != self.seed {
            also.push(format!("seed {} → {}", self.seed, to.seed));
        }
        if to.keys != self.keys {
            also.push(format!("keys {} → {}", self.keys, to.keys));
        }
        if to.observers != self.observers {
            also.push(format!("observers {} → {}", self.observers, to.observers));
        }
        if to.joiner != self.joiner {
            also.push("no joiner".to_string());
        }
        if to.think_ms != self.think_ms {
            also.push(format!("think time {} → {} ms", self.think_ms, to.think_ms));
        }
        if !also.is_empty() {
            s.push_str(&format!(" ({})", also.join(", ")));
        }
        s
    }
}

/// A shrunk run, as `matrix --shrink` reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shrunk {
    /// The check the run fails, before and after.
    pub check: String,
    /// The run's size before.
    pub from: Size,
    /// The shrunk run's size.
    pub to: Size,
    /// Candidate runs it took (the original and the final replay
    /// included), and their wall time.
    pub runs: usize,
    pub wall_s: f64,
    /// Why the search ended before it was done (`max-runs`, `timeout`,
    /// `interrupted`), if it did.
    pub stopped: Option<String>,
    /// The command that replays the shrunk run.
    pub reproduce: String,
}

/// `faultline shrink`: see the module docs. Exit 1 with the shrunk run
/// (it fails), 2 (an error) when the run does not fail to begin with.
pub fn shrink(a: ShrinkArgs) -> anyhow::Result<u8> {
    crate::interrupt::catch();
    let (seed, _) = a.resolve()?;
    match shrink_run(&a)? {
        Some(_) => Ok(1),
        None => bail!("seed {seed} is valid with these flags: nothing to shrink"),
    }
}

/// Shrinks the run `a` names; `None` when it does not fail.
pub(crate) fn shrink_run(a: &ShrinkArgs) -> anyhow::Result<Option<Shrunk>> {
    let started = Instant::now();
    let (seed, run) = a.resolve()?;
    let cfg = run.config(seed)?;
    let schedule = match run.load_schedule()? {
        Some(s) => s,
        None => Schedule::generate(
            seed,
            &cfg.nemesis,
            cfg.chaos_ms,
            &crate::run::topology(&cfg),
        ),
    };
    let out = campaign_dir("shrink", a.out.as_deref())?;
    let original = Cand {
        seed,
        schedule,
        flags: RunFlags {
            schedule: None,
            ..run
        },
    };
    let from = Size::of(&original);
    let mut search = Search::new(out.clone(), original, flags::jobs(a.jobs), a.max_runs);
    search.deadline = a.timeout.map(|ms| started + Duration::from_millis(ms));
    let first = search.attempt(search.best_dir.clone(), &search.best)?;
    search.runs = 1;
    search.best_hash = first.hash;
    let Some(first_failed) = first.failed.first() else {
        let _ = std::fs::remove_dir_all(&out);
        return Ok(None);
    };
    let target = match &a.check {
        None => first_failed.clone(),
        Some(c) if first.failed.contains(c) => c.clone(),
        Some(c) => bail!(
            "seed {seed} does not fail {c} (it fails {})",
            first.failed.join(", ")
        ),
    };
    search.target = target.clone();
    eprintln!(
        "faultline shrink: seed {seed} fails {target}; {}",
        from.describe()
    );
    steps(&mut search)?;
    search.end_progress();
    if let Some(why) = search.stopped {
        eprintln!("  stopped ({why}): the smallest failing run so far follows");
    }
    let to = Size::of(&search.best);
    let reproduce = finish(&mut search, &from, &to)?;
    Ok(Some(Shrunk {
        check: target,
        from,
        to,
        runs: search.runs,
        wall_s: started.elapsed().as_secs_f64(),
        stopped: search.stopped.map(str::to_string),
        reproduce,
    }))
}

/// A run a reviewer takes in at a glance has at most this many fault
/// episodes...
const SMALL_EPISODES: usize = 3;
/// ...and at most this much chaos (ms). A run larger than that after the
/// other steps is tried under other draws ([`redraw`]).
const SMALL_CHAOS_MS: u64 = 5_000;

/// The search's steps, in order, on `search`'s best run: delta debugging
/// and a shorter chaos phase (again while they help), another draw when
/// the run stays large after the first delta debugging, a smaller cluster
/// and workload, both again, and another draw at the end if the run is
/// still larger than a reviewer takes in at a glance.
fn steps(search: &mut Search) -> anyhow::Result<()> {
    // Fewer episodes, then shorter ones: a shorter run may let another
    // episode go, so again while either helps (three rounds at most).
    for round in 0..3 {
        let before = Size::of(&search.best);
        ddmin(search)?;
        if round == 0 && Size::of(&search.best).episodes > SMALL_EPISODES {
            // Every smaller subset took the run another way: shortening
            // all those episodes rarely helps, another draw may.
            redraw(search, Draws::Few)?;
        }
        shorter_chaos(search)?;
        if search.stopped.is_some() || Size::of(&search.best) == before {
            break;
        }
    }
    for (_, step) in TOPOLOGY_STEPS {
        if search.stopped.is_some() {
            break;
        }
        let cands = step(&search.best);
        search.first_failing(&cands)?;
    }
    // A smaller cluster and workload take another course: the episodes
    // may now go, or move earlier.
    if search.stopped.is_none() {
        ddmin(search)?;
        shorter_chaos(search)?;
    }
    if !Size::of(&search.best).is_small() {
        redraw(search, Draws::Rest)?;
    }
    Ok(())
}

/// A shorter chaos phase, each move kept only if the run still fails:
/// the whole schedule at once (the kept episodes moved close together from
/// the start, or played faster, or only the phase cut 1.5 s after the last
/// fault); then each episode made shorter (by [`shortenings`]); then each
/// quiet gap before an episode (alike); then a shorter tail after the last
/// fault.
fn shorter_chaos(search: &mut Search) -> anyhow::Result<()> {
    let tail = |c: &Cand| {
        let last = c.schedule.events.iter().map(|e| e.at_ms).max().unwrap_or(0);
        c.flags.duration.saturating_sub(last)
    };
    // Candidates from the best run: `moves` give schedules, each run with
    // a chaos phase `tail` after its last fault; only shorter ones.
    let shorter = |b: &Cand, moves: Vec<(Schedule, u64)>| -> Vec<Cand> {
        moves
            .into_iter()
            .map(|(schedule, t)| {
                let mut k = b.clone();
                k.flags.duration = chaos_for(&schedule, t, b.flags.duration);
                k.schedule = schedule;
                k
            })
            .filter(|k| k.flags.duration < b.flags.duration)
            .collect()
    };
    let b = search.best.clone();
    let mut moves = vec![(compressed(&b.schedule), 1500)];
    moves.extend(FACTORS.map(|f| (time_scaled(&b.schedule, f), 1500)));
    moves.push((b.schedule.clone(), 1500));
    search.first_failing(&shorter(&b, moves))?;
    // A failure that needs the state a stretch of workload builds: the
    // schedule played faster with a denser workload (the think time cut
    // by the same factor) reaches that state sooner.
    let b = search.best.clone();
    let dense: Vec<Cand> = [0.25, 0.5]
        .into_iter()
        .filter(|_| b.flags.think >= 4)
        .map(|f| {
            let mut k = b.clone();
            k.schedule = time_scaled(&b.schedule, f);
            k.flags.think = ((b.flags.think as f64 * f).round() as u64).max(1);
            k.flags.duration = chaos_for(&k.schedule, 1500, b.flags.duration);
            k
        })
        .filter(|k| k.flags.duration < b.flags.duration)
        .collect();
    search.first_failing(&dense)?;
    // Cuts by whole seconds once few episodes are left: on a larger run
    // they would double this step's runs, and delta debugging comes again.
    let n = search.best.schedule.episodes().len();
    let seconds = n <= SMALL_EPISODES;
    for i in 0..n {
        let b = search.best.clone();
        let (_, span) = spans(&b.schedule)[i];
        let moves = shortenings(span, seconds).into_iter();
        let moves = moves.map(|f| (scaled(&b.schedule, i, f), tail(&b)));
        search.first_failing(&shorter(&b, moves.collect()))?;
        let b = search.best.clone();
        let (gap, _) = spans(&b.schedule)[i];
        let moves = shortenings(gap, seconds).into_iter();
        let moves = moves.map(|f| (gap_scaled(&b.schedule, i, f), tail(&b)));
        search.first_failing(&shorter(&b, moves.collect()))?;
    }
    let b = search.best.clone();
    let moves = [300, 800].map(|t| (b.schedule.clone(), t));
    search.first_failing(&shorter(&b, moves.to_vec()))?;
    Ok(())
}

/// Writes the result: the minimal `schedule.json`, the shrunk run's folder
/// (`config.json`, histories, its page saying what it was shrunk from)
/// and the command that replays it, which is run once more and must fail
/// the same check with the same history; prints the sizes, the page and
/// that command, which it returns.
fn finish(search: &mut Search, from: &Size, to: &Size) -> anyhow::Result<String> {
    let out = search.out.clone();
    let seed = search.best.seed;
    let file = out.join("schedule.json");
    write(
        &file,
        serde_json::to_string_pretty(&search.best.schedule)?.as_bytes(),
    )?;
    let mut flags = search.best.flags.clone();
    flags.schedule = Some(file.display().to_string());
    if search.stopped == Some("interrupted") {
        // Every run would stop at once: the best run was seen to fail,
        // but is not replayed once more.
        eprintln!("  (interrupted: the result is not replayed once more)");
    } else {
        let replay = watched(&flags, seed, &out.join("candidates").join("replay"))?;
        search.runs += 1;
        if replay.history_hash != search.best_hash
            || !replay.failed_checks().any(|c| c.name == search.target)
        {
            bail!(
                "the shrunk run did not replay exactly from {} (history {} then {}): determinism is broken",
                file.display(),
                search.best_hash,
                replay.history_hash
            );
        }
    }
    let note = from.note(to, search.runs);
    let dst = run_dir(&out, seed);
    std::fs::create_dir_all(&dst)?;
    for e in std::fs::read_dir(run_dir(&search.best_dir, seed))? {
        let e = e?;
        let mut bytes = std::fs::read(e.path())?;
        if e.file_name() == "report.html" {
            bytes = with_note(&bytes, &note);
        }
        write(&dst.join(e.file_name()), &bytes)?;
    }
    let _ = std::fs::remove_dir_all(out.join("candidates"));
    let reproduce = flags.reproduce(seed);
    eprintln!("{note}");
    eprintln!("  now: {}", to.describe());
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
