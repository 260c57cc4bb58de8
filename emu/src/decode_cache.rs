//! Decoded-instruction cache, indexed per physical page.
//!
//! Decoding is the most expensive part of a step, and kernels run the same few
//! pages of code over and over, so decoded instructions are kept per physical page
//! in a slot array indexed by the page offset: a lookup is one comparison against
//! the page the core ran last plus an array index, never a hash per instruction.
//!
//! Each core has its own cursor to the page it is executing (a decoded block:
//! the core keeps taking instructions from that page's slots until it leaves
//! the page). A single machine-wide "last page" would be overwritten on every
//! step of a round-robin schedule whose cores run different code pages, and
//! each step would then pay a tree lookup. The cursor is keyed by the physical
//! page the step's fetch translation gave, so a remap (PTE write + INVLPG, a
//! CR3 switch) that sends the same RIP elsewhere misses it, and dropping a
//! page (see below) resets every cursor on it.
//!
//! Correctness under self-modifying code: a page that holds cached instructions has
//! [`mmu::page_flags::CODE`] set; any write to it (from any core, the walker, or a
//! debugger) clears the flag and queues the frame, and the cache drops the page
//! before its next lookup. Instructions that cross a page boundary are never
//! cached (two pages would have to be watched); they are rare and decode each time.
//! A cached instruction also remembers the RIP it was decoded at, because iced
//! resolves RIP-relative operands and branch targets against it: the same physical
//! page mapped at two linear addresses decodes again for the other address.
//!
//! Each cached instruction is stored with its resolved handler ([`Cached::op`],
//! see [`crate::dispatch`]), and a hit hands out a reference to both: no per-step
//! copy of the 40-byte `Instruction` (the copy through `Result<Instruction, Fault>`
//! used to cost a store-forwarding stall on every step) and no per-step handler
//! lookup.

use crate::dispatch::{resolve, Op};
use iced_x86::Instruction;
use mmu::{page_flags, Pfn, PhysAddr, PhysMem};
use std::collections::BTreeMap;

/// A decoded instruction and its handler, resolved once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cached {
    pub(crate) ins: Instruction,
    pub(crate) op: Op,
    /// `ins.ip()`, kept whole so a lookup checks it with one compare.
    rip: u64,
}

impl Cached {
    /// Decodes nothing: resolves the handler of an already decoded instruction.
    pub(crate) fn new(ins: Instruction) -> Self {
        Cached {
            op: resolve(&ins),
            rip: ins.ip(),
            ins,
        }
    }
}

#[derive(Clone)]
struct CodePage {
    pfn: u64,
    /// Per byte offset: 1 + index into `insns`, or 0 when nothing is cached there
    /// (a page holds at most 4096 instructions, so `u16` suffices). Kept inline,
    /// not boxed: a hit reads the slot straight from the page, one dependent load
    /// fewer per step.
    slots: [u16; 4096],
    insns: Vec<Cached>,
}

/// A core's current code page: the physical page number it last ran from and
/// that page's index in [`DecodeCache::pages`] (`pfn == u64::MAX`: none).
#[derive(Clone, Copy, Debug)]
struct Cursor {
    pfn: u64,
    idx: usize,
}

const NO_CURSOR: Cursor = Cursor {
    pfn: u64::MAX,
    idx: 0,
};

/// The cache. Cloned with the machine (snapshots keep their warm cache).
#[derive(Clone, Default)]
pub struct DecodeCache {
    pages: Vec<CodePage>,
    /// pfn -> index in `pages`. A BTreeMap: deterministic, and only consulted when
    /// the last-page shortcut misses.
    index: BTreeMap<u64, usize>,
    free: Vec<usize>,
    /// Per core (by core id): its current code page.
    cursors: Vec<Cursor>,
    /// The last instruction that was not cached (it crosses a page boundary): the
    /// step borrows it from here like a cached one.
    uncached: Option<Cached>,
    /// Counters for statistics and tests.
    pub hits: u64,
    /// Number of decodes (misses).
    pub misses: u64,
}

impl std::fmt::Debug for DecodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeCache")
            .field("pages", &self.index.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

impl DecodeCache {
    /// An empty cache.
    pub fn new() -> Self {
        DecodeCache::default()
    }

    /// Drops every page whose code was overwritten since the last call.
    #[inline]
    pub fn sync(&mut self, mem: &mut PhysMem) {
        if mem.has_dropped_code() {
            mem.drain_dropped_code(|pfn| self.drop_page(pfn.0));
        }
    }

    fn drop_page(&mut self, pfn: u64) {
        if let Some(i) = self.index.remove(&pfn) {
            self.pages[i].insns.clear();
            self.pages[i].slots.fill(0);
            self.pages[i].pfn = u64::MAX;
            self.free.push(i);
            for c in &mut self.cursors {
                if c.pfn == pfn {
                    *c = NO_CURSOR;
                }
            }
        }
    }

    /// The instruction cached at physical address `pa`, if it was decoded at `rip`,
    /// found through `core`'s cursor when `pa` is on the page that core ran last.
    #[inline]
    pub(crate) fn lookup(&mut self, core: u32, pa: PhysAddr, rip: u64) -> Option<&Cached> {
        let pfn = pa.raw() >> 12;
        let idx = match self.cursors.get(core as usize) {
            Some(c) if c.pfn == pfn => c.idx,
            _ => self.move_cursor(core, pfn)?,
        };
        let page = &self.pages[idx];
        let slot = page.slots[pa.page_offset() as usize];
        if slot == 0 {
            return None;
        }
        let c = &page.insns[slot as usize - 1];
        if c.rip == rip {
            self.hits += 1;
            Some(c)
        } else {
            None
        }
    }

    /// The core left its page: points its cursor at page `pfn`, if any of it is
    /// cached, and returns the page's index.
    #[cold]
    #[inline(never)]
    fn move_cursor(&mut self, core: u32, pfn: u64) -> Option<usize> {
        let core = core as usize;
        if self.cursors.len() <= core {
            self.cursors.resize(core + 1, NO_CURSOR);
        }
        let idx = *self.index.get(&pfn)?;
        self.cursors[core] = Cursor { pfn, idx };
        Some(idx)
    }

    /// Holds an instruction that is not cached (it crosses a page) for this step.
    pub(crate) fn uncached(&mut self, ins: Instruction) -> &Cached {
        self.uncached.insert(Cached::new(ins))
    }

    /// Caches `ins`, decoded from physical address `pa` (it must not cross a page),
    /// and returns it with its resolved handler.
    pub(crate) fn insert(&mut self, mem: &mut PhysMem, pa: PhysAddr, ins: Instruction) -> &Cached {
        let c = Cached::new(ins);
        self.misses += 1;
        let pfn = pa.raw() >> 12;
        let idx = match self.index.get(&pfn) {
            Some(&i) => i,
            None => {
                let i = match self.free.pop() {
                    Some(i) => {
                        self.pages[i].pfn = pfn;
                        i
                    }
                    None => {
                        self.pages.push(CodePage {
                            pfn,
                            slots: [0; 4096],
                            insns: Vec::new(),
                        });
                        self.pages.len() - 1
                    }
                };
                self.index.insert(pfn, i);
                mem.set_flags(Pfn(pfn), page_flags::CODE);
                i
            }
        };
        let page = &mut self.pages[idx];
        debug_assert_eq!(page.pfn, pfn);
        let off = pa.page_offset() as usize;
        let slot = page.slots[off];
        let i = if slot != 0 {
            page.insns[slot as usize - 1] = c;
            slot as usize - 1
        } else {
            page.insns.push(c);
            page.slots[off] = page.insns.len() as u16;
            page.insns.len() - 1
        };
        &page.insns[i]
    }

    /// Number of pages with cached instructions.
    pub fn pages(&self) -> usize {
        self.index.len()
    }
}
