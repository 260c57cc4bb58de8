//! The whole scenario suite as one cargo test: `tlbemu check scenarios/` from the
//! workspace root must pass (expectations and golden traces), so `cargo test`
//! covers every scenario.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn check_scenarios_passes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_tlbemu"))
        .args(["check", "scenarios/"])
        .current_dir(&root)
        .output()
        .expect("run tlbemu");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "tlbemu check scenarios/ failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(" 0 failed, 0 error(s)"),
        "unexpected summary:\n{stdout}"
    );
}
