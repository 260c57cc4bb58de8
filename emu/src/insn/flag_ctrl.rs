//! Flag control family: CLC STC CMC CLD STD CLI STI (SDM Vol. 2A/2B).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::GP0;
use crate::state::control::{CF, DF, IF, IOPL};
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Clc => assign(x, CF, false),
        Mnemonic::Stc => assign(x, CF, true),
        Mnemonic::Cmc => {
            x.cpu.rflags ^= CF;
            Ok(())
        }
        Mnemonic::Cld => assign(x, DF, false),
        Mnemonic::Std => assign(x, DF, true),
        Mnemonic::Cli => cli(x),
        Mnemonic::Sti => sti(x),
        _ => Err(x.unsupported()),
    }
}

/// CLC/STC/CLD/STD: clears or sets one flag (SDM Vol. 2A CLC, CLD; Vol. 2B STC, STD).
fn assign<B: Bus>(x: &mut Exec<'_, B>, flag: u64, on: bool) -> ExecResult {
    if on {
        x.cpu.rflags |= flag;
    } else {
        x.cpu.rflags &= !flag;
    }
    Ok(())
}

/// #GP(0) unless CPL <= IOPL (protected mode without CR4.PVI; SDM Vol. 2A CLI).
fn require_iopl<B: Bus>(x: &Exec<'_, B>) -> ExecResult {
    let iopl = ((x.cpu.rflags & IOPL) >> 12) as u8;
    if x.cpu.cpl() > iopl {
        Err(GP0)
    } else {
        Ok(())
    }
}

/// CLI: clears IF when CPL <= IOPL, else #GP(0) (SDM Vol. 2A CLI). CR4.PVI and
/// virtual-8086 mode are not modelled.
fn cli<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    require_iopl(x)?;
    x.cpu.rflags &= !IF;
    Ok(())
}

/// STI: sets IF when CPL <= IOPL, else #GP(0) (SDM Vol. 2B STI). When IF was 0,
/// interrupts stay blocked until after the next instruction (the STI shadow,
/// SDM Vol. 3A 6.8.3); STI with IF already 1 opens no shadow.
fn sti<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    require_iopl(x)?;
    if x.cpu.rflags & IF == 0 {
        x.cpu.rflags |= IF;
        x.cpu.interrupt_shadow = true;
    }
    Ok(())
}
