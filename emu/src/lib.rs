//! emu
pub mod asm;
