//! Another draw of the workload ([`redraw`]): the shrinker's step for a
//! failure that the original seed's draws only give through a long course
//! of the run.

use super::reduce::{chaos_for, compressed, repeated, time_scaled, Cand};
use super::search::{ddmin, Search};
use super::{shorter_chaos, Size, SMALL_CHAOS_MS, SMALL_EPISODES};
use faultline_nemesis::Schedule;

/// Other draws of the workload tried by [`redraw`] after the first delta
/// debugging: the next seeds, each in every shape.
const REDRAWS: u64 = 8;

/// Runs the last [`redraw`] leaves of the budget for shrinking the draw it
/// finds (delta debugging and a shorter chaos phase on a small run).
const REDRAW_RESERVE: usize = 60;

/// The quiet time between the copies of an episode that the last
/// [`redraw`] plays again. (With three copies this far apart, the
/// isolation that `stale-leader-reads` at 9006 kept failed `linearizable`
/// in 7 of 100 other draws, and in none of 100 played once.)
const REPEAT_GAP_MS: u64 = 1200;

/// How many draws [`redraw`] tries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Draws {
    /// [`REDRAWS`] seeds: more steps follow.
    Few,
    /// As many seeds as the budget has runs left (less
    /// [`REDRAW_RESERVE`]), at least [`REDRAWS`]: the search's last step,
    /// for a failure that needs a rare course of the run (one draw in
    /// tens), whose budget would otherwise go unused.
    Rest,
}

/// Another draw, for a failure the original seed's draws only give
/// through a long chain of faults (a race between the workload and the
/// cluster that every change to the schedule redraws, a state one
/// particular course of the run built, a rare alignment of a fault with
/// what a client does): the best run so far under the next seeds (see
/// [`Draws`]), each seed in every small shape (without faults in
/// [`SMALL_CHAOS_MS`]; each of its episodes alone, early; all of them
/// moved close together, played faster if they do not fit in that; and in
/// the last draw each episode played [`SMALL_EPISODES`] times,
/// [`REPEAT_GAP_MS`] apart, where that fits). The first that fails the
/// same check is shrunk in turn (delta debugging, a shorter chaos phase)
/// and kept if it ends smaller than the best run of the original seed;
/// unless it is small, the next draws are tried too. The page and the
/// reproduce line then name its seed.
pub(super) fn redraw(search: &mut Search, draws: Draws) -> anyhow::Result<()> {
    let b = search.best.clone();
    let shapes = shapes(&b, draws);
    let seeds = match draws {
        Draws::Few => REDRAWS,
        Draws::Rest => {
            let left = search.max_runs.saturating_sub(search.runs);
            let rest = left.saturating_sub(REDRAW_RESERVE) / shapes.len();
            REDRAWS.max(rest as u64)
        }
    };
    // Seed by seed, every shape under each: any of them is small, and a
    // failure one shape gives once in tens of draws gets its share early.
    let cands: Vec<Cand> = (1..=seeds)
        .flat_map(|k| {
            shapes.iter().map(move |shape| Cand {
                seed: b.seed.wrapping_add(k),
                ..shape.clone()
            })
        })
        .collect();
    // A draw that fails but does not shrink small (an episode that cannot
    // get shorter there) does not end the step: the next draws still may.
    let mut saved = (b, search.best_dir.clone(), search.best_hash.clone());
    let mut from = 0;
    while let Some(i) = search.first_failing(&cands[from..])? {
        from += i + 1;
        ddmin(search)?;
        shorter_chaos(search)?;
        let found = Size::of(&search.best);
        if found.rank() < Size::of(&saved.0).rank() {
            saved = (
                search.best.clone(),
                search.best_dir.clone(),
                search.best_hash.clone(),
            );
            if found.is_small() {
                break;
            }
        }
        (search.best, search.best_dir, search.best_hash) = saved.clone();
    }
    (search.best, search.best_dir, search.best_hash) = saved;
    Ok(())
}

/// The small shapes of `b` that [`redraw`] plays under other seeds, in
/// order: no fault in [`SMALL_CHAOS_MS`]; each episode alone, early; all
/// of them close together, played faster if they do not fit in that; and
/// for [`Draws::Rest`] each episode played [`SMALL_EPISODES`] times,
/// [`REPEAT_GAP_MS`] apart, where that fits.
fn shapes(b: &Cand, draws: Draws) -> Vec<Cand> {
    let shaped = |schedule: Schedule| {
        let mut k = b.clone();
        k.flags.duration = chaos_for(&schedule, 1500, b.flags.duration);
        k.schedule = schedule;
        k
    };
    let mut shapes = vec![shaped(Schedule { events: Vec::new() })];
    shapes[0].flags.duration = b.flags.duration.min(SMALL_CHAOS_MS);
    let episodes = b.schedule.episodes().len();
    let alone = |i: usize| b.schedule.with_episodes(&[i]);
    shapes.extend((0..episodes).map(|i| shaped(compressed(&alone(i)))));
    let mut all = compressed(&b.schedule);
    let last = all.events.iter().map(|e| e.at_ms).max();
    let fit = SMALL_CHAOS_MS - 1500;
    if let Some(last) = last.filter(|&l| l > fit) {
        all = time_scaled(&all, fit as f64 / last as f64);
    }
    if episodes > 1 {
        shapes.push(shaped(all));
    }
    if draws == Draws::Rest {
        let again = (0..episodes)
            .map(|i| shaped(repeated(&alone(i), SMALL_EPISODES, REPEAT_GAP_MS)))
            .filter(|k| k.flags.duration <= SMALL_CHAOS_MS);
        shapes.extend(again);
    }
    shapes
}
