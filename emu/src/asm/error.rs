//! Assembler errors: every error carries the source position of the token that caused it,
//! so the scenario layer can map it back into the RON file that embeds the assembly.

use thiserror::Error;

/// A position inside the assembly source: 1-based line and 1-based column (in characters).
///
/// Kept separate from the error so that tokens, expressions and operands can carry it cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line number within the assembled text.
    pub line: u32,
    /// 1-based column (counted in characters, not bytes) within that line.
    pub col: u32,
}

impl Pos {
    /// Builds a position; a helper so call sites read `Pos::new(line, col)`.
    pub(crate) fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

/// An assembly error with the exact position of the offending token.
///
/// The position is part of the value rather than the message so that callers embedding the
/// source (scenario files) can translate it to their own coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{line}:{col}: {kind}")]
pub struct AsmError {
    /// 1-based line of the offending token.
    pub line: u32,
    /// 1-based column of the offending token.
    pub col: u32,
    /// What was found and what was expected.
    pub kind: AsmErrorKind,
}

impl AsmError {
    /// Attaches a position to an error kind.
    pub(crate) fn at(pos: Pos, kind: AsmErrorKind) -> Self {
        AsmError {
            line: pos.line,
            col: pos.col,
            kind,
        }
    }
}

/// Everything that can go wrong while assembling, each naming what was found and what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsmErrorKind {
    /// A character that cannot start any token.
    #[error("unexpected character `{0}`")]
    BadChar(char),
    /// A string literal without its closing quote.
    #[error("unterminated string literal")]
    UnterminatedString,
    /// A `/*` comment that never ends.
    #[error("unterminated `/*` comment")]
    UnterminatedComment,
    /// A malformed numeric literal.
    #[error("malformed number `{0}`")]
    BadNumber(String),
    /// The parser found one thing where it needed another.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the grammar allows here.
        expected: String,
        /// The token actually present.
        found: String,
    },
    /// A mnemonic that neither iced-x86's tables nor the GNU aliases know.
    #[error("unknown mnemonic `{0}`")]
    UnknownMnemonic(String),
    /// A register name that does not exist (or is not usable in 64-bit mode).
    #[error("unknown register `%{0}`")]
    UnknownRegister(String),
    /// A directive we do not implement.
    #[error("unknown directive `{0}`")]
    UnknownDirective(String),
    /// A directive with malformed arguments.
    #[error("bad arguments to `{directive}`: {reason}")]
    BadDirective {
        /// The directive name, including its dot.
        directive: String,
        /// What is wrong with the arguments.
        reason: String,
    },
    /// The operands do not fit any encoding of the mnemonic.
    #[error("invalid operands for `{mnemonic}`: {reason}")]
    BadOperands {
        /// The mnemonic as written.
        mnemonic: String,
        /// Which operand is wrong and what would have been accepted.
        reason: String,
    },
    /// The operand count does not fit any form of the mnemonic.
    #[error("`{mnemonic}` takes {expected} operand(s), found {found}")]
    OperandCount {
        /// The mnemonic as written.
        mnemonic: String,
        /// The operand counts the mnemonic accepts, e.g. "1 or 2".
        expected: String,
        /// How many operands were written.
        found: usize,
    },
    /// No register operand fixes the size and no suffix or `ptr` was given.
    #[error(
        "`{0}` needs an operand size: add a size suffix (b/w/l/q) or `byte/word/dword/qword ptr`"
    )]
    AmbiguousSize(String),
    /// A name that is neither a label, a `.set` symbol nor a scenario symbol.
    #[error("undefined symbol `{0}`")]
    UndefinedSymbol(String),
    /// A `1b`/`1f` reference with no `1:` before/after it.
    #[error("no numeric label `{0}:` in the direction of this reference")]
    UndefinedLocalLabel(String),
    /// A label defined twice.
    #[error("label `{0}` is already defined")]
    DuplicateLabel(String),
    /// An immediate or data value that does not fit the field it must be encoded in.
    #[error("value {value:#x} does not fit in {what}")]
    OutOfRange {
        /// The offending value (two's complement for negatives).
        value: u64,
        /// The field, e.g. "a signed 32-bit immediate".
        what: String,
    },
    /// Division by zero or a similar arithmetic error in a constant expression.
    #[error("bad expression: {0}")]
    BadExpression(String),
    /// `.set` symbols that refer to each other in a cycle.
    #[error("symbol `{0}` is defined in terms of itself")]
    RecursiveSymbol(String),
    /// A prefix on the same line as an instruction that cannot take it (GNU as rejects these
    /// too).
    #[error("`{prefix}` cannot be used with `{mnemonic}`")]
    BadPrefix {
        /// The prefix as written.
        prefix: String,
        /// The instruction it was applied to.
        mnemonic: String,
    },
    /// A branch whose target is more than 2 GiB away.
    #[error("branch target {target:#x} is out of range of a 32-bit displacement")]
    BranchOutOfRange {
        /// The absolute target address.
        target: u64,
    },
    /// Layout did not reach a fixed point (sizes kept changing).
    #[error("instruction sizes did not converge after {0} passes")]
    NoConvergence(u32),
    /// iced-x86 refused to encode an instruction we built; a bug in the form selection.
    #[error("cannot encode instruction: {0}")]
    Encode(String),
}
