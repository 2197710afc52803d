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

#[test]
fn episodes_cover_the_schedule_each_a_fault_with_its_repairs() {
    for seed in 1..=50 {
        let s = Schedule::generate(seed, &NemesisKind::ALL, 20_000, &topo());
        let eps = s.episodes();
        // In order, back to back, covering every event.
        assert_eq!(eps.first().map(|r| r.start), Some(0), "seed {seed}");
        assert_eq!(eps.last().map(|r| r.end), Some(s.events.len()));
        assert!(eps.windows(2).all(|w| w[0].end == w[1].start));
        for r in &eps {
            let ev = &s.events[r.clone()];
            // Each begins with a fault, and no fault starts after a repair
            // within it (except what is armed at the repair's moment).
            assert!(!ev[0].fault.is_repair(), "seed {seed}: {ev:?}");
            let first_repair = ev.iter().position(|e| e.fault.is_repair());
            if let Some(k) = first_repair {
                let t = ev[k].at_ms;
                assert!(ev[k..].iter().all(|e| e.at_ms == t), "seed {seed}: {ev:?}");
            }
        }
        // Keeping every episode is the schedule; keeping none is empty;
        // keeping one keeps exactly its events.
        let all: Vec<usize> = (0..eps.len()).collect();
        assert_eq!(s.with_episodes(&all), s);
        assert!(s.with_episodes(&[]).events.is_empty());
        assert_eq!(
            s.with_episodes(&[1]).events,
            s.events[eps[1].clone()].to_vec()
        );
    }
}

#[test]
fn a_crash_episode_keeps_its_restart_and_armed_sync_crash() {
    let ev = |at_ms, fault| Event { at_ms, fault };
    let s = Schedule {
        events: vec![
            ev(300, Fault::CrashLeader),
            ev(
                300,
                Fault::CutInDiscovery {
                    delay_ms: 2,
                    heal_after_ms: 400,
                },
            ),
            ev(1200, Fault::RestartCrashed),
            ev(
                1200,
                Fault::CrashInSync {
                    restart_after_ms: 100,
                },
            ),
            ev(2000, Fault::PauseClient { slot: 1, ms: 3000 }),
            ev(2500, Fault::PacketLoss { rate: 0.1 }),
            ev(3000, Fault::NormalNetwork),
        ],
    };
    assert_eq!(s.episodes(), vec![0..4, 4..5, 5..7]);
    assert_eq!(s.with_episodes(&[0, 2]).events.len(), 6);
}
