//! `tlbemu replay TRACE`: re-execute a trace's decisions on its scenario and name
//! the first event where the run differs from the recording.

use super::locate_scenario;
use crate::{EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK};
use clap::Args;
use emu::scenario::prepare;
use emu::trace::{
    render_divergence, replay_stream, Inputs, ReplayError, ReplayOutcome, Symbols, TraceStream,
};
use std::path::PathBuf;

/// Arguments of `tlbemu replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The trace file (written by `run --trace` or `check --bless`).
    trace: PathBuf,
    /// Replay against this scenario file instead of the one the trace names.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
}

/// Runs the command and returns the exit code.
pub fn run(a: ReplayArgs) -> u8 {
    // Every line is checked before anything runs, so a malformed file is bad
    // input whatever the replay would have found; then the file is streamed
    // again for the comparison.
    let t = match TraceStream::validate(&a.trace) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let path = locate_scenario(&a.trace, &t.scenario, a.scenario.as_deref());
    let (s, src, plan) = match prepare(&path) {
        Ok(x) => x,
        Err(d) => {
            eprintln!("{}", d.rendered());
            eprintln!(
                "note: the trace {} names scenario {}; pass --scenario FILE to replay against another file",
                a.trace.display(),
                t.scenario
            );
            return EXIT_BAD_INPUT;
        }
    };
    match Inputs::of(&path, &src, &s) {
        Ok(i) => {
            for c in i.changes_since_head(&t) {
                eprintln!("warning: {c}; replaying anyway");
            }
        }
        Err(e) => eprintln!("warning: {e}"),
    }
    if s.name != t.name {
        eprintln!(
            "warning: the trace was recorded from scenario `{}`, this is `{}`",
            t.name, s.name
        );
    }
    if let Err(e) = t.check_cores(plan.machine().num_cores()) {
        let file = a.trace.display().to_string();
        eprintln!("{}", emu::trace::TraceError { file, ..e });
        return EXIT_BAD_INPUT;
    }
    let sym = Symbols::from_build(&path, &s, plan.built());
    let mut stream = match TraceStream::open(&a.trace) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
    };
    let r = match replay_stream(&mut stream, &plan) {
        Ok(r) => r,
        Err(ReplayError::Trace(e)) => {
            eprintln!("{e}");
            return EXIT_BAD_INPUT;
        }
        Err(e) => {
            eprintln!("{}: error: {e}", a.trace.display());
            return EXIT_BAD_INPUT;
        }
    };
    match r.outcome {
        ReplayOutcome::Identical => {
            println!("identical ({} events)", r.events);
            EXIT_OK
        }
        ReplayOutcome::Diverged(d) => {
            println!(
                "diverged: {} of {} recorded events identical",
                d.index, t.events
            );
            print!("{}", render_divergence(&d, &sym));
            EXIT_FAIL
        }
    }
}
