//! The debugging session: position, snapshots, re-execution and breakpoints.
//!
//! Every change of state the debugger makes is one [`Unit`]: a schedule step, a
//! step of one core outside the schedule, or a cache operation. The units taken
//! so far form the history (run-length encoded, so a long `step` is a few
//! entries); position `n` is the state after the first `n` units. The runner is
//! cloned every [`SNAPSHOT_EVERY`] units (copy-on-write memory makes that cheap),
//! and any earlier position is reached by cloning the nearest snapshot at or
//! before it and executing the recorded units again: the machine is
//! deterministic, so the state is identical.
//!
//! Snapshots are dense near the newest position and sparse further back: of the
//! snapshots whose distance from the newest falls in one power-of-two band
//! (`[2^j, 2^(j+1))` times [`SNAPSHOT_EVERY`]), only the two nearest the present
//! are kept (and position 0 always). A session of `n` units then holds
//! `O(log n)` snapshots, and going back `k` units re-executes at most about
//! `k + SNAPSHOT_EVERY` of them. Events are not part of a snapshot: the session
//! keeps one [`EventLog`] up to the current position and cuts it back when it
//! goes back (each snapshot remembers how long the log was at its position).
//!
//! Long commands poll an [`Interrupt`] between units, so Ctrl-C stops them
//! between two instructions, with the position reached kept.

use super::log::EventLog;
use crate::events::{Event, EventKind};
use crate::scenario::{Decision, Decisions, Plan, Progress, Runner};
use crate::state::CpuState;
use mmu::{MmuEvent, PhysAddr, VirtAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Snapshots kept per power-of-two band of distance from the newest one.
const PER_BAND: usize = 2;

/// Units between calls of an [`Interrupt`]'s poll function (the flag itself is
/// read every unit).
pub const POLL_EVERY: u64 = 1 << 14;

/// How a long command learns that the user asked it to stop: a flag a signal
/// handler sets (SIGINT in the REPL), and/or a function polled every
/// [`POLL_EVERY`] units (the terminal UI reads Ctrl-C as a key).
#[derive(Clone, Default)]
pub struct Interrupt {
    flag: Option<Arc<AtomicBool>>,
    poll: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt")
            .field("flag", &self.flag)
            .field("poll", &self.poll.is_some())
            .finish()
    }
}

impl Interrupt {
    /// Interrupted when `flag` is set.
    pub fn flag(flag: Arc<AtomicBool>) -> Self {
        Interrupt {
            flag: Some(flag),
            poll: None,
        }
    }

    /// Also interrupted when `poll` says so.
    pub fn with_poll(mut self, poll: Arc<dyn Fn() -> bool + Send + Sync>) -> Self {
        self.poll = Some(poll);
        self
    }

    /// Whether to stop now; `n` counts units done in this command.
    #[inline]
    fn requested(&self, n: u64) -> bool {
        if self
            .flag
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return true;
        }
        if n % POLL_EVERY == POLL_EVERY - 1 {
            if let Some(p) = &self.poll {
                if p() {
                    if let Some(f) = &self.flag {
                        f.store(true, Ordering::Relaxed);
                    }
                    return true;
                }
            }
        }
        false
    }

    /// Forgets a request (it was acted on, or came while no command ran).
    fn clear(&self) {
        if let Some(f) = &self.flag {
            f.store(false, Ordering::Relaxed);
        }
    }
}

/// The units taken, run-length encoded: each run is `(first position, unit)`
/// and lasts until the next run starts (the last one until `len`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    runs: Vec<(usize, Unit)>,
    len: usize,
}

impl History {
    /// Units recorded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Unit `i` (the one that leads from position `i` to `i + 1`).
    pub fn get(&self, i: usize) -> Option<Unit> {
        if i >= self.len {
            return None;
        }
        let k = self.runs.partition_point(|(start, _)| *start <= i);
        self.runs.get(k.wrapping_sub(1)).map(|(_, u)| *u)
    }

    fn push(&mut self, u: Unit) {
        if self.runs.last().is_none_or(|(_, last)| *last != u) {
            self.runs.push((self.len, u));
        }
        self.len += 1;
    }

    fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        let k = self.runs.partition_point(|(start, _)| *start < n);
        self.runs.truncate(k);
        self.len = n;
    }

    /// Entries held (runs), for memory accounting in tests.
    pub fn stored(&self) -> usize {
        self.runs.len()
    }

    /// The runs: `(first position, unit)`.
    fn runs(&self) -> &[(usize, Unit)] {
        &self.runs
    }
}

/// A copy of the runner at a position, and the event log's length there.
#[derive(Clone, Debug)]
struct Snap {
    pos: usize,
    runner: Runner,
    events: usize,
}

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
        /// Also the walker's own accessed/dirty updates (SDM Vol. 3A 4.8), which
        /// are not guest stores and are left out unless asked for (`+ad`).
        ad: bool,
    },
    /// An IPI that targets this core.
    Ipi(usize),
    /// Any event of this kind (see [`crate::scenario::EVENT_KINDS`]).
    Event(String),
    /// A guest read and/or write of a watched range (a watchpoint). The range is
    /// watched by the scenario's watched-word machinery under `name`, so only
    /// the guest's own data accesses count: not the debugger's reads, not the
    /// page walker's A/D updates.
    Watch {
        /// The name its `watched` events carry (the address as typed).
        name: String,
        /// Physical address.
        pa: u64,
        /// Bytes (1, 2, 4 or 8).
        len: u8,
        /// The linear address it was set at (`None`: set on a physical one).
        linear: Option<u64>,
        /// Reads count.
        read: bool,
        /// Writes count.
        write: bool,
    },
}

impl std::fmt::Display for BreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakKind::Label { name, addr } => write!(f, "label {name} ({addr:#x})"),
            BreakKind::Addr(a) => write!(f, "address {a:#x}"),
            BreakKind::StaleUse => write!(f, "stale use"),
            BreakKind::TlbFill(va) => write!(f, "TLB fill of va {va:#x}"),
            BreakKind::PagingWrite { va, core, ad } => write!(
                f,
                "write to a paging-structure entry of va {va:#x} (core {core}'s space{})",
                if *ad { ", A/D updates too" } else { "" }
            ),
            BreakKind::Ipi(c) => write!(f, "IPI to core {c}"),
            BreakKind::Event(k) => write!(f, "event {k}"),
            BreakKind::Watch {
                name,
                pa,
                len,
                linear,
                read,
                write,
            } => {
                let how = match (read, write) {
                    (true, true) => "read/write",
                    (true, false) => "read",
                    _ => "write",
                };
                match linear {
                    Some(la) => write!(
                        f,
                        "watch {how} of {name} ({len} byte(s) at linear {la:#x}, physical {pa:#x})"
                    ),
                    None => write!(
                        f,
                        "watch {how} of {name} ({len} byte(s) at physical {pa:#x})"
                    ),
                }
            }
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
    /// Only when this core hits it (the core that executed, or the one the
    /// event is about).
    pub core: Option<usize>,
    /// Only when this holds on that core after the unit.
    pub cond: Option<Cond>,
}

impl std::fmt::Display for Breakpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(c) = self.core {
            write!(f, " core {c}")?;
        }
        if let Some(c) = &self.cond {
            write!(f, " if {c}")?;
        }
        Ok(())
    }
}

/// One side of a breakpoint condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A general register (index into `CpuState::gpr`).
    Gpr(usize),
    /// RIP.
    Rip,
    /// RFLAGS.
    Rflags,
    /// CR3.
    Cr3,
    /// A number (symbols are resolved when the breakpoint is set).
    Num(u64),
}

impl Operand {
    /// The value on a core.
    pub fn value(&self, st: &CpuState) -> u64 {
        match *self {
            Operand::Gpr(i) => st.gpr[i],
            Operand::Rip => st.rip,
            Operand::Rflags => st.rflags,
            Operand::Cr3 => st.cr3,
            Operand::Num(n) => n,
        }
    }
}

impl std::fmt::Display for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Operand::Gpr(i) => f.write_str(super::view::REG_NAMES[i]),
            Operand::Rip => f.write_str("rip"),
            Operand::Rflags => f.write_str("rflags"),
            Operand::Cr3 => f.write_str("cr3"),
            Operand::Num(n) => write!(f, "{n:#x}"),
        }
    }
}

/// A comparison of two operands (unsigned, 64-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Left side.
    pub lhs: Operand,
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    pub op: &'static str,
    /// Right side.
    pub rhs: Operand,
}

impl Cond {
    /// Whether it holds on a core.
    pub fn holds(&self, st: &CpuState) -> bool {
        let (a, b) = (self.lhs.value(st), self.rhs.value(st));
        match self.op {
            "==" => a == b,
            "!=" => a != b,
            "<" => a < b,
            "<=" => a <= b,
            ">" => a > b,
            _ => a >= b,
        }
    }
}

impl std::fmt::Display for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.lhs, self.op, self.rhs)
    }
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
    /// The user interrupted it (Ctrl-C); the text says where.
    Interrupted(String),
}

/// A debugging session over one scenario.
#[derive(Clone, Debug)]
pub struct Session {
    path: PathBuf,
    /// Ascending by position; the first is position 0.
    snapshots: Vec<Snap>,
    every: usize,
    runner: Runner,
    /// Events from position 0 to `pos`.
    log: EventLog,
    history: History,
    pos: usize,
    interrupt: Interrupt,
    focus: usize,
    breakpoints: Vec<Breakpoint>,
    next_bp: usize,
    before: Vec<CpuState>,
    /// Disassembly syntax.
    pub syntax: Syntax,
    /// Linear address shown in the page-walk pane.
    pub walk_va: Option<u64>,
    /// Where the machine's step counter does not advance by one per unit
    /// (cache operations, units that retire more or less than one
    /// instruction): `(position, machine steps at it)`, ascending, the first
    /// at position 0. With it every position maps to the one step counter the
    /// oracle's explanations and traces use.
    anchors: Vec<(usize, u64)>,
    /// Bumped whenever recorded history is forgotten (a different unit taken
    /// after going back), so a save of an earlier interleaving is not mistaken
    /// for a save of this one.
    generation: u64,
    /// `(position, generation)` at the last successful save.
    saved: Option<(usize, u64)>,
}

impl Session {
    /// A session at position 0 of a built scenario (`path` is where it was read
    /// from: saved scenarios resolve relative files against it).
    pub fn new(path: &Path, plan: Arc<Plan>) -> Self {
        let mut runner = Runner::start(plan, true);
        let mut log = EventLog::new();
        log.extend(runner.take_events());
        let before = cpu_states(&runner);
        let steps0 = runner.machine().steps;
        Session {
            path: path.to_path_buf(),
            snapshots: vec![Snap {
                pos: 0,
                runner: runner.clone(),
                events: log.len(),
            }],
            every: SNAPSHOT_EVERY,
            runner,
            log,
            history: History::default(),
            pos: 0,
            interrupt: Interrupt::default(),
            focus: 0,
            breakpoints: Vec::new(),
            next_bp: 1,
            before,
            syntax: Syntax::Att,
            walk_va: None,
            anchors: vec![(0, steps0)],
            generation: 0,
            saved: None,
        }
    }

    /// Loads, builds and validates a scenario file and opens a session on it.
    pub fn open(path: &Path) -> Result<Self, crate::scenario::Diagnostic> {
        let (_s, _src, plan) = crate::scenario::prepare(path)?;
        Ok(Session::new(path, plan))
    }

    /// Snapshots every `k` units from now on (tests use small values to exercise
    /// replay across snapshots). The snapshots are rebuilt by re-executing the
    /// history from position 0, so it is cheapest at the start.
    pub fn set_snapshot_every(&mut self, k: usize) {
        self.every = k.max(1);
        self.snapshots.truncate(1);
        let mut r = self.snapshots[0].runner.clone();
        let mut events = self.snapshots[0].events;
        for i in 0..self.pos {
            if let Some(u) = self.history.get(i) {
                let _ = exec_checked(&mut r, u, &[]);
            }
            events += r.take_events().count();
            if (i + 1).is_multiple_of(self.every) {
                self.snapshots.push(Snap {
                    pos: i + 1,
                    runner: r.clone(),
                    events,
                });
                self.thin();
            }
        }
    }

    /// Number of snapshots held (position 0 included).
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// Positions of the snapshots held, ascending (for tests of the spacing).
    pub fn snapshot_positions(&self) -> Vec<usize> {
        self.snapshots.iter().map(|s| s.pos).collect()
    }

    /// Drops snapshots so that each power-of-two band of distance from the
    /// newest holds at most [`PER_BAND`] (the ones nearest the present).
    fn thin(&mut self) {
        let Some(now) = self.snapshots.last().map(|s| s.pos) else {
            return;
        };
        let every = self.every;
        let band = |p: usize| (((now - p) / every).max(1)).ilog2();
        let mut seen: Option<(u32, usize)> = None;
        let mut keep = vec![true; self.snapshots.len()];
        // Newest first; the newest and position 0 always stay.
        for i in (1..self.snapshots.len().saturating_sub(1)).rev() {
            let b = band(self.snapshots[i].pos);
            let n = match seen {
                Some((sb, n)) if sb == b => n + 1,
                _ => 1,
            };
            seen = Some((b, n));
            if n > PER_BAND {
                keep[i] = false;
            }
        }
        let mut k = keep.iter();
        self.snapshots.retain(|_| k.next().copied().unwrap_or(true));
    }

    /// Where Ctrl-C comes from (none by default: a session driven by tests
    /// cannot be interrupted).
    pub fn set_interrupt(&mut self, i: Interrupt) {
        self.interrupt = i;
    }

    /// Forgets an interrupt that arrived while no command was running.
    pub fn clear_interrupt(&self) {
        self.interrupt.clear();
    }

    /// Whether the command running should stop after `n` units; a request is
    /// consumed when seen.
    fn interrupted(&self, n: u64) -> bool {
        if self.interrupt.requested(n) {
            self.interrupt.clear();
            return true;
        }
        false
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
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The events from position 0 to the current position.
    pub fn events(&self) -> &EventLog {
        &self.log
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
        self.add_breakpoint_if(kind, None, None)
    }

    /// Adds a breakpoint that hits only on `core` and/or when `cond` holds.
    pub fn add_breakpoint_if(
        &mut self,
        kind: BreakKind,
        core: Option<usize>,
        cond: Option<Cond>,
    ) -> usize {
        let id = self.next_bp;
        self.next_bp += 1;
        self.breakpoints.push(Breakpoint {
            id,
            kind,
            core,
            cond,
        });
        id
    }

    /// Starts watching a range in the runner and in every snapshot (so
    /// re-execution from any of them sees the same accesses).
    pub fn watch_range(&mut self, name: &str, pa: u64, len: u8) {
        self.runner.add_watch(name, pa, len);
        for sn in &mut self.snapshots {
            sn.runner.add_watch(name, pa, len);
        }
    }

    /// Deletes one breakpoint, or all with `None`. Returns how many went.
    pub fn delete_breakpoint(&mut self, id: Option<usize>) -> usize {
        let gone: Vec<String> = self
            .breakpoints
            .iter()
            .filter(|b| id.is_none_or(|i| b.id == i))
            .filter_map(|b| match &b.kind {
                BreakKind::Watch { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        for name in gone {
            // Another watchpoint on the same name keeps it watched.
            let others = self.breakpoints.iter().any(|b| {
                id.is_some_and(|i| b.id != i)
                    && matches!(&b.kind, BreakKind::Watch { name: n, .. } if *n == name)
            });
            if !others
                && !self
                    .runner
                    .plan()
                    .watch_words()
                    .iter()
                    .any(|w| w.name == name)
            {
                self.runner.remove_watch(&name);
                for sn in &mut self.snapshots {
                    sn.runner.remove_watch(&name);
                }
            }
        }
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
        let hits = exec_checked(&mut self.runner, u, &self.breakpoints);
        self.log.extend(self.runner.take_events());
        let hits = hits?;
        self.record(u);
        Some(hits)
    }

    /// Records unit `u`, just executed at the current position: a different
    /// unit than the history has there forgets the old future; a new position
    /// at a multiple of the spacing gets a snapshot.
    fn record(&mut self, u: Unit) {
        if self.pos < self.history.len() && self.history.get(self.pos) != Some(u) {
            self.history.truncate(self.pos);
            let pos = self.pos;
            self.snapshots.retain(|s| s.pos <= pos);
            self.anchors.retain(|(p, _)| *p <= pos);
            self.generation += 1;
        }
        let appended = self.pos == self.history.len();
        if appended {
            self.history.push(u);
        }
        self.pos += 1;
        if appended {
            let now = self.runner.machine().steps;
            if self.step_at(self.pos) != now {
                self.anchors.push((self.pos, now));
            }
        }
        let newest = self.snapshots.last().map_or(0, |s| s.pos);
        if self.pos.is_multiple_of(self.every) && self.pos > newest {
            self.snapshots.push(Snap {
                pos: self.pos,
                runner: self.runner.clone(),
                events: self.log.len(),
            });
            self.thin();
        }
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
                        "the step budget of {budget} (max_steps) is used up (raise `max_steps: N` in {} to step further); core {core}",
                        self.path.display()
                    )),
                ));
            }
            if self.interrupted(done) {
                return Ok((
                    done,
                    Stop::Interrupted(format!(
                        "interrupted (Ctrl-C) after {done} of {count} step(s)"
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
        let mut bps = self.breakpoints.clone();
        if let Some(k) = extra {
            bps.push(Breakpoint {
                id: 0,
                kind: k.clone(),
                core: None,
                cond: None,
            });
        }
        loop {
            if count.is_some_and(|c| done >= c) {
                return (done, Stop::Done);
            }
            if self.interrupted(done) {
                return (
                    done,
                    Stop::Interrupted(format!(
                        "interrupted (Ctrl-C) after {done} schedule step(s)"
                    )),
                );
            }
            let hits = exec_checked(&mut self.runner, Unit::Schedule, &bps);
            self.log.extend(self.runner.take_events());
            let hits = match hits {
                None => return (done, Stop::ScheduleOver(self.ending_text())),
                Some(h) => h,
            };
            self.record(Unit::Schedule);
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
                let hint = if reason.contains("step budget") {
                    format!(
                        " (raise `max_steps: N` in {} to run further)",
                        self.path.display()
                    )
                } else {
                    String::new()
                };
                format!("the schedule is stuck at step {index}: {reason}{hint}")
            }
            None => "the schedule is not over".into(),
        }
    }

    /// Goes to position `n`: backwards by re-execution from a snapshot, forwards
    /// along the recorded history and then the schedule.
    pub fn goto(&mut self, n: usize) -> Stop {
        if n <= self.pos {
            return self.rewind(n);
        }
        let mut done = 0u64;
        while self.pos < n && self.pos < self.history.len() {
            if self.interrupted(done) {
                return Stop::Interrupted(format!("interrupted (Ctrl-C) on the way to step {n}"));
            }
            let Some(u) = self.history.get(self.pos) else {
                break;
            };
            let r = exec_checked(&mut self.runner, u, &[]);
            self.log.extend(self.runner.take_events());
            if r.is_none() {
                break;
            }
            self.pos += 1;
            done += 1;
        }
        if self.pos < n {
            let (_, stop) = self.run_schedule(Some((n - self.pos) as u64), None);
            return stop;
        }
        Stop::Done
    }

    /// Back to position `n` (at most the current one): the nearest snapshot at
    /// or before it, then the recorded units up to it. Interrupted, it stays at
    /// the position reached.
    fn rewind(&mut self, n: usize) -> Stop {
        let k = self.snapshots.partition_point(|s| s.pos <= n).max(1) - 1;
        let snap = &self.snapshots[k];
        self.runner = snap.runner.clone();
        self.log.truncate(snap.events);
        self.pos = snap.pos;
        let mut done = 0u64;
        while self.pos < n {
            if self.interrupted(done) {
                return Stop::Interrupted(format!(
                    "interrupted (Ctrl-C) while re-executing from step {} towards step {n}",
                    snap_pos(&self.snapshots, k)
                ));
            }
            if let Some(u) = self.history.get(self.pos) {
                let _ = exec_checked(&mut self.runner, u, &[]);
            }
            self.log.extend(self.runner.take_events());
            self.pos += 1;
            done += 1;
        }
        Stop::Done
    }

    /// Steps back `count` units; returns how many and how it ended.
    pub fn reverse_step(&mut self, count: usize) -> (usize, Stop) {
        let from = self.pos;
        let to = self.pos.saturating_sub(count);
        let stop = self.rewind(to);
        (from.saturating_sub(self.pos), stop)
    }

    /// Goes back to the latest earlier position where a breakpoint hit (the state
    /// right after the unit that hit it), or to position 0.
    pub fn reverse_continue(&mut self) -> Stop {
        let target = self.pos;
        let mut r = self.snapshots[0].runner.clone();
        let mut last: Option<(usize, String)> = None;
        // Position p+1 is "after unit p"; a hit there counts if p+1 < target.
        for p in 0..target.saturating_sub(1) {
            if self.interrupted(p as u64) {
                return Stop::Interrupted(format!(
                    "interrupted (Ctrl-C) while searching back (at step {p} of {target}); still at step {target}"
                ));
            }
            let Some(u) = self.history.get(p) else { break };
            let h = exec_checked(&mut r, u, &self.breakpoints);
            r.take_events().for_each(drop);
            if let Some(h) = h {
                if !h.is_empty() {
                    last = Some((p + 1, h.join("; ")));
                }
            }
        }
        match last {
            Some((p, why)) => match self.rewind(p) {
                Stop::Done => Stop::Break(why),
                other => other,
            },
            None => match self.rewind(0) {
                Stop::Done => {
                    Stop::ScheduleOver("reached the start: no breakpoint hit before".into())
                }
                other => other,
            },
        }
    }

    /// The decision log at the current position (what a saved scenario replays).
    pub fn decisions(&self) -> &Decisions {
        self.runner.decisions()
    }

    /// The machine's step counter at recorded position `pos` (the counter the
    /// oracle's explanations, events and traces number steps by).
    pub fn step_at(&self, pos: usize) -> u64 {
        let k = self.anchors.partition_point(|(p, _)| *p <= pos).max(1) - 1;
        let (p, steps) = self.anchors[k];
        steps + (pos - p) as u64
    }

    /// The machine step counter now (see [`Session::step_at`]).
    pub fn step(&self) -> u64 {
        self.runner.machine().steps
    }

    /// The highest machine step recorded (forward history included).
    pub fn last_step(&self) -> u64 {
        self.step_at(self.history.len()).max(self.step())
    }

    /// Goes to machine step `n`: the first position whose step counter is at
    /// least `n` (so step `n` has just executed, and a cache operation taken
    /// right after it has not), following the schedule past the recorded
    /// history when needed. `goto` numbers steps like every explanation does.
    pub fn goto_step(&mut self, n: u64) -> Stop {
        let end = self.history.len();
        if self.step_at(end) < n {
            let stop = self.goto(end);
            if stop != Stop::Done {
                return stop;
            }
            let mut done = 0u64;
            while self.step() < n {
                if self.interrupted(done) {
                    return Stop::Interrupted(format!(
                        "interrupted (Ctrl-C) on the way to step {n}"
                    ));
                }
                let (k, stop) = self.run_schedule(Some(1), None);
                if k == 0 {
                    return stop;
                }
                done += 1;
            }
            return Stop::Done;
        }
        // step_at is non-decreasing in the position: binary search.
        let (mut lo, mut hi) = (0usize, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.step_at(mid) >= n {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.goto(lo)
    }

    /// Units at or before the current position that the schedule did not
    /// choose (steps of one core, evictions, fills): what saving would keep
    /// and quitting would lose.
    pub fn off_schedule_units(&self) -> usize {
        let runs = self.history.runs();
        let end = self.pos.min(self.history.len());
        runs.iter()
            .enumerate()
            .filter(|(_, (_, u))| *u != Unit::Schedule)
            .map(|(k, (start, _))| {
                let stop = runs.get(k + 1).map_or(end, |(s, _)| (*s).min(end));
                stop.saturating_sub(*start)
            })
            .sum()
    }

    /// The interleaving at the current position differs from the scenario's
    /// own schedule and has not been saved since it was made.
    pub fn unsaved(&self) -> bool {
        self.saved != Some((self.pos, self.generation)) && self.off_schedule_units() > 0
    }

    /// Notes that the interleaving at the current position was saved.
    pub fn mark_saved(&mut self) {
        self.saved = Some((self.pos, self.generation));
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

fn snap_pos(snaps: &[Snap], k: usize) -> usize {
    snaps.get(k).map_or(0, |s| s.pos)
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
            BreakKind::PagingWrite { va, core, .. } => Some((i, entries_of(r, core, va))),
            _ => None,
        })
        .collect();
    // The runner's record holds this unit's events only: the session takes
    // them into its log after every unit.
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
        // The core a candidate hit is about must match the breakpoint's core and
        // condition.
        let m = r.machine();
        let accept = |c: usize| {
            c < m.num_cores()
                && b.core.is_none_or(|want| want == c)
                && b.cond
                    .as_ref()
                    .is_none_or(|k| k.holds(&m.cores[c].cpu.state))
        };
        let what = match &b.kind {
            BreakKind::Label { addr, .. } | BreakKind::Addr(addr) => stepped
                .filter(|c| m.cores[*c].cpu.state.rip == *addr && accept(*c))
                .map(|c| format!("core {c} at {}", site(r.labels(), *addr))),
            BreakKind::StaleUse => evs.iter().find_map(|e| match &e.kind {
                EventKind::Mmu(MmuEvent::StaleUse(su)) if accept(su.ctx.core as usize) => {
                    Some(format!(
                        "stale use on core {} at step {} (rip {}), va {} via {}",
                        su.ctx.core,
                        su.ctx.step,
                        site(r.labels(), su.ctx.rip),
                        su.va,
                        su.cache
                    ))
                }
                _ => None,
            }),
            BreakKind::TlbFill(va) => evs.iter().find_map(|e| match &e.kind {
                EventKind::Mmu(MmuEvent::TlbFill { entry })
                    if covers(entry, *va) && accept(entry.core as usize) =>
                {
                    Some(format!(
                        "core {} filled its TLB for va {:#x}",
                        entry.core, va
                    ))
                }
                _ => None,
            }),
            BreakKind::PagingWrite { ad, .. } => {
                let before = watched
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, v)| v.as_slice())
                    .unwrap_or(&[]);
                paging_write_hit(r, evs, before, *ad, &accept)
            }
            BreakKind::Ipi(target) => evs.iter().find_map(|e| match &e.kind {
                EventKind::IpiSent {
                    vector, targets, ..
                } if *target < 64 && targets & (1 << *target) != 0 && accept(e.core as usize) => {
                    Some(format!(
                        "core {} sent IPI vector {vector:#x} to core {target}",
                        e.core
                    ))
                }
                _ => None,
            }),
            BreakKind::Watch {
                name, read, write, ..
            } => evs.iter().find_map(|e| match &e.kind {
                EventKind::Watched {
                    name: n,
                    write: w,
                    old,
                    new,
                } if n == name && (if *w { *write } else { *read }) && accept(e.core as usize) => {
                    Some(format!(
                        "core {} {} at step {}",
                        e.core,
                        crate::trace::text::watched(n, *w, *old, *new),
                        e.step
                    ))
                }
                _ => None,
            }),
            BreakKind::Event(k) => evs
                .iter()
                .find(|e| e.kind.name() == k && accept(super::view::event_core(e)))
                .map(|e| {
                    format!(
                        "{k} event on core {} at step {}",
                        super::view::event_core(e),
                        e.step
                    )
                }),
        };
        if let Some(w) = what {
            if b.id == 0 {
                hits.push(format!("reached {}: {w}", b.kind));
            } else {
                hits.push(format!("breakpoint {} ({b}): {w}", b.id));
            }
        }
    }
    Some(hits)
}

/// `0x401000 <label+0x3>`, as `run` names code addresses.
pub(crate) fn site(labels: &std::collections::BTreeMap<u64, String>, addr: u64) -> String {
    match crate::scenario::name_in(labels, addr) {
        Some(n) => format!("{addr:#x} <{n}>"),
        None => format!("{addr:#x}"),
    }
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

/// The walker's A/D updates among `evs` (entry address, value written).
fn ad_updates(evs: &[Event]) -> Vec<(PhysAddr, u64)> {
    evs.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Mmu(MmuEvent::AccessedDirtySet { write, .. }) => Some((write.pa, write.new)),
            _ => None,
        })
        .collect()
}

/// A write to one of the entries in `before`; the walker's own A/D updates
/// count only with `ad`.
fn paging_write_hit(
    r: &Runner,
    evs: &[Event],
    before: &[(PhysAddr, u64)],
    ad: bool,
    accept: &dyn Fn(usize) -> bool,
) -> Option<String> {
    let ads = if ad { Vec::new() } else { ad_updates(evs) };
    for e in evs {
        let w = match &e.kind {
            EventKind::Mmu(MmuEvent::PagingWrite { write, .. })
            | EventKind::Mmu(MmuEvent::BecameStale {
                write: Some(write), ..
            }) => write,
            _ => continue,
        };
        if ads.contains(&(w.pa, w.new)) || !accept(w.core as usize) {
            continue;
        }
        if before.iter().any(|(pa, _)| *pa == w.pa) {
            return Some(format!(
                "core {} wrote {} {:#x} -> {:#x} at step {}",
                w.core, w.pa, w.old, w.new, w.step
            ));
        }
    }
    // Writes no cache depended on produce no event: compare memory.
    let mem = &r.machine().mem;
    let ad_bits = mmu::pte::A | mmu::pte::D;
    before.iter().find_map(|(pa, old)| match mem.read_u64(*pa) {
        Ok(new)
            if new != *old
                && !(ads.iter().any(|(p, _)| p == pa) && (new ^ old) & !ad_bits == 0) =>
        {
            Some(format!("entry at {pa} changed {old:#x} -> {new:#x}"))
        }
        _ => None,
    })
}
