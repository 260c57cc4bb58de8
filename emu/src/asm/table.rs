//! The instruction table: for every mnemonic, the iced-x86 `Code`s (encodings) that take
//! only operands this assembler can write (general-purpose, segment, control and debug
//! registers, memory, immediates, near branches). Built once from iced's own op-code tables,
//! so there is no hand-written list of forms to get wrong.

use iced_x86::{Code, EncodingKind, MemorySize, Mnemonic, OpCodeOperandKind as K};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One encoding of a mnemonic, with the facts form selection needs.
#[derive(Debug, Clone)]
pub(crate) struct Form {
    /// The iced code.
    pub(crate) code: Code,
    /// Operand kinds in Intel order.
    pub(crate) kinds: Vec<K>,
    /// Operand size in bits, matched against AT&T suffixes and used to resolve ambiguity.
    pub(crate) size: Option<u32>,
    /// Size in bits of the memory operand if the form has one with a known size.
    pub(crate) mem_bits: Option<u32>,
    /// True if the operand size defaults to 64 bits in long mode (push, pop, call, ret…).
    pub(crate) default64: bool,
}

struct Table {
    by_mnemonic: BTreeMap<u32, Vec<Form>>,
    names: BTreeMap<String, Mnemonic>,
}

/// True for operand kinds a written operand can satisfy.
fn supported_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_reg_mem
            | K::r16_rm
            | K::r16_opcode
            | K::r32_reg
            | K::r32_reg_mem
            | K::r32_rm
            | K::r32_opcode
            | K::r64_reg
            | K::r64_reg_mem
            | K::r64_rm
            | K::r64_opcode
            | K::mem
            | K::mem_offs
            | K::seg_reg
            | K::cr_reg
            | K::dr_reg
            | K::es
            | K::cs
            | K::ss
            | K::ds
            | K::fs
            | K::gs
            | K::al
            | K::cl
            | K::ax
            | K::dx
            | K::eax
            | K::rax
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::br64_1
            | K::br64_4
    )
}

/// Register width implied by a kind, if it names general-purpose registers.
pub(crate) fn kind_reg_bits(k: K) -> Option<u32> {
    Some(match k {
        K::r8_or_mem | K::r8_reg | K::r8_opcode | K::al | K::cl => 8,
        K::r16_or_mem | K::r16_reg | K::r16_reg_mem | K::r16_rm | K::r16_opcode | K::ax | K::dx => {
            16
        }
        K::r32_or_mem | K::r32_reg | K::r32_reg_mem | K::r32_rm | K::r32_opcode | K::eax => 32,
        K::r64_or_mem | K::r64_reg | K::r64_reg_mem | K::r64_rm | K::r64_opcode | K::rax => 64,
        _ => return None,
    })
}

fn far_pointer(m: MemorySize) -> bool {
    matches!(
        m,
        MemorySize::SegPtr16 | MemorySize::SegPtr32 | MemorySize::SegPtr64
    )
}

fn build() -> Table {
    let mut by_mnemonic: BTreeMap<u32, Vec<Form>> = BTreeMap::new();
    for code in Code::values() {
        let info = code.op_code();
        let usable = info.is_instruction()
            && info.mode64()
            && info.encoding() == EncodingKind::Legacy
            && info.decoder_option() == 0
            && !far_pointer(info.memory_size())
            && info.op_kinds().iter().all(|&k| supported_kind(k));
        if !usable {
            continue;
        }
        let kinds = info.op_kinds().to_vec();
        let mem_bytes = info.memory_size().size();
        let mem_bits = (mem_bytes != 0).then(|| mem_bytes as u32 * 8);
        let size = match info.operand_size() {
            0 => kinds.iter().find_map(|&k| kind_reg_bits(k)),
            s => Some(s),
        };
        let default64 = info.default_op_size64() || info.force_op_size64();
        by_mnemonic
            .entry(code.mnemonic() as u32)
            .or_default()
            .push(Form {
                code,
                kinds,
                size,
                mem_bits,
                default64,
            });
    }
    let names = Mnemonic::values()
        .filter(|m| by_mnemonic.contains_key(&(*m as u32)))
        .map(|m| (format!("{m:?}").to_ascii_lowercase(), m))
        .collect();
    Table { by_mnemonic, names }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build)
}

/// All usable encodings of a mnemonic, in iced `Code` order (which is opcode order, the
/// order GNU as prefers among equal-length encodings).
pub(crate) fn forms(m: Mnemonic) -> &'static [Form] {
    table()
        .by_mnemonic
        .get(&(m as u32))
        .map_or(&[], Vec::as_slice)
}

/// The mnemonic with this (lowercase) iced name, if it has usable forms.
pub(crate) fn mnemonic(name: &str) -> Option<Mnemonic> {
    table().names.get(name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_cpu_subset() {
        for name in [
            "mov",
            "movzx",
            "movsxd",
            "lea",
            "xadd",
            "cmpxchg16b",
            "shld",
            "bt",
            "tzcnt",
            "popcnt",
            "bswap",
            "sete",
            "cmovg",
            "jne",
            "call",
            "ret",
            "pushfq",
            "cqo",
            "pause",
            "mfence",
            "rdtscp",
            "wrmsr",
            "invlpg",
            "invpcid",
            "swapgs",
            "iretq",
            "lidt",
            "int3",
            "ud2",
            "nop",
            "leave",
        ] {
            let m = mnemonic(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(!forms(m).is_empty(), "{name}");
        }
        assert!(mnemonic("movq").is_none(), "SSE movq must not shadow mov+q");
        assert!(mnemonic("addps").is_none());
        let mov = forms(Mnemonic::Mov);
        assert!(mov.iter().any(|f| f.code == Code::Mov_r64_imm64));
        assert!(mov.iter().any(|f| f.code == Code::Mov_cr_r64));
        assert!(mov.iter().all(|f| f.kinds.len() == 2));
    }
}
