//! Integer add/subtract family: ADD ADC SUB SBB CMP INC DEC NEG XADD CMPXCHG
//! CMPXCHG8B CMPXCHG16B (SDM Vol. 2A/2B, each instruction's page).
//!
//! Every read-modify-write translates its destination for writing (`Exec::dest`)
//! before it reads or writes anything, so a LOCK'd form is one atomic step that
//! faults before any state changes. iced rejects LOCK on forms that do not allow it
//! (register destinations), which the core raises as #UD.

use super::{Exec, ExecResult, Loc};
use crate::bus::{AccessKind, Bus};
use crate::exception::Exception;
use crate::flags;
use crate::state::control::{CF, ZF};
use crate::state::CpuState;
use iced_x86::{Mnemonic, OpKind, Register};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Add => add_sub(x, false, false, true),
        Mnemonic::Adc => add_sub(x, false, true, true),
        Mnemonic::Sub => add_sub(x, true, false, true),
        Mnemonic::Sbb => add_sub(x, true, true, true),
        Mnemonic::Cmp => add_sub(x, true, false, false),
        Mnemonic::Inc => inc_dec(x, false),
        Mnemonic::Dec => inc_dec(x, true),
        Mnemonic::Neg => neg(x),
        Mnemonic::Xadd => xadd(x),
        Mnemonic::Cmpxchg => cmpxchg(x),
        Mnemonic::Cmpxchg8b => cmpxchg8b(x),
        Mnemonic::Cmpxchg16b => cmpxchg16b(x),
        _ => Err(x.unsupported()),
    }
}

/// ADD/ADC/SUB/SBB/CMP r/m, r/m/imm: one read-modify-write through a pre-translated
/// destination; CMP writes nothing (and so translates its memory operand for read).
fn add_sub<B: Bus>(
    x: &mut Exec<'_, B>,
    subtract: bool,
    with_carry: bool,
    write: bool,
) -> ExecResult {
    let size = x.op_size(0);
    let carry = with_carry && x.cpu.rflags & CF != 0;
    let (a, dst) = if write {
        let dst = x.dest(0)?;
        (x.load(dst, size)?, Some(dst))
    } else {
        (x.read_op(0)?, None)
    };
    let b = x.read_op(1)?;
    let (r, f) = if subtract {
        flags::sub(size, a, b, carry)
    } else {
        flags::add(size, a, b, carry)
    };
    if let Some(dst) = dst {
        x.store(dst, size, r)?;
    }
    x.set_flags(flags::STATUS, f);
    Ok(())
}

/// INC/DEC r/m (SDM Vol. 2A INC, DEC): OF SF ZF AF PF as for ADD/SUB of 1; CF is
/// not affected.
fn inc_dec<B: Bus>(x: &mut Exec<'_, B>, decrement: bool) -> ExecResult {
    let size = x.op_size(0);
    let dst = x.dest(0)?;
    let a = x.load(dst, size)?;
    let (r, f) = if decrement {
        flags::sub(size, a, 1, false)
    } else {
        flags::add(size, a, 1, false)
    };
    x.store(dst, size, r)?;
    x.set_flags(flags::STATUS & !CF, f);
    Ok(())
}

/// NEG r/m (SDM Vol. 2B NEG): DEST := 0 - DEST; CF = (DEST != 0), the other status
/// flags from the subtraction.
fn neg<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let dst = x.dest(0)?;
    let a = x.load(dst, size)?;
    // flags::sub's borrow is exactly (0 < a), which is the SDM's CF rule.
    let (r, f) = flags::sub(size, 0, a, false);
    x.store(dst, size, r)?;
    x.set_flags(flags::STATUS, f);
    Ok(())
}

/// XADD r/m, r (SDM Vol. 2B XADD): TEMP := SRC + DEST; SRC := DEST; DEST := TEMP,
/// flags as ADD. With a register destination SRC is written first so that
/// `xadd r, r` with the same register leaves the sum, as the SDM's order of
/// assignments does; with memory, the store goes first so nothing changes if it fails.
fn xadd<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let dst = x.dest(0)?;
    let a = x.load(dst, size)?;
    let src = x.ins.op1_register();
    let b = x.cpu.read_gpr(src);
    let (r, f) = flags::add(size, a, b, false);
    if let Loc::Reg(_) = dst {
        x.cpu.write_gpr(src, a);
        x.store(dst, size, r)?;
    } else {
        x.store(dst, size, r)?;
        x.cpu.write_gpr(src, a);
    }
    x.set_flags(flags::STATUS, f);
    Ok(())
}

/// The accumulator of an operand of `size` bytes: AL, AX, EAX or RAX.
fn accumulator(size: u32) -> Register {
    match size {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    }
}

/// CMPXCHG r/m, r (SDM Vol. 2A CMPXCHG): compare the accumulator with DEST (flags
/// as CMP accumulator, DEST); equal: DEST := SRC; else accumulator := DEST.
///
/// A memory destination is translated for writing up front and receives a write
/// cycle either way (its own value on failure), as the SDM states. A register
/// destination is written only on success; on failure only the accumulator is
/// written (so `cmpxchg ecx, edx` failing zero-extends into RAX and leaves RCX's
/// upper half alone, while succeeding zero-extends RCX and leaves RAX alone — what
/// Intel and AMD cores do).
fn cmpxchg<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let dst = x.dest(0)?;
    let old = x.load(dst, size)? & flags::mask(size);
    let acc = accumulator(size);
    let a = x.cpu.read_gpr(acc);
    let (_, f) = flags::sub(size, a, old, false);
    if f & ZF != 0 {
        let src = x.cpu.read_gpr(x.ins.op1_register());
        x.store(dst, size, src)?;
    } else {
        if let Loc::Mem { .. } = dst {
            x.store(dst, size, old)?;
        }
        x.cpu.write_gpr(acc, old);
    }
    x.set_flags(flags::STATUS, f);
    Ok(())
}

/// CMPXCHG8B m64 (SDM Vol. 2A CMPXCHG8B/CMPXCHG16B): compare EDX:EAX with m64;
/// equal: ZF := 1, m64 := ECX:EBX; else ZF := 0, EDX:EAX := m64 (32-bit writes, so
/// RDX and RAX are zero-extended) and m64 is written back with its own value. Only
/// ZF is affected.
fn cmpxchg8b<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    if x.ins.op0_kind() != OpKind::Memory {
        return Err(x.unsupported());
    }
    let dst = x.dest(0)?;
    let old = x.load(dst, 8)?;
    let g = &x.cpu.gpr;
    let expect = (g[2] << 32) | (g[0] & 0xffff_ffff);
    let new = (g[1] << 32) | (g[3] & 0xffff_ffff);
    if old == expect {
        x.store(dst, 8, new)?;
        x.set_flags(ZF, ZF);
    } else {
        x.store(dst, 8, old)?;
        x.cpu.write_gpr(Register::EAX, old);
        x.cpu.write_gpr(Register::EDX, old >> 32);
        x.set_flags(ZF, 0);
    }
    Ok(())
}

/// CMPXCHG16B m128 (SDM Vol. 2A CMPXCHG8B/CMPXCHG16B): compare RDX:RAX with m128;
/// equal: ZF := 1, m128 := RCX:RBX; else ZF := 0, RDX:RAX := m128 and m128 is
/// written back. #GP(0) when the operand is not 16-byte aligned (checked before
/// any translation). Only ZF is affected.
fn cmpxchg16b<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    if x.ins.op0_kind() != OpKind::Memory {
        return Err(x.unsupported());
    }
    let la = x.mem_la()?;
    if la.raw() & 15 != 0 {
        return Err(Exception::GeneralProtection(0).into());
    }
    let dst = x.translate(la, 16, AccessKind::Write)?;
    let mut buf = [0u8; 16];
    x.load_bytes(dst, &mut buf)?;
    let old = u128::from_le_bytes(buf);
    let g = &x.cpu.gpr;
    let expect = ((g[2] as u128) << 64) | g[0] as u128;
    let new = ((g[1] as u128) << 64) | g[3] as u128;
    if old == expect {
        x.store_bytes(dst, &new.to_le_bytes())?;
        x.set_flags(ZF, ZF);
    } else {
        x.store_bytes(dst, &buf)?;
        x.cpu.gpr[0] = old as u64;
        x.cpu.gpr[2] = (old >> 64) as u64;
        x.set_flags(ZF, 0);
    }
    Ok(())
}

/// The ADD-family operation of a fast form (see [`crate::dispatch::Handler`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastAlu {
    Add,
    Adc,
    Sub,
    Sbb,
    Cmp,
}

/// ADD/ADC/SUB/SBB/CMP r32/r64, r or imm: what [`add_sub`] does for a register
/// destination, with the register numbers, size and immediate resolved at decode
/// time (no operand-kind matches, no `Loc`). Same reads, flag helpers and masking:
/// the source is masked to the size as `read_gpr` does, and the result is already
/// masked, which is the 32-bit zero extension `write_gpr` applies.
///
/// Each size gets its own copy with the size a constant and the flags from
/// [`super::fast_flags`] (the same formulas, folded).
#[inline(always)]
pub(crate) fn alu_fast(
    cpu: &mut CpuState,
    op: &crate::dispatch::Op,
    alu: FastAlu,
    reg: bool,
) -> ExecResult {
    if op.size == 8 {
        alu_sized::<8>(cpu, op, alu, reg)
    } else {
        alu_sized::<4>(cpu, op, alu, reg)
    }
}

#[inline(always)]
fn alu_sized<const SIZE: u32>(
    cpu: &mut CpuState,
    op: &crate::dispatch::Op,
    alu: FastAlu,
    reg: bool,
) -> ExecResult {
    use super::fast_flags;
    let m = flags::mask(SIZE);
    let a = cpu.gpr[op.r0 as usize] & m;
    let b = if reg {
        cpu.gpr[op.r1 as usize] & m
    } else {
        op.imm
    };
    let carry = matches!(alu, FastAlu::Adc | FastAlu::Sbb) && cpu.rflags & CF != 0;
    let (r, f) = match alu {
        FastAlu::Add | FastAlu::Adc => fast_flags::add::<SIZE>(a, b, carry),
        FastAlu::Sub | FastAlu::Sbb | FastAlu::Cmp => fast_flags::sub::<SIZE>(a, b, carry),
    };
    if alu != FastAlu::Cmp {
        cpu.gpr[op.r0 as usize] = r;
    }
    flags::set(&mut cpu.rflags, flags::STATUS, f);
    Ok(())
}

/// INC/DEC r32/r64: [`inc_dec`] for a register operand resolved at decode time.
#[inline(always)]
pub(crate) fn inc_dec_fast(
    cpu: &mut CpuState,
    op: &crate::dispatch::Op,
    decrement: bool,
) -> ExecResult {
    if op.size == 8 {
        inc_dec_sized::<8>(cpu, op, decrement)
    } else {
        inc_dec_sized::<4>(cpu, op, decrement)
    }
}

#[inline(always)]
fn inc_dec_sized<const SIZE: u32>(
    cpu: &mut CpuState,
    op: &crate::dispatch::Op,
    decrement: bool,
) -> ExecResult {
    use super::fast_flags;
    let a = cpu.gpr[op.r0 as usize] & flags::mask(SIZE);
    let (r, f) = if decrement {
        fast_flags::sub::<SIZE>(a, 1, false)
    } else {
        fast_flags::add::<SIZE>(a, 1, false)
    };
    cpu.gpr[op.r0 as usize] = r;
    flags::set(&mut cpu.rflags, flags::STATUS & !CF, f);
    Ok(())
}
