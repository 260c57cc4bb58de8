//! The seam between a core and the memory system.
//!
//! A core asks its [`Bus`] to translate linear addresses and to read and write
//! physical memory; it never touches page tables itself. Translation is separate
//! from the physical access so that every instruction can follow the SDM's rule for
//! read-modify-write and page-crossing accesses: translate every page an access
//! touches (for write, when it writes) before changing any byte, so a fault leaves
//! memory untouched. Two buses exist: [`FlatBus`] (identity translation, for unit
//! tests of instruction semantics and the host-CPU differential check) and the
//! MMU-backed bus of the multi-core machine.

use crate::exception::{EmuError, Exception, Fault};
use crate::state::CpuState;
use mmu::{Invalidation, PhysAddr, PhysMem, VirtAddr};

pub use mmu::AccessKind;

/// Memory system as one core sees it.
pub trait Bus {
    /// Translates `la` for `kind` at the core's privilege (CPL, CR0.WP, SMEP, SMAP
    /// with RFLAGS.AC come from `cpu`). `implicit_supervisor` marks accesses the
    /// processor makes on its own behalf (descriptor tables, the TSS, interrupt
    /// frames) that count as supervisor accesses whatever the CPL (SDM 4.6).
    fn translate(
        &mut self,
        cpu: &CpuState,
        la: VirtAddr,
        kind: AccessKind,
        implicit_supervisor: bool,
    ) -> Result<PhysAddr, Fault>;

    /// Translates `la` for an instruction fetch: the same as `translate(cpu, la,
    /// AccessKind::Execute, false)`, which is the default. A separate entry point
    /// so a bus can serve the one translation every instruction needs through a
    /// shortcut (the machine bus memoises the last fetch page in the MMU's fast
    /// path); overrides must keep the outcome and every side effect identical.
    #[inline]
    fn translate_fetch(&mut self, cpu: &CpuState, la: VirtAddr) -> Result<PhysAddr, Fault> {
        self.translate(cpu, la, AccessKind::Execute, false)
    }

    /// Reads physical memory.
    fn read_phys(&mut self, cpu: &CpuState, pa: PhysAddr, buf: &mut [u8]) -> Result<(), Fault>;

    /// Writes physical memory (the bus tells the coherence tracker when the write
    /// lands on a paging structure).
    fn write_phys(&mut self, cpu: &CpuState, pa: PhysAddr, data: &[u8]) -> Result<(), Fault>;

    /// Physical memory, for the decode cache's page flags and drop list.
    fn phys_mem(&mut self) -> &mut PhysMem;

    /// The virtual clock: the machine's global step count. RDTSC derives from it.
    fn clock(&self) -> u64;

    /// RDMSR (`write` = None) or WRMSR of an x2APIC register (0x800..=0x8ff). The
    /// default has no local APIC: #GP(0), as for any MSR that does not exist.
    fn apic_msr(&mut self, cpu: &CpuState, msr: u32, write: Option<u64>) -> Result<u64, Fault> {
        let _ = (cpu, msr, write);
        Err(Exception::GeneralProtection(0).into())
    }

    /// A MOV to CR8 set the task priority to `tpr` (0..=15). CR8 is an alias of
    /// the local APIC's TPR bits 7:4 (SDM Vol. 3A 10.8.6.1), so a bus with an APIC
    /// updates it here, at the write, and nothing has to compare the two after
    /// every step. The default has no APIC.
    fn set_task_priority(&mut self, tpr: u8) {
        let _ = tpr;
    }

    /// A MOV to CR0/CR3/CR4, INVLPG or INVPCID asks the caches to drop what SDM
    /// Vol. 3A 4.10.4 requires. `op` comes from the mmu crate's own checks
    /// ([`mmu::invlpg`], [`mmu::invpcid`], [`mmu::check_mov_cr0`],
    /// [`mmu::check_mov_cr4`], [`mmu::cr3_after_mov`]), so the CPU and the MMU
    /// share one definition of every operation. The CPU calls this *before* it
    /// writes any register, so `cpu` holds the registers the operation is judged
    /// by (the current PCID, CR4.PCIDE). There is no default: a bus that caches
    /// translations must apply it, and one that caches nothing says so.
    fn invalidate(&mut self, cpu: &CpuState, op: Invalidation) -> Result<(), Fault>;
}

/// Identity-mapped memory: linear = physical, every access allowed. Used where the
/// paging model is not under test (instruction semantics, the differential check).
#[derive(Clone, Debug)]
pub struct FlatBus {
    /// The memory.
    pub mem: PhysMem,
    /// Clock value returned by [`Bus::clock`].
    pub clock: u64,
}

impl FlatBus {
    /// Flat memory of `size` bytes.
    pub fn new(size: u64) -> Self {
        FlatBus {
            mem: PhysMem::new(size),
            clock: 0,
        }
    }
}

fn phys_err(cpu: &CpuState, e: mmu::MemError) -> Fault {
    Fault::from(EmuError::PhysicalOutOfRange {
        rip: cpu.rip,
        addr: e.addr.raw(),
        len: e.len,
    })
}

impl Bus for FlatBus {
    #[inline]
    fn translate(
        &mut self,
        _cpu: &CpuState,
        la: VirtAddr,
        _kind: AccessKind,
        _implicit: bool,
    ) -> Result<PhysAddr, Fault> {
        Ok(PhysAddr(la.raw()))
    }

    #[inline]
    fn read_phys(&mut self, cpu: &CpuState, pa: PhysAddr, buf: &mut [u8]) -> Result<(), Fault> {
        self.mem.read(pa, buf).map_err(|e| phys_err(cpu, e))
    }

    #[inline]
    fn write_phys(&mut self, cpu: &CpuState, pa: PhysAddr, data: &[u8]) -> Result<(), Fault> {
        self.mem
            .write(pa, data)
            .map(|_| ())
            .map_err(|e| phys_err(cpu, e))
    }

    fn phys_mem(&mut self) -> &mut PhysMem {
        &mut self.mem
    }

    fn clock(&self) -> u64 {
        self.clock
    }

    /// Nothing is cached, so nothing is invalidated.
    fn invalidate(&mut self, _cpu: &CpuState, _op: Invalidation) -> Result<(), Fault> {
        Ok(())
    }
}
