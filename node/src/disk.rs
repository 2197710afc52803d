//! The durable state of a server on turmoil's simulated disk (ZAB.md §1).
//!
//! Files under the data directory:
//! * `log`: txn records `[len u32][crc32 u32][postcard Txn]`, appended in
//!   zxid order; a torn or corrupt tail record ends the log (and is cut off
//!   at recovery), as ZooKeeper's `FileTxnLog` treats it.
//! * `snapshot`: one record holding a `Store`, written atomically.
//! * `epochs`: one record holding `(acceptedEpoch, currentEpoch)`, written
//!   atomically.
//!
//! Atomic writes go to a temporary file, which is fsynced, renamed over the
//! target, and made durable with an fsync of the directory. Appends are not
//! synced until [`Disk::sync`]: a crash in between loses them, as on a real
//! disk. (turmoil: `sim.crash` drops unsynced writes and files never synced
//! into their directory.)

use crate::core::Durable;
use crate::types::{Store, Txn, Zxid};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use turmoil::fs::shim::std::fs::{self as sfs, File, OpenOptions};

/// One server's files.
pub struct Disk {
    dir: PathBuf,
    log: File,
    /// (zxid, byte offset) of every record in `log`.
    index: Vec<(Zxid, u64)>,
    len: u64,
    /// Bytes appended since the last sync.
    dirty: bool,
}

fn record<T: Serialize>(v: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(v).expect("our records always serialize");
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses the record at `at`; `None` for a torn or corrupt one.
fn parse<T: DeserializeOwned>(bytes: &[u8], at: usize) -> Option<(T, usize)> {
    let head = bytes.get(at..at + 8)?;
    let len = u32::from_be_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(head[4..].try_into().ok()?);
    let body = bytes.get(at + 8..at + 8 + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let v = postcard::from_bytes(body).ok()?;
    Some((v, at + 8 + len))
}

fn read_or_empty(p: &Path) -> io::Result<Vec<u8>> {
    match sfs::read(p) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

impl Disk {
    /// Opens (creating if needed) the data directory and reads back the
    /// durable state. A torn tail of the log is cut off.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<(Disk, Durable)> {
        let dir = dir.into();
        if !sfs::exists(&dir) {
            sfs::create_dir_all(&dir)?;
            sync_parent(&dir)?;
        }
        let epochs: (u64, u64) = parse(&read_or_empty(&dir.join("epochs"))?, 0)
            .map(|(e, _)| e)
            .unwrap_or((0, 0));
        let snapshot: Store = parse(&read_or_empty(&dir.join("snapshot"))?, 0)
            .map(|(s, _)| s)
            .unwrap_or_default();
        let log_path = dir.join("log");
        let bytes = read_or_empty(&log_path)?;
        let mut at = 0;
        let mut log = Vec::new();
        let mut index = Vec::new();
        while let Some((txn, next)) = parse::<Txn>(&bytes, at) {
            index.push((txn.zxid, at as u64));
            if txn.zxid > snapshot.applied {
                log.push(txn);
            }
            at = next;
        }
        let existed = sfs::exists(&log_path);
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&log_path)?;
        if (at as u64) < bytes.len() as u64 {
            log_file.set_len(at as u64)?;
            log_file.sync_all()?;
        }
        if !existed {
            log_file.sync_all()?;
            sfs::sync_dir(&dir)?;
        }
        let disk = Disk {
            dir,
            log: log_file,
            index,
            len: at as u64,
            dirty: false,
        };
        let durable = Durable {
            accepted_epoch: epochs.0,
            current_epoch: epochs.1,
            snapshot,
            log,
        };
        Ok((disk, durable))
    }

    /// Appends txns without syncing them.
    pub fn append(&mut self, txns: &[Txn]) -> io::Result<()> {
        let mut buf = Vec::new();
        for t in txns {
            if let Some((last, _)) = self.index.last() {
                assert!(t.zxid > *last, "log records are in zxid order");
            }
            self.index.push((t.zxid, self.len + buf.len() as u64));
            buf.extend_from_slice(&record(t));
        }
        self.log.write_all(&buf)?;
        self.len += buf.len() as u64;
        self.dirty = !buf.is_empty() || self.dirty;
        Ok(())
    }

    /// Whether appends are waiting for a sync.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Makes every append so far durable; returns the last zxid logged.
    pub fn sync(&mut self) -> io::Result<Zxid> {
        self.log.sync_all()?;
        self.dirty = false;
        Ok(self.last())
    }

    /// The last zxid in the log file.
    pub fn last(&self) -> Zxid {
        self.index.last().map_or(Zxid(0), |(z, _)| *z)
    }

    /// Drops records after `to`, durably.
    pub fn truncate(&mut self, to: Zxid) -> io::Result<()> {
        let keep = self.index.partition_point(|(z, _)| *z <= to);
        if keep < self.index.len() {
            let at = self.index[keep].1;
            self.index.truncate(keep);
            self.log.set_len(at)?;
            self.len = at;
        }
        self.log.sync_all()?;
        self.dirty = false;
        Ok(())
    }

    /// Writes the epoch files atomically.
    pub fn write_epochs(&mut self, accepted: u64, current: u64) -> io::Result<()> {
        self.write_atomic("epochs", &record(&(accepted, current)))
    }

    /// Writes a snapshot atomically, then rewrites the log without the
    /// records it covers.
    pub fn write_snapshot(&mut self, store: &Store) -> io::Result<()> {
        self.write_atomic("snapshot", &record(store))?;
        let keep = self.index.partition_point(|(z, _)| *z <= store.applied);
        if keep == 0 {
            return Ok(());
        }
        // Make pending appends durable first: the rewrite reads the file.
        self.log.sync_all()?;
        let bytes = sfs::read(self.dir.join("log"))?;
        let from = self.index.get(keep).map_or(bytes.len() as u64, |(_, o)| *o) as usize;
        let rest = &bytes[from..self.len as usize];
        let tmp = self.dir.join("log.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(rest)?;
            f.sync_all()?;
        }
        sfs::rename(&tmp, self.dir.join("log"))?;
        sfs::sync_dir(&self.dir)?;
        let shift = from as u64;
        self.index.drain(..keep);
        for (_, o) in self.index.iter_mut() {
            *o -= shift;
        }
        self.len -= shift;
        self.log = OpenOptions::new()
            .append(true)
            .read(true)
            .open(self.dir.join("log"))?;
        self.dirty = false;
        Ok(())
    }

    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        sfs::rename(&tmp, self.dir.join(name))?;
        sfs::sync_dir(&self.dir)
    }
}

fn sync_parent(dir: &Path) -> io::Result<()> {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => sfs::sync_dir(p),
        _ => Ok(()),
    }
}
