//! A second system under the engine, plugged in through the `System` trait
//! alone: a deliberately weak primary-backup store. The server with the
//! lowest id it has heard from lately is the primary; it applies a write,
//! acknowledges it at once, and only then sends it to the backups, fire and
//! forget. State lives in memory; a restarted server takes the most
//! advanced state its peers send it before it serves. The same workload, nemesis and
//! checks as for the ZAB node run against it, and the bench must flag it.

use faultline_bench::run::{run_system, topology, RunConfig};
use faultline_bench::system::{host, Evidence, RoleChange, ServerView, System, Task, CLIENT_PORT};
use faultline_bench::RunFlags;
use faultline_checker::Validity;
use faultline_nemesis::{Schedule, Sid};
use faultline_node::{wire, ClientOp, ClientRequest, ClientResponse, Outcome, Zxid};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use turmoil::net::{TcpListener, TcpStream, UdpSocket};

/// The port servers talk to each other on (UDP).
const PEER_PORT: u16 = 3888;
/// How often a server announces itself.
const HEARTBEAT: Duration = Duration::from_millis(20);
/// A server not heard from for this long is presumed down.
const SILENCE: Duration = Duration::from_millis(100);

#[derive(Serialize, Deserialize)]
enum Peer {
    Heartbeat {
        from: Sid,
    },
    Replicate {
        pos: u64,
        key: u64,
        value: i64,
    },
    /// A restarted server asks for the peers' state.
    Fetch {
        from: Sid,
    },
    State {
        pos: u64,
        data: Vec<(u64, i64)>,
    },
}

/// What one server's host shows the engine.
#[derive(Default)]
struct Probe {
    view: ServerView,
    started: Option<Duration>,
    roles: Vec<RoleChange>,
    primaries: u64,
}

type Shared = Rc<RefCell<Probe>>;

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// One server's state (in memory: a restart forgets everything).
struct Server {
    sid: Sid,
    peers: Vec<Sid>,
    data: BTreeMap<u64, i64>,
    pos: u64,
    /// Replicated writes that arrived ahead of a missing one.
    ahead: BTreeMap<u64, (u64, i64)>,
    heard: BTreeMap<Sid, Duration>,
    started: Duration,
    probe: Shared,
}

impl Server {
    fn primary(&self) -> bool {
        let t = now();
        t >= self.started + SILENCE
            && !self
                .heard
                .iter()
                .any(|(s, at)| *s < self.sid && t.saturating_sub(*at) < SILENCE)
    }

    fn digest(&self) -> u64 {
        self.data.iter().fold(self.pos, |h, (k, v)| {
            h.rotate_left(7) ^ (k * 31 + *v as u64)
        })
    }

    /// Refreshes the probe, recording a role change when there is one.
    fn publish(&self) {
        let primary = self.primary();
        let mut p = self.probe.borrow_mut();
        if primary != p.view.leading {
            if primary {
                p.primaries += 1;
            }
            let epoch = (p.primaries << 8) | self.sid;
            p.roles.push(RoleChange {
                time_ns: now().as_nanos() as u64,
                sid: self.sid,
                leads: primary,
                epoch,
            });
        }
        p.view = ServerView {
            up: true,
            serving: now() >= self.started + SILENCE,
            leading: primary,
            epoch: (p.primaries << 8) | self.sid,
            position: self.pos,
            digest: self.digest(),
            voters: self.peers.clone(),
        };
    }

    /// Applies the replicated writes that follow on from `pos`.
    fn catch_up(&mut self) {
        let pos = self.pos;
        self.ahead.retain(|p, _| *p > pos);
        while let Some((key, value)) = self.ahead.remove(&(self.pos + 1)) {
            self.data.insert(key, value);
            self.pos += 1;
        }
    }

    /// Answers one request; a write to replicate comes back with it.
    fn handle(&mut self, req: &ClientRequest) -> (Outcome, Option<(u64, u64, i64)>) {
        let primary = self.primary();
        match req.op {
            ClientOp::Read { key } => (Outcome::Value(self.data.get(&key).copied()), None),
            ClientOp::SyncRead { key } if primary => {
                (Outcome::Value(self.data.get(&key).copied()), None)
            }
            ClientOp::Write { key, value } if primary => {
                self.data.insert(key, value);
                self.pos += 1;
                (Outcome::Written, Some((self.pos, key, value)))
            }
            ClientOp::Cas { key, from, to } if primary => {
                let actual = self.data.get(&key).copied();
                if actual != from {
                    return (Outcome::CasFailed { actual }, None);
                }
                self.data.insert(key, to);
                self.pos += 1;
                (Outcome::Written, Some((self.pos, key, to)))
            }
            // Sessions are accepted and never expire: this store keeps no
            // session state at all.
            ClientOp::CreateSession { timeout } => (Outcome::Opened { timeout }, None),
            ClientOp::Ping => (Outcome::Pong, None),
            _ => (Outcome::NotReady, None),
        }
    }
}

async fn send_all(udp: &UdpSocket, peers: &[Sid], me: Sid, msg: &Peer) {
    let bytes = wire::encode(msg);
    for &p in peers.iter().filter(|&&p| p != me) {
        let _ = udp
            .send_to(&bytes[4..], (host(p).as_str(), PEER_PORT))
            .await;
    }
}

async fn serve_client(stream: TcpStream, server: Rc<RefCell<Server>>, udp: Rc<UdpSocket>) {
    let (mut r, mut w) = stream.into_split();
    while let Ok(req) = wire::read_frame::<ClientRequest>(&mut r).await {
        let (outcome, replicate) = server.borrow_mut().handle(&req);
        let (sid, pos, peers) = {
            let s = server.borrow();
            (s.sid, s.pos, s.peers.clone())
        };
        let resp = ClientResponse {
            session: req.session,
            seq: req.seq,
            outcome,
            zxid: Zxid(pos),
            node: sid,
        };
        // Acknowledged first, replicated after: the weakness.
        if wire::write_frame(&mut w, &resp).await.is_err() {
            return;
        }
        if let Some((pos, key, value)) = replicate {
            send_all(&udp, &peers, sid, &Peer::Replicate { pos, key, value }).await;
        }
    }
}

async fn run_server(sid: Sid, peers: Vec<Sid>, probe: Shared) -> turmoil::Result {
    let started = now();
    probe.borrow_mut().started = Some(started);
    let server = Rc::new(RefCell::new(Server {
        sid,
        peers: peers.clone(),
        data: BTreeMap::new(),
        pos: 0,
        ahead: BTreeMap::new(),
        heard: BTreeMap::new(),
        started,
        probe,
    }));
    let udp = Rc::new(UdpSocket::bind(("0.0.0.0", PEER_PORT)).await?);
    let listener = TcpListener::bind(("0.0.0.0", CLIENT_PORT)).await?;
    let (s2, u2) = (server.clone(), udp.clone());
    tokio::task::spawn_local(async move {
        send_all(&u2, &peers, sid, &Peer::Fetch { from: sid }).await;
        loop {
            send_all(&u2, &peers, sid, &Peer::Heartbeat { from: sid }).await;
            s2.borrow().publish();
            tokio::time::sleep(HEARTBEAT).await;
        }
    });
    let (s3, u3) = (server.clone(), udp.clone());
    tokio::task::spawn_local(async move {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok((n, _)) = u3.recv_from(&mut buf).await {
            let Ok(msg) = wire::decode::<Peer>(&buf[..n]) else {
                continue;
            };
            let reply = match &msg {
                Peer::Fetch { from } => {
                    let s = s3.borrow();
                    let data = s.data.iter().map(|(k, v)| (*k, *v)).collect();
                    Some((*from, Peer::State { pos: s.pos, data }))
                }
                _ => None,
            };
            if let Some((to, state)) = reply {
                let bytes = wire::encode(&state);
                let _ = u3
                    .send_to(&bytes[4..], (host(to).as_str(), PEER_PORT))
                    .await;
                continue;
            }
            let mut s = s3.borrow_mut();
            match msg {
                Peer::Heartbeat { from } => {
                    s.heard.insert(from, now());
                }
                // Backups apply the primary's writes in its order.
                Peer::Replicate { pos, key, value } => {
                    s.ahead.insert(pos, (key, value));
                    s.catch_up();
                }
                Peer::State { pos, data } if pos > s.pos && now() < s.started + SILENCE => {
                    s.data = data.into_iter().collect();
                    s.pos = pos;
                    s.catch_up();
                }
                _ => {}
            }
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::task::spawn_local(serve_client(stream, server.clone(), udp.clone()));
    }
}

/// The primary-backup store as a system under test.
struct PrimaryBackup {
    servers: Vec<Sid>,
    probes: BTreeMap<Sid, Shared>,
}

impl System for PrimaryBackup {
    fn name(&self) -> &'static str {
        "primary-backup"
    }

    fn start(&mut self, sim: &mut turmoil::Sim<'_>, s: Sid) {
        let probe = self.probes.entry(s).or_default().clone();
        let peers = self.servers.clone();
        sim.host(host(s), move || run_server(s, peers.clone(), probe.clone()));
    }

    fn crashed(&mut self, s: Sid) {
        if let Some(p) = self.probes.get(&s) {
            let mut p = p.borrow_mut();
            p.view.up = false;
            p.view.serving = false;
            if p.view.leading {
                p.view.leading = false;
                let (sid, epoch) = (s, p.view.epoch);
                p.roles.push(RoleChange {
                    time_ns: now().as_nanos() as u64,
                    sid,
                    leads: false,
                    epoch,
                });
            }
        }
    }

    fn view(&self, s: Sid) -> ServerView {
        self.probes
            .get(&s)
            .map(|p| p.borrow().view.clone())
            .unwrap_or_default()
    }

    fn read_back_since(&self, s: Sid, at: Duration) -> bool {
        self.probes[&s].borrow().started.is_some_and(|t| t >= at)
    }

    fn admin(&self) -> Option<Task> {
        None
    }

    fn add_voter(&mut self, _: Sid) {}

    fn role_changes(&self) -> Vec<RoleChange> {
        let mut v: Vec<RoleChange> = self
            .probes
            .values()
            .flat_map(|p| p.borrow().roles.clone())
            .collect();
        v.sort();
        v
    }

    fn evidence(&self, _: &[Sid]) -> Evidence {
        Evidence::default()
    }
}

/// One run of the weak store: three servers, the strict workload, this
/// chaos phase and these faults.
fn weak_run(seed: u64, duration: &str, nemesis: &str) -> faultline_bench::run::RunResult {
    let flags = [
        "--nodes",
        "3",
        "--observers",
        "0",
        "--duration",
        duration,
        "--workload",
        "strict",
        "--nemesis",
        nemesis,
    ];
    let cfg: RunConfig = RunFlags::from_flags(&flags).unwrap().config(seed).unwrap();
    let topo = topology(&cfg);
    let schedule = Schedule::generate(seed, &cfg.nemesis, cfg.chaos_ms, &topo);
    let system = PrimaryBackup {
        servers: topo.servers.clone(),
        probes: BTreeMap::new(),
    };
    let (r, _) = run_system(&cfg, &schedule, Box::new(system)).unwrap_or_else(|e| {
        panic!("seed {seed}: {}", e.message());
    });
    r
}

#[test]
fn the_bench_flags_a_store_that_acknowledges_before_replicating() {
    for seed in 301..=303 {
        let r = weak_run(seed, "4s", "crash-leader,partition-leader");
        assert_eq!(r.result, Validity::Invalid, "seed {seed}: {:#?}", r.checks);
        let lin = r.checks.iter().find(|c| c.name == "linearizable").unwrap();
        assert_eq!(lin.result, Validity::Invalid, "seed {seed}: {lin:#?}");
        assert!(r.ops > 500, "seed {seed}: the workload ran ({} ops)", r.ops);
        assert!(
            r.not_applicable.iter().any(|c| c == "durability"),
            "checks without evidence are not applicable, not passed: {:?}",
            r.not_applicable
        );
        assert!(r.checks.iter().all(|c| c.name != "durability"));
    }
}

#[test]
fn without_faults_the_weak_store_passes() {
    // The same store with no nemesis is linearizable: the failures above
    // are the faults', found by the checks, not an artefact of the adapter.
    let r = weak_run(304, "2s", "none");
    assert_eq!(r.result, Validity::Valid, "{:#?}", r.checks);
    assert!(r.ops > 500);
}
