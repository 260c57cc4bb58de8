//! Shift/rotate and bit-instruction semantics: pinned edge cases, plus targeted
//! comparisons against the host CPU (this test suite runs on x86-64) for the flags
//! the SDM defines. Undefined flags are masked out of the host comparisons; what
//! tlbemu stores there is documented in `insn/shift.rs` and `insn/bit.rs`.

use emu::state::{RAX, RCX, RDX, RSI};
use emu::{Bus, Cpu, CpuFeatures, DecodeCache, FlatBus, StepOutcome};
use iced_x86::code_asm::*;
use mmu::PhysAddr;

mod insn_support;
use insn_support::*;

/// A core with one instruction loaded, re-run from fresh registers each time.
struct Bench {
    cpu: Cpu,
    bus: FlatBus,
    cache: DecodeCache,
    len: u64,
}

impl Bench {
    fn new(code: &[u8]) -> Self {
        let mut bus = FlatBus::new(1 << 20);
        bus.mem.write(PhysAddr(CODE), code).unwrap();
        Bench {
            cpu: Cpu::new(0, CpuFeatures::default()),
            bus,
            cache: DecodeCache::new(),
            len: code.len() as u64,
        }
    }

    /// Runs the instruction once with the given registers and status flags.
    fn run(&mut self, regs: &[(usize, u64)], flags: u64) -> &Cpu {
        let s = &mut self.cpu.state;
        s.gpr = [0; 16];
        for &(i, v) in regs {
            s.gpr[i] = v;
        }
        s.rip = CODE;
        s.rflags = 0x2 | flags;
        let out = self.cpu.step(&mut self.cache, &mut self.bus).unwrap();
        assert_eq!(out, StepOutcome::Retired);
        assert_eq!(self.cpu.state.rip, CODE + self.len);
        &self.cpu
    }

    fn write(&mut self, at: u64, data: &[u8]) {
        self.bus.mem.write(PhysAddr(at), data).unwrap();
    }

    fn read(&mut self, at: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.bus.phys_mem().read(PhysAddr(at), &mut b).unwrap();
        b
    }
}

/// Runs one instruction on fresh state: (RAX, flags) afterwards.
fn one(code: &[u8], regs: &[(usize, u64)], flags: u64) -> (u64, u64) {
    let mut b = Bench::new(code);
    let cpu = b.run(regs, flags);
    (cpu.state.gpr[RAX], cpu.state.rflags & STATUS)
}

// ---------------------------------------------------------------------------------
// Pinned shift and rotate cases.

#[test]
fn shifts_by_one_set_of_from_the_sdm_formula() {
    // SHL al,1: 0xc0 -> 0x80, CF=1, OF = MSB ^ CF = 0.
    assert_eq!(
        one(&asm1(|a| a.shl(al, 1)), &[(RAX, 0xc0)], 0),
        (0x80, CF | SF)
    );
    // 0x40 -> 0x80: OF=1.
    assert_eq!(
        one(&asm1(|a| a.shl(al, 1)), &[(RAX, 0x40)], 0),
        (0x80, OF | SF)
    );
    // SHR ax,1: OF = MSB(original).
    assert_eq!(
        one(&asm1(|a| a.shr(ax, 1)), &[(RAX, 0x8001)], 0),
        (0x4000, OF | CF | PF)
    );
    // SAR eax,1: OF = 0, sign kept; the 32-bit write zero-extends.
    let (r, f) = one(
        &asm1(|a| a.sar(eax, 1)),
        &[(RAX, 0xffff_ffff_8000_0001)],
        OF,
    );
    assert_eq!((r, f), (0xc000_0000, CF | SF | PF));
}

#[test]
fn masked_count_of_zero_changes_nothing() {
    // CL = 32 masks to 0 for a 32-bit operand: no flags change, but the register is
    // still written, so its upper half is zeroed (as on hardware).
    let c = asm1(|a| a.shl(eax, cl));
    let (r, f) = one(&c, &[(RAX, 0xffff_ffff_0000_0001), (RCX, 32)], CF | ZF);
    assert_eq!((r, f), (1, CF | ZF));
    // A 16-bit operand merges, so nothing at all changes.
    let c = asm1(|a| a.shl(ax, cl));
    let (r, f) = one(&c, &[(RAX, 0xffff_ffff_0000_0001), (RCX, 32)], CF | ZF);
    assert_eq!((r, f), (0xffff_ffff_0000_0001, CF | ZF));
    // 64 masks to 0 for 64-bit operands; 32 does not.
    let c = asm1(|a| a.shr(rax, cl));
    assert_eq!(one(&c, &[(RAX, 0x8000), (RCX, 64)], PF), (0x8000, PF));
    assert_eq!(one(&c, &[(RAX, 1 << 40), (RCX, 32)], 0).0, 1 << 8);
    // 8-bit operands mask to 5 bits too, so CL = 33 shifts by 1.
    let c = asm1(|a| a.rol(al, cl));
    assert_eq!(one(&c, &[(RAX, 0x81), (RCX, 33)], 0), (0x03, CF | OF));
}

#[test]
fn byte_shifts_past_the_width() {
    // SHL al by 8: result 0, CF = bit 0 (the last bit out); by 9: CF = 0.
    let c = asm1(|a| a.shl(al, cl));
    assert_eq!(one(&c, &[(RAX, 0x01), (RCX, 8)], 0).1 & (CF | ZF), CF | ZF);
    assert_eq!(one(&c, &[(RAX, 0xff), (RCX, 9)], CF).1 & (CF | ZF), ZF);
    // SAR al by 20: all sign bits, CF = sign.
    let c = asm1(|a| a.sar(al, cl));
    assert_eq!(one(&c, &[(RAX, 0x80), (RCX, 20)], 0).0, 0xff);
    assert_eq!(one(&c, &[(RAX, 0x80), (RCX, 20)], 0).1 & CF, CF);
    // ROL al by 8: value unchanged but CF = LSB is still written (masked count != 0).
    let c = asm1(|a| a.rol(al, cl));
    let (r, f) = one(&c, &[(RAX, 0x01), (RCX, 8)], 0);
    assert_eq!((r, f & CF), (0x01, CF));
}

#[test]
fn rcl_rcr_take_the_count_modulo_9_and_17() {
    // RCL al by 9 = full circle through CF: nothing changes.
    let c = asm1(|a| a.rcl(al, cl));
    assert_eq!(one(&c, &[(RAX, 0x5a), (RCX, 9)], CF).0, 0x5a);
    assert_eq!(one(&c, &[(RAX, 0x5a), (RCX, 9)], CF).1 & CF, CF);
    // RCL al by 10 == by 1: 0x80 with CF=1 -> 0x01, CF=1.
    assert_eq!(one(&c, &[(RAX, 0x80), (RCX, 10)], CF).0, 0x01);
    assert_eq!(one(&c, &[(RAX, 0x80), (RCX, 10)], CF).1 & CF, CF);
    // RCR ax by 17 is a full circle; by 18 == by 1.
    let c = asm1(|a| a.rcr(ax, cl));
    assert_eq!(one(&c, &[(RAX, 0x1234), (RCX, 17)], 0).0, 0x1234);
    let (r, f) = one(&c, &[(RAX, 0x0001), (RCX, 18)], CF);
    assert_eq!((r, f & (CF | OF)), (0x8000, CF | OF));
    // 32-bit RCL by 31 (no modulo): 33-bit rotation.
    let c = asm1(|a| a.rcl(eax, cl));
    let (r, f) = one(&c, &[(RAX, 0x0000_0002), (RCX, 31)], 0);
    assert_eq!((r, f & CF), (0, CF));
    // 64-bit RCR by 63 with CF.
    let c = asm1(|a| a.rcr(rax, cl));
    let (r, f) = one(&c, &[(RAX, 1), (RCX, 63)], CF);
    // 65-bit rotation right by 63 = left by 2: bit 0 -> bit 2, CF -> bit 1.
    assert_eq!((r, f & CF), (0b110, 0));
}

#[test]
fn shld_shrd_pinned_cases() {
    let c = asm1(|a| a.shld(eax, edx, 4));
    let regs = [(RAX, 0x1234_5678), (RDX, 0x9abc_def0)];
    assert_eq!(one(&c, &regs, 0).0, 0x2345_6789);
    let c = asm1(|a| a.shrd(rax, rdx, cl));
    let regs = [(RAX, 0x1), (RDX, 0xf), (RCX, 64 + 4)]; // count masks to 4
    let (r, f) = one(&c, &regs, 0);
    assert_eq!((r, f & (CF | SF)), (0xf000_0000_0000_0000, SF));
    // Count 0 (CL = 32 on a 32-bit operand).
    let c = asm1(|a| a.shld(eax, edx, cl));
    let regs = [(RAX, 0xffff_ffff_0000_0001), (RDX, 5), (RCX, 32)];
    assert_eq!(one(&c, &regs, CF), (1, CF), "upper half zeroed, flags kept");
}

#[test]
fn shld_shrd_16_bit_counts_above_16_follow_intel() {
    // DEST:SRC:DEST shifted (the documented choice); AMD hosts differ here.
    let regs = |c| [(RAX, 0x1234), (RDX, 0xabcd), (RCX, c)];
    let shld = asm1(|a| a.shld(ax, dx, cl));
    assert_eq!(one(&shld, &regs(16), 0).0, 0xabcd);
    assert_eq!(one(&shld, &regs(17), 0).0, 0x579a);
    assert_eq!(one(&shld, &regs(20), 0).0, 0xbcd1);
    assert_eq!(one(&shld, &regs(31), 0).0, 0x891a);
    let shrd = asm1(|a| a.shrd(ax, dx, cl));
    assert_eq!(one(&shrd, &regs(16), 0).0, 0xabcd);
    assert_eq!(one(&shrd, &regs(17), 0).0, 0x55e6);
    assert_eq!(one(&shrd, &regs(20), 0).0, 0x4abc);
}

#[test]
fn shift_memory_destination() {
    let c = asm1(|a| a.sar(word_ptr(DATA), 4));
    let mut b = Bench::new(&c);
    b.write(DATA, &[0x00, 0x80, 0x77]);
    b.run(&[], 0);
    assert_eq!(b.read(DATA, 3), [0x00, 0xf8, 0x77]);
    let c = asm1(|a| a.rcl(qword_ptr(DATA), 1));
    let mut b = Bench::new(&c);
    b.write(DATA, &(1u64 << 63).to_le_bytes());
    let f = b.run(&[], CF).state.rflags;
    assert_eq!(b.read(DATA, 8), 1u64.to_le_bytes());
    // OF = MSB(result) XOR CF = 0 XOR 1.
    assert_eq!(f & (CF | OF), CF | OF);
}

// ---------------------------------------------------------------------------------
// Pinned bit-instruction cases.

#[test]
fn bt_register_offsets_wrap_for_register_bit_bases() {
    let c = asm1(|a| a.bt(eax, ecx));
    assert_eq!(one(&c, &[(RAX, 1 << 3), (RCX, 35)], ZF).1, CF | ZF);
    let c = asm1(|a| a.bts(ax, 17));
    let (r, f) = one(&c, &[(RAX, 0xffff_0000_0000_0000)], 0);
    assert_eq!((r, f), (0xffff_0000_0000_0002, 0));
    let c = asm1(|a| a.btr(rax, rcx));
    assert_eq!(
        one(&c, &[(RAX, u64::MAX), (RCX, 64 + 63)], 0),
        (u64::MAX >> 1, CF)
    );
    let c = asm1(|a| a.btc(eax, 31));
    assert_eq!(
        one(&c, &[(RAX, 0xffff_ffff_0000_0000)], CF),
        (0x8000_0000, 0)
    );
}

#[test]
fn bt_memory_with_register_offsets_reaches_other_words() {
    // Bit base at DATA+0x40: offset -1 is bit 7 of the byte before it.
    let base = DATA + 0x40;
    let c = asm1(|a| a.bts(dword_ptr(rsi), ecx));
    let mut b = Bench::new(&c);
    let f = b
        .run(&[(RSI, base), (RCX, (-1i64) as u64 & 0xffff_ffff)], 0)
        .state
        .rflags;
    assert_eq!(f & CF, 0);
    assert_eq!(b.read(base - 4, 4), [0, 0, 0, 0x80]);
    // Offset 100 = dword 3, bit 4.
    b.run(&[(RSI, base), (RCX, 100)], 0);
    assert_eq!(b.read(base + 12, 1), [0x10]);
    // The upper half of RCX does not count for a 32-bit offset.
    let f = b
        .run(&[(RSI, base), (RCX, 0xffff_ffff_0000_0064)], 0)
        .state
        .rflags;
    assert_eq!(f & CF, CF, "bit 100 was set by the previous run");

    // 16-bit offsets are signed 16-bit: 0x8000 = -32768 bits = 4096 bytes back.
    let c = asm1(|a| a.btc(word_ptr(rsi), dx));
    let mut b = Bench::new(&c);
    b.run(&[(RSI, DATA + 0x1000), (RDX, 0x8000)], 0);
    assert_eq!(b.read(DATA, 2), [0x01, 0]);

    // 64-bit offsets reach far: +2^20 bits = 128 KiB ahead.
    let c = asm1(|a| a.bt(qword_ptr(rsi), rdx));
    let mut b = Bench::new(&c);
    b.write(DATA + 0x2_0000, &[0, 0, 0, 0, 0, 0, 0, 0x40]);
    let f = b.run(&[(RSI, DATA), (RDX, (1 << 20) + 62)], 0).state.rflags;
    assert_eq!(f & CF, CF);

    // An immediate offset stays inside the operand (masked to its width).
    let c = asm1(|a| a.bts(word_ptr(rsi), 0x13));
    let mut b = Bench::new(&c);
    b.run(&[(RSI, base)], 0);
    assert_eq!(b.read(base, 4), [0x08, 0, 0, 0]);
}

#[test]
fn bsf_bsr_of_zero_set_zf_and_leave_the_destination() {
    for c in [asm1(|a| a.bsf(eax, ecx)), asm1(|a| a.bsr(eax, ecx))] {
        let (r, f) = one(
            &c,
            &[(RAX, 0xdead_beef_1234_5678), (RCX, 0xffff_ffff_0000_0000)],
            0,
        );
        assert_eq!((r, f & ZF), (0xdead_beef_1234_5678, ZF));
    }
    let c = asm1(|a| a.bsf(ax, cx));
    let (r, f) = one(&c, &[(RAX, 0xffff_ffff), (RCX, 0x8800)], ZF);
    assert_eq!((r, f & ZF), (0xffff_000b, 0));
    let c = asm1(|a| a.bsr(rax, rcx));
    assert_eq!(one(&c, &[(RCX, 0x8000_0000_0000_0001)], ZF).0, 63);
    let c = asm1(|a| a.bsr(eax, dword_ptr(DATA)));
    let mut b = Bench::new(&c);
    b.write(DATA, &0x0001_0000u32.to_le_bytes());
    assert_eq!(b.run(&[(RAX, u64::MAX)], 0).state.gpr[RAX], 16);
}

#[test]
fn tzcnt_lzcnt_popcnt() {
    let c = asm1(|a| a.tzcnt(ax, cx));
    assert_eq!(
        one(&c, &[(RAX, 0xffff_ffff), (RCX, 0)], ZF),
        (0xffff_0010, CF)
    );
    assert_eq!(one(&c, &[(RCX, 1)], CF), (0, ZF));
    let c = asm1(|a| a.lzcnt(eax, ecx));
    assert_eq!(one(&c, &[(RAX, u64::MAX), (RCX, 1 << 40)], 0), (32, CF));
    assert_eq!(one(&c, &[(RCX, 0x0080_0000)], 0), (8, 0));
    let c = asm1(|a| a.lzcnt(rax, rcx));
    assert_eq!(one(&c, &[(RCX, 1 << 63)], CF), (0, ZF));
    let c = asm1(|a| a.popcnt(rax, rcx));
    assert_eq!(one(&c, &[(RCX, 0xf0f0)], STATUS), (8, 0));
    assert_eq!(one(&c, &[(RAX, 7)], STATUS), (0, ZF));
}

#[test]
fn bswap_forms() {
    let c = asm1(|a| a.bswap(eax));
    assert_eq!(one(&c, &[(RAX, 0xffff_ffff_1122_3344)], 0).0, 0x4433_2211);
    let c = asm1(|a| a.bswap(rax));
    assert_eq!(
        one(&c, &[(RAX, 0x0102_0304_0506_0708)], 0).0,
        0x0807_0605_0403_0201
    );
    let c = asm1(|a| a.bswap(ax));
    assert_eq!(
        one(&c, &[(RAX, 0xffff_ffff_1234_5678)], 0).0,
        0xffff_ffff_1234_0000
    );
}

// ---------------------------------------------------------------------------------
// Targeted comparisons against the host CPU.

/// Runs `$text` on the host with the destination in RAX, the source in RDX and the
/// count in RCX, returning RAX and RFLAGS afterwards.
macro_rules! host {
    ($text:literal) => {{
        fn f(dest: u64, src: u64, count: u64, flags: u64) -> (u64, u64) {
            let mut d = dest;
            let mut fl = flags;
            // SAFETY: the instruction reads and writes only RAX, RDX, RCX and RFLAGS,
            // all declared here; the stack is used only for the balanced
            // push/popfq/pushfq/pop pair (no `nostack`, so the compiler keeps the red
            // zone free).
            unsafe {
                std::arch::asm!(
                    "push {fl}",
                    "popfq",
                    $text,
                    "pushfq",
                    "pop {fl}",
                    fl = inout(reg) fl,
                    inout("rax") d,
                    in("rdx") src,
                    in("rcx") count,
                );
            }
            (d, fl)
        }
        f as fn(u64, u64, u64, u64) -> (u64, u64)
    }};
}

/// What the SDM defines after a shift-family instruction with this masked count.
#[derive(Clone, Copy)]
enum Defined {
    /// SHL/SHR: all but AF; OF only for count 1; CF only while count < width.
    ShlShr,
    /// SAR: all but AF; OF only for count 1.
    Sar,
    /// ROL/ROR/RCL/RCR: CF; OF only for count 1; the rest unchanged.
    Rotate,
    /// SHLD/SHRD: all but AF; OF only for count 1.
    Double,
}

fn defined(kind: Defined, size: u32, masked: u64) -> u64 {
    if masked == 0 {
        return STATUS;
    }
    let of = if masked == 1 { OF } else { 0 };
    match kind {
        Defined::ShlShr if masked >= size as u64 * 8 => (STATUS & !(AF | OF | CF)) | of,
        Defined::ShlShr | Defined::Sar | Defined::Double => (STATUS & !(AF | OF)) | of,
        Defined::Rotate => (STATUS & !OF) | of,
    }
}

const VALUES: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x8001,
    0x7fff_ffff,
    0x8000_0000_0000_0001,
    0xdead_beef_cafe_f00d,
    0x5555_aaaa_3333_cccc,
];

fn compare_with_host(
    name: &str,
    host: fn(u64, u64, u64, u64) -> (u64, u64),
    code: &[u8],
    size: u32,
    kind: Defined,
    max_count: u64,
) {
    let mut b = Bench::new(code);
    let cmask = if size == 8 { 0x3f } else { 0x1f };
    for &d in &VALUES {
        for &s in &VALUES {
            for count in 0..=max_count {
                for flags in [0x2, 0x2 | CF, 0x2 | STATUS] {
                    let (hr, hf) = host(d, s, count, flags);
                    let cpu = b.run(&[(RAX, d), (RDX, s), (RCX, count)], flags);
                    let (er, ef) = (cpu.state.gpr[RAX], cpu.state.rflags);
                    let m = defined(kind, size, count & cmask);
                    assert_eq!(
                        (er, ef & m),
                        (hr, hf & m),
                        "{name}: dest={d:#x} src={s:#x} count={count} flags={flags:#x} \
                         (emulator RFLAGS {ef:#x}, host {hf:#x})"
                    );
                }
            }
        }
    }
}

macro_rules! host_cases {
    ($($text:literal, $size:expr, $kind:ident, $max:expr, |$a:ident| $body:expr;)*) => {
        vec![$(($text, host!($text), asm1(|$a| $body), $size, Defined::$kind, $max as u64)),*]
    };
}

#[test]
fn shifts_and_rotates_match_the_host_on_defined_flags() {
    let cases = host_cases![
        "shl al, cl", 1, ShlShr, 40, |a| a.shl(al, cl);
        "shl ax, cl", 2, ShlShr, 40, |a| a.shl(ax, cl);
        "shl eax, cl", 4, ShlShr, 40, |a| a.shl(eax, cl);
        "shl rax, cl", 8, ShlShr, 70, |a| a.shl(rax, cl);
        "shr al, cl", 1, ShlShr, 40, |a| a.shr(al, cl);
        "shr ax, cl", 2, ShlShr, 40, |a| a.shr(ax, cl);
        "shr eax, cl", 4, ShlShr, 40, |a| a.shr(eax, cl);
        "shr rax, cl", 8, ShlShr, 70, |a| a.shr(rax, cl);
        "sar al, cl", 1, Sar, 40, |a| a.sar(al, cl);
        "sar ax, cl", 2, Sar, 40, |a| a.sar(ax, cl);
        "sar eax, cl", 4, Sar, 40, |a| a.sar(eax, cl);
        "sar rax, cl", 8, Sar, 70, |a| a.sar(rax, cl);
        "rol al, cl", 1, Rotate, 40, |a| a.rol(al, cl);
        "rol ax, cl", 2, Rotate, 40, |a| a.rol(ax, cl);
        "rol eax, cl", 4, Rotate, 40, |a| a.rol(eax, cl);
        "rol rax, cl", 8, Rotate, 70, |a| a.rol(rax, cl);
        "ror al, cl", 1, Rotate, 40, |a| a.ror(al, cl);
        "ror ax, cl", 2, Rotate, 40, |a| a.ror(ax, cl);
        "ror eax, cl", 4, Rotate, 40, |a| a.ror(eax, cl);
        "ror rax, cl", 8, Rotate, 70, |a| a.ror(rax, cl);
        "rcl al, cl", 1, Rotate, 40, |a| a.rcl(al, cl);
        "rcl ax, cl", 2, Rotate, 40, |a| a.rcl(ax, cl);
        "rcl eax, cl", 4, Rotate, 40, |a| a.rcl(eax, cl);
        "rcl rax, cl", 8, Rotate, 70, |a| a.rcl(rax, cl);
        "rcr al, cl", 1, Rotate, 40, |a| a.rcr(al, cl);
        "rcr ax, cl", 2, Rotate, 40, |a| a.rcr(ax, cl);
        "rcr eax, cl", 4, Rotate, 40, |a| a.rcr(eax, cl);
        "rcr rax, cl", 8, Rotate, 70, |a| a.rcr(rax, cl);
        "rcr ah, cl", 1, Rotate, 40, |a| a.rcr(ah, cl);
        // 16-bit SHLD/SHRD only up to 16: above it Intel and AMD differ (module docs).
        "shld ax, dx, cl", 2, Double, 16, |a| a.shld(ax, dx, cl);
        "shld eax, edx, cl", 4, Double, 40, |a| a.shld(eax, edx, cl);
        "shld rax, rdx, cl", 8, Double, 70, |a| a.shld(rax, rdx, cl);
        "shrd ax, dx, cl", 2, Double, 16, |a| a.shrd(ax, dx, cl);
        "shrd eax, edx, cl", 4, Double, 40, |a| a.shrd(eax, edx, cl);
        "shrd rax, rdx, cl", 8, Double, 70, |a| a.shrd(rax, rdx, cl);
    ];
    for (name, host, code, size, kind, max) in cases {
        compare_with_host(name, host, &code, size, kind, max);
    }
}

#[test]
fn bit_instructions_match_the_host_on_defined_flags() {
    // Defined: BT* CF only; BSF/BSR ZF; TZCNT/LZCNT CF ZF; POPCNT all six.
    let cases = host_cases![
        "bt ax, dx", 2, Rotate, 0, |a| a.bt(ax, dx);
        "bts eax, edx", 4, Rotate, 0, |a| a.bts(eax, edx);
        "btr rax, rdx", 8, Rotate, 0, |a| a.btr(rax, rdx);
        "btc ax, dx", 2, Rotate, 0, |a| a.btc(ax, dx);
        "btc eax, edx", 4, Rotate, 0, |a| a.btc(eax, edx);
        "bsf ax, dx", 2, Rotate, 0, |a| a.bsf(ax, dx);
        "bsf eax, edx", 4, Rotate, 0, |a| a.bsf(eax, edx);
        "bsr eax, edx", 4, Rotate, 0, |a| a.bsr(eax, edx);
        "bsr rax, rdx", 8, Rotate, 0, |a| a.bsr(rax, rdx);
        "tzcnt ax, dx", 2, Rotate, 0, |a| a.tzcnt(ax, dx);
        "tzcnt rax, rdx", 8, Rotate, 0, |a| a.tzcnt(rax, rdx);
        "lzcnt ax, dx", 2, Rotate, 0, |a| a.lzcnt(ax, dx);
        "lzcnt eax, edx", 4, Rotate, 0, |a| a.lzcnt(eax, edx);
        "popcnt ax, dx", 2, Rotate, 0, |a| a.popcnt(ax, dx);
        "popcnt rax, rdx", 8, Rotate, 0, |a| a.popcnt(rax, rdx);
    ];
    let mut offsets: Vec<u64> = VALUES.to_vec();
    offsets.extend([3, 15, 16, 31, 32, 63, 64, 100, (-1i64) as u64]);
    for (name, host, code, _, _, _) in cases {
        let m = match &name[..3] {
            "bt " | "bts" | "btr" | "btc" => CF,
            "bsf" | "bsr" => ZF,
            "tzc" | "lzc" => CF | ZF,
            _ => STATUS,
        };
        let mut b = Bench::new(&code);
        for &d in &VALUES {
            for &s in &offsets {
                for flags in [0x2, 0x2 | STATUS] {
                    let (hr, hf) = host(d, s, 0, flags);
                    let cpu = b.run(&[(RAX, d), (RDX, s)], flags);
                    let (er, ef) = (cpu.state.gpr[RAX], cpu.state.rflags);
                    assert_eq!(
                        (er, ef & m),
                        (hr, hf & m),
                        "{name}: dest={d:#x} src={s:#x} flags={flags:#x}"
                    );
                }
            }
        }
    }
}

#[test]
fn bt_memory_register_offsets_match_the_host() {
    const LEN: usize = 96;
    const MID: usize = 48;
    for (name, code, size) in [
        ("btc word", asm1(|a| a.btc(word_ptr(rsi), dx)), 2),
        ("bts dword", asm1(|a| a.bts(dword_ptr(rsi), edx)), 4),
        ("btr qword", asm1(|a| a.btr(qword_ptr(rsi), rdx)), 8),
    ] {
        let mut b = Bench::new(&code);
        let mut host_buf = [0x5au8; LEN];
        b.write(DATA, &host_buf);
        for off in (-(MID as i64) * 8 + 64..(MID as i64) * 8 - 64).step_by(7) {
            let base = host_buf.as_mut_ptr().wrapping_add(MID);
            let mut hf: u64 = 0x2;
            // SAFETY: RSI points into `host_buf` at MID, and every offset used here
            // selects an operand-sized word at least 8 bytes inside the buffer; the
            // instruction touches only that word, RFLAGS and the declared registers.
            unsafe {
                match size {
                    2 => {
                        std::arch::asm!("push {f}", "popfq", "btc word ptr [rsi], dx", "pushfq", "pop {f}",
                        f = inout(reg) hf, in("rsi") base, in("rdx") off)
                    }
                    4 => {
                        std::arch::asm!("push {f}", "popfq", "bts dword ptr [rsi], edx", "pushfq", "pop {f}",
                        f = inout(reg) hf, in("rsi") base, in("rdx") off)
                    }
                    _ => {
                        std::arch::asm!("push {f}", "popfq", "btr qword ptr [rsi], rdx", "pushfq", "pop {f}",
                        f = inout(reg) hf, in("rsi") base, in("rdx") off)
                    }
                }
            }
            let ef = b
                .run(&[(RSI, DATA + MID as u64), (RDX, off as u64)], 0)
                .state
                .rflags;
            assert_eq!(ef & CF, hf & CF, "{name} offset {off}: CF");
            assert_eq!(b.read(DATA, LEN), host_buf, "{name} offset {off}: memory");
        }
    }
}
