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

/// Servers 1-3 fsync slowly, so the leader of the second epoch (one of 2-4,
/// with 1 and 5 down) always has a proposal outstanding under load, and
/// server 1's sync stays unsynced for a while after it installs a snapshot.
fn snapshot_window(seed: u64, bugs: faultline_node::Bugs) -> Cluster<'static> {
    Cluster::with(seed, 5, 0, move |cfg| {
        cfg.node.snapshot_interval = 20;
        cfg.node.committed_log_window = 5;
        cfg.node.bugs = bugs.clone();
        if cfg.node.sid <= 3 {
            cfg.fsync_latency = Duration::from_millis(40);
        }
    })
}

/// Runs ZOOKEEPER-1653's window on server 1: it misses a whole epoch, is
/// synced by SNAP (the snapshot is of the new epoch, outstanding proposals
/// follow), and crashes after the snapshot is installed, before the fsync
/// of what follows it and before it writes currentEpoch. Returns the
/// cluster, the epoch server 1 missed, and the snapshot's zxid.
fn crash_after_snapshot_install(c: &mut Cluster) -> (u64, faultline_node::Zxid) {
    use faultline_node::disk::DiskEvent;
    use faultline_node::shell::Record;
    let first = c.wait_for_leader(Duration::from_secs(10));
    assert_eq!(first, 5, "the highest id leads an empty ensemble");
    c.crash(1);
    c.crash(5);
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let epoch = c.status(leader).epoch;
    // Four writers at once, out of step (each pausing its own time), so
    // that proposals are outstanding when server 1 is synced (they follow
    // its SNAP as PROPOSALs).
    c.sim.client("load", async move {
        let writers: Vec<_> = (1..=4u64)
            .map(|session| {
                tokio::task::spawn_local(async move {
                    for seq in 1..=50 {
                        common::call_retrying(
                            &[leader],
                            session,
                            seq,
                            ClientOp::Write {
                                key: session,
                                value: seq as i64,
                            },
                        )
                        .await;
                        tokio::time::sleep(Duration::from_millis(3 + 7 * session)).await;
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("a writer never panics");
        }
        Ok(())
    });
    c.run_until(
        Duration::from_secs(20),
        "the new epoch commits 40 txns",
        |c| {
            let z = c.status(leader).last_committed;
            z.epoch() == epoch && z.counter() >= 40
        },
    );
    let before = c.probes[&1].evidence().records.len();
    c.restart(1);
    let mut installed = None;
    c.run_until(
        Duration::from_secs(5),
        "server 1 appends after a snapshot, before it writes currentEpoch",
        |c| {
            let ev = c.probes[&1].evidence();
            let mut epoch_written = false;
            for (_, r) in &ev.records[before.min(ev.records.len())..] {
                match r {
                    Record::Disk(DiskEvent::Installed { base }) => installed = Some(*base),
                    Record::Disk(DiskEvent::Epochs { current, .. }) if *current >= epoch => {
                        epoch_written = true
                    }
                    _ => {}
                }
            }
            assert!(!epoch_written, "the step passed the window");
            let st = c.status(1);
            installed.is_some()
                && !st.serving
                && matches!(
                    ev.records.last(),
                    Some((_, Record::Disk(DiskEvent::Appended { .. })))
                )
        },
    );
    c.crash(1);
    let base = installed.expect("checked");
    assert_eq!(
        base.epoch(),
        epoch,
        "the snapshot is of the epoch server 1 missed"
    );
    (epoch, base)
}

/// J1653: a crash inside that window leaves a snapshot of an epoch newer
/// than currentEpoch on disk. The promise made at LEADERINFO (acceptedEpoch,
/// durable before ACKEPOCH) lets the restart repair currentEpoch; the
/// server syncs again and serves.
#[test]
fn a_crash_between_snapshot_install_and_currentepoch_is_repaired() {
    let mut c = snapshot_window(21, faultline_node::Bugs::default());
    let (epoch, base) = crash_after_snapshot_install(&mut c);
    c.restart(1);
    c.run_until(Duration::from_secs(5), "server 1 serves again", |c| {
        let s = c.status(1);
        s.up && s.serving
    });
    let (_, image) = c.probes[&1].evidence().image.expect("read at the restart");
    assert_eq!(image.snapshot.base, base, "the crash hit the window");
    assert!(
        image.current_epoch < epoch && image.accepted_epoch >= epoch,
        "current {} accepted {} epoch {epoch}",
        image.current_epoch,
        image.accepted_epoch
    );
    c.restart(5);
    c.run_until(Duration::from_secs(30), "convergence", |c| c.converged());
}

/// The same window with `no_epoch_fencing`: acceptedEpoch was never
/// written, so nothing vouches for the snapshot's epoch and the startup
/// check refuses the disk (the bench's node-invariants failure).
#[test]
fn without_epoch_fencing_the_same_crash_fails_the_startup_check() {
    let bugs = faultline_node::Bugs {
        no_epoch_fencing: true,
        ..Default::default()
    };
    let mut c = snapshot_window(21, bugs);
    crash_after_snapshot_install(&mut c);
    c.restart(1);
    // The panic that reaches us is tokio's; keep the first message, the
    // server's own.
    let first = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = first.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let mut f = seen.lock().unwrap();
        if f.is_none() {
            *f = Some(info.to_string());
        }
    }));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.run_for(Duration::from_secs(2));
    }));
    std::panic::set_hook(hook);
    assert!(r.is_err(), "server 1 must refuse its disk");
    let msg = first.lock().unwrap().clone().unwrap_or_default();
    assert!(msg.contains("currentEpoch 1 < epoch of last zxid"), "{msg}");
}

/// A sync answered for a server that is not the leader's learner (found
/// by the checker on a hot-key campaign, issue 17): the leader went LOOKING
/// and came back leading a new epoch while a follower kept its link and
/// still followed the old leadership, never synced with the new one. The
/// follower forwarded a client's sync to it; if the leader confirms that
/// sync, the follower serves its stale state as linearizable. A leader
/// must only answer syncs (and requests) of learners it brought up to
/// date: the follower's sync goes unanswered until it notices and re-syncs.
#[test]
fn a_sync_from_a_follower_of_an_old_leadership_is_not_confirmed() {
    use faultline_node::client::Client;
    use faultline_node::Outcome;
    // A long syncLimit, so that server 1 does not time out on its own
    // while the new leadership is set up.
    let mut c = Cluster::with(23, 5, 0, |cfg| cfg.node.sync_limit = 50);
    let leader = c.wait_for_leader(Duration::from_secs(10));
    assert_eq!(leader, 5, "the highest id leads an empty ensemble");
    let first = c.status(5).epoch;
    c.sim.client("first", async move {
        common::call_retrying(&[5], 1, 1, ClientOp::Write { key: 1, value: 1 }).await;
        Ok(())
    });
    c.run_until(Duration::from_secs(5), "the first write commits", |c| {
        [1, 2, 3, 4, 5]
            .iter()
            .all(|&s| c.status(s).last_committed.counter() >= 1)
    });
    // 5 loses its quorum at once and is elected again by 2, 3 and 4;
    // server 1 keeps its link to 5 throughout.
    for s in [2, 3, 4] {
        c.crash(s);
        c.restart(s);
    }
    c.run_until(Duration::from_secs(10), "5 leads a new epoch", |c| {
        let s = c.status(5);
        s.serving && s.role == Some(faultline_node::PeerState::Leading) && s.epoch > first
    });
    let f = c.status(1);
    assert!(
        f.role == Some(faultline_node::PeerState::Following) && f.leader == Some(5),
        "server 1 still follows the old leadership: {f:?}"
    );
    let answer = std::rc::Rc::new(std::cell::RefCell::new(None));
    let got = answer.clone();
    c.sim.client("second", async move {
        common::call_retrying(&[5], 2, 1, ClientOp::Write { key: 1, value: 2 }).await;
        // Acknowledged: a linearizable read must not return 1 now.
        let mut cl = Client::connect(&common::host(1), 2181, 3, Duration::from_secs(1)).await?;
        let r = cl
            .call(ClientOp::SyncRead { key: 1 }, Duration::from_millis(300))
            .await;
        *got.borrow_mut() = Some(format!("{r:?}"));
        if let Ok(r) = r {
            assert_ne!(
                r.outcome,
                Outcome::Value(Some(1)),
                "stale sync-read at {r:?}"
            );
        }
        Ok(())
    });
    c.run_for(Duration::from_secs(2));
    assert!(answer.borrow().is_some(), "the client finished");
}
