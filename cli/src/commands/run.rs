//! `tlbemu run SCENARIO`: build, run along the schedule, report; with `--trace`,
//! record the run as a trace.

use super::check_output;
use crate::interrupt::{Cancel, EXIT_INTERRUPTED};
use crate::{EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK};
use clap::Args;
use emu::files::WriteError;
use emu::scenario::{prepare, Runner};
use emu::trace::{Inputs, TraceWriter};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// Steps between looks at the progress display and at Ctrl-C: the runner takes
/// them in one batch ([`Runner::run_for`]), so the engine's own loop runs
/// between looks.
const PROGRESS_EVERY: u64 = 1 << 16;
/// Steps per batch when a trace is written: their events are held until the
/// batch ends, so this bounds the memory they take.
const TRACE_BATCH: u64 = 1 << 10;
/// A run shows progress only once it has taken this many steps, so that the
/// usual short run prints nothing extra.
const PROGRESS_AFTER: u64 = 1 << 22;

/// Runs the schedule to its end or until SIGINT/SIGTERM; returns whether it was
/// interrupted. With a trace writer, each step's events go to it as soon as the
/// step is taken, so nothing accumulates; a write error ends the run. On a
/// terminal, a long run shows its steps and rate on stderr (wall-clock time
/// feeds only that display, never the report or the trace).
fn drive(
    r: &mut Runner,
    cancel: &Cancel,
    mut trace: Option<&mut TraceWriter>,
) -> Result<bool, WriteError> {
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut next = PROGRESS_EVERY;
    let batch = if trace.is_some() {
        TRACE_BATCH
    } else {
        PROGRESS_EVERY
    };
    let interrupted = loop {
        if cancel.requested() {
            break true;
        }
        let done = r.run_for(batch);
        if let Some(w) = trace.as_deref_mut() {
            for e in r.take_events() {
                w.event(&e)?;
            }
        }
        if done {
            break false;
        }
        let steps = r.machine().steps;
        if tty && steps >= next {
            next = steps + PROGRESS_EVERY;
            if steps >= PROGRESS_AFTER {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {human_pos} steps, {per_sec}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b
                });
                b.set_position(steps);
            }
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(interrupted)
}

/// Arguments of `tlbemu run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file (.ron).
    scenario: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Record the run (decisions and every event) as a trace in FILE.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Overwrite the --trace file if it exists.
    #[arg(long, requires = "trace")]
    force: bool,
}

/// Runs the command and returns the exit code.
pub fn run(a: RunArgs) -> u8 {
    if let Some(t) = &a.trace {
        if let Err(e) = check_output(t, a.force) {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
    }
    let (s, src, plan) = match prepare(&a.scenario) {
        Ok(x) => x,
        Err(d) => {
            eprintln!("{}", d.rendered());
            return EXIT_BAD_INPUT;
        }
    };
    let mut writer = match &a.trace {
        Some(out) => {
            let inputs = match Inputs::of(&a.scenario, &src, &s) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_BAD_INPUT;
                }
            };
            let shown = a.scenario.display().to_string();
            let cores = plan.machine().num_cores() as u32;
            match TraceWriter::create(out, &shown, inputs, &s.name, cores, plan.labels()) {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_BAD_INPUT;
                }
            }
        }
        None => None,
    };
    let cancel = Cancel::install();
    let mut r = Runner::start(Arc::clone(&plan), writer.is_some());
    let interrupted = match drive(&mut r, &cancel, writer.as_mut()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "the run stopped after {} steps; no trace was written",
                r.machine().steps
            );
            return EXIT_BAD_INPUT;
        }
    };
    if let Some(w) = writer {
        if let Err(e) = w.finish(r.decisions(), a.force) {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
    }
    let report = r.report();
    let ev = plan.expects_violations();
    if a.json {
        println!("{}", report.to_json(ev));
    } else {
        print!("{}", report.to_text(ev));
    }
    if interrupted {
        eprintln!(
            "interrupted after {} steps: the report above is partial",
            report.steps
        );
        EXIT_INTERRUPTED
    } else if report.passed(ev) {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}
