//! Data transfer family: MOV MOVZX MOVSX MOVSXD LEA XCHG SETcc CMOVcc and the
//! accumulator sign extensions CBW/CWDE/CDQE CWD/CDQ/CQO (SDM Vol. 2A/2B).
//!
//! Segment registers: MOV to DS/ES/FS/GS/SS stores the selector only. tlbemu keeps
//! no descriptor caches, so no descriptor-table checks happen and the FS/GS bases
//! are left as they are (kernels set them through WRMSR or SWAPGS, which is what
//! 64-bit kernels do). MOV to SS checks the selector's RPL against the CPL and sets
//! the one-instruction interrupt shadow (SDM Vol. 3A 6.8.3).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::{Exception, GP0, UD};
use crate::flags;
use crate::state::CpuState;
use crate::state::{Seg, RAX};
use iced_x86::{Mnemonic, OpKind, Register};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Mov => mov(x),
        Mnemonic::Lea => lea(x),
        Mnemonic::Movzx => movzx(x),
        Mnemonic::Movsx | Mnemonic::Movsxd => movsx(x),
        Mnemonic::Xchg => xchg(x),
        Mnemonic::Cbw => sign_extend_acc(x, 1),
        Mnemonic::Cwde => sign_extend_acc(x, 2),
        Mnemonic::Cdqe => sign_extend_acc(x, 4),
        Mnemonic::Cwd => sign_to_rdx(x, 2),
        Mnemonic::Cdq => sign_to_rdx(x, 4),
        Mnemonic::Cqo => sign_to_rdx(x, 8),
        Mnemonic::Seto
        | Mnemonic::Setno
        | Mnemonic::Setb
        | Mnemonic::Setae
        | Mnemonic::Sete
        | Mnemonic::Setne
        | Mnemonic::Setbe
        | Mnemonic::Seta
        | Mnemonic::Sets
        | Mnemonic::Setns
        | Mnemonic::Setp
        | Mnemonic::Setnp
        | Mnemonic::Setl
        | Mnemonic::Setge
        | Mnemonic::Setle
        | Mnemonic::Setg => setcc(x),
        Mnemonic::Cmovo
        | Mnemonic::Cmovno
        | Mnemonic::Cmovb
        | Mnemonic::Cmovae
        | Mnemonic::Cmove
        | Mnemonic::Cmovne
        | Mnemonic::Cmovbe
        | Mnemonic::Cmova
        | Mnemonic::Cmovs
        | Mnemonic::Cmovns
        | Mnemonic::Cmovp
        | Mnemonic::Cmovnp
        | Mnemonic::Cmovl
        | Mnemonic::Cmovge
        | Mnemonic::Cmovle
        | Mnemonic::Cmovg => cmovcc(x),
        _ => Err(x.unsupported()),
    }
}

/// True for an operand that is a general-purpose register.
fn is_gpr_op<B: Bus>(x: &Exec<'_, B>, i: u32) -> bool {
    x.ins.op_kind(i) != OpKind::Register || x.ins.op_register(i).is_gpr()
}

/// MOV in all its non-control-register forms, moffs and imm64 included. Reads the
/// source before translating the destination, as the CPU does (a faulting store
/// after a successful load changes nothing visible). SDM Vol. 2A MOV.
fn mov<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    if x.ins.op0_kind() == OpKind::Register && x.ins.op0_register().is_segment_register() {
        return mov_to_sreg(x);
    }
    if x.ins.op1_kind() == OpKind::Register && x.ins.op1_register().is_segment_register() {
        return mov_from_sreg(x);
    }
    // Debug and test registers (and anything else not a GPR) are not modelled.
    if !is_gpr_op(x, 0) || !is_gpr_op(x, 1) {
        return Err(x.unsupported());
    }
    let size = x.op_size(0);
    let v = x.read_op(1)?;
    let dst = x.dest(0)?;
    x.store(dst, size, v)
}

/// Index of a segment register in [`crate::state::CpuState::sel`].
fn seg_index(r: Register) -> Option<Seg> {
    match r {
        Register::ES => Some(Seg::Es),
        Register::CS => Some(Seg::Cs),
        Register::SS => Some(Seg::Ss),
        Register::DS => Some(Seg::Ds),
        Register::FS => Some(Seg::Fs),
        Register::GS => Some(Seg::Gs),
        _ => None,
    }
}

/// Loads a data or stack segment register with `sel` (MOV Sreg and POP FS/GS share
/// this). Selector only: no descriptor is read (see the module docs). SDM Vol. 2A
/// MOV (64-bit mode exceptions): CS cannot be loaded (#UD); a null SS at CPL 3 and
/// an SS whose RPL differs from the CPL are #GP.
pub(crate) fn load_sreg<B: Bus>(x: &mut Exec<'_, B>, r: Register, sel: u16) -> ExecResult {
    let seg = seg_index(r).ok_or(UD)?;
    match seg {
        Seg::Cs => return Err(UD),
        Seg::Ss => {
            let cpl = x.cpu.cpl();
            if sel & !3 == 0 {
                if cpl == 3 {
                    return Err(GP0);
                }
            } else if (sel & 3) as u8 != cpl {
                return Err(Exception::GeneralProtection(sel & 0xfffc).into());
            }
            x.cpu.interrupt_shadow = true;
        }
        _ => {}
    }
    x.cpu.sel[seg as usize] = sel;
    Ok(())
}

/// MOV Sreg, r/m16 (SDM Vol. 2A MOV): the source is a 16-bit register or memory.
fn mov_to_sreg<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    let sel = x.read_op(1)? as u16;
    load_sreg(x, r, sel)
}

/// MOV r/m, Sreg (SDM Vol. 2A MOV): a 16-bit store to memory; a register
/// destination receives the selector zero-extended to its size.
fn mov_from_sreg<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let seg = seg_index(x.ins.op1_register()).ok_or(UD)?;
    let sel = x.cpu.sel[seg as usize] as u64;
    let dst = x.dest(0)?;
    match dst {
        super::Loc::Reg(r) => {
            x.cpu.write_gpr(r, sel);
            Ok(())
        }
        _ => x.store(dst, 2, sel),
    }
}

/// LEA: the effective address, truncated to the destination size; no memory access
/// and no segment base (SDM Vol. 2A LEA).
fn lea<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    let ea = x.effective_offset();
    x.cpu.write_gpr(r, ea);
    Ok(())
}

/// MOVZX: the 8- or 16-bit source zero-extended to the destination (SDM Vol. 2B MOVZX).
fn movzx<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    let v = x.read_op(1)?;
    x.cpu.write_gpr(r, v);
    Ok(())
}

/// MOVSX and MOVSXD: the source sign-extended to the destination. MOVSXD without
/// REX.W (32- or 16-bit destination) is a plain move of the low bits, which the
/// same code produces since the destination write truncates (SDM Vol. 2B MOVSX).
fn movsx<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    let ssize = x.op_size(1);
    let v = flags::sext(x.read_op(1)?, ssize) & flags::mask(x.op_size(0));
    x.cpu.write_gpr(r, v);
    Ok(())
}

/// XCHG, register or memory (SDM Vol. 2B XCHG). The memory form is implicitly
/// locked; it is atomic here because one instruction is one step. The memory
/// operand is translated for write before anything changes.
fn xchg<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    if !is_gpr_op(x, 0) || !is_gpr_op(x, 1) {
        return Err(x.unsupported());
    }
    let size = x.op_size(0);
    let a_loc = x.dest(0)?;
    let b_loc = x.dest(1)?;
    let a = x.load(a_loc, size)?;
    let b = x.load(b_loc, size)?;
    x.store(a_loc, size, b)?;
    x.store(b_loc, size, a)
}

/// SETcc r/m8: 1 when the condition holds, else 0 (SDM Vol. 2B SETcc).
fn setcc<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let v = flags::condition(x.cpu.rflags, x.ins.condition_code()) as u64;
    let dst = x.dest(0)?;
    x.store(dst, 1, v)
}

/// CMOVcc r, r/m (SDM Vol. 2A CMOVcc). The source is read, and a memory source can
/// fault, whatever the condition; with a 32-bit destination the upper half of the
/// 64-bit register is cleared even when the condition is false.
fn cmovcc<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    let v = x.read_op(1)?;
    if flags::condition(x.cpu.rflags, x.ins.condition_code()) {
        x.cpu.write_gpr(r, v);
    } else if r.is_gpr32() {
        let old = x.cpu.read_gpr(r);
        x.cpu.write_gpr(r, old);
    }
    Ok(())
}

/// CBW/CWDE/CDQE: sign-extends the low `from` bytes of RAX into twice that size
/// (SDM Vol. 2A CBW/CWDE/CDQE).
fn sign_extend_acc<B: Bus>(x: &mut Exec<'_, B>, from: u32) -> ExecResult {
    let v = flags::sext(x.cpu.gpr[RAX], from);
    let dst = match from {
        1 => Register::AX,
        2 => Register::EAX,
        _ => Register::RAX,
    };
    x.cpu.write_gpr(dst, v);
    Ok(())
}

/// CWD/CDQ/CQO: fills DX/EDX/RDX with the sign of AX/EAX/RAX (SDM Vol. 2A CWD/CDQ/CQO).
fn sign_to_rdx<B: Bus>(x: &mut Exec<'_, B>, size: u32) -> ExecResult {
    let neg = x.cpu.gpr[RAX] & flags::sign_bit(size) != 0;
    let v = if neg { u64::MAX } else { 0 };
    let dst = match size {
        2 => Register::DX,
        4 => Register::EDX,
        _ => Register::RDX,
    };
    x.cpu.write_gpr(dst, v);
    Ok(())
}

/// MOV r32/r64, r32/r64: [`mov`] between two GPRs of the same size, resolved at
/// decode time (a 32-bit write zero-extends, as `write_gpr` does).
#[inline(always)]
pub(crate) fn mov_rr_fast(cpu: &mut CpuState, op: &crate::dispatch::Op) -> ExecResult {
    let v = cpu.gpr[op.r1 as usize] & flags::mask(op.size as u32);
    cpu.gpr[op.r0 as usize] = v;
    Ok(())
}

/// MOV r32/r64, imm: [`mov`] with the immediate taken at decode time.
#[inline(always)]
pub(crate) fn mov_ri_fast(cpu: &mut CpuState, op: &crate::dispatch::Op) -> ExecResult {
    cpu.gpr[op.r0 as usize] = op.imm & flags::mask(op.size as u32);
    Ok(())
}

/// MOV m32/m64, r32/r64: [`mov`]'s order — read the source register, then translate
/// the destination for writing (faults leave everything unchanged), then store.
#[inline(always)]
pub(crate) fn mov_store_fast<B: Bus>(x: &mut Exec<'_, B>, op: &crate::dispatch::Op) -> ExecResult {
    let size = op.size as u32;
    let v = x.cpu.gpr[op.r1 as usize] & flags::mask(size);
    let la = x.mem_la_simple(op)?;
    x.write_la_fast(la, size, v)
}

/// MOV r32/r64, m32/m64: [`mov`]'s order — read memory (translated for reading),
/// then write the register (zero-extending a 32-bit load).
#[inline(always)]
pub(crate) fn mov_load_fast<B: Bus>(x: &mut Exec<'_, B>, op: &crate::dispatch::Op) -> ExecResult {
    let size = op.size as u32;
    let la = x.mem_la_simple(op)?;
    let v = x.read_la_fast(la, size)?;
    x.cpu.gpr[op.r0 as usize] = v & flags::mask(size);
    Ok(())
}
