//! Campaign output end to end: what a campaign keeps, shards and merge
//! (as the CI examples run them), Ctrl-C.

mod common;

use common::{bench, dir, faultline, json};
use std::path::PathBuf;
use std::process::Command;

/// The links of a campaign page, each checked to exist.
fn assert_links_exist(dir: &str) {
    let index = std::fs::read_to_string(format!("{dir}/index.html")).unwrap();
    for part in index.split("href=\"").skip(1) {
        let link = part.split('"').next().unwrap();
        if !link.starts_with('#') && !link.contains("://") {
            assert!(
                PathBuf::from(format!("{dir}/{link}")).exists(),
                "{dir}: {link}"
            );
        }
    }
}

#[test]
fn shards_keep_failing_seeds_whole_and_merge_copies_what_it_links() {
    // As the CI examples do: two shards of one campaign, then merge.
    let flags = [
        "--seeds",
        "4",
        "--duration",
        "2s",
        "--bug",
        "commit-without-quorum",
    ];
    let (s1, s2, merged) = (dir("shard-1"), dir("shard-2"), dir("merged"));
    for (d, shard) in [(&s1, "1/2"), (&s2, "2/2")] {
        let mut args = vec!["bench", "--out", d, "--jobs", "1", "--shard", shard];
        args.extend(flags);
        let o = faultline(&args);
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_links_exist(d);
    }
    let o = faultline(&["merge", &s1, &s2, "--out", &merged]);
    let s = json(&format!("{merged}/summary.json"));
    assert_eq!(s["runs"], 4);
    assert_eq!(o.status.code(), Some(if s["invalid"] == 0 { 0 } else { 1 }));
    assert!(s["invalid"].as_u64().unwrap() > 0, "the bug is caught: {s}");
    assert_links_exist(&merged);
    // The campaign's configuration is what every run shares: no seed.
    assert!(
        s["config"]["seed"].is_null() && !s["config"]["keys"].is_null(),
        "{s}"
    );
    // Each page names its command, the bug switch and how to reproduce.
    let page = std::fs::read_to_string(format!("{s1}/index.html")).unwrap();
    assert!(
        page.contains("command: <code>faultline bench --out"),
        "{page}"
    );
    assert!(page.contains("bug switch: <code>commit-without-quorum</code>"));
    let merged_page = std::fs::read_to_string(format!("{merged}/index.html")).unwrap();
    assert!(
        merged_page.contains("<h2>Reproduce</h2>")
            && merged_page.contains("--bug commit-without-quorum")
    );
    for line in s["seeds"].as_array().unwrap() {
        let run = format!("{merged}/runs/seed-{}", line["seed"]);
        assert!(PathBuf::from(format!("{run}/verdict.json")).exists());
        // A failing seed keeps every artifact; a valid one its verdict only.
        let whole = line["result"] != "valid";
        for f in [
            "history.jsonl",
            "history.edn",
            "report.html",
            "schedule.json",
        ] {
            assert_eq!(
                PathBuf::from(format!("{run}/{f}")).exists(),
                whole,
                "{run}/{f}"
            );
        }
        if whole {
            let r = line["reproduce"].as_str().unwrap();
            assert!(
                r.contains("--bug commit-without-quorum") && r.contains("--out "),
                "{r}"
            );
        }
    }
}

#[test]
fn ctrl_c_writes_the_summary_of_what_finished() {
    let out = dir("interrupted");
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "bench",
            "--out",
            &out,
            "--jobs",
            "1",
            "--seeds",
            "40",
            "--duration",
            "2s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    // Once the first seed is done, Ctrl-C (SIGINT to the campaign).
    let first = PathBuf::from(format!("{out}/runs/seed-1/verdict.json"));
    let started = std::time::Instant::now();
    while !first.exists() {
        assert!(started.elapsed().as_secs() < 120, "seed 1 never finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("interrupted: "), "{err}");
    let s = json(&format!("{out}/summary.json"));
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["result"], "unknown");
    let runs = s["runs"].as_u64().unwrap();
    assert!((1..40).contains(&runs), "{runs}");
    assert_eq!(s["unknown"], 0, "no run cut short is counted: {s}");
    assert!(PathBuf::from(format!("{out}/index.html")).exists());
}

/// The CI examples (examples/ci/): both split the campaign into the
/// shards they then merge, and that sequence runs: every shard K/N for K
/// in 1..=N, then `merge` of all N folders.
#[test]
fn the_ci_examples_shard_and_merge_the_whole_campaign() {
    let root = env!("CARGO_MANIFEST_DIR");
    let gha = std::fs::read_to_string(format!("{root}/examples/ci/github-actions.yml")).unwrap();
    let k8s = std::fs::read_to_string(format!("{root}/examples/ci/k8s-indexed-job.yaml")).unwrap();
    let n = 4;
    assert!(gha.contains("shard: [1, 2, 3, 4]"), "{gha}");
    assert!(gha.contains("--shard ${{ matrix.shard }}/4"), "{gha}");
    assert!(k8s.contains("completions: 4") && k8s.contains("$((JOB_COMPLETION_INDEX + 1))/4"));
    for k in 1..=n {
        assert!(
            gha.contains(&format!("shards/shard-{k}")),
            "merge lists shard {k}"
        );
        assert!(
            k8s.contains(&format!("/campaign/shard-{k}")),
            "merge lists shard {k}"
        );
    }
    // The same sequence on a small campaign.
    let dirs: Vec<String> = (1..=n).map(|k| dir(&format!("ci-shard-{k}"))).collect();
    for (k, d) in dirs.iter().enumerate() {
        let shard = format!("{}/{n}", k + 1);
        bench(d, &["--seeds", "6", "--duration", "2s", "--shard", &shard]);
    }
    let merged = dir("ci-merged");
    let mut args = vec!["merge"];
    args.extend(dirs.iter().map(String::as_str));
    args.extend(["--out", &merged]);
    let o = faultline(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = json(&format!("{merged}/summary.json"));
    assert_eq!(s["runs"], 6);
    let seeds: Vec<u64> = s["seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, (1..=6).collect::<Vec<u64>>());
    assert_links_exist(&merged);
}
