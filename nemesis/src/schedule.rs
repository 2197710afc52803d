//! Fault schedules as plain data: the kinds, the fault actions, and the
//! schedule drawn from the seed before a run starts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::Sid;

/// The kinds of fault, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisKind {
    /// Crash the current leader, restart it later.
    CrashLeader,
    /// Crash a random server, restart it later.
    Crash,
    /// Split the servers into two halves.
    PartitionHalves,
    /// Isolate the current leader from every other server.
    PartitionLeader,
    /// Two halves that only one server bridges.
    PartitionBridge,
    /// Drop packets at random on every link.
    PacketLoss,
    /// Slow every link down.
    Latency,
    /// Start the joining server and make it a voter.
    AddNode,
    /// Crash a quorum at once (power loss), then restart it.
    RestartAll,
    /// Cut every link between servers for two to three session timeouts
    /// (no quorum anywhere), then heal: clients that kept trying keep
    /// their sessions (ZAB.md §9).
    LongElection,
    /// One client process stops sending for longer than its session
    /// timeout: its session must expire and its ephemeral key vanish.
    ClientPause,
}

impl NemesisKind {
    /// Every kind.
    pub const ALL: [NemesisKind; 11] = [
        NemesisKind::CrashLeader,
        NemesisKind::Crash,
        NemesisKind::PartitionHalves,
        NemesisKind::PartitionLeader,
        NemesisKind::PartitionBridge,
        NemesisKind::PacketLoss,
        NemesisKind::Latency,
        NemesisKind::AddNode,
        NemesisKind::RestartAll,
        NemesisKind::LongElection,
        NemesisKind::ClientPause,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::CrashLeader => "crash-leader",
            NemesisKind::Crash => "crash",
            NemesisKind::PartitionHalves => "partition-halves",
            NemesisKind::PartitionLeader => "partition-leader",
            NemesisKind::PartitionBridge => "partition-bridge",
            NemesisKind::PacketLoss => "packet-loss",
            NemesisKind::Latency => "latency",
            NemesisKind::AddNode => "add-node",
            NemesisKind::RestartAll => "restart-all",
            NemesisKind::LongElection => "long-election",
            NemesisKind::ClientPause => "client-pause",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<NemesisKind> {
        NemesisKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Parses `all`, `none` or a comma-separated list.
    pub fn parse_list(s: &str) -> Result<Vec<NemesisKind>, String> {
        match s {
            "all" => Ok(NemesisKind::ALL.to_vec()),
            "none" => Ok(Vec::new()),
            _ => s
                .split(',')
                .map(|n| {
                    NemesisKind::parse(n.trim()).ok_or_else(|| {
                        let names: Vec<&str> = NemesisKind::ALL.iter().map(|k| k.name()).collect();
                        format!(
                            "unknown nemesis {n:?} (known: {}, all, none)",
                            names.join(", ")
                        )
                    })
                })
                .collect(),
        }
    }
}

impl fmt::Display for NemesisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Fault {
    /// Crash the server that leads when the action runs.
    CrashLeader,
    /// Crash these servers (power loss: unsynced writes are lost).
    Crash { nodes: Vec<Sid> },
    /// Restart every crashed server.
    RestartCrashed,
    /// Cut every link between the two groups.
    Partition { a: Vec<Sid>, b: Vec<Sid> },
    /// Cut the current leader off from every other server.
    PartitionLeader,
    /// Repair every cut link.
    RepairNetwork,
    /// Drop this share of packets on every server link.
    PacketLoss { rate: f64 },
    /// Delay messages on every link by up to this many milliseconds.
    Latency { max_ms: u64 },
    /// Back to the normal network (no loss, normal latency).
    NormalNetwork,
    /// Start the joining server and ask for it to become a voter.
    AddNode { node: Sid },
    /// Cut every link between servers (none can reach a quorum).
    IsolateAll,
    /// Client process slot `slot` sends nothing (no request, no ping) for
    /// `ms` milliseconds.
    PauseClient { slot: u64, ms: u64 },
    /// Crash the leader; as soon as another leader is established, power
    /// off every server (a new epoch's fresh state meets a power loss).
    CrashLeaderThenAll,
    /// ZOOKEEPER-4643's choreography: two followers fall behind; then two
    /// others are cut off and the leader restarts, so that it leads a new
    /// epoch with only the laggards, syncing them; right after that epoch is
    /// established the leader and the laggards crash; the laggards restart
    /// and meet the two that missed the epoch; the old leader stays down
    /// until the heal. Carried out over time by a reaction of the
    /// [`crate::Nemesis`].
    EpochSkew,
    /// Arms a crash in the middle of a synchronization: the first server
    /// that, while it follows or observes without serving, writes its sync
    /// to disk (a TRUNC, a snapshot install or the synced txns) crashes in
    /// that very step, before the fsync and the epoch write that end the
    /// sync, and restarts `restart_after_ms` later (ZOOKEEPER-1653's
    /// window). Carried out by a reaction of the [`crate::Nemesis`]; given
    /// up after 5 s unarmed.
    CrashInSync {
        /// How long the server stays down.
        restart_after_ms: u64,
    },
    /// Arms a cut in discovery: the next server to choose an epoch as
    /// prospective leader is cut off from every other server `delay_ms`
    /// after it chose it, unless it established the epoch by then (then
    /// the next one is), and its links are repaired `heal_after_ms` later.
    /// Some servers have promised the epoch (acceptedEpoch) and some may
    /// be synced in it, yet it is never established: the next leader must
    /// choose a higher one and sort out their logs. Carried out by a
    /// reaction of the [`crate::Nemesis`]; given up after 3 s unarmed.
    CutInDiscovery {
        /// How long after the epoch is chosen the cut comes.
        delay_ms: u64,
        /// How long the prospective leader stays cut off.
        heal_after_ms: u64,
    },
}

impl Fault {
    /// A short label for reports.
    pub fn label(&self) -> String {
        match self {
            Fault::CrashLeader => "crash leader".into(),
            Fault::Crash { nodes } => format!("crash {nodes:?}"),
            Fault::RestartCrashed => "restart crashed".into(),
            Fault::Partition { a, b } => format!("partition {a:?} | {b:?}"),
            Fault::PartitionLeader => "isolate leader".into(),
            Fault::RepairNetwork => "repair network".into(),
            Fault::PacketLoss { rate } => format!("packet loss {:.0}%", rate * 100.0),
            Fault::Latency { max_ms } => format!("latency up to {max_ms} ms"),
            Fault::NormalNetwork => "normal network".into(),
            Fault::AddNode { node } => format!("add node {node}"),
            Fault::IsolateAll => "isolate every server".into(),
            Fault::PauseClient { slot, ms } => format!("pause client {slot} for {ms} ms"),
            Fault::CrashLeaderThenAll => {
                "crash leader, then everyone once a new leader is established".into()
            }
            Fault::EpochSkew => "epoch skew (ZOOKEEPER-4643)".into(),
            Fault::CrashInSync { restart_after_ms } => {
                format!("crash the next server mid-sync, restart it after {restart_after_ms} ms")
            }
            Fault::CutInDiscovery {
                delay_ms,
                heal_after_ms,
            } => format!(
                "cut the next prospective leader off {delay_ms} ms into its epoch, for {heal_after_ms} ms"
            ),
        }
    }
}

/// A fault at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds after the chaos phase starts.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// A whole run's faults, in time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The events.
    pub events: Vec<Event>,
}

/// What a schedule is drawn for.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Voters and observers running from the start.
    pub servers: Vec<Sid>,
    /// The voters among them.
    pub voters: Vec<Sid>,
    /// A configured joiner that is not running yet, if any.
    pub joiner: Option<Sid>,
    /// Client process slots (for `client-pause`).
    pub clients: u64,
}

/// Bad schedule input.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

impl Schedule {
    /// Draws a schedule for `chaos_ms` of chaos from the seed: episodes of
    /// the given kinds (in a seeded rotation), each starting after a pause
    /// and repaired before the next.
    pub fn generate(seed: u64, kinds: &[NemesisKind], chaos_ms: u64, topo: &Topology) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4E4D_4553_4953);
        let mut events = Vec::new();
        if kinds.is_empty() {
            return Schedule { events };
        }
        let mut order: Vec<NemesisKind> = kinds.to_vec();
        let mut t = rng.random_range(300..800);
        let mut joined = false;
        let mut k = 0usize;
        while t + 600 < chaos_ms {
            if k.is_multiple_of(order.len()) {
                // a fresh seeded rotation of the kinds
                shuffle(&mut rng, &mut order);
            }
            let kind = order[k % order.len()];
            k += 1;
            let mut dur = rng.random_range(400..1500).min(chaos_ms - t - 200);
            let (start, end) = episode(kind, &mut rng, topo, &mut joined);
            if kind == NemesisKind::LongElection {
                // Two to three of the longest session timeouts (2 s).
                dur = rng.random_range(4000..6000).min(chaos_ms - t - 200);
            }
            let Some(start) = start else {
                // A one-shot kind (add-node) already used: if nothing else
                // is left, the schedule is complete.
                if order.iter().all(|k| *k == NemesisKind::AddNode) {
                    break;
                }
                continue;
            };
            let leader_lost = matches!(start, Fault::CrashLeader | Fault::PartitionLeader);
            events.push(Event {
                at_ms: t,
                fault: start,
            });
            // Half the episodes that take the leader away also cut off the
            // next prospective leader before it establishes its epoch.
            if leader_lost && rng.random_bool(0.5) {
                events.push(Event {
                    at_ms: t,
                    fault: Fault::CutInDiscovery {
                        delay_ms: rng.random_range(0..8),
                        heal_after_ms: rng.random_range(100..1000),
                    },
                });
            }
            for fault in end {
                events.push(Event {
                    at_ms: t + dur,
                    fault,
                });
            }
            t += dur + rng.random_range(300..1000);
        }
        Schedule { events }
    }

    /// Reads a schedule saved as JSON.
    pub fn from_json(text: &str) -> Result<Schedule, ScheduleError> {
        let s: Schedule =
            serde_json::from_str(text).map_err(|e| ScheduleError(format!("bad schedule: {e}")))?;
        if s.events.windows(2).any(|w| w[0].at_ms > w[1].at_ms) {
            return Err(ScheduleError(
                "bad schedule: events must be in time order".into(),
            ));
        }
        Ok(s)
    }

    /// The kinds of fault this schedule exercises.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = self
            .events
            .iter()
            .filter_map(|e| match e.fault {
                Fault::CrashLeader => Some("crash-leader"),
                Fault::Crash { ref nodes } if nodes.len() > 1 => Some("restart-all"),
                Fault::Crash { .. } => Some("crash"),
                Fault::Partition { .. } => Some("partition"),
                Fault::PartitionLeader => Some("partition-leader"),
                Fault::PacketLoss { .. } => Some("packet-loss"),
                Fault::Latency { .. } => Some("latency"),
                Fault::AddNode { .. } => Some("add-node"),
                Fault::CrashLeaderThenAll | Fault::EpochSkew => Some("restart-all"),
                Fault::CrashInSync { .. } => Some("crash-in-sync"),
                Fault::CutInDiscovery { .. } => Some("cut-in-discovery"),
                Fault::IsolateAll => Some("long-election"),
                Fault::PauseClient { .. } => Some("client-pause"),
                _ => None,
            })
            .collect();
        k.sort();
        k.dedup();
        k
    }
}

/// A `restart-all` episode: a quorum at once, one of: every server right
/// after a new leader is established; the epoch-skew choreography
/// (ZOOKEEPER-4643); a bare majority of the voters; or every server (a
/// whole-cluster power loss, which leaves no copy of unsynced data
/// anywhere).
fn restart_all(rng: &mut ChaCha8Rng, topo: &Topology) -> (Option<Fault>, Vec<Fault>) {
    let mut v = topo.voters.clone();
    let roll = rng.random_range(0..3);
    if roll == 0 {
        return (Some(Fault::CrashLeaderThenAll), vec![Fault::RestartCrashed]);
    }
    if roll == 1 && topo.voters.len() >= 5 {
        return (Some(Fault::EpochSkew), vec![Fault::RepairNetwork]);
    }
    if rng.random_bool(0.5) {
        v = topo.servers.clone();
    } else {
        shuffle(rng, &mut v);
        v.truncate(topo.voters.len() / 2 + 1);
    }
    v.sort();
    (Some(Fault::Crash { nodes: v }), vec![Fault::RestartCrashed])
}

/// Shuffles `v` in place (Fisher-Yates, from the back), drawing from `rng`.
fn shuffle<T>(rng: &mut ChaCha8Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

fn episode(
    kind: NemesisKind,
    rng: &mut ChaCha8Rng,
    topo: &Topology,
    joined: &mut bool,
) -> (Option<Fault>, Vec<Fault>) {
    let n = topo.servers.len();
    let pick = |rng: &mut ChaCha8Rng| topo.servers[rng.random_range(0..n)];
    match kind {
        NemesisKind::CrashLeader => (Some(Fault::CrashLeader), restart(rng)),
        NemesisKind::Crash => (
            Some(Fault::Crash {
                nodes: vec![pick(rng)],
            }),
            restart(rng),
        ),
        NemesisKind::RestartAll => restart_all(rng, topo),
        NemesisKind::LongElection => (Some(Fault::IsolateAll), vec![Fault::RepairNetwork]),
        NemesisKind::ClientPause if topo.clients > 0 => (
            Some(Fault::PauseClient {
                slot: rng.random_range(0..topo.clients),
                ms: rng.random_range(2500..4000),
            }),
            Vec::new(),
        ),
        NemesisKind::ClientPause => (None, Vec::new()),
        NemesisKind::PartitionHalves => {
            let mut s = topo.servers.clone();
            shuffle(rng, &mut s);
            let b = s.split_off(s.len() / 2);
            s.sort();
            let mut b = b;
            b.sort();
            (
                Some(Fault::Partition { a: s, b }),
                vec![Fault::RepairNetwork],
            )
        }
        NemesisKind::PartitionBridge => {
            // Two halves that cannot talk, except through one bridge server
            // linked to both: cut the halves from each other only.
            let mut s = topo.servers.clone();
            shuffle(rng, &mut s);
            let _bridge = s.pop();
            let b = s.split_off(s.len() / 2);
            let mut a = s;
            a.sort();
            let mut b = b;
            b.sort();
            (Some(Fault::Partition { a, b }), vec![Fault::RepairNetwork])
        }
        NemesisKind::PartitionLeader => (Some(Fault::PartitionLeader), vec![Fault::RepairNetwork]),
        NemesisKind::PacketLoss => (
            Some(Fault::PacketLoss {
                rate: rng.random_range(0.01..0.2),
            }),
            vec![Fault::NormalNetwork],
        ),
        NemesisKind::Latency => (
            Some(Fault::Latency {
                max_ms: rng.random_range(20..80),
            }),
            vec![Fault::NormalNetwork],
        ),
        NemesisKind::AddNode => match topo.joiner {
            Some(j) if !*joined => {
                *joined = true;
                (Some(Fault::AddNode { node: j }), Vec::new())
            }
            _ => (None, Vec::new()),
        },
    }
}

/// The end of a crash episode: restart the crashed servers; in half the
/// episodes the first server to write its sync afterwards (most often the
/// one restarted, catching up) is crashed again in the middle of it.
fn restart(rng: &mut ChaCha8Rng) -> Vec<Fault> {
    let mut end = vec![Fault::RestartCrashed];
    if rng.random_bool(0.5) {
        end.push(Fault::CrashInSync {
            restart_after_ms: rng.random_range(50..400),
        });
    }
    end
}
