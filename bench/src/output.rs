//! Where a campaign's files go and how they are written: the campaign
//! folder (by default a new one under `target/faultline/`), each run's
//! directory (config, schedule, history as JSON lines and EDN, trace,
//! verdict, report page) and the campaign page. Every file is written
//! whole or not at all.

use crate::run::{RunArtifacts, RunConfig, RunResult};
use anyhow::Context as _;
use faultline_checker::Validity;
use faultline_nemesis::{Effect, Entry};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes a file whole or not at all: into a fresh temporary file beside
/// it, synced, then renamed into place (a crash leaves either the old file
/// or the new one, never a partial file that looks complete).
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let cannot = || format!("{}: cannot write", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(cannot)?;
    tmp.write_all(bytes).with_context(cannot)?;
    tmp.as_file().sync_all().with_context(cannot)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(cannot)?;
    Ok(())
}

/// The folder a command's output goes to: `out` when given, else a new
/// folder `target/faultline/KIND-YYYYMMDD-HHMMSS` (so that a new campaign
/// never mixes with old runs) with `target/faultline/latest` pointing at
/// it. Created, with its `runs/` folder.
pub fn campaign_dir(kind: &str, out: Option<&str>) -> anyhow::Result<PathBuf> {
    let dir = match out {
        Some(o) => PathBuf::from(o),
        None => {
            let root = target_dir().join("faultline");
            let stamp = utc_stamp(std::time::SystemTime::now());
            let mut dir = root.join(format!("{kind}-{stamp}"));
            let mut n = 2;
            while dir.exists() {
                dir = root.join(format!("{kind}-{stamp}-{n}"));
                n += 1;
            }
            dir
        }
    };
    std::fs::create_dir_all(dir.join("runs"))
        .with_context(|| format!("{}: cannot create", dir.display()))?;
    if out.is_none() {
        link_latest(&dir);
    }
    Ok(dir)
}

/// Cargo's target folder: `CARGO_TARGET_DIR`, else the `target` folder
/// this executable was built into, else `./target`.
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "target"))
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Points `latest` beside `dir` at it (best effort: a missing link never
/// fails a campaign).
fn link_latest(dir: &Path) {
    #[cfg(unix)]
    if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
        let tmp = parent.join(format!(".latest-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(name, &tmp).is_ok()
            && std::fs::rename(&tmp, parent.join("latest")).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The directory of `seed`'s run in the campaign folder `out`.
pub fn run_dir(out: &Path, seed: u64) -> PathBuf {
    out.join("runs").join(format!("seed-{seed}"))
}

/// Writes a run's directory: every artifact (config, schedule, history in
/// JSON lines and EDN, trace, verdict, page) when `flags` keep it all (by
/// default, the seeds that fail), otherwise the compact record,
/// `verdict.json` alone.
pub fn write_run_dir(
    out: &Path,
    cfg: &RunConfig,
    r: &RunResult,
    art: &RunArtifacts,
    flags: &crate::flags::RunFlags,
) -> anyhow::Result<()> {
    let all = flags.keeps_all(r.result);
    let reproduce = &flags.reproduce(cfg.seed);
    let dir = run_dir(out, cfg.seed);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    if !all {
        return write(
            &dir.join("verdict.json"),
            serde_json::to_string_pretty(r)?.as_bytes(),
        );
    }
    write(
        &dir.join("config.json"),
        serde_json::to_string_pretty(cfg)?.as_bytes(),
    )?;
    write(
        &dir.join("schedule.json"),
        serde_json::to_string_pretty(&art.schedule)?.as_bytes(),
    )?;
    let mut h = Vec::new();
    faultline_history::jsonl::write_ops(&mut h, &art.history)?;
    write(&dir.join("history.jsonl"), &h)?;
    let mut e = Vec::new();
    faultline_history::edn::write_ops(&mut e, &art.history)?;
    write(&dir.join("history.edn"), &e)?;
    write(
        &dir.join("trace.jsonl"),
        (art.trace.join("\n") + "\n").as_bytes(),
    )?;
    write(
        &dir.join("verdict.json"),
        serde_json::to_string_pretty(r)?.as_bytes(),
    )?;
    write(
        &dir.join("report.html"),
        run_report(cfg, r, art, reproduce).as_bytes(),
    )?;
    Ok(())
}

/// Fault intervals from the nemesis log: a fault opens an interval, the
/// next repair closes every open one; a moment is drawn as a short span;
/// notes (a reaction armed or given up) change nothing.
fn fault_spans(log: &[Entry]) -> Vec<faultline_reports::Span> {
    let mut spans: Vec<faultline_reports::Span> = Vec::new();
    for e in log {
        let ns = e.at_ms * 1_000_000;
        match e.effect {
            Effect::Repair => {
                for s in spans.iter_mut().filter(|s| s.end_ns.is_none()) {
                    s.end_ns = Some(ns);
                }
            }
            Effect::Fault | Effect::Moment => spans.push(faultline_reports::Span {
                start_ns: ns,
                end_ns: (e.effect == Effect::Moment).then_some(ns + 100_000_000),
                label: e.what.clone(),
            }),
            Effect::Note => {}
        }
    }
    spans
}

fn run_report(cfg: &RunConfig, r: &RunResult, art: &RunArtifacts, reproduce: &str) -> String {
    let history = faultline_history::History::new(art.history.clone()).unwrap_or_default();
    let page = faultline_reports::RunPage {
        title: format!("seed {}", cfg.seed),
        result: r.result,
        reproduce: (r.result != Validity::Valid).then(|| reproduce.to_string()),
        checks: &r.checks,
        history: &history,
        faults: fault_spans(&r.nemesis_log),
        phases: art.phases.clone(),
        band_from_ns: art.phases.last().map(|p| p.0),
        leaders: art
            .leaders
            .iter()
            .map(
                |&(start_ns, end_ns, sid, epoch)| faultline_reports::LeaderSpan {
                    start_ns,
                    end_ns,
                    sid,
                    epoch,
                },
            )
            .collect(),
        facts: vec![
            ("ops invoked".into(), r.ops.to_string()),
            ("ops ok".into(), r.ok.to_string()),
            ("faults applied".into(), r.faults.to_string()),
            ("leader changes".into(), r.leader_changes.to_string()),
            (
                "learner protocol errors (back to LOOKING)".into(),
                r.protocol_errors.to_string(),
            ),
            (
                "latency p50 / p99".into(),
                format!("{:.1} / {:.1} ms", r.latency_ms.0, r.latency_ms.1),
            ),
            (
                "simulated / wall time".into(),
                format!("{:.1} s / {:.2} s", r.sim_s, r.wall_s),
            ),
            ("history hash".into(), r.history_hash.clone()),
        ],
        config_json: serde_json::to_string_pretty(cfg).ok(),
        messages_per_second: art.messages_per_second.clone(),
    };
    faultline_reports::run_page(&page)
}

/// The campaign's configuration: a run's, without what each seed draws
/// for itself (the seed, the fsync latency and the snapshot interval).
pub fn campaign_config(run: &RunConfig) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(run)?;
    if let Some(m) = v.as_object_mut() {
        for per_seed in ["seed", "fsync_ms", "snapshot_interval"] {
            m.remove(per_seed);
        }
    }
    Ok(v)
}

/// The campaign page of `results` (`lines` give each failing seed's
/// reproduce command); a seed's row links to its run page when `out`
/// holds one.
pub fn campaign_report(
    results: &[RunResult],
    lines: &[crate::summary::SeedLine],
    info: &faultline_reports::CampaignInfo<'_>,
    out: &Path,
) -> String {
    let reproduce: std::collections::BTreeMap<u64, &String> = lines
        .iter()
        .filter_map(|l| l.reproduce.as_ref().map(|r| (l.seed, r)))
        .collect();
    let rows: Vec<faultline_reports::CampaignRow> = results
        .iter()
        .map(|r| faultline_reports::CampaignRow {
            seed: r.seed,
            result: r.result,
            failed: r
                .checks
                .iter()
                .filter(|c| c.result != Validity::Valid)
                .map(|c| c.name.clone())
                .collect(),
            ops: r.ops,
            faults: r.faults,
            latency_ms: r.latency_ms,
            anomaly: r.checks.iter().find_map(|c| c.anomalies.first().cloned()),
            link: run_dir(out, r.seed)
                .join("report.html")
                .exists()
                .then(|| format!("runs/seed-{}/report.html", r.seed)),
            reproduce: reproduce.get(&r.seed).map(|s| s.to_string()),
        })
        .collect();
    let mut hist = vec![0u64; faultline_reports::plots::LATENCY_EDGES_MS.len()];
    for r in results {
        for (h, c) in hist.iter_mut().zip(&r.latency_hist) {
            *h += c;
        }
    }
    faultline_reports::campaign_page(info, &rows, &hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        let at = |s: u64| utc_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "19700101-000000");
        assert_eq!(at(951_782_400), "20000229-000000");
        assert_eq!(at(1_795_000_000), "20261118-110640");
    }

    #[test]
    fn spans_come_from_the_typed_log() {
        let e = |at_ms, effect, what: &str| Entry {
            at_ms,
            effect,
            what: what.into(),
        };
        let spans = fault_spans(&[
            e(1, Effect::Note, "armed"),
            e(2, Effect::Fault, "crashed leader 1"),
            e(3, Effect::Moment, "started joiner 7"),
            e(5, Effect::Repair, "restarted crashed servers"),
            e(6, Effect::Fault, "packet loss 5%"),
        ]);
        let got: Vec<_> = spans
            .iter()
            .map(|s| (s.start_ns / 1_000_000, s.end_ns.map(|e| e / 1_000_000)))
            .collect();
        assert_eq!(got, vec![(2, Some(5)), (3, Some(103)), (6, None)]);
    }

    #[test]
    fn write_replaces_a_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("history.jsonl");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }
}
