//! One core's step: fetch through the bus, decode (cached), dispatch, retire.

use crate::bus::{AccessKind, Bus};
use crate::decode_cache::{Cached, DecodeCache};
use crate::dispatch;
use crate::exception::{EmuError, Exception, Fault};
use crate::features::CpuFeatures;
use crate::state::CpuState;
use iced_x86::{Code, Decoder, DecoderOptions, Instruction};
use mmu::{PhysAddr, VirtAddr};

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// An instruction retired.
    Retired,
    /// HLT retired, or the core was already halted: it sleeps until an interrupt.
    Halted,
    /// The instruction raised an exception. RIP points at the instruction for
    /// faults and after it for traps (SDM Vol. 3A 6.5). Delivery is the caller's.
    Exception(Exception),
}

/// The last instruction a core retired or tried, for events and error messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastInsn {
    /// Its RIP.
    pub rip: u64,
    /// Its length in bytes (0 if it could not be fetched).
    pub len: u8,
    /// Its bytes (first `len`; only filled when it was decoded, not on cache hits).
    pub bytes: [u8; 15],
    /// It was PAUSE (a spin-wait hint).
    pub pause: bool,
}

/// One x86-64 core: architectural state plus its model parameters.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// Core number (also its APIC ID).
    pub id: u32,
    /// Registers and control state.
    pub state: CpuState,
    /// What CPUID reports.
    pub features: CpuFeatures,
    /// The last instruction stepped.
    pub last: LastInsn,
}

impl Cpu {
    /// A core in 64-bit mode at CPL 0 with the given features.
    pub fn new(id: u32, features: CpuFeatures) -> Self {
        Cpu {
            id,
            state: CpuState::default(),
            features,
            last: LastInsn::default(),
        }
    }

    /// Executes exactly one instruction.
    ///
    /// Faults leave the state as it was before the instruction; an emulator error
    /// (unsupported instruction, missing physical memory) leaves it too.
    ///
    /// The hot path (a decode-cache hit) borrows the cached instruction and its
    /// pre-resolved handler instead of copying the `Instruction` out, and dispatches
    /// with one jump (see [`crate::dispatch`]).
    #[inline]
    pub fn step<B: Bus>(
        &mut self,
        cache: &mut DecodeCache,
        bus: &mut B,
    ) -> Result<StepOutcome, EmuError> {
        self.step_boxed(cache, bus).map_err(|e| *e)
    }

    /// [`Cpu::step`] with the (rare, 80-byte) emulator error boxed, so the result
    /// fits in registers instead of being written to and read back from memory on
    /// every step; `Machine::step` uses it.
    #[inline]
    pub(crate) fn step_boxed<B: Bus>(
        &mut self,
        cache: &mut DecodeCache,
        bus: &mut B,
    ) -> Result<StepOutcome, Box<EmuError>> {
        if self.state.halted {
            return Ok(StepOutcome::Halted);
        }
        // The STI / MOV SS shadow covers exactly one instruction (SDM Vol. 3A 6.8.3).
        self.state.interrupt_shadow = false;
        let rip = self.state.rip;
        // Fetches are execute accesses (SDM Vol. 3A 4.6).
        let va = VirtAddr(rip);
        if !va.is_canonical() {
            return Ok(StepOutcome::Exception(Exception::GeneralProtection(0)));
        }
        let pa = match bus.translate_fetch(&self.state, va) {
            Ok(pa) => pa,
            Err(Fault::Exception(e)) => return Ok(StepOutcome::Exception(e)),
            Err(Fault::Emu(e)) => return Err(e),
        };
        cache.sync(bus.phys_mem());
        let c = match cache.lookup(self.id, pa, rip) {
            Some(c) => {
                self.last.rip = rip;
                self.last.len = c.ins.len() as u8;
                self.last.pause = c.op.pause;
                // Bytes are only needed for events and errors; the cached copy is
                // exact because any write to the page would have dropped it.
                c
            }
            None => match self.fetch_slow(cache, bus, va, pa) {
                Ok(c) => c,
                Err(Fault::Exception(e)) => return Ok(StepOutcome::Exception(e)),
                Err(Fault::Emu(e)) => return Err(e),
            },
        };
        let mut next_rip = rip.wrapping_add(c.ins.len() as u64);
        let r = dispatch::exec(
            &mut self.state,
            bus,
            &c.ins,
            &c.op,
            &mut next_rip,
            &self.features,
            self.id,
        );
        match r {
            Ok(()) => {
                self.state.rip = next_rip;
                if self.state.halted {
                    Ok(StepOutcome::Halted)
                } else {
                    Ok(StepOutcome::Retired)
                }
            }
            Err(Fault::Exception(e)) => {
                if e.is_trap() {
                    self.state.rip = next_rip;
                }
                Ok(StepOutcome::Exception(e))
            }
            Err(Fault::Emu(e)) => Err(self.emu_error(bus, e)),
        }
    }

    /// An emulator error from a handler; "unsupported" gets the instruction's bytes.
    #[cold]
    fn emu_error<B: Bus>(&self, bus: &mut B, mut e: Box<EmuError>) -> Box<EmuError> {
        if let EmuError::Unsupported { bytes, .. } = &mut *e {
            *bytes = self.last_bytes(bus);
        }
        e
    }

    /// Decode-cache miss: reads and decodes the instruction at `va` (physical `pa`)
    /// and caches it (SDM Vol. 3A 4.6: fetches are execute accesses; a fetch that
    /// crosses into an unmapped page faults on the second page's address).
    #[cold]
    #[inline(never)]
    fn fetch_slow<'c, B: Bus>(
        &mut self,
        cache: &'c mut DecodeCache,
        bus: &mut B,
        va: VirtAddr,
        pa: PhysAddr,
    ) -> Result<&'c Cached, Fault> {
        let rip = va.raw();
        let mut buf = [0u8; 15];
        let first = ((4096 - va.page_offset()) as usize).min(15);
        bus.read_phys(&self.state, pa, &mut buf[..first])?;
        let mut ins = decode(&buf[..first], rip);
        let mut crosses = false;
        if ins.code() == Code::INVALID && first < 15 {
            // Maybe the instruction continues on the next page: fetch it too.
            let va2 = va.add(first as u64);
            if !va2.is_canonical() {
                return Err(Exception::GeneralProtection(0).into());
            }
            let full = decode_len_hint(&buf[..first]);
            if full {
                let pa2 = bus.translate(&self.state, va2, AccessKind::Execute, false)?;
                bus.read_phys(&self.state, pa2, &mut buf[first..])?;
                ins = decode(&buf, rip);
                crosses = true;
            }
        }
        self.last.rip = rip;
        self.last.len = ins.len() as u8;
        self.last.bytes = buf;
        self.last.pause = ins.mnemonic() == iced_x86::Mnemonic::Pause;
        if ins.code() == Code::INVALID {
            self.last.len = 1;
            return Err(Exception::InvalidOpcode.into());
        }
        if crosses {
            Ok(cache.uncached(ins))
        } else {
            Ok(cache.insert(bus.phys_mem(), pa, ins))
        }
    }

    /// The bytes of the last instruction, read again through `bus` if it came from the
    /// decode cache (for events and error messages only).
    pub fn last_bytes<B: Bus>(&self, bus: &mut B) -> Vec<u8> {
        let mut out = vec![0u8; self.last.len as usize];
        for (i, b) in out.iter_mut().enumerate() {
            let va = VirtAddr(self.last.rip.wrapping_add(i as u64));
            if let Ok(pa) = bus.translate(&self.state, va, AccessKind::Execute, false) {
                let mut x = [0u8];
                if bus.read_phys(&self.state, pa, &mut x).is_ok() {
                    *b = x[0];
                }
            }
        }
        out
    }
}

#[inline]
fn decode(bytes: &[u8], rip: u64) -> Instruction {
    let mut d = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    d.decode()
}

/// True when the decoder ran out of bytes (so the instruction may continue on the
/// next page) rather than meeting an invalid encoding.
fn decode_len_hint(bytes: &[u8]) -> bool {
    let mut d = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
    let _ = d.decode();
    d.last_error() == iced_x86::DecoderError::NoMoreBytes
}
