//! The mutation gate (`.cargo/mutants.toml`, `docs/mutants.md`): a short
//! mixed campaign that a mutant of the protocol core must survive to count
//! as missed. Both workloads, every nemesis kind, seeds nobody tuned a
//! check or a threshold on (8801..8848 and 8901..8924), and a 20 s
//! watchdog so that a mutant that hangs a run is caught in seconds rather
//! than after the default 300 s. On a correct node every run is valid; any
//! other verdict (invalid, unknown, a crash) fails the gate.
//!
//! It is also an ordinary test: `cargo test` runs it on the correct node.

use std::path::PathBuf;
use std::process::Command;

fn campaign(name: &str, args: &[&str]) {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mutation-gate-{name}"));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faultline"));
    cmd.args(["bench", "--duration", "10s", "--watchdog", "20", "--out"])
        .arg(&out)
        .args(args);
    let o = cmd.output().expect("the bench runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let flagged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" invalid: ") || l.contains(" unknown: "))
        .take(5)
        .collect();
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name} campaign {args:?}: exit {:?}; first findings:\n{}\n{}",
        o.status.code(),
        flagged.join("\n"),
        stderr.lines().last().unwrap_or("")
    );
}

#[test]
fn a_short_mixed_campaign_is_valid() {
    campaign("register", &["--seeds", "8801..8848"]);
    campaign("strict", &["--seeds", "8901..8924", "--workload", "strict"]);
}
