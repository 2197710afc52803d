//! The `faultline` command line. See the README for every command, flag,
//! format and exit code.

mod check;
mod convert;

use faultline_bench as bench;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for bad usage or bad input (DESIGN.md).
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "A deterministic, Jepsen-style fault-injection bench for replicated stores",
    after_help = "Exit codes: 0 valid, 1 a violation was found, 2 bad usage or input, 3 unknown (a budget ran out)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a fault campaign against the ZAB node (no flags: the default
    /// campaign).
    Bench(Box<bench::BenchArgs>),
    /// Merge the output directories of sharded `bench` runs.
    Merge(bench::MergeArgs),
    /// Run the bug detection matrix: each bug switch against the default
    /// campaign's seeds until a run catches it.
    Matrix(bench::MatrixArgs),
    /// Run the nemesis matrix: every fault kind alone and every pair of
    /// kinds over the same seeds, one line per mix.
    Mixes(bench::MixesArgs),
    /// Shrink a failing run (a seed with bench's flags, or a run folder):
    /// fewer fault episodes, a shorter chaos phase, fewer clients, keys
    /// and observers, no joiner, a lighter workload, still failing the
    /// same check.
    Shrink(Box<bench::ShrinkArgs>),
    /// Check a history (ours, Jepsen's or Porcupine's) for linearizability.
    Check(check::CheckArgs),
    /// Rewrite a history as JSON lines or Jepsen EDN.
    Convert(convert::ConvertArgs),
    /// Benchmark the checker: Porcupine's corpus and a generated history.
    Perf(bench::PerfArgs),
}

/// Writes `text` to standard output. A reader that went away (`faultline
/// check ... | head`) ends the output quietly, never a panic; other write
/// errors are reported.
pub fn stdout(text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_ref()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// A usage error from the argument parser on one line, like every other
/// error: its first line, and where to look for help.
fn usage_error(e: &clap::Error) -> String {
    // clap's first paragraph (the error, and what it names on the lines
    // after), joined; its usage and tips follow a blank line.
    let text = e.to_string();
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let first = first.join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    format!("{first} (see --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // help and version: stdout, exit 0
        Err(e) => {
            eprintln!("faultline: error: {}", usage_error(&e));
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let result = match cli.command {
        Command::Bench(a) => bench::bench(*a),
        Command::Merge(a) => bench::merge(a),
        Command::Matrix(a) => bench::matrix(a),
        Command::Mixes(a) => bench::mixes_cmd(a),
        Command::Shrink(a) => bench::shrink(*a),
        Command::Check(a) => check::run(a),
        Command::Perf(a) => bench::perf(a),
        Command::Convert(a) => convert::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("faultline: error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
