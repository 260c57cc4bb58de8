//! Status-flag computation for the fast forms (see [`crate::dispatch::Handler`]),
//! with the operand size a constant.
//!
//! The formulas are those of [`crate::flags`] (`add`, `sub`, `logic`); what differs
//! is only that the size is a const generic and the functions are always inlined,
//! so masks and sign bits fold into immediates and the 128-bit carry test becomes a
//! 64-bit one. With the size a run-time value the flag helpers were ~40 executed
//! instructions per flag-setting instruction in the `cpu_loop` profile (24 per
//! emulated instruction). The tests below check every function against its
//! `crate::flags` counterpart.

use crate::flags::{mask, parity};
use crate::state::control::{AF, CF, OF, SF, ZF};

/// SF, ZF and PF of a result already masked to `SIZE` bytes.
#[inline(always)]
fn szp<const SIZE: u32>(r: u64) -> u64 {
    let sign = 1u64 << (SIZE * 8 - 1);
    parity(r) | if r == 0 { ZF } else { 0 } | if r & sign != 0 { SF } else { 0 }
}

/// `crate::flags::add(SIZE, a, b, carry)`.
#[inline(always)]
pub(crate) fn add<const SIZE: u32>(a: u64, b: u64, carry: bool) -> (u64, u64) {
    let m = mask(SIZE);
    let sign = 1u64 << (SIZE * 8 - 1);
    let (a, b) = (a & m, b & m);
    let (s1, c1) = a.overflowing_add(b);
    let (s2, c2) = s1.overflowing_add(carry as u64);
    let r = s2 & m;
    // Carry out of the operand: out of bit 63 for 8 bytes, else any bit above the
    // mask (the unmasked sum cannot overflow 64 bits then).
    let cf = if SIZE == 8 { c1 | c2 } else { s2 & !m != 0 };
    let mut f = szp::<SIZE>(r);
    if cf {
        f |= CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    if (!(a ^ b) & (a ^ r)) & sign != 0 {
        f |= OF;
    }
    (r, f)
}

/// `crate::flags::sub(SIZE, a, b, borrow)`.
#[inline(always)]
pub(crate) fn sub<const SIZE: u32>(a: u64, b: u64, borrow: bool) -> (u64, u64) {
    let m = mask(SIZE);
    let sign = 1u64 << (SIZE * 8 - 1);
    let (a, b) = (a & m, b & m);
    let c = borrow as u64;
    let r = a.wrapping_sub(b).wrapping_sub(c) & m;
    // a < b + c without overflow: b + c can only wrap when b = u64::MAX and c = 1.
    let cf = a < b || (a == b && c != 0);
    let mut f = szp::<SIZE>(r);
    if cf {
        f |= CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    if ((a ^ b) & (a ^ r)) & sign != 0 {
        f |= OF;
    }
    (r, f)
}

/// `crate::flags::logic(SIZE, r)` for `r` already masked to `SIZE` bytes.
#[inline(always)]
pub(crate) fn logic<const SIZE: u32>(r: u64) -> u64 {
    szp::<SIZE>(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags;

    fn values() -> Vec<u64> {
        let mut v = vec![
            0,
            1,
            2,
            0xf,
            0x10,
            0x7f,
            0x80,
            0xff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
            u64::MAX,
            u64::MAX - 1,
        ];
        // A deterministic spread of other values (xorshift).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x);
            v.push(x & 0xffff_ffff);
        }
        v
    }

    #[test]
    fn same_results_and_flags_as_the_generic_helpers() {
        let vs = values();
        for &a in &vs {
            for &b in &vs {
                for c in [false, true] {
                    assert_eq!(
                        add::<8>(a, b, c),
                        flags::add(8, a, b, c),
                        "add8 {a:#x} {b:#x} {c}"
                    );
                    assert_eq!(
                        add::<4>(a, b, c),
                        flags::add(4, a, b, c),
                        "add4 {a:#x} {b:#x} {c}"
                    );
                    assert_eq!(
                        sub::<8>(a, b, c),
                        flags::sub(8, a, b, c),
                        "sub8 {a:#x} {b:#x} {c}"
                    );
                    assert_eq!(
                        sub::<4>(a, b, c),
                        flags::sub(4, a, b, c),
                        "sub4 {a:#x} {b:#x} {c}"
                    );
                }
            }
            assert_eq!(logic::<8>(a), flags::logic(8, a));
            let a4 = a & 0xffff_ffff;
            assert_eq!(logic::<4>(a4), flags::logic(4, a4));
        }
    }
}
