//! `tlbemu trace show|export`: read a trace without its scenario.

use super::check_output;
use crate::{EXIT_BAD_INPUT, EXIT_OK};
use clap::{Args, Subcommand};
use emu::files::{NewFile, Spool};
use emu::scenario::{Decision, EVENT_KINDS};
use emu::trace::chrome::{prologue, Exporter, EPILOGUE};
use emu::trace::text::explanation;
use emu::trace::{describe, Symbols, TraceHead, TraceStream};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Reads the whole trace once to check every line, so a malformed file is
/// refused before anything is printed (the second, streaming pass prints).
fn validate(path: &Path) -> Option<TraceHead> {
    match TraceStream::validate(path) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn open(path: &Path) -> Option<TraceStream<impl std::io::BufRead>> {
    match TraceStream::open(path) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn decision_text(d: &Decision) -> String {
    match d {
        Decision::Step { core, n } => format!("core {core} x{n}"),
        Decision::Evict { core, va } => format!("evict core {core} {va:#x}"),
        Decision::Fill { core, va } => format!("fill core {core} {va:#x}"),
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
    let Some(t) = validate(&a.trace) else {
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
    let Some(mut stream) = open(&a.trace) else {
        return EXIT_BAD_INPUT;
    };
    let sym = Symbols::from_labels(&t.labels);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Output errors are ignored: SIGPIPE ends the process on a closed pipe.
    let _ = writeln!(
        out,
        "trace of `{}` ({}): {} core(s), {} steps, {} events",
        t.name,
        t.scenario,
        t.cores,
        t.steps(),
        t.events
    );
    let _ = write!(out, "schedule: ");
    for (i, d) in t.decisions.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{}", decision_text(&d));
    }
    let _ = writeln!(out);
    let mut shown = 0usize;
    let mut total = 0usize;
    loop {
        let e = match stream.next_event() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                let _ = out.flush();
                eprintln!("{e}");
                return EXIT_BAD_INPUT;
            }
        };
        total += 1;
        if a.core.is_some_and(|c| e.core != c)
            || a.kind.as_ref().is_some_and(|k| e.kind.name() != k)
            || a.from.is_some_and(|f| e.step < f)
            || a.to.is_some_and(|x| e.step > x)
        {
            continue;
        }
        shown += 1;
        let _ = writeln!(out, "{}", describe(&e, &sym));
        if let Some(x) = explanation(&e) {
            for l in x.lines() {
                let _ = writeln!(out, "      {l}");
            }
        }
    }
    if shown != total {
        let _ = writeln!(out, "({shown} of {total} events shown)");
    }
    let _ = out.flush();
    EXIT_OK
}

/// Streams the export: each part goes to a spool file beside OUT, and the
/// result to a temporary file that replaces OUT only when complete.
fn export_stream(a: &ExportArgs) -> Result<(usize, u32), String> {
    let mut stream = TraceStream::open(&a.trace).map_err(|e| e.to_string())?;
    let head = stream.head().clone();
    let io = |p: &Path, e: std::io::Error| format!("{}: error: {e}", p.display());
    let mut x = Exporter::new(&head.labels, head.cores, |what| {
        Spool::beside(&a.out, what).map_err(|e| std::io::Error::other(e.to_string()))
    })
    .map_err(|e| io(&a.out, e))?;
    let mut n = 0usize;
    while let Some(e) = stream.next_event().map_err(|e| e.to_string())? {
        x.event(&e).map_err(|e| io(&a.out, e))?;
        n += 1;
    }
    let (slices, mut instants, flows) = x.finish().map_err(|e| io(&a.out, e))?;
    let mut out = NewFile::create(&a.out).map_err(|e| e.to_string())?;
    let w = |out: &mut NewFile, b: &[u8]| out.write_all(b).map_err(|e| e.to_string());
    w(
        &mut out,
        prologue(&head.name, &head.scenario, head.cores).as_bytes(),
    )?;
    for mut p in slices {
        out.append(&mut p).map_err(|e| e.to_string())?;
    }
    out.append(&mut instants).map_err(|e| e.to_string())?;
    w(&mut out, flows.as_bytes())?;
    w(&mut out, EPILOGUE.as_bytes())?;
    out.commit(a.force).map_err(|e| e.to_string())?;
    Ok((n, head.cores))
}

fn export(a: ExportArgs) -> u8 {
    let _ = a.chrome;
    if let Err(e) = check_output(&a.out, a.force) {
        eprintln!("{e}");
        return EXIT_BAD_INPUT;
    }
    match export_stream(&a) {
        Ok((events, cores)) => {
            println!(
                "wrote {} ({events} events from {cores} core(s))",
                a.out.display()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_BAD_INPUT
        }
    }
}
