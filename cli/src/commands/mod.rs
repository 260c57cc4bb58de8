//! One module per subcommand, and the few helpers they share.

pub mod check;
pub mod debug;
pub mod exec;
pub mod explore;
pub mod replay;
pub mod run;
pub mod trace;

use std::path::{Path, PathBuf};

/// Writes a new output file. Without `force`, an existing file is an error (the
/// file is created exclusively, so nothing is overwritten by a race either). The
/// debugger's `save` uses the same rule through the same function.
pub fn write_output(path: &Path, text: &str, force: bool) -> Result<(), String> {
    check_output(path, true)?;
    emu::debug::write_new(path, text, force).map_err(|e| match e {
        emu::debug::SaveError::Exists(_) => format!(
            "{}: error: the file exists; refusing to overwrite it (pass --force to replace it)",
            path.display()
        ),
        other => format!("{}: error: {other}", path.display()),
    })
}

/// Refuses early (before any work) when an output exists and `force` is off.
pub fn check_output(path: &Path, force: bool) -> Result<(), String> {
    // A directory cannot be replaced by a file, with or without --force, so it
    // is not "a file that exists".
    if path.is_dir() {
        return Err(format!(
            "{}: error: is a directory; expected the path of a file to write (for example {}/run.trace)",
            path.display(),
            path.display()
        ));
    }
    if !force && path.exists() {
        return Err(format!(
            "{}: error: the file exists; refusing to overwrite it (pass --force to replace it)",
            path.display()
        ));
    }
    Ok(())
}

/// Where the scenario a trace names is: `override_path` when given; else the
/// recorded path if it exists as written (relative to the current directory);
/// else the recorded path under the trace file's directory or one of its
/// ancestors (so a golden trace in `traces/` finds `scenarios/...` from anywhere).
pub fn locate_scenario(trace: &Path, recorded: &str, override_path: Option<&Path>) -> PathBuf {
    if let Some(p) = override_path {
        return p.to_path_buf();
    }
    let rec = PathBuf::from(recorded);
    if rec.is_absolute() || rec.exists() {
        return rec;
    }
    let start = trace.parent().unwrap_or(Path::new("."));
    for dir in start.ancestors() {
        let p = dir.join(&rec);
        if p.is_file() {
            return p;
        }
    }
    rec
}
