//! The durable state of a server on turmoil's simulated disk (ZAB.md §1).
//!
//! Files under the data directory:
//! * `log.G`: txn records `[len u32][crc32 u32][postcard Txn]`, appended in
//!   zxid order; a torn or corrupt tail record ends the log (and is cut off
//!   at recovery), as ZooKeeper's `FileTxnLog` treats it. `G` is the log's
//!   generation: a snapshot installed from a leader (SNAP) starts a new,
//!   empty log, since the old one may hold orphans.
//! * `snapshot`: one record holding a [`SnapshotFile`] (the `Store`, the
//!   current log generation and the zxid that generation starts after),
//!   written atomically. It is the commit point of an install.
//! * `epochs`: one record holding `(acceptedEpoch, currentEpoch)`, written
//!   atomically.
//!
//! A snapshot the server takes of its own state does not compact the log:
//! like ZooKeeper with autopurge off (its default), every txn of the current
//! generation stays on disk, so the bench can judge durability from the
//! files themselves ([`DiskImage`]).
//!
//! Atomic writes go to a temporary file, which is fsynced, renamed over the
//! target, and made durable with an fsync of the directory. Appends are not
//! synced until [`Disk::sync`]: a crash in between loses them, as on a real
//! disk. (turmoil: `sim.crash` drops unsynced writes and files never synced
//! into their directory.)
//!
//! Every change to what the log holds is also written to a journal
//! ([`Disk::take_journal`]): the disk layer's own record of when each entry
//! was appended and when it became durable, for checks that must not rely
//! on the protocol core's account of itself.

use crate::core::Durable;
use crate::{Store, Txn, Zxid};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use turmoil::fs::shim::std::fs::{self as sfs, File, OpenOptions};

/// The content of the `snapshot` file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// The state at `store.applied`.
    pub store: Store,
    /// The generation of the log that continues this snapshot.
    pub generation: u64,
    /// The log of this generation holds txns after this zxid only (0: the
    /// server's whole history; else the zxid of the installed snapshot).
    pub base: Zxid,
}

/// Everything a server's files hold, read back as a restart would read
/// them (torn tails cut off).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskImage {
    /// acceptedEpoch.
    pub accepted_epoch: u64,
    /// currentEpoch.
    pub current_epoch: u64,
    /// The snapshot file.
    pub snapshot: SnapshotFile,
    /// Every record of the current log generation, in zxid order (records
    /// at or below the snapshot included).
    pub log: Vec<Txn>,
}

impl DiskImage {
    /// The state a restart would recover: the snapshot, then the log
    /// records after it.
    pub fn durable(&self) -> Durable {
        let s = self.snapshot.store.applied;
        Durable {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            snapshot: self.snapshot.store.clone(),
            log: self.log.iter().filter(|t| t.zxid > s).cloned().collect(),
        }
    }
}

/// One change to what the log holds, as the disk layer saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskEvent {
    /// The files were opened after a (re)start: these records are on disk
    /// (what survived the crash), all durable.
    Opened {
        /// The zxid of every record of the log, in order.
        log: Vec<Zxid>,
        /// The log generation starts after this zxid (state up to it is in
        /// the snapshot).
        base: Zxid,
    },
    /// Records were appended (not yet durable).
    Appended {
        /// Their zxids, in order.
        zxids: Vec<Zxid>,
    },
    /// An fsync completed: every record through `through` is durable.
    Synced {
        /// Last durable record.
        through: Zxid,
    },
    /// Records after `to` were cut off, durably.
    Truncated {
        /// Last record kept.
        to: Zxid,
    },
    /// A snapshot at `base` from a leader replaced the state; the log was
    /// started anew (empty).
    Installed {
        /// The snapshot's zxid.
        base: Zxid,
    },
    /// The epoch file was replaced, durably.
    Epochs {
        /// acceptedEpoch written.
        accepted: u64,
        /// currentEpoch written.
        current: u64,
    },
}

/// One server's files.
pub struct Disk {
    dir: PathBuf,
    generation: u64,
    base: Zxid,
    log: File,
    /// (zxid, byte offset) of every record in `log`.
    index: Vec<(Zxid, u64)>,
    len: u64,
    /// Bytes appended since the last sync.
    dirty: bool,
    journal: Vec<DiskEvent>,
}

/// `v` framed as a file record: `[len u32][crc32 u32][postcard body]`
/// (shared with the other systems' files, e.g. `faultline_raftkv`).
pub fn record<T: Serialize>(v: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(v).expect("our records always serialize");
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses the record at `at` and where the next begins; `None` for a torn
/// or corrupt one.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], at: usize) -> Option<(T, usize)> {
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

fn log_name(generation: u64) -> String {
    format!("log.{generation}")
}

/// The records of a log file and the length of its valid prefix.
fn parse_log(bytes: &[u8]) -> (Vec<(Txn, u64)>, usize) {
    let mut at = 0;
    let mut out = Vec::new();
    while let Some((txn, next)) = parse::<Txn>(bytes, at) {
        out.push((txn, at as u64));
        at = next;
    }
    (out, at)
}

/// The epoch and snapshot files of a data directory.
fn read_meta(dir: &Path) -> io::Result<((u64, u64), SnapshotFile)> {
    let epochs = parse(&read_or_empty(&dir.join("epochs"))?, 0)
        .map(|(e, _)| e)
        .unwrap_or((0, 0));
    let snapshot: SnapshotFile = parse(&read_or_empty(&dir.join("snapshot"))?, 0)
        .map(|(s, _)| s)
        .unwrap_or_default();
    Ok((epochs, snapshot))
}

fn image(epochs: (u64, u64), snapshot: SnapshotFile, log: Vec<Txn>) -> DiskImage {
    DiskImage {
        accepted_epoch: epochs.0,
        current_epoch: epochs.1,
        snapshot,
        log,
    }
}

impl Disk {
    /// Opens (creating if needed) the data directory and reads back what
    /// its files hold (the durable state is [`DiskImage::durable`]). A torn
    /// tail of the log is cut off; a log of an older generation (left by a
    /// crash during an install) is removed.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<(Disk, DiskImage)> {
        let dir = dir.into();
        if !sfs::exists(&dir) {
            sfs::create_dir_all(&dir)?;
            sync_parent(&dir)?;
        }
        let (epochs, snapshot) = read_meta(&dir)?;
        let generation = snapshot.generation;
        if generation > 0 && sfs::exists(dir.join(log_name(generation - 1))) {
            sfs::remove_file(dir.join(log_name(generation - 1)))?;
            sfs::sync_dir(&dir)?;
        }
        let log_path = dir.join(log_name(generation));
        let bytes = read_or_empty(&log_path)?;
        let (records, at) = parse_log(&bytes);
        let index: Vec<(Zxid, u64)> = records.iter().map(|(t, o)| (t.zxid, *o)).collect();
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
        let base = snapshot.base;
        let log = index.iter().map(|(z, _)| *z).collect();
        let disk = Disk {
            dir,
            generation,
            base,
            log: log_file,
            index,
            len: at as u64,
            dirty: false,
            journal: vec![DiskEvent::Opened { log, base }],
        };
        let txns = records.into_iter().map(|(t, _)| t).collect();
        Ok((disk, image(epochs, snapshot, txns)))
    }

    /// Appends txns without syncing them.
    pub fn append(&mut self, txns: &[Txn]) -> io::Result<()> {
        let mut buf = Vec::new();
        for t in txns {
            let last = self.index.last().map_or(self.base, |(z, _)| *z);
            assert!(t.zxid > last, "log records are in zxid order");
            self.index.push((t.zxid, self.len + buf.len() as u64));
            buf.extend_from_slice(&record(t));
        }
        self.log.write_all(&buf)?;
        self.len += buf.len() as u64;
        if !buf.is_empty() {
            self.dirty = true;
            let zxids = txns.iter().map(|t| t.zxid).collect();
            self.journal.push(DiskEvent::Appended { zxids });
        }
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
        self.journal.push(DiskEvent::Synced {
            through: self.last(),
        });
        Ok(self.last())
    }

    /// The last zxid in the log file (the generation's base when empty).
    pub fn last(&self) -> Zxid {
        self.index.last().map_or(self.base, |(z, _)| *z)
    }

    /// Drops records after `to`, durably.
    pub fn truncate(&mut self, to: Zxid) -> io::Result<()> {
        assert!(to >= self.base, "cannot truncate below the log's base");
        let keep = self.index.partition_point(|(z, _)| *z <= to);
        if keep < self.index.len() {
            let at = self.index[keep].1;
            self.index.truncate(keep);
            self.log.set_len(at)?;
            self.len = at;
        }
        self.log.sync_all()?;
        self.dirty = false;
        self.journal.push(DiskEvent::Truncated { to });
        Ok(())
    }

    /// Writes the epoch files atomically.
    pub fn write_epochs(&mut self, accepted: u64, current: u64) -> io::Result<()> {
        self.write_atomic("epochs", &record(&(accepted, current)))?;
        self.journal.push(DiskEvent::Epochs { accepted, current });
        Ok(())
    }

    /// Writes a snapshot of this server's own state atomically. The log is
    /// kept whole (no compaction).
    pub fn write_snapshot(&mut self, store: &Store) -> io::Result<()> {
        let file = SnapshotFile {
            store: store.clone(),
            generation: self.generation,
            base: self.base,
        };
        self.write_atomic("snapshot", &record(&file))
    }

    /// Installs a snapshot received from a leader (SNAP): a new, empty log
    /// generation is created, the snapshot naming it is written atomically
    /// (the commit point: a crash before it keeps the old state and log, a
    /// crash after it the new ones), then the old log is removed.
    pub fn install_snapshot(&mut self, store: &Store) -> io::Result<()> {
        let generation = self.generation + 1;
        let path = self.dir.join(log_name(generation));
        let log = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(&path)?;
        log.sync_all()?;
        sfs::sync_dir(&self.dir)?;
        let file = SnapshotFile {
            store: store.clone(),
            generation,
            base: store.applied,
        };
        self.write_atomic("snapshot", &record(&file))?;
        sfs::remove_file(self.dir.join(log_name(self.generation)))?;
        sfs::sync_dir(&self.dir)?;
        self.generation = generation;
        self.base = store.applied;
        self.log = OpenOptions::new().append(true).read(true).open(&path)?;
        self.index.clear();
        self.len = 0;
        self.dirty = false;
        self.journal.push(DiskEvent::Installed { base: self.base });
        Ok(())
    }

    /// The journal entries since the last call, in order.
    pub fn take_journal(&mut self) -> Vec<DiskEvent> {
        std::mem::take(&mut self.journal)
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

/// Makes `dir`'s entry in its parent durable (after creating it).
pub fn sync_parent(dir: &Path) -> io::Result<()> {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => sfs::sync_dir(p),
        _ => Ok(()),
    }
}
