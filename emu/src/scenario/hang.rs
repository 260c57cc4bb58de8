//! Hang diagnosis: when a schedule cannot go on (a stop condition never came
//! within the step budget, or can no longer come), what each core that has not
//! stopped is doing, and why the schedule is stuck.
//!
//! Nothing is collected during an ordinary run. [`diagnose`] works on copies:
//!
//! - each core that is not halted is stepped alone on a copy-on-write clone of
//!   the runner until its whole register state repeats with the same memory
//!   accesses twice in a row (a spin loop: the RIP range, and the words it keeps
//!   reading with their values), until it halts, or for at most
//!   [`PROBE_STEPS`] steps (it is still making progress);
//! - the run is replayed once from the plan along the runner's decision log,
//!   recording only writes to the words the loops read, which gives the core
//!   and step of each word's last write;
//! - a halted core's wake-up sources are read from its RFLAGS.IF, its local
//!   APIC's IRR and ISR, and the present gates of its IDT (SDM Vol. 3A 6.8.1
//!   and 10.8.3: a maskable interrupt wakes HLT only with IF=1 and a priority
//!   above the in-service one).
//!
//! The verdict tells a protocol hang (every core that could run spins on words
//! no running core will change: livelock or deadlock) from a schedule mistake
//! (the schedule waits for a stop condition its core never reaches, or runs a
//! spinning core alone while the core that would release it gets no turn).
//! Cost: one probe per core (at most [`PROBE_STEPS`] steps each) and one replay
//! of the run, paid only when a diagnosis is asked for.

use super::plan::{Step, Stop};
use super::run::{Ending, Runner};
use crate::machine::StepResult;
use crate::state::control::IF;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// Most steps a core is probed for before it is declared still making progress.
pub const PROBE_STEPS: usize = 4096;

/// One data access an instruction made (fetches excluded), as a probe records
/// it: the first 8 bytes of the piece as a little-endian value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataAccess {
    /// Core.
    pub core: u32,
    /// Global step.
    pub step: u64,
    /// RIP of the instruction.
    pub rip: u64,
    /// Linear address, when the translation that preceded the access is known.
    pub va: Option<u64>,
    /// Physical address.
    pub pa: u64,
    /// Bytes accessed.
    pub len: u8,
    /// Value (little-endian, first 8 bytes).
    pub value: u64,
    /// A write (else a read).
    pub write: bool,
}

/// What the runner's oracle records while a probe is on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probe {
    /// Only writes overlapping these `(pa, len)` ranges, last one per range; or,
    /// when `None`, every access in order.
    words: Option<Vec<(u64, u64)>>,
    /// Every access (without `words`).
    pub(crate) log: Vec<DataAccess>,
    /// The last write to each of `words`.
    pub(crate) last: Vec<Option<DataAccess>>,
    /// The last translation seen: (linear page, physical page).
    xlate: Option<(u64, u64)>,
}

impl Probe {
    pub(crate) fn new(words: Option<Vec<(u64, u64)>>) -> Self {
        Probe {
            last: vec![None; words.as_ref().map_or(0, Vec::len)],
            words,
            log: Vec::new(),
            xlate: None,
        }
    }

    /// A translation `la -> pa` (the access that follows is through it).
    pub(crate) fn translated(&mut self, la: u64, pa: u64) {
        self.xlate = Some((la & !0xfff, pa & !0xfff));
    }

    pub(crate) fn record(
        &mut self,
        core: u32,
        step: u64,
        rip: u64,
        pa: u64,
        bytes: &[u8],
        write: bool,
    ) {
        let n = bytes.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[..n]);
        let va = self
            .xlate
            .filter(|(_, p)| *p == pa & !0xfff)
            .map(|(l, _)| l | (pa & 0xfff));
        let a = DataAccess {
            core,
            step,
            rip,
            va,
            pa,
            len: bytes.len().min(255) as u8,
            value: u64::from_le_bytes(b),
            write,
        };
        match &self.words {
            None => self.log.push(a),
            Some(w) => {
                if !write {
                    return;
                }
                let end = pa + bytes.len() as u64;
                for (i, (wp, wl)) in w.iter().enumerate() {
                    if pa < wp + wl && *wp < end {
                        self.last[i] = Some(a.clone());
                    }
                }
            }
        }
    }
}

/// Why the schedule cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Verdict {
    /// Livelock or deadlock: these cores spin on words that no core able to run
    /// will change (a protocol hang).
    Deadlock {
        /// The spinning cores.
        cores: Vec<usize>,
    },
    /// The schedule waits for a stop condition on a core that never reaches
    /// it: the core is halted with nothing to wake it, would halt, or loops
    /// elsewhere (a schedule mistake).
    ScheduleWaits {
        /// The core the schedule step runs.
        core: usize,
        /// The stop condition as written.
        until: String,
    },
    /// The schedule step runs only `core`, which spins, while `runnable` cores
    /// that could release it get no turn (a schedule mistake).
    Unscheduled {
        /// The spinning core.
        core: usize,
        /// The stop condition as written.
        until: String,
        /// Cores outside the step that could still run.
        runnable: Vec<usize>,
    },
    /// The step budget ran out while these cores were still making progress.
    Budget {
        /// The cores.
        cores: Vec<usize>,
    },
    /// A core stopped for good and the schedule needed it.
    Stopped {
        /// The core.
        core: usize,
    },
}

/// The last write to a word before the hang.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastWrite {
    /// Core.
    pub core: u32,
    /// Global step.
    pub step: u64,
    /// RIP of the writing instruction.
    pub rip: u64,
    /// The RIP as `label+off`.
    pub at: Option<String>,
    /// Value written (little-endian, first 8 bytes).
    pub value: u64,
}

/// A word a spin loop reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoopRead {
    /// A data name covering it (`ack+0x8`).
    pub name: Option<String>,
    /// Linear address.
    pub va: Option<u64>,
    /// Physical address.
    pub pa: u64,
    /// Bytes read.
    pub len: u8,
    /// Value the loop reads.
    pub value: u64,
    /// Its last write during the run (`None`: not written since the start).
    pub last_write: Option<LastWrite>,
}

/// What could wake a halted core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Wake {
    /// RFLAGS.IF.
    pub if_flag: bool,
    /// Vectors requested in the local APIC (IRR).
    pub requested: Vec<u8>,
    /// Vectors in service (ISR): an EOI is owed.
    pub in_service: Vec<u8>,
    /// External-interrupt vectors (32..=255) with a present IDT gate.
    pub gates: Vec<Gate>,
    /// The same, in words.
    pub text: String,
}

/// A present IDT gate a halted core could be woken through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gate {
    /// Vector.
    pub vector: u8,
    /// Handler address.
    pub handler: u64,
    /// The handler as `label+off`.
    pub at: Option<String>,
}

/// One core at the hang.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum CoreHang {
    /// The core spins: the same register state and the same accesses come back.
    Spinning {
        /// Core.
        core: usize,
        /// Lowest and highest RIP in the loop.
        from: u64,
        /// Highest RIP.
        to: u64,
        /// The range as `label+off..label+off`.
        at: String,
        /// Instructions per turn of the loop.
        length: usize,
        /// Words the loop reads.
        reads: Vec<LoopRead>,
        /// Words the loop writes (a retried atomic writes back what it read).
        writes: Vec<LoopRead>,
    },
    /// Halted, with nothing deliverable.
    Halted {
        /// Core.
        core: usize,
        /// RIP of the HLT it executed.
        rip: u64,
        /// As `label+off`.
        at: Option<String>,
        /// What could wake it.
        wake: Wake,
    },
    /// Stepped alone, the core halts after `after` steps.
    Halts {
        /// Core.
        core: usize,
        /// Steps until it halts.
        after: usize,
        /// RIP of the HLT it halts on.
        rip: u64,
        /// As `label+off`.
        at: Option<String>,
    },
    /// No repeating state within the probe: the core is still making progress.
    Progressing {
        /// Core.
        core: usize,
        /// RIP now.
        rip: u64,
        /// As `label+off`.
        at: Option<String>,
    },
    /// The core stopped for good.
    Stopped {
        /// Core.
        core: usize,
        /// Why.
        reason: String,
    },
}

impl CoreHang {
    /// The core it is about.
    pub fn core(&self) -> usize {
        match self {
            CoreHang::Spinning { core, .. }
            | CoreHang::Halted { core, .. }
            | CoreHang::Halts { core, .. }
            | CoreHang::Progressing { core, .. }
            | CoreHang::Stopped { core, .. } => *core,
        }
    }

    /// Whether stepping it could change anything (not halted idle, not stopped).
    fn runnable(&self) -> bool {
        matches!(
            self,
            CoreHang::Spinning { .. } | CoreHang::Progressing { .. } | CoreHang::Halts { .. }
        )
    }
}

/// The diagnosis of a schedule that did not complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HangDiagnosis {
    /// Why the schedule is stuck.
    pub verdict: Verdict,
    /// The verdict in one line (`livelock/deadlock: core 0 spins on ...`).
    pub summary: String,
    /// Every core, in order.
    pub cores: Vec<CoreHang>,
}

/// Diagnoses the runner's current state: `None` when its schedule completed.
/// Works on copies (see the module documentation) and leaves `r` untouched.
pub fn diagnose(r: &Runner) -> Option<HangDiagnosis> {
    if r.ending() == Some(&Ending::Completed) {
        return None;
    }
    let plan = r.plan();
    let names = Names::new(r);
    let m = r.machine();
    // Probe every core; collect the words the loops read.
    let mut probed: Vec<Probed> = (0..m.num_cores()).map(|c| probe(r, c)).collect();
    let mut words: Vec<(u64, u64)> = Vec::new();
    for p in &probed {
        if let Probed::Loop { reads, writes, .. } = p {
            for a in reads.iter().chain(writes) {
                let w = (a.pa, a.len as u64);
                if !words.contains(&w) {
                    words.push(w);
                }
            }
        }
    }
    let last = if words.is_empty() {
        Vec::new()
    } else {
        last_writes(r, &words)
    };
    let find_last = |a: &DataAccess| -> Option<LastWrite> {
        let i = words.iter().position(|w| *w == (a.pa, a.len as u64))?;
        let w = last.get(i)?.as_ref()?;
        Some(LastWrite {
            core: w.core,
            step: w.step,
            rip: w.rip,
            at: names.code(w.rip),
            value: w.value,
        })
    };
    let cores: Vec<CoreHang> = probed
        .drain(..)
        .enumerate()
        .map(|(core, p)| match p {
            Probed::Stopped(reason) => CoreHang::Stopped { core, reason },
            Probed::Idle => {
                // The HLT itself (the RIP is past it), which names the spot.
                let st = &m.cores[core].cpu;
                let rip = if st.state.halted {
                    st.last.rip
                } else {
                    st.state.rip
                };
                CoreHang::Halted {
                    core,
                    rip,
                    at: names.code(rip),
                    wake: wake(r, core, &names),
                }
            }
            Probed::Halts { after, rip } => CoreHang::Halts {
                core,
                after,
                rip,
                at: names.code(rip),
            },
            Probed::Progress { rip } => CoreHang::Progressing {
                core,
                rip,
                at: names.code(rip),
            },
            Probed::Loop {
                from,
                to,
                length,
                reads,
                writes,
            } => {
                let word = |a: &DataAccess| LoopRead {
                    name: a.va.and_then(|v| names.data(v)),
                    va: a.va,
                    pa: a.pa,
                    len: a.len,
                    value: a.value,
                    last_write: find_last(a),
                };
                CoreHang::Spinning {
                    core,
                    from,
                    to,
                    at: names.range(from, to),
                    length,
                    reads: reads.iter().map(word).collect(),
                    writes: writes.iter().map(word).collect(),
                }
            }
        })
        .collect();
    let (scheduled, until) = match plan.schedule().get(r.cursor().index) {
        Some(Step::Run { core, until }) => (vec![*core], until.text.clone()),
        Some(Step::RoundRobin { cores, until, .. }) => (cores.clone(), until.text.clone()),
        Some(Step::Step { core, n }) => (vec![*core], format!("{n} steps")),
        _ => ((0..cores.len()).collect(), String::new()),
    };
    let stop_at = match plan.schedule().get(r.cursor().index) {
        Some(Step::Run { until, .. }) | Some(Step::RoundRobin { until, .. }) => Some(until.stop),
        _ => None,
    };
    let verdict = verdict(&cores, &scheduled, until);
    let summary = summary(&verdict, &cores, stop_at, &names);
    Some(HangDiagnosis {
        verdict,
        summary,
        cores,
    })
}

/// The verdict from the cores' states and the cores the stuck step runs.
fn verdict(cores: &[CoreHang], scheduled: &[usize], until: String) -> Verdict {
    let in_step = |c: &&CoreHang| scheduled.contains(&c.core());
    if let Some(c) = cores
        .iter()
        .filter(in_step)
        .find(|c| matches!(c, CoreHang::Stopped { .. }))
    {
        return Verdict::Stopped { core: c.core() };
    }
    let progressing: Vec<usize> = cores
        .iter()
        .filter(|c| matches!(c, CoreHang::Progressing { .. }))
        .map(CoreHang::core)
        .collect();
    if cores
        .iter()
        .filter(in_step)
        .any(|c| matches!(c, CoreHang::Progressing { .. }))
    {
        return Verdict::Budget { cores: progressing };
    }
    let spinning: Vec<usize> = cores
        .iter()
        .filter(|c| matches!(c, CoreHang::Spinning { .. }))
        .map(CoreHang::core)
        .collect();
    let runnable_outside: Vec<usize> = cores
        .iter()
        .filter(|c| !scheduled.contains(&c.core()) && c.runnable())
        .map(CoreHang::core)
        .collect();
    match cores
        .iter()
        .filter(in_step)
        .find(|c| matches!(c, CoreHang::Spinning { .. }))
    {
        Some(c) if !runnable_outside.is_empty() => Verdict::Unscheduled {
            core: c.core(),
            until,
            runnable: runnable_outside,
        },
        Some(_) => Verdict::Deadlock { cores: spinning },
        None => Verdict::ScheduleWaits {
            core: scheduled.first().copied().unwrap_or(0),
            until,
        },
    }
}

/// `core 0 and 1`, `cores 0, 1 and 2`.
fn core_list(cores: &[usize]) -> String {
    let n: Vec<String> = cores.iter().map(|c| c.to_string()).collect();
    match n.len() {
        0 => "no core".into(),
        1 => format!("core {}", n[0]),
        _ => format!(
            "cores {} and {}",
            n[..n.len() - 1].join(", "),
            n[n.len() - 1]
        ),
    }
}

/// One word as the summary shows it: `ack = 0x0 (never written)`.
fn word_text(w: &LoopRead) -> String {
    let name = match (&w.name, w.va) {
        (Some(n), _) => n.clone(),
        (None, Some(v)) => format!("{v:#x}"),
        (None, None) => format!("pa {:#x}", w.pa),
    };
    let by = match &w.last_write {
        Some(l) => format!(
            "last written by core {} at step {}{}",
            l.core,
            l.step,
            l.at.as_ref().map_or(String::new(), |a| format!(" <{a}>"))
        ),
        None => "not written since the start".into(),
    };
    format!("{name} = {:#x} ({by})", w.value)
}

fn summary(v: &Verdict, cores: &[CoreHang], stop: Option<Stop>, names: &Names) -> String {
    // `spins on ack = 0x0 (...)`, or `spins in done, reading no memory`.
    let reads_of = |c: usize| -> String {
        match cores.get(c) {
            Some(CoreHang::Spinning { reads, at, .. }) if reads.is_empty() => {
                format!("spins in {at}, reading no memory")
            }
            Some(CoreHang::Spinning { reads, .. }) => format!(
                "spins on {}",
                reads.iter().map(word_text).collect::<Vec<_>>().join(", ")
            ),
            _ => String::new(),
        }
    };
    let state_of = |c: &CoreHang| -> String {
        match c {
            CoreHang::Halted { core, at, .. } => format!(
                "core {core} is halted{} with nothing to wake it",
                at.as_ref()
                    .map_or(String::new(), |a| format!(" by the HLT at {a}"))
            ),
            CoreHang::Halts { core, at, .. } => format!(
                "core {core} would halt{}",
                at.as_ref()
                    .map_or(String::new(), |a| format!(" at the HLT at {a}"))
            ),
            CoreHang::Stopped { core, reason } => format!("core {core} stopped ({reason})"),
            CoreHang::Progressing { core, .. } => format!("core {core} is still running"),
            CoreHang::Spinning { core, .. } => format!("core {core} {}", reads_of(*core)),
        }
    };
    match v {
        Verdict::Deadlock { cores: spin } => {
            let mut s = match spin.as_slice() {
                [c] => format!("livelock/deadlock: core {c} {}", reads_of(*c)),
                _ => {
                    let each: Vec<String> = spin
                        .iter()
                        .map(|c| format!("core {c} {}", reads_of(*c)))
                        .collect();
                    format!(
                        "livelock/deadlock: {} spin: {}",
                        core_list(spin),
                        each.join("; ")
                    )
                }
            };
            for c in cores.iter().filter(|c| !spin.contains(&c.core())) {
                let _ = write!(s, "; {}", state_of(c));
            }
            s
        }
        Verdict::ScheduleWaits { core, until } => {
            let what = match stop {
                Some(Stop::At(a)) => match names.code(a) {
                    Some(l) => format!("core {core} to reach `{l}`"),
                    None => format!("core {core} to reach {a:#x}"),
                },
                _ => format!("{until} on core {core}"),
            };
            format!(
                "the schedule waits for {what}, which it never reaches: {}",
                cores.get(*core).map_or(String::new(), state_of)
            )
        }
        Verdict::Unscheduled {
            core,
            until,
            runnable,
        } => format!(
            "the schedule runs core {core} alone until {until}, but it {}, and {} that could change that get{} no turn in this step",
            reads_of(*core),
            core_list(runnable),
            if runnable.len() == 1 { "s" } else { "" }
        ),
        Verdict::Budget { cores: c } => format!(
            "the step budget ran out while {} {} still making progress (no repeating state in {PROBE_STEPS} steps): raise max_steps, or look for a long loop",
            core_list(c),
            if c.len() == 1 { "was" } else { "were" }
        ),
        Verdict::Stopped { core } => format!(
            "{}, and the schedule step needs it",
            cores.get(*core).map_or(String::new(), state_of)
        ),
    }
}

/// What a probe of one core found.
enum Probed {
    Stopped(String),
    Idle,
    Halts {
        after: usize,
        rip: u64,
    },
    Progress {
        rip: u64,
    },
    Loop {
        from: u64,
        to: u64,
        length: usize,
        reads: Vec<DataAccess>,
        writes: Vec<DataAccess>,
    },
}

/// The accesses of a stretch of steps without their step numbers, for comparing
/// two turns of a loop.
fn shape(a: &[DataAccess]) -> Vec<(u64, u8, u64, bool, u64)> {
    a.iter()
        .map(|x| (x.pa, x.len, x.value, x.write, x.rip))
        .collect()
}

/// Steps `core` alone on a clone of the runner (see the module documentation).
fn probe(r: &Runner, core: usize) -> Probed {
    let m = r.machine();
    let c = &m.cores[core];
    if let Some(reason) = &c.stopped {
        return Probed::Stopped(reason.to_string());
    }
    if m.is_idle(core) {
        return Probed::Idle;
    }
    let mut p = r.clone();
    p.start_probe(None);
    let mut seen: BTreeMap<(u64, [u64; 16], u64), usize> = BTreeMap::new();
    let mut rips: Vec<u64> = Vec::new();
    // Index in the probe log where each probed step's accesses start.
    let mut at: Vec<usize> = Vec::new();
    for i in 0..PROBE_STEPS {
        let st = &p.machine().cores[core].cpu.state;
        let key = (st.rip, st.gpr, st.rflags);
        rips.push(st.rip);
        at.push(p.probe_log().len());
        if let Some(&j) = seen.get(&key) {
            // Steps j..i are one turn; it is a spin when the turn before it was
            // the same instructions with the same accesses and values.
            let len = i - j;
            if j >= len && rips[j - len..j] == rips[j..i] {
                let log = p.probe_log();
                let (prev, cur) = (&log[at[j - len]..at[j]], &log[at[j]..at[i]]);
                if shape(prev) == shape(cur) {
                    let turn = &rips[j..i];
                    let mut reads: Vec<DataAccess> = Vec::new();
                    let mut writes: Vec<DataAccess> = Vec::new();
                    for a in cur {
                        let list = if a.write { &mut writes } else { &mut reads };
                        if !list.iter().any(|x| x.pa == a.pa && x.len == a.len) {
                            list.push(a.clone());
                        }
                    }
                    return Probed::Loop {
                        from: turn.iter().copied().min().unwrap_or(0),
                        to: turn.iter().copied().max().unwrap_or(0),
                        length: len,
                        reads,
                        writes,
                    };
                }
            }
        }
        seen.insert(key, i);
        match p.step_core(core) {
            StepResult::Halted | StepResult::NoProgress => {
                return Probed::Halts {
                    after: i + 1,
                    rip: p.machine().cores[core].cpu.last.rip,
                }
            }
            StepResult::Stopped(_) => {
                return Probed::Progress {
                    rip: p.machine().cores[core].cpu.state.rip,
                }
            }
            _ => {}
        }
    }
    Probed::Progress {
        rip: p.machine().cores[core].cpu.state.rip,
    }
}

/// The last write to each of `words` during the run, from a replay of the
/// runner's decisions on a fresh runner that records only those writes.
fn last_writes(r: &Runner, words: &[(u64, u64)]) -> Vec<Option<DataAccess>> {
    let mut q = Runner::start(Arc::clone(r.plan()), false);
    q.start_probe(Some(words.to_vec()));
    for d in r.decisions().iter() {
        q.apply(&d);
    }
    q.probe_last().to_vec()
}

/// What could wake a halted core (see the module documentation).
fn wake(r: &Runner, core: usize, names: &Names) -> Wake {
    let m = r.machine();
    let st = &m.cores[core].cpu.state;
    let apic = &m.apics[core];
    let if_flag = st.rflags & IF != 0;
    let requested = apic.irr_vectors();
    let in_service = apic.isr_vectors();
    let mut gates = Vec::new();
    let root = Some(st.cr3 & 0x000f_ffff_ffff_f000);
    for v in 32u16..=255 {
        if v as u64 * 16 + 15 > st.idtr.limit as u64 {
            break;
        }
        let la = st.idtr.base.wrapping_add(v as u64 * 16);
        let (Ok(lo), Ok(hi)) = (
            super::checks::read_expected(m, root, la, 8),
            super::checks::read_expected(m, root, la.wrapping_add(8), 8),
        ) else {
            continue;
        };
        if (lo >> 47) & 1 == 1 {
            let off = (lo & 0xffff) | ((lo >> 32) & 0xffff_0000) | ((hi & 0xffff_ffff) << 32);
            gates.push(Gate {
                vector: v as u8,
                handler: off,
                at: names.code(off),
            });
        }
    }
    let hex = |v: &[u8]| {
        v.iter()
            .map(|x| format!("{x:#x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = if !if_flag {
        "IF=0: no maskable interrupt can wake it (NMI, SMI and INIT are not modelled)".to_string()
    } else if !requested.is_empty() {
        format!(
            "IF=1; vector(s) {} requested but blocked by vector(s) {} in service (an EOI is owed)",
            hex(&requested),
            hex(&in_service)
        )
    } else if gates.is_empty() {
        "IF=1, nothing requested, and no IDT gate for an external interrupt: nothing can wake it"
            .to_string()
    } else {
        let g: Vec<String> = gates
            .iter()
            .map(|g| match &g.at {
                Some(n) => format!("{:#x} <{n}>", g.vector),
                None => format!("{:#x}", g.vector),
            })
            .collect();
        format!(
            "IF=1, nothing requested{}; an IPI to vector {} would wake it",
            if in_service.is_empty() {
                String::new()
            } else {
                format!(", {} in service", hex(&in_service))
            },
            g.join(" or ")
        )
    };
    Wake {
        if_flag,
        requested,
        in_service,
        gates,
        text,
    }
}

/// Names for addresses: code labels, and data names for linear addresses.
struct Names {
    labels: BTreeMap<u64, String>,
    data: BTreeMap<u64, String>,
}

impl Names {
    fn new(r: &Runner) -> Self {
        let syms = r.symbols();
        let data = r
            .scenario()
            .data
            .iter()
            .filter(|d| !d.phys)
            .filter_map(|d| {
                let n = d.name.as_ref()?;
                Some((*syms.get(n)?, n.clone()))
            })
            .collect();
        Names {
            labels: r.labels().clone(),
            data,
        }
    }

    fn code(&self, a: u64) -> Option<String> {
        name_in(&self.labels, a, 0x10000)
    }

    fn data(&self, a: u64) -> Option<String> {
        name_in(&self.data, a, 0x1000)
    }

    fn range(&self, from: u64, to: u64) -> String {
        let n = |a: u64| self.code(a).unwrap_or_else(|| format!("{a:#x}"));
        if from == to {
            n(from)
        } else {
            format!("{}..{}", n(from), n(to))
        }
    }
}

/// `name+0x12` for an address at most `within` bytes past the nearest name at
/// or before it.
pub(super) fn name_in(names: &BTreeMap<u64, String>, addr: u64, within: u64) -> Option<String> {
    let (base, name) = names.range(..=addr).next_back()?;
    let off = addr - base;
    if off >= within {
        return None;
    }
    Some(if off == 0 {
        name.clone()
    } else {
        format!("{name}+{off:#x}")
    })
}

impl HangDiagnosis {
    /// The diagnosis as `tlbemu run` prints it, one line per core after the
    /// summary.
    pub fn to_text(&self) -> String {
        let mut s = format!("hang: {}\n", self.summary);
        for c in &self.cores {
            match c {
                CoreHang::Spinning {
                    core,
                    at,
                    length,
                    reads,
                    writes,
                    ..
                } => {
                    let _ = writeln!(
                        s,
                        "  core {core}: spinning in {at} ({length} instruction{} a turn)",
                        if *length == 1 { "" } else { "s" }
                    );
                    for (verb, list) in [("reads", reads), ("writes", writes)] {
                        for w in list {
                            let _ = writeln!(
                                s,
                                "    {verb} {} [{} bytes at pa {:#x}]",
                                word_text(w),
                                w.len,
                                w.pa
                            );
                        }
                    }
                }
                CoreHang::Halted { core, at, wake, .. } => {
                    let _ = writeln!(
                        s,
                        "  core {core}: halted{}; {}",
                        at.as_ref()
                            .map_or(String::new(), |a| format!(" by the HLT at {a}")),
                        wake.text
                    );
                }
                CoreHang::Halts {
                    core, after, at, ..
                } => {
                    let _ = writeln!(
                        s,
                        "  core {core}: stepped alone, halts after {after} step(s){}",
                        at.as_ref()
                            .map_or(String::new(), |a| format!(" at the HLT at {a}"))
                    );
                }
                CoreHang::Progressing { core, at, rip } => {
                    let _ = writeln!(
                        s,
                        "  core {core}: still making progress at {}",
                        at.clone().unwrap_or_else(|| format!("{rip:#x}"))
                    );
                }
                CoreHang::Stopped { core, reason } => {
                    let _ = writeln!(s, "  core {core}: stopped: {reason}");
                }
            }
        }
        s
    }
}
