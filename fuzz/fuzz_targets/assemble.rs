//! Assembly text → `emu::asm::assemble`, in both syntaxes, with a symbol table
//! that knows a few names. Errors are fine; panics are findings.
#![no_main]

use emu::asm::{assemble, AsmOptions, Syntax};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut symbols = BTreeMap::new();
    symbols.insert("dmap".to_string(), 0xffff_8800_0000_0000u64);
    symbols.insert("k.pte.400000".to_string(), 0x3c0_6000u64);
    symbols.insert("small".to_string(), 0x10u64);
    for syntax in [Syntax::Att, Syntax::Intel] {
        let opts = AsmOptions {
            syntax,
            base: 0xffff_ffff_8000_0000,
            symbols: &symbols,
        };
        let _ = assemble(text, &opts);
    }
});
