//! The bench against a second system, raftkv on TiKV's raft-rs (`--system
//! raft`): valid campaigns with the checks that apply and the others named
//! not applicable, both bug switches caught, exact replays, and a bad
//! switch for the system refused.

mod common;

use common::{bench, dir, faultline, json};

#[test]
fn a_raft_campaign_is_judged_by_the_checks_that_apply() {
    let out = dir("raft-valid");
    bench(
        &out,
        &[
            "--system",
            "raft",
            "--workload",
            "strict",
            "--seeds",
            "2",
            "--duration",
            "5s",
            "--keep",
            "all",
            "--check-determinism",
        ],
    );
    let v = json(&format!("{out}/runs/seed-1/verdict.json"));
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in [
        "linearizable",
        "durability",
        "convergence",
        "liveness",
        "leadership",
    ] {
        assert!(names.contains(&c), "{c} runs: {names:?}");
    }
    let na: Vec<&str> = v["not_applicable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in ["read-guarantees", "sessions", "quorum-acks", "discovery"] {
        assert!(na.contains(&c), "{c} is not applicable: {na:?}");
    }
    let durability = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "durability")
        .unwrap();
    assert!(
        durability["summary"]
            .as_str()
            .unwrap()
            .contains("durable logs"),
        "{durability}"
    );
    let cfg = json(&format!("{out}/runs/seed-1/config.json"));
    assert_eq!(cfg["system"], "raft");
    // In JUnit, a check that does not apply is a skip, never a pass.
    let junit = std::fs::read_to_string(format!("{out}/junit.xml")).unwrap();
    assert!(
        junit.contains("name=\"sessions\"><skipped message=\"not applicable"),
        "{junit}"
    );
}

/// Each switch of the integration is caught within a few seeds.
#[test]
fn both_raft_bug_switches_are_caught() {
    for bug in ["ack-before-persist", "local-reads"] {
        let out = dir(&format!("raft-{bug}"));
        let o = faultline(&[
            "bench",
            "--system",
            "raft",
            "--workload",
            "strict",
            "--bug",
            bug,
            "--seeds",
            "3",
            "--duration",
            "10s",
            "--out",
            &out,
        ]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{bug}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let s = json(&format!("{out}/summary.json"));
        assert!(s["invalid"].as_u64().unwrap() >= 1, "{bug}: {s}");
    }
}

#[test]
fn a_bug_of_another_system_is_refused() {
    let o = faultline(&[
        "bench",
        "--system",
        "raft",
        "--bug",
        "skip-trunc",
        "--seeds",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown bug \"skip-trunc\" for --system raft")
            && err.contains("ack-before-persist"),
        "{err}"
    );
    let o = faultline(&["bench", "--bug", "local-reads", "--seeds", "1"]);
    assert_eq!(o.status.code(), Some(2));
}
