//! The campaign page: the verdict, the command and bug switch, one row
//! per seed, reproduce lines, the latency histogram and the shared
//! configuration.

use crate::{esc, page, plots, verdict_line};
use faultline_checker::Validity;
use std::fmt::Write as _;

/// One row of a campaign page.
pub struct CampaignRow {
    /// The seed.
    pub seed: u64,
    /// Its verdict.
    pub result: Validity,
    /// Checks that did not pass.
    pub failed: Vec<String>,
    /// Ops invoked.
    pub ops: usize,
    /// Faults applied.
    pub faults: usize,
    /// Latency p50 and p99 (ms).
    pub latency_ms: (f64, f64),
    /// First anomaly, if any.
    pub anomaly: Option<String>,
    /// Relative link to the run page, when the campaign kept one.
    pub link: Option<String>,
    /// The command that replays the run (for a failing one).
    pub reproduce: Option<String>,
}

/// What a campaign page says about the campaign as a whole.
pub struct CampaignInfo<'a> {
    /// The page's title.
    pub title: &'a str,
    /// The command that ran the campaign.
    pub command: &'a str,
    /// The bug switch injected into the servers, if any.
    pub bug: Option<&'a str>,
    /// The campaign's configuration (JSON; what every run shares).
    pub config_json: &'a str,
}

/// Renders a campaign page: verdict, the command (and bug switch), one
/// row per seed, a reproduce line per failing seed, and a latency
/// histogram over every run.
pub fn campaign_page(
    info: &CampaignInfo<'_>,
    rows: &[CampaignRow],
    latency_counts: &[u64],
) -> String {
    let title = info.title;
    let count = |v: Validity| rows.iter().filter(|r| r.result == v).count();
    let result = Validity::combine(rows.iter().map(|r| r.result));
    let mut b = String::new();
    let _ = writeln!(b, "<h1>faultline: {}</h1>", esc(title));
    let _ = writeln!(b, "<p>command: <code>{}</code></p>", esc(info.command));
    if let Some(bug) = info.bug {
        let _ = writeln!(
            b,
            "<p>bug switch: <code>{}</code> (injected into every server)</p>",
            esc(bug)
        );
    }
    b.push_str(&verdict_line(
        result,
        &format!(
            "{} runs: {} valid, {} invalid, {} unknown",
            rows.len(),
            count(Validity::Valid),
            count(Validity::Invalid),
            count(Validity::Unknown)
        ),
    ));
    b.push_str("<h2>Runs</h2>\n<table><tr><th>seed</th><th>verdict</th><th>failed checks</th><th>ops</th><th>faults</th><th>p50 ms</th><th>p99 ms</th><th>first anomaly</th></tr>\n");
    for r in rows {
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td class=\"anomaly\">{}</td></tr>",
            match &r.link {
                Some(l) => format!("<a href=\"{}\">{}</a>", esc(l), r.seed),
                None => r.seed.to_string(),
            },
            r.result,
            r.result,
            esc(&r.failed.join(", ")),
            r.ops,
            r.faults,
            r.latency_ms.0,
            r.latency_ms.1,
            esc(r.anomaly.as_deref().unwrap_or(""))
        );
    }
    let total_ops: usize = rows.iter().map(|r| r.ops).sum();
    let total_faults: usize = rows.iter().map(|r| r.faults).sum();
    let _ = writeln!(b, "<tr><th>total</th><td></td><td></td><th>{total_ops}</th><th>{total_faults}</th><td></td><td></td><td></td></tr></table>");
    let failing: Vec<&CampaignRow> = rows.iter().filter(|r| r.reproduce.is_some()).collect();
    if !failing.is_empty() {
        b.push_str("<h2>Reproduce</h2>\n<ul>\n");
        for r in failing {
            let _ = writeln!(
                b,
                "<li>seed {}: <code>{}</code></li>",
                r.seed,
                esc(r.reproduce.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</ul>\n");
    }
    b.push_str("<h2>Latency across the campaign</h2>\n");
    b.push_str(&plots::histogram(latency_counts));
    let _ = writeln!(
        b,
        "<h2>Configuration</h2>\n<p>What every run shares; each run's own <code>config.json</code> adds its seed and the properties drawn from it.</p>\n<pre>{}</pre>",
        esc(info.config_json)
    );
    page(title, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_page_lists_every_seed() {
        let rows: Vec<CampaignRow> = (1..=3)
            .map(|s| CampaignRow {
                seed: s,
                result: if s == 2 {
                    Validity::Invalid
                } else {
                    Validity::Valid
                },
                failed: if s == 2 {
                    vec!["durability".into()]
                } else {
                    vec![]
                },
                ops: 100,
                faults: 4,
                latency_ms: (3.0, 40.0),
                anomaly: (s == 2).then(|| "lost write".into()),
                link: Some(format!("runs/seed-{s}/report.html")),
                reproduce: (s == 2).then(|| "cargo run --release -- bench --seed 2".into()),
            })
            .collect();
        let info = CampaignInfo {
            title: "bench campaign",
            command: "faultline bench --seeds 3 --bug skip-trunc",
            bug: Some("skip-trunc"),
            config_json: "{}",
        };
        let html = campaign_page(&info, &rows, &[1, 5, 9, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(html.contains("command: <code>faultline bench --seeds 3 --bug skip-trunc</code>"));
        assert!(html.contains("bug switch: <code>skip-trunc</code>"));
        assert!(
            html.contains("<li>seed 2: <code>cargo run --release -- bench --seed 2</code></li>")
        );
        assert_eq!(html.matches("<li>seed ").count(), 1, "only failing seeds");
        assert!(html.contains("INVALID: 3 runs: 2 valid, 1 invalid, 0 unknown"));
        for s in 1..=3 {
            assert!(html.contains(&format!("<a href=\"runs/seed-{s}/report.html\">{s}</a>")));
        }
        assert!(html.contains("lost write") && html.contains("<th>300</th>"));
        assert!(html.contains("latency of ok ops (ms)"), "the histogram");
    }
}
