//! Every history of Porcupine's test data gets the verdict listed in
//! `testdata/porcupine/expectations.tsv` (taken from Porcupine's own tests).

use faultline_checker::{check, Budget, ModelKind, Validity};
use faultline_history::{read_file, ReadOptions};
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/porcupine")
}

/// (file, expected) for every row with a verdict.
fn expectations() -> Vec<(String, Validity)> {
    let tsv = std::fs::read_to_string(data_dir().join("expectations.tsv")).unwrap();
    tsv.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let want = match *cols.get(4)? {
                "linearizable" => Validity::Valid,
                "NOT linearizable" => Validity::Invalid,
                _ => return None,
            };
            Some((cols[0].to_string(), want))
        })
        .collect()
}

#[test]
fn every_corpus_history_gets_its_expected_verdict() {
    let rows = expectations();
    assert_eq!(rows.len(), 108, "102 etcd logs and 6 kv histories");
    let mut wrong = Vec::new();
    for (file, want) in &rows {
        let path = data_dir().join(file);
        let (h, _) = read_file(path.to_str().unwrap(), ReadOptions::default()).unwrap();
        let model = ModelKind::detect(&h);
        let expected_model = if file.starts_with("kv/") {
            ModelKind::Kv
        } else {
            ModelKind::CasRegister
        };
        assert_eq!(model, expected_model, "{file}");
        let got = check(&h, model, &Budget::default(), 0).unwrap();
        if got.result != *want {
            wrong.push(format!("{file}: got {}, want {want}", got.result));
        }
        if got.result == Validity::Invalid {
            let w = &got.anomalies[0];
            assert!(w.explanation.contains(&w.op.description), "{file}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_empty_etcd_log_is_an_error_not_a_verdict() {
    let path = data_dir().join("jepsen/etcd_095.log");
    let e = read_file(path.to_str().unwrap(), ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("empty history"), "{e}");
}
