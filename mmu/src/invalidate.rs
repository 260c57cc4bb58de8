//! Every invalidation the SDM defines (Vol. 3A 4.10.4), as one enum, and the one
//! function that removes entries from every cache a core has: TLBs, paging-structure
//! caches and the fast path.
//!
//! The default is *minimal*: exactly what SDM 4.10.4.1 says must go. With
//! [`crate::MmuConfig::extra_invalidations`] a core also performs these permitted
//! extra removals ("the processor is always free to invalidate additional entries"):
//! - INVLPG flushes the paging-structure caches for every PCID (not just the current);
//! - INVPCID type 0 flushes every paging-structure-cache entry of the descriptor's
//!   PCID (not just those used for the address);
//! - a #PF flushes every paging-structure-cache entry of the current PCID.

use crate::addr::VirtAddr;
use crate::coherence::Tracker;
use crate::events::{CacheKind, EntryView, Removed};
use crate::mmu::Caches;
use crate::paging::access::{cr0, cr4, PagingRegs};
use crate::psc::tag_of;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// INVPCID types (SDM Vol. 2 INVPCID; Vol. 3A 4.10.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InvpcidKind {
    /// Type 0: individual address, one PCID, non-global entries.
    IndividualAddress,
    /// Type 1: single context — every non-global entry of one PCID.
    SingleContext,
    /// Type 2: all contexts including globals.
    AllIncludingGlobal,
    /// Type 3: all contexts except globals.
    AllExceptGlobal,
}

/// A translation-cache invalidation performed by one core.
///
/// For `MovCr3`, `MovCr4` and `MovCr0`, the `regs` passed with it are the registers
/// *before* the move (the current PCID and CR4.PCIDE are read from them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Invalidation {
    /// INVLPG m (SDM 4.10.4.1): TLB entries for the page with the current PCID, and
    /// global entries for the page whatever their PCID; every paging-structure-cache
    /// entry of the current PCID. A non-canonical address is a no-op. (CPL checks
    /// belong to the CPU.)
    Invlpg {
        /// The linear address operand.
        va: VirtAddr,
    },
    /// INVPCID, already validated by [`invpcid`].
    Invpcid {
        /// Type.
        kind: InvpcidKind,
        /// Descriptor PCID (bits 11:0 of its first quadword).
        pcid: u16,
        /// Descriptor linear address (second quadword); used by type 0.
        va: VirtAddr,
    },
    /// MOV to CR3 with source operand `src` (bit 63 included).
    /// - CR4.PCIDE=0: non-global entries of PCID 000H; PSC entries of PCID 000H.
    /// - CR4.PCIDE=1, bit 63=0: non-global entries of PCID bits 11:0 of src; its PSC entries.
    /// - CR4.PCIDE=1, bit 63=1: nothing is required.
    MovCr3 {
        /// Source operand.
        src: u64,
    },
    /// MOV to CR4 from `old` to `new`.
    /// - PGE changed, or PCIDE 1→0: everything, globals included, every PCID.
    /// - PAE changed, or SMEP 0→1: all TLB and PSC entries of the current PCID.
    MovCr4 {
        /// CR4 before.
        old: u64,
        /// CR4 after.
        new: u64,
    },
    /// MOV to CR0 from `old` to `new`: PG 1→0 flushes everything.
    MovCr0 {
        /// CR0 before.
        old: u64,
        /// CR0 after.
        new: u64,
    },
    /// A page fault on `va` (SDM 4.10.4.1 "page faults"): TLB entries that would be
    /// used for va's page (current PCID, and global entries) and the
    /// paging-structure-cache entries that would be used to translate va.
    PageFault {
        /// Faulting linear address.
        va: VirtAddr,
    },
}

/// An INVPCID the CPU must turn into #GP(0) (SDM Vol. 2 INVPCID, "Protected Mode
/// Exceptions"). The CPL and CPUID checks (#GP / #UD) belong to the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InvpcidError {
    /// Type greater than 3.
    #[error("INVPCID type {0} is not 0..=3")]
    BadType(u64),
    /// Bits 63:12 of the descriptor's first quadword are reserved.
    #[error("INVPCID descriptor {0:#x} sets reserved bits 63:12")]
    ReservedBits(u64),
    /// Type 0 with a non-canonical linear address.
    #[error("INVPCID type 0 with non-canonical address {0}")]
    NonCanonical(VirtAddr),
    /// Type 0 or 1 naming a PCID other than 000H while CR4.PCIDE=0.
    #[error("INVPCID type {ty} names PCID {pcid:#x} while CR4.PCIDE=0")]
    PcidWithoutPcide {
        /// Type.
        ty: u64,
        /// PCID.
        pcid: u16,
    },
}

/// Validates an INVPCID with register operand `ty` and 128-bit descriptor
/// (`desc_lo` = PCID and reserved bits, `desc_hi` = linear address) under `cr4`.
pub fn invpcid(
    ty: u64,
    desc_lo: u64,
    desc_hi: u64,
    cr4: u64,
) -> Result<Invalidation, InvpcidError> {
    let kind = match ty {
        0 => InvpcidKind::IndividualAddress,
        1 => InvpcidKind::SingleContext,
        2 => InvpcidKind::AllIncludingGlobal,
        3 => InvpcidKind::AllExceptGlobal,
        _ => return Err(InvpcidError::BadType(ty)),
    };
    if desc_lo >> 12 != 0 {
        return Err(InvpcidError::ReservedBits(desc_lo));
    }
    let pcid = (desc_lo & 0xfff) as u16;
    let va = VirtAddr(desc_hi);
    if ty == 0 && !va.is_canonical() {
        return Err(InvpcidError::NonCanonical(va));
    }
    if ty <= 1 && pcid != 0 && cr4 & cr4::PCIDE == 0 {
        return Err(InvpcidError::PcidWithoutPcide { ty, pcid });
    }
    Ok(Invalidation::Invpcid { kind, pcid, va })
}

/// The invalidation INVLPG of linear address `va` performs: `None` for a
/// non-canonical address, which makes INVLPG a no-op rather than a fault (SDM Vol. 2A
/// INVLPG). The CPL check (#GP above CPL 0) belongs to the CPU.
pub fn invlpg(va: VirtAddr) -> Option<Invalidation> {
    va.is_canonical().then_some(Invalidation::Invlpg { va })
}

/// The value MOV to CR3 writes into CR3: with CR4.PCIDE=1, bit 63 (the no-flush
/// hint) is not written (SDM Vol. 3A 4.10.4.1, Vol. 2 MOV CR).
pub fn cr3_after_mov(src: u64, cr4: u64) -> u64 {
    if cr4 & cr4::PCIDE != 0 {
        src & !(1 << 63)
    } else {
        src
    }
}

/// A MOV to CR0 or CR4 the CPU must turn into #GP(0) because of PCIDs
/// (SDM Vol. 3A 4.10.1, Vol. 2 MOV CR). Checks unrelated to paging are the CPU's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CrError {
    /// Setting CR4.PCIDE while CR3 bits 11:0 is not 000H.
    #[error("setting CR4.PCIDE needs CR3 bits 11:0 = 0, but CR3 is {cr3:#x}")]
    PcideWithNonZeroPcid {
        /// CR3 at the time.
        cr3: u64,
    },
    /// Clearing CR0.PG while CR4.PCIDE=1.
    #[error("clearing CR0.PG while CR4.PCIDE=1")]
    ClearPgWithPcide,
}

/// Checks MOV to CR4 from `old` to `new` with the current `cr3`: setting PCIDE
/// requires CR3 bits 11:0 = 000H (else #GP).
pub fn check_mov_cr4(old: u64, new: u64, cr3: u64) -> Result<(), CrError> {
    if old & cr4::PCIDE == 0 && new & cr4::PCIDE != 0 && cr3 & 0xfff != 0 {
        return Err(CrError::PcideWithNonZeroPcid { cr3 });
    }
    Ok(())
}

/// Checks MOV to CR0 from `old` to `new` with the current `cr4_value`: clearing PG
/// while CR4.PCIDE=1 is #GP.
pub fn check_mov_cr0(old: u64, new: u64, cr4_value: u64) -> Result<(), CrError> {
    if old & cr0::PG != 0 && new & cr0::PG == 0 && cr4_value & cr4::PCIDE != 0 {
        return Err(CrError::ClearPgWithPcide);
    }
    Ok(())
}

/// Which TLB entries an operation removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlbScope {
    None,
    All,
    AllNonGlobal,
    NonGlobalOfPcid(u16),
    OfPcid(u16),
    /// Entries mapping va's page: non-global ones tagged `pcid`, plus (if `globals`)
    /// global ones whatever their tag.
    Page {
        va: VirtAddr,
        pcid: u16,
        globals: bool,
    },
}

/// Which paging-structure-cache entries an operation removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PscScope {
    None,
    All,
    OfPcid(u16),
    /// Entries of `pcid` that would be used to translate va.
    Page {
        va: VirtAddr,
        pcid: u16,
    },
}

/// What to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub tlb: TlbScope,
    pub psc: PscScope,
    /// Leave the instruction TLB alone (the dirty-bit re-walk).
    pub data_only: bool,
}

impl Plan {
    pub(crate) const NOTHING: Plan = Plan {
        tlb: TlbScope::None,
        psc: PscScope::None,
        data_only: false,
    };
    const fn both(tlb: TlbScope, psc: PscScope) -> Plan {
        Plan {
            tlb,
            psc,
            data_only: false,
        }
    }
}

/// The SDM 4.10.4.1 table (see SDM-TLB.md), one arm per row.
pub(crate) fn plan(
    op: &Invalidation,
    regs: &PagingRegs,
    extra: bool,
    invlpg_erratum: bool,
) -> Plan {
    let cur = regs.pcid();
    match *op {
        Invalidation::Invlpg { va } => {
            if !va.is_canonical() {
                return Plan::NOTHING;
            }
            // Erratum: with PCIDE=1 global entries for the page survive.
            let globals = !(invlpg_erratum && regs.pcide());
            Plan::both(
                TlbScope::Page {
                    va,
                    pcid: cur,
                    globals,
                },
                if extra {
                    PscScope::All
                } else {
                    PscScope::OfPcid(cur)
                },
            )
        }
        Invalidation::Invpcid { kind, pcid, va } => match kind {
            InvpcidKind::IndividualAddress => Plan::both(
                TlbScope::Page {
                    va,
                    pcid,
                    globals: false,
                },
                if extra {
                    PscScope::OfPcid(pcid)
                } else {
                    PscScope::Page { va, pcid }
                },
            ),
            InvpcidKind::SingleContext => {
                Plan::both(TlbScope::NonGlobalOfPcid(pcid), PscScope::OfPcid(pcid))
            }
            InvpcidKind::AllIncludingGlobal => Plan::both(TlbScope::All, PscScope::All),
            InvpcidKind::AllExceptGlobal => Plan::both(TlbScope::AllNonGlobal, PscScope::All),
        },
        Invalidation::MovCr3 { src } => {
            if !regs.pcide() {
                Plan::both(TlbScope::NonGlobalOfPcid(0), PscScope::OfPcid(0))
            } else if src >> 63 == 0 {
                let p = (src & 0xfff) as u16;
                Plan::both(TlbScope::NonGlobalOfPcid(p), PscScope::OfPcid(p))
            } else {
                Plan::NOTHING
            }
        }
        Invalidation::MovCr4 { old, new } => {
            let changed = old ^ new;
            if changed & cr4::PGE != 0 || (old & cr4::PCIDE != 0 && new & cr4::PCIDE == 0) {
                Plan::both(TlbScope::All, PscScope::All)
            } else if changed & cr4::PAE != 0 || (old & cr4::SMEP == 0 && new & cr4::SMEP != 0) {
                Plan::both(TlbScope::OfPcid(cur), PscScope::OfPcid(cur))
            } else {
                Plan::NOTHING
            }
        }
        Invalidation::MovCr0 { old, new } => {
            if old & cr0::PG != 0 && new & cr0::PG == 0 {
                Plan::both(TlbScope::All, PscScope::All)
            } else {
                Plan::NOTHING
            }
        }
        Invalidation::PageFault { va } => Plan::both(
            TlbScope::Page {
                va,
                pcid: cur,
                globals: true,
            },
            if extra {
                PscScope::OfPcid(cur)
            } else {
                PscScope::Page { va, pcid: cur }
            },
        ),
    }
}

/// THE removal function: applies `plan` to every cache of one core (both TLBs, the
/// three paging-structure caches, the fast path) and releases the tracker records
/// of what it removed. When `collect` is set, views of the removed entries are
/// returned sorted (cache, PCID, address) — never in hash or slot order.
pub(crate) fn apply(
    caches: &mut Caches,
    tracker: &mut Tracker,
    plan: &Plan,
    collect: bool,
) -> (Removed, Vec<EntryView>) {
    let mut removed = Removed::default();
    let mut views = Vec::new();
    // Any change at all empties the fast path (cheap: one counter).
    caches.fast.bump();
    if plan.tlb != TlbScope::None {
        let pred = |e: &crate::tlb::TlbEntry| match plan.tlb {
            TlbScope::None => false,
            TlbScope::All => true,
            TlbScope::AllNonGlobal => !e.global,
            TlbScope::NonGlobalOfPcid(p) => !e.global && e.pcid == p,
            TlbScope::OfPcid(p) => e.pcid == p,
            TlbScope::Page { va, pcid, globals } => {
                e.covers(va) && ((!e.global && e.pcid == pcid) || (e.global && globals))
            }
        };
        removed.tlb += remove_tlb(&mut caches.dtlb, &pred, tracker, collect, &mut views);
        if let (Some(i), false) = (caches.itlb.as_mut(), plan.data_only) {
            removed.tlb += remove_tlb(i, &pred, tracker, collect, &mut views);
        }
    }
    if plan.psc != PscScope::None {
        for lvl in caches.psc.levels.iter_mut() {
            let level = lvl.level;
            let pred = |e: &crate::psc::PscEntry| match plan.psc {
                PscScope::None => false,
                PscScope::All => true,
                PscScope::OfPcid(p) => e.pcid == p,
                PscScope::Page { va, pcid } => e.pcid == pcid && e.tag == tag_of(va, level),
            };
            removed.psc += lvl.remove_where(pred, |e| {
                if collect {
                    if let Some(v) = tracker.view(e.rec) {
                        views.push(v);
                    }
                }
                tracker.release(e.rec);
            });
        }
    }
    if collect {
        sort_views(&mut views);
    }
    (removed, views)
}

fn remove_tlb(
    t: &mut crate::tlb::Tlb,
    pred: &dyn Fn(&crate::tlb::TlbEntry) -> bool,
    tracker: &mut Tracker,
    collect: bool,
    views: &mut Vec<EntryView>,
) -> u32 {
    let mut n = 0;
    for arr in t.arrays.iter_mut() {
        n += arr.remove_where(pred, |e| {
            if collect {
                if let Some(v) = tracker.view(e.rec) {
                    views.push(v);
                }
            }
            tracker.release(e.rec);
        });
    }
    n
}

/// Dump order: cache kind, PCID, address, then the cached content.
pub(crate) fn sort_views(v: &mut [EntryView]) {
    v.sort_by(|a, b| {
        let ka = (cache_rank(a.cache), a.pcid, a.va, a.filled_step);
        let kb = (cache_rank(b.cache), b.pcid, b.va, b.filled_step);
        ka.cmp(&kb)
    });
}

fn cache_rank(c: CacheKind) -> u8 {
    match c {
        CacheKind::Tlb { instruction: false } => 0,
        CacheKind::Tlb { instruction: true } => 1,
        CacheKind::Psc { level } => 10 - level,
    }
}

/// "INVLPG 0x400000", "MOV CR3 0x3c00001 (no flush)": the operation as an assembly
/// programmer would name it, for reports.
impl std::fmt::Display for Invalidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalidation::Invlpg { va } => write!(f, "INVLPG {va}"),
            Invalidation::Invpcid { kind, pcid, va } => {
                let k = match kind {
                    InvpcidKind::IndividualAddress => "type 0 (address)",
                    InvpcidKind::SingleContext => "type 1 (single context)",
                    InvpcidKind::AllIncludingGlobal => "type 2 (all, with globals)",
                    InvpcidKind::AllExceptGlobal => "type 3 (all but globals)",
                };
                write!(f, "INVPCID {k} PCID {pcid:#x} va {va}")
            }
            Invalidation::MovCr3 { src } => {
                write!(f, "MOV CR3 {:#x}", src & !(1u64 << 63))?;
                if src >> 63 == 1 {
                    write!(f, " (bit 63: no flush)")?;
                }
                Ok(())
            }
            Invalidation::MovCr4 { old, new } => write!(f, "MOV CR4 {old:#x} -> {new:#x}"),
            Invalidation::MovCr0 { old, new } => write!(f, "MOV CR0 {old:#x} -> {new:#x}"),
            Invalidation::PageFault { va } => write!(f, "#PF at {va}"),
        }
    }
}
