//! `tlbemu trace show|export`: read a trace without its scenario.

use super::{check_output, write_output};
use crate::{EXIT_BAD_INPUT, EXIT_OK};
use clap::{Args, Subcommand};
use emu::scenario::{Decision, EVENT_KINDS};
use emu::trace::text::explanation;
use emu::trace::{chrome, describe, Symbols, Trace};
use std::path::PathBuf;

/// Arguments of `tlbemu trace`.
#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(subcommand)]
    command: TraceCommand,
}

#[derive(Subcommand, Debug)]
enum TraceCommand {
    /// Print a trace, one line per event (stale uses with their explanation).
    Show(ShowArgs),
    /// Convert a trace for a timeline viewer.
    Export(ExportArgs),
}

/// Arguments of `tlbemu trace show`.
#[derive(Args, Debug)]
struct ShowArgs {
    /// The trace file.
    trace: PathBuf,
    /// Only events of this core.
    #[arg(long)]
    core: Option<u32>,
    /// Only events of this kind (retired, tlb-fill, stale-use, ipi-sent, ...).
    #[arg(long)]
    kind: Option<String>,
    /// Only events at this step or later.
    #[arg(long, value_name = "STEP")]
    from: Option<u64>,
    /// Only events at this step or earlier.
    #[arg(long, value_name = "STEP")]
    to: Option<u64>,
}

/// Arguments of `tlbemu trace export`.
#[derive(Args, Debug)]
struct ExportArgs {
    /// Chrome trace-event JSON (chrome://tracing, ui.perfetto.dev).
    #[arg(long, required = true)]
    chrome: bool,
    /// The trace file.
    trace: PathBuf,
    /// The output file.
    out: PathBuf,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs the command and returns the exit code.
pub fn run(a: TraceArgs) -> u8 {
    match a.command {
        TraceCommand::Show(s) => show(s),
        TraceCommand::Export(e) => export(e),
    }
}

fn read(path: &std::path::Path) -> Option<Trace> {
    match Trace::read(path) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn show(a: ShowArgs) -> u8 {
    if let Some(k) = &a.kind {
        if !EVENT_KINDS.contains(&k.as_str()) {
            eprintln!(
                "error: unknown event kind `{k}` (expected one of {})",
                EVENT_KINDS.join(", ")
            );
            return EXIT_BAD_INPUT;
        }
    }
    let Some(t) = read(&a.trace) else {
        return EXIT_BAD_INPUT;
    };
    if let Some(c) = a.core {
        if c >= t.cores {
            eprintln!(
                "error: there is no core {c} in this trace ({} core(s), so 0..={})",
                t.cores,
                t.cores - 1
            );
            return EXIT_BAD_INPUT;
        }
    }
    let sym = Symbols::from_trace(&t);
    let schedule: Vec<String> = t
        .decisions
        .iter()
        .map(|d| match d {
            Decision::Step { core, n } => format!("core {core} x{n}"),
            Decision::Evict { core, va } => format!("evict core {core} {va:#x}"),
            Decision::Fill { core, va } => format!("fill core {core} {va:#x}"),
        })
        .collect();
    println!(
        "trace of `{}` ({}): {} core(s), {} steps, {} events",
        t.name,
        t.scenario,
        t.cores,
        t.steps(),
        t.events.len()
    );
    println!("schedule: {}", schedule.join(", "));
    let mut shown = 0usize;
    for e in &t.events {
        if a.core.is_some_and(|c| e.core != c)
            || a.kind.as_ref().is_some_and(|k| e.kind.name() != k)
            || a.from.is_some_and(|f| e.step < f)
            || a.to.is_some_and(|x| e.step > x)
        {
            continue;
        }
        shown += 1;
        println!("{}", describe(e, &sym));
        if let Some(x) = explanation(e) {
            for l in x.lines() {
                println!("      {l}");
            }
        }
    }
    if shown != t.events.len() {
        println!("({shown} of {} events shown)", t.events.len());
    }
    EXIT_OK
}

fn export(a: ExportArgs) -> u8 {
    let _ = a.chrome;
    if let Err(e) = check_output(&a.out, a.force) {
        eprintln!("{e}");
        return EXIT_BAD_INPUT;
    }
    let Some(t) = read(&a.trace) else {
        return EXIT_BAD_INPUT;
    };
    let text = chrome::export(&t);
    if let Err(e) = write_output(&a.out, &text, a.force) {
        eprintln!("{e}");
        return EXIT_BAD_INPUT;
    }
    println!(
        "wrote {} ({} events from {} core(s))",
        a.out.display(),
        t.events.len(),
        t.cores
    );
    EXIT_OK
}
