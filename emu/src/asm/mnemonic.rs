//! Mnemonic spelling: GNU AT&T size suffixes, GNU aliases (`cltq`, `movzbl`, `sal`…),
//! condition-code synonyms and string instructions, all mapped onto iced-x86 mnemonics.

use super::table;
use iced_x86::Mnemonic;

/// The string instruction families; built with iced's dedicated constructors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringOp {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
}

/// What a written mnemonic means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// An instruction chosen from the table by its operands.
    Generic {
        /// iced mnemonic.
        mnemonic: Mnemonic,
        /// Operand size from an AT&T suffix (or an alias that implies one).
        size: Option<u32>,
        /// Source operand size for `movzbl`-style names.
        src_size: Option<u32>,
        /// `movabs`: only the 64-bit immediate and 64-bit absolute address forms.
        movabs: bool,
    },
    /// A string instruction of the given element size in bits.
    String(StringOp, u32),
}

/// Condition-code synonyms to the spelling iced uses.
const CC_ALIASES: &[(&str, &str)] = &[
    ("z", "e"),
    ("nz", "ne"),
    ("nbe", "a"),
    ("nb", "ae"),
    ("nc", "ae"),
    ("c", "b"),
    ("nae", "b"),
    ("na", "be"),
    ("nle", "g"),
    ("nl", "ge"),
    ("nge", "l"),
    ("ng", "le"),
    ("pe", "p"),
    ("po", "np"),
];

/// GNU names that are not iced names: (gnu, iced, implied operand size).
const ALIASES: &[(&str, &str, Option<u32>)] = &[
    ("cbtw", "cbw", None),
    ("cwtl", "cwde", None),
    ("cltq", "cdqe", None),
    ("cwtd", "cwd", None),
    ("cltd", "cdq", None),
    ("cqto", "cqo", None),
    ("pushf", "pushfq", None),
    ("popf", "popfq", None),
    ("sal", "shl", None),
];

/// AT&T zero/sign-extending moves: (name, iced, destination size, source size).
const EXTENDS: &[(&str, &str, u32, u32)] = &[
    ("movzbw", "movzx", 16, 8),
    ("movzbl", "movzx", 32, 8),
    ("movzbq", "movzx", 64, 8),
    ("movzwl", "movzx", 32, 16),
    ("movzwq", "movzx", 64, 16),
    ("movsbw", "movsx", 16, 8),
    ("movsbl", "movsx", 32, 8),
    ("movsbq", "movsx", 64, 8),
    ("movswl", "movsx", 32, 16),
    ("movswq", "movsx", 64, 16),
    ("movslq", "movsxd", 64, 32),
];

/// String instruction names with their element size.
const STRINGS: &[(&str, StringOp, u32)] = &[
    ("movsb", StringOp::Movs, 8),
    ("movsw", StringOp::Movs, 16),
    ("movsl", StringOp::Movs, 32),
    ("movsd", StringOp::Movs, 32),
    ("movsq", StringOp::Movs, 64),
    ("stosb", StringOp::Stos, 8),
    ("stosw", StringOp::Stos, 16),
    ("stosl", StringOp::Stos, 32),
    ("stosd", StringOp::Stos, 32),
    ("stosq", StringOp::Stos, 64),
    ("lodsb", StringOp::Lods, 8),
    ("lodsw", StringOp::Lods, 16),
    ("lodsl", StringOp::Lods, 32),
    ("lodsd", StringOp::Lods, 32),
    ("lodsq", StringOp::Lods, 64),
    ("cmpsb", StringOp::Cmps, 8),
    ("cmpsw", StringOp::Cmps, 16),
    ("cmpsl", StringOp::Cmps, 32),
    ("cmpsd", StringOp::Cmps, 32),
    ("cmpsq", StringOp::Cmps, 64),
    ("scasb", StringOp::Scas, 8),
    ("scasw", StringOp::Scas, 16),
    ("scasl", StringOp::Scas, 32),
    ("scasd", StringOp::Scas, 32),
    ("scasq", StringOp::Scas, 64),
];

/// Resolves a suffix-free name: aliases, condition synonyms, then iced's own names.
fn base_name(name: &str) -> Option<(Mnemonic, Option<u32>)> {
    if let Some(&(_, iced, size)) = ALIASES.iter().find(|(g, _, _)| *g == name) {
        return table::mnemonic(iced).map(|m| (m, size));
    }
    for prefix in ["j", "set", "cmov"] {
        if let Some(cc) = name.strip_prefix(prefix) {
            if let Some(&(_, canon)) = CC_ALIASES.iter().find(|(a, _)| *a == cc) {
                return table::mnemonic(&format!("{prefix}{canon}")).map(|m| (m, None));
            }
        }
    }
    table::mnemonic(name).map(|m| (m, None))
}

fn suffix_bits(c: char) -> Option<u32> {
    match c {
        'b' => Some(8),
        'w' => Some(16),
        'l' => Some(32),
        'q' => Some(64),
        _ => None,
    }
}

/// Resolves a mnemonic as written. `att` enables AT&T size suffixes; `operands` is the
/// number of operands, which tells string `movsd` (none) apart from other uses.
pub(crate) fn resolve(written: &str, att: bool) -> Option<Resolved> {
    let name = written.to_ascii_lowercase();
    let generic = |mnemonic, size, src_size, movabs| Resolved::Generic {
        mnemonic,
        size,
        src_size,
        movabs,
    };
    if let Some(&(_, iced, dst, src)) = EXTENDS.iter().find(|(g, ..)| *g == name) {
        return table::mnemonic(iced).map(|m| generic(m, Some(dst), Some(src), false));
    }
    if let Some(&(_, op, bits)) = STRINGS.iter().find(|(g, ..)| *g == name) {
        return Some(Resolved::String(op, bits));
    }
    if name == "movabs" || name == "movabsq" {
        let size = (name == "movabsq").then_some(64);
        return Some(generic(Mnemonic::Mov, size, None, true));
    }
    if let Some((m, size)) = base_name(&name) {
        return Some(generic(m, size, None, false));
    }
    if att {
        let mut chars = name.chars();
        let last = chars.next_back()?;
        let bits = suffix_bits(last)?;
        let stem = chars.as_str();
        if let Some(&(_, iced, _, src)) = EXTENDS
            .iter()
            .find(|(g, _, d, _)| g.len() == stem.len() + 1 && g.starts_with(stem) && *d == bits)
        {
            return table::mnemonic(iced).map(|m| generic(m, Some(bits), Some(src), false));
        }
        if let Some((m, _)) = base_name(stem) {
            return Some(generic(m, Some(bits), None, false));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str) -> (Mnemonic, Option<u32>) {
        match resolve(name, true) {
            Some(Resolved::Generic { mnemonic, size, .. }) => (mnemonic, size),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn suffixes_and_aliases() {
        assert_eq!(g("addq"), (Mnemonic::Add, Some(64)));
        assert_eq!(g("shl"), (Mnemonic::Shl, None));
        assert_eq!(g("shll"), (Mnemonic::Shl, Some(32)));
        assert_eq!(g("sall"), (Mnemonic::Shl, Some(32)));
        assert_eq!(g("sbb"), (Mnemonic::Sbb, None));
        assert_eq!(g("sbbb"), (Mnemonic::Sbb, Some(8)));
        assert_eq!(g("setb"), (Mnemonic::Setb, None));
        assert_eq!(g("jl"), (Mnemonic::Jl, None));
        assert_eq!(g("jz"), (Mnemonic::Je, None));
        assert_eq!(g("cmovnael"), (Mnemonic::Cmovb, Some(32)));
        assert_eq!(g("setpo"), (Mnemonic::Setnp, None));
        assert_eq!(g("cltq"), (Mnemonic::Cdqe, None));
        assert_eq!(g("movq"), (Mnemonic::Mov, Some(64)));
        assert_eq!(g("retq"), (Mnemonic::Ret, Some(64)));
        assert_eq!(g("cmpxchg8b"), (Mnemonic::Cmpxchg8b, None));
        assert_eq!(g("movzbl"), (Mnemonic::Movzx, Some(32)));
        assert_eq!(g("movslq"), (Mnemonic::Movsxd, Some(64)));
        assert_eq!(
            resolve("movsl", true),
            Some(Resolved::String(StringOp::Movs, 32))
        );
        assert_eq!(resolve("frobq", true), None);
        assert_eq!(resolve("addq", false), None);
    }
}
