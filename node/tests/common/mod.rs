//! A small harness for scenario tests: an ensemble of servers and client
//! hosts in one turmoil simulation, with probes to inspect each server.

#![allow(dead_code)]

use faultline_node::client::{CallError, Client};
use faultline_node::shell::{self, Probe, ShellConfig, Status};
use faultline_node::{ClientOp, ClientResponse, NodeConfig, Outcome, PeerState, Sid};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Cluster<'a> {
    pub sim: turmoil::Sim<'a>,
    pub probes: BTreeMap<Sid, Probe>,
    pub configs: BTreeMap<Sid, ShellConfig>,
}

pub fn host(sid: Sid) -> String {
    format!("n{sid}")
}

impl<'a> Cluster<'a> {
    /// `voters` voters (ids 1..) and `observers` observers after them.
    pub fn new(seed: u64, voters: u64, observers: u64) -> Cluster<'a> {
        Self::with(seed, voters, observers, |_| {})
    }

    pub fn with(
        seed: u64,
        voters: u64,
        observers: u64,
        tweak: impl Fn(&mut ShellConfig),
    ) -> Cluster<'a> {
        Self::with_joiners(seed, voters, observers, 0, tweak)
    }

    /// Also configures `joiners` servers (ids after the observers) that are
    /// not started: see [`Cluster::start`].
    pub fn with_joiners(
        seed: u64,
        voters: u64,
        observers: u64,
        joiners: u64,
        tweak: impl Fn(&mut ShellConfig),
    ) -> Cluster<'a> {
        let mut b = faultline_node::sim::builder(seed);
        b.simulation_duration(Duration::from_secs(600))
            .max_message_latency(Duration::from_millis(10));
        let sim = b.build();
        let v: Vec<Sid> = (1..=voters).collect();
        let o: Vec<Sid> = (voters + 1..=voters + observers).collect();
        let j: Vec<Sid> = (voters + observers + 1..=voters + observers + joiners).collect();
        let hosts: BTreeMap<Sid, String> = v
            .iter()
            .chain(&o)
            .chain(&j)
            .map(|s| (*s, host(*s)))
            .collect();
        let mut c = Cluster {
            sim,
            probes: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        for &sid in v.iter().chain(&o).chain(&j) {
            let mut cfg =
                ShellConfig::new(NodeConfig::new(sid, v.clone(), o.clone()), hosts.clone());
            tweak(&mut cfg);
            c.configs.insert(sid, cfg);
            if !j.contains(&sid) {
                c.start(sid);
            }
        }
        c
    }

    /// Starts the host of a configured server.
    pub fn start(&mut self, sid: Sid) {
        let probe = Probe::default();
        let (cfg, p) = (self.configs[&sid].clone(), probe.clone());
        self.sim
            .host(host(sid), move || shell::run(cfg.clone(), p.clone()));
        self.probes.insert(sid, probe);
    }

    pub fn status(&self, sid: Sid) -> Status {
        self.probes[&sid].status()
    }

    pub fn statuses(&self) -> BTreeMap<Sid, Status> {
        self.probes.iter().map(|(s, p)| (*s, p.status())).collect()
    }

    /// Steps the simulation until `cond` holds, for at most `limit` of
    /// simulated time; panics if it never does.
    pub fn run_until(&mut self, limit: Duration, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let start = self.sim.elapsed();
        while !cond(self) {
            assert!(
                self.sim.elapsed() - start < limit,
                "{what}: not reached within {limit:?}; statuses {:#?}",
                self.statuses()
            );
            self.sim.step().expect("simulation step");
        }
    }

    /// Steps for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.sim.elapsed() + d;
        while self.sim.elapsed() < end {
            self.sim.step().expect("simulation step");
        }
    }

    /// The established leader, if exactly one server leads and serves.
    pub fn leader(&self) -> Option<Sid> {
        let leaders: Vec<Sid> = self
            .statuses()
            .into_iter()
            .filter(|(_, s)| s.up && s.role == Some(PeerState::Leading) && s.serving)
            .map(|(sid, _)| sid)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    pub fn wait_for_leader(&mut self, limit: Duration) -> Sid {
        self.run_until(limit, "an established leader", |c| {
            c.leader().is_some_and(|l| {
                c.statuses().values().filter(|s| s.up && s.serving).count() * 2 > c.probes.len()
                    && l > 0
            })
        });
        self.leader().expect("checked")
    }

    pub fn crash(&mut self, sid: Sid) {
        self.sim.crash(host(sid));
        self.probes[&sid].mark_down();
    }

    pub fn restart(&mut self, sid: Sid) {
        self.sim.bounce(host(sid));
    }

    /// Every up server has applied the same history.
    pub fn converged(&self) -> bool {
        let up: Vec<Status> = self
            .statuses()
            .into_values()
            .filter(|s| s.up && s.serving)
            .collect();
        up.len() == self.probes.len()
            && up
                .windows(2)
                .all(|w| w[0].last_committed == w[1].last_committed && w[0].digest == w[1].digest)
    }
}

/// Calls `op` as request `(session, seq)` until it gets an answer other
/// than NotReady, reconnecting to the next server on errors (a retry keeps
/// the sequence number); returns the response.
pub async fn call_retrying(
    servers: &[Sid],
    session: u64,
    seq: u64,
    op: ClientOp,
) -> ClientResponse {
    let mut i = 0usize;
    loop {
        let sid = servers[i % servers.len()];
        i += 1;
        let Ok(mut c) =
            Client::connect(&host(sid), 2181, session, Duration::from_millis(500)).await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        loop {
            match c.call_seq(seq, op.clone(), Duration::from_secs(2)).await {
                Ok(r) if r.outcome == Outcome::NotReady => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(r) => return r,
                Err(CallError::Timeout) | Err(CallError::Disconnected(_)) => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends one write from a new client of `server` (session `session`) and
/// returns its answer, or the error, after at most `timeout`.
pub async fn write_once(
    server: Sid,
    session: u64,
    key: u64,
    value: i64,
    timeout: Duration,
) -> std::io::Result<Result<ClientResponse, CallError>> {
    let mut cl = Client::connect(&host(server), 2181, session, Duration::from_secs(1)).await?;
    Ok(cl.call(ClientOp::Write { key, value }, timeout).await)
}

/// Writes `values` to key `key` through `server` (session `session`),
/// each acknowledged.
pub fn write_all(
    c: &mut Cluster,
    server: u64,
    session: u64,
    key: u64,
    values: std::ops::Range<i64>,
) {
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

/// The sync modes server `sid` reported, in order.
pub fn sync_modes(c: &Cluster, sid: u64) -> Vec<faultline_node::SyncMode> {
    c.probes[&sid]
        .events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            faultline_node::ProtocolEvent::Sync { mode, .. } => Some(mode),
            _ => None,
        })
        .collect()
}

/// Three voters that snapshot every 20 txns and keep a DIFF window of 5,
/// so that a server further behind is synced by SNAP.
pub fn snapshotting<'a>(seed: u64) -> Cluster<'a> {
    Cluster::with(seed, 3, 0, |cfg| {
        cfg.node.snapshot_interval = 20;
        cfg.node.committed_log_window = 5;
    })
}

/// Asserts that server `sid` was last synced by SNAP.
pub fn assert_last_sync_is_snap(c: &Cluster, sid: u64) {
    let modes = sync_modes(c, sid);
    assert!(
        matches!(modes.last(), Some(faultline_node::SyncMode::Snap(_))),
        "{modes:?}"
    );
}
