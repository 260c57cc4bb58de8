//! System family: MOV to/from CR0/CR2/CR3/CR4/CR8, INVLPG, INVPCID, RDMSR/WRMSR,
//! CPUID, RDTSC/RDTSCP, HLT, INT3, INT n, IRETQ, SWAPGS, UD2, LIDT/LGDT/SIDT/SGDT,
//! the fences, PAUSE and NOP (SDM Vol. 2 and Vol. 3A chapters 2, 4, 6).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Nop => Ok(()),
        Mnemonic::Hlt => hlt(x),
        _ => Err(x.unsupported()),
    }
}

/// HLT: CPL 0 only; the core sleeps until an interrupt is pending (SDM Vol. 2A HLT).
fn hlt<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()?;
    x.cpu.halted = true;
    Ok(())
}
