//! `tlbemu run SCENARIO`: build, run along the schedule, report.

use crate::{EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK};
use clap::Args;
use emu::scenario::{expects_violations, prepare, run as run_scenario};
use std::path::PathBuf;

/// Arguments of `tlbemu run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file (.ron).
    scenario: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs the command and returns the exit code.
pub fn run(a: RunArgs) -> u8 {
    let (s, _src, built) = match prepare(&a.scenario) {
        Ok(x) => x,
        Err(d) => {
            eprintln!("{d}");
            return EXIT_BAD_INPUT;
        }
    };
    let report = run_scenario(&s, built, false);
    let ev = expects_violations(&s);
    if a.json {
        println!("{}", report.to_json(ev));
    } else {
        print!("{}", report.to_text(ev));
    }
    if report.passed(ev) {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}
