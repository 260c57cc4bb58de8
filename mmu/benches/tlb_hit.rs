//! Times translate() on TLB hits (the fast path) and on slow-path hits (fast path
//! disabled). Prints the median ns/lookup of several runs. Uses the wall clock,
//! which only benchmarks may do.
//!
//! Run: `cargo bench -p mmu --bench tlb_hit`

use mmu::pagetable::Builder;
use mmu::*;
use std::hint::black_box;
use std::time::Instant;

const PAGES: u64 = 32;
const N: u64 = 2_000_000;
const RUNS: usize = 7;

fn setup(fast: bool) -> (PhysMem, Tracker, CoreMmu, PagingRegs) {
    let mut mem = PhysMem::new(64 << 20);
    let mut b = Builder::new(&mut mem, PhysAddr(0x10_0000), PhysAddr(0x20_0000)).unwrap();
    b.map_range(
        &mut mem,
        VirtAddr(0x40_0000),
        PhysAddr(0x80_0000),
        PAGES * 4096,
        pte::P | pte::RW | pte::D,
    )
    .unwrap();
    let cfg = MmuConfig {
        fast_path: fast,
        ..MmuConfig::default()
    };
    let regs = PagingRegs::long_mode(b.cr3(0), cr4::PGE, efer::NXE);
    (mem, Tracker::new(), CoreMmu::new(0, &cfg), regs)
}

fn bench(name: &str, fast: bool, kind: AccessKind) {
    let (mut mem, mut tracker, mut core, regs) = setup(fast);
    let access = Access::new(kind, 0);
    let mut sink = NullSink;
    let ctx = AccessCtx::default();
    // Warm: fill every page (writes set D, so the entries are dirty).
    for p in 0..PAGES {
        let va = VirtAddr(0x40_0000 + p * 4096);
        core.translate(
            &mut mem,
            &mut tracker,
            &regs,
            va,
            Access::kernel_write(),
            ctx,
            &mut sink,
        )
        .unwrap();
    }
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut acc = 0u64;
        for i in 0..N {
            let va = VirtAddr(0x40_0000 + (i % PAGES) * 4096 + (i & 0xff8));
            match core.translate(
                &mut mem,
                &mut tracker,
                &regs,
                black_box(va),
                access,
                ctx,
                &mut sink,
            ) {
                Ok(pa) => acc = acc.wrapping_add(pa.raw()),
                Err(e) => panic!("{e}"),
            }
        }
        black_box(acc);
        samples.push(t.elapsed().as_nanos() as f64 / N as f64);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<28} median {:.2} ns/lookup (min {:.2}, max {:.2}, {RUNS} runs x {N})",
        samples[RUNS / 2],
        samples[0],
        samples[RUNS - 1]
    );
}

fn main() {
    bench("fast path, data read", true, AccessKind::Read);
    bench("fast path, data write", true, AccessKind::Write);
    bench("slow path (TLB model) read", false, AccessKind::Read);
}
