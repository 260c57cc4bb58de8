//! Each core takes its instructions from its current code page's decoded block
//! (a per-core cursor into the decode cache). These tests change what the next
//! RIP means without leaving the page, or straddle two pages, and check that the
//! core executes the bytes now there: self-modifying code (SDM Vol. 3A 11.6), a
//! PTE write + INVLPG remapping the code page (4.10.4.1), a CR3 switch (4.10.4.1),
//! and an instruction that crosses a page boundary. A second core steps in
//! between on other code, so the cursors of two cores interleave.

mod machine_support;

use emu::state::{RAX, RBX, RCX, RDI, RDX, RSI};
use emu::StepResult;
use machine_support::*;
use mmu::pagetable::Builder;
use mmu::{pte, PhysAddr, VirtAddr};

/// A code page (identity mapped by the rig) and a second frame with other code.
const PAGE_A: u64 = 0x70_0000;
const FRAME_B: u64 = 0x71_0000;

/// Core 1 spins on the rig's code page while core 0 runs; core 0 starts at
/// `core0`.
const MAIN: &str = "
core0:
    mov r8, 0x700000
    jmp r8
core1:
    pause
    jmp core1
";

/// Steps core 0 and core 1 alternately until core 0 halts.
fn run_to_halt(r: &mut Rig) {
    for _ in 0..1000 {
        match r.step(0) {
            StepResult::Retired => {}
            StepResult::Halted => return,
            other => panic!("core 0: {other:?} at {:#x}", r.m.cores[0].cpu.state.rip),
        }
        assert_eq!(r.step(1), StepResult::Retired);
    }
    panic!("core 0 did not halt");
}

fn rig() -> Rig {
    Rig::new(Opts::default(), MAIN)
}

#[test]
fn a_store_into_the_current_page_is_executed_the_next_time_round() {
    let mut r = rig();
    // again: mov eax, 1 / add ebx, eax / mov byte ptr [again+1], 5 / dec ecx /
    // jnz again / hlt, with ecx = 2: the second pass runs the patched immediate.
    let code = [
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
        0x01, 0xc3, // add ebx, eax
        0xc6, 0x04, 0x25, 0x01, 0x00, 0x70, 0x00, 0x05, // mov byte ptr [0x700001], 5
        0xff, 0xc9, // dec ecx
        0x75, 0xed, // jnz -19 (to 0x700000)
        0xf4, // hlt
    ];
    r.m.mem.write(PhysAddr(PAGE_A), &code).unwrap();
    r.m.cores[0].cpu.state.gpr[RCX] = 2;
    run_to_halt(&mut r);
    assert_eq!(r.m.cores[0].cpu.state.gpr[RBX], 1 + 5);
}

/// The loop both frames hold, `imm` being 1 in the first and 2 in the second:
/// `top: <prefix> / mov eax, imm / mov rsi, rdx / dec ecx / jnz top / hlt`, run
/// with ecx = 2. The prefix remaps with rsi: on the first pass to what is already
/// there (so the whole page gets decoded), on the second to `new`.
fn twin_frames(r: &mut Rig, prefix: &[u8], old: u64, new: u64) {
    let back = -(prefix.len() as i8 + 12) as u8;
    for (frame, imm) in [(PAGE_A, 1u8), (FRAME_B, 2u8)] {
        let mut code = prefix.to_vec();
        code.extend_from_slice(&[0xb8, imm, 0, 0, 0, 0x48, 0x89, 0xd6, 0xff, 0xc9, 0x75]);
        code.extend_from_slice(&[back, 0xf4]);
        r.m.mem.write(PhysAddr(frame), &code).unwrap();
    }
    let s = &mut r.m.cores[0].cpu.state;
    s.gpr[RCX] = 2;
    s.gpr[RSI] = old;
    s.gpr[RDX] = new;
}

#[test]
fn a_pte_write_and_invlpg_send_the_next_fetch_to_the_new_frame() {
    let mut r = rig();
    // mov qword ptr [rdi], rsi / invlpg [r8]: the code page's own PTE.
    let e = r.pt.entry_addr(&r.m.mem, VirtAddr(PAGE_A), 1).unwrap();
    let old = r.peek(e.raw());
    let new = FRAME_B | pte::P | pte::RW;
    twin_frames(
        &mut r,
        &[0x48, 0x89, 0x37, 0x41, 0x0f, 0x01, 0x38],
        old,
        new,
    );
    r.m.cores[0].cpu.state.gpr[RDI] = e.raw();
    run_to_halt(&mut r);
    assert_eq!(r.m.cores[0].cpu.state.gpr[RAX], 2);
}

#[test]
fn a_cr3_switch_sends_the_next_fetch_to_the_new_address_space() {
    let mut r = rig();
    // mov cr3, rsi: a second address space, identical but for the code page.
    let mut pt = Builder::new(&mut r.m.mem, PhysAddr(0xd0_0000), PhysAddr(0xe0_0000)).unwrap();
    let leaf = pte::P | pte::RW;
    pt.map_range(&mut r.m.mem, VirtAddr(0), PhysAddr(0), PAGE_A, leaf)
        .unwrap();
    pt.map_range(
        &mut r.m.mem,
        VirtAddr(PAGE_A),
        PhysAddr(FRAME_B),
        0x1000,
        leaf,
    )
    .unwrap();
    let rest = PAGE_A + 0x1000;
    pt.map_range(
        &mut r.m.mem,
        VirtAddr(rest),
        PhysAddr(rest),
        MAPPED - rest,
        leaf,
    )
    .unwrap();
    let old = r.m.cores[0].cpu.state.cr3;
    twin_frames(&mut r, &[0x0f, 0x22, 0xde], old, pt.cr3(0));
    run_to_halt(&mut r);
    assert_eq!(r.m.cores[0].cpu.state.gpr[RAX], 2);
}

#[test]
fn an_instruction_across_a_page_boundary_sees_a_write_to_its_second_page() {
    let mut r = rig();
    // At 0x700ffd: mov eax, 0x44332211 (its last two bytes on the next page),
    // ret. The caller at 0x700000 calls it, patches a byte on the second page,
    // and calls it again.
    let caller = [
        0x49, 0xb9, 0xfd, 0x0f, 0x70, 0, 0, 0, 0, 0, // mov r9, 0x700ffd
        0x41, 0xff, 0xd1, // call r9
        0x89, 0xc3, // mov ebx, eax
        0xc6, 0x04, 0x25, 0x01, 0x10, 0x70, 0x00, 0x55, // mov byte ptr [0x701001], 0x55
        0x41, 0xff, 0xd1, // call r9
        0xf4, // hlt
    ];
    r.m.mem.write(PhysAddr(PAGE_A), &caller).unwrap();
    r.m.mem
        .write(PhysAddr(PAGE_A + 0xffd), &[0xb8, 0x11, 0x22])
        .unwrap();
    r.m.mem
        .write(PhysAddr(PAGE_A + 0x1000), &[0x33, 0x44, 0xc3])
        .unwrap();
    run_to_halt(&mut r);
    let s = &r.m.cores[0].cpu.state;
    assert_eq!(s.gpr[RBX], 0x4433_2211);
    assert_eq!(s.gpr[RAX], 0x5533_2211);
}
