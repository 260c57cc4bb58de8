//! What the MMU tells its embedder: events, the sink they go to, and the views
//! (cached entries, origins, writes, stale uses) they carry.

use crate::addr::{PhysAddr, VirtAddr};
use crate::config::Erratum;
use crate::invalidate::Invalidation;
use crate::paging::access::{Access, AccessKind};
use crate::paging::walker::{Path, WalkResult};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who is accessing: the core, the machine-wide step number and the RIP of the
/// instruction. Steps are global and increasing, so "since the fill" is `>=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCtx {
    /// Core index.
    pub core: u32,
    /// Machine-wide step number.
    pub step: u64,
    /// RIP of the instruction (0 for accesses no instruction made).
    pub rip: u64,
}

/// Which cache an entry lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CacheKind {
    /// A TLB entry; `instruction` for the instruction TLB of a split configuration.
    Tlb {
        /// In the instruction TLB.
        instruction: bool,
    },
    /// A paging-structure-cache entry of `level` (4 = PML4E, 3 = PDPTE, 2 = PDE cache).
    Psc {
        /// Level of the cached entry.
        level: u8,
    },
}

impl fmt::Display for CacheKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheKind::Tlb { instruction: false } => write!(f, "TLB"),
            CacheKind::Tlb { instruction: true } => write!(f, "ITLB"),
            CacheKind::Psc { level: 4 } => write!(f, "PML4E cache"),
            CacheKind::Psc { level: 3 } => write!(f, "PDPTE cache"),
            CacheKind::Psc { level } => write!(f, "PDE cache (level {level})"),
        }
    }
}

/// Where a cached entry came from: who filled it when, from which root, and the
/// paging-structure entries (address and value) it was built from, top-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Core whose walk filled it.
    pub core: u32,
    /// Step of the fill.
    pub step: u64,
    /// RIP of the instruction whose access filled it.
    pub rip: u64,
    /// Root table (from CR3) of the walk.
    pub root: PhysAddr,
    /// PCID the entry is tagged with.
    pub pcid: u16,
    /// Linear address whose walk made it.
    pub va: VirtAddr,
    /// The entries used, top-down, values as left in memory by the walk.
    pub entries: Path,
}

/// A guest write to a paging-structure entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteInfo {
    /// Writing core.
    pub core: u32,
    /// Step of the write.
    pub step: u64,
    /// RIP of the writing instruction.
    pub rip: u64,
    /// Address of the 8-byte entry written.
    pub pa: PhysAddr,
    /// Entry value before.
    pub old: u64,
    /// Entry value after.
    pub new: u64,
}

/// A core began translating with another root while an entry stayed cached: a MOV
/// to CR3 that did not flush the entry's PCID (bit 63 set with CR4.PCIDE=1), or
/// any CR3 load for a global entry. Entries are tagged with PCIDs, not with roots
/// (SDM Vol. 3A 4.10.1), so the entry is now judged against the new root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootChange {
    /// The core (owner of the entry) that loaded CR3.
    pub core: u32,
    /// Step of the load; for a change first noticed at a use (CR3 changed without
    /// a MOV the MMU was told of), the step of that use.
    pub step: u64,
    /// RIP of the loading instruction (or of the use, as for `step`).
    pub rip: u64,
    /// Root the entry was judged against before.
    pub from: PhysAddr,
    /// Root now loaded.
    pub to: PhysAddr,
}

/// An invalidation that the SDM says removes an entry, but that a modelled erratum
/// let the entry survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErratumKeep {
    /// The erratum.
    pub erratum: Erratum,
    /// Core that performed the invalidation.
    pub core: u32,
    /// Step of the invalidation.
    pub step: u64,
    /// RIP of the invalidating instruction.
    pub rip: u64,
    /// The operation.
    pub op: Invalidation,
}

/// A cached entry as dumps and events show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// Core owning the cache.
    pub core: u32,
    /// Which cache.
    pub cache: CacheKind,
    /// PCID tag.
    pub pcid: u16,
    /// Base linear address of the region the entry covers.
    pub va: VirtAddr,
    /// What it caches: a `Leaf` (TLB) or a `Table` (paging-structure cache).
    pub cached: WalkResult,
    /// Global TLB entry.
    pub global: bool,
    /// Marked stale by the tracker.
    pub stale: bool,
    /// Step of the fill.
    pub filled_step: u64,
}

/// A stale entry still cached, whether or not it is ever used, with what made it
/// stale (a write, or a CR3 load that kept it usable under another root).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatentStale {
    /// The entry.
    pub entry: EntryView,
    /// The write that made it stale, if a write did.
    pub made_stale_by: Option<WriteInfo>,
    /// The CR3 load that made it stale, if no write did.
    pub root_change: Option<RootChange>,
}

impl LatentStale {
    /// The core whose action made the entry stale (the writer, or the core that
    /// loaded CR3) and the step it did so.
    pub fn cause(&self) -> Option<(u32, u64)> {
        match (&self.made_stale_by, &self.root_change) {
            (Some(w), _) => Some((w.core, w.step)),
            (None, Some(c)) => Some((c.core, c.step)),
            (None, None) => None,
        }
    }
}

impl fmt::Display for LatentStale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.entry;
        write!(
            f,
            "core {} {} va {} (PCID {:#x}, filled at step {}) stale",
            e.core, e.cache, e.va, e.pcid, e.filled_step
        )?;
        match (&self.made_stale_by, &self.root_change) {
            (Some(w), _) => write!(
                f,
                " since step {}: core {}'s write to {} (rip {:#x})",
                w.step, w.core, w.pa, w.rip
            ),
            (None, Some(c)) => write!(
                f,
                " since step {}: core {}'s CR3 load, root {} -> {} (rip {:#x})",
                c.step, c.core, c.from, c.to, c.rip
            ),
            (None, None) => Ok(()),
        }
    }
}

/// How many entries an operation removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// TLB entries removed.
    pub tlb: u32,
    /// Paging-structure-cache entries removed.
    pub psc: u32,
}

/// One invalidation a core performed, kept in the tracker's bounded per-core log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidationRecord {
    /// Core.
    pub core: u32,
    /// Step.
    pub step: u64,
    /// RIP.
    pub rip: u64,
    /// The operation.
    pub op: Invalidation,
    /// What it removed on that core.
    pub removed: Removed,
    /// TLB entries the SDM says it removes but a modelled erratum kept (0 without
    /// errata; omitted from serialized output when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_by_erratum: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A use of a stale cached entry, with everything needed to explain it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleUse {
    /// The access (or walk) that used it.
    pub ctx: AccessCtx,
    /// Linear address accessed.
    pub va: VirtAddr,
    /// The access, or `None` for a speculative walk.
    pub access: Option<Access>,
    /// Which cache held the stale entry.
    pub cache: CacheKind,
    /// Its PCID tag.
    pub pcid: u16,
    /// What the entry caches.
    pub cached: WalkResult,
    /// What a fresh walk gives now (to the same level) from the root the owning
    /// core has loaded now: entries are tagged with PCIDs, not roots (SDM Vol. 3A
    /// 4.10.1), so that root, not the fill's, decides.
    pub fresh: WalkResult,
    /// When, where and from what the entry was filled.
    pub filled: Origin,
    /// The write that made it stale (the first of the writes since it was last
    /// fresh); `None` when no write did, but a change of root (`root_change`).
    pub made_stale_by: Option<WriteInfo>,
    /// The root the entry was judged against at the use, when it is not the root
    /// it was filled under (`filled.root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_under_root: Option<PhysAddr>,
    /// The CR3 load under whose root the entry became stale, when no write did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_change: Option<RootChange>,
    /// The invalidation that should have removed the entry but did not because of
    /// a modelled erratum (the latest, if several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_by_erratum: Option<ErratumKeep>,
    /// Invalidations performed by every core since the fill, by step.
    pub invalidations_since_fill: Vec<InvalidationRecord>,
    /// The per-core logs had dropped older records, so the list may be incomplete.
    pub log_truncated: bool,
    /// Set when the stale entry is a software cache's real PTE (a derived entry,
    /// [`crate::derived`]): then `cached` is the real PTE's translation, `fresh`
    /// what the host would map from the software entry now, `filled` the write
    /// that entered the real PTE, `made_stale_by` the software-entry write, and
    /// `cache` the TLB the access went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<crate::derived::DerivedSource>,
}

/// Flag names of an entry, or "none" for an entry with no flags (all zero).
fn flags_or_none(v: u64) -> String {
    let n = crate::paging::entry::flag_names(v);
    if n.is_empty() {
        "none".to_string()
    } else {
        n
    }
}

impl fmt::Display for StaleUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.derived {
            None => {
                writeln!(
                    f,
                    "stale use on core {} at step {} (rip {:#x}): va {} via {} (PCID {:#x})",
                    self.ctx.core, self.ctx.step, self.ctx.rip, self.va, self.cache, self.pcid
                )?;
                writeln!(f, "  cached:         {}", self.cached)?;
                writeln!(f, "  fresh walk now: {}", self.fresh)?;
            }
            Some(d) => {
                let kind = match self.access.map(|a| a.kind) {
                    Some(AccessKind::Write) => "write",
                    Some(AccessKind::Execute) => "fetch",
                    _ => "read",
                };
                writeln!(
                    f,
                    "stale use on core {} at step {} (rip {:#x}): {kind} of va {} via the real PTE, a cache of software entries `{}` (PCID {:#x}) [{}]",
                    self.ctx.core, self.ctx.step, self.ctx.rip, self.va, d.cache, self.pcid, d.mismatch
                )?;
                writeln!(f, "  cached (real PTE): {}", self.cached)?;
                let s = &d.source;
                if s.valid {
                    writeln!(
                        f,
                        "  software entry now at {:#x} = {:#018x}: host would map {}",
                        s.entry_pa, s.value, self.fresh
                    )?;
                } else {
                    writeln!(
                        f,
                        "  software entry now at {:#x} = {:#018x}: not valid, the host would fault",
                        s.entry_pa, s.value
                    )?;
                }
            }
        }
        let what = if self.derived.is_some() {
            "real PTE entered"
        } else {
            "filled"
        };
        if self.derived.is_some() && self.filled.step == 0 {
            writeln!(
                f,
                "  real PTE present in the initial page tables, root {}:",
                self.filled.root
            )?;
        } else {
            writeln!(
                f,
                "  {what} on core {} at step {} (rip {:#x}) from root {} for va {}:",
                self.filled.core,
                self.filled.step,
                self.filled.rip,
                self.filled.root,
                self.filled.va
            )?;
        }
        for e in self.filled.entries.entries() {
            writeln!(
                f,
                "    level {} entry at {} = {:#018x} [{}]",
                e.level,
                e.pa,
                e.value,
                flags_or_none(e.value)
            )?;
        }
        if let Some(root) = self.used_under_root {
            writeln!(
                f,
                "  used under root {root}, filled under root {} (same PCID {:#x}; entries are tagged by PCID, not root)",
                self.filled.root, self.pcid
            )?;
        }
        if let Some(w) = &self.made_stale_by {
            writeln!(
                f,
                "  made stale by core {} at step {} (rip {:#x}): entry at {} {:#018x} [{}] -> {:#018x} [{}]",
                w.core,
                w.step,
                w.rip,
                w.pa,
                w.old,
                flags_or_none(w.old),
                w.new,
                flags_or_none(w.new)
            )?;
        }
        if let Some(c) = &self.root_change {
            writeln!(
                f,
                "  made stale by core {} at step {} (rip {:#x}): CR3 load switched root {} -> {} without flushing the entry",
                c.core, c.step, c.rip, c.from, c.to
            )?;
        }
        if let Some(k) = &self.kept_by_erratum {
            writeln!(
                f,
                "  kept alive by erratum {:?}: core {}'s {} at step {} (rip {:#x}) must remove it (SDM Vol. 3A 4.10.4.1) but left it cached",
                k.erratum, k.core, k.op, k.step, k.rip
            )?;
        }
        if self.invalidations_since_fill.is_empty() {
            writeln!(f, "  no invalidations on any core since the fill")?;
        } else {
            writeln!(f, "  invalidations since the fill:")?;
        }
        for r in &self.invalidations_since_fill {
            write!(
                f,
                "    core {} step {} (rip {:#x}): {} removed {} TLB / {} PSC entries",
                r.core, r.step, r.rip, r.op, r.removed.tlb, r.removed.psc
            )?;
            if r.kept_by_erratum > 0 {
                write!(
                    f,
                    "; an erratum kept {} TLB entr{} it must remove",
                    r.kept_by_erratum,
                    if r.kept_by_erratum == 1 { "y" } else { "ies" }
                )?;
            }
            writeln!(f)?;
        }
        if !self.invalidations_since_fill.is_empty()
            && !self
                .invalidations_since_fill
                .iter()
                .any(|r| r.core == self.ctx.core)
        {
            writeln!(
                f,
                "  core {} itself performed no invalidation since the fill",
                self.ctx.core
            )?;
        }
        if self.derived.is_some() {
            if self.made_stale_by.is_none() {
                writeln!(f, "  made stale: already stale when entered")?;
            }
            writeln!(
                f,
                "  the real PTE was never removed since (TLB invalidations do not remove it; only clearing it, as MADV_INVAL does, would)"
            )?;
        }
        if self.log_truncated {
            writeln!(
                f,
                "  (older invalidations were dropped from the bounded log)"
            )?;
        }
        Ok(())
    }
}

/// Everything the MMU reports. Events are emitted in a deterministic order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MmuEvent {
    /// A TLB entry was made.
    TlbFill {
        /// The new entry.
        entry: EntryView,
    },
    /// A paging-structure-cache entry was made.
    PscFill {
        /// The new entry.
        entry: EntryView,
    },
    /// A capacity eviction, a replaced entry, or an explicit evict step.
    Eviction {
        /// Who caused it.
        ctx: AccessCtx,
        /// The entry that left.
        entry: EntryView,
    },
    /// An invalidation on one core.
    Invalidation {
        /// Who.
        ctx: AccessCtx,
        /// The operation.
        op: Invalidation,
        /// Counts.
        removed: Removed,
        /// The entries removed (sorted as dumps are).
        entries: Vec<EntryView>,
    },
    /// A guest write changed a paging-structure entry that backs cached entries.
    PagingWrite {
        /// The write.
        write: WriteInfo,
        /// Number of live cached entries re-evaluated.
        affected: u32,
    },
    /// A cached entry became stale.
    BecameStale {
        /// The entry.
        entry: EntryView,
        /// The write that did it; `None` when a change of root did (`root_change`).
        write: Option<WriteInfo>,
        /// The CR3 load that did it, when no write did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root_change: Option<RootChange>,
    },
    /// A stale entry became fresh again (the change was undone, or the core
    /// loaded a root under which the entry is right).
    BecameFresh {
        /// The entry.
        entry: EntryView,
        /// The write that did it; `None` when a change of root did.
        write: Option<WriteInfo>,
        /// The CR3 load that did it, when no write did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root_change: Option<RootChange>,
    },
    /// A stale entry was used.
    StaleUse(Box<StaleUse>),
    /// A write through a TLB entry with D=0 walked again to set D (SDM 4.8).
    DirtyRewalk {
        /// Who.
        ctx: AccessCtx,
        /// Linear address written.
        va: VirtAddr,
    },
    /// The walker set A and/or D in an entry (locked update).
    AccessedDirtySet {
        /// Who.
        ctx: AccessCtx,
        /// The update as a write.
        write: WriteInfo,
    },
}

/// Receiver of MMU events.
pub trait MmuSink {
    /// When false, the MMU does not build events (saves the work on hot paths).
    fn enabled(&self) -> bool {
        true
    }
    /// One event.
    fn event(&mut self, ev: MmuEvent);
}

/// Drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl MmuSink for NullSink {
    fn enabled(&self) -> bool {
        false
    }
    fn event(&mut self, _ev: MmuEvent) {}
}

/// Collects events in a vector.
#[derive(Clone, Debug, Default)]
pub struct VecSink(pub Vec<MmuEvent>);

impl MmuSink for VecSink {
    fn event(&mut self, ev: MmuEvent) {
        self.0.push(ev);
    }
}

impl VecSink {
    /// The stale uses collected so far.
    pub fn stale_uses(&self) -> impl Iterator<Item = &StaleUse> {
        self.0.iter().filter_map(|e| match e {
            MmuEvent::StaleUse(s) => Some(&**s),
            _ => None,
        })
    }
}
