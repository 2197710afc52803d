//! What a running server shows the harness (tests, the bench, reports):
//! its [`Status`], refreshed every tick, and a [`Probe`] with its trace,
//! protocol events, message counts and the evidence its host recorded.
//! Written by the shell, read by the harness; the protocol core never
//! sees it.

use crate::core::{ProtocolEvent, TraceEvent};
use crate::disk::DiskImage;
use crate::evidence::{Evidence, Record};
use crate::msg::PeerState;
use crate::{Sid, Zxid};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a running server shows the harness (tests, the bench, reports).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Whether the host is running (false after a crash until restart).
    pub up: bool,
    /// Its role.
    pub role: Option<PeerState>,
    /// The leader it follows or is.
    pub leader: Option<Sid>,
    /// Whether it serves clients.
    pub serving: bool,
    /// Last committed zxid.
    pub last_committed: Zxid,
    /// Last logged zxid.
    pub last_logged: Zxid,
    /// Digest of the applied store.
    pub digest: u64,
    /// Its voters, as it knows them.
    pub voters: Vec<Sid>,
    /// Its current epoch (for a leader: the epoch it leads, once decided).
    pub epoch: u64,
    /// The sizes of its in-memory tables.
    pub footprint: crate::Footprint,
}

/// Shared view of one server, written by its host and read by the harness.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    inner: Arc<Mutex<ProbeData>>,
}

#[derive(Debug, Default)]
pub(crate) struct ProbeData {
    pub(crate) status: Status,
    pub(crate) trace: Vec<(Duration, TraceEvent)>,
    pub(crate) events: Vec<(Duration, ProtocolEvent)>,
    pub(crate) messages_sent: u64,
    /// Messages sent per second of simulated time.
    pub(crate) messages_by_second: std::collections::BTreeMap<u64, u64>,
    /// The disk layer's journal and the ACKs and COMMITs sent, in the
    /// order they happened, across restarts.
    pub(crate) records: Vec<(Duration, Record)>,
    /// The last zxid a COMMIT or INFORM was recorded for.
    pub(crate) last_commit: Zxid,
    /// The last epoch an establishment was recorded for.
    pub(crate) last_established: u64,
    /// The files as the last start of the host read them.
    pub(crate) image: Option<(Duration, DiskImage)>,
}

impl Probe {
    /// The server's latest status.
    pub fn status(&self) -> Status {
        self.inner.lock().expect("probe").status.clone()
    }

    /// Every trace event so far, with the simulated time it happened
    /// (kept across restarts of the host).
    pub fn trace(&self) -> Vec<(Duration, TraceEvent)> {
        self.inner.lock().expect("probe").trace.clone()
    }

    /// The latest trace event (the core emits one whenever its role,
    /// leader or serving state changes, so unlike [`Probe::status`], which
    /// the host refreshes once a tick, it is current after every step).
    pub fn last_trace(&self) -> Option<(Duration, TraceEvent)> {
        self.inner.lock().expect("probe").trace.last().cloned()
    }

    /// Every protocol event so far, with the simulated time it happened.
    pub fn events(&self) -> Vec<(Duration, ProtocolEvent)> {
        self.inner.lock().expect("probe").events.clone()
    }

    /// Protocol messages sent so far.
    pub fn messages_sent(&self) -> u64 {
        self.inner.lock().expect("probe").messages_sent
    }

    /// Protocol messages sent per second of simulated time.
    pub fn messages_by_second(&self) -> Vec<(u64, u64)> {
        let d = self.inner.lock().expect("probe");
        d.messages_by_second.iter().map(|(s, n)| (*s, *n)).collect()
    }

    /// What the host sent and wrote, as the shell and the disk layer
    /// recorded it.
    pub fn evidence(&self) -> Evidence {
        let d = self.inner.lock().expect("probe");
        Evidence {
            records: d.records.clone(),
            image: d.image.clone(),
        }
    }

    /// The records of [`Probe::evidence`] made at or after `since`, in
    /// order (cheap for a recent `since`: a harness can call it after
    /// every step to see what a host just did).
    pub fn records_since(&self, since: Duration) -> Vec<(Duration, Record)> {
        let d = self.inner.lock().expect("probe");
        let from = d.records.partition_point(|(t, _)| *t < since);
        d.records[from..].to_vec()
    }

    /// When the host last read its files at a start.
    pub fn image_time(&self) -> Option<Duration> {
        self.inner
            .lock()
            .expect("probe")
            .image
            .as_ref()
            .map(|(t, _)| *t)
    }

    /// Marks the server down (the harness calls this when it crashes the
    /// host; the host marks itself up again when it restarts).
    pub fn mark_down(&self) {
        self.update(|d| d.status.up = false);
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut ProbeData)) {
        f(&mut self.inner.lock().expect("probe"));
    }
}
