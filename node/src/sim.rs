//! The simulated world every faultline simulation runs in: one turmoil
//! configuration (seeded randomness, 2 ms steps, a fixed epoch, link
//! latencies, TCP buffers) shared by the bench, its benchmarks and the
//! node's own tests.

use std::time::{Duration, SystemTime};

/// Normal maximum one-way latency of a link, ms (the minimum is 1 ms).
pub const NORMAL_LATENCY_MS: u64 = 5;

/// Simulated time per turmoil step. Within a step each host's timers fire
/// at their exact times (tokio's paused clock advances from one to the
/// next); what the step sets is the grain of message delivery between
/// hosts: a message is handed over at the first step boundary at or after
/// its latency. Every step costs the same wall time for every host, so the
/// step is what bounds simulated time per wall second: 2 ms steps run the
/// default campaign about 1.5x faster than 1 ms steps, with the same bug
/// detection (README, `perf`).
pub const TICK: Duration = Duration::from_millis(2);

/// A turmoil builder for the simulation of `seed`: every random choice of
/// the network from the seed, [`TICK`] steps, wall-clock epoch fixed at
/// 2023-11-14, links of 1 to [`NORMAL_LATENCY_MS`] ms, TCP buffers of 4096
/// segments, and a 24 h limit of simulated time. Callers may change any
/// setting before `build()`.
pub fn builder(seed: u64) -> turmoil::Builder {
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .simulation_duration(Duration::from_secs(24 * 3600))
        .tick_duration(TICK)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tcp_capacity(4096)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(NORMAL_LATENCY_MS));
    b
}
