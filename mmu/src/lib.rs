//! # mmu — x86-64 translation with caches that remember where they came from
//!
//! Guest physical memory, the 4-level page walk, per-core PCID-tagged TLBs and
//! paging-structure caches, every invalidation the Intel SDM (Vol. 3A, 4.10)
//! defines, and the coherence tracker that notices each use of a stale cached
//! translation. This crate knows nothing of instructions: the `emu` crate calls it.
//!
//! ## Model
//!
//! - **Walk** (SDM 4.5): 4 KiB / 2 MiB / 1 GiB pages, reserved bits per level
//!   (MAXPHYADDR, XD without EFER.NXE, PS in a PML4E, PS in a PDPTE when 1 GiB pages
//!   are off), rights combined across levels and checked per SDM 4.6 (CR0.WP,
//!   CR4.SMEP, CR4.SMAP with RFLAGS.AC, implicit supervisor accesses, EFER.NXE),
//!   #PF error codes per SDM 4.7. A and D are set with locked compare-exchanges only
//!   by walks that do not fault (SDM 4.8); a write through a TLB entry whose cached D
//!   is clear walks again.
//! - **TLBs** (SDM 4.10.2): entries tagged with the PCID (000H when CR4.PCIDE=0),
//!   global only with CR4.PGE=1 and G=1 in the leaf. Default geometry: a 64-entry
//!   4-way LRU data TLB and a separate 64-entry 4-way LRU instruction TLB, each
//!   holding every page size ([`TlbConfig::default`]); arrays can be split per page
//!   size, shared between fetches and data, FIFO or unbounded.
//! - **Paging-structure caches** (SDM 4.10.3): PML4E / PDPTE / PDE caches (default
//!   16 / 16 / 32 entries, fully associative, LRU), PCID-tagged, really used to skip
//!   levels, so a stale upper-level entry gives a stale walk.
//! - **Invalidation** (SDM 4.10.4): one [`Invalidation`] enum; `CoreMmu::invalidate`
//!   runs the one removal function over TLBs, caches and the fast path. Minimal by
//!   default; [`MmuConfig::extra_invalidations`] and [`Erratum`] are opt-in.
//! - **Coherence oracle** ([`Tracker`]): every cached entry records its origin; a
//!   reverse index from paging-structure-entry address to cached entries re-evaluates
//!   them on each write; hits on stale entries are [`MmuEvent::StaleUse`] events with
//!   a full explanation ([`StaleUse`]), and are still used, as hardware would.
//! - **Fast path**: a 64-slot direct-mapped array per core and access side in front
//!   of the TLB model, valid for one generation; see `fast.rs`. It never holds a stale
//!   entry, never completes a write through a clean entry, and refreshes the TLB's
//!   LRU stamp on every hit (skipping only the refresh of a slot that is already
//!   its array's most recent, which orders nothing differently), so eviction order
//!   is exactly that of the model (`tests/fast_path_lru.rs` checks it).
//! - **Determinism**: no clocks, no host randomness; maps use a fixed hasher and
//!   nothing iterates a map into output (dumps and event lists are sorted).
//!
//! ## API summary
//!
//! ```text
//! // configuration (Clone, Debug, serde; #[serde(default)] on MmuConfig)
//! MmuConfig { tlb: TlbConfig, psc: PscConfig, maxphyaddr: u8 /*46*/, huge_1g: bool /*true*/,
//!             extra_invalidations: bool, errata: Vec<Erratum>, fast_path: bool /*true*/ }
//! MmuConfig::validate(&self) -> Result<(), ConfigError>
//! TlbConfig { data: Vec<TlbArrayConfig>, instruction: Option<Vec<TlbArrayConfig>> }
//! TlbArrayConfig { entries, ways, policy: Replacement /*Lru|Fifo|Unbounded*/, sizes: Vec<PageSize> }
//! PscConfig { pml4e, pdpte, pde }            Erratum::InvlpgMissesGlobalWithPcid
//!
//! // per core
//! CoreMmu::new(core: u32, cfg: &MmuConfig) -> CoreMmu
//! CoreMmu::translate(&mut self, mem: &mut PhysMem, tracker: &mut Tracker, regs: &PagingRegs,
//!     va: VirtAddr, access: Access, ctx: AccessCtx, sink: &mut dyn MmuSink)
//!     -> Result<PhysAddr, TranslateError>   // PageFault(PageFault) | NonCanonical | Mem | UnsupportedMode
//! CoreMmu::invalidate(&mut self, mem: &mut PhysMem, op: Invalidation,
//!     regs: &PagingRegs /*before the move*/, tracker: &mut Tracker, ctx: AccessCtx,
//!     sink: &mut dyn MmuSink) -> Removed   // a CR3 load also re-roots what stays usable
//! CoreMmu::evict(&mut self, tracker, regs, va, ctx, sink) -> u32
//! CoreMmu::speculative_fill(&mut self, mem, tracker, regs, va, instruction: bool, ctx, sink)
//!     -> Result<bool, TranslateError>
//! CoreMmu::dump(&self, tracker: &Tracker) -> MmuDump                       // read-only, sorted
//! CoreMmu::stale_entries(&self, tracker: &Tracker) -> Vec<LatentStale>     // read-only, sorted
//! CoreMmu::walk_view(&self, mem: &PhysMem, tracker: &Tracker, regs, va) -> WalkView  // read-only
//!
//! // machine-wide
//! Tracker::new() -> Tracker
//! Tracker::on_write(&mut self, mem: &PhysMem, pa: PhysAddr, len: u64, ctx: AccessCtx, sink)
//! Tracker::write_u64(&mut self, mem: &mut PhysMem, pa, v: u64, ctx, sink) -> Result<(), MemError>
//! Tracker::generation(), stale_uses(), live_entries(), stale_entries(),
//!     invalidation_log(core) -> Vec<InvalidationRecord>, sweep_paging_flags(&mut PhysMem)
//!
//! // CPU-side checks and helpers
//! invpcid(ty: u64, desc_lo: u64, desc_hi: u64, cr4: u64) -> Result<Invalidation, InvpcidError>
//! check_mov_cr4(old, new, cr3) -> Result<(), CrError>;  check_mov_cr0(old, new, cr4) -> Result<(), CrError>
//! cr3_after_mov(src, cr4) -> u64      // bit 63 dropped when PCIDE=1
//! access_allowed(Rights, &Access, &PagingRegs) -> bool; pf_error_code(..) -> u32
//! walk(mem, va, WalkStart, WalkParams, stop_level, &mut Path) -> Result<WalkResult, MemError>  // read-only
//! pagetable::Builder::{new, map, map_range, alloc_table, root, cr3, entry_addr}
//!
//! // events
//! trait MmuSink { fn enabled(&self) -> bool { true } fn event(&mut self, ev: MmuEvent); }  NullSink, VecSink
//! MmuEvent::{TlbFill, PscFill, Eviction, Invalidation, PagingWrite, BecameStale, BecameFresh,
//!            StaleUse(Box<StaleUse>), DirtyRewalk, AccessedDirtySet}
//! ```
//!
//! ## Contract with the CPU (emu)
//!
//! - Call `translate` for every fetch and data access; a read-modify-write translates
//!   once as a write ("fault before writing anything").
//! - After every guest write whose [`PhysMem::write`] result contains
//!   [`page_flags::PAGING`], call [`Tracker::on_write`] with the written range.
//! - MOV CR3: check nothing here; call `invalidate(Invalidation::MovCr3 { src })` with
//!   the registers *before* the move, then load `cr3_after_mov(src, cr4)`. Entries the
//!   load leaves usable are judged against the new root from then on (SDM 4.10.1:
//!   entries are tagged with PCIDs, not roots), so a stale use is one that differs from
//!   a fresh walk from the CR3 loaded at the use.
//! - MOV CR4 / CR0: `check_mov_cr4` / `check_mov_cr0` (#GP on error), then
//!   `invalidate(MovCr4 { old, new })` / `MovCr0 { old, new }`, then load.
//! - INVLPG: CPL check is the CPU's; `invlpg(va)` gives the op, or `None` for a
//!   non-canonical address (a no-op); then `invalidate(op)`.
//!   INVPCID: CPL/CPUID checks are the CPU's; `invpcid(..)` gives #GP or the op.
//! - A #PF from `translate` has already applied the page-fault invalidation; deliver
//!   it with CR2 = `addr`.
//! - Steps in [`AccessCtx`] are machine-wide and increasing.
#![warn(missing_docs)]

mod addr;
mod coherence;
mod config;
pub mod derived;
mod events;
mod fast;
mod fixed_hash;
mod invalidate;
mod mmu;
pub mod pagetable;
mod paging;
mod phys_mem;
mod psc;
mod tlb;

pub use addr::{PageSize, Pfn, PhysAddr, VirtAddr, PAGE_MASK, PAGE_SIZE};
pub use coherence::Tracker;
pub use config::{
    ConfigError, Erratum, MmuConfig, PscConfig, Replacement, TlbArrayConfig, TlbConfig,
};
pub use derived::{DerivedSource, DerivedStale, SoftCacheSpec, SoftEntry, SoftLayout};
pub use events::{
    AccessCtx, CacheKind, EntryView, ErratumKeep, InvalidationRecord, LatentStale, MmuEvent,
    MmuSink, NullSink, Origin, Removed, RootChange, StaleUse, VecSink, WriteInfo,
};
pub use invalidate::{
    check_mov_cr0, check_mov_cr4, cr3_after_mov, invlpg, invpcid, CrError, Invalidation,
    InvpcidError, InvpcidKind,
};
pub use mmu::{CoreMmu, LevelView, MmuDump, PageFault, TranslateError, WalkView};
pub use paging::access::{
    access_allowed, cr0, cr4, efer, pf_err, pf_error_code, Access, AccessKind, PagingRegs, Rights,
};
pub use paging::entry::{
    addr_field, flag_names, pte, reserved_mask, table_addr_mask, DEFAULT_MAXPHYADDR,
};
pub use paging::walker::{cr3_root, walk, Path, PathEntry, WalkParams, WalkResult, WalkStart};
pub use phys_mem::{page_flags, MemError, PhysMem, MAX_RESIDENT_BYTES};
