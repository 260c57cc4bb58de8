//! `tlbemu run SCENARIO`: build, run along the schedule, report; with `--trace`,
//! record the run as a trace.

use super::{check_output, write_output};
use crate::{EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK};
use clap::Args;
use emu::scenario::{prepare, run as run_scenario};
use emu::trace::{record, Inputs};
use std::path::PathBuf;

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
            eprintln!("{d}");
            return EXIT_BAD_INPUT;
        }
    };
    let report = match &a.trace {
        None => run_scenario(&plan, false),
        Some(out) => {
            let inputs = match Inputs::of(&a.scenario, &src, &s) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_BAD_INPUT;
                }
            };
            let rec = record(&a.scenario.display().to_string(), inputs, &plan);
            if let Err(e) = write_output(out, &rec.trace.to_text(), a.force) {
                eprintln!("{e}");
                return EXIT_BAD_INPUT;
            }
            rec.report
        }
    };
    let ev = plan.expects_violations();
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
