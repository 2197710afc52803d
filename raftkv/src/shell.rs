//! The turmoil shell: runs a [`Core`] as a simulated host. It moves bytes,
//! ticks and disk writes, and decides nothing about the protocol.
//!
//! * One TCP link per pair of servers (the lower id dials), carrying
//!   frames (hello, raft-rs messages, pings). Simulated TCP never
//!   retransmits, so a partition wedges a link: each side pings when it
//!   has been quiet for `heartbeat` and closes a link silent for
//!   `idle_timeout`; raft-rs resends what was lost. A message for a peer
//!   without a link is dropped, as a network would.
//! * Clients connect to `client_port` and exchange `ClientRequest` /
//!   `ClientResponse` frames (`faultline_node::wire`).
//! * Every Ready is persisted (a leader's snapshot installed, entries and
//!   hard state appended, fsynced) before anything that depends on it is
//!   sent or told to raft-rs; with the `ack_before_persist` bug it is only
//!   appended, and synced `lazy_sync` later. The server's own snapshots
//!   are written atomically when taken.
//! * The tick: raft-rs's election timeout is pinned to one value; a
//!   server that does not lead skips each tick with a coin drawn from the
//!   seed, which spreads elections as raft-rs's own randomness would.

use crate::core::{Conn, Core, CoreConfig};
use crate::disk::{Disk, Image};
use crate::kv::Kv;
use crate::storage::LogStore;
use faultline_node::wire;
use faultline_node::{ClientRequest, ClientResponse};
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};

/// A server's host: its core, peers, ports, timing and seed.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    /// The core's configuration.
    pub core: CoreConfig,
    /// Every server's host name, by id.
    pub hosts: BTreeMap<u64, String>,
    /// The port peers dial.
    pub peer_port: u16,
    /// The port clients dial.
    pub client_port: u16,
    /// The raft tick.
    pub tick: Duration,
    /// A link quiet this long gets a ping.
    pub heartbeat: Duration,
    /// A link silent this long is closed.
    pub idle_timeout: Duration,
    /// How long after a failed dial to dial again.
    pub redial: Duration,
    /// With the `ack_before_persist` bug: how long after an append it is
    /// synced.
    pub lazy_sync: Duration,
    /// The data directory on the simulated disk.
    pub data_dir: String,
    /// The run's seed: the election spread is drawn from it.
    pub seed: u64,
}

impl ShellConfig {
    /// The defaults: 10 ms ticks, elections after 10 ticks (20 on average
    /// with the spread), heartbeats every 2.
    pub fn new(
        id: u64,
        voters: Vec<u64>,
        learners: Vec<u64>,
        hosts: BTreeMap<u64, String>,
    ) -> Self {
        ShellConfig {
            core: CoreConfig {
                id,
                voters,
                learners,
                election_tick: 10,
                heartbeat_tick: 2,
                snapshot_every: 1000,
                bugs: crate::Bugs::default(),
            },
            hosts,
            peer_port: 2888,
            client_port: 2181,
            tick: Duration::from_millis(10),
            heartbeat: Duration::from_millis(30),
            idle_timeout: Duration::from_millis(100),
            redial: Duration::from_millis(50),
            lazy_sync: Duration::from_millis(200),
            data_dir: "/data".to_string(),
            seed: 0,
        }
    }
}

/// What a link carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Frame {
    /// The dialer's id, first on every link.
    Hello(u64),
    /// A raft-rs message, protobuf-encoded.
    Raft(Vec<u8>),
    /// Keeps a quiet link alive.
    Ping,
}

/// What the engine can see of a server, kept up to date by its shell.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Its host runs (set when it starts, cleared by the engine's crash).
    pub up: bool,
    /// Whether it leads its term.
    pub leading: bool,
    /// Its term.
    pub term: u64,
    /// The leader it knows of (0: none).
    pub leader: u64,
    /// The last entry applied.
    pub applied: u64,
    /// A digest of the state machine.
    pub digest: u64,
    /// The voters of its configuration.
    pub voters: Vec<u64>,
    /// Client requests waiting in the core.
    pub waiting: usize,
    /// Entries in its in-memory log.
    pub log_entries: usize,
}

/// What a probe holds beside the status: the larger records, read only
/// when asked for.
#[derive(Debug, Default)]
struct Records {
    status: Status,
    /// When the host last read its files back, and what it read.
    image: Option<(Duration, Image)>,
    /// Every change of (leading, term), with its simulated time.
    roles: Vec<(Duration, bool, u64)>,
    /// Raft messages sent per simulated second.
    messages: BTreeMap<u64, u64>,
}

/// A handle on a server's [`Status`] and records, shared with the engine.
#[derive(Clone, Debug, Default)]
pub struct Probe(Rc<RefCell<Records>>);

impl Probe {
    /// A copy of the status now.
    pub fn status(&self) -> Status {
        self.0.borrow().status.clone()
    }

    /// When the host last read its files back (simulated time), and what
    /// it read.
    pub fn image(&self) -> Option<(Duration, Image)> {
        self.0.borrow().image.clone()
    }

    /// When the host last read its files back.
    pub fn image_time(&self) -> Option<Duration> {
        self.0.borrow().image.as_ref().map(|(t, _)| *t)
    }

    /// Every change of (leading, term), with its simulated time.
    pub fn roles(&self) -> Vec<(Duration, bool, u64)> {
        self.0.borrow().roles.clone()
    }

    /// Raft messages sent per simulated second: (second, count).
    pub fn messages_by_second(&self) -> Vec<(u64, u64)> {
        let r = self.0.borrow();
        r.messages.iter().map(|(s, n)| (*s, *n)).collect()
    }

    /// Raft messages sent in all.
    pub fn messages_sent(&self) -> u64 {
        self.0.borrow().messages.values().sum()
    }

    /// The engine cut the host's power.
    pub fn mark_down(&self) {
        self.update(|s| {
            s.up = false;
            s.leading = false;
            s.leader = 0;
        });
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.0.borrow_mut().status);
    }
}

enum Event {
    PeerUp(u64, u64, OwnedWriteHalf),
    PeerFrame(u64, Frame),
    PeerGone(u64, u64),
    Dialed(u64, Option<(OwnedReadHalf, OwnedWriteHalf)>),
    ClientUp(Conn, OwnedWriteHalf),
    ClientReq(Conn, ClientRequest),
    ClientGone(Conn),
}

struct Link {
    id: u64,
    writer: OwnedWriteHalf,
    last_recv: Instant,
    last_send: Instant,
    buf: Vec<u8>,
}

struct Shell {
    cfg: ShellConfig,
    core: Core,
    disk: Disk,
    probe: Probe,
    tx: mpsc::UnboundedSender<Event>,
    links: BTreeMap<u64, Link>,
    next_link: u64,
    dialing: BTreeMap<u64, Instant>,
    clients: BTreeMap<Conn, OwnedWriteHalf>,
    out: BTreeMap<Conn, Vec<u8>>,
    sync_at: Option<Instant>,
    rng: rand_chacha::ChaCha8Rng,
    /// The applied index last published (this incarnation).
    published: Option<u64>,
}

fn sim_time() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// Runs server `cfg.core.id` until its host is crashed.
pub async fn run(cfg: ShellConfig, probe: Probe) -> turmoil::Result {
    let (disk, image) = Disk::open(&cfg.data_dir)?;
    let started = sim_time();
    probe.update(|s| s.up = true);
    probe.0.borrow_mut().image = Some((started, image.clone()));
    let storage = LogStore::restored(
        &cfg.core.voters,
        &cfg.core.learners,
        image.snapshot.as_ref(),
        &image.entries,
        &image.hard_state,
    );
    // The state machine starts from the snapshot (or empty): the committed
    // entries after it are applied again from the log.
    let kv = match &image.snapshot {
        Some(s) => postcard::from_bytes(&s.data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
        None => Kv::default(),
    };
    let core = Core::new(&cfg.core, storage, kv)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let peers = TcpListener::bind(("0.0.0.0", cfg.peer_port)).await?;
    let clients = TcpListener::bind(("0.0.0.0", cfg.client_port)).await?;
    tokio::task::spawn_local(accept_peers(peers, tx.clone()));
    tokio::task::spawn_local(accept_clients(clients, tx.clone()));
    let seed =
        cfg.seed ^ cfg.core.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ started.as_nanos() as u64;
    let mut sh = Shell {
        core,
        disk,
        probe,
        tx,
        links: BTreeMap::new(),
        next_link: 1 << 32,
        dialing: BTreeMap::new(),
        clients: BTreeMap::new(),
        out: BTreeMap::new(),
        sync_at: None,
        rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        published: None,
        cfg,
    };
    let mut tick = tokio::time::interval(sh.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sync_at = sh.sync_at;
        tokio::select! {
            biased;
            ev = rx.recv() => {
                sh.event(ev.expect("the shell holds a sender"));
                while let Ok(ev) = rx.try_recv() {
                    sh.event(ev);
                }
            }
            _ = tick.tick() => {
                if sh.core.leading() || sh.rng.random_bool(0.5) {
                    let replies = sh.core.tick();
                    sh.reply(replies);
                }
                sh.maintain_links();
            }
            _ = tokio::time::sleep_until(sync_at.unwrap_or_else(Instant::now)), if sync_at.is_some() => {
                sh.sync_at = None;
                sh.disk.sync()?;
            }
        }
        sh.drive()?;
        sh.flush().await;
        sh.publish();
    }
}

async fn accept_peers(l: TcpListener, tx: mpsc::UnboundedSender<Event>) {
    // Accepted links are numbered from 1, dialed ones from 2^32.
    let mut next = 0u64;
    while let Ok((stream, _)) = l.accept().await {
        next += 1;
        let link = next;
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let (r, w) = stream.into_split();
            let mut r = tokio::io::BufReader::new(r);
            let Ok(Frame::Hello(sid)) = wire::read_frame::<Frame>(&mut r).await else {
                return;
            };
            if tx.send(Event::PeerUp(sid, link, w)).is_ok() {
                read_peer(r, sid, link, tx).await;
            }
        });
    }
}

/// Reads link `link`'s frames until it breaks, then reports it gone.
async fn read_peer(
    mut r: tokio::io::BufReader<OwnedReadHalf>,
    sid: u64,
    link: u64,
    tx: mpsc::UnboundedSender<Event>,
) {
    while let Ok(f) = wire::read_frame::<Frame>(&mut r).await {
        if tx.send(Event::PeerFrame(sid, f)).is_err() {
            return;
        }
    }
    let _ = tx.send(Event::PeerGone(sid, link));
}

async fn accept_clients(l: TcpListener, tx: mpsc::UnboundedSender<Event>) {
    let mut next = 0u64;
    while let Ok((stream, _)) = l.accept().await {
        next += 1;
        let conn = next;
        let (r, w) = stream.into_split();
        if tx.send(Event::ClientUp(conn, w)).is_err() {
            return;
        }
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let mut r = tokio::io::BufReader::new(r);
            while let Ok(req) = wire::read_frame::<ClientRequest>(&mut r).await {
                if tx.send(Event::ClientReq(conn, req)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::ClientGone(conn));
        });
    }
}

impl Shell {
    fn event(&mut self, ev: Event) {
        match ev {
            Event::PeerUp(sid, link, writer) => self.link_up(sid, link, writer),
            Event::Dialed(sid, conn) => {
                self.dialing.remove(&sid);
                match conn {
                    Some((r, w)) => {
                        self.next_link += 1;
                        let link = self.next_link;
                        self.link_up(sid, link, w);
                        let tx = self.tx.clone();
                        let r = tokio::io::BufReader::new(r);
                        tokio::task::spawn_local(read_peer(r, sid, link, tx));
                    }
                    None => {
                        self.dialing.insert(sid, Instant::now() + self.cfg.redial);
                    }
                }
            }
            Event::PeerFrame(sid, f) => {
                if let Some(l) = self.links.get_mut(&sid) {
                    l.last_recv = Instant::now();
                }
                if let Frame::Raft(bytes) = f {
                    if let Ok(m) = Message::parse_from_bytes(&bytes) {
                        self.core.recv(m);
                    }
                }
            }
            Event::PeerGone(sid, link) => {
                if self.links.get(&sid).is_some_and(|l| l.id == link) {
                    self.links.remove(&sid);
                    self.core.unreachable(sid);
                }
            }
            Event::ClientUp(conn, w) => {
                self.clients.insert(conn, w);
            }
            Event::ClientReq(conn, req) => {
                let replies = self.core.client(conn, req);
                self.reply(replies);
            }
            Event::ClientGone(conn) => {
                self.core.client_gone(conn);
                self.clients.remove(&conn);
                self.out.remove(&conn);
            }
        }
    }

    fn link_up(&mut self, sid: u64, id: u64, writer: OwnedWriteHalf) {
        let now = Instant::now();
        self.links.insert(
            sid,
            Link {
                id,
                writer,
                last_recv: now,
                last_send: now,
                buf: Vec::new(),
            },
        );
    }

    /// Pings quiet links, closes silent ones, dials the missing ones (the
    /// lower id dials).
    fn maintain_links(&mut self) {
        let now = Instant::now();
        let idle = self.cfg.idle_timeout;
        let silent: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, l)| now - l.last_recv >= idle)
            .map(|(s, _)| *s)
            .collect();
        for sid in silent {
            self.links.remove(&sid);
            self.core.unreachable(sid);
        }
        for l in self.links.values_mut() {
            if now - l.last_send >= self.cfg.heartbeat && l.buf.is_empty() {
                wire::encode_into(&mut l.buf, &Frame::Ping);
            }
        }
        let me = self.cfg.core.id;
        let peers: Vec<(u64, String)> = self
            .cfg
            .hosts
            .iter()
            .filter(|(s, _)| **s > me && !self.links.contains_key(s))
            .map(|(s, h)| (*s, h.clone()))
            .collect();
        for (sid, host) in peers {
            if self.dialing.get(&sid).is_some_and(|at| *at > now) {
                continue;
            }
            self.dialing.insert(sid, now + Duration::from_secs(3600));
            let tx = self.tx.clone();
            let port = self.cfg.peer_port;
            tokio::task::spawn_local(async move {
                let dialed = tokio::time::timeout(Duration::from_millis(200), async {
                    let s = TcpStream::connect((host.as_str(), port)).await.ok()?;
                    let (r, mut w) = s.into_split();
                    w.write_all(&wire::encode(&Frame::Hello(me))).await.ok()?;
                    Some((r, w))
                })
                .await
                .ok()
                .flatten();
                let _ = tx.send(Event::Dialed(sid, dialed));
            });
        }
    }

    /// Runs raft-rs's Ready loop: persist, then send and answer.
    fn drive(&mut self) -> std::io::Result<()> {
        while let Some(b) = self.core.ready() {
            self.reply(b.replies);
            if let Some(snap) = &b.persist.snapshot {
                self.disk.install(snap)?;
            }
            self.disk
                .append(&b.persist.entries, b.persist.hard_state.as_ref())?;
            if self.cfg.core.bugs.ack_before_persist {
                if self.disk.dirty() && self.sync_at.is_none() {
                    self.sync_at = Some(Instant::now() + self.cfg.lazy_sync);
                }
            } else {
                self.disk.sync()?;
            }
            let a = self.core.persisted();
            self.send(b.send);
            self.send(a.send);
            self.reply(a.replies);
        }
        if let Some(snap) = self.core.taken() {
            self.disk.write_snapshot(&snap)?;
        }
        Ok(())
    }

    fn send(&mut self, msgs: Vec<Message>) {
        let n = msgs.len() as u64;
        for m in msgs {
            let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let sent = match self.links.get_mut(&m.to) {
                Some(l) => {
                    let bytes = m.write_to_bytes().expect("messages encode");
                    wire::encode_into(&mut l.buf, &Frame::Raft(bytes));
                    true
                }
                None => false,
            };
            if snapshot {
                self.core.snapshot_sent(m.to, sent);
            }
        }
        if n > 0 {
            let second = sim_time().as_secs();
            *self
                .probe
                .0
                .borrow_mut()
                .messages
                .entry(second)
                .or_default() += n;
        }
    }

    fn reply(&mut self, replies: Vec<(Conn, ClientResponse)>) {
        for (conn, r) in replies {
            if self.clients.contains_key(&conn) {
                wire::encode_into(self.out.entry(conn).or_default(), &r);
            }
        }
    }

    /// Writes what this turn produced: one write per link and client.
    async fn flush(&mut self) {
        let now = Instant::now();
        let mut broken = Vec::new();
        for (sid, l) in self.links.iter_mut() {
            if l.buf.is_empty() {
                continue;
            }
            let buf = std::mem::take(&mut l.buf);
            l.last_send = now;
            if l.writer.write_all(&buf).await.is_err() {
                broken.push((*sid, l.id));
            }
        }
        for (sid, id) in broken {
            if self.links.get(&sid).is_some_and(|l| l.id == id) {
                self.links.remove(&sid);
                self.core.unreachable(sid);
            }
        }
        for (conn, buf) in std::mem::take(&mut self.out) {
            if let Some(w) = self.clients.get_mut(&conn) {
                if w.write_all(&buf).await.is_err() {
                    self.clients.remove(&conn);
                }
            }
        }
    }

    /// Refreshes the probe after a turn of the loop; the state machine's
    /// digest and the voters only when this incarnation applied something
    /// since (they change with nothing else), the time only when the role
    /// changed.
    fn publish(&mut self) {
        let c = &self.core;
        let (leading, term) = (c.leading(), c.term());
        let mut r = self.probe.0.borrow_mut();
        if r.roles
            .last()
            .is_none_or(|(_, l, t)| (*l, *t) != (leading, term))
        {
            r.roles.push((sim_time(), leading, term));
        }
        let s = &mut r.status;
        let applied = c.kv().applied;
        if self.published != Some(applied) {
            self.published = Some(applied);
            s.applied = applied;
            s.digest = c.kv().digest();
            s.voters = c.voters();
        }
        s.leading = leading;
        s.term = term;
        s.leader = c.leader();
        s.waiting = c.waiting();
        s.log_entries = c.log_entries();
    }
}
