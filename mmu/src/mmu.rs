//! The per-core facade: translate, invalidate, evict, speculative fill, dumps.

use crate::addr::{PhysAddr, VirtAddr};
use crate::coherence::{RecId, Tracker};
use crate::config::{Erratum, MmuConfig};
use crate::events::{
    AccessCtx, CacheKind, EntryView, ErratumKeep, InvalidationRecord, LatentStale, MmuEvent,
    MmuSink, Origin, Removed, RootChange, WriteInfo,
};
use crate::fast::FastPath;
use crate::invalidate::{self, sort_views, Invalidation, Plan, PscScope, TlbScope};
use crate::paging::access::{
    access_allowed, cr4, pf_error_code, Access, AccessKind, PagingRegs, Rights,
};
use crate::paging::entry::{flag_names, pte, table_addr_mask};
use crate::paging::walker::{cr3_root, walk, Path, PathEntry, WalkParams, WalkResult, WalkStart};
use crate::phys_mem::{page_flags, MemError, PhysMem};
use crate::psc::{tag_of, tag_shift, Psc, PscEntry};
use crate::tlb::entry::{sign_extend, size_shift};
use crate::tlb::{Tlb, TlbEntry};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A page fault to deliver: CR2 and the error code (SDM Vol. 3A 4.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageFault {
    /// The faulting linear address (goes to CR2).
    pub addr: VirtAddr,
    /// Error code: [`crate::pf_err`] bits P, W, U, RSVD, I.
    pub error_code: u32,
}

/// Why a translation produced no physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TranslateError {
    /// A guest page fault; the #PF invalidation has already been applied.
    #[error("page fault at {} error code {:#x}", .0.addr, .0.error_code)]
    PageFault(PageFault),
    /// The linear address is not canonical: the CPU raises #GP (or #SS) before
    /// translating, so no cache is touched.
    #[error("non-canonical linear address {0}")]
    NonCanonical(VirtAddr),
    /// A paging structure lies outside guest physical memory.
    #[error("page walk left guest memory: {0}")]
    Mem(#[from] MemError),
    /// CR0.PG=1 without CR4.PAE (32-bit or PAE paging): not modelled.
    #[error("paging mode not modelled (cr0 {cr0:#x}, cr4 {cr4:#x}): only 4-level paging is")]
    UnsupportedMode {
        /// CR0.
        cr0: u64,
        /// CR4.
        cr4: u64,
    },
}

/// Every translation cache of one core. Only fills, capacity evictions and
/// [`invalidate::apply`] change them.
#[derive(Clone, Debug)]
pub(crate) struct Caches {
    pub(crate) dtlb: Tlb,
    pub(crate) itlb: Option<Tlb>,
    pub(crate) psc: Psc,
    pub(crate) fast: FastPath,
}

/// A read-only picture of one core's caches, sorted (cache, PCID, address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmuDump {
    /// Core.
    pub core: u32,
    /// TLB entries (data, then instruction).
    pub tlb: Vec<EntryView>,
    /// Paging-structure-cache entries (PML4E, PDPTE, PDE caches).
    pub psc: Vec<EntryView>,
}

/// One level of a [`WalkView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelView {
    /// 4 = PML4E .. 1 = PTE.
    pub level: u8,
    /// Address of the entry.
    pub entry_pa: PhysAddr,
    /// Its value in memory now.
    pub value: u64,
    /// Flag names ("P RW US A ...").
    pub flags: String,
    /// This core's paging-structure-cache entry for this level (current PCID), if
    /// any: the entry value it was built from.
    pub cached_value: Option<u64>,
    /// The cached entry disagrees with memory (next table or rights; A/D ignored).
    pub cached_differs: bool,
}

/// A read-only walk of one linear address, for debuggers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkView {
    /// The address.
    pub va: VirtAddr,
    /// Current PCID.
    pub pcid: u16,
    /// Root table from CR3.
    pub root: PhysAddr,
    /// Levels read from memory, top-down.
    pub levels: Vec<LevelView>,
    /// What the walk found in memory.
    pub result: Option<WalkResult>,
    /// The TLB entry (data or instruction) this core would use now, if any.
    pub tlb: Vec<EntryView>,
}

/// The MMU of one core: its TLBs, paging-structure caches and fast path.
#[derive(Clone, Debug)]
pub struct CoreMmu {
    core: u32,
    maxphyaddr: u8,
    huge_1g: bool,
    extra: bool,
    invlpg_erratum: bool,
    pub(crate) caches: Caches,
}

impl CoreMmu {
    /// An empty MMU for core `core`. Bad geometry is clamped (ways ≥ 1, sets ≥ 1);
    /// call [`MmuConfig::validate`] first to report it instead.
    pub fn new(core: u32, cfg: &MmuConfig) -> Self {
        CoreMmu {
            core,
            maxphyaddr: cfg.maxphyaddr.clamp(32, 52),
            huge_1g: cfg.huge_1g,
            extra: cfg.extra_invalidations,
            invlpg_erratum: cfg.has_erratum(Erratum::InvlpgMissesGlobalWithPcid),
            caches: Caches {
                dtlb: Tlb::new(&cfg.tlb.data),
                itlb: cfg.tlb.instruction.as_deref().map(Tlb::new),
                psc: Psc::new(&cfg.psc),
                fast: FastPath::new(cfg.fast_path, cfg.tlb.instruction.is_some()),
            },
        }
    }

    /// The core index.
    pub fn core(&self) -> u32 {
        self.core
    }

    fn params(&self, regs: &PagingRegs) -> WalkParams {
        WalkParams {
            maxphyaddr: self.maxphyaddr,
            huge_1g: self.huge_1g,
            nxe: regs.nxe(),
        }
    }

    /// Translates `va` for `access`.
    ///
    /// Order of business: canonical check; CR0.PG=0 → identity; fast path; TLB
    /// (SDM 4.10.2.3: a usable entry of the current PCID or a global one); the
    /// dirty-bit re-walk (SDM 4.8); otherwise a walk that may start from a
    /// paging-structure-cache entry (SDM 4.10.3.2), checks rights (SDM 4.6), sets
    /// A/D (SDM 4.8) and fills the caches. A #PF applies the page-fault
    /// invalidation (SDM 4.10.4.1) before returning. A hit on a stale entry (or a
    /// walk through a stale paging-structure-cache entry) is reported as
    /// [`MmuEvent::StaleUse`] and still used, as hardware would.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn translate(
        &mut self,
        mem: &mut PhysMem,
        tracker: &mut Tracker,
        regs: &PagingRegs,
        va: VirtAddr,
        access: Access,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> Result<PhysAddr, TranslateError> {
        if !va.is_canonical() {
            return Err(TranslateError::NonCanonical(va));
        }
        if let Some(pa) = self.translate_fast(tracker.generation(), regs, va, access) {
            return Ok(pa);
        }
        self.translate_slow(mem, tracker, regs, va, access, ctx, sink)
    }

    /// The part of [`CoreMmu::translate`] that needs no memory, tracker or sink:
    /// identity when paging is off, else a fast-path hit (which refreshes the TLB
    /// slot's LRU stamp exactly as `translate` does). `None` means "call
    /// `translate`" (a miss, or a non-canonical `va`, whose error `translate`
    /// reports). `tracker_gen` is [`Tracker::generation`].
    ///
    /// A bus can try this first and build the context `translate` wants (access
    /// context, event adapter) only on a miss; that is the whole difference, the
    /// outcome is the same as calling `translate`. Hits never involve stale entries
    /// (the fast path holds none, see `fast.rs`), so nothing is left unreported.
    #[inline]
    pub fn translate_fast(
        &mut self,
        tracker_gen: u64,
        regs: &PagingRegs,
        va: VirtAddr,
        access: Access,
    ) -> Option<PhysAddr> {
        if !va.is_canonical() {
            return None;
        }
        if !regs.paging() {
            return Some(PhysAddr(va.raw()));
        }
        let fast = &mut self.caches.fast;
        if !fast.enabled {
            return None;
        }
        fast.sync(regs, tracker_gen);
        let hit = fast.lookup(va, &access)?;
        let tlb = if access.kind == AccessKind::Execute {
            self.caches.itlb.as_mut().unwrap_or(&mut self.caches.dtlb)
        } else {
            &mut self.caches.dtlb
        };
        if let Some(a) = tlb.arrays.get_mut(hit.arr) {
            a.touch(hit.slot);
        }
        self.caches.fast.touched_elsewhere();
        Some(PhysAddr(hit.page | va.page_offset()))
    }

    /// [`CoreMmu::translate_fast`] for an instruction fetch (execute access, not
    /// implicit) at privilege `cpl3` / `ac` (RFLAGS.AC), with the same outcome and
    /// the same effect on the caches: on a fast-path hit it refreshes the TLB
    /// slot's LRU stamp like any hit, unless the slot is already the most recent
    /// of its array (a refresh would reorder nothing). What it saves is the lookup
    /// work on the common case of consecutive fetches from one page: the fast path
    /// memoises its last fetch hit (see `fast.rs`), valid only while the paging
    /// registers, the tracker generation (which moves on every staleness mark) and
    /// the fast path's generation (every fill, eviction, invalidation) are
    /// unchanged, so a stale translation is never used through it.
    #[inline]
    pub fn translate_fetch_fast(
        &mut self,
        tracker_gen: u64,
        regs: &PagingRegs,
        va: VirtAddr,
        cpl3: bool,
        ac: bool,
    ) -> Option<PhysAddr> {
        let key = (cpl3 as u8) << 1 | ac as u8;
        let vpn = va.vpn();
        let fast = &mut self.caches.fast;
        let hit = match fast.fetch_memo(regs, tracker_gen, vpn, key) {
            Some(hit) => hit,
            None => {
                if !va.is_canonical() || !regs.paging() || !fast.enabled {
                    return self.translate_fast(tracker_gen, regs, va, fetch_access(cpl3, ac));
                }
                fast.sync(regs, tracker_gen);
                let hit = fast.lookup(va, &fetch_access(cpl3, ac))?;
                fast.remember_fetch(vpn, key, &hit);
                hit
            }
        };
        if self.caches.fast.fetch_touch() {
            let tlb = self.caches.itlb.as_mut().unwrap_or(&mut self.caches.dtlb);
            if let Some(a) = tlb.arrays.get_mut(hit.arr) {
                a.touch(hit.slot);
            }
        }
        Some(PhysAddr(hit.page | va.page_offset()))
    }

    /// [`CoreMmu::translate_fast`] for a data access (read or write; an execute
    /// access goes to `translate_fast` unchanged), with the same outcome and cache
    /// effects (a hit refreshes the TLB slot's LRU stamp, skipped as for fetches
    /// when the slot is already its array's most recent). Like the fetch
    /// shortcut, it first tries the fast path's memo of its last data hit, valid
    /// only while registers, tracker generation and fast-path generation are
    /// unchanged and `data` was not written since; the memo is keyed by the
    /// access's permission class, so a read's memo never serves a write (a write
    /// needs D=1 in the entry).
    #[inline]
    pub fn translate_data_fast(
        &mut self,
        tracker_gen: u64,
        regs: &PagingRegs,
        va: VirtAddr,
        access: Access,
    ) -> Option<PhysAddr> {
        if access.kind == AccessKind::Execute {
            return self.translate_fast(tracker_gen, regs, va, access);
        }
        let key = crate::fast::perm_index(&access);
        let vpn = va.vpn();
        let fast = &mut self.caches.fast;
        let hit = match fast.data_memo(regs, tracker_gen, vpn, key) {
            Some(hit) => hit,
            None => {
                if !va.is_canonical() || !regs.paging() || !fast.enabled {
                    return self.translate_fast(tracker_gen, regs, va, access);
                }
                fast.sync(regs, tracker_gen);
                let hit = fast.lookup(va, &access)?;
                fast.remember_data(vpn, key, &hit);
                hit
            }
        };
        if self.caches.fast.data_touch() {
            if let Some(a) = self.caches.dtlb.arrays.get_mut(hit.arr) {
                a.touch(hit.slot);
            }
        }
        Some(PhysAddr(hit.page | va.page_offset()))
    }

    /// Out of line on purpose: inlined into every `translate` caller (the machine
    /// bus inlines `translate`), the walk made the fast path save and restore
    /// most callee-saved registers on every hit.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn translate_slow(
        &mut self,
        mem: &mut PhysMem,
        tracker: &mut Tracker,
        regs: &PagingRegs,
        va: VirtAddr,
        access: Access,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> Result<PhysAddr, TranslateError> {
        if regs.cr4 & cr4::PAE == 0 {
            return Err(TranslateError::UnsupportedMode {
                cr0: regs.cr0,
                cr4: regs.cr4,
            });
        }
        let pcid = regs.pcid();
        let instruction = access.kind == AccessKind::Execute && self.caches.itlb.is_some();
        let tlb = if instruction {
            self.caches.itlb.as_mut().unwrap_or(&mut self.caches.dtlb)
        } else {
            &mut self.caches.dtlb
        };
        if let Some((a, s)) = tlb.lookup(va, pcid) {
            let e = *tlb.arrays[a].get(s);
            // SDM 4.10.1: the entry is tagged by PCID, not root; judge it against
            // the root loaded now (normally already done at the CR3 load).
            let root = cr3_root(regs.cr3, self.maxphyaddr);
            if let Some(from) = tracker.root(e.rec).filter(|r| *r != root) {
                let change = RootChange {
                    core: self.core,
                    step: ctx.step,
                    rip: ctx.rip,
                    from,
                    to: root,
                };
                tracker.reroot(mem, e.rec, change, sink);
            }
            let stale = tracker.is_stale(e.rec);
            // SDM 4.6 / 4.10.2.3: rights may be enforced from the TLB entry.
            if !access_allowed(e.rights, &access, regs) {
                if stale {
                    report_stale(mem, tracker, e.rec, ctx, va, Some(access), sink);
                }
                let ec = pf_error_code(&access, regs, true, false);
                return Err(self.page_fault(va, ec, regs, tracker, ctx, sink));
            }
            if access.kind == AccessKind::Write && !e.dirty {
                // SDM 4.8: the D flag is set in memory, so a clean entry cannot
                // complete a write; walk again (locked update of D) and refill.
                // The clean entry's translation is not used (the re-walk decides the
                // outcome), so even a stale one is not a stale use here; a re-walk
                // through a stale paging-structure-cache entry is reported below.
                if sink.enabled() {
                    sink.event(MmuEvent::DirtyRewalk { ctx, va });
                }
                let plan = Plan {
                    tlb: TlbScope::Page {
                        va,
                        pcid,
                        globals: true,
                    },
                    psc: PscScope::None,
                    data_only: true,
                };
                invalidate::apply(&mut self.caches, tracker, &plan, false);
                return self.walk_and_fill(
                    mem,
                    tracker,
                    regs,
                    va,
                    Some(access),
                    access.kind == AccessKind::Execute,
                    ctx,
                    sink,
                );
            }
            if stale {
                report_stale(mem, tracker, e.rec, ctx, va, Some(access), sink);
            }
            tlb.arrays[a].touch(s);
            self.caches.fast.touched_elsewhere();
            let page = e.frame.raw() | (va.raw() & e.size.offset_mask() & !0xfff);
            if !stale {
                self.caches.fast.insert(
                    va,
                    access.kind == AccessKind::Execute,
                    page,
                    e.rights,
                    e.dirty,
                    a,
                    s,
                );
            }
            return Ok(PhysAddr(page | va.page_offset()));
        }
        self.walk_and_fill(
            mem,
            tracker,
            regs,
            va,
            Some(access),
            access.kind == AccessKind::Execute,
            ctx,
            sink,
        )
    }

    /// Applies the #PF invalidation and builds the fault.
    fn page_fault(
        &mut self,
        va: VirtAddr,
        error_code: u32,
        regs: &PagingRegs,
        tracker: &mut Tracker,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> TranslateError {
        self.remove(Invalidation::PageFault { va }, regs, tracker, ctx, sink);
        TranslateError::PageFault(PageFault {
            addr: va,
            error_code,
        })
    }

    /// The miss path. `access = None` is a speculative walk: no rights check, no
    /// fault delivered, no fill if the translation is not valid.
    #[allow(clippy::too_many_arguments)]
    fn walk_and_fill(
        &mut self,
        mem: &mut PhysMem,
        tracker: &mut Tracker,
        regs: &PagingRegs,
        va: VirtAddr,
        access: Option<Access>,
        instruction: bool,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> Result<PhysAddr, TranslateError> {
        let params = self.params(regs);
        let root = cr3_root(regs.cr3, self.maxphyaddr);
        let pcid = regs.pcid();

        // SDM 4.10.3.2: use the deepest paging-structure-cache entry available.
        let mut start = WalkStart::root(root);
        let mut path = Path::new();
        let mut via: Option<RecId> = None;
        for level in [2u8, 3, 4] {
            if let Some(pe) = self.caches.psc.level_mut(level).lookup(va, pcid) {
                start = WalkStart {
                    level: level - 1,
                    table: pe.next,
                    rights: pe.rights,
                };
                if let Some(o) = tracker.origin(pe.rec) {
                    path = o.entries;
                }
                via = Some(pe.rec);
                break;
            }
        }
        if let Some(rec) = via {
            // As for a TLB hit: judge the entry against the root loaded now.
            if let Some(from) = tracker.root(rec).filter(|r| *r != root) {
                let change = RootChange {
                    core: self.core,
                    step: ctx.step,
                    rip: ctx.rip,
                    from,
                    to: root,
                };
                tracker.reroot(mem, rec, change, sink);
            }
        }
        let inherit = via.and_then(|r| tracker.stale_cause(r));
        if let Some(r) = via.filter(|_| inherit.is_some()) {
            report_stale(mem, tracker, r, ctx, va, access, sink);
        }
        let first_new = path.len();
        let res = walk(mem, va, start, params, 0, &mut path)?;
        let (frame, size, rights, global) = match res {
            WalkResult::Leaf {
                frame,
                size,
                rights,
                global,
                ..
            } => (frame, size, rights, global),
            WalkResult::NotPresent { .. } | WalkResult::Reserved { .. } => {
                let Some(acc) = access else {
                    return Err(TranslateError::PageFault(PageFault {
                        addr: va,
                        error_code: 0,
                    }));
                };
                let rsvd = matches!(res, WalkResult::Reserved { .. });
                let ec = pf_error_code(&acc, regs, false, rsvd);
                return Err(self.page_fault(va, ec, regs, tracker, ctx, sink));
            }
            WalkResult::Table { .. } => unreachable_table(),
        };
        if let Some(acc) = &access {
            if !access_allowed(rights, acc, regs) {
                let ec = pf_error_code(acc, regs, true, false);
                return Err(self.page_fault(va, ec, regs, tracker, ctx, sink));
            }
        }
        // SDM 4.8: A in every entry this walk read, D in the leaf on a write; locked
        // read-modify-writes, only for a walk that did not fault.
        let write = matches!(access, Some(a) if a.kind == AccessKind::Write);
        let n = path.len();
        for i in first_new..n {
            let e = path.entries()[i];
            let mut bits = pte::A;
            if i == n - 1 && write {
                bits |= pte::D;
            }
            let v = set_bits(mem, tracker, e, bits, ctx, sink)?;
            path.entries_mut()[i].value = v;
        }
        let leaf_value = path.entries()[n - 1].value;

        // Paging-structure-cache fills for the non-leaf entries read (SDM 4.10.3.1).
        let mut r = start.rights;
        for i in first_new..n - 1 {
            let e = path.entries()[i];
            r = r.and(Rights::of_entry(e.value, params.nxe));
            let level = e.level;
            if !(2..=4).contains(&level) || !self.caches.psc.level(level).enabled() {
                continue;
            }
            let next = PhysAddr(e.value & table_addr_mask(self.maxphyaddr));
            let mut op = path;
            op.truncate(i + 1);
            let region = VirtAddr(sign_extend(tag_of(va, level) << tag_shift(level)));
            let cached = WalkResult::Table {
                level,
                next,
                rights: r,
            };
            let origin = Origin {
                core: self.core,
                step: ctx.step,
                rip: ctx.rip,
                root,
                pcid,
                va,
                entries: op,
            };
            let rec = tracker.create(
                mem,
                CacheKind::Psc { level },
                pcid,
                region,
                false,
                cached,
                origin,
                params,
                regs.smep() || regs.smap(),
                inherit,
                sink,
            );
            if sink.enabled() {
                if let Some(entry) = tracker.view(rec) {
                    sink.event(MmuEvent::PscFill { entry });
                }
            }
            let ev = self.caches.psc.level_mut(level).insert(PscEntry {
                pcid,
                tag: tag_of(va, level),
                next,
                rights: r,
                rec,
                stamp: 0,
            });
            if let Some(old) = ev {
                self.evicted(tracker, old.rec, ctx, sink);
            }
        }

        // TLB fill (SDM 4.10.2.1): only for a translation that did not fault;
        // global only with CR4.PGE=1 and G=1 in the leaf (SDM 4.10.2.4).
        let global = global && regs.pge();
        let dirty = leaf_value & pte::D != 0;
        let page = frame.raw() | (va.raw() & size.offset_mask() & !0xfff);
        let use_itlb = instruction && self.caches.itlb.is_some();
        let arr_idx = {
            let tlb = if use_itlb {
                self.caches.itlb.as_ref().unwrap_or(&self.caches.dtlb)
            } else {
                &self.caches.dtlb
            };
            tlb.array_for(size)
        };
        if let Some(ai) = arr_idx {
            let region = VirtAddr(va.raw() & !size.offset_mask());
            let cached = WalkResult::Leaf {
                frame,
                size,
                rights,
                global,
                dirty,
            };
            let origin = Origin {
                core: self.core,
                step: ctx.step,
                rip: ctx.rip,
                root,
                pcid,
                va,
                entries: path,
            };
            let rec = tracker.create(
                mem,
                CacheKind::Tlb {
                    instruction: use_itlb,
                },
                pcid,
                region,
                global,
                cached,
                origin,
                params,
                regs.smep() || regs.smap(),
                inherit,
                sink,
            );
            if sink.enabled() {
                if let Some(entry) = tracker.view(rec) {
                    sink.event(MmuEvent::TlbFill { entry });
                }
            }
            let tlb = if use_itlb {
                self.caches.itlb.as_mut().unwrap_or(&mut self.caches.dtlb)
            } else {
                &mut self.caches.dtlb
            };
            let (slot, old) = tlb.arrays[ai].insert(TlbEntry {
                valid: true,
                pcid,
                global,
                vpn: va.raw() >> size_shift(size),
                size,
                frame,
                rights,
                dirty,
                rec,
                stamp: 0,
            });
            self.caches.fast.bump();
            if let Some(old) = old {
                self.evicted(tracker, old.rec, ctx, sink);
            }
            if !tracker.is_stale(rec) {
                if let Some(acc) = access {
                    self.caches.fast.insert(
                        va,
                        acc.kind == AccessKind::Execute,
                        page,
                        rights,
                        dirty,
                        ai,
                        slot,
                    );
                }
            }
        }
        Ok(PhysAddr(page | va.page_offset()))
    }

    fn evicted(
        &mut self,
        tracker: &mut Tracker,
        rec: RecId,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) {
        self.caches.fast.bump();
        if sink.enabled() {
            if let Some(entry) = tracker.view(rec) {
                sink.event(MmuEvent::Eviction { ctx, entry });
            }
        }
        tracker.release(rec);
    }

    /// Performs an invalidation on this core (SDM 4.10.4; see [`Invalidation`] for
    /// each row) through the one removal function, logs it in the tracker's
    /// per-core log, and reports it as [`MmuEvent::Invalidation`]. `regs` are the
    /// registers before the operation.
    ///
    /// A MOV to CR3 then re-roots what it left usable (entries of the new PCID and
    /// global entries): they are judged against the new root from now on, because
    /// entries are tagged with PCIDs, not roots (SDM Vol. 3A 4.10.1); see
    /// [`Tracker`]. That costs a read-only walk per such entry filled under
    /// another root, once per load, and nothing on later hits.
    pub fn invalidate(
        &mut self,
        mem: &mut PhysMem,
        op: Invalidation,
        regs: &PagingRegs,
        tracker: &mut Tracker,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> Removed {
        let removed = self.remove(op, regs, tracker, ctx, sink);
        if let Invalidation::MovCr3 { src } = op {
            let cr3 = invalidate::cr3_after_mov(src, regs.cr4);
            let pcid = if regs.pcide() {
                (cr3 & 0xfff) as u16
            } else {
                0
            };
            let root = cr3_root(cr3, self.maxphyaddr);
            self.reroot_usable(mem, tracker, root, pcid, ctx, sink);
        }
        removed
    }

    /// [`CoreMmu::invalidate`] without the re-rooting (for operations that do not
    /// load CR3).
    fn remove(
        &mut self,
        op: Invalidation,
        regs: &PagingRegs,
        tracker: &mut Tracker,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> Removed {
        let plan = invalidate::plan(&op, regs, self.extra, self.invlpg_erratum);
        let kept_by_erratum = self.note_erratum_keeps(&op, regs, tracker, ctx);
        let collect = sink.enabled();
        let (removed, entries) = invalidate::apply(&mut self.caches, tracker, &plan, collect);
        tracker.log_invalidation(InvalidationRecord {
            core: self.core,
            step: ctx.step,
            rip: ctx.rip,
            op,
            removed,
            kept_by_erratum,
        });
        if collect {
            sink.event(MmuEvent::Invalidation {
                ctx,
                op,
                removed,
                entries,
            });
        }
        removed
    }

    /// With [`Erratum::InvlpgMissesGlobalWithPcid`] and CR4.PCIDE=1, an INVLPG keeps
    /// the global TLB entries for the page that SDM Vol. 3A 4.10.4.1 says it
    /// removes: note the operation on each, so a later stale use can say why it
    /// was still cached. Returns how many entries that is.
    fn note_erratum_keeps(
        &self,
        op: &Invalidation,
        regs: &PagingRegs,
        tracker: &mut Tracker,
        ctx: AccessCtx,
    ) -> u32 {
        let Invalidation::Invlpg { va } = *op else {
            return 0;
        };
        if !self.invlpg_erratum || !regs.pcide() || !va.is_canonical() {
            return 0;
        }
        let keep = ErratumKeep {
            erratum: Erratum::InvlpgMissesGlobalWithPcid,
            core: self.core,
            step: ctx.step,
            rip: ctx.rip,
            op: *op,
        };
        let mut n = 0;
        for t in std::iter::once(&self.caches.dtlb).chain(self.caches.itlb.as_ref()) {
            for a in &t.arrays {
                for e in a.entries().filter(|e| e.global && e.covers(va)) {
                    tracker.note_erratum_keep(e.rec, keep);
                    n += 1;
                }
            }
        }
        n
    }

    /// After a CR3 load: judge every entry still usable (tagged `pcid`, or global)
    /// against `root` (SDM Vol. 3A 4.10.1; see [`Tracker::reroot`]).
    fn reroot_usable(
        &mut self,
        mem: &mut PhysMem,
        tracker: &mut Tracker,
        root: PhysAddr,
        pcid: u16,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) {
        // No allocation on this step path: the caches are only read here, and the
        // tracker is a separate object.
        let core = self.core;
        let mut reroot = |rec: RecId| {
            if let Some(from) = tracker.root(rec).filter(|r| *r != root) {
                let change = RootChange {
                    core,
                    step: ctx.step,
                    rip: ctx.rip,
                    from,
                    to: root,
                };
                tracker.reroot(mem, rec, change, sink);
            }
        };
        for t in std::iter::once(&self.caches.dtlb).chain(self.caches.itlb.as_ref()) {
            for a in &t.arrays {
                for e in a.entries().filter(|e| e.pcid == pcid || e.global) {
                    reroot(e.rec);
                }
            }
        }
        for l in &self.caches.psc.levels {
            for e in l.entries.iter().filter(|e| e.pcid == pcid) {
                reroot(e.rec);
            }
        }
        self.caches.fast.bump();
    }

    /// Scenario hook: evicts the TLB entries (data and instruction) that this core
    /// would use for `va` now, as a capacity eviction would. Returns how many left.
    pub fn evict(
        &mut self,
        tracker: &mut Tracker,
        regs: &PagingRegs,
        va: VirtAddr,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> u32 {
        let plan = Plan {
            tlb: TlbScope::Page {
                va,
                pcid: regs.pcid(),
                globals: true,
            },
            psc: PscScope::None,
            data_only: false,
        };
        let collect = sink.enabled();
        let (removed, entries) = invalidate::apply(&mut self.caches, tracker, &plan, collect);
        for entry in entries {
            sink.event(MmuEvent::Eviction { ctx, entry });
        }
        removed.tlb
    }

    /// Scenario hook: a speculative walk of `va` as hardware may do at any time
    /// (SDM 4.10.2.3 / 4.10.3.1 allow caching any valid translation): sets A flags,
    /// fills the paging-structure caches and the data TLB (or the instruction TLB if
    /// `instruction`), without checking rights and without faulting. Nothing is
    /// filled, and nothing invalidated, if the walk finds no valid translation.
    /// Returns whether a translation was found.
    #[allow(clippy::too_many_arguments)]
    pub fn speculative_fill(
        &mut self,
        mem: &mut PhysMem,
        tracker: &mut Tracker,
        regs: &PagingRegs,
        va: VirtAddr,
        instruction: bool,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> Result<bool, TranslateError> {
        if !va.is_canonical() || !regs.paging() {
            return Ok(false);
        }
        let pcid = regs.pcid();
        let tlb = if instruction {
            self.caches.itlb.as_ref().unwrap_or(&self.caches.dtlb)
        } else {
            &self.caches.dtlb
        };
        if tlb.lookup(va, pcid).is_some() {
            return Ok(true);
        }
        match self.walk_and_fill(mem, tracker, regs, va, None, instruction, ctx, sink) {
            Ok(_) => Ok(true),
            Err(TranslateError::PageFault(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Calls `f` on every cached entry (TLBs, then paging-structure caches), in
    /// no particular order and without building a dump: for callers that
    /// combine entries order-independently, many times per run (exploration's
    /// state hash).
    pub fn for_each_entry(&self, tracker: &Tracker, mut f: impl FnMut(&EntryView)) {
        for t in std::iter::once(&self.caches.dtlb).chain(self.caches.itlb.as_ref()) {
            for a in &t.arrays {
                for e in a.entries() {
                    if let Some(v) = tracker.view(e.rec) {
                        f(&v);
                    }
                }
            }
        }
        for l in &self.caches.psc.levels {
            for e in &l.entries {
                if let Some(v) = tracker.view(e.rec) {
                    f(&v);
                }
            }
        }
    }

    /// A read-only picture of this core's TLB and paging-structure-cache entries,
    /// sorted. Changes nothing (no LRU updates).
    pub fn dump(&self, tracker: &Tracker) -> MmuDump {
        let mut tlb = Vec::new();
        let mut tlbs = vec![&self.caches.dtlb];
        if let Some(i) = &self.caches.itlb {
            tlbs.push(i);
        }
        for t in tlbs {
            for a in &t.arrays {
                for e in a.entries() {
                    if let Some(v) = tracker.view(e.rec) {
                        tlb.push(v);
                    }
                }
            }
        }
        let mut psc = Vec::new();
        for l in &self.caches.psc.levels {
            for e in &l.entries {
                if let Some(v) = tracker.view(e.rec) {
                    psc.push(v);
                }
            }
        }
        sort_views(&mut tlb);
        sort_views(&mut psc);
        MmuDump {
            core: self.core,
            tlb,
            psc,
        }
    }

    /// Every stale entry this core still caches (TLBs, then paging-structure
    /// caches, each sorted as [`CoreMmu::dump`] sorts), with what made it stale:
    /// stale entries that are never used are invisible to stale-use checks, but
    /// still wrong to keep once a shootdown claims to be complete. Read-only.
    pub fn stale_entries(&self, tracker: &Tracker) -> Vec<LatentStale> {
        let d = self.dump(tracker);
        let mut recs: Vec<(EntryView, RecId)> = Vec::new();
        for t in std::iter::once(&self.caches.dtlb).chain(self.caches.itlb.as_ref()) {
            for a in &t.arrays {
                for e in a.entries() {
                    if let Some(v) = tracker.view(e.rec) {
                        recs.push((v, e.rec));
                    }
                }
            }
        }
        for l in &self.caches.psc.levels {
            for e in &l.entries {
                if let Some(v) = tracker.view(e.rec) {
                    recs.push((v, e.rec));
                }
            }
        }
        d.tlb
            .iter()
            .chain(&d.psc)
            .filter(|v| v.stale)
            .filter_map(|v| {
                let (_, rec) = recs.iter().find(|(x, _)| x == v)?;
                let cause = tracker.stale_cause(*rec)?;
                Some(LatentStale {
                    entry: *v,
                    made_stale_by: cause.write(),
                    root_change: cause.root_change(),
                })
            })
            .collect()
    }

    /// A read-only walk of `va` from the current CR3 showing each level's entry
    /// address, value and flags, and whether this core's paging-structure-cache
    /// entry for that level differs from memory; plus the TLB entries that would be
    /// used. Sets no A/D bits, fills nothing, touches no LRU state.
    pub fn walk_view(
        &self,
        mem: &PhysMem,
        tracker: &Tracker,
        regs: &PagingRegs,
        va: VirtAddr,
    ) -> WalkView {
        let params = self.params(regs);
        let root = cr3_root(regs.cr3, self.maxphyaddr);
        let pcid = regs.pcid();
        let mut path = Path::new();
        let result = walk(mem, va, WalkStart::root(root), params, 0, &mut path).ok();
        let mut levels = Vec::new();
        let mut rights = Rights::ALL;
        for e in path.entries() {
            rights = rights.and(Rights::of_entry(e.value, params.nxe));
            let mut cached_value = None;
            let mut cached_differs = false;
            if (2..=4).contains(&e.level) {
                let l = self.caches.psc.level(e.level);
                if let Some(i) = l.find(va, pcid) {
                    let pe = l.entries[i];
                    cached_value = tracker
                        .origin(pe.rec)
                        .and_then(|o| o.entries.entries().iter().find(|x| x.level == e.level))
                        .map(|x| x.value);
                    let next = PhysAddr(e.value & table_addr_mask(self.maxphyaddr));
                    let present_table = e.value & pte::P != 0 && e.value & pte::PS == 0;
                    cached_differs =
                        !present_table || pe.next != next || rights.lacks_some_of(pe.rights);
                }
            }
            levels.push(LevelView {
                level: e.level,
                entry_pa: e.pa,
                value: e.value,
                flags: flag_names(e.value),
                cached_value,
                cached_differs,
            });
        }
        let mut tlb = Vec::new();
        let mut tlbs = vec![&self.caches.dtlb];
        if let Some(i) = &self.caches.itlb {
            tlbs.push(i);
        }
        for t in tlbs {
            if let Some((a, s)) = t.lookup(va, pcid) {
                if let Some(v) = tracker.view(t.arrays[a].get(s).rec) {
                    tlb.push(v);
                }
            }
        }
        WalkView {
            va,
            pcid,
            root,
            levels,
            result,
            tlb,
        }
    }
}

/// The access of an instruction fetch at privilege `cpl3` / `ac`.
#[inline(always)]
fn fetch_access(cpl3: bool, ac: bool) -> Access {
    Access {
        kind: AccessKind::Execute,
        cpl: if cpl3 { 3 } else { 0 },
        implicit_supervisor: false,
        rflags_ac: ac,
    }
}

#[cold]
fn unreachable_table() -> ! {
    // walk() returns Table only when asked to stop above the leaf (stop_level > 0).
    panic!("walk to the leaf returned a table entry: broken walker invariant")
}

fn report_stale(
    mem: &PhysMem,
    tracker: &mut Tracker,
    rec: RecId,
    ctx: AccessCtx,
    va: VirtAddr,
    access: Option<Access>,
    sink: &mut dyn MmuSink,
) {
    tracker.count_stale_use();
    if !sink.enabled() {
        return;
    }
    if let Some(s) = tracker.stale_use(mem, rec, ctx, va, access) {
        sink.event(MmuEvent::StaleUse(Box::new(s)));
    }
}

/// Locked read-modify-write setting `bits` in the entry (SDM 4.8); returns the
/// value now in memory.
fn set_bits(
    mem: &mut PhysMem,
    tracker: &mut Tracker,
    e: PathEntry,
    bits: u64,
    ctx: AccessCtx,
    sink: &mut dyn MmuSink,
) -> Result<u64, MemError> {
    let mut cur = e.value;
    loop {
        let new = cur | bits;
        if new == cur {
            return Ok(cur);
        }
        let (found, flags) = mem.compare_exchange_u64(e.pa, cur, new)?;
        if found != cur {
            cur = found;
            continue;
        }
        if flags & page_flags::PAGING != 0 {
            tracker.on_walker_write(mem, e.pa, ctx, sink);
        }
        if sink.enabled() {
            sink.event(MmuEvent::AccessedDirtySet {
                ctx,
                write: WriteInfo {
                    core: ctx.core,
                    step: ctx.step,
                    rip: ctx.rip,
                    pa: e.pa,
                    old: cur,
                    new,
                },
            });
        }
        return Ok(new);
    }
}
