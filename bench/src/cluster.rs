//! The simulation as the nemesis sees it: [`Cluster`] holds the turmoil
//! simulation and the system under test, and implements the nemesis's
//! [`Target`] over them (hosts crashed and bounced, links cut, repaired,
//! made lossy or slow; what the servers' probes show).

use crate::system::{host, ServerView, System};
use faultline_nemesis::{Sid, Target};
use faultline_node::sim::NORMAL_LATENCY_MS;
use std::collections::BTreeSet;
use std::time::Duration;

/// The simulation and the system under test.
pub(crate) struct Cluster<'a> {
    pub(crate) sim: turmoil::Sim<'a>,
    pub(crate) system: Box<dyn System + 'a>,
    /// Servers whose host exists (started at least once).
    pub(crate) started: BTreeSet<Sid>,
    /// Servers crashed and not restarted yet.
    crashed: BTreeSet<Sid>,
    cut: BTreeSet<(Sid, Sid)>,
    /// The client host's switches, once the clients run.
    pub(crate) clients: Option<faultline_workload::Control>,
}

impl<'a> Cluster<'a> {
    /// A cluster of `system` over `sim`; nothing is started yet.
    pub(crate) fn new(sim: turmoil::Sim<'a>, system: Box<dyn System + 'a>) -> Cluster<'a> {
        Cluster {
            sim,
            system,
            started: BTreeSet::new(),
            crashed: BTreeSet::new(),
            cut: BTreeSet::new(),
            clients: None,
        }
    }

    /// Starts server `s`'s host.
    pub(crate) fn start(&mut self, s: Sid) {
        self.system.start(&mut self.sim, s);
        self.started.insert(s);
    }

    /// What can be seen of `s` now.
    pub(crate) fn view(&self, s: Sid) -> ServerView {
        self.system.view(s)
    }

    /// Cuts the power of every started server at once (unsynced writes
    /// are lost) and starts them again.
    pub(crate) fn power_cycle(&mut self) {
        for s in self.started.clone() {
            self.sim.crash(host(s));
            self.system.crashed(s);
        }
        for s in self.started.clone() {
            self.sim.bounce(host(s));
        }
        self.crashed.clear();
    }
}

impl Target for Cluster<'_> {
    fn now_ms(&self) -> u64 {
        self.sim.elapsed().as_millis() as u64
    }

    fn leader(&self) -> Option<Sid> {
        self.started
            .iter()
            .filter(|s| !self.crashed.contains(s))
            .find(|s| self.system.view(**s).leading)
            .copied()
    }

    fn servers(&self) -> Vec<Sid> {
        self.started.iter().copied().collect()
    }

    fn voters(&self, s: Sid) -> Vec<Sid> {
        self.system.view(s).voters
    }

    fn epoch(&self, s: Sid) -> u64 {
        self.system.view(s).epoch
    }

    fn leads_established(&self, s: Sid) -> bool {
        self.system.view(s).leading
    }

    fn prospective_leader(&self) -> Option<(Sid, u64)> {
        self.system
            .prospective_leaders()
            .into_iter()
            .find(|(s, _)| !self.crashed.contains(s))
    }

    fn writing_sync(&self) -> Option<(Sid, String)> {
        self.system
            .writing_sync(self.sim.elapsed())
            .into_iter()
            .find(|(s, _)| !self.crashed.contains(s))
    }

    fn crash(&mut self, s: Sid) {
        if self.started.contains(&s) && self.crashed.insert(s) {
            self.sim.crash(host(s));
            self.system.crashed(s);
        }
    }

    fn restart_crashed(&mut self) {
        for s in std::mem::take(&mut self.crashed) {
            self.sim.bounce(host(s));
        }
    }

    fn restart(&mut self, s: Sid) -> bool {
        let was = self.crashed.remove(&s);
        if was {
            self.sim.bounce(host(s));
        }
        was
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

    fn isolate(&mut self, s: Sid) -> Vec<(Sid, Sid)> {
        let others: Vec<Sid> = self.servers().into_iter().filter(|&o| o != s).collect();
        let fresh: Vec<(Sid, Sid)> = others
            .iter()
            .map(|&o| (s.min(o), s.max(o)))
            .filter(|l| !self.cut.contains(l))
            .collect();
        self.partition(&[s], &others);
        fresh
    }

    fn repair_link(&mut self, l: (Sid, Sid)) -> bool {
        let was = self.cut.remove(&l);
        if was {
            self.sim.repair(host(l.0), host(l.1));
        }
        was
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
        self.system.add_voter(s);
    }

    fn pause_client(&mut self, slot: u64, ms: u64) {
        if let Some(c) = &self.clients {
            let until = self.sim.elapsed().as_nanos() as u64 + ms * 1_000_000;
            c.pause(slot, until);
        }
    }
}
