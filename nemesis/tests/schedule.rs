//! Schedules drawn from the seed: determinism, coverage of every kind,
//! the armed choreographies' share and placement.

use faultline_nemesis::*;

fn topo() -> Topology {
    Topology {
        servers: (1..=6).collect(),
        voters: (1..=5).collect(),
        clients: 10,
        joiner: Some(7),
    }
}

#[test]
fn same_seed_same_schedule_and_round_trip() {
    let a = Schedule::generate(5, &NemesisKind::ALL, 20_000, &topo());
    assert_eq!(a, Schedule::generate(5, &NemesisKind::ALL, 20_000, &topo()));
    assert_ne!(a, Schedule::generate(6, &NemesisKind::ALL, 20_000, &topo()));
    let json = serde_json::to_string_pretty(&a).unwrap();
    assert_eq!(Schedule::from_json(&json).unwrap(), a);
    assert!(a.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    assert!(a.events.iter().all(|e| e.at_ms < 20_000));
}

#[test]
fn a_long_schedule_covers_every_kind() {
    let s = Schedule::generate(1, &NemesisKind::ALL, 60_000, &topo());
    assert_eq!(
        s.kinds(),
        vec![
            "add-node",
            "client-pause",
            "crash",
            "crash-in-sync",
            "crash-leader",
            "cut-in-discovery",
            "latency",
            "long-election",
            "packet-loss",
            "partition",
            "partition-leader",
            "restart-all"
        ]
    );
}

#[test]
fn half_the_crash_episodes_end_with_a_crash_in_a_sync() {
    let s = Schedule::generate(2, &[NemesisKind::Crash], 200_000, &topo());
    let restarts = s
        .events
        .iter()
        .filter(|e| e.fault == Fault::RestartCrashed)
        .count();
    let in_sync: Vec<&Event> = s
        .events
        .iter()
        .filter(|e| matches!(e.fault, Fault::CrashInSync { .. }))
        .collect();
    assert!(restarts > 100, "{restarts}");
    let share = in_sync.len() as f64 / restarts as f64;
    assert!((0.35..0.65).contains(&share), "{share}");
    // Armed right as the crashed servers restart.
    for e in in_sync {
        let i = s.events.iter().position(|x| std::ptr::eq(x, e)).unwrap();
        assert_eq!(s.events[i - 1].fault, Fault::RestartCrashed);
        assert_eq!(s.events[i - 1].at_ms, e.at_ms);
    }
}

#[test]
fn half_the_leader_losses_also_cut_off_the_next_prospective_leader() {
    let s = Schedule::generate(
        4,
        &[NemesisKind::CrashLeader, NemesisKind::PartitionLeader],
        200_000,
        &topo(),
    );
    let lost = s
        .events
        .iter()
        .filter(|e| matches!(e.fault, Fault::CrashLeader | Fault::PartitionLeader))
        .count();
    let cuts: Vec<usize> = (0..s.events.len())
        .filter(|&i| matches!(s.events[i].fault, Fault::CutInDiscovery { .. }))
        .collect();
    assert!(lost > 100, "{lost}");
    let share = cuts.len() as f64 / lost as f64;
    assert!((0.35..0.65).contains(&share), "{share}");
    // Armed as the leader goes.
    for i in cuts {
        assert!(matches!(
            s.events[i - 1].fault,
            Fault::CrashLeader | Fault::PartitionLeader
        ));
        assert_eq!(s.events[i - 1].at_ms, s.events[i].at_ms);
    }
}

#[test]
fn one_shot_kinds_end_the_schedule() {
    let s = Schedule::generate(3, &[NemesisKind::AddNode], 20_000, &topo());
    assert_eq!(s.events.len(), 1);
    assert!(Schedule::generate(
        3,
        &[NemesisKind::AddNode],
        20_000,
        &Topology {
            joiner: None,
            ..topo()
        }
    )
    .events
    .is_empty());
}

#[test]
fn lists_parse() {
    assert_eq!(NemesisKind::parse_list("all").unwrap().len(), 11);
    assert!(NemesisKind::parse_list("none").unwrap().is_empty());
    assert_eq!(
        NemesisKind::parse_list("crash,latency").unwrap(),
        vec![NemesisKind::Crash, NemesisKind::Latency]
    );
    assert!(NemesisKind::parse_list("crash,frob")
        .unwrap_err()
        .contains("unknown nemesis \"frob\""));
    assert!(Schedule::from_json("{").is_err());
}
