//! The ZooKeeper run checks (`faultline_checker::zk`) on small hand-made
//! histories: each must pass a good one and flag a bad one.

use faultline_checker::verdict::Validity;
use faultline_checker::zk::*;
use faultline_history::{Fun, History, OpType, Value};
use faultline_history::{Op, Process};

fn txn(z: u64, k: i64, v: i64) -> CommittedTxn {
    CommittedTxn {
        deletes: vec![],
        zxid: z,
        set: Some((k, v)),
        origin: None,
        acks: vec![1, 2],
        voters: vec![vec![1, 2, 3]],
        describe: format!("set {k}={v}"),
    }
}

fn op(kind: OpType, p: u64, f: Fun, k: i64, v: Value, zxid: Option<u64>) -> Op {
    let mut o = Op::new(kind, Process::Client(p), f, v);
    o.key = Some(Value::Int(k));
    o.zxid = zxid;
    o
}

#[test]
fn reads_must_match_the_committed_history_at_their_zxid() {
    let (c, conflicts) = committed_history(&[txn(1, 0, 10), txn(2, 0, 20)]);
    assert!(conflicts.is_empty());
    let good = History::new(vec![
        op(OpType::Invoke, 0, Fun::LocalRead, 0, Value::Nil, None),
        op(OpType::Ok, 0, Fun::LocalRead, 0, Value::Int(10), Some(1)),
        op(OpType::Invoke, 0, Fun::LocalRead, 0, Value::Nil, None),
        op(OpType::Ok, 0, Fun::LocalRead, 0, Value::Int(20), Some(2)),
    ])
    .unwrap();
    assert_eq!(read_guarantees(&good, &c, &[]).result, Validity::Valid);
    // a stale value for the zxid claimed
    let stale = History::new(vec![
        op(OpType::Invoke, 0, Fun::LocalRead, 0, Value::Nil, None),
        op(OpType::Ok, 0, Fun::LocalRead, 0, Value::Int(10), Some(2)),
    ])
    .unwrap();
    let o = read_guarantees(&stale, &c, &[]);
    assert_eq!(o.result, Validity::Invalid);
    assert!(o.anomalies[0].contains("holds 20"), "{:?}", o.anomalies);
    // going back in time
    let back = History::new(vec![
        op(OpType::Invoke, 0, Fun::LocalRead, 0, Value::Nil, None),
        op(OpType::Ok, 0, Fun::LocalRead, 0, Value::Int(20), Some(2)),
        op(OpType::Invoke, 0, Fun::LocalRead, 0, Value::Nil, None),
        op(OpType::Ok, 0, Fun::LocalRead, 0, Value::Int(10), Some(1)),
    ])
    .unwrap();
    let o = read_guarantees(&back, &c, &[]);
    assert!(
        o.anomalies[0].contains("went back in time"),
        "{:?}",
        o.anomalies
    );
}

#[test]
fn reads_that_depend_on_a_gap_are_not_judged() {
    // Txns 3..=5 are known to no evidence.
    let (c, _) = committed_history(&[txn(1, 0, 10), txn(2, 1, 20), txn(6, 1, 21)]);
    let read = |k: i64, v: i64, z: u64| {
        History::new(vec![
            op(OpType::Invoke, 0, Fun::LocalRead, k, Value::Nil, None),
            op(OpType::Ok, 0, Fun::LocalRead, k, Value::Int(v), Some(z)),
        ])
        .unwrap()
    };
    let gaps = [(2, 5)];
    // Key 0's last known write is before the gap: a read after it
    // cannot be judged, whatever it returned.
    let o = read_guarantees(&read(0, 99, 7), &c, &gaps);
    assert_eq!(o.result, Validity::Valid);
    assert!(o.summary.contains("1 in a range"), "{}", o.summary);
    // Key 1 was written after the gap: still judged.
    let o = read_guarantees(&read(1, 20, 7), &c, &gaps);
    assert!(o.anomalies[0].contains("holds 21"), "{:?}", o.anomalies);
    // Before the gap: judged.
    let o = read_guarantees(&read(0, 99, 2), &c, &gaps);
    assert_eq!(o.result, Validity::Invalid);
}

#[test]
fn a_pipelined_read_must_follow_its_sessions_write() {
    let (c, _) = committed_history(&[txn(1, 0, 10), txn(2, 0, 20)]);
    let pipe = 77;
    let h = |read_zxid: u64, read_value: i64| {
        let ops = vec![
            op(OpType::Invoke, 0, Fun::Write, 0, Value::Int(20), None),
            op(OpType::Invoke, pipe, Fun::LocalRead, 0, Value::Nil, None),
            op(
                OpType::Ok,
                pipe,
                Fun::LocalRead,
                0,
                Value::Int(read_value),
                Some(read_zxid),
            ),
            op(OpType::Ok, 0, Fun::Write, 0, Value::Int(20), Some(2)),
        ];
        // Both processes on session 1, as the ops say.
        let ops = ops.into_iter().map(|mut o| {
            o.session = Some(1);
            o
        });
        History::new(ops.collect()).unwrap()
    };
    assert_eq!(read_guarantees(&h(2, 20), &c, &[]).result, Validity::Valid);
    let o = read_guarantees(&h(1, 10), &c, &[]);
    assert!(
        o.anomalies.iter().any(|a| a.contains("session order")),
        "{:?}",
        o.anomalies
    );
    assert_eq!(o.ops, vec![0, 2]);
}

#[test]
fn conflicting_reports_are_flagged() {
    let (_, conflicts) = committed_history(&[txn(1, 0, 10), txn(1, 0, 11)]);
    assert_eq!(conflicts.len(), 1);
    assert!(conflicts[0].contains("(I2)"));
}

#[test]
fn commits_without_a_quorum_of_durable_acks_are_flagged() {
    let mut t = txn(1, 0, 10);
    t.acks = vec![3];
    let (_, v) = committed_history(&[t]);
    assert!(v[0].contains("not a majority"), "{v:?}");
}

#[test]
fn convergence_leadership_and_liveness() {
    let r = [
        ReplicaEnd {
            sid: 1,
            last_committed: 5,
            digest: 1,
        },
        ReplicaEnd {
            sid: 2,
            last_committed: 5,
            digest: 2,
        },
    ];
    assert_eq!(convergence(&r, 5, None).result, Validity::Invalid);
    assert_eq!(convergence(&r[..1], 5, None).result, Validity::Valid);
    // The servers named point at their last answers in the history.
    let answer = |p: u64, node: u64, kind| {
        let mut o = op(kind, p, Fun::LocalRead, 0, Value::Int(1), Some(5));
        o.node = Some(node);
        o
    };
    let h = History::new(vec![
        answer(0, 1, OpType::Invoke),
        answer(0, 1, OpType::Ok),
        answer(1, 2, OpType::Invoke),
        answer(1, 2, OpType::Ok),
    ])
    .unwrap();
    assert_eq!(convergence(&r, 5, Some(&h)).ops, vec![1, 3]);
    let l = [
        LeaderEntry {
            time_ns: 1,
            sid: 1,
            epoch: 1,
        },
        LeaderEntry {
            time_ns: 2,
            sid: 2,
            epoch: 1,
        },
    ];
    assert_eq!(leadership(&l).result, Validity::Invalid);
    assert_eq!(leadership(&l[..1]).result, Validity::Valid);
    let mut w = op(OpType::Ok, 0, Fun::Write, 0, Value::Int(1), Some(9));
    w.time = 150;
    let mut i = op(OpType::Invoke, 0, Fun::Write, 0, Value::Int(1), None);
    i.time = 120;
    let h = History::new(vec![i.clone(), w.clone()]).unwrap();
    assert_eq!(liveness(&h, &[], 100, 100, 1000).result, Validity::Valid);
    assert_eq!(liveness(&h, &[], 100, 10, 1000).result, Validity::Invalid);
    // The workload stopped before the write succeeded.
    assert_eq!(liveness(&h, &[], 100, 100, 140).result, Validity::Invalid);
    // Nothing invoked after the heal: nothing to judge.
    let o = liveness(&History::default(), &[], 100, 10, 1000);
    assert_eq!(o.result, Validity::Valid);
    assert!(o.summary.contains("none invoked"), "{}", o.summary);
}

#[test]
fn liveness_asks_every_kind_the_clients_issue() {
    let at = |kind, p, f: Fun, t: u64| {
        let mut o = op(kind, p, f, 0, Value::Nil, None);
        o.time = t;
        o
    };
    // Writes succeed; sync-reads are invoked but never answered.
    let mut ops = vec![
        at(OpType::Invoke, 0, Fun::Write, 120),
        at(OpType::Ok, 0, Fun::Write, 130),
        at(OpType::Invoke, 1, Fun::SyncRead, 120),
        at(OpType::Fail, 1, Fun::SyncRead, 150),
    ];
    let o = liveness(&History::new(ops.clone()).unwrap(), &[], 100, 100, 1000);
    assert_eq!(o.anomalies.len(), 1, "{:?}", o.anomalies);
    assert!(o.anomalies[0].contains("no sync-read succeeded"));
    assert!(o
        .summary
        .contains("not judged, none invoked after healing: local read"));
    // One answered in time: live.
    ops.extend([
        at(OpType::Invoke, 1, Fun::SyncRead, 160),
        at(OpType::Ok, 1, Fun::SyncRead, 170),
    ]);
    let o = liveness(&History::new(ops).unwrap(), &[], 100, 100, 1000);
    assert_eq!(o.result, Validity::Valid, "{:?}", o.anomalies);
}
