//! The in-memory log raft-rs reads (its `Storage`), the mirror of the
//! durable one: the latest snapshot (with the state machine in it), the
//! entries after it, the hard state and the configuration. raft-rs's own
//! `MemStorage` keeps no snapshot data and cannot compact with a snapshot
//! of the application's, hence this one.

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// The log, from the latest snapshot on.
#[derive(Clone, Debug, Default)]
pub struct LogStore {
    hard: HardState,
    conf: ConfState,
    /// The latest snapshot (index 0: none yet); its data is the state
    /// machine at its index.
    snap: Snapshot,
    /// The entries after the snapshot: `entries[0].index == snap index + 1`.
    entries: Vec<Entry>,
    /// raft-rs asked for a snapshot the latest one could not serve.
    wanted: std::cell::Cell<bool>,
}

impl LogStore {
    /// An empty log with the initial configuration every server shares.
    pub fn new(voters: &[u64], learners: &[u64]) -> LogStore {
        let conf = ConfState::from((voters.to_vec(), learners.to_vec()));
        let mut snap = Snapshot::default();
        snap.mut_metadata().set_conf_state(conf.clone());
        LogStore {
            conf,
            snap,
            ..LogStore::default()
        }
    }

    /// The log a server's files hold: the snapshot (if any, replacing the
    /// initial configuration), the entries after it, the hard state.
    pub fn restored(
        voters: &[u64],
        learners: &[u64],
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard: &HardState,
    ) -> LogStore {
        let mut s = LogStore::new(voters, learners);
        if let Some(snap) = snapshot {
            s.conf = snap.get_metadata().get_conf_state().clone();
            s.snap = snap.clone();
        }
        let base = s.snap_index();
        let after: Vec<Entry> = entries.iter().filter(|e| e.index > base).cloned().collect();
        s.append(&after);
        s.hard = hard.clone();
        s.hard.commit = s.hard.commit.max(base);
        s
    }

    /// The latest snapshot's index (0: none).
    pub fn snap_index(&self) -> u64 {
        self.snap.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snap_index() + 1
    }

    fn last(&self) -> u64 {
        self.snap_index() + self.entries.len() as u64
    }

    /// The term of entry `index`, if the log still knows it.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.snap_index() {
            return Some(self.snap.get_metadata().term);
        }
        let i = index.checked_sub(self.first())? as usize;
        self.entries.get(i).map(|e| e.term)
    }

    /// Appends `ents`, which replace any entries at their indexes and
    /// after. They must follow the snapshot and leave no gap.
    pub fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        assert!(
            first.index > self.snap_index() && first.index <= self.last() + 1,
            "entries from {} after a log of {}..={}",
            first.index,
            self.first(),
            self.last()
        );
        self.entries.truncate((first.index - self.first()) as usize);
        self.entries.extend_from_slice(ents);
    }

    /// The new hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard = hs;
    }

    /// The commit index raft-rs advanced to.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard.commit = commit;
    }

    /// The configuration a conf change applied.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf = cs;
    }

    /// The configuration now.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }

    /// A snapshot from the leader replaces the log and the configuration.
    pub fn install(&mut self, snap: &Snapshot) {
        let meta = snap.get_metadata();
        self.entries.clear();
        self.conf = meta.get_conf_state().clone();
        self.hard.commit = self.hard.commit.max(meta.index);
        self.hard.term = self.hard.term.max(meta.term);
        self.snap = snap.clone();
    }

    /// This server's own snapshot of its applied state: the entries up to
    /// its index go.
    pub fn compact(&mut self, snap: &Snapshot) {
        let index = snap.get_metadata().index;
        assert!(
            index > self.snap_index() && index <= self.last(),
            "a snapshot at {index} of a log of {}..={}",
            self.first(),
            self.last()
        );
        self.entries.drain(..(index - self.snap_index()) as usize);
        self.snap = snap.clone();
    }

    /// Whether raft-rs asked for a snapshot the latest one could not serve
    /// (its configuration lacks the recipient) since the last call.
    pub fn wanted(&self) -> bool {
        self.wanted.replace(false)
    }

    /// Entries in memory.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is in memory.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard.clone(),
            conf_state: self.conf.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let (lo, hi) = (
            (low - self.first()) as usize,
            (high - self.first()) as usize,
        );
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snap_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // A recipient the snapshot's configuration lacks would refuse it
        // (a joiner added after it was taken): the core takes a fresh one
        // and raft-rs sends it on a later try.
        let cs = self.snap.get_metadata().get_conf_state();
        let knows = [
            &cs.voters,
            &cs.learners,
            &cs.voters_outgoing,
            &cs.learners_next,
        ]
        .iter()
        .any(|ids| ids.contains(&to));
        if self.snap_index() < request_index || !knows {
            self.wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snap.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn snapshot(index: u64, term: u64, voters: &[u64]) -> Snapshot {
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.mut_metadata()
            .set_conf_state(ConfState::from((voters.to_vec(), vec![])));
        s.data = b"state".to_vec().into();
        s
    }

    #[test]
    fn appends_replace_the_tail_and_a_snapshot_compacts() {
        let mut s = LogStore::new(&[1, 2, 3], &[]);
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        s.append(&[entry(3, 2), entry(4, 2)]);
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(3).unwrap(), 2);
        s.compact(&snapshot(2, 1, &[1, 2, 3]));
        assert_eq!(s.first_index().unwrap(), 3);
        assert_eq!(s.term(2).unwrap(), 1);
        assert!(s.term(1).is_err());
        let ctx = GetEntriesContext::empty(false);
        assert!(s.entries(2, 4, None, ctx).is_err());
        let ctx = GetEntriesContext::empty(false);
        assert_eq!(
            s.entries(3, 5, None, ctx).unwrap(),
            vec![entry(3, 2), entry(4, 2)]
        );
        assert_eq!(&s.snapshot(0, 3).unwrap().data[..], b"state");
        // Server 9 joined after it was taken: a fresh one is wanted.
        assert!(!s.wanted());
        assert!(s.snapshot(0, 9).is_err());
        assert!(s.wanted() && !s.wanted());
    }

    #[test]
    fn an_installed_snapshot_replaces_log_and_configuration() {
        let mut s = LogStore::new(&[1, 2, 3], &[]);
        s.append(&[entry(1, 1), entry(2, 1)]);
        s.install(&snapshot(10, 3, &[1, 2, 3, 4]));
        assert_eq!(s.first_index().unwrap(), 11);
        assert_eq!(s.last_index().unwrap(), 10);
        assert_eq!(
            s.initial_state().unwrap().conf_state.voters,
            vec![1, 2, 3, 4]
        );
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 10);
        s.append(&[entry(11, 3)]);
        let r = LogStore::restored(
            &[1, 2, 3],
            &[],
            Some(&snapshot(10, 3, &[1, 2, 3, 4])),
            &[entry(9, 2), entry(10, 3), entry(11, 3)],
            &HardState::default(),
        );
        assert_eq!(
            (r.first_index().unwrap(), r.last_index().unwrap()),
            (11, 11)
        );
        assert_eq!(r.initial_state().unwrap().hard_state.commit, 10);
    }
}
