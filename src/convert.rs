//! `faultline convert FILE --to jsonl|edn`: rewrite a history in another
//! format, after reading and validating it like `check` does.

use clap::{Args, ValueEnum};
use faultline_history::{edn, jsonl, read_file, ReadOptions};

use crate::check::FormatArg;

/// Formats faultline writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutFormat {
    /// faultline JSON lines.
    Jsonl,
    /// Jepsen EDN, one op map per line (keyed ops as jepsen.independent
    /// [key value] pairs).
    Edn,
}

/// Arguments of `faultline convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The history file to read.
    pub file: String,
    /// The format to write.
    #[arg(long)]
    pub to: OutFormat,
    /// The input format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Input values are jepsen.independent [key value] pairs.
    #[arg(long)]
    pub independent: bool,
    /// Write here instead of stdout (written whole or not at all).
    #[arg(long, short)]
    pub output: Option<String>,
}

/// Runs the command.
pub fn run(a: ConvertArgs) -> anyhow::Result<u8> {
    let opts = ReadOptions {
        format: a.format.into(),
        independent: a.independent.then_some(true),
    };
    let (h, _) = read_file(&a.file, opts)?;
    let mut buf = Vec::new();
    match a.to {
        OutFormat::Jsonl => jsonl::write_ops(&mut buf, h.ops())?,
        OutFormat::Edn => edn::write_ops(&mut buf, h.ops())?,
    }
    match a.output {
        None => crate::stdout(&buf)?,
        Some(path) => faultline_bench::output::write(std::path::Path::new(&path), &buf)?,
    }
    Ok(0)
}
