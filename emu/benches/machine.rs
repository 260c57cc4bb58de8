//! Machine benchmarks (wall clock; `cargo bench -p emu --bench machine`).
//!
//! 1. Fine-grained interleaving: 4 cores each run `add rax,rbx; xor rcx,rax;
//!    mov [rsi],rcx; dec rdx; jnz` on 4 KiB pages (code and one data page per
//!    core), stepped round-robin one instruction at a time with the `NullSink`;
//!    TLB model and coherence tracker on. Reports steps per second.
//! 2. Cloning a 4-core machine with 64 MiB of touched guest memory: µs per clone.
//!
//! Each measurement runs several times and reports the median.

use emu::events::NullSink;
use emu::{Machine, MachineConfig};
use iced_x86::code_asm::*;
use mmu::pagetable::Builder;
use mmu::{pte, PhysAddr, VirtAddr};
use std::hint::black_box;
use std::time::Instant;

const CODE: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
const TABLES: u64 = 0x40_0000;
const CORES: usize = 4;

fn loop_machine(memory: u64) -> Machine {
    let mut m = Machine::new(MachineConfig {
        cores: CORES,
        memory,
        ..MachineConfig::default()
    })
    .expect("machine");
    let mut a = CodeAssembler::new(64).expect("asm");
    let mut top = a.create_label();
    a.set_label(&mut top).expect("label");
    a.add(rax, rbx).expect("add");
    a.xor(rcx, rax).expect("xor");
    a.mov(qword_ptr(rsi), rcx).expect("mov");
    a.dec(rdx).expect("dec");
    a.jnz(top).expect("jnz");
    let code = a.assemble(CODE).expect("assemble");
    m.mem.write(PhysAddr(CODE), &code).expect("code");
    let mut b =
        Builder::new(&mut m.mem, PhysAddr(TABLES), PhysAddr(TABLES + (1 << 20))).expect("builder");
    b.map_range(&mut m.mem, VirtAddr(CODE), PhysAddr(CODE), 0x1000, pte::P)
        .expect("map code");
    b.map_range(
        &mut m.mem,
        VirtAddr(DATA),
        PhysAddr(DATA),
        0x1000 * CORES as u64,
        pte::P | pte::RW,
    )
    .expect("map data");
    for (i, c) in m.cores.iter_mut().enumerate() {
        let s = &mut c.cpu.state;
        s.cr3 = b.cr3(0);
        s.rip = CODE;
        s.gpr[3] = 0x9e37_79b9 + i as u64; // rbx
        s.gpr[2] = 1 << 40; // rdx
        s.gpr[6] = DATA + 0x1000 * i as u64; // rsi
    }
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn interleaving(runs: usize, steps: u64) -> f64 {
    let mut rates = vec![];
    for _ in 0..runs {
        let mut m = loop_machine(16 << 20);
        let mut sink = NullSink;
        // Warm up: fill TLBs and the decode cache.
        for i in 0..1000u64 {
            let _ = m.step((i % CORES as u64) as usize, &mut sink);
        }
        let t = Instant::now();
        let mut core = 0;
        for _ in 0..steps {
            black_box(m.step(core, &mut sink).is_ok());
            core += 1;
            if core == CORES {
                core = 0;
            }
        }
        let dt = t.elapsed().as_secs_f64();
        assert!(m.cores.iter().all(|c| c.stopped.is_none()));
        rates.push(steps as f64 / dt);
    }
    median(rates)
}

fn cloning(runs: usize) -> (f64, usize) {
    let mut m = loop_machine(96 << 20);
    let touched: u64 = 64 << 20;
    let base = 16u64 << 20;
    let mut page = [0u8; 4096];
    let mut off = 0;
    while off < touched {
        page[..8].copy_from_slice(&off.to_le_bytes());
        m.mem.write(PhysAddr(base + off), &page).expect("touch");
        off += 4096;
    }
    let mut sink = NullSink;
    for i in 0..1000u64 {
        let _ = m.step((i % CORES as u64) as usize, &mut sink);
    }
    let pages = m.mem.touched_pages();
    let mut times = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        let c = black_box(m.clone());
        let dt = t.elapsed().as_secs_f64();
        drop(c);
        times.push(dt * 1e6);
    }
    (median(times), pages)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--profile`: one short interleaving run only, for callgrind.
    if std::env::args().any(|a| a == "--profile") {
        let rate = interleaving(1, 500_000);
        println!("interleave-4-cores: {:.1} M steps/s", rate / 1e6);
        return;
    }
    let (runs, steps) = if quick {
        (3, 2_000_000)
    } else {
        (7, 20_000_000)
    };
    let rate = interleaving(runs, steps);
    println!(
        "interleave-4-cores: median {:.1} M steps/s ({runs} runs of {steps} steps)",
        rate / 1e6
    );
    let (us, pages) = cloning(if quick { 11 } else { 51 });
    println!("clone-4-cores-64MiB: median {us:.1} µs per clone ({pages} touched pages)");
}
