//! What the SDM leaves undefined, so the comparison ignores exactly that.
//!
//! Unconditional masks are data ([`UNDEFINED_FLAGS`]); the few rules that depend
//! on the operands (shift and rotate counts, BSF/BSR of zero, BSWAP of a 16-bit
//! register, SHLD/SHRD counts past 16) are in [`undefined`].

use iced_x86::{Instruction, Mnemonic, OpKind};

/// RFLAGS.CF
pub const CF: u64 = 1 << 0;
/// RFLAGS.PF
pub const PF: u64 = 1 << 2;
/// RFLAGS.AF
pub const AF: u64 = 1 << 4;
/// RFLAGS.ZF
pub const ZF: u64 = 1 << 6;
/// RFLAGS.SF
pub const SF: u64 = 1 << 7;
/// RFLAGS.DF
pub const DF: u64 = 1 << 10;
/// RFLAGS.OF
pub const OF: u64 = 1 << 11;
/// The six status flags.
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;

/// Flags the SDM leaves undefined whatever the operands, per mnemonic, with the
/// page that says so. Mnemonics not listed define every flag they touch.
pub const UNDEFINED_FLAGS: &[(Mnemonic, u64, &str)] = &[
    (
        Mnemonic::And,
        AF,
        "SDM Vol. 2A AND, Flags Affected: AF undefined",
    ),
    (
        Mnemonic::Or,
        AF,
        "SDM Vol. 2B OR, Flags Affected: AF undefined",
    ),
    (
        Mnemonic::Xor,
        AF,
        "SDM Vol. 2C XOR, Flags Affected: AF undefined",
    ),
    (
        Mnemonic::Test,
        AF,
        "SDM Vol. 2C TEST, Flags Affected: AF undefined",
    ),
    (
        Mnemonic::Mul,
        SF | ZF | AF | PF,
        "SDM Vol. 2B MUL: SF, ZF, AF, PF undefined",
    ),
    (
        Mnemonic::Imul,
        SF | ZF | AF | PF,
        "SDM Vol. 2A IMUL: SF, ZF, AF, PF undefined",
    ),
    (
        Mnemonic::Div,
        STATUS,
        "SDM Vol. 2A DIV: CF, OF, SF, ZF, AF, PF undefined",
    ),
    (
        Mnemonic::Idiv,
        STATUS,
        "SDM Vol. 2A IDIV: CF, OF, SF, ZF, AF, PF undefined",
    ),
    (
        Mnemonic::Bt,
        OF | SF | AF | PF,
        "SDM Vol. 2A BT: OF, SF, AF, PF undefined",
    ),
    (
        Mnemonic::Bts,
        OF | SF | AF | PF,
        "SDM Vol. 2A BTS: OF, SF, AF, PF undefined",
    ),
    (
        Mnemonic::Btr,
        OF | SF | AF | PF,
        "SDM Vol. 2A BTR: OF, SF, AF, PF undefined",
    ),
    (
        Mnemonic::Btc,
        OF | SF | AF | PF,
        "SDM Vol. 2A BTC: OF, SF, AF, PF undefined",
    ),
    (
        Mnemonic::Bsf,
        CF | OF | SF | AF | PF,
        "SDM Vol. 2A BSF: CF, OF, SF, AF, PF undefined",
    ),
    (
        Mnemonic::Bsr,
        CF | OF | SF | AF | PF,
        "SDM Vol. 2A BSR: CF, OF, SF, AF, PF undefined",
    ),
    (
        Mnemonic::Tzcnt,
        OF | SF | AF | PF,
        "SDM Vol. 2B TZCNT: OF, SF, PF, AF undefined",
    ),
    (
        Mnemonic::Lzcnt,
        OF | SF | AF | PF,
        "SDM Vol. 2A LZCNT: OF, SF, PF, AF undefined",
    ),
];

/// What to ignore when comparing one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Undefined {
    /// RFLAGS bits whose value is undefined.
    pub flags: u64,
    /// The destination (operand 0) holds an undefined value.
    pub dest: bool,
}

/// The unconditional mask of `m` from [`UNDEFINED_FLAGS`].
pub fn table_mask(m: Mnemonic) -> u64 {
    UNDEFINED_FLAGS
        .iter()
        .find(|(x, _, _)| *x == m)
        .map_or(0, |(_, mask, _)| *mask)
}

/// Operand size in bytes of operand `i` of `ins`.
pub fn op_size(ins: &Instruction, i: u32) -> u32 {
    match ins.op_kind(i) {
        OpKind::Register => ins.op_register(i).size() as u32,
        _ => ins.memory_size().size() as u32,
    }
}

/// Everything undefined for `ins` given its input: the table's mask plus the
/// operand-dependent rules. `rcx` is the input RCX (for CL counts) and `src` the
/// value of the source operand where a rule needs it (BSF/BSR).
pub fn undefined(ins: &Instruction, rcx: u64, src: u64) -> Undefined {
    let m = ins.mnemonic();
    let mut u = Undefined {
        flags: table_mask(m),
        dest: false,
    };
    let size = op_size(ins, 0);
    match m {
        Mnemonic::Shl
        | Mnemonic::Sal
        | Mnemonic::Shr
        | Mnemonic::Sar
        | Mnemonic::Rol
        | Mnemonic::Ror
        | Mnemonic::Rcl
        | Mnemonic::Rcr => {
            let count = masked_count(ins, 1, rcx, size);
            // SDM Vol. 2B SAL/SAR/SHL/SHR and RCL/RCR/ROL/ROR, Flags Affected: a
            // masked count of 0 affects no flag; OF is defined only for a count of 1.
            if count != 0 && count != 1 {
                u.flags |= OF;
            }
            if count != 0
                && matches!(
                    m,
                    Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar
                )
            {
                // "For a non-zero count, the AF flag is undefined."
                u.flags |= AF;
            }
            if count >= size * 8 && matches!(m, Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr) {
                // "CF ... is undefined for SHL and SHR instructions where the count is
                // greater than or equal to the size (in bits) of the destination."
                u.flags |= CF;
            }
        }
        Mnemonic::Shld | Mnemonic::Shrd => {
            let count = masked_count(ins, 2, rcx, size);
            // SDM Vol. 2B SHLD/SHRD: count 0 affects nothing; OF defined only for a
            // 1-bit shift; AF undefined if a shift occurs; a count greater than the
            // operand size (possible only for 16-bit operands) leaves the result and
            // the flags undefined.
            if count != 0 {
                u.flags |= AF;
                if count != 1 {
                    u.flags |= OF;
                }
            }
            if count > size * 8 {
                u.flags |= STATUS;
                u.dest = true;
            }
        }
        // SDM Vol. 2A BSF/BSR: "If the content of the source operand is 0, the
        // content of the destination operand is undefined."
        Mnemonic::Bsf | Mnemonic::Bsr if src & mask(op_size(ins, 1)) == 0 => u.dest = true,
        // SDM Vol. 2A BSWAP: "When the BSWAP instruction references a 16-bit
        // register, the result is undefined."
        Mnemonic::Bswap if size == 2 => u.dest = true,
        _ => {}
    }
    u
}

/// Mask of an operand of `size` bytes.
pub fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// The shift/rotate count of operand `i` (1, imm8 or CL) masked to 5 bits, or 6
/// for 64-bit operands (SDM Vol. 2B SAL/SAR/SHL/SHR, "count is masked").
fn masked_count(ins: &Instruction, i: u32, rcx: u64, size: u32) -> u32 {
    let raw = if i < ins.op_count() && ins.op_kind(i) == OpKind::Register {
        rcx & 0xff
    } else if i < ins.op_count() {
        ins.immediate(i)
    } else {
        1
    };
    let m = if size == 8 { 0x3f } else { 0x1f };
    (raw & m) as u32
}
