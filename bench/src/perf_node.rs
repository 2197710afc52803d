//! `faultline perf --suite node`: throughput of a 5-server ensemble under
//! turmoil on one core, against the idle ceiling of the same host count
//! measured in the same process.

use faultline_node::client::Client;
use faultline_node::shell::{self, Probe, ShellConfig};
use faultline_node::{ClientOp, NodeConfig, Outcome, Sid};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// One measured run.
pub struct Figures {
    /// Writes acknowledged.
    pub acked: u64,
    /// Simulated time covered by the measurement.
    pub sim: Duration,
    /// Wall-clock time it took.
    pub wall: Duration,
    /// Protocol messages sent by the servers.
    pub messages: u64,
}

impl Figures {
    /// Simulated seconds per wall second.
    pub fn sim_per_wall(&self) -> f64 {
        self.sim.as_secs_f64() / self.wall.as_secs_f64()
    }
}

/// The simulation builder of the node benchmarks (an hour of simulated
/// time at most).
pub(crate) fn builder(seed: u64) -> turmoil::Builder {
    let mut b = faultline_node::sim::builder(seed);
    b.simulation_duration(Duration::from_secs(3600));
    b
}

/// Simulated time per wall second of `hosts` idle hosts (each sleeping
/// one step at a time): the ceiling for that host count.
pub fn idle_ceiling(hosts: usize, sim: Duration) -> f64 {
    let mut s = builder(1).build();
    for h in 0..hosts {
        s.host(format!("idle{h}"), || async {
            loop {
                tokio::time::sleep(faultline_node::sim::TICK).await;
            }
        });
    }
    let t = Instant::now();
    while s.elapsed() < sim {
        s.step().expect("idle step");
    }
    sim.as_secs_f64() / t.elapsed().as_secs_f64()
}

/// Runs `clients` client sessions against a 5-server ensemble for `sim` of
/// simulated time after warm-up. Each session writes in a closed loop,
/// pausing `think` between writes (zero: saturation).
pub fn ensemble(clients: usize, think: Duration, sim: Duration) -> Figures {
    let mut s = builder(7).build();
    let voters: Vec<Sid> = (1..=5).collect();
    let hosts: BTreeMap<Sid, String> = voters.iter().map(|v| (*v, format!("n{v}"))).collect();
    let mut probes = Vec::new();
    for &sid in &voters {
        let cfg = ShellConfig::new(NodeConfig::new(sid, voters.clone(), vec![]), hosts.clone());
        let probe = Probe::default();
        probes.push(probe.clone());
        s.host(format!("n{sid}"), move || {
            shell::run(cfg.clone(), probe.clone())
        });
    }
    // Warm up: until a leader is established.
    let leading = |p: &Probe| {
        let st = p.status();
        st.serving && st.role == Some(faultline_node::PeerState::Leading)
    };
    while !probes.iter().any(leading) {
        s.step().expect("warm-up");
    }
    let acked = Rc::new(Cell::new(0u64));
    let counting = Rc::new(Cell::new(false));
    let (a, k) = (acked.clone(), counting.clone());
    // All sessions share one client host: turmoil's step cost grows
    // steeply with the host count.
    s.client("clients", async move {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (acked, counting) = (a.clone(), k.clone());
            let server = format!("n{}", 1 + c % 5);
            tasks.push(tokio::task::spawn_local(async move {
                let Ok(mut cl) =
                    Client::connect(&server, 2181, c as u64 + 1, Duration::from_secs(1)).await
                else {
                    return;
                };
                for i in 0u64.. {
                    let op = ClientOp::Write {
                        key: (c as u64 * 7 + i) % 64,
                        value: i as i64,
                    };
                    if let Ok(r) = cl.call(op, Duration::from_secs(5)).await {
                        if r.outcome == Outcome::Written && counting.get() {
                            acked.set(acked.get() + 1);
                        }
                    }
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    });
    // Let the clients connect and reach a steady state, then measure.
    let settle = s.elapsed() + Duration::from_millis(200);
    while s.elapsed() < settle {
        s.step().expect("settle");
    }
    let msgs0: u64 = probes.iter().map(|p| p.messages_sent()).sum();
    counting.set(true);
    let start_sim = s.elapsed();
    let t = Instant::now();
    while s.elapsed() - start_sim < sim {
        s.step().expect("run");
    }
    let wall = t.elapsed();
    let messages = probes.iter().map(|p| p.messages_sent()).sum::<u64>() - msgs0;
    Figures {
        acked: acked.get(),
        sim,
        wall,
        messages,
    }
}

/// Prints the node figures.
pub fn report(sim: Duration) {
    let ceiling = idle_ceiling(6, sim);
    out!("node: 5 voters + 1 client host under turmoil, one core");
    out!(
        "  idle ceiling, 6 hosts, {} ms steps: {ceiling:.1}x real time",
        faultline_node::sim::TICK.as_millis()
    );
    let sat = ensemble(200, Duration::ZERO, sim);
    out!(
        "  saturation (200 closed-loop sessions): {:.0} acked writes per wall second, {:.0}/s simulated, {:.1}x real time ({:.0}% of the idle ceiling), {:.1} messages per write",
        sat.acked as f64 / sat.wall.as_secs_f64(),
        sat.acked as f64 / sat.sim.as_secs_f64(),
        sat.sim_per_wall(),
        100.0 * sat.sim_per_wall() / ceiling,
        sat.messages as f64 / sat.acked.max(1) as f64,
    );
    let low = ensemble(50, Duration::from_millis(100), sim);
    out!(
        "  offered ~500 writes/s (50 sessions, 100 ms think time): {:.0} acked/s simulated, {:.1}x real time ({:.0}% of the idle ceiling), {:.0} acked writes per wall second, {:.1} messages per write",
        low.acked as f64 / low.sim.as_secs_f64(),
        low.sim_per_wall(),
        100.0 * low.sim_per_wall() / ceiling,
        low.acked as f64 / low.wall.as_secs_f64(),
        low.messages as f64 / low.acked.max(1) as f64,
    );
    let echo = crate::perf_echo::run(50, Duration::from_millis(100), sim);
    out!(
        "  the same traffic with handlers that do nothing ({} TCP messages per write, no protocol, no disk): {:.0} acked/s simulated, {:.1}x real time ({:.0}% of the idle ceiling); the node runs at {:.0}% of it",
        crate::perf_echo::MESSAGES_PER_WRITE,
        echo.acked as f64 / echo.sim.as_secs_f64(),
        echo.sim_per_wall(),
        100.0 * echo.sim_per_wall() / ceiling,
        100.0 * low.sim_per_wall() / echo.sim_per_wall(),
    );
}
