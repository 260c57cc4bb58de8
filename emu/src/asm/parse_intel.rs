//! Intel operand syntax as GNU `as` accepts it with `.intel_syntax noprefix`:
//! `qword ptr [rsp+8]`, `gs:[0x10]`, `[rip+sym]`, `offset sym`, bare registers, and bare
//! expressions. As in `as`, a bare expression that names a label or scenario symbol is a
//! memory operand (use `offset sym` for the address as an immediate); a bare constant is
//! an immediate.

use super::cursor::Cursor;
use super::error::{AsmError, AsmErrorKind, Pos};
use super::expr::{self, BinOp, Expr, ExprSyntax, UnOp};
use super::lexer::{Punct, TokKind};
use super::operand::{Mem, Operand};
use super::parse_att::check_address_reg;
use super::registers;
use iced_x86::Register;

/// Size keywords before `ptr`, in bits.
const SIZE_WORDS: &[(&str, u32)] = &[
    ("byte", 8),
    ("word", 16),
    ("dword", 32),
    ("fword", 48),
    ("qword", 64),
    ("tbyte", 80),
    ("tword", 80),
    ("oword", 128),
    ("xmmword", 128),
];

/// Parses one Intel operand. `branch` is true for `jmp`/`call`/`jcc`; `is_constant` tells
/// whether a name is a `.set` constant (so that `mov eax, CONST` is an immediate).
pub(crate) fn parse_operand(
    c: &mut Cursor<'_>,
    syn: ExprSyntax<'_>,
    branch: bool,
    is_constant: &dyn Fn(&str) -> bool,
) -> Result<Operand, AsmError> {
    let pos = c.pos();
    if branch {
        // `jmp short label` / `jmp near ptr label`: the block encoder picks the size anyway.
        if let Some(w) = c.peek_ident() {
            if w.eq_ignore_ascii_case("short") || w.eq_ignore_ascii_case("near") {
                c.next();
                if c.peek_ident()
                    .is_some_and(|p| p.eq_ignore_ascii_case("ptr"))
                {
                    c.next();
                }
            }
        }
    }
    let mut size = None;
    if let Some(word) = c.peek_ident() {
        let lower = word.to_ascii_lowercase();
        if let Some(&(_, bits)) = SIZE_WORDS.iter().find(|(w, _)| *w == lower) {
            let next_is_ptr = c.peek2().is_some_and(
                |t| matches!(&t.kind, TokKind::Ident(s) if s.eq_ignore_ascii_case("ptr")),
            );
            let next_is_mem = c.peek2().is_some_and(|t| t.is(Punct::LBracket));
            if next_is_ptr || next_is_mem {
                c.next();
                if next_is_ptr {
                    c.next();
                }
                size = Some(bits);
            }
        } else if lower == "offset" {
            c.next();
            let e = expr::parse(c, syn)?;
            return Ok(Operand::Imm(e, pos));
        }
    }
    // Segment override: `gs:[…]` or `gs:0x10`.
    let mut seg = None;
    if let (Some(name), Some(colon)) = (c.peek_ident(), c.peek2()) {
        if colon.is(Punct::Colon) {
            if let Some(r) = registers::lookup(name).filter(|r| r.is_segment_register()) {
                c.next();
                c.next();
                seg = Some(r);
            }
        }
    }
    if seg.is_none() && size.is_none() {
        if let Some(name) = c.peek_ident() {
            if let Some(r) = registers::lookup(name) {
                c.next();
                return Ok(Operand::Reg(r, pos));
            }
        }
    }
    if c.peek_is(Punct::LBracket) {
        let mut m = parse_bracket(c, syn, pos)?;
        m.seg = seg;
        m.size = size;
        return Ok(Operand::Mem(m));
    }
    if !matches!(
        c.peek().map(|t| &t.kind),
        Some(
            TokKind::Ident(_)
                | TokKind::Num(_)
                | TokKind::LocalRef { .. }
                | TokKind::Punct(
                    Punct::LParen | Punct::Minus | Punct::Plus | Punct::Tilde | Punct::Bang
                )
        )
    ) {
        return Err(c.expected("an operand"));
    }
    let e = expr::parse(c, syn)?;
    if c.peek_is(Punct::LBracket) {
        // `disp[base+index]`
        let mut m = parse_bracket(c, syn, pos)?;
        m.disp = Some(match m.disp.take() {
            Some(d) => Expr::Bin(BinOp::Add, Box::new(e), Box::new(d), pos),
            None => e,
        });
        m.seg = seg;
        m.size = size;
        return Ok(Operand::Mem(m));
    }
    let mut has_address = false;
    e.for_each_sym(&mut |name, _| has_address |= !is_constant(name));
    if seg.is_none() && size.is_none() {
        if branch {
            return Ok(Operand::Target(e, pos));
        }
        if !has_address {
            return Ok(Operand::Imm(e, pos));
        }
    }
    Ok(Operand::Mem(Mem {
        seg,
        base: None,
        index: None,
        scale: 1,
        disp: Some(e),
        size,
        pos,
    }))
}

/// `[ term (+|-) term … ]` where a term is a register, `reg*scale`, `scale*reg` or an
/// expression of higher precedence than `+`.
fn parse_bracket(c: &mut Cursor<'_>, syn: ExprSyntax<'_>, pos: Pos) -> Result<Mem, AsmError> {
    c.expect(Punct::LBracket, "`[`")?;
    let mut m = Mem {
        seg: None,
        base: None,
        index: None,
        scale: 1,
        disp: None,
        size: None,
        pos,
    };
    let mut first = true;
    // Terms join into one left-deep displacement tree; cap them like the
    // operators of any other expression (see `expr::MAX_OPERATORS`).
    let mut terms = 0u32;
    loop {
        let sign_pos = c.pos();
        terms += 1;
        if terms > expr::MAX_OPERATORS {
            return Err(AsmError::at(
                sign_pos,
                AsmErrorKind::BadExpression(format!(
                    "memory operand has more than {} terms",
                    expr::MAX_OPERATORS
                )),
            ));
        }
        let negative = if first {
            c.eat(Punct::Minus)
        } else if c.eat(Punct::Plus) {
            false
        } else if c.eat(Punct::Minus) {
            true
        } else {
            break;
        };
        first = false;
        let term_pos = c.pos();
        // `scale*reg`
        if let (Some(TokKind::Num(n)), Some(star)) = (c.peek().map(|t| &t.kind), c.peek2()) {
            if star.is(Punct::Star) {
                let mark = c.mark();
                c.next();
                c.next();
                if let Some(r) = c.peek_ident().and_then(registers::lookup) {
                    let rpos = c.pos();
                    c.next();
                    set_index(&mut m, r, *n, rpos, term_pos, negative)?;
                    continue;
                }
                c.reset(mark);
            }
        }
        if let Some(r) = c.peek_ident().and_then(registers::lookup) {
            let rpos = c.pos();
            c.next();
            if r.is_segment_register() && c.eat(Punct::Colon) {
                m.seg = Some(r);
                first = true;
                continue;
            }
            if c.eat(Punct::Star) {
                let spos = c.pos();
                let n = match c.next().map(|t| &t.kind) {
                    Some(TokKind::Num(n)) => *n,
                    _ => {
                        return Err(AsmError::at(
                            spos,
                            AsmErrorKind::Expected {
                                expected: "a scale of 1, 2, 4 or 8".into(),
                                found: "something else".into(),
                            },
                        ))
                    }
                };
                set_index(&mut m, r, n, rpos, spos, negative)?;
                continue;
            }
            if negative {
                return Err(AsmError::at(
                    sign_pos,
                    AsmErrorKind::Expected {
                        expected: "`+` before a register".into(),
                        found: "`-`".into(),
                    },
                ));
            }
            if m.base.is_none() {
                check_address_reg(r, rpos, true)?;
                m.base = Some(r);
            } else {
                set_index(&mut m, r, 1, rpos, rpos, false)?;
            }
            continue;
        }
        let t = expr::parse_level(c, syn, 2)?;
        let t = if negative {
            Expr::Un(UnOp::Neg, Box::new(t), sign_pos)
        } else {
            t
        };
        m.disp = Some(match m.disp.take() {
            Some(d) => Expr::Bin(BinOp::Add, Box::new(d), Box::new(t), term_pos),
            None => t,
        });
    }
    c.expect(Punct::RBracket, "`+`, `-` or `]`")?;
    Ok(m)
}

fn set_index(
    m: &mut Mem,
    r: Register,
    scale: u64,
    rpos: Pos,
    spos: Pos,
    negative: bool,
) -> Result<(), AsmError> {
    if negative {
        return Err(AsmError::at(
            rpos,
            AsmErrorKind::Expected {
                expected: "a positive index register".into(),
                found: "a negated register".into(),
            },
        ));
    }
    if m.index.is_some() {
        return Err(AsmError::at(
            rpos,
            AsmErrorKind::Expected {
                expected: "at most one index register".into(),
                found: format!("another register `{}`", registers::name(r)),
            },
        ));
    }
    if !matches!(scale, 1 | 2 | 4 | 8) {
        return Err(AsmError::at(
            spos,
            AsmErrorKind::Expected {
                expected: "a scale of 1, 2, 4 or 8".into(),
                found: format!("{scale}"),
            },
        ));
    }
    check_address_reg(r, rpos, false)?;
    m.index = Some(r);
    m.scale = scale as u32;
    Ok(())
}
