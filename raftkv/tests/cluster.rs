//! A raftkv cluster under turmoil: it elects a leader, serves writes, cas
//! and linearizable reads through any server, survives its leader's crash
//! with every acknowledged write, and replays exactly from its seed.

use faultline_node::client::Client;
use faultline_node::{ClientOp, Outcome};
use faultline_raftkv::shell::{self, Probe, ShellConfig};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

const VOTERS: [u64; 3] = [1, 2, 3];

fn hosts() -> BTreeMap<u64, String> {
    VOTERS.iter().map(|s| (*s, format!("n{s}"))).collect()
}

/// A 3-server cluster on `seed`, with its probes.
fn cluster(seed: u64) -> (turmoil::Sim<'static>, Vec<Probe>) {
    cluster_with(seed, 1000)
}

/// A 3-server cluster on `seed` whose servers snapshot every
/// `snapshot_every` applied entries.
fn cluster_with(seed: u64, snapshot_every: u64) -> (turmoil::Sim<'static>, Vec<Probe>) {
    let mut sim = faultline_node::sim::builder(seed).build();
    let mut probes = Vec::new();
    for s in VOTERS {
        let mut cfg = ShellConfig::new(s, VOTERS.to_vec(), vec![], hosts());
        cfg.seed = seed;
        cfg.core.snapshot_every = snapshot_every;
        let probe = Probe::default();
        probes.push(probe.clone());
        sim.host(format!("n{s}"), move || {
            shell::run(cfg.clone(), probe.clone())
        });
    }
    (sim, probes)
}

fn leader(probes: &[Probe]) -> Option<u64> {
    probes
        .iter()
        .zip(VOTERS)
        .find(|(p, _)| p.status().leading)
        .map(|(_, s)| s)
}

/// Calls `op` through `host` until it gets a definite answer.
async fn call(c: &mut Client, op: ClientOp) -> Outcome {
    loop {
        match c.call(op.clone(), Duration::from_secs(1)).await {
            Ok(r) if r.outcome != Outcome::NotReady && r.outcome != Outcome::ConnectionLoss => {
                return r.outcome
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[test]
fn writes_reads_and_a_leader_crash() {
    let (mut sim, probes) = cluster(1);
    while leader(&probes).is_none() {
        sim.step().unwrap();
    }
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    sim.client("client", async move {
        // Through server 3, whichever leads: it forwards to its leader.
        let mut c = Client::connect("n3", 2181, 42, Duration::from_secs(1)).await?;
        let open = call(&mut c, ClientOp::CreateSession { timeout: 100 }).await;
        l.borrow_mut().push(open);
        for i in 0..20 {
            let w = call(&mut c, ClientOp::Write { key: 1, value: i }).await;
            l.borrow_mut().push(w);
        }
        let cas = ClientOp::Cas {
            key: 1,
            from: Some(19),
            to: 100,
        };
        let cas = call(&mut c, cas).await;
        l.borrow_mut().push(cas);
        let read = call(&mut c, ClientOp::SyncRead { key: 1 }).await;
        l.borrow_mut().push(read);
        Ok(())
    });
    sim.run().unwrap();
    let got = log.borrow().clone();
    assert_eq!(got[0], Outcome::Opened { timeout: 100 });
    assert!(got[1..21].iter().all(|o| *o == Outcome::Written), "{got:?}");
    assert_eq!(got[21], Outcome::Written);
    assert_eq!(got[22], Outcome::Value(Some(100)));

    // The leader loses its power; the others elect another and still hold
    // every acknowledged write.
    let old = leader(&probes).expect("a leader");
    sim.crash(format!("n{old}"));
    let others: Vec<Probe> = probes
        .iter()
        .zip(VOTERS)
        .filter(|(_, s)| *s != old)
        .map(|(p, _)| p.clone())
        .collect();
    for _ in 0..2000 {
        sim.step().unwrap();
        if others.iter().any(|p| p.status().leading) {
            break;
        }
    }
    let new = others
        .iter()
        .find(|p| p.status().leading)
        .expect("a new leader");
    assert!(new.status().term > 1);
    let reader = others
        .iter()
        .zip(VOTERS.iter().filter(|s| **s != old))
        .map(|(_, s)| *s)
        .next()
        .unwrap();
    let l = log.clone();
    sim.client("client2", async move {
        let mut c =
            Client::connect(&format!("n{reader}"), 2181, 43, Duration::from_secs(1)).await?;
        call(&mut c, ClientOp::CreateSession { timeout: 100 }).await;
        let read = call(&mut c, ClientOp::Read { key: 1 }).await;
        l.borrow_mut().push(read);
        Ok(())
    });
    sim.run().unwrap();
    assert_eq!(log.borrow().last(), Some(&Outcome::Value(Some(100))));
    // The crashed server comes back from its file and catches up.
    sim.bounce(format!("n{old}"));
    for _ in 0..2000 {
        sim.step().unwrap();
    }
    let digests: Vec<u64> = probes.iter().map(|p| p.status().digest).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let (_, image) = probes[(old - 1) as usize].image().expect("read back");
    assert!(image.entries.len() >= 22, "{} entries", image.entries.len());
}

/// A server down while the others wrote past two snapshots gets the
/// leader's snapshot, installs it durably (its log file restarts after
/// it) and converges; restarted again, it comes back from that snapshot.
#[test]
fn a_lagging_server_installs_the_leaders_snapshot() {
    let (mut sim, probes) = cluster_with(3, 10);
    while leader(&probes).is_none() {
        sim.step().unwrap();
    }
    let lag = VOTERS
        .into_iter()
        .find(|s| Some(*s) != leader(&probes))
        .unwrap();
    sim.crash(format!("n{lag}"));
    let via = VOTERS.into_iter().find(|s| *s != lag).unwrap();
    sim.client("writer", async move {
        let mut c = Client::connect(&format!("n{via}"), 2181, 7, Duration::from_secs(1)).await?;
        call(&mut c, ClientOp::CreateSession { timeout: 100 }).await;
        for i in 0..40 {
            call(
                &mut c,
                ClientOp::Write {
                    key: i % 3,
                    value: i as i64,
                },
            )
            .await;
        }
        Ok(())
    });
    sim.run().unwrap();
    sim.bounce(format!("n{lag}"));
    for _ in 0..1500 {
        sim.step().unwrap();
    }
    let digests: Vec<u64> = probes.iter().map(|p| p.status().digest).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    // Its files now start from the leader's snapshot.
    sim.crash(format!("n{lag}"));
    sim.bounce(format!("n{lag}"));
    for _ in 0..500 {
        sim.step().unwrap();
    }
    let st = probes[(lag - 1) as usize].status();
    let (_, image) = probes[(lag - 1) as usize].image().expect("read back");
    let snap = image.snapshot.expect("a snapshot file");
    assert!(image.base >= 10, "the log restarts after {}", image.base);
    assert!(snap.get_metadata().index >= image.base);
    assert_eq!(st.digest, probes[(via - 1) as usize].status().digest);
}

/// A joiner started with the shared initial configuration catches up
/// and becomes a voter through joint consensus (`AddVoter` as a
/// `ConfChangeV2`), and every server ends with the new configuration.
#[test]
fn a_joiner_becomes_a_voter() {
    let seed = 9;
    let mut all = hosts();
    all.insert(4, "n4".into());
    let mut sim = faultline_node::sim::builder(seed).build();
    let mut probes = Vec::new();
    for s in [1, 2, 3, 4] {
        let mut cfg = ShellConfig::new(s, VOTERS.to_vec(), vec![], all.clone());
        cfg.seed = seed;
        let probe = Probe::default();
        probes.push(probe.clone());
        sim.host(format!("n{s}"), move || {
            shell::run(cfg.clone(), probe.clone())
        });
    }
    while leader(&probes[..3]).is_none() {
        sim.step().unwrap();
    }
    let added = Rc::new(RefCell::new(None));
    let a = added.clone();
    sim.client("admin", async move {
        let mut c = Client::connect("n2", 2181, 99, Duration::from_secs(1)).await?;
        let r = call(&mut c, ClientOp::AddVoter { sid: 4 }).await;
        *a.borrow_mut() = Some(r);
        Ok(())
    });
    sim.run().unwrap();
    assert_eq!(*added.borrow(), Some(Outcome::Written));
    for _ in 0..500 {
        sim.step().unwrap();
    }
    for p in &probes {
        assert_eq!(p.status().voters, vec![1, 2, 3, 4]);
    }
    let digests: Vec<u64> = probes.iter().map(|p| p.status().applied).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

/// The same seed, the same run: raft-rs's own randomness is pinned.
#[test]
fn a_seed_replays_exactly() {
    let trace = |seed: u64| {
        let (mut sim, probes) = cluster(seed);
        let mut seen = Vec::new();
        for _ in 0..1500 {
            sim.step().unwrap();
            let st: Vec<(bool, u64, u64)> = probes
                .iter()
                .map(|p| {
                    let s = p.status();
                    (s.leading, s.term, s.applied)
                })
                .collect();
            if seen.last() != Some(&st) {
                seen.push(st);
            }
        }
        let roles: Vec<_> = probes.iter().map(|p| p.roles()).collect();
        (seen, roles)
    };
    assert_eq!(trace(5), trace(5));
    assert_ne!(trace(5).1, trace(6).1, "another seed, another election");
}
