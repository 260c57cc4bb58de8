//! The in-tree x86-64 assembler for scenario files.
//!
//! Scenario authors paste kernel assembly (GNU AT&T syntax, or Intel syntax as GNU as
//! accepts it) into RON files; this module turns it into bytes at a chosen virtual address,
//! with label addresses and a source-line map so the debugger can show where each core is.
//! It is built on iced-x86: operand forms come from iced's op-code tables (walked once into
//! a per-mnemonic table), instructions are built as `iced_x86::Instruction`s and encoded by
//! `BlockEncoder`, which picks short or near branch forms.
//!
//! Pipeline: `lexer` (statements of tokens) → `program` (labels, directives, prefixes;
//! operands via `parse_att`/`parse_intel` and `expr`) → `select` (which table forms fit the
//! operands) → `layout` (addresses, `build` picks the shortest fitting form, `BlockEncoder`
//! encodes; repeated to a fixed point).
//!
//! Differences from GNU as, all deliberate:
//! - A memory operand whose size nothing determines (`inc (%rax)`) is an error; `as` only
//!   warns and guesses.
//! - Scenario symbols (from [`AsmOptions::symbols`]) are absolute constants, like `.set`
//!   symbols in `as`: immediates and displacements using them get the shortest encoding
//!   that fits their value. Labels of this text are addresses (what `as` would relocate),
//!   so they always get 32-bit fields.
//! - `.align` pads code with the SDM's recommended multi-byte NOPs (up to 9 bytes each),
//!   not with `as`'s exact choice of NOPs; after `.data` it pads with zeros.
//! - Data values out of range for `.byte`/`.word`/`.long` are errors, not truncations.
//! - There is one section; `.text`/`.data`/`.section` only switch the alignment fill.
//!
//! Behaviour that follows GNU as and is easy to get wrong:
//! - `sym(%rip)` / `[rip+sym]` address `sym` when it is a label or scenario symbol;
//!   `8(%rip)` or a `.set` constant is a displacement from the next instruction.
//! - In Intel syntax a bare name (`mov rax, sym`) is a memory operand; `offset sym` is the
//!   address as an immediate; bare constants are immediates.
//! - `lock`/`rep` on the same line as an instruction that cannot take them is an error;
//!   alone on a line they are emitted as prefix bytes.
//! - `int $3` is the one-byte `int3`; `shl %rax` shifts by one; `imul $3, %rax` is
//!   `imul $3, %rax, %rax`; `xchg`/`test` accept either operand order.
//! - Expression precedence: `| & ^` bind tighter than `+ -`.

#![warn(missing_docs)]

mod build;
mod cursor;
mod directive;
mod error;
pub(crate) mod expr;
mod layout;
mod lexer;
mod mnemonic;
mod operand;
mod parse_att;
mod parse_intel;
mod program;
mod registers;
mod select;
mod table;

pub use error::{AsmError, AsmErrorKind};

use std::collections::{BTreeMap, HashMap};

/// The assembly syntax a text starts in; `.intel_syntax`/`.att_syntax` switch it mid-text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// GNU AT&T syntax (`movq %rax, 8(%rsp)`), the default of GNU as and kernel `.S` files.
    Att,
    /// Intel syntax without register prefixes (`mov qword ptr [rsp+8], rax`).
    Intel,
}

/// Names the scenario defines outside the assembly text (other code sections, data, page
/// tables), so code can `call` or load them.
pub trait SymbolLookup {
    /// The value of `name`, or `None` if the scenario does not define it.
    fn lookup(&self, name: &str) -> Option<u64>;
}

impl SymbolLookup for BTreeMap<String, u64> {
    fn lookup(&self, name: &str) -> Option<u64> {
        self.get(name).copied()
    }
}

impl<S: std::hash::BuildHasher> SymbolLookup for HashMap<String, u64, S> {
    fn lookup(&self, name: &str) -> Option<u64> {
        self.get(name).copied()
    }
}

/// A symbol table with no symbols, for self-contained code.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSymbols;

impl SymbolLookup for NoSymbols {
    fn lookup(&self, _: &str) -> Option<u64> {
        None
    }
}

/// How to assemble one text.
pub struct AsmOptions<'a> {
    /// Syntax at the start of the text.
    pub syntax: Syntax,
    /// Virtual address of the first byte; labels and RIP-relative operands depend on it.
    pub base: u64,
    /// Scenario symbols, consulted for names the text does not define itself.
    pub symbols: &'a dyn SymbolLookup,
}

/// The assembled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembly {
    /// Machine code and data, starting at [`AsmOptions::base`].
    pub bytes: Vec<u8>,
    /// Every named label and its address (numeric local labels are not included).
    pub labels: BTreeMap<String, u64>,
    /// Address of each statement that emitted bytes and its 1-based source line, in
    /// address order, for mapping RIP back to source.
    pub line_addrs: Vec<(u64, u32)>,
    /// Names given to `.globl`/`.global`, in source order (recorded, no other effect).
    pub globals: Vec<String>,
}

/// Assembles `src` at `opts.base`.
///
/// Never panics on any input: every problem is an [`AsmError`] with the 1-based line and
/// column of the offending token.
pub fn assemble(src: &str, opts: &AsmOptions<'_>) -> Result<Assembly, AsmError> {
    let stmts = lexer::lex(src)?;
    let mut parser = program::Parser::new(opts.syntax);
    for stmt in &stmts {
        parser.statement(stmt)?;
    }
    layout::layout(&parser.prog, opts.base, opts.symbols)
}
