//! External interrupts on the machine: the STI shadow and IF=0 blocking (SDM Vol.
//! 3A 6.8.3), HLT and wake-up, APIC priority classes and nesting (10.8.3.1), EOI,
//! self-IPIs (10.12.11), ICR shorthands, x2APIC broadcast and logical destinations
//! (10.12.9, 10.12.10.2), and CR8 as the TPR (10.8.6.1).

mod machine_support;

use emu::events::EventKind;
use emu::state::control::IF;
use emu::state::RBX;
use emu::{IpiDest, StepResult};
use machine_support::*;

/// A handler for `vec` that logs its vector, optionally runs `body`, EOIs and
/// returns, preserving RAX, RCX, RDX.
fn handler(vec: u8, body: &str) -> String {
    format!(
        "
h{vec:x}:
    push rax
    push rcx
    push rdx
    mov rax, qword ptr [DATA]
    mov byte ptr [rax + DATA + 8], {vec}
    inc qword ptr [DATA]
{body}
    mov ecx, 0x80b
    xor eax, eax
    xor edx, edx
    wrmsr
    pop rdx
    pop rcx
    pop rax
    iretq
"
    )
}

fn log(r: &Rig) -> Vec<u8> {
    let n = r.peek(DATA) as usize;
    let mut b = vec![0u8; n];
    r.m.mem.read(mmu::PhysAddr(DATA + 8), &mut b).unwrap();
    b
}

fn rig(cores: usize, src: &str, vectors: &[u8]) -> Rig {
    let mut r = Rig::new(
        Opts {
            cores,
            ..Opts::default()
        },
        src,
    );
    for &v in vectors {
        r.intr_gate(v, &format!("h{v:x}"));
    }
    r
}

#[test]
fn sti_shadow_delays_a_pending_interrupt_by_one_instruction() {
    let src = format!(
        "core0:
    mov ecx, 0x83f
    mov eax, 0x40
    xor edx, edx
    wrmsr
    sti
shadowed:
    nop
taken:
    nop
    hlt
{}",
        handler(0x40, "")
    );
    let mut r = rig(1, &src, &[0x40]);
    r.retire(0, 4); // self-IPI with IF=0: pending, not taken
    assert_eq!(r.m.apics[0].irr_vectors(), vec![0x40]);
    let ipi = r.find(0, "ipi-sent").next().unwrap().1.kind.clone();
    assert_eq!(
        ipi,
        EventKind::IpiSent {
            vector: 0x40,
            dest: IpiDest::SelfOnly,
            targets: 1
        }
    );
    r.retire(0, 1); // STI
    assert!(r.m.cores[0].cpu.state.interrupt_shadow);
    r.retire(0, 1); // the NOP in the shadow runs first
    assert_eq!(r.m.cores[0].cpu.state.rip, r.at("taken"));
    assert_eq!(r.step(0), StepResult::Interrupt(0x40));
    assert!(log(&r).is_empty());
    r.retire(0, 14);
    assert_eq!(log(&r), vec![0x40]);
    assert_eq!(r.m.cores[0].cpu.state.rip, r.at("taken"));
    assert!(r.m.cores[0].cpu.state.rflags & IF != 0, "IRETQ restored IF");
}

#[test]
fn sti_with_if_already_set_opens_no_shadow() {
    let src = format!("core0:\n sti\n nop\n hlt\n{}", handler(0x40, ""));
    let mut r = rig(1, &src, &[0x40]);
    r.m.cores[0].cpu.state.rflags |= IF;
    r.retire(0, 1);
    assert!(!r.m.cores[0].cpu.state.interrupt_shadow);
    r.m.apics[0].request(0x40);
    assert_eq!(r.step(0), StepResult::Interrupt(0x40));
}

#[test]
fn cli_blocks_and_sti_hlt_wakes_with_rip_after_hlt() {
    // The classic idle: with IF=0 an IPI stays pending; STI; HLT halts (the
    // interrupt cannot be taken in the shadow) and the next step wakes the core.
    let src = format!(
        "core0:\n cli\n nop\n sti\n hlt\nafter:\n nop\n{}",
        handler(0x40, "")
    );
    let mut r = rig(1, &src, &[0x40]);
    r.m.cores[0].cpu.state.rflags |= IF;
    r.retire(0, 1); // CLI
    r.m.apics[0].request(0x40);
    r.retire(0, 2); // NOP, STI
    assert_eq!(r.step(0), StepResult::Halted);
    let n = r.ev.events.len();
    assert_eq!(r.step(0), StepResult::Interrupt(0x40));
    let kinds: Vec<_> = r.ev.events[n..].iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds.first(), Some(&"wake"));
    assert_eq!(r.peek(STACK - 40), r.at("after"), "pushed RIP is after HLT");
}

#[test]
fn halted_core_makes_no_progress_until_an_ipi_arrives() {
    let src = format!(
        "core0:
    mov ecx, 0x830
    mov eax, 0x50
    mov edx, 1
    wrmsr
    hlt
core1:
    sti
    hlt
after:
    mov qword ptr [DATA + 0x100], 7
idle:
    jmp idle
{}",
        handler(0x50, "")
    );
    let mut r = rig(2, &src, &[0x50]);
    r.retire(1, 1);
    assert_eq!(r.step(1), StepResult::Halted);
    let steps = r.m.steps;
    for _ in 0..5 {
        assert_eq!(r.step(1), StepResult::NoProgress);
    }
    assert_eq!(r.m.steps, steps, "NoProgress consumes no global step");
    assert!(r.m.is_idle(1));
    r.retire(0, 4);
    assert!(!r.m.is_idle(1));
    assert_eq!(r.step(1), StepResult::Interrupt(0x50));
    assert_eq!(r.find(1, "wake").count(), 1);
    r.retire(1, 14);
    assert_eq!(r.m.cores[1].cpu.state.rip, r.at("after"));
    r.retire(1, 1);
    assert_eq!(r.peek(DATA + 0x100), 7);
    // Core 0 halts with IF=0: even a pending interrupt does not wake it.
    assert_eq!(r.step(0), StepResult::Halted);
    r.m.apics[0].request(0x50);
    assert!(r.m.is_idle(0));
    assert_eq!(r.step(0), StepResult::NoProgress);
}

#[test]
fn higher_class_first_lower_waits_for_eoi_and_higher_nests() {
    // 0x41 (class 4), 0x81 and 0x85 (class 8) pending; 0x85, the highest, is taken
    // first; its handler sets IF: 0x81 (same class) and 0x41 stay masked by the
    // in-service 0x85, while a new 0x91 (class 9) preempts. After 0x85's EOI, 0x81,
    // then 0x41.
    let body85 = "
    sti
    nop
    nop
    mov ecx, 0x83f
    mov eax, 0x91
    xor edx, edx
    wrmsr
    nop
    nop";
    let src = format!(
        "core0:
    mov ecx, 0x83f
    xor edx, edx
    mov eax, 0x41
    wrmsr
    mov eax, 0x81
    wrmsr
    mov eax, 0x85
    wrmsr
    sti
    nop
spin:
    jmp spin
{}{}{}{}",
        handler(0x85, body85),
        handler(0x91, ""),
        handler(0x81, ""),
        handler(0x41, "")
    );
    let mut r = rig(1, &src, &[0x41, 0x81, 0x85, 0x91]);
    let mut taken = vec![];
    for _ in 0..200 {
        if let StepResult::Interrupt(v) = r.step(0) {
            taken.push(v);
        }
        if log(&r).len() == 4 && r.m.cores[0].cpu.state.rip == r.at("spin") {
            break;
        }
    }
    assert_eq!(taken, vec![0x85, 0x91, 0x81, 0x41]);
    assert_eq!(log(&r), vec![0x85, 0x91, 0x81, 0x41]);
    // 0x81 was taken only after the EOI that retired 0x85.
    let idx =
        |pred: &dyn Fn(&EventKind) -> bool| r.ev.events.iter().position(|e| pred(&e.kind)).unwrap();
    let eoi85 = idx(&|k| *k == EventKind::Eoi { vector: Some(0x85) });
    let int81 = idx(&|k| matches!(k, EventKind::Interrupt { vector: 0x81, .. }));
    let int91 = idx(&|k| matches!(k, EventKind::Interrupt { vector: 0x91, .. }));
    assert!(int91 < eoi85 && eoi85 < int81);
    assert!(r.m.apics[0].isr_vectors().is_empty());
    assert!(r.m.apics[0].irr_vectors().is_empty());
}

fn shorthand_rig(edx: u64, eax: u64) -> Rig {
    let src =
        format!("core0:\n mov ecx, 0x830\n mov edx, {edx:#x}\n mov eax, {eax:#x}\n wrmsr\n hlt\n");
    let mut r = rig(3, &src, &[]);
    r.retire(0, 4);
    r
}

fn sent(r: &Rig) -> EventKind {
    r.find(0, "ipi-sent").next().unwrap().1.kind.clone()
}

#[test]
fn icr_shorthands_reach_the_right_cores() {
    for (eax, dest, targets) in [
        (3 << 18 | 0x60, IpiDest::AllExcludingSelf, 0b110),
        (2 << 18 | 0x60, IpiDest::AllIncludingSelf, 0b111),
        (1 << 18 | 0x60, IpiDest::SelfOnly, 0b001),
        (0x60, IpiDest::Physical(2), 0b100),
    ] {
        let r = shorthand_rig(2, eax);
        assert_eq!(
            sent(&r),
            EventKind::IpiSent {
                vector: 0x60,
                dest,
                targets
            }
        );
        for c in 0..3 {
            let want: Vec<u8> = if targets & 1 << c != 0 {
                vec![0x60]
            } else {
                vec![]
            };
            assert_eq!(r.m.apics[c].irr_vectors(), want, "core {c} for {dest:?}");
        }
    }
}

#[test]
fn x2apic_broadcast_destination_reaches_every_core() {
    // Destination FFFF_FFFFH broadcasts in physical and in logical mode.
    for eax in [0x61u64, 1 << 11 | 0x61] {
        let r = shorthand_rig(0xffff_ffff, eax);
        match sent(&r) {
            EventKind::IpiSent { targets, .. } => assert_eq!(targets, 0b111, "{eax:#x}"),
            k => panic!("{k:?}"),
        }
    }
}

#[test]
fn logical_destination_uses_cluster_and_bit_mask() {
    // Cluster 0, logical IDs 0 and 2 (bits 0 and 2): cores 0 and 2, not core 1.
    let r = shorthand_rig(0b101, 1 << 11 | 0x62);
    assert_eq!(
        sent(&r),
        EventKind::IpiSent {
            vector: 0x62,
            dest: IpiDest::Logical(0b101),
            targets: 0b101
        }
    );
    // Cluster 1 has no cores in a 3-core machine.
    let r = shorthand_rig(1 << 16 | 0b1, 1 << 11 | 0x62);
    assert!(matches!(sent(&r), EventKind::IpiSent { targets: 0, .. }));
}

#[test]
fn mov_cr8_is_the_tpr() {
    // CR8 = 9 masks classes up to 9: a pending 0x81 waits until CR8 drops.
    let src = format!(
        "core0:
    mov eax, 9
    mov cr8, rax
    mov ecx, 0x83f
    xor edx, edx
    mov eax, 0x81
    wrmsr
    nop
    mov ecx, 0x808
    rdmsr
    mov ebx, eax
    xor eax, eax
    mov cr8, rax
unmasked:
    nop
    hlt
{}",
        handler(0x81, "")
    );
    let mut r = rig(1, &src, &[0x81]);
    r.m.cores[0].cpu.state.rflags |= IF;
    r.retire(0, 2);
    assert_eq!(r.m.apics[0].tpr, 0x90, "MOV CR8 loads TPR[7:4]");
    r.retire(0, 10);
    assert_eq!(r.m.cores[0].cpu.state.gpr[RBX], 0x90, "RDMSR TPR");
    assert_eq!(r.m.cores[0].cpu.state.rip, r.at("unmasked"));
    assert_eq!(r.step(0), StepResult::Interrupt(0x81));
}

#[test]
fn wrmsr_tpr_shows_in_cr8() {
    let src = "core0:
    mov ecx, 0x808
    mov eax, 0x5a
    xor edx, edx
    wrmsr
    mov rbx, cr8
    hlt
";
    let mut r = rig(1, src, &[]);
    r.retire(0, 5);
    assert_eq!(r.m.cores[0].cpu.state.gpr[RBX], 5);
    assert_eq!(r.m.apics[0].tpr, 0x5a);
    // A pending 0x51 (class 5) is masked by TPR class 5; 0x61 is not.
    r.m.cores[0].cpu.state.rflags |= IF;
    r.m.apics[0].request(0x51);
    assert!(r.m.apics[0].deliverable().is_none());
    r.m.apics[0].request(0x61);
    assert_eq!(r.m.apics[0].deliverable(), Some(0x61));
}
