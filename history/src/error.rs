//! Errors: malformed input names its file and line.

use std::fmt;

/// A history that breaks Jepsen's rules (see [`crate::History::new`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("op {index}: {message}")]
pub struct HistoryError {
    /// Index of the offending op.
    pub index: usize,
    /// What is wrong, in one line.
    pub message: String,
}

/// Input that cannot be read as a history. `Display` gives one line of the
/// form `FILE:LINE: message` (or `FILE: message` when no line applies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file, when reading from one.
    pub path: Option<String>,
    /// 1-based line number, or 0 when the error concerns the whole input.
    pub line: usize,
    /// What is wrong, in one line.
    pub message: String,
}

impl ParseError {
    /// An error at a line (0 = the whole input), without a path yet.
    pub fn at(line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            path: None,
            line,
            message: message.into(),
        }
    }

    /// Attaches the file name.
    pub fn with_path(mut self, path: &str) -> ParseError {
        self.path = Some(path.to_string());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_deref().unwrap_or("<input>");
        // Keep it to one line whatever the message holds.
        let msg = self.message.replace(['\n', '\r'], " ");
        if self.line > 0 {
            write!(f, "{path}:{}: {msg}", self.line)
        } else {
            write!(f, "{path}: {msg}")
        }
    }
}

impl std::error::Error for ParseError {}
