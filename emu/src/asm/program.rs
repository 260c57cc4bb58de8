//! Statements to items: labels, `.set`, prefixes, instructions and (via `directive.rs`)
//! data. Keeps the parser state that GNU as has per source: current syntax, numeric local
//! label counters and whether the current section is code.

use super::cursor::Cursor;
use super::directive;
use super::error::{AsmError, AsmErrorKind, Pos};
use super::expr::{Expr, ExprSyntax, LocalNames};
use super::lexer::{Punct, Stmt, TokKind};
use super::mnemonic::{self, Resolved, StringOp};
use super::operand::Operand;
use super::select::{self, Prefixes, Rep, Selected};
use super::table;
use super::{parse_att, parse_intel, registers, Syntax};
use iced_x86::{Instruction, OpCodeOperandKind as K, RepPrefixKind};
use std::collections::BTreeMap;

/// Something that occupies (possibly zero) bytes in the output.
#[derive(Debug, Clone)]
pub(crate) enum ItemKind {
    /// A label definition; zero bytes.
    Label,
    /// An instruction whose encoding is picked at layout time.
    Insn(Box<Selected>),
    /// A fully built instruction (string instructions).
    Fixed(Instruction),
    /// `.byte`/`.word`/`.long`/`.quad` values of `width` bytes each.
    Data { width: u32, exprs: Vec<Expr> },
    /// Literal bytes (`.ascii`, `.zero`, stand-alone prefixes).
    Bytes(Vec<u8>),
    /// Padding to a multiple of `align`; `fill` bytes, or NOPs in code when `None`.
    Align {
        align: u64,
        fill: Option<u8>,
        max: Option<u64>,
    },
}

/// An item and the position of the statement that produced it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) kind: ItemKind,
    pub(crate) pos: Pos,
}

/// The whole parsed source.
#[derive(Debug, Default)]
pub(crate) struct Program {
    pub(crate) items: Vec<Item>,
    /// Label name to the index of its `Label` item.
    pub(crate) labels: BTreeMap<String, usize>,
    /// `.set` symbols: expression and the item index where `.` is evaluated.
    pub(crate) sets: BTreeMap<String, (Expr, usize)>,
    /// Names given to `.globl`.
    pub(crate) globals: Vec<String>,
}

/// Counts numeric local label definitions so `1b`/`1f` can be renamed uniquely.
#[derive(Default)]
struct Locals(BTreeMap<u64, u32>);

impl LocalNames for Locals {
    fn local_ref(&self, n: u64, forward: bool) -> String {
        let seen = self.0.get(&n).copied().unwrap_or(0);
        local_name(n, if forward { seen + 1 } else { seen })
    }
}

fn local_name(n: u64, k: u32) -> String {
    format!("{n}\u{2}{k}")
}

/// Parser state carried from statement to statement.
pub(crate) struct Parser {
    pub(crate) syntax: Syntax,
    /// True in `.text`: alignment pads with NOPs.
    pub(crate) code: bool,
    locals: Locals,
    pub(crate) prog: Program,
    /// Bytes that `.zero`-like and alignment directives may add so far (padding
    /// counted at its worst case), held under [`MAX_SECTION_BYTES`].
    reserved: u64,
}

/// Most bytes that fill and alignment directives may add to one assembly. Each
/// directive is capped on its own, but a source can repeat one: without a total,
/// a few lines of `.align 0x1000000` ask for gigabytes.
pub(crate) const MAX_SECTION_BYTES: u64 = 1 << 24;

impl Parser {
    pub(crate) fn new(syntax: Syntax) -> Self {
        Parser {
            syntax,
            code: true,
            locals: Locals::default(),
            prog: Program::default(),
            reserved: 0,
        }
    }

    /// Expression options for the current syntax.
    pub(crate) fn expr_syntax(&self) -> ExprSyntax<'_> {
        ExprSyntax {
            percent_is_rem: self.syntax == Syntax::Intel,
            locals: &self.locals,
            debugger: false,
        }
    }

    /// Accounts for `n` more bytes from `directive` at `pos`, before they are
    /// allocated; fails once the assembly would pass [`MAX_SECTION_BYTES`].
    pub(crate) fn reserve(&mut self, n: u64, directive: &str, pos: Pos) -> Result<(), AsmError> {
        let total = self.reserved.saturating_add(n);
        if total > MAX_SECTION_BYTES {
            return Err(AsmError::at(
                pos,
                AsmErrorKind::BadDirective {
                    directive: directive.to_string(),
                    reason: format!(
                        "fill and alignment would reach {total} bytes; one code section holds at most {MAX_SECTION_BYTES}"
                    ),
                },
            ));
        }
        self.reserved = total;
        Ok(())
    }

    pub(crate) fn push(&mut self, kind: ItemKind, pos: Pos) {
        self.prog.items.push(Item { kind, pos });
    }

    fn define_label(&mut self, name: String, pos: Pos) -> Result<(), AsmError> {
        if self.prog.labels.contains_key(&name) || self.prog.sets.contains_key(&name) {
            return Err(AsmError::at(pos, AsmErrorKind::DuplicateLabel(name)));
        }
        self.prog.labels.insert(name, self.prog.items.len());
        self.push(ItemKind::Label, pos);
        Ok(())
    }

    /// Defines a `.set`/`=` symbol at the current position.
    pub(crate) fn define_set(&mut self, name: String, e: Expr, pos: Pos) -> Result<(), AsmError> {
        if self.prog.labels.contains_key(&name) {
            return Err(AsmError::at(pos, AsmErrorKind::DuplicateLabel(name)));
        }
        self.prog.sets.insert(name, (e, self.prog.items.len()));
        Ok(())
    }

    /// Parses one statement.
    pub(crate) fn statement(&mut self, stmt: &Stmt) -> Result<(), AsmError> {
        let mut c = Cursor::new(stmt);
        // Labels: `name:` and `1:`, any number of them.
        loop {
            let Some(t) = c.peek() else { return Ok(()) };
            if !c.peek2().is_some_and(|n| n.is(Punct::Colon)) {
                break;
            }
            match &t.kind {
                // AT&T registers carry `%`, so `rax:` is a label there; in Intel syntax a
                // register name can never be one.
                TokKind::Ident(name)
                    if self.syntax == Syntax::Att || registers::lookup(name).is_none() =>
                {
                    let name = name.clone();
                    c.next();
                    c.next();
                    self.define_label(name, t.pos)?;
                }
                TokKind::Num(n) => {
                    let k = self.locals.0.entry(*n).or_insert(0);
                    *k += 1;
                    let name = local_name(*n, *k);
                    c.next();
                    c.next();
                    self.define_label(name, t.pos)?;
                }
                _ => break,
            }
        }
        let Some(t) = c.peek() else { return Ok(()) };
        let TokKind::Ident(word) = &t.kind else {
            return Err(c.expected("a label, directive or instruction"));
        };
        if c.peek2().is_some_and(|n| n.is(Punct::Eq)) {
            c.next();
            c.next();
            let e = super::expr::parse(&mut c, self.expr_syntax())?;
            c.expect_end("end of line after the expression")?;
            return self.define_set(word.clone(), e, t.pos);
        }
        if word.starts_with('.') {
            c.next();
            return directive::directive(self, word, t.pos, &mut c);
        }
        self.instruction(&mut c)
    }

    fn instruction(&mut self, c: &mut Cursor<'_>) -> Result<(), AsmError> {
        let mut prefixes = Prefixes::default();
        let mut standalone = Vec::new();
        let (word, pos) = loop {
            let Some(t) = c.peek() else {
                // Prefixes alone on a line are emitted as bytes, as GNU as does.
                let pos = standalone.first().map_or(c.pos(), |&(_, p)| p);
                let bytes = standalone.iter().map(|&(b, _)| b).collect();
                self.push(ItemKind::Bytes(bytes), pos);
                return Ok(());
            };
            let TokKind::Ident(word) = &t.kind else {
                return Err(c.expected("an instruction mnemonic"));
            };
            let lower = word.to_ascii_lowercase();
            let Some(byte) = super::build::prefix_byte(&lower) else {
                break (word.clone(), t.pos);
            };
            c.next();
            standalone.push((byte, t.pos));
            if lower == "lock" {
                prefixes.lock = Some(t.pos);
            } else {
                let rep = if byte == 0xf2 { Rep::Repne } else { Rep::Repe };
                prefixes.rep = Some((rep, t.pos, lower));
            }
        };
        c.next();
        let att = self.syntax == Syntax::Att;
        let Some(resolved) = mnemonic::resolve(&word, att) else {
            return Err(AsmError::at(pos, AsmErrorKind::UnknownMnemonic(word)));
        };
        let branch = match resolved {
            Resolved::Generic { mnemonic, .. } => table::forms(mnemonic)
                .iter()
                .any(|f| f.kinds.iter().any(|k| matches!(k, K::br64_1 | K::br64_4))),
            Resolved::String(..) => false,
        };
        let mut ops = Vec::new();
        if !c.at_end() {
            loop {
                let op = if att {
                    parse_att::parse_operand(c, self.expr_syntax(), branch)?
                } else {
                    let sets = &self.prog.sets;
                    let labels = &self.prog.labels;
                    let is_const = |n: &str| {
                        !labels.contains_key(n)
                            && sets
                                .get(n)
                                .is_some_and(|(e, _)| !has_labels(e, labels, sets, 0))
                    };
                    parse_intel::parse_operand(c, self.expr_syntax(), branch, &is_const)?
                };
                ops.push(op);
                if !c.eat(Punct::Comma) {
                    c.expect_end("`,` or end of line after an operand")?;
                    break;
                }
            }
        }
        if att {
            ops.reverse();
        }
        match resolved {
            Resolved::Generic {
                mnemonic,
                size,
                src_size,
                movabs,
            } => {
                let sel =
                    select::select(&word, pos, mnemonic, size, src_size, movabs, ops, prefixes)?;
                self.push(ItemKind::Insn(Box::new(sel)), pos);
            }
            Resolved::String(op, bits) => {
                let ins = string_instruction(&word, pos, op, bits, &ops, &prefixes)?;
                self.push(ItemKind::Fixed(ins), pos);
            }
        }
        Ok(())
    }
}

/// True if a `.set` expression (transitively) refers to a label, i.e. is an address.
fn has_labels(
    e: &Expr,
    labels: &BTreeMap<String, usize>,
    sets: &BTreeMap<String, (Expr, usize)>,
    depth: u32,
) -> bool {
    let mut found = depth > 16;
    e.for_each_sym(&mut |n, _| {
        found |= labels.contains_key(n)
            || sets
                .get(n)
                .is_none_or(|(e2, _)| has_labels(e2, labels, sets, depth + 1));
    });
    found
}

/// Builds a string instruction with iced's constructors. Explicit memory operands (as
/// `movsb (%rsi), (%rdi)`) are accepted; only a segment override on the source matters.
fn string_instruction(
    written: &str,
    pos: Pos,
    op: StringOp,
    bits: u32,
    ops: &[Operand],
    prefixes: &Prefixes,
) -> Result<Instruction, AsmError> {
    let mut seg = iced_x86::Register::None;
    for o in ops {
        match o {
            Operand::Mem(m) => {
                if m.base == Some(iced_x86::Register::RSI) {
                    seg = m.seg.unwrap_or(iced_x86::Register::None);
                }
            }
            other => {
                return Err(AsmError::at(
                    other.pos(),
                    AsmErrorKind::Expected {
                        expected: "no operands or (%rsi)/(%rdi) memory operands".into(),
                        found: other.describe(),
                    },
                ))
            }
        }
    }
    if let Some(lpos) = prefixes.lock {
        return Err(AsmError::at(
            lpos,
            AsmErrorKind::BadPrefix {
                prefix: "lock".into(),
                mnemonic: written.to_string(),
            },
        ));
    }
    let rep = match prefixes.rep {
        None => RepPrefixKind::None,
        Some((Rep::Repe, ..)) => RepPrefixKind::Repe,
        Some((Rep::Repne, ..)) => RepPrefixKind::Repne,
    };
    type WithSeg =
        fn(u32, iced_x86::Register, RepPrefixKind) -> Result<Instruction, iced_x86::IcedError>;
    type NoSeg = fn(u32, RepPrefixKind) -> Result<Instruction, iced_x86::IcedError>;
    let pick = |b: WithSeg, w: WithSeg, d: WithSeg, q: WithSeg| match bits {
        8 => b,
        16 => w,
        32 => d,
        _ => q,
    };
    let pick2 = |b: NoSeg, w: NoSeg, d: NoSeg, q: NoSeg| match bits {
        8 => b,
        16 => w,
        32 => d,
        _ => q,
    };
    let r = match op {
        StringOp::Movs => pick(
            Instruction::with_movsb,
            Instruction::with_movsw,
            Instruction::with_movsd,
            Instruction::with_movsq,
        )(64, seg, rep),
        StringOp::Lods => pick(
            Instruction::with_lodsb,
            Instruction::with_lodsw,
            Instruction::with_lodsd,
            Instruction::with_lodsq,
        )(64, seg, rep),
        StringOp::Cmps => pick(
            Instruction::with_cmpsb,
            Instruction::with_cmpsw,
            Instruction::with_cmpsd,
            Instruction::with_cmpsq,
        )(64, seg, rep),
        StringOp::Stos => pick2(
            Instruction::with_stosb,
            Instruction::with_stosw,
            Instruction::with_stosd,
            Instruction::with_stosq,
        )(64, rep),
        StringOp::Scas => pick2(
            Instruction::with_scasb,
            Instruction::with_scasw,
            Instruction::with_scasd,
            Instruction::with_scasq,
        )(64, rep),
    };
    r.map_err(|e| AsmError::at(pos, AsmErrorKind::Encode(e.to_string())))
}
