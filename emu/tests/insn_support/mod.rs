//! Shared by the per-family instruction tests: where code and data go, the flag
//! bits, a one-instruction assembler, and [`M`], the one-core harness every
//! `insn_*` test file drives (one copy, so a fix to how a test core is set up or
//! stepped reaches every family at once).
#![allow(dead_code, unused_imports)]

use emu::{Bus, Cpu, CpuFeatures, DecodeCache, Exception, FlatBus, StepOutcome};
use iced_x86::code_asm::{CodeAssembler, IcedError};
use mmu::{PhysAddr, PhysMem};

pub use emu::state::control::{AF, CF, OF, PF, SF, STATUS, ZF};

/// Where the instruction under test is loaded.
pub const CODE: u64 = 0x10_0000;
/// A data page for memory operands.
pub const DATA: u64 = 0x2000;
/// Initial RSP of [`M`]'s core.
pub const STACK: u64 = 0x8_0000;
/// Size of [`M`]'s flat memory.
pub const MEM: u64 = 16 << 20;

/// Assembles one instruction at `CODE`.
pub fn asm1(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(CODE).unwrap()
}

/// A bus a test file wraps around flat memory (to record invalidations, fault on
/// a page, ...). [`M`] needs to build one and to reach its memory.
pub trait TestBus: Bus {
    /// The bus over `flat`, with nothing recorded yet.
    fn around(flat: FlatBus) -> Self;
    /// The flat memory underneath.
    fn flat(&self) -> &FlatBus;
    /// The same, writable.
    fn flat_mut(&mut self) -> &mut FlatBus;
    /// Extra checks after a fault that must have had no effect (e.g. that nothing
    /// was invalidated); [`M::expect_fault`] calls it.
    fn after_fault(&self) {}
}

impl TestBus for FlatBus {
    fn around(flat: FlatBus) -> Self {
        flat
    }
    fn flat(&self) -> &FlatBus {
        self
    }
    fn flat_mut(&mut self) -> &mut FlatBus {
        self
    }
}

/// One core on [`MEM`] bytes of flat memory behind bus `B`, code at [`CODE`], RSP
/// at [`STACK`], CPL 0.
pub struct M<B: TestBus> {
    pub cpu: Cpu,
    pub bus: B,
    pub cache: DecodeCache,
}

impl<B: TestBus> M<B> {
    /// The core with `f`'s code.
    pub fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Self {
        Self::asm_with(CpuFeatures::default(), f)
    }

    /// The same, with CPU features `feat`.
    pub fn asm_with(
        feat: CpuFeatures,
        f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    ) -> Self {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a).unwrap();
        Self::bytes_with(feat, &a.assemble(CODE).unwrap())
    }

    /// The core with machine code `code`.
    pub fn bytes(code: &[u8]) -> Self {
        Self::bytes_with(CpuFeatures::default(), code)
    }

    /// The same, with CPU features `feat`.
    pub fn bytes_with(feat: CpuFeatures, code: &[u8]) -> Self {
        let mut flat = FlatBus::new(MEM);
        flat.mem.write(PhysAddr(CODE), code).unwrap();
        let mut cpu = Cpu::new(0, feat);
        cpu.state.rip = CODE;
        cpu.state.gpr[4] = STACK;
        M {
            cpu,
            bus: B::around(flat),
            cache: DecodeCache::new(),
        }
    }

    /// One step, which must not be an emulator error.
    pub fn step(&mut self) -> StepOutcome {
        self.cpu.step(&mut self.cache, &mut self.bus).unwrap()
    }

    /// Steps `n` instructions, each of which must retire.
    pub fn steps(&mut self, n: usize) {
        for i in 0..n {
            assert_eq!(self.step(), StepOutcome::Retired, "step {i}");
        }
    }

    /// CPL 3: user code and stack selectors.
    pub fn user(&mut self) {
        self.cpu.state.sel[emu::state::Seg::Cs as usize] = 0x2b;
        self.cpu.state.sel[emu::state::Seg::Ss as usize] = 0x23;
    }

    /// General register `i`.
    pub fn r(&self, i: usize) -> u64 {
        self.cpu.state.gpr[i]
    }

    fn mem(&self) -> &PhysMem {
        &self.bus.flat().mem
    }

    fn mem_mut(&mut self) -> &mut PhysMem {
        &mut self.bus.flat_mut().mem
    }

    /// The u64 at physical address `a`.
    pub fn m64(&self, a: u64) -> u64 {
        self.mem().read_u64(PhysAddr(a)).unwrap()
    }

    /// Stores `v` at physical address `a`.
    pub fn set64(&mut self, a: u64, v: u64) {
        self.mem_mut().write_u64(PhysAddr(a), v).unwrap();
    }

    /// Stores `data` at physical address `a`.
    pub fn set(&mut self, a: u64, data: &[u8]) {
        self.mem_mut().write(PhysAddr(a), data).unwrap();
    }

    /// `n` bytes at physical address `a`.
    pub fn read(&self, a: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.mem().read(PhysAddr(a), &mut b).unwrap();
        b
    }

    /// Expects a fault with RIP at the instruction, no state change, and whatever
    /// the bus checks after a fault.
    pub fn expect_fault(&mut self, e: Exception) {
        let before = self.cpu.state.clone();
        assert_eq!(self.step(), StepOutcome::Exception(e));
        assert_eq!(self.cpu.state, before, "fault changed state");
        self.bus.after_fault();
    }

    /// Expects a retired instruction that changed nothing but RIP.
    pub fn expect_no_effect(&mut self) {
        let mut before = self.cpu.state.clone();
        self.steps(1);
        before.rip = self.cpu.state.rip;
        assert_eq!(self.cpu.state, before);
    }
}
