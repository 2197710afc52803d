//! The server's log and state as the core keeps them: appending,
//! truncating, applying committed txns, snapshots and the in-memory log's
//! trim, recovery from disk, and what an fsync report unlocks. The shell
//! carries out the `Persist` outputs (see the durability contract in
//! [`crate::core`]).

use crate::core::{Durable, Node, Persist, Role};
use crate::{Txn, Zxid};

impl Node {
    /// Appends txns to the in-memory log and asks the shell to write them.
    pub(crate) fn append(&mut self, txns: Vec<Txn>) {
        if txns.is_empty() {
            return;
        }
        for t in &txns {
            assert!(
                t.zxid > self.last_logged(),
                "log zxids increase: {} after {}",
                t.zxid,
                self.last_logged()
            );
            if let crate::TxnOp::Reconfig { voters, .. } = &t.op {
                self.pending_voters = Some(voters.iter().copied().collect());
            }
            self.log.push(t.clone());
        }
        self.persist(Persist::Append(txns));
    }

    /// Drops log entries after `to` and rebuilds the applied state from the
    /// snapshot and what is left of the log (a learner told to TRUNC).
    pub(crate) fn truncate(&mut self, to: Zxid) {
        assert!(
            to >= self.base.applied,
            "server {}: cannot truncate to {} into the snapshot at {} (certain {}, applied {})",
            self.cfg.sid,
            to,
            self.base.applied,
            self.certain,
            self.store.applied
        );
        self.log.retain(|t| t.zxid <= to);
        self.synced = self.synced.min(to);
        let applied = self.store.applied.min(to);
        self.store = self.base.clone();
        for t in self.log.iter().take_while(|t| t.zxid <= applied) {
            self.store.apply(t);
        }
        self.refresh_membership();
        self.persist(Persist::Truncate { to });
    }

    /// Applies committed log entries up to `z` and answers the clients
    /// waiting on them.
    pub(crate) fn commit_to(&mut self, z: Zxid) {
        let start = self.log.partition_point(|t| t.zxid <= self.store.applied);
        let end = self.log.partition_point(|t| t.zxid <= z);
        for i in start..end {
            let txn = self.log[i].clone();
            self.store.apply(&txn);
            self.applied_since_snapshot += 1;
            if matches!(txn.op, crate::TxnOp::Reconfig { .. }) {
                self.refresh_membership();
            }
            self.requests_on_applied(&txn);
            self.sessions_on_applied(&txn);
        }
        self.maybe_snapshot();
    }

    /// Writes a snapshot every `snapshot_interval` applied txns and trims
    /// the in-memory log to the DIFF window.
    pub(crate) fn maybe_snapshot(&mut self) {
        if self.applied_since_snapshot < self.cfg.snapshot_interval {
            return;
        }
        // Only a durable prefix may be snapshotted: the snapshot must never
        // hold a txn that a crash could remove from the log. Nor one not
        // known committed (a prospective leader's initial history, applied
        // at NEWLEADER before UPTODATE): a later leader may TRUNC it, and
        // a truncation cannot reach into a snapshot on disk.
        if self.store.applied > self.synced || self.store.applied > self.certain {
            return;
        }
        self.applied_since_snapshot = 0;
        self.persist(Persist::Snapshot(Box::new(self.store.clone())));
        let keep_from = self
            .log
            .partition_point(|t| t.zxid <= self.store.applied)
            .saturating_sub(self.cfg.committed_log_window);
        if keep_from > 0 {
            for t in self.log.drain(..keep_from) {
                self.base.apply(&t);
            }
        }
    }

    pub(crate) fn recover(&mut self, d: Durable) {
        assert!(matches!(self.role, Role::Down), "recover once per start");
        let last = d.log.last().map_or(d.snapshot.applied, |t| t.zxid);
        let mut d = d;
        let mut repaired = false;
        if d.current_epoch < last.epoch() && last.epoch() <= d.accepted_epoch {
            // A crash during synchronization, after the synced history was
            // (partly) written and before currentEpoch was (J1653). Every
            // txn we hold came from a leader we promised; claim no more of
            // its epoch than the txns show (ZooKeeper's updatingEpoch).
            d.current_epoch = last.epoch();
            repaired = true;
        }
        // Startup checks (ZAB.md §1, J1653/J2307): refuse to start on an
        // inconsistent disk.
        assert!(
            d.current_epoch >= last.epoch(),
            "server {}: currentEpoch {} < epoch of last zxid {}",
            self.cfg.sid,
            d.current_epoch,
            last
        );
        assert!(
            d.accepted_epoch >= d.current_epoch,
            "server {}: acceptedEpoch {} < currentEpoch {}",
            self.cfg.sid,
            d.accepted_epoch,
            d.current_epoch
        );
        self.accepted_epoch = d.accepted_epoch;
        self.current_epoch = d.current_epoch;
        self.base = d.snapshot.clone();
        self.store = d.snapshot;
        self.certain = self.store.applied;
        // D4: replay the whole log, uncommitted tail included; no client is
        // served before this server is synced with a leader.
        for t in &d.log {
            self.store.apply(t);
        }
        self.log = d.log;
        self.refresh_membership();
        if repaired {
            self.persist_epochs();
        }
        self.synced = last;
        self.start_looking();
    }

    pub(crate) fn on_synced(&mut self, z: Zxid) {
        // A Synced for entries a TRUNC has since removed says nothing new.
        let z = z.min(self.last_logged());
        if z <= self.synced {
            return;
        }
        self.synced = z;
        match &self.role {
            Role::Leading(_) => self.leader_synced(),
            Role::Learning(_) => self.learner_synced(),
            _ => {}
        }
        // A snapshot put off because the applied state was not yet durable
        // (an observer applies each INFORM before its fsync) is due now.
        self.maybe_snapshot();
    }
}
