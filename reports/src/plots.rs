//! SVG plots drawn with plotters (no system fonts: the SVG backend writes
//! text as `<text>`), plus hover titles laid over the chart at the
//! coordinates it maps to (plotters cannot add `<title>` itself).

use faultline_history::{History, OpType};
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const OK: RGBColor = RGBColor(46, 125, 50);
const FAIL: RGBColor = RGBColor(198, 40, 40);
const INFO: RGBColor = RGBColor(239, 108, 0);
pub(crate) const FAULT: RGBColor = RGBColor(255, 193, 7);
pub(crate) const LEAD: RGBColor = RGBColor(21, 101, 192);

/// Width of every plot, in pixels.
pub const WIDTH: u32 = 1100;

/// How op times map to the x axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Axis {
    /// Times are simulated (or wall) nanoseconds: plot seconds.
    Seconds,
    /// Times are positions in the history (formats without times).
    Positions,
}

impl Axis {
    pub(crate) fn x(self, t: u64) -> f64 {
        match self {
            Axis::Seconds => t as f64 / 1e9,
            Axis::Positions => t as f64,
        }
    }

    pub(crate) fn desc(self) -> &'static str {
        match self {
            Axis::Seconds => "simulated time (s)",
            Axis::Positions => "position in the history",
        }
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Inserts hover overlays just before the closing `</svg>`.
pub(crate) fn with_overlay(mut svg: String, overlay: &str) -> String {
    if let Some(at) = svg.rfind("</svg>") {
        svg.insert_str(at, overlay);
    }
    svg
}

/// Latency of ok ops over time (log scale), with p50 and p99 per second.
pub fn latency(h: &History) -> String {
    let pts: Vec<(f64, f64)> = h
        .pairs()
        .filter(|p| p.outcome() == OpType::Ok)
        .filter_map(|p| {
            p.complete.map(|c| {
                (
                    secs(c.time),
                    (c.time.saturating_sub(p.invoke.time)) as f64 / 1e6,
                )
            })
        })
        .collect();
    let t_end = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let max = pts.iter().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 320)).into_drawing_area();
        root.fill(&WHITE).ok();
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_end, (0.1f64..max).log_scale())
            .expect("valid ranges");
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("latency (ms)")
            .draw()
            .ok();
        // Thin: at most one point per pixel column and latency decade tenth.
        let mut seen = BTreeSet::new();
        let dots: Vec<(f64, f64)> = pts
            .iter()
            .filter(|(t, l)| {
                let c = chart.backend_coord(&(*t, l.max(0.1)));
                seen.insert((c.0, c.1 / 2))
            })
            .copied()
            .collect();
        chart
            .draw_series(
                dots.iter()
                    .map(|&(t, l)| Circle::new((t, l.max(0.1)), 1, OK.mix(0.5).filled())),
            )
            .ok();
        let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for (t, l) in &pts {
            buckets.entry(*t as u64).or_default().push(*l);
        }
        for (q, c) in [(0.5, BLUE), (0.99, RED)] {
            let line: Vec<(f64, f64)> = buckets
                .iter_mut()
                .map(|(s, v)| {
                    v.sort_by(|a, b| a.total_cmp(b));
                    (
                        *s as f64 + 0.5,
                        v[((v.len() - 1) as f64 * q) as usize].max(0.1),
                    )
                })
                .collect();
            chart
                .draw_series(LineSeries::new(line, c.stroke_width(2)))
                .ok()
                .map(|s| {
                    s.label(format!("p{}", (q * 100.0) as u32))
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.filled())
            .border_style(BLACK)
            .draw()
            .ok();
        root.present().ok();
    }
    svg
}

/// Completions per second over time: ok, fail and info (availability).
pub fn throughput(h: &History) -> String {
    let mut by: BTreeMap<u64, [u32; 3]> = BTreeMap::new();
    for op in h.ops() {
        if !op.process.is_client() {
            continue;
        }
        let i = match op.kind {
            OpType::Ok => 0,
            OpType::Fail => 1,
            OpType::Info => 2,
            OpType::Invoke => continue,
        };
        by.entry(op.time / 1_000_000_000).or_default()[i] += 1;
    }
    let t_end = by.keys().max().map_or(1.0, |t| *t as f64 + 1.0);
    let max = by
        .values()
        .flat_map(|v| v.iter())
        .copied()
        .max()
        .unwrap_or(1) as f64
        * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 260)).into_drawing_area();
        root.fill(&WHITE).ok();
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_end, 0f64..max.max(1.0))
            .expect("valid ranges");
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("ops per second")
            .draw()
            .ok();
        for (i, (name, c)) in [("ok", OK), ("fail", FAIL), ("info", INFO)]
            .into_iter()
            .enumerate()
        {
            let line: Vec<(f64, f64)> = (0..t_end as u64)
                .map(|s| (s as f64 + 0.5, by.get(&s).map_or(0, |v| v[i]) as f64))
                .collect();
            chart
                .draw_series(LineSeries::new(line, c.stroke_width(2)))
                .ok()
                .map(|s| {
                    s.label(name)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.filled())
            .border_style(BLACK)
            .draw()
            .ok();
        root.present().ok();
    }
    svg
}

/// Protocol messages sent per completed operation, per simulated second.
pub fn messages_per_op(h: &History, messages: &[(u64, u64)]) -> String {
    let mut done: BTreeMap<u64, u64> = BTreeMap::new();
    for op in h.ops() {
        if op.process.is_client() && op.kind != OpType::Invoke {
            *done.entry(op.time / 1_000_000_000).or_default() += 1;
        }
    }
    let pts: Vec<(f64, f64)> = messages
        .iter()
        .map(|(s, m)| {
            (
                *s as f64 + 0.5,
                *m as f64 / done.get(s).copied().unwrap_or(0).max(1) as f64,
            )
        })
        .collect();
    let t_end = pts.iter().map(|p| p.0 + 0.5).fold(1.0, f64::max);
    let max = pts.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 240)).into_drawing_area();
        root.fill(&WHITE).ok();
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_end, 0f64..max)
            .expect("valid ranges");
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("messages per op")
            .draw()
            .ok();
        chart
            .draw_series(LineSeries::new(pts, LEAD.stroke_width(2)))
            .ok();
        root.present().ok();
    }
    svg
}

/// Bucket edges of latency histograms, in milliseconds.
pub const LATENCY_EDGES_MS: [f64; 13] = [
    0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
];

/// The bucket of a latency: index into [`LATENCY_EDGES_MS`] of the first
/// edge above it (the last bucket takes everything beyond).
pub fn latency_bucket(ms: f64) -> usize {
    LATENCY_EDGES_MS
        .iter()
        .position(|e| ms < *e)
        .unwrap_or(LATENCY_EDGES_MS.len() - 1)
}

/// A histogram of latency bucket counts.
pub fn histogram(counts: &[u64]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 280)).into_drawing_area();
        root.fill(&WHITE).ok();
        let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..counts.len() as f64, 0f64..max)
            .expect("valid ranges");
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(counts.len())
            .x_label_formatter(&|x| {
                let i = *x as usize;
                match i {
                    0 => "<0.5".to_string(),
                    _ if i < LATENCY_EDGES_MS.len() => format!("<{}", LATENCY_EDGES_MS[i]),
                    _ => String::new(),
                }
            })
            .x_desc("latency of ok ops (ms)")
            .y_desc("ops (count)")
            .y_label_formatter(&|y| format!("{}", y.round() as u64))
            .draw()
            .ok();
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                Rectangle::new(
                    [(i as f64 + 0.1, 0.0), (i as f64 + 0.9, *c as f64)],
                    LEAD.mix(0.7).filled(),
                )
            }))
            .ok();
        root.present().ok();
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ops::op;
    use faultline_history::Fun;

    #[test]
    fn legends_are_opaque() {
        let mut ops = Vec::new();
        for i in 0..40u64 {
            ops.push(op(OpType::Invoke, i % 4, Fun::Write, i as i64, i * 50));
            ops.push(op(OpType::Ok, i % 4, Fun::Write, i as i64, i * 50 + 3));
        }
        let h = History::new(ops).unwrap();
        for svg in [latency(&h), throughput(&h)] {
            // The page background, and the legend's box over the plot.
            let white = svg.matches("opacity=\"1\" fill=\"#FFFFFF\"").count();
            assert!(white >= 2, "{white}: {svg}");
        }
    }
}
