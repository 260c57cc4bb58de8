//! The fetch-decode-execute path end to end on flat memory.

use emu::{Bus, Cpu, CpuFeatures, DecodeCache, FlatBus, StepOutcome};
use iced_x86::code_asm::*;
use mmu::PhysAddr;

fn run(code: &[u8], setup: impl FnOnce(&mut Cpu)) -> (Cpu, FlatBus, StepOutcome) {
    let mut bus = FlatBus::new(16 << 20);
    bus.mem.write(PhysAddr(0x10_0000), code).unwrap();
    let mut cpu = Cpu::new(0, CpuFeatures::default());
    cpu.state.rip = 0x10_0000;
    setup(&mut cpu);
    let mut cache = DecodeCache::new();
    for _ in 0..10_000 {
        let o = cpu.step(&mut cache, &mut bus).unwrap();
        if o != StepOutcome::Retired {
            return (cpu, bus, o);
        }
    }
    panic!("did not stop");
}

#[test]
fn loop_sums() {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.mov(rax, 0u64).unwrap();
    a.mov(rcx, 10u64).unwrap();
    a.set_label(&mut top).unwrap();
    a.add(rax, rcx).unwrap();
    a.sub(rcx, 1).unwrap();
    a.jne(top).unwrap();
    a.mov(qword_ptr(0x2000), rax).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x10_0000).unwrap();
    let (cpu, mut bus, o) = run(&code, |_| {});
    assert_eq!(o, StepOutcome::Halted);
    assert_eq!(cpu.state.gpr[0], 55);
    assert_eq!(bus.phys_mem().read_u64(PhysAddr(0x2000)).unwrap(), 55);
}

#[test]
fn self_modifying_code_takes_effect() {
    // Execute `add rbx, 1`, patch its imm8 to 0x40, execute it again.
    let mut a = CodeAssembler::new(64).unwrap();
    let mut again = a.create_label();
    let mut done = a.create_label();
    a.xor(ebx, ebx).unwrap(); // 31 db
    a.set_label(&mut again).unwrap();
    a.add(rbx, 1).unwrap(); // 48 83 c3 01 at 0x100002, imm8 at 0x100005
    a.cmp(rcx, 0).unwrap();
    a.jne(done).unwrap();
    a.mov(rcx, 1u64).unwrap();
    a.mov(byte_ptr(0x10_0005), 0x40).unwrap();
    a.jmp(again).unwrap();
    a.set_label(&mut done).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x10_0000).unwrap();
    assert_eq!(&code[2..6], &[0x48, 0x83, 0xc3, 0x01]);
    let (cpu, _, o) = run(&code, |_| {});
    assert_eq!(o, StepOutcome::Halted);
    assert_eq!(cpu.state.gpr[3], 0x41, "stale decoded instruction executed");
}

#[test]
fn unsupported_instruction_is_an_error_not_a_panic() {
    // XGETBV (0f 01 d0) is valid but not implemented.
    let mut bus = FlatBus::new(16 << 20);
    bus.mem
        .write(PhysAddr(0x10_0000), &[0x0f, 0x01, 0xd0])
        .unwrap();
    let mut cpu = Cpu::new(0, CpuFeatures::default());
    cpu.state.rip = 0x10_0000;
    let err = cpu.step(&mut DecodeCache::new(), &mut bus).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("xgetbv"), "{msg}");
    assert!(msg.contains("0f 01 d0"), "{msg}");
    assert!(msg.contains("0x100000"), "{msg}");
}

#[test]
fn invalid_opcode_is_ud() {
    let mut bus = FlatBus::new(16 << 20);
    bus.mem.write(PhysAddr(0x10_0000), &[0x0f, 0x0b]).unwrap(); // UD2 handled by system later; use a truly invalid one
    bus.mem.write(PhysAddr(0x10_0000), &[0x06]).unwrap(); // PUSH ES is invalid in 64-bit mode
    let mut cpu = Cpu::new(0, CpuFeatures::default());
    cpu.state.rip = 0x10_0000;
    let o = cpu.step(&mut DecodeCache::new(), &mut bus).unwrap();
    assert_eq!(o, StepOutcome::Exception(emu::Exception::InvalidOpcode));
    assert_eq!(cpu.state.rip, 0x10_0000);
}
