//! Bitwise logic family: AND OR XOR TEST NOT (SDM Vol. 2A/2B).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::flags;
use crate::state::CpuState;
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::And => binary(x, |a, b| a & b, true),
        Mnemonic::Or => binary(x, |a, b| a | b, true),
        Mnemonic::Xor => binary(x, |a, b| a ^ b, true),
        Mnemonic::Test => binary(x, |a, b| a & b, false),
        Mnemonic::Not => not(x),
        _ => Err(x.unsupported()),
    }
}

/// AND/OR/XOR/TEST: OF and CF cleared, SF/ZF/PF from the result, AF undefined (we
/// clear it).
fn binary<B: Bus>(x: &mut Exec<'_, B>, op: fn(u64, u64) -> u64, write: bool) -> ExecResult {
    let size = x.op_size(0);
    let (a, dst) = if write {
        let dst = x.dest(0)?;
        (x.load(dst, size)?, Some(dst))
    } else {
        (x.read_op(0)?, None)
    };
    let b = x.read_op(1)?;
    let r = op(a, b) & flags::mask(size);
    if let Some(dst) = dst {
        x.store(dst, size, r)?;
    }
    x.set_flags(flags::STATUS, flags::logic(size, r));
    Ok(())
}

/// NOT r/m (SDM Vol. 2B NOT): one's complement through a pre-translated destination;
/// no flags are affected.
fn not<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let dst = x.dest(0)?;
    let a = x.load(dst, size)?;
    x.store(dst, size, !a & flags::mask(size))
}

/// AND/OR/XOR/TEST r32/r64, r or imm: [`binary`] for a register destination with
/// the operands resolved at decode time. The result is masked to the size, which
/// is also the 32-bit zero extension `write_gpr` applies.
#[inline(always)]
pub(crate) fn binary_fast(
    cpu: &mut CpuState,
    op: &crate::dispatch::Op,
    f: fn(u64, u64) -> u64,
    write: bool,
    reg: bool,
) -> ExecResult {
    if op.size == 8 {
        binary_sized::<8>(cpu, op, f, write, reg)
    } else {
        binary_sized::<4>(cpu, op, f, write, reg)
    }
}

/// [`binary_fast`] for one size, a constant.
#[inline(always)]
fn binary_sized<const SIZE: u32>(
    cpu: &mut CpuState,
    op: &crate::dispatch::Op,
    f: fn(u64, u64) -> u64,
    write: bool,
    reg: bool,
) -> ExecResult {
    let m = flags::mask(SIZE);
    let a = cpu.gpr[op.r0 as usize] & m;
    let b = if reg {
        cpu.gpr[op.r1 as usize] & m
    } else {
        op.imm
    };
    let r = f(a, b) & m;
    if write {
        cpu.gpr[op.r0 as usize] = r;
    }
    flags::set(
        &mut cpu.rflags,
        flags::STATUS,
        super::fast_flags::logic::<SIZE>(r),
    );
    Ok(())
}
