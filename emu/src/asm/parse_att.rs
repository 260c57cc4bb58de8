//! AT&T operand syntax (GNU `as` default): `%reg`, `$imm`, `disp(base,index,scale)`,
//! `%seg:mem`, `*` for indirect branches, bare expressions as absolute memory or branch
//! targets.

use super::cursor::Cursor;
use super::error::{AsmError, AsmErrorKind, Pos};
use super::expr::{self, ExprSyntax};
use super::lexer::{Punct, TokKind};
use super::operand::{Mem, Operand};
use super::registers;
use iced_x86::Register;

/// Parses one AT&T operand. `branch` is true for `jmp`/`call`/`jcc`, where a bare expression
/// is a direct target rather than an absolute memory operand.
pub(crate) fn parse_operand(
    c: &mut Cursor<'_>,
    syn: ExprSyntax<'_>,
    branch: bool,
) -> Result<Operand, AsmError> {
    let pos = c.pos();
    if c.eat(Punct::Dollar) {
        let e = expr::parse(c, syn)?;
        return Ok(Operand::Imm(e, pos));
    }
    if c.eat(Punct::Star) {
        // Indirect branch through a register or memory.
        let inner_pos = c.pos();
        return match parse_operand(c, syn, false)? {
            op @ (Operand::Reg(..) | Operand::Mem(_)) => Ok(op),
            _ => Err(AsmError::at(
                inner_pos,
                AsmErrorKind::Expected {
                    expected: "a register or memory operand after `*`".into(),
                    found: "an immediate".into(),
                },
            )),
        };
    }
    if c.peek_is(Punct::Percent) {
        let reg = parse_register(c)?;
        if c.peek_is(Punct::Colon) && reg.is_segment_register() {
            c.next();
            let mut m = parse_memory(c, syn, pos)?;
            m.seg = Some(reg);
            return Ok(Operand::Mem(m));
        }
        return Ok(Operand::Reg(reg, pos));
    }
    let starts_with_paren_base = c.peek_is(Punct::LParen)
        && c.peek2()
            .is_some_and(|t| t.is(Punct::Percent) || t.is(Punct::Comma));
    if branch && !starts_with_paren_base {
        let e = expr::parse(c, syn)?;
        if !c.peek_is(Punct::LParen) {
            return Ok(Operand::Target(e, pos));
        }
        let mut m = parse_base_index(c, pos)?;
        m.disp = Some(e);
        return Ok(Operand::Mem(m));
    }
    Ok(Operand::Mem(parse_memory(c, syn, pos)?))
}

/// Parses `%name` into a register.
pub(crate) fn parse_register(c: &mut Cursor<'_>) -> Result<Register, AsmError> {
    let pos = c.pos();
    c.expect(Punct::Percent, "a register")?;
    let name = match c.next() {
        Some(t) => match &t.kind {
            TokKind::Ident(s) => s.clone(),
            TokKind::Num(_) | TokKind::LocalRef { .. } => {
                return Err(AsmError::at(
                    pos,
                    AsmErrorKind::Expected {
                        expected: "a register name after `%`".into(),
                        found: t.describe(),
                    },
                ))
            }
            _ => {
                return Err(AsmError::at(
                    t.pos,
                    AsmErrorKind::Expected {
                        expected: "a register name after `%`".into(),
                        found: t.describe(),
                    },
                ))
            }
        },
        None => return Err(c.expected("a register name after `%`")),
    };
    registers::lookup(&name).ok_or_else(|| AsmError::at(pos, AsmErrorKind::UnknownRegister(name)))
}

/// `disp`, `disp(base,index,scale)` or `(base…)`.
fn parse_memory(c: &mut Cursor<'_>, syn: ExprSyntax<'_>, pos: Pos) -> Result<Mem, AsmError> {
    let paren_first = c.peek_is(Punct::LParen)
        && c.peek2()
            .is_some_and(|t| t.is(Punct::Percent) || t.is(Punct::Comma));
    let disp = if paren_first {
        None
    } else {
        Some(expr::parse(c, syn)?)
    };
    if c.peek_is(Punct::LParen) {
        let mut m = parse_base_index(c, pos)?;
        m.disp = disp;
        return Ok(m);
    }
    Ok(Mem {
        seg: None,
        base: None,
        index: None,
        scale: 1,
        disp,
        size: None,
        pos,
    })
}

/// `(base,index,scale)` with every part optional.
fn parse_base_index(c: &mut Cursor<'_>, pos: Pos) -> Result<Mem, AsmError> {
    c.expect(Punct::LParen, "`(`")?;
    let mut m = Mem {
        seg: None,
        base: None,
        index: None,
        scale: 1,
        disp: None,
        size: None,
        pos,
    };
    if c.peek_is(Punct::Percent) {
        let rpos = c.pos();
        let r = parse_register(c)?;
        check_address_reg(r, rpos, true)?;
        m.base = Some(r);
    }
    if c.eat(Punct::Comma) {
        if c.peek_is(Punct::Percent) {
            let rpos = c.pos();
            let r = parse_register(c)?;
            check_address_reg(r, rpos, false)?;
            m.index = Some(r);
        }
        if c.eat(Punct::Comma) {
            match c.peek().map(|t| &t.kind) {
                Some(TokKind::Num(n @ (1 | 2 | 4 | 8))) => {
                    m.scale = *n as u32;
                    c.next();
                }
                _ => return Err(c.expected("a scale of 1, 2, 4 or 8")),
            }
        }
    }
    c.expect(Punct::RParen, "`)`")?;
    Ok(m)
}

/// Only 64-bit (or 32-bit, with an address-size prefix) GPRs can address memory; `%rip`
/// only as a base.
pub(crate) fn check_address_reg(r: Register, pos: Pos, base: bool) -> Result<(), AsmError> {
    let ok = r.is_gpr64() || r.is_gpr32() || (base && (r == Register::RIP || r == Register::EIP));
    let ok = ok && !(!base && (r == Register::RSP || r == Register::ESP));
    if ok {
        Ok(())
    } else {
        Err(AsmError::at(
            pos,
            AsmErrorKind::Expected {
                expected: if base {
                    "a 64-bit base register (or %rip)".into()
                } else {
                    "a 64-bit index register other than %rsp".into()
                },
                found: format!("%{}", registers::name(r)),
            },
        ))
    }
}
