//! What a server's host wrote and sent, as its disk layer and network
//! shell recorded it: the evidence durability is judged on, independent of
//! the protocol core's account of itself. Plain data; the shell fills it.

use crate::disk::{DiskEvent, DiskImage};
use crate::{Sid, Zxid};
use std::time::Duration;

/// One thing a host did that durability is judged on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The disk layer changed what the log holds.
    Disk(DiskEvent),
    /// The host sent an ACK for this zxid.
    Ack(Zxid),
    /// The host received an ACK for this zxid from this server.
    AckReceived(Sid, Zxid),
    /// The host sent its first COMMIT or INFORM for this zxid outside a
    /// learner's synchronization (in zxid order: a later one for an older
    /// zxid is not recorded). COMMITs between a DIFF/TRUNC/SNAP and the
    /// NEWLEADER that ends it carry the initial history, which is
    /// committed by establishment instead.
    Commit(Zxid),
    /// The host, as leader, sent this learner a DIFF, TRUNC or SNAP: the
    /// start of a synchronization for the epoch the host last accepted.
    SyncSent(Sid),
    /// The host sent its first UPTODATE of this epoch: as leader, it
    /// established the epoch, committing its initial history.
    Established(u64),
}

/// What the shell saw a server's host send and write, independently of
/// the protocol core's own account (see [`crate::shell::Probe::evidence`]).
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// The disk layer's journal and the ACKs and COMMITs sent, in the order
    /// they happened, with simulated times, across restarts.
    pub records: Vec<(Duration, Record)>,
    /// The server's files as its most recent start read them, and when.
    pub image: Option<(Duration, DiskImage)>,
}
