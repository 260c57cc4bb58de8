//! Trace bytes → the streaming reader and `Trace::parse`, and for a trace that
//! parses, every consumer of its header and lines that needs no scenario: the
//! core check a replay makes, the text rendering and the Chrome export. None of
//! it may panic or allocate in proportion to what a header claims rather than
//! what the file holds.
#![no_main]

use emu::trace::{chrome, Trace, TraceStream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader streams bytes (UTF-8 is checked line by line).
    if let Ok(mut s) = TraceStream::new(data, "") {
        let _ = s.head().check_cores(1);
        let _ = s.head().steps();
        while let Ok(Some(_)) = s.next_event() {}
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Trace::parse(text) {
        Ok(t) => {
            let _ = t.check_cores(1);
            let _ = t.steps();
            let _ = t.to_text();
            let _ = chrome::export(&t);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
