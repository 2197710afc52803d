//! Directed tests of the synchronization defects found by reading the code
//! (issue 9, a–d), each citing the section of ZAB.md it holds the node to.

mod common;

use common::Cluster;
use faultline_node::ClientOp;
use std::time::Duration;

/// Five voters; 1, 2 and 3 take `slow` to fsync, so a write that only the
/// leader (5, the highest id) and server 4 have logged stays uncommitted
/// for that long.
fn slow_majority(seed: u64, slow: Duration) -> Cluster<'static> {
    Cluster::with(seed, 5, 0, move |cfg| {
        if cfg.node.sid <= 3 {
            cfg.fsync_latency = slow;
        }
    })
}

/// Sends one write to `server` without waiting for its answer.
fn send_write(c: &mut Cluster, server: u64, session: u64, value: i64) {
    c.sim.client(format!("writer-{session}"), async move {
        let _ = common::write_once(server, session, 1, value, Duration::from_secs(10)).await?;
        Ok(())
    });
}

/// (a) §3.3 and §4: a restarted follower replays its whole log, the
/// uncommitted tail included (D4), so its applied state can run ahead of
/// what is committed. The sync decision must compare it with the leader's
/// last *committed* zxid (case 2: `p > maxC` -> TRUNC(maxC), the
/// outstanding proposals re-sent): it must never come back up to date
/// holding an uncommitted txn as committed.
#[test]
fn a_restarted_follower_does_not_serve_its_uncommitted_tail() {
    let mut c = slow_majority(11, Duration::from_secs(3));
    let leader = c.wait_for_leader(Duration::from_secs(10));
    assert_eq!(leader, 5, "the highest id leads an empty ensemble");
    let committed = c.status(leader).last_committed;
    send_write(&mut c, leader, 1, 42);
    c.run_until(Duration::from_secs(1), "server 4 logs the write", |c| {
        c.status(4).last_logged > committed
    });
    let w = c.status(4).last_logged;
    c.run_for(Duration::from_millis(20)); // durable on server 4
    assert!(
        c.status(leader).last_committed < w,
        "still waiting for the slow majority"
    );
    c.crash(4);
    c.restart(4);
    c.run_until(Duration::from_secs(2), "server 4 serves again", |c| {
        let s = c.status(4);
        s.up && s.serving
    });
    let (f, l) = (c.status(4), c.status(leader));
    assert!(
        l.last_committed < w,
        "the write is still uncommitted ({} < {w})",
        l.last_committed
    );
    assert!(
        f.last_committed <= l.last_committed,
        "server 4 treats {} as committed; its leader has committed only {}",
        f.last_committed,
        l.last_committed
    );
    // Once the slow majority acknowledges it, the write commits everywhere.
    c.run_until(Duration::from_secs(10), "the write commits", |c| {
        c.status(leader).last_committed >= w
    });
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    assert!(c.status(4).last_committed >= w);
}

/// (b) §3.3: an established leader forwards new PROPOSALs and COMMITs to a
/// learner as soon as it has decided how to sync it, so they can arrive
/// between NEWLEADER and the fsync that lets the learner ACK it. The
/// learner must log and note them (ZooKeeper queues them), not drop its
/// leader and sync all over again.
#[test]
fn a_learner_persisting_newleader_accepts_forwarded_proposals() {
    // Server 1 has a slow disk, so its NEWLEADER fsync takes long while
    // the others keep committing writes.
    let mut c = Cluster::with(12, 3, 0, |cfg| {
        if cfg.node.sid == 1 {
            cfg.fsync_latency = Duration::from_millis(300);
        }
    });
    let leader = c.wait_for_leader(Duration::from_secs(10));
    assert_ne!(leader, 1);
    c.sim.client("load", async move {
        let mut cl = faultline_node::client::Client::connect(
            &common::host(leader),
            2181,
            1,
            Duration::from_secs(1),
        )
        .await?;
        for v in 0..400 {
            let _ = cl
                .call(ClientOp::Write { key: 1, value: v }, Duration::from_secs(1))
                .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    });
    c.run_for(Duration::from_millis(200));
    c.crash(1);
    c.restart(1);
    c.run_until(Duration::from_secs(5), "server 1 serves again", |c| {
        let s = c.status(1);
        s.up && s.serving
    });
    let errors: Vec<String> = c.probes[&1]
        .events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            faultline_node::ProtocolEvent::ProtocolError { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(errors.is_empty(), "server 1 dropped its leader: {errors:?}");
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
}
