//! Schedule exploration: search the interleavings of a scenario's cores (and,
//! with fills, the hardware's caching choices) for stale uses, latent entries,
//! dead cores, hangs and broken invariants; minimise each finding and hand it
//! back as a scenario `tlbemu run` reproduces.
//!
//! The search runs on a plan compiled [`crate::scenario::Mode::Unscripted`]:
//! every core starts from its start state, the file's `schedule` and `expect`
//! are ignored, and `invariants` are checked after every complete schedule.
//! Every schedule is a function of the strategy, the seed and its index, so the
//! findings are the same for any number of threads and any sharding.

mod emit;
mod exec;
mod minimize;
mod search;

pub use emit::{finding_scenario, reproduces, EmitError};
pub use exec::{default_core, Choice, Chooser, End, Exec, Point, Taken, LOCAL_RUN_CAP, SPIN_LIMIT};
pub use minimize::{minimize, Script};
pub use search::{explore, Progress};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The search strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Probabilistic concurrency testing: random core priorities and `depth − 1`
    /// priority change points per run.
    Pct,
    /// Every schedule with at most K deviations from the default scheduler,
    /// for K = 0, 1, … up to the bound.
    Bounded,
    /// A uniformly random runnable core at every point.
    Random,
}

/// What to search and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Strategy.
    pub strategy: Strategy,
    /// PCT depth (the bug depth searched for).
    pub depth: u32,
    /// Bounded: the largest number of deviations.
    pub preemptions: u32,
    /// PCT and random: schedules to run. Bounded: a cap on schedules.
    pub runs: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Shard `index` of `count`.
    pub shard: (u64, u64),
    /// Also choose speculative fills and evictions.
    pub fills: bool,
    /// Prune bounded search by state hashing.
    pub prune: bool,
    /// Stop after this many distinct findings (0: never).
    pub max_findings: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            strategy: Strategy::Pct,
            depth: 3,
            preemptions: 2,
            runs: 10_000,
            seed: 0,
            shard: (0, 1),
            fills: false,
            prune: true,
            max_findings: 0,
        }
    }
}

/// What kind of failure a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A stale translation used where the coherence rule forbids it.
    StaleUse,
    /// A stale entry still cached at a completion point (`CompletedLatent`).
    LatentEntry,
    /// A core stopped (unhandled exception, triple fault, unsupported
    /// instruction, emulator error) and no invariant accounts for it.
    DeadCore,
    /// Livelock, deadlock, or a budget spent with cores still running.
    Hang,
    /// An invariant failed at the end of a complete schedule.
    Invariant,
}

/// What two findings must share to be the same finding: kind, core, linear
/// page, PCID, the RIP of the write that made the entry stale, and the RIP of
/// the use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signature {
    /// Kind.
    pub kind: FindingKind,
    /// Core.
    pub core: usize,
    /// Linear page.
    pub page: u64,
    /// PCID.
    pub pcid: u16,
    /// RIP of the write that made the entry stale (0 when none did).
    pub write_rip: u64,
    /// RIP of the use (for other kinds: where it happened, or the invariant's
    /// index).
    pub use_rip: u64,
}

/// One finding of one schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Dedup key.
    pub sig: Signature,
    /// The oracle's explanation.
    pub explanation: String,
}

impl Finding {
    pub(crate) fn new(
        kind: FindingKind,
        core: usize,
        page: u64,
        pcid: u16,
        write_rip: u64,
        use_rip: u64,
        explanation: String,
    ) -> Self {
        Finding {
            sig: Signature {
                kind,
                core,
                page,
                pcid,
                write_rip,
                use_rip,
            },
            explanation,
        }
    }
}

/// A finding as the report gives it, with its minimised schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// Dedup key.
    pub signature: Signature,
    /// The explanation from the minimised run.
    pub explanation: String,
    /// Which schedule found it first (strategy order).
    pub schedule_index: u64,
    /// Machine steps of the minimised schedule up to the finding.
    pub steps: u64,
    /// Preemptions in the minimised schedule.
    pub preemptions: u32,
    /// Fills and evictions in it.
    pub fills: u32,
    /// The minimised schedule: deviations from the default scheduler, by point.
    pub deviations: Vec<(u64, Choice)>,
    /// Files written for it (set by the command).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// The `tlbemu-explore/1` report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `tlbemu-explore/1`.
    pub format: String,
    /// The scenario's name.
    pub scenario: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Seed.
    pub seed: u64,
    /// `[index, count]`.
    pub shard: (u64, u64),
    /// Schedules run.
    pub schedules: u64,
    /// Distinct schedules (by their decision sequence).
    pub distinct: u64,
    /// Bounded: subtrees pruned by state hashing.
    pub pruned: u64,
    /// Bounded: whether every schedule within the bound was run.
    pub exhaustive: bool,
    /// Bounded: the bound reached (K).
    pub bound: u32,
    /// Scheduling points of the default schedule (PCT's k).
    pub points: u64,
    /// Findings, by signature.
    pub findings: Vec<Found>,
    /// PCT without findings: the guarantee the runs give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarantee: Option<String>,
}

/// The report format's name.
pub const FORMAT: &str = "tlbemu-explore/1";

/// Why reports cannot be merged.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("nothing to merge (expected at least one report)")]
    Empty,
    /// The reports are of different searches.
    #[error("report {index} is of another search ({what}); expected the shards of one search")]
    Mismatch {
        /// Which report (0-based).
        index: usize,
        /// What differs.
        what: String,
    },
}

/// Unions the findings of shards of one search (same scenario, strategy and
/// seed): per signature, the one found at the lowest schedule index, so the
/// union equals what one unsharded process reports.
pub fn merge(reports: &[Report]) -> Result<Report, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    let mut out = first.clone();
    out.shard = (0, 1);
    let mut by: BTreeMap<Signature, Found> = BTreeMap::new();
    let (mut schedules, mut distinct, mut pruned) = (0, 0, 0);
    let mut exhaustive = true;
    for (i, r) in reports.iter().enumerate() {
        let differs = if r.format != FORMAT {
            Some(format!("format {}", r.format))
        } else if r.scenario != first.scenario {
            Some(format!("scenario {}", r.scenario))
        } else if r.strategy != first.strategy || r.seed != first.seed {
            Some(format!("strategy {:?} seed {}", r.strategy, r.seed))
        } else {
            None
        };
        if let Some(what) = differs {
            return Err(MergeError::Mismatch { index: i, what });
        }
        schedules += r.schedules;
        distinct += r.distinct;
        pruned += r.pruned;
        exhaustive &= r.exhaustive;
        out.bound = out.bound.min(r.bound);
        for f in &r.findings {
            match by.get(&f.signature) {
                Some(g) if g.schedule_index <= f.schedule_index => {}
                _ => {
                    by.insert(f.signature, f.clone());
                }
            }
        }
    }
    out.schedules = schedules;
    out.distinct = distinct;
    out.pruned = pruned;
    out.exhaustive = exhaustive;
    out.findings = sorted_findings(by.into_values().collect());
    if !out.findings.is_empty() {
        out.guarantee = None;
    }
    Ok(out)
}

/// Findings in report order: by the schedule that found each, then signature.
pub(crate) fn sorted_findings(mut f: Vec<Found>) -> Vec<Found> {
    f.sort_by_key(|x| (x.schedule_index, x.signature));
    f
}

/// FNV-1a 64 (deterministic, unlike the standard hasher).
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `label+0xoff` for an address, from the nearest label at or below it.
pub(crate) fn sym(labels: &BTreeMap<u64, String>, a: u64) -> String {
    match labels.range(..=a).next_back() {
        Some((b, l)) if *b == a => format!("<{l}>"),
        Some((b, l)) if a - *b < 0x1000 => format!("<{l}+{:#x}>", a - *b),
        _ => format!("{a:#x}"),
    }
}

/// SplitMix64: a small deterministic generator, seeded per schedule.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next();
        r
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` ≥ 1).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n.max(1) as u128) >> 64) as u64
    }
}
