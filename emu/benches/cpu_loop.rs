//! CPU speed: one core running a tight integer loop, on flat memory and with
//! paging on.
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
//! Two configurations:
//! - `flat`: a bare [`Cpu`] over [`FlatBus`] (identity translation, no MMU);
//! - `paged`: [`Machine::step`] on a one-core machine with real 4-level page tables
//!   mapping the code and data pages as 4 KiB pages, the core's TLBs and
//!   paging-structure caches modelled ([`mmu::CoreMmu`]) and the coherence tracker
//!   on — everything a scenario pays per step, with a [`NullSink`].
//!
//! `cargo bench -p emu --bench cpu_loop` runs each for [`INSNS`] instructions,
//! [`RUNS`] times, and prints the medians in million instructions per second.
//! `CPU_LOOP_INSNS` overrides the instruction count (e.g. for a profiler run) and
//! `CPU_LOOP_ONLY=flat|paged` runs one configuration (for callgrind).
//! Wall-clock time is fine here: this is a benchmark, not a test.

use emu::{
    Cpu, CpuFeatures, DecodeCache, FlatBus, Machine, MachineConfig, NullSink, StepOutcome,
    StepResult,
};
use iced_x86::code_asm::*;
use mmu::pagetable::Builder;
use mmu::{pte, PageSize, PhysAddr, VirtAddr};
use std::time::Instant;

/// Instructions per run (5 per loop iteration).
const INSNS: u64 = 50_000_000;
/// Timed runs; the median is reported.
const RUNS: usize = 5;
const CODE: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
/// Linear addresses of the paged configuration: deliberately not identity-mapped,
/// so a translation bug cannot hide behind linear = physical.
const CODE_LA: u64 = 0x4000_0000;
const DATA_LA: u64 = 0x7fff_f000_0000;
/// Page-table frames of the paged configuration.
const TABLES: u64 = 0x30_0000;

fn program(base: u64) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("64-bit assembler");
    let mut top = a.create_label();
    a.set_label(&mut top).expect("label");
    a.add(rax, rbx).expect("add");
    a.xor(rcx, rax).expect("xor");
    a.mov(qword_ptr(rsi), rcx).expect("mov");
    a.dec(rdx).expect("dec");
    a.jnz(top).expect("jnz");
    a.hlt().expect("hlt");
    a.assemble(base).expect("assemble")
}

/// (a) Runs the loop on a bare core over flat memory for `iterations`; returns the
/// instructions retired and the seconds it took.
fn run_flat(iterations: u64) -> (u64, f64) {
    let code = program(CODE);
    let mut bus = FlatBus::new(16 << 20);
    bus.mem.write(PhysAddr(CODE), &code).expect("code fits");
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
    assert_eq!(bus.mem.read_u64(PhysAddr(DATA)).unwrap(), cpu.state.gpr[1]);
    (steps, secs)
}

/// A one-core machine with 4-level page tables mapping `CODE_LA` → `CODE` and
/// `DATA_LA` → `DATA` as 4 KiB pages (P|RW; tables elsewhere), and the loop loaded.
fn paged_machine(iterations: u64) -> Machine {
    let cfg = MachineConfig {
        cores: 1,
        memory: 16 << 20,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).expect("machine");
    let mut b =
        Builder::new(&mut m.mem, PhysAddr(TABLES), PhysAddr(TABLES + (1 << 20))).expect("builder");
    for (la, pa) in [(CODE_LA, CODE), (DATA_LA, DATA)] {
        b.map(
            &mut m.mem,
            VirtAddr(la),
            PhysAddr(pa),
            PageSize::Size4K,
            pte::P | pte::RW,
        )
        .expect("map");
    }
    let code = program(CODE_LA);
    m.write_phys(PhysAddr(CODE), &code, &mut NullSink)
        .expect("code fits");
    let s = &mut m.cores[0].cpu.state;
    s.cr3 = b.cr3(0);
    s.rip = CODE_LA;
    s.gpr[3] = 0x9e37_79b9_7f4a_7c15; // rbx
    s.gpr[2] = iterations; // rdx
    s.gpr[6] = DATA_LA; // rsi
    m
}

/// (b) Runs the loop through `Machine::step` with paging on.
fn run_paged(iterations: u64) -> (u64, f64) {
    let mut m = paged_machine(iterations);
    let mut sink = NullSink;
    let mut steps = 0u64;
    let start = Instant::now();
    loop {
        match m.step(0, &mut sink) {
            Ok(StepResult::Retired) => steps += 1,
            Ok(StepResult::Halted) => break,
            other => panic!(
                "unexpected {other:?} at rip {:#x}",
                m.cores[0].cpu.state.rip
            ),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(steps, iterations * 5, "loop ran the wrong number of times");
    let c = &m.cores[0].cpu.state;
    assert_eq!(m.mem.read_u64(PhysAddr(DATA)).unwrap(), c.gpr[1]);
    (steps, secs)
}

fn bench(name: &str, runs: usize, insns: u64, f: fn(u64) -> (u64, f64)) {
    let mut mips: Vec<f64> = (0..runs)
        .map(|i| {
            let (n, secs) = f(insns / 5);
            let m = n as f64 / secs / 1e6;
            println!("{name} run {i}: {n} instructions in {secs:.3} s = {m:.1} MIPS");
            m
        })
        .collect();
    mips.sort_by(f64::total_cmp);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cpu_loop {name}: median {:.1} MIPS over {runs} runs of {insns} instructions (loadavg {})",
        mips[runs / 2],
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
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
    let only = std::env::var("CPU_LOOP_ONLY").unwrap_or_default();
    if only.is_empty() || only == "flat" {
        bench("flat", runs, insns, run_flat);
    }
    if only.is_empty() || only == "paged" {
        bench("paged", runs, insns, run_paged);
    }
}
