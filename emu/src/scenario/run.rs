//! Running a built scenario: the schedule drives the machine, the coherence oracle
//! classifies stale uses, and the expectations are checked at the end.

use super::build::{resolve, Built};
use super::schema::*;
use crate::events::{CollectSink, Event, EventKind, EventSink, StopReason};
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
    /// Number of violations.
    pub violations: usize,
    /// Expectations.
    pub expectations: Vec<ExpectResult>,
    /// The schedule as executed: (core, consecutive steps) runs.
    #[serde(skip)]
    pub decisions: Vec<(u32, u64)>,
    /// All events, when recording was asked for.
    #[serde(skip)]
    pub events: Vec<Event>,
    /// The machine at the end (for debuggers and tests).
    #[serde(skip)]
    pub machine: Option<Machine>,
}

impl RunReport {
    /// The run passed: the schedule completed, every expectation held, and no
    /// violation appeared that the scenario does not expect (a scenario that lists
    /// a `Violations(n)` or `StaleUse` expectation accounts for its violations).
    pub fn passed(&self, expects_violations: bool) -> bool {
        self.ending == Ending::Completed
            && self.expectations.iter().all(|e| e.ok)
            && (self.violations == 0 || expects_violations)
    }
}

/// The oracle: a sink that classifies stale uses and counts events.
struct Oracle<'a> {
    record: Option<&'a mut CollectSink>,
    coherence: &'a Coherence,
    label_reached: bool,
    freed: Vec<u64>,
    stale: Vec<StaleRecord>,
    counts: BTreeMap<(String, u32), u64>,
    exceptions: Vec<(u32, u8)>,
    seen_kind: Option<&'static str>,
}

impl EventSink for Oracle<'_> {
    fn event(&mut self, ev: Event) {
        let name = ev.kind.name();
        *self.counts.entry((name.to_string(), ev.core)).or_insert(0) += 1;
        self.seen_kind = Some(name);
        match &ev.kind {
            EventKind::Mmu(MmuEvent::StaleUse(su)) => {
                let violation = match self.coherence {
                    Coherence::All => true,
                    Coherence::AfterLabel(_) => self.label_reached,
                    Coherence::FreedFrames { .. } => {
                        self.label_reached && touches_frames(&su.cached, &self.freed)
                    }
                };
                self.stale.push(StaleRecord {
                    detail: (**su).clone(),
                    violation,
                });
            }
            EventKind::Exception { delivered, .. } => {
                self.exceptions.push((ev.core, delivered.vector()));
            }
            EventKind::Stopped(StopReason::UnhandledException { exception, .. }) => {
                self.exceptions.push((ev.core, exception.vector()));
            }
            _ => {}
        }
        if let Some(r) = self.record.as_deref_mut() {
            r.event(ev);
        }
    }
}

fn touches_frames(cached: &WalkResult, frames: &[u64]) -> bool {
    match cached {
        WalkResult::Leaf { frame, size, .. } => frames
            .iter()
            .any(|f| *f >= frame.raw() && *f - frame.raw() < size.bytes()),
        WalkResult::Table { next, .. } => frames.contains(&next.raw()),
        _ => false,
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

/// Runs `built` along the scenario's schedule.
pub fn run(s: &Scenario, built: Built, record: bool) -> RunReport {
    let Built {
        mut machine,
        symbols,
        labels,
        ..
    } = built;
    let mut collect = CollectSink::default();
    let (label_addr, freed) = match &s.coherence {
        Coherence::All => (None, Vec::new()),
        Coherence::AfterLabel(l) => (symbols.get(l).copied(), Vec::new()),
        Coherence::FreedFrames { label, frames } => (
            symbols.get(label).copied(),
            frames
                .iter()
                .filter_map(|f| resolve(f, &symbols).ok())
                .collect(),
        ),
    };
    let mut oracle = Oracle {
        record: if record { Some(&mut collect) } else { None },
        coherence: &s.coherence,
        label_reached: false,
        freed,
        stale: Vec::new(),
        counts: BTreeMap::new(),
        exceptions: Vec::new(),
        seen_kind: None,
    };
    let budget = s.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
    let mut decisions: Vec<(u32, u64)> = Vec::new();
    let mut ending = Ending::Completed;

    // One step of `core`, with bookkeeping. Returns the result.
    let mut step = |m: &mut Machine, core: usize, oracle: &mut Oracle| -> StepResult {
        oracle.seen_kind = None;
        let r = m.step(core, oracle).unwrap_or(StepResult::NoProgress);
        if r != StepResult::NoProgress {
            match decisions.last_mut() {
                Some((c, n)) if *c == core as u32 => *n += 1,
                _ => decisions.push((core as u32, 1)),
            }
        }
        if let Some(a) = label_addr {
            if !oracle.label_reached && m.cores[core].cpu.state.rip == a {
                oracle.label_reached = true;
            }
        }
        r
    };

    'sched: for (index, st) in s.schedule.iter().enumerate() {
        let stuck = |reason: String| Ending::Stuck { index, reason };
        match st {
            Sched::Run { core, until } => {
                let core = *core;
                let mut taken = 0u64;
                loop {
                    if machine.steps >= budget {
                        ending = stuck(format!(
                            "Run(core: {core}, until: {until:?}) did not finish within the step budget of {budget} (max_steps)"
                        ));
                        break 'sched;
                    }
                    if let Until::Halt = until {
                        if machine.is_idle(core) {
                            break;
                        }
                    }
                    if let Until::Steps(n) = until {
                        if taken >= *n {
                            break;
                        }
                    }
                    let r = step(&mut machine, core, &mut oracle);
                    taken += 1;
                    match &r {
                        StepResult::Stopped(why) => {
                            if !matches!(until, Until::Halt) {
                                ending =
                                    stuck(format!("core {core} stopped before {until:?}: {why}"));
                                break 'sched;
                            }
                            break;
                        }
                        StepResult::NoProgress => {
                            if matches!(until, Until::Halt) {
                                break;
                            }
                            ending = stuck(format!(
                                "core {core} is halted with nothing to wake it, so {until:?} can never come"
                            ));
                            break 'sched;
                        }
                        _ => {}
                    }
                    if reached(until, &machine, core, &symbols, &oracle) {
                        break;
                    }
                }
            }
            Sched::Step { core, n } => {
                for _ in 0..*n {
                    if machine.steps >= budget {
                        ending = stuck(format!("the step budget of {budget} ran out"));
                        break 'sched;
                    }
                    let r = step(&mut machine, *core, &mut oracle);
                    if matches!(r, StepResult::Stopped(_) | StepResult::NoProgress) {
                        break;
                    }
                }
            }
            Sched::RoundRobin {
                cores,
                quantum,
                until,
            } => {
                let q = (*quantum).max(1);
                let mut taken = 0u64;
                'rr: loop {
                    let mut progressed = false;
                    for &core in cores {
                        for _ in 0..q {
                            if let Until::Halt = until {
                                if cores.iter().all(|c| machine.is_idle(*c)) {
                                    break 'rr;
                                }
                            }
                            if let Until::Steps(n) = until {
                                if taken >= *n {
                                    break 'rr;
                                }
                            }
                            if machine.steps >= budget {
                                ending = stuck(format!(
                                    "RoundRobin(until: {until:?}) did not finish within the step budget of {budget} (max_steps)"
                                ));
                                break 'sched;
                            }
                            let r = step(&mut machine, core, &mut oracle);
                            if matches!(r, StepResult::NoProgress | StepResult::Stopped(_)) {
                                break;
                            }
                            progressed = true;
                            taken += 1;
                            if reached(until, &machine, core, &symbols, &oracle) {
                                break 'rr;
                            }
                        }
                    }
                    if !progressed {
                        if matches!(until, Until::Halt) {
                            break;
                        }
                        ending = stuck(format!(
                            "every core in {cores:?} is halted or stopped, so {until:?} can never come"
                        ));
                        break 'sched;
                    }
                }
            }
            Sched::Evict { core, va } => {
                if let Ok(va) = resolve(va, &symbols) {
                    let regs = machine.paging_regs(*core);
                    let steps = machine.steps;
                    let ctx = mmu::AccessCtx {
                        core: *core as u32,
                        step: steps,
                        rip: machine.cores[*core].cpu.state.rip,
                    };
                    let Machine { cores, tracker, .. } = &mut machine;
                    let mut a = Adapter {
                        sink: &mut oracle,
                        core: *core as u32,
                        step: steps,
                    };
                    cores[*core]
                        .mmu
                        .evict(tracker, &regs, VirtAddr(va), ctx, &mut a);
                }
            }
            Sched::Fill { core, va } => {
                if let Ok(va) = resolve(va, &symbols) {
                    let regs = machine.paging_regs(*core);
                    let steps = machine.steps;
                    let ctx = mmu::AccessCtx {
                        core: *core as u32,
                        step: steps,
                        rip: machine.cores[*core].cpu.state.rip,
                    };
                    let Machine {
                        cores,
                        tracker,
                        mem,
                        ..
                    } = &mut machine;
                    let mut a = Adapter {
                        sink: &mut oracle,
                        core: *core as u32,
                        step: steps,
                    };
                    let _ = cores[*core].mmu.speculative_fill(
                        mem,
                        tracker,
                        &regs,
                        VirtAddr(va),
                        false,
                        ctx,
                        &mut a,
                    );
                }
            }
        }
    }

    // Expectations.
    let counts = std::mem::take(&mut oracle.counts);
    let stale = std::mem::take(&mut oracle.stale);
    let exceptions = std::mem::take(&mut oracle.exceptions);
    drop(oracle);
    let violations = stale.iter().filter(|r| r.violation).count();
    let mut results = Vec::new();
    for (index, e) in s.expect.iter().enumerate() {
        let (ok, actual) = check(
            e,
            &mut machine,
            &symbols,
            &stale,
            violations,
            &counts,
            &exceptions,
        );
        results.push(ExpectResult {
            index,
            what: describe(e),
            ok,
            actual,
        });
    }
    let cores = machine
        .cores
        .iter()
        .enumerate()
        .map(|(i, c)| CoreSummary {
            core: i,
            retired: c.retired,
            rip: c.cpu.state.rip,
            label: labels.get(&c.cpu.state.rip).cloned(),
            status: match &c.stopped {
                Some(r) => r.to_string(),
                None if c.cpu.state.halted => "halted".into(),
                None => "running".into(),
            },
        })
        .collect();
    RunReport {
        name: s.name.clone(),
        steps: machine.steps,
        ending,
        cores,
        stale_uses: stale,
        violations,
        expectations: results,
        decisions,
        events: collect.events,
        machine: Some(machine),
    }
}

struct Adapter<'a, 'b> {
    sink: &'a mut Oracle<'b>,
    core: u32,
    step: u64,
}

impl mmu::MmuSink for Adapter<'_, '_> {
    fn event(&mut self, ev: MmuEvent) {
        self.sink.event(Event {
            step: self.step,
            core: self.core,
            kind: EventKind::Mmu(ev),
        });
    }
}

fn reached(
    until: &Until,
    m: &Machine,
    core: usize,
    symbols: &BTreeMap<String, u64>,
    oracle: &Oracle,
) -> bool {
    match until {
        Until::Label(l) => symbols
            .get(l)
            .is_some_and(|a| m.cores[core].cpu.state.rip == *a),
        Until::Address(v) => resolve(v, symbols).is_ok_and(|a| m.cores[core].cpu.state.rip == a),
        Until::Steps(_) => false,
        Until::Halt => m.is_idle(core),
        Until::Event(k) => {
            oracle.seen_kind == Some(k.as_str()) || {
                // seen_kind holds only the last event of the step; count-based check.
                false
            }
        }
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
        Expect::Violations(n) => format!("{n} violation(s)"),
        Expect::Exception { core, vector } => format!("core {core} took vector {vector:#x}"),
        Expect::Halted(c) => format!("core {c} halted"),
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
        && va.is_none_or(|a| (r.detail.va.raw() >> 12) == (a >> 12))
        && kind_matches(*kind, &r.detail)
}

fn check(
    e: &Expect,
    m: &mut Machine,
    symbols: &BTreeMap<String, u64>,
    stale: &[StaleRecord],
    violations: usize,
    counts: &BTreeMap<(String, u32), u64>,
    exceptions: &[(u32, u8)],
) -> (bool, String) {
    let res = |v: &Value| resolve(v, symbols).unwrap_or(0);
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
            let at = res(at);
            let pa = match space {
                None => Some(at),
                Some(sp) => {
                    let root = symbols.get(&format!("{sp}.root")).copied().unwrap_or(0);
                    match mmu::walk(
                        &m.mem,
                        VirtAddr(at),
                        mmu::WalkStart::root(PhysAddr(root)),
                        mmu::WalkParams {
                            maxphyaddr: m.config.mmu.maxphyaddr,
                            huge_1g: m.config.mmu.huge_1g,
                            nxe: true,
                        },
                        0,
                        &mut mmu::Path::new(),
                    ) {
                        Ok(WalkResult::Leaf {
                            frame, size: ps, ..
                        }) => Some(frame.raw() + (at & ps.offset_mask())),
                        _ => None,
                    }
                }
            };
            let Some(pa) = pa else {
                return (false, format!("{at:#x} is not mapped"));
            };
            match m.mem.read_uint(PhysAddr(pa), size.clamp(1, 8)) {
                Ok(g) => (
                    g == res(value) & crate::flags::mask(size as u32),
                    format!("{g:#x}"),
                ),
                Err(e) => (false, e.to_string()),
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
