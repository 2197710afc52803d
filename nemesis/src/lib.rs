//! The nemesis: fault schedules as plain data, drawn from the seed before a
//! run starts ([`schedule`]), and the [`Nemesis`] that carries them out
//! through a [`Target`] (the engine implements it over the simulation and
//! the system under test, between simulation steps). A schedule is
//! serializable: it is saved with every run and can be replayed, edited by
//! hand, with `--schedule FILE`.
//!
//! Faults come in episodes: a fault starts, lasts a while, and is repaired
//! before the next one starts; after the chaos phase everything is healed.
//! Some faults are choreographies that react to the cluster (a crash at the
//! next establishment, the epoch skew, a crash in the middle of a sync, a
//! cut in discovery): applying one arms a reaction, which [`Nemesis::step`]
//! advances after every simulation step by watching the target.

mod episodes;
mod react;
pub mod schedule;

pub use schedule::{Event, Fault, NemesisKind, Schedule, ScheduleError, Topology};
use serde::{Deserialize, Serialize};

/// A server id.
pub type Sid = u64;

/// What the nemesis acts on: the engine's view of the simulation and of the
/// system under test. Observations a system cannot make (it has no
/// prospective leaders, say) return nothing, and the reactions that wait
/// for them give up after their patience.
pub trait Target {
    /// Simulated milliseconds since the start.
    fn now_ms(&self) -> u64;
    /// The established leader now (not crashed, leading and serving), if
    /// any.
    fn leader(&self) -> Option<Sid>;
    /// Every started server.
    fn servers(&self) -> Vec<Sid>;
    /// The voters server `s` knows of, as of its latest status.
    fn voters(&self, s: Sid) -> Vec<Sid>;
    /// The epoch (or term) of server `s`, as of its latest status.
    fn epoch(&self, s: Sid) -> u64;
    /// Whether `s` leads an established epoch and serves, as of its latest
    /// status (crashed or not).
    fn leads_established(&self, s: Sid) -> bool;
    /// A server, not crashed, that leads an epoch it chose but has not
    /// established, with that epoch.
    fn prospective_leader(&self) -> Option<(Sid, u64)>;
    /// A server, not crashed, that wrote its synchronization to disk in the
    /// step just taken and has not finished it, with a few words on what
    /// it wrote.
    fn writing_sync(&self) -> Option<(Sid, String)>;
    /// Crash a server (power loss: unsynced writes are lost).
    fn crash(&mut self, s: Sid);
    /// Restart every crashed server.
    fn restart_crashed(&mut self);
    /// Restart one crashed server; false if it was not crashed.
    fn restart(&mut self, s: Sid) -> bool;
    /// Cut every link between the groups (clients are not cut off).
    fn partition(&mut self, a: &[Sid], b: &[Sid]);
    /// Cut `s` off from every other server; returns the links cut now
    /// (those not cut already).
    fn isolate(&mut self, s: Sid) -> Vec<(Sid, Sid)>;
    /// Repair one link if it is cut; false if it was not.
    fn repair_link(&mut self, link: (Sid, Sid)) -> bool;
    /// Repair every cut link between servers.
    fn repair(&mut self);
    /// Drop this share of packets on server links (0: none).
    fn packet_loss(&mut self, rate: f64);
    /// Maximum message latency on every link (`None`: the normal one).
    fn latency(&mut self, max_ms: Option<u64>);
    /// Start a configured joiner and ask for it to become a voter.
    fn add_node(&mut self, s: Sid);
    /// Client process slot `slot` sends nothing for `ms` milliseconds.
    fn pause_client(&mut self, slot: u64, ms: u64);
}

/// What an entry of the nemesis log did to the cluster: typed, so that
/// reports draw fault spans without reading the words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// A fault began (it lasts until the next repair).
    Fault,
    /// Faults were repaired (every open fault ends).
    Repair,
    /// Something happened at an instant (a node added, a fault that found
    /// nothing to act on).
    Moment,
    /// Nothing changed yet: a reaction was armed, or gave up.
    Note,
}

/// One line of the nemesis log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Simulated milliseconds since the start of the run.
    pub at_ms: u64,
    /// What it did to the cluster.
    pub effect: Effect,
    /// What it did, in words.
    pub what: String,
}

/// Carries out faults on a target: applies scheduled faults, advances the
/// reactions they arm, and keeps the log of what happened.
#[derive(Debug, Default)]
pub struct Nemesis {
    reactions: react::Reactions,
    log: Vec<Entry>,
}

impl Nemesis {
    /// A nemesis with nothing armed and an empty log.
    pub fn new() -> Nemesis {
        Nemesis::default()
    }

    /// Applies one fault now and logs what it did (a fault that found
    /// nothing to act on, like crashing a leader while there is none, says
    /// so).
    pub fn apply(&mut self, t: &mut dyn Target, f: &Fault) {
        let (effect, what) = self.act(t, f);
        self.log.push(Entry {
            at_ms: t.now_ms(),
            effect,
            what,
        });
    }

    /// Heals everything: ends every reaction in progress, repairs the
    /// network, restores normal links and restarts every crashed server.
    pub fn heal(&mut self, t: &mut dyn Target) {
        self.reactions = react::Reactions::default();
        for f in [
            Fault::RepairNetwork,
            Fault::NormalNetwork,
            Fault::RestartCrashed,
        ] {
            let (_, what) = self.act(t, &f);
            self.log.push(Entry {
                at_ms: t.now_ms(),
                effect: Effect::Repair,
                what: format!("heal: {what}"),
            });
        }
    }

    /// Advances every reaction in progress; called after every simulation
    /// step.
    pub fn step(&mut self, t: &mut dyn Target) {
        self.reactions.step(t, &mut self.log);
    }

    /// The log so far, in time order.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// The log, in time order.
    pub fn into_log(self) -> Vec<Entry> {
        self.log
    }

    fn act(&mut self, t: &mut dyn Target, f: &Fault) -> (Effect, String) {
        use Effect::{Fault as Hit, Moment, Repair};
        match f {
            Fault::CrashLeader => match t.leader() {
                Some(l) => {
                    t.crash(l);
                    (Hit, format!("crashed leader {l}"))
                }
                None => (Moment, "no leader to crash".into()),
            },
            Fault::Crash { nodes } => {
                for &n in nodes {
                    t.crash(n);
                }
                (Hit, format!("crashed {nodes:?}"))
            }
            Fault::RestartCrashed => {
                t.restart_crashed();
                (Repair, "restarted crashed servers".into())
            }
            Fault::Partition { a, b } => {
                t.partition(a, b);
                (Hit, format!("partitioned {a:?} from {b:?}"))
            }
            Fault::PartitionLeader => match t.leader() {
                Some(l) => {
                    let rest: Vec<Sid> = t.servers().into_iter().filter(|&s| s != l).collect();
                    t.partition(&[l], &rest);
                    (Hit, format!("isolated leader {l}"))
                }
                None => (Moment, "no leader to isolate".into()),
            },
            Fault::RepairNetwork => {
                t.repair();
                (Repair, "repaired the network".into())
            }
            Fault::PacketLoss { rate } => {
                t.packet_loss(*rate);
                (Hit, format!("packet loss {:.0}%", rate * 100.0))
            }
            Fault::Latency { max_ms } => {
                t.latency(Some(*max_ms));
                (Hit, format!("latency up to {max_ms} ms"))
            }
            Fault::NormalNetwork => {
                t.packet_loss(0.0);
                t.latency(None);
                (Repair, "normal network".into())
            }
            Fault::AddNode { node } => {
                t.add_node(*node);
                (Moment, format!("started joiner {node}"))
            }
            Fault::IsolateAll => {
                for s in t.servers() {
                    t.isolate(s);
                }
                (Hit, "isolated every server from every other".into())
            }
            Fault::PauseClient { slot, ms } => {
                t.pause_client(*slot, *ms);
                (Moment, format!("paused client {slot} for {ms} ms"))
            }
            Fault::EpochSkew
            | Fault::CrashInSync { .. }
            | Fault::CutInDiscovery { .. }
            | Fault::CrashLeaderThenAll => self.arm(t, f),
        }
    }

    /// The faults that arm a reaction to the cluster.
    fn arm(&mut self, t: &mut dyn Target, f: &Fault) -> (Effect, String) {
        use Effect::{Fault as Hit, Moment, Note};
        match f {
            Fault::EpochSkew => {
                if self.reactions.epoch_skew(t) {
                    (Hit, "epoch skew started: two followers cut off".into())
                } else {
                    (Moment, "no leader for an epoch skew".into())
                }
            }
            Fault::CrashInSync { restart_after_ms } => {
                self.reactions.crash_in_sync(t, *restart_after_ms);
                (
                    Note,
                    format!(
                        "the next server to write its sync crashes mid-sync (down {restart_after_ms} ms)"
                    ),
                )
            }
            Fault::CutInDiscovery {
                delay_ms,
                heal_after_ms,
            } => {
                self.reactions
                    .cut_in_discovery(t, *delay_ms, *heal_after_ms);
                (
                    Note,
                    format!(
                        "the next prospective leader is cut off {delay_ms} ms into its epoch (for {heal_after_ms} ms)"
                    ),
                )
            }
            Fault::CrashLeaderThenAll => {
                let old = t.leader();
                if let Some(l) = old {
                    t.crash(l);
                }
                self.reactions.crash_all_on_new_leader(old);
                (
                    Hit,
                    format!(
                        "crashed leader {old:?}; everyone crashes at the next established leader"
                    ),
                )
            }
            _ => unreachable!("not a reactive fault: {f:?}"),
        }
    }
}
