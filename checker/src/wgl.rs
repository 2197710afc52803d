//! The Wing–Gong–Lowe linearizability search for one partition.
//!
//! Events (calls and returns, in history order) sit in a doubly linked list.
//! The search walks the list from its head: at a call it tries to linearize
//! that op next (the model step must be legal and the pair (linearized set,
//! state) must be new to the cache), lifting the op's events out of the list
//! and restarting from the head; at a return of an op not yet linearized it
//! backtracks, since that op should have taken effect before it returned.
//! This is Lowe's "just-in-time" refinement of Wing & Gong with the state
//! cache Porcupine and Knossos use.
//!
//! Jepsen semantics: an op whose outcome is unknown (`info`, or never
//! completed) has no return event, so it never forces a backtrack; it is
//! *optional* and may be linearized at any point after its call, or never.
//! The search succeeds once every required (`ok`) op is linearized.
//!
//! Three sound reductions keep hot-key histories (one key, dozens of
//! clients, many crashed ops) tractable; each keeps a linearization
//! whenever one exists:
//! * Linearizing an optional op that leaves the state unchanged is skipped:
//!   it is equivalent to never linearizing it.
//! * **Just in time** (Lowe): an optional op is only ever followed by an op
//!   that is not blind (see [`Model::blind`]). An optional op followed by a
//!   blind op (a write) has its effect overwritten at once, so the same
//!   order without it is as legal; every linearization can be rewritten into
//!   one where crashed ops come just before an op that needs them. Whether
//!   the last linearized op is optional is part of the cached configuration.
//! * **Commuting reads**: a required read-only op ([`Model::read_only`])
//!   that is legal now is linearized at once, without trying alternatives:
//!   moving it to the front of any linearization from here keeps that
//!   linearization legal (the op is legal here, it changes nothing for the
//!   ops after it, and every op that had to precede it already has). So when that branch fails (or
//!   its configuration was already explored), the configuration it was
//!   taken from fails too, and the search backs up past it.
//!
//! The linearized set is a bitset identified in the cache by an incremental
//! Zobrist hash; cache entries live in flat arenas (no allocation per state).

use crate::model::Model;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};
use std::time::Instant;

/// One op of a partition, ready for the search.
#[derive(Clone, Debug)]
pub struct Item<O> {
    /// The model op.
    pub op: O,
    /// Position of the invocation in the history.
    pub call: usize,
    /// Position of the completion for a required (`ok`) op; `None` for an
    /// optional op (outcome unknown).
    pub ret: Option<usize>,
}

/// Limits on a search. A search that hits one ends `Unknown`, never with a
/// wrong answer.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    /// Wall-clock deadline for the whole check.
    pub deadline: Option<Instant>,
    /// Deterministic cap on search steps per partition.
    pub max_steps: Option<u64>,
    /// Cap on the bytes of one partition's search cache (bounds memory).
    pub max_bytes: Option<usize>,
    /// Skip the sound reductions: the pruning before the search (see
    /// [`crate::Model::prunable`]) and the just-in-time and commuting-read
    /// rules inside it (see the module documentation); for side-by-side
    /// measurements only: the verdict is the same either way.
    pub no_reductions: bool,
    /// Skip the certificates found without a search (see
    /// [`crate::Model::certificate`], the zones of a register): every
    /// partition is searched. For side-by-side measurements only.
    pub no_certificates: bool,
}

/// Why a search stopped without a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhausted {
    /// The wall-clock deadline passed.
    Deadline,
    /// `max_steps` was reached.
    Steps,
    /// `max_bytes` was reached.
    Memory,
}

/// The deepest point a failed search reached.
#[derive(Clone, Debug)]
pub struct Failure<S> {
    /// Items linearized, in order, each with the state after it.
    pub prefix: Vec<(usize, S)>,
    /// The required item whose return was reached before it could be
    /// linearized after that prefix.
    pub blocked: usize,
    /// The state after the prefix.
    pub state: S,
}

/// The outcome of one partition's search.
#[derive(Clone, Debug)]
pub enum Outcome<S> {
    /// A linearization exists.
    Linearizable,
    /// None exists; the deepest failure found.
    NotLinearizable(Failure<S>),
    /// The budget ran out.
    Unknown(Exhausted),
}

/// One linearized op on the search stack.
#[derive(Clone, Debug)]
struct Frame<S> {
    /// The item.
    item: usize,
    /// The state before it.
    prev: S,
    /// Taken as a commuting read: no alternative is tried in its place.
    forced: bool,
}

/// Counters of one search.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Search steps (list positions visited).
    pub steps: u64,
    /// Distinct (linearized set, state) pairs cached.
    pub states: u64,
}

const NONE: u32 = u32::MAX;

/// Cache of visited (linearized set, state) configurations.
struct Cache<S> {
    words: usize,
    heads: FxHashMap<u64, u32>,
    bits: Vec<u64>,
    states: Vec<S>,
    chain: Vec<u32>,
}

impl<S: Eq + Clone> Cache<S> {
    fn new(words: usize) -> Self {
        Cache {
            words,
            heads: FxHashMap::default(),
            bits: Vec::new(),
            states: Vec::new(),
            chain: Vec::new(),
        }
    }
}

impl<S> Cache<S> {
    fn len(&self) -> u64 {
        self.states.len() as u64
    }

    /// Bytes held, not counting heap data owned by states.
    fn bytes(&self) -> usize {
        self.bits.capacity() * 8
            + self.states.capacity() * std::mem::size_of::<S>()
            + self.chain.capacity() * 4
            + self.heads.capacity() * 16
    }
}

impl<S: Eq + Clone> Cache<S> {
    /// Inserts the configuration; false if it was already there.
    fn insert(&mut self, hash: u64, bits: &[u64], state: &S) -> bool {
        let new = self.states.len() as u32;
        let head = self.heads.entry(hash).or_insert(NONE);
        let mut e = *head;
        while e != NONE {
            let at = e as usize * self.words;
            if self.states[e as usize] == *state && &self.bits[at..at + self.words] == bits {
                return false;
            }
            e = self.chain[e as usize];
        }
        self.chain.push(*head);
        *head = new;
        self.bits.extend_from_slice(bits);
        self.states.push(state.clone());
        true
    }
}

/// Zobrist keys for `n` items: fixed, well-mixed 64-bit values (seeded,
/// so that searches are reproducible).
fn zobrist_keys(n: usize) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5EED_2B15_7A0C_4E55);
    (0..n).map(|_| rng.random()).collect()
}

fn state_hash<S: Hash>(s: &S) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The event list: node 0 is the head, node `n+1` the tail, events between.
struct List {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// per node: item index, and whether it is the item's call
    item: Vec<u32>,
    is_call: Vec<bool>,
    call_node: Vec<u32>,
    ret_node: Vec<u32>,
}

impl List {
    fn new<O>(items: &[Item<O>]) -> List {
        let mut events: Vec<(usize, u32, bool)> = Vec::with_capacity(items.len() * 2);
        for (i, it) in items.iter().enumerate() {
            events.push((it.call, i as u32, true));
            if let Some(r) = it.ret {
                assert!(r > it.call, "an op must return after its call");
                events.push((r, i as u32, false));
            }
        }
        events.sort_unstable_by_key(|e| e.0);
        let n = events.len();
        let mut l = List {
            next: (1..=n as u32 + 1).chain([NONE]).collect(),
            prev: [NONE].into_iter().chain(0..=n as u32).collect(),
            item: vec![NONE; n + 2],
            is_call: vec![false; n + 2],
            call_node: vec![NONE; items.len()],
            ret_node: vec![NONE; items.len()],
        };
        for (k, &(_, i, call)) in events.iter().enumerate() {
            let node = k as u32 + 1;
            l.item[node as usize] = i;
            l.is_call[node as usize] = call;
            if call {
                l.call_node[i as usize] = node;
            } else {
                l.ret_node[i as usize] = node;
            }
        }
        l
    }

    fn tail(&self) -> u32 {
        self.next.len() as u32 - 1
    }

    fn unlink(&mut self, x: u32) {
        let (p, n) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn relink(&mut self, x: u32) {
        let (p, n) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = x;
        self.prev[n as usize] = x;
    }

    fn lift(&mut self, i: usize) {
        self.unlink(self.call_node[i]);
        if self.ret_node[i] != NONE {
            self.unlink(self.ret_node[i]);
        }
    }

    fn unlift(&mut self, i: usize) {
        if self.ret_node[i] != NONE {
            self.relink(self.ret_node[i]);
        }
        self.relink(self.call_node[i]);
    }
}

/// A resumable search over one partition: [`Search::run`] advances it by a
/// number of steps, so a driver can interleave many partitions and stop them
/// all deterministically once one is found invalid.
pub struct Search<'a, M: Model> {
    model: &'a M,
    items: &'a [Item<M::Op>],
    list: List,
    zobrist: Vec<u64>,
    bits: Vec<u64>,
    zob: u64,
    cache: Cache<M::State>,
    stack: Vec<Frame<M::State>>,
    state: M::State,
    /// Per item: whether it is blind ([`Model::blind`]).
    blind: Vec<bool>,
    /// Per item: whether it is read-only ([`Model::read_only`]).
    read_only: Vec<bool>,
    remaining: usize,
    cur: u32,
    best: Option<Failure<M::State>>,
    stats: Stats,
    done: Option<Outcome<M::State>>,
}

impl<'a, M: Model> Search<'a, M> {
    /// Prepares a search of `items` under `model`, with the just-in-time
    /// and commuting-read reductions unless `reductions` is false (for
    /// side-by-side measurements: the verdict is the same either way).
    pub fn new(model: &'a M, items: &'a [Item<M::Op>], reductions: bool) -> Self {
        assert!(items.len() < NONE as usize / 2, "partition too large");
        let list = List::new(items);
        // One bit per item, and one (index `items.len()`) for "the last
        // linearized op is optional" (the just-in-time restriction).
        let words = (items.len() + 1).div_ceil(64);
        let remaining = items.iter().filter(|it| it.ret.is_some()).count();
        let cur = list.next[0];
        Search {
            model,
            items,
            list,
            zobrist: zobrist_keys(items.len() + 1),
            bits: vec![0u64; words],
            zob: 0,
            cache: Cache::new(words),
            stack: Vec::new(),
            state: model.init(),
            blind: items
                .iter()
                .map(|it| reductions && model.blind(&it.op))
                .collect(),
            read_only: items
                .iter()
                .map(|it| reductions && model.read_only(&it.op))
                .collect(),
            remaining,
            cur,
            best: None,
            stats: Stats::default(),
            done: (remaining == 0).then_some(Outcome::Linearizable),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            steps: self.stats.steps,
            states: self.cache.len(),
        }
    }

    /// Approximate bytes held by the cache (bitsets, states, index).
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Runs until the search ends or `self.stats().steps` reaches
    /// `step_limit`; `None` means paused (call again with a higher limit).
    /// The budget's limits end the search as `Unknown`.
    pub fn run(&mut self, step_limit: u64, budget: &Budget) -> Option<&Outcome<M::State>> {
        while self.done.is_none() && self.stats.steps < step_limit {
            self.stats.steps += 1;
            if self.stats.steps & 1023 == 0 {
                if let Some(why) = exhausted(budget, &self.stats, &self.cache) {
                    self.done = Some(Outcome::Unknown(why));
                    break;
                }
            }
            self.step();
        }
        self.done.as_ref()
    }

    /// Runs to the end (or until the budget runs out).
    pub fn finish(mut self, budget: &Budget) -> (Outcome<M::State>, Stats) {
        self.run(u64::MAX, budget);
        let stats = self.stats();
        (self.done.expect("ran to the end"), stats)
    }

    /// Takes the outcome of a finished search.
    pub fn take_outcome(&mut self) -> Option<Outcome<M::State>> {
        self.done.take()
    }

    fn flip(&mut self, i: usize) {
        self.bits[i / 64] ^= 1 << (i % 64);
        self.zob ^= self.zobrist[i];
    }

    /// Whether the last linearized op is optional: then the next one must
    /// not be blind (just in time).
    fn restricted(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|f| self.items[f.item].ret.is_none())
    }

    /// One position of the walk.
    fn step(&mut self) {
        let cur = self.cur;
        assert!(
            cur != self.list.tail(),
            "every required op's return precedes the tail"
        );
        let i = self.list.item[cur as usize] as usize;
        if !self.list.is_call[cur as usize] {
            // The return of an op not yet linearized: back up.
            return self.back_up(i);
        }
        self.cur = self.list.next[cur as usize];
        let it = &self.items[i];
        let optional = it.ret.is_none();
        if self.blind[i] && self.restricted() {
            return;
        }
        let Some(next) = self.model.step(&self.state, &it.op) else {
            return;
        };
        let unchanged = next == self.state;
        if optional && unchanged {
            return;
        }
        let forced = !optional && self.read_only[i];
        let was = self.restricted();
        self.flip(i);
        if was != optional {
            self.flip(self.items.len());
        }
        if self
            .cache
            .insert(self.zob ^ state_hash(&next), &self.bits, &next)
        {
            let prev = std::mem::replace(&mut self.state, next);
            self.stack.push(Frame {
                item: i,
                prev,
                forced,
            });
            self.list.lift(i);
            if !optional {
                self.remaining -= 1;
                if self.remaining == 0 {
                    self.done = Some(Outcome::Linearizable);
                }
            }
            self.cur = self.list.next[0];
            return;
        }
        self.flip(i);
        if was != optional {
            self.flip(self.items.len());
        }
        if forced {
            // Its configuration was explored and failed, so this one has.
            self.back_up(i);
        }
    }

    /// Undoes linearizations until one whose alternatives are still worth
    /// trying (a commuting read has none), and resumes after it. `blocked`
    /// is the item that could not be placed, for the failure report.
    fn back_up(&mut self, blocked: usize) {
        if self
            .best
            .as_ref()
            .is_none_or(|b| self.stack.len() > b.prefix.len())
        {
            self.best = Some(failure(&self.stack, &self.state, blocked));
        }
        loop {
            let was = self.restricted();
            let Some(f) = self.stack.pop() else {
                let f = self.best.take().expect("recorded above");
                self.done = Some(Outcome::NotLinearizable(f));
                return;
            };
            self.state = f.prev;
            self.flip(f.item);
            if was != self.restricted() {
                self.flip(self.items.len());
            }
            self.list.unlift(f.item);
            if self.items[f.item].ret.is_some() {
                self.remaining += 1;
            }
            self.cur = self.list.next[self.list.call_node[f.item] as usize];
            if !f.forced {
                return;
            }
        }
    }
}

/// Searches for a linearization of `items` under `model`, to the end or
/// until the budget runs out.
pub fn search<M: Model>(
    model: &M,
    items: &[Item<M::Op>],
    budget: &Budget,
) -> (Outcome<M::State>, Stats) {
    Search::new(model, items, !budget.no_reductions).finish(budget)
}

fn exhausted<S>(b: &Budget, stats: &Stats, cache: &Cache<S>) -> Option<Exhausted> {
    if b.max_steps.is_some_and(|m| stats.steps >= m) {
        return Some(Exhausted::Steps);
    }
    if b.max_bytes.is_some_and(|m| cache.bytes() >= m) {
        return Some(Exhausted::Memory);
    }
    if b.deadline.is_some_and(|d| Instant::now() >= d) {
        return Some(Exhausted::Deadline);
    }
    None
}

fn failure<S: Clone>(stack: &[Frame<S>], state: &S, blocked: usize) -> Failure<S> {
    let prefix = stack
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let after = stack.get(k + 1).map(|g| &g.prev).unwrap_or(state);
            (f.item, after.clone())
        })
        .collect();
    Failure {
        prefix,
        blocked,
        state: state.clone(),
    }
}
