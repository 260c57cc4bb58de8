//! One schedule of an exploration: cores run between scheduling points, a
//! [`Chooser`] picks what happens at each point, and the oracle's findings are
//! collected.
//!
//! A core runs without preemption until it has performed one *visible*
//! operation (see [`Exec::visible`]); then the next decision is taken. Under
//! sequential consistency, the instructions between two visible operations touch
//! only what no other core reads or writes, so they commute with every other
//! core's steps and interleaving them finer cannot change any outcome.

use super::{Finding, FindingKind};
use crate::events::EventClass;
use crate::machine::StepResult;
use crate::scenario::{Plan, Runner, VISIBLE_CLASSES};
use mmu::page_flags;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Steps a core may take without a visible operation before the run treats the
/// next one as a scheduling point anyway (a core in a purely local loop would
/// otherwise never yield).
pub const LOCAL_RUN_CAP: u64 = 4096;

/// Consecutive points at which every runnable core was spinning, with no write
/// by anyone, after which the run is a livelock.
pub const SPIN_LIMIT: u32 = 256;

/// What happens at a scheduling point.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Choice {
    /// Run this core to its next visible operation.
    Run(usize),
    /// Speculatively fill this core's caches for a linear address (SDM Vol. 3A
    /// 4.10.2.3: a processor may cache a translation at any time).
    Fill(usize, u64),
    /// Evict the entries this core would use for a linear address (SDM Vol. 3A
    /// 4.10.4.4: entries may be dropped at any time).
    Evict(usize, u64),
}

/// What a chooser sees at a scheduling point.
#[derive(Clone, Debug)]
pub struct Point<'a> {
    /// Index of this point in the run (0-based; a fill or eviction is a point of
    /// its own).
    pub index: u64,
    /// Cores that can make progress, ascending.
    pub runnable: &'a [usize],
    /// Which of them are spinning (waiting on a value nobody has changed).
    pub spinning: &'a [bool],
    /// The core that ran last, if any.
    pub current: Option<usize>,
    /// The choice the default (non-preemptive) policy would make.
    pub default: usize,
}

/// Picks what happens at each scheduling point.
pub trait Chooser {
    /// The choice at `p` (a `Run` of a core not in `p.runnable` is replaced by
    /// the default).
    fn choose(&mut self, p: &Point<'_>, ex: &Exec) -> Choice;
}

/// The non-preemptive default: keep running the current core while it can make
/// progress and is not spinning; else the next core after it, in cyclic order,
/// that is not spinning; else the next spinning one.
pub fn default_core(runnable: &[usize], spinning: &[bool], current: Option<usize>) -> usize {
    let cur = current.unwrap_or(usize::MAX);
    if runnable.contains(&cur) && !spinning.get(cur).copied().unwrap_or(false) {
        return cur;
    }
    let after = |c: &&usize| if current.is_some() { **c > cur } else { true };
    let pick = |want_spin: bool| {
        let ok = |c: &&usize| spinning.get(**c).copied().unwrap_or(false) == want_spin;
        runnable
            .iter()
            .filter(ok)
            .find(after)
            .or_else(|| runnable.iter().find(ok))
            .copied()
    };
    pick(false)
        .or_else(|| pick(true))
        .unwrap_or_else(|| runnable.first().copied().unwrap_or(0))
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// No core can make progress any more: the schedule is complete.
    Complete,
    /// Every runnable core spun for [`SPIN_LIMIT`] points with no write.
    Livelock(Vec<usize>),
    /// The step budget ran out.
    Budget,
    /// The chooser's run was cut short by a cap on points (minimisation's
    /// replays).
    Cut,
}

/// One decision taken, with what it was measured against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The choice.
    pub choice: Choice,
    /// What the default policy would have run.
    pub default: usize,
    /// The core that ran before, and whether it could have gone on (so that
    /// switching away was a preemption).
    pub current: Option<usize>,
    /// Whether the current core could have gone on (runnable, not spinning).
    pub current_could_run: bool,
    /// Per core: machine steps of that core's run segment (0 for fills).
    pub steps: u64,
    /// RIP of the core after the segment, and whether RIP equalled it earlier in
    /// the same segment (then `Run until` that address would stop early).
    pub end_rip: u64,
    /// The end RIP appeared earlier in the segment.
    pub rip_repeats: bool,
    /// The segment ended with the core halted or stopped.
    pub halted: bool,
}

impl Taken {
    /// Whether this decision departs from the default policy.
    pub fn is_deviation(&self) -> bool {
        match self.choice {
            Choice::Run(c) => c != self.default,
            _ => true,
        }
    }

    /// Whether it is a preemption: switching away from a core that could have
    /// gone on.
    pub fn is_preemption(&self) -> bool {
        matches!(self.choice, Choice::Run(c) if self.current_could_run && Some(c) != self.current)
    }
}

/// One execution under exploration.
#[derive(Clone)]
pub struct Exec {
    runner: Runner,
    plan: Arc<Plan>,
    current: Option<usize>,
    points: u64,
    /// Per core: hashes of its registers at its visible reads since the last
    /// write that changed a word (a recurrence means it is spinning), whether it
    /// is spinning, and whether it is parked in a jump to itself.
    states: Vec<BTreeSet<u64>>,
    parked: Vec<bool>,
    /// Last known value of each word written (a write of the same value, like a
    /// failed `xchg` spin, changes nothing).
    values: BTreeMap<u64, u64>,
    spinning: Vec<bool>,
    spin_points: u32,
    /// Physical words written by data writes (for the state hash).
    written: BTreeSet<u64>,
    taken: Vec<Taken>,
    end: Option<End>,
    /// Pages any core touched with a data access (fill and eviction
    /// candidates for later runs).
    touched: BTreeSet<(usize, u64)>,
    keep_taken: bool,
}

impl Exec {
    /// A run at the plan's start state.
    pub fn new(plan: &Arc<Plan>) -> Self {
        let n = plan.machine().num_cores();
        Exec {
            runner: Runner::start_probed(Arc::clone(plan)),
            plan: Arc::clone(plan),
            current: None,
            points: 0,
            states: vec![BTreeSet::new(); n],
            parked: vec![false; n],
            values: BTreeMap::new(),
            spinning: vec![false; n],
            spin_points: 0,
            written: BTreeSet::new(),
            taken: Vec::new(),
            end: None,
            touched: BTreeSet::new(),
            keep_taken: true,
        }
    }

    /// The runner (machine, oracle).
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The decisions taken so far.
    pub fn taken(&self) -> &[Taken] {
        &self.taken
    }

    /// Scheduling points passed so far.
    pub fn points(&self) -> u64 {
        self.points
    }

    /// How the run ended, once it has.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Physical words written by visible data writes so far.
    pub fn written(&self) -> &BTreeSet<u64> {
        &self.written
    }

    /// Pages (core, linear page) touched by data accesses so far.
    pub fn touched(&self) -> &BTreeSet<(usize, u64)> {
        &self.touched
    }

    /// Cores that can make progress now, ascending.
    pub fn runnable(&self) -> Vec<usize> {
        let m = self.runner.machine();
        (0..m.num_cores())
            .filter(|&c| {
                let k = &m.cores[c];
                k.stopped.is_none()
                    && !m.is_idle(c)
                    && (!self.parked[c]
                        || (k.cpu.state.rflags & crate::state::control::IF != 0
                            && m.apics[c].deliverable().is_some()))
            })
            .collect()
    }

    /// Whether each core is spinning.
    pub fn spinning(&self) -> &[bool] {
        &self.spinning
    }

    /// The current point, or `None` once the run has ended (then [`Exec::end`]
    /// says how). Ends the run when nothing can run or the budget is spent.
    pub fn at_point(&mut self) -> Option<(Vec<usize>, usize)> {
        if self.end.is_some() {
            return None;
        }
        if self.runner.machine().steps >= self.plan.budget() {
            self.end = Some(End::Budget);
            return None;
        }
        let runnable = self.runnable();
        if runnable.is_empty() {
            self.end = Some(End::Complete);
            return None;
        }
        if runnable.iter().all(|&c| self.spinning[c]) {
            if self.spin_points >= SPIN_LIMIT {
                self.end = Some(End::Livelock(runnable));
                return None;
            }
        } else {
            self.spin_points = 0;
        }
        let d = default_core(&runnable, &self.spinning, self.current);
        Some((runnable, d))
    }

    /// Runs to the end, asking `chooser` at every point, for at most `max_points`
    /// points.
    pub fn run(&mut self, chooser: &mut dyn Chooser, max_points: u64) {
        while let Some((runnable, d)) = self.at_point() {
            if self.points >= max_points {
                self.end = Some(End::Cut);
                return;
            }
            let spinning = self.spinning.clone();
            let p = Point {
                index: self.points,
                runnable: &runnable,
                spinning: &spinning,
                current: self.current,
                default: d,
            };
            let c = chooser.choose(&p, self);
            self.apply(c, &runnable, d);
        }
    }

    /// Takes one decision at the current point (after [`Exec::at_point`]).
    pub fn apply(&mut self, c: Choice, runnable: &[usize], default: usize) {
        let c = match c {
            Choice::Run(k) if !runnable.contains(&k) => Choice::Run(default),
            Choice::Fill(k, _) | Choice::Evict(k, _) if k >= self.spinning.len() => {
                Choice::Run(default)
            }
            c => c,
        };
        let cur = self.current;
        let could = cur.is_some_and(|k| runnable.contains(&k) && !self.spinning[k]);
        self.points += 1;
        let mut t = Taken {
            choice: c,
            default,
            current: cur,
            current_could_run: could,
            steps: 0,
            end_rip: 0,
            rip_repeats: false,
            halted: false,
        };
        match c {
            Choice::Run(k) => {
                if self.spinning.iter().all(|s| *s) || runnable.iter().all(|&r| self.spinning[r]) {
                    self.spin_points += 1;
                }
                self.segment(k, &mut t);
                self.current = Some(k);
            }
            Choice::Fill(k, va) => {
                self.runner
                    .cache_op(&crate::scenario::Decision::Fill { core: k as u32, va });
            }
            Choice::Evict(k, va) => {
                self.runner
                    .cache_op(&crate::scenario::Decision::Evict { core: k as u32, va });
            }
        }
        if self.keep_taken {
            self.taken.push(t);
        }
    }

    /// Runs `core` up to and including its next visible operation.
    fn segment(&mut self, core: usize, t: &mut Taken) {
        let budget = self.plan.budget();
        let mut rips: Vec<u64> = Vec::new();
        let mut local = 0u64;
        let start = self.runner.machine().cores[core].cpu.state.rip;
        loop {
            let before = self.runner.machine().steps;
            let r = self.runner.step_core(core);
            let stepped = self.runner.machine().steps != before;
            if stepped {
                t.steps += 1;
            }
            let rip = self.runner.machine().cores[core].cpu.state.rip;
            let stuck_here = rips.last() == Some(&rip) || (rips.is_empty() && rip == start);
            rips.push(rip);
            let visible = self.visible(core);
            self.parked[core] = !visible && stuck_here && matches!(r, StepResult::Retired);
            if self.parked[core] {
                t.end_rip = rip;
                return;
            }
            let done = !matches!(r, StepResult::Retired) || !stepped;
            local += 1;
            if visible || done || local >= LOCAL_RUN_CAP || self.runner.machine().steps >= budget {
                let c = &self.runner.machine().cores[core];
                t.halted = c.cpu.state.halted || c.stopped.is_some();
                t.end_rip = rip;
                t.rip_repeats = rips[..rips.len() - 1].contains(&rip);
                return;
            }
        }
    }

    /// Whether `core`'s last step was visible to other cores: an event of a
    /// [`VISIBLE_CLASSES`] class (fills, invalidations, paging-structure writes,
    /// control-register writes, IPIs, EOIs, interrupts, HLT and wake-ups), PAUSE,
    /// or a data access to a paging-structure page or to shared data (every data
    /// access when the scenario marks none shared). Also keeps the spin state.
    fn visible(&mut self, core: usize) -> bool {
        let kinds = self.runner.last_step_kinds();
        let m = self.runner.machine();
        let mut visible = kinds & VISIBLE_CLASSES.0 != 0;
        let pause = m.cores[core].spinning;
        let shared_all = self.plan.shared().is_empty();
        let mut read = false;
        let mut wrote = false;
        for a in self.runner.step_accesses() {
            if a.kind == mmu::AccessKind::Execute {
                continue;
            }
            self.touched.insert((core, a.la.raw() & !0xfff));
            let paging = m.mem.flags(mmu::Pfn(a.pa.raw() >> 12)) & page_flags::PAGING != 0;
            if !(paging || shared_all || self.plan.is_shared(a.la.raw())) {
                continue;
            }
            visible = true;
            let word = a.pa.raw() & !7;
            if a.kind == mmu::AccessKind::Write {
                self.written.insert(word);
                self.written.insert(word + 8);
                for w in [word, word + 8] {
                    let v = m.mem.read_u64(mmu::PhysAddr(w)).unwrap_or(0);
                    if self.values.insert(w, v) != Some(v) {
                        wrote = true;
                    }
                }
            } else {
                read = true;
            }
        }
        // Paging-structure writes, IPIs, interrupt deliveries and wake-ups can
        // end any core's wait, as a changed word can.
        let wakes = [
            EventClass::PagingWrite,
            EventClass::IpiSent,
            EventClass::Interrupt,
            EventClass::Wake,
            EventClass::Eoi,
        ];
        if wakes.iter().any(|c| kinds & c.bit() != 0) {
            wrote = true;
        }
        if wrote {
            // A changed word may be what any spinner waits for.
            self.states.iter_mut().for_each(|r| r.clear());
            self.spinning.iter_mut().for_each(|s| *s = false);
            self.spin_points = 0;
        } else if read || pause {
            // The same registers at a read with no word changed since: the core
            // is going round a loop that cannot end until someone writes.
            let st = &m.cores[core].cpu.state;
            let mut h = super::fnv(&st.rip.to_le_bytes()) ^ st.rflags.rotate_left(17);
            for g in st.gpr {
                h = (h ^ g).wrapping_mul(0x0000_0100_0000_01b3);
            }
            let again = !self.states[core].insert(h);
            self.spinning[core] = again;
            visible = true;
        }
        visible
    }

    /// The findings of the run so far: violations, latent entries, dead cores,
    /// hangs, and (for a complete run) failed invariants.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = Vec::new();
        for r in self.runner.stale_uses().iter().filter(|r| r.violation) {
            let d = &r.detail;
            out.push(Finding::new(
                FindingKind::StaleUse,
                d.ctx.core as usize,
                d.va.raw() & !0xfff,
                d.pcid,
                d.made_stale_by.map_or(0, |w| w.rip),
                d.ctx.rip,
                format!("{d}"),
            ));
        }
        let keys = self.runner.latent_keys();
        for (l, k) in self.runner.latent_violations().iter().zip(keys) {
            out.push(Finding::new(
                FindingKind::LatentEntry,
                k.core,
                k.page,
                k.pcid,
                k.write_rip,
                k.at_rip,
                l.clone(),
            ));
        }
        let m = self.runner.machine();
        let accounts = self.plan.stop_accounts();
        for (i, c) in m.cores.iter().enumerate() {
            if let Some(reason) = &c.stopped {
                if !crate::scenario::stop_expected(&accounts, i, reason) {
                    out.push(Finding::new(
                        FindingKind::DeadCore,
                        i,
                        0,
                        0,
                        0,
                        c.cpu.last.rip,
                        format!("core {i} stopped: {reason}"),
                    ));
                }
            }
        }
        match &self.end {
            Some(End::Livelock(cores)) => {
                let at: Vec<String> = cores.iter().map(|&c| self.where_is(c)).collect();
                out.push(Finding::new(
                    FindingKind::Hang,
                    cores.first().copied().unwrap_or(0),
                    0,
                    0,
                    0,
                    cores
                        .first()
                        .map_or(0, |&c| m.cores[c].cpu.state.rip & !0xff),
                    format!(
                        "livelock: cores {cores:?} spin with no write by anyone for {SPIN_LIMIT} scheduling points ({})",
                        at.join(", ")
                    ),
                ));
            }
            Some(End::Budget) => {
                let live: Vec<usize> = (0..m.num_cores())
                    .filter(|&c| m.cores[c].stopped.is_none() && !m.cores[c].cpu.state.halted)
                    .collect();
                let at: Vec<String> = live.iter().map(|&c| self.where_is(c)).collect();
                out.push(Finding::new(
                    FindingKind::Hang,
                    live.first().copied().unwrap_or(0),
                    0,
                    0,
                    0,
                    0,
                    format!(
                        "the step budget of {} ran out with cores {live:?} still running ({})",
                        self.plan.budget(),
                        at.join(", ")
                    ),
                ));
            }
            Some(End::Complete) => {
                let report = self.runner.report();
                let first = self.plan.checks().len() - self.plan.invariant_checks().len();
                for e in report
                    .expectations
                    .iter()
                    .filter(|e| e.index >= first && !e.ok)
                {
                    out.push(Finding::new(
                        FindingKind::Invariant,
                        0,
                        0,
                        0,
                        0,
                        (e.index - first) as u64,
                        format!("{} failed: {}", e.what, e.actual),
                    ));
                }
            }
            _ => {}
        }
        out
    }

    /// `core N at label+off` for messages.
    fn where_is(&self, core: usize) -> String {
        let rip = self.runner.machine().cores[core].cpu.state.rip;
        format!("core {core} at {}", super::sym(self.plan.labels(), rip))
    }

    /// A hash of the state that decides the rest of the run: every core's
    /// registers and status, the APICs, the TLB and paging-structure-cache
    /// contents (without fill steps or LRU ages; a stale entry with the RIP of
    /// the write that made it stale), every word written so far whose value
    /// differs from the start, the spin state (flags, the register hashes seen
    /// at reads since the last write, the count of all-spinning points), which
    /// core ran last, the findings so far and where the coherence rule stands.
    /// Two runs reaching the same hash at a point continue identically, up to
    /// LRU age and A/D bits the walker set (see docs/explore.md).
    pub fn state_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let m = self.runner.machine();
        let mut s = Mix::default();
        for (i, c) in m.cores.iter().enumerate() {
            c.cpu.state.hash(&mut s);
            m.apics[i].hash(&mut s);
            if let Some(r) = &c.stopped {
                s.write(format!("{r:?}").as_bytes());
            }
            // Entries in any order: a sum of per-entry hashes (ways and sets
            // may place the same entries differently).
            let (mut sum, mut n, mut any_stale) = (0u64, 0u64, false);
            c.mmu.for_each_entry(&m.tracker, |e| {
                any_stale |= e.stale;
                let mut h = Mix::default();
                (e.cache, e.pcid, e.va, e.cached, e.global, e.stale).hash(&mut h);
                sum = sum.wrapping_add(h.finish());
                n += 1;
            });
            (sum, n).hash(&mut s);
            if any_stale {
                for l in c.mmu.stale_entries(&m.tracker) {
                    (l.entry.va, l.made_stale_by.map_or(0, |w| w.rip)).hash(&mut s);
                }
            }
        }
        let start = &self.plan.machine().mem;
        for w in &self.written {
            let now = m.mem.read_u64(mmu::PhysAddr(*w)).unwrap_or(0);
            if start.read_u64(mmu::PhysAddr(*w)).unwrap_or(0) != now {
                (*w, now).hash(&mut s);
            }
        }
        self.spinning.hash(&mut s);
        self.parked.hash(&mut s);
        self.states.hash(&mut s);
        self.spin_points.hash(&mut s);
        self.runner.violations().hash(&mut s);
        self.runner.stale_uses().len().hash(&mut s);
        self.runner.latent_violations().len().hash(&mut s);
        self.runner.coherence_progress().hash(&mut s);
        self.current.hash(&mut s);
        s.finish()
    }
}

/// A small deterministic hasher for state hashes (the standard one is seeded
/// per process): one multiply-rotate per word.
struct Mix(u64);

impl Default for Mix {
    fn default() -> Self {
        Mix(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for b in chunks.remainder() {
            self.write_u64(*b as u64);
        }
    }

    fn write_u64(&mut self, x: u64) {
        // SplitMix64's finaliser on every word: each input bit reaches every
        // bit of the state, so distinct states collide only by chance (2^-64).
        let mut z = (self.0 ^ x).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }

    fn write_u8(&mut self, x: u8) {
        self.write_u64(x as u64);
    }

    fn write_u16(&mut self, x: u16) {
        self.write_u64(x as u64);
    }

    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}
