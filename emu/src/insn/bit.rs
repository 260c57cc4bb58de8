//! Bit family: BT BTS BTR BTC BSF BSR TZCNT LZCNT POPCNT BSWAP (SDM Vol. 2A/2B).
//!
//! Undefined flags and results (masked by the differential check) and what tlbemu
//! leaves there:
//! - BT/BTS/BTR/BTC: OF SF AF PF are undefined and ZF unaffected on current
//!   processors; tlbemu changes only CF.
//! - BSF/BSR: CF OF SF AF PF undefined; left unchanged. A zero source sets ZF and
//!   leaves the destination unchanged, upper half of a 64-bit register included for
//!   a 32-bit destination (what Intel and AMD cores do; the SDM says "undefined").
//! - TZCNT/LZCNT: OF SF AF PF undefined; left unchanged.
//! - BSWAP with a 16-bit operand is undefined; tlbemu zeroes the low word and keeps
//!   bits 63:16, as Intel and AMD cores do.

use super::{Exec, ExecResult, Loc};
use crate::bus::{AccessKind, Bus};
use crate::flags;
use crate::state::control::{AF, CF, OF, PF, SF, ZF};
use iced_x86::{Mnemonic, OpKind, Register};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Bt => bit_test(x, BitOp::Test),
        Mnemonic::Bts => bit_test(x, BitOp::Set),
        Mnemonic::Btr => bit_test(x, BitOp::Reset),
        Mnemonic::Btc => bit_test(x, BitOp::Complement),
        Mnemonic::Bsf => bit_scan(x, false),
        Mnemonic::Bsr => bit_scan(x, true),
        Mnemonic::Tzcnt => count_zeros(x, false),
        Mnemonic::Lzcnt => count_zeros(x, true),
        Mnemonic::Popcnt => popcnt(x),
        Mnemonic::Bswap => bswap(x),
        _ => Err(x.unsupported()),
    }
}

/// What a BT-family instruction does to the selected bit after copying it to CF.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    Test,
    Set,
    Reset,
    Complement,
}

/// The operand word holding the selected bit and the bit's index in it (SDM Vol. 2A
/// BT, "bit base" and "bit offset").
///
/// A register offset into a memory bit base is a signed bit offset of operand size:
/// the word accessed is at EA + size × (offset SAR log2(width)), which may lie far
/// before or after the operand. A register bit base, or an immediate offset, takes
/// the offset modulo the operand width.
fn bit_location<B: Bus>(
    x: &mut Exec<'_, B>,
    size: u32,
    kind: AccessKind,
) -> Result<(Loc, u32), crate::exception::Fault> {
    let bits = size * 8;
    let offset = x.read_op(1)?;
    let in_word = (offset & (bits as u64 - 1)) as u32;
    match (x.ins.op0_kind(), x.ins.op1_kind()) {
        (OpKind::Register, _) => Ok((Loc::Reg(x.ins.op0_register()), in_word)),
        (OpKind::Memory, OpKind::Register) => {
            let signed = flags::sext(offset, size) as i64;
            let words = signed >> bits.trailing_zeros();
            let disp = (words as u64).wrapping_mul(size as u64);
            let mut ea = x.effective_offset().wrapping_add(disp);
            if address_size_32(x.ins.memory_base(), x.ins.memory_index()) {
                ea &= 0xffff_ffff;
            }
            let seg = x.ins.memory_segment();
            let la = x.canonical(seg, x.cpu.seg_base(seg).wrapping_add(ea))?;
            Ok((x.translate(la, size as usize, kind)?, in_word))
        }
        (OpKind::Memory, _) => {
            let la = x.mem_la()?;
            Ok((x.translate(la, size as usize, kind)?, in_word))
        }
        (k, _) => Err(x.unsupported_operand(k)),
    }
}

/// True when the memory operand uses 32-bit addressing (an 0x67 prefix), so the
/// effective address wraps at 4 GiB.
#[inline]
fn address_size_32(base: Register, index: Register) -> bool {
    base.is_gpr32() || index.is_gpr32() || base == Register::EIP
}

/// BT/BTS/BTR/BTC r/m, r/imm8 (SDM Vol. 2A BT, BTC, BTR, BTS): CF := the selected
/// bit, then the modifying forms set, clear or flip it. Only CF is written.
fn bit_test<B: Bus>(x: &mut Exec<'_, B>, op: BitOp) -> ExecResult {
    let size = x.op_size(0);
    let kind = if op == BitOp::Test {
        AccessKind::Read
    } else {
        AccessKind::Write
    };
    let (loc, bit) = bit_location(x, size, kind)?;
    let v = x.load(loc, size)?;
    let m = 1u64 << bit;
    let r = match op {
        BitOp::Test => v,
        BitOp::Set => v | m,
        BitOp::Reset => v & !m,
        BitOp::Complement => v ^ m,
    };
    if op != BitOp::Test {
        x.store(loc, size, r & flags::mask(size))?;
    }
    x.set_flags(CF, if v & m != 0 { CF } else { 0 });
    Ok(())
}

/// BSF/BSR r, r/m (SDM Vol. 2A BSF, BSR): index of the lowest/highest set bit; a
/// zero source sets ZF and leaves the destination alone.
fn bit_scan<B: Bus>(x: &mut Exec<'_, B>, reverse: bool) -> ExecResult {
    let size = x.op_size(0);
    let src = x.read_op(1)? & flags::mask(size);
    if src == 0 {
        x.set_flags(ZF, ZF);
        return Ok(());
    }
    let index = if reverse {
        63 - src.leading_zeros()
    } else {
        src.trailing_zeros()
    };
    x.cpu.write_gpr(x.ins.op0_register(), index as u64);
    x.set_flags(ZF, 0);
    Ok(())
}

/// TZCNT/LZCNT r, r/m (SDM Vol. 2B TZCNT; Vol. 2A LZCNT): count of trailing/leading
/// zero bits, the operand width for a zero source; CF = (source = 0), ZF = (result
/// = 0).
fn count_zeros<B: Bus>(x: &mut Exec<'_, B>, leading: bool) -> ExecResult {
    let size = x.op_size(0);
    let bits = size * 8;
    let src = x.read_op(1)? & flags::mask(size);
    let n = if src == 0 {
        bits
    } else if leading {
        src.leading_zeros() - (64 - bits)
    } else {
        src.trailing_zeros()
    };
    x.cpu.write_gpr(x.ins.op0_register(), n as u64);
    let f = (if src == 0 { CF } else { 0 }) | (if n == 0 { ZF } else { 0 });
    x.set_flags(CF | ZF, f);
    Ok(())
}

/// POPCNT r, r/m (SDM Vol. 2B POPCNT): number of set bits; ZF = (source = 0), OF SF
/// AF CF PF cleared.
fn popcnt<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let src = x.read_op(1)? & flags::mask(size);
    x.cpu
        .write_gpr(x.ins.op0_register(), src.count_ones() as u64);
    let f = if src == 0 { ZF } else { 0 };
    x.set_flags(OF | SF | ZF | AF | CF | PF, f);
    Ok(())
}

/// BSWAP r32/r64 (SDM Vol. 2A BSWAP): reverses the byte order (a 32-bit destination
/// is zero-extended). The undefined 16-bit form zeroes the low word.
fn bswap<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    let v = x.cpu.read_gpr(r);
    let out = match x.op_size(0) {
        8 => v.swap_bytes(),
        4 => (v as u32).swap_bytes() as u64,
        2 => 0,
        _ => return Err(x.unsupported()),
    };
    x.cpu.write_gpr(r, out);
    Ok(())
}
