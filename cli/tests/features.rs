//! Every scenario under `scenarios/features/` is an example from
//! `docs/scenario-format.md`; each must pass `tlbemu run` (exit 0), so the
//! documentation cannot drift from what the binary accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn feature_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/features");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
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

/// Every example in `docs/scenario-format.md` is introduced by
/// `<!-- example: PATH -->` and must be the file at PATH byte for byte, and every
/// feature scenario must appear in the documentation.
#[test]
fn documentation_examples_are_the_feature_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc_path = root.join("docs/scenario-format.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc_path.display()));
    let mut shown = Vec::new();
    let mut problems = Vec::new();
    let marker = "<!-- example: ";
    let mut rest = doc.as_str();
    while let Some(i) = rest.find(marker) {
        rest = &rest[i + marker.len()..];
        let Some(end) = rest.find(" -->") else {
            problems.push("unterminated example marker".to_string());
            break;
        };
        let path = rest[..end].to_string();
        rest = &rest[end..];
        // The fenced block right after the marker.
        let Some(open) = rest.find("```") else {
            problems.push(format!("{path}: no code block after the marker"));
            break;
        };
        let after_fence = &rest[open + 3..];
        let body_start = after_fence.find('\n').map_or(after_fence.len(), |n| n + 1);
        let body = &after_fence[body_start..];
        let Some(close) = body.find("```") else {
            problems.push(format!("{path}: code block never closes"));
            break;
        };
        let block = &body[..close];
        match std::fs::read_to_string(root.join(&path)) {
            Ok(file) if file == block => {}
            Ok(_) => problems.push(format!(
                "{path}: the documentation's copy differs from the file"
            )),
            Err(e) => problems.push(format!("{path}: {e}")),
        }
        shown.push(path);
        rest = &body[close..];
    }
    for f in feature_scenarios() {
        let rel = format!(
            "scenarios/features/{}",
            f.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        );
        if !shown.contains(&rel) {
            problems.push(format!("{rel} is not shown in docs/scenario-format.md"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
