//! The simulation as the nemesis sees it: [`Cluster`] implements the
//! nemesis's [`Target`] over turmoil, and carries out the choreographies
//! that unfold over time (an armed crash at the next establishment, the
//! epoch skew, a crash in the middle of a sync, a prospective leader cut
//! off in discovery), checked after every step.

use faultline_nemesis::{Sid, Target};
use faultline_node::disk::DiskEvent;
use faultline_node::shell;
use faultline_node::shell::{Probe, Record, ShellConfig};
use faultline_node::PeerState;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// Normal maximum one-way latency of a link, ms.
pub(crate) const NORMAL_LATENCY_MS: u64 = 5;

/// The turmoil host name of server `s`.
pub(crate) fn host(s: Sid) -> String {
    format!("n{s}")
}

/// The simulation as the nemesis sees it.
pub(crate) struct Cluster<'a> {
    pub(crate) sim: turmoil::Sim<'a>,
    pub(crate) probes: BTreeMap<Sid, Probe>,
    configs: BTreeMap<Sid, ShellConfig>,
    /// Servers whose host exists (started at least once).
    pub(crate) started: BTreeSet<Sid>,
    /// Servers crashed and not restarted yet.
    pub(crate) crashed: BTreeSet<Sid>,
    cut: BTreeSet<(Sid, Sid)>,
    /// The joiner the admin client is to make a voter.
    pub(crate) add_voter: Rc<Cell<Option<Sid>>>,
    /// Crash everyone once a leader other than this one is established.
    armed: Option<Option<Sid>>,
    /// The epoch-skew choreography in progress.
    skew: Option<Skew>,
    /// The crash in the middle of a sync, armed or carried out.
    sync_crash: Option<SyncCrash>,
    /// The cut in discovery, armed or carried out.
    discovery_cut: Option<DiscoveryCut>,
    /// Fault actions the runner took on its own (armed crashes).
    pub(crate) late_log: Vec<(u64, String)>,
}

impl<'a> Cluster<'a> {
    /// A cluster over `sim` whose servers run with these configurations;
    /// nothing is started yet.
    pub(crate) fn new(sim: turmoil::Sim<'a>, configs: BTreeMap<Sid, ShellConfig>) -> Cluster<'a> {
        Cluster {
            sim,
            probes: BTreeMap::new(),
            configs,
            started: BTreeSet::new(),
            crashed: BTreeSet::new(),
            cut: BTreeSet::new(),
            add_voter: Rc::new(Cell::new(None)),
            armed: None,
            skew: None,
            sync_crash: None,
            discovery_cut: None,
            late_log: Vec::new(),
        }
    }

    /// Simulated milliseconds since the start.
    pub(crate) fn now_ms(&self) -> u64 {
        self.sim.elapsed().as_millis() as u64
    }

    /// Advances every choreography in progress; called after every step.
    pub(crate) fn after_step(&mut self) {
        self.check_armed();
        self.check_skew();
        self.check_sync_crash();
        self.check_discovery_cut();
    }

    /// Ends every choreography in progress (at the heal).
    pub(crate) fn disarm(&mut self) {
        self.armed = None;
        self.skew = None;
        self.sync_crash = None;
        self.discovery_cut = None;
    }

    /// Starts (or restarts after a crash) server `s`'s host.
    pub(crate) fn start(&mut self, s: Sid) {
        let probe = self.probes.entry(s).or_default().clone();
        let cfg = self.configs[&s].clone();
        self.sim
            .host(host(s), move || shell::run(cfg.clone(), probe.clone()));
        self.started.insert(s);
    }
}

impl Target for Cluster<'_> {
    fn leader(&self) -> Option<Sid> {
        self.probes
            .iter()
            .filter(|(s, _)| !self.crashed.contains(s))
            .find(|(_, p)| {
                let st = p.status();
                st.role == Some(PeerState::Leading) && st.serving
            })
            .map(|(s, _)| *s)
    }

    fn crash(&mut self, s: Sid) {
        if self.started.contains(&s) && self.crashed.insert(s) {
            self.sim.crash(host(s));
            self.probes[&s].mark_down();
        }
    }

    fn restart_crashed(&mut self) {
        for s in std::mem::take(&mut self.crashed) {
            self.sim.bounce(host(s));
        }
    }

    fn partition(&mut self, a: &[Sid], b: &[Sid]) {
        for &x in a {
            for &y in b {
                if x != y && self.cut.insert((x.min(y), x.max(y))) {
                    self.sim.partition(host(x), host(y));
                }
            }
        }
    }

    fn repair(&mut self) {
        for (x, y) in std::mem::take(&mut self.cut) {
            self.sim.repair(host(x), host(y));
        }
    }

    fn packet_loss(&mut self, rate: f64) {
        let servers = self.servers();
        for &x in &servers {
            for &y in &servers {
                if x < y {
                    self.sim.set_link_fail_rate(host(x), host(y), rate);
                }
            }
        }
    }

    fn latency(&mut self, max_ms: Option<u64>) {
        self.sim
            .set_max_message_latency(Duration::from_millis(max_ms.unwrap_or(NORMAL_LATENCY_MS)));
    }

    fn add_node(&mut self, s: Sid) {
        if !self.started.contains(&s) {
            self.start(s);
        }
        self.add_voter.set(Some(s));
    }

    fn servers(&self) -> Vec<Sid> {
        self.started.iter().copied().collect()
    }

    fn crash_all_on_new_leader(&mut self, old: Option<Sid>) {
        self.armed = Some(old);
    }

    fn crash_in_sync(&mut self, restart_after_ms: u64) {
        self.sync_crash = Some(SyncCrash::Armed {
            since_ms: self.now_ms(),
            restart_after_ms,
        });
    }

    fn cut_in_discovery(&mut self, delay_ms: u64, heal_after_ms: u64) {
        self.discovery_cut = Some(DiscoveryCut::Armed {
            since_ms: self.now_ms(),
            delay_ms,
            heal_after_ms,
            chosen: None,
        });
    }

    fn epoch_skew(&mut self) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let voters: Vec<Sid> = self
            .probes
            .get(&leader)
            .map(|p| p.status().voters)
            .unwrap_or_default();
        let others: Vec<Sid> = voters.into_iter().filter(|&s| s != leader).collect();
        if others.len() < 4 {
            return false;
        }
        let (laggards, missers) = ([others[0], others[1]], [others[2], others[3]]);
        let rest: Vec<Sid> = self
            .servers()
            .into_iter()
            .filter(|s| !laggards.contains(s))
            .collect();
        self.partition(&laggards, &rest);
        let ms = self.sim.elapsed().as_millis() as u64;
        self.skew = Some(Skew {
            stage: SkewStage::Lagging,
            since_ms: ms,
            leader,
            laggards,
            missers,
            epoch: self.probes[&leader].status().epoch,
        });
        true
    }
}

/// Stages of the epoch-skew choreography (see `Fault::EpochSkew`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum SkewStage {
    /// The laggards are cut off while the others commit.
    Lagging,
    /// The missers are cut off and the leader restarted: waiting for it to
    /// establish a new epoch with the laggards.
    NewEpoch,
    /// Leader and laggards crashed: restart the laggards soon.
    Crashed,
}

#[derive(Clone, Debug)]
struct Skew {
    stage: SkewStage,
    since_ms: u64,
    leader: Sid,
    laggards: [Sid; 2],
    missers: [Sid; 2],
    epoch: u64,
}

impl Cluster<'_> {
    /// Advances the epoch-skew choreography.
    fn check_skew(&mut self) {
        let Some(mut k) = self.skew.clone() else {
            return;
        };
        let ms = self.sim.elapsed().as_millis() as u64;
        let mut note = None;
        match k.stage {
            SkewStage::Lagging if ms >= k.since_ms + 400 => {
                self.repair();
                let rest: Vec<Sid> = self
                    .servers()
                    .into_iter()
                    .filter(|s| !k.missers.contains(s))
                    .collect();
                self.partition(&k.missers, &rest);
                self.crash(k.leader);
                self.restart_crashed();
                k.stage = SkewStage::NewEpoch;
                k.since_ms = ms;
                note = Some(format!(
                    "epoch skew: cut off {:?}, restarted leader {} to lead {:?}",
                    k.missers, k.leader, k.laggards
                ));
            }
            SkewStage::NewEpoch => {
                let st = self.probes[&k.leader].status();
                if st.serving && st.role == Some(PeerState::Leading) && st.epoch > k.epoch {
                    for s in [k.leader, k.laggards[0], k.laggards[1]] {
                        self.crash(s);
                    }
                    k.stage = SkewStage::Crashed;
                    k.since_ms = ms;
                    note = Some(format!(
                        "epoch skew: leader {} established epoch {}; crashed it and {:?}",
                        k.leader, st.epoch, k.laggards
                    ));
                } else if ms >= k.since_ms + 3000 {
                    self.skew = None;
                    self.late_log
                        .push((ms, "epoch skew: no new epoch in 3 s, given up".into()));
                    return;
                }
            }
            SkewStage::Crashed if ms >= k.since_ms + 50 => {
                for s in k.laggards {
                    if self.crashed.remove(&s) {
                        self.sim.bounce(host(s));
                    }
                }
                self.repair();
                self.skew = None;
                self.late_log.push((
                    ms,
                    format!(
                        "epoch skew: restarted {:?} with {:?}; leader {} stays down",
                        k.laggards, k.missers, k.leader
                    ),
                ));
                return;
            }
            _ => {}
        }
        if let Some(n) = note {
            self.late_log.push((ms, n));
        }
        self.skew = Some(k);
    }

    /// Fires an armed crash once a new leader is established.
    fn check_armed(&mut self) {
        let Some(old) = self.armed else { return };
        match self.leader() {
            Some(l) if Some(l) != old => {
                self.armed = None;
                for s in self.servers() {
                    self.crash(s);
                }
                let ms = self.sim.elapsed().as_millis() as u64;
                self.late_log
                    .push((ms, format!("leader {l} established: crashed every server")));
            }
            _ => {}
        }
    }
}

/// The crash in the middle of a sync (see `Fault::CrashInSync`).
#[derive(Clone, Copy, Debug)]
enum SyncCrash {
    /// Waiting for a server to write its sync.
    Armed {
        since_ms: u64,
        restart_after_ms: u64,
    },
    /// The server crashed; restart it at `until_ms`.
    Down { sid: Sid, until_ms: u64 },
}

/// How long an armed crash in a sync waits for a sync to happen.
const SYNC_CRASH_PATIENCE_MS: u64 = 5000;

impl Cluster<'_> {
    /// A server that writes its sync to disk in the step just taken, with
    /// what it wrote: it follows or observes, does not serve yet, and the
    /// last thing it did was a disk write of this step (what a sync writes
    /// before it ends: a truncation, a snapshot install, the synced txns
    /// appended).
    fn writing_sync(&self, now_ms: u64) -> Option<(Sid, Vec<DiskEvent>)> {
        let step = Duration::from_millis(now_ms.saturating_sub(1));
        self.probes.iter().find_map(|(&s, p)| {
            if self.crashed.contains(&s) {
                return None;
            }
            // The trace, not the status: the status is refreshed once a
            // tick, and the step may just have ended the sync.
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
            let writes = recent
                .into_iter()
                .filter_map(|(_, r)| match r {
                    Record::Disk(e) if is_sync_write(&e) => Some(e),
                    _ => None,
                })
                .collect();
            Some((s, writes))
        })
    }

    /// Advances the crash in the middle of a sync.
    fn check_sync_crash(&mut self) {
        let Some(k) = self.sync_crash else { return };
        let ms = self.now_ms();
        match k {
            SyncCrash::Armed {
                since_ms,
                restart_after_ms,
            } => {
                if let Some((s, what)) = self.writing_sync(ms) {
                    self.crash(s);
                    self.sync_crash = Some(SyncCrash::Down {
                        sid: s,
                        until_ms: ms + restart_after_ms,
                    });
                    self.late_log.push((
                        ms,
                        format!(
                            "crashed server {s} in the middle of its sync ({})",
                            what.iter().map(label).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                } else if ms >= since_ms + SYNC_CRASH_PATIENCE_MS {
                    self.sync_crash = None;
                    self.late_log
                        .push((ms, "crash in a sync: no sync in 5 s, given up".into()));
                }
            }
            SyncCrash::Down { sid, until_ms } if ms >= until_ms => {
                self.sync_crash = None;
                if self.crashed.remove(&sid) {
                    self.sim.bounce(host(sid));
                    self.late_log.push((
                        ms,
                        format!("restarted server {sid} after its crash mid-sync"),
                    ));
                }
            }
            SyncCrash::Down { .. } => {}
        }
    }
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

/// The cut in discovery (see `Fault::CutInDiscovery`).
#[derive(Clone, Debug)]
enum DiscoveryCut {
    /// Waiting for a prospective leader to choose an epoch, then for the
    /// delay to pass.
    Armed {
        since_ms: u64,
        delay_ms: u64,
        heal_after_ms: u64,
        /// The prospective leader seen choosing, its epoch, and when.
        chosen: Option<(Sid, u64, u64)>,
    },
    /// The server is cut off until `until_ms`; `links` are the links this
    /// cut took down (others were down already, for another fault).
    Cut {
        sid: Sid,
        links: Vec<(Sid, Sid)>,
        until_ms: u64,
    },
}

/// How long an armed cut in discovery waits for a prospective leader.
const DISCOVERY_CUT_PATIENCE_MS: u64 = 3000;

impl Cluster<'_> {
    /// A server leading an epoch it chose but has not established, per its
    /// latest trace event: `(server, epoch)`.
    fn prospective_leader(&self) -> Option<(Sid, u64)> {
        self.probes.iter().find_map(|(&s, p)| {
            if self.crashed.contains(&s) || !p.status().up {
                return None;
            }
            let (_, tr) = p.last_trace()?;
            (tr.role == PeerState::Leading && tr.epoch > 0 && !tr.serving).then_some((s, tr.epoch))
        })
    }

    /// Cuts `sid` off from every other server; returns the links cut now
    /// (those not cut already).
    fn isolate(&mut self, sid: Sid) -> Vec<(Sid, Sid)> {
        let others: Vec<Sid> = self.servers().into_iter().filter(|&s| s != sid).collect();
        let fresh: Vec<(Sid, Sid)> = others
            .iter()
            .map(|&o| (sid.min(o), sid.max(o)))
            .filter(|l| !self.cut.contains(l))
            .collect();
        self.partition(&[sid], &others);
        fresh
    }

    /// Advances the cut in discovery.
    fn check_discovery_cut(&mut self) {
        let Some(k) = self.discovery_cut.clone() else {
            return;
        };
        let ms = self.now_ms();
        match k {
            DiscoveryCut::Armed {
                since_ms,
                delay_ms,
                heal_after_ms,
                chosen,
            } => {
                let now = self.prospective_leader();
                let chosen = match (chosen, now) {
                    // Still the same prospective leader in the same epoch.
                    (Some((s, e, at)), Some((s2, e2))) if (s, e) == (s2, e2) => Some((s, e, at)),
                    (_, Some((s, e))) => Some((s, e, ms)),
                    (_, None) => None,
                };
                match chosen {
                    Some((sid, epoch, at)) if ms >= at + delay_ms => {
                        let links = self.isolate(sid);
                        self.discovery_cut = Some(DiscoveryCut::Cut {
                            sid,
                            links,
                            until_ms: ms + heal_after_ms,
                        });
                        self.late_log.push((
                            ms,
                            format!(
                                "cut off prospective leader {sid} {} ms after it chose epoch {epoch}",
                                ms - at
                            ),
                        ));
                    }
                    _ if ms >= since_ms + DISCOVERY_CUT_PATIENCE_MS => {
                        self.discovery_cut = None;
                        self.late_log.push((
                            ms,
                            "cut in discovery: no prospective leader in 3 s, given up".into(),
                        ));
                    }
                    _ => {
                        self.discovery_cut = Some(DiscoveryCut::Armed {
                            since_ms,
                            delay_ms,
                            heal_after_ms,
                            chosen,
                        });
                    }
                }
            }
            DiscoveryCut::Cut {
                sid,
                links,
                until_ms,
            } if ms >= until_ms => {
                self.discovery_cut = None;
                // Only what this cut took down, and only if no repair of
                // the whole network came first.
                for l in links {
                    if self.cut.remove(&l) {
                        self.sim.repair(host(l.0), host(l.1));
                    }
                }
                self.late_log.push((
                    ms,
                    format!("repaired the links of prospective leader {sid}"),
                ));
            }
            DiscoveryCut::Cut { .. } => {}
        }
    }
}
