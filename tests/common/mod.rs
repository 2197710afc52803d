//! What the binary's end-to-end tests share: running `faultline`, a
//! fresh folder, reading JSON.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the binary with `args`.
pub fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs")
}

/// A fresh folder for a test, by name.
pub fn dir(name: &str) -> String {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bench")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d.to_string_lossy().into_owned()
}

/// A JSON file, parsed.
pub fn json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `faultline bench --out OUT --jobs 1 EXTRA`, which must pass.
pub fn bench(out: &str, extra: &[&str]) -> Output {
    let mut args = vec!["bench", "--out", out, "--jobs", "1"];
    args.extend_from_slice(extra);
    let o = faultline(&args);
    assert!(
        o.status.code() == Some(0),
        "bench {extra:?}: exit {:?}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}
