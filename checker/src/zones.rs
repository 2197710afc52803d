//! A fast path for one register with unique values: build a candidate
//! linearization in O(n log n) from the history's zones, then verify it.
//!
//! When every value is written at most once, each read and each
//! compare-and-set says which op it reads from, and a legal sequential
//! history of one register is a sequence of *zones*: the op that produced
//! a value, then the reads of that value (in any order), ended by the next
//! op that changes the state. A compare-and-set `a -> b` must directly
//! follow the zone of `a`, so zones linked by cas form *chains* that stay
//! contiguous; a blind write starts a chain (Gibbons & Korach's zones for
//! read/write registers, extended to cas chains). Chains must then be
//! ordered so that no op of a later chain returned before an op of an
//! earlier one was invoked: chain `A` must precede `B` when the earliest
//! return in `A` comes before the latest call in `B`, and an order exists
//! iff repeatedly some chain has no such predecessor left.
//!
//! Crashed (optional) ops enter only when a value they produce is needed
//! (read, or expected by a cas that is itself in); the rest never
//! happened. Whatever this module builds is only a *candidate*:
//! [`verify`] replays it through the model and checks real-time order, so
//! a `Valid` verdict from this path is proven by the order it found. When
//! the preconditions fail (a value written twice, a write of the initial
//! value) or no candidate is found, the caller searches as usual: this
//! path never says `invalid`.

use crate::model::{Model, RegisterOp};
use crate::wgl::Item;
use faultline_history::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What a register op does, for zones.
enum Kind<'a> {
    /// Needs the state to be this value and leaves it (a read, or a cas
    /// whose target is its expected value).
    Read(&'a Value),
    /// Sets the state to this value whatever it was.
    Write(&'a Value),
    /// Needs the first value, sets the second.
    Cas(&'a Value, &'a Value),
}

fn kind(op: &RegisterOp) -> Kind<'_> {
    match op {
        RegisterOp::Read(v) => Kind::Read(v),
        RegisterOp::Write(v) => Kind::Write(v),
        RegisterOp::Cas(a, b) if a == b => Kind::Read(a),
        RegisterOp::Cas(a, b) => Kind::Cas(a, b),
    }
}

/// The value an op needs the register to hold, if any.
fn needs<'a>(k: &Kind<'a>) -> Option<&'a Value> {
    match k {
        Kind::Read(v) | Kind::Cas(v, _) => Some(v),
        Kind::Write(_) => None,
    }
}

/// A candidate linearization of one register partition starting at
/// `initial` (indices into `items`, optional ops that never happened left
/// out), or `None` when the zones do not apply or yield no order.
pub fn candidate(items: &[Item<RegisterOp>], initial: &Value) -> Option<Vec<usize>> {
    let kinds: Vec<Kind> = items.iter().map(|it| kind(&it.op)).collect();
    // Unique values: the one op that produces each value.
    let mut producer: BTreeMap<&Value, usize> = BTreeMap::new();
    for (i, k) in kinds.iter().enumerate() {
        if let Kind::Write(v) | Kind::Cas(_, v) = k {
            if *v == initial || producer.insert(v, i).is_some() {
                return None;
            }
        }
    }
    // The ops that must happen: every required op, and the producer of
    // every value an op that happens needs.
    let mut included = vec![false; items.len()];
    let mut work: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].ret.is_some())
        .collect();
    for &i in &work {
        included[i] = true;
    }
    while let Some(i) = work.pop() {
        let Some(v) = needs(&kinds[i]) else { continue };
        if v == initial {
            continue;
        }
        let &p = producer.get(v)?; // a value nobody wrote: no order exists
        if !included[p] {
            included[p] = true;
            work.push(p);
        }
    }
    // Who reads each value, and the (single) cas that leaves it.
    let mut readers: BTreeMap<&Value, Vec<usize>> = BTreeMap::new();
    let mut leaver: BTreeMap<&Value, usize> = BTreeMap::new();
    for i in (0..items.len()).filter(|&i| included[i]) {
        match kinds[i] {
            Kind::Read(v) => readers.entry(v).or_default().push(i),
            Kind::Cas(a, _) => {
                if leaver.insert(a, i).is_some() {
                    return None; // two ops leave the same value
                }
            }
            Kind::Write(_) => {}
        }
    }
    // Chains: the initial value's first, then one per included blind
    // write, each following its cas links.
    let chain = |start: Option<usize>, first: &Value| -> Vec<usize> {
        let mut ops: Vec<usize> = start.into_iter().collect();
        let mut v = first;
        loop {
            if let Some(r) = readers.get(v) {
                ops.extend(r);
            }
            match leaver.get(v) {
                Some(&c) => {
                    ops.push(c);
                    let Kind::Cas(_, to) = kinds[c] else {
                        unreachable!("only a cas leaves a value")
                    };
                    v = to;
                }
                None => return ops,
            }
        }
    };
    let init = chain(None, initial);
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for i in (0..items.len()).filter(|&i| included[i]) {
        if let Kind::Write(v) = kinds[i] {
            chains.push(chain(Some(i), v));
        }
    }
    let placed = init.len() + chains.iter().map(Vec::len).sum::<usize>();
    if placed != included.iter().filter(|x| **x).count() {
        return None;
    }
    let mut order = init;
    for c in order_chains(items, &chains)? {
        order.extend(&chains[c]);
    }
    Some(order)
}

/// Orders chains so that none must follow a later one: chain `A` must
/// precede `B` when the earliest return in `A` is before the latest call
/// in `B`. Repeatedly takes a chain no remaining chain must precede.
fn order_chains(items: &[Item<RegisterOp>], chains: &[Vec<usize>]) -> Option<Vec<usize>> {
    let first_ret = |c: &Vec<usize>| {
        c.iter()
            .filter_map(|&i| items[i].ret)
            .min()
            .unwrap_or(usize::MAX)
    };
    let last_call = |c: &Vec<usize>| c.iter().map(|&i| items[i].call).max().unwrap_or(0);
    let f: Vec<usize> = chains.iter().map(first_ret).collect();
    let s: Vec<usize> = chains.iter().map(last_call).collect();
    let mut by_f: BTreeSet<(usize, usize)> = (0..chains.len()).map(|c| (f[c], c)).collect();
    let mut by_s: BTreeSet<(usize, usize)> = (0..chains.len()).map(|c| (s[c], c)).collect();
    let mut out = Vec::with_capacity(chains.len());
    while let Some(&(f1, m)) = by_f.first() {
        // B may go next iff s_B <= min f over the others: for B != m that
        // is f1; for m itself, the second smallest f.
        let f2 = by_f.iter().nth(1).map_or(usize::MAX, |&(x, _)| x);
        let mut next = None;
        for &(sb, b) in by_s.iter().take(2) {
            let bound = if b == m { f2 } else { f1 };
            if sb <= bound {
                next = Some(b);
                break;
            }
        }
        if next.is_none() && s[m] <= f2 {
            next = Some(m);
        }
        let b = next?;
        by_f.remove(&(f[b], b));
        by_s.remove(&(s[b], b));
        out.push(b);
    }
    Some(out)
}

/// Whether `order` is a linearization of `items`: every required op
/// appears, no op twice, each is legal in the state the ones before it
/// leave, and no op returned before an op placed ahead of it was invoked.
pub fn verify<M: Model>(model: &M, items: &[Item<M::Op>], order: &[usize]) -> bool {
    let mut seen = vec![false; items.len()];
    let mut state = model.init();
    let mut max_call = None;
    for &i in order {
        if i >= items.len() || std::mem::replace(&mut seen[i], true) {
            return false;
        }
        let it = &items[i];
        if let (Some(r), Some(c)) = (it.ret, max_call) {
            if r < c {
                return false;
            }
        }
        max_call = max_call.max(Some(it.call));
        match model.step(&state, &it.op) {
            Some(next) => state = next,
            None => return false,
        }
    }
    items
        .iter()
        .zip(&seen)
        .all(|(it, s)| *s || it.ret.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Register;

    fn it(op: RegisterOp, call: usize, ret: Option<usize>) -> Item<RegisterOp> {
        Item { op, call, ret }
    }
    fn v(i: i64) -> Value {
        Value::Int(i)
    }

    fn linearizes(items: &[Item<RegisterOp>]) -> bool {
        candidate(items, &Value::Nil).is_some_and(|o| verify(&Register::new(true), items, &o))
    }

    #[test]
    fn chains_of_cas_and_reads_are_ordered() {
        use RegisterOp::*;
        // w1 [0,3]; cas 1->2 [1,5]; read 2 [6,7]; w3 [4,9]; read 3 [10,11]
        let items = [
            it(Write(v(1)), 0, Some(3)),
            it(Cas(v(1), v(2)), 1, Some(5)),
            it(Read(v(2)), 6, Some(7)),
            it(Write(v(3)), 4, Some(9)),
            it(Read(v(3)), 10, Some(11)),
        ];
        assert!(linearizes(&items));
        // read nil after a write returned: no order.
        let items = [
            it(Write(v(1)), 0, Some(1)),
            it(Read(Value::Nil), 2, Some(3)),
        ];
        assert!(!linearizes(&items));
    }

    #[test]
    fn crashed_producers_enter_only_when_needed() {
        use RegisterOp::*;
        let items = [
            it(Write(v(1)), 0, None),
            it(Write(v(2)), 1, None),
            it(Read(v(2)), 2, Some(3)),
        ];
        let o = candidate(&items, &Value::Nil).unwrap();
        assert_eq!(o, vec![1, 2]);
        assert!(verify(&Register::new(true), &items, &o));
    }

    #[test]
    fn repeated_values_fall_back() {
        use RegisterOp::*;
        let items = [it(Write(v(1)), 0, Some(1)), it(Write(v(1)), 2, Some(3))];
        assert!(candidate(&items, &Value::Nil).is_none());
    }

    #[test]
    fn verify_rejects_a_bad_order() {
        use RegisterOp::*;
        let items = [it(Write(v(1)), 0, Some(1)), it(Write(v(2)), 2, Some(3))];
        let m = Register::new(true);
        assert!(verify(&m, &items, &[0, 1]));
        assert!(!verify(&m, &items, &[1, 0]), "real-time order");
        assert!(!verify(&m, &items, &[0]), "a required op left out");
        assert!(!verify(&m, &items, &[0, 0, 1]), "an op twice");
    }
}
