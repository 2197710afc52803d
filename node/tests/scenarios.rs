//! Scenario tests under turmoil. Each cites the section of ZAB.md it
//! exercises.

mod common;

use common::{call_retrying, Cluster};
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

fn leader_of(c: &Cluster) -> u64 {
    c.leader().expect("an established leader")
}

/// Writes `n` values to key `key` through `server`, each acknowledged.
fn write_all(c: &mut Cluster, server: u64, session: u64, key: u64, values: std::ops::Range<i64>) {
    c.sim.client(format!("writer-{session}"), async move {
        for (i, v) in values.enumerate() {
            let r = call_retrying(
                &[server],
                session,
                i as u64 + 1,
                ClientOp::Write { key, value: v },
            )
            .await;
            assert_eq!(r.outcome, Outcome::Written);
        }
        Ok(())
    });
    c.sim.run().expect("writes finish");
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
        let mut cl = faultline_node::client::Client::connect(
            &common::host(old),
            2181,
            2,
            Duration::from_secs(1),
        )
        .await?;
        let _ = cl
            .call(
                ClientOp::Write { key: 1, value: 666 },
                Duration::from_millis(50),
            )
            .await;
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
