//! Identifiers: server ids and zxids.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A server id (ZooKeeper's `myid`), 1-based.
pub type Sid = u64;

/// A transaction id: `epoch << 32 | counter`. Counter 0 is an epoch marker
/// (no transaction); the first transaction of an epoch has counter 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid of `epoch` and `counter`.
    pub fn new(epoch: u64, counter: u64) -> Zxid {
        assert!(
            epoch < (1 << 32) && counter < (1 << 32),
            "zxid parts fit 32 bits"
        );
        Zxid(epoch << 32 | counter)
    }

    /// The epoch part.
    pub fn epoch(self) -> u64 {
        self.0 >> 32
    }

    /// The counter part.
    pub fn counter(self) -> u64 {
        self.0 & 0xffff_ffff
    }

    /// The next zxid in the same epoch.
    pub fn next(self) -> Zxid {
        assert!(self.counter() < 0xffff_fffe, "zxid counter exhausted");
        Zxid(self.0 + 1)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch(), self.counter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_parts() {
        let z = Zxid::new(3, 7);
        assert_eq!((z.epoch(), z.counter()), (3, 7));
        assert!(Zxid::new(2, 100) < Zxid::new(3, 1));
        assert_eq!(z.next(), Zxid::new(3, 8));
    }
}
