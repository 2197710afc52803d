//! A schedule's fault episodes: a fault with what comes with it (the cut
//! in discovery armed with a crash of the leader) and its repairs (the
//! restart, the network repaired, a crash armed in the restart's sync).
//! Shrinking a failing run removes whole episodes, never a fault without
//! its repair.

use crate::schedule::{Fault, Schedule};
use std::ops::Range;

impl Fault {
    /// Whether the action ends a fault (restarts, repairs the network or
    /// brings it back to normal) rather than starting one.
    pub fn is_repair(&self) -> bool {
        matches!(
            self,
            Fault::RestartCrashed | Fault::RepairNetwork | Fault::NormalNetwork
        )
    }
}

impl Schedule {
    /// The episodes, as ranges of `events` that cover it in order: an
    /// episode begins with each action that is not a repair and does not
    /// share its time with the action before it (so what is armed at the
    /// same moment, and the repairs that follow, belong to it).
    pub fn episodes(&self) -> Vec<Range<usize>> {
        let mut out: Vec<Range<usize>> = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let same_time = i > 0 && self.events[i - 1].at_ms == e.at_ms;
            let starts = out.is_empty() || (!e.fault.is_repair() && !same_time);
            match out.last_mut() {
                Some(r) if !starts => r.end = i + 1,
                _ => out.push(i..i + 1),
            }
        }
        out
    }

    /// The schedule with only the episodes numbered in `keep` (indices
    /// into [`Schedule::episodes`]), in time order.
    pub fn with_episodes(&self, keep: &[usize]) -> Schedule {
        let episodes = self.episodes();
        let mut events = Vec::new();
        for (i, r) in episodes.into_iter().enumerate() {
            if keep.contains(&i) {
                events.extend_from_slice(&self.events[r]);
            }
        }
        Schedule { events }
    }
}
