//! The evidence a run is judged on, gathered from what the servers' hosts
//! wrote and sent (the simulated disks after a final power loss, the disk
//! layer's journal, the shell's record of ACKs and COMMITs), converted to
//! the checker's plain data. Nothing here asks the protocol core.

use faultline_checker::durable::{DiskEvent, Journal, LoggedTxn, Record, ServerFiles};
use faultline_checker::sessions::SessionTxn;
use faultline_node::disk::{self, DiskImage};
use faultline_node::shell::{self, Evidence};
use faultline_node::{Sid, Store, Txn, TxnOp, Zxid};
use std::collections::{BTreeMap, BTreeSet};

/// A readable description of a txn.
pub fn describe(t: &Txn) -> String {
    match &t.op {
        TxnOp::Set { key, value } => format!("set {key}={value}"),
        TxnOp::CasFailed { key, actual } => format!("cas on {key} failed (found {actual:?})"),
        TxnOp::Reconfig { voters, .. } => format!("reconfig voters {voters:?}"),
        TxnOp::CreateSession { session, timeout } => {
            format!("open session {session} ({timeout} ticks)")
        }
        TxnOp::CloseSession { session, keys } => {
            format!("close session {session}, deleting {keys:?}")
        }
        TxnOp::SetEphemeral { key, value, owner } => {
            format!("set {key}={value} ephemeral of session {owner}")
        }
    }
}

/// The key and value a txn sets, if any.
pub fn sets(t: &Txn) -> Option<(i64, i64)> {
    match t.op {
        TxnOp::Set { key, value } | TxnOp::SetEphemeral { key, value, .. } => {
            Some((key as i64, value))
        }
        _ => None,
    }
}

/// The keys a txn deletes.
pub fn deletes(t: &Txn) -> Vec<i64> {
    match &t.op {
        TxnOp::CloseSession { keys, .. } => keys.iter().map(|k| *k as i64).collect(),
        _ => Vec::new(),
    }
}

fn logged(t: &Txn) -> LoggedTxn {
    LoggedTxn {
        zxid: t.zxid.0,
        set: sets(t),
        origin: t.origin,
        reconfig: match &t.op {
            TxnOp::Reconfig { voters, .. } => Some(voters.clone()),
            _ => None,
        },
        deletes: deletes(t),
        session: match &t.op {
            TxnOp::CreateSession { session, timeout } => Some(SessionTxn::Open {
                session: *session,
                timeout: *timeout,
            }),
            TxnOp::CloseSession { session, .. } => Some(SessionTxn::Close { session: *session }),
            TxnOp::SetEphemeral { key, owner, .. } => Some(SessionTxn::Ephemeral {
                key: *key as i64,
                owner: *owner,
            }),
            _ => None,
        },
        describe: describe(t),
    }
}

/// The state a server's files recover to.
fn recovered(image: &DiskImage) -> Store {
    let d = image.durable();
    let mut s = d.snapshot;
    for t in &d.log {
        s.apply(t);
    }
    s
}

/// Each server's files (from the image its last start read) with the
/// digest of the union of all logs replayed up to where that server's
/// files end, when the union is complete up to there; and the txns the
/// latest established epoch's lineage left out (`durable::superseded`
/// over these files and the hosts' `journals`), which the union leaves
/// out too.
pub fn server_files(
    evidence: &BTreeMap<Sid, Evidence>,
    journals: &[Journal],
) -> (Vec<ServerFiles>, BTreeSet<u64>) {
    let images: Vec<(Sid, &DiskImage)> = evidence
        .iter()
        .filter_map(|(s, e)| e.image.as_ref().map(|(_, i)| (*s, i)))
        .collect();
    let ends: Vec<(Sid, Store)> = images.iter().map(|(s, i)| (*s, recovered(i))).collect();
    let mut files: Vec<ServerFiles> = images
        .iter()
        .zip(&ends)
        .map(|((sid, image), (_, end))| ServerFiles {
            sid: *sid,
            base: image.snapshot.base.0,
            log: image.log.iter().map(logged).collect(),
            recovered: (end.applied.0, end.digest()),
            replayed: None,
        })
        .collect();
    let complete = faultline_checker::durable::complete_through(&files);
    // The union of the logs, without what the latest established epoch's
    // lineage left out (never committed; see `superseded`).
    let gone = faultline_checker::durable::superseded(
        &files,
        &faultline_checker::durable::established(journals),
    );
    let mut union: BTreeMap<Zxid, &Txn> = BTreeMap::new();
    for (_, i) in &images {
        for t in i.log.iter().filter(|t| !gone.contains(&t.zxid.0)) {
            union.entry(t.zxid).or_insert(t);
        }
    }
    // One pass over the union, noting the digest at each server's end.
    let mut wanted: Vec<Zxid> = ends.iter().map(|(_, s)| s.applied).collect();
    wanted.sort();
    wanted.dedup();
    let mut digests: BTreeMap<Zxid, u64> = BTreeMap::new();
    let mut state = Store::default();
    let mut it = union.values().peekable();
    for z in wanted {
        if z.0 > complete {
            break;
        }
        while let Some(t) = it.next_if(|t| t.zxid <= z) {
            state.apply(t);
        }
        if state.applied == z {
            digests.insert(z, state.digest());
        }
    }
    for f in &mut files {
        f.replayed = digests.get(&Zxid(f.recovered.0)).copied();
    }
    (files, gone)
}

/// What each host's disk layer and shell recorded.
pub fn journals(evidence: &BTreeMap<Sid, Evidence>) -> Vec<Journal> {
    let zs = |v: &[Zxid]| v.iter().map(|z| z.0).collect::<Vec<u64>>();
    let convert = |r: &shell::Record| match r {
        shell::Record::Ack(z) => Record::Ack(z.0),
        shell::Record::AckReceived(from, z) => Record::AckReceived(*from, z.0),
        shell::Record::Commit(z) => Record::Commit(z.0),
        shell::Record::Established(e) => Record::Established(*e),
        shell::Record::SyncSent(to) => Record::SyncSent(*to),
        shell::Record::Disk(e) => Record::Disk(match e {
            disk::DiskEvent::Opened { log, base } => DiskEvent::Opened {
                log: zs(log),
                base: base.0,
            },
            disk::DiskEvent::Appended { zxids } => DiskEvent::Appended(zs(zxids)),
            disk::DiskEvent::Synced { through } => DiskEvent::Synced(through.0),
            disk::DiskEvent::Truncated { to } => DiskEvent::Truncated(to.0),
            disk::DiskEvent::Installed { base } => DiskEvent::Installed(base.0),
            disk::DiskEvent::Epochs { accepted, current } => DiskEvent::Epochs {
                accepted: *accepted,
                current: *current,
            },
        }),
    };
    evidence
        .iter()
        .map(|(sid, e)| Journal {
            sid: *sid,
            records: e
                .records
                .iter()
                .map(|(t, r)| (t.as_nanos() as u64, convert(r)))
                .collect(),
        })
        .collect()
}
