//! # mmu — x86-64 translation with caches that remember where they came from
//!
//! Guest physical memory, the 4-level page walk, per-core PCID-tagged TLBs and
//! paging-structure caches, every invalidation the Intel SDM (Vol. 3A, 4.10)
//! defines, and the coherence tracker that notices each use of a stale cached
//! translation. This crate knows nothing of instructions: the `emu` crate calls it.
#![warn(missing_docs)]

mod addr;
mod phys_mem;

pub use addr::{PageSize, Pfn, PhysAddr, VirtAddr, PAGE_MASK, PAGE_SIZE};
pub use phys_mem::{page_flags, MemError, PhysMem};
