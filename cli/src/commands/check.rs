//! `tlbemu check [PATHS...] [--bless]`: the regression suite. Runs every scenario,
//! checks its expectations, and compares its event stream with its golden trace
//! `traces/<file stem>.trace` when there is one.

use super::write_output;
use crate::{EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK};
use clap::Args;
use emu::scenario::{expects_violations, prepare, Ending, RunReport};
use emu::trace::{first_divergence, record, render_divergence, Inputs, Symbols, Trace};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Arguments of `tlbemu check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Scenario files or directories (searched recursively for *.ron).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Write or update the golden traces instead of comparing with them.
    #[arg(long)]
    bless: bool,
    /// Directory of golden traces.
    #[arg(long, value_name = "DIR", default_value = "traces")]
    traces: PathBuf,
}

enum Verdict {
    Ok(String),
    Fail(String, String),
    Error(String),
}

/// Identity of a directory on disk (device and inode), whatever path reached it.
type DirId = (u64, u64);

/// Finds `*.ron` files under `dir`, recursively, in sorted order, leaving out
/// `unscripted/` directories (scenarios without a schedule). Symbolic links
/// are followed (a suite may link in another directory), but each directory is
/// entered once, by its identity on disk: a link back to an ancestor (a loop) or
/// a second link to the same directory adds nothing instead of recursing forever.
fn collect(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut BTreeSet<DirId>) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)
        .map_err(|e| format!("{}: error: cannot read directory: {e}", dir.display()))?;
    if !seen.insert((meta.dev(), meta.ino())) {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: error: cannot read directory: {e}", dir.display()))?;
    let mut entries: Vec<PathBuf> = Vec::new();
    for e in rd {
        let e = e.map_err(|e| format!("{}: error: cannot read directory: {e}", dir.display()))?;
        entries.push(e.path());
    }
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // Unscripted twins have no schedule to check: `explore` runs them
            // (the tests hold their verdicts).
            if p.file_name().is_some_and(|n| n == "unscripted") {
                continue;
            }
            collect(&p, out, seen)?;
        } else if p.extension().is_some_and(|x| x == "ron") {
            out.push(p);
        }
    }
    Ok(())
}

fn failure_reason(r: &RunReport, ev: bool) -> String {
    if let Ending::Stuck { index, reason } = &r.ending {
        return format!("schedule[{index}] did not complete: {reason}");
    }
    let failed: Vec<String> = r
        .expectations
        .iter()
        .filter(|e| !e.ok)
        .map(|e| format!("expect[{}]: {} (found {})", e.index, e.what, e.actual))
        .collect();
    if !failed.is_empty() {
        return failed.join("; ");
    }
    if let Some(c) = r.stopped.iter().find(|c| !c.expected) {
        return format!(
            "core {} stopped ({}) and no expectation says it should",
            c.core, c.reason
        );
    }
    if r.violations > 0 && !ev {
        return format!(
            "{} unexpected violation(s) (the scenario expects none)",
            r.violations
        );
    }
    "failed".into()
}

fn check_one(path: &Path, golden: &Path, bless: bool) -> (String, Verdict) {
    let shown = path.display().to_string();
    let (s, src, plan) = match prepare(path) {
        Ok(x) => x,
        Err(d) => return (shown, Verdict::Error(d.to_string())),
    };
    let inputs = match Inputs::of(path, &src, &s) {
        Ok(i) => i,
        Err(e) => return (s.name.clone(), Verdict::Error(e)),
    };
    let sym = Symbols::from_build(path, &s, plan.built());
    let rec = record(&shown, inputs.clone(), &plan);
    let name = s.name.clone();
    let ev = expects_violations(&s);
    let passed = rec.report.passed(ev);
    let n = rec.trace.events.len();
    let mut note;
    if bless {
        let text = rec.trace.to_text();
        let old = std::fs::read(golden).ok();
        if old.as_deref() == Some(text.as_bytes()) {
            note = format!("{n} events, golden trace unchanged");
        } else {
            if let Err(e) = write_output(golden, &text, true) {
                return (name, Verdict::Error(e));
            }
            note = format!(
                "{n} events, golden trace {} {}",
                if old.is_some() {
                    "updated:"
                } else {
                    "written:"
                },
                golden.display()
            );
        }
    } else if golden.exists() {
        let g = match Trace::read(golden) {
            Ok(g) => g,
            Err(e) => {
                return (
                    name,
                    Verdict::Error(format!(
                        "{e}\n(rewrite it with `tlbemu check --bless {shown}`)"
                    )),
                )
            }
        };
        if let Some(d) = first_divergence(&g.events, &rec.trace.events) {
            let mut why = format!(
                "event stream differs from {} at event #{}",
                golden.display(),
                d.index
            );
            if !inputs.changes_since(&g).is_empty() {
                why += " (the scenario changed since the trace was blessed)";
            }
            return (name, Verdict::Fail(why, render_divergence(&d, &sym)));
        }
        if g.decisions != rec.trace.decisions {
            let i = g
                .decisions
                .iter()
                .zip(&rec.trace.decisions)
                .position(|(a, b)| a != b)
                .unwrap_or(g.decisions.len().min(rec.trace.decisions.len()));
            return (
                name,
                Verdict::Fail(
                    format!(
                        "same events, but schedule decision #{i} differs from {} (expected {:?}, got {:?})",
                        golden.display(),
                        g.decisions.get(i),
                        rec.trace.decisions.get(i)
                    ),
                    String::new(),
                ),
            );
        }
        note = format!("{n} events identical to the golden trace");
        if !inputs.changes_since(&g).is_empty() {
            note += "; its input hashes are out of date (--bless refreshes them)";
        }
    } else {
        note = format!("{n} events, no golden trace");
    }
    if passed {
        (name, Verdict::Ok(note))
    } else {
        (
            name,
            Verdict::Fail(failure_reason(&rec.report, ev), String::new()),
        )
    }
}

/// Runs the command and returns the exit code.
pub fn run(a: CheckArgs) -> u8 {
    let mut files = Vec::new();
    let mut errors = 0usize;
    let mut seen = BTreeSet::new();
    for p in &a.paths {
        if p.is_dir() {
            if let Err(e) = collect(p, &mut files, &mut seen) {
                println!("ERROR {e}");
                errors += 1;
            }
        } else if p.exists() {
            // Not a directory: a file to run. Loading refuses anything that is
            // not a regular file (a FIFO, a device) with its own message.
            files.push(p.clone());
        } else {
            println!(
                "ERROR {}: no such file or directory (expected a scenario file or a directory of them)",
                p.display()
            );
            errors += 1;
        }
    }
    // A suite that finds nothing to run has not passed: the paths are wrong.
    if files.is_empty() && errors == 0 {
        let shown: Vec<String> = a.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "{}: error: no scenario files found (expected *.ron files in the given paths)",
            shown.join(", ")
        );
        return EXIT_BAD_INPUT;
    }
    // Golden traces are named by file stem, so two scenarios must not share one.
    let mut by_stem: BTreeMap<String, Vec<&PathBuf>> = BTreeMap::new();
    for f in &files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        by_stem.entry(stem).or_default().push(f);
    }
    if a.bless && !a.traces.is_dir() {
        if let Err(e) = std::fs::create_dir_all(&a.traces) {
            println!("ERROR {}: cannot create: {e}", a.traces.display());
            return EXIT_BAD_INPUT;
        }
    }
    let (mut ok, mut failed) = (0usize, 0usize);
    for f in &files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let same: Vec<String> = by_stem
            .get(&stem)
            .map(|v| v.iter().map(|p| p.display().to_string()).collect())
            .unwrap_or_default();
        if same.len() > 1 {
            println!(
                "ERROR {}: golden traces are named by file stem, and {} all map to {stem}.trace; rename one",
                f.display(),
                same.join(", ")
            );
            errors += 1;
            continue;
        }
        let golden = a.traces.join(format!("{stem}.trace"));
        let (name, verdict) = check_one(f, &golden, a.bless);
        match verdict {
            Verdict::Ok(note) => {
                ok += 1;
                println!("ok    {name} ({note})");
            }
            Verdict::Fail(why, detail) => {
                failed += 1;
                println!("FAIL  {name}: {why}");
                for l in detail.lines() {
                    println!("      {l}");
                }
            }
            Verdict::Error(e) => {
                errors += 1;
                let mut lines = e.lines();
                let first = lines.next().unwrap_or("");
                if first.starts_with(&name) {
                    println!("ERROR {first}");
                } else {
                    println!("ERROR {name}: {first}");
                }
                for l in lines {
                    println!("      {l}");
                }
            }
        }
    }
    println!(
        "{} scenario(s): {ok} ok, {failed} failed, {errors} error(s){}",
        ok + failed + errors,
        if a.bless {
            " (golden traces blessed)"
        } else {
            ""
        }
    );
    if errors > 0 {
        EXIT_BAD_INPUT
    } else if failed > 0 {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}
