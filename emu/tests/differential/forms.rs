//! The instruction forms under test, enumerated from iced-x86's op-code tables.
//!
//! A form is a `Code` plus, when it has an r/m operand, whether that operand is a
//! register or memory. Every `Code` valid in 64-bit mode, legacy-encoded, whose
//! mnemonic is one of the integer instructions the CPU implements and whose
//! operands are general registers, immediates or memory is kept.

use iced_x86::{Code, CpuidFeature, EncodingKind, Mnemonic, OpCodeOperandKind as K};

/// The integer mnemonics the emulator implements and the host can check.
pub const MNEMONICS: &[Mnemonic] = {
    use Mnemonic::*;
    &[
        Add, Adc, Sub, Sbb, Cmp, Inc, Dec, Neg, Xadd, Cmpxchg, And, Or, Xor, Test, Not, Mul, Imul,
        Div, Idiv, Shl, Sal, Shr, Sar, Rol, Ror, Rcl, Rcr, Shld, Shrd, Bt, Bts, Btr, Btc, Bsf, Bsr,
        Tzcnt, Lzcnt, Popcnt, Bswap, Mov, Movzx, Movsx, Movsxd, Lea, Xchg, Seto, Setno, Setb,
        Setae, Sete, Setne, Setbe, Seta, Sets, Setns, Setp, Setnp, Setl, Setge, Setle, Setg, Cmovo,
        Cmovno, Cmovb, Cmovae, Cmove, Cmovne, Cmovbe, Cmova, Cmovs, Cmovns, Cmovp, Cmovnp, Cmovl,
        Cmovge, Cmovle, Cmovg, Cbw, Cwde, Cdqe, Cwd, Cdq, Cqo, Clc, Stc, Cmc, Cld, Std, Nop,
        Cmpxchg8b, Pause, Lfence, Sfence, Mfence, Clflush, Clflushopt,
        // String instructions without REP (the bonus set).
        Movsb, Movsw, Movsd, Movsq, Stosb, Stosw, Stosd, Stosq, Lodsb, Lodsw, Lodsd, Lodsq, Cmpsb,
        Cmpsw, Cmpsd, Cmpsq, Scasb, Scasw, Scasd, Scasq,
    ]
};

/// One form under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Form {
    /// The iced code.
    pub code: Code,
    /// The r/m operand (if any) is memory rather than a register.
    pub mem: bool,
}

impl Form {
    /// "Add_rm32_r32 (mem)".
    pub fn name(&self) -> String {
        let rm = self.code.op_code().op_kinds().iter().any(|k| is_rm(*k));
        match (rm, self.mem) {
            (true, true) => format!("{:?} (mem)", self.code),
            (true, false) => format!("{:?} (reg)", self.code),
            _ => format!("{:?}", self.code),
        }
    }

    /// Whether this is a string instruction (implicit RSI/RDI operands).
    pub fn is_string(&self) -> bool {
        self.code
            .op_code()
            .op_kinds()
            .iter()
            .any(|k| matches!(k, K::seg_rSI | K::es_rDI | K::seg_rDI))
    }
}

/// An r/m operand: register or memory.
pub fn is_rm(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem
    )
}

/// Operand kinds the generator can produce.
fn supported_kind(k: K) -> bool {
    is_rm(k)
        || matches!(
            k,
            K::mem
                | K::mem_offs
                | K::r8_reg
                | K::r8_opcode
                | K::r16_reg
                | K::r16_rm
                | K::r16_opcode
                | K::r32_reg
                | K::r32_rm
                | K::r32_opcode
                | K::r64_reg
                | K::r64_rm
                | K::r64_opcode
                | K::al
                | K::cl
                | K::ax
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
                | K::seg_rSI
                | K::es_rDI
                | K::seg_rDI
        )
}

/// CPUID features every x86-64 host has; anything else is checked at run time.
fn baseline(f: CpuidFeature) -> bool {
    matches!(
        f,
        CpuidFeature::INTEL8086
            | CpuidFeature::INTEL186
            | CpuidFeature::INTEL286
            | CpuidFeature::INTEL386
            | CpuidFeature::INTEL486
            | CpuidFeature::X64
            | CpuidFeature::CMOV
            | CpuidFeature::CX8
            | CpuidFeature::PAUSE
            | CpuidFeature::SSE
            | CpuidFeature::SSE2
            | CpuidFeature::MULTIBYTENOP
    )
}

/// Whether the host has `f` (only the features the selected mnemonics need).
pub fn host_has(f: CpuidFeature) -> Option<bool> {
    if baseline(f) {
        return Some(true);
    }
    match f {
        CpuidFeature::LZCNT => Some(std::arch::is_x86_feature_detected!("lzcnt")),
        CpuidFeature::BMI1 => Some(std::arch::is_x86_feature_detected!("bmi1")),
        CpuidFeature::POPCNT => Some(std::arch::is_x86_feature_detected!("popcnt")),
        // CPUID.01H:EDX.CLFSH[bit 19]; CPUID.(EAX=07H,ECX=0):EBX.CLFLUSHOPT[bit 23].
        CpuidFeature::CLFSH => Some(std::arch::x86_64::__cpuid(1).edx & 1 << 19 != 0),
        CpuidFeature::CLFLUSHOPT => Some(std::arch::x86_64::__cpuid_count(7, 0).ebx & 1 << 23 != 0),
        _ => None,
    }
}

/// True on an AMD host, whose decoder iced describes separately from Intel's.
fn host_is_amd() -> bool {
    let r = std::arch::x86_64::__cpuid(0);
    // "AuthenticAMD" is EBX, EDX, ECX = "Auth", "enti", "cAMD".
    r.ebx == u32::from_le_bytes(*b"Auth")
        && r.edx == u32::from_le_bytes(*b"enti")
        && r.ecx == u32::from_le_bytes(*b"cAMD")
}

/// Every form under test, in `Code` order. Panics if a form needs a CPU feature
/// this table does not know how to check on the host.
pub fn all_forms() -> Vec<Form> {
    let amd = host_is_amd();
    let mut out = Vec::new();
    for code in Code::values() {
        let op = code.op_code();
        if !op.is_instruction()
            || !op.mode64()
            || op.encoding() != EncodingKind::Legacy
            || op.must_be_cpl0()
            || !MNEMONICS.contains(&code.mnemonic())
            || !op.op_kinds().iter().all(|k| supported_kind(*k))
        {
            continue;
        }
        // Some encodings decode differently on Intel and AMD (iced knows which).
        if (amd && !op.amd_decoder64()) || (!amd && !op.intel_decoder64()) {
            continue;
        }
        for f in code.cpuid_features() {
            match host_has(*f) {
                Some(true) => {}
                Some(false) => panic!(
                    "host lacks {f:?}, needed by {code:?}: the differential test cannot \
                     check this form on this machine"
                ),
                None => panic!("{code:?} needs {f:?}: teach forms::host_has about it"),
            }
        }
        let has_rm = op.op_kinds().iter().any(|k| is_rm(*k));
        let mem_only = op
            .op_kinds()
            .iter()
            .any(|k| matches!(k, K::mem | K::mem_offs));
        if has_rm {
            out.push(Form { code, mem: false });
            out.push(Form { code, mem: true });
        } else {
            out.push(Form {
                code,
                mem: mem_only,
            });
        }
    }
    out
}
