//! `faultline perf --suite node`: throughput of a 5-server ensemble under
//! turmoil on one core, against the idle ceiling of the same host count
//! measured in the same process.

use crate::system::SystemKind;
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

/// How the engine watches an ensemble in a benchmark: whether a server
/// leads, and the protocol messages sent so far.
struct Watch {
    leading: Box<dyn Fn() -> bool>,
    messages: Box<dyn Fn() -> u64>,
}

/// Starts 5 voters of `system` on `s` (hosts `n1`..`n5`, clients on 2181).
fn start(s: &mut turmoil::Sim<'_>, system: SystemKind) -> Watch {
    let voters: Vec<Sid> = (1..=5).collect();
    let hosts: BTreeMap<Sid, String> = voters.iter().map(|v| (*v, format!("n{v}"))).collect();
    match system {
        SystemKind::Zab => {
            let mut probes = Vec::new();
            for &sid in &voters {
                let cfg =
                    ShellConfig::new(NodeConfig::new(sid, voters.clone(), vec![]), hosts.clone());
                let probe = Probe::default();
                probes.push(probe.clone());
                s.host(format!("n{sid}"), move || {
                    shell::run(cfg.clone(), probe.clone())
                });
            }
            let p2 = probes.clone();
            Watch {
                leading: Box::new(move || {
                    probes.iter().any(|p| {
                        let st = p.status();
                        st.serving && st.role == Some(faultline_node::PeerState::Leading)
                    })
                }),
                messages: Box::new(move || p2.iter().map(|p| p.messages_sent()).sum()),
            }
        }
        SystemKind::Raft => {
            use faultline_raftkv::shell as rshell;
            let mut probes = Vec::new();
            for &sid in &voters {
                let mut cfg = rshell::ShellConfig::new(sid, voters.clone(), vec![], hosts.clone());
                cfg.seed = 7;
                let probe = rshell::Probe::default();
                probes.push(probe.clone());
                s.host(format!("n{sid}"), move || {
                    rshell::run(cfg.clone(), probe.clone())
                });
            }
            let p2 = probes.clone();
            Watch {
                leading: Box::new(move || probes.iter().any(|p| p.status().leading)),
                messages: Box::new(move || p2.iter().map(|p| p.messages_sent()).sum()),
            }
        }
    }
}

/// Runs `clients` client sessions against a 5-server ensemble of
/// `system` for `sim` of simulated time after warm-up. Each session opens
/// its session, then writes in a closed loop, pausing `think` between
/// writes (zero: saturation).
pub fn ensemble(system: SystemKind, clients: usize, think: Duration, sim: Duration) -> Figures {
    let mut s = builder(7).build();
    let watch = start(&mut s, system);
    // Warm up: until a leader is established.
    while !(watch.leading)() {
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
                let open = ClientOp::CreateSession { timeout: 1000 };
                while !matches!(
                    cl.call(open.clone(), Duration::from_secs(5)).await,
                    Ok(r) if matches!(r.outcome, Outcome::Opened { .. })
                ) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
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
    measure(&mut s, settle, (&counting, &acked), sim, &*watch.messages)
}

/// Steps `s` until `settle` (simulated), then counts acknowledged writes
/// (`counting` on, `acked` the count) for `sim` of simulated time, timing
/// it; `messages` is the running count of messages sent.
pub(crate) fn measure(
    s: &mut turmoil::Sim<'_>,
    settle: Duration,
    (counting, acked): (&Cell<bool>, &Cell<u64>),
    sim: Duration,
    messages: &dyn Fn() -> u64,
) -> Figures {
    while s.elapsed() < settle {
        s.step().expect("settle");
    }
    let msgs0 = messages();
    counting.set(true);
    let start = s.elapsed();
    let t = Instant::now();
    while s.elapsed() - start < sim {
        s.step().expect("run");
    }
    Figures {
        acked: acked.get(),
        sim,
        wall: t.elapsed(),
        messages: messages() - msgs0,
    }
}

/// The ensemble figures of one system: saturation and ~500 offered
/// writes/s, against `ceiling`.
fn ensemble_lines(system: SystemKind, sim: Duration, ceiling: f64) -> Figures {
    let who = match system {
        SystemKind::Zab => "ZAB node",
        SystemKind::Raft => "raftkv (raft-rs)",
    };
    let sat = ensemble(system, 200, Duration::ZERO, sim);
    out!(
        "  {who}, saturation (200 closed-loop sessions): {:.0} acked writes per wall second, {:.0}/s simulated, {:.1}x real time ({:.0}% of the idle ceiling), {:.1} messages per write",
        sat.acked as f64 / sat.wall.as_secs_f64(),
        sat.acked as f64 / sat.sim.as_secs_f64(),
        sat.sim_per_wall(),
        100.0 * sat.sim_per_wall() / ceiling,
        sat.messages as f64 / sat.acked.max(1) as f64,
    );
    let low = ensemble(system, 50, Duration::from_millis(100), sim);
    out!(
        "  {who}, offered ~500 writes/s (50 sessions, 100 ms think time): {:.0} acked/s simulated, {:.1}x real time ({:.0}% of the idle ceiling), {:.0} acked writes per wall second, {:.1} messages per write",
        low.acked as f64 / low.sim.as_secs_f64(),
        low.sim_per_wall(),
        100.0 * low.sim_per_wall() / ceiling,
        low.acked as f64 / low.wall.as_secs_f64(),
        low.messages as f64 / low.acked.max(1) as f64,
    );
    low
}

/// Prints the node figures: the ZAB node and raftkv side by side, against
/// the idle ceiling and the traffic's own ceiling.
pub fn report(sim: Duration) {
    let ceiling = idle_ceiling(6, sim);
    out!("node: 5 voters + 1 client host under turmoil, one core");
    out!(
        "  idle ceiling, 6 hosts, {} ms steps: {ceiling:.1}x real time",
        faultline_node::sim::TICK.as_millis()
    );
    let low = ensemble_lines(SystemKind::Zab, sim, ceiling);
    let raft = ensemble_lines(SystemKind::Raft, sim, ceiling);
    let echo = crate::perf_echo::run(50, Duration::from_millis(100), sim);
    out!(
        "  the ~500 writes/s traffic with handlers that do nothing ({} TCP messages per write, no protocol, no disk): {:.0} acked/s simulated, {:.1}x real time ({:.0}% of the idle ceiling); the ZAB node runs at {:.0}% of it, raftkv at {:.0}%",
        crate::perf_echo::MESSAGES_PER_WRITE,
        echo.acked as f64 / echo.sim.as_secs_f64(),
        echo.sim_per_wall(),
        100.0 * echo.sim_per_wall() / ceiling,
        100.0 * low.sim_per_wall() / echo.sim_per_wall(),
        100.0 * raft.sim_per_wall() / echo.sim_per_wall(),
    );
}
