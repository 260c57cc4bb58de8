//! User-level instructions the one-instruction harness cannot check, run on the
//! host as short balanced snippets instead: PUSH, POP, LEAVE and the flag pushes
//! and pops (they move RSP, so each is paired with a POP or PUSH through the
//! scratch buffer; RSP itself differs between host and emulator, so it is never a
//! source or destination), and
//! RDTSCP/RDPID (the TSC differs between host and emulator, so only the effects
//! that must agree are compared).
//!
//! The emulator runs each snippet at CPL 3 with IOPL 0 and IF=1, as the host runs
//! user code under Linux. What is compared:
//! - stack snippets: every GPR but RSP, all of RFLAGS, and the scratch buffer
//!   (where pushed values land); popped flag images are random except TF (a single-step
//!   trap on the host) and AC (alignment checking would stay on in the test
//!   process after the trampoline returns);
//! - `rdtscp; rdpid r`: every GPR but RSP, RAX and RDX; RAX and RDX only in their
//!   upper halves, which must be zero; all of RFLAGS. The emulator's IA32_TSC_AUX is
//!   set to what the host's RDTSCP returned in ECX. The host check is meaningful
//!   because RDPID and RDTSCP read the same MSR: a host run is used only when the
//!   two agree (the thread did not move to another CPU in between).

use super::native::{native, Regs, BUF_ADDR, BUF_LEN};
use super::rng::Rng;
use emu::state::{Seg, GPR_NAMES, RSP};
use emu::{Cpu, CpuFeatures, CpuState, DecodeCache, FlatBus, StepOutcome};
use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Mnemonic, Register};
use mmu::PhysAddr;

/// RFLAGS.TF, AC, IF, DF and NT.
const TF: u64 = 1 << 8;
const AC: u64 = 1 << 18;
const IF: u64 = 1 << 9;
const DF: u64 = 1 << 10;
const NT: u64 = 1 << 14;
/// CF PF AF ZF SF OF.
const STATUS: u64 = 0x8d5;

/// The emulator's stack (inside its flat memory, away from the buffer).
const EMU_RSP: u64 = 0x1020_0000;

/// The mnemonics this module checks against the host.
pub const MNEMONICS: &[Mnemonic] = &[
    Mnemonic::Push,
    Mnemonic::Pop,
    Mnemonic::Leave,
    Mnemonic::Pushf,
    Mnemonic::Popf,
    Mnemonic::Pushfq,
    Mnemonic::Popfq,
    Mnemonic::Rdtscp,
    Mnemonic::Rdpid,
];

/// One snippet: its instructions (some operands random), and how to pick the
/// popped image when it pops flags from the buffer.
struct Snippet {
    name: &'static str,
    insns: fn(&mut Rng) -> Vec<Instruction>,
    /// Bytes of the image a POPF reads from the buffer's start (0: none).
    image: usize,
}

/// The scratch buffer's first bytes, by absolute address.
fn buf() -> MemoryOperand {
    MemoryOperand::with_displ(BUF_ADDR, 4)
}

/// The buffer 8 bytes further on (where pushed values are popped to).
fn buf8() -> MemoryOperand {
    MemoryOperand::with_displ(BUF_ADDR + 8, 4)
}

fn ins0(c: Code) -> Instruction {
    Instruction::with(c)
}

fn ins_m(c: Code) -> Instruction {
    Instruction::with1(c, buf()).expect("memory operand form")
}

fn ins_m8(c: Code) -> Instruction {
    Instruction::with1(c, buf8()).expect("memory operand form")
}

/// A random GPR of `size` bytes other than RSP/ESP/SP.
fn random_gpr(rng: &mut Rng, size: u32) -> Register {
    let base = if size == 2 {
        Register::AX
    } else {
        Register::RAX
    };
    let mut n = rng.below(15) as usize;
    if n >= RSP {
        n += 1;
    }
    Register::try_from(base as usize + n).expect("register number in range")
}

fn ins_r(c: Code, r: Register) -> Instruction {
    Instruction::with1(c, r).expect("register operand form")
}

const SNIPPETS: &[Snippet] = &[
    Snippet {
        name: "push r64; pop qword [buf+8]",
        insns: |rng| {
            let r = random_gpr(rng, 8);
            vec![ins_r(Code::Push_r64, r), ins_m8(Code::Pop_rm64)]
        },
        image: 0,
    },
    Snippet {
        name: "push r16; pop word [buf+8]",
        insns: |rng| {
            let r = random_gpr(rng, 2);
            vec![ins_r(Code::Push_r16, r), ins_m8(Code::Pop_rm16)]
        },
        image: 0,
    },
    Snippet {
        name: "push imm8/imm32; pop qword [buf+8] or push imm16; pop word [buf+8]",
        insns: |rng| {
            let v = rng.next_u64();
            let (push, pop) = match rng.below(3) {
                0 => (
                    Instruction::with1(Code::Pushq_imm8, v as i8 as i32),
                    Code::Pop_rm64,
                ),
                1 => (
                    Instruction::with1(Code::Pushq_imm32, v as i32),
                    Code::Pop_rm64,
                ),
                _ => (
                    Instruction::with1(Code::Push_imm16, v as u16 as u32),
                    Code::Pop_rm16,
                ),
            };
            vec![push.expect("immediate form"), ins_m8(pop)]
        },
        image: 0,
    },
    Snippet {
        name: "push qword [buf]; pop qword [buf+8]",
        insns: |_| vec![ins_m(Code::Push_rm64), ins_m8(Code::Pop_rm64)],
        image: 0,
    },
    Snippet {
        name: "push word [buf]; pop word [buf+8]",
        insns: |_| vec![ins_m(Code::Push_rm16), ins_m8(Code::Pop_rm16)],
        image: 0,
    },
    Snippet {
        name: "push qword [buf]; pop r64",
        insns: |rng| {
            let r = random_gpr(rng, 8);
            vec![ins_m(Code::Push_rm64), ins_r(Code::Pop_r64, r)]
        },
        image: 0,
    },
    Snippet {
        name: "push word [buf]; pop r16",
        insns: |rng| {
            let r = random_gpr(rng, 2);
            vec![ins_m(Code::Push_rm16), ins_r(Code::Pop_r16, r)]
        },
        image: 0,
    },
    Snippet {
        name: "push qword [buf]; mov rbp, rsp; leave",
        insns: |_| {
            let mov = Instruction::with2(Code::Mov_r64_rm64, Register::RBP, Register::RSP)
                .expect("mov rbp, rsp");
            vec![ins_m(Code::Push_rm64), mov, ins0(Code::Leaveq)]
        },
        image: 0,
    },
    Snippet {
        name: "pushfw; pop word [buf]",
        insns: |_| vec![ins0(Code::Pushfw), ins_m(Code::Pop_rm16)],
        image: 0,
    },
    Snippet {
        name: "push word [buf]; popfw",
        insns: |_| vec![ins_m(Code::Push_rm16), ins0(Code::Popfw)],
        image: 2,
    },
    Snippet {
        name: "pushfq; pop qword [buf]",
        insns: |_| vec![ins0(Code::Pushfq), ins_m(Code::Pop_rm64)],
        image: 0,
    },
    Snippet {
        name: "push qword [buf]; popfq",
        insns: |_| vec![ins_m(Code::Push_rm64), ins0(Code::Popfq)],
        image: 8,
    },
];

/// Encodes `insns` one after another at `at`.
fn encode(insns: &[Instruction], at: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in insns {
        let mut e = Encoder::new(64);
        e.encode(i, at + out.len() as u64)
            .unwrap_or_else(|err| panic!("cannot encode {i:?}: {err}"));
        out.extend_from_slice(&e.take_buffer());
    }
    out
}

/// Runs `code` in the emulator at CPL 3 from `regs` and `mem`, for `n` instructions.
fn emulate(
    code: &[u8],
    at: u64,
    n: usize,
    regs: &Regs,
    mem: &[u8],
    tsc_aux: u64,
) -> (Regs, Vec<u8>) {
    let mut bus = FlatBus::new(512 << 20);
    bus.mem.write(PhysAddr(at), code).expect("code fits");
    bus.mem.write(PhysAddr(BUF_ADDR), mem).expect("buffer fits");
    let mut cpu = Cpu::new(0, CpuFeatures::default());
    let mut gpr = regs.gpr;
    gpr[RSP] = EMU_RSP;
    cpu.state = CpuState {
        gpr,
        rflags: regs.rflags,
        rip: at,
        tsc_aux,
        ..CpuState::default()
    };
    cpu.state.sel[Seg::Cs as usize] = 0x2b;
    cpu.state.sel[Seg::Ss as usize] = 0x23;
    let mut cache = DecodeCache::new();
    for i in 0..n {
        match cpu.step(&mut cache, &mut bus) {
            Ok(StepOutcome::Retired) => {}
            other => panic!("emulator step {i} of {code:02x?}: {other:?}"),
        }
    }
    assert_eq!(cpu.state.gpr[RSP], EMU_RSP, "snippet is not balanced");
    let mut out = vec![0u8; BUF_LEN];
    bus.mem
        .read(PhysAddr(BUF_ADDR), &mut out)
        .expect("buffer fits");
    (
        Regs {
            gpr: cpu.state.gpr,
            rflags: cpu.state.rflags,
        },
        out,
    )
}

/// Random input registers and user-mode RFLAGS (IF=1, IOPL 0, TF=AC=0).
fn random_regs(rng: &mut Rng) -> Regs {
    let mut r = Regs::default();
    for g in r.gpr.iter_mut() {
        *g = rng.interesting_u64();
    }
    r.rflags = 0x2 | IF | (rng.next_u64() & (STATUS | DF | NT));
    r
}

/// Compares GPRs (but RSP and those in `skip`), RFLAGS and memory; returns the
/// differences.
fn diff(host: &Regs, emu: &Regs, hmem: &[u8], emem: &[u8], skip: &[usize]) -> Vec<String> {
    let mut d = Vec::new();
    for i in (0..16).filter(|i| *i != RSP && !skip.contains(i)) {
        if host.gpr[i] != emu.gpr[i] {
            d.push(format!(
                "{}: host {:#x}, emulator {:#x}",
                GPR_NAMES[i], host.gpr[i], emu.gpr[i]
            ));
        }
    }
    if host.rflags != emu.rflags {
        d.push(format!(
            "rflags: host {:#x}, emulator {:#x}",
            host.rflags, emu.rflags
        ));
    }
    if let Some(o) = (0..hmem.len()).find(|&o| hmem[o] != emem[o]) {
        d.push(format!(
            "memory at buf+{o:#x}: host {:#04x}, emulator {:#04x}",
            hmem[o], emem[o]
        ));
    }
    d
}

/// The stack snippets, `states` random states each; returns failure descriptions.
pub fn check_stack_snippets(states: u32) -> Vec<String> {
    let mut fails = Vec::new();
    let mut n = native();
    let at = n.insn_addr();
    for (k, s) in SNIPPETS.iter().enumerate() {
        let mut rng = Rng::new(0x5eed_f1a6 + k as u64);
        for case in 0..states {
            let insns = (s.insns)(&mut rng);
            let code = encode(&insns, at);
            let regs = random_regs(&mut rng);
            let mut mem = vec![0u8; BUF_LEN];
            for chunk in mem.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            // The popped image: random, without TF and AC.
            if s.image > 0 {
                let v = rng.next_u64() & !(TF | AC);
                mem[..s.image].copy_from_slice(&v.to_le_bytes()[..s.image]);
            }
            let (emu, emem) = emulate(&code, at, insns.len(), &regs, &mem, 0);
            let mut host = regs;
            let mut hmem = mem.clone();
            n.run(&code, &mut host, &mut hmem);
            let d = diff(&host, &emu, &hmem, &emem, &[]);
            if !d.is_empty() {
                fails.push(format!(
                    "{} ({}) case {case}: input rflags {:#x}, buf[0..8] {:02x?}:\n  {}",
                    s.name,
                    insns
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                    regs.rflags,
                    &mem[..8],
                    d.join("\n  ")
                ));
            }
        }
    }
    fails
}

/// `rdtscp; rdpid r` with a random destination, `states` random states.
pub fn check_rdtscp_rdpid(states: u32) -> Vec<String> {
    const DESTS: [Register; 12] = [
        Register::RBX,
        Register::RBP,
        Register::RSI,
        Register::RDI,
        Register::R8,
        Register::R9,
        Register::R10,
        Register::R11,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ];
    let mut fails = Vec::new();
    let mut n = native();
    let at = n.insn_addr();
    let mut rng = Rng::new(0x5eed_7dc9);
    for case in 0..states {
        let dest = DESTS[rng.below(DESTS.len() as u64) as usize];
        let di = dest as usize - Register::RAX as usize;
        let rdpid = Instruction::with1(Code::Rdpid_r64, dest).expect("rdpid r64");
        let code = encode(&[ins0(Code::Rdtscp), rdpid], at);
        let regs = random_regs(&mut rng);
        let mem = vec![0u8; BUF_LEN];
        // A host run where RDTSCP and RDPID saw the same IA32_TSC_AUX.
        let mut hmem = mem.clone();
        let mut host = regs;
        for _ in 0..20 {
            host = regs;
            n.run(&code, &mut host, &mut hmem);
            if host.gpr[1] == host.gpr[di] {
                break;
            }
        }
        let (emu, emem) = emulate(&code, at, 2, &regs, &mem, host.gpr[1] & 0xffff_ffff);
        let mut d = diff(&host, &emu, &hmem, &emem, &[0, 2]);
        for (i, name) in [(0, "rax"), (2, "rdx")] {
            if host.gpr[i] >> 32 != 0 || emu.gpr[i] >> 32 != 0 {
                d.push(format!(
                    "{name} upper half not zero: host {:#x}, emulator {:#x}",
                    host.gpr[i], emu.gpr[i]
                ));
            }
        }
        if !d.is_empty() {
            fails.push(format!(
                "rdtscp; rdpid {dest:?} case {case}:\n  {}",
                d.join("\n  ")
            ));
        }
    }
    fails
}
