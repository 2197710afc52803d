//! The operation timeline: one SVG per window of ops, with lanes as
//! Jepsen's threads, the leaders, faults and phases in bands of their
//! own, hover titles over each op, and the ops of a violation marked.

use crate::lanes::assign_lanes;
use crate::plots::{with_overlay, Axis, FAULT, LEAD, WIDTH};
use crate::{esc, LeaderSpan, Span};
use faultline_history::{Fun, History, Op, OpType, Value};
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Which session created each ephemeral value: (key, value) -> session,
/// from the history's `create-ephemeral` invocations (values are unique
/// per process and counter).
fn ephemeral_owners(h: &History) -> BTreeMap<(Value, Value), u64> {
    h.ops()
        .iter()
        .filter(|o| o.kind == OpType::Invoke && o.f == Fun::CreateEphemeral)
        .filter_map(|o| Some(((o.key.clone()?, o.value.clone()), o.session?)))
        .collect()
}

/// A compact hover text: `#12 p3 write k1 7 ok z3:17 s2 1.2ms`; a read
/// of an ephemeral key names the session that created the value it read.
fn describe(
    index: usize,
    inv: &Op,
    done: Option<&Op>,
    owners: &BTreeMap<(Value, Value), u64>,
) -> String {
    let mut s = format!("#{index} p{} {}", inv.process, inv.f);
    if let Some(session) = inv.session {
        let _ = write!(s, " session {session}");
    }
    if let Some(k) = &inv.key {
        let _ = write!(s, " k{k}");
    }
    if inv.value != faultline_history::Value::Nil {
        let _ = write!(s, " {}", inv.value);
    }
    match done {
        Some(c) => {
            let _ = write!(s, " {}", c.kind);
            if c.value != inv.value {
                let _ = write!(s, " {}", c.value);
            }
            let read = matches!(inv.f, Fun::Read | Fun::LocalRead | Fun::SyncRead);
            let owner = inv
                .key
                .clone()
                .and_then(|k| owners.get(&(k, c.value.clone())));
            if let (true, Some(o)) = (read, owner) {
                let _ = write!(s, " (ephemeral of session {o})");
            }
            if let Some(e) = &c.error {
                let _ = write!(s, " ({e})");
            }
            if let Some(z) = c.zxid {
                let _ = write!(s, " z{}:{}", z >> 32, z & 0xffff_ffff);
            }
            if let Some(n) = c.node {
                let _ = write!(s, " s{n}");
            }
            let _ = write!(
                s,
                " {:.1}ms",
                (c.time.saturating_sub(inv.time)) as f64 / 1e6
            );
        }
        None => s.push_str(" no answer"),
    }
    s
}

/// A chart of the timeline: seconds (or positions) by lane.
type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The timeline's window and axis: where an interval falls on the chart.
struct Window {
    axis: Axis,
    to_ns: u64,
    x0: f64,
    x1: f64,
}

impl Window {
    /// An interval's part inside this window, if any.
    fn clip(&self, start: u64, end: Option<u64>) -> Option<(f64, f64)> {
        let a = self.axis.x(start).max(self.x0);
        let b = self.axis.x(end.unwrap_or(self.to_ns)).min(self.x1);
        (a < b).then_some((a, b))
    }
}

/// The operation timeline of `[from_ns, to_ns)`: one lane per client
/// process (each op a bar from invoke to completion, coloured ok / fail /
/// info), faults shaded and labelled, a lane of which server led which
/// epoch, and `highlight`ed ops outlined. Ops sharing a pixel in a lane are
/// drawn once.
/// What the timeline marks besides the ops: a violation's ops, the run's
/// phases, and where the final band begins.
pub struct Marks<'a> {
    /// History indices of the ops of a violation.
    pub highlight: &'a BTreeSet<usize>,
    /// Phase starts (ns) and names.
    pub phases: &'a [(u64, String)],
    /// Owners starting at or after this get lanes in a band of their own.
    pub band_from_ns: Option<u64>,
}

pub fn timeline(
    h: &History,
    faults: &[Span],
    leaders: &[LeaderSpan],
    marks: &Marks<'_>,
    (from_ns, to_ns): (u64, u64),
    axis: Axis,
) -> String {
    let highlight = marks.highlight;
    let secs = |t: u64| axis.x(t);
    let pairs: Vec<_> = h
        .pairs()
        .filter(|p| {
            let end = p.complete.map_or(u64::MAX, |c| c.time);
            p.invoke.time < to_ns && end >= from_ns
        })
        .collect();
    let (mut lanes, labels) = assign_lanes(&pairs, to_ns, marks.band_from_ns);
    let lane_px = if labels.len() > 140 { 3 } else { 7 };
    // Bands, in lane units: the leaders, the fault labels, the op lanes,
    // the phase names; a label band is tall enough for one line of text,
    // so no label lies over an op lane.
    let band = 13usize.div_ceil(lane_px as usize);
    let first = 2 * band;
    for l in lanes.values_mut() {
        *l += first;
    }
    let n = first + labels.len() + band;
    let height = (n as u32 * lane_px + 70).min(2400);
    let (x0, x1) = (secs(from_ns), secs(to_ns).max(secs(from_ns) + 0.001));
    let w = Window {
        axis,
        to_ns,
        x0,
        x1,
    };
    let mut svg = String::new();
    let mut overlay = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).ok();
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (n as f64)..0f64)
            .expect("valid ranges");
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(axis.desc())
            .y_labels(0)
            .draw()
            .ok();
        draw_faults(&mut chart, faults, &w, (band, n));
        draw_phases(&mut chart, marks.phases, &w, (n - band, n));
        draw_leaders(&mut chart, leaders, &w, band, &mut overlay);
        let owners = ephemeral_owners(h);
        op_bars(&chart, &pairs, &lanes, highlight, &w, &mut overlay, &owners);
        mark_violations(&chart, &pairs, highlight, &w, first, &mut overlay);
        // Lane labels in the left margin, no closer than 10 px apart.
        let every = (10 / lane_px as usize).max(1);
        for (i, label) in labels.iter().enumerate().step_by(every) {
            let y = chart.backend_coord(&(x0, (i + first) as f64)).1;
            root.draw(&Text::new(
                label.clone(),
                (4, y - 4),
                ("sans-serif", 9).into_font(),
            ))
            .ok();
        }
        root.present().ok();
    }
    let style = "<style>.ops rect{height:100%}.k{fill:#2e7d32}.f{fill:#c62828}.i{fill:#ef6c00}.w{fill:#6a1b9a;stroke:#6a1b9a;stroke-width:3}.mark{fill:#6a1b9a}</style>";
    with_overlay(svg, &format!("{style}<g class=\"ops\">{overlay}</g>"))
}

/// Each phase start as a dashed vertical line over the lanes, named in
/// the band below them (a name that would overlap the one before it
/// moves to the right of it).
fn draw_phases(
    chart: &mut Chart<'_, '_>,
    phases: &[(u64, String)],
    w: &Window,
    (row, lanes): (usize, usize),
) {
    let mut row_end = i32::MIN;
    for (at, name) in phases {
        let x = w.axis.x(*at);
        if x < w.x0 || x > w.x1 {
            continue;
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, lanes as f64)],
                4,
                3,
                BLACK.mix(0.5).stroke_width(1),
            ))
            .ok();
        // Pixels to the chart's x: the plot spans x0..x1 over these.
        let (left, right) = (
            chart.backend_coord(&(w.x0, 0.0)).0,
            chart.backend_coord(&(w.x1, 0.0)).0,
        );
        let per_px = (w.x1 - w.x0) / f64::from((right - left).max(1));
        let px = chart.backend_coord(&(x, 0.0)).0.max(row_end);
        row_end = px + text_px(name, 10) + 6;
        let at = w.x0 + f64::from(px - left) * per_px;
        chart
            .draw_series(std::iter::once(Text::new(
                name.clone(),
                (at, row as f64 + 0.1),
                ("sans-serif", 10).into_font(),
            )))
            .ok();
    }
}

/// A marker above the lanes (a purple triangle in the fault-label band) at
/// the start of each op of a violation, with a hover title naming it.
fn mark_violations(
    chart: &Chart<'_, '_>,
    pairs: &[faultline_history::Pair<'_>],
    highlight: &BTreeSet<usize>,
    w: &Window,
    first: usize,
    overlay: &mut String,
) {
    let mut drawn: BTreeSet<i32> = BTreeSet::new();
    // A check may name an op by its invocation or by its completion (the
    // durability check names the acknowledgement).
    let named = |p: &&faultline_history::Pair<'_>| {
        highlight.contains(&p.invoke_index)
            || p.complete_index.is_some_and(|c| highlight.contains(&c))
    };
    for p in pairs.iter().filter(named) {
        let x = w.axis.x(p.invoke.time);
        if x < w.x0 || x > w.x1 {
            continue;
        }
        let (px, py) = chart.backend_coord(&(x, first as f64));
        if !drawn.insert(px) {
            continue;
        }
        let _ = write!(
            overlay,
            "<path class=\"mark\" d=\"M{} {} l-6 -9 h12 z\"><title>violation: op #{}</title></path>",
            px, py, p.invoke_index
        );
    }
}

/// Each fault shaded over every lane, with its label.
fn draw_faults(
    chart: &mut Chart<'_, '_>,
    faults: &[Span],
    w: &Window,
    (row, lanes): (usize, usize),
) {
    let mut row_end = i32::MIN; // where the last label drawn ends (px)
    for f in faults {
        let Some((a, b)) = w.clip(f.start_ns, f.end_ns) else {
            continue;
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, 0.0), (b, lanes as f64)],
                FAULT.mix(0.18).filled(),
            )))
            .ok();
        // A label that would overlap the one before it is left out (the
        // fault schedule table below names every fault).
        let x = chart.backend_coord(&(a, 0.0)).0;
        if x < row_end {
            continue;
        }
        row_end = x + text_px(&f.label, 11) + 6;
        chart
            .draw_series(std::iter::once(Text::new(
                f.label.clone(),
                (a, row as f64 + 0.1),
                ("sans-serif", 11).into_font(),
            )))
            .ok();
    }
}

/// About how wide `text` is in the SVG's sans-serif at `size` px.
fn text_px(text: &str, size: i32) -> i32 {
    (text.chars().count() as i32 * size * 6) / 10
}

/// The leaders' lane: each leadership a bar labelled with its server and
/// epoch, with a hover title in the overlay.
fn draw_leaders(
    chart: &mut Chart<'_, '_>,
    leaders: &[LeaderSpan],
    w: &Window,
    band: usize,
    overlay: &mut String,
) {
    let bottom = band as f64 - 0.1;
    let mut row_end = i32::MIN;
    for l in leaders {
        let Some((a, b)) = w.clip(l.start_ns, l.end_ns) else {
            continue;
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, 0.1), (b, bottom)],
                LEAD.mix(0.35).filled(),
            )))
            .ok();
        // Labels never overlap: one that would is left to the hover title.
        let label = format!("n{} e{}", l.sid, l.epoch);
        let x = chart.backend_coord(&(a, 0.0)).0;
        if x >= row_end {
            row_end = x + text_px(&label, 10) + 4;
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (a, 0.2),
                    ("sans-serif", 10).into_font(),
                )))
                .ok();
        }
        let (p0, p1) = (
            chart.backend_coord(&(a, 0.1)),
            chart.backend_coord(&(b, bottom)),
        );
        let _ = write!(
            overlay,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"transparent\"><title>server {} leads epoch {}</title></rect>",
            p0.0,
            p0.1,
            (p1.0 - p0.0).max(1),
            (p1.1 - p0.1).max(1),
            l.sid,
            l.epoch
        );
    }
}

/// Op bars go in the overlay, each with its hover title, at the
/// coordinates the chart maps to; one op per lane and pixel column (the
/// operations of a violation are always drawn). Bars are grouped by lane
/// so that each carries only its x and width.
fn op_bars(
    chart: &Chart<'_, '_>,
    pairs: &[faultline_history::Pair<'_>],
    lanes: &BTreeMap<&faultline_history::Process, usize>,
    highlight: &BTreeSet<usize>,
    w: &Window,
    overlay: &mut String,
    owners: &BTreeMap<(Value, Value), u64>,
) {
    let mut drawn: BTreeSet<(usize, i32)> = BTreeSet::new();
    let mut by_lane: BTreeMap<usize, String> = BTreeMap::new();
    let bar = |lane: f64| {
        let (t, b) = (
            chart.backend_coord(&(w.x0, lane - 0.4)),
            chart.backend_coord(&(w.x0, lane + 0.4)),
        );
        (t.1, (b.1 - t.1).max(1))
    };
    for p in pairs {
        let lane = lanes[&p.invoke.process];
        let kind = p.outcome();
        let end = p.complete.map_or(w.to_ns, |c| c.time);
        let (a, b) = (w.axis.x(p.invoke.time).max(w.x0), w.axis.x(end).min(w.x1));
        let (p0, p1) = (
            chart.backend_coord(&(a, lane as f64)),
            chart.backend_coord(&(b, lane as f64)),
        );
        let marked = highlight.contains(&p.invoke_index)
            || p.complete_index.is_some_and(|c| highlight.contains(&c));
        if !drawn.insert((lane, p0.0)) && !marked {
            continue; // another op of this lane already fills this pixel
        }
        let class = match (marked, kind) {
            (true, _) => "w",
            (_, OpType::Ok) => "k",
            (_, OpType::Fail) => "f",
            _ => "i",
        };
        let _ = write!(
            by_lane.entry(lane).or_default(),
            "<rect class=\"{class}\" x=\"{}\" width=\"{}\"><title>{}</title></rect>",
            p0.0,
            (p1.0 - p0.0).max(1),
            esc(&describe(p.invoke_index, p.invoke, p.complete, owners))
        );
    }
    for (lane, rects) in by_lane {
        let (y, h) = bar(lane as f64);
        let _ = write!(
            overlay,
            "<svg y=\"{y}\" height=\"{h}\" overflow=\"visible\">{rects}</svg>"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ops::op;
    use faultline_history::Process;

    static NOTHING: BTreeSet<usize> = BTreeSet::new();

    fn no_marks() -> Marks<'static> {
        Marks {
            highlight: &NOTHING,
            phases: &[],
            band_from_ns: None,
        }
    }

    #[test]
    fn final_reads_get_a_band_and_phases_are_marked() {
        // p0 works 0-10 ms; p9 reads finally at 30-40 ms, after p0 ended
        // (it would reuse p0's lane without the band).
        let ops = vec![
            op(OpType::Invoke, 0, Fun::Write, 1, 0),
            op(OpType::Ok, 0, Fun::Write, 1, 10),
            op(OpType::Invoke, 9, Fun::LocalRead, 0, 30),
            op(OpType::Ok, 9, Fun::LocalRead, 1, 40),
        ];
        let h = History::new(ops).unwrap();
        let pairs: Vec<_> = h.pairs().collect();
        let (lanes, labels) = assign_lanes(&pairs, 50_000_000, Some(25_000_000));
        assert_eq!(labels, vec!["p0".to_string(), "final p9".into()]);
        assert_ne!(lanes[&Process::Client(0)], lanes[&Process::Client(9)]);
        let (_, one_band) = assign_lanes(&pairs, 50_000_000, None);
        assert_eq!(one_band, vec!["p0 +1".to_string()]);
        let phases = [
            (0, "warm-up".to_string()),
            (25_000_000, "final reads".into()),
        ];
        let marks = Marks {
            highlight: &NOTHING,
            phases: &phases,
            band_from_ns: Some(25_000_000),
        };
        let svg = timeline(&h, &[], &[], &marks, (0, 50_000_000), Axis::Seconds);
        assert!(
            svg.contains("\nfinal reads\n") && svg.contains("\nwarm-up\n"),
            "{svg}"
        );
        assert!(svg.contains("\nfinal p9\n"), "{svg}");
    }

    #[test]
    fn labels_never_overlap() {
        let ops = vec![
            op(OpType::Invoke, 0, Fun::Write, 1, 0),
            op(OpType::Ok, 0, Fun::Write, 1, 1000),
        ];
        let h = History::new(ops).unwrap();
        let ms = 1_000_000;
        let span = |a: u64, label: &str| Span {
            start_ns: a * ms,
            end_ns: Some((a + 300) * ms),
            label: label.into(),
        };
        // Two faults 1 ms apart, a third far away.
        let faults = [
            span(100, "first fault"),
            span(101, "second fault"),
            span(700, "third fault"),
        ];
        let lead = |a: u64, sid| LeaderSpan {
            start_ns: a * ms,
            end_ns: Some((a + 1) * ms),
            sid,
            epoch: sid,
        };
        let leaders = [lead(10, 1), lead(11, 2), lead(900, 3)];
        let svg = timeline(
            &h,
            &faults,
            &leaders,
            &no_marks(),
            (0, 1000 * ms),
            Axis::Seconds,
        );
        for shown in ["first fault", "third fault", "n1 e1", "n3 e3"] {
            assert!(svg.contains(&format!("\n{shown}\n")), "{shown}");
        }
        for hidden in ["second fault", "n2 e2"] {
            assert!(!svg.contains(&format!("\n{hidden}\n")), "{hidden}");
        }
        // The second leader still has its hover title.
        assert!(svg.contains("<title>server 2 leads epoch 2</title>"));
    }

    #[test]
    fn lanes_are_reused_like_threads_and_labelled() {
        let mut ops = Vec::new();
        // p3 then p13 (after p3 retired) on slot 3; p7 overlaps both; a
        // read pipelined behind p3's write shares p3's session.
        for (p, from, to, session) in [(3, 0, 10, 4), (7, 5, 40, 8), (13, 20, 30, 14)] {
            let mut a = op(OpType::Invoke, p, Fun::Write, 1, from);
            a.session = Some(session);
            let mut b = op(OpType::Ok, p, Fun::Write, 1, to);
            b.session = Some(session);
            ops.extend([a, b]);
        }
        let mut r = op(OpType::Invoke, 500_000_003, Fun::LocalRead, 0, 1);
        r.session = Some(4);
        let mut rk = op(OpType::Ok, 500_000_003, Fun::LocalRead, 1, 9);
        rk.session = Some(4);
        ops.insert(1, r);
        ops.insert(3, rk);
        ops.sort_by_key(|o| o.time);
        let h = History::new(ops).unwrap();
        let pairs: Vec<_> = h.pairs().collect();
        let (lanes, labels) = assign_lanes(&pairs, 50_000_000, None);
        assert_eq!(labels, vec!["p3 +2".to_string(), "p7".into()]);
        let lane = |p: u64| lanes[&Process::Client(p)];
        assert_eq!(lane(3), lane(13));
        assert_eq!(lane(3), lane(500_000_003));
        assert_ne!(lane(3), lane(7));
        let svg = timeline(&h, &[], &[], &no_marks(), (0, 50_000_000), Axis::Seconds);
        assert!(svg.contains("\np3 +2\n") && svg.contains("\np7\n"), "{svg}");
    }

    #[test]
    fn a_read_of_an_ephemeral_key_names_the_session_that_created_it() {
        let h = History::new(vec![
            op(OpType::Invoke, 3, Fun::CreateEphemeral, 7, 0),
            op(OpType::Ok, 3, Fun::CreateEphemeral, 7, 10),
            op(OpType::Invoke, 5, Fun::Read, 0, 20),
            op(OpType::Ok, 5, Fun::Read, 7, 30),
            op(OpType::Invoke, 5, Fun::Read, 0, 40),
            op(OpType::Ok, 5, Fun::Read, 8, 50),
        ])
        .unwrap();
        let svg = timeline(&h, &[], &[], &no_marks(), (0, 60_000_000), Axis::Seconds);
        assert!(
            svg.contains("ok 7 (ephemeral of session 4) 10.0ms"),
            "{svg}"
        );
        // A value no session created names no owner.
        assert!(svg.contains("ok 8 10.0ms"), "{svg}");
        assert_eq!(svg.matches("ephemeral of session").count(), 1);
    }
}
