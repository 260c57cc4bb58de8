//! Assembler directives (`.byte`, `.align`, `.set`, `.intel_syntax`, …), with GNU as
//! meanings for x86: `.align N` takes a byte count, `.p2align N` a power of two.

use super::cursor::Cursor;
use super::error::{AsmError, AsmErrorKind, Pos};
use super::expr::{self, Expr};
use super::lexer::{Punct, TokKind};
use super::program::{ItemKind, Parser};
use super::Syntax;

/// Largest `.zero`/`.skip`/`.align` we accept; guards against `.zero 0xffffffffffff`.
const MAX_FILL: u64 = 1 << 24;

/// Directives accepted and ignored: they only matter to linkers and debuggers.
const IGNORED: &[&str] = &[
    ".type",
    ".size",
    ".file",
    ".ident",
    ".loc",
    ".code64",
    ".local",
    ".weak",
    ".hidden",
    ".cfi_startproc",
    ".cfi_endproc",
    ".cfi_def_cfa_offset",
    ".cfi_offset",
    ".cfi_def_cfa_register",
    ".cfi_def_cfa",
    ".cfi_adjust_cfa_offset",
    ".cfi_rel_offset",
    ".cfi_restore",
    ".cfi_remember_state",
    ".cfi_restore_state",
    ".cfi_sections",
    ".cfi_signal_frame",
    ".previous",
    ".popsection",
];

fn bad(directive: &str, pos: Pos, reason: impl Into<String>) -> AsmError {
    AsmError::at(
        pos,
        AsmErrorKind::BadDirective {
            directive: directive.to_string(),
            reason: reason.into(),
        },
    )
}

/// Parses a directive whose name (with its dot) has been consumed.
pub(crate) fn directive(
    p: &mut Parser,
    name: &str,
    pos: Pos,
    c: &mut Cursor<'_>,
) -> Result<(), AsmError> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        ".byte" => data(p, 1, pos, c),
        ".word" | ".short" | ".hword" | ".2byte" | ".value" => data(p, 2, pos, c),
        ".long" | ".int" | ".4byte" => data(p, 4, pos, c),
        ".quad" | ".8byte" => data(p, 8, pos, c),
        ".ascii" => strings(p, false, pos, c),
        ".asciz" | ".string" => strings(p, true, pos, c),
        ".zero" | ".skip" | ".space" => {
            let n = constant(p, c, &lower)?;
            let fill = if c.eat(Punct::Comma) {
                constant(p, c, &lower)? as u8
            } else {
                0
            };
            c.expect_end("end of line")?;
            if n > MAX_FILL {
                return Err(bad(
                    &lower,
                    pos,
                    format!("size {n} is larger than {MAX_FILL}"),
                ));
            }
            p.reserve(n, &lower, pos)?;
            p.push(ItemKind::Bytes(vec![fill; n as usize]), pos);
            Ok(())
        }
        ".align" | ".balign" | ".p2align" => align(p, &lower, pos, c),
        ".globl" | ".global" => {
            loop {
                match c.next().map(|t| &t.kind) {
                    Some(TokKind::Ident(s)) => p.prog.globals.push(s.clone()),
                    _ => return Err(bad(&lower, pos, "expected a symbol name")),
                }
                if !c.eat(Punct::Comma) {
                    break;
                }
            }
            c.expect_end("end of line")
        }
        ".set" | ".equ" => {
            let npos = c.pos();
            let Some(TokKind::Ident(sym)) = c.next().map(|t| &t.kind) else {
                return Err(AsmError::at(
                    npos,
                    AsmErrorKind::Expected {
                        expected: format!("a symbol name after `{lower}`"),
                        found: "something else".into(),
                    },
                ));
            };
            c.expect(Punct::Comma, "`,` after the symbol name")?;
            let e = expr::parse(c, p.expr_syntax())?;
            c.expect_end("end of line after the expression")?;
            p.define_set(sym.clone(), e, npos)
        }
        ".intel_syntax" => {
            match c.peek_ident().map(str::to_ascii_lowercase).as_deref() {
                None | Some("noprefix") => {}
                Some(_) => {
                    return Err(
                        c.expected("`noprefix` (Intel syntax with `%` prefixes is not supported)")
                    )
                }
            }
            c.next();
            c.expect_end("end of line")?;
            p.syntax = Syntax::Intel;
            Ok(())
        }
        ".att_syntax" => {
            match c.peek_ident().map(str::to_ascii_lowercase).as_deref() {
                None | Some("prefix") => {}
                Some(_) => {
                    return Err(c.expected("`prefix` (AT&T syntax without `%` is not supported)"))
                }
            }
            c.next();
            c.expect_end("end of line")?;
            p.syntax = Syntax::Att;
            Ok(())
        }
        ".text" => {
            p.code = true;
            Ok(())
        }
        ".data" | ".bss" | ".rodata" => {
            p.code = false;
            Ok(())
        }
        ".section" | ".pushsection" => {
            let code = c.peek_ident().is_some_and(|s| s.starts_with(".text"));
            p.code = code;
            while c.next().is_some() {}
            Ok(())
        }
        _ if IGNORED.contains(&lower.as_str()) => {
            while c.next().is_some() {}
            Ok(())
        }
        _ => Err(AsmError::at(
            pos,
            AsmErrorKind::UnknownDirective(name.to_string()),
        )),
    }
}

/// A constant argument: literals and `.set` constants that do not involve labels.
fn constant(p: &Parser, c: &mut Cursor<'_>, directive: &str) -> Result<u64, AsmError> {
    let e = expr::parse(c, p.expr_syntax())?;
    let pos = e.pos();
    constant_value(p, &e, 0)
        .ok_or_else(|| bad(directive, pos, "expected a constant expression (no labels)"))
}

fn constant_value(p: &Parser, e: &Expr, depth: u32) -> Option<u64> {
    if depth > 16 {
        return None;
    }
    struct ConstEnv<'a>(&'a Parser, u32);
    impl expr::Env for ConstEnv<'_> {
        fn lookup(&self, name: &str, _: Pos) -> Result<Option<expr::Value>, AsmError> {
            Ok(self.0.prog.sets.get(name).and_then(|(e, _)| {
                constant_value(self.0, e, self.1 + 1).map(|value| expr::Value {
                    value,
                    relocatable: false,
                })
            }))
        }
        fn dot(&self) -> Option<u64> {
            None
        }
    }
    expr::eval(e, &ConstEnv(p, depth)).ok().map(|v| v.value)
}

fn data(p: &mut Parser, width: u32, pos: Pos, c: &mut Cursor<'_>) -> Result<(), AsmError> {
    let mut exprs = Vec::new();
    if !c.at_end() {
        loop {
            exprs.push(expr::parse(c, p.expr_syntax())?);
            if !c.eat(Punct::Comma) {
                c.expect_end("`,` or end of line")?;
                break;
            }
        }
    }
    p.push(ItemKind::Data { width, exprs }, pos);
    Ok(())
}

fn strings(p: &mut Parser, nul: bool, pos: Pos, c: &mut Cursor<'_>) -> Result<(), AsmError> {
    let mut bytes = Vec::new();
    loop {
        match c.peek().map(|t| &t.kind) {
            Some(TokKind::Str(s)) => {
                bytes.extend_from_slice(s);
                if nul {
                    bytes.push(0);
                }
                c.next();
            }
            _ => return Err(c.expected("a string literal")),
        }
        if !c.eat(Punct::Comma) {
            c.expect_end("`,` or end of line")?;
            break;
        }
    }
    p.push(ItemKind::Bytes(bytes), pos);
    Ok(())
}

fn align(p: &mut Parser, lower: &str, pos: Pos, c: &mut Cursor<'_>) -> Result<(), AsmError> {
    let apos = c.pos();
    let n = constant(p, c, lower)?;
    let align = if lower == ".p2align" {
        if n > 24 {
            return Err(bad(lower, apos, format!("2^{n} is larger than {MAX_FILL}")));
        }
        1u64 << n
    } else {
        if n == 0 || !n.is_power_of_two() || n > MAX_FILL {
            return Err(bad(
                lower,
                apos,
                format!("alignment {n} is not a power of two up to {MAX_FILL}"),
            ));
        }
        n
    };
    let mut fill = None;
    let mut max = None;
    if c.eat(Punct::Comma) {
        if !c.peek_is(Punct::Comma) {
            fill = Some(constant(p, c, lower)? as u8);
        }
        if c.eat(Punct::Comma) {
            max = Some(constant(p, c, lower)?);
        }
    }
    c.expect_end("end of line")?;
    // Padding is at most `align - 1` bytes (fewer with a `max`).
    p.reserve(max.map_or(align - 1, |m| m.min(align - 1)), lower, pos)?;
    if fill.is_none() && !p.code {
        fill = Some(0);
    }
    p.push(ItemKind::Align { align, fill, max }, pos);
    Ok(())
}
