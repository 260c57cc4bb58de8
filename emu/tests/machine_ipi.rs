//! IPIs between cores (SDM Vol. 3A 10.6, 10.12.9; delivery 6.8, 6.14): core 0 sends
//! a fixed IPI through the x2APIC ICR and spins on a flag; core 1's handler runs
//! INVLPG, writes EOI, sets the flag and returns with IRETQ. The test picks the
//! interleavings.

mod machine_support;

use emu::events::EventKind;
use emu::{IpiDest, StepResult};
use machine_support::*;
use mmu::{CacheKind, Invalidation, MmuEvent, VirtAddr};

const SHOOTDOWN: &str = "
core0:
    mov ecx, 0x830
    mov eax, 0xf0
    mov edx, 1
    wrmsr
spin:
    pause
    cmp qword ptr [DATA], 0
    je spin
    hlt
core1:
    mov rax, qword ptr [VA_X]
    mov rbx, qword ptr [VA_Y]
    sti
idle:
    pause
    jmp idle
handler:
    push rax
    push rcx
    push rdx
    invlpg [VA_X]
    mov ecx, 0x80b
    xor eax, eax
    xor edx, edx
    wrmsr
    mov qword ptr [DATA], 1
    pop rdx
    pop rcx
    pop rax
last:
    iretq
";

fn shootdown_rig() -> Rig {
    let mut r = Rig::new(Opts::default(), SHOOTDOWN);
    r.intr_gate(0xf0, "handler");
    r
}

/// Runs the shootdown under `pick` (iteration → core) until core 0 halted and core 1
/// returned from its handler; returns the rig.
fn run_schedule(mut pick: impl FnMut(usize) -> usize) -> Rig {
    let mut r = shootdown_rig();
    let last = r.at("last");
    let mut returned = false;
    for i in 0..5_000 {
        let core = pick(i);
        let rip = r.m.cores[core].cpu.state.rip;
        let res = r.step(core);
        if core == 1 && rip == last && res == StepResult::Retired {
            returned = true;
        }
        if returned && r.m.cores[0].cpu.state.halted {
            return r;
        }
    }
    panic!("the shootdown did not finish");
}

fn check_shootdown(r: &Rig) {
    assert_eq!(r.peek(DATA), 1, "flag not set");
    let handler = r.at("handler");
    let (sent, _) = r
        .find(0, "ipi-sent")
        .find(|(_, e)| {
            e.kind
                == EventKind::IpiSent {
                    vector: 0xf0,
                    dest: IpiDest::Physical(1),
                    targets: 0b10,
                }
        })
        .expect("IpiSent on core 0");
    let ints: Vec<_> = r.find(1, "interrupt").collect();
    assert_eq!(ints.len(), 1, "exactly one interrupt on core 1");
    let (int, ev) = ints[0];
    match ev.kind {
        EventKind::Interrupt {
            vector, handler: h, ..
        } => assert_eq!((vector, h), (0xf0, handler)),
        _ => unreachable!(),
    }
    let invs: Vec<_> =
        r.ev.events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.kind {
                EventKind::Mmu(MmuEvent::Invalidation { op, entries, .. }) => {
                    Some((i, e.core, *op, entries.clone()))
                }
                _ => None,
            })
            .collect();
    assert_eq!(invs.len(), 1, "one invalidation in the whole run: {invs:?}");
    let (inv, inv_core, op, removed) = &invs[0];
    assert_eq!(*inv_core, 1);
    assert_eq!(*op, Invalidation::Invlpg { va: VirtAddr(VA_X) });
    let tlb_removed: Vec<_> = removed
        .iter()
        .filter(|e| matches!(e.cache, CacheKind::Tlb { .. }))
        .collect();
    assert_eq!(tlb_removed.len(), 1, "{removed:?}");
    assert_eq!(tlb_removed[0].va, VirtAddr(VA_X));
    assert_eq!(tlb_removed[0].core, 1);
    let eois: Vec<_> = r.find(1, "eoi").collect();
    assert_eq!(eois.len(), 1);
    let (eoi, e) = eois[0];
    assert_eq!(e.kind, EventKind::Eoi { vector: Some(0xf0) });
    assert!(
        sent < int && int < *inv && *inv < eoi,
        "order IpiSent {sent} < Interrupt {int} < Invalidation {inv} < Eoi {eoi}"
    );
    // Core 1 still caches VA_Y but not VA_X (its loop no longer touches either).
    let dump = r.m.cores[1].mmu.dump(&r.m.tracker);
    let has = |va: u64| dump.tlb.iter().any(|e| e.va == VirtAddr(va));
    assert!(!has(VA_X), "INVLPG left VA_X cached");
    assert!(has(VA_Y), "INVLPG removed VA_Y too");
    assert!(r.m.apics[1].isr_vectors().is_empty());
    assert!(r.m.apics[1].irr_vectors().is_empty());
}

#[test]
fn round_robin() {
    check_shootdown(&run_schedule(|i| i % 2));
}

#[test]
fn sender_runs_fifty_steps_first() {
    let r = run_schedule(|i| if i < 50 { 0 } else { i % 2 });
    check_shootdown(&r);
}

#[test]
fn target_runs_first() {
    check_shootdown(&run_schedule(|i| if i < 30 { 1 } else { i % 2 }));
}

#[test]
fn two_to_one_and_one_to_three() {
    check_shootdown(&run_schedule(|i| usize::from(i % 3 == 2)));
    check_shootdown(&run_schedule(|i| usize::from(i % 4 != 0)));
}

#[test]
fn seeded_random_schedules() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let r = run_schedule(|_| (rng.next() >> 33) as usize % 2);
        check_shootdown(&r);
    }
}

#[test]
fn pending_ipi_waits_while_if_is_clear() {
    // Core 0 sends first; core 1 then runs its IF=0 prologue: two loads and STI,
    // then one more instruction in the STI shadow, and only then the interrupt.
    let mut r = shootdown_rig();
    r.retire(0, 4);
    assert_eq!(r.m.apics[1].irr_vectors(), vec![0xf0]);
    r.retire(1, 3); // two loads and STI: IF was 0 throughout
    r.retire(1, 1); // PAUSE in the STI shadow
    assert_eq!(r.step(1), StepResult::Interrupt(0xf0));
    assert_eq!(r.m.apics[1].isr_vectors(), vec![0xf0]);
    assert_eq!(r.m.cores[1].cpu.state.rip, r.at("handler"));
}
