//! The coherence tracker: staleness marks, stale uses and their explanations,
//! plus the read-only dump, the evict / speculative-fill hooks and the fast path's
//! promises (never hides a stale use, keeps LRU exact).

mod common;
use common::*;
use mmu::*;

const A: u64 = 0x40_0000;
const B: u64 = 0x40_1000;

fn two_cores() -> (World, PhysAddr) {
    let mut w = World::simple(2);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(B, 0x80_1000, PageSize::Size4K, RW);
    (w, pte_a)
}

#[test]
fn pte_change_without_invlpg_is_a_stale_use_naming_the_write() {
    let (mut w, pte_a) = two_cores();
    w.read(1, A).unwrap();
    let fill_step = w.step;
    let old = w.get(pte_a);
    // Core 0 retargets A and invalidates only its own TLB (a missing shootdown).
    w.set_entry(0, pte_a, 0x88_0000 | RW);
    let write_step = w.step;
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    // Core 1 still translates through its stale entry.
    assert_eq!(w.read(1, A + 8).unwrap(), PhysAddr(0x80_0008));
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    let s = &su[0];
    assert_eq!(s.ctx.core, 1);
    assert_eq!(s.cache, CacheKind::Tlb { instruction: false });
    assert_eq!(s.made_stale_by.expect("a write made it stale").pa, pte_a);
    assert_eq!(s.made_stale_by.expect("a write made it stale").core, 0);
    assert_eq!(
        s.made_stale_by.expect("a write made it stale").step,
        write_step
    );
    assert_eq!(s.made_stale_by.expect("a write made it stale").old, old);
    assert_eq!(
        s.made_stale_by.expect("a write made it stale").new,
        0x88_0000 | RW
    );
    assert!(matches!(
        s.cached,
        WalkResult::Leaf {
            frame: PhysAddr(0x80_0000),
            ..
        }
    ));
    assert!(matches!(
        s.fresh,
        WalkResult::Leaf {
            frame: PhysAddr(0x88_0000),
            ..
        }
    ));
    assert_eq!(s.filled.core, 1);
    assert_eq!(s.filled.step, fill_step);
    assert_eq!(s.filled.entries.len(), 4);
    assert_eq!(s.filled.entries.entries()[3].pa, pte_a);
    assert_eq!(s.invalidations_since_fill.len(), 1);
    assert_eq!(s.invalidations_since_fill[0].core, 0);
    let text = s.to_string();
    assert!(text.contains("made stale by core 0"), "{text}");
    assert_eq!(w.tracker.stale_uses(), 1);
}

#[test]
fn pte_change_with_invlpg_is_not_a_stale_use() {
    let (mut w, pte_a) = two_cores();
    w.read(1, A).unwrap();
    w.set_entry(0, pte_a, 0x88_0000 | RW);
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    w.inv(1, Invalidation::Invlpg { va: VirtAddr(A) }); // the shootdown IPI
    assert_eq!(w.read(1, A).unwrap(), PhysAddr(0x88_0000));
    assert!(w.stale_uses().is_empty());
}

#[test]
fn adding_rights_or_touching_ad_bits_is_not_stale() {
    let mut w = World::simple(1);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, pte::P | pte::NX);
    w.read(0, A).unwrap();
    let v = w.get(pte_a);
    w.set_entry(0, pte_a, v | pte::RW); // add write
    w.set_entry(0, pte_a, v | pte::RW | pte::US); // add user
    w.set_entry(0, pte_a, (v | pte::RW | pte::US) & !pte::NX); // add execute
    w.set_entry(
        0,
        pte_a,
        (v | pte::RW | pte::US | pte::D) & !pte::NX & !pte::A,
    );
    w.set_entry(
        0,
        pte_a,
        (v | pte::RW | pte::US | 1 << 9 | 1 << 52) & !pte::NX,
    ); // ignored bits
    w.read(0, A).unwrap();
    assert!(w.stale_uses().is_empty());
    assert_eq!(w.tracker.stale_entries(), 0);
    // Removing a right the TLB entry never had leaves it fresh...
    w.set_entry(0, pte_a, v & !pte::RW | pte::NX);
    assert_eq!(w.tracker.stale_entries(), 0, "cached entry had no W either");
    let tlb_stale = |w: &World| w.cores[0].dump(&w.tracker).tlb.iter().any(|e| e.stale);
    let pde = w.entry(A, 2);
    let pdev = w.get(pde);
    w.set_entry(0, pde, pdev & !pte::US);
    assert!(!tlb_stale(&w), "user was never granted by the TLB entry");
    // ...but the PDE-cache entry did grant user (U/S=1 down to the PDE): stale.
    let d = w.cores[0].dump(&w.tracker);
    let stale_psc: Vec<_> = d.psc.iter().filter(|e| e.stale).map(|e| e.cache).collect();
    assert_eq!(stale_psc, vec![CacheKind::Psc { level: 2 }]);
    // Removing a right the TLB entry had (read-only -> not present) is stale.
    w.set_entry(0, pte_a, 0);
    assert!(tlb_stale(&w));
}

#[test]
fn undone_change_makes_entry_fresh_again() {
    let (mut w, pte_a) = two_cores();
    w.read(0, A).unwrap();
    let v = w.get(pte_a);
    w.set_entry(1, pte_a, 0);
    assert_eq!(w.tracker.stale_entries(), 1);
    w.set_entry(1, pte_a, v);
    assert_eq!(w.tracker.stale_entries(), 0);
    assert!(w
        .sink
        .0
        .iter()
        .any(|e| matches!(e, MmuEvent::BecameFresh { .. })));
    w.read(0, A).unwrap();
    assert!(w.stale_uses().is_empty());
}

#[test]
fn first_write_that_made_it_stale_is_kept() {
    let (mut w, pte_a) = two_cores();
    w.read(0, A).unwrap();
    w.set_entry(1, pte_a, 0);
    let first = w.step;
    w.set_entry(1, pte_a, 0x99_0000 | RW);
    w.read(0, A).unwrap();
    assert_eq!(
        w.stale_uses()[0]
            .made_stale_by
            .expect("a write made it stale")
            .step,
        first
    );
}

#[test]
fn freed_page_table_with_cached_pde_gives_stale_walk_via_psc() {
    let (mut w, _) = two_cores();
    // Core 1 walks A: its PDE cache now points at A's page table.
    w.read(1, A).unwrap();
    let pde = w.entry(A, 2);
    let pt = PhysAddr(w.get(pde) & 0x000f_ffff_ffff_f000);
    // Core 0 unmaps the whole page table and frees the page: it clears the PDE,
    // invalidates locally, and the page is reused as data.
    w.set_entry(0, pde, 0);
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    for i in 0..512 {
        w.set_entry(0, pt.add(i * 8), 0xdead_0000 | RW);
    }
    // Core 1 touches B (never in its TLB): the walk starts from the stale PDE
    // cache entry and reads the reused page as a page table.
    let pa = w.read(1, B).unwrap();
    assert_eq!(pa, PhysAddr(0xdead_0000));
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    assert_eq!(su[0].cache, CacheKind::Psc { level: 2 });
    assert_eq!(su[0].made_stale_by.expect("a write made it stale").pa, pde);
    assert!(matches!(su[0].fresh, WalkResult::NotPresent { level: 2 }));
    // The TLB entry built from that walk is stale from birth: its hit reports too.
    w.read(1, B).unwrap();
    assert_eq!(w.stale_uses().len(), 2);
}

#[test]
fn fast_path_never_hides_a_stale_use() {
    let (mut w, pte_a) = two_cores();
    for _ in 0..10 {
        w.read(1, A).unwrap();
    }
    w.set_entry(0, pte_a, 0);
    w.read(1, A).unwrap();
    w.read(1, A).unwrap();
    assert_eq!(w.stale_uses().len(), 2);
}

#[test]
fn instruction_fetch_through_stale_itlb_entry() {
    let mut w = World::simple(1);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, pte::P);
    w.access(0, A, Access::new(AccessKind::Execute, 0)).unwrap();
    w.set_entry(0, pte_a, pte::P | pte::NX | 0x80_0000);
    w.access(0, A, Access::new(AccessKind::Execute, 0)).unwrap();
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    assert_eq!(su[0].cache, CacheKind::Tlb { instruction: true });
}

#[test]
fn fast_path_hits_keep_lru_exact() {
    // 4 entries, 4 ways, 1 set; no separate ITLB.
    let cfg = MmuConfig {
        tlb: TlbConfig {
            data: vec![TlbArrayConfig::unified(4, 4, Replacement::Lru)],
            instruction: None,
        },
        ..MmuConfig::default()
    };
    let mut w = World::new(&cfg, 1, 0, efer::NXE);
    let vas: Vec<u64> = (0..5).map(|i| A + i * 0x1000).collect();
    for (i, va) in vas.iter().enumerate() {
        w.map(*va, 0x80_0000 + i as u64 * 0x1000, PageSize::Size4K, RW);
    }
    for va in &vas[..4] {
        w.read(0, *va).unwrap();
    }
    // Hit the oldest via the fast path (it was just inserted there by its fill?
    // fills bump the generation, so the first hit is slow, the second fast).
    w.read(0, vas[0]).unwrap();
    w.read(0, vas[0]).unwrap();
    w.read(0, vas[4]).unwrap();
    assert!(w.has_tlb(0, vas[0]), "recently used entry kept");
    assert!(!w.has_tlb(0, vas[1]), "least recently used entry evicted");
}

#[test]
fn dump_and_walk_view_change_nothing() {
    let cfg = MmuConfig {
        tlb: TlbConfig {
            data: vec![TlbArrayConfig::unified(2, 2, Replacement::Lru)],
            instruction: None,
        },
        ..MmuConfig::default()
    };
    let mut w = World::new(&cfg, 1, 0, efer::NXE);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(B, 0x80_1000, PageSize::Size4K, RW);
    w.map(A + 0x2000, 0x80_2000, PageSize::Size4K, RW);
    w.read(0, A).unwrap();
    w.read(0, B).unwrap();
    let mem_before = w.mem.clone();
    w.clear_events();
    let regs = w.regs[0];
    let d1 = w.cores[0].dump(&w.tracker);
    let v = w.cores[0].walk_view(&w.mem, &w.tracker, &regs, VirtAddr(A));
    let d2 = w.cores[0].dump(&w.tracker);
    assert_eq!(d1, d2);
    assert!(w.sink.0.is_empty());
    assert_eq!(v.levels.len(), 4);
    assert_eq!(v.tlb.len(), 1);
    assert!(v.levels.iter().all(|l| !l.cached_differs));
    assert_eq!(v.levels[3].flags, "P RW A");
    for pa in [w.entry(A, 1), w.entry(A, 2), w.entry(A, 3), w.entry(A, 4)] {
        assert_eq!(
            w.mem.read_u64(pa).unwrap(),
            mem_before.read_u64(pa).unwrap()
        );
    }
    // LRU untouched by the view of A: A is still the victim.
    w.read(0, A + 0x2000).unwrap();
    assert!(!w.has_tlb(0, A));
    // A retargeted PDE shows as differing from the cached entry.
    let pde = w.entry(A, 2);
    let v0 = w.get(pde);
    w.set_entry(0, pde, (v0 + 0x1000) | pte::P);
    let v = w.cores[0].walk_view(&w.mem, &w.tracker, &regs, VirtAddr(A));
    assert!(v.levels.iter().any(|l| l.level == 2 && l.cached_differs));
    // Dumps are sorted.
    let d = w.cores[0].dump(&w.tracker);
    let mut sorted = d.tlb.clone();
    sorted.sort_by_key(|e| (e.pcid, e.va));
    assert_eq!(d.tlb, sorted);
}

#[test]
fn evict_hook_removes_the_entry() {
    let (mut w, _) = two_cores();
    w.read(0, A).unwrap();
    let ctx = w.ctx(0);
    let regs = w.regs[0];
    assert_eq!(
        w.cores[0].evict(&mut w.tracker, &regs, VirtAddr(A + 5), ctx, &mut w.sink),
        1
    );
    assert_eq!(w.tlb_len(0), 0);
    assert_eq!(w.psc_len(0), 3, "the PSC keeps its entries");
    assert!(w
        .sink
        .0
        .iter()
        .any(|e| matches!(e, MmuEvent::Eviction { .. })));
}

#[test]
fn speculative_fill_fills_valid_translations_only() {
    let (mut w, pte_a) = two_cores();
    let ctx = w.ctx(1);
    let regs = w.regs[1];
    let core = &mut w.cores[1];
    let ok = core
        .speculative_fill(
            &mut w.mem,
            &mut w.tracker,
            &regs,
            VirtAddr(A),
            false,
            ctx,
            &mut w.sink,
        )
        .unwrap();
    assert!(ok);
    assert_eq!(w.tlb_len(1), 1);
    assert_ne!(w.get(pte_a) & pte::A, 0, "speculative walks set A");
    assert_eq!(w.get(pte_a) & pte::D, 0);
    // A not-present translation: nothing filled, nothing invalidated, no fault.
    w.set_entry(0, w.entry(B, 1), 0);
    let n_psc = w.psc_len(1);
    let core = &mut w.cores[1];
    let ok = core
        .speculative_fill(
            &mut w.mem,
            &mut w.tracker,
            &regs,
            VirtAddr(B),
            false,
            ctx,
            &mut w.sink,
        )
        .unwrap();
    assert!(!ok);
    assert_eq!(w.tlb_len(1), 1);
    assert_eq!(w.psc_len(1), n_psc);
    // A speculatively filled entry then goes stale like any other.
    w.set_entry(0, pte_a, 0);
    w.read(1, A).unwrap();
    assert_eq!(w.stale_uses().len(), 1);
}

#[test]
fn paging_flag_follows_cached_entries() {
    let (mut w, pte_a) = two_cores();
    w.read(0, A).unwrap();
    assert_ne!(w.mem.flags(pte_a.pfn()) & page_flags::PAGING, 0);
    w.inv(0, Invalidation::MovCr3 { src: w.regs[0].cr3 });
    w.tracker.sweep_paging_flags(&mut w.mem);
    assert_eq!(w.mem.flags(pte_a.pfn()) & page_flags::PAGING, 0);
    assert_eq!(w.tracker.live_entries(), 0);
}

#[test]
fn on_write_handles_partial_and_spanning_writes() {
    let (mut w, pte_a) = two_cores();
    w.read(0, A).unwrap();
    // A 1-byte guest write to the PTE's low byte clearing P.
    let v = w.get(pte_a);
    let f = w.mem.write(pte_a, &[(v as u8) & !1]).unwrap();
    assert_ne!(f & page_flags::PAGING, 0);
    let ctx = w.ctx(1);
    w.tracker.on_write(&w.mem, pte_a, 1, ctx, &mut w.sink);
    assert_eq!(w.tracker.stale_entries(), 1);
}

#[test]
fn determinism_same_inputs_same_events() {
    let run = || {
        let (mut w, pte_a) = two_cores();
        for i in 0..20u64 {
            w.read((i % 2) as u32, A + (i % 3) * 0x1000).ok();
            if i % 5 == 0 {
                w.set_entry(0, pte_a, (0x80_0000 + i * 0x1000) | RW);
            }
        }
        format!("{:?}", w.sink.0)
    };
    assert_eq!(run(), run());
}

#[test]
fn reverse_index_forgets_removed_entries() {
    let (mut w, pte_a) = two_cores();
    for _ in 0..2000 {
        w.read(0, A).unwrap();
        w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    }
    w.read(1, A).unwrap();
    w.clear_events();
    w.set_entry(0, pte_a, 0x88_0000 | RW);
    let affected: Vec<u32> = w
        .sink
        .0
        .iter()
        .filter_map(|e| match e {
            MmuEvent::PagingWrite { affected, .. } => Some(*affected),
            _ => None,
        })
        .collect();
    assert_eq!(
        affected,
        vec![1],
        "only core 1's live TLB entry is re-evaluated"
    );
    assert_eq!(w.tracker.live_entries(), 1 + 3);
}

/// Two address spaces that share PCID 1: the world's own (`A` → 0x80_0000, `B` →
/// 0x80_1000) and a second one built in its own table range (`A` → 0x90_0000, `B`
/// → 0x90_1000). Core 0 runs in the first with CR4.PCIDE=1 and has read `A`, so
/// its TLB and paging-structure caches hold PCID-1 entries filled under root 1.
fn shared_pcid() -> (World, PhysAddr, PhysAddr) {
    let mut w = World::new(&MmuConfig::default(), 1, cr4::PCIDE, efer::NXE);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(B, 0x80_1000, PageSize::Size4K, RW);
    let mut b2 =
        pagetable::Builder::new(&mut w.mem, PhysAddr(TABLES_END), PhysAddr(0x50_0000)).unwrap();
    for (va, pa) in [(A, 0x90_0000), (B, 0x90_1000)] {
        b2.map(&mut w.mem, VirtAddr(va), PhysAddr(pa), PageSize::Size4K, RW)
            .unwrap();
    }
    w.regs[0].cr3 = w.b.cr3(1);
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0x80_0000));
    let root1 = w.b.root();
    (w, root1, b2.root())
}

/// MOV CR3 as the CPU does it: the invalidation with the registers before, then
/// the load.
fn mov_cr3(w: &mut World, src: u64) {
    w.inv(0, Invalidation::MovCr3 { src });
    w.regs[0].cr3 = cr3_after_mov(src, w.regs[0].cr4);
}

/// SDM Vol. 3A 4.10.1: entries are tagged with PCIDs, not roots. After MOV CR3 with
/// bit 63 to another root with the same PCID, the TLB entry and the PDE-cache entry
/// filled under the old root are still used, and both uses are stale against a
/// fresh walk from the root loaded now.
#[test]
fn pcid_reuse_without_flush_is_stale_against_the_root_loaded_now() {
    let (mut w, root1, root2) = shared_pcid();
    w.clear_events();
    mov_cr3(&mut w, root2.raw() | 1 | 1 << 63);
    let load_step = w.step;
    // Both the TLB entry for A and the upper-level cache entries became stale at
    // the load, with the load as the cause.
    let became: Vec<_> = w
        .sink
        .0
        .iter()
        .filter_map(|e| match e {
            MmuEvent::BecameStale {
                entry,
                write: None,
                root_change: Some(c),
            } => Some((entry.cache, *c)),
            _ => None,
        })
        .collect();
    assert!(became
        .iter()
        .any(|(k, _)| *k == CacheKind::Tlb { instruction: false }));
    assert!(became
        .iter()
        .any(|(k, _)| *k == CacheKind::Psc { level: 2 }));
    assert!(became
        .iter()
        .all(|(_, c)| c.from == root1 && c.to == root2 && c.step == load_step));

    // The read through the TLB entry still gets proc 1's frame: a stale use.
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0x80_0000));
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    let s = &su[0];
    assert_eq!(s.cache, CacheKind::Tlb { instruction: false });
    assert_eq!(s.filled.root, root1);
    assert_eq!(s.used_under_root, Some(root2));
    assert_eq!(s.made_stale_by, None);
    let c = s.root_change.expect("the CR3 load is the cause");
    assert_eq!((c.from, c.to, c.step, c.core), (root1, root2, load_step, 0));
    assert!(matches!(
        s.fresh,
        WalkResult::Leaf {
            frame: PhysAddr(0x90_0000),
            ..
        }
    ));
    let text = s.to_string();
    assert!(
        text.contains(&format!(
            "used under root {root2}, filled under root {root1}"
        )),
        "{text}"
    );

    // B was never cached: its walk starts from the PDE-cache entry of proc 1's
    // page table and reads proc 1's PTE. A stale walk.
    assert_eq!(w.read(0, B).unwrap(), PhysAddr(0x80_1000));
    let su = w.stale_uses();
    assert_eq!(su.len(), 2);
    assert_eq!(su[1].cache, CacheKind::Psc { level: 2 });
    assert_eq!(su[1].used_under_root, Some(root2));
    assert!(su[1].root_change.is_some());
}

/// Loading the fill's root again (bit 63 again) makes the entries right again.
#[test]
fn switching_back_to_the_fill_root_makes_the_entries_fresh() {
    let (mut w, root1, root2) = shared_pcid();
    mov_cr3(&mut w, root2.raw() | 1 | 1 << 63);
    mov_cr3(&mut w, root1.raw() | 1 | 1 << 63);
    assert!(w.sink.0.iter().any(|e| matches!(
        e,
        MmuEvent::BecameFresh {
            write: None,
            root_change: Some(_),
            ..
        }
    )));
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0x80_0000));
    assert_eq!(w.read(0, B).unwrap(), PhysAddr(0x80_1000));
    assert!(w.stale_uses().is_empty());
}

/// A flushing load (bit 63 clear) removes the PCID's entries, so nothing is stale.
#[test]
fn a_flushing_load_of_the_shared_pcid_leaves_nothing_stale() {
    let (mut w, _, root2) = shared_pcid();
    mov_cr3(&mut w, root2.raw() | 1);
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0x90_0000));
    assert!(w.stale_uses().is_empty());
}

/// After the switch, a write to the *new* root's tables is what the entry is
/// judged by; a write to the old root's tables no longer matters.
#[test]
fn after_a_switch_writes_to_the_new_root_decide() {
    let (mut w, _, root2) = shared_pcid();
    // Make proc 2 map A like proc 1 first: then the switch leaves the entry fresh.
    let pte2 = pagetable::entry_addr(&w.mem, root2, VirtAddr(A), 1).unwrap();
    w.set_entry(0, pte2, 0x80_0000 | RW);
    mov_cr3(&mut w, root2.raw() | 1 | 1 << 63);
    // A write to proc 1's PTE for A changes nothing proc 2 translates.
    let pte1 = w.entry(A, 1);
    w.set_entry(0, pte1, 0);
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0x80_0000));
    assert!(w.stale_uses().is_empty());
    // A write to proc 2's PTE does, and is named.
    w.set_entry(0, pte2, 0x90_0000 | RW);
    let write_step = w.step;
    w.read(0, A).unwrap();
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    let made = su[0].made_stale_by.expect("the write to proc 2's PTE");
    assert_eq!((made.pa, made.step), (pte2, write_step));
    assert_eq!(su[0].used_under_root, Some(root2));
}

/// A CR3 changed without the MMU being told (a debugger poking the register) is
/// caught at the next slow-path use.
#[test]
fn a_root_changed_behind_the_mmus_back_is_judged_at_the_use() {
    let (mut w, root1, root2) = shared_pcid();
    w.regs[0].cr3 = root2.raw() | 1;
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0x80_0000));
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    let c = su[0].root_change.expect("root change seen at the use");
    assert_eq!((c.from, c.to, c.step), (root1, root2, w.step));
}
