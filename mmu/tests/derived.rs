//! Software translation caches as derived tracker entries: a software-entry write
//! reaches the real PTE's record through the reverse index (no rescan), the rule
//! tells writes, reads, frames and validity apart, a refilled real PTE is a new
//! entry, and a record whose walk moves to other tables follows them.

use mmu::pagetable::Builder;
use mmu::*;

const REGION: u64 = 0x4000_0000;
const ROOT_ENTRY: u64 = 0x60_0000;
const BACKING: u64 = 0x70_0000;
const LEAF: u64 = 0x70_1000; // entry 0 of the table at software-physical 0x1000
const FRAME: u64 = 0x71_0000; // software-physical 0x10000

const V: u64 = 0x1;
const W: u64 = 0x2;
const M: u64 = 0x40;

fn layout() -> SoftLayout {
    SoftLayout {
        levels: 1,
        index_bits: 9,
        valid: V,
        write: W,
        dirty: M,
        no_exec: 1 << 63,
        page_size: 0x80,
        frame: 0x000f_ffff_ffff_f000,
        backing: BACKING,
    }
}

struct World {
    mem: PhysMem,
    t: Tracker,
    root: PhysAddr,
    real_pte: PhysAddr,
    step: u64,
}

impl World {
    /// The real PTE of REGION maps FRAME writable; the software entry says
    /// valid, writable and modified: fresh.
    fn new() -> Self {
        let mut mem = PhysMem::new(16 << 20);
        let mut b = Builder::new(&mut mem, PhysAddr(0x10_0000), PhysAddr(0x20_0000)).unwrap();
        let real_pte = b
            .map(
                &mut mem,
                VirtAddr(REGION),
                PhysAddr(FRAME),
                PageSize::Size4K,
                pte::P | pte::RW,
            )
            .unwrap();
        mem.write_u64(PhysAddr(ROOT_ENTRY), 0x1000 | V | W).unwrap();
        mem.write_u64(PhysAddr(LEAF), 0x10000 | V | W | M).unwrap();
        let mut t = Tracker::new();
        let root = b.root();
        t.add_soft_cache(
            &mut mem,
            SoftCacheSpec {
                name: "soft".into(),
                root,
                pcid: 0,
                base: VirtAddr(REGION),
                pages: 2,
                root_entry: PhysAddr(ROOT_ENTRY),
                layout: layout(),
                params: WalkParams {
                    maxphyaddr: 46,
                    huge_1g: true,
                    nxe: true,
                },
            },
        );
        World {
            mem,
            t,
            root,
            real_pte,
            step: 0,
        }
    }

    /// A guest write through the machine's path: memory, then the tracker when
    /// the page is flagged.
    fn write(&mut self, pa: u64, v: u64) -> u64 {
        self.step += 1;
        let ctx = AccessCtx {
            core: 0,
            step: self.step,
            rip: 0x1000 + self.step,
        };
        self.t
            .write_u64(&mut self.mem, PhysAddr(pa), v, ctx, &mut NullSink)
            .unwrap();
        self.t.flag_pending(&mut self.mem);
        self.step
    }

    fn used(&self, kind: AccessKind, pa: u64) -> Option<StaleUse> {
        let ctx = AccessCtx {
            core: 1,
            step: self.step + 1,
            rip: 0x2000,
        };
        self.t.soft_use(
            self.root,
            ctx,
            VirtAddr(REGION + 8),
            PhysAddr(pa + 8),
            Access::new(kind, 0),
        )
    }
}

#[test]
fn a_software_write_makes_the_real_pte_stale_for_writes_only() {
    let mut w = World::new();
    assert!(w.used(AccessKind::Write, FRAME).is_none(), "fresh at first");
    let step = w.write(LEAF, 0x10000 | V | W);
    let su = w
        .used(AccessKind::Write, FRAME)
        .expect("a lost write right");
    let by = su.made_stale_by.expect("the software write");
    assert_eq!(
        (by.step, by.pa, by.old, by.new),
        (step, PhysAddr(LEAF), 0x10043, 0x10003)
    );
    let d = su.derived.as_ref().expect("a derived entry");
    assert_eq!(d.cache, "soft");
    assert!(d.mismatch.write && !d.mismatch.frame && !d.mismatch.invalid);
    assert_eq!(d.source.entry_pa, LEAF);
    assert!(matches!(
        su.cached,
        WalkResult::Leaf {
            frame: PhysAddr(FRAME),
            ..
        }
    ));
    assert_eq!(su.filled.step, 0, "present in the initial tables");
    assert!(
        w.used(AccessKind::Read, FRAME).is_none(),
        "reads are unaffected"
    );
    // Outside the region, or under another root, nothing is judged.
    assert!(!w.t.in_soft_region(w.root, VirtAddr(REGION + 0x2000)));
    assert!(!w.t.in_soft_region(PhysAddr(0x1234_5000), VirtAddr(REGION)));
    // Undoing the change makes it fresh again.
    w.write(LEAF, 0x10000 | V | W | M);
    assert!(w.used(AccessKind::Write, FRAME).is_none());
    assert!(w.t.soft_stale_entries().is_empty());
}

#[test]
fn a_remap_or_an_invalid_entry_is_stale_for_every_access() {
    let mut w = World::new();
    w.write(LEAF, 0x11000 | V | W | M);
    let su = w.used(AccessKind::Read, FRAME).expect("another frame");
    assert!(su.derived.as_ref().unwrap().mismatch.frame);
    assert!(matches!(
        su.fresh,
        WalkResult::Leaf {
            frame: PhysAddr(0x71_1000),
            ..
        }
    ));
    // An access that did not reach the real PTE's frame came through something
    // else (a stale TLB entry): not this record's use.
    assert!(w.used(AccessKind::Read, 0x71_1000).is_none());
    w.write(ROOT_ENTRY, 0);
    let su = w.used(AccessKind::Read, FRAME).expect("the walk fails now");
    let d = su.derived.unwrap();
    assert!(d.mismatch.invalid);
    assert_eq!(
        d.source.entry_pa, ROOT_ENTRY,
        "the root entry ended the walk"
    );
    assert!(matches!(su.fresh, WalkResult::NotPresent { .. }));
    // The first write that made it stale is kept.
    assert_eq!(su.made_stale_by.unwrap().pa, PhysAddr(LEAF));
    let latent = w.t.soft_stale_entries();
    assert_eq!(latent.len(), 1, "only page 0 has a real PTE");
    assert_eq!(latent[0].cause().map(|c| c.0), Some(0));
}

#[test]
fn refilling_the_real_pte_starts_a_new_entry() {
    let mut w = World::new();
    w.write(LEAF, 0x11000 | V | W | M);
    assert!(w.used(AccessKind::Read, FRAME).is_some());
    // The host enters the new frame: fresh, filled by that write.
    let pte = w.real_pte.raw();
    let step = w.write(pte, 0x71_1000 | pte::P | pte::RW);
    assert!(w.used(AccessKind::Write, 0x71_1000).is_none());
    // Clearing M now makes the new entry stale; its fill is the refill.
    w.write(LEAF, 0x11000 | V | W);
    let su = w.used(AccessKind::Write, 0x71_1000).unwrap();
    assert_eq!((su.filled.step, su.filled.rip), (step, 0x1000 + step));
    // Removing the real PTE (MADV_INVAL) ends the cached entry.
    w.write(pte, 0);
    assert!(w.used(AccessKind::Write, 0x71_1000).is_none());
    assert!(w.t.soft_stale_entries().is_empty());
    // Entered from a walk that read the software entry before its last change
    // (the host's walk racing the kernel's write): stale when entered, by that
    // change.
    let change = w.write(LEAF, 0x12000 | V | W | M);
    w.write(pte, 0x71_1000 | pte::P | pte::RW);
    let su = w.used(AccessKind::Read, 0x71_1000).expect("born stale");
    assert_eq!(su.made_stale_by.map(|b| b.step), Some(change));
}

#[test]
fn a_walk_that_moves_to_another_table_is_followed() {
    // The root entry now names a new table (software-physical 0x2000, host
    // 0x702000), whose page was never flagged: the record re-indexes itself,
    // and a later write to the new table reaches it.
    let mut w = World::new();
    w.mem
        .write_u64(PhysAddr(0x70_2000), 0x10000 | V | W | M)
        .unwrap();
    w.write(ROOT_ENTRY, 0x2000 | V | W);
    assert!(
        w.used(AccessKind::Write, FRAME).is_none(),
        "same frame, same rights"
    );
    w.write(0x70_2000, 0x10000 | V | W);
    let su = w
        .used(AccessKind::Write, FRAME)
        .expect("seen through the new index key");
    assert_eq!(su.made_stale_by.unwrap().pa, PhysAddr(0x70_2000));
    // The old table no longer matters.
    w.write(LEAF, 0);
    assert_eq!(
        w.used(AccessKind::Write, FRAME)
            .unwrap()
            .made_stale_by
            .unwrap()
            .pa,
        PhysAddr(0x70_2000)
    );
}

#[test]
fn hardware_state_is_untouched_by_derived_records() {
    let mut w = World::new();
    let g = w.t.generation();
    w.write(LEAF, 0);
    assert_eq!(w.t.generation(), g, "fast paths stay valid");
    assert_eq!(w.t.live_entries(), 0);
    assert_eq!(w.t.stale_entries(), 0);
}

#[test]
fn layouts_are_checked() {
    let ok = layout();
    assert_eq!(ok.check(), Ok(()));
    let bad = |f: &dyn Fn(&mut SoftLayout)| {
        let mut l = layout();
        f(&mut l);
        l.check().unwrap_err()
    };
    assert_eq!(bad(&|l| l.levels = 5).field(), "levels");
    assert_eq!(bad(&|l| l.index_bits = 0).field(), "index_bits");
    assert_eq!(bad(&|l| l.valid = 0).field(), "valid");
    assert_eq!(bad(&|l| l.frame = 0xffff_ffff).field(), "frame");
    let e = bad(&|l| l.dirty = W);
    assert_eq!(e.field(), "dirty");
    assert!(e.to_string().contains("0x2"), "{e}");
    assert_eq!(bad(&|l| l.no_exec = 0x1000).field(), "no_exec");
}
