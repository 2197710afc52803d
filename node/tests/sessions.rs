//! Sessions under turmoil (ZAB.md §9): a silent session expires and its
//! ephemeral keys vanish at every server, a server synced by SNAP
//! included; time without a leader never counts against a session (and
//! does with `expire-during-election`); a session that moves keeps going;
//! a reconnect to a server that missed the close asks the leader; an
//! ephemeral create never outlives its session (and does with
//! `orphan-ephemeral`).

mod common;

use common::{assert_last_sync_is_snap, host, snapshotting, write_all, Cluster};
use faultline_node::client::Client;
use faultline_node::{ClientOp, Outcome};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// What the client saw, step by step.
type Seen = Rc<RefCell<Vec<String>>>;

fn note(seen: &Seen, what: impl Into<String>) {
    seen.borrow_mut().push(what.into());
}

/// Opens `session` asking for `timeout` ticks at `server`, retrying until
/// the ensemble answers; returns the granted timeout.
async fn open(cl: &mut Client, timeout: u64) -> u64 {
    let seq = cl.next_seq();
    loop {
        let op = ClientOp::CreateSession { timeout };
        if let Ok(r) = cl.call_seq(seq, op, Duration::from_secs(1)).await {
            if let Outcome::Opened { timeout } = r.outcome {
                return timeout;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `key` at `server` with a sessionless client.
async fn read_at(server: u64, key: u64) -> Option<Option<i64>> {
    let mut cl = Client::connect(&host(server), 2181, 77_000 + server, Duration::from_secs(1))
        .await
        .ok()?;
    match cl
        .call(ClientOp::Read { key }, Duration::from_secs(1))
        .await
    {
        Ok(r) => match r.outcome {
            Outcome::Value(v) => Some(v),
            _ => None,
        },
        Err(_) => None,
    }
}

#[test]
fn a_silent_session_expires_and_its_ephemeral_key_goes_everywhere() {
    let mut c = Cluster::new(21, 3, 0);
    c.wait_for_leader(Duration::from_secs(10));
    let seen: Seen = Rc::default();
    let s = seen.clone();
    c.sim.client("owner", async move {
        let mut cl = Client::connect(&host(2), 2181, 5, Duration::from_secs(1)).await?;
        let granted = open(&mut cl, 1).await;
        note(&s, format!("granted {granted}"));
        let r = cl
            .call(
                ClientOp::CreateEphemeral { key: 100, value: 7 },
                Duration::from_secs(1),
            )
            .await?;
        note(&s, format!("create {:?}", r.outcome));
        // Silent for far longer than the timeout.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = cl
            .call(ClientOp::Read { key: 1 }, Duration::from_secs(1))
            .await?;
        note(&s, format!("after {:?}", r.outcome));
        let r = cl
            .call(ClientOp::Write { key: 1, value: 1 }, Duration::from_secs(1))
            .await?;
        note(&s, format!("write {:?}", r.outcome));
        for server in 1..=3 {
            note(&s, format!("n{server} {:?}", read_at(server, 100).await));
        }
        Ok(())
    });
    c.sim.run().expect("the client finishes");
    let seen = seen.borrow().clone();
    assert_eq!(
        seen,
        vec![
            "granted 20".to_string(), // clamped up to the minimum
            "create Written".into(),
            "after SessionExpired".into(),
            "write SessionExpired".into(),
            "n1 Some(None)".into(),
            "n2 Some(None)".into(),
            "n3 Some(None)".into(),
        ]
    );
    assert!(c.converged());
}

/// A client that keeps pinging through `no_leader` of time without a
/// quorum: what its session is afterwards.
fn session_across_a_long_election(seed: u64, bug: bool) -> Vec<String> {
    let mut c = Cluster::with(seed, 5, 0, |sc| {
        sc.node.bugs.expire_during_election = bug;
    });
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let server = (1..=5).find(|&s| s != leader).expect("a follower");
    let seen: Seen = Rc::default();
    let s = seen.clone();
    c.sim.client("pinger", async move {
        let mut cl = Client::connect(&host(server), 2181, 9, Duration::from_secs(1)).await?;
        let granted = open(&mut cl, 50).await;
        note(&s, format!("granted {granted}"));
        // Ping every 100 ms (a third of... well under the 500 ms timeout)
        // for 4 s; a held ping is answered once a leader serves again.
        for _ in 0..40 {
            let r = cl.call(ClientOp::Ping, Duration::from_secs(5)).await;
            match r.map(|r| r.outcome) {
                Ok(Outcome::Pong) => {}
                other => note(&s, format!("ping {other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = cl
            .call(ClientOp::Write { key: 3, value: 3 }, Duration::from_secs(2))
            .await?;
        note(&s, format!("write {:?}", r.outcome));
        Ok(())
    });
    c.run_for(Duration::from_millis(800));
    // No quorum for 1.5 s (three times the session timeout): the client's
    // server keeps its link to the client and holds its pings.
    let others: Vec<u64> = (1..=5).filter(|&s| s != server).take(3).collect();
    for &s in &others {
        c.crash(s);
    }
    c.run_for(Duration::from_millis(1500));
    for &s in &others {
        c.restart(s);
    }
    c.sim.run().expect("the client finishes");
    let seen = seen.borrow().clone();
    seen
}

#[test]
fn time_without_a_leader_never_counts_against_a_session() {
    let seen = session_across_a_long_election(22, false);
    assert_eq!(seen, vec!["granted 50".to_string(), "write Written".into()]);
}

#[test]
fn expire_during_election_expires_a_session_that_kept_pinging() {
    let seen = session_across_a_long_election(22, true);
    assert_eq!(seen[0], "granted 50");
    assert!(
        seen.iter().any(|s| s.contains("SessionExpired")),
        "the bug expires the session at the new leader's first tick: {seen:?}"
    );
}

/// A client that opens its session at server 2, pings there, then moves
/// to server 3 and pings there for three timeouts: what it sees.
fn session_that_moves(bug: bool) -> Vec<String> {
    let mut c = Cluster::with(23, 3, 0, |sc| {
        sc.node.bugs.follower_local_expiry = bug;
    });
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let (first, second) = match leader {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    let seen: Seen = Rc::default();
    let s = seen.clone();
    c.sim.client("mover", async move {
        let mut cl = Client::connect(&host(first), 2181, 11, Duration::from_secs(1)).await?;
        open(&mut cl, 30).await;
        for _ in 0..3 {
            cl.call(ClientOp::Ping, Duration::from_secs(1)).await?;
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        let (seq, seen) = (cl.next_seq() - 1, cl.seen());
        let mut cl = Client::connect(&host(second), 2181, 11, Duration::from_secs(1)).await?;
        cl.resume(seq, seen);
        for _ in 0..12 {
            let r = cl.call(ClientOp::Ping, Duration::from_secs(1)).await?;
            if r.outcome != Outcome::Pong {
                note(&s, format!("ping {:?}", r.outcome));
                break;
            }
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        note(&s, "done");
        Ok(())
    });
    c.sim.run().expect("the client finishes");
    let seen = seen.borrow().clone();
    seen
}

#[test]
fn a_session_that_moves_between_servers_stays_open() {
    assert_eq!(session_that_moves(false), vec!["done".to_string()]);
}

#[test]
fn follower_local_expiry_expires_a_session_that_moved_away() {
    let seen = session_that_moves(true);
    assert_eq!(seen[0], "ping SessionExpired", "{seen:?}");
}

/// Twenty sessions of 200 ms, each silent until about its deadline, then
/// creating an ephemeral key at the leader: the keys still held at the
/// end, with their owners (every owner's session has expired by then).
fn ephemerals_racing_expiry(bug: bool) -> Vec<u64> {
    let mut c = Cluster::with(24, 3, 0, |sc| {
        sc.node.bugs.orphan_ephemeral = bug;
    });
    let leader = c.wait_for_leader(Duration::from_secs(10));
    for i in 0..20u64 {
        c.sim.client(format!("racer{i}"), async move {
            let mut cl =
                Client::connect(&host(leader), 2181, 100 + i, Duration::from_secs(1)).await?;
            open(&mut cl, 20).await;
            tokio::time::sleep(Duration::from_millis(190 + 2 * i)).await;
            let op = ClientOp::CreateEphemeral {
                key: 500 + i,
                value: 1,
            };
            let _ = cl.call(op, Duration::from_secs(1)).await;
            Ok(())
        });
    }
    c.sim.run().expect("the racers finish");
    c.run_for(Duration::from_secs(1));
    let held: Rc<RefCell<Vec<u64>>> = Rc::default();
    let h = held.clone();
    c.sim.client("reader", async move {
        for key in 500..520 {
            if let Some(Some(_)) = read_at(leader, key).await {
                h.borrow_mut().push(key);
            }
        }
        Ok(())
    });
    c.sim.run().expect("the reader finishes");
    let held = held.borrow().clone();
    held
}

#[test]
fn no_ephemeral_key_outlives_its_session() {
    assert_eq!(ephemerals_racing_expiry(false), Vec::<u64>::new());
}

#[test]
fn orphan_ephemeral_leaves_keys_of_dead_sessions() {
    let held = ephemerals_racing_expiry(true);
    assert!(
        !held.is_empty(),
        "a create ordered after its session's close"
    );
}

/// A session opened at the leader expires while follower `lagging` is cut
/// off from the leader but still serving (syncLimit and the links' idle
/// timeout are 1 s and 2 s here). The
/// client comes back at `lagging`, which has not seen the close, and pings.
/// Returns what it heard before the cut healed (1.2 s later) and in the
/// end.
fn reconnect_to_a_lagging_server() -> (Vec<String>, Vec<String>) {
    let mut c = Cluster::with(29, 3, 0, |sc| {
        sc.node.sync_limit = 100;
        sc.idle_timeout = Duration::from_secs(2);
    });
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let lagging = if leader == 3 { 2 } else { 3 };
    let opened: Rc<std::cell::Cell<bool>> = Rc::default();
    let seen: Seen = Rc::default();
    let (s, o) = (seen.clone(), opened.clone());
    c.sim.client("returner", async move {
        let mut cl = Client::connect(&host(leader), 2181, 31, Duration::from_secs(1)).await?;
        open(&mut cl, 20).await;
        o.set(true);
        // Silent for 2.5 timeouts: the leader expires the session.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (seq, seen) = (cl.next_seq() - 1, cl.seen());
        let mut cl = Client::connect(&host(lagging), 2181, 31, Duration::from_secs(1)).await?;
        cl.resume(seq, seen);
        let r = cl.call(ClientOp::Ping, Duration::from_secs(5)).await;
        note(&s, format!("{:?}", r.map(|r| r.outcome).ok()));
        Ok(())
    });
    c.run_until(Duration::from_secs(5), "the session opens", |_| {
        opened.get()
    });
    c.sim.hold(host(leader), host(lagging));
    c.run_for(Duration::from_millis(1200));
    let before = seen.borrow().clone();
    c.sim.release(host(leader), host(lagging));
    c.sim.run().expect("the client finishes");
    let after = seen.borrow().clone();
    (before, after)
}

#[test]
fn a_reconnect_to_a_server_that_missed_the_close_asks_the_leader() {
    let (before, after) = reconnect_to_a_lagging_server();
    // The lagging server still serves but must not vouch for the session
    // on its own: it asks the leader, and cannot reach it.
    assert!(before.is_empty(), "answered without the leader: {before:?}");
    assert_eq!(after, vec!["Some(SessionExpired)".to_string()]);
}

/// S3 through SNAP: a follower is down while a session's expiry deletes
/// its ephemeral key and sixty more txns commit (far past the DIFF
/// window); back, it is synced by SNAP, and neither the key nor the
/// session lives there.
#[test]
fn an_ephemeral_of_an_expired_session_is_gone_after_a_snap() {
    let mut c = snapshotting(31);
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let behind = (1..=3).find(|&s| s != leader).expect("a follower");
    let seen: Seen = Rc::default();
    let s = seen.clone();
    c.sim.client("owner", async move {
        let mut cl = Client::connect(&host(leader), 2181, 41, Duration::from_secs(1)).await?;
        open(&mut cl, 20).await;
        let op = ClientOp::CreateEphemeral { key: 100, value: 7 };
        let r = cl.call(op, Duration::from_secs(1)).await?;
        note(&s, format!("create {:?}", r.outcome));
        tokio::time::sleep(Duration::from_millis(50)).await;
        note(&s, format!("before {:?}", read_at(behind, 100).await));
        Ok(())
    });
    c.sim.run().expect("the owner finishes");
    c.crash(behind);
    // The owner is silent: its session (200 ms) expires meanwhile.
    c.run_for(Duration::from_secs(1));
    write_all(&mut c, leader, 42, 1, 0..60);
    c.restart(behind);
    c.run_until(Duration::from_secs(10), "convergence", |c| c.converged());
    assert_last_sync_is_snap(&c, behind);
    let s = seen.clone();
    c.sim.client("after", async move {
        note(&s, format!("after {:?}", read_at(behind, 100).await));
        let mut cl = Client::connect(&host(behind), 2181, 41, Duration::from_secs(1)).await?;
        let r = cl.call(ClientOp::Ping, Duration::from_secs(1)).await?;
        note(&s, format!("ping {:?}", r.outcome));
        Ok(())
    });
    c.sim.run().expect("the reader finishes");
    assert_eq!(
        *seen.borrow(),
        vec![
            "create Written".to_string(),
            "before Some(Some(7))".into(),
            "after Some(None)".into(),
            "ping SessionExpired".into(),
        ]
    );
}
