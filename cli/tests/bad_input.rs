//! Malformed scenarios and assembly, run through the real `tlbemu run`.
//!
//! Each `tests/bad_input/*.ron` is one case. Its first line says the exit code
//! the binary must return (`// exit: 2` for bad input, `// exit: 1` for input
//! that is valid but whose run cannot finish or does not pass); the second says
//! what is wrong. The output is snapshotted (stderr for exit 2, the report for
//! exit 1) so every message can be reviewed, and no case may panic. Paths are
//! given relative to `tests/bad_input/` so snapshots do not depend on where the
//! checkout lives.

use std::path::{Path, PathBuf};
use std::process::Command;

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input")
}

/// The exit code a case file declares on its first line.
fn declared_exit(path: &Path) -> Option<i32> {
    if path.is_dir() {
        return Some(2);
    }
    let bytes = std::fs::read(path).ok()?;
    let first = bytes.split(|b| *b == b'\n').next()?;
    let line = String::from_utf8_lossy(first);
    line.trim().strip_prefix("// exit:")?.trim().parse().ok()
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(name: &str) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_tlbemu"))
        .current_dir(case_dir())
        .arg("run")
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Checks one case and returns its snapshot text.
fn check(name: &str, expected: i32) -> Result<String, String> {
    let o = run(name);
    if o.stderr.contains("panicked") || o.stdout.contains("panicked") {
        return Err(format!("{name}: tlbemu panicked:\n{}", o.stderr));
    }
    if o.code != Some(expected) {
        return Err(format!(
            "{name}: exit {:?}, expected {expected}\n--- stdout\n{}--- stderr\n{}",
            o.code, o.stdout, o.stderr
        ));
    }
    let shown = if expected == 2 {
        if !o.stdout.is_empty() {
            return Err(format!(
                "{name}: bad input also printed a report:\n{}",
                o.stdout
            ));
        }
        // Every bad-input message is `file[:line:col]: error: message`.
        if !o.stderr.contains(": error: ") {
            return Err(format!("{name}: not a located error:\n{}", o.stderr));
        }
        o.stderr
    } else {
        o.stdout
    };
    Ok(format!("exit: {expected}\n{shown}"))
}

#[test]
fn bad_inputs_fail_cleanly_with_located_messages() {
    let mut names: Vec<String> = std::fs::read_dir(case_dir())
        .unwrap_or_else(|e| panic!("cannot list tests/bad_input: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ron"))
        .collect();
    names.sort();
    assert!(names.len() >= 40, "only {} bad-input cases", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let Some(expected) = declared_exit(&case_dir().join(name)) else {
            failures.push(format!("{name}: first line must be `// exit: N`"));
            continue;
        };
        match check(name, expected) {
            Ok(snap) => {
                let stem = name.trim_end_matches(".ron");
                insta::with_settings!({ snapshot_path => "bad_input/snapshots", prepend_module_to_snapshot => false }, {
                    insta::assert_snapshot!(stem, snap);
                });
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn missing_scenario_file_is_bad_input() {
    let snap = check("no-such-scenario.ron", 2).unwrap_or_else(|e| panic!("{e}"));
    insta::with_settings!({ snapshot_path => "bad_input/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("no-such-scenario", snap);
    });
}
