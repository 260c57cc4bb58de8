//! Fast system calls: SYSCALL and SYSRET (SDM Vol. 2B SYSCALL, SYSRET; Vol. 3A
//! 5.8.8 "Fast System Calls in 64-Bit Mode").
//!
//! Both are driven by three MSRs that WRMSR sets (see `system.rs`): IA32_STAR
//! (0xC0000081; bits 47:32 SYSCALL's CS, bits 63:48 SYSRET's selector base),
//! IA32_LSTAR (0xC0000082; SYSCALL's RIP, canonical by WRMSR's check) and IA32_FMASK
//! (0xC0000084; RFLAGS bits SYSCALL clears). EFER.SCE enables both.
//!
//! Model choices (tlbemu keeps no GDT model): the selectors are loaded without
//! reading descriptors, as the processor itself does here — it loads fixed flat
//! descriptors. IA32_CSTAR, the compatibility-mode entry point, does not exist on
//! Intel parts and is not modelled (RDMSR/WRMSR of it is #GP(0)). SYSRET with a
//! 32-bit operand size returns to compatibility mode, which tlbemu does not model:
//! after its #UD/#GP checks it is an explicit unsupported-instruction error.

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::{GP0, UD};
use crate::state::control::{EFER_LMA, EFER_SCE};
use crate::state::{Seg, RCX};
use iced_x86::{Code, Mnemonic};
use mmu::VirtAddr;

/// R11, where SYSCALL saves RFLAGS and SYSRET takes it from.
const R11: usize = 11;

/// The RFLAGS bits SYSRET loads from R11 (SDM Vol. 2B SYSRET, Operation:
/// "RFLAGS ← (R11 AND 3C7FD7H) OR 2"): every defined flag except RF and VM.
const SYSRET_FLAGS: u64 = 0x3c_7fd7;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Syscall => syscall(x),
        Mnemonic::Sysret | Mnemonic::Sysretq => sysret(x),
        _ => Err(x.unsupported()),
    }
}

/// #UD unless EFER.SCE=1 and the core is in IA-32e mode (SDM Vol. 2B SYSCALL and
/// SYSRET, 64-bit mode exceptions: "#UD If IA32_EFER.SCE = 0").
fn require_sce<B: Bus>(x: &Exec<'_, B>) -> ExecResult {
    if x.cpu.efer & EFER_SCE == 0 || x.cpu.efer & EFER_LMA == 0 {
        return Err(UD);
    }
    Ok(())
}

/// SYSCALL (SDM Vol. 2B SYSCALL, Operation, 64-bit mode): RCX ← the next RIP;
/// RIP ← IA32_LSTAR; R11 ← RFLAGS; RFLAGS ← RFLAGS AND NOT IA32_FMASK;
/// CS ← IA32_STAR[47:32] AND FFFCH; SS ← IA32_STAR[47:32] + 8; CPL ← 0. RSP is not
/// changed and nothing is written to memory. Allowed at any CPL.
fn syscall<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    require_sce(x)?;
    let base = ((x.cpu.star >> 32) & 0xffff) as u16;
    x.cpu.gpr[RCX] = x.next_rip;
    x.cpu.gpr[R11] = x.cpu.rflags;
    x.cpu.rflags = (x.cpu.rflags & !x.cpu.fmask) | 0x2;
    x.cpu.sel[Seg::Cs as usize] = base & 0xfffc;
    x.cpu.sel[Seg::Ss as usize] = base.wrapping_add(8);
    x.next_rip = x.cpu.lstar;
    Ok(())
}

/// SYSRET (SDM Vol. 2B SYSRET, Operation): #UD unless EFER.SCE=1; #GP(0) unless
/// CPL 0; with REX.W (SYSRETQ, return to 64-bit mode) #GP(0) when RCX is not
/// canonical. Then RIP ← RCX; RFLAGS ← (R11 AND 3C7FD7H) OR 2;
/// CS ← IA32_STAR[63:48] + 16 OR 3; SS ← IA32_STAR[63:48] + 8 OR 3; CPL ← 3. RSP is
/// not changed.
///
/// The non-canonical RCX check faults at CPL 0 before anything changes, as Intel
/// parts do (the fault is taken on the kernel's side with the user's RSP still
/// loaded, the hazard kernels guard against by checking RCX before SYSRET).
fn sysret<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    require_sce(x)?;
    x.require_cpl0()?;
    if x.ins.code() != Code::Sysretq {
        // SYSRET with a 32-bit operand size enters compatibility mode.
        return Err(x.unsupported());
    }
    let rip = x.cpu.gpr[RCX];
    if !VirtAddr(rip).is_canonical() {
        return Err(GP0);
    }
    let base = ((x.cpu.star >> 48) & 0xffff) as u16;
    x.cpu.rflags = (x.cpu.gpr[R11] & SYSRET_FLAGS) | 0x2;
    x.cpu.sel[Seg::Cs as usize] = base.wrapping_add(16) | 3;
    x.cpu.sel[Seg::Ss as usize] = base.wrapping_add(8) | 3;
    x.next_rip = rip;
    Ok(())
}
