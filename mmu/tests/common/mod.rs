//! A small multi-core world for the integration tests.
#![allow(dead_code)]

pub mod reference;

use mmu::pagetable::Builder;
use mmu::*;

/// Data pages live from here up; tables come from TABLES..TABLES_END.
pub const TABLES: u64 = 0x10_0000;
pub const TABLES_END: u64 = 0x40_0000;
pub const MEM: u64 = 64 << 20;

pub struct World {
    pub mem: PhysMem,
    pub tracker: Tracker,
    pub cores: Vec<CoreMmu>,
    pub regs: Vec<PagingRegs>,
    pub b: Builder,
    pub sink: VecSink,
    pub step: u64,
}

impl World {
    pub fn new(cfg: &MmuConfig, ncores: u32, cr4: u64, efer: u64) -> Self {
        let mut mem = PhysMem::new(MEM);
        let b = Builder::new(&mut mem, PhysAddr(TABLES), PhysAddr(TABLES_END)).unwrap();
        let regs = PagingRegs::long_mode(b.cr3(0), cr4, efer);
        World {
            mem,
            tracker: Tracker::new(),
            cores: (0..ncores).map(|c| CoreMmu::new(c, cfg)).collect(),
            regs: vec![regs; ncores as usize],
            b,
            sink: VecSink::default(),
            step: 0,
        }
    }

    pub fn simple(ncores: u32) -> Self {
        Self::new(&MmuConfig::default(), ncores, 0, efer::NXE)
    }

    pub fn map(&mut self, va: u64, pa: u64, size: PageSize, flags: u64) -> PhysAddr {
        self.b
            .map(&mut self.mem, VirtAddr(va), PhysAddr(pa), size, flags)
            .unwrap()
    }

    pub fn ctx(&mut self, core: u32) -> AccessCtx {
        self.step += 1;
        AccessCtx {
            core,
            step: self.step,
            rip: 0x1000 + self.step,
        }
    }

    pub fn access(&mut self, core: u32, va: u64, a: Access) -> Result<PhysAddr, TranslateError> {
        let ctx = self.ctx(core);
        let regs = self.regs[core as usize];
        self.cores[core as usize].translate(
            &mut self.mem,
            &mut self.tracker,
            &regs,
            VirtAddr(va),
            a,
            ctx,
            &mut self.sink,
        )
    }

    pub fn read(&mut self, core: u32, va: u64) -> Result<PhysAddr, TranslateError> {
        self.access(core, va, Access::kernel_read())
    }

    pub fn write(&mut self, core: u32, va: u64) -> Result<PhysAddr, TranslateError> {
        self.access(core, va, Access::kernel_write())
    }

    pub fn inv(&mut self, core: u32, op: Invalidation) -> Removed {
        let ctx = self.ctx(core);
        let regs = self.regs[core as usize];
        self.cores[core as usize].invalidate(
            &mut self.mem,
            op,
            &regs,
            &mut self.tracker,
            ctx,
            &mut self.sink,
        )
    }

    /// A guest write of a paging-structure entry by `core`, tracked.
    pub fn set_entry(&mut self, core: u32, pa: PhysAddr, v: u64) {
        let ctx = self.ctx(core);
        self.tracker
            .write_u64(&mut self.mem, pa, v, ctx, &mut self.sink)
            .unwrap();
    }

    pub fn entry(&self, va: u64, level: u8) -> PhysAddr {
        self.b.entry_addr(&self.mem, VirtAddr(va), level).unwrap()
    }

    pub fn get(&self, pa: PhysAddr) -> u64 {
        self.mem.read_u64(pa).unwrap()
    }

    pub fn stale_uses(&self) -> Vec<StaleUse> {
        self.sink.stale_uses().cloned().collect()
    }

    pub fn clear_events(&mut self) {
        self.sink.0.clear();
    }

    pub fn tlb_len(&self, core: u32) -> usize {
        self.cores[core as usize].dump(&self.tracker).tlb.len()
    }

    pub fn psc_len(&self, core: u32) -> usize {
        self.cores[core as usize].dump(&self.tracker).psc.len()
    }

    /// Does `core` hold a TLB entry for va (any PCID)?
    pub fn has_tlb(&self, core: u32, va: u64) -> bool {
        self.cores[core as usize]
            .dump(&self.tracker)
            .tlb
            .iter()
            .any(|e| e.va.raw() == va)
    }
}

pub const RW: u64 = pte::P | pte::RW;
pub const URW: u64 = pte::P | pte::RW | pte::US;
