//! The `faultline` binary end to end: verdicts, exit codes, JSON, and a
//! one-line error with exit code 2 for every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs")
}

fn corpus(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/porcupine")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn scratch(name: &str, bytes: &[u8]) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn verdicts_map_to_exit_codes() {
    let ok = faultline(&["check", &corpus("jepsen/etcd_002.log")]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("linearizable"));
    let bad = faultline(&["check", &corpus("kv/c10-bad.txt")]);
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("NOT linearizable") && out.contains("cannot place"),
        "{out}"
    );
}

#[test]
fn json_verdict_names_the_witness() {
    let o = faultline(&["check", "--json", &corpus("jepsen/etcd_000.log")]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["result"], "invalid");
    assert_eq!(v["model"], "cas-register");
    assert_eq!(v["format"], "jepsen-log");
    let w = &v["anomalies"][0];
    assert_eq!(w["op"]["description"], "read -> 2");
    assert!(w["prefix_len"].as_u64().unwrap() > 0);
    assert!(!w["concurrent"].as_array().unwrap().is_empty());
}

#[test]
fn a_search_out_of_time_is_unknown() {
    // 40 writes of unknown outcome, each value read by a read that spans
    // the whole history (so no write can be left out before the search),
    // and a read of a value never written: refuting it means trying every
    // subset of the writes.
    let mut src = String::new();
    for p in 0..40 {
        src.push_str(&format!(
            "{{:type :invoke, :f :write, :value {p}, :process {p}}}\n"
        ));
        src.push_str(&format!(
            "{{:type :info, :f :write, :value {p}, :process {p}}}\n"
        ));
        src.push_str(&format!(
            "{{:type :invoke, :f :read, :value nil, :process {}}}\n",
            100 + p
        ));
    }
    src.push_str("{:type :invoke, :f :read, :value nil, :process 99}\n{:type :ok, :f :read, :value 999, :process 99}\n");
    for p in 0..40 {
        src.push_str(&format!(
            "{{:type :ok, :f :read, :value {p}, :process {}}}\n",
            100 + p
        ));
    }
    let f = scratch("hard.edn", src.as_bytes());
    let o = faultline(&["check", "--timeout", "0.3", "--json", &f]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"], "unknown");
    assert!(v["unknown"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("--timeout"));
}

/// Each bad input: exit 2, nothing on stdout, one stderr line naming the
/// file (and the line where one applies).
#[test]
fn bad_input_is_one_line_and_exit_2() {
    let cases: Vec<(String, &str)> = vec![
        (scratch("empty.jsonl", b""), "empty history"),
        (scratch("trunc.edn", b"{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read, :val"), ":2: unexpected end of input"),
        (scratch("unknown.edn", b"{:type :invoke, :f :read, :process 0}\n{:type :done, :f :read, :process 0}\n"), ":2: unknown op type :done"),
        (scratch("unmatched.jsonl", b"{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"}\n{\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"value\":1}\n"), ":2: unmatched completion"),
        (scratch("binary.bin", b"\x7fELF\x02\x01\x01\x00\x00\x00"), ":1: not a text file"),
        (scratch("garbage.txt", b"hello\nworld\n"), "cannot detect the history format"),
        (scratch("wrongmodel.edn", b"{:type :invoke, :f :append, :value \"x\", :process 0}\n"), "not an operation of the register model"),
        ("/nonexistent/history.edn".to_string(), "cannot read: no such file"),
    ];
    for (path, want) in cases {
        let args: Vec<&str> = if want.contains("register model") {
            vec!["check", "--model", "register", &path]
        } else {
            vec!["check", &path]
        };
        let o = faultline(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{path}: {err}");
        assert!(
            o.stdout.is_empty(),
            "{path}: stdout {:?}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert_eq!(err.lines().count(), 1, "{path}: {err}");
        assert!(
            err.contains(&path) && err.contains(want),
            "{path}: want {want:?} in {err}"
        );
    }
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        vec!["check"],
        vec!["check", "x", "--model", "frob"],
        vec!["check", "x", "--timeout", "-1"],
        vec!["check", "x", "--format", "csv"],
        vec!["frobnicate"],
        vec!["bench", "--watchdog", "0"],
        vec!["bench", "--jobs", "-1"],
        vec!["check", "x", "--timeout", "0"],
    ] {
        let o = faultline(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        // One line, prefixed like every other error.
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("faultline: error: "), "{args:?}: {err}");
    }
    assert_eq!(faultline(&["--help"]).status.code(), Some(0));
    let help = faultline(&["bench", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for want in [
        "long-election, client-pause",
        "[default: 5]",
        "Examples:",
        "--seeds 1001..1200",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[test]
fn convert_round_trips_through_edn_and_jsonl() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let edn = dir.join("c10.edn").to_string_lossy().into_owned();
    let back = dir.join("c10.jsonl").to_string_lossy().into_owned();
    let o = faultline(&[
        "convert",
        &corpus("kv/c10-bad.txt"),
        "--to",
        "edn",
        "-o",
        &edn,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&edn).unwrap();
    assert!(
        text.starts_with("{:type :invoke, :f :append, :value [\"0\" \"x 9 0 y\"]"),
        "{text}"
    );
    let o = faultline(&["convert", &edn, "--to", "jsonl", "-o", &back]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // same verdict and witness from every form
    let verdict = |f: &str| {
        let o = faultline(&["check", "--json", "--model", "kv", f]);
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_object_mut()
            .unwrap()
            .retain(|k, _| k == "result" || k == "anomalies");
        v
    };
    let a = verdict(&corpus("kv/c10-bad.txt"));
    assert_eq!(a["result"], "invalid");
    assert_eq!(a, verdict(&edn));
    assert_eq!(a, verdict(&back));
    // a failed conversion leaves no file behind
    let missing = dir.join("none.jsonl").to_string_lossy().into_owned();
    let o = faultline(&[
        "convert",
        "/nonexistent.edn",
        "--to",
        "jsonl",
        "-o",
        &missing,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!Path::new(&missing).exists());
}

#[test]
fn check_reads_session_ops_in_both_formats_and_sets_them_aside() {
    // A session's open, a write, a ping and an ephemeral key that vanished
    // with its session (read absent later): as the bench records them.
    let jsonl = br#"{"type":"invoke","process":0,"f":"open-session","value":150,"time":0,"session":1}
{"type":"ok","process":0,"f":"open-session","value":150,"time":5,"session":1,"zxid":1,"node":2}
{"type":"invoke","process":0,"f":"write","key":3,"value":7,"time":10,"session":1}
{"type":"ok","process":0,"f":"write","key":3,"value":7,"time":15,"session":1,"zxid":2,"node":2}
{"type":"invoke","process":0,"f":"create-ephemeral","key":1000,"value":9,"time":20,"session":1}
{"type":"ok","process":0,"f":"create-ephemeral","key":1000,"value":9,"time":25,"session":1,"zxid":3,"node":2}
{"type":"invoke","process":0,"f":"ping","value":null,"time":30,"session":1}
{"type":"ok","process":0,"f":"ping","value":null,"time":32,"session":1,"node":2}
{"type":"invoke","process":1,"f":"read","key":1000,"value":null,"time":40,"session":2}
{"type":"ok","process":1,"f":"read","key":1000,"value":null,"time":45,"session":2,"zxid":4,"node":1}
"#;
    let jl = scratch("sessions.jsonl", jsonl);
    let edn = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli/sessions.edn")
        .to_string_lossy()
        .into_owned();
    let o = faultline(&["convert", &jl, "--to", "edn", "-o", &edn]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in [&jl, &edn] {
        let o = faultline(&["check", "--json", f]);
        assert_eq!(o.status.code(), Some(0), "{f}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["result"], "valid", "{f}");
        assert_eq!(
            (v["ops"].as_u64(), v["set_aside"].as_u64()),
            (Some(1), Some(4))
        );
    }
}

#[test]
fn initial_values_and_knossos_nil_reads() {
    // A cas-register that starts at 0: the first op reads 0, then a cas 0->1.
    let src = b"{:type :invoke, :f :read, :value nil, :process 0}\n\
{:type :ok, :f :read, :value 0, :process 0}\n\
{:type :invoke, :f :cas, :value [0 1], :process 1}\n\
{:type :ok, :f :cas, :value [0 1], :process 1}\n";
    let f = scratch("initial.edn", src);
    assert_eq!(faultline(&["check", &f]).status.code(), Some(1));
    let o = faultline(&["check", "--initial", "0", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = faultline(&["check", "--initial", "0", "--model", "kv", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not kv"), "{}", stderr(&o));
    let o = faultline(&["check", "--initial", "[1", &f]);
    assert_eq!(o.status.code(), Some(2));
    // A read of nil after a write: nil is a value here, unknown to Knossos.
    let src = b"{:type :invoke, :f :write, :value 3, :process 0}\n\
{:type :ok, :f :write, :value 3, :process 0}\n\
{:type :invoke, :f :read, :value nil, :process 1}\n\
{:type :ok, :f :read, :value nil, :process 1}\n";
    let f = scratch("nil-read.edn", src);
    assert_eq!(faultline(&["check", &f]).status.code(), Some(1));
    let o = faultline(&["check", "--knossos-nil-reads", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn named_clients_are_checked_and_reinvocations_after_info_noted() {
    // Only named clients: a stale read is still found.
    let src = b"{:type :invoke, :f :write, :value 3, :process :client-a, :node \"n4\"}\n\
{:type :ok, :f :write, :value 3, :process :client-a, :node \"n4\"}\n\
{:type :invoke, :f :read, :value nil, :process \"p0\"}\n\
{:type :ok, :f :read, :value 2, :process \"p0\"}\n";
    let o = faultline(&["check", &scratch("named.edn", src)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let src = b"{:type :invoke, :f :write, :value 3, :process 0}\n\
{:type :info, :f :write, :value 3, :process 0}\n\
{:type :invoke, :f :read, :value nil, :process 0}\n\
{:type :ok, :f :read, :value 3, :process 0}\n";
    let o = faultline(&["check", &scratch("reinvoke.edn", src)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("1 ops were invoked by a process after an :info"),
        "{out}"
    );
}

/// The node suite of `perf`, as short as it goes: one default run and
/// 0.2 simulated seconds of each ensemble figure.
const PERF_QUICK: [&str; 7] = [
    "perf",
    "--suite",
    "node",
    "--run-seeds",
    "1",
    "--node-seconds",
    "0.2",
];

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::Read as _;
    use std::process::Stdio;
    // Far more output than a pipe holds, so that writes meet the closed end.
    let mut big = String::new();
    for i in 0..4000 {
        big.push_str(&format!(
            "{{\"type\":\"invoke\",\"process\":{i},\"f\":\"write\",\"key\":1,\"value\":{i}}}\n\
             {{\"type\":\"ok\",\"process\":{i},\"f\":\"write\",\"key\":1,\"value\":{i}}}\n"
        ));
    }
    let f = scratch("big.jsonl", big.as_bytes());
    for args in [
        vec!["convert", &f, "--to", "edn"],
        vec!["check", &f],
        PERF_QUICK.to_vec(),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The read end is dropped here, as `| head -c 16` does.
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
}

/// `perf --suite node` reports the default run beside the idle ceiling for
/// its host count, with its phases, before the ensemble figures.
#[test]
fn perf_reports_the_default_run_and_its_phases() {
    let o = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(PERF_QUICK)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("default run (1 seeds;"), "{out}");
    assert!(
        lines[1].contains("x real time") && lines[1].contains("of the idle ceiling for 7 hosts"),
        "{out}"
    );
    assert!(
        ["simulate", "check", "write"]
            .iter()
            .all(|p| lines[2].contains(p)),
        "{out}"
    );
    assert!(out.contains("offered ~500 writes/s"), "{out}");
}
