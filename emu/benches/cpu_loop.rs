//! CPU speed: one core on flat memory running a tight integer loop.
//!
//! ```text
//! top: add rax, rbx
//!      xor rcx, rax
//!      mov [rsi], rcx
//!      dec rdx
//!      jnz top
//!      hlt
//! ```
//!
//! `cargo bench -p emu --bench cpu_loop` runs it for [`INSNS`] instructions,
//! [`RUNS`] times, and prints the median in million instructions per second.
//! `CPU_LOOP_INSNS` overrides the instruction count (e.g. for a profiler run).
//! Wall-clock time is fine here: this is a benchmark, not a test.

use emu::{Cpu, CpuFeatures, DecodeCache, FlatBus, StepOutcome};
use iced_x86::code_asm::*;
use mmu::PhysAddr;
use std::time::Instant;

/// Instructions per run (5 per loop iteration).
const INSNS: u64 = 50_000_000;
/// Timed runs; the median is reported.
const RUNS: usize = 5;
const CODE: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;

fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("64-bit assembler");
    let mut top = a.create_label();
    a.set_label(&mut top).expect("label");
    a.add(rax, rbx).expect("add");
    a.xor(rcx, rax).expect("xor");
    a.mov(qword_ptr(rsi), rcx).expect("mov");
    a.dec(rdx).expect("dec");
    a.jnz(top).expect("jnz");
    a.hlt().expect("hlt");
    a.assemble(CODE).expect("assemble")
}

/// Runs the loop for `iterations` and returns the instructions retired and the
/// seconds it took.
fn run(code: &[u8], iterations: u64) -> (u64, f64) {
    let mut bus = FlatBus::new(16 << 20);
    bus.mem.write(PhysAddr(CODE), code).expect("code fits");
    let mut cpu = Cpu::new(0, CpuFeatures::default());
    cpu.state.rip = CODE;
    cpu.state.gpr[3] = 0x9e37_79b9_7f4a_7c15; // rbx
    cpu.state.gpr[2] = iterations; // rdx
    cpu.state.gpr[6] = DATA; // rsi
    let mut cache = DecodeCache::new();
    let mut steps = 0u64;
    let start = Instant::now();
    loop {
        match cpu.step(&mut cache, &mut bus) {
            Ok(StepOutcome::Retired) => steps += 1,
            Ok(StepOutcome::Halted) => break,
            Ok(other) => panic!("unexpected {other:?} at rip {:#x}", cpu.state.rip),
            Err(e) => panic!("{e}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(steps, iterations * 5, "loop ran the wrong number of times");
    (steps, secs)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run a
    // short smoke version only.
    let benching = std::env::args().any(|a| a == "--bench");
    let insns = std::env::var("CPU_LOOP_INSNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { INSNS } else { 50_000 });
    let runs = if benching { RUNS } else { 1 };
    let code = program();
    let mut mips: Vec<f64> = (0..runs)
        .map(|i| {
            let (n, secs) = run(&code, insns / 5);
            let m = n as f64 / secs / 1e6;
            println!("run {i}: {n} instructions in {secs:.3} s = {m:.1} MIPS");
            m
        })
        .collect();
    mips.sort_by(f64::total_cmp);
    println!(
        "cpu_loop: median {:.1} MIPS over {runs} runs of {insns} instructions",
        mips[runs / 2]
    );
}
