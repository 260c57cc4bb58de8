//! Exceptions delivered through the IDT on the machine (SDM Vol. 3A 6.12, 6.14,
//! 6.15; table 6-5 for double faults): #PF with its error code and CR2 and a
//! handler that fixes the PTE, #GP(0) from system instructions at CPL 3 on the
//! TSS RSP0 stack, #UD, #DF, triple fault, and the stop when there is no IDT.

mod machine_support;

use emu::events::{EventKind, StopReason};
use emu::state::{Seg, RAX, RSP};
use emu::{Exception, StepResult};
use machine_support::*;

fn one(src: &str) -> Rig {
    Rig::new(
        Opts {
            cores: 1,
            ..Opts::default()
        },
        src,
    )
}

const PF_FIX: &str = "
core0:
    mov rax, qword ptr [VA_NP]
    mov qword ptr [VA_NP + 8], rax
    hlt
pf:
    pop rbx
    mov qword ptr [DATA + 8], rbx
    mov rcx, cr2
    mov qword ptr [DATA + 16], rcx
    or qword ptr [PTE_NP], 1
    iretq
";

#[test]
fn page_fault_handler_fixes_the_pte_and_the_access_retries() {
    let mut r = one(PF_FIX);
    r.intr_gate(14, "pf");
    let load = r.at("core0");
    let pf = Exception::PageFault {
        addr: VA_NP,
        code: 0,
    };
    assert_eq!(r.step(0), StepResult::Exception(pf));
    let s = &r.m.cores[0].cpu.state;
    assert_eq!((s.rip, s.cr2), (r.at("pf"), VA_NP));
    assert_eq!(s.gpr[RSP], STACK - 48, "error code + 5-word frame");
    assert_eq!(r.peek(STACK - 40), load, "RIP of the faulting load");
    let e =
        r.ev.events
            .iter()
            .rev()
            .find(|e| e.kind.name() == "exception")
            .unwrap();
    assert_eq!(
        e.kind,
        EventKind::Exception {
            raised: pf,
            delivered: pf,
            from: load,
            handler: r.at("pf")
        }
    );
    r.retire(0, 6); // the handler up to and including IRETQ
    assert_eq!(r.m.cores[0].cpu.state.rip, load, "IRETQ back to the load");
    assert_eq!(r.m.cores[0].cpu.state.gpr[RSP], STACK);
    r.retire(0, 2); // the load now succeeds, and so does a write to the page
    assert_eq!(r.m.cores[0].cpu.state.gpr[RAX], 0x1234_5678);
    assert_eq!(r.peek(VA_NP + 8), 0x1234_5678);
    assert_eq!(r.step(0), StepResult::Halted);
    assert_eq!(
        r.peek(DATA + 8),
        0,
        "error code: not present, read, supervisor"
    );
    assert_eq!(r.peek(DATA + 16), VA_NP, "CR2 as the handler saw it");
}

#[test]
fn page_fault_error_code_for_a_write() {
    let mut r = one("core0:\n mov qword ptr [VA_NP + 0x18], rax\n hlt\npf:\n hlt\n");
    r.intr_gate(14, "pf");
    assert_eq!(
        r.step(0),
        StepResult::Exception(Exception::PageFault {
            addr: VA_NP + 0x18,
            code: 2
        })
    );
    assert_eq!(r.peek(STACK - 48), 2, "W set, P clear");
    assert_eq!(r.m.cores[0].cpu.state.cr2, VA_NP + 0x18);
}

// User code loads R15 with the length of the next (faulting) instruction so the
// handlers can step over it.
const USER: &str = "
user:
    mov r15, 2
    wrmsr
    mov r15, 3
    mov cr3, rax
    mov r15, 2
    ud2
    mov r15, 1
    hlt
done:
    jmp done
gp:
    add qword ptr [DATA], 1
    add rsp, 8
    add qword ptr [rsp], r15
    iretq
ud:
    add qword ptr [DATA + 8], 1
    add qword ptr [rsp], r15
    iretq
";

#[test]
fn gp_and_ud_at_cpl3_use_the_tss_stack_and_return_to_user() {
    let mut r = Rig::new(
        Opts {
            cores: 1,
            user: true,
            idt: true,
        },
        USER,
    );
    r.intr_gate(13, "gp");
    r.intr_gate(6, "ud");
    {
        let s = &mut r.m.cores[0].cpu.state;
        s.rip = r.sym["user"];
        s.sel[Seg::Cs as usize] = 0x2b;
        s.sel[Seg::Ss as usize] = 0x23;
        s.gpr[RSP] = USER_STACK;
    }
    let mut faults = vec![];
    for _ in 0..40 {
        let before = r.m.cores[0].cpu.state.clone();
        match r.step(0) {
            StepResult::Exception(e) => {
                let s = &r.m.cores[0].cpu.state;
                let err = u64::from(e.error_code().is_some()) * 8;
                assert_eq!(before.cpl(), 3);
                assert_eq!(s.cpl(), 0, "handler at CPL 0");
                assert_eq!(s.sel[Seg::Ss as usize], 0, "SS is null with RPL 0");
                assert_eq!(s.gpr[RSP], RSP0 - 40 - err, "frame on RSP0");
                let f = s.gpr[RSP] + err;
                assert_eq!(r.peek(f), before.rip, "RIP of the faulting instruction");
                assert_eq!(r.peek(f + 8), 0x2b);
                assert_eq!(r.peek(f + 16), before.rflags);
                assert_eq!(r.peek(f + 24), USER_STACK);
                assert_eq!(r.peek(f + 32), 0x23);
                faults.push(e);
            }
            StepResult::Retired => {}
            other => panic!("{other:?}"),
        }
        if r.m.cores[0].cpu.state.rip == r.sym["done"] {
            break;
        }
    }
    use Exception::*;
    assert_eq!(
        faults,
        vec![
            GeneralProtection(0),
            GeneralProtection(0),
            InvalidOpcode,
            GeneralProtection(0)
        ],
        "WRMSR, MOV CR3, UD2, HLT"
    );
    assert_eq!((r.peek(DATA), r.peek(DATA + 8)), (3, 1));
    let s = &r.m.cores[0].cpu.state;
    assert_eq!(s.cpl(), 3, "back in user mode");
    assert_eq!(s.gpr[RSP], USER_STACK);
    assert_eq!(s.sel[Seg::Ss as usize], 0x23);
}

const PF_THEN: &str = "
core0:
    mov rax, qword ptr [VA_NP]
    hlt
df:
    hlt
np:
    hlt
";

#[test]
fn page_fault_whose_gate_is_not_present_becomes_a_double_fault() {
    // #PF, then #NP while reading gate 14: page fault + contributory = #DF.
    let mut r = one(PF_THEN);
    r.intr_gate(8, "df");
    r.intr_gate(11, "np");
    let h = r.at("df");
    r.set_gate(14, gate(h, 0x08, 0xe, 0, 0, false));
    let pf = Exception::PageFault {
        addr: VA_NP,
        code: 0,
    };
    assert_eq!(r.step(0), StepResult::Exception(Exception::DoubleFault));
    let s = &r.m.cores[0].cpu.state;
    assert_eq!(s.rip, h);
    assert_eq!(s.cr2, VA_NP, "CR2 was loaded for the #PF");
    assert_eq!(r.peek(s.gpr[RSP]), 0, "#DF pushes error code 0");
    let e =
        r.ev.events
            .iter()
            .rev()
            .find(|e| e.kind.name() == "exception")
            .unwrap();
    assert!(matches!(
        e.kind,
        EventKind::Exception { raised, delivered: Exception::DoubleFault, .. } if raised == pf
    ));
}

#[test]
fn contributory_on_contributory_is_a_double_fault() {
    // #GP(0) from WRMSR to a bad MSR, then #GP because vector 13 is beyond the IDT
    // limit: contributory + contributory = #DF.
    let mut r = one("core0:\n mov ecx, 0x1234\n wrmsr\ndf:\n hlt\n");
    r.intr_gate(8, "df");
    r.m.cores[0].cpu.state.idtr.limit = 9 * 16 - 1;
    r.retire(0, 1);
    assert_eq!(r.step(0), StepResult::Exception(Exception::DoubleFault));
}

#[test]
fn benign_then_contributory_is_delivered_serially() {
    // #UD is benign: a missing gate 6 gives #NP(IDT, vector 6, EXT) — no #DF.
    let mut r = one("core0:\n ud2\nnp:\n hlt\ndf:\n hlt\n");
    r.intr_gate(11, "np");
    r.intr_gate(8, "df");
    let h = r.at("np");
    r.set_gate(6, gate(h, 0x08, 0xe, 0, 0, false));
    let code = 6 << 3 | 2 | 1;
    assert_eq!(
        r.step(0),
        StepResult::Exception(Exception::SegmentNotPresent(code))
    );
    let s = &r.m.cores[0].cpu.state;
    assert_eq!(s.rip, r.at("np"));
    assert_eq!(r.peek(s.gpr[RSP]), code as u64);
}

#[test]
fn an_empty_gate_is_gp_before_np_so_two_contributory_faults_double_fault() {
    // A zero gate has type 0: #GP(IDT, vector 6, EXT), checked before P (SDM Vol. 2A
    // INT n pseudocode); gate 13 is empty too, so #GP on #GP → #DF.
    let mut r = one("core0:\n ud2\ndf:\n hlt\n");
    r.intr_gate(8, "df");
    assert_eq!(r.step(0), StepResult::Exception(Exception::DoubleFault));
}

#[test]
fn fault_while_delivering_double_fault_is_a_triple_fault() {
    let mut r = one(PF_THEN);
    let h = r.at("df");
    r.set_gate(14, gate(h, 0x08, 0xe, 0, 0, false));
    r.set_gate(8, gate(h, 0x08, 0xe, 0, 0, false));
    let rip = r.at("core0");
    let stop = StopReason::TripleFault {
        last: Exception::SegmentNotPresent(8 << 3 | 2 | 1),
        rip,
    };
    assert_eq!(r.step(0), StepResult::Stopped(stop.clone()));
    assert_eq!(r.m.cores[0].stopped, Some(stop.clone()));
    let steps = r.m.steps;
    assert_eq!(
        r.step(0),
        StepResult::Stopped(stop.clone()),
        "stays stopped"
    );
    assert_eq!(r.m.steps, steps, "a stopped core consumes no steps");
    assert!(r.m.is_idle(0));
    let last = r.ev.events.last().unwrap();
    assert_eq!(last.kind, EventKind::Stopped(stop));
}

#[test]
fn stack_fault_during_double_fault_delivery_is_a_triple_fault() {
    // The stack is not present: #PF pushing the #PF frame → #DF; pushing the #DF
    // frame faults again → shutdown.
    let mut r = one(PF_THEN);
    r.intr_gate(14, "df");
    r.intr_gate(8, "df");
    r.m.cores[0].cpu.state.gpr[RSP] = VA_NP + 0x800;
    match r.step(0) {
        StepResult::Stopped(StopReason::TripleFault { last, .. }) => {
            assert!(
                matches!(last, Exception::PageFault { code: 2, .. }),
                "{last:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_an_idt_an_exception_stops_the_core() {
    let mut r = Rig::new(
        Opts {
            cores: 1,
            idt: false,
            ..Opts::default()
        },
        "core0:\n nop\n ud2\n",
    );
    r.retire(0, 1);
    let stop = StopReason::UnhandledException {
        exception: Exception::InvalidOpcode,
        rip: r.at("core0") + 1,
    };
    assert_eq!(r.step(0), StepResult::Stopped(stop.clone()));
    assert_eq!(r.m.cores[0].stopped, Some(stop));
    assert!(r.m.is_idle(0));
}
