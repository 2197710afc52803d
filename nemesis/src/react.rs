//! The faults that react to the cluster, as state machines over the
//! [`Target`]'s observations: an armed crash at the next establishment,
//! ZOOKEEPER-4643's epoch skew, a crash in the middle of a sync, a cut in
//! discovery. At most one of each kind is in progress; arming one again
//! replaces it.

use crate::{Effect, Entry, Sid, Target};

/// Every reaction in progress.
#[derive(Debug, Default)]
pub(crate) struct Reactions {
    /// Crash everyone once a leader other than this one is established.
    armed: Option<Option<Sid>>,
    /// The epoch-skew choreography in progress.
    skew: Option<Skew>,
    /// The crash in the middle of a sync, armed or carried out.
    sync_crash: Option<SyncCrash>,
    /// The cut in discovery, armed or carried out.
    discovery_cut: Option<DiscoveryCut>,
}

/// How long an armed crash in a sync waits for a sync to happen.
const SYNC_CRASH_PATIENCE_MS: u64 = 5000;

/// How long an armed cut in discovery waits for a prospective leader.
const DISCOVERY_CUT_PATIENCE_MS: u64 = 3000;

/// How long the epoch skew waits for the restarted leader's new epoch.
const SKEW_PATIENCE_MS: u64 = 3000;

fn log(out: &mut Vec<Entry>, at_ms: u64, effect: Effect, what: String) {
    out.push(Entry {
        at_ms,
        effect,
        what,
    });
}

impl Reactions {
    /// Advances every reaction in progress, logging what they do.
    pub(crate) fn step(&mut self, t: &mut dyn Target, out: &mut Vec<Entry>) {
        self.step_armed(t, out);
        self.step_skew(t, out);
        self.step_sync_crash(t, out);
        self.step_discovery_cut(t, out);
    }

    /// Arms the crash of every server at the next establishment of a
    /// leader other than `old`.
    pub(crate) fn crash_all_on_new_leader(&mut self, old: Option<Sid>) {
        self.armed = Some(old);
    }

    /// Arms the crash in the middle of a sync.
    pub(crate) fn crash_in_sync(&mut self, t: &dyn Target, restart_after_ms: u64) {
        self.sync_crash = Some(SyncCrash::Armed {
            since_ms: t.now_ms(),
            restart_after_ms,
        });
    }

    /// Arms the cut in discovery.
    pub(crate) fn cut_in_discovery(&mut self, t: &dyn Target, delay_ms: u64, heal_after_ms: u64) {
        self.discovery_cut = Some(DiscoveryCut::Armed {
            since_ms: t.now_ms(),
            delay_ms,
            heal_after_ms,
            chosen: None,
        });
    }

    /// Starts the epoch skew: cuts two followers off. False if there is no
    /// leader with four other voters to start from.
    pub(crate) fn epoch_skew(&mut self, t: &mut dyn Target) -> bool {
        let Some(leader) = t.leader() else {
            return false;
        };
        let others: Vec<Sid> = t
            .voters(leader)
            .into_iter()
            .filter(|&s| s != leader)
            .collect();
        if others.len() < 4 {
            return false;
        }
        let (laggards, missers) = ([others[0], others[1]], [others[2], others[3]]);
        let rest: Vec<Sid> = t
            .servers()
            .into_iter()
            .filter(|s| !laggards.contains(s))
            .collect();
        t.partition(&laggards, &rest);
        self.skew = Some(Skew {
            stage: SkewStage::Lagging,
            since_ms: t.now_ms(),
            leader,
            laggards,
            missers,
            epoch: t.epoch(leader),
        });
        true
    }

    /// Fires an armed crash once a new leader is established.
    fn step_armed(&mut self, t: &mut dyn Target, out: &mut Vec<Entry>) {
        let Some(old) = self.armed else { return };
        match t.leader() {
            Some(l) if Some(l) != old => {
                self.armed = None;
                for s in t.servers() {
                    t.crash(s);
                }
                let what = format!("leader {l} established: crashed every server");
                log(out, t.now_ms(), Effect::Fault, what);
            }
            _ => {}
        }
    }

    /// Advances the epoch-skew choreography.
    fn step_skew(&mut self, t: &mut dyn Target, out: &mut Vec<Entry>) {
        let Some(mut k) = self.skew.clone() else {
            return;
        };
        let ms = t.now_ms();
        match k.stage {
            SkewStage::Lagging if ms >= k.since_ms + 400 => {
                t.repair();
                let rest: Vec<Sid> = t
                    .servers()
                    .into_iter()
                    .filter(|s| !k.missers.contains(s))
                    .collect();
                t.partition(&k.missers, &rest);
                t.crash(k.leader);
                t.restart_crashed();
                k.stage = SkewStage::NewEpoch;
                k.since_ms = ms;
                let what = format!(
                    "epoch skew: cut off {:?}, restarted leader {} to lead {:?}",
                    k.missers, k.leader, k.laggards
                );
                log(out, ms, Effect::Fault, what);
            }
            SkewStage::NewEpoch => {
                let epoch = t.epoch(k.leader);
                if t.leads_established(k.leader) && epoch > k.epoch {
                    for s in [k.leader, k.laggards[0], k.laggards[1]] {
                        t.crash(s);
                    }
                    k.stage = SkewStage::Crashed;
                    k.since_ms = ms;
                    let what = format!(
                        "epoch skew: leader {} established epoch {epoch}; crashed it and {:?}",
                        k.leader, k.laggards
                    );
                    log(out, ms, Effect::Fault, what);
                } else if ms >= k.since_ms + SKEW_PATIENCE_MS {
                    self.skew = None;
                    let what = "epoch skew: no new epoch in 3 s, given up".into();
                    log(out, ms, Effect::Note, what);
                    return;
                }
            }
            SkewStage::Crashed if ms >= k.since_ms + 50 => {
                for s in k.laggards {
                    t.restart(s);
                }
                t.repair();
                self.skew = None;
                let what = format!(
                    "epoch skew: restarted {:?} with {:?}; leader {} stays down",
                    k.laggards, k.missers, k.leader
                );
                log(out, ms, Effect::Fault, what);
                return;
            }
            _ => {}
        }
        self.skew = Some(k);
    }

    /// Advances the crash in the middle of a sync.
    fn step_sync_crash(&mut self, t: &mut dyn Target, out: &mut Vec<Entry>) {
        let Some(k) = self.sync_crash else { return };
        let ms = t.now_ms();
        match k {
            SyncCrash::Armed {
                since_ms,
                restart_after_ms,
            } => {
                if let Some((s, what)) = t.writing_sync() {
                    t.crash(s);
                    self.sync_crash = Some(SyncCrash::Down {
                        sid: s,
                        until_ms: ms + restart_after_ms,
                    });
                    let what = format!("crashed server {s} in the middle of its sync ({what})");
                    log(out, ms, Effect::Fault, what);
                } else if ms >= since_ms + SYNC_CRASH_PATIENCE_MS {
                    self.sync_crash = None;
                    let what = "crash in a sync: no sync in 5 s, given up".into();
                    log(out, ms, Effect::Note, what);
                }
            }
            SyncCrash::Down { sid, until_ms } if ms >= until_ms => {
                self.sync_crash = None;
                if t.restart(sid) {
                    let what = format!("restarted server {sid} after its crash mid-sync");
                    log(out, ms, Effect::Repair, what);
                }
            }
            SyncCrash::Down { .. } => {}
        }
    }

    /// Advances the cut in discovery.
    fn step_discovery_cut(&mut self, t: &mut dyn Target, out: &mut Vec<Entry>) {
        let Some(k) = self.discovery_cut.clone() else {
            return;
        };
        let ms = t.now_ms();
        match k {
            DiscoveryCut::Armed {
                since_ms,
                delay_ms,
                heal_after_ms,
                chosen,
            } => {
                let now = t.prospective_leader();
                let chosen = match (chosen, now) {
                    // Still the same prospective leader in the same epoch.
                    (Some((s, e, at)), Some((s2, e2))) if (s, e) == (s2, e2) => Some((s, e, at)),
                    (_, Some((s, e))) => Some((s, e, ms)),
                    (_, None) => None,
                };
                match chosen {
                    Some((sid, epoch, at)) if ms >= at + delay_ms => {
                        let links = t.isolate(sid);
                        self.discovery_cut = Some(DiscoveryCut::Cut {
                            sid,
                            links,
                            until_ms: ms + heal_after_ms,
                        });
                        let what = format!(
                            "cut off prospective leader {sid} {} ms after it chose epoch {epoch}",
                            ms - at
                        );
                        log(out, ms, Effect::Fault, what);
                    }
                    _ if ms >= since_ms + DISCOVERY_CUT_PATIENCE_MS => {
                        self.discovery_cut = None;
                        let what =
                            "cut in discovery: no prospective leader in 3 s, given up".into();
                        log(out, ms, Effect::Note, what);
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
                    t.repair_link(l);
                }
                let what = format!("repaired the links of prospective leader {sid}");
                log(out, ms, Effect::Repair, what);
            }
            DiscoveryCut::Cut { .. } => {}
        }
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
