//! Data transfer, stack, control transfer and flag-control instructions on flat
//! memory: every form, and precise faults (state untouched, RIP at the instruction).

use emu::state::control::{AC, CF, DF, IF, IOPL, NT, OF, PF, RF, SF, TF, VIF, VIP, ZF};
use emu::state::{RAX, RBX, RCX, RDX, RSP};
use emu::{Exception, FlatBus, StepOutcome};
use iced_x86::code_asm::*;
use mmu::PhysAddr;

mod insn_support;
use insn_support::{CODE, STACK};

type M = insn_support::M<FlatBus>;

const NONCANON: u64 = 0x8000_0000_0000_0000;

// --- MOV forms --------------------------------------------------------------

#[test]
fn mov_imm64_and_moffs() {
    // mov rax, imm64; movabs [moffs64], rax; movabs al, [moffs64]
    let mut code = vec![0x48, 0xb8];
    code.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    code.extend_from_slice(&[0x48, 0xa3]);
    code.extend_from_slice(&0x3000u64.to_le_bytes());
    code.extend_from_slice(&[0xa0]);
    code.extend_from_slice(&0x3001u64.to_le_bytes());
    let mut m = M::bytes(&code);
    m.steps(3);
    assert_eq!(m.m64(0x3000), 0x1122_3344_5566_7788);
    assert_eq!(m.r(RAX), 0x1122_3344_5566_7777);
}

#[test]
fn mov_sizes_merge_and_zero_extend() {
    let mut m = M::asm(|a| {
        a.mov(rax, -1i64)?;
        a.mov(al, 0x12)?;
        a.mov(rbx, -1i64)?;
        a.mov(bx, 0x3456)?;
        a.mov(rcx, -1i64)?;
        a.mov(ecx, 0x789a)?;
        a.mov(rdx, -1i64)?;
        a.mov(dh, 0x55)
    });
    m.steps(8);
    assert_eq!(m.r(RAX), 0xffff_ffff_ffff_ff12);
    assert_eq!(m.r(RBX), 0xffff_ffff_ffff_3456);
    assert_eq!(m.r(RCX), 0x789a);
    assert_eq!(m.r(RDX), 0xffff_ffff_ffff_55ff);
}

#[test]
fn mov_segment_registers() {
    let mut m = M::asm(|a| {
        a.mov(eax, 0x18)?;
        a.mov(ds, ax)?;
        a.mov(ecx, -1)?;
        a.mov(ecx, ds)?;
        a.mov(word_ptr(0x3000), ss)?;
        a.mov(eax, 0x10)?;
        a.mov(ss, ax)
    });
    m.steps(6);
    assert_eq!(m.cpu.state.sel[3], 0x18);
    assert_eq!(m.r(RCX), 0x18);
    assert_eq!(m.m64(0x3000) & 0xffff, 0x10);
    m.steps(1);
    assert!(m.cpu.state.interrupt_shadow, "MOV SS opens the shadow");
    // SS with an RPL other than the CPL is #GP(selector).
    let mut m = M::asm(|a| a.mov(ss, ax));
    m.cpu.state.gpr[RAX] = 0x23;
    m.expect_fault(Exception::GeneralProtection(0x20));
}

// --- MOVZX / MOVSX / MOVSXD ------------------------------------------------------

#[test]
fn movzx_movsx_movsxd() {
    let mut m = M::asm(|a| {
        a.mov(rax, 0x8182_8384_8586_8788u64)?;
        a.movzx(rbx, al)?;
        a.movzx(ecx, ax)?;
        a.movsx(rdx, al)?;
        a.movsx(esi, ax)?;
        a.movsx(di, al)?;
        a.movsxd(r8, eax)?;
        a.mov(byte_ptr(0x3000), 0xf0)?;
        a.movsx(r9, byte_ptr(0x3000))?;
        a.movzx(r10d, byte_ptr(0x3000))?;
        a.mov(r11, -1i64)?;
        a.movsx(r11w, byte_ptr(0x3000))
    });
    m.cpu.state.gpr[7] = 0xaaaa_aaaa_aaaa_aaaa;
    m.steps(12);
    assert_eq!(m.r(RBX), 0x88);
    assert_eq!(m.r(RCX), 0x8788);
    assert_eq!(m.r(RDX), 0xffff_ffff_ffff_ff88);
    assert_eq!(m.r(6), 0xffff_8788);
    assert_eq!(m.r(7), 0xaaaa_aaaa_aaaa_ff88);
    assert_eq!(m.r(8), 0xffff_ffff_8586_8788);
    assert_eq!(m.r(9), 0xffff_ffff_ffff_fff0);
    assert_eq!(m.r(10), 0xf0);
    assert_eq!(m.r(11), 0xffff_ffff_ffff_fff0);
}

#[test]
fn movsxd_16_and_32_bit_destinations() {
    // movsxd eax, ecx (63 c1): a 32-bit move, zero-extended.
    // movsxd ax, cx (66 63 c1): a 16-bit move that merges.
    let mut m = M::bytes(&[0x63, 0xc1, 0x66, 0x63, 0xd1]);
    m.cpu.state.gpr[RAX] = u64::MAX;
    m.cpu.state.gpr[RDX] = u64::MAX;
    m.cpu.state.gpr[RCX] = 0xffff_ffff_8000_8001;
    m.steps(2);
    assert_eq!(m.r(RAX), 0x8000_8001);
    assert_eq!(m.r(RDX), 0xffff_ffff_ffff_8001);
}

// --- XCHG ----------------------------------------------------------------------

#[test]
fn xchg_register_and_locked_memory() {
    let mut m = M::asm(|a| {
        a.mov(rax, 1u64)?;
        a.mov(rbx, 2u64)?;
        a.xchg(rax, rbx)?;
        a.mov(qword_ptr(0x3000), 0x77)?;
        a.lock().xchg(qword_ptr(0x3000), rcx)?;
        a.xchg(qword_ptr(0x3008), rdx)?;
        a.mov(rsi, -1i64)?;
        a.xchg(esi, esi)
    });
    m.cpu.state.gpr[RCX] = 0x55;
    m.cpu.state.gpr[RDX] = 0x66;
    m.steps(8);
    assert_eq!((m.r(RAX), m.r(RBX)), (2, 1));
    assert_eq!(m.r(RCX), 0x77);
    assert_eq!(m.m64(0x3000), 0x55);
    assert_eq!(m.m64(0x3008), 0x66);
    assert_eq!(m.r(RDX), 0);
    assert_eq!(m.r(6), 0xffff_ffff, "32-bit xchg zero-extends");
}

#[test]
fn xchg_memory_fault_changes_nothing() {
    let mut m = M::asm(|a| a.xchg(qword_ptr(rbx), rcx));
    m.cpu.state.gpr[RBX] = NONCANON;
    m.cpu.state.gpr[RCX] = 5;
    m.expect_fault(Exception::GeneralProtection(0));
}

// --- SETcc / CMOVcc ----------------------------------------------------------------

#[test]
fn setcc_all_conditions() {
    // (setcc opcode low nibble, flags) -> expected
    let cases: &[(u8, u64, u8)] = &[
        (0x0, OF, 1),
        (0x1, OF, 0),
        (0x2, CF, 1),
        (0x3, CF, 0),
        (0x4, ZF, 1),
        (0x5, ZF, 0),
        (0x6, CF, 1),
        (0x7, 0, 1),
        (0x8, SF, 1),
        (0x9, SF, 0),
        (0xa, PF, 1),
        (0xb, PF, 0),
        (0xc, SF, 1),
        (0xd, SF | OF, 1),
        (0xe, ZF, 1),
        (0xf, SF | OF, 1),
    ];
    for &(cc, fl, want) in cases {
        // setcc [0x3000] / setcc bl
        let mut m = M::bytes(&[
            0x0f,
            0x90 | cc,
            0x04,
            0x25,
            0,
            0x30,
            0,
            0,
            0x0f,
            0x90 | cc,
            0xc3,
        ]);
        m.cpu.state.rflags = 0x2 | fl;
        m.cpu.state.gpr[RBX] = 0xff00;
        m.bus.mem.write(PhysAddr(0x3000), &[0xee]).unwrap();
        m.steps(2);
        assert_eq!(m.m64(0x3000) & 0xff, want as u64, "cc {cc:#x}");
        assert_eq!(m.r(RBX), 0xff00 | want as u64, "cc {cc:#x}");
    }
}

#[test]
fn cmovcc_semantics() {
    let mut m = M::asm(|a| {
        a.mov(rax, -1i64)?;
        a.mov(rbx, 0x1234u64)?;
        a.cmp(rbx, rbx)?; // ZF=1
        a.cmovne(eax, ebx)?; // false, still zero-extends
        a.mov(rcx, -1i64)?;
        a.cmove(rcx, rbx)?;
        a.mov(rdx, -1i64)?;
        a.cmovne(dx, bx)?; // false, 16-bit: unchanged
        a.cmovne(rsi, qword_ptr(0x3000))
    });
    m.set64(0x3000, 9);
    m.cpu.state.gpr[6] = 7;
    m.steps(9);
    assert_eq!(m.r(RAX), 0xffff_ffff);
    assert_eq!(m.r(RCX), 0x1234);
    assert_eq!(m.r(RDX), u64::MAX);
    assert_eq!(m.r(6), 7);
}

#[test]
fn cmov_false_condition_still_faults_on_memory() {
    let mut m = M::asm(|a| a.cmovne(rax, qword_ptr(rbx)));
    m.cpu.state.rflags |= ZF;
    m.cpu.state.gpr[RBX] = NONCANON;
    m.expect_fault(Exception::GeneralProtection(0));
}

// --- CBW family ------------------------------------------------------------------

#[test]
fn accumulator_sign_extensions() {
    let mut m = M::asm(|a| {
        a.mov(rax, 0x1111_2222_3333_4480u64)?;
        a.cbw()?;
        a.mov(rbx, rax)?;
        a.mov(rax, 0x1111_2222_3333_8000u64)?;
        a.cwde()?;
        a.mov(rcx, rax)?;
        a.mov(rax, 0x1111_2222_8000_0000u64)?;
        a.cdqe()?;
        a.mov(rsi, rax)?;
        a.mov(rdx, -1i64)?;
        a.mov(eax, 0x7fff_8000)?;
        a.cwd()?;
        a.mov(rdi, rdx)?;
        a.mov(rdx, -1i64)?;
        a.cdq()?;
        a.mov(r8, rdx)?;
        a.mov(rax, -5i64)?;
        a.cqo()
    });
    m.steps(18);
    assert_eq!(m.r(RBX), 0x1111_2222_3333_ff80);
    assert_eq!(m.r(RCX), 0xffff_8000);
    assert_eq!(m.r(6), 0xffff_ffff_8000_0000);
    assert_eq!(m.r(7), 0xffff_ffff_ffff_ffff);
    assert_eq!(m.r(8), 0);
    assert_eq!(m.r(RDX), u64::MAX);
}

// --- PUSH / POP -----------------------------------------------------------------

#[test]
fn push_pop_forms() {
    let mut m = M::asm(|a| {
        a.mov(rax, 0x1122_3344_5566_7788u64)?;
        a.push(rax)?; // -8
        a.push(ax)?; // -2
        a.pop(bx)?; // +2
        a.push(-2i32)?; // imm8 sign-extended to 64
        a.pop(rcx)?;
        a.push(0x1234_5678i32)?;
        a.pop(rdx)?;
        a.push(qword_ptr(0x3000))?;
        a.pop(qword_ptr(0x3008))?;
        a.push(word_ptr(0x3000))?;
        a.pop(word_ptr(0x3010))?;
        a.push(fs)?;
        a.pop(r8)?;
        a.pop(rsi)
    });
    m.set64(0x3000, 0xdead_beef_cafe_f00d);
    m.cpu.state.gpr[RBX] = 0xffff_ffff_ffff_0000;
    m.cpu.state.sel[4] = 0x33;
    m.steps(15);
    assert_eq!(m.r(RBX), 0xffff_ffff_ffff_7788);
    assert_eq!(m.r(RCX), u64::MAX - 1);
    assert_eq!(m.r(RDX), 0x1234_5678);
    assert_eq!(m.m64(0x3008), 0xdead_beef_cafe_f00d);
    assert_eq!(m.m64(0x3010) & 0xffff, 0xf00d);
    assert_eq!(m.r(8), 0x33);
    assert_eq!(m.r(6), 0x1122_3344_5566_7788);
    assert_eq!(m.r(RSP), STACK);
}

#[test]
fn push_imm16_with_operand_size_prefix() {
    // 66 68 34 12: push imm16, RSP -= 2
    let mut m = M::bytes(&[0x66, 0x68, 0x34, 0x12]);
    m.steps(1);
    assert_eq!(m.r(RSP), STACK - 2);
    assert_eq!(m.m64(STACK - 2) & 0xffff, 0x1234);
}

#[test]
fn push_rsp_pushes_old_value_and_pop_rsp_loads() {
    let mut m = M::asm(|a| {
        a.push(rsp)?;
        a.pop(rsp)
    });
    m.steps(1);
    assert_eq!(m.m64(STACK - 8), STACK);
    m.set64(STACK - 8, 0x5_0000);
    m.steps(1);
    assert_eq!(m.r(RSP), 0x5_0000);
}

#[test]
fn pop_to_rsp_relative_memory_uses_incremented_rsp() {
    let mut m = M::asm(|a| {
        a.push(0x42)?;
        a.pop(qword_ptr(rsp))
    });
    m.steps(2);
    // The address is computed after RSP += 8, i.e. the slot at the old RSP.
    assert_eq!(m.r(RSP), STACK);
    assert_eq!(m.m64(STACK), 0x42);
}

#[test]
fn push_pop_precise_faults_leave_rsp() {
    // Non-canonical stack: #SS(0), RSP unchanged.
    for code in [
        &[0x50u8][..],
        &[0x58],
        &[0x9c],
        &[0x9d],
        &[0xc9],
        &[0x6a, 0x01],
    ] {
        let mut m = M::bytes(code);
        m.cpu.state.gpr[RSP] = NONCANON;
        m.cpu.state.gpr[5] = NONCANON;
        m.expect_fault(Exception::StackFault(0));
    }
    // POP to a non-canonical memory operand: #GP(0), RSP restored.
    let mut m = M::asm(|a| a.pop(qword_ptr(rbx)));
    m.cpu.state.gpr[RBX] = NONCANON;
    m.expect_fault(Exception::GeneralProtection(0));
    // PUSH from a non-canonical memory operand.
    let mut m = M::asm(|a| a.push(qword_ptr(rbx)));
    m.cpu.state.gpr[RBX] = NONCANON;
    m.expect_fault(Exception::GeneralProtection(0));
}

#[test]
fn pushfq_clears_rf_and_vm_in_image() {
    let mut m = M::bytes(&[0x9c]);
    m.cpu.state.rflags = 0x2 | RF | CF | IF;
    m.steps(1);
    assert_eq!(m.m64(STACK - 8), 0x2 | CF | IF);
}

#[test]
fn popfq_privilege_rules() {
    let all = CF | PF | ZF | SF | TF | DF | OF | NT | AC | IF | IOPL | VIP | VIF | RF;
    // CPL 0: everything but RF/VIP/VIF/VM; RF cleared.
    let mut m = M::bytes(&[0x9d]);
    m.set64(STACK, all | (1 << 17));
    m.cpu.state.rflags = 0x2 | RF;
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2 | (all & !(VIP | VIF | RF)));
    assert_eq!(m.r(RSP), STACK + 8);
    // CPL 3, IOPL 0: IF and IOPL kept.
    let mut m = M::bytes(&[0x9d]);
    m.user();
    m.set64(STACK, all);
    m.cpu.state.rflags = 0x2;
    m.steps(1);
    assert_eq!(
        m.cpu.state.rflags,
        0x2 | (all & !(VIP | VIF | RF | IF | IOPL))
    );
    // CPL 3, IOPL 3: IF may change, IOPL still may not.
    let mut m = M::bytes(&[0x9d]);
    m.user();
    m.set64(STACK, CF);
    m.cpu.state.rflags = 0x2 | IOPL | IF;
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2 | IOPL | CF);
}

#[test]
fn leave_restores_frame() {
    let mut m = M::asm(|a| {
        a.push(rbp)?;
        a.mov(rbp, rsp)?;
        a.sub(rsp, 0x40)?;
        a.leave()
    });
    m.cpu.state.gpr[5] = 0x1234;
    m.steps(4);
    assert_eq!(m.r(5), 0x1234);
    assert_eq!(m.r(RSP), STACK);
}

// --- CALL / RET / JMP / Jcc -----------------------------------------------------------

#[test]
fn call_ret_direct_indirect_and_imm16() {
    let mut m = M::asm(|a| {
        let mut f = a.create_label();
        let mut g = a.create_label();
        let mut done = a.create_label();
        a.call(f)?; // 0
        a.lea(rax, ptr(g))?;
        a.call(rax)?; // through a register
        a.mov(qword_ptr(0x3000), rax)?;
        a.call(qword_ptr(0x3000))?; // through memory
        a.push(1)?;
        a.push(2)?;
        a.call(f)?;
        a.jmp(done)?;
        a.set_label(&mut f)?;
        a.add(rbx, 1)?;
        a.ret()?;
        a.set_label(&mut g)?;
        a.add(rcx, 1)?;
        a.ret_1(16)?;
        a.set_label(&mut done)?;
        a.hlt()
    });
    let mut n = 0;
    loop {
        match m.step() {
            StepOutcome::Retired => n += 1,
            StepOutcome::Halted => break,
            o => panic!("{o:?}"),
        }
        assert!(n < 100);
    }
    assert_eq!(m.r(RBX), 2);
    assert_eq!(m.r(RCX), 2);
    // Two `ret 16`s released 32 bytes more than they pushed; the two pushes of
    // immediates account for 16 of them.
    assert_eq!(m.r(RSP), STACK + 16);
}

#[test]
fn call_pushes_return_address() {
    let mut m = M::asm(|a| {
        let mut f = a.create_label();
        a.call(f)?;
        a.nop()?;
        a.set_label(&mut f)?;
        a.nop()
    });
    m.steps(1);
    assert_eq!(m.m64(STACK - 8), CODE + 5);
    assert_eq!(m.cpu.state.rip, CODE + 6);
}

#[test]
fn noncanonical_branch_targets_fault_on_the_branch() {
    for f in [
        (|a: &mut CodeAssembler| a.call(rax)) as fn(&mut CodeAssembler) -> Result<(), IcedError>,
        |a| a.jmp(rax),
        |a| a.call(qword_ptr(0x3000)),
    ] {
        let mut m = M::asm(f);
        m.cpu.state.gpr[RAX] = NONCANON;
        m.set64(0x3000, NONCANON);
        m.expect_fault(Exception::GeneralProtection(0));
        assert_eq!(m.cpu.state.rip, CODE);
    }
    // RET to a non-canonical address: #GP(0), RSP unchanged.
    let mut m = M::bytes(&[0xc3]);
    m.set64(STACK, NONCANON);
    m.expect_fault(Exception::GeneralProtection(0));
    // CALL whose push faults: RIP and RSP unchanged.
    let mut m = M::asm(|a| a.call(rax));
    m.cpu.state.gpr[RAX] = CODE;
    m.cpu.state.gpr[RSP] = NONCANON;
    m.expect_fault(Exception::StackFault(0));
}

#[test]
fn jcc_all_conditions() {
    // (condition nibble, flags, taken)
    let cases: &[(u8, u64, bool)] = &[
        (0x0, OF, true),
        (0x0, 0, false),
        (0x1, 0, true),
        (0x2, CF, true),
        (0x2, 0, false),
        (0x3, 0, true),
        (0x4, ZF, true),
        (0x5, ZF, false),
        (0x6, ZF, true),
        (0x6, 0, false),
        (0x7, 0, true),
        (0x7, CF, false),
        (0x8, SF, true),
        (0x9, SF, false),
        (0xa, PF, true),
        (0xb, PF, false),
        (0xc, OF, true),
        (0xc, SF | OF, false),
        (0xd, SF | OF, true),
        (0xd, SF, false),
        (0xe, ZF, true),
        (0xe, SF, true),
        (0xe, 0, false),
        (0xf, 0, true),
        (0xf, SF | OF | ZF, false),
    ];
    for &(cc, fl, taken) in cases {
        // short form: 7x 10; near form: 0f 8x 10 00 00 00
        for code in [vec![0x70 | cc, 0x10], vec![0x0f, 0x80 | cc, 0x10, 0, 0, 0]] {
            let len = code.len() as u64;
            let mut m = M::bytes(&code);
            m.cpu.state.rflags = 0x2 | fl;
            m.steps(1);
            let want = if taken { CODE + len + 0x10 } else { CODE + len };
            assert_eq!(m.cpu.state.rip, want, "cc {cc:#x} flags {fl:#x}");
        }
    }
}

// --- Flag control --------------------------------------------------------------

#[test]
fn flag_instructions() {
    let mut m = M::asm(|a| {
        a.stc()?;
        a.cmc()?;
        a.cmc()?;
        a.std()?;
        a.cli()?;
        a.sti()
    });
    m.cpu.state.rflags = 0x2 | IF;
    m.steps(4);
    assert_eq!(m.cpu.state.rflags, 0x2 | CF | DF | IF);
    m.steps(1);
    assert_eq!(m.cpu.state.rflags & IF, 0);
    m.steps(1);
    assert_ne!(m.cpu.state.rflags & IF, 0);
    assert!(
        m.cpu.state.interrupt_shadow,
        "STI with IF=0 opens the shadow"
    );
    let mut m = M::asm(|a| {
        a.clc()?;
        a.cld()?;
        a.sti()
    });
    m.cpu.state.rflags = 0x2 | CF | DF | IF;
    m.steps(3);
    assert_eq!(m.cpu.state.rflags, 0x2 | IF);
    assert!(
        !m.cpu.state.interrupt_shadow,
        "STI with IF=1 opens no shadow"
    );
}

#[test]
fn cli_sti_need_cpl_le_iopl() {
    for code in [[0xfa], [0xfb]] {
        let mut m = M::bytes(&code);
        m.user();
        m.expect_fault(Exception::GeneralProtection(0));
        let mut m = M::bytes(&code);
        m.user();
        m.cpu.state.rflags |= IOPL;
        m.steps(1);
    }
}

// --- Encodings that must not be silently mis-executed -------------------------------

#[test]
fn invalid_lock_and_mov_cs_are_ud() {
    // lock mov ebx, eax; mov cs, ax; lock xchg rax, rbx (LOCK needs a memory operand).
    for code in [
        &[0xf0, 0x89, 0xc3][..],
        &[0x8e, 0xc8],
        &[0xf0, 0x48, 0x87, 0xc3],
    ] {
        let mut m = M::bytes(code);
        m.expect_fault(Exception::InvalidOpcode);
        assert_eq!(m.cpu.state.rip, CODE);
    }
}

#[test]
fn unmodelled_forms_are_errors_not_guesses() {
    // mov rax, dr7; far jmp [rax]; far call [rax]. (66 c3 decodes as a 64-bit RET,
    // as on Intel parts, which ignore the prefix for near branches.)
    for code in [&[0x0f, 0x21, 0xf8][..], &[0xff, 0x28], &[0x48, 0xff, 0x18]] {
        let mut m = M::bytes(code);
        let before = m.cpu.state.clone();
        let err = m.cpu.step(&mut m.cache, &mut m.bus).unwrap_err();
        assert!(matches!(err, emu::EmuError::Unsupported { .. }), "{err}");
        assert_eq!(m.cpu.state, before);
    }
}
