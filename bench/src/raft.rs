//! raftkv (`faultline-raftkv`, a key-value server on TiKV's raft-rs) as a
//! [`System`]: each server a turmoil host running `raftkv::shell::run`,
//! seen through its probe; observers are raft learners; the joiner is made
//! a voter by a `ConfChangeV2` through the admin client; the evidence is
//! each server's durable log file (and the base a leader's snapshot
//! restarted it after) as it reads it back after the final power loss. It keeps no ZooKeeper state (zxid epochs, sessions that
//! expire, a disk journal), so the checks that read those are not
//! applicable; `durability` is judged from the log files
//! (`faultline_checker::rlog`).

use crate::run::{topology, RunConfig};
use crate::system::{host, Admin, Evidence, RoleChange, ServerView, System, Task, CLIENT_PORT};
use faultline_checker::health::ServerFootprint;
use faultline_checker::rlog::{LogEntry, ServerLog};
use faultline_nemesis::Sid;
use faultline_node::ClientOp;
use faultline_raftkv::kv::Command;
use faultline_raftkv::shell::{self, Probe, ShellConfig};
use std::collections::BTreeMap;
use std::hash::Hasher as _;
use std::time::Duration;

/// The raftkv cluster of one run.
pub struct Raft {
    configs: BTreeMap<Sid, ShellConfig>,
    probes: BTreeMap<Sid, Probe>,
    /// The admin client that makes the joiner a voter.
    admin: Admin,
    voters: Vec<Sid>,
    /// The most entries a quiet server keeps in memory.
    log_bound: usize,
}

impl Raft {
    /// The cluster `cfg` describes (voters, learners for its observers, a
    /// joiner, raftkv's bug switches); nothing is started yet.
    pub fn new(cfg: &RunConfig) -> Raft {
        let topo = topology(cfg);
        let mut all: Vec<Sid> = topo.servers.clone();
        all.extend(topo.joiner);
        let hosts: BTreeMap<Sid, String> = all.iter().map(|s| (*s, host(*s))).collect();
        let learners: Vec<Sid> = (cfg.voters + 1..=cfg.voters + cfg.observers).collect();
        let configs = all
            .iter()
            .map(|&s| {
                let mut c =
                    ShellConfig::new(s, topo.voters.clone(), learners.clone(), hosts.clone());
                c.client_port = CLIENT_PORT;
                c.seed = cfg.seed;
                c.core.bugs = cfg.raft_bugs;
                // The seed's snapshot interval (20-200 entries), as the ZAB
                // node's: the shorter, the more followers get snapshots.
                c.core.snapshot_every = cfg.snapshot_interval;
                (s, c)
            })
            .collect();
        Raft {
            configs,
            probes: BTreeMap::new(),
            admin: Admin::new(&topo.servers),
            voters: topo.voters,
            log_bound: cfg.snapshot_interval as usize,
        }
    }
}

/// A log entry as the checker sees it: index, term, a digest of its
/// bytes, and the write it carries.
fn entry(e: &faultline_raftkv::raft::prelude::Entry) -> LogEntry {
    let mut h = fnv::FnvHasher::default();
    h.write(&e.data);
    h.write_i32(e.get_entry_type() as i32);
    let write = Command::decode(&e.data).and_then(|c| match c.op {
        ClientOp::Write { key, value } => Some((key as i64, value)),
        ClientOp::Cas { key, to, .. } => Some((key as i64, to)),
        _ => None,
    });
    LogEntry {
        index: e.index,
        term: e.term,
        digest: h.finish(),
        write,
    }
}

impl System for Raft {
    fn name(&self) -> &'static str {
        "raft"
    }

    fn start(&mut self, sim: &mut turmoil::Sim<'_>, s: Sid) {
        let probe = self.probes.entry(s).or_default().clone();
        let cfg = self.configs[&s].clone();
        sim.host(host(s), move || shell::run(cfg.clone(), probe.clone()));
    }

    fn crashed(&mut self, s: Sid) {
        if let Some(p) = self.probes.get(&s) {
            p.mark_down();
        }
    }

    fn view(&self, s: Sid) -> ServerView {
        let Some(p) = self.probes.get(&s) else {
            return ServerView::default();
        };
        let st = p.status();
        ServerView {
            up: st.up,
            serving: st.up && st.leader != 0,
            leading: st.up && st.leading,
            epoch: st.term,
            position: st.applied,
            digest: st.digest,
            voters: st.voters,
        }
    }

    fn read_back_since(&self, s: Sid, at: Duration) -> bool {
        self.probes[&s].image_time().is_some_and(|t| t >= at)
    }

    fn admin(&self) -> Option<Task> {
        Some(self.admin.task())
    }

    fn add_voter(&mut self, s: Sid) {
        self.admin.ask(s);
    }

    fn role_changes(&self) -> Vec<RoleChange> {
        let mut v: Vec<RoleChange> = self
            .probes
            .iter()
            .flat_map(|(s, p)| {
                p.roles().into_iter().map(|(t, leads, term)| RoleChange {
                    time_ns: t.as_nanos() as u64,
                    sid: *s,
                    leads,
                    epoch: term,
                })
            })
            .collect();
        v.sort();
        v
    }

    fn footprint(&self, s: Sid) -> Option<ServerFootprint> {
        let st = self.probes.get(&s)?.status();
        st.up.then_some(ServerFootprint {
            sid: s,
            client_requests: st.waiting,
            log_entries: st.log_entries,
            // Once everything is applied, fewer entries than a snapshot
            // interval stay in memory.
            log_bound: self.log_bound,
            leader_backlog: 0,
            // Sessions never expire here; none is waited for.
            open_sessions: 0,
        })
    }

    fn evidence(&self, started: &[Sid]) -> Evidence {
        let logs = started
            .iter()
            .filter_map(|s| {
                let (_, image) = self.probes.get(s)?.image()?;
                Some(ServerLog {
                    sid: *s,
                    base: image.base,
                    entries: image.entries.iter().map(entry).collect(),
                    commit: image.hard_state.commit,
                })
            })
            .collect();
        Evidence {
            durable: None,
            reported: None,
            protocol_errors: 0,
            holding: None,
            trace: Vec::new(),
            messages_per_second: {
                let mut m: BTreeMap<u64, u64> = BTreeMap::new();
                for p in self.probes.values() {
                    for (sec, n) in p.messages_by_second() {
                        *m.entry(sec).or_default() += n;
                    }
                }
                m.into_iter().collect()
            },
            logs: Some((logs, self.voters.clone())),
        }
    }
}
