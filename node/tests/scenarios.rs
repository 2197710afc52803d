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
