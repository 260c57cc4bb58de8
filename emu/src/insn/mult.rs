//! Multiply and divide family: MUL IMUL (1/2/3 operands) DIV IDIV (SDM Vol. 2A/2B).
//!
//! Undefined flags (masked by the differential check):
//! - MUL and IMUL leave SF ZF AF PF undefined; tlbemu stores SF/ZF/PF computed from
//!   the low half of the product (the destination-sized part that lands in the
//!   accumulator or the destination register) and clears AF.
//! - DIV and IDIV leave all six status flags undefined; tlbemu leaves RFLAGS
//!   unchanged.

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::Exception;
use crate::flags;
use crate::state::control::{CF, OF};
use iced_x86::{Mnemonic, Register};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Mul => mul(x),
        Mnemonic::Imul => match x.ins.op_count() {
            1 => imul1(x),
            2 | 3 => imul_trunc(x),
            _ => Err(x.unsupported()),
        },
        Mnemonic::Div => div(x),
        Mnemonic::Idiv => idiv(x),
        _ => Err(x.unsupported()),
    }
}

/// The low and high halves of the implicit register pair for an operand of `size`
/// bytes: AL/AH (as AX), AX/DX, EAX/EDX, RAX/RDX.
fn pair(size: u32) -> (Register, Register) {
    match size {
        1 => (Register::AL, Register::AH),
        2 => (Register::AX, Register::DX),
        4 => (Register::EAX, Register::EDX),
        _ => (Register::RAX, Register::RDX),
    }
}

/// The double-width dividend: AX, DX:AX, EDX:EAX or RDX:RAX, zero-extended.
fn read_pair<B: Bus>(x: &Exec<'_, B>, size: u32) -> u128 {
    let (lo, hi) = pair(size);
    ((x.cpu.read_gpr(hi) as u128) << (size * 8)) | x.cpu.read_gpr(lo) as u128
}

/// Writes `lo` and `hi` to the implicit pair (32-bit halves zero-extend RAX/RDX).
fn write_pair<B: Bus>(x: &mut Exec<'_, B>, size: u32, lo: u64, hi: u64) {
    let (rlo, rhi) = pair(size);
    x.cpu.write_gpr(rlo, lo);
    x.cpu.write_gpr(rhi, hi);
}

/// Flags after a multiply: CF = OF = `overflow`; SF ZF PF from the low half and AF
/// cleared (those four are undefined, see the module comment).
fn mul_flags<B: Bus>(x: &mut Exec<'_, B>, size: u32, lo: u64, overflow: bool) {
    let mut f = flags::szp(size, lo);
    if overflow {
        f |= CF | OF;
    }
    x.set_flags(flags::STATUS, f);
}

/// MUL r/m (SDM Vol. 2B MUL): unsigned accumulator × r/m into AX, DX:AX, EDX:EAX or
/// RDX:RAX; CF = OF = (upper half != 0).
fn mul<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let m = flags::mask(size);
    let b = x.read_op(0)? & m;
    let a = x.cpu.read_gpr(pair(size).0) & m;
    let p = (a as u128) * (b as u128);
    let lo = p as u64 & m;
    let hi = (p >> (size * 8)) as u64 & m;
    write_pair(x, size, lo, hi);
    mul_flags(x, size, lo, hi != 0);
    Ok(())
}

/// IMUL r/m, one operand (SDM Vol. 2A IMUL): signed accumulator × r/m into the
/// register pair; CF = OF = (the product does not fit the low half sign-extended).
fn imul1<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let m = flags::mask(size);
    let b = flags::sext(x.read_op(0)?, size) as i64 as i128;
    let a = flags::sext(x.cpu.read_gpr(pair(size).0), size) as i64 as i128;
    let p = a * b;
    let lo = p as u64 & m;
    let hi = (p >> (size * 8)) as u64 & m;
    let overflow = p != flags::sext(lo, size) as i64 as i128;
    write_pair(x, size, lo, hi);
    mul_flags(x, size, lo, overflow);
    Ok(())
}

/// IMUL r, r/m and IMUL r, r/m, imm (SDM Vol. 2A IMUL): the product truncated to the
/// operand size; CF = OF = (the truncated result differs from the full product).
fn imul_trunc<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let (i, j) = if x.ins.op_count() == 2 {
        (0, 1)
    } else {
        (1, 2)
    };
    let a = flags::sext(x.read_op(i)?, size) as i64 as i128;
    let b = flags::sext(x.read_op(j)?, size) as i64 as i128;
    let p = a * b;
    let r = p as u64 & flags::mask(size);
    let overflow = p != flags::sext(r, size) as i64 as i128;
    x.cpu.write_gpr(x.ins.op0_register(), r);
    mul_flags(x, size, r, overflow);
    Ok(())
}

/// DIV r/m (SDM Vol. 2A DIV): unsigned AX / DX:AX / EDX:EAX / RDX:RAX by r/m,
/// quotient to the low register, remainder to the high one. #DE on a zero divisor
/// or a quotient that does not fit; registers are written only after both checks.
fn div<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let m = flags::mask(size);
    let d = x.read_op(0)? & m;
    if d == 0 {
        return Err(Exception::DivideError.into());
    }
    let n = read_pair(x, size);
    let q = n / d as u128;
    if q > m as u128 {
        return Err(Exception::DivideError.into());
    }
    let r = (n % d as u128) as u64;
    write_pair(x, size, q as u64, r);
    Ok(())
}

/// IDIV r/m (SDM Vol. 2A IDIV): signed division of the register pair by r/m,
/// quotient truncated toward zero, remainder with the dividend's sign. #DE on a zero
/// divisor or a quotient outside the signed operand range (e.g. the most negative
/// dividend divided by -1).
fn idiv<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let bits = size * 8;
    let d = flags::sext(x.read_op(0)?, size) as i64 as i128;
    if d == 0 {
        return Err(Exception::DivideError.into());
    }
    // Sign-extend the 2×bits-wide dividend to 128 bits.
    let sh = 128 - 2 * bits;
    let n = ((read_pair(x, size) << sh) as i128) >> sh;
    let q = match n.checked_div(d) {
        Some(q) => q,
        None => return Err(Exception::DivideError.into()),
    };
    let max = (1i128 << (bits - 1)) - 1;
    if q > max || q < -max - 1 {
        return Err(Exception::DivideError.into());
    }
    let r = n.wrapping_rem(d);
    let m = flags::mask(size);
    write_pair(x, size, q as u64 & m, r as u64 & m);
    Ok(())
}
