//! A page-table builder for tests, scenario setup and identity maps.
//!
//! Frames for tables come from a caller-given physical range, in increasing order,
//! so the same calls always produce the same tables at the same addresses. New
//! tables are zeroed. Intermediate entries get `table_flags` (default P|RW|US, so
//! the leaf alone decides rights).
//!
//! The builder writes memory directly: use it before any core caches translations
//! from these tables, and edit live tables with [`crate::Tracker::write_u64`] (or
//! a guest write followed by [`crate::Tracker::on_write`]) so the coherence tracker
//! sees the change.

use crate::addr::{PageSize, PhysAddr, VirtAddr, PAGE_SIZE};
use crate::paging::entry::{pte, table_addr_mask, DEFAULT_MAXPHYADDR};
use crate::phys_mem::{MemError, PhysMem};
use thiserror::Error;

/// Why a mapping could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BuildError {
    /// The frame range is used up.
    #[error("page-table frame range {start}..{end} is exhausted")]
    OutOfFrames {
        /// Range start.
        start: PhysAddr,
        /// Range end.
        end: PhysAddr,
    },
    /// va or pa is not aligned to the page size.
    #[error("cannot map {va} -> {pa} as a {} page: not aligned", size.name())]
    Misaligned {
        /// Linear address.
        va: VirtAddr,
        /// Physical address.
        pa: PhysAddr,
        /// Page size.
        size: PageSize,
    },
    /// A large page already maps the region where a table is needed.
    #[error("mapping {va}: level {level} entry {value:#x} already maps a large page")]
    Conflict {
        /// Linear address.
        va: VirtAddr,
        /// Level of the conflicting entry.
        level: u8,
        /// Its value.
        value: u64,
    },
    /// The linear address is not canonical.
    #[error("{0} is not canonical")]
    NonCanonical(VirtAddr),
    /// Memory access failed.
    #[error(transparent)]
    Mem(#[from] MemError),
}

/// Builds 4-level page tables in guest memory.
#[derive(Clone, Debug)]
pub struct Builder {
    root: PhysAddr,
    next: u64,
    start: u64,
    end: u64,
    table_flags: u64,
    maxphyaddr: u8,
}

impl Builder {
    /// A builder allocating table frames from `[start, end)` (4 KiB aligned upwards);
    /// the first frame becomes the PML4.
    pub fn new(mem: &mut PhysMem, start: PhysAddr, end: PhysAddr) -> Result<Self, BuildError> {
        let s = start.raw().div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let mut b = Builder {
            root: PhysAddr(0),
            next: s,
            start: s,
            end: end.raw(),
            table_flags: pte::P | pte::RW | pte::US,
            maxphyaddr: DEFAULT_MAXPHYADDR,
        };
        b.root = b.alloc_table(mem)?;
        Ok(b)
    }

    /// Flags for newly made intermediate entries (P is always added).
    pub fn with_table_flags(mut self, flags: u64) -> Self {
        self.table_flags = flags | pte::P;
        self
    }

    /// The PML4 address.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// A CR3 value for the root with PCID `pcid` (use 0 with CR4.PCIDE=0).
    pub fn cr3(&self, pcid: u16) -> u64 {
        self.root.raw() | (pcid as u64 & 0xfff)
    }

    /// The next frame that would be allocated.
    pub fn next_frame(&self) -> PhysAddr {
        PhysAddr(self.next)
    }

    /// Allocates and zeroes a frame from the range.
    pub fn alloc_table(&mut self, mem: &mut PhysMem) -> Result<PhysAddr, BuildError> {
        if self.next + PAGE_SIZE > self.end {
            return Err(BuildError::OutOfFrames {
                start: PhysAddr(self.start),
                end: PhysAddr(self.end),
            });
        }
        let f = PhysAddr(self.next);
        self.next += PAGE_SIZE;
        mem.write(f, &[0u8; PAGE_SIZE as usize])?;
        Ok(f)
    }

    /// Maps `va` to `pa` with a leaf of `size` and `flags` (give P yourself; PS is
    /// added for 2 MiB / 1 GiB). Creates missing tables. Returns the address of the
    /// leaf entry.
    pub fn map(
        &mut self,
        mem: &mut PhysMem,
        va: VirtAddr,
        pa: PhysAddr,
        size: PageSize,
        flags: u64,
    ) -> Result<PhysAddr, BuildError> {
        if !va.is_canonical() {
            return Err(BuildError::NonCanonical(va));
        }
        if va.raw() & size.offset_mask() != 0 || pa.raw() & size.offset_mask() != 0 {
            return Err(BuildError::Misaligned { va, pa, size });
        }
        let leaf_level = size.leaf_level();
        let mut table = self.root;
        let mut level = 4u8;
        while level > leaf_level {
            let ea = table.add(va.table_index(level) * 8);
            let v = mem.read_u64(ea)?;
            if v & pte::P == 0 {
                let t = self.alloc_table(mem)?;
                mem.write_u64(ea, t.raw() | self.table_flags)?;
                table = t;
            } else if v & pte::PS != 0 && level < 4 {
                return Err(BuildError::Conflict {
                    va,
                    level,
                    value: v,
                });
            } else {
                table = PhysAddr(v & table_addr_mask(self.maxphyaddr));
            }
            level -= 1;
        }
        let ea = table.add(va.table_index(leaf_level) * 8);
        let ps = if leaf_level > 1 { pte::PS } else { 0 };
        mem.write_u64(ea, pa.raw() | flags | ps)?;
        Ok(ea)
    }

    /// Maps `len` bytes (rounded up to 4 KiB) from `va` to `pa` with 4 KiB pages.
    pub fn map_range(
        &mut self,
        mem: &mut PhysMem,
        va: VirtAddr,
        pa: PhysAddr,
        len: u64,
        flags: u64,
    ) -> Result<(), BuildError> {
        let mut off = 0;
        while off < len {
            self.map(mem, va.add(off), pa.add(off), PageSize::Size4K, flags)?;
            off += PAGE_SIZE;
        }
        Ok(())
    }

    /// Address of the entry at `level` used to translate `va` (None if an upper
    /// entry is not present or maps a large page above `level`).
    pub fn entry_addr(&self, mem: &PhysMem, va: VirtAddr, level: u8) -> Option<PhysAddr> {
        entry_addr(mem, self.root, va, level)
    }
}

/// Address of the entry at `level` (4..=1) used to translate `va` from `root`.
pub fn entry_addr(mem: &PhysMem, root: PhysAddr, va: VirtAddr, level: u8) -> Option<PhysAddr> {
    let mut table = root;
    let mut l = 4u8;
    loop {
        let ea = table.add(va.table_index(l) * 8);
        if l == level {
            return Some(ea);
        }
        let v = mem.read_u64(ea).ok()?;
        if v & pte::P == 0 || (v & pte::PS != 0 && l < 4) || l <= 1 {
            return None;
        }
        table = PhysAddr(v & table_addr_mask(DEFAULT_MAXPHYADDR));
        l -= 1;
    }
}
