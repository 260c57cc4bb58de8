//! Constant expressions: parsing with GNU `as` precedence and evaluation against labels,
//! `.set` symbols and scenario symbols.
//!
//! GNU `as` precedence, highest first: unary `- ~ ! +`; `* / % << >>`; `| & ^`; `+ -`.
//! (Yes, `|` binds tighter than `+` in `as`; we follow `as`, not C.) Arithmetic is 64-bit
//! two's complement, as in `as`.

use super::cursor::Cursor;
pub(crate) use super::error::Pos;
use super::error::{AsmError, AsmErrorKind};
use super::lexer::{Punct, TokKind, Token};

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Shl,
    Shr,
    Or,
    And,
    Xor,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Not,
    LogNot,
    /// `*(uN*)X` or `*X`: the little-endian value of this many bytes at address X, read
    /// through [`Env::load`]. Only the debugger's syntax produces it.
    Load(u8),
}

/// An expression tree; every node keeps the position of its token for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// A literal.
    Num(u64, Pos),
    /// A name: label, `.set` symbol, scenario symbol or renamed numeric local label.
    Sym(String, Pos),
    /// `.`, the address of the current statement.
    Dot(Pos),
    /// A unary operation; the position is the operator's.
    Un(UnOp, Box<Expr>, Pos),
    /// A binary operation; the position is the operator's.
    Bin(BinOp, Box<Expr>, Box<Expr>, Pos),
}

impl Expr {
    /// Where the expression starts (for errors about the whole expression).
    pub(crate) fn pos(&self) -> Pos {
        match self {
            Expr::Num(_, p) | Expr::Sym(_, p) | Expr::Dot(p) | Expr::Un(_, _, p) => *p,
            Expr::Bin(_, l, _, _) => l.pos(),
        }
    }

    /// Calls `f` for every symbol name referenced, in source order. A loop over
    /// an explicit stack, so a deep tree costs heap, not call stack.
    pub(crate) fn for_each_sym(&self, f: &mut dyn FnMut(&str, Pos)) {
        let mut todo = vec![self];
        while let Some(e) = todo.pop() {
            match e {
                Expr::Num(..) | Expr::Dot(_) => {}
                Expr::Sym(s, p) => f(s, *p),
                Expr::Un(_, e, _) => todo.push(e),
                Expr::Bin(_, l, r, _) => {
                    todo.push(r);
                    todo.push(l);
                }
            }
        }
    }

    /// True if the expression references any name or `.` (so its value is an address or
    /// depends on the program, not just literals).
    pub(crate) fn has_symbols(&self) -> bool {
        let mut todo = vec![self];
        while let Some(e) = todo.pop() {
            match e {
                Expr::Num(..) => {}
                Expr::Sym(..) | Expr::Dot(_) => return true,
                Expr::Un(_, e, _) => todo.push(e),
                Expr::Bin(_, l, r, _) => {
                    todo.push(r);
                    todo.push(l);
                }
            }
        }
        false
    }

    /// The value if the expression is literals only.
    pub(crate) fn literal_value(&self) -> Option<u64> {
        eval(self, &NoEnv).ok().map(|v| v.value)
    }
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Value {
    /// 64-bit two's complement value.
    pub(crate) value: u64,
    /// True if the value depends on the address of a label in this assembly (GNU `as`
    /// would emit a relocation, so encodings must not shrink with the value).
    pub(crate) relocatable: bool,
}

/// Where names get their values during evaluation.
pub(crate) trait Env {
    /// The value of a name, or `None` if it is undefined.
    fn lookup(&self, name: &str, pos: Pos) -> Result<Option<Value>, AsmError>;
    /// The value of `.`.
    fn dot(&self) -> Option<u64>;
    /// The `size`-byte value at address `addr`, for `*(uN*)ADDR`. The assembler has
    /// no memory to read, so only the debugger's environment overrides this.
    fn load(&self, addr: u64, size: u8, pos: Pos) -> Result<u64, AsmError> {
        let _ = (addr, size);
        Err(AsmError::at(
            pos,
            AsmErrorKind::BadExpression("memory cannot be read here".into()),
        ))
    }
}

/// An environment with no names, for literal-only expressions.
struct NoEnv;

impl Env for NoEnv {
    fn lookup(&self, _: &str, _: Pos) -> Result<Option<Value>, AsmError> {
        Ok(None)
    }
    fn dot(&self) -> Option<u64> {
        None
    }
}

/// Evaluates an expression: a post-order walk over an explicit stack (operands
/// left to right, so the first error in source order is the one reported), so
/// the depth of the tree costs heap, not call stack.
pub(crate) fn eval(e: &Expr, env: &dyn Env) -> Result<Value, AsmError> {
    enum Work<'a> {
        Visit(&'a Expr),
        Apply(&'a Expr),
    }
    let mut work = vec![Work::Visit(e)];
    let mut vals: Vec<Value> = Vec::new();
    while let Some(w) = work.pop() {
        match w {
            Work::Visit(e) => match e {
                Expr::Un(_, inner, _) => {
                    work.push(Work::Apply(e));
                    work.push(Work::Visit(inner));
                }
                Expr::Bin(_, l, r, _) => {
                    work.push(Work::Apply(e));
                    work.push(Work::Visit(r));
                    work.push(Work::Visit(l));
                }
                leaf => vals.push(leaf_value(leaf, env)?),
            },
            Work::Apply(Expr::Un(UnOp::Load(size), _, p)) => {
                let v = pop(&mut vals);
                vals.push(Value {
                    value: env.load(v.value, *size, *p)?,
                    relocatable: false,
                });
            }
            Work::Apply(Expr::Un(op, _, _)) => {
                let v = pop(&mut vals);
                vals.push(unary(*op, v));
            }
            Work::Apply(Expr::Bin(op, _, _, p)) => {
                let b = pop(&mut vals);
                let a = pop(&mut vals);
                vals.push(binary(*op, a, b, *p)?);
            }
            Work::Apply(leaf) => vals.push(leaf_value(leaf, env)?),
        }
    }
    Ok(pop(&mut vals))
}

/// The top operand. The walk pushes one value per finished subtree, so an
/// operator always finds its operands; an empty stack would be a broken walk.
fn pop(vals: &mut Vec<Value>) -> Value {
    debug_assert!(!vals.is_empty(), "expression walk lost an operand");
    vals.pop().unwrap_or(Value {
        value: 0,
        relocatable: false,
    })
}

/// The value of a literal, a name or `.`.
fn leaf_value(e: &Expr, env: &dyn Env) -> Result<Value, AsmError> {
    Ok(match e {
        Expr::Num(n, _) => Value {
            value: *n,
            relocatable: false,
        },
        Expr::Sym(s, p) => match env.lookup(s, *p)? {
            Some(v) => v,
            None if s.contains('\u{2}') => {
                let kind = AsmErrorKind::UndefinedLocalLabel(display_name(s));
                return Err(AsmError::at(*p, kind));
            }
            None => {
                return Err(AsmError::at(
                    *p,
                    AsmErrorKind::UndefinedSymbol(display_name(s)),
                ))
            }
        },
        Expr::Dot(p) => match env.dot() {
            Some(v) => Value {
                value: v,
                relocatable: true,
            },
            None => {
                return Err(AsmError::at(
                    *p,
                    AsmErrorKind::BadExpression("`.` is not available here".into()),
                ))
            }
        },
        Expr::Un(..) | Expr::Bin(..) => unreachable!("leaf_value is only called on leaves"),
    })
}

fn unary(op: UnOp, v: Value) -> Value {
    let value = match op {
        UnOp::Neg => v.value.wrapping_neg(),
        UnOp::Not => !v.value,
        UnOp::LogNot => u64::from(v.value == 0),
        // Loads are applied in `eval`, which has the environment.
        UnOp::Load(_) => v.value,
    };
    Value {
        value,
        relocatable: v.relocatable,
    }
}

fn binary(op: BinOp, a: Value, b: Value, p: Pos) -> Result<Value, AsmError> {
    let (x, y) = (a.value, b.value);
    let div0 = || AsmError::at(p, AsmErrorKind::BadExpression("division by zero".into()));
    let value = match op {
        BinOp::Add => x.wrapping_add(y),
        BinOp::Sub => x.wrapping_sub(y),
        BinOp::Mul => x.wrapping_mul(y),
        BinOp::Div => (x as i64).checked_div(y as i64).ok_or_else(div0)? as u64,
        BinOp::Rem => (x as i64).checked_rem(y as i64).ok_or_else(div0)? as u64,
        BinOp::Shl => {
            if y >= 64 {
                0
            } else {
                x << y
            }
        }
        BinOp::Shr => {
            if y >= 64 {
                0
            } else {
                x >> y
            }
        }
        BinOp::Or => x | y,
        BinOp::And => x & y,
        BinOp::Xor => x ^ y,
    };
    // The difference of two addresses is a constant, as in `as`.
    let relocatable = match op {
        BinOp::Sub => a.relocatable != b.relocatable,
        _ => a.relocatable || b.relocatable,
    };
    Ok(Value { value, relocatable })
}

/// Names of numeric local labels are internal (`1\u{2}3` is the third `1:`); show them as
/// the user wrote them.
pub(crate) fn display_name(s: &str) -> String {
    match s.split_once('\u{2}') {
        Some((n, _)) => n.to_string(),
        None => s.to_string(),
    }
}

/// How numeric local label references (`1f`, `1b`) become unique names.
pub(crate) trait LocalNames {
    /// The internal name for a reference to local label `n`.
    fn local_ref(&self, n: u64, forward: bool) -> String;
}

/// Parser options that differ between the syntaxes.
#[derive(Clone, Copy)]
pub(crate) struct ExprSyntax<'a> {
    /// In AT&T syntax `%` introduces a register, so it is not the remainder operator.
    pub(crate) percent_is_rem: bool,
    /// Renames numeric local label references.
    pub(crate) locals: &'a dyn LocalNames,
    /// The debugger's additions: `*(u8*)X` .. `*(u64*)X` and `*X` read memory, and
    /// `%NAME` is the name NAME (a register).
    pub(crate) debugger: bool,
}

/// Binary operator precedence levels (GNU `as`): 1 = `+ -`, 2 = `| & ^`, 3 = `* / % << >>`.
fn bin_op(p: Punct, syn: ExprSyntax<'_>) -> Option<(BinOp, u8)> {
    Some(match p {
        Punct::Plus => (BinOp::Add, 1),
        Punct::Minus => (BinOp::Sub, 1),
        Punct::Pipe => (BinOp::Or, 2),
        Punct::Amp => (BinOp::And, 2),
        Punct::Caret => (BinOp::Xor, 2),
        Punct::Star => (BinOp::Mul, 3),
        Punct::Slash => (BinOp::Div, 3),
        Punct::Percent if syn.percent_is_rem => (BinOp::Rem, 3),
        Punct::Shl => (BinOp::Shl, 3),
        Punct::Shr => (BinOp::Shr, 3),
        _ => return None,
    })
}

/// Parses a full expression.
pub(crate) fn parse(c: &mut Cursor<'_>, syn: ExprSyntax<'_>) -> Result<Expr, AsmError> {
    parse_level(c, syn, 1)
}

/// Parses an expression whose binary operators all have at least `min` precedence (used by
/// the Intel parser to read one `+`-separated term of an address).
pub(crate) fn parse_level(
    c: &mut Cursor<'_>,
    syn: ExprSyntax<'_>,
    min: u8,
) -> Result<Expr, AsmError> {
    let mut ops = 0;
    parse_binary(c, syn, min, 0, &mut ops)
}

/// Nesting limit so that hostile input cannot overflow the stack.
const MAX_DEPTH: u32 = 64;

/// Operators allowed in one expression. Parsing a chain like `1+1+…+1` is a loop,
/// but it builds a left-deep tree, and evaluating, walking, comparing and dropping
/// that tree recurse once per operator: without a cap a long enough line overflows
/// the stack. Bounding the operators bounds the depth of every tree, so all those
/// walks stay recursive and simple. Real code uses a handful.
pub(crate) const MAX_OPERATORS: u32 = 1000;

fn too_deep(c: &Cursor<'_>) -> AsmError {
    AsmError::at(
        c.pos(),
        AsmErrorKind::BadExpression(format!(
            "expression nested more than {MAX_DEPTH} levels deep"
        )),
    )
}

/// Counts one more operator, failing at the operator that passes the cap.
fn count_op(ops: &mut u32, pos: Pos) -> Result<(), AsmError> {
    *ops += 1;
    if *ops > MAX_OPERATORS {
        return Err(AsmError::at(
            pos,
            AsmErrorKind::BadExpression(format!(
                "expression has more than {MAX_OPERATORS} operators (split it with `.set` symbols)"
            )),
        ));
    }
    Ok(())
}

fn parse_binary(
    c: &mut Cursor<'_>,
    syn: ExprSyntax<'_>,
    min: u8,
    depth: u32,
    ops: &mut u32,
) -> Result<Expr, AsmError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(c));
    }
    let mut lhs = parse_unary(c, syn, depth + 1, ops)?;
    while let Some(tok) = c.peek() {
        let TokKind::Punct(p) = tok.kind else { break };
        let Some((op, prec)) = bin_op(p, syn) else {
            break;
        };
        if prec < min {
            break;
        }
        let pos = tok.pos;
        count_op(ops, pos)?;
        c.next();
        let rhs = parse_binary(c, syn, prec + 1, depth + 1, ops)?;
        lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs), pos);
    }
    Ok(lhs)
}

fn parse_unary(
    c: &mut Cursor<'_>,
    syn: ExprSyntax<'_>,
    depth: u32,
    ops: &mut u32,
) -> Result<Expr, AsmError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(c));
    }
    let Some(tok) = c.peek() else {
        return Err(c.expected("an expression"));
    };
    let pos = tok.pos;
    let un = match tok.kind {
        TokKind::Punct(Punct::Minus) => Some(UnOp::Neg),
        TokKind::Punct(Punct::Tilde) => Some(UnOp::Not),
        TokKind::Punct(Punct::Bang) => Some(UnOp::LogNot),
        _ => None,
    };
    if let Some(size) = load_prefix(c, syn) {
        count_op(ops, pos)?;
        let inner = parse_unary(c, syn, depth + 1, ops)?;
        return Ok(Expr::Un(UnOp::Load(size), Box::new(inner), pos));
    }
    if let Some(op) = un {
        count_op(ops, pos)?;
        c.next();
        let inner = parse_unary(c, syn, depth + 1, ops)?;
        return Ok(Expr::Un(op, Box::new(inner), pos));
    }
    match &tok.kind {
        TokKind::Punct(Punct::Plus) => {
            c.next();
            parse_unary(c, syn, depth + 1, ops)
        }
        TokKind::Punct(Punct::LParen) => {
            c.next();
            let inner = parse_binary(c, syn, 1, depth + 1, ops)?;
            c.expect(Punct::RParen, "`)`")?;
            Ok(inner)
        }
        TokKind::Num(n) => {
            c.next();
            Ok(Expr::Num(*n, pos))
        }
        TokKind::LocalRef { n, forward } => {
            c.next();
            Ok(Expr::Sym(syn.locals.local_ref(*n, *forward), pos))
        }
        TokKind::Ident(s) if s == "." => {
            c.next();
            Ok(Expr::Dot(pos))
        }
        TokKind::Ident(s) => {
            c.next();
            Ok(Expr::Sym(s.clone(), pos))
        }
        TokKind::Punct(Punct::Percent) if syn.debugger => {
            c.next();
            match c.peek_ident() {
                Some(name) => {
                    c.next();
                    Ok(Expr::Sym(name.to_string(), pos))
                }
                None => Err(c.expected("a register name after `%`")),
            }
        }
        _ => Err(c.expected("an expression")),
    }
}

/// In the debugger's syntax, a `*` in operand position is a load: `*(u32*)` names
/// its width, a bare `*` reads 8 bytes. Consumes the `*` and the cast and returns
/// the width in bytes.
fn load_prefix(c: &mut Cursor<'_>, syn: ExprSyntax<'_>) -> Option<u8> {
    if !syn.debugger || !c.peek_is(Punct::Star) {
        return None;
    }
    let width = |t: Option<&Token>| match t.map(|t| &t.kind) {
        Some(TokKind::Ident(s)) => match s.as_str() {
            "u8" => Some(1),
            "u16" => Some(2),
            "u32" => Some(4),
            "u64" => Some(8),
            _ => None,
        },
        _ => None,
    };
    let cast = c.peek_at(1).is_some_and(|t| t.is(Punct::LParen))
        && c.peek_at(3).is_some_and(|t| t.is(Punct::Star))
        && c.peek_at(4).is_some_and(|t| t.is(Punct::RParen));
    match width(c.peek_at(2)) {
        Some(size) if cast => {
            for _ in 0..5 {
                c.next();
            }
            Some(size)
        }
        _ => {
            c.next();
            Some(8)
        }
    }
}

/// Parses and evaluates one debugger expression (`print`, `set`): GNU `as`
/// operators and precedence over names resolved by `env` (registers, symbols),
/// plus `*(uN*)ADDR` loads. The whole text must be one expression.
pub(crate) fn eval_debugger(src: &str, env: &dyn Env) -> Result<u64, AsmError> {
    struct Plain;
    impl LocalNames for Plain {
        fn local_ref(&self, n: u64, forward: bool) -> String {
            format!("{n}{}", if forward { 'f' } else { 'b' })
        }
    }
    let stmts = super::lexer::lex(src)?;
    let [stmt] = stmts.as_slice() else {
        return Err(AsmError::at(
            Pos::new(1, 1),
            AsmErrorKind::BadExpression("expected one expression".into()),
        ));
    };
    let syn = ExprSyntax {
        percent_is_rem: false,
        locals: &Plain,
        debugger: true,
    };
    let mut c = Cursor::new(stmt);
    let e = parse(&mut c, syn)?;
    if !c.at_end() {
        return Err(c.expected("an operator or the end of the expression"));
    }
    Ok(eval(&e, env)?.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::lexer::lex;
    use std::collections::BTreeMap;

    struct NoLocals;
    impl LocalNames for NoLocals {
        fn local_ref(&self, n: u64, forward: bool) -> String {
            format!("{n}{}", if forward { 'f' } else { 'b' })
        }
    }

    struct MapEnv(BTreeMap<&'static str, Value>);
    impl Env for MapEnv {
        fn lookup(&self, name: &str, _: Pos) -> Result<Option<Value>, AsmError> {
            Ok(self.0.get(name).copied())
        }
        fn dot(&self) -> Option<u64> {
            Some(0x1000)
        }
    }

    fn env() -> MapEnv {
        let mut m = BTreeMap::new();
        m.insert(
            "lbl",
            Value {
                value: 0x400,
                relocatable: true,
            },
        );
        m.insert(
            "k",
            Value {
                value: 3,
                relocatable: false,
            },
        );
        MapEnv(m)
    }

    fn ev(src: &str, percent_is_rem: bool) -> Result<Value, AsmError> {
        let stmts = lex(src).unwrap();
        let mut c = Cursor::new(&stmts[0]);
        let e = parse(
            &mut c,
            ExprSyntax {
                percent_is_rem,
                locals: &NoLocals,
                debugger: false,
            },
        )?;
        c.expect_end("end of expression")?;
        eval(&e, &env())
    }

    fn val(src: &str) -> u64 {
        ev(src, true).unwrap().value
    }

    #[test]
    fn gas_precedence() {
        assert_eq!(val("1 + 2 * 4"), 9);
        assert_eq!(val("1 + 2 | 4"), 7);
        assert_eq!(val("8 - 2 | 1"), 5);
        assert_eq!(val("(8 - 2) | 1"), 7);
        assert_eq!(val("1 << 4 + 1"), 17);
        assert_eq!(val("2 * (3 + 4)"), 14);
        assert_eq!(val("(1 + 2 * (3 - 1)) << 1"), 10);
        assert_eq!(val("10 - 3 - 2"), 5);
        assert_eq!(val("-8"), (-8i64) as u64);
        assert_eq!(val("~0 & 0xff"), 0xff);
        assert_eq!(val("!0 + !5"), 1);
        assert_eq!(val("7 % 4"), 3);
        assert_eq!(val("-7 / 2"), (-3i64) as u64);
        assert_eq!(val("1 << 70"), 0);
    }

    #[test]
    fn symbols_and_relocatability() {
        let v = ev("lbl + 8", true).unwrap();
        assert_eq!(
            v,
            Value {
                value: 0x408,
                relocatable: true
            }
        );
        let v = ev("lbl - lbl + k", true).unwrap();
        assert_eq!(
            v,
            Value {
                value: 3,
                relocatable: false
            }
        );
        let v = ev(". - 0x10", true).unwrap();
        assert_eq!(v.value, 0xff0);
    }

    #[test]
    fn errors_point_at_tokens() {
        let e = ev("1 + nosuch", true).unwrap_err();
        assert_eq!((e.line, e.col), (1, 5));
        assert_eq!(e.kind, AsmErrorKind::UndefinedSymbol("nosuch".into()));
        let e = ev("4 / (2 - 2)", true).unwrap_err();
        assert_eq!((e.line, e.col), (1, 3));
        let e = ev("1 +", true).unwrap_err();
        assert_eq!((e.line, e.col), (1, 4));
        let e = ev("(1 + 2", true).unwrap_err();
        assert_eq!((e.line, e.col), (1, 7));
        let e = ev("7 % 4", false).unwrap_err();
        assert_eq!((e.line, e.col), (1, 3));
    }

    /// Memory where byte `a` holds `a as u8`, and one register.
    struct MemEnv;
    impl Env for MemEnv {
        fn lookup(&self, name: &str, _: Pos) -> Result<Option<Value>, AsmError> {
            Ok((name == "rax").then_some(Value {
                value: 0x10,
                relocatable: false,
            }))
        }
        fn dot(&self) -> Option<u64> {
            None
        }
        fn load(&self, addr: u64, size: u8, _: Pos) -> Result<u64, AsmError> {
            Ok((0..u64::from(size)).fold(0, |v, i| v | ((addr + i) & 0xff) << (8 * i)))
        }
    }

    #[test]
    fn debugger_loads_have_widths_and_registers_take_a_percent() {
        let d = |src: &str| eval_debugger(src, &MemEnv).map_err(|e| e.to_string());
        assert_eq!(d("*(u8*)0x10"), Ok(0x10));
        assert_eq!(d("*(u16*)0x10"), Ok(0x1110));
        assert_eq!(d("*(u32*)(rax + 1)"), Ok(0x1413_1211));
        assert_eq!(d("*rax"), Ok(0x1716_1514_1312_1110));
        assert_eq!(d("2 * *(u8*)%rax + 1"), Ok(0x21));
        assert_eq!(d("*(u64*)*(u8*)3"), Ok(0x0a09_0807_0605_0403));
        assert!(d("*(u64*)").is_err());
        assert!(d("1 2").is_err());
        // The assembler's own syntax has no loads.
        assert!(ev("*(u64*)x", false).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(ev(&src, true).is_err());
        let src = "-".repeat(500) + "1";
        assert!(ev(&src, true).is_err());
    }
}
