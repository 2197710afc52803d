//! Durability for a system that replicates one log by index (Raft), judged
//! from each server's durable log file as read back after the final power
//! loss, never from what the servers say of themselves:
//!
//! * every acknowledged write (an `ok` write or cas carrying the log
//!   index it was applied at) is in the files of a majority of the
//!   voters, at that index, as that write (or below the index a server's
//!   log restarts after, a leader's snapshot it installed durably): a
//!   power loss of all the other servers keeps it;
//! * no two servers hold different entries at an index both have
//!   durably marked committed (their hard states' commit): the committed
//!   prefixes agree (Raft's State Machine Safety, from the files).
//!
//! The voters are the initial ones: an entry committed after voters were
//! added is on a majority of the larger set, which holds a majority of the
//! initial voters too, so counting among them never accuses a correct
//! server.

use crate::durable::acked_writes;
use crate::verdict::outcome;
use crate::CheckOutcome;
use faultline_history::History;

/// One entry of a server's durable log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// A digest of its bytes: entries are the same iff term and digest are.
    pub digest: u64,
    /// The key and value it writes, if it is a client's write (a cas as
    /// the value it would set).
    pub write: Option<(i64, i64)>,
}

/// One server's durable log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLog {
    /// The server.
    pub sid: u64,
    /// The index its log restarts after: that of a leader's snapshot it
    /// installed durably (0: none). Its state holds every entry up to it.
    pub base: u64,
    /// Its entries from `base + 1`, in index order.
    pub entries: Vec<LogEntry>,
    /// The commit index its durable hard state records.
    pub commit: u64,
}

impl ServerLog {
    /// Its entry at `index`, if it holds one.
    fn at(&self, index: u64) -> Option<&LogEntry> {
        let i = index.checked_sub(self.base + 1)? as usize;
        self.entries.get(i).filter(|e| e.index == index)
    }
}

/// `durability` for a replicated log: see the module docs.
pub fn durability(h: &History, logs: &[ServerLog], voters: &[u64]) -> CheckOutcome {
    let mut anomalies = Vec::new();
    let mut ops = Vec::new();
    let majority = voters.len() / 2 + 1;
    let mut acked = 0;
    for (i, index, write, what) in acked_writes(h, |i| format!("index {i}")) {
        acked += 1;
        let holders: Vec<u64> = logs
            .iter()
            .filter(|l| voters.contains(&l.sid))
            .filter(|l| {
                index <= l.base
                    || l.at(index)
                        .is_some_and(|e| write.is_none() || e.write == write)
            })
            .map(|l| l.sid)
            .collect();
        if holders.len() < majority {
            ops.push(i);
            anomalies.push(format!(
                "acknowledged {what}, but only voters {holders:?} of {voters:?} hold it there in their files: a majority ({majority}) must"
            ));
        }
    }
    for (k, a) in logs.iter().enumerate() {
        for b in &logs[k + 1..] {
            let upto = a.commit.min(b.commit);
            let differ = (1..=upto).find(|&i| match (a.at(i), b.at(i)) {
                (Some(x), Some(y)) => (x.term, x.digest) != (y.term, y.digest),
                _ => false,
            });
            if let Some(i) = differ {
                anomalies.push(format!(
                    "servers {} and {} both record index {i} committed, with different entries (terms {} and {})",
                    a.sid,
                    b.sid,
                    a.at(i).map_or(0, |e| e.term),
                    b.at(i).map_or(0, |e| e.term)
                ));
            }
        }
    }
    let entries: usize = logs.iter().map(|l| l.entries.len()).sum();
    let mut o = outcome(
        "durability",
        format!(
            "{acked} acknowledged writes against {} servers' durable logs ({entries} entries): each on a majority of voters {voters:?}; committed prefixes agree",
            logs.len()
        ),
        anomalies,
    );
    o.ops = ops;
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_history::{Fun, Op, OpType, Process, Value};

    fn write(process: u64, key: i64, value: i64, index: u64) -> Vec<Op> {
        let mut inv = Op::new(
            OpType::Invoke,
            Process::Client(process),
            Fun::Write,
            Value::Int(value),
        );
        inv.key = Some(Value::Int(key));
        let mut ok = inv.clone();
        ok.kind = OpType::Ok;
        ok.zxid = Some(index);
        vec![inv, ok]
    }

    fn entry(index: u64, term: u64, write: Option<(i64, i64)>) -> LogEntry {
        LogEntry {
            index,
            term,
            digest: index * 31 + term,
            write,
        }
    }

    fn log(sid: u64, entries: Vec<LogEntry>, commit: u64) -> ServerLog {
        ServerLog {
            sid,
            base: 0,
            entries,
            commit,
        }
    }

    #[test]
    fn an_acknowledged_write_must_be_on_a_majority_of_voters() {
        let h = History::new(write(0, 1, 7, 2)).unwrap();
        let full = vec![entry(1, 1, None), entry(2, 1, Some((1, 7)))];
        let short = vec![entry(1, 1, None)];
        let voters = [1, 2, 3];
        let ok = [
            log(1, full.clone(), 2),
            log(2, full.clone(), 1),
            log(3, short.clone(), 1),
        ];
        assert!(durability(&h, &ok, &voters).result == crate::Validity::Valid);
        // On one voter only (and a learner, which does not count).
        let lost = [
            log(1, full.clone(), 2),
            log(2, short.clone(), 1),
            log(3, short, 1),
            log(4, full, 2),
        ];
        let o = durability(&h, &lost, &voters);
        assert_eq!(o.result, crate::Validity::Invalid, "{o:?}");
        assert!(
            o.anomalies[0].contains("only voters [1]"),
            "{:?}",
            o.anomalies
        );
        assert_eq!(o.ops.len(), 1);
    }

    #[test]
    fn a_leaders_snapshot_installed_durably_holds_what_is_below_it() {
        let h = History::new(write(0, 1, 7, 2)).unwrap();
        let full = vec![entry(1, 1, None), entry(2, 1, Some((1, 7)))];
        let mut installed = log(2, vec![entry(3, 1, None)], 3);
        installed.base = 2;
        let logs = [log(1, full, 2), installed.clone(), log(3, Vec::new(), 0)];
        assert_eq!(
            durability(&h, &logs, &[1, 2, 3]).result,
            crate::Validity::Valid
        );
        installed.base = 1;
        installed.entries = vec![entry(2, 1, None), entry(3, 1, None)];
        let logs = [logs[0].clone(), installed, logs[2].clone()];
        assert_eq!(
            durability(&h, &logs, &[1, 2, 3]).result,
            crate::Validity::Invalid
        );
    }

    #[test]
    fn committed_prefixes_must_agree() {
        let h = History::new(Vec::new()).unwrap();
        let a = vec![entry(1, 1, None), entry(2, 1, Some((1, 1)))];
        let b = vec![entry(1, 1, None), entry(2, 2, Some((1, 2)))];
        // Only one of them marks index 2 committed: a minority's leftover.
        let fine = [log(1, a.clone(), 2), log(2, b.clone(), 1)];
        assert!(durability(&h, &fine, &[1, 2, 3]).result == crate::Validity::Valid);
        let bad = [log(1, a, 2), log(2, b, 2)];
        let o = durability(&h, &bad, &[1, 2, 3]);
        assert!(o.anomalies[0].contains("index 2 committed"), "{o:?}");
    }
}
