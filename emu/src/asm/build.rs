//! Form selection, part two: with operand values known (during layout), build the iced
//! `Instruction` for each candidate encoding whose immediates fit, and keep the shortest,
//! as GNU as does. Ties go to the first in `Code` (opcode) order, which is also what as
//! picks (`89 /r` over `8B /r` for register moves).

use super::error::{AsmError, AsmErrorKind, Pos};
use super::expr::{Expr, Value};
use super::operand::{Mem, Operand};
use super::select::{Candidate, Rep, Selected};
use iced_x86::{Code, Encoder, Instruction, OpCodeOperandKind as K, OpKind, Register};

/// What operand building needs from the layout pass.
pub(crate) trait Resolve {
    /// The value of an expression (labels at their current addresses).
    fn value(&self, e: &Expr) -> Result<Value, AsmError>;
    /// The branch target to give the block encoder: a label's in-block identity where the
    /// expression is just a label, otherwise the absolute value.
    fn target(&self, e: &Expr) -> Result<u64, AsmError>;
    /// True if the expression names a label or scenario symbol (directly or through
    /// `.set`): an address, rather than a constant.
    fn is_address(&self, e: &Expr) -> bool;
}

fn encode_err(msg: impl std::fmt::Display, pos: Pos) -> AsmError {
    AsmError::at(pos, AsmErrorKind::Encode(msg.to_string()))
}

/// An immediate that does not fit a candidate: how wide the field was (to report the widest
/// failure) and the error.
struct Misfit(u8, AsmError);

/// Checks an immediate against an operand kind and returns the op kind to store it as.
fn immediate(k: K, v: Value, pos: Pos, op_bits: u32) -> Result<(OpKind, u64), Misfit> {
    let s = i128::from(v.value as i64);
    let fits_signed = |bits: u32| s >= -(1i128 << (bits - 1)) && s < (1i128 << (bits - 1));
    let fits_either = |bits: u32| s >= -(1i128 << (bits - 1)) && s < (1i128 << bits);
    // A value truncated to the operand size, read back as signed (so that `$0xffffffff` is
    // -1 for a 32-bit operation and fits a sign-extended byte, as in GNU as).
    let trunc_signed = |bits: u32| ((v.value << (64 - bits)) as i64) >> (64 - bits);
    let misfit = |rank: u8, what: &str| {
        Misfit(
            rank,
            AsmError::at(
                pos,
                AsmErrorKind::OutOfRange {
                    value: v.value,
                    what: what.to_string(),
                },
            ),
        )
    };
    let sex8 = |bits: u32| {
        if v.relocatable {
            return Err(misfit(1, "a sign-extended 8-bit immediate"));
        }
        if fits_either(bits) && (-128..=127).contains(&trunc_signed(bits)) {
            Ok(())
        } else {
            Err(misfit(1, "a sign-extended 8-bit immediate"))
        }
    };
    Ok(match k {
        K::imm8_const_1 => (OpKind::Immediate8, 1),
        K::imm8 if fits_either(8) => (OpKind::Immediate8, v.value & 0xff),
        K::imm8 => return Err(misfit(1, "an 8-bit immediate")),
        K::imm8sex16 => {
            sex8(16)?;
            (OpKind::Immediate8to16, v.value)
        }
        K::imm8sex32 => {
            sex8(32)?;
            (OpKind::Immediate8to32, v.value)
        }
        K::imm8sex64 => {
            sex8(64)?;
            (OpKind::Immediate8to64, v.value)
        }
        K::imm16 if fits_either(16) => (OpKind::Immediate16, v.value & 0xffff),
        K::imm16 => return Err(misfit(2, "a 16-bit immediate")),
        K::imm32 if fits_either(32) => (OpKind::Immediate32, v.value & 0xffff_ffff),
        K::imm32 => return Err(misfit(3, "a 32-bit immediate")),
        K::imm32sex64 if fits_signed(32) => (OpKind::Immediate32to64, v.value),
        K::imm32sex64 => return Err(misfit(3, "a sign-extended 32-bit immediate")),
        K::imm64 => (OpKind::Immediate64, v.value),
        _ => return Err(misfit(0, &format!("a {op_bits}-bit operand"))),
    })
}

fn set_immediate(ins: &mut Instruction, kind: OpKind, value: u64) {
    match kind {
        OpKind::Immediate8 => ins.set_immediate8(value as u8),
        OpKind::Immediate8to16 => ins.set_immediate8to16(i16::from(value as i8)),
        OpKind::Immediate8to32 => ins.set_immediate8to32(i32::from(value as i8)),
        OpKind::Immediate8to64 => ins.set_immediate8to64(i64::from(value as i8)),
        OpKind::Immediate16 => ins.set_immediate16(value as u16),
        OpKind::Immediate32 => ins.set_immediate32(value as u32),
        OpKind::Immediate32to64 => ins.set_immediate32to64(value as i64),
        _ => ins.set_immediate64(value),
    }
}

/// Fills the memory operand fields. RIP-relative displacements that are plain numbers are
/// relative to the next instruction, so they are finished by the caller once the length is
/// known (`rip_const` returns that displacement).
fn set_memory(
    ins: &mut Instruction,
    m: &Mem,
    k: K,
    r: &dyn Resolve,
    synthetic: bool,
) -> Result<Option<i64>, Misfit> {
    if let Some(seg) = m.seg {
        ins.set_segment_prefix(seg);
    }
    let v = match &m.disp {
        Some(e) => r.value(e).map_err(|e| Misfit(u8::MAX, e))?,
        None => Value {
            value: 0,
            relocatable: false,
        },
    };
    let dpos = m.disp.as_ref().map_or(m.pos, Expr::pos);
    let out_of_range = |what: &str| {
        Misfit(
            4,
            AsmError::at(
                dpos,
                AsmErrorKind::OutOfRange {
                    value: v.value,
                    what: what.to_string(),
                },
            ),
        )
    };
    ins.set_memory_base(m.base.unwrap_or(Register::None));
    ins.set_memory_index(m.index.unwrap_or(Register::None));
    ins.set_memory_index_scale(m.scale);
    if k == K::mem_offs {
        ins.set_memory_displacement64(v.value);
        ins.set_memory_displ_size(8);
        return Ok(None);
    }
    if matches!(m.base, Some(Register::RIP | Register::EIP)) {
        // `sym(%rip)` addresses `sym`; `8(%rip)` or `CONST(%rip)` (a `.set` constant) is a
        // plain displacement from the next instruction, as in GNU as.
        let symbolic = m.disp.as_ref().is_some_and(|e| r.is_address(e));
        if symbolic {
            let t = match &m.disp {
                Some(e) if synthetic => r.target(e).map_err(|e| Misfit(u8::MAX, e))?,
                _ => v.value,
            };
            ins.set_memory_displacement64(t);
            ins.set_memory_displ_size(8);
            return Ok(None);
        }
        let d = v.value as i64;
        if i32::try_from(d).is_err() {
            return Err(out_of_range("a 32-bit RIP-relative displacement"));
        }
        ins.set_memory_displ_size(8);
        return Ok(Some(d));
    }
    let addr32 = m.base.is_some_and(Register::is_gpr32) || m.index.is_some_and(Register::is_gpr32);
    let s = v.value as i64;
    let fits = if addr32 {
        s >= i64::from(i32::MIN) && s <= i64::from(u32::MAX)
    } else {
        i32::try_from(s).is_ok()
    };
    if !fits {
        return Err(out_of_range(if m.base.is_none() && m.index.is_none() {
            "a sign-extended 32-bit absolute address (use movabs or RIP-relative addressing)"
        } else {
            "a 32-bit displacement"
        }));
    }
    let wide = if addr32 { 4 } else { 8 };
    let size = if m.base.is_none() || v.relocatable {
        wide
    } else if s == 0 {
        0
    } else if (-128..=127).contains(&s) {
        1
    } else {
        wide
    };
    let value = if addr32 {
        u64::from(v.value as u32)
    } else {
        v.value
    };
    ins.set_memory_displacement64(value);
    ins.set_memory_displ_size(size);
    Ok(None)
}

/// Builds one candidate; `Err(Misfit)` if a value does not fit it.
fn build_candidate(
    sel: &Selected,
    cand: &Candidate,
    r: &dyn Resolve,
    ip: u64,
    synthetic: bool,
) -> Result<Instruction, Misfit> {
    let form = cand.form;
    let mut ins = Instruction::default();
    ins.set_code(form.code);
    let op_bits = form.size.unwrap_or(64);
    let mut rip_const = None;
    let pos0 = sel.ops.first().map_or(Pos::default(), Operand::pos);
    for (i, (op, &k)) in sel.ops_for(cand).into_iter().zip(&form.kinds).enumerate() {
        let i = i as u32;
        let set_kind = |ins: &mut Instruction, kind| {
            ins.try_set_op_kind(i, kind)
                .map_err(|e| Misfit(0, encode_err(e, pos0)))
        };
        match op {
            Operand::Reg(reg, _) => {
                set_kind(&mut ins, OpKind::Register)?;
                ins.try_set_op_register(i, *reg)
                    .map_err(|e| Misfit(0, encode_err(e, pos0)))?;
            }
            Operand::Imm(e, pos) => {
                let v = r.value(e).map_err(|e| Misfit(u8::MAX, e))?;
                let (kind, value) = immediate(k, v, *pos, op_bits)?;
                set_kind(&mut ins, kind)?;
                set_immediate(&mut ins, kind, value);
            }
            Operand::Mem(m) => {
                set_kind(&mut ins, OpKind::Memory)?;
                if let Some(d) = set_memory(&mut ins, m, k, r, synthetic)? {
                    rip_const = Some(d);
                }
            }
            Operand::Target(e, pos) => {
                let real = r.value(e).map_err(|e| Misfit(u8::MAX, e))?.value;
                let dist = real.wrapping_sub(ip.wrapping_add(6)) as i64;
                if i32::try_from(dist).is_err() {
                    return Err(Misfit(
                        u8::MAX,
                        AsmError::at(*pos, AsmErrorKind::BranchOutOfRange { target: real }),
                    ));
                }
                let t = r.target(e).map_err(|e| Misfit(u8::MAX, e))?;
                set_kind(&mut ins, OpKind::NearBranch64)?;
                ins.set_near_branch64(t);
            }
        }
    }
    if form.code == Code::Xchg_r32_EAX && ins.op0_register() == Register::EAX {
        // `xchg eax, eax` must not become `nop` (90): it zero-extends RAX in long mode.
        return Err(Misfit(
            0,
            encode_err("xchg %eax,%eax needs the ModRM form", pos0),
        ));
    }
    apply_prefixes(&mut ins, sel);
    if let Some(d) = rip_const {
        let len = Encoder::new(64)
            .encode(&ins, ip)
            .map_err(|e| Misfit(0, encode_err(e, pos0)))?;
        ins.set_memory_displacement64(ip.wrapping_add(len as u64).wrapping_add(d as u64));
    }
    Ok(ins)
}

fn apply_prefixes(ins: &mut Instruction, sel: &Selected) {
    if sel.prefixes.lock.is_some() {
        ins.set_has_lock_prefix(true);
    }
    match sel.prefixes.rep {
        Some((Rep::Repe, ..)) => ins.set_has_repe_prefix(true),
        Some((Rep::Repne, ..)) => ins.set_has_repne_prefix(true),
        None => {}
    }
}

/// Builds the shortest encodable candidate at address `ip`.
pub(crate) fn build(
    sel: &Selected,
    r: &dyn Resolve,
    ip: u64,
    pos: Pos,
) -> Result<Instruction, AsmError> {
    let mut best: Option<(usize, &Candidate)> = None;
    let mut worst: Option<Misfit> = None;
    let is_branch = sel
        .candidates
        .iter()
        .any(|c| c.form.kinds.contains(&K::br64_4));
    for cand in &sel.candidates {
        match build_candidate(sel, cand, r, ip, is_branch) {
            Ok(ins) => {
                if is_branch {
                    return Ok(ins);
                }
                match Encoder::new(64).encode(&ins, ip) {
                    Ok(len) => {
                        if best.as_ref().is_none_or(|(l, _)| len < *l) {
                            best = Some((len, cand));
                        }
                    }
                    Err(e) => {
                        if worst.as_ref().is_none_or(|w| w.0 == 0) {
                            worst = Some(Misfit(0, encode_err(e, pos)));
                        }
                    }
                }
            }
            Err(m) => {
                if m.0 == u8::MAX {
                    return Err(m.1);
                }
                if worst.as_ref().is_none_or(|w| m.0 > w.0) {
                    worst = Some(m);
                }
            }
        }
    }
    match (best, worst) {
        // Rebuild with in-block label references for the block encoder to resolve.
        (Some((_, cand)), _) => build_candidate(sel, cand, r, ip, true).map_err(|m| m.1),
        (None, Some(m)) => Err(m.1),
        (None, None) => Err(encode_err("no encoding", pos)),
    }
}

/// The absolute target of a direct branch, if the instruction has one.
pub(crate) fn branch_target(sel: &Selected, r: &dyn Resolve) -> Result<Option<u64>, AsmError> {
    for op in &sel.ops {
        if let Operand::Target(e, _) = op {
            return Ok(Some(r.value(e)?.value));
        }
    }
    Ok(None)
}

/// A prefix byte that GNU as emits on its own when `lock`/`rep` stands alone.
pub(crate) fn prefix_byte(name: &str) -> Option<u8> {
    match name {
        "lock" => Some(0xf0),
        "rep" | "repe" | "repz" => Some(0xf3),
        "repne" | "repnz" => Some(0xf2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(k: K, value: i64, bits: u32) -> Option<OpKind> {
        let v = Value {
            value: value as u64,
            relocatable: false,
        };
        immediate(k, v, Pos::default(), bits)
            .ok()
            .map(|(kind, _)| kind)
    }

    #[test]
    fn immediate_ranges_follow_gas() {
        assert_eq!(fit(K::imm8sex64, 127, 64), Some(OpKind::Immediate8to64));
        assert_eq!(fit(K::imm8sex64, 128, 64), None);
        assert_eq!(fit(K::imm8sex64, -128, 64), Some(OpKind::Immediate8to64));
        // 0xffffffff is -1 as a 32-bit operand, so the sign-extended byte form fits.
        assert_eq!(
            fit(K::imm8sex32, 0xffff_ffff, 32),
            Some(OpKind::Immediate8to32)
        );
        assert_eq!(fit(K::imm8sex32, 0x1_ffff_ffff, 32), None);
        assert_eq!(fit(K::imm8sex16, 0xffff, 16), Some(OpKind::Immediate8to16));
        assert_eq!(fit(K::imm8, 255, 8), Some(OpKind::Immediate8));
        assert_eq!(fit(K::imm8, -128, 8), Some(OpKind::Immediate8));
        assert_eq!(fit(K::imm8, 256, 8), None);
        assert_eq!(fit(K::imm16, 0xffff, 16), Some(OpKind::Immediate16));
        assert_eq!(fit(K::imm32, -1, 32), Some(OpKind::Immediate32));
        assert_eq!(fit(K::imm32, 0x1_0000_0000, 32), None);
        assert_eq!(
            fit(K::imm32sex64, 0x7fff_ffff, 64),
            Some(OpKind::Immediate32to64)
        );
        assert_eq!(fit(K::imm32sex64, 0x8000_0000, 64), None);
        assert_eq!(
            fit(K::imm32sex64, i64::from(i32::MIN), 64),
            Some(OpKind::Immediate32to64)
        );
        assert_eq!(fit(K::imm64, i64::MIN, 64), Some(OpKind::Immediate64));
    }

    #[test]
    fn label_values_never_shrink_to_a_byte() {
        let v = Value {
            value: 4,
            relocatable: true,
        };
        assert!(immediate(K::imm8sex64, v, Pos::default(), 64).is_err());
        assert!(immediate(K::imm32sex64, v, Pos::default(), 64).is_ok());
    }
}
