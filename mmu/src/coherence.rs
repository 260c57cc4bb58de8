//! The coherence oracle: a machine-wide tracker of every cached TLB and
//! paging-structure-cache entry, its origin, and whether it is still coherent with
//! the paging structures in memory (DESIGN.md "Coherence oracle").
//!
//! Each cached entry owns a [`RecId`] here. The record keeps the origin (core, step,
//! root, the paging-structure entries it was built from) and a reverse index maps the
//! physical address of every such entry to the records built from it. When a guest
//! write changes an indexed entry, each affected record is re-evaluated with a fresh,
//! read-only walk from the root its core translates with now (the *judging root*):
//!
//! - *stale* when the fresh walk faults, maps another frame or page size (or another
//!   next table, for a paging-structure-cache entry), or grants fewer rights (write,
//!   user, execute) than the cached entry;
//! - changes that only add rights or touch A/D/ignored bits leave it fresh — with
//!   one refinement: when CR4.SMEP or CR4.SMAP was set at fill time, U/S 0→1 counts
//!   as a loss, because it takes supervisor fetches/data accesses away (SDM 4.6.1);
//! - an undone change makes it fresh again; while stale, the write that first made it
//!   stale is kept.
//!
//! Entries are tagged with PCIDs, not roots (SDM Vol. 3A 4.10.1): after a MOV to CR3
//! that keeps an entry usable (bit 63 set with CR4.PCIDE=1, or a global entry), the
//! core translates with the entry under the new root, so the entry is judged against
//! that root from then on ([`Tracker::reroot`]). The MMU re-roots the entries the load
//! leaves usable once, at the load, and checks the judging root again on every
//! slow-path use (one compare), so a CR3 changed behind the MMU's back is caught too.
//! A fast-path hit costs nothing extra: the fast path is emptied whenever the paging
//! registers change, and refilled only from the slow path.
//!
//! The cost per write is the number of live cached entries built from the written
//! entry (the reverse index drops removed records lazily, by generation); a hit asks
//! [`Tracker::is_stale`], one array read. Every staleness transition bumps the
//! machine-wide [`Tracker::generation`], which empties every core's fast path.

use crate::addr::{Pfn, PhysAddr, VirtAddr};
use crate::events::{
    AccessCtx, CacheKind, EntryView, ErratumKeep, InvalidationRecord, MmuEvent, MmuSink, Origin,
    RootChange, StaleUse, WriteInfo,
};
use crate::fixed_hash::FixedMap;
use crate::paging::access::Access;
use crate::paging::walker::{walk, Path, WalkParams, WalkResult, WalkStart};
use crate::phys_mem::{page_flags, MemError, PhysMem};
use std::collections::{BTreeSet, VecDeque};

/// Index of a tracker record (owned by exactly one cached entry while live).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RecId(pub u32);

/// What made a cached entry stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A guest write to a paging-structure entry on its path.
    Write(WriteInfo),
    /// Its core loaded a root under which it translates differently.
    Root(RootChange),
}

impl Cause {
    pub(crate) fn write(&self) -> Option<WriteInfo> {
        match self {
            Cause::Write(w) => Some(*w),
            Cause::Root(_) => None,
        }
    }
    pub(crate) fn root_change(&self) -> Option<RootChange> {
        match self {
            Cause::Write(_) => None,
            Cause::Root(c) => Some(*c),
        }
    }
}

/// How many fresh-path addresses a record may add to the index beyond its origin.
const MAX_INDEXED: usize = 12;
/// Invalidation records kept per core.
const LOG_CAP: usize = 64;

#[derive(Clone, Debug)]
struct Record {
    live: bool,
    gen: u32,
    cache: CacheKind,
    pcid: u16,
    va: VirtAddr,
    global: bool,
    cached: WalkResult,
    origin: Origin,
    /// The root this entry is judged against: the root its core translates with
    /// now (the fill's root until a CR3 load keeps the entry usable under another).
    root: PhysAddr,
    params: WalkParams,
    stale: Option<Cause>,
    /// The latest invalidation a modelled erratum let this entry survive.
    kept: Option<ErratumKeep>,
    /// CR4.SMEP or CR4.SMAP was set at fill: then U/S 0→1 takes supervisor
    /// rights away, so it counts as losing a right.
    us_sensitive: bool,
    indexed: [PhysAddr; MAX_INDEXED],
    n_indexed: u8,
    eval_serial: u64,
}

impl Record {
    fn view(&self) -> EntryView {
        EntryView {
            core: self.origin.core,
            cache: self.cache,
            pcid: self.pcid,
            va: self.va,
            cached: self.cached,
            global: self.global,
            stale: self.stale.is_some(),
            filled_step: self.origin.step,
        }
    }

    fn add_indexed(&mut self, pa: PhysAddr) -> bool {
        if self.indexed[..self.n_indexed as usize].contains(&pa) {
            return false;
        }
        if (self.n_indexed as usize) < MAX_INDEXED {
            self.indexed[self.n_indexed as usize] = pa;
            self.n_indexed += 1;
            return true;
        }
        false
    }
}

#[derive(Clone, Debug)]
struct IndexSlot {
    /// Value of the entry as of the last write the tracker saw.
    last: u64,
    /// (record, generation) pairs; stale generations are pruned lazily.
    refs: Vec<(u32, u32)>,
}

/// What a cached entry holds compared with what a fresh walk gives. With
/// `us_sensitive` (SMEP/SMAP on), a page turning from supervisor to user also
/// counts: it takes away supervisor fetches (SMEP) and data accesses (SMAP).
fn is_stale(cached: &WalkResult, fresh: &WalkResult, us_sensitive: bool) -> bool {
    let rights = |r: &WalkResult| match r {
        WalkResult::Leaf { rights, .. } | WalkResult::Table { rights, .. } => Some(*rights),
        _ => None,
    };
    if let (true, Some(c), Some(f)) = (us_sensitive, rights(cached), rights(fresh)) {
        if !c.user() && f.user() {
            return true;
        }
    }
    match (cached, fresh) {
        (
            WalkResult::Leaf {
                frame,
                size,
                rights,
                ..
            },
            WalkResult::Leaf {
                frame: f2,
                size: s2,
                rights: r2,
                ..
            },
        ) => frame != f2 || size != s2 || r2.lacks_some_of(*rights),
        (
            WalkResult::Table {
                level,
                next,
                rights,
            },
            WalkResult::Table {
                level: l2,
                next: n2,
                rights: r2,
            },
        ) => level != l2 || next != n2 || r2.lacks_some_of(*rights),
        _ => true,
    }
}

/// A fresh read-only walk for a record: to the leaf for a TLB entry, to the cached
/// level for a paging-structure-cache entry. A walk that leaves guest memory counts
/// as not present at level 0.
fn fresh_walk(mem: &PhysMem, r: &Record, path: &mut Path) -> WalkResult {
    let stop = match r.cache {
        CacheKind::Tlb { .. } => 0,
        CacheKind::Psc { level } => level,
    };
    walk(
        mem,
        r.origin.va,
        WalkStart::root(r.root),
        r.params,
        stop,
        path,
    )
    .unwrap_or(WalkResult::NotPresent { level: 0 })
}

/// The machine-wide coherence tracker. Clone it together with the cores' MMUs.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    records: Vec<Record>,
    free: Vec<u32>,
    index: FixedMap<u64, IndexSlot>,
    generation: u64,
    write_serial: u64,
    logs: Vec<VecDeque<InvalidationRecord>>,
    /// Per core: step of the newest record dropped from the log (None = none dropped).
    log_dropped: Vec<Option<u64>>,
    flagged: BTreeSet<u64>,
    stale_uses: u64,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Machine-wide generation: bumped by every staleness transition. Each core's
    /// fast path is valid only for the generation it was filled under.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of live cached entries tracked (all cores).
    pub fn live_entries(&self) -> usize {
        self.records.iter().filter(|r| r.live).count()
    }

    /// Number of live cached entries currently stale (all cores).
    pub fn stale_entries(&self) -> usize {
        self.records
            .iter()
            .filter(|r| r.live && r.stale.is_some())
            .count()
    }

    /// Stale uses seen so far (counted even when the sink is disabled).
    pub fn stale_uses(&self) -> u64 {
        self.stale_uses
    }

    pub(crate) fn count_stale_use(&mut self) {
        self.stale_uses += 1;
    }

    #[inline]
    pub(crate) fn is_stale(&self, id: RecId) -> bool {
        self.records
            .get(id.0 as usize)
            .is_some_and(|r| r.stale.is_some())
    }

    pub(crate) fn stale_cause(&self, id: RecId) -> Option<Cause> {
        self.records.get(id.0 as usize).and_then(|r| r.stale)
    }

    /// The root record `id` is judged against (see the module docs).
    #[inline]
    pub(crate) fn root(&self, id: RecId) -> Option<PhysAddr> {
        self.records.get(id.0 as usize).map(|r| r.root)
    }

    /// Notes that `keep` (an invalidation the SDM says removes the entry) left
    /// record `id` cached because of a modelled erratum.
    pub(crate) fn note_erratum_keep(&mut self, id: RecId, keep: ErratumKeep) {
        if let Some(r) = self.records.get_mut(id.0 as usize) {
            if r.live {
                r.kept = Some(keep);
            }
        }
    }

    /// Judges record `id` against root `change.to` from now on: its core loaded that
    /// root while the entry stayed usable (same PCID without a flush, or a global
    /// entry), and entries are tagged with PCIDs, not roots (SDM Vol. 3A 4.10.1).
    /// The old root's path stops mattering, so the record's index references are
    /// dropped (lazily, by generation) and the new root's path is indexed. A change
    /// of staleness is reported like a write's, with `change` as the cause; a record
    /// stale by a write that is not on the new path is stale because of the change.
    pub(crate) fn reroot(
        &mut self,
        mem: &mut PhysMem,
        id: RecId,
        change: RootChange,
        sink: &mut dyn MmuSink,
    ) {
        let i = id.0 as usize;
        let Some(r) = self.records.get_mut(i) else {
            return;
        };
        if !r.live || r.root == change.to {
            return;
        }
        r.root = change.to;
        r.gen = r.gen.wrapping_add(1);
        r.n_indexed = 0;
        let mut path = Path::new();
        let fresh = fresh_walk(mem, r, &mut path);
        let stale_now = is_stale(&r.cached, &fresh, r.us_sensitive);
        for e in path.entries() {
            self.index_add(mem, id.0, e.pa);
        }
        let on_path = |w: &WriteInfo| path.entries().iter().any(|e| e.pa.raw() & !7 == w.pa.raw());
        let r = &mut self.records[i];
        match (r.stale, stale_now) {
            (None, true) => {
                r.stale = Some(Cause::Root(change));
                self.generation += 1;
                if sink.enabled() {
                    sink.event(MmuEvent::BecameStale {
                        entry: r.view(),
                        write: None,
                        root_change: Some(change),
                    });
                }
            }
            (Some(_), false) => {
                r.stale = None;
                self.generation += 1;
                if sink.enabled() {
                    sink.event(MmuEvent::BecameFresh {
                        entry: r.view(),
                        write: None,
                        root_change: Some(change),
                    });
                }
            }
            (Some(Cause::Write(w)), true) if !on_path(&w) => {
                r.stale = Some(Cause::Root(change));
            }
            _ => {}
        }
    }

    pub(crate) fn origin(&self, id: RecId) -> Option<&Origin> {
        self.records.get(id.0 as usize).map(|r| &r.origin)
    }

    pub(crate) fn view(&self, id: RecId) -> Option<EntryView> {
        self.records.get(id.0 as usize).map(|r| r.view())
    }

    /// Registers a new cached entry. `inherit` is the stale cause of a stale
    /// paging-structure-cache entry the filling walk started from: the new entry is
    /// then evaluated at once and, if it differs from a fresh walk, born stale.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create(
        &mut self,
        mem: &mut PhysMem,
        cache: CacheKind,
        pcid: u16,
        va: VirtAddr,
        global: bool,
        cached: WalkResult,
        origin: Origin,
        params: WalkParams,
        us_sensitive: bool,
        inherit: Option<Cause>,
        sink: &mut dyn MmuSink,
    ) -> RecId {
        let mut rec = Record {
            live: true,
            gen: 0,
            cache,
            pcid,
            va,
            global,
            cached,
            origin,
            root: origin.root,
            params,
            stale: None,
            kept: None,
            us_sensitive,
            indexed: [PhysAddr(0); MAX_INDEXED],
            n_indexed: 0,
            eval_serial: 0,
        };
        let id = match self.free.pop() {
            Some(i) => {
                rec.gen = self.records[i as usize].gen;
                self.records[i as usize] = rec;
                i
            }
            None => {
                self.records.push(rec);
                (self.records.len() - 1) as u32
            }
        };
        let entries = origin.entries;
        for e in entries.entries() {
            self.index_add(mem, id, e.pa);
        }
        if let Some(w) = inherit {
            // Built through a stale paging-structure-cache entry: compare with a
            // fresh walk now, and index the fresh path (it differs from the origin).
            let mut path = Path::new();
            let r = &self.records[id as usize];
            let fresh = fresh_walk(mem, r, &mut path);
            for e in path.entries() {
                self.index_add(mem, id, e.pa);
            }
            let r = &self.records[id as usize];
            if is_stale(&r.cached, &fresh, r.us_sensitive) {
                self.records[id as usize].stale = Some(w);
                self.generation += 1;
                if sink.enabled() {
                    let entry = self.records[id as usize].view();
                    sink.event(MmuEvent::BecameStale {
                        entry,
                        write: w.write(),
                        root_change: w.root_change(),
                    });
                }
            }
        }
        RecId(id)
    }

    fn index_add(&mut self, mem: &mut PhysMem, id: u32, pa: PhysAddr) {
        let r = &mut self.records[id as usize];
        if !r.add_indexed(pa) {
            return;
        }
        let gen = r.gen;
        let key = pa.raw() & !7;
        let last = mem.read_u64(PhysAddr(key)).unwrap_or(0);
        let slot = self.index.entry(key).or_insert_with(|| IndexSlot {
            last,
            refs: Vec::new(),
        });
        // Amortised pruning of removed records: at every power-of-two length.
        let n = slot.refs.len();
        if n >= 8 && n.is_power_of_two() {
            let records = &self.records;
            slot.refs
                .retain(|&(i, g)| records[i as usize].live && records[i as usize].gen == g);
        }
        slot.refs.push((id, gen));
        let pfn = key >> 12;
        if self.flagged.insert(pfn) || mem.flags(Pfn(pfn)) & page_flags::PAGING == 0 {
            mem.set_flags(Pfn(pfn), page_flags::PAGING);
        }
    }

    /// The cached entry left its cache.
    pub(crate) fn release(&mut self, id: RecId) {
        if let Some(r) = self.records.get_mut(id.0 as usize) {
            if r.live {
                r.live = false;
                r.gen = r.gen.wrapping_add(1);
                r.stale = None;
                self.free.push(id.0);
            }
        }
    }

    /// Tells the tracker that guest memory `[pa, pa+len)` was written (after the
    /// write). Call it for every write whose [`PhysMem::write`] result had
    /// [`page_flags::PAGING`] set; writes elsewhere are no-ops here. Every affected
    /// cached entry is re-evaluated; transitions are reported as
    /// [`MmuEvent::BecameStale`] / [`MmuEvent::BecameFresh`].
    pub fn on_write(
        &mut self,
        mem: &PhysMem,
        pa: PhysAddr,
        len: u64,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) {
        if len == 0 {
            return;
        }
        let first = pa.raw() & !7;
        let last = pa.raw().saturating_add(len - 1) & !7;
        let mut q = first;
        loop {
            self.entry_written(mem, q, ctx, false, sink);
            if q >= last {
                break;
            }
            q += 8;
        }
    }

    /// Writes a u64 to guest memory and notifies the tracker if the page is flagged.
    /// A convenience for tests, debuggers and scenario setup.
    pub fn write_u64(
        &mut self,
        mem: &mut PhysMem,
        pa: PhysAddr,
        v: u64,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) -> Result<(), MemError> {
        let f = mem.write_u64(pa, v)?;
        if f & page_flags::PAGING != 0 {
            self.on_write(mem, pa, 8, ctx, sink);
        }
        Ok(())
    }

    /// The walker's own A/D update of the entry at `pa`.
    pub(crate) fn on_walker_write(
        &mut self,
        mem: &PhysMem,
        pa: PhysAddr,
        ctx: AccessCtx,
        sink: &mut dyn MmuSink,
    ) {
        self.entry_written(mem, pa.raw() & !7, ctx, true, sink);
    }

    fn entry_written(
        &mut self,
        mem: &PhysMem,
        key: u64,
        ctx: AccessCtx,
        from_walker: bool,
        sink: &mut dyn MmuSink,
    ) {
        let Some(slot) = self.index.get_mut(&key) else {
            return;
        };
        let new = mem.read_u64(PhysAddr(key)).unwrap_or(0);
        let old = slot.last;
        if old == new {
            return;
        }
        slot.last = new;
        let write = WriteInfo {
            core: ctx.core,
            step: ctx.step,
            rip: ctx.rip,
            pa: PhysAddr(key),
            old,
            new,
        };
        let mut refs = std::mem::take(&mut slot.refs);
        {
            let records = &self.records;
            refs.retain(|&(i, g)| records[i as usize].live && records[i as usize].gen == g);
        }
        if !from_walker && sink.enabled() {
            sink.event(MmuEvent::PagingWrite {
                write,
                affected: refs.len() as u32,
            });
        }
        self.write_serial += 1;
        let serial = self.write_serial;
        let mut same_key: Vec<(u32, u32)> = Vec::new();
        for &(i, _) in &refs {
            let r = &mut self.records[i as usize];
            if r.eval_serial == serial {
                continue;
            }
            r.eval_serial = serial;
            let mut path = Path::new();
            let fresh = fresh_walk(mem, r, &mut path);
            let stale_now = is_stale(&r.cached, &fresh, r.us_sensitive);
            match (r.stale.is_some(), stale_now) {
                (false, true) => {
                    r.stale = Some(Cause::Write(write));
                    self.generation += 1;
                    if sink.enabled() {
                        sink.event(MmuEvent::BecameStale {
                            entry: r.view(),
                            write: Some(write),
                            root_change: None,
                        });
                    }
                }
                (true, false) => {
                    r.stale = None;
                    self.generation += 1;
                    if sink.enabled() {
                        sink.event(MmuEvent::BecameFresh {
                            entry: r.view(),
                            write: Some(write),
                            root_change: None,
                        });
                    }
                }
                _ => {}
            }
            // The fresh path decides future staleness too: index it.
            let mut added = [PhysAddr(0); 4];
            let mut n = 0;
            for e in path.entries() {
                if r.add_indexed(e.pa) {
                    added[n] = e.pa;
                    n += 1;
                }
            }
            for pa in &added[..n] {
                let k = pa.raw();
                let last = mem.read_u64(*pa).unwrap_or(0);
                let gen = r.gen;
                if k == key {
                    same_key.push((i, gen));
                } else {
                    self.index
                        .entry(k)
                        .or_insert_with(|| IndexSlot {
                            last,
                            refs: Vec::new(),
                        })
                        .refs
                        .push((i, gen));
                }
            }
        }
        refs.extend(same_key);
        if let Some(slot) = self.index.get_mut(&key) {
            let added = std::mem::replace(&mut slot.refs, refs);
            slot.refs.extend(added);
            if slot.refs.is_empty() {
                self.index.remove(&key);
            }
        }
    }

    /// Builds the explanation of a use of stale record `id`.
    pub(crate) fn stale_use(
        &self,
        mem: &PhysMem,
        id: RecId,
        ctx: AccessCtx,
        va: VirtAddr,
        access: Option<Access>,
    ) -> Option<StaleUse> {
        let r = self.records.get(id.0 as usize)?;
        let cause = r.stale?;
        let mut path = Path::new();
        let fresh = fresh_walk(mem, r, &mut path);
        let since = r.origin.step;
        let mut invs: Vec<InvalidationRecord> = self
            .logs
            .iter()
            .flat_map(|l| l.iter().filter(|x| x.step >= since).copied())
            .collect();
        invs.sort_by_key(|x| (x.step, x.core));
        let log_truncated = self
            .log_dropped
            .iter()
            .any(|d| d.is_some_and(|s| s >= since));
        Some(StaleUse {
            ctx,
            va,
            access,
            cache: r.cache,
            pcid: r.pcid,
            cached: r.cached,
            fresh,
            filled: r.origin,
            made_stale_by: cause.write(),
            used_under_root: (r.root != r.origin.root).then_some(r.root),
            root_change: cause.root_change(),
            kept_by_erratum: r.kept,
            invalidations_since_fill: invs,
            log_truncated,
        })
    }

    /// Appends to the per-core invalidation log (bounded; the oldest records go).
    pub(crate) fn log_invalidation(&mut self, rec: InvalidationRecord) {
        let c = rec.core as usize;
        if self.logs.len() <= c {
            self.logs.resize_with(c + 1, VecDeque::new);
            self.log_dropped.resize(c + 1, None);
        }
        let log = &mut self.logs[c];
        if log.len() == LOG_CAP {
            if let Some(old) = log.pop_front() {
                self.log_dropped[c] = Some(old.step);
            }
        }
        log.push_back(rec);
    }

    /// The invalidations `core` performed that are still in the bounded log.
    pub fn invalidation_log(&self, core: u32) -> Vec<InvalidationRecord> {
        self.logs
            .get(core as usize)
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Clears [`page_flags::PAGING`] from pages that no live cached entry depends on
    /// any more (the flag is otherwise cleared lazily: a write to a page that is no
    /// longer relevant only costs one failed index lookup).
    pub fn sweep_paging_flags(&mut self, mem: &mut PhysMem) {
        let records = &self.records;
        self.index.retain(|_, s| {
            s.refs
                .retain(|&(i, g)| records[i as usize].live && records[i as usize].gen == g);
            !s.refs.is_empty()
        });
        let mut keep = BTreeSet::new();
        for k in self.index.keys() {
            keep.insert(k >> 12);
        }
        for pfn in std::mem::take(&mut self.flagged) {
            if keep.contains(&pfn) {
                self.flagged.insert(pfn);
            } else {
                mem.clear_flags(Pfn(pfn), page_flags::PAGING);
            }
        }
    }
}
