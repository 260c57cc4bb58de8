//! Flag control family: CLC STC CMC CLD STD CLI STI STAC CLAC (SDM Vol. 2A/2B).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::{GP0, UD};
use crate::state::control::{AC, CF, DF, IF, IOPL};
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
        Mnemonic::Stac => smap_ac(x, true),
        Mnemonic::Clac => smap_ac(x, false),
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

/// STAC / CLAC: set or clear RFLAGS.AC, which lets (STAC) or stops (CLAC)
/// explicit supervisor-mode data accesses to user pages while CR4.SMAP=1 (SDM
/// Vol. 2B STAC, Vol. 2A CLAC; Vol. 3A 4.6). #UD above CPL 0 and when
/// CPUID.(EAX=07H,ECX=0):EBX.SMAP[bit 20] is 0. Implicit supervisor accesses
/// (descriptor tables, interrupt frames) ignore AC; the MMU applies that rule.
fn smap_ac<B: Bus>(x: &mut Exec<'_, B>, on: bool) -> ExecResult {
    if !x.features.smap || x.cpu.cpl() != 0 {
        return Err(UD);
    }
    assign(x, AC, on)
}
