//! Running a built scenario: the schedule drives the machine, the coherence oracle
//! classifies stale uses, and the expectations are checked at the end.

use super::build::{resolve, Built};
use super::schema::*;
use super::soft_tlb::{self, SoftCheck, SoftStaleUse};
use crate::events::{Event, EventKind, EventSink, StopReason};
use crate::machine::{Machine, StepResult};
use mmu::{MmuEvent, PhysAddr, StaleUse, VirtAddr, WalkResult};
use serde::Serialize;
use std::collections::BTreeMap;

/// Step budget when the scenario gives none.
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;

/// One stale use, as the oracle classified it.
#[derive(Clone, Debug, Serialize)]
pub struct StaleRecord {
    /// The MMU's full explanation.
    pub detail: StaleUse,
    /// Whether the coherence rule makes it a violation.
    pub violation: bool,
    /// Why the rule decided so, when it depends on more than the use (a label
    /// reached, by which core, when; a freed frame).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A core that stopped for good, and whether an expectation accounts for it.
#[derive(Clone, Debug, Serialize)]
pub struct StoppedCore {
    /// Core.
    pub core: usize,
    /// Why it stopped.
    pub reason: StopReason,
    /// A `Stopped` or `Exception` expectation says it should; otherwise it fails
    /// the run.
    pub expected: bool,
}

/// How the schedule ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Ending {
    /// Every schedule step completed.
    Completed,
    /// A stop condition never came before the step budget ran out, or could no
    /// longer come (the core stopped or went idle).
    Stuck {
        /// Index of the schedule step.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// One expectation's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ExpectResult {
    /// Index in `expect`.
    pub index: usize,
    /// The expectation, as written.
    pub what: String,
    /// Held?
    pub ok: bool,
    /// What was found.
    pub actual: String,
}

/// Per-core summary.
#[derive(Clone, Debug, Serialize)]
pub struct CoreSummary {
    /// Core.
    pub core: usize,
    /// Instructions retired.
    pub retired: u64,
    /// Final RIP.
    pub rip: u64,
    /// Label at the final RIP, if any.
    pub label: Option<String>,
    /// "running", "halted", or the stop reason.
    pub status: String,
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub name: String,
    /// Global steps taken.
    pub steps: u64,
    /// How the schedule ended.
    pub ending: Ending,
    /// Cores.
    pub cores: Vec<CoreSummary>,
    /// Stale uses in order.
    pub stale_uses: Vec<StaleRecord>,
    /// Accesses through stale software-TLB entries (`soft_tlbs`), in order.
    pub soft_stale_uses: Vec<SoftStaleUse>,
    /// Number of violations: hardware stale uses and software-TLB stale uses the
    /// coherence rule makes violations.
    pub violations: usize,
    /// Expectations.
    pub expectations: Vec<ExpectResult>,
    /// Under `CompletedLatent`: stale entries still cached when the core whose
    /// writes made them stale reached the label, each a violation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latent_violations: Vec<String>,
    /// Cores that stopped for good (unhandled exception, triple fault,
    /// unsupported instruction, emulator error).
    pub stopped: Vec<StoppedCore>,
    /// The schedule as executed.
    #[serde(skip)]
    pub decisions: Vec<Decision>,
    /// All events, when recording was asked for.
    #[serde(skip)]
    pub events: Vec<Event>,
    /// The machine at the end (for debuggers and tests).
    #[serde(skip)]
    pub machine: Option<Machine>,
    /// Code labels by address, for naming RIPs in reports.
    #[serde(skip)]
    pub labels: BTreeMap<u64, String>,
}

impl RunReport {
    /// The run passed: the schedule completed, every expectation held, no
    /// violation appeared that the scenario does not expect (a scenario that lists
    /// a `Violations(n)` or `StaleUse` expectation accounts for its violations),
    /// and no core died unless an expectation says it should (`Stopped`, or
    /// `Exception` for an unhandled exception's vector).
    pub fn passed(&self, expects_violations: bool) -> bool {
        self.ending == Ending::Completed
            && self.expectations.iter().all(|e| e.ok)
            && (self.violations == 0 || expects_violations)
            && self.stopped.iter().all(|c| c.expected)
    }
}

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

/// The oracle: a sink that classifies stale uses and counts events. It owns its
/// data so a [`Runner`] can be cloned (snapshots for reverse stepping).
#[derive(Clone, Debug)]
struct Oracle {
    record: Option<Vec<Event>>,
    coherence: Coherence,
    label_reached: bool,
    /// The first core to reach the coherence label, and the step.
    first_reach: Option<(usize, u64)>,
    /// Per core, the step at which it last reached the coherence label.
    last_reach: Vec<Option<u64>>,
    freed: Vec<u64>,
    /// `NoStaleEntries(at: label)` expectations: (index in `expect`, label
    /// address, core filter), and what each found at its completion points.
    latent_watch: Vec<(usize, u64, Option<usize>)>,
    latent_found: BTreeMap<usize, Vec<String>>,
    /// `CompletedLatent`: the cores checked (all when `None`), and what was found.
    latent_rule: Option<Option<Vec<usize>>>,
    latent_violations: Vec<String>,
    stale: Vec<StaleRecord>,
    counts: BTreeMap<(&'static str, u32), u64>,
    exceptions: Vec<(u32, u8)>,
    /// Kinds seen during the current step, as a bit mask over `EVENT_KINDS`.
    seen: u32,
    /// The software-TLB check (inactive, and never asked for accesses, when the
    /// scenario declares no `soft_tlbs`).
    soft: SoftCheck,
}

impl EventSink for Oracle {
    fn observes_accesses(&self) -> bool {
        self.soft.active()
    }

    fn access(&mut self, core: u32, step: u64, la: VirtAddr, pa: PhysAddr, kind: mmu::AccessKind) {
        self.soft.access(core, step, la, pa, kind);
    }

    fn event(&mut self, ev: Event) {
        let name = ev.kind.name();
        *self.counts.entry((name, ev.core)).or_insert(0) += 1;
        if let Some(i) = super::EVENT_KINDS.iter().position(|k| *k == name) {
            self.seen |= 1 << i;
        }
        match &ev.kind {
            EventKind::Mmu(MmuEvent::StaleUse(su)) => {
                let (violation, why) = self.classify(su);
                self.stale.push(StaleRecord {
                    detail: (**su).clone(),
                    violation,
                    why,
                });
            }
            EventKind::Mmu(MmuEvent::Invalidation { ctx, op, .. }) => {
                self.soft.invalidation(*ctx, *op);
            }
            EventKind::Exception { delivered, .. } => {
                self.exceptions.push((ev.core, delivered.vector()));
            }
            EventKind::Interrupt { vector, .. } => {
                self.exceptions.push((ev.core, *vector));
            }
            EventKind::Stopped(StopReason::UnhandledException { exception, .. }) => {
                self.exceptions.push((ev.core, exception.vector()));
            }
            _ => {}
        }
        if let Some(r) = self.record.as_mut() {
            r.push(ev);
        }
    }
}

impl Oracle {
    /// Whether the coherence rule makes `su` a violation, and why when that
    /// depends on a label or a frame.
    fn classify(&self, su: &StaleUse) -> (bool, Option<String>) {
        let reached = || match self.first_reach {
            Some((c, step)) => format!("core {c} reached it at step {step}"),
            None => "no core has reached it".to_string(),
        };
        match &self.coherence {
            Coherence::All => (true, None),
            Coherence::AfterLabel(l) => (
                self.label_reached,
                Some(format!("shootdown-complete label `{l}`: {}", reached())),
            ),
            Coherence::FreedFrames { label, .. } => {
                let frame = touched_frame(&su.cached, &self.freed);
                let why = match (frame, self.label_reached) {
                    (Some(f), true) => format!(
                        "reaches frame {f:#x}, freed at `{label}`: {}",
                        reached()
                    ),
                    (Some(f), false) => format!(
                        "reaches frame {f:#x}, but no core has reached `{label}` (where it is freed) yet"
                    ),
                    (None, _) => format!("reaches none of the frames freed at `{label}`"),
                };
                (frame.is_some() && self.label_reached, Some(why))
            }
            Coherence::Completed(l) | Coherence::CompletedLatent { label: l, .. } => match (
                &su.made_stale_by,
                &su.root_change,
            ) {
                (Some(w), _) => {
                    let at = self
                        .last_reach
                        .get(w.core as usize)
                        .copied()
                        .flatten()
                        .filter(|s| *s >= w.step);
                    match at {
                        Some(s) => (
                            true,
                            Some(format!(
                                "core {} made the entry stale at step {} and reached `{l}` at step {s} since: its shootdown had returned",
                                w.core, w.step
                            )),
                        ),
                        None => (
                            false,
                            Some(format!(
                                "core {} made the entry stale at step {} and has not reached `{l}` since: its shootdown is in progress",
                                w.core, w.step
                            )),
                        ),
                    }
                }
                (None, Some(c)) => (
                    true,
                    Some(format!(
                        "core {}'s own CR3 load at step {} kept the entry usable under another root: no shootdown covers it",
                        c.core, c.step
                    )),
                ),
                (None, None) => (true, None),
            },
        }
    }
}

/// The first of `frames` that the cached translation reaches: a frame inside a
/// leaf's page, or the page-table page a paging-structure-cache entry points at.
fn touched_frame(cached: &WalkResult, frames: &[u64]) -> Option<u64> {
    match cached {
        WalkResult::Leaf { frame, size, .. } => frames
            .iter()
            .find(|f| **f >= frame.raw() && **f - frame.raw() < size.bytes())
            .copied(),
        WalkResult::Table { next, .. } => frames.iter().find(|f| **f == next.raw()).copied(),
        _ => None,
    }
}

fn kind_matches(k: Option<KindSpec>, su: &StaleUse) -> bool {
    match k {
        None => true,
        Some(KindSpec::Walk) => {
            su.access.is_none() || matches!(su.cached, WalkResult::Table { .. })
        }
        Some(k) => {
            let want = match k {
                KindSpec::Read => mmu::AccessKind::Read,
                KindSpec::Write => mmu::AccessKind::Write,
                _ => mmu::AccessKind::Execute,
            };
            su.access.is_some_and(|a| a.kind == want)
                && matches!(su.cached, WalkResult::Leaf { .. })
        }
    }
}

/// Where the schedule is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Index of the current schedule step.
    pub index: usize,
    /// Machine steps taken in it so far.
    pub taken: u64,
    /// RoundRobin: position in the core list and steps in the current quantum.
    rr_pos: usize,
    rr_count: u64,
    rr_idle: usize,
}

/// What one [`Runner::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A core was stepped.
    Stepped {
        /// Core.
        core: usize,
        /// What the step did.
        result: StepResult,
    },
    /// An `Evict` or `Fill` schedule step was applied.
    CacheOp,
    /// The schedule is over.
    Done,
}

/// Runs a built scenario incrementally: the schedule, the oracle and the decision
/// log. `Clone` is a snapshot (copy-on-write memory), which is how the debugger
/// steps backwards.
#[derive(Clone, Debug)]
pub struct Runner {
    scenario: Scenario,
    machine: Machine,
    symbols: BTreeMap<String, u64>,
    labels: BTreeMap<u64, String>,
    oracle: Oracle,
    label_addr: Option<u64>,
    cursor: Cursor,
    budget: u64,
    ending: Option<Ending>,
    decisions: Vec<Decision>,
}

impl Runner {
    /// A runner at the start of the schedule. With `record`, every event is kept.
    pub fn new(s: &Scenario, built: Built, record: bool) -> Self {
        // `validate` reports a bad declaration; an unvalidated one is skipped here.
        let soft = SoftCheck::new(&s.soft_tlbs, &built).unwrap_or_default();
        let Built {
            machine,
            symbols,
            labels,
            ..
        } = built;
        let ncores = machine.num_cores();
        let latent_watch = s
            .expect
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Expect::NoStaleEntries { core, at: Some(l) } => {
                    symbols.get(l).map(|a| (i, *a, *core))
                }
                _ => None,
            })
            .collect();
        let (label_addr, freed) = match &s.coherence {
            Coherence::All => (None, Vec::new()),
            Coherence::AfterLabel(l)
            | Coherence::Completed(l)
            | Coherence::CompletedLatent { label: l, .. } => (symbols.get(l).copied(), Vec::new()),
            Coherence::FreedFrames { label, frames } => (
                symbols.get(label).copied(),
                frames
                    .iter()
                    .filter_map(|f| resolve(f, &symbols).ok())
                    .collect(),
            ),
        };
        Runner {
            scenario: s.clone(),
            machine,
            symbols,
            labels,
            oracle: Oracle {
                record: if record { Some(Vec::new()) } else { None },
                coherence: s.coherence.clone(),
                label_reached: false,
                first_reach: None,
                last_reach: vec![None; ncores],
                latent_watch,
                latent_found: BTreeMap::new(),
                latent_rule: match &s.coherence {
                    Coherence::CompletedLatent { cores, .. } => Some(cores.clone()),
                    _ => None,
                },
                latent_violations: Vec::new(),
                freed,
                stale: Vec::new(),
                counts: BTreeMap::new(),
                exceptions: Vec::new(),
                seen: 0,
                soft,
            },
            label_addr,
            cursor: Cursor::default(),
            budget: s.max_steps.unwrap_or(DEFAULT_MAX_STEPS),
            ending: None,
            decisions: Vec::new(),
        }
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The machine, mutably (debuggers poking memory; the tracker still sees writes
    /// made through [`Machine::write_phys`]).
    pub fn machine_mut(&mut self) -> &mut Machine {
        // Whatever the caller writes bypasses the access observer.
        self.oracle.soft.force_rescan();
        &mut self.machine
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Every symbol.
    pub fn symbols(&self) -> &BTreeMap<String, u64> {
        &self.symbols
    }

    /// Code labels by address.
    pub fn labels(&self) -> &BTreeMap<u64, String> {
        &self.labels
    }

    /// Where the schedule is.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// How the schedule ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Stale uses so far.
    pub fn stale_uses(&self) -> &[StaleRecord] {
        &self.oracle.stale
    }

    /// Violations so far (hardware and software-TLB stale uses, and stale entries
    /// left at completion points under `CompletedLatent`).
    pub fn violations(&self) -> usize {
        self.oracle.latent_violations.len()
            + self.oracle.stale.iter().filter(|r| r.violation).count()
            + self.oracle.soft.uses.iter().filter(|u| u.violation).count()
    }

    /// Software-TLB stale uses so far.
    pub fn soft_stale_uses(&self) -> &[SoftStaleUse] {
        &self.oracle.soft.uses
    }

    /// Recorded events (empty unless recording).
    pub fn events(&self) -> &[Event] {
        self.oracle.record.as_deref().unwrap_or(&[])
    }

    /// The decisions taken so far.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// Event kinds seen during the last step, as a mask over [`super::EVENT_KINDS`].
    pub fn last_step_kinds(&self) -> u32 {
        self.oracle.seen
    }

    /// Steps one core outside the schedule's control (debuggers, replay), logging
    /// the decision.
    pub fn step_core(&mut self, core: usize) -> StepResult {
        self.oracle.seen = 0;
        let before = self.machine.steps;
        let rip = self.machine.cores.get(core).map_or(0, |c| c.cpu.state.rip);
        let r = match self.machine.step(core, &mut self.oracle) {
            Ok(r) => r,
            // Only an out-of-range core number gets here; the schedule was
            // validated, so this is a caller's mistake reported as a stop.
            Err(e) => StepResult::Stopped(StopReason::Error(crate::exception::EmuError::Paging {
                rip: 0,
                message: e.to_string(),
            })),
        };
        // A decision is logged only when the step consumed a global step.
        if self.machine.steps != before {
            match self.decisions.last_mut() {
                Some(Decision::Step { core: c, n }) if *c == core as u32 => *n += 1,
                _ => self.decisions.push(Decision::Step {
                    core: core as u32,
                    n: 1,
                }),
            }
        }
        if self.oracle.soft.active() && self.machine.steps != before {
            let Oracle {
                soft,
                coherence,
                label_reached,
                freed,
                ..
            } = &mut self.oracle;
            let (c, reached, freed) = (&*coherence, *label_reached, &*freed);
            soft.after_step(&self.machine, core, rip, &|f| {
                soft_tlb::is_violation(c, reached, freed, f)
            });
        }
        self.check_latent(core);
        if let Some(a) = self.label_addr {
            if self.machine.cores[core].cpu.state.rip == a {
                let step = self.machine.steps;
                self.oracle.label_reached = true;
                self.oracle.first_reach.get_or_insert((core, step));
                if let Some(r) = self.oracle.last_reach.get_mut(core) {
                    *r = Some(step);
                }
            }
        }
        r
    }

    /// Applies an `Evict` or `Fill` to one core's caches, logging the decision.
    pub fn cache_op(&mut self, d: &Decision) {
        let (core, va, fill) = match d {
            Decision::Evict { core, va } => (*core as usize, *va, false),
            Decision::Fill { core, va } => (*core as usize, *va, true),
            Decision::Step { .. } => return,
        };
        if core >= self.machine.num_cores() {
            return;
        }
        let regs = self.machine.paging_regs(core);
        let steps = self.machine.steps;
        let ctx = mmu::AccessCtx {
            core: core as u32,
            step: steps,
            rip: self.machine.cores[core].cpu.state.rip,
        };
        let Machine {
            cores,
            tracker,
            mem,
            ..
        } = &mut self.machine;
        let mut a = Adapter {
            sink: &mut self.oracle,
            core: core as u32,
            step: steps,
        };
        if fill {
            let _ = cores[core].mmu.speculative_fill(
                mem,
                tracker,
                &regs,
                VirtAddr(va),
                false,
                ctx,
                &mut a,
            );
        } else {
            cores[core]
                .mmu
                .evict(tracker, &regs, VirtAddr(va), ctx, &mut a);
        }
        self.decisions.push(d.clone());
    }

    /// Replays one recorded decision.
    pub fn apply(&mut self, d: &Decision) {
        match d {
            Decision::Step { core, n } => {
                for _ in 0..*n {
                    self.step_core(*core as usize);
                }
            }
            other => self.cache_op(other),
        }
    }

    fn advance(&mut self) {
        self.cursor = Cursor {
            index: self.cursor.index + 1,
            ..Cursor::default()
        };
    }

    /// At a `NoStaleEntries(at: label)` completion point (core `core` has just
    /// reached the label): every entry still cached that `core`'s own writes or
    /// CR3 loads made stale is a failure of that expectation, used or not.
    fn check_latent(&mut self, core: usize) {
        let rip = self.machine.cores[core].cpu.state.rip;
        let step = self.machine.steps;
        if let (Some(only), Some(addr)) = (&self.oracle.latent_rule, self.label_addr) {
            if rip == addr {
                let m = &self.machine;
                for (c, k) in m.cores.iter().enumerate() {
                    if only.as_ref().is_some_and(|o| !o.contains(&c)) {
                        continue;
                    }
                    for l in k.mmu.stale_entries(&m.tracker) {
                        if l.cause().is_some_and(|(by, _)| by as usize == core) {
                            self.oracle.latent_violations.push(format!(
                                "{l}, still cached when core {core} reached the label at step {step}"
                            ));
                        }
                    }
                }
            }
        }
        if self.oracle.latent_watch.is_empty() {
            return;
        }
        for &(i, addr, only) in &self.oracle.latent_watch {
            if rip != addr {
                continue;
            }
            let m = &self.machine;
            for (c, k) in m.cores.iter().enumerate() {
                if only.is_some_and(|o| o != c) {
                    continue;
                }
                for l in k.mmu.stale_entries(&m.tracker) {
                    if l.cause().is_some_and(|(by, _)| by as usize == core) {
                        self.oracle
                            .latent_found
                            .entry(i)
                            .or_default()
                            .push(format!("{l}, when core {core} reached it at step {step}"));
                    }
                }
            }
        }
    }

    /// An emulator error ends the schedule, unless a `Stopped` expectation says
    /// this core should stop that way; then the schedule goes on without it.
    fn error_expected(&self, core: usize, e: &crate::exception::EmuError) -> bool {
        stop_expected(&self.scenario.expect, core, &StopReason::Error(e.clone()))
    }

    fn stuck(&mut self, reason: String) -> Progress {
        self.ending = Some(Ending::Stuck {
            index: self.cursor.index,
            reason,
        });
        Progress::Done
    }

    /// Advances the schedule by one machine step (or one cache operation).
    pub fn step(&mut self) -> Progress {
        loop {
            if self.ending.is_some() {
                return Progress::Done;
            }
            let Some(st) = self.scenario.schedule.get(self.cursor.index).cloned() else {
                self.ending = Some(Ending::Completed);
                return Progress::Done;
            };
            match st {
                Sched::Run { core, until } => {
                    if matches!(until, Until::Halt) && self.machine.is_idle(core) {
                        self.advance();
                        continue;
                    }
                    if let Until::Steps(n) = until {
                        if self.cursor.taken >= n {
                            self.advance();
                            continue;
                        }
                    }
                    if self.machine.steps >= self.budget {
                        return self.stuck(format!(
                            "Run(core: {core}, until: {until:?}) did not finish within the step budget of {} (max_steps)",
                            self.budget
                        ));
                    }
                    let r = self.step_core(core);
                    self.cursor.taken += 1;
                    match &r {
                        StepResult::Stopped(StopReason::Error(e))
                            if !self.error_expected(core, e) =>
                        {
                            return self.stuck(format!("core {core} stopped: {e}"));
                        }
                        StepResult::Stopped(why) if !matches!(until, Until::Halt) => {
                            let why = why.to_string();
                            return self
                                .stuck(format!("core {core} stopped before {until:?}: {why}"));
                        }
                        StepResult::NoProgress if !matches!(until, Until::Halt) => {
                            return self.stuck(format!(
                                "core {core} is halted with nothing to wake it, so {until:?} can never come"
                            ));
                        }
                        StepResult::Stopped(_) | StepResult::NoProgress => {
                            self.advance();
                            continue;
                        }
                        _ => {}
                    }
                    if self.reached(&until, core) {
                        self.advance();
                    }
                    return Progress::Stepped { core, result: r };
                }
                Sched::Step { core, n } => {
                    if self.cursor.taken >= n {
                        self.advance();
                        continue;
                    }
                    if self.machine.steps >= self.budget {
                        return self.stuck(format!("the step budget of {} ran out", self.budget));
                    }
                    let r = self.step_core(core);
                    self.cursor.taken += 1;
                    match &r {
                        StepResult::Stopped(StopReason::Error(e))
                            if !self.error_expected(core, e) =>
                        {
                            return self.stuck(format!("core {core} stopped: {e}"));
                        }
                        StepResult::Stopped(_) | StepResult::NoProgress => {
                            self.advance();
                            continue;
                        }
                        _ => {}
                    }
                    return Progress::Stepped { core, result: r };
                }
                Sched::RoundRobin {
                    cores,
                    quantum,
                    until,
                } => {
                    let q = quantum.max(1);
                    if matches!(until, Until::Halt)
                        && cores.iter().all(|c| self.machine.is_idle(*c))
                    {
                        self.advance();
                        continue;
                    }
                    if let Until::Steps(n) = until {
                        if self.cursor.taken >= n {
                            self.advance();
                            continue;
                        }
                    }
                    if self.cursor.rr_idle >= cores.len() {
                        return self.stuck(format!(
                            "every core in {cores:?} is halted or stopped, so {until:?} can never come"
                        ));
                    }
                    if self.machine.steps >= self.budget {
                        return self.stuck(format!(
                            "RoundRobin(until: {until:?}) did not finish within the step budget of {} (max_steps)",
                            self.budget
                        ));
                    }
                    let core = cores[self.cursor.rr_pos % cores.len()];
                    let r = self.step_core(core);
                    if let StepResult::Stopped(StopReason::Error(e)) = &r {
                        if !self.error_expected(core, e) {
                            return self.stuck(format!("core {core} stopped: {e}"));
                        }
                    }
                    if matches!(r, StepResult::NoProgress | StepResult::Stopped(_)) {
                        self.cursor.rr_idle += 1;
                        self.cursor.rr_pos = (self.cursor.rr_pos + 1) % cores.len();
                        self.cursor.rr_count = 0;
                        continue;
                    }
                    self.cursor.rr_idle = 0;
                    self.cursor.taken += 1;
                    self.cursor.rr_count += 1;
                    if self.cursor.rr_count >= q {
                        self.cursor.rr_pos = (self.cursor.rr_pos + 1) % cores.len();
                        self.cursor.rr_count = 0;
                    }
                    // For RoundRobin, Halt means every listed core is idle.
                    let done = match &until {
                        Until::Halt => cores.iter().all(|c| self.machine.is_idle(*c)),
                        u => self.reached(u, core),
                    };
                    if done {
                        self.advance();
                    }
                    return Progress::Stepped { core, result: r };
                }
                Sched::Evict { core, ref va } | Sched::Fill { core, ref va } => {
                    let fill = matches!(st, Sched::Fill { .. });
                    if let Ok(va) = resolve(va, &self.symbols) {
                        let d = if fill {
                            Decision::Fill {
                                core: core as u32,
                                va,
                            }
                        } else {
                            Decision::Evict {
                                core: core as u32,
                                va,
                            }
                        };
                        self.cache_op(&d);
                    }
                    self.advance();
                    return Progress::CacheOp;
                }
            }
        }
    }

    fn reached(&self, until: &Until, core: usize) -> bool {
        let rip = self.machine.cores[core].cpu.state.rip;
        match until {
            Until::Label(l) => self.symbols.get(l).is_some_and(|a| rip == *a),
            Until::Address(v) => resolve(v, &self.symbols).is_ok_and(|a| rip == a),
            Until::Steps(_) => false,
            Until::Halt => self.machine.is_idle(core),
            Until::Event(k) => super::EVENT_KINDS
                .iter()
                .position(|x| x == k)
                .is_some_and(|i| self.oracle.seen & (1 << i) != 0),
        }
    }

    /// Runs the rest of the schedule.
    pub fn run_to_end(&mut self) {
        while self.step() != Progress::Done {}
    }

    /// Checks the expectations against the current state and builds the report.
    pub fn report(&self) -> RunReport {
        let mut machine = self.machine.clone();
        let violations = self.violations();
        let counts: BTreeMap<(String, u32), u64> = self
            .oracle
            .counts
            .iter()
            .map(|((k, c), n)| ((k.to_string(), *c), *n))
            .collect();
        let mut results = Vec::new();
        for (index, e) in self.scenario.expect.iter().enumerate() {
            let (ok, actual) = check(
                e,
                &mut machine,
                &self.symbols,
                Uses {
                    stale: &self.oracle.stale,
                    soft: &self.oracle.soft.uses,
                    latent: self
                        .oracle
                        .latent_found
                        .get(&index)
                        .map_or(&[][..], |v| v.as_slice()),
                },
                violations,
                &counts,
                &self.oracle.exceptions,
            );
            results.push(ExpectResult {
                index,
                what: describe(e),
                ok,
                actual,
            });
        }
        let stopped = machine
            .cores
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let reason = c.stopped.clone()?;
                Some(StoppedCore {
                    core: i,
                    expected: stop_expected(&self.scenario.expect, i, &reason),
                    reason,
                })
            })
            .collect();
        let cores = machine
            .cores
            .iter()
            .enumerate()
            .map(|(i, c)| CoreSummary {
                core: i,
                retired: c.retired,
                rip: c.cpu.state.rip,
                label: self.labels.get(&c.cpu.state.rip).cloned(),
                status: match &c.stopped {
                    Some(r) => r.to_string(),
                    None if c.cpu.state.halted => "halted".into(),
                    None => "running".into(),
                },
            })
            .collect();
        RunReport {
            name: self.scenario.name.clone(),
            steps: machine.steps,
            ending: self.ending.clone().unwrap_or(Ending::Stuck {
                index: self.cursor.index,
                reason: "the run was stopped before the schedule ended".into(),
            }),
            cores,
            stale_uses: self.oracle.stale.clone(),
            soft_stale_uses: self.oracle.soft.uses.clone(),
            violations,
            expectations: results,
            latent_violations: self.oracle.latent_violations.clone(),
            stopped,
            decisions: self.decisions.clone(),
            events: self.events().to_vec(),
            machine: Some(machine),
            labels: self.labels.clone(),
        }
    }
}

/// The kind of stop a `Stopped` expectation names.
pub fn stop_kind(r: &StopReason) -> StopKind {
    match r {
        StopReason::UnhandledException { .. } => StopKind::Exception,
        StopReason::TripleFault { .. } => StopKind::TripleFault,
        StopReason::Error(crate::exception::EmuError::Unsupported { .. }) => StopKind::Unsupported,
        StopReason::Error(_) => StopKind::Error,
    }
}

/// Whether an expectation says core `core` should stop for `reason`: a `Stopped`
/// for that core (and kind, when given), or an `Exception` with the vector of an
/// unhandled exception.
fn stop_expected(expect: &[Expect], core: usize, reason: &StopReason) -> bool {
    expect.iter().any(|e| match e {
        Expect::Stopped { core: c, reason: k } => {
            *c == core && k.is_none_or(|k| k == stop_kind(reason))
        }
        Expect::Exception { core: c, vector } => {
            *c == core
                && matches!(reason, StopReason::UnhandledException { exception, .. }
                    if exception.vector() == *vector)
        }
        _ => false,
    })
}

/// Runs `built` along the scenario's whole schedule.
pub fn run(s: &Scenario, built: Built, record: bool) -> RunReport {
    let mut r = Runner::new(s, built, record);
    r.run_to_end();
    r.report()
}

struct Adapter<'a> {
    sink: &'a mut Oracle,
    core: u32,
    step: u64,
}

impl mmu::MmuSink for Adapter<'_> {
    fn event(&mut self, ev: MmuEvent) {
        self.sink.event(Event {
            step: self.step,
            core: self.core,
            kind: EventKind::Mmu(ev),
        });
    }
}

/// Human text for an expectation.
pub fn describe(e: &Expect) -> String {
    let v = |v: &Value| match v {
        Value::Num(n) => format!("{n:#x}"),
        Value::Sym(s) => s.clone(),
    };
    match e {
        Expect::Reg { core, reg, value } => format!("core {core} {reg} == {}", v(value)),
        Expect::Mem {
            at,
            space,
            size,
            value,
        } => format!(
            "{}-byte memory at {}{} == {}",
            size.unwrap_or(8),
            v(at),
            space
                .as_ref()
                .map_or(" (physical)".to_string(), |s| format!(" in {s}")),
            v(value)
        ),
        Expect::StaleUse { core, va, kind } => format!("a stale use{}", filt(core, va, kind)),
        Expect::NoStaleUse { core, va, kind } => format!("no stale use{}", filt(core, va, kind)),
        Expect::SoftStaleUse { core, va, kind } => {
            format!("a software-TLB stale use{}", filt(core, va, kind))
        }
        Expect::NoSoftStaleUse { core, va, kind } => {
            format!("no software-TLB stale use{}", filt(core, va, kind))
        }
        Expect::Violations(n) => format!("{n} violation(s)"),
        Expect::Exception { core, vector } => format!("core {core} took vector {vector:#x}"),
        Expect::Halted(c) => format!("core {c} halted"),
        Expect::NoStaleEntries { core, at } => format!(
            "no stale entry cached{}{}",
            core.map_or(String::new(), |c| format!(" on core {c}")),
            at.as_ref().map_or(" at the end".to_string(), |l| format!(
                " when a core reaches `{l}`"
            ))
        ),
        Expect::Stopped { core, reason } => match reason {
            Some(k) => format!("core {core} stopped ({k:?})"),
            None => format!("core {core} stopped"),
        },
        Expect::Events { kind, core, count } => format!(
            "{count} `{kind}` event(s){}",
            core.map_or(String::new(), |c| format!(" on core {c}"))
        ),
    }
}

fn filt(core: &Option<usize>, va: &Option<Value>, kind: &Option<KindSpec>) -> String {
    let mut s = String::new();
    if let Some(c) = core {
        s += &format!(" on core {c}");
    }
    if let Some(va) = va {
        s += &match va {
            Value::Num(n) => format!(" at va {n:#x}"),
            Value::Sym(x) => format!(" at va {x}"),
        };
    }
    if let Some(k) = kind {
        s += &format!(" ({k:?})");
    }
    s
}

fn stale_matches(
    r: &StaleRecord,
    core: &Option<usize>,
    va: &Option<u64>,
    kind: &Option<KindSpec>,
) -> bool {
    core.is_none_or(|c| r.detail.ctx.core == c as u32)
        && va.is_none_or(|a| {
            // Any address inside the page the stale entry maps matches, whatever
            // its size (a 2 MiB entry covers 512 small pages).
            let mask = match r.detail.cached {
                WalkResult::Leaf { size, .. } => !size.offset_mask(),
                _ => !0xfff,
            };
            r.detail.va.raw() & mask == a & mask
        })
        && kind_matches(*kind, &r.detail)
}

/// The stale uses an expectation is checked against.
#[derive(Clone, Copy)]
struct Uses<'a> {
    stale: &'a [StaleRecord],
    soft: &'a [SoftStaleUse],
    /// What this expectation found at its completion points, if it is a
    /// `NoStaleEntries(at: …)`.
    latent: &'a [String],
}

fn check(
    e: &Expect,
    m: &mut Machine,
    symbols: &BTreeMap<String, u64>,
    uses: Uses<'_>,
    violations: usize,
    counts: &BTreeMap<(String, u32), u64>,
    exceptions: &[(u32, u8)],
) -> (bool, String) {
    let res = |v: &Value| resolve(v, symbols).unwrap_or(0);
    let Uses {
        stale,
        soft,
        latent,
    } = uses;
    match e {
        Expect::Reg { core, reg, value } => {
            let st = &m.cores[*core].cpu.state;
            let got = match reg.as_str() {
                "rip" => Some(st.rip),
                "rflags" => Some(st.rflags),
                "cr3" => Some(st.cr3),
                "cr2" => Some(st.cr2),
                r => crate::state::GPR_NAMES
                    .iter()
                    .position(|n| *n == r)
                    .map(|i| st.gpr[i]),
            };
            let want = res(value);
            match got {
                Some(g) => (g == want, format!("{g:#x}")),
                None => (false, format!("no register `{reg}`")),
            }
        }
        Expect::Mem {
            at,
            space,
            size,
            value,
        } => {
            let size = size.unwrap_or(8) as usize;
            match super::checks::read_expected(m, symbols, space.as_deref(), res(at), size) {
                Ok(g) => (
                    g == res(value) & crate::flags::mask(size as u32),
                    format!("{g:#x}"),
                ),
                Err(e) => (false, e),
            }
        }
        Expect::StaleUse { core, va, kind } => {
            let va = va.as_ref().map(res);
            let n = stale
                .iter()
                .filter(|r| stale_matches(r, core, &va, kind))
                .count();
            (n > 0, format!("{n} matching stale use(s)"))
        }
        Expect::NoStaleUse { core, va, kind } => {
            let va = va.as_ref().map(res);
            let n = stale
                .iter()
                .filter(|r| stale_matches(r, core, &va, kind))
                .count();
            (n == 0, format!("{n} matching stale use(s)"))
        }
        Expect::SoftStaleUse { core, va, kind } => {
            let n = soft_tlb::matching(soft, *core, va.as_ref().map(res), *kind);
            (n > 0, format!("{n} matching software-TLB stale use(s)"))
        }
        Expect::NoSoftStaleUse { core, va, kind } => {
            let n = soft_tlb::matching(soft, *core, va.as_ref().map(res), *kind);
            (n == 0, format!("{n} matching software-TLB stale use(s)"))
        }
        Expect::Violations(n) => (violations == *n, format!("{violations}")),
        Expect::Exception { core, vector } => {
            let hit = exceptions
                .iter()
                .any(|(c, v)| *c == *core as u32 && v == vector);
            let seen: Vec<String> = exceptions
                .iter()
                .filter(|(c, _)| *c == *core as u32)
                .map(|(_, v)| format!("{v:#x}"))
                .collect();
            (hit, format!("vectors [{}]", seen.join(", ")))
        }
        Expect::NoStaleEntries { core, at } => {
            let found: Vec<String> = match at {
                Some(_) => latent.to_vec(),
                None => m
                    .cores
                    .iter()
                    .enumerate()
                    .filter(|(c, _)| core.is_none_or(|o| o == *c))
                    .flat_map(|(_, k)| k.mmu.stale_entries(&m.tracker))
                    .map(|l| l.to_string())
                    .collect(),
            };
            if found.is_empty() {
                (true, "none".into())
            } else {
                (false, found.join("; "))
            }
        }
        Expect::Stopped { core, reason } => match &m.cores[*core].stopped {
            Some(r) => (
                reason.is_none_or(|k| k == stop_kind(r)),
                format!("stopped ({:?}): {r}", stop_kind(r)),
            ),
            None => (false, "not stopped".into()),
        },
        Expect::Halted(c) => {
            let h = m.cores[*c].cpu.state.halted;
            (
                h,
                if h {
                    "halted".into()
                } else {
                    "not halted".into()
                },
            )
        }
        Expect::Events { kind, core, count } => {
            let n: u64 = counts
                .iter()
                .filter(|((k, c), _)| k == kind && core.is_none_or(|x| *c == x as u32))
                .map(|(_, n)| *n)
                .sum();
            (n == *count, format!("{n}"))
        }
    }
}
