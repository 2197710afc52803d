//! The Wing–Gong–Lowe search on small partitions: Porcupine's quiz
//! examples, optional (crashed) ops, the just-in-time and commuting-read
//! reductions, and the budget.

use faultline_checker::wgl::{search, Budget, Exhausted, Item, Outcome};
use faultline_checker::{Register, RegisterOp};
use faultline_history::Value;

fn it(op: RegisterOp, call: usize, ret: Option<usize>) -> Item<RegisterOp> {
    Item { op, call, ret }
}

fn w(v: i64) -> RegisterOp {
    RegisterOp::Write(Value::Int(v))
}

fn r(v: i64) -> RegisterOp {
    RegisterOp::Read(Value::Int(v))
}

fn verdict(items: &[Item<RegisterOp>]) -> Outcome<Value> {
    search(&Register::new(true), items, &Budget::default()).0
}

// The 6.824 quiz examples Porcupine tests with.
#[test]
fn concurrent_reads_of_a_write() {
    // write 100 [0,100]; read->100 [25,75]; read->0... initial is nil here,
    // so use write 0 first.
    let items = [
        it(w(0), 0, Some(1)),
        it(w(100), 2, Some(9)),
        it(r(100), 3, Some(6)),
        it(r(0), 4, Some(5)),
    ];
    assert!(matches!(verdict(&items), Outcome::Linearizable));
    let items = [
        it(w(0), 0, Some(1)),
        it(w(200), 2, Some(9)),
        it(r(200), 3, Some(4)),
        it(r(0), 5, Some(6)),
    ];
    match verdict(&items) {
        Outcome::NotLinearizable(f) => {
            assert_eq!(f.blocked, 3);
            assert_eq!(f.state, Value::Int(200));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn optional_ops_may_happen_late_or_never() {
    // an unknown write of 1, then a read of nil and a later read of 1
    let items = [it(w(1), 0, None), it(r(0), 1, Some(2))];
    assert!(matches!(verdict(&items), Outcome::NotLinearizable(_)));
    let items = [
        it(RegisterOp::Read(Value::Nil), 1, Some(2)),
        it(w(1), 0, None),
        it(r(1), 3, Some(4)),
        it(RegisterOp::Read(Value::Nil), 5, Some(6)),
    ];
    assert!(matches!(verdict(&items), Outcome::NotLinearizable(_)));
    let items = [
        it(RegisterOp::Read(Value::Nil), 1, Some(2)),
        it(w(1), 0, None),
        it(RegisterOp::Read(Value::Nil), 3, Some(4)),
        it(r(1), 5, Some(6)),
    ];
    assert!(matches!(verdict(&items), Outcome::Linearizable));
}

#[test]
fn crashed_writes_are_placed_just_in_time() {
    // Forty crashed writes nobody reads, then a read of a value none
    // wrote: without the just-in-time rule the search tries every subset
    // of the writes; with it, each write is tried only before a read of
    // its value, and the verdict comes at once.
    let mut items = vec![];
    for k in 0..40 {
        items.push(it(w(k), k as usize, None));
    }
    items.push(it(r(-1), 100, Some(101)));
    let b = Budget {
        max_steps: Some(5000),
        ..Budget::default()
    };
    let (o, stats) = search(&Register::new(true), &items, &b);
    assert!(matches!(o, Outcome::NotLinearizable(_)), "{o:?}");
    assert!(stats.states <= 41, "{stats:?}");
    // A crashed write is still placed where a read needs it.
    let items = [
        it(w(1), 0, None),
        it(w(2), 1, Some(3)),
        it(r(2), 4, Some(5)),
        it(r(1), 6, Some(7)),
    ];
    assert!(matches!(verdict(&items), Outcome::Linearizable));
}

#[test]
fn reads_of_the_current_value_commute() {
    // Thirty concurrent reads of 1 around a write of 2 that one of them
    // sees: trying the reads in every order before the write would take
    // 2^30 configurations.
    let mut items = vec![it(w(1), 0, Some(1)), it(w(2), 2, Some(200))];
    for k in 0..30 {
        items.push(it(r(1), 3 + k, Some(100 + k)));
    }
    items.push(it(r(2), 150, Some(151)));
    let b = Budget {
        max_steps: Some(5000),
        ..Budget::default()
    };
    let (o, _) = search(&Register::new(true), &items, &b);
    assert!(matches!(o, Outcome::Linearizable), "{o:?}");
    // And a read that no order allows is still found.
    items.push(it(r(1), 160, Some(161)));
    let (o, _) = search(&Register::new(true), &items, &b);
    assert!(matches!(o, Outcome::NotLinearizable(_)), "{o:?}");
}

#[test]
fn budget_gives_unknown() {
    // Forty concurrent writes, all acknowledged, then a read of a value
    // none wrote: every order of the writes is a dead end.
    let mut items = vec![];
    for k in 0..40 {
        items.push(it(w(k), k as usize, Some(50 + k as usize)));
    }
    items.push(it(r(-1), 100, Some(101)));
    let b = Budget {
        max_steps: Some(5000),
        ..Budget::default()
    };
    let (o, _) = search(&Register::new(true), &items, &b);
    assert!(matches!(o, Outcome::Unknown(Exhausted::Steps)), "{o:?}");
}
