//! Software translation caches as derived entries of the coherence tracker.
//!
//! A kernel that fills real PTEs from software page tables (the DragonFly
//! vkernel's VPTEs behind a MAP_VPAGETABLE region: the host's #PF handler walks
//! them and enters a real PTE) makes every real PTE of that region a *cache* of a
//! software entry, exactly as a TLB entry caches a PTE. When the software entry
//! changes and nobody removes the real PTE (MADV_INVAL), the real page tables never
//! change, so no TLB entry is stale; the stale translation is one level up.
//!
//! Each page of a declared region ([`SoftCacheSpec`]) is one derived record in the
//! [`Tracker`](crate::Tracker). It is indexed, in the tracker's reverse index, by
//! every entry its two walks read: the real walk to the page's PTE and the software
//! walk from the root software entry down to the leaf. A write to one of them
//! re-evaluates only the records built from it (the same O(affected) cost as a
//! hardware entry); nothing rescans. A derived record changes no hardware state, so
//! its transitions leave the tracker's generation (the fast paths) alone.
//!
//! Staleness rule: a present real PTE is stale when the software walk now fails,
//! names another host frame, or forbids something the real PTE still allows:
//! writes (the host maps writable only when the walk has the write bit at every
//! level and, with a dirty bit in the layout, that bit in the leaf) or fetches (a
//! no-execute bit at some level). A use is stale when the access reached the real
//! PTE's frame and the difference matters for it: any access for a frame or
//! validity mismatch, writes only for a lost write right, fetches only for NX.
//! Refilling the real PTE (a change other than A/D) starts a new cached entry.

use crate::addr::PhysAddr;
use crate::addr::VirtAddr;
use crate::events::WriteInfo;
use crate::paging::access::{AccessKind, Rights};
use crate::paging::walker::{Path, WalkParams, WalkResult};
use crate::phys_mem::PhysMem;
use crate::PageSize;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a kernel's software page-table entries are laid out: which bits mean what,
/// how many table levels sit below the root entry, and where the tables live.
/// A scenario describes it; nothing here assumes a particular kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftLayout {
    /// Table levels below the root entry (0: the root entry is the leaf).
    pub levels: u8,
    /// Index bits per level (9 for 512-entry tables of 8-byte entries).
    pub index_bits: u8,
    /// Bit(s) that make an entry valid.
    pub valid: u64,
    /// Bit(s) every level needs for the host to map the page writable.
    pub write: u64,
    /// Bit(s) the leaf needs too before the host maps the page writable (a
    /// modified bit: the first write faults so the host can set it); 0 for none.
    pub dirty: u64,
    /// Bit(s) that forbid fetches at any level; 0 for none.
    pub no_exec: u64,
    /// Bit(s) that end the walk early with a bigger page; 0 for none.
    pub page_size: u64,
    /// The frame field: software-physical address of the next table or the page.
    pub frame: u64,
    /// Host physical address of software-physical address 0: tables and frames
    /// named by entries are at `backing + frame`.
    pub backing: u64,
}

/// What is wrong with a [`SoftLayout`]: the field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `levels` is above 4.
    Levels(u8),
    /// `index_bits` is 0 or too large for 8-byte entries in 4 KiB tables.
    IndexBits(u8),
    /// The walk's index bits would pass bit 63.
    Span {
        /// Levels.
        levels: u8,
        /// Index bits per level.
        index_bits: u8,
    },
    /// A bit field that must not be empty is.
    Empty(&'static str),
    /// The frame field is not page aligned.
    FrameUnaligned(u64),
    /// A flag overlaps the frame field or another flag.
    Overlap {
        /// The flag.
        field: &'static str,
        /// The overlapping bits.
        bits: u64,
    },
}

impl LayoutError {
    /// The layout field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            LayoutError::Levels(_) | LayoutError::Span { .. } => "levels",
            LayoutError::IndexBits(_) => "index_bits",
            LayoutError::Empty(f) | LayoutError::Overlap { field: f, .. } => f,
            LayoutError::FrameUnaligned(_) => "frame",
        }
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Levels(n) => write!(f, "levels must be 0..=4 (got {n})"),
            LayoutError::IndexBits(n) => write!(f, "index_bits must be 1..=9 (got {n})"),
            LayoutError::Span { levels, index_bits } => write!(
                f,
                "{levels} levels of {index_bits} index bits above the 12-bit page offset pass bit 63"
            ),
            LayoutError::Empty(n) => write!(f, "`{n}` must name at least one bit"),
            LayoutError::FrameUnaligned(m) => {
                write!(f, "the frame field {m:#x} must not include bits 11:0")
            }
            LayoutError::Overlap { field, bits } => {
                write!(f, "`{field}` overlaps another field in bits {bits:#x}")
            }
        }
    }
}

impl SoftLayout {
    /// Checks the layout is one a walk can follow.
    pub fn check(&self) -> Result<(), LayoutError> {
        if self.levels > 4 {
            return Err(LayoutError::Levels(self.levels));
        }
        if self.index_bits == 0 || self.index_bits > 9 {
            return Err(LayoutError::IndexBits(self.index_bits));
        }
        if 12 + self.levels as u32 * self.index_bits as u32 > 64 {
            return Err(LayoutError::Span {
                levels: self.levels,
                index_bits: self.index_bits,
            });
        }
        for (name, v) in [
            ("valid", self.valid),
            ("write", self.write),
            ("frame", self.frame),
        ] {
            if v == 0 {
                return Err(LayoutError::Empty(name));
            }
        }
        if self.frame & 0xfff != 0 {
            return Err(LayoutError::FrameUnaligned(self.frame));
        }
        let mut used = self.frame;
        for (field, v) in [
            ("valid", self.valid),
            ("write", self.write),
            ("dirty", self.dirty),
            ("no_exec", self.no_exec),
            ("page_size", self.page_size),
        ] {
            if used & v != 0 {
                return Err(LayoutError::Overlap {
                    field,
                    bits: used & v,
                });
            }
            used |= v;
        }
        Ok(())
    }
}

/// What the software tables say now for one page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftEntry {
    /// Host physical address of the entry the walk ended at (the leaf, or the
    /// first invalid entry); the root entry's when the root ended it.
    pub entry_pa: u64,
    /// Its value.
    pub value: u64,
    /// The walk gives a translation.
    pub valid: bool,
    /// Host physical page it names (when valid).
    pub frame: u64,
    /// The host would enter a writable real PTE.
    pub writable: bool,
    /// No level forbids fetches.
    pub executable: bool,
}

/// How a real PTE disagrees with its software entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The software walk fails now.
    pub invalid: bool,
    /// The software entry names another frame.
    pub frame: bool,
    /// The real PTE allows writes the software entry no longer allows.
    pub write: bool,
    /// The real PTE allows fetches the software entry forbids.
    pub exec: bool,
}

impl Mismatch {
    /// Any difference at all.
    pub fn any(&self) -> bool {
        self.invalid || self.frame || self.write || self.exec
    }

    /// The difference matters for an access of `kind`.
    pub fn affects(&self, kind: AccessKind) -> bool {
        self.invalid
            || self.frame
            || (self.write && kind == AccessKind::Write)
            || (self.exec && kind == AccessKind::Execute)
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::new();
        if self.invalid {
            v.push("the software entry is no longer valid");
        } else if self.frame {
            v.push("the software entry names another frame");
        }
        if self.write {
            v.push("the real PTE is writable but the software entry no longer allows writes");
        }
        if self.exec {
            v.push("the real PTE allows fetches but the software entry forbids them");
        }
        write!(f, "{}", v.join("; "))
    }
}

/// The real PTE one page of a region has now, as a cached translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RealLeaf {
    /// The walk's result (a leaf).
    pub result: WalkResult,
    /// Host physical page of this page (not the large-page base).
    pub frame: u64,
    /// Address and value of the leaf entry.
    pub leaf_pa: u64,
    pub leaf_value: u64,
}

/// Real-PTE bits the hardware changes on its own (A, D): not a refill.
const REAL_AD: u64 = 0x60;

impl RealLeaf {
    /// The same cached entry: the leaf did not move and changed at most A/D.
    pub(crate) fn same(&self, o: &RealLeaf) -> bool {
        self.leaf_pa == o.leaf_pa && self.leaf_value & !REAL_AD == o.leaf_value & !REAL_AD
    }

    pub(crate) fn compare(&self, soft: &SoftEntry) -> Mismatch {
        if !soft.valid {
            return Mismatch {
                invalid: true,
                ..Mismatch::default()
            };
        }
        let (w, x) = match self.result {
            WalkResult::Leaf { rights, .. } => (rights.write(), rights.exec()),
            _ => (false, false),
        };
        Mismatch {
            invalid: false,
            frame: self.frame != soft.frame,
            write: w && !soft.writable,
            exec: x && !soft.executable,
        }
    }
}

/// The real walk of `va` from `root`, read-only: the leaf when present.
pub(crate) fn real_walk(
    mem: &PhysMem,
    root: PhysAddr,
    params: WalkParams,
    va: VirtAddr,
    path: &mut Path,
) -> Option<RealLeaf> {
    let r = crate::paging::walker::walk(
        mem,
        va,
        crate::paging::walker::WalkStart::root(root),
        params,
        0,
        path,
    )
    .ok()?;
    let WalkResult::Leaf { frame, size, .. } = r else {
        return None;
    };
    let leaf = path.entries().last().copied()?;
    Some(RealLeaf {
        result: r,
        frame: frame.raw() + (va.raw() & size.offset_mask() & !0xfff),
        leaf_pa: leaf.pa.raw(),
        leaf_value: leaf.value,
    })
}

/// Walks the software tables for the page at `offset` in the region, read-only,
/// from the root entry at `root_pa`: the walk the host's fault handler makes. Every
/// entry read is pushed to `keys` (its physical address).
pub fn soft_walk(
    mem: &PhysMem,
    l: &SoftLayout,
    root_pa: u64,
    offset: u64,
    keys: &mut Vec<u64>,
) -> SoftEntry {
    let mut at = root_pa;
    keys.push(at);
    // An entry outside memory reads as invalid: the host would fail.
    let mut v = mem.read_u64(PhysAddr(at)).unwrap_or(0);
    let bits = l.index_bits as u32;
    let mut shift = bits * l.levels as u32; // index bits remaining below `v`
    let mut writable = true;
    let mut executable = true;
    loop {
        if v & l.valid != l.valid {
            return SoftEntry {
                entry_pa: at,
                value: v,
                ..SoftEntry::default()
            };
        }
        writable &= v & l.write == l.write;
        executable &= l.no_exec == 0 || v & l.no_exec == 0;
        if (l.page_size != 0 && v & l.page_size == l.page_size) || shift == 0 {
            let block = (1u64 << (12 + shift)) - 1;
            let frame = l
                .backing
                .wrapping_add(v & l.frame)
                .wrapping_add(offset & block & !0xfff);
            return SoftEntry {
                entry_pa: at,
                value: v,
                valid: true,
                frame,
                writable: writable && v & l.dirty == l.dirty,
                executable,
            };
        }
        shift -= bits;
        let index = (offset >> (12 + shift)) & ((1 << bits) - 1);
        at = l.backing.wrapping_add(v & l.frame).wrapping_add(index * 8);
        keys.push(at);
        v = mem.read_u64(PhysAddr(at)).unwrap_or(0);
    }
}

/// What a software entry lets the host map, as the walk result a fresh walk of
/// the real tables would give once the real PTE is refilled from it (`user` as
/// the real PTE has it: software layouts here carry no user bit).
pub(crate) fn soft_result(s: &SoftEntry, user: bool) -> WalkResult {
    if !s.valid {
        return WalkResult::NotPresent { level: 0 };
    }
    let mut r = if user { Rights::USER } else { 0 };
    if s.writable {
        r |= Rights::WRITE;
    }
    if s.executable {
        r |= Rights::EXEC;
    }
    WalkResult::Leaf {
        frame: PhysAddr(s.frame),
        size: PageSize::Size4K,
        rights: Rights(r),
        global: false,
        dirty: false,
    }
}

/// A software translation cache to track: the real PTEs of `pages` pages from
/// `base` under the real root `root`, derived from software entries laid out as
/// `layout`, whose root entry is at host physical `root_entry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftCacheSpec {
    /// Shown in reports.
    pub name: String,
    /// The real root (CR3 table) whose page tables hold the cache.
    pub root: PhysAddr,
    /// The PCID of that address space.
    pub pcid: u16,
    /// First page of the region.
    pub base: VirtAddr,
    /// Pages in the region.
    pub pages: u32,
    /// Host physical address of the root software entry.
    pub root_entry: PhysAddr,
    /// The software entries' layout.
    pub layout: SoftLayout,
    /// Parameters of the real walk.
    pub params: WalkParams,
}

impl SoftCacheSpec {
    /// The page of the region `va` falls in.
    pub(crate) fn page_of(&self, va: VirtAddr) -> Option<u32> {
        let off = va.raw().wrapping_sub(self.base.raw()) >> 12;
        (off < self.pages as u64).then_some(off as u32)
    }
}

/// Where a stale use's translation came from when its entry is derived: the
/// software cache, the software entry now, and how the real PTE disagrees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedSource {
    /// The software cache's name.
    pub cache: String,
    /// The software entry now.
    pub source: SoftEntry,
    /// How the real PTE (the cached entry) disagrees with it.
    pub mismatch: Mismatch,
}

/// A stale derived entry still present (used or not), with what made it stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedStale {
    /// The software cache's name.
    pub cache: String,
    /// Linear address of the page.
    pub va: VirtAddr,
    /// Step the real PTE was entered.
    pub filled_step: u64,
    /// The software write that made it stale (None: stale when entered).
    pub made_stale_by: Option<WriteInfo>,
    /// How it disagrees.
    pub mismatch: Mismatch,
}

impl DerivedStale {
    /// The core whose write made it stale, and the step.
    pub fn cause(&self) -> Option<(u32, u64)> {
        self.made_stale_by.map(|w| (w.core, w.step))
    }
}

impl fmt::Display for DerivedStale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "real PTE for va {} ({}, entered at step {}) stale [{}]",
            self.va, self.cache, self.filled_step, self.mismatch
        )?;
        match &self.made_stale_by {
            Some(w) => write!(
                f,
                " since step {}: core {}'s write to {} (rip {:#x})",
                w.step, w.core, w.pa, w.rip
            ),
            None => write!(f, " since it was entered"),
        }
    }
}
