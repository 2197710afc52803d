//! Scenario tests under turmoil. Each cites the section of ZAB.md it
//! exercises.

mod common;

use common::{assert_last_sync_is_snap, call_retrying, snapshotting, write_all, Cluster};
use faultline_node::{ClientOp, Outcome, PeerState};
use std::time::Duration;

/// §3.1–§3.4: an ensemble elects one leader, establishes it, and commits
/// writes that every server applies in the same order.
fn elect_and_commit(voters: u64, seed: u64) {
    let mut c = Cluster::new(seed, voters, 0);
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let servers: Vec<u64> = (1..=voters).collect();
    c.sim.client("client", async move {
        let mut seq = 0;
        for v in 0..20i64 {
            let sid = servers[v as usize % servers.len()];
            seq += 1;
            let r = call_retrying(&[sid], 7, seq, ClientOp::Write { key: 1, value: v }).await;
            assert_eq!(r.outcome, Outcome::Written);
            seq += 1;
            let r = call_retrying(&[sid], 7, seq, ClientOp::Read { key: 1 }).await;
            assert_eq!(
                r.outcome,
                Outcome::Value(Some(v)),
                "read-your-writes at server {sid}"
            );
        }
        let r = call_retrying(
            &[1],
            8,
            1,
            ClientOp::Cas {
                key: 1,
                from: Some(19),
                to: 100,
            },
        )
        .await;
        assert_eq!(r.outcome, Outcome::Written);
        let r = call_retrying(
            &[2],
            9,
            1,
            ClientOp::Cas {
                key: 1,
                from: Some(19),
                to: 5,
            },
        )
        .await;
        assert_eq!(r.outcome, Outcome::CasFailed { actual: Some(100) });
        let r = call_retrying(&[voters], 10, 1, ClientOp::SyncRead { key: 1 }).await;
        assert_eq!(r.outcome, Outcome::Value(Some(100)));
        Ok(())
    });
    c.sim.run().expect("clients finish");
    c.run_until(Duration::from_secs(5), "convergence", |c| c.converged());
    let st = c.statuses();
    let leaders = st
        .values()
        .filter(|s| s.role == Some(PeerState::Leading))
        .count();
    assert_eq!(leaders, 1, "{st:#?}");
    assert_eq!(c.leader(), Some(leader));
    // 20 writes and 2 cas (one failed, logged as an error txn).
    assert_eq!(st[&1].last_committed.counter(), 22, "{st:#?}");
}

#[test]
fn three_servers_elect_and_commit() {
    elect_and_commit(3, 1);
}

#[test]
fn five_servers_elect_and_commit() {
    elect_and_commit(5, 2);
}

/// A write sent to `server` within 2 s gets no acknowledgement (there is
/// no quorum to commit it).
fn write_is_not_acked(c: &mut Cluster, server: u64, session: u64) {
    c.sim.client(format!("stuck-writer-{session}"), async move {
        let r = common::write_once(server, session, 1, 99, Duration::from_secs(2)).await?;
        assert!(
            !matches!(r, Ok(ref resp) if resp.outcome == Outcome::Written),
            "no quorum, no ack: {r:?}"
        );
        Ok(())
    });
}

fn leader_of(c: &Cluster) -> u64 {
    c.leader().expect("an established leader")
}

/// §3.1: after the leader crashes, the live voter with the highest
/// (epoch, zxid) leads next.
#[test]
fn leader_crash_elects_the_most_up_to_date() {
    let mut c = Cluster::new(3, 5, 0);
    let old = c.wait_for_leader(Duration::from_secs(10));
    let follower = (1..=5).find(|&s| s != old).unwrap();
    write_all(&mut c, follower, 1, 1, 0..10);
    // Let one follower fall behind: cut it off, then write more.
    let lagging = (1..=5).find(|&s| s != old && s != follower).unwrap();
    for s in 1..=5 {
        if s != lagging {
            c.sim.partition(common::host(lagging), common::host(s));
        }
    }
    write_all(&mut c, follower, 2, 1, 10..20);
    let before = c.statuses();
    c.crash(old);
    for s in 1..=5 {
        c.sim.repair(common::host(lagging), common::host(s));
    }
    let new = c.wait_for_leader(Duration::from_secs(20));
    assert_ne!(new, old);
    let best = before
        .iter()
        .filter(|(s, _)| **s != old && **s != lagging)
        .map(|(_, st)| st.last_logged)
        .max()
        .unwrap();
    assert!(
        before[&new].last_logged >= best,
        "{new} led with {:?}; best {best:?}",
        before[&new]
    );
    assert!(
        before[&lagging].last_logged < best,
        "the lagging server did lag"
    );
    // Every acknowledged write survives the failover.
    c.sim.client("reader", async move {
        let r = call_retrying(&[new], 9, 1, ClientOp::SyncRead { key: 1 }).await;
        assert_eq!(r.outcome, Outcome::Value(Some(19)));
        Ok(())
    });
    c.sim.run().unwrap();
}

/// §3.3 case 3: a server holding an orphan proposal (logged by a leader
/// that lost its quorum before committing it) is TRUNCated when it rejoins.
#[test]
fn orphan_proposal_is_truncated() {
    let mut c = Cluster::new(4, 3, 0);
    let old = c.wait_for_leader(Duration::from_secs(10));
    write_all(&mut c, old, 1, 1, 0..5);
    let before = c.status(old).last_logged;
    // Isolate the leader from its followers (not from clients), and send it
    // a write it can log but never commit.
    for s in (1..=3).filter(|&s| s != old) {
        c.sim.partition(common::host(old), common::host(s));
    }
    c.sim.client("orphan-writer", async move {
        let _ = common::write_once(old, 2, 1, 666, Duration::from_millis(50)).await?;
        Ok(())
    });
    c.run_until(Duration::from_secs(5), "the orphan is logged", |c| {
        c.status(old).last_logged > before
    });
    let orphan = c.status(old).last_logged;
    c.run_until(Duration::from_secs(10), "a new leader", |c| {
        c.leader().is_some_and(|l| l != old)
    });
    let new = leader_of(&c);
    write_all(&mut c, new, 3, 1, 100..103);
    for s in (1..=3).filter(|&s| s != old) {
        c.sim.repair(common::host(old), common::host(s));
    }
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    let truncs: Vec<_> = c.probes[&old]
        .events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            faultline_node::ProtocolEvent::Sync {
                mode: faultline_node::SyncMode::Trunc(z),
                ..
            } => Some(z),
            _ => None,
        })
        .collect();
    assert!(
        truncs.iter().any(|z| *z < orphan),
        "old leader was TRUNCed below {orphan:?}: {truncs:?}"
    );
    assert_ne!(c.status(old).last_logged, orphan);
}

/// §3.3 case 4: a follower that is behind the leader's in-memory log
/// window gets a SNAP, and the snapshots keep the log bounded (§1).
#[test]
fn far_behind_follower_gets_a_snapshot() {
    let mut c = snapshotting(5);
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let behind = (1..=3).find(|&s| s != leader).unwrap();
    c.crash(behind);
    write_all(&mut c, leader, 1, 1, 0..60);
    c.restart(behind);
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    assert_last_sync_is_snap(&c, behind);
}

/// §1, §4: a quorum restarted at once (power loss: unsynced data is lost)
/// keeps every acknowledged write.
#[test]
fn restarted_quorum_loses_no_acknowledged_write() {
    let lost = restart_quorum_mid_writes(|_| {});
    assert!(lost.is_empty(), "{lost:?}");
}

/// Writes until everyone crashes mid-run, restarts all servers, and
/// returns the keys that do not hold their last acknowledged value (or the
/// one write that was in flight).
fn restart_quorum_mid_writes(
    tweak: impl Fn(&mut faultline_node::shell::ShellConfig),
) -> Vec<String> {
    let mut c = Cluster::with(6, 5, 0, tweak);
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = acked.clone();
    c.sim.client("writer", async move {
        let mut cl = faultline_node::client::Client::connect(
            &common::host(leader),
            2181,
            1,
            Duration::from_secs(1),
        )
        .await?;
        for v in 0..10_000i64 {
            log.lock().unwrap().push((v, false));
            match cl
                .call(
                    ClientOp::Write {
                        key: v as u64 % 7,
                        value: v,
                    },
                    Duration::from_secs(1),
                )
                .await
            {
                Ok(r) if r.outcome == Outcome::Written => {
                    log.lock().unwrap().last_mut().unwrap().1 = true
                }
                _ => break, // the crash
            }
        }
        Ok(())
    });
    c.run_for(Duration::from_millis(300));
    for s in 1..=5 {
        c.crash(s);
    }
    c.sim.run().expect("the writer stops at the crash");
    let writes = acked.lock().unwrap().clone();
    let n_acked = writes.iter().filter(|w| w.1).count();
    assert!(n_acked > 10, "the crash lands mid-run ({n_acked} acked)");
    for s in 1..=5 {
        c.restart(s);
    }
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    let leader = leader_of(&c);
    let lost = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let found = lost.clone();
    c.sim.client("reader", async move {
        for k in 0..7u64 {
            let r = call_retrying(&[leader], 2, k + 1, ClientOp::SyncRead { key: k }).await;
            let last_acked = writes
                .iter()
                .filter(|(v, ok)| *ok && *v as u64 % 7 == k)
                .map(|w| w.0)
                .max();
            let in_flight = writes
                .iter()
                .find(|(v, ok)| !*ok && *v as u64 % 7 == k)
                .map(|w| w.0);
            let ok = r.outcome == Outcome::Value(last_acked)
                || (in_flight.is_some() && r.outcome == Outcome::Value(in_flight));
            if !ok {
                found.lock().unwrap().push(format!(
                    "key {k}: read {:?}, last acknowledged {last_acked:?}",
                    r.outcome
                ));
            }
        }
        Ok(())
    });
    c.sim.run().unwrap();
    let lost = lost.lock().unwrap().clone();
    lost
}

/// The same run with ACKs sent before fsync loses acknowledged writes: the
/// scenario can fail.
#[test]
fn restarted_quorum_with_ack_before_fsync_loses_writes() {
    let lost = restart_quorum_mid_writes(|cfg| {
        cfg.node.bugs.ack_before_fsync = true;
        cfg.fsync_latency = Duration::from_millis(30);
    });
    assert!(!lost.is_empty(), "the bug must lose an acknowledged write");
}

/// §3.5: an observer receives every committed write and never counts
/// toward a quorum.
#[test]
fn observer_follows_but_never_votes() {
    let mut c = Cluster::new(7, 3, 1);
    let leader = c.wait_for_leader(Duration::from_secs(10));
    c.run_until(Duration::from_secs(5), "the observer serves", |c| {
        c.status(4).serving
    });
    assert_eq!(c.status(4).role, Some(PeerState::Observing));
    write_all(&mut c, 4, 1, 1, 0..10);
    c.run_until(Duration::from_secs(5), "convergence", |c| c.converged());
    // Two voters down: the observer and the leader are not a quorum.
    let down: Vec<u64> = (1..=3).filter(|&s| s != leader).collect();
    for &s in &down {
        c.crash(s);
    }
    write_is_not_acked(&mut c, 4, 2);
    c.sim.run().unwrap();
    for &s in &down {
        c.restart(s);
    }
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    assert_eq!(c.status(4).role, Some(PeerState::Observing));
}

/// An observer logs each INFORM and applies it at once, before the
/// fsync: it must still snapshot and trim its in-memory log once the fsync
/// lands (it once never did, and kept every txn in memory).
#[test]
fn an_observer_snapshots_and_trims_its_log() {
    let mut c = Cluster::with(9, 3, 1, |s| {
        s.node.snapshot_interval = 20;
        s.node.committed_log_window = 10;
        s.fsync_latency = Duration::from_millis(5);
    });
    c.wait_for_leader(Duration::from_secs(10));
    c.run_until(Duration::from_secs(5), "the observer serves", |c| {
        c.status(4).serving
    });
    write_all(&mut c, 1, 1, 1, 0..120);
    c.run_until(Duration::from_secs(5), "convergence", |c| c.converged());
    for sid in 1..=4 {
        let f = c.status(sid).footprint;
        assert!(
            f.log_entries <= 30,
            "server {sid} keeps {} entries in memory (interval 20 + window 10)",
            f.log_entries
        );
    }
}

/// §5: requests that arrive during an election are held and executed
/// exactly once after it.
#[test]
fn requests_held_during_an_election_apply_once() {
    let mut c = Cluster::new(8, 3, 0);
    let old = c.wait_for_leader(Duration::from_secs(10));
    let base = c.status(old).last_committed;
    let f = (1..=3).find(|&s| s != old).unwrap();
    c.crash(old);
    // The follower notices the lost leader and starts looking.
    c.run_until(Duration::from_secs(2), "the follower looks", |c| {
        !c.status(f).serving
    });
    c.sim.client("held", async move {
        let mut cl = faultline_node::client::Client::connect(
            &common::host(f),
            2181,
            3,
            Duration::from_secs(1),
        )
        .await?;
        for v in 0..5i64 {
            let r = cl
                .call(
                    ClientOp::Write { key: 2, value: v },
                    Duration::from_secs(10),
                )
                .await?;
            assert_eq!(r.outcome, Outcome::Written);
        }
        Ok(())
    });
    c.sim.run().unwrap();
    c.restart(old);
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    let st = c.status(f);
    assert!(st.last_committed.epoch() > base.epoch());
    assert_eq!(
        st.last_committed.counter(),
        5,
        "each held write applied once: {st:?}"
    );
}

/// §3.4 liveness, §5: a leader cut off in a minority stops serving writes
/// and sync-reads; the majority elects a new leader and goes on.
#[test]
fn partitioned_minority_leader_stops_serving() {
    let mut c = Cluster::new(9, 5, 0);
    let old = c.wait_for_leader(Duration::from_secs(10));
    let buddy = (1..=5).find(|&s| s != old).unwrap();
    let minority = [old, buddy];
    for a in minority {
        for b in (1..=5).filter(|s| !minority.contains(s)) {
            c.sim.partition(common::host(a), common::host(b));
        }
    }
    c.sim.client("minority-client", async move {
        let mut cl = faultline_node::client::Client::connect(
            &common::host(old),
            2181,
            4,
            Duration::from_secs(1),
        )
        .await?;
        // Give the leader time to notice, then try.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = cl
            .call(ClientOp::Write { key: 3, value: 1 }, Duration::from_secs(1))
            .await;
        assert!(
            !matches!(w, Ok(ref r) if r.outcome == Outcome::Written),
            "{w:?}"
        );
        let mut cl = faultline_node::client::Client::connect(
            &common::host(old),
            2181,
            5,
            Duration::from_secs(1),
        )
        .await?;
        let s = cl
            .call(ClientOp::SyncRead { key: 3 }, Duration::from_secs(1))
            .await;
        assert!(
            !matches!(s, Ok(ref r) if matches!(r.outcome, Outcome::Value(_))),
            "{s:?}"
        );
        Ok(())
    });
    c.sim.run().unwrap();
    c.run_until(Duration::from_secs(5), "a majority leader", |c| {
        c.statuses().iter().any(|(s, st)| {
            !minority.contains(s) && st.role == Some(PeerState::Leading) && st.serving
        })
    });
    assert_ne!(c.status(old).role, Some(PeerState::Leading));
    for a in minority {
        for b in 1..=5 {
            c.sim.repair(common::host(a), common::host(b));
        }
    }
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
}

/// §3.6: a joiner syncs as a non-voting participant, becomes a voter
/// through a reconfig, and the quorum grows from 2 of 3 to 3 of 4.
#[test]
fn joiner_becomes_a_voter() {
    let mut c = Cluster::with_joiners(10, 3, 0, 1, |_| {});
    let leader = c.wait_for_leader(Duration::from_secs(10));
    write_all(&mut c, leader, 1, 1, 0..5);
    c.start(4);
    c.run_until(Duration::from_secs(10), "the joiner is synced", |c| {
        c.status(4).serving && c.status(4).role == Some(PeerState::Following)
    });
    assert_eq!(c.status(4).voters, vec![1, 2, 3]);
    c.sim.client("admin", async move {
        let r = call_retrying(&[2], 2, 1, ClientOp::AddVoter { sid: 4 }).await;
        assert_eq!(r.outcome, Outcome::Written);
        Ok(())
    });
    c.sim.run().unwrap();
    c.run_until(
        Duration::from_secs(5),
        "everyone knows the new voters",
        |c| c.statuses().values().all(|s| s.voters == vec![1, 2, 3, 4]),
    );
    // One original voter down: 3 of 4 remain, which needs the joiner's ACKs.
    let leader = leader_of(&c);
    let others: Vec<u64> = (1..=3).filter(|&s| s != leader).collect();
    c.crash(others[0]);
    write_all(&mut c, leader, 3, 1, 10..15);
    // A second one down: 2 of 4 is no quorum any more (2 of 3 was).
    c.crash(others[1]);
    write_is_not_acked(&mut c, 4, 4);
    c.sim.run().unwrap();
    c.restart(others[0]);
    c.restart(others[1]);
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
}

/// A run with faults, fingerprinted: every server's trace, protocol events
/// and final status.
fn faulty_run(seed: u64) -> String {
    let mut c = Cluster::new(seed, 5, 1);
    let old = c.wait_for_leader(Duration::from_secs(10));
    c.sim.client("writer", async move {
        for v in 0..30i64 {
            let server = 1 + (v as u64 % 6);
            let _ = call_retrying(
                &[server],
                1,
                v as u64 + 1,
                ClientOp::Write {
                    key: v as u64 % 3,
                    value: v,
                },
            )
            .await;
        }
        Ok(())
    });
    c.run_for(Duration::from_millis(150));
    c.crash(old);
    c.run_for(Duration::from_millis(400));
    c.restart(old);
    c.sim.run().unwrap();
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    let mut out = String::new();
    for (sid, p) in &c.probes {
        out += &format!(
            "{sid}: {:?}\n{:?}\n{:?}\n",
            p.status(),
            p.trace(),
            p.events()
        );
    }
    out
}

/// The core promise: one seed replays one run exactly.
#[test]
fn same_seed_same_run() {
    let a = faulty_run(11);
    assert_eq!(a, faulty_run(11));
    assert_ne!(a, faulty_run(12), "a different seed gives a different run");
}

/// §5: with holding off, a server that is not serving answers
/// ConnectionLoss, as ZooKeeper does.
#[test]
fn without_holding_requests_get_connection_loss() {
    let mut c = Cluster::with(13, 3, 0, |cfg| cfg.node.hold_requests = false);
    let old = c.wait_for_leader(Duration::from_secs(10));
    let f = (1..=3).find(|&s| s != old).unwrap();
    c.crash(old);
    c.run_until(Duration::from_secs(2), "the follower looks", |c| {
        !c.status(f).serving
    });
    c.sim.client("impatient", async move {
        let mut cl = faultline_node::client::Client::connect(
            &common::host(f),
            2181,
            3,
            Duration::from_secs(1),
        )
        .await?;
        let r = cl
            .call(ClientOp::Write { key: 2, value: 1 }, Duration::from_secs(1))
            .await?;
        assert_eq!(r.outcome, Outcome::ConnectionLoss);
        Ok(())
    });
    c.sim.run().unwrap();
}
