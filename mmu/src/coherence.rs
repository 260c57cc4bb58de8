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
use crate::derived::{self, DerivedSource, DerivedStale, RealLeaf, SoftCacheSpec, SoftEntry};
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

/// Index references with this bit name a derived record (a software cache's
/// real PTE, see [`crate::derived`]) rather than a hardware one.
const DERIVED: u32 = 1 << 31;

/// Whether an index reference is still current.
#[inline]
fn ref_live(records: &[Record], derived: &[DerivedRec], i: u32, g: u32) -> bool {
    if i & DERIVED == 0 {
        let r = &records[i as usize];
        r.live && r.gen == g
    } else {
        derived
            .get((i & !DERIVED) as usize)
            .is_some_and(|d| d.gen == g)
    }
}

/// One page of a software cache: its real PTE (when present) as a cached copy of
/// what the software entry says (see [`crate::derived`]).
#[derive(Clone, Debug)]
struct DerivedRec {
    cache: u16,
    va: VirtAddr,
    gen: u32,
    real: Option<RealLeaf>,
    soft: SoftEntry,
    /// The write that entered the real PTE (the scenario's initial state: step 0).
    filled: Origin,
    /// Stale, and the software write that made it so: the first since it was
    /// fresh, or, for a real PTE entered already stale, the last software write
    /// before (None: no software write seen, the initial state disagrees).
    stale: Option<Option<WriteInfo>>,
    /// The last write that changed what the software walk gives.
    last_soft: Option<WriteInfo>,
    /// Every entry address the two walks read (the index keys).
    keys: Vec<u64>,
}

/// A software cache: its spec and where its records start.
#[derive(Clone, Debug)]
struct SoftCache {
    spec: SoftCacheSpec,
    first: u32,
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
    /// Derived records of every software cache, in declaration and page order.
    derived: Vec<DerivedRec>,
    soft: Vec<SoftCache>,
    /// Pages of entries a derived record started to depend on during a write,
    /// still to be flagged [`page_flags::PAGING`] ([`Tracker::flag_pending`]).
    unflagged: Vec<u64>,
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
            let (records, derived) = (&self.records, &self.derived);
            slot.refs.retain(|&(i, g)| ref_live(records, derived, i, g));
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
            let (records, derived) = (&self.records, &self.derived);
            refs.retain(|&(i, g)| ref_live(records, derived, i, g));
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
        let mut derived_refs: Vec<u32> = Vec::new();
        for &(i, _) in &refs {
            if i & DERIVED != 0 {
                derived_refs.push(i & !DERIVED);
                continue;
            }
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
        for d in derived_refs {
            if let Some((gen, keys)) = self.derived_eval(mem, d, Some(write)) {
                for k in keys {
                    if k == key {
                        same_key.push((d | DERIVED, gen));
                    } else {
                        self.derived_index(mem, k, d | DERIVED, gen);
                    }
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
        let (invs, log_truncated) = self.invalidations_since(r.origin.step);
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
            derived: None,
        })
    }

    /// Every core's logged invalidations from step `since` on, by step, and
    /// whether older records were dropped from a log.
    fn invalidations_since(&self, since: u64) -> (Vec<InvalidationRecord>, bool) {
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
        (invs, log_truncated)
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
        let (records, derived) = (&self.records, &self.derived);
        self.index.retain(|_, s| {
            s.refs.retain(|&(i, g)| ref_live(records, derived, i, g));
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

/// Software translation caches: derived records (see [`crate::derived`]).
impl Tracker {
    /// Starts tracking a software cache: one derived record per page of the
    /// region, evaluated now (a real PTE present now counts as entered by the
    /// initial state, step 0) and indexed by every entry its walks read.
    /// Returns the cache's number.
    pub fn add_soft_cache(&mut self, mem: &mut PhysMem, spec: SoftCacheSpec) -> u16 {
        let c = self.soft.len() as u16;
        let first = self.derived.len() as u32;
        for p in 0..spec.pages {
            let va = VirtAddr(spec.base.raw() + ((p as u64) << 12));
            let mut path = Path::new();
            let real = derived::real_walk(mem, spec.root, spec.params, va, &mut path);
            let mut keys: Vec<u64> = path.entries().iter().map(|e| e.pa.raw() & !7).collect();
            let soft = derived::soft_walk(
                mem,
                &spec.layout,
                spec.root_entry.raw(),
                (p as u64) << 12,
                &mut keys,
            );
            keys.iter_mut().for_each(|k| *k &= !7);
            keys.sort_unstable();
            keys.dedup();
            let stale = real.filter(|r| r.compare(&soft).any()).map(|_| None);
            let id = self.derived.len() as u32;
            self.derived.push(DerivedRec {
                cache: c,
                va,
                gen: 0,
                real,
                soft,
                filled: Origin {
                    core: 0,
                    step: 0,
                    rip: 0,
                    root: spec.root,
                    pcid: spec.pcid,
                    va,
                    entries: path,
                },
                stale,
                last_soft: None,
                keys: keys.clone(),
            });
            for k in keys {
                self.derived_index(mem, k, id | DERIVED, 0);
                let pfn = k >> 12;
                if self.flagged.insert(pfn) || mem.flags(Pfn(pfn)) & page_flags::PAGING == 0 {
                    mem.set_flags(Pfn(pfn), page_flags::PAGING);
                }
            }
        }
        self.soft.push(SoftCache { spec, first });
        self.unflagged.clear();
        c
    }

    /// Whether any software cache is tracked.
    pub fn has_soft_caches(&self) -> bool {
        !self.soft.is_empty()
    }

    /// Adds reference `(id, gen)` under `key`, noting the page for flagging when
    /// it is not flagged yet.
    fn derived_index(&mut self, mem: &PhysMem, key: u64, id: u32, gen: u32) {
        let last = mem.read_u64(PhysAddr(key)).unwrap_or(0);
        self.index
            .entry(key)
            .or_insert_with(|| IndexSlot {
                last,
                refs: Vec::new(),
            })
            .refs
            .push((id, gen));
        let pfn = key >> 12;
        if mem.flags(Pfn(pfn)) & page_flags::PAGING == 0 {
            self.unflagged.push(pfn);
        }
    }

    /// Flags the pages derived records started to depend on during writes (the
    /// write path only reads memory). Call it after a step when
    /// [`Tracker::has_soft_caches`]; it costs one check when nothing is pending.
    pub fn flag_pending(&mut self, mem: &mut PhysMem) {
        for pfn in std::mem::take(&mut self.unflagged) {
            self.flagged.insert(pfn);
            mem.set_flags(Pfn(pfn), page_flags::PAGING);
        }
    }

    /// Re-evaluates derived record `d` after `write` changed an entry it was built
    /// from. A real PTE that appeared, moved or changed other than in A/D is a new
    /// cached entry, entered by the write; otherwise a software change can make the
    /// entry stale (the first such write is kept) or fresh again. When the walks
    /// now read other entries, the record's references are renewed: returns the new
    /// generation and every key to index under it.
    fn derived_eval(
        &mut self,
        mem: &PhysMem,
        d: u32,
        write: Option<WriteInfo>,
    ) -> Option<(u32, Vec<u64>)> {
        let rec = self.derived.get(d as usize)?;
        let spec = &self.soft.get(rec.cache as usize)?.spec;
        let off = rec.va.raw() - spec.base.raw();
        let mut path = Path::new();
        let real = derived::real_walk(mem, spec.root, spec.params, rec.va, &mut path);
        let mut keys: Vec<u64> = path.entries().iter().map(|e| e.pa.raw() & !7).collect();
        let soft = derived::soft_walk(mem, &spec.layout, spec.root_entry.raw(), off, &mut keys);
        keys.iter_mut().for_each(|k| *k &= !7);
        keys.sort_unstable();
        keys.dedup();
        let (root, pcid) = (spec.root, spec.pcid);
        let rec = &mut self.derived[d as usize];
        if rec.soft != soft && write.is_some() {
            rec.last_soft = write;
        }
        let refilled = match (&rec.real, &real) {
            (Some(a), Some(b)) => !a.same(b),
            (a, b) => a.is_some() != b.is_some(),
        };
        if refilled {
            if real.is_some() {
                let w = write.unwrap_or(WriteInfo {
                    core: 0,
                    step: 0,
                    rip: 0,
                    pa: PhysAddr(0),
                    old: 0,
                    new: 0,
                });
                rec.filled = Origin {
                    core: w.core,
                    step: w.step,
                    rip: w.rip,
                    root,
                    pcid,
                    va: rec.va,
                    entries: path,
                };
            }
            // Entered from a software entry that had already changed: the
            // change's writer made it stale (its invalidation is what must
            // remove it).
            let last = rec.last_soft;
            rec.stale = real.filter(|r| r.compare(&soft).any()).map(|_| last);
        } else if let Some(r) = &real {
            match (rec.stale.is_some(), r.compare(&soft).any()) {
                (false, true) => rec.stale = Some(write),
                (true, false) => rec.stale = None,
                _ => {}
            }
        }
        rec.real = real;
        rec.soft = soft;
        if rec.keys == keys {
            return None;
        }
        rec.gen = rec.gen.wrapping_add(1);
        rec.keys = keys.clone();
        Some((rec.gen, keys))
    }

    /// The derived record for an access to `la` by a core translating with root
    /// `root`, when `la` lies in a software cache's region of that root.
    fn derived_at(&self, root: PhysAddr, la: VirtAddr) -> Option<(&SoftCache, &DerivedRec)> {
        self.soft.iter().find_map(|c| {
            if c.spec.root != root {
                return None;
            }
            let p = c.spec.page_of(la)?;
            Some((c, self.derived.get((c.first + p) as usize)?))
        })
    }

    /// Whether `la` lies in a software cache's region under root `root`.
    pub fn in_soft_region(&self, root: PhysAddr, la: VirtAddr) -> bool {
        self.derived_at(root, la).is_some()
    }

    /// The stale use an access makes, if it is one: `la` lies in a software
    /// cache's region under the core's root `root`, the access reached the real
    /// PTE's frame (one that did not came through a stale TLB entry, which is the
    /// hardware records' business), the real PTE is stale and the difference
    /// matters for the access's kind. The explanation has the same shape as a
    /// hardware one, with [`StaleUse::derived`] set.
    pub fn soft_use(
        &self,
        root: PhysAddr,
        ctx: AccessCtx,
        la: VirtAddr,
        pa: PhysAddr,
        access: Access,
    ) -> Option<StaleUse> {
        let (c, rec) = self.derived_at(root, la)?;
        let real = rec.real.as_ref()?;
        let cause = rec.stale?;
        if pa.raw() >> 12 != real.frame >> 12 {
            return None;
        }
        let mismatch = real.compare(&rec.soft);
        if !mismatch.affects(access.kind) {
            return None;
        }
        let (invs, log_truncated) = self.invalidations_since(rec.filled.step);
        Some(StaleUse {
            ctx,
            va: la,
            access: Some(access),
            cache: CacheKind::Tlb { instruction: false },
            pcid: c.spec.pcid,
            cached: real.result,
            fresh: derived::soft_result(
                &rec.soft,
                matches!(real.result, WalkResult::Leaf { rights, .. } if rights.user()),
            ),
            filled: rec.filled,
            made_stale_by: cause,
            used_under_root: None,
            root_change: None,
            kept_by_erratum: None,
            invalidations_since_fill: invs,
            log_truncated,
            derived: Some(DerivedSource {
                cache: c.spec.name.clone(),
                source: rec.soft,
                mismatch,
            }),
        })
    }

    /// Every stale derived entry present now (used or not), in declaration and
    /// page order.
    pub fn soft_stale_entries(&self) -> Vec<DerivedStale> {
        self.derived
            .iter()
            .filter_map(|d| {
                let real = d.real.as_ref()?;
                let cause = d.stale?;
                Some(DerivedStale {
                    cache: self.soft.get(d.cache as usize)?.spec.name.clone(),
                    va: d.va,
                    filled_step: d.filled.step,
                    made_stale_by: cause,
                    mismatch: real.compare(&d.soft),
                })
            })
            .collect()
    }
}
