//! The one place that picks a handler for a decoded instruction.
//!
//! Mnemonics are routed to their family (one file per family under `insn/`); the
//! family's `exec` picks the form. A mnemonic no family claims is an explicit
//! [`crate::EmuError::Unsupported`], never a panic and never a silent no-op.
//!
//! The choice is made once per decode, not once per step: [`resolve`] turns an
//! [`Instruction`] into an [`Op`] that the decode cache keeps next to it, and
//! [`exec`] is then a single jump on [`Handler`]. Before this, every step paid iced's
//! `Code → Mnemonic` table lookup, the family match here and the family's own match
//! on the mnemonic (~20 % of the `cpu_loop` benchmark's profile).
//!
//! A handful of very common forms (32/64-bit ALU and MOV between general-purpose
//! registers, with an immediate or to/from memory, INC/DEC of a register, Jcc and
//! JMP rel) get their own [`Handler`] with the register numbers, size and immediate
//! or branch target extracted at decode time. Each fast handler lives in its
//! family's file next to the generic code, performs the same reads, checks and
//! writes in the same order, and uses the same flag helpers; every other form takes
//! the family route unchanged.

use crate::bus::Bus;
use crate::features::CpuFeatures;
use crate::insn::unsupported;
use crate::insn::{
    arith, bit, cache, ctrl_xfer, data_xfer, flag_ctrl, iret, logical, mult, shift, stack, string,
    syscall, system, tsc_aux, Exec, ExecResult,
};
use crate::state::{gpr_slot, CpuState};
use iced_x86::{Code, ConditionCode, Instruction, Mnemonic as M, OpKind, Register};
use std::sync::OnceLock;

/// Which handler runs an instruction: a family (whose `exec` matches on the
/// mnemonic as before) or one of the pre-resolved fast forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handler {
    Arith,
    Mult,
    Logical,
    Shift,
    Bit,
    Stack,
    CtrlXfer,
    String,
    FlagCtrl,
    System,
    Iret,
    Syscall,
    Cache,
    TscAux,
    DataXfer,
    Unsupported,
    // Fast forms. `R` = a 32/64-bit GPR (`Op::r0`/`Op::r1`), `I` = an immediate
    // (`Op::imm`), `M` = the memory operand. Sizes are `Op::size` (4 or 8).
    AddRR,
    AdcRR,
    SubRR,
    SbbRR,
    CmpRR,
    AndRR,
    OrRR,
    XorRR,
    TestRR,
    AddRI,
    AdcRI,
    SubRI,
    SbbRI,
    CmpRI,
    AndRI,
    OrRI,
    XorRI,
    TestRI,
    IncR,
    DecR,
    MovRR,
    MovRI,
    /// MOV m, r (a store).
    MovMR,
    /// MOV r, m (a load).
    MovRM,
    /// Jcc rel with the condition in `Op::cc` and the target in `Op::imm`.
    Jcc,
    /// JMP rel with the target in `Op::imm`.
    JmpRel,
}

/// An instruction's handler and the operands its fast form needs, resolved once
/// when the instruction is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) handler: Handler,
    /// Passed to the family's `exec`.
    pub(crate) mnemonic: M,
    /// Jcc condition.
    pub(crate) cc: ConditionCode,
    /// GPR index (0 = RAX .. 15 = R15) of operand 0 / operand 1 of a fast form.
    pub(crate) r0: u8,
    pub(crate) r1: u8,
    /// Operand size in bytes of a fast form (4 or 8).
    pub(crate) size: u8,
    /// The instruction is PAUSE (kept for `LastInsn::pause`, which is read every step).
    pub(crate) pause: bool,
    /// Immediate (as iced sign-extends it) or branch target of a fast form.
    pub(crate) imm: u64,
    /// Memory operand of MovMR/MovRM, which are only chosen when it is "simple":
    /// 64-bit addressing (base and index are 64-bit GPRs, RIP or absent) and no FS/GS
    /// segment, so the linear address is `disp + base + (index << scale_shift)`.
    /// `base`/`index` are GPR indexes, 16 when absent (RIP-relative operands were
    /// resolved into `disp` by the decoder).
    pub(crate) base: u8,
    pub(crate) index: u8,
    pub(crate) scale_shift: u8,
    /// The operand's segment is SS (a non-canonical address is #SS(0), not #GP(0)).
    pub(crate) seg_ss: bool,
    pub(crate) disp: u64,
}

/// GPR index of a 64-bit address register, 16 for none; `None` for anything else
/// (32-bit address registers, EIP).
fn addr_reg(r: Register) -> Option<u8> {
    if r == Register::None || r == Register::RIP {
        Some(16)
    } else if r.is_gpr64() {
        gpr_slot(r).map(|s| s.index as u8)
    } else {
        None
    }
}

/// Extracts the memory operand's address parts into `op` when it is simple (see
/// [`Op::base`]); false otherwise.
fn simple_memory(ins: &Instruction, op: &mut Op) -> bool {
    let seg = ins.memory_segment();
    if seg == Register::FS || seg == Register::GS {
        return false;
    }
    let (Some(base), Some(index)) = (addr_reg(ins.memory_base()), addr_reg(ins.memory_index()))
    else {
        return false;
    };
    op.base = base;
    op.index = index;
    op.scale_shift = ins.memory_index_scale().trailing_zeros() as u8;
    op.seg_ss = seg == Register::SS;
    op.disp = ins.memory_displacement64();
    true
}

/// The routing table: each family with the mnemonics it executes. The one list of
/// what the emulator implements ([`implemented_mnemonics`] reads it); a mnemonic in
/// no row is [`Handler::Unsupported`]. MOV appears under `DataXfer`; MOV to or
/// from a control register is a system instruction ([`family`] applies that rule).
const ROUTES: &[(Handler, &[M])] = &[
    (
        Handler::Arith,
        &[
            M::Add,
            M::Adc,
            M::Sub,
            M::Sbb,
            M::Cmp,
            M::Inc,
            M::Dec,
            M::Neg,
            M::Xadd,
            M::Cmpxchg,
            M::Cmpxchg8b,
            M::Cmpxchg16b,
        ],
    ),
    (Handler::Mult, &[M::Mul, M::Imul, M::Div, M::Idiv]),
    (Handler::Logical, &[M::And, M::Or, M::Xor, M::Test, M::Not]),
    (
        Handler::Shift,
        &[
            M::Shl,
            M::Sal,
            M::Shr,
            M::Sar,
            M::Rol,
            M::Ror,
            M::Rcl,
            M::Rcr,
            M::Shld,
            M::Shrd,
        ],
    ),
    (
        Handler::Bit,
        &[
            M::Bt,
            M::Bts,
            M::Btr,
            M::Btc,
            M::Bsf,
            M::Bsr,
            M::Tzcnt,
            M::Lzcnt,
            M::Popcnt,
            M::Bswap,
        ],
    ),
    (
        Handler::Stack,
        &[
            M::Push,
            M::Pop,
            M::Pushf,
            M::Pushfq,
            M::Popf,
            M::Popfq,
            M::Leave,
        ],
    ),
    (
        Handler::CtrlXfer,
        &[
            M::Jmp,
            M::Call,
            M::Ret,
            M::Jo,
            M::Jno,
            M::Jb,
            M::Jae,
            M::Je,
            M::Jne,
            M::Jbe,
            M::Ja,
            M::Js,
            M::Jns,
            M::Jp,
            M::Jnp,
            M::Jl,
            M::Jge,
            M::Jle,
            M::Jg,
        ],
    ),
    (
        Handler::String,
        &[
            M::Movsb,
            M::Movsw,
            M::Movsd,
            M::Movsq,
            M::Stosb,
            M::Stosw,
            M::Stosd,
            M::Stosq,
            M::Lodsb,
            M::Lodsw,
            M::Lodsd,
            M::Lodsq,
            M::Cmpsb,
            M::Cmpsw,
            M::Cmpsd,
            M::Cmpsq,
            M::Scasb,
            M::Scasw,
            M::Scasd,
            M::Scasq,
        ],
    ),
    (
        Handler::FlagCtrl,
        &[
            M::Clc,
            M::Stc,
            M::Cmc,
            M::Cld,
            M::Std,
            M::Cli,
            M::Sti,
            M::Stac,
            M::Clac,
        ],
    ),
    (
        Handler::System,
        &[
            M::Nop,
            M::Pause,
            M::Lfence,
            M::Sfence,
            M::Mfence,
            M::Rdtsc,
            M::Rdtscp,
            M::Cpuid,
            M::Rdmsr,
            M::Wrmsr,
            M::Invlpg,
            M::Invpcid,
            M::Hlt,
            M::Int3,
            M::Int,
            M::Swapgs,
            M::Ud2,
            M::Lidt,
            M::Lgdt,
            M::Sidt,
            M::Sgdt,
        ],
    ),
    (Handler::Iret, &[M::Iret, M::Iretd, M::Iretq]),
    (Handler::Syscall, &[M::Syscall, M::Sysret, M::Sysretq]),
    (
        Handler::Cache,
        &[M::Wbinvd, M::Invd, M::Clflush, M::Clflushopt],
    ),
    (Handler::TscAux, &[M::Rdpid]),
    (
        Handler::DataXfer,
        &[
            M::Mov,
            M::Movzx,
            M::Movsx,
            M::Movsxd,
            M::Lea,
            M::Xchg,
            M::Cbw,
            M::Cwde,
            M::Cdqe,
            M::Cwd,
            M::Cdq,
            M::Cqo,
            M::Seto,
            M::Setno,
            M::Setb,
            M::Setae,
            M::Sete,
            M::Setne,
            M::Setbe,
            M::Seta,
            M::Sets,
            M::Setns,
            M::Setp,
            M::Setnp,
            M::Setl,
            M::Setge,
            M::Setle,
            M::Setg,
            M::Cmovo,
            M::Cmovno,
            M::Cmovb,
            M::Cmovae,
            M::Cmove,
            M::Cmovne,
            M::Cmovbe,
            M::Cmova,
            M::Cmovs,
            M::Cmovns,
            M::Cmovp,
            M::Cmovnp,
            M::Cmovl,
            M::Cmovge,
            M::Cmovle,
            M::Cmovg,
        ],
    ),
];

/// [`ROUTES`] as a lookup table indexed by mnemonic, built once.
fn route(m: M) -> Handler {
    static TABLE: OnceLock<Vec<Handler>> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = vec![Handler::Unsupported; M::values().len()];
        for (h, ms) in ROUTES {
            for &m in *ms {
                debug_assert_eq!(t[m as usize], Handler::Unsupported, "{m:?} routed twice");
                t[m as usize] = *h;
            }
        }
        t
    });
    t.get(m as usize).copied().unwrap_or(Handler::Unsupported)
}

/// Every mnemonic the dispatcher routes to a family, in [`ROUTES`] order. An
/// instruction whose mnemonic is not here is reported as unsupported. (Individual
/// forms of a listed mnemonic may still be unsupported, e.g. SYSRET to
/// compatibility mode.) For tests that must cover everything implemented.
pub fn implemented_mnemonics() -> impl Iterator<Item = M> {
    ROUTES.iter().flat_map(|(_, ms)| ms.iter().copied())
}

/// The family that executes `ins`: [`ROUTES`], except that MOV to or from a
/// control register is a system instruction.
fn family(ins: &Instruction) -> Handler {
    let m = ins.mnemonic();
    if m == M::Mov && (ins.op0_register().is_cr() || ins.op1_register().is_cr()) {
        return Handler::System;
    }
    route(m)
}

/// GPR index and size of a 32- or 64-bit general-purpose register operand.
fn gpr32_64(ins: &Instruction, i: u32) -> Option<(u8, u8)> {
    if ins.op_kind(i) != OpKind::Register {
        return None;
    }
    let r = ins.op_register(i);
    if !(r.is_gpr64() || r.is_gpr32()) {
        return None;
    }
    let s = gpr_slot(r)?;
    Some((s.index as u8, s.size))
}

/// True for the immediate kinds `Exec::read_op` returns as `ins.immediate(i)`.
fn is_immediate(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

/// The fast form of `ins`, if it has one (see [`Handler`]).
fn fast_form(ins: &Instruction, op: &mut Op) -> Option<Handler> {
    let m = op.mnemonic;
    if ins.has_lock_prefix() || ins.op_count() > 2 {
        return None;
    }
    // Branches first: they have no register operands.
    if op.handler == Handler::CtrlXfer {
        if ins.op0_kind() != OpKind::NearBranch64 {
            return None;
        }
        op.imm = ins.near_branch_target();
        if ins.is_jcc_short_or_near() {
            op.cc = ins.condition_code();
            return Some(Handler::Jcc);
        }
        return match ins.code() {
            Code::Jmp_rel8_64 | Code::Jmp_rel32_64 => Some(Handler::JmpRel),
            _ => None,
        };
    }
    if op.handler == Handler::Arith && ins.op_count() == 1 {
        let (r, size) = gpr32_64(ins, 0)?;
        op.r0 = r;
        op.size = size;
        return match m {
            M::Inc => Some(Handler::IncR),
            M::Dec => Some(Handler::DecR),
            _ => None,
        };
    }
    if ins.op_count() != 2 {
        return None;
    }
    let k1 = ins.op1_kind();
    if m == M::Mov && op.handler == Handler::DataXfer {
        // MOV between a GPR and memory of the same size (no moffs forms).
        if ins.op0_kind() == OpKind::Memory {
            let (r, size) = gpr32_64(ins, 1)?;
            if ins.memory_size().size() != size as usize || !simple_memory(ins, op) {
                return None;
            }
            op.r1 = r;
            op.size = size;
            return Some(Handler::MovMR);
        }
        let (r, size) = gpr32_64(ins, 0)?;
        op.r0 = r;
        op.size = size;
        if k1 == OpKind::Memory {
            if ins.memory_size().size() != size as usize || !simple_memory(ins, op) {
                return None;
            }
            return Some(Handler::MovRM);
        }
        if is_immediate(k1) {
            op.imm = ins.immediate(1);
            return Some(Handler::MovRI);
        }
        let (r1, size1) = gpr32_64(ins, 1)?;
        if size1 != size {
            return None;
        }
        op.r1 = r1;
        return Some(Handler::MovRR);
    }
    if op.handler != Handler::Arith && op.handler != Handler::Logical {
        return None;
    }
    let (r0, size) = gpr32_64(ins, 0)?;
    op.r0 = r0;
    op.size = size;
    let reg = if is_immediate(k1) {
        op.imm = ins.immediate(1);
        false
    } else {
        let (r1, size1) = gpr32_64(ins, 1)?;
        if size1 != size {
            return None;
        }
        op.r1 = r1;
        true
    };
    Some(match (m, reg) {
        (M::Add, true) => Handler::AddRR,
        (M::Adc, true) => Handler::AdcRR,
        (M::Sub, true) => Handler::SubRR,
        (M::Sbb, true) => Handler::SbbRR,
        (M::Cmp, true) => Handler::CmpRR,
        (M::And, true) => Handler::AndRR,
        (M::Or, true) => Handler::OrRR,
        (M::Xor, true) => Handler::XorRR,
        (M::Test, true) => Handler::TestRR,
        (M::Add, false) => Handler::AddRI,
        (M::Adc, false) => Handler::AdcRI,
        (M::Sub, false) => Handler::SubRI,
        (M::Sbb, false) => Handler::SbbRI,
        (M::Cmp, false) => Handler::CmpRI,
        (M::And, false) => Handler::AndRI,
        (M::Or, false) => Handler::OrRI,
        (M::Xor, false) => Handler::XorRI,
        (M::Test, false) => Handler::TestRI,
        _ => return None,
    })
}

/// Resolves the handler of a decoded instruction (done once, at decode time).
pub(crate) fn resolve(ins: &Instruction) -> Op {
    let op = Op {
        handler: family(ins),
        mnemonic: ins.mnemonic(),
        cc: ConditionCode::None,
        r0: 0,
        r1: 0,
        size: 0,
        pause: ins.mnemonic() == M::Pause,
        imm: 0,
        base: 16,
        index: 16,
        scale_shift: 0,
        seg_ss: false,
        disp: 0,
    };
    let mut fast = op;
    if let Some(h) = fast_form(ins, &mut fast) {
        fast.handler = h;
        return fast;
    }
    op
}

/// Executes the instruction `ins`, whose handler `op` was resolved by [`resolve`],
/// on `cpu` and `bus`; control transfers update `next_rip`.
///
/// Always inlined into `Cpu::step`: left to LLVM it stayed a call on the machine's
/// bus (~25 Ir per step of call, spills and returning `ExecResult` through memory
/// in the paged `cpu_loop`); the family handlers behind it stay out of line.
///
/// The [`Exec`] context is built only in the arms that use it (families and the
/// memory fast forms): register-only fast forms take the `CpuState` alone, which
/// saves storing the six-field context on most steps (~7 Ir per step).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn exec<B: Bus>(
    cpu: &mut CpuState,
    bus: &mut B,
    ins: &Instruction,
    op: &Op,
    next_rip: &mut u64,
    features: &CpuFeatures,
    core_id: u32,
) -> ExecResult {
    let m = op.mnemonic;
    macro_rules! with_exec {
        (|$x:ident| $body:expr) => {{
            let mut $x = Exec {
                cpu,
                bus,
                ins,
                next_rip: *next_rip,
                features,
                core_id,
            };
            let r = $body;
            *next_rip = $x.next_rip;
            r
        }};
    }
    match op.handler {
        Handler::AddRR => arith::alu_fast(cpu, op, arith::FastAlu::Add, true),
        Handler::AdcRR => arith::alu_fast(cpu, op, arith::FastAlu::Adc, true),
        Handler::SubRR => arith::alu_fast(cpu, op, arith::FastAlu::Sub, true),
        Handler::SbbRR => arith::alu_fast(cpu, op, arith::FastAlu::Sbb, true),
        Handler::CmpRR => arith::alu_fast(cpu, op, arith::FastAlu::Cmp, true),
        Handler::AddRI => arith::alu_fast(cpu, op, arith::FastAlu::Add, false),
        Handler::AdcRI => arith::alu_fast(cpu, op, arith::FastAlu::Adc, false),
        Handler::SubRI => arith::alu_fast(cpu, op, arith::FastAlu::Sub, false),
        Handler::SbbRI => arith::alu_fast(cpu, op, arith::FastAlu::Sbb, false),
        Handler::CmpRI => arith::alu_fast(cpu, op, arith::FastAlu::Cmp, false),
        Handler::AndRR => logical::binary_fast(cpu, op, |a, b| a & b, true, true),
        Handler::OrRR => logical::binary_fast(cpu, op, |a, b| a | b, true, true),
        Handler::XorRR => logical::binary_fast(cpu, op, |a, b| a ^ b, true, true),
        Handler::TestRR => logical::binary_fast(cpu, op, |a, b| a & b, false, true),
        Handler::AndRI => logical::binary_fast(cpu, op, |a, b| a & b, true, false),
        Handler::OrRI => logical::binary_fast(cpu, op, |a, b| a | b, true, false),
        Handler::XorRI => logical::binary_fast(cpu, op, |a, b| a ^ b, true, false),
        Handler::TestRI => logical::binary_fast(cpu, op, |a, b| a & b, false, false),
        Handler::IncR => arith::inc_dec_fast(cpu, op, false),
        Handler::DecR => arith::inc_dec_fast(cpu, op, true),
        Handler::MovRR => data_xfer::mov_rr_fast(cpu, op),
        Handler::MovRI => data_xfer::mov_ri_fast(cpu, op),
        Handler::Jcc => ctrl_xfer::jcc_fast(cpu, op, next_rip),
        Handler::JmpRel => ctrl_xfer::jmp_rel_fast(op, next_rip),
        Handler::MovMR => with_exec!(|x| data_xfer::mov_store_fast(&mut x, op)),
        Handler::MovRM => with_exec!(|x| data_xfer::mov_load_fast(&mut x, op)),
        Handler::Arith => with_exec!(|x| arith::exec(&mut x, m)),
        Handler::Mult => with_exec!(|x| mult::exec(&mut x, m)),
        Handler::Logical => with_exec!(|x| logical::exec(&mut x, m)),
        Handler::Shift => with_exec!(|x| shift::exec(&mut x, m)),
        Handler::Bit => with_exec!(|x| bit::exec(&mut x, m)),
        Handler::Stack => with_exec!(|x| stack::exec(&mut x, m)),
        Handler::CtrlXfer => with_exec!(|x| ctrl_xfer::exec(&mut x, m)),
        Handler::String => with_exec!(|x| string::exec(&mut x, m)),
        Handler::FlagCtrl => with_exec!(|x| flag_ctrl::exec(&mut x, m)),
        Handler::System => with_exec!(|x| system::exec(&mut x, m)),
        Handler::Iret => with_exec!(|x| iret::exec(&mut x, m)),
        Handler::Syscall => with_exec!(|x| syscall::exec(&mut x, m)),
        Handler::Cache => with_exec!(|x| cache::exec(&mut x, m)),
        Handler::TscAux => with_exec!(|x| tsc_aux::exec(&mut x, m)),
        Handler::DataXfer => with_exec!(|x| data_xfer::exec(&mut x, m)),
        Handler::Unsupported => Err(unsupported(cpu.rip, ins).into()),
    }
}

/// Which registers a fast form may name: used by the tests to check that
/// `resolve` picked a fast form only for GPR operands.
#[cfg(test)]
fn fast_regs_ok(ins: &Instruction) -> bool {
    (0..ins.op_count()).all(|i| {
        ins.op_kind(i) != OpKind::Register || {
            let r = ins.op_register(i);
            r.is_gpr32() || r.is_gpr64()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::CpuState;
    use iced_x86::{Decoder, DecoderOptions};

    fn op_of(bytes: &[u8]) -> (Instruction, Op) {
        let ins = Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).decode();
        (ins, resolve(&ins))
    }

    #[test]
    fn common_forms_resolve_fast() {
        let cases: &[(&[u8], Handler)] = &[
            (&[0x48, 0x01, 0xd8], Handler::AddRR),  // add rax, rbx
            (&[0x48, 0x31, 0xc1], Handler::XorRR),  // xor rcx, rax
            (&[0x48, 0x89, 0x0e], Handler::MovMR),  // mov [rsi], rcx
            (&[0x48, 0x8b, 0x0e], Handler::MovRM),  // mov rcx, [rsi]
            (&[0x48, 0xff, 0xca], Handler::DecR),   // dec rdx
            (&[0x75, 0xf0], Handler::Jcc),          // jnz
            (&[0xeb, 0xf0], Handler::JmpRel),       // jmp short
            (&[0x83, 0xc0, 0x01], Handler::AddRI),  // add eax, 1
            (&[0xb8, 1, 0, 0, 0], Handler::MovRI),  // mov eax, 1
            (&[0x89, 0xd8], Handler::MovRR),        // mov eax, ebx
            (&[0x48, 0x85, 0xc0], Handler::TestRR), // test rax, rax
        ];
        for (bytes, h) in cases {
            let (ins, op) = op_of(bytes);
            assert_eq!(op.handler, *h, "{ins}");
            assert!(fast_regs_ok(&ins));
        }
    }

    #[test]
    fn other_forms_take_the_family_route() {
        let cases: &[(&[u8], Handler)] = &[
            (&[0x00, 0xd8], Handler::Arith),                // add al, bl
            (&[0x66, 0x01, 0xd8], Handler::Arith),          // add ax, bx
            (&[0xf0, 0x48, 0x01, 0x06], Handler::Arith),    // lock add [rsi], rax
            (&[0x48, 0x01, 0x06], Handler::Arith),          // add [rsi], rax
            (&[0x88, 0x0e], Handler::DataXfer),             // mov [rsi], cl
            (&[0x8c, 0xd8], Handler::DataXfer),             // mov eax, ds
            (&[0x0f, 0x20, 0xd8], Handler::System),         // mov rax, cr3
            (&[0xff, 0xe0], Handler::CtrlXfer),             // jmp rax
            (&[0xf3, 0x90], Handler::System),               // pause
            (&[0x64, 0x48, 0x8b, 0x06], Handler::DataXfer), // mov rax, fs:[rsi]
            (&[0x67, 0x48, 0x8b, 0x06], Handler::DataXfer), // mov rax, [esi]
        ];
        for (bytes, h) in cases {
            let (ins, op) = op_of(bytes);
            assert_eq!(op.handler, *h, "{ins}");
        }
        assert!(op_of(&[0xf3, 0x90]).1.pause);
    }

    /// Runs `bytes` once through its resolved (fast) handler and once through its
    /// family, from the same state, and requires the same outcome, registers,
    /// flags, RIP and memory.
    fn same_as_family(bytes: &[u8], regs: [u64; 16], rflags: u64) {
        use crate::bus::FlatBus;
        use crate::exception::Fault;
        use mmu::PhysAddr;
        let (ins, fast) = op_of(bytes);
        assert!(
            !matches!(
                fast.handler,
                Handler::Arith | Handler::Logical | Handler::DataXfer | Handler::CtrlXfer
            ),
            "{ins} has no fast form"
        );
        let mut slow = fast;
        slow.handler = family(&ins);
        let run = |op: &Op| {
            let mut bus = FlatBus::new(4 << 20);
            for a in (0..0x3000u64).step_by(8) {
                bus.mem
                    .write_u64(PhysAddr(a), a.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .unwrap();
            }
            let mut cpu = CpuState {
                gpr: regs,
                rflags,
                rip: ins.ip(),
                ..CpuState::default()
            };
            let mut next = ins.next_ip();
            let r = exec(
                &mut cpu,
                &mut bus,
                &ins,
                op,
                &mut next,
                &CpuFeatures::default(),
                0,
            );
            let r = r.map_err(|f| match f {
                Fault::Exception(e) => format!("{e:?}"),
                Fault::Emu(e) => format!("{e}"),
            });
            let mut mem = vec![0u8; 0x3000];
            bus.mem.read(PhysAddr(0), &mut mem).unwrap();
            (r, cpu, next, mem)
        };
        assert_eq!(
            run(&fast),
            run(&slow),
            "{ins} with {regs:x?} rflags {rflags:#x}"
        );
    }

    #[test]
    fn fast_forms_match_their_family() {
        let forms: &[&[u8]] = &[
            &[0x48, 0x01, 0xd8],                         // add rax, rbx
            &[0x01, 0xd8],                               // add eax, ebx
            &[0x48, 0x11, 0xd8],                         // adc rax, rbx
            &[0x48, 0x29, 0xd8],                         // sub rax, rbx
            &[0x19, 0xd8],                               // sbb eax, ebx
            &[0x48, 0x39, 0xd8],                         // cmp rax, rbx
            &[0x48, 0x21, 0xd8],                         // and rax, rbx
            &[0x09, 0xd8],                               // or eax, ebx
            &[0x48, 0x31, 0xc1],                         // xor rcx, rax
            &[0x85, 0xd8],                               // test eax, ebx
            &[0x48, 0x83, 0xc0, 0x80],                   // add rax, -128
            &[0x83, 0xd0, 0x7f],                         // adc eax, 127
            &[0x48, 0x2d, 0, 0, 0, 0x80],                // sub rax, imm32 (sign-extended)
            &[0x83, 0xd8, 0xff],                         // sbb eax, -1
            &[0x48, 0x83, 0xf8, 0x01],                   // cmp rax, 1
            &[0x25, 0xff, 0, 0, 0x80],                   // and eax, 0x800000ff
            &[0x48, 0x83, 0xc8, 0xf0],                   // or rax, -16
            &[0x83, 0xf0, 0x55],                         // xor eax, 0x55
            &[0x48, 0xa9, 0xff, 0xff, 0xff, 0xff],       // test rax, -1
            &[0x48, 0xff, 0xc0],                         // inc rax
            &[0xff, 0xc8],                               // dec eax
            &[0x48, 0x89, 0xd8],                         // mov rax, rbx
            &[0x89, 0xd8],                               // mov eax, ebx
            &[0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 0x88],    // mov rax, imm64
            &[0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff], // mov rax, -1 (imm32)
            &[0xb8, 0xff, 0xff, 0xff, 0xff],             // mov eax, 0xffffffff
            &[0x48, 0x89, 0x0e],                         // mov [rsi], rcx
            &[0x89, 0x0e],                               // mov [rsi], ecx
            &[0x48, 0x89, 0x4c, 0x9e, 0xf8],             // mov [rsi+rbx*4-8], rcx
            &[0x48, 0x89, 0x0c, 0x24],                   // mov [rsp], rcx
            &[0x48, 0x8b, 0x0e],                         // mov rcx, [rsi]
            &[0x8b, 0x0e],                               // mov ecx, [rsi]
            &[0x48, 0x8b, 0x0c, 0x24],                   // mov rcx, [rsp]
            &[0x48, 0x8b, 0x05, 0x10, 0, 0, 0],          // mov rax, [rip+0x10]
            &[0x75, 0x10],                               // jnz +0x10
            &[0x0f, 0x8c, 0, 1, 0, 0],                   // jl +0x100
            &[0x76, 0xf0],                               // jbe -0x10
            &[0xeb, 0x10],                               // jmp +0x10
            &[0xe9, 0, 0, 0, 1],                         // jmp +0x1000000
        ];
        // Addresses: inside memory, crossing a page, outside memory, non-canonical.
        let ptrs = [0x1000u64, 0x1ffc, 0x7f_fff8, 0x8000_0000_0000_0000];
        let values = [
            0u64,
            1,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            u64::MAX,
            0x8000_0000_0000_0000,
        ];
        for form in forms {
            for (i, &v) in values.iter().enumerate() {
                for &p in &ptrs {
                    let mut regs = [0u64; 16];
                    regs[0] = v; // rax
                    regs[1] = values[(i + 3) % values.len()]; // rcx
                    regs[3] = values[(i + 1) % values.len()] & 0x3ff; // rbx: small index
                    regs[4] = p; // rsp
                    regs[6] = p; // rsi
                    for rflags in [0x2, 0x2 | 0x8d5] {
                        same_as_family(form, regs, rflags);
                    }
                }
            }
        }
    }

    #[test]
    fn simple_memory_parts() {
        // mov rax, [rsi+rcx*4+8]
        let (_, op) = op_of(&[0x48, 0x8b, 0x44, 0x8e, 0x08]);
        assert_eq!((op.base, op.index, op.scale_shift, op.disp), (6, 1, 2, 8));
        assert!(!op.seg_ss);
        // mov rax, [rsp+8]: SS
        let (_, op) = op_of(&[0x48, 0x8b, 0x44, 0x24, 0x08]);
        assert_eq!((op.base, op.index, op.disp), (4, 16, 8));
        assert!(op.seg_ss);
        // mov rax, [rip+0x10]: resolved against the instruction's end (0x1000 + 7)
        let (_, op) = op_of(&[0x48, 0x8b, 0x05, 0x10, 0, 0, 0]);
        assert_eq!((op.base, op.index, op.disp), (16, 16, 0x1017));
    }
}
