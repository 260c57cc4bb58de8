//! Interrupt return: IRET (16-bit operand size), IRETD (32-bit) and IRETQ (64-bit)
//! in IA-32e mode (SDM Vol. 2A IRET/IRETD/IRETQ, "IA-32e-MODE").
//!
//! In 64-bit mode IRET pops all five slots (RIP, CS, RFLAGS, RSP, SS) whatever the
//! privilege change; the operand size only sets the width of each slot (2, 4 or 8
//! bytes) and which RFLAGS bits the popped image may change.
//!
//! Model choices (tlbemu keeps no GDT model):
//! - Selector RPLs are checked, no descriptor is read; the returned-to code segment
//!   is always a 64-bit one, so IRETD/IRET never enter compatibility mode.
//! - A narrow slot is zero-extended: the popped EIP/IP and ESP/SP become the whole
//!   RIP and RSP. (The SDM's "ESP/SP ← Pop()" could be read as keeping RSP's upper
//!   bits; zero-extension makes a kernel that uses the wrong operand size fail at
//!   once rather than run on a half-old stack pointer.)
//! - Returning to CPL 3 does not null DS/ES/FS/GS.

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::{Exception, GP0};
use crate::state::control::*;
use crate::state::{Seg, RSP};
use iced_x86::Mnemonic;
use mmu::VirtAddr;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Iret => iret(x, 2),
        Mnemonic::Iretd => iret(x, 4),
        Mnemonic::Iretq => iret(x, 8),
        _ => Err(x.unsupported()),
    }
}

/// RFLAGS bits IRET loads from the popped image at privilege `cpl` with the
/// current `rflags` and operand size `size` (SDM Vol. 2A IRET,
/// RETURN-TO-SAME/OUTER-PRIVILEGE-LEVEL): CF PF AF ZF SF TF DF OF NT RF AC ID
/// always; IF when CPL <= IOPL; IOPL, VIF and VIP only at CPL 0. The CPL is the
/// one before the return. VM is never loaded in IA-32e mode. With a 16-bit operand
/// size only bits 15:0 ("EFLAGS(15:0) ← tempEFLAGS") change.
pub(crate) fn iret_mask(cpl: u8, rflags: u64, size: u32) -> u64 {
    let iopl = ((rflags & IOPL) >> 12) as u8;
    let mut m = CF | PF | AF | ZF | SF | TF | DF | OF | NT | RF | AC | ID;
    if cpl <= iopl {
        m |= IF;
    }
    if cpl == 0 {
        m |= IOPL | VIF | VIP;
    }
    if size == 2 {
        m &= 0xffff;
    }
    m
}

/// IRET with `size`-byte slots (SDM Vol. 2A IRET, IA-32e-MODE-RETURN). Checks
/// made before anything changes: NT=1 is #GP(0) (no task return in IA-32e mode);
/// a null CS or non-canonical RIP is #GP(0); a CS RPL below the CPL is #GP(CS); a
/// null SS returning to CPL 3, or with an RPL other than the new CPL, is #GP(0); a
/// non-null SS whose RPL differs from the new CPL is #GP(SS). The new CPL is the CS
/// RPL; returning to an outer level (CPL 3) is allowed.
fn iret<B: Bus>(x: &mut Exec<'_, B>, size: u32) -> ExecResult {
    debug_assert!(matches!(size, 2 | 4 | 8));
    if x.cpu.rflags & NT != 0 {
        return Err(GP0);
    }
    let s = size as u64;
    let rip = x.peek(size, 0)?;
    let cs = x.peek(size, s)? as u16;
    let image = x.peek(size, 2 * s)?;
    let rsp = x.peek(size, 3 * s)?;
    let ss = x.peek(size, 4 * s)? as u16;
    let cpl = x.cpu.cpl();
    let new_cpl = (cs & 3) as u8;
    if cs & !3 == 0 || !VirtAddr(rip).is_canonical() {
        return Err(GP0);
    }
    if new_cpl < cpl {
        return Err(Exception::GeneralProtection(cs & 0xfffc).into());
    }
    if ss & !3 == 0 {
        if new_cpl == 3 || (ss & 3) as u8 != new_cpl {
            return Err(GP0);
        }
    } else if (ss & 3) as u8 != new_cpl {
        return Err(Exception::GeneralProtection(ss & 0xfffc).into());
    }
    let m = iret_mask(cpl, x.cpu.rflags, size);
    x.cpu.rflags = (x.cpu.rflags & !m) | (image & m) | 0x2;
    x.cpu.sel[Seg::Cs as usize] = cs;
    x.cpu.sel[Seg::Ss as usize] = ss;
    x.cpu.gpr[RSP] = rsp;
    x.next_rip = rip;
    Ok(())
}
