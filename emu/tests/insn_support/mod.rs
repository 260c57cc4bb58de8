//! Shared by the per-family instruction tests: where code and data go, the flag
//! bits, and a one-instruction assembler.
#![allow(dead_code)]

use iced_x86::code_asm::{CodeAssembler, IcedError};

pub use emu::state::control::{AF, CF, OF, PF, SF, STATUS, ZF};

/// Where the instruction under test is loaded.
pub const CODE: u64 = 0x10_0000;
/// A data page for memory operands.
pub const DATA: u64 = 0x2000;

/// Assembles one instruction at `CODE`.
pub fn asm1(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(CODE).unwrap()
}
