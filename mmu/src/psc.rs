//! Paging-structure caches (SDM Vol. 3A 4.10.3): PML4E, PDPTE and PDE caches.
//!
//! An entry caches, for one PCID and one region of linear addresses, the physical
//! address of the next paging structure and the rights combined down to its level
//! (SDM 4.10.3.1). A walk that hits one starts below the root (SDM 4.10.3.2), so a
//! stale upper-level entry gives a stale walk even when the PTE in memory is fresh.
//! Fully associative, LRU, deterministic. Only fills and `invalidate::apply` change
//! them. Entries are never global (the G flag is ignored in non-leaf entries).

use crate::addr::{PhysAddr, VirtAddr};
use crate::coherence::RecId;
use crate::config::PscConfig;
use crate::paging::access::Rights;

/// One paging-structure-cache entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PscEntry {
    /// PCID the entry was made under.
    pub pcid: u16,
    /// Linear-address bits above the entry's level (va >> 39 / 30 / 21).
    pub tag: u64,
    /// The next table (PDPT / PD / PT).
    pub next: PhysAddr,
    /// Rights combined down to this level.
    pub rights: Rights,
    /// Coherence-tracker record.
    pub rec: RecId,
    /// LRU stamp.
    pub stamp: u64,
}

/// Shift of the tag for a cache of `level` (4 = PML4E cache: bits 47:39).
#[inline]
pub(crate) const fn tag_shift(level: u8) -> u32 {
    12 + 9 * (level as u32 - 1)
}

/// Tag of `va` for `level`, ignoring the sign-extension bits.
#[inline]
pub(crate) fn tag_of(va: VirtAddr, level: u8) -> u64 {
    (va.raw() & 0x0000_ffff_ffff_ffff) >> tag_shift(level)
}

/// One cache (one level).
#[derive(Clone, Debug)]
pub(crate) struct PscLevel {
    pub(crate) level: u8,
    cap: usize,
    pub(crate) entries: Vec<PscEntry>,
    clock: u64,
}

impl PscLevel {
    fn new(level: u8, cap: usize) -> Self {
        PscLevel {
            level,
            cap,
            entries: Vec::with_capacity(cap),
            clock: 0,
        }
    }

    /// Capacity above zero.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// Index of the entry for (pcid, va), if any. Read-only.
    #[inline]
    pub(crate) fn find(&self, va: VirtAddr, pcid: u16) -> Option<usize> {
        let tag = tag_of(va, self.level);
        self.entries
            .iter()
            .position(|e| e.pcid == pcid && e.tag == tag)
    }

    /// Looks up and refreshes LRU.
    #[inline]
    pub(crate) fn lookup(&mut self, va: VirtAddr, pcid: u16) -> Option<PscEntry> {
        let i = self.find(va, pcid)?;
        self.clock += 1;
        self.entries[i].stamp = self.clock;
        Some(self.entries[i])
    }

    /// Inserts (replacing the same key, else the LRU entry when full); returns the
    /// entry that left. A disabled cache (capacity 0) returns `e` itself.
    pub(crate) fn insert(&mut self, mut e: PscEntry) -> Option<PscEntry> {
        if self.cap == 0 {
            return Some(e);
        }
        self.clock += 1;
        e.stamp = self.clock;
        if let Some(i) = self
            .entries
            .iter()
            .position(|o| o.pcid == e.pcid && o.tag == e.tag)
        {
            return Some(std::mem::replace(&mut self.entries[i], e));
        }
        if self.entries.len() < self.cap {
            self.entries.push(e);
            return None;
        }
        let mut v = 0;
        for (i, o) in self.entries.iter().enumerate() {
            if o.stamp < self.entries[v].stamp {
                v = i;
            }
        }
        Some(std::mem::replace(&mut self.entries[v], e))
    }

    /// Removes entries matching `pred`, handing each to `out`; keeps order.
    pub(crate) fn remove_where(
        &mut self,
        mut pred: impl FnMut(&PscEntry) -> bool,
        mut out: impl FnMut(PscEntry),
    ) -> u32 {
        let mut n = 0;
        self.entries.retain(|e| {
            if pred(e) {
                out(*e);
                n += 1;
                false
            } else {
                true
            }
        });
        n
    }
}

/// The three caches of one core. Index 0 = PML4E cache (level 4), 1 = PDPTE cache
/// (level 3), 2 = PDE cache (level 2).
#[derive(Clone, Debug)]
pub(crate) struct Psc {
    pub(crate) levels: [PscLevel; 3],
}

impl Psc {
    pub(crate) fn new(cfg: &PscConfig) -> Self {
        Psc {
            levels: [
                PscLevel::new(4, cfg.pml4e),
                PscLevel::new(3, cfg.pdpte),
                PscLevel::new(2, cfg.pde),
            ],
        }
    }

    /// The cache of `level` (4, 3 or 2).
    #[inline]
    pub(crate) fn level_mut(&mut self, level: u8) -> &mut PscLevel {
        &mut self.levels[(4 - level) as usize]
    }

    /// The cache of `level` (4, 3 or 2).
    #[inline]
    pub(crate) fn level(&self, level: u8) -> &PscLevel {
        &self.levels[(4 - level) as usize]
    }
}
