//! The strategies: PCT, bounded deviation search, random; run over host
//! threads with results gathered in a fixed order, so that the report depends on
//! the configuration and the seed only.

use super::exec::{Choice, Chooser, Exec, Point};
use super::minimize::{deviations, minimize};
use super::{sorted_findings, Config, Found, Report, Rng, Signature, Strategy, FORMAT};
use crate::scenario::Plan;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Scheduling points one run may pass before it is cut.
const MAX_POINTS: u64 = 200_000;
/// Replays a minimisation may spend on one finding.
const MINIMIZE_REPLAYS: u32 = 400;
/// Schedules run between progress reports and stop checks.
const BATCH: u64 = 256;

/// What the search reports while it runs (for a progress bar).
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Schedules run so far.
    pub schedules: u64,
    /// Distinct findings so far.
    pub findings: usize,
    /// Bounded: the bound being searched.
    pub bound: u32,
}

/// The first schedule of a finding: the key orders schedules in strategy order.
#[derive(Clone, Debug)]
struct Hit {
    key: (u64, Vec<(u64, Choice)>),
    devs: Vec<(u64, Choice)>,
}

#[derive(Default)]
struct Tally {
    schedules: u64,
    distinct: BTreeSet<u64>,
    pruned: u64,
    hits: BTreeMap<Signature, Hit>,
}

impl Tally {
    fn absorb(&mut self, o: Tally) {
        self.schedules += o.schedules;
        self.distinct.extend(o.distinct);
        self.pruned += o.pruned;
        for (s, h) in o.hits {
            self.hit(s, h);
        }
    }

    fn hit(&mut self, s: Signature, h: Hit) {
        match self.hits.get(&s) {
            Some(g) if g.key <= h.key => {}
            _ => {
                self.hits.insert(s, h);
            }
        }
    }

    /// Keeps the findings of a run cut short by pruning (its continuation was
    /// searched before) under `key`, without counting it as a schedule.
    fn partial(&mut self, ex: &Exec, key: u64) {
        let devs = deviations(ex);
        for f in ex.findings() {
            self.hit(
                f.sig,
                Hit {
                    key: (key, devs.clone()),
                    devs: devs.clone(),
                },
            );
        }
    }

    /// Counts a finished run and keeps its findings under `key`.
    fn run(&mut self, ex: &Exec, key: u64) {
        self.schedules += 1;
        self.distinct
            .insert(super::fnv(format!("{:?}", deviations(ex)).as_bytes()));
        self.partial(ex, key);
    }
}

/// Fill and eviction candidates: every (core, page) the default schedule
/// touched with a data access whose translation some paging-structure write
/// of that schedule affects: one of the entries its walk reads, from any root
/// the core loaded, at the start or at the end, was written.
///
/// The others cannot matter to the oracle. A translation whose entries nobody
/// writes never goes stale, so a fill of it caches a fresh entry, and an
/// eviction of it is undone by an identical refill. (A fill may also push
/// another entry out of a full set; evicting that entry is a candidate of its
/// own when it can matter.)
fn candidates(ex: &Exec, roots: &BTreeMap<usize, BTreeSet<u64>>, plan: &Plan) -> Vec<(usize, u64)> {
    let m = ex.runner().machine();
    let written: BTreeSet<u64> = ex
        .written()
        .iter()
        .copied()
        .filter(|w| m.mem.flags(mmu::Pfn(w >> 12)) & mmu::page_flags::PAGING != 0)
        .collect();
    let mems = [&plan.machine().mem, &m.mem];
    ex.touched()
        .iter()
        .copied()
        .filter(|&(c, va)| {
            let core = &m.cores[c];
            roots.get(&c).into_iter().flatten().any(|&cr3| {
                let mut st = core.cpu.state.clone();
                st.cr3 = cr3;
                let regs = crate::machine::regs_of(&st);
                mems.iter().any(|mem| {
                    core.mmu
                        .walk_view(mem, &m.tracker, &regs, mmu::VirtAddr(va))
                        .levels
                        .iter()
                        .any(|l| written.contains(&(l.entry_pa.raw() & !7)))
                })
            })
        })
        .collect()
}

/// The default policy, noting every CR3 each core had at a point (the roots
/// [`candidates`] walks from).
#[derive(Default)]
struct Survey {
    roots: BTreeMap<usize, BTreeSet<u64>>,
}

impl Chooser for Survey {
    fn choose(&mut self, p: &Point<'_>, ex: &Exec) -> Choice {
        for (c, k) in ex.runner().machine().cores.iter().enumerate() {
            self.roots.entry(c).or_default().insert(k.cpu.state.cr3);
        }
        Choice::Run(p.default)
    }
}

/// PCT (Burckhardt et al., ASPLOS 2010): distinct random priorities above
/// `depth`, and `depth − 1` change points among the `k` points, at the i-th of
/// which the running core drops to priority `depth − 1 − i`. The highest
/// priority runnable core runs; spinning cores come after every other.
struct Pct {
    prio: Vec<u64>,
    changes: BTreeMap<u64, u64>,
    fills: BTreeMap<u64, Choice>,
}

impl Pct {
    fn new(cfg: &Config, index: u64, cores: usize, k: u64, cands: &[(usize, u64)]) -> Self {
        let mut rng = Rng::new(cfg.seed, index);
        let d = cfg.depth.max(1) as u64;
        let mut order: Vec<u64> = (0..cores as u64).collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let prio = order.iter().map(|o| d + o).collect();
        let mut changes = BTreeMap::new();
        for i in 0..d.saturating_sub(1) {
            changes.insert(rng.below(k.max(1)), d - 1 - i);
        }
        let mut fills = BTreeMap::new();
        if cfg.fills && !cands.is_empty() {
            for _ in 0..d {
                let at = rng.below(k.max(1));
                let (c, va) = cands[rng.below(cands.len() as u64) as usize];
                let ch = if rng.below(2) == 0 {
                    Choice::Fill(c, va)
                } else {
                    Choice::Evict(c, va)
                };
                fills.insert(at, ch);
            }
        }
        Pct {
            prio,
            changes,
            fills,
        }
    }
}

impl Chooser for Pct {
    fn choose(&mut self, p: &Point<'_>, _ex: &Exec) -> Choice {
        if let Some(f) = self.fills.remove(&p.index) {
            return f;
        }
        if let (Some(low), Some(cur)) = (self.changes.get(&p.index), p.current) {
            self.prio[cur] = *low;
        }
        let best = p.runnable.iter().copied().max_by_key(|&c| {
            let spin = p.spinning.get(c).copied().unwrap_or(false);
            (!spin, self.prio[c])
        });
        Choice::Run(best.unwrap_or(p.default))
    }
}

/// A random runnable core at each point (spinning cores only when every
/// runnable core spins, or one time in eight), and with fills a random fill or
/// eviction one point in 32.
struct Random {
    rng: Rng,
    cands: Vec<(usize, u64)>,
}

impl Chooser for Random {
    fn choose(&mut self, p: &Point<'_>, _ex: &Exec) -> Choice {
        if !self.cands.is_empty() && self.rng.below(32) == 0 {
            let (c, va) = self.cands[self.rng.below(self.cands.len() as u64) as usize];
            return if self.rng.below(2) == 0 {
                Choice::Fill(c, va)
            } else {
                Choice::Evict(c, va)
            };
        }
        let live: Vec<usize> = p
            .runnable
            .iter()
            .copied()
            .filter(|&c| !p.spinning.get(c).copied().unwrap_or(false))
            .collect();
        let pool = if live.is_empty() || self.rng.below(8) == 0 {
            p.runnable
        } else {
            &live
        };
        Choice::Run(pool[self.rng.below(pool.len() as u64) as usize])
    }
}

/// The default policy, used to measure the scenario (points, candidates).
struct Default;

impl Chooser for Default {
    fn choose(&mut self, p: &Point<'_>, _ex: &Exec) -> Choice {
        Choice::Run(p.default)
    }
}

/// Explores `plan` (compiled unscripted). `stop` is polled between batches (a
/// deadline or an interrupt); `progress` gets a report after each batch.
pub fn explore(
    plan: &Arc<Plan>,
    cfg: &Config,
    stop: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(Progress) + Sync),
) -> Report {
    let mut base = Exec::new(plan);
    let mut survey = Survey::default();
    base.run(&mut survey, MAX_POINTS);
    let k = base.points();
    let cands = if cfg.fills {
        candidates(&base, &survey.roots, plan)
    } else {
        Vec::new()
    };
    let cores = plan.machine().num_cores();
    let (shard, shards) = (cfg.shard.0, cfg.shard.1.max(1));
    let mut tally = Tally::default();
    let mut exhaustive = false;
    let mut bound = 0;
    match cfg.strategy {
        Strategy::Pct | Strategy::Random => {
            let mut next = 0u64;
            while next < cfg.runs && !stop() {
                let end = (next + BATCH * rayon::current_num_threads() as u64).min(cfg.runs);
                let batch: Vec<Tally> = (next..end)
                    .into_par_iter()
                    .filter(|i| i % shards == shard)
                    .map(|i| {
                        let mut ex = Exec::new(plan);
                        match cfg.strategy {
                            Strategy::Pct => {
                                ex.run(&mut Pct::new(cfg, i, cores, k, &cands), MAX_POINTS)
                            }
                            _ => ex.run(
                                &mut Random {
                                    rng: Rng::new(cfg.seed, i),
                                    cands: cands.clone(),
                                },
                                MAX_POINTS,
                            ),
                        }
                        let mut t = Tally::default();
                        t.run(&ex, i);
                        t
                    })
                    .collect();
                for t in batch {
                    tally.absorb(t);
                }
                next = end;
                progress(Progress {
                    schedules: tally.schedules,
                    findings: tally.hits.len(),
                    bound: 0,
                });
                if cfg.max_findings > 0 && tally.hits.len() >= cfg.max_findings {
                    break;
                }
            }
        }
        Strategy::Bounded => {
            exhaustive = true;
            // Per first-deviation subtree, the (state, deviations left) pairs
            // already searched, kept from one bound to the next.
            let mut seen: Vec<Seen> = Vec::new();
            for kk in 0..=cfg.preemptions {
                bound = kk;
                if stop() {
                    exhaustive = false;
                    break;
                }
                let (t, complete) =
                    bounded_level(plan, cfg, kk, &cands, (shard, shards), &mut seen, stop);
                tally.absorb(t);
                progress(Progress {
                    schedules: tally.schedules,
                    findings: tally.hits.len(),
                    bound: kk,
                });
                if !complete {
                    exhaustive = false;
                    break;
                }
                if cfg.max_findings > 0 && tally.hits.len() >= cfg.max_findings {
                    exhaustive = kk == cfg.preemptions;
                    break;
                }
            }
        }
    }
    let hits: Vec<(Signature, Hit)> = tally.hits.into_iter().collect();
    let found: Vec<Found> = hits
        .par_iter()
        .filter_map(|(sig, h)| {
            let devs = minimize(plan, h.devs.clone(), sig, MAX_POINTS, MINIMIZE_REPLAYS);
            let (ex, f) = super::emit::replay_to(plan, &devs, sig)?;
            let preemptions = ex.taken().iter().filter(|t| t.is_preemption()).count() as u32;
            let fills = devs
                .iter()
                .filter(|(_, c)| !matches!(c, Choice::Run(_)))
                .count() as u32;
            Some(Found {
                signature: *sig,
                explanation: f.explanation,
                schedule_index: h.key.0,
                steps: ex.runner().machine().steps,
                preemptions,
                fills,
                deviations: devs,
                files: Vec::new(),
            })
        })
        .collect();
    let findings = sorted_findings(found);
    let guarantee = (cfg.strategy == Strategy::Pct && findings.is_empty() && tally.schedules > 0)
        .then(|| {
            // One run finds a given depth-d bug with probability at least
            // 1/(n·k^(d−1)) (PCT's bound); r independent runs miss it with
            // probability at most (1 − p)^r.
            let n = cores as f64;
            let d = cfg.depth.max(1) as i32;
            let p1 = 1.0 / (n * (k.max(1) as f64).powi(d - 1));
            let miss = (1.0 - p1).powf(tally.schedules as f64);
            format!(
                "no bug of depth <= {} with k = {k} scheduling points, with probability >= {:.6} ({} runs; one run finds such a bug with probability >= 1/(n*k^(d-1)) = {p1:.3e})",
                cfg.depth,
                1.0 - miss,
                tally.schedules
            )
        });
    Report {
        format: FORMAT.into(),
        scenario: plan.scenario().name.clone(),
        strategy: cfg.strategy,
        seed: cfg.seed,
        shard: (shard, shards),
        schedules: tally.schedules,
        distinct: tally.distinct.len() as u64,
        pruned: tally.pruned,
        exhaustive,
        bound,
        points: k,
        findings,
        guarantee,
    }
}

/// The (state hash, deviations left) pairs one subtree has searched.
type Seen = BTreeSet<(u64, u32)>;

/// Every schedule with exactly `kk` deviations (shard `shard.0` of `shard.1`
/// of the first deviation's subtrees; with `kk` = 0, the default schedule, in
/// shard 0). `seen` holds, per subtree, what earlier bounds searched. Returns
/// the tally and whether the level was finished.
fn bounded_level(
    plan: &Arc<Plan>,
    cfg: &Config,
    kk: u32,
    cands: &[(usize, u64)],
    shard: (u64, u64),
    seen: &mut Vec<Seen>,
    stop: &(dyn Fn() -> bool + Sync),
) -> (Tally, bool) {
    let mut t = Tally::default();
    if kk == 0 {
        if shard.0 == 0 {
            let mut ex = Exec::new(plan);
            ex.run(&mut Default, MAX_POINTS);
            t.run(&ex, 0);
        }
        return (t, true);
    }
    // The first deviations: every alternative at every point of the default run.
    let roots = children(&Exec::new(plan), cfg, cands);
    seen.resize_with(roots.len(), Seen::new);
    let mine: Vec<(usize, Exec, &mut Seen)> = roots
        .into_iter()
        .zip(seen.iter_mut())
        .enumerate()
        .filter(|(j, _)| (*j as u64) % shard.1 == shard.0)
        .map(|(j, (ex, s))| (j, ex, s))
        .collect();
    let done: Vec<(Tally, bool)> = mine
        .into_par_iter()
        .map(|(j, ex, seen)| {
            let mut t = Tally::default();
            let ok = subtree(ex, cfg, kk - 1, cands, j as u64, seen, &mut t, stop);
            (t, ok)
        })
        .collect();
    let mut complete = true;
    for (s, ok) in done {
        t.absorb(s);
        complete &= ok;
    }
    if cfg.runs > 0 && t.schedules > cfg.runs {
        complete = false;
    }
    (t, complete)
}

/// The alternatives to the default at a point: every other runnable core, and
/// with fills every fill and eviction candidate.
fn alternatives(runnable: &[usize], d: usize, cfg: &Config, cands: &[(usize, u64)]) -> Vec<Choice> {
    let mut alts: Vec<Choice> = runnable
        .iter()
        .filter(|&&c| c != d)
        .map(|&c| Choice::Run(c))
        .collect();
    if cfg.fills {
        for &(c, va) in cands {
            alts.push(Choice::Fill(c, va));
            alts.push(Choice::Evict(c, va));
        }
    }
    alts
}

/// Every state one deviation away along the default run from `ex`: for each
/// later point, each alternative ([`alternatives`]); in point order, then
/// choice order.
fn children(ex: &Exec, cfg: &Config, cands: &[(usize, u64)]) -> Vec<Exec> {
    let mut out = Vec::new();
    let mut cur = ex.clone();
    while let Some((runnable, d)) = cur.at_point() {
        if cur.points() >= MAX_POINTS {
            break;
        }
        for a in alternatives(&runnable, d, cfg, cands) {
            let mut child = cur.clone();
            child.apply(a, &runnable, d);
            out.push(child);
        }
        cur.apply(Choice::Run(d), &runnable, d);
    }
    out
}

/// Every schedule with exactly `left` more deviations from `ex`, depth first:
/// along the default run from `ex`, each alternative at each point is searched
/// with one deviation fewer; with none left, the default run is a schedule.
///
/// With pruning, the state is hashed at every point of that run. A state
/// already searched with exactly as many deviations left continues the same
/// way as it did then (same choices, same findings), so the run stops there;
/// the findings it made before that point are kept. Deviations that commute
/// (two cores' segments that touch disjoint data, a fill of an entry the next
/// segment does not use) reach one state by both orders, so the second order
/// stops where the orders meet: this is the reduction that prunes. Earlier
/// bounds count too: a state searched with `l` left at bound `K − 1` is the
/// same search as with `l` left at bound `K`, so `seen` is kept across bounds.
#[allow(clippy::too_many_arguments)]
fn subtree(
    mut cur: Exec,
    cfg: &Config,
    left: u32,
    cands: &[(usize, u64)],
    key: u64,
    seen: &mut Seen,
    t: &mut Tally,
    stop: &(dyn Fn() -> bool + Sync),
) -> bool {
    // The deadline is polled before every schedule, leaves included: a
    // subtree with one deviation left runs thousands of leaves on a large
    // scenario, and `--time` must not wait for all of them.
    if stop() || (left > 0 && cfg.runs > 0 && t.schedules > cfg.runs) {
        return false;
    }
    while let Some((runnable, d)) = cur.at_point() {
        if cur.points() >= MAX_POINTS {
            break;
        }
        if cfg.prune && !seen.insert((cur.state_hash(), left)) {
            t.pruned += 1;
            t.partial(&cur, key);
            return true;
        }
        if left > 0 {
            for a in alternatives(&runnable, d, cfg, cands) {
                let mut child = cur.clone();
                child.apply(a, &runnable, d);
                if !subtree(child, cfg, left - 1, cands, key, seen, t, stop) {
                    return false;
                }
            }
        }
        cur.apply(Choice::Run(d), &runnable, d);
    }
    if left == 0 {
        t.run(&cur, key);
    }
    true
}
