//! # mmu — x86-64 translation with caches that remember where they came from
//!
//! Guest physical memory, the 4-level page walk, per-core PCID-tagged TLBs and
//! paging-structure caches, every invalidation the Intel SDM (Vol. 3A, 4.10)
//! defines, and the coherence tracker that notices each use of a stale cached
//! translation. This crate knows nothing of instructions: the `emu` crate calls it.
#![warn(missing_docs)]

mod addr;
mod coherence;
mod config;
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
pub use events::{
    AccessCtx, CacheKind, EntryView, InvalidationRecord, MmuEvent, MmuSink, NullSink, Origin,
    Removed, StaleUse, VecSink, WriteInfo,
};
pub use invalidate::{
    check_mov_cr0, check_mov_cr4, cr3_after_mov, invpcid, CrError, Invalidation, InvpcidError,
    InvpcidKind,
};
pub use mmu::{CoreMmu, LevelView, MmuDump, PageFault, TranslateError, WalkView};
pub use paging::access::{
    access_allowed, cr0, cr4, efer, pf_err, pf_error_code, Access, AccessKind, PagingRegs, Rights,
};
pub use paging::entry::{
    addr_field, flag_names, pte, reserved_mask, table_addr_mask, DEFAULT_MAXPHYADDR,
};
pub use paging::walker::{cr3_root, walk, Path, PathEntry, WalkParams, WalkResult, WalkStart};
pub use phys_mem::{page_flags, MemError, PhysMem};
