//! Scenario files: the schema, where each value sits in the file, building a
//! machine from a scenario, and running it along its schedule.

mod build;
mod checks;
mod decisions;
mod diag;
mod expect;
mod hang;
mod locate;
pub mod object;
mod plan;
mod report;
mod run;
pub mod schema;
pub mod soft_tlb;
mod watch;

pub use build::{build, machine_config, parse_hex, resolve, suggest, Built, SourceMap, SpaceInfo};
pub use decisions::{Decision, Decisions, MAX_PERIOD};
pub use diag::{Diagnostic, Problem, Source};
pub use expect::describe;
pub(crate) use expect::hang_kind;
pub use hang::{
    diagnose, CoreHang, DataAccess, Gate, HangDiagnosis, LastWrite, LoopRead, Verdict, Wake,
    PROBE_STEPS,
};
pub use locate::{Locations, Pos, Span};
pub use plan::{Check, Cond, Mode, Plan, Reg, Rule, Step, Stop, Test, UseFilter};
pub use report::core_site;
pub(crate) use report::{name_in, symbolize};
pub(crate) use run::stop_expected;
pub use run::{
    run, stop_kind, CoreSummary, Cursor, Ending, ExpectResult, LatentKey, Progress, RunReport,
    Runner, StaleRecord, StepAccess, StoppedCore, DEFAULT_MAX_STEPS, VISIBLE_CLASSES,
};
pub use schema::Scenario;
pub use watch::{bits, MissedBit, WatchAccess, WatchWord};

use crate::files::ReadError;
use std::path::Path;
use std::sync::Arc;

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

/// Loads, builds and compiles: everything short of running. The plan is shared
/// (`Arc`) so that any number of runs can start from it.
pub fn prepare(path: &Path) -> Result<(Scenario, Source, Arc<Plan>), Diagnostic> {
    prepare_for(path, Mode::Scripted)
}

/// [`prepare`] for a [`Mode`]: `explore` compiles [`Mode::Unscripted`].
pub fn prepare_for(path: &Path, mode: Mode) -> Result<(Scenario, Source, Arc<Plan>), Diagnostic> {
    let (s, src) = load(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let built = build(&s, dir).map_err(|p| p.locate(&src))?;
    checks::built(&s, &built).map_err(|p| p.locate(&src))?;
    let plan = Plan::compile_for(&s, built, mode).map_err(|p| p.locate(&src))?;
    Ok((s, src, Arc::new(plan)))
}

/// Checks that the schedule, coherence rule and expectations refer to things that
/// exist (cores, labels, registers, event kinds, address spaces): compiles a plan
/// from a copy of the build and drops it.
pub fn validate(s: &Scenario, b: &Built) -> Result<(), Problem> {
    checks::built(s, b)?;
    Plan::compile(s, b.clone()).map(|_| ())
}

/// Event kind names accepted by `Until::Event` and `Events` expectations (the
/// names of [`crate::events::EventClass`], in bit order).
pub const EVENT_KINDS: &[&str] = &crate::events::EventClass::NAMES;

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
