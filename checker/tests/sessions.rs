//! The sessions check on hand-made histories and logs: each of S1-S4
//! flagged when broken, and a well-behaved session passing.

use faultline_checker::durable::LoggedTxn;
use faultline_checker::sessions::{sessions, LeaderTime, SessionCounts, SessionRun, SessionTxn};
use faultline_checker::Validity;
use faultline_history::{Fun, History, Op, OpType, Process, Value};
use std::collections::BTreeMap;

const MS: u64 = 1_000_000;

fn op(kind: OpType, f: Fun, value: Value, t_ms: u64, zxid: Option<u64>) -> Op {
    let mut o = Op::new(kind, Process::Client(0), f, value);
    o.time = t_ms * MS;
    o.session = Some(1);
    o.zxid = zxid;
    o.node = zxid.map(|_| 1);
    if !matches!(o.f, Fun::OpenSession) {
        o.key = Some(Value::Int(0));
    }
    o
}

/// Session 1 opens (timeout 100 ticks = 1 s) at zxid 1, writes at
/// `write_ms` (zxid 2), then is silent.
fn history(write_ms: u64) -> History {
    History::new(vec![
        op(OpType::Invoke, Fun::OpenSession, Value::Int(100), 0, None),
        op(OpType::Ok, Fun::OpenSession, Value::Int(100), 5, Some(1)),
        op(OpType::Invoke, Fun::Write, Value::Int(7), write_ms, None),
        op(OpType::Ok, Fun::Write, Value::Int(7), write_ms + 5, Some(2)),
    ])
    .unwrap()
}

fn txn(
    zxid: u64,
    session: Option<SessionTxn>,
    deletes: Vec<i64>,
    origin: Option<(u64, u64)>,
) -> LoggedTxn {
    LoggedTxn {
        zxid,
        set: None,
        origin,
        reconfig: None,
        deletes,
        session,
        describe: String::new(),
    }
}

/// Opened at 1, the write at 2, an ephemeral key at 3, then closed (an
/// expiry) at `close`, committed at `close_ms`.
fn logs(close: u64, deletes: Vec<i64>) -> BTreeMap<u64, LoggedTxn> {
    let mut m = BTreeMap::new();
    m.insert(
        1,
        txn(
            1,
            Some(SessionTxn::Open {
                session: 1,
                timeout: 100,
            }),
            vec![],
            Some((1, 1)),
        ),
    );
    m.insert(2, txn(2, None, vec![], Some((1, 2))));
    m.insert(
        3,
        txn(
            3,
            Some(SessionTxn::Ephemeral {
                key: 1000,
                owner: 1,
            }),
            vec![],
            Some((1, 3)),
        ),
    );
    m.insert(
        close,
        txn(close, Some(SessionTxn::Close { session: 1 }), deletes, None),
    );
    m
}

fn check(
    h: &History,
    txns: &BTreeMap<u64, LoggedTxn>,
    close_ms: u64,
    spans: &[(u64, Option<u64>)],
) -> (Validity, Vec<String>) {
    let (r, a, _) = check_ops(h, txns, close_ms, spans);
    (r, a)
}

/// The verdict, anomalies and the history ops they point at.
fn check_ops(
    h: &History,
    txns: &BTreeMap<u64, LoggedTxn>,
    close_ms: u64,
    spans: &[(u64, Option<u64>)],
) -> (Validity, Vec<String>, Vec<usize>) {
    let leaders = LeaderTime { spans, sids: &[] };
    let (o, _) = judge(h, txns, close_ms, leaders);
    (o.result, o.anomalies, o.ops)
}

/// The check's outcome and counts, with the close committed at
/// `close_ms` (the other txns at their zxid in ms).
fn judge(
    h: &History,
    txns: &BTreeMap<u64, LoggedTxn>,
    close_ms: u64,
    leaders: LeaderTime<'_>,
) -> (faultline_checker::CheckOutcome, SessionCounts) {
    let commit_ns: BTreeMap<u64, u64> = txns
        .keys()
        .map(|&z| (z, if z >= 4 { close_ms * MS } else { z * MS }))
        .collect();
    let run = SessionRun {
        tick_ns: 10 * MS,
        txns,
        complete_from: 0,
        commit_ns: &commit_ns,
        leaders,
        heal_ns: 0,
        end_ns: 10_000 * MS,
        slack_ns: 150 * MS,
        late_ns: 1000 * MS,
        report_ns: 400 * MS,
    };
    sessions(h, &run)
}

const ALWAYS: &[(u64, Option<u64>)] = &[(0, None)];

#[test]
fn a_session_expired_after_its_timeout_passes() {
    let (r, a) = check(&history(100), &logs(4, vec![1000]), 1200, ALWAYS);
    assert_eq!(r, Validity::Valid, "{a:?}");
}

#[test]
fn the_check_counts_sessions_closes_and_expiries() {
    let leaders = LeaderTime {
        spans: ALWAYS,
        sids: &[],
    };
    let (_, counts) = judge(&history(100), &logs(4, vec![1000]), 1200, leaders);
    let want = SessionCounts {
        sessions: 1,
        closes: 1,
        expiries: 1,
        judged: 1,
        // Silent from 0.1 s to the end (10 s) after healing at 0.
        overdue: 1,
    };
    assert_eq!(counts, want);
}

/// `history(100)` with a ping at 700 ms answered by server `node`.
fn pinged(node: u64) -> History {
    let mut ops = history(100).ops().to_vec();
    for (kind, t) in [(OpType::Invoke, 700), (OpType::Ok, 702)] {
        let mut o = op(kind, Fun::Ping, Value::Nil, t, None);
        o.key = None;
        o.node = (kind == OpType::Ok).then_some(node);
        ops.push(o);
    }
    History::new(ops).unwrap()
}

/// Server 1 leads throughout.
fn led_by_1() -> LeaderTime<'static> {
    LeaderTime {
        spans: ALWAYS,
        sids: &[1],
    }
}

#[test]
fn s1_a_ping_the_leader_answered_counts_as_contact() {
    // Expired 0.8 s after the ping: early.
    let (o, _) = judge(&pinged(1), &logs(4, vec![1000]), 1500, led_by_1());
    assert_eq!(o.result, Validity::Invalid, "{:?}", o.anomalies);
    assert!(o.anomalies[0].starts_with("S1"), "{:?}", o.anomalies);
    assert_eq!(o.ops, vec![4], "the anomaly points at the ping");
    // 1.1 s after it: on time.
    let (o, _) = judge(&pinged(1), &logs(4, vec![1000]), 1800, led_by_1());
    assert_eq!(o.result, Validity::Valid, "{:?}", o.anomalies);
}

#[test]
fn s1_a_ping_a_follower_answered_is_not_counted() {
    // Server 2 follows: its touches may never have reached the leader, so
    // the session's contact is its write at 100 ms, 1.4 s before.
    let (o, _) = judge(&pinged(2), &logs(4, vec![1000]), 1500, led_by_1());
    assert_eq!(o.result, Validity::Valid, "{:?}", o.anomalies);
}

#[test]
fn s1_an_expiry_before_the_timeout_is_flagged() {
    let (r, a, ops) = check_ops(&history(100), &logs(4, vec![1000]), 800, ALWAYS);
    assert_eq!(r, Validity::Invalid);
    assert!(a[0].starts_with("S1"), "{a:?}");
    assert_eq!(
        ops,
        vec![2],
        "the anomaly points at the client's last write"
    );
}

#[test]
fn s1_counts_only_leader_time() {
    // A second of silence, but no leader from 300 ms to 900 ms: only 0.4 s
    // of it counts.
    let spans = [(0, Some(300 * MS)), (900 * MS, None)];
    let (r, a) = check(&history(100), &logs(4, vec![1000]), 1200, &spans);
    assert_eq!(r, Validity::Invalid, "{a:?}");
    // With the leader back early enough, the timeout is reached.
    let spans = [(0, Some(300 * MS)), (400 * MS, None)];
    let (r, a) = check(&history(100), &logs(4, vec![1000]), 1400, &spans);
    assert_eq!(r, Validity::Valid, "{a:?}");
}

#[test]
fn s2_a_silent_session_never_closed_is_flagged() {
    let mut l = logs(4, vec![1000]);
    l.remove(&4);
    let (r, a) = check(&history(100), &l, 1200, ALWAYS);
    assert_eq!(r, Validity::Invalid);
    assert!(a.iter().any(|x| x.starts_with("S2")), "{a:?}");
    assert!(
        a.iter().all(|x| !x.starts_with("S3")),
        "its key has not outlived it: {a:?}"
    );
}

#[test]
fn s3_a_close_that_leaves_a_key_or_a_key_for_a_closed_session() {
    let (r, a) = check(&history(100), &logs(4, vec![]), 1200, ALWAYS);
    assert_eq!(r, Validity::Invalid);
    assert!(a.iter().any(|x| x.contains("deletes keys {}")), "{a:?}");
    let mut l = logs(4, vec![1000]);
    l.insert(
        5,
        txn(
            5,
            Some(SessionTxn::Ephemeral {
                key: 1001,
                owner: 1,
            }),
            vec![],
            None,
        ),
    );
    let (r, a) = check(&history(100), &l, 1200, ALWAYS);
    assert_eq!(r, Validity::Invalid);
    assert!(a.iter().any(|x| x.contains("not open there")), "{a:?}");
    assert!(a.iter().any(|x| x.contains("outlives its owner")), "{a:?}");
}

#[test]
fn s3_anomalies_point_at_the_create_of_the_key() {
    // After the close, the client's create of key 1001 (no answer) takes
    // effect for the closed session.
    let mut ops = history(100).ops().to_vec();
    let mut create = op(
        OpType::Invoke,
        Fun::CreateEphemeral,
        Value::Int(55),
        1300,
        None,
    );
    create.key = Some(Value::Int(1001));
    ops.push(create);
    let h = History::new(ops).unwrap();
    let mut l = logs(4, vec![1000]);
    let mut t = txn(
        5,
        Some(SessionTxn::Ephemeral {
            key: 1001,
            owner: 1,
        }),
        vec![],
        Some((1, 9)),
    );
    t.set = Some((1001, 55));
    l.insert(5, t);
    let (r, a, ops) = check_ops(&h, &l, 1200, ALWAYS);
    assert_eq!(r, Validity::Invalid);
    assert!(a.iter().any(|x| x.contains("not open there")), "{a:?}");
    assert!(a.iter().any(|x| x.contains("outlives its owner")), "{a:?}");
    assert!(ops.contains(&4), "points at the create: {ops:?}");
}

#[test]
fn s4_a_txn_or_an_answer_after_the_close_is_flagged() {
    let mut l = logs(4, vec![1000]);
    l.insert(5, txn(5, None, vec![], Some((1, 9))));
    let (r, a) = check(&history(100), &l, 1200, ALWAYS);
    assert_eq!(r, Validity::Invalid);
    assert!(a.iter().any(|x| x.starts_with("S4: zxid")), "{a:?}");
    // The client's write answered at a zxid after the close.
    let h = History::new(vec![
        op(OpType::Invoke, Fun::OpenSession, Value::Int(100), 0, None),
        op(OpType::Ok, Fun::OpenSession, Value::Int(100), 5, Some(1)),
        op(OpType::Invoke, Fun::Write, Value::Int(7), 100, None),
        op(OpType::Ok, Fun::Write, Value::Int(7), 105, Some(9)),
    ])
    .unwrap();
    let (r, a) = check(&h, &logs(4, vec![1000]), 1200, ALWAYS);
    assert_eq!(r, Validity::Invalid);
    assert!(a.iter().any(|x| x.starts_with("S4: op")), "{a:?}");
}

/// A register history with session ops and an ephemeral key: the models
/// set them aside (counted), and judge the rest.
#[test]
fn linearizability_sets_session_ops_and_ephemeral_keys_aside() {
    use faultline_checker::{check, Budget, ModelKind};
    let keyed = |kind, f, key: i64, v: Value, t| {
        let mut o = op(kind, f, v, t, None);
        o.key = Some(Value::Int(key));
        o
    };
    let mut ops = history(100).ops().to_vec(); // open, write 7 to key 0
                                               // Key 1000 is ephemeral: created, then read back absent after its
                                               // session closed, which a register could never do.
    ops.push(keyed(
        OpType::Invoke,
        Fun::CreateEphemeral,
        1000,
        Value::Int(5),
        200,
    ));
    ops.push(keyed(
        OpType::Ok,
        Fun::CreateEphemeral,
        1000,
        Value::Int(5),
        201,
    ));
    ops.push(keyed(OpType::Invoke, Fun::Read, 1000, Value::Nil, 300));
    ops.push(keyed(OpType::Ok, Fun::Read, 1000, Value::Nil, 301));
    let budget = Budget {
        deadline: None,
        max_steps: None,
        max_bytes: None,
        no_reductions: false,
        no_certificates: false,
    };
    let h = History::new(ops.clone()).unwrap();
    let r = check(&h, ModelKind::CasRegister, &budget, 1).unwrap();
    assert_eq!(r.result, Validity::Valid, "{}", r.render(5));
    assert_eq!((r.ops, r.keys, r.set_aside), (1, 1, 3));
    assert!(r
        .render(5)
        .contains("3 local reads, session ops and ops on ephemeral keys set aside"));
    // The register part is still judged: a read of key 0 that never was.
    ops.push(keyed(OpType::Invoke, Fun::Read, 0, Value::Nil, 400));
    ops.push(keyed(OpType::Ok, Fun::Read, 0, Value::Int(9), 401));
    let r = check(
        &History::new(ops).unwrap(),
        ModelKind::CasRegister,
        &budget,
        1,
    )
    .unwrap();
    assert_eq!(r.result, Validity::Invalid);
}
