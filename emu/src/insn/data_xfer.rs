//! Data transfer family: MOV MOVZX MOVSX MOVSXD LEA XCHG SETcc CMOVcc and the
//! accumulator sign extensions CBW/CWDE/CDQE CWD/CDQ/CQO (SDM Vol. 2A/2B).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Mov => mov(x),
        Mnemonic::Lea => lea(x),
        _ => Err(x.unsupported()),
    }
}

/// MOV in all its non-control-register forms, moffs and imm64 included. Reads the
/// source before translating the destination, as the CPU does (a faulting store
/// after a successful load changes nothing visible).
fn mov<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = x.op_size(0);
    let v = x.read_op(1)?;
    let dst = x.dest(0)?;
    x.store(dst, size, v)
}

/// LEA: the effective address, truncated to the destination size; no memory access
/// and no segment base (SDM Vol. 2A LEA).
fn lea<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    let ea = x.effective_offset();
    x.cpu.write_gpr(r, ea);
    Ok(())
}
