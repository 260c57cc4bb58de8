//! The compile step: a parsed and built scenario becomes a [`Plan`], once.
//!
//! Everything a run consults is resolved here: core numbers are checked, labels
//! and symbol expressions are addresses, event kinds are [`EventClass`]es, the
//! coherence rule and the expectations are typed values, and the software-TLB
//! declarations are checked against the built machine. Every problem is a
//! located [`Problem`]. The runner reads the plan and never resolves a name
//! again, so it has nothing to fall back on.
//!
//! A plan is immutable and holds the pristine machine. Runs start from it through
//! an `Arc<Plan>` ([`super::Runner::start`]): a run costs a copy-on-write clone of
//! the machine, with no re-parse, no re-assembly and no copy of the scenario.

use super::build::{resolve, suggest, Built};
use super::diag::Problem;
use super::schema::{Coherence, Expect, KindSpec, Scenario, Sched, StopKind, Until, Value};
use super::soft_tlb::SoftCheck;
use super::watch::WatchWord;
use super::DEFAULT_MAX_STEPS;
use crate::events::{ClassSet, EventClass};
use crate::machine::Machine;
use std::collections::BTreeMap;

/// A scenario compiled for running: the pristine machine and every name resolved.
#[derive(Clone, Debug)]
pub struct Plan {
    scenario: Scenario,
    built: Built,
    schedule: Vec<Step>,
    budget: u64,
    rule: Rule,
    checks: Vec<Check>,
    soft: SoftCheck,
    counted: ClassSet,
    watched: ClassSet,
    expects_violations: bool,
    words: Vec<WatchWord>,
    /// Index of the first invariant in `checks` (the expectations come first).
    first_invariant: usize,
    /// `shared` ranges as `[start, end)` linear addresses, sorted.
    shared: Vec<(u64, u64)>,
    mode: Mode,
}

/// What a plan is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `run`, `check`, `debug`: the scenario's schedule, required, and its
    /// expectations followed by its invariants.
    Scripted,
    /// `explore`: no schedule (the search makes its own, so a schedule in the
    /// file is ignored) and only the invariants, because `expect` belongs to one
    /// schedule.
    Unscripted,
}

/// One schedule step with its core numbers checked and its values resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Run one core until the condition.
    Run {
        /// Core.
        core: usize,
        /// Stop condition.
        until: Cond,
    },
    /// Step one core `n` times.
    Step {
        /// Core.
        core: usize,
        /// Steps.
        n: u64,
    },
    /// Step the cores in turn, `quantum` (≥ 1) steps each, until the condition.
    RoundRobin {
        /// Cores in order (at least one).
        cores: Vec<usize>,
        /// Steps per turn.
        quantum: u64,
        /// Stop condition.
        until: Cond,
    },
    /// Evict the TLB entries `core` would use for `va`.
    Evict {
        /// Core.
        core: usize,
        /// Linear address.
        va: u64,
    },
    /// Speculatively fill `core`'s TLB for `va`.
    Fill {
        /// Core.
        core: usize,
        /// Linear address.
        va: u64,
    },
}

/// A resolved stop condition, with the text the scenario wrote (reports quote it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// What stops the step.
    pub stop: Stop,
    /// The condition as written (`Label("done")`), for messages.
    pub text: String,
}

/// When a `Run` or `RoundRobin` stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The stepped core's RIP equals this address (a label or an address).
    At(u64),
    /// After this many steps.
    Steps(u64),
    /// The core halts (for RoundRobin: every listed core is idle).
    Halt,
    /// An event of this class happened during the step.
    Event(EventClass),
}

/// The coherence rule: which stale uses are violations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every stale use.
    All,
    /// Stale uses once some core has reached this address.
    AfterLabel(u64),
    /// Per write and per core: a stale use is a violation once the core whose
    /// write made the entry stale has reached this address since the write.
    Completed(u64),
    /// `Completed`, and each arrival at the label also makes every entry still
    /// cached (on `cores`, all when `None`) that the arriving core made stale a
    /// violation.
    CompletedLatent {
        /// The label's address.
        label: u64,
        /// Cores whose caches are checked.
        cores: Option<Vec<usize>>,
    },
    /// Stale uses reaching one of `frames` once some core has reached `label`.
    FreedFrames {
        /// The label's address.
        label: u64,
        /// Physical frame addresses.
        frames: Vec<u64>,
    },
}

impl Rule {
    /// The address whose first arrival switches the rule on, if it has one.
    pub fn label(&self) -> Option<u64> {
        match self {
            Rule::All => None,
            Rule::AfterLabel(a)
            | Rule::Completed(a)
            | Rule::CompletedLatent { label: a, .. }
            | Rule::FreedFrames { label: a, .. } => Some(*a),
        }
    }
}

/// An expectation, resolved, with its human text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The expectation as reports show it.
    pub what: String,
    /// What to test.
    pub test: Test,
}

/// The resolved test of one expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    /// A register of a core has a value.
    Reg {
        /// Core.
        core: usize,
        /// Register.
        reg: Reg,
        /// Value.
        value: u64,
    },
    /// Memory holds a value: physical when `root` is `None`, else linear through
    /// the page tables at `root`.
    Mem {
        /// Address.
        at: u64,
        /// PML4 of the address space, for a linear address.
        root: Option<u64>,
        /// 1, 2, 4 or 8.
        size: usize,
        /// Value (compared in `size` bytes).
        value: u64,
    },
    /// Stale uses matching the filter are present (`present`) or absent.
    StaleUse {
        /// Which uses.
        filter: UseFilter,
        /// Present or absent.
        present: bool,
    },
    /// Exactly this many violations.
    Violations(usize),
    /// The core took (or stopped on) this vector.
    Exception {
        /// Core.
        core: usize,
        /// Vector.
        vector: u8,
    },
    /// The core ended halted.
    Halted(usize),
    /// No stale entry cached (on `core`, every core when `None`): at the end, or
    /// with `at`, whenever a core reaches that address, among the entries its own
    /// writes or CR3 loads made stale.
    NoStaleEntries {
        /// Core whose caches are checked.
        core: Option<usize>,
        /// Address of the completion point.
        at: Option<u64>,
    },
    /// The core stopped for good (for `reason`, when given).
    Stopped {
        /// Core.
        core: usize,
        /// Why.
        reason: Option<StopKind>,
    },
    /// The schedule did not complete (with this verdict, when given).
    Hung(Option<super::schema::HangKind>),
    /// Exactly `count` events of a class (on one core, or on any).
    Events {
        /// Class.
        class: EventClass,
        /// Core.
        core: Option<usize>,
        /// Count.
        count: u64,
    },
}

/// Which stale uses an expectation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UseFilter {
    /// Core.
    pub core: Option<usize>,
    /// Linear address (any address in the page matches).
    pub va: Option<u64>,
    /// Access kind.
    pub kind: Option<KindSpec>,
    /// Only stale uses of software caches (`SoftStaleUse`, `NoSoftStaleUse`).
    pub software: bool,
}

/// A register an expectation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// RIP.
    Rip,
    /// RFLAGS.
    Rflags,
    /// CR2.
    Cr2,
    /// CR3.
    Cr3,
    /// A general-purpose register by index (rax = 0 .. r15 = 15).
    Gpr(usize),
}

impl Plan {
    /// Compiles a built scenario. The phases run in the order problems are
    /// reported: software TLBs, schedule, coherence rule, expectations.
    pub fn compile(s: &Scenario, built: Built) -> Result<Plan, Problem> {
        Plan::compile_for(s, built, Mode::Scripted)
    }

    /// Compiles a built scenario for `mode`: [`Plan::compile`] for
    /// [`Mode::Scripted`].
    pub fn compile_for(s: &Scenario, built: Built, mode: Mode) -> Result<Plan, Problem> {
        let r = Resolver {
            cores: built.machine.num_cores(),
            built: &built,
        };
        // The software-TLB declarations resolve against the built machine.
        let soft_specs = super::soft_tlb::specs(&s.soft_tlbs, &built)?;
        let soft = SoftCheck::new(!soft_specs.is_empty());
        let words = super::watch::resolve_words(&s.watch, &built)?;
        let schedule = match mode {
            Mode::Scripted => r.schedule(&s.schedule)?,
            Mode::Unscripted => Vec::new(),
        };
        let rule = r.rule(&s.coherence)?;
        let expect: &[Expect] = match mode {
            Mode::Scripted => &s.expect,
            Mode::Unscripted => &[],
        };
        let mut checks = expect
            .iter()
            .enumerate()
            .map(|(i, e)| r.check(&format!("expect[{i}]"), e))
            .collect::<Result<Vec<_>, _>>()?;
        let first_invariant = checks.len();
        for (i, e) in s.invariants.iter().enumerate() {
            let mut c = r.check(&format!("invariants[{i}]"), e)?;
            c.what = format!("invariant {}", c.what);
            checks.push(c);
        }
        let mut shared = Vec::with_capacity(s.shared.len());
        for (i, sh) in s.shared.iter().enumerate() {
            let at = r.value(&sh.at, format!("shared[{i}].at"))?;
            let len = sh.len.unwrap_or(8);
            if len == 0 {
                return Err(Problem::at(
                    format!("shared[{i}].len"),
                    "a shared range of 0 bytes (expected a length of at least 1)",
                ));
            }
            let end = at.checked_add(len).ok_or_else(|| {
                Problem::at(
                    format!("shared[{i}].len"),
                    format!("{at:#x} + {len:#x} runs past the end of the address space"),
                )
            })?;
            shared.push((at, end));
        }
        shared.sort_unstable();
        let mut watched = ClassSet::NONE;
        for st in &schedule {
            if let Step::Run { until, .. } | Step::RoundRobin { until, .. } = st {
                if let Stop::Event(c) = until.stop {
                    watched = watched.with(c);
                }
            }
        }
        let mut counted = ClassSet::NONE;
        for c in &checks {
            if let Test::Events { class, .. } = c.test {
                counted = counted.with(class);
            }
        }
        // Each page of a software cache becomes a derived tracker entry of the
        // pristine machine, so every run starts with them.
        let mut built = built;
        for spec in soft_specs {
            let m = &mut built.machine;
            m.tracker.add_soft_cache(&mut m.mem, spec);
        }
        Ok(Plan {
            expects_violations: super::expects_violations(s),
            scenario: s.clone(),
            budget: s.max_steps.unwrap_or(DEFAULT_MAX_STEPS),
            built,
            schedule,
            rule,
            checks,
            soft,
            counted,
            watched,
            first_invariant,
            shared,
            mode,
            words,
        })
    }

    /// The expectations that may account for a core's stop: the scenario's
    /// `expect` (scripted only) and its `invariants`.
    pub fn stop_accounts(&self) -> Vec<&Expect> {
        let expect: &[Expect] = match self.mode {
            Mode::Scripted => &self.scenario.expect,
            Mode::Unscripted => &[],
        };
        expect.iter().chain(&self.scenario.invariants).collect()
    }

    /// What the plan was compiled for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The checks that come from `invariants` (the tail of [`Plan::checks`]).
    pub fn invariant_checks(&self) -> &[Check] {
        &self.checks[self.first_invariant..]
    }

    /// The `shared` ranges, `[start, end)` linear addresses, sorted; empty when
    /// the scenario marks none.
    pub fn shared(&self) -> &[(u64, u64)] {
        &self.shared
    }

    /// Whether a linear address lies in a `shared` range.
    pub fn is_shared(&self, la: u64) -> bool {
        let i = self.shared.partition_point(|&(s, _)| s <= la);
        i > 0 && la < self.shared[i - 1].1
    }

    /// The scenario as parsed.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The build: the pristine machine, symbols, labels, spaces, source maps.
    pub fn built(&self) -> &Built {
        &self.built
    }

    /// The machine before the first step.
    pub fn machine(&self) -> &Machine {
        &self.built.machine
    }

    /// Every symbol.
    pub fn symbols(&self) -> &BTreeMap<String, u64> {
        &self.built.symbols
    }

    /// Code labels by address.
    pub fn labels(&self) -> &BTreeMap<u64, String> {
        &self.built.labels
    }

    /// The schedule.
    pub fn schedule(&self) -> &[Step] {
        &self.schedule
    }

    /// The step budget (`max_steps`, or [`DEFAULT_MAX_STEPS`]).
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The coherence rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The expectations.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The software-TLB check in its start state.
    pub(crate) fn soft(&self) -> &SoftCheck {
        &self.soft
    }

    /// The watched words, resolved to physical addresses.
    pub fn watch_words(&self) -> &[WatchWord] {
        &self.words
    }

    /// Event classes that `Events` expectations count.
    pub fn counted(&self) -> ClassSet {
        self.counted
    }

    /// Event classes that `Until::Event` conditions wait for.
    pub fn watched(&self) -> ClassSet {
        self.watched
    }

    /// Whether the expectations account for violations
    /// ([`super::expects_violations`]).
    pub fn expects_violations(&self) -> bool {
        self.expects_violations
    }
}

/// Resolves the parts of a scenario against its build, with located problems.
struct Resolver<'a> {
    cores: usize,
    built: &'a Built,
}

impl Resolver<'_> {
    fn core(&self, c: usize, path: String) -> Result<usize, Problem> {
        if c >= self.cores {
            Err(Problem::at(
                path,
                format!(
                    "there is no core {c} (machine.cores is {}, so 0..={})",
                    self.cores,
                    self.cores - 1
                ),
            ))
        } else {
            Ok(c)
        }
    }

    fn label(&self, l: &str, path: String) -> Result<u64, Problem> {
        let symbols = &self.built.symbols;
        symbols.get(l).copied().ok_or_else(|| {
            Problem::at(
                path,
                format!("unknown label `{l}`{}", suggest(l, symbols.keys())),
            )
        })
    }

    fn value(&self, v: &Value, path: String) -> Result<u64, Problem> {
        resolve(v, &self.built.symbols).map_err(|e| Problem::at(path, e))
    }

    fn class(&self, k: &str, path: String) -> Result<EventClass, Problem> {
        EventClass::from_name(k).ok_or_else(|| {
            Problem::at(
                path,
                format!(
                    "unknown event kind `{k}`{} (expected one of {})",
                    suggest_event(k),
                    EventClass::NAMES.join(", ")
                ),
            )
        })
    }

    fn until(&self, u: &Until, path: String) -> Result<Cond, Problem> {
        let stop = match u {
            Until::Label(l) => Stop::At(self.label(l, format!("{path}[0]"))?),
            Until::Address(v) => Stop::At(self.value(v, format!("{path}[0]"))?),
            Until::Event(k) => Stop::Event(self.class(k, format!("{path}[0]"))?),
            Until::Steps(n) => Stop::Steps(*n),
            Until::Halt => Stop::Halt,
        };
        Ok(Cond {
            stop,
            text: format!("{u:?}"),
        })
    }

    fn schedule(&self, sched: &[Sched]) -> Result<Vec<Step>, Problem> {
        if sched.is_empty() {
            return Err(Problem::at(
                "schedule",
                "the scenario has no schedule (expected at least one step; `tlbemu explore` runs a scenario without one)",
            ));
        }
        let mut out = Vec::with_capacity(sched.len());
        for (i, st) in sched.iter().enumerate() {
            let p = format!("schedule[{i}]");
            out.push(match st {
                Sched::Run { core, until } => Step::Run {
                    core: self.core(*core, format!("{p}.core"))?,
                    until: self.until(until, format!("{p}.until"))?,
                },
                Sched::Step { core, n } => Step::Step {
                    core: self.core(*core, format!("{p}.core"))?,
                    n: *n,
                },
                Sched::RoundRobin {
                    cores,
                    quantum,
                    until,
                } => {
                    if cores.is_empty() {
                        return Err(Problem::at(
                            format!("{p}.cores"),
                            "RoundRobin needs at least one core",
                        ));
                    }
                    let cores = cores
                        .iter()
                        .enumerate()
                        .map(|(j, c)| self.core(*c, format!("{p}.cores[{j}]")))
                        .collect::<Result<Vec<_>, _>>()?;
                    if *quantum == 0 {
                        return Err(Problem::at(
                            format!("{p}.quantum"),
                            "quantum must be at least 1",
                        ));
                    }
                    Step::RoundRobin {
                        cores,
                        quantum: *quantum,
                        until: self.until(until, format!("{p}.until"))?,
                    }
                }
                Sched::Evict { core, va } => Step::Evict {
                    core: self.core(*core, format!("{p}.core"))?,
                    va: self.value(va, format!("{p}.va"))?,
                },
                Sched::Fill { core, va } => Step::Fill {
                    core: self.core(*core, format!("{p}.core"))?,
                    va: self.value(va, format!("{p}.va"))?,
                },
            });
        }
        Ok(out)
    }

    fn rule(&self, c: &Coherence) -> Result<Rule, Problem> {
        Ok(match c {
            Coherence::All => Rule::All,
            Coherence::AfterLabel(l) => Rule::AfterLabel(self.label(l, "coherence[0]".into())?),
            Coherence::Completed(l) => Rule::Completed(self.label(l, "coherence[0]".into())?),
            Coherence::CompletedLatent { label, cores } => Rule::CompletedLatent {
                label: self.label(label, "coherence.label".into())?,
                cores: match cores {
                    Some(cs) => Some(
                        cs.iter()
                            .enumerate()
                            .map(|(j, c)| self.core(*c, format!("coherence.cores[{j}]")))
                            .collect::<Result<_, _>>()?,
                    ),
                    None => None,
                },
            },
            Coherence::FreedFrames { label, frames } => Rule::FreedFrames {
                label: self.label(label, "coherence.label".into())?,
                frames: frames
                    .iter()
                    .enumerate()
                    .map(|(j, f)| self.value(f, format!("coherence.frames[{j}]")))
                    .collect::<Result<_, _>>()?,
            },
        })
    }

    fn filter(
        &self,
        core: &Option<usize>,
        va: &Option<Value>,
        kind: &Option<KindSpec>,
        software: bool,
        p: &str,
    ) -> Result<UseFilter, Problem> {
        Ok(UseFilter {
            core: match core {
                Some(c) => Some(self.core(*c, format!("{p}.core"))?),
                None => None,
            },
            va: match va {
                Some(v) => Some(self.value(v, format!("{p}.va"))?),
                None => None,
            },
            kind: *kind,
            software,
        })
    }

    fn check(&self, p: &str, e: &Expect) -> Result<Check, Problem> {
        let test = match e {
            Expect::Reg { core, reg, value } => {
                let core = self.core(*core, format!("{p}.core"))?;
                let reg = match reg.as_str() {
                    "rip" => Reg::Rip,
                    "rflags" => Reg::Rflags,
                    "cr2" => Reg::Cr2,
                    "cr3" => Reg::Cr3,
                    r => match crate::state::GPR_NAMES.iter().position(|n| *n == r) {
                        Some(i) => Reg::Gpr(i),
                        None => {
                            return Err(Problem::at(
                                format!("{p}.reg"),
                                format!(
                                "unknown register `{reg}` (expected rax..r15, rip, rflags, cr2 or cr3)"
                            ),
                            ))
                        }
                    },
                };
                Test::Reg {
                    core,
                    reg,
                    value: self.value(value, format!("{p}.value"))?,
                }
            }
            Expect::Mem {
                at,
                space,
                size,
                value,
            } => {
                let at = self.value(at, format!("{p}.at"))?;
                let value = self.value(value, format!("{p}.value"))?;
                let root = match space {
                    None => None,
                    Some(sp) => match self.built.spaces.get(sp) {
                        Some(info) => Some(info.root.raw()),
                        None => {
                            return Err(Problem::at(
                                format!("{p}.space"),
                                format!(
                                    "unknown address space `{sp}`{}",
                                    suggest(sp, self.built.spaces.keys())
                                ),
                            ))
                        }
                    },
                };
                let size = match size {
                    None => 8,
                    Some(z @ (1 | 2 | 4 | 8)) => *z as usize,
                    Some(_) => {
                        return Err(Problem::at(
                            format!("{p}.size"),
                            "size must be 1, 2, 4 or 8",
                        ))
                    }
                };
                Test::Mem {
                    at,
                    root,
                    size,
                    value,
                }
            }
            Expect::StaleUse { core, va, kind } => Test::StaleUse {
                filter: self.filter(core, va, kind, false, p)?,
                present: true,
            },
            Expect::NoStaleUse { core, va, kind } => Test::StaleUse {
                filter: self.filter(core, va, kind, false, p)?,
                present: false,
            },
            Expect::SoftStaleUse { core, va, kind } => Test::StaleUse {
                filter: self.filter(core, va, kind, true, p)?,
                present: true,
            },
            Expect::NoSoftStaleUse { core, va, kind } => Test::StaleUse {
                filter: self.filter(core, va, kind, true, p)?,
                present: false,
            },
            Expect::Exception { core, vector } => Test::Exception {
                core: self.core(*core, format!("{p}.core"))?,
                vector: *vector,
            },
            Expect::Halted(c) => Test::Halted(self.core(*c, format!("{p}[0]"))?),
            Expect::Hung { verdict } => Test::Hung(*verdict),
            Expect::Stopped { core, reason } => Test::Stopped {
                core: self.core(*core, format!("{p}.core"))?,
                reason: *reason,
            },
            Expect::NoStaleEntries { core, at } => {
                let core = match core {
                    Some(c) => Some(self.core(*c, format!("{p}.core"))?),
                    None => None,
                };
                let at = match at {
                    Some(l) => Some(self.label(l, format!("{p}.at"))?),
                    None => None,
                };
                Test::NoStaleEntries { core, at }
            }
            Expect::Events { kind, core, count } => {
                let core = match core {
                    Some(c) => Some(self.core(*c, format!("{p}.core"))?),
                    None => None,
                };
                Test::Events {
                    class: self.class(kind, format!("{p}.kind"))?,
                    core,
                    count: *count,
                }
            }
            Expect::Violations(n) => Test::Violations(*n),
        };
        Ok(Check {
            what: super::expect::describe(e),
            test,
        })
    }
}

/// " (did you mean `stale-use`?)" for a misspelt event kind.
fn suggest_event(k: &str) -> String {
    let names: Vec<String> = EventClass::NAMES.iter().map(|s| s.to_string()).collect();
    suggest(k, names.iter())
}
