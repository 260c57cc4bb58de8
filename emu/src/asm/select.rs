//! Form selection, part one: which table encodings fit the written operands' kinds and
//! sizes. What remains is chosen at layout time, when values are known (immediate ranges,
//! shortest encoding); see `build.rs`.

use super::error::{AsmError, AsmErrorKind, Pos};
use super::expr::Expr;
use super::operand::{Mem, Operand};
use super::registers::gpr_bits;
use super::table::{self, kind_reg_bits, Form};
use iced_x86::{Mnemonic, OpCodeOperandKind as K, Register};

/// A `rep`-family prefix written on the same line as the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rep {
    /// `rep`, `repe`, `repz`.
    Repe,
    /// `repne`, `repnz`.
    Repne,
}

/// Prefixes written on the same line, with positions for errors.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefixes {
    pub(crate) lock: Option<Pos>,
    pub(crate) rep: Option<(Rep, Pos, String)>,
}

/// An encoding that fits the operands; `swapped` for commutative `test`/`xchg` written in
/// the order the table does not have.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) form: &'static Form,
    pub(crate) swapped: bool,
}

/// An instruction whose encoding is chosen among `candidates` once values are known.
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    /// Operands in Intel order.
    pub(crate) ops: Vec<Operand>,
    /// Encodings that fit, all of the same operand size, in `Code` order.
    pub(crate) candidates: Vec<Candidate>,
    /// Same-line prefixes.
    pub(crate) prefixes: Prefixes,
}

impl Selected {
    /// The operands in the order a candidate's kinds expect.
    pub(crate) fn ops_for(&self, c: &Candidate) -> Vec<&Operand> {
        let mut v: Vec<&Operand> = self.ops.iter().collect();
        if c.swapped {
            v.reverse();
        }
        v
    }
}

/// Describes what an operand kind accepts, for "expected X" messages.
fn describe_kind(k: K) -> String {
    let bits = kind_reg_bits(k);
    match k {
        K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem => {
            format!("{}-bit register or memory operand", bits.unwrap_or(0))
        }
        K::al => "%al".into(),
        K::cl => "%cl".into(),
        K::ax => "%ax".into(),
        K::dx => "%dx".into(),
        K::eax => "%eax".into(),
        K::rax => "%rax".into(),
        K::es => "%es".into(),
        K::cs => "%cs".into(),
        K::ss => "%ss".into(),
        K::ds => "%ds".into(),
        K::fs => "%fs".into(),
        K::gs => "%gs".into(),
        K::mem | K::mem_offs => "memory operand".into(),
        K::seg_reg => "segment register".into(),
        K::cr_reg => "control register".into(),
        K::dr_reg => "debug register".into(),
        K::imm8_const_1 => "the immediate 1".into(),
        K::br64_1 | K::br64_4 => "branch target".into(),
        _ if bits.is_some() => format!("{}-bit register", bits.unwrap_or(0)),
        _ => "immediate".into(),
    }
}

/// What family of operand a kind accepts, so that a register is told which registers would
/// do rather than every alternative form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Gpr,
    Special,
    Mem,
    Imm,
    Target,
}

fn category(k: K) -> Category {
    match k {
        K::mem | K::mem_offs => Category::Mem,
        K::br64_1 | K::br64_4 => Category::Target,
        K::seg_reg | K::cr_reg | K::dr_reg | K::es | K::cs | K::ss | K::ds | K::fs | K::gs => {
            Category::Special
        }
        _ if is_imm_kind(k) => Category::Imm,
        _ => Category::Gpr,
    }
}

/// "expected …" text: the alternatives that accept the found operand's family (a register
/// where a wider register is needed, memory where a differently sized memory operand is),
/// otherwise all of them; "N-bit register" is folded into "N-bit register or memory
/// operand".
fn expected_text(alternatives: &[(String, Category)], op: &Operand) -> String {
    let accepts = |d: &str, c: Category| match op {
        Operand::Reg(r, _) if gpr_bits(*r).is_some() => c == Category::Gpr,
        Operand::Reg(..) => c == Category::Special,
        Operand::Mem(_) => c == Category::Mem || d.ends_with("or memory operand"),
        Operand::Imm(..) => c == Category::Imm,
        Operand::Target(..) => c == Category::Target,
    };
    let mut pick: Vec<&str> = alternatives
        .iter()
        .filter(|(d, c)| accepts(d, *c))
        .map(|(d, _)| d.as_str())
        .collect();
    if pick.is_empty() {
        pick = alternatives.iter().map(|(d, _)| d.as_str()).collect();
    }
    let all = pick.clone();
    pick.retain(|d| !all.contains(&format!("{d} or memory operand").as_str()));
    if pick.is_empty() {
        return "different operands".to_string();
    }
    pick.iter()
        .map(|s| with_article(s))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// GNU as accepts a `q` suffix on the descriptor-table instructions, which have no operand
/// size of their own (and rejects suffixes on other size-less instructions like `invlpg`).
fn descriptor_table_q(m: Mnemonic, f: &Form, suffix: Option<u32>) -> bool {
    f.size.is_none()
        && suffix == Some(64)
        && matches!(
            m,
            Mnemonic::Lidt | Mnemonic::Lgdt | Mnemonic::Sidt | Mnemonic::Sgdt
        )
}

fn with_article(s: &str) -> String {
    if s.starts_with('%') || s.starts_with("the ") {
        s.to_string()
    } else if s.starts_with(['8', 'a', 'e', 'i', 'o', 'u']) {
        format!("an {s}")
    } else {
        format!("a {s}")
    }
}

fn is_imm_kind(k: K) -> bool {
    matches!(
        k,
        K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
    )
}

fn mem_fits(m: &Mem, form: &Form, exact: bool) -> bool {
    match (m.size, form.mem_bits) {
        (None, _) => true,
        (Some(s), Some(f)) => s == f,
        (Some(_), None) => !exact,
    }
}

/// Does operand `op` fit kind `k` of `form`?
fn fits(k: K, op: &Operand, form: &Form, movabs: bool) -> bool {
    match op {
        Operand::Reg(r, _) => match k {
            K::al => *r == Register::AL,
            K::cl => *r == Register::CL,
            K::ax => *r == Register::AX,
            K::dx => *r == Register::DX,
            K::eax => *r == Register::EAX,
            K::rax => *r == Register::RAX,
            K::es => *r == Register::ES,
            K::cs => *r == Register::CS,
            K::ss => *r == Register::SS,
            K::ds => *r == Register::DS,
            K::fs => *r == Register::FS,
            K::gs => *r == Register::GS,
            K::seg_reg => r.is_segment_register(),
            K::cr_reg => r.is_cr(),
            K::dr_reg => r.is_dr(),
            _ => kind_reg_bits(k).is_some_and(|b| gpr_bits(*r) == Some(b)),
        },
        Operand::Mem(m) => match k {
            K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem => mem_fits(m, form, true),
            K::mem => mem_fits(m, form, false),
            K::mem_offs => movabs && m.base.is_none() && m.index.is_none(),
            _ => false,
        },
        Operand::Imm(e, _) => match k {
            K::imm8_const_1 => !e.has_symbols() && e.literal_value() == Some(1),
            _ => is_imm_kind(k),
        },
        Operand::Target(..) => matches!(k, K::br64_1 | K::br64_4),
    }
}

/// Rewrites GNU shorthand into the operand lists iced's table has: `shl %rax` is a shift by
/// one, `imul $3, %rax` is `imul rax, rax, 3`.
fn normalise(m: Mnemonic, ops: &mut Vec<Operand>) {
    let shift = matches!(
        m,
        Mnemonic::Shl
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
    );
    if shift && ops.len() == 1 {
        let pos = ops[0].pos();
        ops.push(Operand::Imm(Expr::Num(1, pos), pos));
    }
    if m == Mnemonic::Imul && ops.len() == 2 && matches!(ops[1], Operand::Imm(..)) {
        let dst = ops[0].clone();
        ops.insert(1, dst);
    }
}

/// Chooses the candidate encodings for an instruction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn select(
    written: &str,
    pos: Pos,
    mnemonic: Mnemonic,
    suffix: Option<u32>,
    src_size: Option<u32>,
    movabs: bool,
    mut ops: Vec<Operand>,
    prefixes: Prefixes,
) -> Result<Selected, AsmError> {
    // GNU as encodes `int $3` as the one-byte breakpoint `int3` (CC).
    let int3 = mnemonic == Mnemonic::Int
        && matches!(ops.as_slice(), [Operand::Imm(e, _)] if !e.has_symbols() && e.literal_value() == Some(3));
    let mnemonic = if int3 {
        ops.clear();
        Mnemonic::Int3
    } else {
        mnemonic
    };
    normalise(mnemonic, &mut ops);
    if let (Some(src), Some(Operand::Mem(m))) = (src_size, ops.get_mut(1)) {
        m.size.get_or_insert(src);
    }
    let all = table::forms(mnemonic);
    let counted: Vec<&'static Form> = all.iter().filter(|f| f.kinds.len() == ops.len()).collect();
    if counted.is_empty() {
        let mut counts: Vec<usize> = all.iter().map(|f| f.kinds.len()).collect();
        counts.sort_unstable();
        counts.dedup();
        let expected = counts
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(AsmError::at(
            pos,
            AsmErrorKind::OperandCount {
                mnemonic: written.to_string(),
                expected,
                found: ops.len(),
            },
        ));
    }
    let movabs_ok = |f: &Form| {
        let special = f.kinds.iter().any(|&k| k == K::mem_offs || k == K::imm64);
        if movabs {
            special
        } else {
            !f.kinds.contains(&K::mem_offs)
        }
    };
    let sized: Vec<&'static Form> = counted
        .into_iter()
        .filter(|f| movabs_ok(f))
        .filter(|f| suffix.is_none() || f.size == suffix || descriptor_table_q(mnemonic, f, suffix))
        .collect();
    if sized.is_empty() {
        return Err(AsmError::at(
            pos,
            AsmErrorKind::BadOperands {
                mnemonic: written.to_string(),
                reason: "this operand-size suffix is not valid for the instruction".into(),
            },
        ));
    }
    let commutative = matches!(mnemonic, Mnemonic::Test | Mnemonic::Xchg) && ops.len() == 2;
    let mut cands: Vec<Candidate> = Vec::new();
    let mut furthest: Option<(usize, Vec<(String, Category)>)> = None;
    for &form in &sized {
        for swapped in [false, true] {
            if swapped && !commutative {
                continue;
            }
            let order: Vec<&Operand> = if swapped {
                ops.iter().rev().collect()
            } else {
                ops.iter().collect()
            };
            let fail = order
                .iter()
                .zip(&form.kinds)
                .position(|(op, &k)| !fits(k, op, form, movabs));
            match fail {
                None => cands.push(Candidate { form, swapped }),
                Some(i) if !swapped => {
                    let desc = (describe_kind(form.kinds[i]), category(form.kinds[i]));
                    match &mut furthest {
                        Some((j, v)) if *j == i => {
                            if !v.contains(&desc) {
                                v.push(desc);
                            }
                        }
                        Some((j, _)) if *j > i => {}
                        _ => furthest = Some((i, vec![desc])),
                    }
                }
                Some(_) => {}
            }
        }
    }
    if cands.is_empty() {
        let (i, expected) = furthest.unwrap_or((0, Vec::new()));
        let op = &ops[i.min(ops.len().saturating_sub(1))];
        let expected = expected_text(&expected, op);
        return Err(AsmError::at(
            op.pos(),
            AsmErrorKind::Expected {
                expected,
                found: op.describe(),
            },
        ));
    }
    // Prefer near branches; the block encoder shortens them when the target is close.
    if cands.iter().any(|c| c.form.kinds.contains(&K::br64_4)) {
        cands.retain(|c| !c.form.kinds.contains(&K::br64_1));
    }
    let cands = pick_size(written, pos, &ops, cands)?;
    let cands = check_prefixes(written, &prefixes, cands, &ops)?;
    Ok(Selected {
        ops,
        candidates: cands,
        prefixes,
    })
}

/// Keeps candidates of one operand size: registers usually fixed it already; otherwise
/// long-mode defaults (64-bit stack and branch operations, 32-bit elsewhere) decide, and a
/// memory operand of unknown size is an error as in the brief (GNU as only warns).
fn pick_size(
    written: &str,
    pos: Pos,
    ops: &[Operand],
    cands: Vec<Candidate>,
) -> Result<Vec<Candidate>, AsmError> {
    let mut sizes: Vec<Option<u32>> = cands.iter().map(|c| c.form.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.len() <= 1 {
        return Ok(cands);
    }
    let default64 = cands
        .iter()
        .any(|c| c.form.default64 && c.form.size == Some(64));
    let unsized_mem = ops
        .iter()
        .any(|o| matches!(o, Operand::Mem(m) if m.size.is_none()));
    let want = if default64 {
        Some(64)
    } else if unsized_mem {
        return Err(AsmError::at(
            pos,
            AsmErrorKind::AmbiguousSize(written.to_string()),
        ));
    } else if sizes.contains(&Some(32)) {
        Some(32)
    } else {
        sizes.last().copied().flatten()
    };
    Ok(cands.into_iter().filter(|c| c.form.size == want).collect())
}

/// Same-line `lock` needs a lockable instruction with a memory destination and `rep` a
/// string instruction (or `ret`/`nop`, as GNU as allows): both are GNU as errors too.
fn check_prefixes(
    written: &str,
    p: &Prefixes,
    mut cands: Vec<Candidate>,
    ops: &[Operand],
) -> Result<Vec<Candidate>, AsmError> {
    let bad = |pos: Pos, prefix: &str| {
        AsmError::at(
            pos,
            AsmErrorKind::BadPrefix {
                prefix: prefix.to_string(),
                mnemonic: written.to_string(),
            },
        )
    };
    if let Some(lpos) = p.lock {
        let mem_dest = matches!(ops.first(), Some(Operand::Mem(_)));
        cands.retain(|c| c.form.code.op_code().can_use_lock_prefix() && mem_dest && !c.swapped);
        if cands.is_empty() {
            return Err(bad(lpos, "lock"));
        }
    }
    if let Some((_, rpos, text)) = &p.rep {
        cands.retain(|c| {
            let info = c.form.code.op_code();
            info.can_use_rep_prefix()
                || info.can_use_repne_prefix()
                || matches!(c.form.code.mnemonic(), Mnemonic::Ret | Mnemonic::Nop)
        });
        if cands.is_empty() {
            return Err(bad(*rpos, text));
        }
    }
    Ok(cands)
}
