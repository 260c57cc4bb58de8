//! Shift and rotate family: SHL/SAL SHR SAR ROL ROR RCL RCR SHLD SHRD (SDM Vol. 2B).
//!
//! The count (1, imm8 or CL) is masked to 5 bits, or 6 for 64-bit operands. A masked
//! count of 0 changes no flag and writes no memory (a memory destination is still
//! translated for writing first, as for every read-modify-write); a 32-bit register
//! destination is still zero-extended.
//!
//! Undefined flags (masked by the differential check) and what tlbemu stores:
//! - OF for counts other than 1: the count-1 formula is applied to every nonzero
//!   count (SHL: MSB(result) XOR CF; SHR: MSB(original); SAR: 0; ROL: MSB(result)
//!   XOR CF; ROR: MSB(result) XOR next-to-MSB(result); RCL: MSB(result) XOR CF;
//!   RCR: MSB(original) XOR the incoming CF; SHLD/SHRD: MSB(result) XOR
//!   MSB(original), "a sign change occurred").
//! - AF after SHL/SHR/SAR/SHLD/SHRD with a nonzero count: cleared.
//! - CF of SHL/SHR with a count of at least the operand width (8/16-bit operands):
//!   the operand behaves as if zero-extended to 64 bits, so CF is the bit shifted out
//!   of that wider register (0 once the count exceeds the width). SAR likewise
//!   fills with copies of the sign, so CF is the sign bit.
//! - SHLD/SHRD on 16-bit operands with a count above 16: result, CF and flags follow
//!   the 48-bit concatenation DEST:SRC:DEST shifted by the count (what Intel's P6 and
//!   later cores do). AMD cores concatenate DEST:SRC:SRC (SHLD) and SRC:SRC:DEST
//!   (SHRD) instead, so a differential run on an AMD host must mask these cases.

use super::{Exec, ExecResult, Loc};
use crate::bus::Bus;
use crate::flags;
use crate::state::control::{CF, OF};
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Shl | Mnemonic::Sal => shift(x, shl),
        Mnemonic::Shr => shift(x, shr),
        Mnemonic::Sar => shift(x, sar),
        Mnemonic::Rol => shift(x, rol),
        Mnemonic::Ror => shift(x, ror),
        Mnemonic::Rcl => shift(x, rcl),
        Mnemonic::Rcr => shift(x, rcr),
        Mnemonic::Shld => double(x, shld),
        Mnemonic::Shrd => double(x, shrd),
        _ => Err(x.unsupported()),
    }
}

/// The outcome of one shift: the result, which status flags it defines and their
/// values.
struct Shifted {
    r: u64,
    which: u64,
    f: u64,
}

/// The count mask: 5 bits, 6 for 64-bit operands.
#[inline]
fn count_mask(size: u32) -> u64 {
    if size == 8 {
        0x3f
    } else {
        0x1f
    }
}

/// Most significant bit of an operand of `size` bytes, as 0 or 1.
#[inline]
fn msb(size: u32, v: u64) -> u64 {
    (v >> (size * 8 - 1)) & 1
}

/// CF and OF as flag bits.
#[inline]
fn cf_of(cf: u64, of: u64) -> u64 {
    (if cf != 0 { CF } else { 0 }) | (if of != 0 { OF } else { 0 })
}

/// Flags of SHL/SHR/SAR/SHLD/SHRD: SZP from the result, CF, OF, AF cleared.
#[inline]
fn arith_flags(size: u32, r: u64, cf: u64, of: u64) -> Shifted {
    Shifted {
        r,
        which: flags::STATUS,
        f: flags::szp(size, r) | cf_of(cf, of),
    }
}

/// Shifts and rotates of one operand: `op(size, value, masked count, CF in)` with a
/// nonzero masked count; the destination and flags are untouched when it is zero.
fn shift<B: Bus>(x: &mut Exec<'_, B>, op: fn(u32, u64, u32, u64) -> Shifted) -> ExecResult {
    let size = x.op_size(0);
    let dst = x.dest(0)?;
    let a = x.load(dst, size)? & flags::mask(size);
    let count = (x.read_op(1)? & count_mask(size)) as u32;
    if count == 0 {
        return zero_count(x, dst, size, a);
    }
    let cf = x.cpu.rflags & CF;
    let s = op(size, a, count, cf);
    x.store(dst, size, s.r)?;
    x.set_flags(s.which, s.f);
    Ok(())
}

/// A masked count of 0: no flag changes and no memory write, but a 32-bit register
/// destination is still written, so its upper half is zeroed (SDM Vol. 1 3.4.1.1;
/// what Intel and AMD cores do).
fn zero_count<B: Bus>(x: &mut Exec<'_, B>, dst: Loc, size: u32, a: u64) -> ExecResult {
    if let Loc::Reg(_) = dst {
        if size == 4 {
            x.store(dst, size, a)?;
        }
    }
    Ok(())
}

/// SHL/SAL (SDM Vol. 2B SAL/SAR/SHL/SHR): CF = last bit shifted out of the top.
fn shl(size: u32, a: u64, c: u32, _cf: u64) -> Shifted {
    let bits = size * 8;
    let r = (a << c) & flags::mask(size);
    let cf = if c <= bits { (a >> (bits - c)) & 1 } else { 0 };
    arith_flags(size, r, cf, msb(size, r) ^ cf)
}

/// SHR (SDM Vol. 2B SAL/SAR/SHL/SHR): logical right shift; OF = MSB(original).
fn shr(size: u32, a: u64, c: u32, _cf: u64) -> Shifted {
    let r = a >> c;
    let cf = (a >> (c - 1)) & 1;
    arith_flags(size, r, cf, msb(size, a))
}

/// SAR (SDM Vol. 2B SAL/SAR/SHL/SHR): arithmetic right shift; OF = 0.
fn sar(size: u32, a: u64, c: u32, _cf: u64) -> Shifted {
    let s = flags::sext(a, size) as i64;
    let r = (s >> c) as u64 & flags::mask(size);
    let cf = ((s >> (c - 1)) & 1) as u64;
    arith_flags(size, r, cf, 0)
}

/// ROL (SDM Vol. 2B RCL/RCR/ROL/ROR): rotate by count mod width; CF = LSB(result)
/// even when that count is 0 (the masked count is not); only CF and OF change.
fn rol(size: u32, a: u64, c: u32, _cf: u64) -> Shifted {
    let bits = size * 8;
    let k = c % bits;
    let r = if k == 0 {
        a
    } else {
        ((a << k) | (a >> (bits - k))) & flags::mask(size)
    };
    let cf = r & 1;
    Shifted {
        r,
        which: CF | OF,
        f: cf_of(cf, msb(size, r) ^ cf),
    }
}

/// ROR (SDM Vol. 2B RCL/RCR/ROL/ROR): CF = MSB(result); OF = the two top bits differ.
fn ror(size: u32, a: u64, c: u32, _cf: u64) -> Shifted {
    let bits = size * 8;
    let k = c % bits;
    let r = if k == 0 {
        a
    } else {
        ((a >> k) | (a << (bits - k))) & flags::mask(size)
    };
    let cf = msb(size, r);
    Shifted {
        r,
        which: CF | OF,
        f: cf_of(cf, cf ^ ((r >> (bits - 2)) & 1)),
    }
}

/// The RCL/RCR rotation count: the masked count modulo 9 for bytes and 17 for words
/// (SDM Vol. 2B RCL/RCR/ROL/ROR, "tempCOUNT").
#[inline]
fn rc_count(size: u32, c: u32) -> u32 {
    match size {
        1 => c % 9,
        2 => c % 17,
        _ => c,
    }
}

/// Rotates the (width+1)-bit value CF:a left by `k` (< width+1); returns the result
/// and the new CF.
#[inline]
fn rotate_through_carry(size: u32, a: u64, cf: u64, k: u32) -> (u64, u64) {
    let bits = size * 8;
    let w = bits + 1;
    let v = ((cf as u128 & 1) << bits) | a as u128;
    let v = if k == 0 {
        v
    } else {
        ((v << k) | (v >> (w - k))) & ((1u128 << w) - 1)
    };
    (v as u64 & flags::mask(size), (v >> bits) as u64 & 1)
}

/// RCL (SDM Vol. 2B RCL/RCR/ROL/ROR): rotate CF:DEST left; OF = MSB(result) XOR CF.
fn rcl(size: u32, a: u64, c: u32, cf: u64) -> Shifted {
    let (r, cf) = rotate_through_carry(size, a, cf & CF, rc_count(size, c));
    Shifted {
        r,
        which: CF | OF,
        f: cf_of(cf, msb(size, r) ^ cf),
    }
}

/// RCR (SDM Vol. 2B RCL/RCR/ROL/ROR): rotate CF:DEST right; OF = MSB(original) XOR
/// the incoming CF (computed before the rotation, as the SDM does).
fn rcr(size: u32, a: u64, c: u32, cf: u64) -> Shifted {
    let cf_in = cf & CF;
    let k = rc_count(size, c);
    let left = if k == 0 { 0 } else { size * 8 + 1 - k };
    let (r, cf) = rotate_through_carry(size, a, cf_in, left);
    Shifted {
        r,
        which: CF | OF,
        f: cf_of(cf, msb(size, a) ^ cf_in),
    }
}

/// SHLD/SHRD r/m, r, imm8/CL: `op(size, dest, src, masked count)` with a nonzero
/// masked count; nothing changes when it is zero.
fn double<B: Bus>(x: &mut Exec<'_, B>, op: fn(u32, u64, u64, u32) -> Shifted) -> ExecResult {
    let size = x.op_size(0);
    let dst = x.dest(0)?;
    let a = x.load(dst, size)? & flags::mask(size);
    let s = x.read_op(1)? & flags::mask(size);
    let count = (x.read_op(2)? & count_mask(size)) as u32;
    if count == 0 {
        return zero_count(x, dst, size, a);
    }
    let out = op(size, a, s, count);
    x.store(dst, size, out.r)?;
    x.set_flags(out.which, out.f);
    Ok(())
}

/// The concatenation SHLD and SHRD shift, and its width in bits: DEST:SRC for 32-
/// and 64-bit operands, DEST:SRC:DEST for 16-bit ones (so counts 17..31 behave as
/// on Intel cores; see the module comment).
#[inline]
fn concat(size: u32, a: u64, s: u64) -> (u128, u32) {
    let bits = size * 8;
    if size == 2 {
        (((a as u128) << 32) | ((s as u128) << 16) | a as u128, 48)
    } else {
        (((a as u128) << bits) | s as u128, 2 * bits)
    }
}

/// SHLD (SDM Vol. 2B SHLD): DEST shifted left, filled from the top of SRC; CF = last
/// bit shifted out; OF = sign change.
fn shld(size: u32, a: u64, s: u64, c: u32) -> Shifted {
    let bits = size * 8;
    let (v, w) = concat(size, a, s);
    let r = ((v << c) >> (w - bits)) as u64 & flags::mask(size);
    let cf = (v >> (w - c)) as u64 & 1;
    arith_flags(size, r, cf, msb(size, r) ^ msb(size, a))
}

/// SHRD (SDM Vol. 2B SHRD): DEST shifted right, filled from the bottom of SRC; CF =
/// last bit shifted out; OF = sign change.
fn shrd(size: u32, a: u64, s: u64, c: u32) -> Shifted {
    let v = if size == 2 {
        concat(size, a, s).0
    } else {
        ((s as u128) << (size * 8)) | a as u128
    };
    let r = (v >> c) as u64 & flags::mask(size);
    let cf = (v >> (c - 1)) as u64 & 1;
    arith_flags(size, r, cf, msb(size, r) ^ msb(size, a))
}
