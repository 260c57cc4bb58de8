//! Register names, built once from iced-x86's own register list so the assembler accepts
//! exactly the registers iced can encode (general-purpose, segment, control, debug, RIP).

use iced_x86::Register;
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn table() -> &'static BTreeMap<String, Register> {
    static TABLE: OnceLock<BTreeMap<String, Register>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = BTreeMap::new();
        for r in Register::values() {
            let usable = r.is_gpr()
                || r.is_segment_register()
                || r.is_cr()
                || r.is_dr()
                || r == Register::RIP
                || r == Register::EIP;
            if usable {
                m.insert(format!("{r:?}").to_ascii_lowercase(), r);
            }
        }
        // iced spells the low bytes of r8..r15 `r8l`; GNU as and Intel manuals use `r8b`.
        let extra: Vec<(String, Register)> = m
            .iter()
            .filter_map(|(k, &r)| {
                let stem = k.strip_suffix('l')?;
                (stem.len() >= 2 && stem[1..].bytes().all(|b| b.is_ascii_digit()))
                    .then(|| (format!("{stem}b"), r))
            })
            .collect();
        m.extend(extra);
        m
    })
}

/// Looks a register up by name, case-insensitively (`rax`, `R8B`, `cr3`, `gs`, `rip`).
pub(crate) fn lookup(name: &str) -> Option<Register> {
    table().get(&name.to_ascii_lowercase()).copied()
}

/// Width in bits of a general-purpose register, `None` for other registers.
pub(crate) fn gpr_bits(r: Register) -> Option<u32> {
    if r.is_gpr8() {
        Some(8)
    } else if r.is_gpr16() {
        Some(16)
    } else if r.is_gpr32() {
        Some(32)
    } else if r.is_gpr64() {
        Some(64)
    } else {
        None
    }
}

/// The register as GNU as spells it, for messages.
pub(crate) fn name(r: Register) -> String {
    let s = format!("{r:?}").to_ascii_lowercase();
    match s.strip_suffix('l') {
        Some(stem) if stem.len() >= 2 && stem[1..].bytes().all(|b| b.is_ascii_digit()) => {
            format!("{stem}b")
        }
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(lookup("RAX"), Some(Register::RAX));
        assert_eq!(lookup("r8b"), Some(Register::R8L));
        assert_eq!(lookup("r15d"), Some(Register::R15D));
        assert_eq!(lookup("spl"), Some(Register::SPL));
        assert_eq!(lookup("cr3"), Some(Register::CR3));
        assert_eq!(lookup("gs"), Some(Register::GS));
        assert_eq!(lookup("xmm0"), None);
        assert_eq!(lookup("rbx2"), None);
        assert_eq!(name(Register::R9L), "r9b");
        assert_eq!(gpr_bits(Register::AH), Some(8));
    }
}
