//! Timeline lanes as Jepsen's threads (see [`assign_lanes`]).

use std::collections::BTreeMap;

/// Who a lane holds ops for: a client session (a pipelined read shares
/// its write's session, so it sits in that lane), or a process without
/// one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner<'a> {
    Session(u64),
    Process(&'a faultline_history::Process),
}

/// Lanes as Jepsen's threads: each owner (a session, or a process without
/// one) spans its first invocation to its last completion, and takes the
/// lowest lane free by then, so the processes that replace retired ones
/// reuse their lanes (10 clients stay about 10 lanes, not one per
/// process). Returns each pair's lane (from 2: lanes 0 and 1 hold the
/// leaders and fault labels) by process, and each lane's label (its
/// first process, and how many followed). Lanes count from 0.
pub(crate) fn assign_lanes<'a>(
    pairs: &[faultline_history::Pair<'a>],
    to_ns: u64,
    band_from_ns: Option<u64>,
) -> (BTreeMap<&'a faultline_history::Process, usize>, Vec<String>) {
    let owner = |p: &faultline_history::Pair<'a>| match p.invoke.session {
        Some(s) => Owner::Session(s),
        None => Owner::Process(&p.invoke.process),
    };
    // Each owner's span and its processes, in order of first invocation.
    let mut spans: BTreeMap<Owner<'a>, (u64, u64, Vec<&'a faultline_history::Process>)> =
        BTreeMap::new();
    for p in pairs {
        let end = p.complete.map_or(to_ns, |c| c.time);
        let e = spans
            .entry(owner(p))
            .or_insert((p.invoke.time, end, Vec::new()));
        e.0 = e.0.min(p.invoke.time);
        e.1 = e.1.max(end);
        if !e.2.contains(&&p.invoke.process) {
            e.2.push(&p.invoke.process);
        }
    }
    let mut order: Vec<(u64, u64, Owner<'a>)> =
        spans.iter().map(|(o, s)| (s.0, s.1, o.clone())).collect();
    order.sort();
    // Two bands, each filled like threads: the run, then the final band.
    let mut band: [(Vec<u64>, Vec<Vec<&'a faultline_history::Process>>); 2] =
        [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    let mut lane_in: BTreeMap<Owner<'a>, (usize, usize)> = BTreeMap::new();
    for (start, end, o) in order {
        let b = usize::from(band_from_ns.is_some_and(|t| start >= t));
        let (free_at, members) = &mut band[b];
        let lane = match free_at.iter().position(|&f| f < start) {
            Some(l) => l,
            None => {
                free_at.push(0);
                members.push(Vec::new());
                free_at.len() - 1
            }
        };
        free_at[lane] = end;
        members[lane].extend(spans[&o].2.iter().copied());
        lane_in.insert(o, (b, lane));
    }
    let first_band = band[0].1.len();
    let lane_of: BTreeMap<Owner<'a>, usize> = lane_in
        .into_iter()
        .map(|(o, (b, l))| (o, if b == 0 { l } else { first_band + l }))
        .collect();
    let [(_, run_members), (_, final_members)] = band;
    let final_labels = final_members
        .iter()
        .map(|m| format!("final {}", label_of(m)));
    let labels: Vec<String> = run_members
        .iter()
        .map(|m| label_of(m))
        .chain(final_labels)
        .collect();
    let lanes = pairs
        .iter()
        .map(|p| (&p.invoke.process, lane_of[&owner(p)]))
        .collect();
    (lanes, labels)
}

/// A lane's label: its first process, and how many followed.
fn label_of(m: &[&faultline_history::Process]) -> String {
    match m.len() {
        1 => format!("p{}", m[0]),
        n => format!("p{} +{}", m[0], n - 1),
    }
}
