//! The log of schedule decisions a run took, kept in memory that does not grow
//! with the number of steps when the decisions repeat.
//!
//! A run's decisions are what replay needs to drive the machine exactly as the
//! schedule did. Consecutive steps of one core merge into one
//! [`Decision::Step`] (run-length encoding). A `RoundRobin` over several cores
//! still yields one decision per quantum, so on top of that the log folds a
//! sequence that repeats (with a period of up to [`MAX_PERIOD`] decisions) into
//! one "repeat the last `period` decisions" entry. Four cores at quantum 1 for any
//! number of steps are then four decisions and one repeat counter.
//!
//! Folding is invisible to readers: [`Decisions::iter`] yields exactly the
//! sequence that was pushed (merged as above), so traces, equality and `Debug`
//! are those of the plain list.

use serde::Serialize;

/// One schedule decision, as recorded in traces and replayed: the core stepped
/// (run-length encoded) or a cache operation the schedule asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Decision {
    /// `n` consecutive steps of `core`.
    Step {
        /// Core.
        core: u32,
        /// Steps.
        n: u64,
    },
    /// Evict `core`'s TLB entries for `va`.
    Evict {
        /// Core.
        core: u32,
        /// Linear address.
        va: u64,
    },
    /// Speculatively fill `core`'s TLB for `va`.
    Fill {
        /// Core.
        core: u32,
        /// Linear address.
        va: u64,
    },
}

/// The longest repeating period the log detects: a `RoundRobin` over every core
/// of the largest machine ([`crate::machine::MAX_CORES`]).
pub const MAX_PERIOD: usize = crate::machine::MAX_CORES;

/// One entry of the folded log.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    /// A decision.
    One(Decision),
    /// The `period` `One` items just before this one occur `times` more times,
    /// followed by the first `partial` of them. `open` while later decisions may
    /// still extend it.
    Repeat {
        period: u32,
        times: u64,
        partial: u32,
        open: bool,
    },
}

/// A run's decisions: run-length encoded steps, with repeating sequences folded.
#[derive(Clone, Default)]
pub struct Decisions {
    items: Vec<Item>,
    /// Index of the first `One` after the last `Repeat` (only these are searched
    /// for a new period, so a repeat's pattern is always plain decisions).
    plain_from: usize,
    /// The step run still being counted: `(core, n)`.
    open: Option<(u32, u64)>,
    /// Decisions in the unfolded list.
    len: usize,
}

impl Decisions {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// One global step of `core`.
    #[inline]
    pub fn step(&mut self, core: u32) {
        self.steps(core, 1);
    }

    /// `n` global steps of `core` (merged with the steps before if the core is
    /// the same).
    #[inline]
    pub fn steps(&mut self, core: u32, n: u64) {
        if n == 0 {
            return;
        }
        match &mut self.open {
            Some((c, k)) if *c == core => *k += n,
            _ => {
                self.close();
                self.open = Some((core, n));
                self.len += 1;
            }
        }
    }

    /// Appends a decision (a `Step` merges with the steps before it).
    pub fn push(&mut self, d: Decision) {
        match d {
            Decision::Step { core, n } => self.steps(core, n),
            other => {
                self.close();
                self.len += 1;
                self.commit(other);
            }
        }
    }

    /// Number of decisions in the unfolded list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no decision was taken.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries held in memory (folded), for tests and memory accounting.
    pub fn stored(&self) -> usize {
        self.items.len() + usize::from(self.open.is_some())
    }

    /// The decisions in order, unfolded.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            log: self,
            item: 0,
            rep: None,
            open_done: false,
        }
    }

    /// The decisions as a plain list.
    pub fn to_vec(&self) -> Vec<Decision> {
        self.iter().collect()
    }

    /// Ends the open step run, committing it.
    fn close(&mut self) {
        if let Some((core, n)) = self.open.take() {
            self.commit(Decision::Step { core, n });
        }
    }

    /// Adds a finished decision: extends the open repeat if it is the next one
    /// of the pattern, else appends it and looks for a new period.
    fn commit(&mut self, d: Decision) {
        let len = self.items.len();
        if let Some(Item::Repeat {
            period,
            times,
            partial,
            open: true,
        }) = self.items.last()
        {
            let (p, k) = (*period as usize, *partial as usize);
            let next = &self.items[len - 1 - p + k];
            if matches!(next, Item::One(x) if *x == d) {
                let (times, partial) = if k + 1 == p {
                    (*times + 1, 0)
                } else {
                    (*times, (k + 1) as u32)
                };
                self.items[len - 1] = Item::Repeat {
                    period: p as u32,
                    times,
                    partial,
                    open: true,
                };
                return;
            }
            if let Some(Item::Repeat { open, .. }) = self.items.last_mut() {
                *open = false;
            }
            self.plain_from = len;
        }
        self.items.push(Item::One(d));
        self.fold();
    }

    /// If the plain tail ends in two equal halves of some period, replaces the
    /// second half with a repeat of the first.
    fn fold(&mut self) {
        let len = self.items.len();
        let plain = len - self.plain_from;
        for p in 1..=(plain / 2).min(MAX_PERIOD) {
            let (a, b) = (len - 2 * p, len - p);
            if self.items[len - 1] == self.items[b - 1] && self.items[a..b] == self.items[b..] {
                self.items.truncate(b);
                self.items.push(Item::Repeat {
                    period: p as u32,
                    times: 1,
                    partial: 0,
                    open: true,
                });
                self.plain_from = self.items.len();
                return;
            }
        }
    }
}

impl PartialEq for Decisions {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Decisions {}

impl std::fmt::Debug for Decisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<Decision> for Decisions {
    fn from_iter<I: IntoIterator<Item = Decision>>(it: I) -> Self {
        let mut d = Decisions::new();
        for x in it {
            d.push(x);
        }
        d
    }
}

impl<'a> IntoIterator for &'a Decisions {
    type Item = Decision;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The unfolded decisions of a [`Decisions`].
pub struct Iter<'a> {
    log: &'a Decisions,
    item: usize,
    /// Inside a repeat: (pattern start, period, decisions left to yield, next
    /// offset in the pattern).
    rep: Option<(usize, usize, u64, usize)>,
    open_done: bool,
}

impl Iterator for Iter<'_> {
    type Item = Decision;

    fn next(&mut self) -> Option<Decision> {
        loop {
            if let Some((start, p, left, off)) = &mut self.rep {
                if *left > 0 {
                    *left -= 1;
                    let i = *start + *off;
                    *off = (*off + 1) % *p;
                    if let Item::One(d) = &self.log.items[i] {
                        return Some(d.clone());
                    }
                    // Patterns hold only plain decisions (see `fold`).
                    continue;
                }
                self.rep = None;
            }
            match self.log.items.get(self.item) {
                Some(Item::One(d)) => {
                    self.item += 1;
                    return Some(d.clone());
                }
                Some(Item::Repeat {
                    period,
                    times,
                    partial,
                    ..
                }) => {
                    let p = *period as usize;
                    let left = times
                        .saturating_mul(p as u64)
                        .saturating_add(*partial as u64);
                    self.rep = Some((self.item - p, p, left, 0));
                    self.item += 1;
                }
                None => {
                    if self.open_done {
                        return None;
                    }
                    self.open_done = true;
                    return self.log.open.map(|(core, n)| Decision::Step { core, n });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(core: u32, n: u64) -> Decision {
        Decision::Step { core, n }
    }

    /// Pushes unit steps of the given cores, as a runner does.
    fn log_of(cores: &[u32]) -> Decisions {
        let mut d = Decisions::new();
        for c in cores {
            d.step(*c);
        }
        d
    }

    /// The plain run-length encoding of unit steps, the reference.
    fn rle(cores: &[u32]) -> Vec<Decision> {
        let mut v: Vec<Decision> = Vec::new();
        for c in cores {
            match v.last_mut() {
                Some(Decision::Step { core, n }) if core == c => *n += 1,
                _ => v.push(step(*c, 1)),
            }
        }
        v
    }

    #[test]
    fn round_robin_folds_to_constant_memory() {
        let cores: Vec<u32> = (0..100_000).map(|i| (i % 4) as u32).collect();
        let d = log_of(&cores);
        assert_eq!(d.to_vec(), rle(&cores));
        assert_eq!(d.len(), 100_000);
        assert!(d.stored() <= 6, "{} entries stored", d.stored());
    }

    #[test]
    fn quantum_runs_and_partial_cycles_unfold_exactly() {
        // Quantum 3 over cores 0..3 for 10 full cycles, a partial cycle, then a
        // different pattern, then cache operations and a new round robin.
        let mut cores = Vec::new();
        for _ in 0..10 {
            for c in 0..3 {
                cores.extend([c; 3]);
            }
        }
        cores.extend([0, 0, 0, 1]);
        cores.extend([2, 2]);
        let mut d = log_of(&cores);
        let mut want = rle(&cores);
        for op in [
            Decision::Evict {
                core: 1,
                va: 0x1000,
            },
            Decision::Evict {
                core: 1,
                va: 0x1000,
            },
            Decision::Fill {
                core: 0,
                va: 0x2000,
            },
        ] {
            d.push(op.clone());
            want.push(op);
        }
        for i in 0..50u32 {
            d.step(i % 2);
            match want.last_mut() {
                Some(Decision::Step { core, n }) if *core == i % 2 => *n += 1,
                _ => want.push(step(i % 2, 1)),
            }
        }
        assert_eq!(d.to_vec(), want);
        assert_eq!(d.len(), want.len());
        assert!(d.stored() < 20, "{} entries stored", d.stored());
    }

    #[test]
    fn irregular_sequences_round_trip() {
        // A deterministic pseudo-random walk over 3 cores with occasional ops.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut d = Decisions::new();
        let mut want: Vec<Decision> = Vec::new();
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let op = if x.is_multiple_of(11) {
                Decision::Evict {
                    core: (x % 3) as u32,
                    va: 0x1000,
                }
            } else {
                step((x % 3) as u32, 1 + (x >> 60) % 2)
            };
            match (&op, want.last_mut()) {
                (Decision::Step { core, n }, Some(Decision::Step { core: c, n: k }))
                    if c == core =>
                {
                    *k += *n
                }
                _ => want.push(op.clone()),
            }
            d.push(op);
        }
        assert_eq!(d.to_vec(), want);
        assert_eq!(d.len(), want.len());
        let back: Decisions = want.iter().cloned().collect();
        assert_eq!(back, d);
        assert_eq!(format!("{d:?}"), format!("{want:?}"));
    }
}
