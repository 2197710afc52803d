//! The engine of faultline: one run (seed -> simulation -> history ->
//! verdict), campaigns of runs in child processes under a watchdog, run
//! directories, `summary.json` and JUnit, the bug-detection matrix, the
//! nemesis mixes, merging sharded campaigns, and the performance figures.
//! The `faultline` binary is its command line.

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
mod perf_node;
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
