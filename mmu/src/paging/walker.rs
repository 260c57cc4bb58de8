//! The 4-level page walk (SDM Vol. 3A 4.5), read-only.
//!
//! [`walk`] reads entries and decides what they mean; it never writes. The per-core
//! facade (`mmu.rs`) checks access rights on the result (SDM 4.6) and then sets the
//! A and D flags with locked read-modify-writes (SDM 4.8), so that the same walk
//! serves translations, the coherence oracle's fresh walks and debugger views.

use super::access::Rights;
use super::entry::{addr_field, pte, reserved_mask, table_addr_mask};
use crate::addr::{PageSize, PhysAddr, VirtAddr};
use crate::phys_mem::{MemError, PhysMem};
use serde::{Deserialize, Serialize};

/// Parameters of a walk that come from configuration and EFER, not from the entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkParams {
    /// MAXPHYADDR: bits 51:MAXPHYADDR of entries are reserved.
    pub maxphyaddr: u8,
    /// 1 GiB pages supported (else PS=1 in a PDPTE is a reserved-bit fault).
    pub huge_1g: bool,
    /// IA32_EFER.NXE: bit 63 is XD (else reserved).
    pub nxe: bool,
}

/// One paging-structure entry used by a walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    /// 4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE.
    pub level: u8,
    /// Physical address of the entry.
    pub pa: PhysAddr,
    /// Its value when read (or after the walker's own A/D update).
    pub value: u64,
}

/// The entries a walk used, top-down. Fixed size: no allocation on the walk path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Path {
    entries: [PathEntry; 4],
    len: u8,
}

impl Path {
    /// An empty path.
    pub const fn new() -> Self {
        Path {
            entries: [PathEntry {
                level: 0,
                pa: PhysAddr(0),
                value: 0,
            }; 4],
            len: 0,
        }
    }
    /// Appends an entry (at most 4).
    #[inline]
    pub fn push(&mut self, e: PathEntry) {
        debug_assert!(self.len < 4, "a 4-level walk uses at most 4 entries");
        if (self.len as usize) < 4 {
            self.entries[self.len as usize] = e;
            self.len += 1;
        }
    }
    /// The entries, top-down.
    #[inline]
    pub fn entries(&self) -> &[PathEntry] {
        &self.entries[..self.len as usize]
    }
    /// Mutable entries (the walker's A/D update refreshes values).
    #[inline]
    pub fn entries_mut(&mut self) -> &mut [PathEntry] {
        &mut self.entries[..self.len as usize]
    }
    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// No entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Drops entries below `keep`.
    #[inline]
    pub fn truncate(&mut self, keep: usize) {
        self.len = self.len.min(keep as u8);
    }
}

/// What a walk found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WalkResult {
    /// A valid translation: page frame (base of the page), size, combined rights,
    /// the leaf's G and D flags.
    Leaf {
        /// Physical base of the page.
        frame: PhysAddr,
        /// Page size.
        size: PageSize,
        /// Rights combined over all levels.
        rights: Rights,
        /// G=1 in the leaf (global only if CR4.PGE=1 too).
        global: bool,
        /// D=1 in the leaf.
        dirty: bool,
    },
    /// The walk stopped, as asked, after a non-leaf entry at `level`: `next` is the
    /// table it references. This is what a paging-structure-cache entry holds.
    Table {
        /// Level of the entry (4, 3 or 2).
        level: u8,
        /// The next table.
        next: PhysAddr,
        /// Rights combined down to and including this level.
        rights: Rights,
    },
    /// An entry with P=0 at `level` (SDM 4.7: #PF with P=0).
    NotPresent {
        /// Level of the not-present entry.
        level: u8,
    },
    /// A present entry with a reserved bit set at `level` (#PF with P=1, RSVD=1).
    Reserved {
        /// Level of the offending entry.
        level: u8,
    },
}

impl WalkResult {
    /// True for NotPresent / Reserved.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            WalkResult::NotPresent { .. } | WalkResult::Reserved { .. }
        )
    }
}

/// Where a walk starts: at the root (`level` 4, CR3's table) or below it, from a
/// paging-structure-cache entry (SDM 4.10.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkStart {
    /// Level of the first entry to read.
    pub level: u8,
    /// Table holding that entry.
    pub table: PhysAddr,
    /// Rights combined over the levels above (from the cache entry).
    pub rights: Rights,
}

impl WalkStart {
    /// A walk from the root table `root`.
    pub fn root(root: PhysAddr) -> Self {
        WalkStart {
            level: 4,
            table: root,
            rights: Rights::ALL,
        }
    }
}

/// The root table address in CR3 (bits M-1:12, SDM 4.5 table 4-12).
#[inline]
pub fn cr3_root(cr3: u64, maxphyaddr: u8) -> PhysAddr {
    PhysAddr(cr3 & table_addr_mask(maxphyaddr))
}

/// Walks `va` from `start` down to a leaf, or down to `stop_level` (a non-leaf entry
/// at that level ends the walk with [`WalkResult::Table`]; 0 = go to the leaf).
/// Every entry read is appended to `path`.
///
/// Follows SDM Vol. 3A 4.5.4: at each level, (1) read the entry selected by the
/// 9-bit index of `va`; (2) P=0 ends the walk (not present); (3) a set reserved bit
/// ends it (RSVD); (4) PS=1 in a PDPTE (1 GiB, if supported) or PDE (2 MiB), or any
/// PTE, maps the page; otherwise the entry references the next table.
pub fn walk(
    mem: &PhysMem,
    va: VirtAddr,
    start: WalkStart,
    params: WalkParams,
    stop_level: u8,
    path: &mut Path,
) -> Result<WalkResult, MemError> {
    let mut table = start.table;
    let mut rights = start.rights;
    let mut level = start.level;
    while level >= 1 {
        // Step 1: the entry's address is the table base plus 8 × index (4.5.4).
        let pa = table.add(va.table_index(level) * 8);
        let v = mem.read_u64(pa)?;
        path.push(PathEntry {
            level,
            pa,
            value: v,
        });
        // Step 2: P=0 — no valid translation (4.7).
        if v & pte::P == 0 {
            return Ok(WalkResult::NotPresent { level });
        }
        let ps = v & pte::PS != 0;
        let leaf = match level {
            1 => true,
            2 => ps,
            3 => ps && params.huge_1g,
            _ => false,
        };
        // Step 3: reserved bits (tables 4-14..4-19); PS=1 in a PDPTE is reserved
        // when 1 GiB pages are not supported.
        let mut rsvd = reserved_mask(level, leaf, params.maxphyaddr, params.nxe);
        if level == 3 && !params.huge_1g {
            rsvd |= pte::PS;
        }
        if v & rsvd != 0 {
            return Ok(WalkResult::Reserved { level });
        }
        // Rights combine across levels (4.6, 4.10.2.2).
        rights = rights.and(Rights::of_entry(v, params.nxe));
        if leaf {
            let (size, lo) = match level {
                1 => (PageSize::Size4K, 12),
                2 => (PageSize::Size2M, 21),
                _ => (PageSize::Size1G, 30),
            };
            return Ok(WalkResult::Leaf {
                frame: PhysAddr(v & addr_field(params.maxphyaddr, lo)),
                size,
                rights,
                global: v & pte::G != 0,
                dirty: v & pte::D != 0,
            });
        }
        // Step 4: reference to the next table.
        let next = PhysAddr(v & table_addr_mask(params.maxphyaddr));
        if level == stop_level {
            return Ok(WalkResult::Table {
                level,
                next,
                rights,
            });
        }
        table = next;
        level -= 1;
    }
    // Unreachable for start.level in 1..=4; a start level of 0 maps nothing.
    Ok(WalkResult::NotPresent { level: 0 })
}

/// "frame 0x800000, 4K page, W U X, dirty": what a cached entry or a fresh walk
/// translates to, for reports.
impl std::fmt::Display for WalkResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkResult::Leaf {
                frame,
                size,
                rights,
                global,
                dirty,
            } => {
                write!(f, "frame {frame}, {} page, rights {rights:?}", size.name())?;
                if *global {
                    write!(f, ", global")?;
                }
                if *dirty {
                    write!(f, ", dirty")?;
                }
                Ok(())
            }
            WalkResult::Table {
                level,
                next,
                rights,
            } => write!(
                f,
                "level-{level} entry -> table {next}, rights so far {rights:?}"
            ),
            WalkResult::NotPresent { level } => write!(f, "not present at level {level}"),
            WalkResult::Reserved { level } => write!(f, "reserved bit set at level {level}"),
        }
    }
}
