//! The durable-state checks over hand-made evidence: what a run's servers
//! left on disk and what their hosts recorded (see `checker::durable`).

use faultline_checker::durable::*;
use faultline_checker::CheckOutcome;
use faultline_checker::Validity;
use faultline_history::{Fun, History, Op, OpType, Process, Value};
use std::collections::BTreeMap;

const E1: u64 = 1 << 32;
const E2: u64 = 2 << 32;

fn set(z: u64, k: i64, v: i64) -> LoggedTxn {
    LoggedTxn {
        deletes: vec![],
        session: None,
        zxid: z,
        set: Some((k, v)),
        origin: None,
        reconfig: None,
        describe: format!("set {k}={v}"),
    }
}

fn files(sid: u64, base: u64, log: Vec<LoggedTxn>) -> ServerFiles {
    let last = log.last().map_or(base, |t| t.zxid);
    ServerFiles {
        sid,
        base,
        log,
        recovered: (last, 7),
        replayed: Some(7),
    }
}

fn write(p: u64, k: i64, v: i64, zxid: u64) -> Vec<Op> {
    let mut i = Op::new(
        OpType::Invoke,
        Process::Client(p),
        Fun::Write,
        Value::Int(v),
    );
    i.key = Some(Value::Int(k));
    let mut o = i.clone();
    o.kind = OpType::Ok;
    o.zxid = Some(zxid);
    vec![i, o]
}

fn check(h: &History, f: &[ServerFiles]) -> CheckOutcome {
    let (dh, conflicts) = durable_history(f);
    durability(h, f, &dh, &conflicts, &[1, 2, 3])
}

#[test]
fn a_write_that_reached_the_new_leader_only_inside_a_snapshot_is_durable() {
    // Seed 2077's shape: server 1 logged E1+1..E1+3 and sent a SNAP at
    // E1+3 to server 2, which then led epoch 2; no leader ever reported
    // E1+2 committed, but it is on the disks of 1 and 3, and server 2's
    // log starts after the snapshot holding it.
    let f = [
        files(
            1,
            0,
            vec![set(E1 + 1, 0, 1), set(E1 + 2, 0, 2), set(E1 + 3, 1, 3)],
        ),
        files(2, E1 + 3, vec![set(E2 + 1, 0, 4)]),
        files(
            3,
            0,
            vec![
                set(E1 + 1, 0, 1),
                set(E1 + 2, 0, 2),
                set(E1 + 3, 1, 3),
                set(E2 + 1, 0, 4),
            ],
        ),
    ];
    let h = History::new(write(0, 0, 2, E1 + 2)).unwrap();
    let o = check(&h, &f);
    assert_eq!(o.result, Validity::Valid, "{:?}", o.anomalies);
    // The leaders' reports lack E1+2: the cross-check does not mind a
    // txn they never reported, only one they reported wrongly.
    let (dh, _) = durable_history(&f);
    assert_eq!(
        leader_reports(&BTreeMap::new(), &f, &dh).result,
        Validity::Valid
    );
}

#[test]
fn a_lost_write_is_caught_even_when_its_key_is_overwritten_later() {
    // The write at E1+2 was acknowledged, then lost by every server (a
    // power loss before fsync); epoch 2 overwrote the key, so every
    // final state equals the replay of what survived.
    let survived = vec![set(E1 + 1, 0, 1), set(E2 + 1, 0, 9)];
    let f = [
        files(1, 0, survived.clone()),
        files(2, 0, survived.clone()),
        files(3, 0, survived),
    ];
    let h = History::new(write(0, 0, 2, E1 + 2)).unwrap();
    let o = check(&h, &f);
    assert_eq!(o.result, Validity::Invalid);
    assert!(o.anomalies[0].contains("is lost"), "{:?}", o.anomalies);
    assert_eq!(o.ops, vec![1]);
    // Lost at the end of the history, too.
    let f = [files(1, 0, vec![set(E1 + 1, 0, 1)])];
    let o = check(&h, &f);
    assert!(
        o.anomalies[0].contains("beyond the end"),
        "{:?}",
        o.anomalies
    );
}

#[test]
fn a_write_held_by_a_minority_or_replaced_is_a_violation() {
    let f = [
        files(1, 0, vec![set(E1 + 1, 0, 1)]),
        files(2, 0, vec![]),
        files(3, 0, vec![]),
    ];
    let h = History::new(write(0, 0, 1, E1 + 1)).unwrap();
    assert!(check(&h, &f).anomalies[0].contains("not a majority"));
    let h = History::new(write(0, 0, 5, E1 + 1)).unwrap();
    assert!(check(&h, &f).anomalies[0].contains("logs hold `set 0=1`"));
    // A write older than every log (all installed snapshots past it)
    // is counted, not judged.
    let f = [files(1, E1 + 5, vec![]), files(2, E1 + 5, vec![])];
    assert_eq!(check(&h, &f).result, Validity::Valid);
}

#[test]
fn logs_must_agree_chain_and_recover_to_their_replay() {
    let (_, c) = durable_history(&[
        files(1, 0, vec![set(E1 + 1, 0, 1)]),
        files(2, 0, vec![set(E1 + 1, 0, 2)]),
    ]);
    assert!(c[0].contains("(I2)"), "{c:?}");
    let (_, c) = durable_history(&[files(1, 0, vec![set(E1 + 1, 0, 1), set(E1 + 3, 0, 1)])]);
    assert!(c[0].contains("(I6"), "{c:?}");
    let mut f = files(1, 0, vec![set(E1 + 1, 0, 1)]);
    f.replayed = Some(8);
    let o = check(&History::default(), &[f]);
    assert!(o.anomalies[0].contains("differs"), "{:?}", o.anomalies);
}

#[test]
fn history_completeness_and_configurations() {
    let a = files(1, 0, vec![set(E1 + 1, 0, 1), set(E1 + 2, 0, 1)]);
    let b = files(2, E1 + 1, vec![set(E1 + 2, 0, 1), set(E2 + 1, 0, 1)]);
    let c = files(3, E2 + 1, vec![set(E2 + 2, 0, 1)]);
    assert_eq!(complete_through(&[c.clone(), b.clone(), a.clone()]), E2 + 2);
    // Without server 1, nothing holds epoch 1's start: a log that begins
    // at epoch 2's first txn must not pass for the whole history.
    assert_eq!(complete_through(&[b.clone(), c.clone()]), 0);
    assert_eq!(complete_through(&[files(4, 0, vec![])]), 0);
    assert_eq!(gaps(&[b.clone(), c.clone()]), vec![(0, E1 + 1)]);
    assert_eq!(gaps(&[a.clone(), c.clone()]), vec![(E1 + 2, E2 + 1)]);
    let mut h = BTreeMap::new();
    for t in [set(E1 + 2, 0, 1), set(E2 + 1, 0, 1)] {
        h.insert(t.zxid, t);
    }
    let mut r = set(E1 + 1, 0, 0);
    r.set = None;
    r.reconfig = Some(vec![1, 2, 3, 4]);
    h.insert(E1 + 1, r);
    assert_eq!(
        voters_for(&h, &[1, 2, 3], E1 + 1),
        vec![vec![1, 2, 3], vec![1, 2, 3, 4]]
    );
    assert_eq!(voters_for(&h, &[1, 2, 3], E1 + 2), vec![vec![1, 2, 3, 4]]);
}

fn journal(sid: u64, records: Vec<(u64, Record)>) -> Journal {
    Journal { sid, records }
}

fn opened() -> (u64, Record) {
    (
        0,
        Record::Disk(DiskEvent::Opened {
            log: vec![],
            base: 0,
        }),
    )
}

/// Three voters; server 1 leads epoch 1 and commits E1+1 at time 30.
fn broadcast(follower_acks_early: bool, leader_waits: bool) -> Vec<Journal> {
    let mut js = Vec::new();
    for s in [2, 3] {
        let mut r = vec![
            opened(),
            (10, Record::Disk(DiskEvent::Appended(vec![E1 + 1]))),
        ];
        if follower_acks_early {
            r.push((11, Record::Ack(E1 + 1)));
        }
        r.push((20, Record::Disk(DiskEvent::Synced(E1 + 1))));
        if !follower_acks_early {
            r.push((21, Record::Ack(E1 + 1)));
        }
        js.push(journal(s, r));
    }
    let mut l = vec![
        opened(),
        (5, Record::Disk(DiskEvent::Appended(vec![E1 + 1]))),
        (6, Record::Disk(DiskEvent::Synced(E1 + 1))),
    ];
    if leader_waits {
        l.push((22, Record::AckReceived(2, E1 + 1)));
    }
    l.push((30, Record::Commit(E1 + 1)));
    js.insert(0, journal(1, l));
    js
}

fn dh1() -> BTreeMap<u64, LoggedTxn> {
    [(E1 + 1, set(E1 + 1, 0, 1))].into_iter().collect()
}

#[test]
fn acks_and_commits_follow_the_disks() {
    let ok = quorum_acks(&broadcast(false, true), &dh1(), &[1, 2, 3]);
    assert_eq!(ok.result, Validity::Valid, "{:?}", ok.anomalies);
    // D1: an ACK before the fsync.
    let o = quorum_acks(&broadcast(true, true), &dh1(), &[1, 2, 3]);
    assert!(
        o.anomalies.iter().all(|a| a.contains("(D1)")),
        "{:?}",
        o.anomalies
    );
    assert_eq!(o.anomalies.len(), 2);
    // I5: a commit on the leader's own ACK alone, although the data was
    // in fact durable on a majority by then.
    let o = quorum_acks(&broadcast(false, false), &dh1(), &[1, 2, 3]);
    assert_eq!(o.anomalies.len(), 1, "{:?}", o.anomalies);
    assert!(o.anomalies[0].contains("received ACKs from []"));
    // I5: a commit when only the leader's disk holds the txn.
    let mut js = broadcast(false, true);
    for j in &mut js[1..] {
        j.records
            .retain(|(_, r)| !matches!(r, Record::Disk(DiskEvent::Synced(_))));
    }
    js[0]
        .records
        .insert(3, (22, Record::AckReceived(3, E1 + 1)));
    let o = quorum_acks(&js, &dh1(), &[1, 2, 3]);
    assert!(
        o.anomalies
            .iter()
            .any(|a| a.contains("durable only on [1]")),
        "{:?}",
        o.anomalies
    );
}

#[test]
fn newleader_acks_and_establishment_need_durable_synced_history() {
    // Server 2 is synced with E1+1 and ACKs NEWLEADER of epoch 2.
    let follower = |ack_at: u64| {
        let mut r = vec![
            opened(),
            (10, Record::Disk(DiskEvent::Appended(vec![E1 + 1]))),
            (ack_at, Record::Ack(E2)),
            (20, Record::Disk(DiskEvent::Synced(E1 + 1))),
        ];
        r.sort_by_key(|(t, _)| *t);
        journal(2, r)
    };
    let leader = journal(
        1,
        vec![
            (
                0,
                Record::Disk(DiskEvent::Opened {
                    log: vec![E1 + 1],
                    base: 0,
                }),
            ),
            (25, Record::AckReceived(2, E2)),
            (30, Record::Established(2)),
        ],
    );
    let o = quorum_acks(&[leader.clone(), follower(21)], &dh1(), &[1, 2, 3]);
    assert_eq!(o.result, Validity::Valid, "{:?}", o.anomalies);
    let o = quorum_acks(&[leader.clone(), follower(12)], &dh1(), &[1, 2, 3]);
    assert!(o.anomalies[0].contains("(D3)"), "{:?}", o.anomalies);
    // Established on the leader's own word alone.
    let mut alone = leader;
    alone.records.remove(1);
    let o = quorum_acks(&[alone, follower(21)], &dh1(), &[1, 2, 3]);
    assert!(
        o.anomalies
            .iter()
            .any(|a| a.contains("established epoch 2")),
        "{:?}",
        o.anomalies
    );
}

/// A server that led epoch 1 logged two txns past what epoch 2's leader
/// started from, and never synced again: epoch 2's lineage leaves them
/// out (they were never committed). Without the establishment of epoch 2,
/// or with a later epoch that no log shows beginning, nothing is left out.
#[test]
fn the_latest_established_lineage_leaves_out_what_it_skipped() {
    const E3: u64 = 3 << 32;
    let chain = |n: u64| {
        (1..=n)
            .map(|c| set(E1 + c, 1, c as i64))
            .collect::<Vec<_>>()
    };
    let mut epoch2 = chain(3);
    epoch2.extend([set(E2 + 1, 1, 20), set(E2 + 2, 1, 21)]);
    let f = [
        files(1, 0, epoch2.clone()),
        files(2, 0, chain(5)),
        files(3, 0, epoch2),
    ];
    let est = |e: &[u64]| {
        e.iter()
            .copied()
            .collect::<std::collections::BTreeSet<u64>>()
    };
    let gone = superseded(&f, &est(&[1, 2]));
    assert_eq!(gone, est(&[E1 + 4, E1 + 5]));
    assert!(superseded(&f, &est(&[1])).is_empty());
    assert!(superseded(&f, &est(&[])).is_empty());
    // Epoch 3 established from epoch 1's end skips all of epoch 2.
    let mut epoch3 = chain(5);
    epoch3.push(set(E3 + 1, 1, 30));
    let g = [f[0].clone(), f[1].clone(), files(4, 0, epoch3)];
    assert_eq!(superseded(&g, &est(&[1, 2, 3])), est(&[E2 + 1, E2 + 2]));
    // The hosts' records say which epochs were established.
    let j = Journal {
        sid: 1,
        records: vec![(5, Record::Established(2)), (9, Record::Ack(E2 + 1))],
    };
    assert_eq!(established(&[j]), est(&[2]));
}
