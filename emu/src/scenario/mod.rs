//! Scenario files: the schema, where each value sits in the file, building a
//! machine from a scenario, and running it along its schedule.

mod build;
mod checks;
mod diag;
mod locate;
mod report;
mod run;
pub mod schema;
pub mod soft_tlb;

pub use build::{build, machine_config, parse_hex, resolve, suggest, Built, SourceMap, SpaceInfo};
pub use diag::{Diagnostic, Problem, Source};
pub use locate::{Locations, Pos, Span};
pub use run::{
    run, stop_kind, CoreSummary, Cursor, Decision, Ending, ExpectResult, Progress, RunReport,
    Runner, StaleRecord, StoppedCore, DEFAULT_MAX_STEPS,
};
pub use schema::Scenario;

use crate::files::ReadError;
use std::path::Path;

/// Largest scenario file read (a guard against pointing at the wrong file).
pub const MAX_SCENARIO_BYTES: u64 = 16 << 20;

/// Reads and parses a scenario file. Syntax and type errors come back located.
pub fn load(path: &Path) -> Result<(Scenario, Source), Diagnostic> {
    let file = path.display().to_string();
    let fail = |message: String| Diagnostic {
        file: file.clone(),
        pos: Pos::default(),
        message,
    };
    let bytes = crate::files::read_regular(path, MAX_SCENARIO_BYTES).map_err(|e| match e {
        ReadError::Directory => {
            fail("is a directory, not a scenario file (expected the path of a .ron file)".into())
        }
        ReadError::TooLarge { len, limit } => fail(format!(
            "scenario file is {len} bytes; the limit is {limit}"
        )),
        e => fail(format!("cannot read scenario: {e}")),
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..good];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            return Err(Diagnostic {
                file,
                pos: Pos {
                    line: line as u32,
                    col: col as u32,
                },
                message: format!(
                    "scenario is not UTF-8 text: byte {:#04x} at offset {good} (expected UTF-8; re-save the file as UTF-8)",
                    e.as_bytes().get(good).copied().unwrap_or(0)
                ),
            });
        }
    };
    parse(path, text)
}

/// Parses scenario text (for tests and fuzzing, and by [`load`]).
pub fn parse(path: &Path, mut text: String) -> Result<(Scenario, Source), Diagnostic> {
    // Some editors start UTF-8 files with a byte-order mark; it is not part of
    // the document, and RON would reject it as an unexpected character.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let src = Source::new(path, text);
    // Optional fields take plain values (`len: 0x1000`, not `len: Some(0x1000)`).
    let opts =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    match opts.from_str::<Scenario>(&src.text) {
        Ok(s) => checks::parsed(&src).map(|()| (s, src)),
        Err(e) => Err(diag::ron_diagnostic(&e, &src)),
    }
}

/// Loads, builds and validates: everything short of running.
pub fn prepare(path: &Path) -> Result<(Scenario, Source, Built), Diagnostic> {
    let (s, src) = load(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let built = build(&s, dir).map_err(|p| p.locate(&src))?;
    validate(&s, &built).map_err(|p| p.locate(&src))?;
    Ok((s, src, built))
}

/// Checks that the schedule, coherence rule and expectations refer to things that
/// exist (cores, labels, registers, event kinds, address spaces).
pub fn validate(s: &Scenario, b: &Built) -> Result<(), Problem> {
    use schema::*;
    checks::built(s, b)?;
    let cores = b.machine.num_cores();
    let core_ok = |c: usize, path: String| -> Result<(), Problem> {
        if c >= cores {
            Err(Problem::at(
                path,
                format!(
                    "there is no core {c} (machine.cores is {cores}, so 0..={})",
                    cores - 1
                ),
            ))
        } else {
            Ok(())
        }
    };
    let label_ok = |l: &str, path: String| -> Result<(), Problem> {
        if b.symbols.contains_key(l) {
            Ok(())
        } else {
            Err(Problem::at(
                path,
                format!("unknown label `{l}`{}", suggest(l, b.symbols.keys())),
            ))
        }
    };
    let until_ok = |u: &Until, path: String| -> Result<(), Problem> {
        match u {
            Until::Label(l) => label_ok(l, format!("{path}[0]")),
            Until::Address(v) => resolve(v, &b.symbols)
                .map(|_| ())
                .map_err(|e| Problem::at(format!("{path}[0]"), e)),
            Until::Event(k) => {
                if EVENT_KINDS.contains(&k.as_str()) {
                    Ok(())
                } else {
                    Err(Problem::at(
                        format!("{path}[0]"),
                        format!(
                            "unknown event kind `{k}`{} (expected one of {})",
                            suggest_event(k),
                            EVENT_KINDS.join(", ")
                        ),
                    ))
                }
            }
            _ => Ok(()),
        }
    };
    // The software-TLB declarations resolve against the built machine.
    soft_tlb::SoftCheck::new(&s.soft_tlbs, b).map_err(|(path, msg)| Problem::at(path, msg))?;
    if s.schedule.is_empty() {
        return Err(Problem::at(
            "schedule",
            "the schedule is empty (expected at least one step)",
        ));
    }
    for (i, st) in s.schedule.iter().enumerate() {
        let p = format!("schedule[{i}]");
        match st {
            Sched::Run { core, until } => {
                core_ok(*core, format!("{p}.core"))?;
                until_ok(until, format!("{p}.until"))?;
            }
            Sched::Step { core, .. } => core_ok(*core, format!("{p}.core"))?,
            Sched::RoundRobin {
                cores: cs,
                quantum,
                until,
            } => {
                if cs.is_empty() {
                    return Err(Problem::at(
                        format!("{p}.cores"),
                        "RoundRobin needs at least one core",
                    ));
                }
                for (j, c) in cs.iter().enumerate() {
                    core_ok(*c, format!("{p}.cores[{j}]"))?;
                }
                if *quantum == 0 {
                    return Err(Problem::at(
                        format!("{p}.quantum"),
                        "quantum must be at least 1",
                    ));
                }
                until_ok(until, format!("{p}.until"))?;
            }
            Sched::Evict { core, va } | Sched::Fill { core, va } => {
                core_ok(*core, format!("{p}.core"))?;
                resolve(va, &b.symbols).map_err(|e| Problem::at(format!("{p}.va"), e))?;
            }
        }
    }
    match &s.coherence {
        Coherence::All => {}
        Coherence::AfterLabel(l) | Coherence::Completed(l) => label_ok(l, "coherence[0]".into())?,
        Coherence::CompletedLatent { label, cores: cs } => {
            label_ok(label, "coherence.label".into())?;
            for (j, c) in cs.iter().flatten().enumerate() {
                core_ok(*c, format!("coherence.cores[{j}]"))?;
            }
        }
        Coherence::FreedFrames { label, frames } => {
            label_ok(label, "coherence.label".into())?;
            for (j, f) in frames.iter().enumerate() {
                resolve(f, &b.symbols)
                    .map_err(|e| Problem::at(format!("coherence.frames[{j}]"), e))?;
            }
        }
    }
    for (i, e) in s.expect.iter().enumerate() {
        let p = format!("expect[{i}]");
        match e {
            Expect::Reg { core, reg, value } => {
                core_ok(*core, format!("{p}.core"))?;
                let known = crate::state::GPR_NAMES.contains(&reg.as_str())
                    || ["rip", "rflags", "cr2", "cr3"].contains(&reg.as_str());
                if !known {
                    return Err(Problem::at(
                        format!("{p}.reg"),
                        format!(
                            "unknown register `{reg}` (expected rax..r15, rip, rflags, cr2 or cr3)"
                        ),
                    ));
                }
                resolve(value, &b.symbols).map_err(|e| Problem::at(format!("{p}.value"), e))?;
            }
            Expect::Mem {
                at,
                space,
                size,
                value,
            } => {
                resolve(at, &b.symbols).map_err(|e| Problem::at(format!("{p}.at"), e))?;
                resolve(value, &b.symbols).map_err(|e| Problem::at(format!("{p}.value"), e))?;
                if let Some(sp) = space {
                    if !b.spaces.contains_key(sp) {
                        return Err(Problem::at(
                            format!("{p}.space"),
                            format!(
                                "unknown address space `{sp}`{}",
                                suggest(sp, b.spaces.keys())
                            ),
                        ));
                    }
                }
                if let Some(z) = size {
                    if ![1, 2, 4, 8].contains(z) {
                        return Err(Problem::at(
                            format!("{p}.size"),
                            "size must be 1, 2, 4 or 8",
                        ));
                    }
                }
            }
            Expect::StaleUse { core, va, .. }
            | Expect::NoStaleUse { core, va, .. }
            | Expect::SoftStaleUse { core, va, .. }
            | Expect::NoSoftStaleUse { core, va, .. } => {
                if let Some(c) = core {
                    core_ok(*c, format!("{p}.core"))?;
                }
                if let Some(v) = va {
                    resolve(v, &b.symbols).map_err(|e| Problem::at(format!("{p}.va"), e))?;
                }
            }
            Expect::Exception { core, .. } => core_ok(*core, format!("{p}.core"))?,
            Expect::Halted(c) => core_ok(*c, format!("{p}[0]"))?,
            Expect::Stopped { core, .. } => core_ok(*core, format!("{p}.core"))?,
            Expect::NoStaleEntries { core, at } => {
                if let Some(c) = core {
                    core_ok(*c, format!("{p}.core"))?;
                }
                if let Some(l) = at {
                    label_ok(l, format!("{p}.at"))?;
                }
            }
            Expect::Events { kind, core, .. } => {
                if let Some(c) = core {
                    core_ok(*c, format!("{p}.core"))?;
                }
                if !EVENT_KINDS.contains(&kind.as_str()) {
                    return Err(Problem::at(
                        format!("{p}.kind"),
                        format!(
                            "unknown event kind `{kind}`{} (expected one of {})",
                            suggest_event(kind),
                            EVENT_KINDS.join(", ")
                        ),
                    ));
                }
            }
            Expect::Violations(_) => {}
        }
    }
    Ok(())
}

/// " (did you mean `stale-use`?)" for a misspelt event kind.
fn suggest_event(k: &str) -> String {
    let names: Vec<String> = EVENT_KINDS.iter().map(|s| s.to_string()).collect();
    suggest(k, names.iter())
}

/// Event kind names accepted by `Until::Event` and `Events` expectations.
pub const EVENT_KINDS: &[&str] = &[
    "retired",
    "tlb-fill",
    "psc-fill",
    "eviction",
    "invalidation",
    "paging-write",
    "became-stale",
    "became-fresh",
    "stale-use",
    "dirty-rewalk",
    "ad-set",
    "cr-write",
    "ipi-sent",
    "eoi",
    "interrupt",
    "exception",
    "halt",
    "wake",
    "stopped",
];

/// Whether a scenario's expectations account for violations (then violations do
/// not fail the run by themselves).
pub fn expects_violations(s: &Scenario) -> bool {
    s.expect.iter().any(|e| {
        matches!(
            e,
            schema::Expect::Violations(_)
                | schema::Expect::StaleUse { .. }
                | schema::Expect::SoftStaleUse { .. }
        )
    })
}
