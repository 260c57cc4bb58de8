//! One test per row of SDM-TLB.md's table (Intel SDM Vol. 3A 4.10.4.1) and per
//! fact listed under it.

mod common;
use common::*;
use mmu::*;

const A: u64 = 0x40_0000; // non-global 4 KiB page
const A2: u64 = 0x40_1000; // its neighbour, same PT
const G: u64 = 0x60_2000; // global 4 KiB page, other PDE, other TLB set
const FAR: u64 = 0x80_0000_3000; // other PML4E, other TLB set

/// One core, PCIDE=1 (and PGE), current PCID 1, pages A, A2, G(lobal), FAR mapped.
fn pcid_world(cfg: &MmuConfig) -> World {
    let mut w = World::new(cfg, 1, cr4::PCIDE | cr4::PGE, efer::NXE);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(A2, 0x80_1000, PageSize::Size4K, RW);
    w.map(G, 0x90_0000, PageSize::Size4K, RW | pte::G);
    w.map(FAR, 0xa0_0000, PageSize::Size4K, RW);
    w.regs[0].cr3 = w.b.cr3(1);
    w
}

/// MOV CR3 as the CPU does it: invalidate with the old registers, then load.
fn mov_cr3(w: &mut World, core: u32, src: u64) -> Removed {
    let r = w.inv(core, Invalidation::MovCr3 { src });
    let c = &mut w.regs[core as usize];
    c.cr3 = cr3_after_mov(src, c.cr4);
    r
}

fn fill_all(w: &mut World) {
    for va in [A, A2, G, FAR] {
        w.read(0, va).unwrap();
    }
}

/// (pcid, va) of TLB entries, sorted.
fn tlb_set(w: &World) -> Vec<(u16, u64, bool)> {
    w.cores[0]
        .dump(&w.tracker)
        .tlb
        .iter()
        .map(|e| (e.pcid, e.va.raw(), e.global))
        .collect()
}

fn psc_set(w: &World) -> Vec<(u16, u8, u64)> {
    w.cores[0]
        .dump(&w.tracker)
        .psc
        .iter()
        .map(|e| match e.cache {
            CacheKind::Psc { level } => (e.pcid, level, e.va.raw()),
            _ => unreachable!(),
        })
        .collect()
}

/// Fills A, A2, G, FAR under PCID 1 and A, FAR under PCID 2 (switching with
/// bit 63 set so nothing is flushed), ending on PCID 2.
fn two_pcids(cfg: &MmuConfig) -> World {
    let mut w = pcid_world(cfg);
    fill_all(&mut w);
    let src = w.b.cr3(2) | 1 << 63;
    mov_cr3(&mut w, 0, src);
    w.read(0, A).unwrap();
    w.read(0, FAR).unwrap();
    w
}

// ---- rows ----

#[test]
fn row_invlpg_removes_current_pcid_page_and_globals_and_current_pcid_psc() {
    let mut w = two_pcids(&MmuConfig::default());
    let r = w.inv(
        0,
        Invalidation::Invlpg {
            va: VirtAddr(A + 0x10),
        },
    );
    assert_eq!(r.tlb, 1);
    let t = tlb_set(&w);
    assert!(!t.contains(&(2, A, false)), "PCID 2 entry for A removed");
    assert!(t.contains(&(1, A, false)), "PCID 1 entry for A kept");
    // A global entry for the page goes whatever its PCID tag.
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(G) });
    assert!(!tlb_set(&w).iter().any(|e| e.1 == G));
    // All PSC entries of the current PCID (2) went; PCID 1's stay.
    let p = psc_set(&w);
    assert!(p.iter().all(|e| e.0 == 1));
    assert!(!p.is_empty());
}

#[test]
fn row_invpcid_type0_removes_nonglobal_for_address_and_its_psc_entries() {
    let mut w = two_pcids(&MmuConfig::default());
    let op = invpcid(0, 1, A, w.regs[0].cr4).unwrap();
    let r = w.inv(0, op);
    assert_eq!(r.tlb, 1);
    let t = tlb_set(&w);
    assert!(!t.contains(&(1, A, false)));
    assert!(t.contains(&(2, A, false)) && t.contains(&(1, A2, false)));
    // Global entries survive type 0.
    let op = invpcid(0, 1, G, w.regs[0].cr4).unwrap();
    w.inv(0, op);
    assert!(tlb_set(&w).iter().any(|e| e.1 == G));
    // PSC: PCID 1's entries used for A (the PML4E/PDPTE/PDE covering A) went;
    // PCID 1's entries for FAR stay.
    let p = psc_set(&w);
    assert!(!p.contains(&(1, 2, A)));
    assert!(!p.contains(&(1, 4, 0)));
    assert!(p.contains(&(1, 4, 0x80_0000_0000)));
    assert!(p.contains(&(2, 2, 0x40_0000)));
}

#[test]
fn row_invpcid_type1_removes_nonglobal_of_pcid_and_its_psc() {
    let mut w = two_pcids(&MmuConfig::default());
    let op = invpcid(1, 1, 0, w.regs[0].cr4).unwrap();
    w.inv(0, op);
    let t = tlb_set(&w);
    assert!(
        t.iter().all(|e| e.0 == 2 || e.2),
        "only PCID 2 and globals left: {t:?}"
    );
    assert!(t.iter().any(|e| e.2));
    assert!(psc_set(&w).iter().all(|e| e.0 == 2));
}

#[test]
fn row_invpcid_type2_removes_everything() {
    let mut w = two_pcids(&MmuConfig::default());
    let op = invpcid(2, 0, 0, w.regs[0].cr4).unwrap();
    w.inv(0, op);
    assert_eq!(w.tlb_len(0), 0);
    assert_eq!(w.psc_len(0), 0);
}

#[test]
fn row_invpcid_type3_removes_all_nonglobal_and_all_psc() {
    let mut w = two_pcids(&MmuConfig::default());
    let op = invpcid(3, 0, 0, w.regs[0].cr4).unwrap();
    w.inv(0, op);
    assert_eq!(tlb_set(&w), vec![(1, G, true)]);
    assert_eq!(w.psc_len(0), 0);
}

#[test]
fn row_mov_cr3_without_pcide_flushes_nonglobal_pcid0() {
    let mut w = World::new(&MmuConfig::default(), 1, cr4::PGE, efer::NXE);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(G, 0x90_0000, PageSize::Size4K, RW | pte::G);
    w.read(0, A).unwrap();
    w.read(0, G).unwrap();
    let src = w.b.cr3(0);
    let r = mov_cr3(&mut w, 0, src);
    assert_eq!(r.tlb, 1);
    assert_eq!(tlb_set(&w), vec![(0, G, true)]);
    assert_eq!(w.psc_len(0), 0);
    // Bit 63 means nothing without PCIDE: still a flush.
    w.read(0, A).unwrap();
    let src = w.b.cr3(0) | 1 << 63;
    assert_eq!(w.inv(0, Invalidation::MovCr3 { src }).tlb, 1);
}

#[test]
fn row_mov_cr3_pcide_bit63_clear_flushes_new_pcid() {
    let mut w = two_pcids(&MmuConfig::default());
    // Back to PCID 1 with bit 63 clear: PCID 1's non-global entries and PSC go.
    let src = w.b.cr3(1);
    mov_cr3(&mut w, 0, src);
    let t = tlb_set(&w);
    assert!(t.iter().all(|e| e.0 == 2 || e.2), "{t:?}");
    assert!(t.contains(&(2, A, false)));
    assert!(psc_set(&w).iter().all(|e| e.0 == 2));
}

#[test]
fn row_mov_cr3_pcide_bit63_set_flushes_nothing_and_is_not_written() {
    let mut w = two_pcids(&MmuConfig::default());
    let before = (tlb_set(&w), psc_set(&w));
    let src = w.b.cr3(1) | 1 << 63;
    let r = mov_cr3(&mut w, 0, src);
    assert_eq!(r, Removed::default());
    assert_eq!((tlb_set(&w), psc_set(&w)), before);
    assert_eq!(w.regs[0].cr3 >> 63, 0, "bit 63 is not written into CR3");
    assert_eq!(cr3_after_mov(1 << 63 | 0x1000, 0), 1 << 63 | 0x1000);
}

#[test]
fn row_mov_cr4_pge_or_pcide_off_flushes_everything() {
    let mut w = two_pcids(&MmuConfig::default());
    let cr4v = w.regs[0].cr4;
    w.inv(
        0,
        Invalidation::MovCr4 {
            old: cr4v,
            new: cr4v & !cr4::PGE,
        },
    );
    assert_eq!((w.tlb_len(0), w.psc_len(0)), (0, 0));

    let mut w = two_pcids(&MmuConfig::default());
    w.inv(
        0,
        Invalidation::MovCr4 {
            old: cr4v,
            new: cr4v & !cr4::PCIDE,
        },
    );
    assert_eq!((w.tlb_len(0), w.psc_len(0)), (0, 0));

    // PCIDE 0 -> 1 requires nothing.
    let mut w = two_pcids(&MmuConfig::default());
    let n = w.tlb_len(0);
    w.inv(
        0,
        Invalidation::MovCr4 {
            old: cr4v & !cr4::PCIDE,
            new: cr4v,
        },
    );
    assert_eq!(w.tlb_len(0), n);
}

#[test]
fn row_mov_cr4_pae_or_smep_on_flushes_current_pcid() {
    {
        let new_bits = cr4::SMEP;
        let mut w = two_pcids(&MmuConfig::default());
        let old = w.regs[0].cr4;
        w.inv(
            0,
            Invalidation::MovCr4 {
                old,
                new: old | new_bits,
            },
        );
        let t = tlb_set(&w);
        assert!(t.iter().all(|e| e.0 == 1), "PCID 2 entries gone: {t:?}");
        assert!(psc_set(&w).iter().all(|e| e.0 == 1));
        // SMEP 1 -> 0 requires nothing.
        let n = w.tlb_len(0);
        w.inv(
            0,
            Invalidation::MovCr4 {
                old: old | new_bits,
                new: old,
            },
        );
        assert_eq!(w.tlb_len(0), n);
    }
    // PAE toggled (either way) — the plan is the same.
    let mut w = two_pcids(&MmuConfig::default());
    let old = w.regs[0].cr4;
    w.inv(
        0,
        Invalidation::MovCr4 {
            old,
            new: old & !cr4::PAE,
        },
    );
    assert!(tlb_set(&w).iter().all(|e| e.0 == 1));
}

#[test]
fn row_mov_cr0_clearing_pg_flushes_everything() {
    let mut w = two_pcids(&MmuConfig::default());
    let old = w.regs[0].cr0;
    let n = w.tlb_len(0);
    w.inv(
        0,
        Invalidation::MovCr0 {
            old,
            new: old & !cr0::WP,
        },
    );
    assert_eq!(w.tlb_len(0), n, "WP changes require no invalidation");
    w.inv(
        0,
        Invalidation::MovCr0 {
            old,
            new: old & !cr0::PG,
        },
    );
    assert_eq!((w.tlb_len(0), w.psc_len(0)), (0, 0));
}

#[test]
fn row_page_fault_removes_page_and_psc_entries_used() {
    let mut w = two_pcids(&MmuConfig::default());
    // A user access to a supervisor page faults from the TLB entry (rights).
    let e = w
        .access(0, A, Access::new(AccessKind::Read, 3))
        .unwrap_err();
    assert_eq!(
        e,
        TranslateError::PageFault(PageFault {
            addr: VirtAddr(A),
            error_code: pf_err::P | pf_err::U
        })
    );
    let t = tlb_set(&w);
    assert!(!t.contains(&(2, A, false)));
    assert!(t.contains(&(1, A, false)), "other PCIDs untouched");
    let p = psc_set(&w);
    assert!(!p.iter().any(|e| e.0 == 2 && e.2 <= A && e.1 == 2));
    assert!(
        p.contains(&(2, 4, 0x80_0000_0000)),
        "PSC entries not used for A stay"
    );
}

// ---- facts ----

#[test]
fn no_fill_from_not_present_or_reserved_walks() {
    let mut w = World::simple(1);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.set_entry(0, pte_a, 0x80_0000 | pte::RW); // P=0
    assert!(matches!(w.read(0, A), Err(TranslateError::PageFault(_))));
    assert_eq!(w.tlb_len(0), 0);
    // Upper levels were valid, but the walk faulted: the #PF removed their PSC
    // entries (and a faulting walk fills none).
    assert_eq!(w.psc_len(0), 0);
    w.set_entry(0, pte_a, 0x80_0000 | RW | 1 << 51); // reserved bit
    let e = w.read(0, A).unwrap_err();
    assert_eq!(
        e,
        TranslateError::PageFault(PageFault {
            addr: VirtAddr(A),
            error_code: pf_err::P | pf_err::RSVD
        })
    );
    assert_eq!(w.tlb_len(0), 0);
    // A rights fault fills nothing either.
    w.set_entry(0, pte_a, 0x80_0000 | RW);
    assert!(w.access(0, A, Access::new(AccessKind::Read, 3)).is_err());
    assert_eq!(w.tlb_len(0), 0);
}

#[test]
fn global_entries_need_cr4_pge() {
    let mut w = World::simple(1);
    w.map(G, 0x90_0000, PageSize::Size4K, RW | pte::G);
    w.read(0, G).unwrap();
    assert_eq!(tlb_set(&w), vec![(0, G, false)]);
    let src = w.b.cr3(0);
    mov_cr3(&mut w, 0, src);
    assert_eq!(
        w.tlb_len(0),
        0,
        "not global without PGE: flushed by MOV CR3"
    );

    let mut w = World::new(&MmuConfig::default(), 1, cr4::PGE, efer::NXE);
    w.map(G, 0x90_0000, PageSize::Size4K, RW | pte::G);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.read(0, G).unwrap();
    w.read(0, A).unwrap();
    assert!(tlb_set(&w).contains(&(0, G, true)));
    assert!(
        tlb_set(&w).contains(&(0, A, false)),
        "G=0 in the leaf: not global"
    );
}

#[test]
fn lookups_use_current_pcid_or_global_only() {
    let mut w = pcid_world(&MmuConfig::default());
    w.read(0, A).unwrap();
    w.read(0, G).unwrap();
    let src = w.b.cr3(2) | 1 << 63;
    mov_cr3(&mut w, 0, src);
    w.clear_events();
    w.read(0, A).unwrap();
    w.read(0, G).unwrap();
    let fills: Vec<_> = w
        .sink
        .0
        .iter()
        .filter_map(|e| match e {
            MmuEvent::TlbFill { entry } => Some(entry.va.raw()),
            _ => None,
        })
        .collect();
    assert_eq!(fills, vec![A], "A missed under PCID 2, the global G hit");
}

#[test]
fn invpcid_validity_errors() {
    let pcide = cr4::PCIDE;
    assert_eq!(invpcid(4, 0, 0, pcide), Err(InvpcidError::BadType(4)));
    assert_eq!(
        invpcid(1, 1 << 12 | 1, 0, pcide),
        Err(InvpcidError::ReservedBits(1 << 12 | 1))
    );
    assert_eq!(
        invpcid(2, 1 << 63, 0, pcide),
        Err(InvpcidError::ReservedBits(1 << 63))
    );
    assert_eq!(
        invpcid(0, 1, 0x0000_8000_0000_0000, pcide),
        Err(InvpcidError::NonCanonical(VirtAddr(0x0000_8000_0000_0000)))
    );
    // Non-canonical address is fine for other types.
    assert!(invpcid(1, 1, 0x0000_8000_0000_0000, pcide).is_ok());
    assert_eq!(
        invpcid(0, 5, 0, 0),
        Err(InvpcidError::PcidWithoutPcide { ty: 0, pcid: 5 })
    );
    assert_eq!(
        invpcid(1, 5, 0, 0),
        Err(InvpcidError::PcidWithoutPcide { ty: 1, pcid: 5 })
    );
    assert!(invpcid(1, 0, 0, 0).is_ok());
    assert!(invpcid(2, 5, 0, 0).is_ok(), "types 2/3 ignore the PCID");
    assert_eq!(
        invpcid(0, 7, 0x1000, pcide),
        Ok(Invalidation::Invpcid {
            kind: InvpcidKind::IndividualAddress,
            pcid: 7,
            va: VirtAddr(0x1000)
        })
    );
}

#[test]
fn pcide_validity_errors() {
    let pg = cr0::PG;
    assert_eq!(
        check_mov_cr4(0, cr4::PCIDE, 0x1000 | 3),
        Err(CrError::PcideWithNonZeroPcid { cr3: 0x1003 })
    );
    assert!(check_mov_cr4(0, cr4::PCIDE, 0x1000).is_ok());
    assert!(check_mov_cr4(cr4::PCIDE, cr4::PCIDE | cr4::PGE, 0x1003).is_ok());
    assert_eq!(
        check_mov_cr0(pg, 0, cr4::PCIDE),
        Err(CrError::ClearPgWithPcide)
    );
    assert!(check_mov_cr0(pg, 0, 0).is_ok());
}

#[test]
fn invlpg_non_canonical_is_a_noop() {
    let mut w = two_pcids(&MmuConfig::default());
    let before = (tlb_set(&w), psc_set(&w));
    let r = w.inv(
        0,
        Invalidation::Invlpg {
            va: VirtAddr(0x0000_8000_0040_0000),
        },
    );
    assert_eq!(r, Removed::default());
    assert_eq!((tlb_set(&w), psc_set(&w)), before);
}

#[test]
fn invlpg_and_page_fault_remove_a_whole_2m_page() {
    let mut w = World::simple(1);
    let pde = w.map(0x20_0000, 0x60_0000, PageSize::Size2M, RW);
    assert_eq!(
        w.read(0, 0x20_0000 + 0x12_3456).unwrap(),
        PhysAddr(0x72_3456)
    );
    assert_eq!(w.tlb_len(0), 1);
    // INVLPG of any address inside the 2 MiB page removes it.
    assert_eq!(
        w.inv(
            0,
            Invalidation::Invlpg {
                va: VirtAddr(0x3f_f000)
            }
        )
        .tlb,
        1
    );
    assert_eq!(w.tlb_len(0), 0);
    // Same for a #PF: fill, then a user access faults on the cached rights.
    w.read(0, 0x20_1000).unwrap();
    assert!(w
        .access(0, 0x3f_0000, Access::new(AccessKind::Read, 3))
        .is_err());
    assert_eq!(w.tlb_len(0), 0);
    let _ = pde;
}

#[test]
fn write_through_clean_entry_rewalks_and_sets_d() {
    let mut w = World::simple(1);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.read(0, A).unwrap();
    assert_eq!(w.get(pte_a) & pte::D, 0);
    w.clear_events();
    w.write(0, A).unwrap();
    assert_ne!(w.get(pte_a) & pte::D, 0, "D set in memory");
    assert!(w
        .sink
        .0
        .iter()
        .any(|e| matches!(e, MmuEvent::DirtyRewalk { .. })));
    // The re-walk is a real walk: if the PTE went away meanwhile it faults.
    let mut w = World::simple(1);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.read(0, A).unwrap();
    w.set_entry(0, pte_a, 0);
    let e = w.write(0, A).unwrap_err();
    assert_eq!(
        e,
        TranslateError::PageFault(PageFault {
            addr: VirtAddr(A),
            error_code: pf_err::W
        })
    );
    // Once D is cached, writes hit without touching memory.
    let mut w = World::simple(1);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.write(0, A).unwrap();
    w.clear_events();
    w.write(0, A + 8).unwrap();
    assert!(w.sink.0.is_empty(), "{:?}", w.sink.0);
    assert_ne!(w.get(pte_a) & pte::D, 0);
}

#[test]
fn stale_paging_structure_cache_gives_a_stale_walk() {
    let mut w = World::simple(1);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.read(0, A).unwrap();
    // Evict the TLB entry only: the PDE cache still points at the old PT.
    let ctx = w.ctx(0);
    let regs = w.regs[0];
    w.cores[0].evict(&mut w.tracker, &regs, VirtAddr(A), ctx, &mut w.sink);
    // Retarget the PDE to a new page table mapping A elsewhere, no invalidation.
    let new_pt = w.b.alloc_table(&mut w.mem).unwrap();
    w.mem.write_u64(new_pt.add(0), 0xb0_0000 | RW).unwrap();
    let pde = w.entry(A, 2);
    w.set_entry(0, pde, new_pt.raw() | URW);
    // The PTE in memory for A is fresh, but the walk starts at the cached PDE.
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0x80_0000));
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    assert_eq!(su[0].cache, CacheKind::Psc { level: 2 });
    assert_eq!(su[0].made_stale_by.expect("a write made it stale").pa, pde);
    // After INVLPG (flushes the PSC of the PCID) the walk is fresh.
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    assert_eq!(w.read(0, A).unwrap(), PhysAddr(0xb0_0000));
}

#[test]
fn pcid_entries_survive_cr3_load_with_bit63_and_are_used_on_return() {
    let mut w = pcid_world(&MmuConfig::default());
    w.read(0, A).unwrap();
    let src = w.b.cr3(2) | 1 << 63;
    mov_cr3(&mut w, 0, src);
    let src = w.b.cr3(1) | 1 << 63;
    mov_cr3(&mut w, 0, src);
    w.clear_events();
    w.read(0, A).unwrap();
    assert!(
        !w.sink
            .0
            .iter()
            .any(|e| matches!(e, MmuEvent::TlbFill { .. })),
        "hit on the PCID 1 entry kept across both switches"
    );
}

#[test]
fn erratum_invlpg_misses_global_entries_with_pcid() {
    let cfg = MmuConfig {
        errata: vec![Erratum::InvlpgMissesGlobalWithPcid],
        ..MmuConfig::default()
    };
    let mut w = pcid_world(&cfg);
    w.read(0, G).unwrap();
    w.read(0, A).unwrap();
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(G) });
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    assert_eq!(tlb_set(&w), vec![(1, G, true)], "the global entry survived");
    // Without PCIDE the erratum does not apply.
    let mut w = World::new(&cfg, 1, cr4::PGE, efer::NXE);
    w.map(G, 0x90_0000, PageSize::Size4K, RW | pte::G);
    w.read(0, G).unwrap();
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(G) });
    assert_eq!(w.tlb_len(0), 0);
    // And the erratum makes a stale global entry observable.
    let mut w = pcid_world(&cfg);
    w.read(0, G).unwrap();
    let g = w.entry(G, 1);
    w.set_entry(0, g, 0x95_0000 | RW | pte::G);
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(G) });
    assert_eq!(w.read(0, G).unwrap(), PhysAddr(0x90_0000));
    assert_eq!(w.stale_uses().len(), 1);
}

/// The stale use an erratum allows says so: it names the erratum and the INVLPG
/// that SDM 4.10.4.1 says removes the entry, and the INVLPG's log record counts the
/// entry it kept. A conforming INVLPG of another page notes nothing.
#[test]
fn erratum_kept_entry_is_named_in_the_explanation() {
    let cfg = MmuConfig {
        errata: vec![Erratum::InvlpgMissesGlobalWithPcid],
        ..MmuConfig::default()
    };
    let mut w = pcid_world(&cfg);
    w.read(0, G).unwrap();
    let g = w.entry(G, 1);
    w.set_entry(0, g, 0x95_0000 | RW | pte::G);
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(G) });
    let inv_step = w.step;
    w.read(0, G).unwrap();
    let su = w.stale_uses();
    assert_eq!(su.len(), 1);
    let k = su[0].kept_by_erratum.expect("the erratum kept the entry");
    assert_eq!(k.erratum, Erratum::InvlpgMissesGlobalWithPcid);
    assert_eq!((k.core, k.step), (0, inv_step));
    assert_eq!(k.op, Invalidation::Invlpg { va: VirtAddr(G) });
    let invs = &su[0].invalidations_since_fill;
    assert_eq!(invs.len(), 2);
    assert_eq!(invs[0].kept_by_erratum, 0, "INVLPG of another page");
    assert_eq!(invs[1].kept_by_erratum, 1);
    let text = su[0].to_string();
    assert!(
        text.contains("kept alive by erratum InvlpgMissesGlobalWithPcid"),
        "{text}"
    );
    assert!(
        text.contains("an erratum kept 1 TLB entry it must remove"),
        "{text}"
    );
}

#[test]
fn extra_invalidations_are_opt_in() {
    let cfg = MmuConfig {
        extra_invalidations: true,
        ..MmuConfig::default()
    };
    // INVLPG also flushes other PCIDs' PSC entries.
    let mut w = two_pcids(&cfg);
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    assert_eq!(w.psc_len(0), 0);
    // Minimal default keeps them.
    let mut w = two_pcids(&MmuConfig::default());
    w.inv(0, Invalidation::Invlpg { va: VirtAddr(A) });
    assert!(w.psc_len(0) > 0);
    // INVPCID type 0 flushes all PSC entries of the PCID.
    let mut w = two_pcids(&cfg);
    let op = invpcid(0, 1, A, w.regs[0].cr4).unwrap();
    w.inv(0, op);
    assert!(psc_set(&w).iter().all(|e| e.0 == 2));
}
