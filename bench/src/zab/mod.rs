//! The ZAB node (`faultline-node`) as a [`System`]: each server a turmoil
//! host running `node::shell::run`, seen through its `Probe`; membership
//! changes by an admin client on the client host; the evidence from the
//! files each host reads back after the final power loss and from its disk
//! journal and protocol records.

pub(crate) mod evidence;

use crate::run::{topology, RunConfig};
use crate::system::{
    host, Admin, Durable, Evidence, RoleChange, ServerView, System, Task, CLIENT_PORT,
};
use faultline_checker::health::ServerFootprint;
use faultline_checker::zk::{self, CommittedTxn};
use faultline_nemesis::Sid;
use faultline_node::disk::DiskEvent;
use faultline_node::shell::{self, Probe, Record, ShellConfig};
use faultline_node::{NodeConfig, PeerState, ProtocolEvent};
use std::collections::BTreeMap;
use std::time::Duration;

/// The ZAB ensemble of one run.
pub struct Zab {
    configs: BTreeMap<Sid, ShellConfig>,
    probes: BTreeMap<Sid, Probe>,
    /// The admin client that makes the joiner a voter.
    admin: Admin,
    leader_reports: bool,
    /// The in-memory log bound the snapshot settings imply.
    log_bound: usize,
    holding_judged: bool,
    /// The servers' tick, ns.
    tick_ns: u64,
}

impl Zab {
    /// The ensemble `cfg` describes (voters, observers, a joiner, bugs,
    /// fsync latency, snapshot interval); nothing is started yet.
    pub fn new(cfg: &RunConfig) -> Zab {
        let topo = topology(cfg);
        let mut all: Vec<Sid> = topo.servers.clone();
        all.extend(topo.joiner);
        let hosts: BTreeMap<Sid, String> = all.iter().map(|s| (*s, host(*s))).collect();
        let mut configs = BTreeMap::new();
        for &s in &all {
            let mut node = NodeConfig::new(
                s,
                topo.voters.clone(),
                (cfg.voters + 1..=cfg.voters + cfg.observers).collect(),
            );
            node.bugs = cfg.bugs.clone();
            node.snapshot_interval = cfg.snapshot_interval;
            node.committed_log_window = (cfg.snapshot_interval / 2) as usize;
            let mut shell = ShellConfig::new(node, hosts.clone());
            shell.fsync_latency = Duration::from_millis(cfg.fsync_ms);
            shell.client_port = CLIENT_PORT;
            configs.insert(s, shell);
        }
        // `holding` is judged only when the clients can neither fill a hold
        // queue (a process has at most a write and a pipelined read
        // outstanding) nor outwait a held request's timeout.
        let holding_judged = configs.values().all(|sc: &ShellConfig| {
            let n = &sc.node;
            let hold_ms = n.hold_timeout * n.tick.as_millis() as u64;
            2 * cfg.processes < n.hold_queue_max && cfg.op_timeout_ms < hold_ms
        });
        let tick_ns = configs
            .values()
            .next()
            .map_or(10_000_000, |c: &ShellConfig| c.node.tick.as_nanos() as u64);
        Zab {
            configs,
            probes: BTreeMap::new(),
            admin: Admin::new(&topo.servers),
            leader_reports: cfg.leader_reports,
            log_bound: (cfg.snapshot_interval + cfg.snapshot_interval / 2) as usize,
            holding_judged,
            tick_ns,
        }
    }

    /// What leaders reported committed (with the ACK sets they counted), by
    /// zxid, and the violations in those reports themselves (I2, I5).
    fn leader_reported(&self) -> (BTreeMap<u64, CommittedTxn>, Vec<String>) {
        let mut committed = Vec::new();
        for p in self.probes.values() {
            for (_, ev) in p.events() {
                if let ProtocolEvent::Committed { txn, acks, voters } = ev {
                    committed.push(CommittedTxn {
                        zxid: txn.zxid.0,
                        set: evidence::sets(&txn),
                        origin: txn.origin,
                        deletes: evidence::deletes(&txn),
                        acks,
                        voters,
                        describe: evidence::describe(&txn),
                    });
                }
            }
        }
        zk::committed_history(&committed)
    }

    /// The hosts' trace and sync and protocol-error events, one JSON
    /// object per line, in time order.
    fn trace_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (s, p) in &self.probes {
            for (t, ev) in p.trace() {
                lines.push((
                    t,
                    *s,
                    serde_json::json!({"t_ns": t.as_nanos() as u64, "trace": ev}).to_string(),
                ));
            }
            for (t, ev) in p.events() {
                if let ProtocolEvent::Sync { .. } | ProtocolEvent::ProtocolError { .. } = ev {
                    lines.push((
                        t,
                        *s,
                        serde_json::json!({"t_ns": t.as_nanos() as u64, "sid": s, "event": ev})
                            .to_string(),
                    ));
                }
            }
        }
        lines.sort_by_key(|l| (l.0, l.1));
        lines.into_iter().map(|l| l.2).collect()
    }
}

impl System for Zab {
    fn name(&self) -> &'static str {
        "zab"
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
            serving: st.serving,
            leading: st.role == Some(PeerState::Leading) && st.serving,
            epoch: st.epoch,
            position: st.last_committed.0,
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
                p.trace().into_iter().map(|(t, ev)| RoleChange {
                    time_ns: t.as_nanos() as u64,
                    sid: *s,
                    leads: ev.role == PeerState::Leading && ev.serving,
                    epoch: ev.epoch,
                })
            })
            .collect();
        v.sort();
        v
    }

    fn prospective_leaders(&self) -> Vec<(Sid, u64)> {
        self.probes
            .iter()
            .filter(|(_, p)| p.status().up)
            .filter_map(|(&s, p)| {
                let (_, tr) = p.last_trace()?;
                (tr.role == PeerState::Leading && tr.epoch > 0 && !tr.serving)
                    .then_some((s, tr.epoch))
            })
            .collect()
    }

    fn writing_sync(&self, now: Duration) -> Vec<(Sid, String)> {
        // The step that just ran began one turmoil step ago.
        let step = now.saturating_sub(faultline_node::sim::TICK);
        self.probes
            .iter()
            .filter_map(|(&s, p)| Some((s, writing_sync(p, step)?)))
            .collect()
    }

    fn footprint(&self, s: Sid) -> Option<ServerFootprint> {
        let st = self.probes.get(&s)?.status();
        st.up.then_some(ServerFootprint {
            sid: s,
            client_requests: st.footprint.client_requests,
            log_entries: st.footprint.log_entries,
            log_bound: self.log_bound,
            leader_backlog: st.footprint.leader_backlog,
            open_sessions: st.footprint.open_sessions,
        })
    }

    fn evidence(&self, started: &[Sid]) -> Evidence {
        let ev: BTreeMap<Sid, _> = started
            .iter()
            .map(|s| (*s, self.probes[s].evidence()))
            .collect();
        let mut messages: BTreeMap<u64, u64> = BTreeMap::new();
        for p in self.probes.values() {
            for (s, n) in p.messages_by_second() {
                *messages.entry(s).or_default() += n;
            }
        }
        Evidence {
            durable: Some({
                let journals = evidence::journals(&ev);
                let (files, superseded) = evidence::server_files(&ev, &journals);
                Durable {
                    files,
                    journals,
                    superseded,
                    tick_ns: self.tick_ns,
                }
            }),
            reported: self.leader_reports.then(|| self.leader_reported()),
            protocol_errors: self
                .probes
                .values()
                .flat_map(|p| p.events())
                .filter(|(_, e)| matches!(e, ProtocolEvent::ProtocolError { .. }))
                .count(),
            holding: Some(self.holding_judged),
            trace: self.trace_lines(),
            messages_per_second: messages.into_iter().collect(),
            logs: None,
        }
    }
}

/// If the server behind `p` wrote its sync to disk in the step that began
/// at `step` (it follows or observes, does not serve yet, and the last
/// thing it did was such a write: a truncation, a snapshot install, the
/// synced txns appended, all before the fsync and the epoch write that end
/// a sync), a few words on what it wrote.
fn writing_sync(p: &Probe, step: Duration) -> Option<String> {
    // The trace, not the status: the status is refreshed once a tick, and
    // the step may just have ended the sync.
    let (_, tr) = p.last_trace()?;
    let learning = matches!(tr.role, PeerState::Following | PeerState::Observing);
    if !p.status().up || tr.serving || !learning {
        return None;
    }
    let recent = p.records_since(step);
    match &recent.last()?.1 {
        Record::Disk(e) if is_sync_write(e) => {}
        _ => return None,
    }
    let writes: Vec<String> = recent
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Disk(e) if is_sync_write(&e) => Some(label(&e)),
            _ => None,
        })
        .collect();
    Some(writes.join(", "))
}

/// Whether a sync writes this (before the fsync and the epoch write that
/// end it).
fn is_sync_write(e: &DiskEvent) -> bool {
    matches!(
        e,
        DiskEvent::Truncated { .. } | DiskEvent::Installed { .. } | DiskEvent::Appended { .. }
    )
}

/// A few words on one of a sync's disk writes.
fn label(e: &DiskEvent) -> String {
    match e {
        DiskEvent::Truncated { to } => format!("log truncated to {to}"),
        DiskEvent::Installed { base } => format!("snapshot at {base} installed"),
        DiskEvent::Appended { zxids } => match zxids.as_slice() {
            [] => "nothing appended".into(),
            [z] => format!("txn {z} appended, not synced"),
            [a, .., b] => format!("{} txns {a}..{b} appended, not synced", zxids.len()),
        },
        other => format!("{other:?}"),
    }
}
