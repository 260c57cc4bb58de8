//! Scenario text → parse → (if it parses) build + validate, and every error
//! rendered as a located diagnostic. None of it may panic, whatever the bytes.
#![no_main]

use emu::scenario::{build, parse, validate};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An empty directory for `file:` paths to resolve against, so a fuzzed scenario
/// never reads anything real.
fn base_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("tlbemu-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = base_dir().join("fuzz.ron");
    let (scenario, src) = match parse(&path, text.to_string()) {
        Ok(x) => x,
        Err(d) => {
            let _ = d.to_string();
            return;
        }
    };
    match build(&scenario, base_dir()) {
        Ok(built) => {
            if let Err(p) = validate(&scenario, &built) {
                let _ = p.locate(&src).to_string();
            }
        }
        Err(p) => {
            let _ = p.locate(&src).to_string();
        }
    }
});
