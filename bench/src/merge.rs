//! `faultline merge`: the campaign of several `bench --shard K/N` folders,
//! as if it had run in one.

use crate::output::{campaign_dir, campaign_report, run_dir, write};
use crate::run::RunResult;
use crate::summary::{junit_xml, SeedLine, SlowestCheck, Summary};
use anyhow::Context as _;
use clap::Args;
use std::path::Path;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Output directories of `faultline bench --shard K/N` runs.
    #[arg(required = true)]
    pub dirs: Vec<String>,
    /// Where the merged `summary.json`, `junit.xml` and `index.html` go
    /// (default: a new folder under target/faultline/).
    #[arg(long)]
    pub out: Option<String>,
}

/// Merges sharded campaigns: every run's verdict, one summary, one JUnit
/// file, and the exit code of the whole campaign.
pub fn merge(a: MergeArgs) -> anyhow::Result<u8> {
    let mut results: std::collections::BTreeMap<u64, RunResult> = Default::default();
    let mut lines: std::collections::BTreeMap<u64, SeedLine> = Default::default();
    // Where each seed's run directory is.
    let mut sources: std::collections::BTreeMap<u64, std::path::PathBuf> = Default::default();
    let mut config = serde_json::Value::Null;
    let mut wall_s = 0.0;
    let mut slowest: Option<SlowestCheck> = None;
    let mut interrupted = false;
    for d in &a.dirs {
        let dir = Path::new(d);
        let sp = dir.join("summary.json");
        let text = std::fs::read_to_string(&sp)
            .with_context(|| format!("{}: cannot read", sp.display()))?;
        let v: Summary = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench summary", sp.display()))?;
        if config.is_null() {
            config = v.config;
        }
        wall_s += v.wall_s;
        interrupted |= v.interrupted;
        if let Some(c) = v.slowest_check {
            if slowest.as_ref().is_none_or(|s| c.ms > s.ms) {
                slowest = Some(c);
            }
        }
        for line in v.seeds {
            let seed = line.seed;
            let vp = run_dir(dir, seed).join("verdict.json");
            let vt = std::fs::read_to_string(&vp)
                .with_context(|| format!("{}: cannot read", vp.display()))?;
            let r: RunResult = serde_json::from_str(&vt)
                .with_context(|| format!("{}: not a run verdict", vp.display()))?;
            results.insert(seed, r);
            lines.insert(seed, line);
            sources.insert(seed, run_dir(dir, seed));
        }
    }
    let results: Vec<RunResult> = results.into_values().collect();
    let merged = Summary::new(
        &results,
        wall_s,
        slowest,
        config.clone(),
        lines.into_values().collect(),
    );
    let mut merged = merged;
    if interrupted {
        merged.interrupt(); // a shard did not finish
    }
    let (result, valid, invalid, unknown) =
        (merged.result, merged.valid, merged.invalid, merged.unknown);
    let out = campaign_dir("merge", a.out.as_deref())?;
    // Every seed's record, and the whole directory of each seed a shard
    // kept (its page among it), so that the index links only to pages here.
    for (seed, src) in &sources {
        copy_run(src, &run_dir(&out, *seed))?;
    }
    write(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&merged)?.as_bytes(),
    )?;
    write(&out.join("junit.xml"), junit_xml(&results).as_bytes())?;
    write(
        &out.join("index.html"),
        campaign_report(
            &results,
            &merged.seeds,
            &faultline_reports::CampaignInfo {
                title: "merged campaign",
                command: &crate::campaign::command_line(),
                bug: None,
                config_json: &serde_json::to_string_pretty(&config)?,
            },
            &out,
        )
        .as_bytes(),
    )?;
    eprintln!(
        "{}: {} runs merged from {} directories: {valid} valid, {invalid} invalid, {unknown} unknown",
        result.to_string().to_uppercase(),
        results.len(),
        a.dirs.len()
    );
    Ok(result.exit_code() as u8)
}

/// Copies a run directory's files (not recursively: a run directory holds
/// files only), each written whole.
fn copy_run(src: &Path, dst: &Path) -> anyhow::Result<()> {
    if src == dst {
        return Ok(());
    }
    std::fs::create_dir_all(dst).with_context(|| format!("{}: cannot create", dst.display()))?;
    let entries =
        std::fs::read_dir(src).with_context(|| format!("{}: cannot read", src.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("{}: cannot read", src.display()))?;
        if e.file_type()?.is_file() {
            let bytes = std::fs::read(e.path())
                .with_context(|| format!("{}: cannot read", e.path().display()))?;
            write(&dst.join(e.file_name()), &bytes)?;
        }
    }
    Ok(())
}
