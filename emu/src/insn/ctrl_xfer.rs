//! Control transfer family: JMP, Jcc, CALL, RET (near, relative and indirect;
//! RET imm16) (SDM Vol. 2A/2B).
//!
//! Only the 64-bit near forms exist here. The 16-bit operand-size forms (which
//! Intel ignores the prefix for and AMD honours) and far transfers are reported as
//! unsupported rather than guessed at.

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::flags;
use crate::state::CpuState;
use crate::state::RSP;
use iced_x86::{Code, Mnemonic, OpKind, Register};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Jmp => jmp(x),
        Mnemonic::Call => call(x),
        Mnemonic::Ret => ret(x),
        _ if x.ins.is_jcc_short_or_near() => jcc(x),
        _ => Err(x.unsupported()),
    }
}

/// The target of a branch operand: relative targets were resolved by the decoder;
/// indirect targets are read from a register or memory. A non-canonical target
/// faults with #GP(0) on the branch itself (SDM Vol. 2A JMP, 64-bit mode exceptions).
fn target<B: Bus>(x: &mut Exec<'_, B>) -> Result<u64, crate::exception::Fault> {
    let t = match x.ins.op0_kind() {
        OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16 => {
            x.ins.near_branch_target()
        }
        _ => x.read_op(0)?,
    };
    x.canonical(Register::CS, t)?;
    Ok(t)
}

/// JMP near (relative or indirect, SDM Vol. 2A JMP).
fn jmp<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    match x.ins.code() {
        Code::Jmp_rel8_64 | Code::Jmp_rel32_64 | Code::Jmp_rm64 => {}
        _ => return Err(x.unsupported()),
    }
    x.next_rip = target(x)?;
    Ok(())
}

/// Jcc: branch when the condition holds (SDM Vol. 2A Jcc).
fn jcc<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    if flags::condition(x.cpu.rflags, x.ins.condition_code()) {
        x.next_rip = target(x)?;
    }
    Ok(())
}

/// CALL near, rel32 or r/m64 (SDM Vol. 2A CALL). The target is read and checked
/// (#GP(0) when non-canonical) before the return address is pushed; RIP changes
/// only after the push succeeded.
fn call<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    match x.ins.code() {
        Code::Call_rel32_64 | Code::Call_rm64 => {}
        _ => return Err(x.unsupported()),
    }
    let t = target(x)?;
    x.push(8, x.next_rip)?;
    x.next_rip = t;
    Ok(())
}

/// RET near and RET imm16 (SDM Vol. 2B RET): pops RIP, then releases imm16 more
/// bytes of stack. A non-canonical return address is #GP(0) with RSP unchanged.
fn ret<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let extra = match x.ins.code() {
        Code::Retnq => 0,
        Code::Retnq_imm16 => x.ins.immediate16() as u64,
        _ => return Err(x.unsupported()),
    };
    let t = x.peek(8, 0)?;
    x.canonical(Register::CS, t)?;
    x.cpu.gpr[RSP] = x.cpu.gpr[RSP].wrapping_add(8).wrapping_add(extra);
    x.next_rip = t;
    Ok(())
}

/// Jcc rel (64-bit): [`jcc`] with the condition and the decoder-resolved target
/// taken at decode time; a non-canonical target still faults on the branch
/// (#GP(0), as `Exec::canonical` does for CS). Needs no `Exec`: register-only.
#[inline(always)]
pub(crate) fn jcc_fast(cpu: &CpuState, op: &crate::dispatch::Op, next_rip: &mut u64) -> ExecResult {
    if flags::condition(cpu.rflags, op.cc) {
        jmp_rel_fast(op, next_rip)?;
    }
    Ok(())
}

/// JMP rel8/rel32 (64-bit): [`jmp`] with the target taken at decode time.
#[inline(always)]
pub(crate) fn jmp_rel_fast(op: &crate::dispatch::Op, next_rip: &mut u64) -> ExecResult {
    if !mmu::VirtAddr(op.imm).is_canonical() {
        return Err(crate::exception::Exception::GeneralProtection(0).into());
    }
    *next_rip = op.imm;
    Ok(())
}
