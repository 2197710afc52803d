//! The turmoil shell: runs a [`Node`] as a simulated host. It is the only
//! code of this crate that touches turmoil or tokio; it moves bytes, ticks
//! and disk writes, and decides nothing about the protocol.
//!
//! * One TCP link per pair of servers (the lower id dials), framed by
//!   [`crate::wire`]. Simulated TCP never retransmits, so a partition
//!   wedges a link: each side sends a heartbeat when it has been quiet for
//!   `heartbeat`, and closes a link that stayed silent for `idle_timeout`.
//!   Every link torn down (closed, failed, idle, replaced) is reported to
//!   the core as `Input::LinkDown`, since messages on it may be lost.
//! * Clients connect to `client_port` and exchange
//!   [`ClientRequest`]/[`ClientResponse`] frames.
//! * Log appends are written at once but fsynced `fsync_latency` later,
//!   together with everything appended meanwhile (group commit); only then
//!   does the core hear `Input::Synced`. A crash in that window loses the
//!   appends, as on a real disk.

use crate::core::{Input, Node, Output, Persist};
use crate::disk::Disk;
pub use crate::evidence::{Evidence, Record};
use crate::msg::{Frame, PeerMsg};
pub use crate::probe::{Probe, Status};
use crate::wire;
use crate::NodeConfig;
use crate::{ClientRequest, ClientResponse, Sid};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};

/// How a server is wired into the simulation.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    /// The protocol configuration.
    pub node: NodeConfig,
    /// Host name of every server, by id.
    pub hosts: BTreeMap<Sid, String>,
    /// Port of server-to-server links.
    pub peer_port: u16,
    /// Port clients connect to.
    pub client_port: u16,
    /// Send a heartbeat on a link quiet for this long.
    pub heartbeat: Duration,
    /// Close a link that received nothing for this long.
    pub idle_timeout: Duration,
    /// Wait this long before dialing a peer again.
    pub redial: Duration,
    /// Time an fsync takes.
    pub fsync_latency: Duration,
    /// Data directory on the host's simulated disk.
    pub data_dir: String,
}

impl ShellConfig {
    /// Defaults: ports 2888/2181, heartbeat 30 ms, idle timeout 100 ms,
    /// redial 50 ms, fsync 1 ms, data in `/data`.
    pub fn new(node: NodeConfig, hosts: BTreeMap<Sid, String>) -> ShellConfig {
        ShellConfig {
            node,
            hosts,
            peer_port: 2888,
            client_port: 2181,
            heartbeat: Duration::from_millis(30),
            idle_timeout: Duration::from_millis(100),
            redial: Duration::from_millis(50),
            fsync_latency: Duration::from_millis(1),
            data_dir: "/data".to_string(),
        }
    }
}

enum Event {
    PeerUp {
        sid: Sid,
        link: u64,
        writer: OwnedWriteHalf,
    },
    PeerFrame {
        sid: Sid,
        link: u64,
        frame: Frame,
    },
    PeerClosed {
        sid: Sid,
        link: u64,
    },
    ClientUp {
        conn: u64,
        writer: OwnedWriteHalf,
    },
    ClientReq {
        conn: u64,
        req: ClientRequest,
    },
    ClientGone {
        conn: u64,
    },
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
    node: Node,
    disk: Disk,
    probe: Probe,
    tx: mpsc::UnboundedSender<Event>,
    links: BTreeMap<Sid, Link>,
    dialing: BTreeMap<Sid, Instant>,
    clients: BTreeMap<u64, OwnedWriteHalf>,
    sync_at: Option<Instant>,
    next_link: u64,
    /// Learners being synced by this host, with the epoch of the NEWLEADER
    /// sent to them (once sent), for the evidence records.
    syncing: BTreeMap<Sid, Option<u64>>,
}

/// Runs one server until the host is crashed. Errors are I/O errors of the
/// simulated disk or listeners, which end the host.
pub async fn run(cfg: ShellConfig, probe: Probe) -> turmoil::Result {
    let (disk, image) = Disk::open(&cfg.data_dir)?;
    let durable = image.durable();
    probe.update(|d| d.image = Some((sim_time(), image)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let peers = TcpListener::bind(("0.0.0.0", cfg.peer_port)).await?;
    let clients = TcpListener::bind(("0.0.0.0", cfg.client_port)).await?;
    tokio::task::spawn_local(accept_peers(peers, tx.clone()));
    tokio::task::spawn_local(accept_clients(clients, tx.clone()));
    let mut sh = Shell {
        node: Node::new(cfg.node.clone()),
        cfg,
        disk,
        probe,
        tx,
        links: BTreeMap::new(),
        dialing: BTreeMap::new(),
        clients: BTreeMap::new(),
        sync_at: None,
        next_link: 1 << 32,
        syncing: BTreeMap::new(),
    };
    sh.journal(&mut Now::default());
    sh.input(Input::Recover(durable)).await?;
    sh.flush().await?;
    let mut tick = tokio::time::interval(sh.cfg.node.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One timer for the pending fsync, reset when its time changes (a new
    // timer per turn of the loop would enter and leave the timer wheel on
    // every event).
    let sync_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sync_timer);
    let mut armed: Option<Instant> = None;
    loop {
        if sh.sync_at != armed {
            if let Some(at) = sh.sync_at {
                sync_timer.as_mut().reset(at);
            }
            armed = sh.sync_at;
        }
        tokio::select! {
            biased;
            ev = rx.recv() => {
                let ev = ev.expect("the shell holds a sender");
                sh.event(ev).await?;
                // Take whatever else is ready before the next fsync.
                while let Ok(ev) = rx.try_recv() {
                    sh.event(ev).await?;
                }
            }
            _ = tick.tick() => {
                sh.input(Input::Tick).await?;
                sh.maintain_links().await?;
                sh.publish();
            }
            _ = &mut sync_timer, if armed.is_some() => {
                sh.sync_at = None;
                let z = sh.disk.sync()?;
                sh.journal(&mut Now::default());
                sh.input(Input::Synced(z)).await?;
            }
        }
        // What every event of this turn sent goes out together: one write
        // per link.
        sh.flush().await?;
    }
}

/// Bytes a link or client connection reads from its socket at once.
const READ_BUFFER: usize = 16 << 10;

/// Simulated time since the simulation started.
fn sim_time() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// The simulated time, read at most once while the task runs without
/// waiting (it only moves while the task waits).
#[derive(Default)]
struct Now(Option<Duration>);

impl Now {
    fn get(&mut self) -> Duration {
        *self.0.get_or_insert_with(sim_time)
    }
}

async fn accept_peers(l: TcpListener, tx: mpsc::UnboundedSender<Event>) {
    let mut next = 0u64;
    while let Ok((stream, _)) = l.accept().await {
        next += 1;
        let link = next;
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let (mut r, w) = stream.into_split();
            let Ok(Frame::Hello { sid }) = wire::read_frame::<Frame>(&mut r).await else {
                return;
            };
            serve_link(r, w, sid, link, tx).await;
        });
    }
}

/// Hands a new link's writer to the shell and reads its frames until it
/// breaks.
async fn serve_link(
    r: OwnedReadHalf,
    w: OwnedWriteHalf,
    sid: Sid,
    link: u64,
    tx: mpsc::UnboundedSender<Event>,
) {
    if tx
        .send(Event::PeerUp {
            sid,
            link,
            writer: w,
        })
        .is_ok()
    {
        read_peer(r, sid, link, tx).await;
    }
}

async fn read_peer(r: OwnedReadHalf, sid: Sid, link: u64, tx: mpsc::UnboundedSender<Event>) {
    // Buffered: a segment holding many frames is read from the socket
    // once, not twice per frame.
    let mut r = tokio::io::BufReader::with_capacity(READ_BUFFER, r);
    loop {
        match wire::read_frame::<Frame>(&mut r).await {
            Ok(frame) => {
                if tx.send(Event::PeerFrame { sid, link, frame }).is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = tx.send(Event::PeerClosed { sid, link });
                return;
            }
        }
    }
}

async fn accept_clients(l: TcpListener, tx: mpsc::UnboundedSender<Event>) {
    let mut next = 0u64;
    while let Ok((stream, _)) = l.accept().await {
        next += 1;
        let conn = next;
        let (mut r, w) = stream.into_split();
        if tx.send(Event::ClientUp { conn, writer: w }).is_err() {
            return;
        }
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let mut r = tokio::io::BufReader::with_capacity(READ_BUFFER, &mut r);
            while let Ok(req) = wire::read_frame::<ClientRequest>(&mut r).await {
                if tx.send(Event::ClientReq { conn, req }).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::ClientGone { conn });
        });
    }
}

impl Shell {
    async fn event(&mut self, ev: Event) -> std::io::Result<()> {
        match ev {
            Event::PeerUp { sid, link, writer } => {
                self.dialing.remove(&sid);
                if self.links.contains_key(&sid) {
                    self.link_down(sid).await?;
                }
                let now = Instant::now();
                self.links.insert(
                    sid,
                    Link {
                        id: link,
                        writer,
                        last_recv: now,
                        last_send: now,
                        buf: Vec::new(),
                    },
                );
            }
            Event::PeerFrame { sid, link, frame } => {
                let Some(l) = self.links.get_mut(&sid).filter(|l| l.id == link) else {
                    return Ok(()); // from a link already replaced
                };
                l.last_recv = Instant::now();
                if let Frame::Msg(msg) = frame {
                    if let PeerMsg::Ack { zxid } = msg {
                        let t = sim_time();
                        self.probe
                            .update(|d| d.records.push((t, Record::AckReceived(sid, zxid))));
                    }
                    self.input(Input::Recv { from: sid, msg }).await?;
                }
            }
            Event::PeerClosed { sid, link } => {
                if self.links.get(&sid).is_some_and(|l| l.id == link) {
                    self.link_down(sid).await?;
                }
            }
            Event::ClientUp { conn, writer } => {
                self.clients.insert(conn, writer);
            }
            Event::ClientReq { conn, req } => self.input(Input::Client { conn, req }).await?,
            Event::ClientGone { conn } => {
                self.clients.remove(&conn);
                self.input(Input::ClientGone { conn }).await?;
            }
        }
        Ok(())
    }

    /// Tears a link down and tells the core.
    async fn link_down(&mut self, sid: Sid) -> std::io::Result<()> {
        if let Some(mut l) = self.links.remove(&sid) {
            let _ = l.writer.shutdown().await;
            self.dialing.insert(sid, Instant::now() + self.cfg.redial);
            self.input(Input::LinkDown { peer: sid }).await?;
        }
        Ok(())
    }

    /// Steps the core and carries out its outputs in order.
    async fn input(&mut self, input: Input) -> std::io::Result<()> {
        let outputs = self.node.step(input);
        let mut sent = 0;
        // Simulated time only moves while this task waits: read it once
        // per stretch between awaits.
        let mut now = Now::default();
        for out in outputs {
            match out {
                Output::Send { to, msg } => {
                    self.record_send(to, &msg, &mut now);
                    if let Some(l) = self.links.get_mut(&to) {
                        wire::encode_into(&mut l.buf, &Frame::Msg(msg));
                        sent += 1;
                    }
                }
                Output::Reply { conn, resp } => {
                    self.reply(conn, &resp).await;
                    now = Now::default();
                }
                Output::Persist(p) => self.persist(p, &mut now)?,
                Output::Trace(ev) => {
                    let t = now.get();
                    self.probe.update(|d| d.trace.push((t, ev)));
                }
                Output::Event(ev) => {
                    let t = now.get();
                    self.probe.update(|d| d.events.push((t, ev)));
                }
            }
        }
        if sent > 0 {
            let second = now.get().as_secs();
            self.probe.update(|d| {
                d.messages_sent += sent;
                *d.messages_by_second.entry(second).or_default() += sent;
            });
        }
        Ok(())
    }

    async fn reply(&mut self, conn: u64, resp: &ClientResponse) {
        if let Some(w) = self.clients.get_mut(&conn) {
            if w.write_all(&wire::encode(resp)).await.is_err() {
                self.clients.remove(&conn);
            }
        }
    }

    /// Records the ACKs, the sync starts and the first COMMIT/INFORM per zxid
    /// the host sends.
    fn record_send(&mut self, to: Sid, msg: &PeerMsg, now: &mut Now) {
        match msg {
            PeerMsg::Ack { zxid } => {
                let t = now.get();
                self.probe
                    .update(|d| d.records.push((t, Record::Ack(*zxid))))
            }
            PeerMsg::Diff { .. } | PeerMsg::Trunc { .. } | PeerMsg::Snap { .. } => {
                let t = now.get();
                self.syncing.insert(to, None);
                self.probe
                    .update(|d| d.records.push((t, Record::SyncSent(to))));
            }
            PeerMsg::NewLeader { epoch, .. } => {
                self.syncing.insert(to, Some(*epoch));
            }
            PeerMsg::UpToDate => {
                if let Some(Some(epoch)) = self.syncing.remove(&to) {
                    let t = now.get();
                    self.probe.update(|d| {
                        if d.last_established < epoch {
                            d.last_established = epoch;
                            d.records.push((t, Record::Established(epoch)));
                        }
                    })
                }
            }
            PeerMsg::Commit { zxid }
            | PeerMsg::Inform {
                txn: crate::Txn { zxid, .. },
            } if !self.syncing.contains_key(&to) => {
                let t = now.get();
                self.probe.update(|d| {
                    if d.last_commit < *zxid {
                        d.last_commit = *zxid;
                        d.records.push((t, Record::Commit(*zxid)));
                    }
                })
            }
            _ => {}
        }
    }

    /// Moves the disk layer's journal into the probe.
    fn journal(&mut self, now: &mut Now) {
        let j = self.disk.take_journal();
        if !j.is_empty() {
            let t = now.get();
            self.probe.update(|d| {
                d.records
                    .extend(j.into_iter().map(|e| (t, Record::Disk(e))))
            });
        }
    }

    fn persist(&mut self, p: Persist, now: &mut Now) -> std::io::Result<()> {
        match p {
            Persist::Append(txns) => {
                self.disk.append(&txns)?;
                if self.sync_at.is_none() {
                    self.sync_at = Some(Instant::now() + self.cfg.fsync_latency);
                }
            }
            Persist::Truncate { to } => self.disk.truncate(to)?,
            Persist::Snapshot(store) => self.disk.write_snapshot(&store)?,
            Persist::Install(store) => self.disk.install_snapshot(&store)?,
            Persist::Epochs { accepted, current } => self.disk.write_epochs(accepted, current)?,
        }
        self.journal(now);
        Ok(())
    }

    /// Writes every link's buffered frames; a failed write tears the link
    /// down, and what the core sends on hearing of it goes out too.
    async fn flush(&mut self) -> std::io::Result<()> {
        loop {
            let mut failed = Vec::new();
            let now = Instant::now();
            for (sid, l) in self.links.iter_mut() {
                if l.buf.is_empty() {
                    continue;
                }
                let buf = std::mem::take(&mut l.buf);
                if l.writer.write_all(&buf).await.is_err() {
                    failed.push(*sid);
                } else {
                    l.last_send = now;
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            for sid in failed {
                self.link_down(sid).await?;
            }
        }
    }

    /// Heartbeats, idle timeouts and dialing.
    async fn maintain_links(&mut self) -> std::io::Result<()> {
        let now = Instant::now();
        let idle: Vec<Sid> = self
            .links
            .iter()
            .filter(|(_, l)| now - l.last_recv > self.cfg.idle_timeout)
            .map(|(s, _)| *s)
            .collect();
        for sid in idle {
            self.link_down(sid).await?;
        }
        for l in self.links.values_mut() {
            if l.buf.is_empty() && now - l.last_send >= self.cfg.heartbeat {
                wire::encode_into(&mut l.buf, &Frame::Heartbeat);
            }
        }
        self.flush().await?;
        let me = self.cfg.node.sid;
        let peers: Vec<Sid> = self.cfg.hosts.keys().copied().filter(|&s| s > me).collect();
        for sid in peers {
            if self.links.contains_key(&sid) || self.dialing.get(&sid).is_some_and(|t| *t > now) {
                continue;
            }
            self.dialing.insert(sid, now + self.cfg.redial);
            self.next_link += 1;
            let link = self.next_link;
            let addr = (self.cfg.hosts[&sid].clone(), self.cfg.peer_port);
            let tx = self.tx.clone();
            let redial = self.cfg.redial;
            tokio::task::spawn_local(async move {
                // A failed dial is retried after `redial`, the deadline set
                // when dialing.
                let dial = tokio::time::timeout(redial, TcpStream::connect(addr)).await;
                if let Ok(Ok(s)) = dial {
                    let (r, mut w) = s.into_split();
                    if wire::write_frame(&mut w, &Frame::Hello { sid: me })
                        .await
                        .is_ok()
                    {
                        serve_link(r, w, sid, link, tx).await;
                    }
                }
            });
        }
        Ok(())
    }

    fn publish(&self) {
        let n = &self.node;
        let status = Status {
            up: true,
            role: Some(n.state()),
            leader: n.leader(),
            serving: n.serving(),
            last_committed: n.last_committed(),
            last_logged: n.last_logged(),
            digest: n.store().digest(),
            epoch: n.current_epoch(),
            voters: n.voters(),
            footprint: n.footprint(),
        };
        self.probe.update(|d| d.status = status);
    }
}
