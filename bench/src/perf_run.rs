//! `faultline perf --suite node`, first part: the default run (the
//! embedded campaign's configuration, in this process, one core), its
//! simulated seconds per wall second beside turmoil's idle ceiling for
//! the same host count measured here, and where its wall time goes:
//! simulate, check, write (a valid seed's verdict, and every artifact as a
//! failing seed writes them).

use crate::flags::RunFlags;
use crate::output::write_run_dir;
use crate::perf_node::idle_ceiling;
use crate::run::{self, RunConfig};
use faultline_nemesis::Schedule;
use std::time::{Duration, Instant};

/// One default run's wall time by phase.
struct Phases {
    sim_s: f64,
    simulate: Duration,
    check: Duration,
    write_valid: Duration,
    write_all: Duration,
}

/// Runs seed `seed` of the default campaign and times its phases.
fn one(seed: u64, scratch: &std::path::Path) -> anyhow::Result<(RunConfig, Phases)> {
    let flags = RunFlags::default();
    let cfg = flags.config(seed)?;
    let schedule = Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &run::topology(&cfg));
    let t = Instant::now();
    let (r, art) = run::run(&cfg, &schedule).map_err(|e| anyhow::anyhow!(e.message()))?;
    let total = t.elapsed();
    // The run's own wall time ends where the checks begin.
    let simulate = Duration::from_secs_f64(r.wall_s).min(total);
    let t = Instant::now();
    write_run_dir(scratch, &cfg, &r, &art, &flags)?;
    let write_valid = t.elapsed();
    let all = RunFlags {
        keep: "all".into(),
        ..flags
    };
    let t = Instant::now();
    write_run_dir(scratch, &cfg, &r, &art, &all)?;
    let write_all = t.elapsed();
    Ok((
        cfg,
        Phases {
            sim_s: r.sim_s,
            simulate,
            check: total - simulate,
            write_valid,
            write_all,
        },
    ))
}

fn median(v: Vec<f64>) -> f64 {
    crate::perf::median_by(v, f64::total_cmp)
}

/// Prints the default run's figures over seeds `1..=seeds` (medians).
pub fn report(seeds: u64) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("faultline-perf-{}", std::process::id()));
    let mut runs = Vec::new();
    let mut cfg = None;
    for seed in 1..=seeds.max(1) {
        let (c, p) = one(seed, &scratch)?;
        cfg = Some(c);
        runs.push(p);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let cfg = cfg.expect("at least one seed");
    let topo = run::topology(&cfg);
    // The servers and the client host run all along; the joiner only
    // from its add-node on, so the ceiling is the higher one of the host
    // count without it (the conservative comparison).
    let hosts = topo.servers.len() + 1;
    let ceiling = idle_ceiling(hosts, Duration::from_secs(5));
    let speed = median(
        runs.iter()
            .map(|p| p.sim_s / p.simulate.as_secs_f64())
            .collect(),
    );
    let ms = |f: fn(&Phases) -> Duration| {
        median(runs.iter().map(|p| f(p).as_secs_f64() * 1e3).collect())
    };
    let (sim, check, wv, wa) = (
        ms(|p| p.simulate),
        ms(|p| p.check),
        ms(|p| p.write_valid),
        ms(|p| p.write_all),
    );
    let total = sim + check + wv;
    out!(
        "default run ({} seeds; {} servers and the client host, the joiner from its add-node on; one core):",
        runs.len(),
        topo.servers.len()
    );
    out!(
        "  {:.1} simulated s in {:.0} ms: {speed:.1}x real time, {:.0}% of the idle ceiling for {hosts} hosts ({ceiling:.1}x, measured here)",
        median(runs.iter().map(|p| p.sim_s).collect()),
        sim,
        100.0 * speed / ceiling
    );
    out!(
        "  wall time per run (medians): simulate {sim:.0} ms ({:.0}%), check {check:.1} ms ({:.0}%), write {wv:.1} ms ({:.0}%; {wa:.1} ms with every artifact, as a failing seed)",
        100.0 * sim / total,
        100.0 * check / total,
        100.0 * wv / total
    );
    Ok(())
}
