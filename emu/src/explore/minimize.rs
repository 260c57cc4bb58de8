//! Minimising a finding: the fewest deviations from the default scheduler
//! (preemptions, other switches, fills) that still produce it, then each one
//! as early as it can be, so the schedule has the fewest steps. The result is
//! 1-minimal: removing any single deviation loses the finding (delta
//! debugging's `ddmin`, Zeller and Hildebrandt, TSE 2002).

use super::exec::{Choice, Chooser, Exec, Point};
use super::{Finding, Signature};
use crate::scenario::Plan;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Replays a schedule given as deviations from the default policy, by point.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// Choice at each deviating point.
    pub at: BTreeMap<u64, Choice>,
}

impl Chooser for Script {
    fn choose(&mut self, p: &Point<'_>, _ex: &Exec) -> Choice {
        self.at
            .get(&p.index)
            .copied()
            .unwrap_or(Choice::Run(p.default))
    }
}

/// Runs the deviations `devs` to the end (at most `max_points` points).
pub fn replay(plan: &Arc<Plan>, devs: &[(u64, Choice)], max_points: u64) -> Exec {
    let mut ex = Exec::new(plan);
    let mut s = Script {
        at: devs.iter().copied().collect(),
    };
    ex.run(&mut s, max_points);
    ex
}

/// The finding with `sig` in a replay of `devs`, if it still happens.
fn finds(plan: &Arc<Plan>, devs: &[(u64, Choice)], sig: &Signature, cap: u64) -> Option<Finding> {
    replay(plan, devs, cap)
        .findings()
        .into_iter()
        .find(|f| f.sig == *sig)
}

/// The deviations a run took, by point.
pub fn deviations(ex: &Exec) -> Vec<(u64, Choice)> {
    ex.taken()
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_deviation())
        .map(|(i, t)| (i as u64, t.choice))
        .collect()
}

/// Minimises `devs` for the finding `sig`: 1-minimal by removal (ddmin), then
/// each remaining deviation moved to the earliest point that keeps the finding.
/// `budget` caps the replays.
pub fn minimize(
    plan: &Arc<Plan>,
    devs: Vec<(u64, Choice)>,
    sig: &Signature,
    cap: u64,
    mut budget: u32,
) -> Vec<(u64, Choice)> {
    let mut cur = devs;
    let test = |d: &[(u64, Choice)], budget: &mut u32| -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        finds(plan, d, sig, cap).is_some()
    };
    // ddmin over the deviation list.
    let mut n = 2usize;
    while cur.len() >= 2 && budget > 0 {
        let chunk = cur.len().div_ceil(n);
        let reduced = (0..n).find_map(|i| {
            let lo = i * chunk;
            if lo >= cur.len() {
                return None;
            }
            let hi = (lo + chunk).min(cur.len());
            let complement: Vec<_> = cur[..lo].iter().chain(&cur[hi..]).copied().collect();
            test(&complement, &mut budget).then_some(complement)
        });
        if let Some(c) = reduced {
            cur = c;
            n = (n - 1).max(2);
        } else {
            if n >= cur.len() {
                break;
            }
            n = (n * 2).min(cur.len());
        }
    }
    // 1-minimal: no single deviation can go.
    let mut i = 0;
    while i < cur.len() && budget > 0 {
        let mut without = cur.clone();
        without.remove(i);
        if test(&without, &mut budget) {
            cur = without;
        } else {
            i += 1;
        }
    }
    // Fewest steps: move each deviation as early as it still works.
    for i in 0..cur.len() {
        let floor = if i == 0 { 0 } else { cur[i - 1].0 + 1 };
        while cur[i].0 > floor && budget > 0 {
            let mut earlier = cur.clone();
            earlier[i].0 -= 1;
            if test(&earlier, &mut budget) {
                cur = earlier;
            } else {
                break;
            }
        }
    }
    cur
}
