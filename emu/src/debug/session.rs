//! The debugging session: position, snapshots, re-execution and breakpoints.
//!
//! Every change of state the debugger makes is one [`Unit`]: a schedule step, a
//! step of one core outside the schedule, or a cache operation. The units taken
//! so far form the history; position `n` is the state after the first `n` units.
//! The runner is cloned every [`SNAPSHOT_EVERY`] units (copy-on-write memory makes
//! that cheap), and any earlier position is reached by cloning the nearest
//! snapshot at or before it and executing the recorded units again: the machine
//! is deterministic, so the state is identical.

use crate::events::{Event, EventKind};
use crate::scenario::{Decision, Decisions, Plan, Progress, Runner};
use crate::state::CpuState;
use mmu::{MmuEvent, PhysAddr, VirtAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Units between snapshots, by default.
pub const SNAPSHOT_EVERY: usize = 256;

/// One recorded debugger action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// One step along the scenario's schedule.
    Schedule,
    /// One step of this core, outside the schedule.
    Core(usize),
    /// Evict the core's cached translations of a linear address.
    Evict {
        /// Core.
        core: usize,
        /// Linear address.
        va: u64,
    },
    /// Speculatively fill the core's TLB for a linear address.
    Fill {
        /// Core.
        core: usize,
        /// Linear address.
        va: u64,
    },
}

/// What a breakpoint waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// A core's RIP reaches this address (named by a label).
    Label {
        /// The label.
        name: String,
        /// Its address.
        addr: u64,
    },
    /// A core's RIP reaches this address.
    Addr(u64),
    /// The oracle reports a stale use.
    StaleUse,
    /// A TLB fill (any core) covering this linear address.
    TlbFill(u64),
    /// A write to a paging-structure entry that maps this linear address in the
    /// address space of `core` (the focused core when the breakpoint was set).
    PagingWrite {
        /// Linear address.
        va: u64,
        /// Whose CR3 the walk starts from.
        core: usize,
    },
    /// An IPI that targets this core.
    Ipi(usize),
    /// Any event of this kind (see [`crate::scenario::EVENT_KINDS`]).
    Event(String),
}

impl std::fmt::Display for BreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakKind::Label { name, addr } => write!(f, "label {name} ({addr:#x})"),
            BreakKind::Addr(a) => write!(f, "address {a:#x}"),
            BreakKind::StaleUse => write!(f, "stale use"),
            BreakKind::TlbFill(va) => write!(f, "TLB fill of va {va:#x}"),
            BreakKind::PagingWrite { va, core } => write!(
                f,
                "write to a paging-structure entry of va {va:#x} (core {core}'s space)"
            ),
            BreakKind::Ipi(c) => write!(f, "IPI to core {c}"),
            BreakKind::Event(k) => write!(f, "event {k}"),
        }
    }
}

/// A numbered breakpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    /// Number shown to the user.
    pub id: usize,
    /// Condition.
    pub kind: BreakKind,
}

/// Disassembly syntax.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Syntax {
    /// GNU AT&T.
    #[default]
    Att,
    /// Intel.
    Intel,
}

/// Why a run command stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It did what was asked.
    Done,
    /// A breakpoint hit (text says which and why).
    Break(String),
    /// The schedule is over (text says how).
    ScheduleOver(String),
    /// The core cannot make progress (halted with nothing to wake it, or stopped).
    NoProgress(String),
}

/// A debugging session over one scenario.
#[derive(Clone, Debug)]
pub struct Session {
    path: PathBuf,
    snapshots: Vec<Runner>,
    every: usize,
    runner: Runner,
    history: Vec<Unit>,
    pos: usize,
    focus: usize,
    breakpoints: Vec<Breakpoint>,
    next_bp: usize,
    before: Vec<CpuState>,
    /// Disassembly syntax.
    pub syntax: Syntax,
    /// Linear address shown in the page-walk pane.
    pub walk_va: Option<u64>,
}

impl Session {
    /// A session at position 0 of a built scenario (`path` is where it was read
    /// from: saved scenarios resolve relative files against it).
    pub fn new(path: &Path, plan: Arc<Plan>) -> Self {
        let runner = Runner::start(plan, true);
        let before = cpu_states(&runner);
        Session {
            path: path.to_path_buf(),
            snapshots: vec![runner.clone()],
            every: SNAPSHOT_EVERY,
            runner,
            history: Vec::new(),
            pos: 0,
            focus: 0,
            breakpoints: Vec::new(),
            next_bp: 1,
            before,
            syntax: Syntax::Att,
            walk_va: None,
        }
    }

    /// Loads, builds and validates a scenario file and opens a session on it.
    pub fn open(path: &Path) -> Result<Self, crate::scenario::Diagnostic> {
        let (_s, _src, plan) = crate::scenario::prepare(path)?;
        Ok(Session::new(path, plan))
    }

    /// Snapshots every `k` units from now on (tests use small values to exercise
    /// replay across snapshots). Existing snapshots after position 0 are dropped,
    /// so it is cheapest at the start.
    pub fn set_snapshot_every(&mut self, k: usize) {
        self.every = k.max(1);
        self.snapshots.truncate(1);
        let mut r = self.snapshots[0].clone();
        for i in 0..self.pos {
            if i > 0 && i.is_multiple_of(self.every) {
                self.snapshots.push(r.clone());
            }
            let _ = exec_checked(&mut r, self.history[i], &[]);
        }
        if self.pos > 0 && self.pos.is_multiple_of(self.every) {
            self.snapshots.push(r);
        }
    }

    /// Number of snapshots held (position 0 included).
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// The scenario file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The runner at the current position.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Position: units taken to reach the current state.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Units recorded (more than [`Session::pos`] after stepping back).
    pub fn history(&self) -> &[Unit] {
        &self.history
    }

    /// The focused core.
    pub fn focus(&self) -> usize {
        self.focus
    }

    /// Focuses a core.
    pub fn set_focus(&mut self, core: usize) -> Result<(), String> {
        let n = self.runner.machine().num_cores();
        if core >= n {
            return Err(format!(
                "there is no core {core} (the machine has {n}, so 0..={})",
                n - 1
            ));
        }
        self.focus = core;
        Ok(())
    }

    /// Register state of every core before the last command that moved.
    pub fn before(&self) -> &[CpuState] {
        &self.before
    }

    /// Breakpoints.
    pub fn breakpoints(&self) -> &[Breakpoint] {
        &self.breakpoints
    }

    /// Adds a breakpoint, returning its number.
    pub fn add_breakpoint(&mut self, kind: BreakKind) -> usize {
        let id = self.next_bp;
        self.next_bp += 1;
        self.breakpoints.push(Breakpoint { id, kind });
        id
    }

    /// Deletes one breakpoint, or all with `None`. Returns how many went.
    pub fn delete_breakpoint(&mut self, id: Option<usize>) -> usize {
        let n = self.breakpoints.len();
        match id {
            Some(i) => self.breakpoints.retain(|b| b.id != i),
            None => self.breakpoints.clear(),
        }
        n - self.breakpoints.len()
    }

    /// Remembers the register state as "before" for change highlighting.
    pub fn mark_before(&mut self) {
        self.before = cpu_states(&self.runner);
    }

    /// The schedule is over.
    pub fn schedule_over(&self) -> bool {
        self.runner.ending().is_some()
    }

    /// Takes one unit at the current position. Returns `None` when the unit could
    /// not make progress, otherwise the breakpoint hits it caused.
    pub fn take(&mut self, u: Unit) -> Option<Vec<String>> {
        let hits = exec_checked(&mut self.runner, u, &self.breakpoints)?;
        if self.pos < self.history.len() && self.history[self.pos] != u {
            // A different path from here: forget the old future.
            self.history.truncate(self.pos);
            self.snapshots.truncate(self.pos / self.every + 1);
        }
        if self.pos == self.history.len() {
            self.history.push(u);
        }
        self.pos += 1;
        if self.pos.is_multiple_of(self.every) && self.snapshots.len() == self.pos / self.every {
            self.snapshots.push(self.runner.clone());
        }
        Some(hits)
    }

    /// Steps `core` up to `count` times, stopping early at a breakpoint or when the
    /// core cannot make progress.
    pub fn step_core(&mut self, core: usize, count: u64) -> Result<(u64, Stop), String> {
        let n = self.runner.machine().num_cores();
        if core >= n {
            return Err(format!(
                "there is no core {core} (the machine has {n}, so 0..={})",
                n - 1
            ));
        }
        let budget = self
            .runner
            .scenario()
            .max_steps
            .unwrap_or(crate::scenario::DEFAULT_MAX_STEPS);
        let mut done = 0;
        while done < count {
            if self.runner.machine().steps >= budget {
                return Ok((
                    done,
                    Stop::NoProgress(format!(
                        "the step budget of {budget} (max_steps) is used up; core {core}"
                    )),
                ));
            }
            match self.take(Unit::Core(core)) {
                None => {
                    let why = core_status(&self.runner, core);
                    return Ok((done, Stop::NoProgress(format!("core {core} is {why}"))));
                }
                Some(hits) => {
                    done += 1;
                    if !hits.is_empty() {
                        return Ok((done, Stop::Break(hits.join("; "))));
                    }
                }
            }
        }
        Ok((done, Stop::Done))
    }

    /// Advances along the schedule: `count` units, or (with `None`) until a
    /// breakpoint, `extra` or the end of the schedule.
    pub fn run_schedule(&mut self, count: Option<u64>, extra: Option<&BreakKind>) -> (u64, Stop) {
        let mut done = 0;
        loop {
            if count.is_some_and(|c| done >= c) {
                return (done, Stop::Done);
            }
            let mut bps = self.breakpoints.clone();
            if let Some(k) = extra {
                bps.push(Breakpoint {
                    id: 0,
                    kind: k.clone(),
                });
            }
            let hits = match exec_checked(&mut self.runner, Unit::Schedule, &bps) {
                None => return (done, Stop::ScheduleOver(self.ending_text())),
                Some(h) => h,
            };
            // Record the unit (exec_checked already ran it).
            if self.pos < self.history.len() && self.history[self.pos] != Unit::Schedule {
                self.history.truncate(self.pos);
                self.snapshots.truncate(self.pos / self.every + 1);
            }
            if self.pos == self.history.len() {
                self.history.push(Unit::Schedule);
            }
            self.pos += 1;
            if self.pos.is_multiple_of(self.every) && self.snapshots.len() == self.pos / self.every
            {
                self.snapshots.push(self.runner.clone());
            }
            done += 1;
            if !hits.is_empty() {
                return (done, Stop::Break(hits.join("; ")));
            }
        }
    }

    /// How the schedule ended, as text.
    pub fn ending_text(&self) -> String {
        match self.runner.ending() {
            Some(crate::scenario::Ending::Completed) => "the schedule completed".into(),
            Some(crate::scenario::Ending::Stuck { index, reason }) => {
                format!("the schedule is stuck at step {index}: {reason}")
            }
            None => "the schedule is not over".into(),
        }
    }

    /// Goes to position `n`: backwards by re-execution from a snapshot, forwards
    /// along the recorded history and then the schedule.
    pub fn goto(&mut self, n: usize) -> Stop {
        if n <= self.pos {
            self.rewind(n);
            return Stop::Done;
        }
        while self.pos < n && self.pos < self.history.len() {
            let u = self.history[self.pos];
            if exec_checked(&mut self.runner, u, &[]).is_none() {
                break;
            }
            self.pos += 1;
        }
        if self.pos < n {
            let (_, stop) = self.run_schedule(Some((n - self.pos) as u64), None);
            return stop;
        }
        Stop::Done
    }

    fn rewind(&mut self, n: usize) {
        let k = (n / self.every).min(self.snapshots.len() - 1);
        self.runner = self.snapshots[k].clone();
        for i in k * self.every..n {
            let u = self.history[i];
            let _ = exec_checked(&mut self.runner, u, &[]);
        }
        self.pos = n;
    }

    /// Steps back `count` units.
    pub fn reverse_step(&mut self, count: usize) -> usize {
        let to = self.pos.saturating_sub(count);
        let back = self.pos - to;
        self.rewind(to);
        back
    }

    /// Goes back to the latest earlier position where a breakpoint hit (the state
    /// right after the unit that hit it), or to position 0.
    pub fn reverse_continue(&mut self) -> Stop {
        let target = self.pos;
        let mut r = self.snapshots[0].clone();
        let mut last: Option<(usize, String)> = None;
        // Position p+1 is "after unit p"; a hit there counts if p+1 < target.
        for p in 0..target.saturating_sub(1) {
            let u = self.history[p];
            if let Some(h) = exec_checked(&mut r, u, &self.breakpoints) {
                if !h.is_empty() {
                    last = Some((p + 1, h.join("; ")));
                }
            }
        }
        match last {
            Some((p, why)) => {
                self.rewind(p);
                Stop::Break(why)
            }
            None => {
                self.rewind(0);
                Stop::ScheduleOver("reached the start: no breakpoint hit before".into())
            }
        }
    }

    /// The decision log at the current position (what a saved scenario replays).
    pub fn decisions(&self) -> &Decisions {
        self.runner.decisions()
    }

    /// Hash of guest physical memory (every byte), for tests and "did it change".
    pub fn memory_fingerprint(&self) -> u64 {
        let mem = &self.runner.machine().mem;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut buf = vec![0u8; 1 << 16];
        let mut pa = 0;
        while pa < mem.size() {
            let n = buf.len().min((mem.size() - pa) as usize);
            if mem.read(PhysAddr(pa), &mut buf[..n]).is_err() {
                break;
            }
            for w in buf[..n].chunks(8) {
                let mut x = [0u8; 8];
                x[..w.len()].copy_from_slice(w);
                h ^= u64::from_le_bytes(x);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            pa += n as u64;
        }
        h
    }
}

fn cpu_states(r: &Runner) -> Vec<CpuState> {
    r.machine()
        .cores
        .iter()
        .map(|c| c.cpu.state.clone())
        .collect()
}

/// "running", "halted" or why the core stopped.
pub(crate) fn core_status(r: &Runner, core: usize) -> String {
    let c = &r.machine().cores[core];
    match &c.stopped {
        Some(s) => format!("stopped: {s}"),
        None if c.cpu.state.halted => "halted".into(),
        None => "running".into(),
    }
}

/// Executes one unit on `r`; `None` if it made no progress. Returns the texts of
/// the breakpoints in `bps` that hit.
fn exec_checked(r: &mut Runner, u: Unit, bps: &[Breakpoint]) -> Option<Vec<String>> {
    // Paging-structure entries of the watched addresses, before the unit.
    let watched: Vec<(usize, Vec<(PhysAddr, u64)>)> = bps
        .iter()
        .enumerate()
        .filter_map(|(i, b)| match b.kind {
            BreakKind::PagingWrite { va, core } => Some((i, entries_of(r, core, va))),
            _ => None,
        })
        .collect();
    let first_event = r.events().len();
    let steps = r.machine().steps;
    let stepped = match u {
        Unit::Schedule => match r.step() {
            Progress::Done => return None,
            Progress::Stepped { core, .. } => Some(core),
            Progress::CacheOp => None,
        },
        Unit::Core(c) => {
            r.step_core(c);
            if r.machine().steps == steps {
                return None;
            }
            Some(c)
        }
        Unit::Evict { core, va } => {
            r.cache_op(&Decision::Evict {
                core: core as u32,
                va,
            });
            None
        }
        Unit::Fill { core, va } => {
            r.cache_op(&Decision::Fill {
                core: core as u32,
                va,
            });
            None
        }
    };
    let evs = &r.events()[first_event..];
    let mut hits = Vec::new();
    for (i, b) in bps.iter().enumerate() {
        let what = match &b.kind {
            BreakKind::Label { addr, .. } | BreakKind::Addr(addr) => stepped
                .filter(|c| r.machine().cores[*c].cpu.state.rip == *addr)
                .map(|c| format!("core {c} at {addr:#x}")),
            BreakKind::StaleUse => evs.iter().find_map(|e| match &e.kind {
                EventKind::Mmu(MmuEvent::StaleUse(su)) => Some(format!(
                    "stale use on core {} at step {} (rip {:#x}), va {} via {}",
                    su.ctx.core, su.ctx.step, su.ctx.rip, su.va, su.cache
                )),
                _ => None,
            }),
            BreakKind::TlbFill(va) => evs.iter().find_map(|e| match &e.kind {
                EventKind::Mmu(MmuEvent::TlbFill { entry }) if covers(entry, *va) => Some(format!(
                    "core {} filled its TLB for va {:#x}",
                    entry.core, va
                )),
                _ => None,
            }),
            BreakKind::PagingWrite { .. } => {
                let before = watched
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, v)| v.as_slice())
                    .unwrap_or(&[]);
                paging_write_hit(r, evs, before)
            }
            BreakKind::Ipi(target) => evs.iter().find_map(|e| match &e.kind {
                EventKind::IpiSent {
                    vector, targets, ..
                } if *target < 64 && targets & (1 << *target) != 0 => Some(format!(
                    "core {} sent IPI vector {vector:#x} to core {target}",
                    e.core
                )),
                _ => None,
            }),
            BreakKind::Event(k) => evs
                .iter()
                .find(|e| e.kind.name() == k)
                .map(|e| format!("{k} event on core {} at step {}", e.core, e.step)),
        };
        if let Some(w) = what {
            if b.id == 0 {
                hits.push(format!("reached {}: {w}", b.kind));
            } else {
                hits.push(format!("breakpoint {} ({}): {w}", b.id, b.kind));
            }
        }
    }
    Some(hits)
}

fn covers(e: &mmu::EntryView, va: u64) -> bool {
    let size = match e.cached {
        mmu::WalkResult::Leaf { size, .. } => size.bytes(),
        _ => return false,
    };
    va >= e.va.raw() && va - e.va.raw() < size
}

/// The paging-structure entries (address, value) a walk of `va` from `core`'s CR3
/// reads now.
fn entries_of(r: &Runner, core: usize, va: u64) -> Vec<(PhysAddr, u64)> {
    let m = r.machine();
    if core >= m.num_cores() {
        return Vec::new();
    }
    let regs = m.paging_regs(core);
    m.cores[core]
        .mmu
        .walk_view(&m.mem, &m.tracker, &regs, VirtAddr(va))
        .levels
        .iter()
        .map(|l| (l.entry_pa, l.value))
        .collect()
}

fn paging_write_hit(r: &Runner, evs: &[Event], before: &[(PhysAddr, u64)]) -> Option<String> {
    for e in evs {
        let w = match &e.kind {
            EventKind::Mmu(MmuEvent::PagingWrite { write, .. })
            | EventKind::Mmu(MmuEvent::BecameStale {
                write: Some(write), ..
            }) => write,
            _ => continue,
        };
        if before.iter().any(|(pa, _)| *pa == w.pa) {
            return Some(format!(
                "core {} wrote {} {:#x} -> {:#x} at step {}",
                w.core, w.pa, w.old, w.new, w.step
            ));
        }
    }
    // Writes no cache depended on produce no event: compare memory.
    let mem = &r.machine().mem;
    before.iter().find_map(|(pa, old)| match mem.read_u64(*pa) {
        Ok(new) if new != *old => Some(format!("entry at {pa} changed {old:#x} -> {new:#x}")),
        _ => None,
    })
}
