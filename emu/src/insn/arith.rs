//! Integer add/subtract family: ADD ADC SUB SBB CMP INC DEC NEG XADD CMPXCHG
//! CMPXCHG8B CMPXCHG16B (SDM Vol. 2A/2B, each instruction's page).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::flags;
use crate::state::control::CF;
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Add => add_sub(x, false, false, true),
        Mnemonic::Adc => add_sub(x, false, true, true),
        Mnemonic::Sub => add_sub(x, true, false, true),
        Mnemonic::Sbb => add_sub(x, true, true, true),
        Mnemonic::Cmp => add_sub(x, true, false, false),
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
