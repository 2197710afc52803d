//! Property tests over the readers: arbitrary or damaged input gives an
//! error or a history, never a panic; what the writers write reads back.

use faultline_history::{
    edn, jsonl, read_bytes, Format, Fun, Op, OpType, Process, ReadOptions, Value,
};
use proptest::prelude::*;

const FORMATS: [Format; 5] = [
    Format::Auto,
    Format::Jsonl,
    Format::Edn,
    Format::JepsenLog,
    Format::PorcupineKv,
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        "[ -~\\n\"\\\\é]{0,8}".prop_map(Value::Str),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop::collection::vec(inner, 0..3).prop_map(Value::List)
    })
}

fn op() -> impl Strategy<Value = Op> {
    (
        prop_oneof![
            Just(OpType::Invoke),
            Just(OpType::Ok),
            Just(OpType::Fail),
            Just(OpType::Info)
        ],
        prop_oneof![
            (0u64..5).prop_map(Process::Client),
            Just(Process::Named("nemesis".into()))
        ],
        prop_oneof![
            Just(Fun::Read),
            Just(Fun::Write),
            Just(Fun::Cas),
            Just(Fun::Append),
            Just(Fun::Other("start".into()))
        ],
        value(),
        // a null key is no key
        prop::option::of(value().prop_filter("non-nil key", |k| *k != Value::Nil)),
        any::<u32>(),
        prop::option::of(Just("timed-out".to_string())),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(kind, process, f, value, key, time, error, zxid)| {
            let mut op = Op::new(kind, process, f, value);
            op.key = key;
            op.time = time as u64;
            op.error = error;
            op.zxid = zxid.map(u64::from);
            op
        })
}

fn read_everyhow(bytes: &[u8]) {
    for format in FORMATS {
        for independent in [None, Some(true)] {
            let _ = read_bytes(
                bytes,
                ReadOptions {
                    format,
                    independent,
                },
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        read_everyhow(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[{}\\[\\]():#_\"\\\\ ,;a-z0-9\\-\\n\\t]{0,300}") {
        read_everyhow(text.as_bytes());
    }

    #[test]
    fn damaged_histories_never_panic(ops in prop::collection::vec(op(), 1..12), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
        for edn_form in [false, true] {
            let mut buf = Vec::new();
            if edn_form { edn::write_ops(&mut buf, &ops).unwrap() } else { jsonl::write_ops(&mut buf, &ops).unwrap() }
            read_everyhow(&buf);
            let mut cut_buf = buf.clone();
            cut_buf.truncate(cut.index(buf.len()));
            read_everyhow(&cut_buf);
            let mut flipped = buf.clone();
            let at = flip.index(flipped.len());
            flipped[at] = byte;
            read_everyhow(&flipped);
        }
    }

    #[test]
    fn jsonl_round_trips(ops in prop::collection::vec(op(), 0..12)) {
        let mut buf = Vec::new();
        jsonl::write_ops(&mut buf, &ops).unwrap();
        let back: Vec<Op> = jsonl::read_ops(std::str::from_utf8(&buf).unwrap()).unwrap().into_iter().map(|(_, o)| o).collect();
        prop_assert_eq!(back, ops);
    }

    /// EDN has no :key field for clients: keyed client ops are written in
    /// jepsen.independent form and read back with `independent`.
    #[test]
    fn edn_round_trips(mut ops in prop::collection::vec(op(), 0..12), keyed in any::<bool>()) {
        for o in ops.iter_mut() {
            o.key = match (keyed && o.process.is_client(), o.key.take()) {
                (true, Some(k)) => Some(k),
                (true, None) => Some(Value::Int(0)),
                (false, _) => None,
            };
        }
        let mut buf = Vec::new();
        edn::write_ops(&mut buf, &ops).unwrap();
        let back: Vec<Op> = edn::read_ops(std::str::from_utf8(&buf).unwrap(), keyed).unwrap().into_iter().map(|(_, o)| o).collect();
        prop_assert_eq!(back, ops);
    }
}
