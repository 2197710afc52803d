//! HTML reports end to end: `check --html` on an external history, the
//! pages `bench` writes, and a real render in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs")
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("reports")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_html_reports_an_external_history() {
    let d = dir("check");
    let page = d.join("etcd_000.html");
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/porcupine/jepsen/etcd_000.log");
    let o = faultline(&[
        "check",
        log.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("INVALID: failed: linearizable"));
    assert!(html.contains("No linearization of the history places `read -&gt; 2`"));
    assert!(
        html.contains("position in the history"),
        "a log without times is plotted by position"
    );
    assert!(
        html.matches("<rect class=\"w\"").count() >= 2,
        "witness ops outlined"
    );
    // The legend lists only what the page shows: no leaders here.
    assert!(
        !html.contains("leader (top band)"),
        "no leader in the legend"
    );
    assert!(html.contains("operations of a violation"));
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

fn screenshot(browser: &str, url: &str, png: &Path, profile: &Path) -> u64 {
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            "--window-size=1200,1600",
            &format!("--screenshot={}", png.display()),
            url,
        ])
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::metadata(png).expect("a screenshot").len()
}

/// The DOM headless Chromium builds from a page.
fn dump_dom(browser: &str, page: &Path, profile: &Path) -> String {
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("file://{}", page.display()),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn bench_pages_render_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium (.ci/run installs it)"
        );
        eprintln!("skipped: no chromium on this machine");
        return;
    };
    let d = dir("bench");
    let o = faultline(&[
        "bench",
        "--seed",
        "2",
        "--duration",
        "3s",
        "--keep",
        "all",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let run = d.join("runs/seed-2/report.html");
    let index = d.join("index.html");
    let html = std::fs::read_to_string(&run).unwrap();
    assert!(
        html.contains("VALID: all 14 checks passed"),
        "{}",
        &html[..html.len().min(3000)]
    );
    assert!(html.contains("<h2>Sessions</h2>") && html.contains("closed by its client at"));
    assert!(std::fs::read_to_string(&index)
        .unwrap()
        .contains("runs/seed-2/report.html"));
    // A rendered page with plots is a much larger picture than a blank one.
    let blank = screenshot(&browser, "about:blank", &d.join("blank.png"), &d.join("p0"));
    let page = screenshot(
        &browser,
        &format!("file://{}", run.display()),
        &d.join("run.png"),
        &d.join("p1"),
    );
    let camp = screenshot(
        &browser,
        &format!("file://{}", index.display()),
        &d.join("index.png"),
        &d.join("p2"),
    );
    assert!(
        page > 60_000 && page > 8 * blank,
        "run page screenshot {page} bytes, blank {blank}"
    );
    assert!(
        camp > 20_000 && camp > 3 * blank,
        "campaign page screenshot {camp} bytes, blank {blank}"
    );
    // The DOM Chromium built holds the SVG plots.
    let dom = dump_dom(&browser, &run, &d.join("p3"));
    assert!(
        dom.matches("<svg").count() >= 3 && dom.contains("<title>"),
        "svgs in the DOM"
    );
    // A failing run's page renders with its violation marked on the
    // timeline and linked from the anomaly.
    let f = dir("failing");
    let o = faultline(&[
        "bench",
        "--seed",
        "1",
        "--duration",
        "3s",
        "--bug",
        "session-fifo-off",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let failing = f.join("runs/seed-1/report.html");
    let shot = screenshot(
        &browser,
        &format!("file://{}", failing.display()),
        &f.join("run.png"),
        &f.join("p4"),
    );
    assert!(
        shot > 60_000 && shot > 8 * blank,
        "failing page {shot} bytes"
    );
    let dom = dump_dom(&browser, &failing, &f.join("p5"));
    assert!(
        dom.contains("INVALID: failed: read-guarantees"),
        "the verdict"
    );
    assert!(
        dom.contains("class=\"mark\"") && dom.contains("id=\"violation\""),
        "the violation marker in the rendered DOM"
    );
    assert!(
        dom.contains("href=\"#violation\""),
        "the anomaly links to it"
    );
}
