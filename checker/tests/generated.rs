//! Generated histories: those of a true concurrent register are always
//! linearizable; with one read altered, the verdict must match an exhaustive
//! search that follows the definition directly.

use faultline_checker::synth::{register_history, SynthConfig};
use faultline_checker::{check, Budget, Model, ModelKind, Register, RegisterOp, Validity};
use faultline_history::{History, Op, OpType, Value};

/// One op as the definition sees it: it is in the linearization if required
/// (`ok`); an `info` op may or may not be; `fail` ops do not exist.
struct Def {
    op: RegisterOp,
    call: usize,
    ret: Option<usize>,
}

fn definition_ops(h: &History) -> Vec<Vec<Def>> {
    let m = Register::new(true);
    let mut by_key: std::collections::BTreeMap<Option<Value>, Vec<Def>> = Default::default();
    for p in h.pairs() {
        if p.outcome() == OpType::Fail {
            continue;
        }
        if let Some(op) = m.prepare(&p).unwrap() {
            by_key.entry(p.invoke.key.clone()).or_default().push(Def {
                op,
                call: p.invoke_index,
                ret: if p.outcome() == OpType::Ok {
                    p.complete_index
                } else {
                    None
                },
            });
        }
    }
    by_key.into_values().collect()
}

/// Tries every order: an op may come next when no op left out of the order
/// so far had to return before it was invoked.
fn exhaustive(ops: &[Def], done: &mut Vec<bool>, state: &Value) -> bool {
    let m = Register::new(true);
    if ops
        .iter()
        .zip(done.iter())
        .all(|(o, d)| *d || o.ret.is_none())
    {
        return true;
    }
    for i in 0..ops.len() {
        if done[i] {
            continue;
        }
        let blocked = ops
            .iter()
            .zip(done.iter())
            .any(|(o, d)| !*d && o.ret.is_some_and(|r| r < ops[i].call));
        if blocked {
            continue;
        }
        if let Some(next) = m.step(state, &ops[i].op) {
            done[i] = true;
            let ok = exhaustive(ops, done, &next);
            done[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

fn definition_verdict(h: &History) -> Validity {
    for ops in definition_ops(h) {
        let mut done = vec![false; ops.len()];
        if !exhaustive(&ops, &mut done, &Value::Nil) {
            return Validity::Invalid;
        }
    }
    Validity::Valid
}

fn wgl_verdict(h: &History) -> Validity {
    check(h, ModelKind::CasRegister, &Budget::default(), 1)
        .unwrap()
        .result
}

fn small_config(seed: u64) -> SynthConfig {
    small_config_with(seed, 0.15)
}

fn small_config_with(seed: u64, info_probability: f64) -> SynthConfig {
    SynthConfig {
        seed,
        processes: 2 + (seed % 3) as usize,
        keys: (seed % 2) as usize,
        ops: 4 + (seed % 5) as usize,
        cas: !seed.is_multiple_of(4),
        values: 3,
        fail_probability: 0.1,
        info_probability,
    }
}

#[test]
fn true_register_histories_are_linearizable() {
    for seed in 0..400 {
        let cfg = SynthConfig {
            seed,
            processes: 1 + (seed % 7) as usize,
            keys: (seed % 4) as usize,
            ops: 10 + (seed % 90) as usize,
            cas: !seed.is_multiple_of(3),
            values: 2 + (seed % 5) as i64,
            fail_probability: 0.1,
            info_probability: if seed.is_multiple_of(5) { 0.0 } else { 0.05 },
        };
        let h = register_history(&cfg);
        assert_eq!(wgl_verdict(&h), Validity::Valid, "seed {seed}: {cfg:?}");
    }
}

#[test]
fn exhaustive_search_agrees_on_unaltered_histories() {
    for seed in 0..300 {
        let h = register_history(&small_config(seed));
        assert_eq!(definition_verdict(&h), Validity::Valid, "seed {seed}");
    }
}

#[test]
fn altered_reads_match_exhaustive_search() {
    altered_reads_agree(0.15);
}

/// With many crashed ops, most of them pruned before the search (a crashed
/// write whose value nobody observed): the verdicts still agree with the
/// exhaustive search, which prunes nothing.
#[test]
fn altered_reads_with_many_crashed_ops_match_exhaustive_search() {
    altered_reads_agree(0.35);
}

fn altered_reads_agree(info_probability: f64) {
    altered_agree(
        |seed| small_config_with(seed, info_probability),
        |_, old| {
            // Any other value (or nil): a read of something never written,
            // or a value that was written but at the wrong time.
            [
                Value::Nil,
                Value::Int(0),
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
            ]
            .into_iter()
            .filter(|v| v != old)
            .collect()
        },
    );
}

/// Alters one ok read per generated history (seeds 0..1500) into one of
/// `alternatives(ops, old value)` and requires the checker's verdict to be
/// the exhaustive search's; both answers must occur often.
fn altered_agree(
    config: impl Fn(u64) -> SynthConfig,
    alternatives: impl Fn(&[Op], &Value) -> Vec<Value>,
) {
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..1500 {
        let h = register_history(&config(seed));
        let mut ops: Vec<Op> = h.ops().to_vec();
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].kind == OpType::Ok && ops[i].f == faultline_history::Fun::Read)
            .collect();
        if reads.is_empty() {
            continue;
        }
        let i = reads[seed as usize % reads.len()];
        let old = ops[i].value.clone();
        let candidates = alternatives(&ops, &old);
        if candidates.is_empty() {
            continue;
        }
        ops[i].value = candidates[(seed / 7) as usize % candidates.len()].clone();
        let altered = History::new(ops).unwrap();
        let want = definition_verdict(&altered);
        assert_eq!(
            wgl_verdict(&altered),
            want,
            "seed {seed}: read at op {i} altered from {old}"
        );
        match want {
            Validity::Valid => valid += 1,
            _ => invalid += 1,
        }
    }
    // The test means something only if both answers occur often.
    assert!(
        valid > 100 && invalid > 100,
        "valid {valid}, invalid {invalid}"
    );
}

#[test]
fn verdict_does_not_depend_on_threads() {
    for seed in 0..20 {
        let cfg = SynthConfig {
            seed,
            keys: 20,
            ops: 2000,
            processes: 8,
            ..SynthConfig::default()
        };
        let mut ops = register_history(&cfg).into_ops();
        // break one read on some key
        let i = ops
            .iter()
            .position(|o| o.kind == OpType::Ok && o.f == faultline_history::Fun::Read)
            .unwrap();
        ops[i].value = Value::Int(99);
        let h = History::new(ops).unwrap();
        let one = check(&h, ModelKind::CasRegister, &Budget::default(), 1).unwrap();
        let four = check(&h, ModelKind::CasRegister, &Budget::default(), 4).unwrap();
        assert_eq!(one.result, Validity::Invalid);
        assert_eq!(one, four, "seed {seed}");
    }
}

/// The zones fast path is complete on what it accepts: every generated
/// history of a true register with unique values (linearizable by
/// construction), crashed ops and cas included, gets a verified order
/// without a search.
#[test]
fn zones_order_every_true_register_with_unique_values() {
    use faultline_checker::wgl::Item;
    use faultline_checker::zones;
    let m = Register::new(true);
    let mut decided = 0;
    for seed in 0..400 {
        let cfg = SynthConfig {
            seed,
            processes: 1 + (seed % 40) as usize,
            keys: (seed % 3) as usize,
            ops: 50 + (seed % 400) as usize,
            cas: !seed.is_multiple_of(3),
            values: 1 << 40,
            fail_probability: 0.05,
            info_probability: [0.0, 0.01, 0.1, 0.3][(seed % 4) as usize],
        };
        let h = register_history(&cfg);
        for ops in definition_ops(&h) {
            let items: Vec<Item<RegisterOp>> = ops
                .iter()
                .map(|d| Item {
                    op: d.op.clone(),
                    call: d.call,
                    ret: d.ret,
                })
                .collect();
            let order = zones::candidate(&items, &Value::Nil)
                .unwrap_or_else(|| panic!("seed {seed}: no candidate for {cfg:?}"));
            assert!(zones::verify(&m, &items, &order), "seed {seed}: {cfg:?}");
            decided += 1;
        }
    }
    assert!(decided >= 400, "{decided}");
}

/// With unique values, altered reads still get the exhaustive search's
/// verdict (the zones decide the valid ones, the search the rest).
#[test]
fn altered_reads_with_unique_values_match_exhaustive_search() {
    altered_agree(
        |seed| SynthConfig {
            values: 1 << 40,
            ..small_config_with(seed, 0.25)
        },
        |ops, old| {
            // Another written value, or nil: a read at the wrong time, not
            // of a value never written.
            ops.iter()
                .filter(|o| o.kind == OpType::Invoke && o.f == faultline_history::Fun::Write)
                .map(|o| o.value.clone())
                .chain([Value::Nil])
                .filter(|v| v != old)
                .collect()
        },
    );
}
