//! Exact results and flags of the add/subtract and multiply/divide families, one
//! instruction at a time on flat memory: INC DEC NEG XADD CMPXCHG CMPXCHG8B
//! CMPXCHG16B NOT MUL IMUL DIV IDIV, LOCK'd forms and the faults they raise.

use emu::state::{RAX, RBX, RCX, RDX};
use emu::{Bus, Cpu, CpuFeatures, DecodeCache, Exception, FlatBus, StepOutcome};
use iced_x86::code_asm::*;
use mmu::PhysAddr;

mod insn_support;
use insn_support::*;

/// One core after exactly one step.
struct Run {
    cpu: Cpu,
    bus: FlatBus,
    out: StepOutcome,
}

impl Run {
    fn gpr(&self, i: usize) -> u64 {
        self.cpu.state.gpr[i]
    }
    fn flags(&self, which: u64) -> u64 {
        self.cpu.state.rflags & which
    }
    fn mem(&mut self, at: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.bus.phys_mem().read(PhysAddr(at), &mut b).unwrap();
        b
    }
    fn mem64(&mut self, at: u64) -> u64 {
        self.bus.phys_mem().read_u64(PhysAddr(at)).unwrap()
    }
    /// The step retired and RIP moved past the instruction.
    fn retired(&self, code: &[u8]) {
        assert_eq!(self.out, StepOutcome::Retired);
        assert_eq!(self.cpu.state.rip, CODE + code.len() as u64);
    }
}

/// Runs `code` for one step with the given registers, status flags and memory.
fn step(code: &[u8], regs: &[(usize, u64)], flags: u64, mem: &[(u64, &[u8])]) -> Run {
    let mut bus = FlatBus::new(16 << 20);
    bus.mem.write(PhysAddr(CODE), code).unwrap();
    for (at, bytes) in mem {
        bus.mem.write(PhysAddr(*at), bytes).unwrap();
    }
    let mut cpu = Cpu::new(0, CpuFeatures::default());
    cpu.state.rip = CODE;
    cpu.state.rflags = 0x2 | flags;
    for &(i, v) in regs {
        cpu.state.gpr[i] = v;
    }
    let out = cpu.step(&mut DecodeCache::new(), &mut bus).unwrap();
    Run { cpu, bus, out }
}

/// Asserts that the step raised `e` with RIP, registers, flags and `mem` unchanged.
fn faulted(code: &[u8], regs: &[(usize, u64)], flags: u64, mem: &[(u64, &[u8])], e: Exception) {
    let mut r = step(code, regs, flags, mem);
    assert_eq!(r.out, StepOutcome::Exception(e));
    assert_eq!(
        r.cpu.state.rip, CODE,
        "RIP must stay at the faulting instruction"
    );
    let mut expect = [0u64; 16];
    for &(i, v) in regs {
        expect[i] = v;
    }
    assert_eq!(
        r.cpu.state.gpr, expect,
        "registers changed by a faulting instruction"
    );
    assert_eq!(r.cpu.state.rflags, 0x2 | flags);
    for (at, bytes) in mem {
        assert_eq!(&r.mem(*at, bytes.len()), bytes, "memory changed at {at:#x}");
    }
}

#[test]
fn inc_dec_set_of_at_the_sign_boundary_and_keep_cf() {
    let c = asm1(|a| a.inc(al));
    let r = step(&c, &[(RAX, 0x7f)], CF, &[]);
    r.retired(&c);
    assert_eq!(r.gpr(RAX), 0x80);
    assert_eq!(r.flags(STATUS), CF | OF | SF | AF);

    let c = asm1(|a| a.dec(ax));
    let r = step(&c, &[(RAX, 0x1111_8000)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0x1111_7fff);
    assert_eq!(r.flags(STATUS), OF | AF | PF);

    // 32-bit INC wraps to 0 and zero-extends; CF stays clear even though it carried.
    let c = asm1(|a| a.inc(eax));
    let r = step(&c, &[(RAX, u64::MAX)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0);
    assert_eq!(r.flags(STATUS), ZF | PF | AF);

    let c = asm1(|a| a.inc(qword_ptr(DATA)));
    let mut r = step(&c, &[], CF, &[(DATA, &u64::MAX.to_le_bytes())]);
    assert_eq!(r.mem64(DATA), 0);
    assert_eq!(r.flags(STATUS), CF | ZF | PF | AF);

    let c = asm1(|a| a.dec(byte_ptr(DATA)));
    let mut r = step(&c, &[], 0, &[(DATA, &[0, 0x55])]);
    assert_eq!(r.mem(DATA, 2), [0xff, 0x55]);
    assert_eq!(r.flags(STATUS), SF | AF | PF);
}

#[test]
fn neg_sets_cf_unless_zero() {
    let c = asm1(|a| a.neg(al));
    let r = step(&c, &[(RAX, 0x100)], CF, &[]);
    assert_eq!(r.gpr(RAX), 0x100);
    assert_eq!(r.flags(STATUS), ZF | PF);

    let r = step(&c, &[(RAX, 0x80)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0x80);
    assert_eq!(r.flags(STATUS), CF | OF | SF);

    let c = asm1(|a| a.neg(rcx));
    let r = step(&c, &[(RCX, 1)], 0, &[]);
    assert_eq!(r.gpr(RCX), u64::MAX);
    assert_eq!(r.flags(STATUS), CF | SF | AF | PF);

    let c = asm1(|a| a.neg(word_ptr(DATA)));
    let mut r = step(&c, &[], 0, &[(DATA, &[0x01, 0x80, 0x77])]);
    assert_eq!(r.mem(DATA, 3), [0xff, 0x7f, 0x77]);
    assert_eq!(r.flags(STATUS), CF | AF | PF);
}

#[test]
fn xadd_exchanges_then_adds() {
    let c = asm1(|a| a.xadd(dword_ptr(DATA), ecx));
    let mut r = step(
        &c,
        &[(RCX, 0xffff_ffff_0000_0001)],
        0,
        &[(DATA, &0xffff_ffffu32.to_le_bytes())],
    );
    r.retired(&c);
    assert_eq!(r.mem64(DATA), 0);
    assert_eq!(r.gpr(RCX), 0xffff_ffff, "32-bit source write zero-extends");
    assert_eq!(r.flags(STATUS), CF | ZF | PF | AF);

    // Same register twice: the sum wins (DEST is assigned last).
    let c = asm1(|a| a.xadd(rax, rax));
    let r = step(&c, &[(RAX, 5)], 0, &[]);
    assert_eq!(r.gpr(RAX), 10);

    // AL and AH alias one 64-bit register.
    let c = asm1(|a| a.xadd(al, ah));
    let r = step(&c, &[(RAX, 0x0302)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0x0205);
}

#[test]
fn cmpxchg_register_forms_zero_extend_only_what_they_write() {
    // Failure: EAX := DEST (RAX zero-extended), the destination is not written.
    let c = asm1(|a| a.cmpxchg(ecx, edx));
    let regs = [
        (RAX, 0xaaaa_aaaa_0000_0001),
        (RCX, 0xbbbb_bbbb_0000_0002),
        (RDX, 0xcccc_cccc_1234_5678),
    ];
    let r = step(&c, &regs, 0, &[]);
    assert_eq!(r.gpr(RAX), 2);
    assert_eq!(r.gpr(RCX), 0xbbbb_bbbb_0000_0002);
    assert_eq!(r.flags(STATUS), CF | SF | AF | PF);

    // Success: DEST := SRC (zero-extended), RAX untouched.
    let regs = [
        (RAX, 0xaaaa_aaaa_0000_0002),
        (RCX, 0xbbbb_bbbb_0000_0002),
        (RDX, 0xcccc_cccc_1234_5678),
    ];
    let r = step(&c, &regs, 0, &[]);
    assert_eq!(r.gpr(RAX), 0xaaaa_aaaa_0000_0002);
    assert_eq!(r.gpr(RCX), 0x1234_5678);
    assert_eq!(r.flags(STATUS), ZF | PF);

    let c = asm1(|a| a.cmpxchg(bl, cl));
    let r = step(&c, &[(RAX, 0x1111), (RBX, 0x2211), (RCX, 0x99)], 0, &[]);
    assert_eq!(r.gpr(RBX), 0x2299);
    assert_eq!(r.gpr(RAX), 0x1111);
    let r = step(&c, &[(RAX, 0x1110), (RBX, 0x2211), (RCX, 0x99)], 0, &[]);
    assert_eq!((r.gpr(RAX), r.gpr(RBX)), (0x1111, 0x2211));
}

#[test]
fn cmpxchg_memory_success_and_failure() {
    let c = asm1(|a| a.cmpxchg(qword_ptr(DATA), rcx));
    let mut r = step(&c, &[(RAX, 7), (RCX, 9)], 0, &[(DATA, &7u64.to_le_bytes())]);
    assert_eq!(r.mem64(DATA), 9);
    assert_eq!(r.flags(ZF), ZF);
    let mut r = step(&c, &[(RAX, 6), (RCX, 9)], 0, &[(DATA, &7u64.to_le_bytes())]);
    assert_eq!(r.mem64(DATA), 7);
    assert_eq!(r.gpr(RAX), 7);
    assert_eq!(r.flags(STATUS), CF | SF | AF | PF);

    let c = asm1(|a| a.cmpxchg(word_ptr(DATA), dx));
    let mut r = step(
        &c,
        &[(RAX, 0xffff_0000_0000_1234), (RDX, 0xabcd)],
        0,
        &[(DATA, &[0x34, 0x12, 0xee])],
    );
    assert_eq!(r.mem(DATA, 3), [0xcd, 0xab, 0xee]);
    assert_eq!(r.gpr(RAX), 0xffff_0000_0000_1234);
}

#[test]
fn cmpxchg8b_compares_edx_eax_and_changes_only_zf() {
    let c = asm1(|a| a.cmpxchg8b(qword_ptr(DATA)));
    let m = 0x1111_2222_3333_4444u64;
    let hi = 0xdead_0000_0000_0000;
    let regs = [
        (RAX, hi | 0x3333_4444),
        (RDX, hi | 0x1111_2222),
        (RBX, hi | 0x5555_6666),
        (RCX, hi | 0x7777_8888),
    ];
    let mut r = step(&c, &regs, CF | SF, &[(DATA, &m.to_le_bytes())]);
    r.retired(&c);
    assert_eq!(r.mem64(DATA), 0x7777_8888_5555_6666);
    assert_eq!(r.flags(STATUS), CF | SF | ZF);
    assert_eq!(r.gpr(RAX), hi | 0x3333_4444, "success leaves RAX alone");

    let regs = [(RAX, hi), (RDX, hi), (RBX, 1), (RCX, 2)];
    let mut r = step(&c, &regs, ZF | CF, &[(DATA, &m.to_le_bytes())]);
    assert_eq!(r.mem64(DATA), m);
    assert_eq!(r.gpr(RAX), 0x3333_4444, "EAX write zero-extends");
    assert_eq!(r.gpr(RDX), 0x1111_2222);
    assert_eq!(r.flags(STATUS), CF);
}

#[test]
fn cmpxchg16b_needs_16_byte_alignment() {
    let c = asm1(|a| a.cmpxchg16b(xmmword_ptr(DATA)));
    let lo = 0x0123_4567_89ab_cdefu64;
    let hi = 0xfedc_ba98_7654_3210u64;
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&lo.to_le_bytes());
    m[8..].copy_from_slice(&hi.to_le_bytes());
    let regs = [(RAX, lo), (RDX, hi), (RBX, 1), (RCX, 2)];
    let mut r = step(&c, &regs, 0, &[(DATA, &m)]);
    r.retired(&c);
    assert_eq!((r.mem64(DATA), r.mem64(DATA + 8)), (1, 2));
    assert_eq!(r.flags(ZF), ZF);

    let regs = [(RAX, 0), (RDX, 0), (RBX, 1), (RCX, 2)];
    let mut r = step(&c, &regs, ZF, &[(DATA, &m)]);
    assert_eq!((r.gpr(RAX), r.gpr(RDX)), (lo, hi));
    assert_eq!((r.mem64(DATA), r.mem64(DATA + 8)), (lo, hi));
    assert_eq!(r.flags(ZF), 0);

    let c = asm1(|a| a.cmpxchg16b(xmmword_ptr(DATA + 8)));
    let regs = [(RAX, lo), (RDX, hi), (RBX, 1), (RCX, 2)];
    faulted(
        &c,
        &regs,
        0,
        &[(DATA + 8, &m)],
        Exception::GeneralProtection(0),
    );
}

#[test]
fn locked_read_modify_writes_work_and_lock_on_a_register_is_ud() {
    let c = asm1(|a| a.lock().add(dword_ptr(DATA), eax));
    let mut r = step(&c, &[(RAX, 3)], 0, &[(DATA, &[4, 0, 0, 0])]);
    r.retired(&c);
    assert_eq!(r.mem(DATA, 4), [7, 0, 0, 0]);

    let c = asm1(|a| a.lock().xadd(qword_ptr(DATA), rcx));
    let mut r = step(&c, &[(RCX, 1)], 0, &[(DATA, &[4])]);
    assert_eq!((r.mem64(DATA), r.gpr(RCX)), (5, 4));

    let c = asm1(|a| a.lock().cmpxchg(byte_ptr(DATA), cl));
    let mut r = step(&c, &[(RAX, 4), (RCX, 9)], 0, &[(DATA, &[4])]);
    assert_eq!(r.mem(DATA, 1), [9]);

    let c = asm1(|a| a.lock().inc(qword_ptr(DATA)));
    let mut r = step(&c, &[], 0, &[(DATA, &[0xfe])]);
    assert_eq!(r.mem(DATA, 1), [0xff]);
    let c = asm1(|a| a.lock().not(byte_ptr(DATA)));
    let mut r = step(&c, &[], 0, &[(DATA, &[0xfe])]);
    assert_eq!(r.mem(DATA, 1), [0x01]);

    // lock inc eax; lock add eax, eax; lock cmpxchg ecx, edx: LOCK needs memory.
    for c in [
        &[0xf0, 0xff, 0xc0][..],
        &[0xf0, 0x01, 0xc0],
        &[0xf0, 0x0f, 0xb1, 0xd1],
    ] {
        faulted(c, &[(RAX, 1)], 0, &[], Exception::InvalidOpcode);
    }
}

#[test]
fn not_flips_bits_and_no_flags() {
    let c = asm1(|a| a.not(eax));
    let r = step(&c, &[(RAX, 0xffff_ffff_0000_ffff)], STATUS, &[]);
    assert_eq!(r.gpr(RAX), 0xffff_0000);
    assert_eq!(r.flags(STATUS), STATUS);
    let c = asm1(|a| a.not(word_ptr(DATA)));
    let mut r = step(&c, &[], 0, &[(DATA, &[0x0f, 0xf0, 0x11])]);
    assert_eq!(r.mem(DATA, 3), [0xf0, 0x0f, 0x11]);
    assert_eq!(r.flags(STATUS), 0);
}

#[test]
fn mul_writes_the_register_pair_and_cf_of_for_a_nonzero_upper_half() {
    let c = asm1(|a| a.mul(bl));
    let r = step(&c, &[(RAX, 0xffff_0080), (RBX, 2)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0xffff_0100);
    assert_eq!(r.flags(CF | OF), CF | OF);
    let r = step(&c, &[(RAX, 0x7f), (RBX, 2)], CF | OF, &[]);
    assert_eq!(r.gpr(RAX), 0xfe);
    assert_eq!(r.flags(CF | OF), 0);

    let c = asm1(|a| a.mul(cx));
    let regs = [(RAX, 0xaaaa_ffff), (RCX, 0xffff), (RDX, 0x5555_0000)];
    let r = step(&c, &regs, 0, &[]);
    assert_eq!((r.gpr(RDX), r.gpr(RAX)), (0x5555_fffe, 0xaaaa_0001));
    assert_eq!(r.flags(CF | OF), CF | OF);

    let c = asm1(|a| a.mul(dword_ptr(DATA)));
    let regs = [(RAX, 0x1_0000_0002), (RDX, u64::MAX)];
    let r = step(&c, &regs, CF | OF, &[(DATA, &3u32.to_le_bytes())]);
    assert_eq!(
        (r.gpr(RDX), r.gpr(RAX)),
        (0, 6),
        "32-bit halves zero-extend"
    );
    assert_eq!(r.flags(CF | OF), 0);

    let c = asm1(|a| a.mul(rcx));
    let r = step(&c, &[(RAX, u64::MAX), (RCX, u64::MAX)], 0, &[]);
    assert_eq!((r.gpr(RDX), r.gpr(RAX)), (u64::MAX - 1, 1));
    assert_eq!(r.flags(CF | OF), CF | OF);
}

#[test]
fn imul_one_operand_flags_when_the_product_needs_the_upper_half() {
    let c = asm1(|a| a.imul(cl));
    // -2 * 64 = -128 fits a signed byte.
    let r = step(&c, &[(RAX, 0xfe), (RCX, 64)], CF | OF, &[]);
    assert_eq!(r.gpr(RAX), 0xff80);
    assert_eq!(r.flags(CF | OF), 0);
    // -1 * -128 = 128 does not.
    let r = step(&c, &[(RAX, 0xff), (RCX, 0x80)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0x0080);
    assert_eq!(r.flags(CF | OF), CF | OF);

    let c = asm1(|a| a.imul(rcx));
    let r = step(&c, &[(RAX, i64::MIN as u64), (RCX, u64::MAX)], 0, &[]);
    assert_eq!((r.gpr(RDX), r.gpr(RAX)), (0, 1 << 63));
    assert_eq!(r.flags(CF | OF), CF | OF);
    let r = step(&c, &[(RAX, (-3i64) as u64), (RCX, 5)], CF | OF, &[]);
    assert_eq!((r.gpr(RDX), r.gpr(RAX)), (u64::MAX, (-15i64) as u64));
    assert_eq!(r.flags(CF | OF), 0);
}

#[test]
fn imul_two_and_three_operands_truncate() {
    let c = asm1(|a| a.imul_2(eax, ecx));
    let r = step(&c, &[(RAX, 0xffff_ffff_0001_0000), (RCX, 0x8000)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0x8000_0000);
    assert_eq!(r.flags(CF | OF), CF | OF);

    let c = asm1(|a| a.imul_3(ax, cx, -3));
    let r = step(&c, &[(RAX, 0x1234_0000), (RCX, 100)], CF | OF, &[]);
    assert_eq!(r.gpr(RAX), 0x1234_fed4);
    assert_eq!(r.flags(CF | OF), 0);

    let c = asm1(|a| a.imul_3(rax, qword_ptr(DATA), 0x4000_0000));
    let r = step(&c, &[], 0, &[(DATA, &4u64.to_le_bytes())]);
    assert_eq!(r.gpr(RAX), 1 << 32);
    assert_eq!(r.flags(CF | OF), 0);
    let r = step(&c, &[], 0, &[(DATA, &(1u64 << 33).to_le_bytes())]);
    assert_eq!(r.gpr(RAX), 1 << 63);
    assert_eq!(r.flags(CF | OF), CF | OF);
}

#[test]
fn div_puts_quotient_low_and_remainder_high() {
    // AX = 0x0234: 0x234 / 0x12 = 0x1f remainder 6.
    let c = asm1(|a| a.div(cl));
    let r = step(&c, &[(RAX, 0xffff_0000_0000_0234), (RCX, 0x12)], 0, &[]);
    r.retired(&c);
    assert_eq!(r.gpr(RAX), 0xffff_0000_0000_061f);

    let c = asm1(|a| a.div(ecx));
    let regs = [
        (RAX, 0xaaaa_aaaa_0000_0007),
        (RDX, 0xbbbb_bbbb_0000_0001),
        (RCX, 2),
    ];
    let r = step(&c, &regs, 0, &[]);
    assert_eq!((r.gpr(RAX), r.gpr(RDX)), (0x8000_0003, 1));

    let c = asm1(|a| a.div(qword_ptr(DATA)));
    let r = step(&c, &[(RAX, 5), (RDX, 2)], 0, &[(DATA, &3u64.to_le_bytes())]);
    // (2·2^64 + 5) / 3 = 0xaaaa_aaaa_aaaa_aaac r 1
    assert_eq!((r.gpr(RAX), r.gpr(RDX)), (0xaaaa_aaaa_aaaa_aaac, 1));
}

#[test]
fn idiv_truncates_toward_zero() {
    let c = asm1(|a| a.idiv(cl));
    let r = step(&c, &[(RAX, (-7i16) as u16 as u64), (RCX, 2)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0xfffd, "AL = -3, AH = -1");

    let c = asm1(|a| a.idiv(cx));
    let regs = [(RAX, 0xffff), (RDX, 0xffff), (RCX, 0xfffe)]; // -1 / -2
    let r = step(&c, &regs, 0, &[]);
    assert_eq!((r.gpr(RAX), r.gpr(RDX)), (0, 0xffff));

    let c = asm1(|a| a.idiv(rcx));
    let regs = [(RAX, (-100i64) as u64), (RDX, u64::MAX), (RCX, 7)];
    let r = step(&c, &regs, 0, &[]);
    assert_eq!((r.gpr(RAX), r.gpr(RDX)), ((-14i64) as u64, (-2i64) as u64));

    // -128 / -1 would be 128: does not fit. -128 / 1 is fine.
    let c = asm1(|a| a.idiv(bl));
    let r = step(&c, &[(RAX, 0xff80), (RBX, 1)], 0, &[]);
    assert_eq!(r.gpr(RAX), 0x0080);
}

#[test]
fn divide_errors_leave_everything_unchanged() {
    let div_cl = asm1(|a| a.div(cl));
    faulted(
        &div_cl,
        &[(RAX, 0x1234), (RCX, 0)],
        CF,
        &[],
        Exception::DivideError,
    );
    faulted(
        &div_cl,
        &[(RAX, 0x1234), (RCX, 0x12)],
        0,
        &[],
        Exception::DivideError,
    );
    let div_m = asm1(|a| a.div(qword_ptr(DATA)));
    faulted(
        &div_m,
        &[(RAX, 1), (RDX, 1)],
        0,
        &[(DATA, &1u64.to_le_bytes())],
        Exception::DivideError,
    );
    let div_ecx = asm1(|a| a.div(ecx));
    // Upper halves of RCX do not make the 32-bit divisor nonzero.
    faulted(
        &div_ecx,
        &[(RAX, 1), (RCX, 1 << 32)],
        0,
        &[],
        Exception::DivideError,
    );

    let idiv_bl = asm1(|a| a.idiv(bl));
    faulted(
        &idiv_bl,
        &[(RAX, 0xff80), (RBX, 0xff)],
        0,
        &[],
        Exception::DivideError,
    );
    faulted(
        &idiv_bl,
        &[(RAX, 0x4000), (RBX, 0x7f)],
        0,
        &[],
        Exception::DivideError,
    );
    let idiv_ecx = asm1(|a| a.idiv(ecx));
    let regs = [(RAX, 0x8000_0000), (RDX, 0xffff_ffff), (RCX, 0xffff_ffff)];
    faulted(&idiv_ecx, &regs, 0, &[], Exception::DivideError);
    let idiv_rcx = asm1(|a| a.idiv(rcx));
    // RDX:RAX = -2^63 sign-extended, and RDX:RAX = -2^127 (the most negative 128-bit
    // dividend, which must not overflow the emulator's own arithmetic).
    let regs = [(RAX, 1 << 63), (RDX, u64::MAX), (RCX, u64::MAX)];
    faulted(&idiv_rcx, &regs, 0, &[], Exception::DivideError);
    let regs = [(RAX, 0), (RDX, 1 << 63), (RCX, u64::MAX)];
    faulted(&idiv_rcx, &regs, 0, &[], Exception::DivideError);
    faulted(&idiv_rcx, &[(RAX, 5)], 0, &[], Exception::DivideError);
}

/// A host-executed instruction: (RAX, RCX, RDX, RFLAGS) in, the same four out.
type HostFn = fn(u64, u64, u64, u64) -> [u64; 4];

/// Runs `$text` on the host with RAX, RCX, RDX as given; returns them and RFLAGS.
macro_rules! host {
    ($text:literal) => {{
        fn f(in_a: u64, in_c: u64, in_d: u64, flags: u64) -> [u64; 4] {
            let (mut ra, mut rc, mut rd, mut fl) = (in_a, in_c, in_d, flags);
            // SAFETY: the instruction reads and writes only RAX, RCX, RDX and RFLAGS,
            // all declared; the stack is used only by the balanced push/popfq and
            // pushfq/pop pairs (no `nostack`, so the red zone is not in use).
            unsafe {
                std::arch::asm!(
                    "push {fl}",
                    "popfq",
                    $text,
                    "pushfq",
                    "pop {fl}",
                    fl = inout(reg) fl,
                    inout("rax") ra,
                    inout("rcx") rc,
                    inout("rdx") rd,
                );
            }
            [ra, rc, rd, fl]
        }
        f as HostFn
    }};
}

#[test]
fn multiply_and_add_family_match_the_host_on_defined_flags() {
    let values = [
        0u64,
        1,
        2,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0001,
        i64::MAX as u64,
        i64::MIN as u64,
        u64::MAX,
        0xdead_beef_cafe_f00d,
    ];
    let mulf = CF | OF;
    let cases: Vec<(&str, HostFn, Vec<u8>, u64)> = vec![
        ("mul cl", host!("mul cl"), asm1(|a| a.mul(cl)), mulf),
        ("mul cx", host!("mul cx"), asm1(|a| a.mul(cx)), mulf),
        ("mul ecx", host!("mul ecx"), asm1(|a| a.mul(ecx)), mulf),
        ("mul rcx", host!("mul rcx"), asm1(|a| a.mul(rcx)), mulf),
        ("imul cl", host!("imul cl"), asm1(|a| a.imul(cl)), mulf),
        ("imul cx", host!("imul cx"), asm1(|a| a.imul(cx)), mulf),
        ("imul ecx", host!("imul ecx"), asm1(|a| a.imul(ecx)), mulf),
        ("imul rcx", host!("imul rcx"), asm1(|a| a.imul(rcx)), mulf),
        (
            "imul ax, cx",
            host!("imul ax, cx"),
            asm1(|a| a.imul_2(ax, cx)),
            mulf,
        ),
        (
            "imul eax, ecx",
            host!("imul eax, ecx"),
            asm1(|a| a.imul_2(eax, ecx)),
            mulf,
        ),
        (
            "imul rax, rcx, -3",
            host!("imul rax, rcx, -3"),
            asm1(|a| a.imul_3(rax, rcx, -3)),
            mulf,
        ),
        ("inc al", host!("inc al"), asm1(|a| a.inc(al)), STATUS),
        ("dec cx", host!("dec cx"), asm1(|a| a.dec(cx)), STATUS),
        ("neg eax", host!("neg eax"), asm1(|a| a.neg(eax)), STATUS),
        ("neg rcx", host!("neg rcx"), asm1(|a| a.neg(rcx)), STATUS),
        (
            "xadd cl, dl",
            host!("xadd cl, dl"),
            asm1(|a| a.xadd(cl, dl)),
            STATUS,
        ),
        (
            "xadd ecx, edx",
            host!("xadd ecx, edx"),
            asm1(|a| a.xadd(ecx, edx)),
            STATUS,
        ),
        (
            "cmpxchg cl, dl",
            host!("cmpxchg cl, dl"),
            asm1(|a| a.cmpxchg(cl, dl)),
            STATUS,
        ),
        (
            "cmpxchg cx, dx",
            host!("cmpxchg cx, dx"),
            asm1(|a| a.cmpxchg(cx, dx)),
            STATUS,
        ),
        (
            "cmpxchg ecx, edx",
            host!("cmpxchg ecx, edx"),
            asm1(|a| a.cmpxchg(ecx, edx)),
            STATUS,
        ),
        (
            "cmpxchg rcx, rdx",
            host!("cmpxchg rcx, rdx"),
            asm1(|a| a.cmpxchg(rcx, rdx)),
            STATUS,
        ),
    ];
    for (name, host, code, m) in cases {
        for &a in &values {
            for &c in &values {
                for (d, flags) in [(0x1234_5678_9abc_def0, 0x2), (a, 0x2 | STATUS)] {
                    let h = host(a, c, d, flags);
                    let r = step(&code, &[(RAX, a), (RCX, c), (RDX, d)], flags & STATUS, &[]);
                    let e = [r.gpr(RAX), r.gpr(RCX), r.gpr(RDX), r.cpu.state.rflags];
                    assert_eq!(
                        (e[0], e[1], e[2], e[3] & m),
                        (h[0], h[1], h[2], h[3] & m),
                        "{name}: rax={a:#x} rcx={c:#x} rdx={d:#x} flags={flags:#x}"
                    );
                }
            }
        }
    }
}
