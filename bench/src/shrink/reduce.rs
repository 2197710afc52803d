//! The candidates of each shrinking step, as pure functions of the best
//! failing run so far: its schedule with episodes moved close together or
//! made shorter, a shorter chaos phase, and a smaller cluster and
//! workload (fewer clients, keys and observers, no joiner, longer think
//! time), the schedule remapped to the smaller topology.

use crate::flags::RunFlags;
use faultline_nemesis::{Event, Fault, NemesisKind, Schedule};

/// One candidate run: a seed's run with these flags and this explicit
/// schedule (the chaos phase is `flags.duration`).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Cand {
    /// The seed: the original run's, or another draw (see `redraw`).
    pub seed: u64,
    /// The schedule the run replays.
    pub schedule: Schedule,
    /// Every other flag of the run (`flags.schedule` is set per attempt).
    pub flags: RunFlags,
}

/// The episodes of `s`, each as its start and its events' offsets from it.
fn episodes(s: &Schedule) -> Vec<(u64, Vec<Event>)> {
    s.episodes()
        .into_iter()
        .map(|r| {
            let ev = &s.events[r];
            let start = ev[0].at_ms;
            let rel = ev
                .iter()
                .map(|e| Event {
                    at_ms: e.at_ms - start,
                    fault: e.fault.clone(),
                })
                .collect();
            (start, rel)
        })
        .collect()
}

/// Shrinking factors of a time, smallest first.
pub(super) const FACTORS: [f64; 4] = [0.1, 0.25, 0.5, 0.75];

/// At most this many whole-second cuts of one episode or gap
/// ([`shortenings`]).
const SECOND_CUTS: u64 = 4;

/// The factors that make a time of `ms` shorter, smallest first:
/// [`FACTORS`], and with `seconds` the largest [`SECOND_CUTS`] cuts by
/// whole seconds that leave some of it. A cut by whole seconds keeps where
/// the time ends within the second: the cluster's slowest timers recur
/// every second (election notification rounds once backed off to their
/// 1 s cap), so a repair that had to land just before one of them lands
/// before an earlier one, where a factor misses that window of a few tens
/// of ms.
pub(super) fn shortenings(ms: u64, seconds: bool) -> Vec<f64> {
    let whole = if seconds {
        ms.saturating_sub(1) / 1000
    } else {
        0
    };
    let cuts = (whole.saturating_sub(SECOND_CUTS - 1).max(1)..=whole)
        .map(|k| (ms - k * 1000) as f64 / ms as f64);
    let mut fs: Vec<f64> = FACTORS.into_iter().chain(cuts).collect();
    fs.sort_by(f64::total_cmp);
    fs.dedup();
    fs
}

/// For each episode of `s`, in order: the quiet gap before it (from the
/// start of the chaos phase, or from the end of the episode before) and
/// its span (from its first event to its last), in ms.
pub(super) fn spans(s: &Schedule) -> Vec<(u64, u64)> {
    let mut end = 0;
    episodes(s)
        .into_iter()
        .map(|(start, ev)| {
            let span = ev.iter().map(|e| e.at_ms).max().unwrap_or(0);
            let gap = start - end;
            end = start + span;
            (gap, span)
        })
        .collect()
}

/// The schedule of `eps` (relative events) laid out with these gaps: the
/// first episode starts at `gaps[0]`, each next one `gaps[i]` after the
/// previous one's last event (a gap of at least 1 ms keeps the episodes
/// apart).
fn laid_out(eps: &[Vec<Event>], gaps: &[u64]) -> Schedule {
    assert_eq!(eps.len(), gaps.len(), "a gap before each episode");
    let mut events = Vec::new();
    let mut end = 0;
    for (ev, gap) in eps.iter().zip(gaps) {
        let start = end + gap;
        events.extend(ev.iter().map(|e| Event {
            at_ms: start + e.at_ms,
            fault: e.fault.clone(),
        }));
        end = start + ev.iter().map(|e| e.at_ms).max().unwrap_or(0);
    }
    Schedule { events }
}

/// `s`'s episodes played `times` times over: the first starting at
/// 300 ms, each next `gap_ms` after the one before ended (each episode's
/// own timing kept). A failure one draw of an episode gives rarely gets
/// that many chances in one run.
pub(super) fn repeated(s: &Schedule, times: usize, gap_ms: u64) -> Schedule {
    let eps: Vec<Vec<Event>> = episodes(s).into_iter().map(|(_, e)| e).collect();
    let all: Vec<Vec<Event>> = (0..times).flat_map(|_| eps.iter().cloned()).collect();
    let mut gaps = vec![gap_ms; all.len()];
    if let Some(g) = gaps.first_mut() {
        *g = 300;
    }
    laid_out(&all, &gaps)
}

/// `s` with its episodes moved close together: the first starts at
/// 300 ms, each next one 500 ms after the one before ended (each
/// episode's own timing kept).
pub(super) fn compressed(s: &Schedule) -> Schedule {
    repeated(s, 1, 500)
}

/// `s` with episode `i` lasting `factor` of its time (its events' offsets
/// and the durations its faults carry scaled, never below 1 ms), the
/// episodes after it moved up by what it lost (the gaps between episodes
/// kept).
pub(super) fn scaled(s: &Schedule, i: usize, factor: f64) -> Schedule {
    rescaled(s, |k| if k == i { factor } else { 1.0 }, |_| 1.0)
}

/// `s` with the quiet time before episode `i` (from the start of the chaos
/// phase, or from the end of the episode before) scaled by `factor`.
pub(super) fn gap_scaled(s: &Schedule, i: usize, factor: f64) -> Schedule {
    rescaled(s, |_| 1.0, |k| if k == i { factor } else { 1.0 })
}

/// `s` played faster: every time in it, and every duration its faults
/// carry, scaled by `factor` (the order of events kept).
pub(super) fn time_scaled(s: &Schedule, factor: f64) -> Schedule {
    rescaled(s, |_| factor, |_| factor)
}

/// `ms` scaled by `factor`: 0 stays 0, anything else stays at least 1 ms.
fn scale(ms: u64, factor: f64) -> u64 {
    if ms == 0 {
        0
    } else {
        ((ms as f64 * factor).round() as u64).max(1)
    }
}

/// `f` with the durations it carries scaled (the delay of a cut in
/// discovery is a moment in the election, not a length: kept).
fn fault_scaled(f: Fault, factor: f64) -> Fault {
    match f {
        Fault::PauseClient { slot, ms } => Fault::PauseClient {
            slot,
            ms: scale(ms, factor),
        },
        Fault::CrashInSync { restart_after_ms } => Fault::CrashInSync {
            restart_after_ms: scale(restart_after_ms, factor),
        },
        Fault::CutInDiscovery {
            delay_ms,
            heal_after_ms,
        } => Fault::CutInDiscovery {
            delay_ms,
            heal_after_ms: scale(heal_after_ms, factor),
        },
        f => f,
    }
}

/// `s` with episode `k`'s own time scaled by `episode(k)` and the gap
/// before it by `gap(k)`, laid out again in order.
fn rescaled(s: &Schedule, episode: impl Fn(usize) -> f64, gap: impl Fn(usize) -> f64) -> Schedule {
    let eps = episodes(s);
    let mut gaps = Vec::with_capacity(eps.len());
    let mut end = 0;
    for (k, (start, ev)) in eps.iter().enumerate() {
        gaps.push(scale(start - end, gap(k)));
        end = start + ev.iter().map(|e| e.at_ms).max().unwrap_or(0);
    }
    let eps: Vec<Vec<Event>> = eps
        .into_iter()
        .enumerate()
        .map(|(k, (_, ev))| {
            let f = episode(k);
            ev.into_iter()
                .map(|e| Event {
                    at_ms: scale(e.at_ms, f),
                    fault: fault_scaled(e.fault, f),
                })
                .collect()
        })
        .collect();
    laid_out(&eps, &gaps)
}

/// The chaos phase that ends `tail_ms` after the last event of `s` (at
/// least 1 s), never longer than `max_ms`.
pub(super) fn chaos_for(s: &Schedule, tail_ms: u64, max_ms: u64) -> u64 {
    let last = s.events.iter().map(|e| e.at_ms).max().unwrap_or(0);
    (last + tail_ms).max(1000).min(max_ms)
}

/// `c` with `clients` client processes; a paused slot the smaller run
/// lacks becomes slot `slot % clients`.
pub(super) fn with_clients(c: &Cand, clients: usize) -> Cand {
    assert!(clients >= 1, "a run has a client");
    let mut out = c.clone();
    out.flags.clients = clients;
    for e in &mut out.schedule.events {
        if let Fault::PauseClient { slot, .. } = &mut e.fault {
            *slot %= clients as u64;
        }
    }
    out
}

/// `c` with `observers` observers (fewer than it has): the servers that
/// go are dropped from every crash and partition (an action left with no
/// server, or a partition with an empty side, goes too) and the joiner
/// takes the next free id.
pub(super) fn with_observers(c: &Cand, observers: u64) -> Cand {
    let (voters, old) = (c.flags.nodes, c.flags.observers);
    assert!(observers < old, "fewer observers");
    let map = |sid: u64| -> Option<u64> {
        if sid <= voters + observers {
            Some(sid)
        } else if sid <= voters + old {
            None
        } else {
            Some(sid - (old - observers))
        }
    };
    let keep = |ids: &[u64]| -> Vec<u64> { ids.iter().filter_map(|&s| map(s)).collect() };
    let mut out = c.clone();
    out.flags.observers = observers;
    out.schedule.events = c
        .schedule
        .events
        .iter()
        .filter_map(|e| {
            let fault = match &e.fault {
                Fault::Crash { nodes } => {
                    let nodes = keep(nodes);
                    (!nodes.is_empty()).then_some(Fault::Crash { nodes })?
                }
                Fault::Partition { a, b } => {
                    let (a, b) = (keep(a), keep(b));
                    (!a.is_empty() && !b.is_empty()).then_some(Fault::Partition { a, b })?
                }
                Fault::AddNode { node } => Fault::AddNode {
                    node: map(*node).expect("the joiner keeps an id"),
                },
                f => f.clone(),
            };
            Some(Event {
                at_ms: e.at_ms,
                fault,
            })
        })
        .collect();
    out
}

/// `c` without a joining server: no `add-node` among its nemesis kinds,
/// and no episode that adds a node; `None` when it has no joiner.
pub(super) fn without_joiner(c: &Cand) -> Option<Cand> {
    let kinds = NemesisKind::parse_list(&c.flags.nemesis).ok()?;
    if !kinds.contains(&NemesisKind::AddNode) {
        return None;
    }
    let rest: Vec<&str> = kinds
        .iter()
        .filter(|k| **k != NemesisKind::AddNode)
        .map(|k| k.name())
        .collect();
    let mut out = c.clone();
    out.flags.nemesis = if rest.is_empty() {
        "none".into()
    } else {
        rest.join(",")
    };
    let keep: Vec<usize> = c
        .schedule
        .episodes()
        .into_iter()
        .enumerate()
        .filter(|(_, r)| {
            !c.schedule.events[r.clone()]
                .iter()
                .any(|e| matches!(e.fault, Fault::AddNode { .. }))
        })
        .map(|(i, _)| i)
        .collect();
    out.schedule = c.schedule.with_episodes(&keep);
    Some(out)
}

/// A way to make a run smaller: its candidates, smallest first.
pub(super) type Step = fn(&Cand) -> Vec<Cand>;

/// The ways to make a run smaller and lighter, tried in this order after
/// its schedule is shrunk, each built from the best run so far and giving
/// its candidates smallest first: fewer clients, fewer keys, no observer,
/// no joiner, a longer think time.
pub(super) const TOPOLOGY_STEPS: [(&str, Step); 5] = [
    ("clients", fewer_clients),
    ("keys", fewer_keys),
    ("observers", no_observers),
    ("joiner", no_joiner),
    ("think time", lighter),
];

fn fewer_clients(c: &Cand) -> Vec<Cand> {
    [1, 2, 3, 5]
        .into_iter()
        .filter(|&n| n < c.flags.clients)
        .map(|n| with_clients(c, n))
        .collect()
}

fn fewer_keys(c: &Cand) -> Vec<Cand> {
    [1, 2, 3]
        .into_iter()
        .filter(|&n| n < c.flags.keys)
        .map(|n| {
            let mut k = c.clone();
            k.flags.keys = n;
            k
        })
        .collect()
}

fn no_observers(c: &Cand) -> Vec<Cand> {
    if c.flags.observers == 0 {
        return Vec::new();
    }
    vec![with_observers(c, 0)]
}

fn no_joiner(c: &Cand) -> Vec<Cand> {
    without_joiner(c).into_iter().collect()
}

/// Think times 10, 5 and 2 times longer: fewer ops.
fn lighter(c: &Cand) -> Vec<Cand> {
    [10, 5, 2]
        .into_iter()
        .map(|m| {
            let mut k = c.clone();
            k.flags.think = c.flags.think * m;
            k
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: u64, fault: Fault) -> Event {
        Event { at_ms, fault }
    }

    /// Two episodes: a crash of 6 and 7 (the observer and the joiner's
    /// neighbour) restarted 2 s later, and a partition repaired 1 s later;
    /// then a pause of client slot 7 and an added node.
    fn cand() -> Cand {
        Cand {
            seed: 1,
            schedule: Schedule {
                events: vec![
                    ev(1000, Fault::Crash { nodes: vec![2, 6] }),
                    ev(3000, Fault::RestartCrashed),
                    ev(
                        5000,
                        Fault::Partition {
                            a: vec![1, 6],
                            b: vec![2, 3, 4, 5],
                        },
                    ),
                    ev(6000, Fault::RepairNetwork),
                    ev(8000, Fault::PauseClient { slot: 7, ms: 3000 }),
                    ev(12000, Fault::AddNode { node: 7 }),
                ],
            },
            flags: RunFlags::default(),
        }
    }

    fn times(s: &Schedule) -> Vec<u64> {
        s.events.iter().map(|e| e.at_ms).collect()
    }

    #[test]
    fn compressing_keeps_each_episode_and_closes_the_gaps() {
        let c = compressed(&cand().schedule);
        assert_eq!(times(&c), [300, 2300, 2800, 3800, 4300, 4800]);
        assert_eq!(c.episodes().len(), 4);
        assert_eq!(chaos_for(&c, 1500, 20_000), 6300);
        assert_eq!(chaos_for(&c, 1500, 5000), 5000);
    }

    #[test]
    fn scaling_an_episode_moves_the_later_ones_up() {
        let s = scaled(&cand().schedule, 0, 0.25);
        assert_eq!(times(&s), [1000, 1500, 3500, 4500, 6500, 10500]);
        let p = scaled(&cand().schedule, 2, 0.5);
        assert_eq!(p.events[4].fault, Fault::PauseClient { slot: 7, ms: 1500 });
        assert_eq!(p.episodes(), cand().schedule.episodes());
    }

    #[test]
    fn gaps_and_whole_schedules_scale_in_order() {
        let g = gap_scaled(&cand().schedule, 1, 0.5);
        assert_eq!(times(&g), [1000, 3000, 4000, 5000, 7000, 11000]);
        let t = time_scaled(&cand().schedule, 0.5);
        assert_eq!(times(&t), [500, 1500, 2500, 3000, 4000, 6000]);
        assert_eq!(t.events[4].fault, Fault::PauseClient { slot: 7, ms: 1500 });
        assert_eq!(t.episodes(), cand().schedule.episodes());
    }

    #[test]
    fn fewer_clients_remaps_paused_slots() {
        let c = with_clients(&cand(), 3);
        assert_eq!(c.flags.clients, 3);
        assert_eq!(
            c.schedule.events[4].fault,
            Fault::PauseClient { slot: 1, ms: 3000 }
        );
    }

    #[test]
    fn no_observer_drops_it_from_faults_and_renumbers_the_joiner() {
        let c = with_observers(&cand(), 0);
        assert_eq!(c.flags.observers, 0);
        let f: Vec<&Fault> = c.schedule.events.iter().map(|e| &e.fault).collect();
        assert_eq!(f[0], &Fault::Crash { nodes: vec![2] });
        assert_eq!(
            f[2],
            &Fault::Partition {
                a: vec![1],
                b: vec![2, 3, 4, 5]
            }
        );
        assert_eq!(f[5], &Fault::AddNode { node: 6 });
        // A crash of the observer alone, and a partition with it alone on
        // one side, go.
        let mut only = cand();
        only.schedule.events[0].fault = Fault::Crash { nodes: vec![6] };
        only.schedule.events[2].fault = Fault::Partition {
            a: vec![6],
            b: vec![1, 2, 3, 4, 5],
        };
        let c = with_observers(&only, 0);
        assert_eq!(times(&c.schedule), [3000, 6000, 8000, 12000]);
    }

    #[test]
    fn no_joiner_drops_add_node_and_its_episode() {
        let c = without_joiner(&cand()).expect("the defaults have a joiner");
        assert!(!c.flags.nemesis.contains("add-node"));
        assert!(c.flags.config(1).is_ok_and(|k| !k.joiner));
        assert_eq!(times(&c.schedule), [1000, 3000, 5000, 6000, 8000]);
        assert_eq!(without_joiner(&c), None);
    }

    #[test]
    fn every_topology_step_makes_the_run_smaller_or_lighter() {
        let c = cand();
        for (name, step) in TOPOLOGY_STEPS {
            let cands = step(&c);
            assert!(!cands.is_empty(), "{name}");
            for k in cands {
                let f = &k.flags;
                assert!(
                    f.clients < c.flags.clients
                        || f.keys < c.flags.keys
                        || f.observers < c.flags.observers
                        || f.nemesis != c.flags.nemesis
                        || f.think > c.flags.think,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn spans_are_the_gaps_and_lengths_of_the_episodes() {
        let s = cand().schedule;
        assert_eq!(
            spans(&s),
            [(1000, 2000), (2000, 1000), (2000, 0), (4000, 0)]
        );
        assert_eq!(spans(&compressed(&s))[1], (500, 1000));
    }

    #[test]
    fn whole_second_cuts_keep_the_phase_within_the_second() {
        // A 5,618 ms episode: the factors, and cuts of 5, 4, 3 and 2 s.
        let fs = shortenings(5618, true);
        assert!(fs.windows(2).all(|w| w[0] < w[1]), "{fs:?}");
        let lens: Vec<u64> = fs.iter().map(|f| scale(5618, *f)).collect();
        assert_eq!(lens, [562, 618, 1405, 1618, 2618, 2809, 3618, 4214]);
        let s = Schedule {
            events: vec![ev(30, Fault::IsolateAll), ev(5648, Fault::RepairNetwork)],
        };
        let cut = scaled(&s, 0, fs[1]);
        assert_eq!(times(&cut), [30, 648]);
        // Nothing to cut from a second or less; a gap of 1.5 s loses 1 s.
        assert_eq!(shortenings(1000, true), FACTORS);
        assert_eq!(shortenings(5618, false), FACTORS);
        assert_eq!(shortenings(0, true), FACTORS);
        assert_eq!(scale(1500, shortenings(1500, true)[2]), 500);
    }

    #[test]
    fn repeating_plays_the_episodes_again_after_a_gap() {
        let one = cand().schedule.with_episodes(&[1]);
        let r = repeated(&one, 3, 1200);
        assert_eq!(times(&r), [300, 1300, 2500, 3500, 4700, 5700]);
        assert_eq!(r.episodes().len(), 3);
        assert_eq!(r.events[2].fault, one.events[0].fault);
    }
}
