//! Control transfer family: JMP, Jcc, CALL, RET (near, relative and indirect;
//! RET imm16) (SDM Vol. 2A/2B).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::flags;
use iced_x86::{Mnemonic, OpKind};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Jmp => jmp(x),
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
    x.canonical(iced_x86::Register::CS, t)?;
    Ok(t)
}

/// JMP near (relative or indirect).
fn jmp<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.next_rip = target(x)?;
    Ok(())
}

/// Jcc: branch when the condition holds.
fn jcc<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    if flags::condition(x.cpu.rflags, x.ins.condition_code()) {
        x.next_rip = target(x)?;
    }
    Ok(())
}
