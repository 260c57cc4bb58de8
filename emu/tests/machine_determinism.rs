//! Determinism (DESIGN.md "Determinism"): a multi-core run is a pure function of
//! the program and the schedule, so its event stream is identical across runs;
//! a snapshot (`Machine::clone`) continues bit-identically to the original; and a
//! snapshot shares guest pages until one side writes them.

mod machine_support;

use emu::events::{fingerprint, CollectSink};
use emu::{Machine, StepResult};
use machine_support::*;
use mmu::{Pfn, PhysAddr};

/// Two cores ping each other with IPIs forever; each loop iteration loads
/// through VA_X and VA_Y, flips VA_Y's RW bit (the tracker sees paging writes and
/// stale entries), reads the TSC; each handler counts, INVLPGs VA_Y and EOIs.
const PING: &str = "
core0:
    mov r9d, 1
    mov r10d, 0xf0
    jmp start
core1:
    xor r9d, r9d
    mov r10d, 0xf1
start:
    sti
ping:
    mov rax, qword ptr [VA_X]
    mov ecx, 0x830
    mov eax, r10d
    mov edx, r9d
    wrmsr
    xor qword ptr [PTE_Y], 2
    mov rbx, qword ptr [VA_Y]
    rdtsc
    mov qword ptr [r9 * 8 + DATA + 0x40], rax
    add qword ptr [VA_X], 1
    pause
    jmp ping
handler:
    push rax
    push rcx
    push rdx
    lock inc qword ptr [DATA]
    invlpg [VA_Y]
    mov ecx, 0x80b
    xor eax, eax
    xor edx, edx
    wrmsr
    pop rdx
    pop rcx
    pop rax
    iretq
";

fn ping_rig() -> Rig {
    let mut r = Rig::new(Opts::default(), PING);
    r.intr_gate(0xf0, "handler");
    r.intr_gate(0xf1, "handler");
    r
}

/// Steps `m` `n` times under a seeded random schedule, collecting events.
fn run(m: &mut Machine, seed: u64, n: usize) -> CollectSink {
    let mut sink = CollectSink::default();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for _ in 0..n {
        let core = (rng.next() >> 40) as usize % m.num_cores();
        let r = m.step(core, &mut sink).unwrap();
        assert!(!matches!(r, StepResult::Stopped(_)), "{r:?}");
    }
    sink
}

fn same_machine(a: &Machine, b: &Machine) {
    assert_eq!(a.steps, b.steps);
    for c in 0..a.num_cores() {
        assert_eq!(a.cores[c].cpu.state, b.cores[c].cpu.state, "core {c}");
        assert_eq!(a.apics[c], b.apics[c], "apic {c}");
        assert_eq!(
            a.cores[c].mmu.dump(&a.tracker),
            b.cores[c].mmu.dump(&b.tracker),
            "caches of core {c}"
        );
    }
    for pa in [DATA, VA_X, VA_Y, TABLES, TABLES + 0x3000, STACK - 0x1000] {
        let (mut x, mut y) = ([0u8; 4096], [0u8; 4096]);
        a.mem.read(PhysAddr(pa), &mut x).unwrap();
        b.mem.read(PhysAddr(pa), &mut y).unwrap();
        assert!(x == y, "page {pa:#x} differs");
    }
}

#[test]
fn a_multi_core_run_has_one_event_stream() {
    let mut a = ping_rig();
    let mut b = ping_rig();
    let ea = run(&mut a.m, 7, 3000);
    let eb = run(&mut b.m, 7, 3000);
    let names = |e: &CollectSink, n: &str| e.events.iter().filter(|x| x.kind.name() == n).count();
    // The run exercises what determinism must cover.
    for n in [
        "interrupt",
        "eoi",
        "ipi-sent",
        "invalidation",
        "became-stale",
        "stale-use",
    ] {
        assert!(names(&ea, n) > 0, "no {n} events");
    }
    assert_eq!(ea.events.len(), eb.events.len());
    assert_eq!(fingerprint(&ea.events), fingerprint(&eb.events));
    assert!(ea.events == eb.events);
    same_machine(&a.m, &b.m);
    // And the fingerprint does see the schedule.
    let mut c = ping_rig();
    let ec = run(&mut c.m, 8, 3000);
    assert_ne!(fingerprint(&ea.events), fingerprint(&ec.events));
}

#[test]
fn a_snapshot_continues_bit_identically() {
    let mut r = ping_rig();
    run(&mut r.m, 11, 1500);
    let snap = r.m.clone();
    // The original goes on; a restored copy and the snapshot itself replay the
    // same continuation.
    let orig = run(&mut r.m, 12, 2000);
    let mut restored = snap.clone();
    let again = run(&mut restored, 12, 2000);
    let mut snap2 = snap;
    let third = run(&mut snap2, 12, 2000);
    assert!(orig.events.len() > 2000);
    assert_eq!(fingerprint(&orig.events), fingerprint(&again.events));
    assert_eq!(fingerprint(&orig.events), fingerprint(&third.events));
    assert!(orig.events == again.events);
    same_machine(&r.m, &restored);
    same_machine(&r.m, &snap2);
}

#[test]
fn a_snapshot_shares_pages_until_written() {
    let mut r = ping_rig();
    run(&mut r.m, 3, 500);
    let snap = r.m.clone();
    let pages = [CODE, IDT, DATA, VA_X, VA_Y, TABLES, TSS];
    for pa in pages {
        assert!(
            r.m.mem.shares_page_with(&snap.mem, Pfn(pa >> 12)),
            "{pa:#x} copied by clone"
        );
    }
    // One guest store unshares exactly the page written.
    let mut one = r.m.clone();
    let before = snap.mem.read_u64(PhysAddr(DATA + 0x800)).unwrap();
    one.write_phys(
        PhysAddr(DATA + 0x800),
        &[0xaa; 8],
        &mut CollectSink::default(),
    )
    .unwrap();
    assert!(!one.mem.shares_page_with(&snap.mem, Pfn(DATA >> 12)));
    for pa in [CODE, IDT, VA_X, VA_Y, TABLES, TSS] {
        assert!(
            one.mem.shares_page_with(&snap.mem, Pfn(pa >> 12)),
            "{pa:#x}"
        );
    }
    assert_eq!(snap.mem.read_u64(PhysAddr(DATA + 0x800)).unwrap(), before);
    // Running the guest writes DATA, VA_X, the PTE page (RW flips, A/D) and the
    // stacks, but never code, the IDT or the TSS.
    run(&mut r.m, 4, 500);
    for pa in [DATA, VA_X] {
        assert!(
            !r.m.mem.shares_page_with(&snap.mem, Pfn(pa >> 12)),
            "{pa:#x}"
        );
    }
    let pte_page =
        r.pt.entry_addr(&r.m.mem, mmu::VirtAddr(VA_Y), 1)
            .unwrap()
            .raw()
            >> 12;
    assert!(!r.m.mem.shares_page_with(&snap.mem, Pfn(pte_page)));
    for pa in [CODE, IDT, TSS] {
        assert!(
            r.m.mem.shares_page_with(&snap.mem, Pfn(pa >> 12)),
            "{pa:#x}"
        );
    }
}
