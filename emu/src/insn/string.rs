//! String family: MOVS STOS LODS CMPS SCAS with REP/REPE/REPNE (SDM Vol. 2B).
//!
//! # One iteration per step
//!
//! A REP-prefixed string instruction executes **one iteration per step**. While
//! iterations remain, RIP stays on the instruction and RCX (ECX with a 32-bit
//! address size) counts down; the step that finishes the count, or ends a
//! REPE/REPNE scan early, moves RIP past it. This is the SDM's own model (Vol. 2B
//! REP: "a repeating string operation can be suspended by an exception or
//! interrupt" between iterations, with the registers showing the progress), and
//! since cores interleave at instruction boundaries it lets another core run
//! between two iterations of, say, a kernel's `rep movsq` page copy. A fault in
//! iteration k leaves iterations 1..k-1 done and RIP at the instruction.
//!
//! Addressing: the source is `seg:RSI` where `seg` is DS or a segment override
//! (only FS and GS have a base in 64-bit mode); the destination is always `ES:RDI`
//! (flat). Both 64-bit and 32-bit (0x67 prefix: ESI/EDI/ECX, writes zero-extend)
//! address sizes are supported. RFLAGS.DF picks the direction.
//!
//! REPNE (F2) on MOVS/STOS/LODS repeats like REP, as hardware does.

use super::{Exec, ExecResult};
use crate::bus::Bus;
use crate::exception::Fault;
use crate::flags;
use crate::state::control::{DF, ZF};
use crate::state::{RAX, RCX, RDI, RSI};
use iced_x86::{Mnemonic, OpKind, Register};
use mmu::VirtAddr;

/// The five string operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
}

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    use Mnemonic as M;
    let (op, size) = match m {
        M::Movsb => (Op::Movs, 1),
        M::Movsw => (Op::Movs, 2),
        M::Movsd => (Op::Movs, 4),
        M::Movsq => (Op::Movs, 8),
        M::Stosb => (Op::Stos, 1),
        M::Stosw => (Op::Stos, 2),
        M::Stosd => (Op::Stos, 4),
        M::Stosq => (Op::Stos, 8),
        M::Lodsb => (Op::Lods, 1),
        M::Lodsw => (Op::Lods, 2),
        M::Lodsd => (Op::Lods, 4),
        M::Lodsq => (Op::Lods, 8),
        M::Cmpsb => (Op::Cmps, 1),
        M::Cmpsw => (Op::Cmps, 2),
        M::Cmpsd => (Op::Cmps, 4),
        M::Cmpsq => (Op::Cmps, 8),
        M::Scasb => (Op::Scas, 1),
        M::Scasw => (Op::Scas, 2),
        M::Scasd => (Op::Scas, 4),
        M::Scasq => (Op::Scas, 8),
        _ => return Err(x.unsupported()),
    };
    string(x, op, size)
}

/// Address size in bytes from the string operand kinds: 8 (RSI/RDI) or 4
/// (ESI/EDI). `None` for anything else (16-bit addressing cannot occur in 64-bit
/// mode; SSE's MOVSD/CMPSD share mnemonics with the string forms).
fn addr_size<B: Bus>(x: &Exec<'_, B>) -> Option<u32> {
    let mut asz = None;
    for i in 0..x.ins.op_count() {
        let s = match x.ins.op_kind(i) {
            OpKind::MemorySegRSI | OpKind::MemoryESRDI => 8,
            OpKind::MemorySegESI | OpKind::MemoryESEDI => 4,
            OpKind::Register => continue,
            _ => return None,
        };
        asz = Some(s);
    }
    asz
}

/// Reads an index/count register at the address size.
#[inline]
fn reg<B: Bus>(x: &Exec<'_, B>, i: usize, asz: u32) -> u64 {
    x.cpu.gpr[i] & flags::mask(asz)
}

/// Writes an index/count register at the address size (32-bit writes zero-extend).
#[inline]
fn set_reg<B: Bus>(x: &mut Exec<'_, B>, i: usize, asz: u32, v: u64) {
    x.cpu.gpr[i] = v & flags::mask(asz);
}

/// Linear address of the source, `seg:RSI` (segment override allowed).
fn src_la<B: Bus>(x: &Exec<'_, B>, asz: u32) -> Result<VirtAddr, Fault> {
    let seg = x.ins.memory_segment();
    let la = x.cpu.seg_base(seg).wrapping_add(reg(x, RSI, asz));
    x.canonical(seg, la)
}

/// Linear address of the destination, `ES:RDI` (no override; ES is flat).
fn dst_la<B: Bus>(x: &Exec<'_, B>, asz: u32) -> Result<VirtAddr, Fault> {
    x.canonical(Register::ES, reg(x, RDI, asz))
}

/// The accumulator register of `size` bytes.
fn acc(size: u32) -> Register {
    match size {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    }
}

/// One iteration of `op`, then the REP bookkeeping (see the module docs). SDM
/// Vol. 2B MOVS, STOS, LODS, CMPS, SCAS and REP/REPE/REPNE.
fn string<B: Bus>(x: &mut Exec<'_, B>, op: Op, size: u32) -> ExecResult {
    let Some(asz) = addr_size(x) else {
        return Err(x.unsupported());
    };
    let repe = x.ins.has_rep_prefix();
    let repne = x.ins.has_repne_prefix();
    let rep = repe || repne;
    if rep && reg(x, RCX, asz) == 0 {
        return Ok(());
    }
    let delta = if x.cpu.rflags & DF != 0 {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    // Memory first (it can fault), registers after.
    let (moves_si, moves_di) = match op {
        Op::Movs => {
            let v = {
                let la = src_la(x, asz)?;
                x.read_la(la, size)?
            };
            let la = dst_la(x, asz)?;
            x.write_la(la, size, v)?;
            (true, true)
        }
        Op::Stos => {
            let la = dst_la(x, asz)?;
            let v = x.cpu.gpr[RAX];
            x.write_la(la, size, v)?;
            (false, true)
        }
        Op::Lods => {
            let la = src_la(x, asz)?;
            let v = x.read_la(la, size)?;
            x.cpu.write_gpr(acc(size), v);
            (true, false)
        }
        Op::Cmps => {
            let la = src_la(x, asz)?;
            let a = x.read_la(la, size)?;
            let la = dst_la(x, asz)?;
            let b = x.read_la(la, size)?;
            let (_, f) = flags::sub(size, a, b, false);
            x.set_flags(flags::STATUS, f);
            (true, true)
        }
        Op::Scas => {
            let la = dst_la(x, asz)?;
            let b = x.read_la(la, size)?;
            let a = x.cpu.gpr[RAX];
            let (_, f) = flags::sub(size, a, b, false);
            x.set_flags(flags::STATUS, f);
            (false, true)
        }
    };
    if moves_si {
        let v = reg(x, RSI, asz).wrapping_add(delta);
        set_reg(x, RSI, asz, v);
    }
    if moves_di {
        let v = reg(x, RDI, asz).wrapping_add(delta);
        set_reg(x, RDI, asz, v);
    }
    if rep {
        let count = reg(x, RCX, asz).wrapping_sub(1);
        set_reg(x, RCX, asz, count);
        let zf = x.cpu.rflags & ZF != 0;
        let go_on = match op {
            // REPE/REPZ stops on a mismatch, REPNE/REPNZ on a match.
            Op::Cmps | Op::Scas => {
                if repne {
                    !zf
                } else {
                    zf
                }
            }
            _ => true,
        };
        if count != 0 && go_on {
            x.next_rip = x.cpu.rip;
        }
    }
    Ok(())
}
