//! Ctrl-C during a campaign: no new run starts, the runs under way are
//! stopped, and the campaign writes the summary, page and JUnit file of
//! the seeds that finished (never a run cut short, which is neither a
//! verdict nor a finding).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CATCH: Once = Once::new();

/// Catches Ctrl-C (SIGINT) from now on in this process: it only sets the
/// flag [`interrupted`] reads. Calling it again does nothing.
pub fn catch() {
    CATCH.call_once(|| {
        // If a handler cannot be installed, Ctrl-C keeps its default
        // (the process ends), which loses the summary but nothing else.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}

/// Whether Ctrl-C was pressed since [`catch`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The error of a run stopped by Ctrl-C: the campaign leaves it out.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}
