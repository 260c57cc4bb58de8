//! Stack family: PUSH POP PUSHF/PUSHFQ POPF/POPFQ LEAVE (SDM Vol. 2B).
//!
//! Every handler reads or writes the stack memory before it changes RSP, so an
//! access that faults (#SS for a non-canonical stack address, #PF) leaves RSP and
//! the destination as they were.
//!
//! PUSH FS/GS push the selector; POP FS/GS load the selector only, like MOV Sreg
//! (no descriptor is read and the bases stay as they are; see `data_xfer`).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::Fault;
use crate::state::control::{AC, AF, CF, DF, ID, IF, IOPL, NT, OF, PF, RF, SF, TF, VM, ZF};
use crate::state::RSP;
use iced_x86::{Mnemonic, OpKind, Register};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Push => push(x),
        Mnemonic::Pop => pop(x),
        Mnemonic::Pushfq => pushfq(x),
        Mnemonic::Popfq => popfq(x),
        Mnemonic::Pushf => pushfw(x),
        Mnemonic::Popf => popfw(x),
        Mnemonic::Leave => leave(x),
        _ => Err(x.unsupported()),
    }
}

/// Bytes a PUSH or POP moves: 8, or 2 with an operand-size prefix (iced knows).
fn stack_size<B: Bus>(x: &Exec<'_, B>) -> u32 {
    x.ins.stack_pointer_increment().unsigned_abs()
}

/// PUSH r64/r16, m64/m16, imm8/imm16/imm32 (sign-extended by the decoder), FS, GS
/// (SDM Vol. 2B PUSH). The source is read first, with the RSP before the push (so
/// PUSH RSP pushes the old value).
fn push<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = stack_size(x);
    let v = match x.ins.op0_kind() {
        OpKind::Register => {
            let r = x.ins.op0_register();
            if r == Register::FS {
                x.cpu.sel[crate::state::Seg::Fs as usize] as u64
            } else if r == Register::GS {
                x.cpu.sel[crate::state::Seg::Gs as usize] as u64
            } else if r.is_gpr() {
                x.cpu.read_gpr(r)
            } else {
                return Err(x.unsupported());
            }
        }
        _ => x.read_op(0)?,
    };
    x.push(size, v)
}

/// POP r64/r16, m64/m16, FS, GS (SDM Vol. 2B POP). For a memory destination the
/// address is computed with the incremented RSP, as the SDM specifies; POP RSP
/// leaves the popped value in RSP.
fn pop<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = stack_size(x);
    let v = x.peek(size, 0)?;
    let old = x.cpu.gpr[RSP];
    let new = old.wrapping_add(size as u64);
    match x.ins.op0_kind() {
        OpKind::Register => {
            let r = x.ins.op0_register();
            if r == Register::FS || r == Register::GS {
                super::data_xfer::load_sreg(x, r, v as u16)?;
                x.cpu.gpr[RSP] = new;
            } else if r.is_gpr() {
                x.cpu.gpr[RSP] = new;
                x.cpu.write_gpr(r, v);
            } else {
                return Err(x.unsupported());
            }
            Ok(())
        }
        OpKind::Memory => {
            x.cpu.gpr[RSP] = new;
            let r = pop_to_mem(x, size, v);
            if r.is_err() {
                x.cpu.gpr[RSP] = old;
            }
            r
        }
        k => Err(x.unsupported_operand(k)),
    }
}

/// The memory half of POP m: translate (with RSP already incremented), then store.
fn pop_to_mem<B: Bus>(x: &mut Exec<'_, B>, size: u32, v: u64) -> Result<(), Fault> {
    let dst = x.dest(0)?;
    x.store(dst, size, v)
}

/// PUSHFQ: RFLAGS with RF and VM cleared in the image (SDM Vol. 2B PUSHF).
fn pushfq<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let image = x.cpu.rflags & !(RF | VM);
    x.push(8, image)
}

/// The RFLAGS bits POPFQ may change (SDM Vol. 2B POPF, protected/64-bit mode):
/// at CPL 0 every defined flag except RF, VIP, VIF and VM; above CPL 0 IOPL is
/// kept too; and IF only changes when CPL <= IOPL. Insufficient privilege is not a
/// fault: the protected bits just keep their value. RF is cleared.
pub(crate) fn popf_mask(cpl: u8, rflags: u64) -> u64 {
    let iopl = ((rflags & IOPL) >> 12) as u8;
    let mut m = CF | PF | AF | ZF | SF | TF | DF | OF | NT | AC | ID;
    if cpl == 0 {
        m |= IOPL;
    }
    if cpl <= iopl {
        m |= IF;
    }
    m
}

/// POPFQ (SDM Vol. 2B POPF): pops 64 bits; which bits change depends on the CPL
/// and IOPL ([`popf_mask`]); VIP, VIF and VM are unaffected, RF is cleared.
fn popfq<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let v = x.peek(8, 0)?;
    let m = popf_mask(x.cpu.cpl(), x.cpu.rflags);
    x.cpu.gpr[RSP] = x.cpu.gpr[RSP].wrapping_add(8);
    x.cpu.rflags = ((x.cpu.rflags & !m & !RF) | (v & m)) | 0x2;
    Ok(())
}

/// PUSHF with a 16-bit operand size (66 9C; SDM Vol. 2B PUSHF): pushes FLAGS, the
/// low 16 bits of RFLAGS (RF and VM, bits 16 and 17, are outside the image).
fn pushfw<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.push(2, x.cpu.rflags & 0xffff)
}

/// POPF with a 16-bit operand size (66 9D; SDM Vol. 2B POPF, "OperandSize = 16":
/// "EFLAGS[15:0] ← Pop()"): pops 16 bits; the same CPL/IOPL rules as POPFQ
/// ([`popf_mask`]) restricted to bits 15:0, so AC, ID, RF and every bit above 15
/// keep their value (the 16-bit form does not clear RF).
fn popfw<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let v = x.peek(2, 0)?;
    let m = popf_mask(x.cpu.cpl(), x.cpu.rflags) & 0xffff;
    x.cpu.gpr[RSP] = x.cpu.gpr[RSP].wrapping_add(2);
    x.cpu.rflags = (x.cpu.rflags & !m) | (v & m) | 0x2;
    Ok(())
}

/// LEAVE: RSP ← RBP, then pop RBP (BP with an operand-size prefix) (SDM Vol. 2A
/// LEAVE). The read at RBP happens before either register changes.
fn leave<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let size = if x.ins.code() == iced_x86::Code::Leavew {
        2
    } else {
        8
    };
    let rbp = x.cpu.read_gpr(Register::RBP);
    let la = x.canonical(Register::SS, rbp)?;
    let v = x.read_la(la, size)?;
    x.cpu.gpr[RSP] = rbp.wrapping_add(size as u64);
    let r = if size == 2 {
        Register::BP
    } else {
        Register::RBP
    };
    x.cpu.write_gpr(r, v);
    Ok(())
}
