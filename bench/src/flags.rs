//! Every flag of `bench` in one place: [`BenchArgs`] (the campaign) with
//! [`RunFlags`] (what defines one run). The child process's arguments, the
//! reproduce line and the runs of `matrix` and `mixes` are all derived from
//! a `RunFlags`, never rebuilt by hand.

use crate::run::RunConfig;
use crate::system::SystemKind;
use anyhow::{bail, Context as _};
use clap::{Args, FromArgMatches as _};
use faultline_nemesis::{NemesisKind, Schedule};
use faultline_node::Bugs;
use faultline_workload::WorkloadKind;

/// Seeds of the default campaign.
pub const DEFAULT_SEEDS: u64 = 200;

/// What `faultline bench --help` says after the flags: the nemesis kinds
/// (a test keeps the list equal to `NemesisKind::ALL`) and examples.
pub const BENCH_AFTER_HELP: &str = "\
Nemesis kinds (--nemesis, comma-separated, or all / none):
  crash-leader, crash, partition-halves, partition-leader, partition-bridge,
  packet-loss, latency, add-node, restart-all, long-election, client-pause

Defaults: 200 seeds, 5 voters + 1 observer + 1 joiner, 10 clients, 5 keys,
20 s of chaos, 20 ms think time, every nemesis kind, the register workload,
all cores.

Examples:
  faultline bench --seeds 1001..1200 --workload strict
  faultline bench --seed 40 --nemesis crash-leader,partition-halves --bug skip-trunc

Exit codes: 0 valid, 1 a violation was found, 2 bad usage or input, 3 unknown.";

/// Arguments of `faultline bench`. With no flags: the embedded default
/// campaign.
#[derive(Args, Debug, Clone)]
#[command(after_help = BENCH_AFTER_HELP)]
pub struct BenchArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Run seeds 1..=N, or the range A..B (both ends included).
    #[arg(long, value_parser = parse_seeds)]
    pub seeds: Option<SeedRange>,
    /// What defines each run.
    #[command(flatten)]
    pub run: RunFlags,
    /// Runs in parallel (0 or absent: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where the campaign's folder goes (default: a new folder under
    /// target/faultline/, with a `latest` link to it).
    #[arg(long)]
    pub out: Option<String>,
    /// Print the campaign summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where to write the JUnit XML (default: OUT/junit.xml).
    #[arg(long)]
    pub junit: Option<String>,
    /// List the bug switches and exit.
    #[arg(long)]
    pub list_bugs: bool,
    /// Run only shard K of N (1-based): the seeds whose position modulo N
    /// is K-1, so that CI jobs can split a campaign; see `faultline merge`.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Run every seed twice and compare the history hashes.
    #[arg(long)]
    pub check_determinism: bool,
    /// Internal: run this one seed in this process and print its result
    /// as JSON (the campaign runs each seed in such a child process, so
    /// that the watchdog can stop a hung run).
    #[arg(long, hide = true)]
    pub internal_seed: Option<u64>,
    /// Internal, for the determinism test: run each given seed twice in
    /// this one process and print `seed hash1 hash2` per seed.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub internal_twice: Vec<u64>,
}

/// The flags that define one run (with its seed): every one of them is
/// passed to the run's child process and, when not at its default, shown
/// in the reproduce line.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RunFlags {
    /// Voters.
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// Observers.
    #[arg(long, default_value_t = 1)]
    pub observers: u64,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Keys.
    #[arg(long, default_value_t = 5)]
    pub keys: u64,
    /// Mean think time between a process's ops (each pause drawn from
    /// half to one and a half of it), e.g. `20ms`: longer is a lighter
    /// workload.
    #[arg(long, default_value = "20ms", value_parser = parse_duration_ms)]
    pub think: u64,
    /// Chaos phase per run, e.g. `10s` or `1500ms`.
    #[arg(long, default_value = "20s", value_parser = parse_duration_ms)]
    pub duration: u64,
    /// Faults: a comma-separated list of names, `all` or `none`.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Workload: register or strict.
    #[arg(long, default_value = "register")]
    pub workload: String,
    /// Replay this schedule (JSON, as saved in a run directory) instead of
    /// drawing one from the seed.
    #[arg(long)]
    pub schedule: Option<String>,
    /// The system under test: `zab` (faultline's ZAB node) or `raft`
    /// (raftkv, on TiKV's raft-rs).
    #[arg(long, default_value = "zab", value_parser = ["zab", "raft"])]
    pub system: String,
    /// Inject a bug into every server (see --list-bugs: each system has
    /// its own).
    #[arg(long)]
    pub bug: Option<String>,
    /// Judge without what leaders report committed (the durable files and
    /// the disk and network records alone; the reports are otherwise a
    /// cross-check).
    #[arg(long)]
    pub no_leader_reports: bool,
    /// Wall-clock limit of one run, in seconds (at least 1).
    #[arg(long, default_value_t = 300, value_parser = parse_watchdog)]
    pub watchdog: u64,
    /// What each run leaves on disk: `failing` (every artifact of a seed
    /// that is not valid, only `verdict.json` for a valid one) or `all`.
    #[arg(long, default_value = "failing", value_parser = ["failing", "all"])]
    pub keep: String,
    /// Internal, for the bench's own tests: make the run of each seed fail
    /// in the bench itself (`panic`: a panic in the harness; `abort`: the
    /// child process aborts), to show that such a failure is `unknown`.
    #[arg(long, hide = true)]
    pub internal_fault: Option<String>,
}

impl BenchArgs {
    /// The command that replays `seed` of this campaign: its run flags,
    /// and `--out` when one was given (so the replay lands beside the
    /// campaign's run, not in a new folder).
    pub fn reproduce(&self, seed: u64) -> String {
        let mut s = self.run.reproduce(seed);
        if let Some(o) = &self.out {
            s.push_str(" --out ");
            s.push_str(o);
        }
        s
    }
}

impl Default for RunFlags {
    /// Every flag at its command-line default.
    fn default() -> RunFlags {
        RunFlags::from_flags(&[]).expect("the defaults parse")
    }
}

impl RunFlags {
    /// Run flags from these command-line flags, every other one at its
    /// default (the defaults live in one place: the clap definition).
    pub fn from_flags(flags: &[&str]) -> anyhow::Result<RunFlags> {
        let cmd = <RunFlags as Args>::augment_args(clap::Command::new("bench"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("bench").chain(flags.iter().copied()))
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("")))?;
        Ok(RunFlags::from_arg_matches(&matches)?)
    }

    /// The flags as command-line arguments: every one (`all`, for a child
    /// process) or only those not at their default (for a reproduce line).
    /// The only place that spells the flags out.
    pub fn to_args(&self, all: bool) -> Vec<String> {
        let d = RunFlags::default();
        let mut v = Vec::new();
        let mut flag = |name: &str, value: String, default: bool| {
            if all || !default {
                v.push(format!("--{name}"));
                v.push(value);
            }
        };
        flag("nodes", self.nodes.to_string(), self.nodes == d.nodes);
        flag(
            "observers",
            self.observers.to_string(),
            self.observers == d.observers,
        );
        flag(
            "clients",
            self.clients.to_string(),
            self.clients == d.clients,
        );
        flag("keys", self.keys.to_string(), self.keys == d.keys);
        flag("think", format!("{}ms", self.think), self.think == d.think);
        // The duration always: it is what a reader of the line looks for.
        flag("duration", format!("{}ms", self.duration), false);
        flag("nemesis", self.nemesis.clone(), self.nemesis == d.nemesis);
        flag(
            "workload",
            self.workload.clone(),
            self.workload == d.workload,
        );
        flag("system", self.system.clone(), self.system == d.system);
        if let Some(f) = &self.schedule {
            flag("schedule", f.clone(), false);
        }
        if let Some(b) = &self.bug {
            flag("bug", b.clone(), false);
        }
        flag(
            "watchdog",
            self.watchdog.to_string(),
            self.watchdog == d.watchdog,
        );
        flag("keep", self.keep.clone(), self.keep == d.keep);
        if let Some(f) = &self.internal_fault {
            flag("internal-fault", f.clone(), false);
        }
        if self.no_leader_reports {
            v.push("--no-leader-reports".into());
        }
        v
    }

    /// Whether a run with this verdict keeps every artifact (history in
    /// both formats, trace, schedule, config, page) or only its verdict.
    pub fn keeps_all(&self, result: faultline_checker::Validity) -> bool {
        self.keep == "all" || result != faultline_checker::Validity::Valid
    }

    /// The command that shrinks `seed`'s failing run (same flags).
    pub fn shrink_command(&self, seed: u64) -> String {
        let mut s = format!("cargo run --release -- shrink --seed {seed}");
        for a in self.to_args(false) {
            s.push(' ');
            s.push_str(&a);
        }
        s
    }

    /// The command that replays `seed` exactly.
    pub fn reproduce(&self, seed: u64) -> String {
        let mut s = format!("cargo run --release -- bench --seed {seed}");
        for a in self.to_args(false) {
            s.push(' ');
            s.push_str(&a);
        }
        s
    }

    /// The configuration of `seed`'s run, or a one-line error on bad
    /// flags.
    pub fn config(&self, seed: u64) -> anyhow::Result<RunConfig> {
        let nemesis = NemesisKind::parse_list(&self.nemesis).map_err(anyhow::Error::msg)?;
        let workload = match self.workload.as_str() {
            "register" => WorkloadKind::Register,
            "strict" => WorkloadKind::Strict,
            w => bail!("unknown workload {w:?} (known: register, strict)"),
        };
        if self.nodes == 0 || self.nodes > 9 {
            bail!("--nodes must be between 1 and 9");
        }
        if self.clients == 0 || self.keys == 0 {
            bail!("--clients and --keys must be at least 1");
        }
        let system = match self.system.as_str() {
            "raft" => SystemKind::Raft,
            _ => SystemKind::Zab,
        };
        let mut bugs = Bugs::default();
        let mut raft_bugs = faultline_raftkv::Bugs::default();
        if let Some(b) = &self.bug {
            let (known, names): (bool, Vec<&str>) = match system {
                SystemKind::Zab => (bugs.enable(b), Bugs::ALL.iter().map(|(n, _)| *n).collect()),
                SystemKind::Raft => (
                    raft_bugs.enable(b),
                    faultline_raftkv::Bugs::ALL
                        .iter()
                        .map(|(n, _)| *n)
                        .collect(),
                ),
            };
            if !known {
                bail!(
                    "unknown bug {b:?} for --system {} (known: {})",
                    system.name(),
                    names.join(", ")
                );
            }
        }
        Ok(RunConfig {
            seed,
            voters: self.nodes,
            observers: self.observers,
            joiner: nemesis.contains(&NemesisKind::AddNode),
            workload,
            processes: self.clients,
            keys: self.keys,
            think_ms: self.think,
            op_timeout_ms: 1000,
            warmup_ms: 1000,
            chaos_ms: self.duration,
            quiesce_ms: 3000,
            liveness_ms: 5000,
            nemesis,
            bugs,
            watchdog_s: self.watchdog,
            // 1..=20 ms, a pure function of the seed.
            fsync_ms: 1 + (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) % 20,
            // 20..=200 txns, a pure function of the seed.
            snapshot_interval: 20 + (seed.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 40) % 181,
            leader_reports: !self.no_leader_reports,
            system,
            raft_bugs,
        })
    }

    /// The flags that give `cfg` back (a run's saved `config.json`; no
    /// `--schedule`): an error when none do, as for a configuration
    /// written by another version of the bench.
    pub fn from_config(cfg: &RunConfig) -> anyhow::Result<RunFlags> {
        let nemesis = if cfg.nemesis == NemesisKind::ALL {
            "all".to_string()
        } else if cfg.nemesis.is_empty() {
            "none".to_string()
        } else {
            let names: Vec<&str> = cfg.nemesis.iter().map(|k| k.name()).collect();
            names.join(",")
        };
        let bug = match cfg.system {
            SystemKind::Zab => Bugs::ALL.iter().map(|(n, _)| *n).find(|n| {
                let mut b = Bugs::default();
                b.enable(n);
                b == cfg.bugs
            }),
            SystemKind::Raft => faultline_raftkv::Bugs::ALL
                .iter()
                .map(|(n, _)| *n)
                .find(|n| {
                    let mut b = faultline_raftkv::Bugs::default();
                    b.enable(n);
                    b == cfg.raft_bugs
                }),
        };
        let clean = cfg.bugs == Bugs::default() && cfg.raft_bugs == Default::default();
        if bug.is_none() && !clean {
            bail!("it has bug switches no single --bug gives");
        }
        let flags = RunFlags {
            nodes: cfg.voters,
            observers: cfg.observers,
            clients: cfg.processes,
            keys: cfg.keys,
            think: cfg.think_ms,
            duration: cfg.chaos_ms,
            nemesis,
            workload: cfg.workload.name().to_string(),
            system: cfg.system.name().to_string(),
            bug: bug.map(str::to_string),
            no_leader_reports: !cfg.leader_reports,
            watchdog: cfg.watchdog_s,
            ..RunFlags::default()
        };
        let back = flags.config(cfg.seed)?;
        if serde_json::to_value(&back)? != serde_json::to_value(cfg)? {
            bail!("its settings differ from what bench flags give");
        }
        Ok(flags)
    }

    /// The schedule given with `--schedule`, if any; a one-line error if
    /// it cannot be read.
    pub fn load_schedule(&self) -> anyhow::Result<Option<Schedule>> {
        match &self.schedule {
            Some(f) => {
                let text =
                    std::fs::read_to_string(f).with_context(|| format!("{f}: cannot read"))?;
                Ok(Some(Schedule::from_json(&text).with_context(|| f.clone())?))
            }
            None => Ok(None),
        }
    }
}

/// Seeds `first..=last`, from `--seeds N` (1..=N) or `--seeds A..B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    /// The first seed.
    pub first: u64,
    /// The last seed (included).
    pub last: u64,
}

impl SeedRange {
    /// The seeds, in order.
    pub fn iter(self) -> std::ops::RangeInclusive<u64> {
        self.first..=self.last
    }
}

/// Parses `N` (seeds 1..=N, N >= 1) or `A..B` (A <= B, both included).
pub fn parse_seeds(s: &str) -> Result<SeedRange, String> {
    let bad = || format!("{s:?} is not a seed count N or a range A..B with A <= B");
    let (first, last) = match s.split_once("..") {
        Some((a, b)) => (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        ),
        None => (1, s.trim().parse().map_err(|_| bad())?),
    };
    if last == 0 || first > last {
        return Err(bad());
    }
    Ok(SeedRange { first, last })
}

/// Parses `K/N` with 1 <= K <= N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a shard K/N with 1 <= K <= N");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Parses `10s`, `1500ms` or a plain number of seconds into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 10s, 1500ms)"))?;
    if !(v > 0.0 && v * mult < 1e9) {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok((v * mult) as u64)
}

/// Parses `--watchdog`: a whole number of seconds, at least 1 (0 would
/// stop every run at once, so it is refused like `--timeout 0`).
fn parse_watchdog(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("the watchdog must be at least 1 second".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number of seconds")),
    }
}

/// The number of runs in parallel: `jobs`, or every core when it is absent
/// or 0 (as `--jobs 0` means in every command).
pub fn jobs(jobs: Option<usize>) -> usize {
    match jobs {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_nemesis_kind() {
        let listed: String = BENCH_AFTER_HELP
            .lines()
            .skip_while(|l| !l.starts_with("Nemesis kinds"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        let listed: Vec<&str> = listed.split(',').map(str::trim).collect();
        let all: Vec<&str> = faultline_nemesis::NemesisKind::ALL
            .iter()
            .map(|k| k.name())
            .collect();
        assert_eq!(listed, all);
    }

    #[test]
    fn jobs_zero_means_every_core() {
        assert_eq!(jobs(Some(3)), 3);
        assert_eq!(jobs(Some(0)), jobs(None));
        assert!(jobs(None) >= 1);
    }

    #[test]
    fn default_flags_reproduce_with_the_duration_only() {
        let f = RunFlags::default();
        assert_eq!(
            f.reproduce(7),
            "cargo run --release -- bench --seed 7 --duration 20000ms"
        );
    }

    #[test]
    fn every_flag_round_trips_through_its_arguments() {
        let f = RunFlags::from_flags(&[
            "--nodes",
            "3",
            "--observers",
            "0",
            "--clients",
            "4",
            "--keys",
            "2",
            "--think",
            "50ms",
            "--duration",
            "3s",
            "--nemesis",
            "crash,latency",
            "--workload",
            "strict",
            "--schedule",
            "s.json",
            "--bug",
            "ack-before-fsync",
            "--no-leader-reports",
            "--watchdog",
            "9",
            "--internal-fault",
            "panic",
        ])
        .unwrap();
        for all in [true, false] {
            let args = f.to_args(all);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(RunFlags::from_flags(&refs).unwrap(), f, "all={all}");
        }
        let d = RunFlags::default();
        let args = d.to_args(true);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(RunFlags::from_flags(&refs).unwrap(), d);
    }
}
