//! The durable state of a raftkv server on turmoil's simulated disk.
//!
//! * `raft.log`: an append-only file of records framed as the ZAB node
//!   frames its own (`[len][crc32][postcard]`,
//!   `faultline_node::disk::record`): entries (protobuf-encoded, as
//!   raft-rs defines them), each replacing whatever the log held at its
//!   index and after; hard states (term, vote, commit), the last one
//!   holding; and a base: the log restarts after that index (a snapshot
//!   from the leader was installed). A torn or corrupt tail ends the file
//!   and is cut off when it is read back. Appends are durable only after
//!   [`Disk::sync`]: a crash in between loses them (turmoil drops unsynced
//!   writes).
//! * `snapshot`: the latest snapshot (the state machine at an index, with
//!   the configuration), one record written atomically: to a temporary
//!   file, fsynced, renamed over the old one, the directory fsynced.
//!
//! A server's own snapshots do not shorten its log file (as the ZAB node
//! keeps its log with autopurge off): the file holds every entry since the
//! last installed snapshot, and the bench judges durability from it.

use faultline_node::disk::{parse, record, sync_parent};
use protobuf::Message as _;
use raft::prelude::{Entry, HardState, Snapshot};
use serde::{Deserialize, Serialize};
use std::io::{self, Write as _};
use std::path::PathBuf;
use turmoil::fs::shim::std::fs::{self as sfs, File, OpenOptions};

/// One record of the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Record {
    /// Entries, protobuf-encoded, in index order.
    Entries(Vec<Vec<u8>>),
    /// term, vote, commit.
    HardState(u64, u64, u64),
    /// The log restarts after this index.
    Base(u64),
}

/// What the file holds, read back as a restart reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Image {
    /// The log, in index order from `base + 1`.
    pub entries: Vec<Entry>,
    /// The index the log restarts after (an installed snapshot's; 0).
    pub base: u64,
    /// The latest snapshot written, if any.
    pub snapshot: Option<Snapshot>,
    /// The last hard state written.
    pub hard_state: HardState,
}

/// The open file.
pub struct Disk {
    dir: PathBuf,
    file: File,
    /// Bytes appended since the last sync.
    dirty: bool,
}

impl Disk {
    /// Opens (creating if needed) `dir/raft.log` and reads it back; a torn
    /// tail is cut off.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<(Disk, Image)> {
        let dir = dir.into();
        if !sfs::exists(&dir) {
            sfs::create_dir_all(&dir)?;
            sync_parent(&dir)?;
        }
        let path = dir.join("raft.log");
        let existed = sfs::exists(&path);
        let bytes = if existed {
            sfs::read(&path)?
        } else {
            Vec::new()
        };
        let (mut image, at) = read_back(&bytes)?;
        let snap_path = dir.join("snapshot");
        if sfs::exists(&snap_path) {
            let bytes = sfs::read(&snap_path)?;
            let torn = || io::Error::new(io::ErrorKind::InvalidData, "a torn snapshot file");
            let (body, _) = parse::<Vec<u8>>(&bytes, 0).ok_or_else(torn)?;
            let snap = Snapshot::parse_from_bytes(&body)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            image.snapshot = Some(snap);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        if at < bytes.len() {
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        if !existed {
            file.sync_all()?;
            sfs::sync_dir(&dir)?;
        }
        Ok((
            Disk {
                dir,
                file,
                dirty: false,
            },
            image,
        ))
    }

    /// Appends `entries` (each replacing the log from its index on) and
    /// the hard state, if any, without syncing.
    pub fn append(&mut self, entries: &[Entry], hs: Option<&HardState>) -> io::Result<()> {
        let mut buf = Vec::new();
        if !entries.is_empty() {
            let bodies = entries
                .iter()
                .map(|e| e.write_to_bytes().expect("entries encode"))
                .collect();
            buf.extend(record(&Record::Entries(bodies)));
        }
        if let Some(hs) = hs {
            buf.extend(record(&Record::HardState(hs.term, hs.vote, hs.commit)));
        }
        if !buf.is_empty() {
            self.file.write_all(&buf)?;
            self.dirty = true;
        }
        Ok(())
    }

    /// Writes `snap` as the latest snapshot, atomically and durably.
    pub fn write_snapshot(&mut self, snap: &Snapshot) -> io::Result<()> {
        let body = snap.write_to_bytes().expect("snapshots encode");
        let tmp = self.dir.join("snapshot.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&record(&body))?;
        f.sync_all()?;
        sfs::rename(&tmp, self.dir.join("snapshot"))?;
        sfs::sync_dir(&self.dir)
    }

    /// Installs a leader's snapshot: written durably, then the log
    /// restarts after its index (the base record, synced with the next
    /// [`Disk::sync`]).
    pub fn install(&mut self, snap: &Snapshot) -> io::Result<()> {
        self.write_snapshot(snap)?;
        let base = Record::Base(snap.get_metadata().index);
        self.file.write_all(&record(&base))?;
        self.dirty = true;
        Ok(())
    }

    /// Whether appends wait for a sync.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Makes every append so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_all()?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// The image `bytes` hold and where the last whole record ends.
fn read_back(bytes: &[u8]) -> io::Result<(Image, usize)> {
    let mut image = Image::default();
    let mut at = 0;
    while let Some((r, next)) = parse::<Record>(bytes, at) {
        match r {
            Record::Entries(bodies) => {
                for b in bodies {
                    let e = Entry::parse_from_bytes(&b)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                    assert!(e.index > image.base, "entry {} before the base", e.index);
                    let keep = (e.index - image.base - 1) as usize;
                    assert!(
                        keep <= image.entries.len(),
                        "entry {} after a log of {} from {}",
                        e.index,
                        image.entries.len(),
                        image.base
                    );
                    image.entries.truncate(keep);
                    image.entries.push(e);
                }
            }
            Record::Base(index) => {
                image.entries.clear();
                image.base = index;
            }
            Record::HardState(term, vote, commit) => {
                image.hard_state.term = term;
                image.hard_state.vote = vote;
                image.hard_state.commit = commit;
            }
        }
        at = next;
    }
    Ok((image, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_later_entry_replaces_the_log_from_its_index_and_a_torn_tail_ends_it() {
        let mut bytes = Vec::new();
        let es: Vec<Vec<u8>> = [entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]
            .iter()
            .map(|e| e.write_to_bytes().unwrap())
            .collect();
        bytes.extend(record(&Record::Entries(es)));
        bytes.extend(record(&Record::HardState(2, 3, 1)));
        let again = vec![entry(2, 2, b"B").write_to_bytes().unwrap()];
        bytes.extend(record(&Record::Entries(again)));
        let whole = bytes.len();
        bytes.extend(&record(&Record::HardState(9, 9, 9))[..5]);
        let (image, at) = read_back(&bytes).unwrap();
        assert_eq!(at, whole);
        assert_eq!(image.entries, vec![entry(1, 1, b"a"), entry(2, 2, b"B")]);
        assert_eq!(
            (
                image.hard_state.term,
                image.hard_state.vote,
                image.hard_state.commit
            ),
            (2, 3, 1)
        );
    }
}
