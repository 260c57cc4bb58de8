//! Running a compiled scenario: the schedule drives the machine, the coherence
//! oracle classifies stale uses, and the expectations are checked at the end.
//!
//! The runner reads a shared [`Plan`] and never resolves a name: every label,
//! core and event kind was settled when the plan was compiled.

use super::build::Built;
use super::decisions::{Decision, Decisions};
use super::diag::Problem;
use super::expect::{self, Outcome};
use super::hang::{DataAccess, HangDiagnosis, Probe};
use super::plan::Test;
use super::plan::{Cond, Plan, Rule, Step, Stop};
use super::schema::{Coherence, Expect, Scenario, StopKind};
use super::soft_tlb::SoftCheck;
use super::watch::{MissedBit, WatchAccess, Watcher};
use crate::events::{ClassSet, Event, EventClass, EventKind, EventSink, StopReason};
use crate::machine::{Machine, StepResult};
use mmu::{MmuEvent, PhysAddr, StaleUse, VirtAddr, WalkResult};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Reads and writes of watched words from the fill to the use, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watched: Vec<WatchAccess>,
    /// Among those, the reads of a mask by another core that saw the using
    /// core's bit clear, with the write that cleared it and the one that set it
    /// again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<MissedBit>,
    /// How many uses this record stands for: one instruction that reaches the
    /// same page through the same stale entry many times (each iteration of a
    /// `rep movsb` is a step of its own) is reported once, with a count, and
    /// counts as one violation. `detail` is the first of them.
    pub count: u64,
    /// The step of the last of those uses.
    pub last_step: u64,
}

impl StaleRecord {
    /// Whether `su`, made by the instruction that began at step `insn_start` on
    /// its core, is one more use of this record's: same core, same instruction,
    /// same page, access kind and cache, the same write behind it, and the same
    /// verdict.
    fn absorbs(&self, su: &StaleUse, insn_start: u64, violation: bool) -> bool {
        let d = &self.detail;
        self.last_step >= insn_start
            && d.ctx.core == su.ctx.core
            && d.ctx.rip == su.ctx.rip
            && d.va.raw() >> 12 == su.va.raw() >> 12
            && d.access.map(|a| a.kind) == su.access.map(|a| a.kind)
            && d.cache == su.cache
            && d.made_stale_by.as_ref().map(|w| w.step) == su.made_stale_by.as_ref().map(|w| w.step)
            && self.violation == violation
    }
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
    /// Label at the final RIP, if any; for a core halted by HLT, the HLT's own
    /// location (`label+off`, see [`core_site`](super::core_site)).
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
    /// When the schedule did not complete: what each core is doing and why the
    /// schedule cannot go on (`docs/run-json.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hang: Option<HangDiagnosis>,
    /// Cores.
    pub cores: Vec<CoreSummary>,
    /// Stale uses in order, of hardware and software caches alike (a software
    /// cache's has `detail.derived` set).
    pub stale_uses: Vec<StaleRecord>,
    /// Number of violations: stale uses the coherence rule makes violations, and
    /// latent entries under `CompletedLatent`.
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
    /// A `Hung` expectation accounts for a schedule that does not complete.
    #[serde(skip)]
    pub expects_hang: bool,
    /// The schedule as executed.
    #[serde(skip)]
    pub decisions: Decisions,
    /// The recorded events not taken from the runner (all of them after
    /// [`run`] with recording; none when a consumer streamed them).
    #[serde(skip)]
    pub events: Vec<Event>,
    /// The machine at the end (for debuggers and tests).
    #[serde(skip)]
    pub machine: Option<Machine>,
    /// Code labels by address, for naming RIPs in reports.
    #[serde(skip)]
    pub labels: BTreeMap<u64, String>,
    /// C source lines of object code (`-g`), for naming RIPs in reports.
    #[serde(skip)]
    pub lines: super::object::LineMap,
}

impl RunReport {
    /// The run passed: the schedule completed (or a `Hung` expectation says it
    /// should not), every expectation held, no
    /// violation appeared that the scenario does not expect (a scenario that lists
    /// a `Violations(n)` or `StaleUse` expectation accounts for its violations),
    /// and no core died unless an expectation says it should (`Stopped`, or
    /// `Exception` for an unhandled exception's vector).
    pub fn passed(&self, expects_violations: bool) -> bool {
        (self.ending == Ending::Completed || self.expects_hang)
            && self.expectations.iter().all(|e| e.ok)
            && (self.violations == 0 || expects_violations)
            && self.stopped.iter().all(|c| c.expected)
    }
}

/// The oracle: a sink that classifies stale uses and counts the event classes the
/// plan asks for. It owns its data so a [`Runner`] can be cloned (snapshots for
/// reverse stepping).
#[derive(Clone, Debug)]
struct Oracle {
    record: Option<Vec<Event>>,
    rule: Rule,
    /// The rule as written (its label's name, for explanations).
    coherence: Coherence,
    label_reached: bool,
    /// The first core to reach the coherence label, and the step.
    first_reach: Option<(usize, u64)>,
    /// Per core, the step at which it last reached the coherence label.
    last_reach: Vec<Option<u64>>,
    /// `NoStaleEntries(at: label)` expectations: (index in the checks, label
    /// address, core filter), and what each found at its completion points.
    latent_watch: Vec<(usize, u64, Option<usize>)>,
    latent_found: BTreeMap<usize, Vec<String>>,
    /// `CompletedLatent`: the cores checked (all when `None`), and what was found.
    latent_rule: Option<Option<Vec<usize>>>,
    latent_violations: Vec<String>,
    /// The same findings by their identity (see [`LatentKey`]).
    latent_keys: Vec<LatentKey>,
    /// Classes whose events are built at all (every class when recording).
    wanted: ClassSet,
    /// Classes counted for `Events` expectations.
    counted: ClassSet,
    stale: Vec<StaleRecord>,
    /// Per core, the step at which its current instruction began (a `rep`
    /// string instruction spans many steps at one RIP), and the RIP before and
    /// after its last step: a step that starts where the last one started and
    /// ended continues the same instruction.
    insn_start: Vec<u64>,
    last_rips: Vec<Option<(u64, u64)>>,
    /// While [`State::straight`] runs a core: that core and the first step of
    /// the run. Every later step of such a run begins a new instruction (the
    /// run ends after a step that leaves RIP in place), so it stands in for
    /// `insn_start`, which is brought up to date when the run ends.
    straight: Option<(u32, u64)>,
    /// No per-step work beyond the common one is asked for (no software-TLB
    /// check, latent-entry check or exploration probe), so a `Run` step may
    /// use [`State::straight`].
    plain: bool,
    /// `counts[class * (cores + 1) + core]`; the last slot of each class is for
    /// events from outside any core (writes made by the debugger or setup).
    counts: Vec<u64>,
    cores: usize,
    exceptions: Vec<(u32, u8)>,
    /// Classes seen during the current step, as a [`ClassSet`] mask.
    seen: u32,
    /// The step's accesses, collected for the software caches' derived entries
    /// (inactive, and never given accesses, when the scenario declares no
    /// `soft_tlbs`).
    soft: SoftCheck,
    /// The translations of the current step, kept only for a probed runner
    /// ([`Runner::start_probed`]): exploration decides from them whether the
    /// step was visible to other cores.
    explore: Option<Vec<StepAccess>>,
    /// Data accesses recorded for a hang diagnosis (only on the runner copies the
    /// diagnosis makes; `None` in an ordinary run, which then pays nothing).
    probe: Option<Probe>,
    /// The watched words (inactive when the scenario watches none).
    watch: Watcher,
}

/// One translation a step made: linear to physical, for a read, write or fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepAccess {
    /// Linear address.
    pub la: VirtAddr,
    /// Physical address.
    pub pa: PhysAddr,
    /// Read, write or fetch.
    pub kind: mmu::AccessKind,
}

/// The event classes whose events make a step visible to other cores
/// (exploration's scheduling points; see docs/explore.md).
pub const VISIBLE_CLASSES: ClassSet = ClassSet::NONE
    .with(EventClass::TlbFill)
    .with(EventClass::PscFill)
    .with(EventClass::Invalidation)
    .with(EventClass::PagingWrite)
    .with(EventClass::CrWrite)
    .with(EventClass::IpiSent)
    .with(EventClass::Eoi)
    .with(EventClass::Interrupt)
    .with(EventClass::Halt)
    .with(EventClass::Wake)
    .with(EventClass::Stopped)
    .with(EventClass::StaleUse);

impl Oracle {
    fn new(plan: &Plan, record: bool, probe: bool) -> Self {
        let cores = plan.machine().num_cores();
        let soft = plan.soft().clone();
        // What the oracle itself consumes, whatever the scenario asks.
        let mut own = ClassSet::NONE
            .with(EventClass::StaleUse)
            .with(EventClass::Exception)
            .with(EventClass::Interrupt)
            .with(EventClass::Stopped);
        if probe {
            own = own.union(VISIBLE_CLASSES);
        }
        let wanted = if record {
            ClassSet::ALL
        } else {
            own.union(plan.counted()).union(plan.watched())
        };
        let counted = plan.counted();
        let latent_watch: Vec<(usize, u64, Option<usize>)> = plan
            .checks()
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.test {
                Test::NoStaleEntries { core, at: Some(a) } => Some((i, a, core)),
                _ => None,
            })
            .collect();
        let latent_watch_empty = latent_watch.is_empty();
        Oracle {
            record: record.then(Vec::new),
            rule: plan.rule().clone(),
            coherence: plan.scenario().coherence.clone(),
            label_reached: false,
            first_reach: None,
            last_reach: vec![None; cores],
            latent_watch,
            latent_found: BTreeMap::new(),
            latent_rule: match plan.rule() {
                Rule::CompletedLatent { cores, .. } => Some(cores.clone()),
                _ => None,
            },
            latent_violations: Vec::new(),
            latent_keys: Vec::new(),
            wanted,
            counted,
            stale: Vec::new(),
            insn_start: vec![0; cores],
            last_rips: vec![None; cores],
            straight: None,
            plain: !soft.active()
                && !probe
                && latent_watch_empty
                && !matches!(plan.rule(), Rule::CompletedLatent { .. }),
            counts: if counted == ClassSet::NONE {
                Vec::new()
            } else {
                vec![0; EventClass::ALL.len() * (cores + 1)]
            },
            cores,
            exceptions: Vec::new(),
            seen: 0,
            soft,
            explore: probe.then(Vec::new),
            probe: None,
            watch: Watcher::new(plan.watch_words()),
        }
    }

    /// Events of `class` counted so far, on `core` or (with `None`) anywhere.
    fn count(&self, class: EventClass, core: Option<usize>) -> u64 {
        if !self.counted.has(class) {
            return 0;
        }
        let row = &self.counts[class as usize * (self.cores + 1)..][..self.cores + 1];
        match core {
            Some(c) => row.get(c).copied().unwrap_or(0),
            None => row.iter().sum(),
        }
    }
}

impl Oracle {
    /// The coherence rule applied to one hardware stale use: whether it is a
    /// violation, and why when that depends on a label or a frame.
    fn classify(&self, su: &StaleUse) -> (bool, Option<String>) {
        let reached = || match self.first_reach {
            Some((c, step)) => format!("core {c} reached it at step {step}"),
            None => "no core has reached it".to_string(),
        };
        let name = match &self.coherence {
            Coherence::AfterLabel(l) | Coherence::Completed(l) => l.as_str(),
            Coherence::CompletedLatent { label, .. } | Coherence::FreedFrames { label, .. } => {
                label.as_str()
            }
            Coherence::All => "",
        };
        match &self.rule {
            Rule::All => (true, None),
            Rule::AfterLabel(_) => (
                self.label_reached,
                Some(format!("shootdown-complete label `{name}`: {}", reached())),
            ),
            Rule::FreedFrames { frames, .. } => {
                let frame = touched_frame(&su.cached, frames);
                let why = match (frame, self.label_reached) {
                    (Some(f), true) => {
                        format!("reaches frame {f:#x}, freed at `{name}`: {}", reached())
                    }
                    (Some(f), false) => format!(
                        "reaches frame {f:#x}, but no core has reached `{name}` (where it is freed) yet"
                    ),
                    (None, _) => format!("reaches none of the frames freed at `{name}`"),
                };
                (frame.is_some() && self.label_reached, Some(why))
            }
            Rule::Completed(_) | Rule::CompletedLatent { .. } => {
                match (&su.made_stale_by, &su.root_change) {
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
                                    "core {} made the entry stale at step {} and reached `{name}` at step {s} since: its shootdown had returned",
                                    w.core, w.step
                                )),
                            ),
                            None => (
                                false,
                                Some(format!(
                                    "core {} made the entry stale at step {} and has not reached `{name}` since: its shootdown is in progress",
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
                }
            }
        }
    }
}

impl EventSink for Oracle {
    #[inline]
    fn wants(&self, class: EventClass) -> bool {
        self.wanted.has(class)
    }

    fn observes_accesses(&self) -> bool {
        self.soft.active() || self.probe.is_some() || self.watch.active() || self.explore.is_some()
    }

    fn access(
        &mut self,
        _core: u32,
        _step: u64,
        la: VirtAddr,
        pa: PhysAddr,
        kind: mmu::AccessKind,
    ) {
        if let Some(p) = self.explore.as_mut() {
            p.push(StepAccess { la, pa, kind });
        }
        if self.soft.active() {
            self.soft.access(la, pa, kind);
        }
        if let Some(p) = self.probe.as_mut() {
            p.translated(la.raw(), pa.raw());
        }
    }

    fn data(&mut self, core: u32, step: u64, rip: u64, pa: PhysAddr, bytes: &[u8], write: bool) {
        if let Some(p) = self.probe.as_mut() {
            p.record(core, step, rip, pa.raw(), bytes, write);
        }
        if self.watch.active() {
            let new = self.watch.access(core, step, rip, pa.raw(), bytes, write);
            if self.wanted.has(EventClass::Watch) {
                for i in new {
                    let a = &self.watch.log[i];
                    let kind = EventKind::Watched {
                        name: a.name.clone(),
                        write: a.write,
                        old: a.old,
                        new: a.new,
                    };
                    self.event(Event { step, core, kind });
                }
            }
        }
    }

    fn event(&mut self, ev: Event) {
        let class = ev.kind.class();
        self.seen |= class.bit();
        if self.counted.has(class) {
            let slot = (ev.core as usize).min(self.cores);
            self.counts[class as usize * (self.cores + 1) + slot] += 1;
        }
        match &ev.kind {
            EventKind::Mmu(MmuEvent::StaleUse(su)) => self.stale_use(su),
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
    /// Classifies a stale use, of a hardware or a software cache alike, and
    /// records it (or counts it as one more use of the same instruction's).
    fn stale_use(&mut self, su: &StaleUse) {
        let (violation, why) = self.classify(su);
        // Inside a straight run the per-step start is not kept: each step
        // after the run's first is its own instruction.
        let start = match self.straight {
            Some((c, first)) if c == su.ctx.core && su.ctx.step > first => su.ctx.step,
            _ => self
                .insn_start
                .get(su.ctx.core as usize)
                .copied()
                .unwrap_or(u64::MAX),
        };
        // Only records touched during this instruction can absorb it.
        match self
            .stale
            .iter_mut()
            .rev()
            .take_while(|r| r.last_step >= start)
            .find(|r| r.absorbs(su, start, violation))
        {
            Some(r) => {
                r.count += 1;
                r.last_step = su.ctx.step;
            }
            None => {
                let (watched, missed) = if self.watch.active() {
                    let w = self.watch.between(su.filled.step, su.ctx.step);
                    let m = self.watch.missed(&w, su.ctx.core);
                    (w, m)
                } else {
                    (Vec::new(), Vec::new())
                };
                self.stale.push(StaleRecord {
                    detail: su.clone(),
                    violation,
                    why,
                    watched,
                    missed,
                    count: 1,
                    last_step: su.ctx.step,
                })
            }
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

/// Runs a compiled scenario incrementally: the schedule, the oracle and the
/// decision log. It shares its [`Plan`]; `Clone` is a snapshot (copy-on-write
/// memory, the plan shared), which is how the debugger steps backwards and how
/// exploration forks a run.
#[derive(Clone, Debug)]
pub struct Runner {
    plan: Arc<Plan>,
    st: State,
}

/// The identity of a latent-entry finding (`CompletedLatent`): whose cache
/// holds the stale entry, for which linear page and PCID, the RIP of the write
/// (or CR3 load) that made it stale, and the RIP of the completion point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LatentKey {
    /// The core caching the entry.
    pub core: usize,
    /// Its linear page.
    pub page: u64,
    /// Its PCID.
    pub pcid: u16,
    /// The RIP of the write, or of the CR3 load, that made it stale.
    pub write_rip: u64,
    /// The RIP of the completion label where it was found.
    pub at_rip: u64,
}

/// Everything a run changes (the plan is read-only), kept apart from the plan so
/// that stepping borrows the plan and the state separately.
#[derive(Clone, Debug)]
struct State {
    machine: Machine,
    oracle: Oracle,
    cursor: Cursor,
    ending: Option<Ending>,
    decisions: Decisions,
}

impl Runner {
    /// Compiles `built` (see [`Plan::compile`]) and starts a runner on it. With
    /// `record`, every event is kept.
    pub fn new(s: &Scenario, built: Built, record: bool) -> Result<Self, Problem> {
        Ok(Runner::start(Arc::new(Plan::compile(s, built)?), record))
    }

    /// A runner at the start of the plan's schedule, on a copy-on-write clone of
    /// its pristine machine. With `record`, every event is kept; without, only
    /// the event classes the oracle and the plan consume are built.
    pub fn start(plan: Arc<Plan>, record: bool) -> Self {
        Runner::start_with(plan, record, false)
    }

    /// [`Runner::start`] for exploration: the runner also keeps each step's
    /// translations ([`Runner::step_accesses`]) and builds the events of every
    /// [`VISIBLE_CLASSES`] class, so [`Runner::last_step_kinds`] shows them.
    pub fn start_probed(plan: Arc<Plan>) -> Self {
        Runner::start_with(plan, false, true)
    }

    fn start_with(plan: Arc<Plan>, record: bool, probe: bool) -> Self {
        let st = State {
            machine: plan.machine().clone(),
            oracle: Oracle::new(&plan, record, probe),
            cursor: Cursor::default(),
            ending: None,
            decisions: Decisions::new(),
        };
        Runner { plan, st }
    }

    /// The plan this runner follows.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        &self.st.machine
    }

    /// The machine, mutably (debuggers poking memory; the tracker still sees writes
    /// made through [`Machine::write_phys`]).
    pub fn machine_mut(&mut self) -> &mut Machine {
        &mut self.st.machine
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        self.plan.scenario()
    }

    /// Every symbol.
    pub fn symbols(&self) -> &BTreeMap<String, u64> {
        self.plan.symbols()
    }

    /// Watches `len` bytes (1, 2, 4 or 8) at physical `pa` under `name` from
    /// now on, as a scenario's `watch:` word is watched: guest reads and writes
    /// of it become `watched` events. For the debugger's watchpoints; a name
    /// already watched is kept as it is.
    pub fn add_watch(&mut self, name: &str, pa: u64, len: u8) {
        let mut b = [0u8; 8];
        let n = usize::from(len).min(8);
        let _ = self.st.machine.mem.read(PhysAddr(pa), &mut b[..n]);
        let value = u64::from_le_bytes(b);
        self.st.oracle.watch.add(
            super::watch::WatchWord {
                name: name.to_string(),
                pa,
                len,
                initial: value,
            },
            value,
        );
    }

    /// Stops watching a word added by [`Runner::add_watch`].
    pub fn remove_watch(&mut self, name: &str) {
        self.st.oracle.watch.remove(name);
    }

    /// Code labels by address.
    pub fn labels(&self) -> &BTreeMap<u64, String> {
        self.plan.labels()
    }

    /// Where the schedule is.
    pub fn cursor(&self) -> &Cursor {
        &self.st.cursor
    }

    /// How the schedule ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        self.st.ending.as_ref()
    }

    /// Stale uses so far.
    pub fn stale_uses(&self) -> &[StaleRecord] {
        &self.st.oracle.stale
    }

    /// Violations so far.
    pub fn violations(&self) -> usize {
        self.st.violations()
    }

    /// Recorded events not yet taken with [`Runner::take_events`] (empty unless
    /// recording).
    pub fn events(&self) -> &[Event] {
        self.st.oracle.record.as_deref().unwrap_or(&[])
    }

    /// Takes the recorded events so far out of the runner. The record is the
    /// runner's event sink: a consumer that streams (the trace writer, replay,
    /// the debugger) takes after every step, so the runner itself holds one
    /// step's events at most and memory does not grow with the run. Taking
    /// changes nothing else: the oracle has already seen every event.
    pub fn take_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.st
            .oracle
            .record
            .as_mut()
            .into_iter()
            .flat_map(|r| r.drain(..))
    }

    /// The decisions taken so far.
    pub fn decisions(&self) -> &Decisions {
        &self.st.decisions
    }

    /// Event classes seen during the last step, as a [`ClassSet`] mask (bit `i`
    /// is [`super::EVENT_KINDS`]`[i]`). Without recording, only the classes the
    /// run consumes are built, so `retired` shows only when something asked for
    /// it.
    pub fn last_step_kinds(&self) -> u32 {
        self.st.oracle.seen
    }

    /// The translations the last step made (empty unless probed).
    pub fn step_accesses(&self) -> &[StepAccess] {
        self.st.oracle.explore.as_deref().unwrap_or(&[])
    }

    /// Latent stale entries found at completion points so far (`CompletedLatent`).
    pub fn latent_violations(&self) -> &[String] {
        &self.st.oracle.latent_violations
    }

    /// What identifies each of [`Runner::latent_violations`], in the same order.
    pub fn latent_keys(&self) -> &[LatentKey] {
        &self.st.oracle.latent_keys
    }

    /// Where the coherence rule stands: whether its label was reached, and by
    /// which cores. Two runs at the same machine state judge later uses alike
    /// only when these agree too (exploration hashes them with the state).
    pub fn coherence_progress(&self) -> (bool, Vec<bool>) {
        let o = &self.st.oracle;
        (
            o.label_reached,
            o.last_reach.iter().map(Option::is_some).collect(),
        )
    }

    /// Steps one core outside the schedule's control (debuggers, replay), logging
    /// the decision.
    pub fn step_core(&mut self, core: usize) -> StepResult {
        self.st.step_core(&self.plan, core)
    }

    /// Applies an `Evict` or `Fill` to one core's caches, logging the decision.
    pub fn cache_op(&mut self, d: &Decision) {
        self.st.cache_op(d)
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

    /// Advances the schedule by one machine step (or one cache operation).
    pub fn step(&mut self) -> Progress {
        self.st.step(&self.plan)
    }

    /// Runs the rest of the schedule.
    pub fn run_to_end(&mut self) {
        while !self.run_for(u64::MAX) {}
    }

    /// Advances the schedule until it is over (then true) or until at least
    /// `max` (≥ 1) more machine steps have been taken (then false; the last
    /// cache operations or non-retiring steps before that point may add a few).
    /// The state after it is the state the same steps through [`Runner::step`]
    /// leave: `Run` and `RoundRobin` steps go through tight loops that finish
    /// every step as `step` does, and everything else through `step` itself.
    /// A caller that looks at the run between batches (a progress display,
    /// Ctrl-C, a streaming trace that takes the events) picks `max`.
    pub fn run_for(&mut self, max: u64) -> bool {
        let Runner { plan, st } = self;
        let limit = st.machine.steps.saturating_add(max.max(1));
        loop {
            if st.ending.is_none() {
                match plan.schedule().get(st.cursor.index) {
                    Some(Step::Run { core, until }) => st.run_retiring(plan, *core, until, limit),
                    Some(Step::RoundRobin {
                        cores,
                        quantum,
                        until,
                    }) => st.rr_retiring(plan, cores, *quantum, until, limit),
                    _ => {}
                }
            }
            if st.ending.is_none() && st.machine.steps >= limit {
                return false;
            }
            if matches!(st.step(plan), Progress::Done) {
                return true;
            }
        }
    }

    /// Starts recording the data accesses of every step from now on (all of
    /// them, or with `words` only writes overlapping one of those `(pa, len)`
    /// ranges), for [`super::diagnose`]'s probes and replays.
    pub(super) fn start_probe(&mut self, words: Option<Vec<(u64, u64)>>) {
        self.st.oracle.probe = Some(Probe::new(words));
    }

    /// The accesses recorded since [`Runner::start_probe`].
    pub(super) fn probe_log(&self) -> &[DataAccess] {
        self.st.oracle.probe.as_ref().map_or(&[], |p| &p.log)
    }

    /// The last write to each word [`Runner::start_probe`] was given.
    pub(super) fn probe_last(&self) -> &[Option<DataAccess>] {
        self.st.oracle.probe.as_ref().map_or(&[], |p| &p.last)
    }

    /// Checks the expectations against the current state and builds the report.
    pub fn report(&self) -> RunReport {
        let st = &self.st;
        let machine = st.machine.clone();
        let violations = st.violations();
        let count = |c: EventClass, core: Option<usize>| st.oracle.count(c, core);
        let no_latent: Vec<String> = Vec::new();
        // Only a schedule that got stuck is diagnosed: a run stopped from outside
        // (an interrupt, a debugger) is not hung, and the diagnosis replays it.
        let hang = match st.ending {
            Some(Ending::Stuck { .. }) => super::hang::diagnose(self),
            _ => None,
        };
        let outcome = Outcome {
            hang: hang.as_ref(),
            machine: &machine,
            stale: &st.oracle.stale,
            violations,
            exceptions: &st.oracle.exceptions,
            count: &count,
            latent: &|i| st.oracle.latent_found.get(&i).unwrap_or(&no_latent),
        };
        let expectations = self
            .plan
            .checks()
            .iter()
            .enumerate()
            .map(|(index, c)| {
                let (ok, actual) = expect::check(index, c, &outcome);
                ExpectResult {
                    index,
                    what: c.what.clone(),
                    ok,
                    actual,
                }
            })
            .collect();
        let expect = self.plan.stop_accounts();
        let stopped = machine
            .cores
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let reason = c.stopped.clone()?;
                Some(StoppedCore {
                    core: i,
                    expected: stop_expected(&expect, i, &reason),
                    reason,
                })
            })
            .collect();
        let labels = self.plan.labels();
        let cores = machine
            .cores
            .iter()
            .enumerate()
            .map(|(i, c)| CoreSummary {
                core: i,
                retired: c.retired,
                rip: c.cpu.state.rip,
                label: super::report::core_site(
                    labels,
                    c.cpu.state.rip,
                    c.cpu.state.halted && c.stopped.is_none(),
                    c.retired,
                ),
                status: match &c.stopped {
                    Some(r) => r.to_string(),
                    None if c.cpu.state.halted => "halted".into(),
                    None => "running".into(),
                },
            })
            .collect();
        RunReport {
            hang,
            expects_hang: self
                .plan
                .checks()
                .iter()
                .any(|c| matches!(c.test, Test::Hung(_))),
            name: self.plan.scenario().name.clone(),
            steps: machine.steps,
            ending: st.ending.clone().unwrap_or(Ending::Stuck {
                index: st.cursor.index,
                reason: "the run was stopped before the schedule ended".into(),
            }),
            cores,
            stale_uses: st.oracle.stale.clone(),
            violations,
            expectations,
            latent_violations: st.oracle.latent_violations.clone(),
            stopped,
            decisions: st.decisions.clone(),
            events: self.events().to_vec(),
            machine: Some(machine),
            labels: labels.clone(),
            lines: self.plan.built().lines.clone(),
        }
    }
}

impl State {
    fn violations(&self) -> usize {
        self.oracle.latent_violations.len()
            + self.oracle.stale.iter().filter(|r| r.violation).count()
    }

    /// Steps `core` once and does the oracle's per-step bookkeeping.
    #[inline]
    pub(super) fn step_core(&mut self, plan: &Plan, core: usize) -> StepResult {
        match self.step_core_hot(plan, core) {
            Ok(()) => StepResult::Retired,
            Err(r) => r,
        }
    }

    /// [`State::step_core`] with `Retired` as `Ok(())`: the loops that step
    /// until something other than a retirement happens test one tag and never
    /// move a whole (80-byte) [`StepResult`]. Moving one that was written as a
    /// lone tag stalled on store forwarding, once per step.
    fn step_core_hot(&mut self, plan: &Plan, core: usize) -> Result<(), StepResult> {
        self.oracle.seen = 0;
        if let Some(p) = self.oracle.explore.as_mut() {
            p.clear();
        }
        let before = self.machine.steps;
        let soft = self.oracle.soft.active();
        let rip = self.machine.cores.get(core).map_or(0, |c| c.cpu.state.rip);
        // A new instruction begins unless the core's last step started and
        // ended here (a `rep` iteration); events of this step carry step
        // `before + 1`.
        if let Some(last) = self.oracle.last_rips.get(core) {
            if *last != Some((rip, rip)) {
                self.oracle.insn_start[core] = before + 1;
            }
        }
        let r = match self.machine.step(core, &mut self.oracle) {
            // Not moved out whole when it is `Retired` (see above).
            Ok(StepResult::Retired) => None,
            Ok(r) => Some(r),
            // Only an out-of-range core number gets here; the plan checked the
            // schedule's, so this is a caller's mistake reported as a stop.
            Err(e) => Some(StepResult::Stopped(StopReason::Error(
                crate::exception::EmuError::Paging {
                    rip: 0,
                    message: e.to_string(),
                },
            ))),
        };
        // A decision is logged only when the step consumed a global step.
        if self.machine.steps != before {
            self.decisions.step(core as u32);
            let after = self.machine.cores.get(core).map_or(0, |c| c.cpu.state.rip);
            if let Some(last) = self.oracle.last_rips.get_mut(core) {
                *last = Some((rip, after));
            }
            if soft {
                // The step's accesses in a software cache's region, judged by
                // the tracker's derived entries, reported like a hardware use.
                let step = self.machine.steps;
                let uses = self.oracle.soft.take_uses(&self.machine, core, step, rip);
                for su in uses {
                    self.oracle.event(Event {
                        step,
                        core: core as u32,
                        kind: EventKind::Mmu(MmuEvent::StaleUse(Box::new(su))),
                    });
                }
                let Machine { tracker, mem, .. } = &mut self.machine;
                tracker.flag_pending(mem);
            }
        }
        let rip = self.machine.cores.get(core).map(|c| c.cpu.state.rip);
        if !self.oracle.latent_watch.is_empty() || self.oracle.latent_rule.is_some() {
            if let Some(rip) = rip {
                self.check_latent(plan, core, rip);
            }
        }
        if let (Some(a), Some(rip)) = (plan.rule().label(), rip) {
            if rip == a {
                let step = self.machine.steps;
                self.oracle.label_reached = true;
                self.oracle.first_reach.get_or_insert((core, step));
                if let Some(r) = self.oracle.last_reach.get_mut(core) {
                    *r = Some(step);
                }
            }
        }
        match r {
            None => Ok(()),
            Some(r) => Err(r),
        }
    }

    /// At a completion point (core `core` has just reached a `NoStaleEntries(at:
    /// label)` label, or the `CompletedLatent` label): every entry still cached
    /// that `core`'s own writes or CR3 loads made stale is a finding, used or not.
    fn check_latent(&mut self, plan: &Plan, core: usize, rip: u64) {
        let step = self.machine.steps;
        if let (Some(only), Some(addr)) = (&self.oracle.latent_rule, plan.rule().label()) {
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
                            self.oracle.latent_keys.push(LatentKey {
                                core: c,
                                page: l.entry.va.raw() & !0xfff,
                                pcid: l.entry.pcid,
                                write_rip: l
                                    .made_stale_by
                                    .map(|w| w.rip)
                                    .or(l.root_change.map(|r| r.rip))
                                    .unwrap_or(0),
                                at_rip: rip,
                            });
                        }
                    }
                }
                // A software cache's real PTEs belong to no core: checked when
                // the rule names no cores.
                if only.is_none() {
                    for d in m.tracker.soft_stale_entries() {
                        if d.cause().is_some_and(|(by, _)| by as usize == core) {
                            self.oracle.latent_violations.push(format!(
                                "{d}, still present when core {core} reached the label at step {step}"
                            ));
                        }
                    }
                }
            }
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
            if only.is_none() {
                for d in m.tracker.soft_stale_entries() {
                    if d.cause().is_some_and(|(by, _)| by as usize == core) {
                        self.oracle
                            .latent_found
                            .entry(i)
                            .or_default()
                            .push(format!("{d}, when core {core} reached it at step {step}"));
                    }
                }
            }
        }
    }

    fn cache_op(&mut self, d: &Decision) {
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

    fn advance(&mut self) {
        self.cursor = Cursor {
            index: self.cursor.index + 1,
            ..Cursor::default()
        };
    }

    fn stuck(&mut self, reason: String) -> Progress {
        self.ending = Some(Ending::Stuck {
            index: self.cursor.index,
            reason,
        });
        Progress::Done
    }

    fn step(&mut self, plan: &Plan) -> Progress {
        let budget = plan.budget();
        loop {
            if self.ending.is_some() {
                return Progress::Done;
            }
            let Some(st) = plan.schedule().get(self.cursor.index) else {
                self.ending = Some(Ending::Completed);
                return Progress::Done;
            };
            match st {
                Step::Run { core, until } => {
                    let core = *core;
                    if until.stop == Stop::Halt && idle(&self.machine, core) {
                        self.advance();
                        continue;
                    }
                    if let Stop::Steps(n) = until.stop {
                        if self.cursor.taken >= n {
                            self.advance();
                            continue;
                        }
                    }
                    if self.machine.steps >= budget {
                        return self.stuck(format!(
                            "Run(core: {core}, until: {}) did not finish within the step budget of {budget} (max_steps)",
                            until.text
                        ));
                    }
                    let r = self.step_core(plan, core);
                    self.cursor.taken += 1;
                    match self.after_run_step(plan, core, until, r) {
                        Some(p) => return p,
                        None => continue,
                    }
                }
                Step::Step { core, n } => {
                    let (core, n) = (*core, *n);
                    if self.cursor.taken >= n {
                        self.advance();
                        continue;
                    }
                    if self.machine.steps >= budget {
                        return self.stuck(format!("the step budget of {budget} ran out"));
                    }
                    let r = self.step_core(plan, core);
                    self.cursor.taken += 1;
                    match &r {
                        StepResult::Stopped(StopReason::Error(e))
                            if !error_expected(plan, core, e) =>
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
                Step::RoundRobin {
                    cores,
                    quantum,
                    until,
                } => {
                    if until.stop == Stop::Halt && cores.iter().all(|c| idle(&self.machine, *c)) {
                        self.advance();
                        continue;
                    }
                    if let Stop::Steps(n) = until.stop {
                        if self.cursor.taken >= n {
                            self.advance();
                            continue;
                        }
                    }
                    if self.cursor.rr_idle >= cores.len() {
                        return self.stuck(format!(
                            "every core in {cores:?} is halted or stopped, so {} can never come",
                            until.text
                        ));
                    }
                    if self.machine.steps >= budget {
                        return self.stuck(format!(
                            "RoundRobin(until: {}) did not finish within the step budget of {budget} (max_steps)",
                            until.text
                        ));
                    }
                    let core = cores[self.cursor.rr_pos % cores.len()];
                    let r = self.step_core(plan, core);
                    match self.after_rr_step(plan, cores, *quantum, until, core, r) {
                        Some(p) => return p,
                        None => continue,
                    }
                }
                Step::Evict { core, va } | Step::Fill { core, va } => {
                    let (core, va) = (*core as u32, *va);
                    let d = if matches!(st, Step::Fill { .. }) {
                        Decision::Fill { core, va }
                    } else {
                        Decision::Evict { core, va }
                    };
                    self.cache_op(&d);
                    self.advance();
                    return Progress::CacheOp;
                }
            }
        }
    }

    /// What [`State::step`] does after it stepped `core` for `Run { until }`:
    /// the progress to return, or `None` to go on to the next schedule step.
    fn after_run_step(
        &mut self,
        plan: &Plan,
        core: usize,
        until: &Cond,
        r: StepResult,
    ) -> Option<Progress> {
        match &r {
            StepResult::Retired => {}
            StepResult::Stopped(StopReason::Error(e)) if !error_expected(plan, core, e) => {
                return Some(self.stuck(format!("core {core} stopped: {e}")));
            }
            StepResult::Stopped(why) if until.stop != Stop::Halt => {
                let why = why.to_string();
                return Some(
                    self.stuck(format!("core {core} stopped before {}: {why}", until.text)),
                );
            }
            StepResult::NoProgress if until.stop != Stop::Halt => {
                return Some(self.stuck(format!(
                    "core {core} is halted with nothing to wake it, so {} can never come",
                    until.text
                )));
            }
            StepResult::Stopped(_) | StepResult::NoProgress => {
                self.advance();
                return None;
            }
            _ => {}
        }
        // A core that just retired an instruction is not halted.
        let halt_only = until.stop == Stop::Halt && r == StepResult::Retired;
        if !halt_only && self.reached(until.stop, core) {
            self.advance();
        }
        Some(Progress::Stepped { core, result: r })
    }

    /// What [`State::step`] does after it stepped `core` for `RoundRobin {
    /// cores, quantum, until }`: the progress to return, or `None` to go on
    /// (the core made no progress; the next one is tried).
    fn after_rr_step(
        &mut self,
        plan: &Plan,
        cores: &[usize],
        quantum: u64,
        until: &Cond,
        core: usize,
        r: StepResult,
    ) -> Option<Progress> {
        if let StepResult::Stopped(StopReason::Error(e)) = &r {
            if !error_expected(plan, core, e) {
                return Some(self.stuck(format!("core {core} stopped: {e}")));
            }
        }
        if matches!(r, StepResult::NoProgress | StepResult::Stopped(_)) {
            self.cursor.rr_idle += 1;
            self.cursor.rr_pos = (self.cursor.rr_pos + 1) % cores.len();
            self.cursor.rr_count = 0;
            return None;
        }
        self.cursor.rr_idle = 0;
        self.cursor.taken += 1;
        self.cursor.rr_count += 1;
        if self.cursor.rr_count >= quantum {
            self.cursor.rr_pos = (self.cursor.rr_pos + 1) % cores.len();
            self.cursor.rr_count = 0;
        }
        // For RoundRobin, Halt means every listed core is idle (and a
        // core that just retired an instruction is not).
        let done = match until.stop {
            Stop::Halt => r != StepResult::Retired && cores.iter().all(|c| idle(&self.machine, *c)),
            stop => self.reached(stop, core),
        };
        if done {
            self.advance();
        }
        Some(Progress::Stepped { core, result: r })
    }

    /// [`Runner::run_for`]'s loop for a `RoundRobin` step, the counterpart of
    /// [`State::run_retiring`]: steps the cores in turn for as long as each step
    /// retires an instruction and leaves the schedule step unfinished, without
    /// going back through the schedule each time. Every step is finished by
    /// [`State::after_rr_step`], as [`State::step`] finishes it; the checks
    /// `step` makes before stepping are made here too, except the all-idle one
    /// after a retiring step (the core that just retired is not idle).
    fn rr_retiring(
        &mut self,
        plan: &Plan,
        cores: &[usize],
        quantum: u64,
        until: &Cond,
        limit: u64,
    ) {
        let end = plan.budget().min(limit);
        let index = self.cursor.index;
        if self.cursor.rr_idle >= cores.len()
            || (until.stop == Stop::Halt && cores.iter().all(|c| idle(&self.machine, *c)))
        {
            return;
        }
        loop {
            if self.machine.steps >= end {
                return;
            }
            if let Stop::Steps(n) = until.stop {
                if self.cursor.taken >= n {
                    return;
                }
            }
            let core = cores[self.cursor.rr_pos % cores.len()];
            match self.step_core_hot(plan, core) {
                Ok(()) => {
                    let _ =
                        self.after_rr_step(plan, cores, quantum, until, core, StepResult::Retired);
                    if self.cursor.index != index || self.ending.is_some() {
                        return;
                    }
                }
                Err(r) => {
                    let _ = self.after_rr_step(plan, cores, quantum, until, core, r);
                    return;
                }
            }
        }
    }

    /// [`Runner::run_to_end`]'s loop for a `Run` step: steps `core` for as long
    /// as each step would be an ordinary [`State::step`] that retires an
    /// instruction without meeting the stop condition, without going back
    /// through the schedule each time. Anything else (a budget, step-count or
    /// idle check that would end the step before stepping, or a step that did
    /// not simply retire) is left to, or finished as, [`State::step`] does it.
    fn run_retiring(&mut self, plan: &Plan, core: usize, until: &Cond, limit: u64) {
        let end = plan.budget().min(limit);
        let stop = until.stop;
        loop {
            if self.machine.steps >= end {
                return;
            }
            if let Stop::Steps(n) = stop {
                if self.cursor.taken >= n {
                    return;
                }
            }
            if stop == Stop::Halt && idle(&self.machine, core) {
                return;
            }
            if self.oracle.plain && !matches!(stop, Stop::Event(_)) {
                let mut max = end - self.machine.steps;
                if let Stop::Steps(n) = stop {
                    max = max.min(n - self.cursor.taken);
                }
                match self.straight(plan, core, stop, max) {
                    None => continue,
                    Some(r) => {
                        let _ = self.after_run_step(plan, core, until, r);
                        return;
                    }
                }
            }
            let r = match self.step_core_hot(plan, core) {
                Ok(()) => {
                    self.cursor.taken += 1;
                    if stop == Stop::Halt || !self.reached(stop, core) {
                        continue;
                    }
                    StepResult::Retired
                }
                Err(r) => {
                    self.cursor.taken += 1;
                    r
                }
            };
            // The step is taken; finish it exactly as `step` would.
            let _ = self.after_run_step(plan, core, until, r);
            return;
        }
    }

    /// [`State::run_retiring`]'s steps for a plain oracle ([`Oracle::plain`])
    /// and a stop that is not an event: up to `max` steps of `core` through
    /// [`Machine::run_straight`], with the bookkeeping [`State::step_core`]
    /// does per step done once for the run. That is exact because the run
    /// stops after any step that leaves RIP in place (so every step after the
    /// first begins a new instruction), after any step that does not simply
    /// retire, and after any step that ends on the coherence label or the stop
    /// address (so only the last step can reach either); and the decisions of
    /// one core's steps merge into one. [`Runner::last_step_kinds`] then covers
    /// the whole run, which only exploration reads, and its probed runner is
    /// never plain. Returns `None` when every step retired without reaching
    /// `stop`, else the last step's result (`Retired` when it reached `stop`).
    fn straight(&mut self, plan: &Plan, core: usize, stop: Stop, max: u64) -> Option<StepResult> {
        let label = plan.rule().label();
        let at = match stop {
            Stop::At(a) => Some(a),
            _ => None,
        };
        let mut buf = [0u64; 2];
        let mut n = 0;
        for a in [label, at].into_iter().flatten() {
            buf[n] = a;
            n += 1;
        }
        let before = self.machine.steps;
        let rip = self.machine.cores.get(core).map_or(0, |c| c.cpu.state.rip);
        self.oracle.seen = 0;
        if let Some(last) = self.oracle.last_rips.get(core) {
            if *last != Some((rip, rip)) {
                self.oracle.insn_start[core] = before + 1;
            }
        }
        self.oracle.straight = Some((core as u32, before + 1));
        let run = self
            .machine
            .run_straight(core, &mut self.oracle, max, &buf[..n]);
        self.oracle.straight = None;
        self.cursor.taken += run.retired + u64::from(run.end.is_some());
        let consumed = self.machine.steps - before;
        let after = self.machine.cores.get(core).map(|c| c.cpu.state.rip);
        if consumed > 0 {
            self.decisions.steps(core as u32, consumed);
            if let Some(last) = self.oracle.last_rips.get_mut(core) {
                *last = Some((run.last_rip, after.unwrap_or(0)));
            }
            if consumed >= 2 {
                self.oracle.insn_start[core] = self.machine.steps;
            }
        }
        if let (Some(a), Some(rip)) = (label, after) {
            if rip == a {
                let step = self.machine.steps;
                self.oracle.label_reached = true;
                self.oracle.first_reach.get_or_insert((core, step));
                if let Some(r) = self.oracle.last_reach.get_mut(core) {
                    *r = Some(step);
                }
            }
        }
        match run.end {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => Some(StepResult::Stopped(StopReason::Error(
                crate::exception::EmuError::Paging {
                    rip: 0,
                    message: e.to_string(),
                },
            ))),
            None if run.retired > 0 && stop != Stop::Halt && self.reached(stop, core) => {
                Some(StepResult::Retired)
            }
            None => None,
        }
    }

    /// Whether the stop condition holds after a step of `core`: a label or an
    /// address is one compare of the RIP.
    #[inline]
    fn reached(&self, stop: Stop, core: usize) -> bool {
        match stop {
            Stop::At(a) => self.machine.cores[core].cpu.state.rip == a,
            Stop::Steps(_) => false,
            Stop::Halt => idle(&self.machine, core),
            Stop::Event(c) => self.oracle.seen & c.bit() != 0,
        }
    }
}

/// An emulator error ends the schedule, unless a `Stopped` expectation says
/// this core should stop that way; then the schedule goes on without it.
fn error_expected(plan: &Plan, core: usize, e: &crate::exception::EmuError) -> bool {
    stop_expected(&plan.stop_accounts(), core, &StopReason::Error(e.clone()))
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
pub(crate) fn stop_expected(expect: &[&Expect], core: usize, reason: &StopReason) -> bool {
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

/// [`Machine::is_idle`], answered without reading the APIC for the common case
/// of a core that is neither halted nor stopped.
#[inline]
fn idle(m: &Machine, core: usize) -> bool {
    let c = &m.cores[core];
    (c.cpu.state.halted || c.stopped.is_some()) && m.is_idle(core)
}

/// Runs a plan's whole schedule on a fresh runner and reports.
pub fn run(plan: &Arc<Plan>, record: bool) -> RunReport {
    let mut r = Runner::start(Arc::clone(plan), record);
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
