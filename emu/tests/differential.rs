//! Differential check of instruction semantics against the host CPU, in the
//! spirit of QEMU's risu.
//!
//! Every non-privileged, non-control-flow integer instruction form the emulator
//! implements is enumerated from iced-x86's op-code tables (see
//! `differential/forms.rs`), encoded with random operands, registers, flags and
//! memory, run once on the host (`differential/native.rs`) and once in a [`Cpu`]
//! on a [`FlatBus`] with the same addresses, and the results compared: all GPRs,
//! RFLAGS except what the SDM leaves undefined (`differential/undefined.rs`), RIP,
//! and the scratch memory buffer. Division inputs that would raise #DE are not run
//! on the host; the emulator must raise `#DE` and leave everything unchanged.
//! `host_cpu_agrees_behind_paging` runs every form again with the emulator's code
//! and data behind 4 KiB pages, through the TLB model and the coherence tracker
//! (`differential/paged.rs`), at the same linear addresses.
//!
//! ```text
//! cargo test -p emu --test differential                 # 100 states per form
//! cargo test -p emu --release --test differential -- --ignored --nocapture   # 10,000
//! DIFF_FILTER=Shld DIFF_STATES=5000 cargo test -p emu --test differential -- --nocapture
//! DIFF_REPORT=/tmp/diff.md ...                           # also write a Markdown report
//! ```
//!
//! Forms the emulator does not implement yet fail the test unless listed in
//! `differential/unsupported_allowlist.txt` (a temporary list that must end empty).

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("the host-CPU differential test needs an x86-64 Linux host (its oracle is the CPU)");

#[path = "differential/forms.rs"]
mod forms;
#[path = "differential/native.rs"]
mod native;
#[path = "differential/paged.rs"]
mod paged;
#[path = "differential/rng.rs"]
mod rng;
#[path = "differential/snippets.rs"]
mod snippets;
#[path = "differential/undefined.rs"]
mod undefined;

use emu::{Cpu, CpuFeatures, CpuState, DecodeCache, EmuError, Exception, FlatBus, StepOutcome};
use forms::{Form, MNEMONICS};
use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, Formatter, Instruction, IntelFormatter, MemoryOperand,
    Mnemonic, OpCodeOperandKind as K, OpKind, Register, RepPrefixKind,
};
use mmu::PhysAddr;
use native::{Regs, BUF_ADDR, BUF_LEN};
use rng::Rng;
use std::fmt::Write as _;
use undefined::{mask, op_size, Undefined, DF, OF, STATUS};

/// States per form in the default (CI) run.
const QUICK_STATES: u32 = 100;
/// States per form in the full run.
const FULL_STATES: u32 = 10_000;
/// RSP in the emulator; no form under test may change it.
const EMU_RSP: u64 = 0x1020_0000;
/// Mismatches printed in full.
const SHOW_MISMATCHES: usize = 8;
/// Mismatches kept per form for the report.
const KEEP_PER_FORM: usize = 2;

/// Implemented mnemonics the host check cannot run, one `Mnemonic | reason` a line.
const NOT_DIFFERENTIAL: &str = include_str!("differential/not_differential.txt");

/// Forms allowed to be unsupported for now, one `Code` or `Mnemonic` name a line.
const ALLOWLIST: &str = include_str!("differential/unsupported_allowlist.txt");

// ---------------------------------------------------------------------------
// Register helpers
// ---------------------------------------------------------------------------

/// The GPR of `size` bytes with number `idx` (0..16); `high8` picks AH..BH.
fn gpr(size: u32, idx: usize, high8: bool) -> Register {
    let base = match size {
        1 if high8 => return reg_at(Register::AH, idx),
        1 if idx < 4 => return reg_at(Register::AL, idx),
        // SPL..R15L follow AH..BH in iced's order.
        1 => return reg_at(Register::AL, idx + 4),
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    };
    reg_at(base, idx)
}

fn reg_at(base: Register, n: usize) -> Register {
    Register::try_from(base as usize + n).expect("register number in range")
}

/// Slot in `Regs::gpr` and whether it is AH..BH.
fn slot(r: Register) -> (usize, bool) {
    let high8 = (Register::AH..=Register::BH).contains(&r);
    (r.full_register() as usize - Register::RAX as usize, high8)
}

/// Bits of the 64-bit register that `r` names.
fn reg_bits(r: Register) -> u64 {
    match (r.size(), slot(r).1) {
        (1, true) => 0xff00,
        (s, _) => mask(s as u32),
    }
}

fn read_reg(regs: &Regs, r: Register) -> u64 {
    let (i, high8) = slot(r);
    let v = regs.gpr[i];
    if high8 {
        (v >> 8) & 0xff
    } else {
        v & mask(r.size() as u32)
    }
}

fn write_reg(regs: &mut Regs, r: Register, v: u64) {
    let (i, high8) = slot(r);
    let bits = reg_bits(r);
    let v = if high8 { v << 8 } else { v };
    regs.gpr[i] = (regs.gpr[i] & !bits) | (v & bits);
}

/// Effective address of the memory operand of `ins` given the input registers.
fn effective_address(ins: &Instruction, regs: &Regs) -> u64 {
    let base = ins.memory_base();
    let index = ins.memory_index();
    let mut a = ins.memory_displacement64();
    if base != Register::None && base != Register::RIP && base != Register::EIP {
        a = a.wrapping_add(read_reg(regs, base));
    }
    if index != Register::None {
        a = a.wrapping_add(read_reg(regs, index).wrapping_mul(ins.memory_index_scale() as u64));
    }
    if base.is_gpr32() || index.is_gpr32() {
        a &= 0xffff_ffff;
    }
    a
}

/// Value of operand `i` of `ins` in the input state (memory read from `mem`).
fn operand_value(ins: &Instruction, i: u32, regs: &Regs, mem: &[u8]) -> u64 {
    match ins.op_kind(i) {
        OpKind::Register => read_reg(regs, ins.op_register(i)),
        OpKind::Memory => {
            let off = (effective_address(ins, regs) - BUF_ADDR) as usize;
            let size = ins.memory_size().size();
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(&mem[off..off + size]);
            u64::from_le_bytes(b)
        }
        _ => ins.immediate(i),
    }
}

// ---------------------------------------------------------------------------
// Test-case generation
// ---------------------------------------------------------------------------

/// An operand before the instruction is built.
#[derive(Clone, Copy, Debug)]
enum Op {
    R(Register),
    M(MemoryOperand),
    I(i32),
    I64(i64),
}

/// One generated test: the instruction, its bytes and its input.
#[derive(Clone, Debug)]
struct Case {
    ins: Instruction,
    bytes: Vec<u8>,
    regs: Regs,
    mem: Vec<u8>,
    /// The host would raise #DE: only the emulator runs, and must raise it too.
    expect_de: bool,
    undefined: Undefined,
}

/// Builds an instruction from its code and operands with iced's `with*`.
fn build(code: Code, ops: &[Op]) -> Result<Instruction, iced_x86::IcedError> {
    use Op::*;
    match *ops {
        [] => Ok(Instruction::with(code)),
        [R(a)] => Instruction::with1(code, a),
        [M(a)] => Instruction::with1(code, a),
        [I(a)] => Instruction::with1(code, a),
        [R(a), R(b)] => Instruction::with2(code, a, b),
        [R(a), M(b)] => Instruction::with2(code, a, b),
        [R(a), I(b)] => Instruction::with2(code, a, b),
        [R(a), I64(b)] => Instruction::with2(code, a, b),
        [M(a), R(b)] => Instruction::with2(code, a, b),
        [M(a), I(b)] => Instruction::with2(code, a, b),
        [R(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [R(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        [R(a), M(b), I(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        _ => panic!("{code:?}: no builder for operands {ops:?}"),
    }
}

/// String instructions are built by iced's dedicated constructors (64-bit
/// addressing, no segment override, no REP).
fn build_string(code: Code) -> Result<Instruction, iced_x86::IcedError> {
    let n = Register::None;
    let r = RepPrefixKind::None;
    match code.mnemonic() {
        Mnemonic::Movsb => Instruction::with_movsb(64, n, r),
        Mnemonic::Movsw => Instruction::with_movsw(64, n, r),
        Mnemonic::Movsd => Instruction::with_movsd(64, n, r),
        Mnemonic::Movsq => Instruction::with_movsq(64, n, r),
        Mnemonic::Cmpsb => Instruction::with_cmpsb(64, n, r),
        Mnemonic::Cmpsw => Instruction::with_cmpsw(64, n, r),
        Mnemonic::Cmpsd => Instruction::with_cmpsd(64, n, r),
        Mnemonic::Cmpsq => Instruction::with_cmpsq(64, n, r),
        Mnemonic::Lodsb => Instruction::with_lodsb(64, n, r),
        Mnemonic::Lodsw => Instruction::with_lodsw(64, n, r),
        Mnemonic::Lodsd => Instruction::with_lodsd(64, n, r),
        Mnemonic::Lodsq => Instruction::with_lodsq(64, n, r),
        Mnemonic::Stosb => Instruction::with_stosb(64, r),
        Mnemonic::Stosw => Instruction::with_stosw(64, r),
        Mnemonic::Stosd => Instruction::with_stosd(64, r),
        Mnemonic::Stosq => Instruction::with_stosq(64, r),
        Mnemonic::Scasb => Instruction::with_scasb(64, r),
        Mnemonic::Scasw => Instruction::with_scasw(64, r),
        Mnemonic::Scasd => Instruction::with_scasd(64, r),
        Mnemonic::Scasq => Instruction::with_scasq(64, r),
        m => panic!("{code:?}: {m:?} is not a string instruction"),
    }
}

/// Size in bytes of a register operand kind.
fn reg_kind_size(k: K) -> Option<u32> {
    Some(match k {
        K::r8_reg | K::r8_opcode | K::r8_or_mem => 1,
        K::r16_reg | K::r16_rm | K::r16_opcode | K::r16_or_mem => 2,
        K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_or_mem => 4,
        K::r64_reg | K::r64_rm | K::r64_opcode | K::r64_or_mem => 8,
        _ => return None,
    })
}

/// A random GPR of `size` bytes other than RSP (AH..BH sometimes for bytes).
fn random_reg(rng: &mut Rng, size: u32) -> Register {
    if size == 1 && rng.one_in(4) {
        return gpr(1, rng.below(4) as usize, true);
    }
    let mut idx = rng.below(15) as usize;
    if idx >= 4 {
        idx += 1;
    }
    gpr(size, idx, false)
}

/// A random immediate for operand kind `k`, in the range iced accepts for it.
fn random_imm(rng: &mut Rng, k: K) -> Op {
    let v = rng.interesting_u64();
    match k {
        K::imm8_const_1 => Op::I(1),
        // Shift and rotate counts: mostly small, so every count is hit.
        K::imm8 if rng.one_in(2) => Op::I(rng.below(70) as i32),
        K::imm8 | K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => Op::I(v as i8 as i32),
        K::imm16 => Op::I(v as i16 as i32),
        K::imm32 | K::imm32sex64 => Op::I(v as i32),
        K::imm64 => Op::I64(v as i64),
        _ => unreachable!("{k:?} is not an immediate"),
    }
}

/// Where the memory operand's effective address may fall: far enough from both
/// ends of the buffer for any BT bit offset the generator makes (±2 KiB), and
/// straddling the page boundary in the middle.
fn random_ea(rng: &mut Rng) -> u64 {
    let mid = BUF_ADDR + 0x1000;
    if rng.one_in(6) {
        // Accesses that cross the page boundary.
        mid - rng.range(1, 9) as u64
    } else {
        mid - 0x800 + rng.below(0x1000 - 16)
    }
}

/// Picks a register number not in `avoid` (RSP is always avoided).
fn free_reg(rng: &mut Rng, avoid: &[usize]) -> usize {
    loop {
        let i = rng.below(16) as usize;
        if i != 4 && !avoid.contains(&i) {
            return i;
        }
    }
}

/// A memory operand addressing `ea`, in one of several addressing modes, setting
/// the address registers in `regs`. Registers in `avoid` are left alone.
fn random_mem(rng: &mut Rng, regs: &mut Regs, ea: u64, avoid: &[usize]) -> MemoryOperand {
    // 32-bit addressing (0x67) sometimes: only the low 32 bits of the registers
    // count, the rest is garbage the emulator must ignore.
    let a32 = rng.one_in(8);
    let size = if a32 { 4 } else { 8 };
    let garbage = if a32 { rng.next_u64() << 32 } else { 0 };
    let scale = 1u64 << rng.below(4);
    let disp = match rng.below(3) {
        0 => 0i64,
        1 => rng.range(-128, 128),
        _ => rng.range(-0x1000_0000, 0x1000_0000),
    };
    let trunc = |v: u64| if a32 { v & 0xffff_ffff } else { v };
    match rng.below(8) {
        // [disp32] (absolute; the buffer lies below 2 GiB).
        0 => MemoryOperand::with_displ(ea, 4),
        // [rip + disp32]
        1 if !a32 => MemoryOperand::with_base_displ(Register::RIP, ea as i64),
        // [index*scale + disp32]
        2 => {
            let idx = free_reg(rng, avoid);
            let iv = rng.below(0x400);
            let d = ea.wrapping_sub(iv * scale) as i64;
            regs.gpr[idx] = garbage | iv;
            MemoryOperand::with_index_scale_displ_size(gpr(size, idx, false), scale as u32, d, 4)
        }
        // [base + index*scale + disp]
        3 | 4 => {
            let b = free_reg(rng, avoid);
            let mut av = avoid.to_vec();
            av.push(b);
            let idx = free_reg(rng, &av);
            let iv = rng.range(-0x100, 0x100) as u64;
            let bv = ea
                .wrapping_sub(iv.wrapping_mul(scale))
                .wrapping_sub(disp as u64);
            regs.gpr[b] = garbage | trunc(bv);
            // With 32-bit addressing the sum wraps at 2^32, so the low half of a
            // negative index works as is; the upper half is ignored garbage.
            regs.gpr[idx] = if a32 {
                (rng.next_u64() << 32) | trunc(iv)
            } else {
                iv
            };
            MemoryOperand::new(
                gpr(size, b, false),
                gpr(size, idx, false),
                scale as u32,
                disp,
                if disp == 0 { 0 } else { 1 },
                false,
                Register::None,
            )
        }
        // [base + disp]
        _ => {
            let b = free_reg(rng, avoid);
            regs.gpr[b] = garbage | trunc(ea.wrapping_sub(disp as u64));
            MemoryOperand::with_base_displ(gpr(size, b, false), disp)
        }
    }
}

fn is_bt(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
    )
}

fn is_div(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Div | Mnemonic::Idiv)
}

/// Generates one case for `form`, its instruction at `at`.
fn gen_case(form: Form, rng: &mut Rng, at: u64) -> Case {
    for _attempt in 0..50 {
        if let Some(c) = try_gen_case(form, rng, at) {
            return c;
        }
    }
    panic!("{}: could not generate an encodable case", form.name());
}

fn try_gen_case(form: Form, rng: &mut Rng, at: u64) -> Option<Case> {
    let code = form.code;
    let m = code.mnemonic();
    let op = code.op_code();
    let mut regs = Regs::default();
    for r in regs.gpr.iter_mut() {
        *r = rng.interesting_u64();
    }
    regs.rflags = 0x202 | (rng.next_u64() & STATUS) | if rng.one_in(2) { DF } else { 0 };
    let mut mem = Vec::new();
    if form.mem || form.is_string() {
        mem.resize(BUF_LEN, 0);
        for chunk in mem.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
    }

    // Registers whose values are constrained; address registers must avoid them.
    let mut avoid: Vec<usize> = Vec::new();
    if is_div(m) {
        avoid.extend([0, 2]);
    }
    let mut ops: Vec<Option<Op>> = Vec::new();
    let mut mem_slot = None;
    for (i, &k) in op.op_kinds().iter().enumerate() {
        let o = match k {
            K::al => Some(Op::R(Register::AL)),
            K::cl => Some(Op::R(Register::CL)),
            K::ax => Some(Op::R(Register::AX)),
            K::eax => Some(Op::R(Register::EAX)),
            K::rax => Some(Op::R(Register::RAX)),
            K::mem | K::mem_offs => {
                mem_slot = Some(i);
                None
            }
            k if forms::is_rm(k) && form.mem => {
                mem_slot = Some(i);
                None
            }
            k if reg_kind_size(k).is_some() => {
                Some(Op::R(random_reg(rng, reg_kind_size(k).unwrap_or(8))))
            }
            K::seg_rSI | K::es_rDI | K::seg_rDI => None,
            k => Some(random_imm(rng, k)),
        };
        ops.push(o);
    }
    // SHL/SHR/... by CL and SHLD/SHRD by CL: bias the count towards small values.
    if op.op_kinds().contains(&K::cl) && rng.one_in(2) {
        regs.gpr[1] = (regs.gpr[1] & !0xff) | rng.below(70);
    }

    let mut ins = if form.is_string() {
        let ins = build_string(code).ok()?;
        regs.gpr[6] = random_ea(rng);
        regs.gpr[7] = random_ea(rng);
        ins
    } else {
        if let Some(ms) = mem_slot {
            // BT* m, r: the register is a signed bit offset that moves the address;
            // keep it within ±2 KiB (in bytes) of the operand.
            if is_bt(m) {
                if let Some(Op::R(r)) = ops.get(1).copied().flatten() {
                    let off = rng.range(-0x800 * 8, 0x800 * 8) as u64;
                    let (idx, _) = slot(r);
                    let bits = mask(r.size() as u32);
                    regs.gpr[idx] = (regs.gpr[idx] & !bits) | (off & bits);
                    avoid.push(idx);
                }
            }
            let ea = random_ea(rng);
            let mo = if op.op_kinds()[ms] == K::mem_offs {
                MemoryOperand::with_displ(ea, 8)
            } else {
                random_mem(rng, &mut regs, ea, &avoid)
            };
            ops[ms] = Some(Op::M(mo));
        }
        let ops: Vec<Op> = ops.into_iter().map(|o| o.expect("operand")).collect();
        build(code, &ops).ok()?
    };
    if form.mem && op.can_use_lock_prefix() && rng.one_in(4) {
        ins.set_has_lock_prefix(true);
    }
    let mut enc = Encoder::new(64);
    enc.encode(&ins, at).ok()?;
    let bytes = enc.take_buffer();
    let mut dec = Decoder::with_ip(64, &bytes, at, DecoderOptions::NONE);
    let ins = dec.decode();
    if ins.code() != code || ins.len() != bytes.len() {
        // E.g. XCHG EAX, EAX encodes as 90, which is NOP: pick other operands.
        return None;
    }

    let mut expect_de = false;
    if is_div(m) {
        expect_de = prepare_division(&ins, rng, &mut regs, &mem);
    }
    let rcx = regs.gpr[1];
    let src = if matches!(m, Mnemonic::Bsf | Mnemonic::Bsr) {
        operand_value(&ins, 1, &regs, &mem)
    } else {
        0
    };
    Some(Case {
        undefined: undefined::undefined(&ins, rcx, src),
        ins,
        bytes,
        regs,
        mem,
        expect_de,
    })
}

/// Mostly makes DIV/IDIV inputs that do not fault (the high half of the dividend
/// small enough for the quotient to fit); returns whether the final inputs raise
/// #DE (divisor 0 or quotient too large, SDM Vol. 2A DIV/IDIV).
fn prepare_division(ins: &Instruction, rng: &mut Rng, regs: &mut Regs, mem: &[u8]) -> bool {
    let size = op_size(ins, 0);
    let signed = ins.mnemonic() == Mnemonic::Idiv;
    let (lo_reg, hi_reg) = match size {
        1 => (Register::AL, Register::AH),
        2 => (Register::AX, Register::DX),
        4 => (Register::EAX, Register::EDX),
        _ => (Register::RAX, Register::RDX),
    };
    let bits = size * 8;
    if !rng.one_in(5) {
        let divisor = operand_value(ins, 0, regs, mem) & mask(size);
        let hi = if signed {
            let lo = read_reg(regs, lo_reg);
            if lo & (1 << (bits - 1)) != 0 {
                mask(size)
            } else {
                0
            }
        } else if divisor != 0 {
            rng.next_u64() % divisor
        } else {
            0
        };
        write_reg(regs, hi_reg, hi);
    }
    let divisor = operand_value(ins, 0, regs, mem) & mask(size);
    let lo = read_reg(regs, lo_reg) as u128;
    let hi = read_reg(regs, hi_reg) as u128;
    let dividend = (hi << bits) | lo;
    if divisor == 0 {
        return true;
    }
    if signed {
        let sx = |v: u128, b: u32| ((v << (128 - b)) as i128) >> (128 - b);
        let n = sx(dividend, 2 * bits);
        let d = sx(divisor as u128, bits);
        match n.checked_div(d) {
            Some(q) => q < -(1i128 << (bits - 1)) || q > (1i128 << (bits - 1)) - 1,
            None => true,
        }
    } else {
        dividend / divisor as u128 > mask(size) as u128
    }
}

// ---------------------------------------------------------------------------
// Running and comparing
// ---------------------------------------------------------------------------

/// An emulator side of the comparison: runs one case's instruction, at `at`.
trait Emulator {
    fn run(&mut self, case: &Case, at: u64) -> Result<EmuOut, EmuError>;
}

/// The emulator side: one core on flat memory, reused across cases.
struct Emu {
    cpu: Cpu,
    bus: FlatBus,
    cache: DecodeCache,
}

/// What the emulator did with one case.
struct EmuOut {
    outcome: StepOutcome,
    state: CpuState,
    mem: Vec<u8>,
}

impl Emu {
    fn new() -> Self {
        Emu {
            cpu: Cpu::new(0, CpuFeatures::default()),
            bus: FlatBus::new(512 << 20),
            cache: DecodeCache::new(),
        }
    }
}

impl Emulator for Emu {
    fn run(&mut self, case: &Case, at: u64) -> Result<EmuOut, EmuError> {
        let mut code = case.bytes.clone();
        code.push(0xf4); // HLT, in case the emulator runs on
        self.bus.mem.write(PhysAddr(at), &code).expect("code fits");
        if !case.mem.is_empty() {
            self.bus
                .mem
                .write(PhysAddr(BUF_ADDR), &case.mem)
                .expect("buffer fits");
        }
        let mut gpr = case.regs.gpr;
        gpr[4] = EMU_RSP;
        self.cpu.state = CpuState {
            gpr,
            rflags: case.regs.rflags,
            rip: at,
            ..CpuState::default()
        };
        let outcome = self.cpu.step(&mut self.cache, &mut self.bus)?;
        let mut mem = vec![0u8; case.mem.len()];
        if !mem.is_empty() {
            self.bus
                .mem
                .read(PhysAddr(BUF_ADDR), &mut mem)
                .expect("buffer fits");
        }
        Ok(EmuOut {
            outcome,
            state: self.cpu.state.clone(),
            mem,
        })
    }
}

/// Names of the flags in `bits`.
fn flag_names(bits: u64) -> String {
    const NAMES: [(u64, &str); 8] = [
        (undefined::CF, "CF"),
        (undefined::PF, "PF"),
        (undefined::AF, "AF"),
        (undefined::ZF, "ZF"),
        (undefined::SF, "SF"),
        (DF, "DF"),
        (OF, "OF"),
        (!(STATUS | DF), "other"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Differences between the expected (host or, for #DE, input) and emulated
/// results, one line each; empty when they agree.
fn compare(
    case: &Case,
    at: u64,
    expected: &Regs,
    expected_mem: &[u8],
    emu: &EmuOut,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let und = case.undefined;
    let want_outcome = if case.expect_de {
        StepOutcome::Exception(Exception::DivideError)
    } else {
        StepOutcome::Retired
    };
    if emu.outcome != want_outcome {
        diffs.push(format!(
            "outcome: expected {want_outcome:?}, emulated {:?}",
            emu.outcome
        ));
    }
    let want_rip = if case.expect_de {
        at
    } else {
        at + case.bytes.len() as u64
    };
    if emu.state.rip != want_rip {
        diffs.push(format!(
            "rip: expected {want_rip:#x}, emulated {:#x}",
            emu.state.rip
        ));
    }
    // The undefined destination: a register's bits or a memory range.
    let mut dest_reg = None;
    let mut dest_mem = None;
    if und.dest && !case.expect_de {
        match case.ins.op_kind(0) {
            OpKind::Register => {
                let r = case.ins.op_register(0);
                // A 32-bit destination zero-extends, so all 64 bits are in doubt.
                let bits = if r.size() == 4 { u64::MAX } else { reg_bits(r) };
                dest_reg = Some((slot(r).0, bits));
            }
            _ => {
                let off = (effective_address(&case.ins, &case.regs) - BUF_ADDR) as usize;
                dest_mem = Some(off..off + case.ins.memory_size().size());
            }
        }
    }
    for (i, name) in GPR_NAMES.iter().enumerate() {
        let e = emu.state.gpr[i];
        if i == 4 {
            if e != EMU_RSP {
                diffs.push(format!("rsp: expected {EMU_RSP:#x}, emulated {e:#x}"));
            }
            continue;
        }
        let ignore = match dest_reg {
            Some((j, bits)) if j == i => bits,
            _ => 0,
        };
        let n = expected.gpr[i];
        if (n ^ e) & !ignore != 0 {
            diffs.push(format!(
                "{name}: native {n:#018x}, emulated {e:#018x} (xor {:#x})",
                n ^ e
            ));
        }
    }
    let ignore = if case.expect_de { 0 } else { und.flags };
    let (n, e) = (expected.rflags, emu.state.rflags);
    if (n ^ e) & !ignore != 0 {
        diffs.push(format!(
            "rflags: native {n:#x}, emulated {e:#x}, differ in {} (undefined, ignored: {})",
            flag_names((n ^ e) & !ignore),
            if ignore == 0 {
                "none".to_string()
            } else {
                flag_names(ignore)
            }
        ));
    }
    if expected_mem != emu.mem.as_slice() {
        let bad: Vec<usize> = (0..expected_mem.len())
            .filter(|i| expected_mem[*i] != emu.mem[*i])
            .filter(|i| !matches!(&dest_mem, Some(r) if r.contains(i)))
            .collect();
        if let (Some(&first), Some(&last)) = (bad.first(), bad.last()) {
            diffs.push(format!(
                "memory: {} bytes differ in {:#x}..={:#x}: native [{}], emulated [{}]",
                bad.len(),
                BUF_ADDR + first as u64,
                BUF_ADDR + last as u64,
                emu::hex_bytes(&expected_mem[first..=last.min(first + 15)]),
                emu::hex_bytes(&emu.mem[first..=last.min(first + 15)]),
            ));
        }
    }
    diffs
}

/// A mismatch, written out in full.
fn describe(form: Form, seed: u64, n: u32, case: &Case, diffs: &[String]) -> String {
    let mut text = String::new();
    IntelFormatter::new().format(&case.ins, &mut text);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {} — `{text}` [{}]",
        form.name(),
        emu::hex_bytes(&case.bytes)
    );
    let _ = writeln!(s, "form seed {seed:#x}, state {n}");
    if case.expect_de {
        let _ = writeln!(s, "inputs raise #DE on the host (not run there)");
    }
    let _ = write!(s, "input:");
    for (i, v) in case.regs.gpr.iter().enumerate() {
        if i != 4 {
            let _ = write!(s, " {}={v:#x}", GPR_NAMES[i]);
        }
    }
    let _ = writeln!(s, " rflags={:#x}", case.regs.rflags);
    if case.ins.op_count() > 0
        && (0..case.ins.op_count()).any(|i| case.ins.op_kind(i) == OpKind::Memory)
    {
        let ea = effective_address(&case.ins, &case.regs);
        if let Some(off) = ea.checked_sub(BUF_ADDR).map(|o| o as usize) {
            if off + 8 <= case.mem.len() {
                let _ = writeln!(
                    s,
                    "memory operand at {ea:#x}: [{}]",
                    emu::hex_bytes(&case.mem[off..off + 8])
                );
            }
        }
    }
    for d in diffs {
        let _ = writeln!(s, "- {d}");
    }
    s
}

/// What happened to one form.
#[derive(Default)]
struct FormResult {
    states: u32,
    /// States whose inputs raise #DE (checked in the emulator only).
    divide_errors: u32,
    mismatches: u32,
    unsupported: Option<String>,
    examples: Vec<String>,
}

/// Seed of a form: a function of its code and variant only, so adding forms does
/// not change the others' cases.
fn form_seed(form: Form) -> u64 {
    let mut r = Rng::new(((form.code as u64) << 1) | form.mem as u64);
    r.next_u64()
}

fn run_form(form: Form, states: u32, emu: &mut dyn Emulator) -> FormResult {
    let seed = form_seed(form);
    let mut rng = Rng::new(seed);
    let at = native::native().insn_addr();
    let mut res = FormResult::default();
    for n in 0..states {
        let case = gen_case(form, &mut rng, at);
        let got = match emu.run(&case, at) {
            Ok(o) => o,
            Err(e @ EmuError::Unsupported { .. }) => {
                res.unsupported = Some(e.to_string());
                return res;
            }
            Err(e) => {
                res.states += 1;
                res.mismatches += 1;
                if res.examples.len() < KEEP_PER_FORM {
                    res.examples.push(describe(
                        form,
                        seed,
                        n,
                        &case,
                        &[format!("emulator error: {e}")],
                    ));
                }
                continue;
            }
        };
        let (want, want_mem) = if case.expect_de {
            (case.regs, case.mem.clone())
        } else {
            let mut regs = case.regs;
            let mut mem = if case.mem.is_empty() {
                vec![0u8; BUF_LEN]
            } else {
                case.mem.clone()
            };
            native::native().run(&case.bytes, &mut regs, &mut mem);
            if case.mem.is_empty() {
                mem.clear();
            }
            (regs, mem)
        };
        res.states += 1;
        res.divide_errors += case.expect_de as u32;
        let diffs = compare(&case, at, &want, &want_mem, &got);
        if !diffs.is_empty() {
            res.mismatches += 1;
            if res.examples.len() < KEEP_PER_FORM {
                res.examples.push(describe(form, seed, n, &case, &diffs));
            }
        }
    }
    res
}

/// The allowlist's entries (comments and blank lines dropped).
fn allowlist() -> impl Iterator<Item = &'static str> {
    ALLOWLIST
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
}

/// Whether allowlist entry `entry` names `form` (by `Code` or by `Mnemonic`).
fn names(entry: &str, form: Form) -> bool {
    entry == format!("{:?}", form.code) || entry == format!("{:?}", form.code.mnemonic())
}

/// Whether `form` may be unsupported for now.
fn allowlisted(form: Form) -> bool {
    allowlist().any(|e| names(e, form))
}

/// Runs every form with `default_states` states (or `DIFF_STATES`) on flat memory
/// or, with `paged`, behind paging (`differential/paged.rs`), prints the table,
/// and panics on any mismatch or non-allowlisted unsupported form.
fn differential(default_states: u32, paged: bool) {
    let states = std::env::var("DIFF_STATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_states);
    let filter = std::env::var("DIFF_FILTER").ok();
    let all = forms::all_forms();
    assert!(all.len() > 300, "only {} forms enumerated", all.len());
    let mut emu: Box<dyn Emulator> = if paged {
        Box::new(paged::Paged::new())
    } else {
        Box::new(Emu::new())
    };
    let mut results = Vec::new();
    for form in all {
        if let Some(f) = &filter {
            if !form.name().contains(f.as_str()) {
                continue;
            }
        }
        results.push((form, run_form(form, states, &mut *emu)));
    }

    // Per-mnemonic table, in the order of MNEMONICS.
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| mnemonic | forms | unsupported | states | of which #DE | mismatches |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    let mut totals = (0, 0, 0u64, 0u64, 0u64);
    for m in MNEMONICS {
        let rows: Vec<&FormResult> = results
            .iter()
            .filter(|(f, _)| f.code.mnemonic() == *m)
            .map(|(_, r)| r)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let unsupported = rows.iter().filter(|r| r.unsupported.is_some()).count();
        let st: u64 = rows.iter().map(|r| r.states as u64).sum();
        let mm: u64 = rows.iter().map(|r| r.mismatches as u64).sum();
        let de: u64 = rows.iter().map(|r| r.divide_errors as u64).sum();
        let _ = writeln!(
            table,
            "| {m:?} | {} | {unsupported} | {st} | {de} | {mm} |",
            rows.len()
        );
        totals.4 += de;
        totals.0 += rows.len();
        totals.1 += unsupported;
        totals.2 += st;
        totals.3 += mm;
    }
    let _ = writeln!(
        table,
        "| **total** | {} | {} | {} | {} | {} |",
        totals.0, totals.1, totals.2, totals.4, totals.3
    );

    let mut details = String::new();
    let mut shown = 0;
    for (_, r) in &results {
        for e in &r.examples {
            if shown < SHOW_MISMATCHES {
                let _ = writeln!(details, "{e}");
            }
            shown += 1;
        }
    }
    let mut failing_forms = Vec::new();
    let mut unsupported = Vec::new();
    let mut allowed = 0;
    for (f, r) in &results {
        if r.mismatches > 0 {
            failing_forms.push(format!("{} ({} of {})", f.name(), r.mismatches, r.states));
        }
        if r.unsupported.is_some() {
            if allowlisted(*f) {
                allowed += 1;
            } else {
                unsupported.push(f.name());
            }
        }
    }
    let all_unsupported: Vec<String> = results
        .iter()
        .filter(|(_, r)| r.unsupported.is_some())
        .map(|(f, _)| f.name())
        .collect();

    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Host-CPU differential run: {states} states per form{}\n\n{table}",
        if paged { ", behind 4 KiB pages" } else { "" }
    );
    if !failing_forms.is_empty() {
        let _ = writeln!(
            report,
            "## Forms with mismatches ({})\n\n{}\n",
            failing_forms.len(),
            failing_forms.join("\n")
        );
    }
    if !all_unsupported.is_empty() {
        let _ = writeln!(
            report,
            "## Unsupported forms ({}, {allowed} allowlisted)\n\n{}\n",
            all_unsupported.len(),
            all_unsupported.join(", ")
        );
    }
    if shown > 0 {
        let _ = writeln!(
            report,
            "## First mismatches ({} of {shown} kept)\n\n{details}",
            shown.min(SHOW_MISMATCHES)
        );
    }
    println!("{report}");
    if let Ok(mut path) = std::env::var("DIFF_REPORT") {
        if paged {
            path.push_str(".paged");
        }
        let mut full = report.clone();
        for (_, r) in &results {
            for e in &r.examples {
                let _ = writeln!(full, "{e}");
            }
        }
        std::fs::write(&path, full).expect("write DIFF_REPORT");
    }
    // An entry that no longer excuses anything must go, so the list only shrinks.
    if filter.is_none() {
        let stale: Vec<&str> = allowlist()
            .filter(|e| {
                !results
                    .iter()
                    .any(|(f, r)| r.unsupported.is_some() && names(e, *f))
            })
            .collect();
        assert!(
            stale.is_empty(),
            "remove these entries from differential/unsupported_allowlist.txt, their forms \
             are implemented now: {stale:?}"
        );
    }
    assert!(
        failing_forms.is_empty() && unsupported.is_empty(),
        "{} forms disagree with the host CPU and {} forms are unsupported without being \
         allowlisted; see the table and lists printed above",
        failing_forms.len(),
        unsupported.len(),
    );
}

/// The trampoline itself: registers and flags go through unchanged around a NOP,
/// and a known ADD gives the known answer. If this fails, nothing else means much.
#[test]
fn native_trampoline_round_trips() {
    let mut n = native::native();
    let mut regs = Regs::default();
    for (i, r) in regs.gpr.iter_mut().enumerate() {
        *r = 0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1);
    }
    regs.rflags = 0x202 | undefined::CF | undefined::ZF | OF | DF;
    let before = regs;
    let mut mem = vec![0u8; BUF_LEN];
    n.run(&[0x90], &mut regs, &mut mem);
    for i in (0..16).filter(|i| *i != 4) {
        assert_eq!(
            regs.gpr[i], before.gpr[i],
            "{} changed by NOP",
            GPR_NAMES[i]
        );
    }
    assert_eq!(regs.rflags, before.rflags, "RFLAGS changed by NOP");
    // add rax, rbx ; 48 01 d8
    regs.gpr[0] = u64::MAX;
    regs.gpr[3] = 1;
    n.run(&[0x48, 0x01, 0xd8], &mut regs, &mut mem);
    assert_eq!(regs.gpr[0], 0);
    assert_eq!(
        regs.rflags & STATUS,
        undefined::CF | undefined::ZF | undefined::PF | undefined::AF
    );
    // mov [BUF_ADDR + 8], rbx through an absolute address: 48 89 1c 25 disp32
    let mut bytes = vec![0x48, 0x89, 0x1c, 0x25];
    bytes.extend_from_slice(&((BUF_ADDR + 8) as u32).to_le_bytes());
    n.run(&bytes, &mut regs, &mut mem);
    assert_eq!(&mem[8..16], &1u64.to_le_bytes());
}

/// Every form, a few states each (the CI run).
#[test]
fn host_cpu_agrees() {
    differential(QUICK_STATES, false);
}

/// Every form, a few states each, with code and data behind 4 KiB pages, the
/// TLB model and the tracker (the CI run of `differential/paged.rs`).
#[test]
fn host_cpu_agrees_behind_paging() {
    differential(QUICK_STATES, true);
}

/// Every form, [`FULL_STATES`] (10,000) states each.
#[test]
#[ignore = "full differential run: cargo test -p emu --release --test differential -- --ignored"]
fn host_cpu_agrees_full() {
    differential(FULL_STATES, false);
}

/// The paged variant with [`FULL_STATES`] (10,000) states per form.
#[test]
#[ignore = "full paged differential run: cargo test -p emu --release --test differential -- --ignored"]
fn host_cpu_agrees_behind_paging_full() {
    differential(FULL_STATES, true);
}

/// PUSH, POP, LEAVE and PUSHF/POPF (16 and 64-bit) as balanced snippets, RDTSCP
/// and RDPID, against the host (see `differential/snippets.rs` for what is
/// compared).
#[test]
fn host_cpu_agrees_on_snippets() {
    let states = std::env::var("DIFF_STATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(QUICK_STATES * 5);
    let mut fails = snippets::check_stack_snippets(states);
    fails.extend(snippets::check_rdtscp_rdpid(states));
    assert!(
        fails.is_empty(),
        "{} snippet cases disagree with the host:\n{}",
        fails.len(),
        fails[..fails.len().min(SHOW_MISMATCHES)].join("\n")
    );
}

/// The mnemonics `not_differential.txt` excuses, with the line each is on.
fn excused() -> Vec<(usize, Mnemonic, &'static str)> {
    let names: std::collections::BTreeMap<String, Mnemonic> =
        Mnemonic::values().map(|m| (format!("{m:?}"), m)).collect();
    NOT_DIFFERENTIAL
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let (name, reason) = l.split_once('|').unwrap_or_else(|| {
                panic!(
                    "differential/not_differential.txt:{}: expected `Mnemonic | reason`",
                    i + 1
                )
            });
            let m = *names.get(name.trim()).unwrap_or_else(|| {
                panic!(
                    "differential/not_differential.txt:{}: no mnemonic `{}`",
                    i + 1,
                    name.trim()
                )
            });
            assert!(
                !reason.trim().is_empty(),
                "differential/not_differential.txt:{}: `{m:?}` needs a reason",
                i + 1
            );
            (i + 1, m, reason.trim())
        })
        .collect()
}

/// Every mnemonic the dispatcher routes (its table, not a list kept here) is run
/// against the host, or excused in `not_differential.txt` with a reason; and the
/// excuses name only implemented mnemonics the host check does not run.
#[test]
fn every_implemented_mnemonic_is_checked_or_excused() {
    let checked = |m: Mnemonic| MNEMONICS.contains(&m) || snippets::MNEMONICS.contains(&m);
    let excused = excused();
    let implemented: Vec<Mnemonic> = emu::implemented_mnemonics().collect();
    let missing: Vec<Mnemonic> = implemented
        .iter()
        .copied()
        .filter(|m| !checked(*m) && !excused.iter().any(|(_, e, _)| e == m))
        .collect();
    assert!(
        missing.is_empty(),
        "implemented but neither checked against the host nor excused in \
         differential/not_differential.txt: {missing:?}"
    );
    for (line, m, _) in &excused {
        assert!(
            implemented.contains(m),
            "differential/not_differential.txt:{line}: `{m:?}` is not implemented"
        );
        assert!(
            !checked(*m),
            "differential/not_differential.txt:{line}: `{m:?}` is checked against the host; \
             remove the line"
        );
    }
    for m in MNEMONICS.iter().chain(snippets::MNEMONICS) {
        assert!(
            implemented.contains(m),
            "{m:?} is in the differential set but the dispatcher does not route it"
        );
    }
    // Being listed is not enough: the form enumeration must produce something to
    // run for every listed mnemonic, or it is checked in name only.
    let forms = forms::all_forms();
    let formless: Vec<&Mnemonic> = MNEMONICS
        .iter()
        .filter(|m| !forms.iter().any(|f| f.code.mnemonic() == **m))
        .collect();
    assert!(
        formless.is_empty(),
        "in forms::MNEMONICS but no form of them is enumerated, so nothing runs: {formless:?}"
    );
}
