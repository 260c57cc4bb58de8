//! Trace text → `Trace::parse`, and for a trace that parses, every consumer of
//! its header and lines that needs no scenario: the core check a replay makes,
//! the text rendering and the Chrome export. None of it may panic or allocate
//! in proportion to what a header claims rather than what the file holds.
#![no_main]

use emu::trace::Trace;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Trace::parse(text) {
        Ok(t) => {
            let _ = t.check_cores(1);
            let _ = t.steps();
            let _ = t.to_text();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
