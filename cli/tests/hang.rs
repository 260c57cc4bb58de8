//! Hang diagnosis through the real binary: a protocol hang and a schedule
//! mistake each get their own verdict and per-core diagnosis, in the text
//! report and in `run --json`.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tlbemu"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run tlbemu");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn protocol_hang_is_a_deadlock_with_the_word_and_its_writer() {
    let (code, out) = run(&["run", "scenarios/features/hang-protocol.ron"]);
    assert_eq!(code, Some(0), "the Hung expectation accounts for the hang");
    insta::assert_snapshot!("hang_protocol_text", out);
}

#[test]
fn schedule_mistake_is_told_apart_from_a_protocol_hang() {
    let (code, out) = run(&["run", "scenarios/features/hang-schedule.ron"]);
    assert_eq!(code, Some(0));
    insta::assert_snapshot!("hang_schedule_text", out);
}

#[test]
fn run_json_carries_the_diagnosis() {
    let (_, out) = run(&["run", "--json", "scenarios/features/hang-protocol.ron"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let hang = serde_json::to_string_pretty(&v["hang"]).expect("serialises");
    insta::assert_snapshot!("hang_protocol_json", hang);
    let (_, out) = run(&["run", "--json", "scenarios/features/shootdown-ipi.ron"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert!(v.get("hang").is_none(), "a completed schedule has no hang");
}
