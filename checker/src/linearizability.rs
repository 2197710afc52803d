//! Linearizability of a whole history: split by partition (key), search each
//! partition in parallel, and explain every partition that fails.

use crate::model::{Kv, Model, ModelKind, Register};
use crate::verdict::{Candidate, LinReport, OpRef, Step, UnknownKey, Validity, Witness};
use crate::wgl::{Budget, Exhausted, Failure, Item, Outcome, Search};
use faultline_history::{Fun, History, OpType, Pair, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A history op that the model cannot interpret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("op {index} ({op}): {message}")]
pub struct ModelError {
    /// Index of the invocation in the history.
    pub index: usize,
    /// The invocation, as text.
    pub op: String,
    /// Why the model rejects it.
    pub message: String,
}

/// How many ops of a prefix and of the concurrent set a witness keeps.
const PREFIX_KEEP: usize = 50;
const CONCURRENT_KEEP: usize = 100;

/// Checks `history` against the model named by `kind`, every key starting
/// from the model's initial value (`nil` for registers, `""` for kv).
pub fn check(
    history: &History,
    kind: ModelKind,
    budget: &Budget,
    threads: usize,
) -> Result<LinReport, ModelError> {
    check_from(history, kind, &RegisterOptions::default(), budget, threads)
}

/// How a register model reads a history (Knossos's choices).
#[derive(Clone, Debug, Default)]
pub struct RegisterOptions {
    /// Every register's value before the first op (`None`: nil), as
    /// Jepsen's `(model/cas-register 0)`.
    pub initial: Option<Value>,
    /// An ok read of nil constrains nothing, as Knossos reads it.
    pub nil_reads_unknown: bool,
}

/// Like [`check`], with the register models read as `opts` says (the kv
/// model takes no options: `opts` must be the default).
pub fn check_from(
    history: &History,
    kind: ModelKind,
    opts: &RegisterOptions,
    budget: &Budget,
    threads: usize,
) -> Result<LinReport, ModelError> {
    let register = |cas| Register {
        cas,
        initial: opts.initial.clone().unwrap_or(Value::Nil),
        nil_reads_unknown: opts.nil_reads_unknown,
    };
    match kind {
        ModelKind::Register => check_model(&register(false), history, budget, threads),
        ModelKind::CasRegister => check_model(&register(true), history, budget, threads),
        ModelKind::Kv => {
            assert!(
                opts.initial.is_none() && !opts.nil_reads_unknown,
                "the kv model takes no register options"
            );
            check_model(&Kv, history, budget, threads)
        }
    }
}

/// One partition ready to search: its key, items, and the history pairs.
struct Partition<'h, O> {
    key: Option<Value>,
    items: Vec<Item<O>>,
    pairs: Vec<Pair<'h>>,
}

/// Whether a pair is set aside by every model: a local read (only
/// sequentially consistent), a session op (ZAB.md §9: open, close, ping,
/// ephemeral create) or any op on a key some
/// `create-ephemeral` made (such keys vanish with their session, which no
/// register op says; the bench's `sessions` and `read-guarantees` checks
/// judge them from the servers' logs).
fn set_aside(pair: &Pair<'_>, ephemeral: &BTreeSet<&Value>) -> bool {
    pair.invoke.f.is_session()
        || pair.invoke.f == Fun::LocalRead
        || pair
            .invoke
            .key
            .as_ref()
            .is_some_and(|k| ephemeral.contains(k))
}

/// A history's partitions, and how many ops were set aside and how many
/// failed.
type Partitions<'h, O> = (Vec<Partition<'h, O>>, usize, usize);

/// The history's partitions, and how many ops were set aside.
fn partitions<'h, M: Model>(
    model: &M,
    history: &'h History,
    reductions: bool,
) -> Result<Partitions<'h, M::Op>, ModelError> {
    let mut parts: BTreeMap<Option<Value>, Partition<'h, M::Op>> = BTreeMap::new();
    let ephemeral: BTreeSet<&Value> = history
        .ops()
        .iter()
        .filter(|o| o.f == Fun::CreateEphemeral)
        .filter_map(|o| o.key.as_ref())
        .collect();
    let (mut aside, mut failed) = (0, 0);
    for pair in history.pairs() {
        if set_aside(&pair, &ephemeral) {
            aside += 1;
            continue;
        }
        let outcome = pair.outcome();
        if outcome == OpType::Fail {
            failed += 1;
            continue; // it did not happen
        }
        let prepared = model.prepare(&pair).map_err(|message| ModelError {
            index: pair.invoke_index,
            op: pair.invoke.to_string(),
            message,
        })?;
        let Some(op) = prepared else { continue };
        let key = model.partition(&pair);
        let part = parts.entry(key.clone()).or_insert_with(|| Partition {
            key,
            items: Vec::new(),
            pairs: Vec::new(),
        });
        part.items.push(Item {
            op,
            call: pair.invoke_index,
            ret: if outcome == OpType::Ok {
                pair.complete_index
            } else {
                None
            },
        });
        part.pairs.push(pair);
    }
    let mut parts: Vec<Partition<'h, M::Op>> = parts.into_values().collect();
    if reductions {
        for p in &mut parts {
            let view: Vec<(&M::Op, bool)> =
                p.items.iter().map(|i| (&i.op, i.ret.is_none())).collect();
            let prune = model.prunable(&view);
            assert_eq!(prune.len(), p.items.len(), "one answer per op");
            assert!(
                prune
                    .iter()
                    .zip(&p.items)
                    .all(|(x, i)| !x || i.ret.is_none()),
                "only optional ops may be pruned"
            );
            let mut keep = prune.iter().map(|x| !x);
            let mut keep2 = keep.clone();
            p.items.retain(|_| keep.next().expect("same length"));
            p.pairs.retain(|_| keep2.next().expect("same length"));
        }
    }
    Ok((parts, aside, failed))
}

/// How one partition's search ended.
enum PartEnd<S> {
    Done(Outcome<S>),
    /// Not searched to the end: another key was already found invalid.
    Skipped,
}

/// Steps every unfinished partition may take in the first round; each later
/// round doubles it.
const FIRST_ROUND_STEPS: u64 = 1 << 14;

/// Checks `history` against `model`, using up to `threads` threads (0: all
/// cores).
///
/// Partitions are searched in rounds with a doubling step limit. After the
/// first round in which some key is proven not linearizable, the remaining
/// searches stop (they are reported as skipped): one violation decides the
/// verdict, and a hard valid key must not hide an easy invalid one. Since
/// rounds are counted in steps, the report is the same whatever the thread
/// count, except where a wall-clock deadline cuts a search short.
pub fn check_model<M: Model>(
    model: &M,
    history: &History,
    budget: &Budget,
    threads: usize,
) -> Result<LinReport, ModelError> {
    let (parts, set_aside, failed) = partitions(model, history, !budget.no_reductions)?;
    let (ends, states) = run_rounds(model, &parts, budget, threads);
    let mut report = LinReport {
        result: Validity::Valid,
        model: model.name().to_string(),
        ops: parts.iter().map(|p| p.items.len()).sum(),
        keys: parts.len(),
        states_explored: states,
        anomalies: Vec::new(),
        unknown: Vec::new(),
        skipped: Vec::new(),
        set_aside,
        failed,
    };
    for (part, end) in parts.iter().zip(ends) {
        match end {
            PartEnd::Done(Outcome::Linearizable) => {}
            PartEnd::Done(Outcome::NotLinearizable(f)) => {
                report.anomalies.push(witness(model, part, &f))
            }
            PartEnd::Done(Outcome::Unknown(why)) => report.unknown.push(UnknownKey {
                key: part.key.clone(),
                ops: part.items.len(),
                reason: match why {
                    Exhausted::Deadline => "the time budget (--timeout) ran out".into(),
                    Exhausted::Steps => "the search step budget ran out".into(),
                    Exhausted::Memory => "the search memory budget ran out".into(),
                },
            }),
            PartEnd::Skipped => report.skipped.push(part.key.clone()),
        }
    }
    report.result = if !report.anomalies.is_empty() {
        Validity::Invalid
    } else if !report.unknown.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Ok(report)
}

fn run_rounds<M: Model>(
    model: &M,
    parts: &[Partition<'_, M::Op>],
    budget: &Budget,
    threads: usize,
) -> (Vec<PartEnd<M::State>>, u64) {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .max(1);
    let searches: Vec<Mutex<Search<'_, M>>> = parts
        .iter()
        .map(|p| Mutex::new(Search::new(model, &p.items, !budget.no_reductions)))
        .collect();
    // A verified certificate decides a partition without a search.
    let mut ends: Vec<Option<PartEnd<M::State>>> = parts
        .iter()
        .map(|p| {
            let proven = !budget.no_reductions
                && !budget.no_certificates
                && model
                    .certificate(&p.items)
                    .is_some_and(|order| crate::zones::verify(model, &p.items, &order));
            proven.then_some(PartEnd::Done(Outcome::Linearizable))
        })
        .collect();
    let mut limit = FIRST_ROUND_STEPS;
    loop {
        // Biggest partitions first, so one large key does not start last.
        let mut active: Vec<usize> = (0..parts.len()).filter(|&i| ends[i].is_none()).collect();
        if active.is_empty() {
            break;
        }
        active.sort_by_key(|&i| std::cmp::Reverse(parts[i].items.len()));
        let next = AtomicUsize::new(0);
        let work = || loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = active.get(k) else { break };
            searches[i]
                .lock()
                .expect("no panic holds it")
                .run(limit, budget);
        };
        let n = threads.min(active.len());
        if n == 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 0..n {
                    s.spawn(work);
                }
            });
        }
        let mut violated = false;
        for &i in &active {
            if let Some(o) = searches[i]
                .lock()
                .expect("no panic holds it")
                .take_outcome()
            {
                violated |= matches!(o, Outcome::NotLinearizable(_));
                ends[i] = Some(PartEnd::Done(o));
            }
        }
        if violated {
            for e in ends.iter_mut().filter(|e| e.is_none()) {
                *e = Some(PartEnd::Skipped);
            }
        }
        limit = limit.saturating_mul(2);
    }
    let states = searches
        .iter()
        .map(|s| s.lock().expect("no panic holds it").stats().states)
        .sum();
    (
        ends.into_iter()
            .map(|e| e.expect("every partition ended"))
            .collect(),
        states,
    )
}

fn op_ref<M: Model>(model: &M, part: &Partition<'_, M::Op>, i: usize) -> OpRef {
    let p = &part.pairs[i];
    OpRef {
        process: p.invoke.process.clone(),
        description: model.describe_op(&part.items[i].op),
        outcome: p.outcome(),
        invoke_index: p.invoke_index,
        complete_index: p.complete_index,
        invoke_time: p.invoke.time,
        complete_time: p.complete.map(|c| c.time),
    }
}

fn witness<M: Model>(model: &M, part: &Partition<'_, M::Op>, f: &Failure<M::State>) -> Witness {
    let blocked = &part.items[f.blocked];
    let ret = blocked.ret.expect("only required ops block");
    let in_prefix: std::collections::BTreeSet<usize> = f.prefix.iter().map(|(i, _)| *i).collect();
    let skip = f.prefix.len().saturating_sub(PREFIX_KEEP);
    let prefix = f.prefix[skip..]
        .iter()
        .map(|(i, s)| Step {
            op: op_ref(model, part, *i),
            state_after: model.describe_state(s),
        })
        .collect();
    // Ops whose intervals overlap the blocked op's: the ones a linearization
    // could order on either side of it.
    let mut concurrent: Vec<Candidate> = part
        .items
        .iter()
        .enumerate()
        .filter(|(i, it)| {
            *i != f.blocked && it.call < ret && it.ret.is_none_or(|r| r > blocked.call)
        })
        .map(|(i, it)| Candidate {
            op: op_ref(model, part, i),
            in_prefix: in_prefix.contains(&i),
            state_after: if in_prefix.contains(&i) {
                None
            } else {
                model
                    .step(&f.state, &it.op)
                    .map(|s| model.describe_state(&s))
            },
        })
        .collect();
    let concurrent_total = concurrent.len();
    concurrent.truncate(CONCURRENT_KEEP);
    let op = op_ref(model, part, f.blocked);
    let state = model.describe_state(&f.state);
    let key = match &part.key {
        Some(k) => format!("key {k}"),
        None => "the history".to_string(),
    };
    let legal = model.step(&f.state, &blocked.op).is_some();
    let explanation = format!(
        "No linearization of {key} places `{}` (process {}, ops {}..{}). \
         The longest linearizable prefix found ({} of {} ops) leaves the state at {}, \
         where the op is {}; no order of the {} operations concurrent with it \
         lets it take effect before it returned.",
        op.description,
        op.process,
        op.invoke_index,
        ret,
        f.prefix.len(),
        part.items.len(),
        state,
        if legal {
            "legal but leads to no complete linearization"
        } else {
            "illegal"
        },
        concurrent_total,
    );
    Witness {
        key: part.key.clone(),
        op,
        state,
        prefix_len: f.prefix.len(),
        prefix,
        concurrent_total,
        concurrent,
        explanation,
    }
}
