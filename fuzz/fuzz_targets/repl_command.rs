//! One debugger command line → `emu::debug::parse`. The REPL and the terminal
//! UI read these from the user; no line may panic the parser, and every error
//! must render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        match emu::debug::parse(line) {
            Ok(c) => {
                let _ = format!("{c:?}");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
