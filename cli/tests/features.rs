//! Every scenario under `scenarios/features/` is an example from
//! `docs/scenario-format.md`; each must pass `tlbemu run` (exit 0), so the
//! documentation cannot drift from what the binary accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn feature_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/features");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_feature_scenario_passes() {
    let files = feature_scenarios();
    assert!(
        !files.is_empty(),
        "scenarios/features/ holds no .ron files; the documentation examples are missing"
    );
    let mut failures = Vec::new();
    for f in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_tlbemu"))
            .arg("run")
            .arg(f)
            .output()
            .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
        if out.status.code() != Some(0) {
            failures.push(format!(
                "{}: exit {:?}\n--- stdout\n{}--- stderr\n{}",
                f.display(),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} feature scenarios failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
