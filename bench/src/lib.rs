//! The engine of faultline: one run (seed -> simulation -> history ->
//! verdict), campaigns of runs in child processes under a watchdog, run
//! directories, `summary.json` and JUnit, the bug-detection matrix, the
//! nemesis mixes, merging sharded campaigns, and the performance figures.
//! The `faultline` binary is its command line.

/// Prints a line on standard output like `println!`, except that a
/// reader that went away (`faultline perf | head`) is not an error: the
/// rest of the output is dropped, never a panic.
macro_rules! out {
    () => { $crate::print_line("") };
    ($($t:tt)*) => { $crate::print_line(&format!($($t)*)) };
}

mod campaign;
mod cluster;
mod interrupt;

pub mod flags;
mod judge;
mod matrix;
mod merge;
mod mixes;
pub mod output;
mod perf;
mod perf_echo;
mod perf_node;
mod perf_run;
pub mod raft;
pub mod run;
mod seed;
mod shrink;
pub mod summary;
pub mod system;
pub mod zab;

pub use campaign::{bench, linearizable_history};
pub use flags::{BenchArgs, RunFlags, SeedRange};
pub use matrix::{matrix, MatrixArgs};
pub use merge::{merge, MergeArgs};
pub use mixes::{mixes_cmd, MixesArgs};
pub use perf::{run as perf, PerfArgs};
pub use shrink::{shrink, ShrinkArgs};

/// Writes `line` and a newline to standard output (see `out!`): a closed
/// pipe drops it quietly; another write error is told on stderr.
pub fn print_line(line: &str) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    match writeln!(o, "{line}").and_then(|()| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("faultline: cannot write to standard output: {e}")
        }
        _ => {}
    }
}
