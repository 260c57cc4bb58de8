//! Arithmetic flag computation (SDM Vol. 1 3.4.3.1, Appendix A "EFLAGS cross-reference").
//!
//! Flags are computed eagerly by the instruction that defines them, through the
//! helpers here, so every handler sets flags the same way. Where the SDM leaves a
//! flag undefined, the handler documents what it leaves there; the differential
//! check masks those bits (see `UNDEFINED_FLAGS` in the differential test).

use crate::state::control::{AF, CF, OF, PF, SF, ZF};
use iced_x86::ConditionCode;

/// Mask of an operand of `size` bytes.
#[inline]
pub fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// Sign bit of an operand of `size` bytes.
#[inline]
pub fn sign_bit(size: u32) -> u64 {
    1u64 << (size * 8 - 1)
}

/// Sign-extends the low `size` bytes of `v`.
#[inline]
pub fn sext(v: u64, size: u32) -> u64 {
    let sh = 64 - size * 8;
    (((v << sh) as i64) >> sh) as u64
}

/// PF: set when the low byte of the result has an even number of 1 bits.
#[inline]
pub fn parity(v: u64) -> u64 {
    if (v as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

/// SF, ZF and PF of a result of `size` bytes.
#[inline]
pub fn szp(size: u32, r: u64) -> u64 {
    let r = r & mask(size);
    let mut f = parity(r);
    if r == 0 {
        f |= ZF;
    }
    if r & sign_bit(size) != 0 {
        f |= SF;
    }
    f
}

/// Result and all six status flags of `a + b + carry` (ADD, ADC, INC without CF).
#[inline]
pub fn add(size: u32, a: u64, b: u64, carry: bool) -> (u64, u64) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let c = carry as u64;
    let full = (a as u128) + (b as u128) + (c as u128);
    let r = (full as u64) & m;
    let mut f = szp(size, r);
    if full > m as u128 {
        f |= CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    if (!(a ^ b) & (a ^ r)) & sign_bit(size) != 0 {
        f |= OF;
    }
    (r, f)
}

/// Result and all six status flags of `a - b - borrow` (SUB, SBB, CMP, NEG, DEC).
#[inline]
pub fn sub(size: u32, a: u64, b: u64, borrow: bool) -> (u64, u64) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let c = borrow as u64;
    let r = a.wrapping_sub(b).wrapping_sub(c) & m;
    let mut f = szp(size, r);
    if (a as u128) < (b as u128) + (c as u128) {
        f |= CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    if ((a ^ b) & (a ^ r)) & sign_bit(size) != 0 {
        f |= OF;
    }
    (r, f)
}

/// Flags of AND/OR/XOR/TEST: OF=CF=0, SF/ZF/PF from the result. AF is undefined by
/// the SDM; we clear it (what current Intel cores do).
#[inline]
pub fn logic(size: u32, r: u64) -> u64 {
    szp(size, r)
}

/// Replaces the bits of `which` in RFLAGS with those of `f`.
#[inline]
pub fn set(rflags: &mut u64, which: u64, f: u64) {
    *rflags = (*rflags & !which) | (f & which);
}

/// The six status flags.
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;

/// Evaluates a condition code against RFLAGS (SDM Vol. 1 Appendix B).
#[inline]
pub fn condition(rflags: u64, cc: ConditionCode) -> bool {
    let cf = rflags & CF != 0;
    let zf = rflags & ZF != 0;
    let sf = rflags & SF != 0;
    let of = rflags & OF != 0;
    let pf = rflags & PF != 0;
    match cc {
        ConditionCode::None => true,
        ConditionCode::o => of,
        ConditionCode::no => !of,
        ConditionCode::b => cf,
        ConditionCode::ae => !cf,
        ConditionCode::e => zf,
        ConditionCode::ne => !zf,
        ConditionCode::be => cf || zf,
        ConditionCode::a => !cf && !zf,
        ConditionCode::s => sf,
        ConditionCode::ns => !sf,
        ConditionCode::p => pf,
        ConditionCode::np => !pf,
        ConditionCode::l => sf != of,
        ConditionCode::ge => sf == of,
        ConditionCode::le => zf || sf != of,
        ConditionCode::g => !zf && sf == of,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_flags() {
        let (r, f) = add(1, 0x7f, 1, false);
        assert_eq!(r, 0x80);
        assert_eq!(f & (OF | SF | CF | ZF | AF), OF | SF | AF);
        let (r, f) = add(8, u64::MAX, 1, false);
        assert_eq!(r, 0);
        assert_eq!(f & (CF | ZF | OF), CF | ZF);
        let (r, f) = add(4, 0xffff_ffff, 0, true);
        assert_eq!(r, 0);
        assert_ne!(f & CF, 0);
    }

    #[test]
    fn sub_flags() {
        let (r, f) = sub(1, 0x80, 1, false);
        assert_eq!(r, 0x7f);
        assert_eq!(f & (OF | CF | SF), OF);
        let (r, f) = sub(2, 0, 1, false);
        assert_eq!(r, 0xffff);
        assert_eq!(f & (CF | SF), CF | SF);
        let (_, f) = sub(8, 5, 5, false);
        assert_ne!(f & ZF, 0);
        assert_ne!(f & PF, 0);
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sext(0x80, 1), 0xffff_ffff_ffff_ff80);
        assert_eq!(sext(0x7fff, 2), 0x7fff);
        assert_eq!(sext(0x8000_0000, 4), 0xffff_ffff_8000_0000);
    }
}
