//! The system under test as the engine sees it: the [`System`] trait. The
//! engine starts, crashes and restarts servers (turmoil hosts), drives
//! their clients, watches them through probes, and after the run reads
//! their durable files and protocol records, all through this trait; the
//! ZAB node implements it in [`crate::zab`], and another system plugs in by
//! implementing it too (see ARCHITECTURE.md).
//!
//! The client side is a wire contract: every server listens on
//! [`CLIENT_PORT`] and speaks the client protocol of
//! `faultline_node::client` (framed `ClientRequest` / `ClientResponse`:
//! reads, sync-reads, writes and compare-and-sets by session and sequence
//! number, answered with the value, a definite failure, `NotReady` or a
//! connection loss). The workload records what it gets, so the checks judge
//! any system by the same rules.

use faultline_checker::durable::{Journal, ServerFiles};
use faultline_checker::health::ServerFootprint;
use faultline_checker::rlog::ServerLog;
use faultline_checker::zk::CommittedTxn;
use faultline_nemesis::Sid;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// Which system a run tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// The ZAB node (`faultline-node`).
    #[default]
    Zab,
    /// raftkv, on TiKV's raft-rs (`faultline-raftkv`).
    Raft,
}

impl SystemKind {
    /// Its `--system` name.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Zab => "zab",
            SystemKind::Raft => "raft",
        }
    }
}

/// The port every server of every system serves clients on.
pub const CLIENT_PORT: u16 = 2181;

/// The turmoil host name of server `s`.
pub fn host(s: Sid) -> String {
    format!("n{s}")
}

/// What the engine can see of one server now (from its probe, never by
/// asking the server over the network).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerView {
    /// The host runs (not crashed, started).
    pub up: bool,
    /// It serves clients.
    pub serving: bool,
    /// It leads an established epoch (or term).
    pub leading: bool,
    /// Its epoch (or term).
    pub epoch: u64,
    /// The position of its last committed (applied) update, in the
    /// system's own order (a zxid for ZAB, an index for a log).
    pub position: u64,
    /// A digest of its applied state: equal states, equal digests.
    pub digest: u64,
    /// The voters it knows of.
    pub voters: Vec<Sid>,
}

/// A change of a server's role, as its own trace records it: the typed
/// events leader spans, leader changes and the leadership checks are
/// drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleChange {
    /// Simulated nanoseconds.
    pub time_ns: u64,
    /// The server.
    pub sid: Sid,
    /// Whether it now leads an established epoch and serves.
    pub leads: bool,
    /// Its epoch (or term).
    pub epoch: u64,
}

/// The durable evidence of a system whose servers keep a log of updates in
/// one total order (zxids): their files after the final power loss and
/// the journal of every host's disk writes and protocol records. With it
/// the engine judges durability, quorum ACKs, discovery, ZooKeeper's read
/// guarantees, timeliness and stability; without it those checks are not
/// applicable.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    /// Each server's files.
    pub files: Vec<ServerFiles>,
    /// Each host's journal.
    pub journals: Vec<Journal>,
    /// The txns the latest established epoch's lineage left out, never
    /// committed: `faultline_checker::durable::superseded` over `files`
    /// and the Established records of `journals`, computed once.
    pub superseded: BTreeSet<u64>,
    /// The servers' tick, ns (session timeouts are counted in ticks).
    pub tick_ns: u64,
}

/// What the system leaves for the checks after the run (after the final
/// power loss and restart of every server).
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Files and journals, if the system keeps them in the shape the
    /// durability checks read.
    pub durable: Option<Durable>,
    /// What leaders reported committed, by position, with the violations
    /// found in the reports themselves; `None` if the system does not
    /// report or the run does not use the reports.
    pub reported: Option<(BTreeMap<u64, CommittedTxn>, Vec<String>)>,
    /// Times a learner dropped its leader on a message it could not accept.
    pub protocol_errors: usize,
    /// Whether `holding` (only a server behind the session answers
    /// not-ready) can be judged for this system and run; `None`: it does
    /// not apply.
    pub holding: Option<bool>,
    /// The hosts' trace, one JSON object per line, in time order.
    pub trace: Vec<String>,
    /// Protocol messages sent by all servers, per simulated second.
    pub messages_per_second: Vec<(u64, u64)>,
    /// For a system that replicates one log by index (Raft): every
    /// server's durable log as read back after the final power loss, and
    /// the initial voters; `durability` is judged from them
    /// (`faultline_checker::rlog`).
    pub logs: Option<(Vec<ServerLog>, Vec<Sid>)>,
}

/// A future run on the client host.
pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// A replicated store under test. Every method is called between
/// simulation steps; nothing here may draw randomness from outside the
/// seed or read the wall clock.
pub trait System {
    /// A short name, for reports.
    fn name(&self) -> &'static str;
    /// Registers server `s`'s host (`host(s)`) on the simulation. Called
    /// once per server; a crash and a restart are turmoil's crash and
    /// bounce of that host, so the host must read its durable files back
    /// when it starts.
    fn start(&mut self, sim: &mut turmoil::Sim<'_>, s: Sid);
    /// The engine cut the power of `s`'s host.
    fn crashed(&mut self, s: Sid);
    /// What can be seen of `s` now.
    fn view(&self, s: Sid) -> ServerView;
    /// Whether `s`'s host read its files back at or after `at` (simulated
    /// time since the start): the final power cycle waits for this.
    fn read_back_since(&self, s: Sid, at: Duration) -> bool;
    /// A task for the client host that carries out membership changes the
    /// nemesis asks for (see [`System::add_voter`]), if the system has any.
    fn admin(&self) -> Option<Task>;
    /// Asks for the started joiner `s` to become a voter (through the
    /// admin task).
    fn add_voter(&mut self, s: Sid);
    /// Every server's role changes so far, in time order.
    fn role_changes(&self) -> Vec<RoleChange>;
    /// A server leading an epoch it chose but has not established, with
    /// that epoch; one entry per such server, by id (none if the system
    /// has no such state).
    fn prospective_leaders(&self) -> Vec<(Sid, u64)> {
        Vec::new()
    }
    /// The servers that wrote their synchronization with a leader to disk
    /// in the step that ended at `now` and have not finished it, each with
    /// a few words on what they wrote, by id (none if the system has no
    /// such state).
    fn writing_sync(&self, now: Duration) -> Vec<(Sid, String)> {
        let _ = now;
        Vec::new()
    }
    /// Server `s`'s in-memory tables at the end of the run, for `hygiene`
    /// (`None`: not probed).
    fn footprint(&self, s: Sid) -> Option<ServerFootprint> {
        let _ = s;
        None
    }
    /// The evidence of the run, read after the final power cycle from the
    /// servers in `started`.
    fn evidence(&self, started: &[Sid]) -> Evidence;
}

/// Whether a panic raised in source `file` is an assertion of a system
/// under test (invalid) rather than of the bench or of the client library
/// the workload runs (unknown): the ZAB node's code, raftkv's, and
/// raft-rs's own.
pub fn is_server_code(file: &str) -> bool {
    (file.starts_with("node/src/") && file != "node/src/client.rs")
        || file.starts_with("raftkv/src/")
        || file.contains("/raft-0.")
        || file.contains("/raft-proto-0.")
}

/// The admin client, for any system that takes `AddVoter` requests on
/// the client port: its task runs on the client host, and a joiner it is
/// asked for is made a voter.
pub(crate) struct Admin {
    /// Every server's client address.
    servers: Vec<String>,
    /// The joiner to make a voter, until done.
    add_voter: Rc<Cell<Option<Sid>>>,
}

impl Admin {
    /// The admin client of these servers.
    pub fn new(servers: &[Sid]) -> Admin {
        Admin {
            servers: servers.iter().map(|s| host(*s)).collect(),
            add_voter: Rc::new(Cell::new(None)),
        }
    }

    /// Its task, for the client host.
    pub fn task(&self) -> Task {
        Box::pin(admin_loop(self.servers.clone(), self.add_voter.clone()))
    }

    /// Make `s` a voter.
    pub fn ask(&self, s: Sid) {
        self.add_voter.set(Some(s));
    }
}

/// Whenever a joiner is to be made a voter, asks the servers in turn (a
/// fresh connection each time) until one answers that the change is
/// written.
async fn admin_loop(servers: Vec<String>, add_voter: Rc<Cell<Option<Sid>>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(sid) = add_voter.get() else { continue };
        let mut seq = 1;
        'retry: loop {
            for h in &servers {
                let Ok(mut cl) = faultline_node::client::Client::connect(
                    h,
                    CLIENT_PORT,
                    999_999_999,
                    Duration::from_millis(300),
                )
                .await
                else {
                    continue;
                };
                if let Ok(r) = cl
                    .call_seq(
                        seq,
                        faultline_node::ClientOp::AddVoter { sid },
                        Duration::from_secs(1),
                    )
                    .await
                {
                    if r.outcome == faultline_node::Outcome::Written {
                        break 'retry;
                    }
                    seq += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        add_voter.set(None);
    }
}
