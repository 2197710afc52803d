//! The campaign's verdict files: `summary.json` (one typed schema, written
//! by `bench` and read back and written by `merge`) and `junit.xml`.

use crate::run::RunResult;
use faultline_checker::Validity;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// `summary.json`: one schema, written by `bench` and by `merge` (which
/// reads the shards' summaries back with it).
#[derive(Serialize, Deserialize)]
pub struct Summary {
    /// The verdict of every run combined.
    pub result: Validity,
    /// Runs.
    pub runs: usize,
    /// Valid runs.
    pub valid: usize,
    /// Invalid runs.
    pub invalid: usize,
    /// Runs without a verdict.
    pub unknown: usize,
    /// Wall seconds.
    pub wall_s: f64,
    /// The check that took longest over every run (wall time; for figures
    /// only).
    pub slowest_check: Option<SlowestCheck>,
    /// How often sessions expired and elections outlasted them.
    #[serde(default)]
    pub sessions: SessionFigures,
    /// Whether Ctrl-C stopped the campaign: the summary covers the seeds
    /// that finished, and a campaign that found nothing is `unknown`.
    #[serde(default)]
    pub interrupted: bool,
    /// The campaign's configuration: what every run shares (a run's
    /// `RunConfig` without its seed, fsync latency and snapshot interval).
    pub config: serde_json::Value,
    /// One line per run, by seed.
    pub seeds: Vec<SeedLine>,
}

impl Summary {
    /// The summary of `results` (their verdicts counted and combined).
    pub fn new(
        results: &[RunResult],
        wall_s: f64,
        slowest_check: Option<SlowestCheck>,
        config: serde_json::Value,
        seeds: Vec<SeedLine>,
    ) -> Summary {
        let count = |v: Validity| results.iter().filter(|r| r.result == v).count();
        Summary {
            result: Validity::combine(results.iter().map(|r| r.result)),
            runs: results.len(),
            valid: count(Validity::Valid),
            invalid: count(Validity::Invalid),
            unknown: count(Validity::Unknown),
            wall_s,
            slowest_check,
            sessions: SessionFigures::of(results),
            interrupted: false,
            config,
            seeds,
        }
    }
}

/// The time without a leader that counts as a long election: the longest
/// session timeout the workload asks for (200 ticks of the node's 10 ms).
pub const LONG_ELECTION_MS: u64 = 2_000;

/// Session figures over a campaign: whether expiries and long elections,
/// which the sessions check needs to judge anything, really happened.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionFigures {
    /// Runs whose sessions the `sessions` check judged.
    pub judged_runs: usize,
    /// Expiries in those runs.
    pub expiries: usize,
    /// Of those runs, the ones with at least one expiry.
    pub runs_with_expiry: usize,
    /// Runs with no established leader for at least [`LONG_ELECTION_MS`]
    /// after the first one was established.
    pub runs_with_long_election: usize,
}

impl SessionFigures {
    /// The figures of `results`.
    pub fn of(results: &[RunResult]) -> SessionFigures {
        let judged: Vec<usize> = results.iter().filter_map(|r| r.session_expiries).collect();
        SessionFigures {
            judged_runs: judged.len(),
            expiries: judged.iter().sum(),
            runs_with_expiry: judged.iter().filter(|&&n| n > 0).count(),
            runs_with_long_election: results
                .iter()
                .filter(|r| r.longest_leaderless_ms >= LONG_ELECTION_MS)
                .count(),
        }
    }
}

impl Summary {
    /// Marks the campaign as stopped by Ctrl-C: what it found stands, but
    /// no violation found is not a verdict of the seeds that never ran.
    pub fn interrupt(&mut self) {
        self.interrupted = true;
        if self.result == Validity::Valid {
            self.result = Validity::Unknown;
        }
    }
}

/// The check that took longest over a campaign.
#[derive(Clone, Serialize, Deserialize)]
pub struct SlowestCheck {
    /// The seed.
    pub seed: u64,
    /// The check.
    pub check: String,
    /// Its wall milliseconds.
    pub ms: f64,
}

/// One run in `summary.json`.
#[derive(Clone, Serialize, Deserialize)]
pub struct SeedLine {
    /// The seed.
    pub seed: u64,
    /// The run's verdict.
    pub result: Validity,
    /// The checks not valid.
    pub failed_checks: Vec<String>,
    /// Ops invoked.
    pub ops: usize,
    /// Ops ok.
    pub ok: usize,
    /// Faults applied.
    pub faults: usize,
    /// Leader changes.
    pub leader_changes: usize,
    /// Learner protocol errors.
    pub protocol_errors: usize,
    /// Sessions expired (`None`: not judged).
    #[serde(default)]
    pub session_expiries: Option<usize>,
    /// The longest time without an established leader, ms.
    #[serde(default)]
    pub longest_leaderless_ms: u64,
    /// Median latency of ok ops, ms.
    pub latency_p50_ms: f64,
    /// 99th percentile latency of ok ops, ms.
    pub latency_p99_ms: f64,
    /// Simulated seconds.
    pub sim_s: f64,
    /// Wall seconds.
    pub wall_s: f64,
    /// FNV-1a of the history.
    pub history_hash: String,
    /// The command that replays a failing run.
    pub reproduce: Option<String>,
}

pub fn slowest_check(results: &[RunResult]) -> Option<(u64, &str, f64)> {
    results
        .iter()
        .flat_map(|r| r.check_ms.iter().map(|(n, ms)| (r.seed, n.as_str(), *ms)))
        .max_by(|a, b| a.2.total_cmp(&b.2))
}

/// One test case per (seed, check): a failure for an invalid check, a
/// skip for one without a verdict and for one that does not apply to the
/// system under test (never a pass).
pub fn junit_xml(results: &[RunResult]) -> String {
    let cases: usize = results
        .iter()
        .map(|r| r.checks.len() + r.not_applicable.len())
        .sum();
    let failures: usize = results
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| c.result == Validity::Invalid)
        .count();
    let skipped: usize = results
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| c.result == Validity::Unknown)
        .count()
        + results
            .iter()
            .map(|r| r.not_applicable.len())
            .sum::<usize>();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"faultline bench\" tests=\"{cases}\" failures=\"{failures}\" skipped=\"{skipped}\">"
    );
    for r in results {
        let _ = writeln!(
            s,
            "  <testsuite name=\"seed-{}\" tests=\"{}\" time=\"{:.3}\">",
            r.seed,
            r.checks.len() + r.not_applicable.len(),
            r.wall_s
        );
        for c in &r.checks {
            let _ = write!(
                s,
                "    <testcase classname=\"seed-{}\" name=\"{}\"",
                r.seed,
                faultline_reports::esc(&c.name)
            );
            match c.result {
                Validity::Valid => s.push_str("/>\n"),
                Validity::Invalid => {
                    let _ = writeln!(
                        s,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        faultline_reports::esc(c.anomalies.first().map_or("", |a| a.as_str())),
                        faultline_reports::esc(&c.anomalies.join("\n"))
                    );
                }
                Validity::Unknown => {
                    let _ = writeln!(
                        s,
                        "><skipped message=\"{}\"/></testcase>",
                        faultline_reports::esc(
                            c.anomalies.first().map_or("unknown", |a| a.as_str())
                        )
                    );
                }
            }
        }
        for name in &r.not_applicable {
            let _ = writeln!(
                s,
                "    <testcase classname=\"seed-{}\" name=\"{}\"><skipped message=\"not applicable: the system keeps no evidence this check reads\"/></testcase>",
                r.seed,
                faultline_reports::esc(name)
            );
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

impl SeedLine {
    /// The line of `r`, with its reproduce command when it failed.
    pub fn of(r: &RunResult, reproduce: String) -> SeedLine {
        SeedLine {
            seed: r.seed,
            result: r.result,
            failed_checks: r.failed_checks().map(|c| c.name.clone()).collect(),
            ops: r.ops,
            ok: r.ok,
            faults: r.faults,
            leader_changes: r.leader_changes,
            protocol_errors: r.protocol_errors,
            session_expiries: r.session_expiries,
            longest_leaderless_ms: r.longest_leaderless_ms,
            latency_p50_ms: r.latency_ms.0,
            latency_p99_ms: r.latency_ms.1,
            sim_s: r.sim_s,
            wall_s: r.wall_s,
            history_hash: r.history_hash.clone(),
            reproduce: (r.result != Validity::Valid).then_some(reproduce),
        }
    }
}

/// The slowest check of `results` as the summary records it.
pub fn slowest(results: &[RunResult]) -> Option<SlowestCheck> {
    slowest_check(results).map(|(seed, check, ms)| SlowestCheck {
        seed,
        check: check.to_string(),
        ms,
    })
}
