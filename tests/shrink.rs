//! Shrinking a failing run: the same failure, smaller; its reproduce line,
//! budgets, and the moves for failures that a plain search cannot keep.

mod common;

use common::{dir, faultline, json};
use serde_json::Value;

/// A short run that fails `quorum-acks` with no fault needed.
const FAILING_RUN: [&str; 6] = [
    "--seed",
    "1001",
    "--duration",
    "3s",
    "--bug",
    "ack-before-fsync",
];

/// The rest of the first line of `err` that begins (once trimmed) with
/// `prefix`.
fn after<'a>(err: &'a str, prefix: &str) -> &'a str {
    err.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {err}"))
}

/// Runs `faultline` with `args` (a shrink of `seed`), which must end with
/// exit 1 after saying the seed fails `check`; its stderr.
fn shrunk(args: &[&str], seed: u64, check: &str) -> String {
    let o = faultline(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("seed {seed} fails {check}")), "{err}");
    err
}

/// The shrunk run's reproduce line, run into a new folder `name`, fails
/// `check` again.
fn replay_fails(err: &str, name: &str, check: &str) {
    let line = after(err, "reproduce: cargo run --release -- ");
    let replay = dir(name);
    let mut args: Vec<&str> = line.split(' ').collect();
    args.extend(["--out", &replay]);
    assert_eq!(faultline(&args).status.code(), Some(1), "{line}");
    let v = json(&format!("{replay}/summary.json"));
    let failed = v["seeds"][0]["failed_checks"].as_array().unwrap().clone();
    assert!(failed.contains(&Value::from(check)), "{failed:?}");
}

/// The chaos phase (ms) of the shrunk run of `seed` in `out`.
fn chaos_ms(out: &str, seed: u64) -> u64 {
    let cfg = json(&format!("{out}/runs/seed-{seed}/config.json"));
    cfg["chaos_ms"].as_u64().unwrap()
}

/// The fault episodes the shrunk run has (its `now:` line).
fn episodes_now(err: &str) -> usize {
    let now = after(err, "now: ");
    now.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn shrink_keeps_the_same_failure_with_fewer_faults() {
    let out = dir("shrink");
    let mut args = vec!["shrink"];
    args.extend(FAILING_RUN);
    args.extend(["--jobs", "2", "--out", &out]);
    let err = shrunk(&args, 1001, "quorum-acks");
    // Fewer episodes, a shorter chaos phase and fewer clients than it
    // started with (this bug needs no fault at all).
    let sizes = after(&err, "shrunk from ");
    assert!(sizes.contains("/ 3.0 s / 10 clients to 0 / "), "{sizes}");
    let cfg = json(&format!("{out}/runs/seed-1001/config.json"));
    assert!(cfg["processes"].as_u64().unwrap() < 10, "{cfg}");
    assert!(chaos_ms(&out, 1001) < 3000, "{cfg}");
    // The reproduce command fails the same check.
    replay_fails(&err, "shrink-replay", "quorum-acks");
    let page = std::fs::read_to_string(format!("{out}/runs/seed-1001/report.html")).unwrap();
    let note = format!("<p class=\"shrunk\">shrunk from {sizes}");
    assert!(page.contains(&note), "the page says {note}");
    // A valid seed: nothing to shrink, exit 2.
    let o = faultline(&[
        "shrink",
        "--seed",
        "1",
        "--duration",
        "2s",
        "--out",
        &dir("shrink-valid"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to shrink"));
}

/// `shrink RUN_DIR` reads the failing run's flags from its folder, and
/// `--max-runs` ends the search with the best failing run found so far.
#[test]
fn shrink_takes_a_run_folder_and_a_budget() {
    let camp = dir("shrink-from");
    let mut args = vec!["bench"];
    args.extend(FAILING_RUN);
    args.extend(["--out", &camp]);
    let o = faultline(&args);
    assert_eq!(o.status.code(), Some(1));
    let run = format!("{camp}/runs/seed-1001");
    let out = dir("shrink-from-out");
    let o = faultline(&[
        "shrink",
        &run,
        "--max-runs",
        "3",
        "--jobs",
        "1",
        "--out",
        &out,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("seed 1001 fails quorum-acks"), "{err}");
    assert!(err.contains("stopped (max-runs)"), "{err}");
    // Three runs tried, the replay of the result makes four.
    assert!(err.contains(" in 4 runs"), "{err}");
    let line = after(&err, "reproduce: cargo run --release -- ");
    assert!(line.contains("--bug ack-before-fsync"), "{line}");
    // A wall-time budget spent by the first run: the original, replayed.
    let o = faultline(&[
        "shrink",
        &run,
        "--timeout",
        "1ms",
        "--out",
        &dir("shrink-timeout"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("stopped (timeout)"), "{err}");
    let sizes = after(&err, "shrunk from ");
    let (from, to) = sizes.split_once(" to ").expect("from and to");
    let episodes = from.split(' ').next().unwrap();
    assert_eq!(to, format!("{episodes} / 3.0 s / 10 clients in 2 runs"));
    // Flags beside a run folder, or a folder that is not a run: exit 2.
    let o = faultline(&["shrink", &run, "--clients", "3"]);
    assert_eq!(o.status.code(), Some(2));
    let o = faultline(&["shrink", &camp]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config.json: cannot read"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The schedule a shrink starts from, in `testdata/shrink/`.
fn testdata(name: &str) -> String {
    format!("{}/testdata/shrink/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The events' times of a `schedule.json`.
fn times(path: &str) -> Vec<u64> {
    let s = json(path);
    let events = s["events"].as_array().unwrap();
    events
        .iter()
        .map(|e| e["at_ms"].as_u64().unwrap())
        .collect()
}

/// skip-trunc at 23003, shrunk before whole-second cuts to one episode
/// (every server isolated for 5,618 ms): the failure needs the repair to
/// land just before the election's notification rounds (1 s apart once
/// backed off), which no factor of the episode's length keeps. Cut by
/// whole seconds, the same seed fails the same way under 5 s of chaos.
#[test]
fn shrink_cuts_an_episode_by_whole_seconds() {
    let out = dir("shrink-seconds");
    let err = shrunk(
        &[
            "shrink",
            "--seed",
            "23003",
            "--clients",
            "5",
            "--keys",
            "1",
            "--think",
            "40ms",
            "--duration",
            "5921ms",
            "--nemesis",
            "crash-leader,crash,partition-halves,partition-leader,partition-bridge,\
         packet-loss,latency,restart-all,long-election,client-pause",
            "--schedule",
            &testdata("long-election-23003.json"),
            "--bug",
            "skip-trunc",
            "--jobs",
            "2",
            "--out",
            &out,
        ],
        23003,
        "read-guarantees",
    );
    let sizes = after(&err, "shrunk from ");
    assert!(!sizes.contains('→'), "the same seed: {sizes}");
    assert!(chaos_ms(&out, 23003) <= 5000, "{sizes}");
    // Still one isolation, ending at the same point within the second.
    let t = times(&format!("{out}/schedule.json"));
    assert_eq!(t.len(), 2, "{t:?}");
    let span = t[1] - t[0];
    assert!(span < 5618 && (5618 - span).is_multiple_of(1000), "{t:?}");
}

/// A race the original seed's draws only give late in a long run
/// (orphan-ephemeral at 9014: a silence that ends as the session expires,
/// about 20 s in; no fault is needed, but no shorter run of that seed
/// fails) is found again under another draw: the last draw spends what is
/// left of the budget, past the first 8 seeds. The result names its seed,
/// and its reproduce line fails the same check.
#[test]
fn shrink_redraws_a_race_its_seed_cannot_keep() {
    let out = dir("shrink-draws");
    let err = shrunk(
        &[
            "shrink",
            "--seed",
            "9014",
            "--bug",
            "orphan-ephemeral",
            "--jobs",
            "2",
            "--out",
            &out,
        ],
        9014,
        "sessions",
    );
    let sizes = after(&err, "shrunk from ");
    assert!(sizes.contains("seed 9014 → "), "{sizes}");
    let line = after(&err, "reproduce: cargo run --release -- ");
    let seed: u64 = line.split(' ').nth(2).unwrap().parse().unwrap();
    assert!(seed > 9014 + 8, "past the first draws: {line}");
    assert!(chaos_ms(&out, seed) <= 5000, "{sizes}");
    assert!(episodes_now(&err) <= 3, "{sizes}");
    replay_fails(&err, "shrink-draws-replay", "sessions");
}
