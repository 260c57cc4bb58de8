//! Parsed operands, independent of the syntax they were written in. Both parsers produce
//! these, in Intel (iced) operand order.

use super::error::Pos;
use super::expr::Expr;
use iced_x86::Register;

/// A memory operand as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mem {
    /// Segment override (`%gs:`, `gs:`).
    pub(crate) seg: Option<Register>,
    /// Base register; `RIP` for RIP-relative operands.
    pub(crate) base: Option<Register>,
    /// Index register.
    pub(crate) index: Option<Register>,
    /// Index scale: 1, 2, 4 or 8.
    pub(crate) scale: u32,
    /// Displacement (for RIP-relative operands with symbols: the absolute target).
    pub(crate) disp: Option<Expr>,
    /// Size in bits from Intel `… ptr` or from an AT&T mnemonic such as `movzbl`.
    pub(crate) size: Option<u32>,
    /// Where the operand starts.
    pub(crate) pos: Pos,
}

/// One operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operand {
    /// A register.
    Reg(Register, Pos),
    /// An immediate value.
    Imm(Expr, Pos),
    /// A memory reference.
    Mem(Mem),
    /// A direct branch target (`jmp label`, `call sym`).
    Target(Expr, Pos),
}

impl Operand {
    /// Where the operand starts, for errors about it.
    pub(crate) fn pos(&self) -> Pos {
        match self {
            Operand::Reg(_, p) | Operand::Imm(_, p) | Operand::Target(_, p) => *p,
            Operand::Mem(m) => m.pos,
        }
    }

    /// Describes the operand for "found X" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Operand::Reg(r, _) => format!("%{}", super::registers::name(*r)),
            Operand::Imm(..) => "an immediate".to_string(),
            Operand::Mem(m) => match m.size {
                Some(s) => format!("a {s}-bit memory operand"),
                None => "a memory operand".to_string(),
            },
            Operand::Target(..) => "a branch target".to_string(),
        }
    }
}
