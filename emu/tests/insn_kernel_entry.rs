//! The instructions of kernel entry and exit, checked against the SDM's rules:
//! STAC/CLAC (and their interplay with SMAP on the machine), SYSCALL/SYSRET with
//! their MSRs set through WRMSR, IRET/IRETD (16- and 32-bit operand sizes), the
//! 16-bit PUSHF/POPF, WBINVD/INVD, CLFLUSH/CLFLUSHOPT and RDPID. The user-level ones
//! are also checked against the host CPU in `differential.rs`.

mod insn_support;
mod machine_support;

use emu::state::control::*;
use emu::state::msr;
use emu::state::{Seg, RAX, RCX, RDX, RSP};
use emu::{CpuFeatures, EmuError, Exception, FlatBus, StepOutcome, StepResult};
use iced_x86::code_asm::*;
use insn_support::STACK;
use machine_support::{Opts, Rig, IDT, VA_NP, VA_X};
use mmu::{pte, PhysAddr, VirtAddr};

/// One core on flat memory.
type M = insn_support::M<FlatBus>;

const NONCANON: u64 = 0x8000_0000_0000_0000;
const R11: usize = 11;
const GP0: Exception = Exception::GeneralProtection(0);
const UD: Exception = Exception::InvalidOpcode;

// --- STAC / CLAC -----------------------------------------------------------------

#[test]
fn stac_sets_and_clac_clears_ac_only() {
    let mut m = M::asm(|a| {
        a.stac()?;
        a.clac()
    });
    m.cpu.state.rflags = 0x2 | CF | ZF | IF;
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2 | CF | ZF | IF | AC);
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2 | CF | ZF | IF);
}

#[test]
fn stac_clac_are_ud_at_cpl3_and_without_smap() {
    for code in [[0x0f, 0x01, 0xcb], [0x0f, 0x01, 0xca]] {
        // CPL 3, even with IOPL 3 (unlike CLI/STI, IOPL does not matter).
        let mut m = M::bytes(&code);
        m.user();
        m.cpu.state.rflags |= IOPL;
        m.expect_fault(UD);
        // CPUID.(EAX=07H,ECX=0):EBX.SMAP = 0.
        let no_smap = CpuFeatures {
            smap: false,
            ..CpuFeatures::default()
        };
        let mut m = M::bytes_with(no_smap, &code);
        m.expect_fault(UD);
    }
}

/// A one-core machine at CPL 0 with CR4.SMAP=1 whose pages are supervisor pages
/// except those of `user_pages`, with `src` at CODE and a #PF handler.
fn smap_rig(src: &str, user_pages: &[u64]) -> Rig {
    let mut r = Rig::new(
        Opts {
            cores: 1,
            user: false,
            idt: true,
        },
        &format!("{src}\npf:\nhlt\n"),
    );
    for &va in user_pages {
        let e = r.pt.entry_addr(&r.m.mem, VirtAddr(va), 1).unwrap();
        let v = r.m.mem.read_u64(e).unwrap();
        r.m.mem.write_u64(e, v | pte::US).unwrap();
    }
    r.intr_gate(14, "pf");
    r.m.cores[0].cpu.state.cr4 |= CR4_SMAP;
    r
}

/// The #PF an SMAP violation raises: P=1 (the page is present), a supervisor read.
const SMAP_READ_PF: StepResult = StepResult::Exception(Exception::PageFault {
    addr: VA_X,
    code: 1,
});

#[test]
fn smap_explicit_supervisor_access_to_a_user_page_needs_ac() {
    // AC=0: the read faults and does not happen.
    let mut r = smap_rig("mov rax, qword ptr [VA_X]", &[VA_X]);
    r.m.mem.write_u64(PhysAddr(VA_X), 0x55).unwrap();
    assert_eq!(r.step(0), SMAP_READ_PF);
    assert_eq!(r.m.cores[0].cpu.state.cr2, VA_X);
    assert_eq!(
        r.m.cores[0].cpu.state.gpr[RAX], 0,
        "the load did not happen"
    );
    // STAC: the read, the write and CLFLUSH go through; after CLAC the read
    // faults again.
    let mut r = smap_rig(
        "
        stac
        mov rax, qword ptr [VA_X]
        mov qword ptr [VA_X], rbx
        clflush byte ptr [VA_X]
        clac
        mov rax, qword ptr [VA_X]
        ",
        &[VA_X],
    );
    r.m.mem.write_u64(PhysAddr(VA_X), 0x55).unwrap();
    r.m.cores[0].cpu.state.gpr[3] = 0x66;
    r.retire(0, 4);
    assert_eq!(r.m.cores[0].cpu.state.gpr[RAX], 0x55);
    assert_eq!(r.peek(VA_X), 0x66);
    assert_ne!(r.m.cores[0].cpu.state.rflags & AC, 0);
    r.retire(0, 1);
    assert_eq!(r.m.cores[0].cpu.state.rflags & AC, 0);
    assert_eq!(r.step(0), SMAP_READ_PF);
}

#[test]
fn smap_implicit_supervisor_accesses_ignore_ac() {
    // The IDT sits on a user page. Delivering INT3 reads it with an implicit
    // supervisor access, which SMAP forbids whatever AC says: the #PF that follows
    // cannot be delivered either, and the core ends in a triple fault. Without
    // SMAP the same INT3 reaches its handler.
    for smap in [true, false] {
        let mut r = smap_rig("stac\nint3\nbrk:\nhlt", &[IDT]);
        if !smap {
            r.m.cores[0].cpu.state.cr4 &= !CR4_SMAP;
        }
        r.intr_gate(3, "brk");
        r.intr_gate(8, "brk");
        r.retire(0, 1);
        assert_ne!(r.m.cores[0].cpu.state.rflags & AC, 0);
        let out = r.step(0);
        if smap {
            assert!(matches!(out, StepResult::Stopped(_)), "{out:?}");
        } else {
            assert_eq!(out, StepResult::Exception(Exception::Breakpoint));
            assert_eq!(r.m.cores[0].cpu.state.rip, r.at("brk"));
        }
    }
}

// --- SYSCALL / SYSRET ------------------------------------------------------------

/// IA32_STAR of a Linux-like layout: SYSCALL CS 0x08 / SS 0x10; SYSRET base 0x18,
/// so SYSRETQ loads CS 0x2b and SS 0x23.
const STAR: u64 = 0x0018_0008 << 32;
const LSTAR: u64 = 0x20_0000;
const USER_RIP: u64 = 0x40_0000;

#[test]
fn syscall_sysret_round_trip_with_msrs_set_by_wrmsr() {
    // Kernel: WRMSR STAR, LSTAR, FMASK; then SYSRETQ to user code at RCX with the
    // flags in R11. User: SYSCALL. Kernel entry at LSTAR: SYSRETQ back.
    let wr = |a: &mut CodeAssembler, index: u32, v: u64| -> Result<(), IcedError> {
        a.mov(ecx, index)?;
        a.mov(eax, v as u32)?;
        a.mov(edx, (v >> 32) as u32)?;
        a.wrmsr()
    };
    let mut m = M::asm(|a| {
        wr(a, msr::IA32_STAR, STAR)?;
        wr(a, msr::IA32_LSTAR, LSTAR)?;
        wr(a, msr::IA32_FMASK, IF | DF | TF | AC)?;
        a.mov(rcx, USER_RIP)?;
        a.mov(r11, 0x2 | IF | CF | RF | VM | AC)?;
        a.sysretq()
    });
    m.set(USER_RIP, &[0x0f, 0x05, 0xf4]); // syscall; hlt
    m.set(LSTAR, &[0x48, 0x0f, 0x07]); // sysretq
    m.cpu.state.gpr[RSP] = 0x7000;
    m.steps(4 * 3 + 3);
    let s = &m.cpu.state;
    assert_eq!((s.star, s.lstar, s.fmask), (STAR, LSTAR, IF | DF | TF | AC));
    // SYSRETQ: CPL 3, RFLAGS from R11 without RF and VM, RSP untouched.
    assert_eq!(s.rip, USER_RIP);
    assert_eq!(
        (s.sel[Seg::Cs as usize], s.sel[Seg::Ss as usize]),
        (0x2b, 0x23)
    );
    assert_eq!(s.cpl(), 3);
    assert_eq!(s.rflags, 0x2 | IF | CF | AC);
    assert_eq!(s.gpr[RSP], 0x7000);
    // SYSCALL from user: RCX = next RIP, R11 = RFLAGS, RFLAGS masked by FMASK,
    // CS/SS from STAR[47:32], CPL 0, RSP untouched.
    m.cpu.state.rflags |= DF;
    m.steps(1);
    let s = &m.cpu.state;
    assert_eq!(s.rip, LSTAR);
    assert_eq!(s.gpr[RCX], USER_RIP + 2);
    assert_eq!(s.gpr[R11], 0x2 | IF | CF | AC | DF);
    assert_eq!(s.rflags, 0x2 | CF);
    assert_eq!(
        (s.sel[Seg::Cs as usize], s.sel[Seg::Ss as usize]),
        (0x08, 0x10)
    );
    assert_eq!(s.cpl(), 0);
    assert_eq!(s.gpr[RSP], 0x7000);
    // SYSRETQ from the entry point returns after the SYSCALL with the user flags.
    m.steps(1);
    let s = &m.cpu.state;
    assert_eq!(s.rip, USER_RIP + 2);
    assert_eq!(s.cpl(), 3);
    assert_eq!(s.rflags, 0x2 | IF | CF | AC | DF);
    // HLT at CPL 3 is #GP(0): we really are in user mode.
    m.expect_fault(GP0);
}

#[test]
fn syscall_and_sysret_are_ud_with_efer_sce_clear() {
    for code in [&[0x0f, 0x05][..], &[0x48, 0x0f, 0x07]] {
        let mut m = M::bytes(code);
        m.cpu.state.efer &= !EFER_SCE;
        m.expect_fault(UD);
        let mut m = M::bytes(code);
        m.cpu.state.efer &= !EFER_SCE;
        m.user();
        m.expect_fault(UD);
    }
}

#[test]
fn sysret_faults_before_changing_anything() {
    // At CPL 3: #GP(0).
    let mut m = M::bytes(&[0x48, 0x0f, 0x07]);
    m.user();
    m.cpu.state.gpr[RCX] = USER_RIP;
    m.expect_fault(GP0);
    // A non-canonical RCX: #GP(0), still at CPL 0 with the kernel's selectors.
    let mut m = M::bytes(&[0x48, 0x0f, 0x07]);
    m.cpu.state.star = STAR;
    m.cpu.state.gpr[RCX] = 0x0000_8000_0000_0000;
    m.expect_fault(GP0);
    assert_eq!(m.cpu.state.cpl(), 0);
    // SYSRET with a 32-bit operand size would enter compatibility mode: an
    // explicit unsupported-instruction error, not a guess.
    let mut m = M::bytes(&[0x0f, 0x07]);
    m.cpu.state.gpr[RCX] = USER_RIP;
    let before = m.cpu.state.clone();
    let err = m.cpu.step(&mut m.cache, &mut m.bus).unwrap_err();
    assert!(
        matches!(&err, EmuError::Unsupported { mnemonic, .. } if mnemonic == "sysret"),
        "{err}"
    );
    assert_eq!(m.cpu.state, before);
}

#[test]
fn sysret_loads_rflags_from_r11_without_rf_and_vm() {
    let mut m = M::bytes(&[0x48, 0x0f, 0x07]);
    m.cpu.state.gpr[RCX] = 0xffff_8000_0000_1000; // canonical (upper half)
    m.cpu.state.gpr[R11] = u64::MAX;
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x3c_7fd7 | 0x2);
    assert_eq!(m.cpu.state.rflags & (RF | VM), 0);
    assert_eq!(m.cpu.state.rip, 0xffff_8000_0000_1000);
}

#[test]
fn syscall_at_cpl0_keeps_the_stack_and_writes_no_memory() {
    let mut m = M::bytes(&[0x0f, 0x05]);
    m.cpu.state.lstar = LSTAR;
    m.cpu.state.star = STAR;
    m.cpu.state.fmask = 0xffff_ffff; // clears every flag but bit 1
    m.cpu.state.rflags = 0x2 | IF | ZF;
    let mem_before = m.m64(STACK - 8);
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2);
    assert_eq!(m.cpu.state.gpr[R11], 0x2 | IF | ZF);
    assert_eq!(m.cpu.state.gpr[RSP], STACK);
    assert_eq!(m.m64(STACK - 8), mem_before);
}

#[test]
fn syscall_msrs_follow_wrmsr_rules() {
    let wrmsr = |index: u32, v: u64| {
        let mut m = M::bytes(&[0x0f, 0x30, 0x0f, 0x32]);
        m.cpu.state.gpr[RCX] = index as u64;
        m.cpu.state.gpr[RAX] = v & 0xffff_ffff;
        m.cpu.state.gpr[RDX] = v >> 32;
        let o = m.step();
        if o == StepOutcome::Retired {
            m.cpu.state.gpr[RAX] = 0;
            m.cpu.state.gpr[RDX] = 0;
            m.steps(1);
            let back = (m.cpu.state.gpr[RDX] << 32) | m.cpu.state.gpr[RAX];
            assert_eq!(back, v, "MSR {index:#x} reads back");
        }
        o
    };
    assert_eq!(wrmsr(msr::IA32_STAR, u64::MAX), StepOutcome::Retired);
    assert_eq!(
        wrmsr(msr::IA32_LSTAR, 0xffff_8000_0000_0000),
        StepOutcome::Retired
    );
    assert_eq!(
        wrmsr(msr::IA32_LSTAR, 0x0000_8000_0000_0000),
        StepOutcome::Exception(GP0)
    );
    assert_eq!(wrmsr(msr::IA32_FMASK, 0xffff_ffff), StepOutcome::Retired);
    assert_eq!(wrmsr(msr::IA32_FMASK, 1 << 32), StepOutcome::Exception(GP0));
    // IA32_CSTAR (compatibility-mode entry) does not exist on Intel parts.
    assert_eq!(wrmsr(0xc000_0083, 0), StepOutcome::Exception(GP0));
}

// --- IRET / IRETD ----------------------------------------------------------------

/// Writes a five-slot frame of `size`-byte slots at RSP.
fn frame(m: &mut M, size: usize, slots: [u64; 5]) {
    let mut b = Vec::new();
    for v in slots {
        b.extend_from_slice(&v.to_le_bytes()[..size]);
    }
    let top = m.cpu.state.gpr[RSP];
    m.set(top, &b);
}

#[test]
fn iretd_pops_four_byte_slots_to_cpl3() {
    let mut m = M::bytes(&[0xcf]);
    // Upper bytes of each slot hold garbage that a 4-byte pop must not see.
    frame(
        &mut m,
        8,
        [
            0xdead_0000_0040_0000,
            0xdead_0000_0000_002b,
            0xdead_0000_0000_0202,
            0xdead_0000_0000_7ff0,
            0xdead_0000_0000_0023,
        ],
    );
    let mut m2 = M::bytes(&[0xcf]);
    frame(
        &mut m2,
        4,
        [0x40_0000, 0x2b, 0x2 | IF | AC | CF, 0x7ff0, 0x23],
    );
    m2.steps(1);
    let s = &m2.cpu.state;
    assert_eq!(s.rip, 0x40_0000);
    assert_eq!(s.cpl(), 3);
    assert_eq!(s.sel[Seg::Ss as usize], 0x23);
    assert_eq!(s.gpr[RSP], 0x7ff0);
    assert_eq!(s.rflags, 0x2 | IF | AC | CF);
    // An IRETQ-shaped frame under IRETD: the second 4-byte slot (the upper half
    // of the 8-byte RIP slot) is taken as CS, here a null selector: #GP(0).
    m.expect_fault(GP0);
}

#[test]
fn iretw_pops_two_byte_slots_and_changes_flags_15_0_only() {
    let mut m = M::bytes(&[0x66, 0xcf]);
    frame(&mut m, 2, [0x1234, 0x08, 0x2 | ZF | IOPL, 0x6ff0, 0x10]);
    m.cpu.state.rflags = 0x2 | AC | ID | IF | CF;
    m.steps(1);
    let s = &m.cpu.state;
    assert_eq!(s.rip, 0x1234, "IP zero-extended");
    assert_eq!(s.gpr[RSP], 0x6ff0, "SP zero-extended");
    assert_eq!(s.cpl(), 0);
    // Bits 15:0 from the image (IF cleared, IOPL loaded at CPL 0); AC, ID kept.
    assert_eq!(s.rflags, 0x2 | ZF | IOPL | AC | ID);
}

#[test]
fn iret_narrow_forms_fault_like_iretq() {
    for (code, size) in [(&[0xcf][..], 4usize), (&[0x66, 0xcf], 2)] {
        // To an inner level from CPL 3: #GP(CS).
        let mut m = M::bytes(code);
        m.user();
        frame(&mut m, size, [0x40_00, 0x08, 2, 0x7000, 0x10]);
        m.expect_fault(Exception::GeneralProtection(0x08));
        // NT=1 in IA-32e mode.
        let mut m = M::bytes(code);
        frame(&mut m, size, [0x40_00, 0x08, 2, 0x7000, 0x10]);
        m.cpu.state.rflags |= NT;
        m.expect_fault(GP0);
        // SS RPL differs from the new CPL: #GP(SS).
        let mut m = M::bytes(code);
        frame(&mut m, size, [0x40_00, 0x2b, 2, 0x7000, 0x10]);
        m.expect_fault(Exception::GeneralProtection(0x10));
        // A non-canonical stack: #SS(0).
        let mut m = M::bytes(code);
        m.cpu.state.gpr[RSP] = NONCANON;
        m.expect_fault(Exception::StackFault(0));
    }
}

// --- 16-bit PUSHF / POPF ---------------------------------------------------------

#[test]
fn pushfw_pushes_the_low_16_bits() {
    let mut m = M::bytes(&[0x66, 0x9c]);
    m.cpu.state.rflags = 0x2 | AC | ID | RF | NT | IOPL | IF | OF | CF;
    m.set(STACK - 8, &[0xaa; 8]);
    m.steps(1);
    assert_eq!(m.cpu.state.gpr[RSP], STACK - 2);
    assert_eq!(
        m.m64(STACK - 8),
        0x0000_aaaa_aaaa_aaaa | ((0x2 | NT | IOPL | IF | OF | CF) << 48)
    );
}

#[test]
fn popfw_follows_cpl_and_iopl_and_keeps_the_upper_bits() {
    let image = 0xffffu64; // every bit of FLAGS set, TF too
                           // CPL 0: every defined flag of 15:0; AC, ID, RF above bit 15 unchanged.
    let mut m = M::bytes(&[0x66, 0x9d]);
    m.set(STACK, &(image as u16).to_le_bytes());
    m.cpu.state.rflags = 0x2 | AC | RF;
    m.steps(1);
    assert_eq!(m.cpu.state.gpr[RSP], STACK + 2);
    let flags15 = CF | PF | AF | ZF | SF | TF | IF | DF | OF | IOPL | NT;
    assert_eq!(m.cpu.state.rflags, 0x2 | flags15 | AC | RF);
    // CPL 3, IOPL 0: IF and IOPL keep their values.
    let mut m = M::bytes(&[0x66, 0x9d]);
    m.set(STACK, &(image as u16).to_le_bytes());
    m.user();
    m.cpu.state.rflags = 0x2;
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2 | (flags15 & !(IF | IOPL)));
    // CPL 3, IOPL 3: IF may change, IOPL still may not.
    let mut m = M::bytes(&[0x66, 0x9d]);
    m.set(STACK, &0u16.to_le_bytes());
    m.user();
    m.cpu.state.rflags = 0x2 | IOPL | IF;
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2 | IOPL);
    // A non-canonical stack: #SS(0).
    let mut m = M::bytes(&[0x66, 0x9d]);
    m.cpu.state.gpr[RSP] = NONCANON;
    m.expect_fault(Exception::StackFault(0));
}

// --- WBINVD / INVD / CLFLUSH / CLFLUSHOPT ----------------------------------------

#[test]
fn wbinvd_and_invd_are_privileged_and_change_nothing() {
    for code in [[0x0f, 0x09], [0x0f, 0x08]] {
        let mut m = M::bytes(&code);
        m.expect_no_effect();
        let mut m = M::bytes(&code);
        m.user();
        m.expect_fault(GP0);
    }
}

#[test]
fn clflush_checks_the_address_like_a_byte_load_at_any_cpl() {
    // clflush [rax]; clflushopt [rax]; clflush [rsp]
    for code in [&[0x0f, 0xae, 0x38][..], &[0x66, 0x0f, 0xae, 0x38]] {
        let mut m = M::bytes(code);
        m.user();
        m.cpu.state.gpr[RAX] = 0x3000;
        m.expect_no_effect();
        let mut m = M::bytes(code);
        m.cpu.state.gpr[RAX] = NONCANON;
        m.expect_fault(GP0);
    }
    let mut m = M::bytes(&[0x0f, 0xae, 0x3c, 0x24]);
    m.cpu.state.gpr[RSP] = NONCANON;
    m.expect_fault(Exception::StackFault(0));
}

#[test]
fn clflush_of_a_not_present_page_is_a_read_page_fault() {
    for src in [
        "clflush byte ptr [VA_NP]\nhlt",
        "clflushopt byte ptr [VA_NP]\nhlt",
    ] {
        let mut r = Rig::new(
            Opts {
                cores: 1,
                user: false,
                idt: true,
            },
            &format!("{src}\npf:\nhlt"),
        );
        r.intr_gate(14, "pf");
        assert_eq!(
            r.step(0),
            StepResult::Exception(Exception::PageFault {
                addr: VA_NP,
                code: 0
            }),
            "{src}"
        );
        assert_eq!(r.m.cores[0].cpu.state.cr2, VA_NP);
    }
}

// --- RDPID -----------------------------------------------------------------------

#[test]
fn rdpid_reads_tsc_aux_at_any_cpl_even_with_tsd() {
    // rdpid rax; rdpid r8
    let mut m = M::bytes(&[0xf3, 0x0f, 0xc7, 0xf8, 0xf3, 0x41, 0x0f, 0xc7, 0xf8]);
    m.cpu.state.tsc_aux = 0x8000_0003;
    m.cpu.state.gpr[RAX] = u64::MAX;
    m.cpu.state.gpr[8] = u64::MAX;
    m.cpu.state.cr4 |= CR4_TSD;
    m.user();
    let flags = m.cpu.state.rflags;
    m.steps(2);
    assert_eq!(m.cpu.state.gpr[RAX], 0x8000_0003);
    assert_eq!(m.cpu.state.gpr[8], 0x8000_0003);
    assert_eq!(m.cpu.state.rflags, flags);
}

#[test]
fn cpuid_reports_what_these_instructions_need() {
    let leaf = |l: u32| {
        let mut m = M::asm(|a| a.cpuid());
        m.cpu.state.gpr[RAX] = l as u64;
        m.cpu.state.gpr[RCX] = 0;
        m.steps(1);
        let s = &m.cpu.state;
        [s.gpr[RAX], s.gpr[3], s.gpr[RCX], s.gpr[RDX]]
    };
    assert_ne!(leaf(1)[3] & 1 << 19, 0, "CLFSH");
    assert_eq!(
        (leaf(1)[1] >> 8) & 0xff,
        8,
        "CLFLUSH line size, in 8-byte units"
    );
    assert_ne!(leaf(7)[1] & 1 << 20, 0, "SMAP");
    assert_ne!(leaf(7)[1] & 1 << 23, 0, "CLFLUSHOPT");
    assert_ne!(leaf(7)[2] & 1 << 22, 0, "RDPID");
    assert_ne!(leaf(0x8000_0001)[3] & 1 << 11, 0, "SYSCALL");
    assert_ne!(leaf(0x8000_0001)[3] & 1 << 27, 0, "RDTSCP");
}
