//! The walk itself (SDM Vol. 3A 4.5, 4.7, 4.8): reserved bits per level, page
//! sizes, error-code bits, A/D, walks that start from a paging-structure cache,
//! non-canonical addresses; and configuration of TLB geometry.

mod common;
use common::*;
use mmu::*;

const A: u64 = 0x40_0000;

fn pf(w: &mut World, va: u64, a: Access) -> u32 {
    match w.access(0, va, a) {
        Err(TranslateError::PageFault(p)) => {
            assert_eq!(p.addr, VirtAddr(va));
            p.error_code
        }
        other => panic!("expected #PF, got {other:?}"),
    }
}

#[test]
fn ps_in_pml4e_is_reserved() {
    let mut w = World::simple(1);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    let pml4e = w.entry(A, 4);
    let v = w.get(pml4e);
    w.mem.write_u64(pml4e, v | pte::PS).unwrap();
    assert_eq!(
        pf(&mut w, A, Access::kernel_read()),
        pf_err::P | pf_err::RSVD
    );
}

#[test]
fn one_gib_pages_and_their_config_switch() {
    let mut w = World::simple(1);
    w.map(0x4000_0000, 0x4000_0000, PageSize::Size1G, RW);
    assert_eq!(w.read(0, 0x4123_4567).unwrap(), PhysAddr(0x4123_4567));
    // Bits 29:13 of a 1 GiB leaf are reserved.
    let pdpte = w.entry(0x4000_0000, 3);
    let v = w.get(pdpte);
    w.mem.write_u64(pdpte, v | 1 << 13).unwrap();
    w.inv(
        0,
        Invalidation::Invlpg {
            va: VirtAddr(0x4000_0000),
        },
    );
    assert_eq!(
        pf(&mut w, 0x4000_0000, Access::kernel_read()),
        pf_err::P | pf_err::RSVD
    );

    let cfg = MmuConfig {
        huge_1g: false,
        ..MmuConfig::default()
    };
    let mut w = World::new(&cfg, 1, 0, efer::NXE);
    w.map(0x4000_0000, 0x4000_0000, PageSize::Size1G, RW);
    assert_eq!(
        pf(&mut w, 0x4000_0000, Access::kernel_read()),
        pf_err::P | pf_err::RSVD
    );
}

#[test]
fn two_mib_reserved_bits_and_maxphyaddr() {
    let mut w = World::simple(1);
    let pde = w.map(0x20_0000, 0x60_0000, PageSize::Size2M, RW);
    let v = w.get(pde);
    w.mem.write_u64(pde, v | 1 << 20).unwrap();
    assert_eq!(
        pf(&mut w, 0x20_0000, Access::kernel_read()),
        pf_err::P | pf_err::RSVD
    );
    // Bit 46 is above MAXPHYADDR 46.
    w.mem.write_u64(pde, v | 1 << 46).unwrap();
    assert_eq!(
        pf(&mut w, 0x20_0000, Access::kernel_read()),
        pf_err::P | pf_err::RSVD
    );
    // With MAXPHYADDR 52 it is an address bit (outside this memory, hence Mem
    // error only if used for a table; here it is the frame, so translation works).
    let cfg = MmuConfig {
        maxphyaddr: 52,
        ..MmuConfig::default()
    };
    let mut w = World::new(&cfg, 1, 0, efer::NXE);
    let pde = w.map(0x20_0000, 0x60_0000, PageSize::Size2M, RW);
    let v = w.get(pde);
    w.mem.write_u64(pde, v | 1 << 46).unwrap();
    assert_eq!(w.read(0, 0x20_0000).unwrap(), PhysAddr(1 << 46 | 0x60_0000));
}

#[test]
fn nx_bit_is_reserved_without_nxe_and_i_bit_rules() {
    let mut w = World::new(&MmuConfig::default(), 1, 0, 0);
    w.map(A, 0x80_0000, PageSize::Size4K, RW | pte::NX);
    let fetch = Access::new(AccessKind::Execute, 0);
    // NXE=0: NX is a reserved bit; I is not reported (neither NXE nor SMEP).
    assert_eq!(pf(&mut w, A, fetch), pf_err::P | pf_err::RSVD);
    assert_eq!(
        pf(&mut w, A + 0x1000, fetch),
        0,
        "not present, no I without NXE/SMEP"
    );
    w.regs[0].cr4 |= cr4::SMEP;
    assert_eq!(pf(&mut w, A + 0x1000, fetch), pf_err::I);
    // NXE=1: NX forbids the fetch; I set.
    let mut w = World::simple(1);
    w.map(A, 0x80_0000, PageSize::Size4K, RW | pte::NX);
    assert_eq!(pf(&mut w, A, fetch), pf_err::P | pf_err::I);
    assert_eq!(
        pf(&mut w, A, Access::new(AccessKind::Execute, 3)),
        pf_err::P | pf_err::I | pf_err::U
    );
    assert!(w.read(0, A).is_ok());
}

#[test]
fn a_and_d_set_only_by_successful_walks() {
    let mut w = World::simple(1);
    let pte_a = w.map(A, 0x80_0000, PageSize::Size4K, RW);
    let levels: Vec<PhysAddr> = (1..=4).map(|l| w.entry(A, l)).collect();
    // A user access faults on rights: nothing is set.
    assert!(w.access(0, A, Access::new(AccessKind::Read, 3)).is_err());
    for pa in &levels {
        assert_eq!(w.get(*pa) & (pte::A | pte::D), 0);
    }
    w.write(0, A).unwrap();
    for pa in &levels {
        assert_ne!(w.get(*pa) & pte::A, 0);
    }
    for pa in &levels[1..] {
        assert_eq!(w.get(*pa) & pte::D, 0, "D only in the leaf");
    }
    assert_ne!(w.get(pte_a) & pte::D, 0);
}

#[test]
fn walks_start_from_paging_structure_caches() {
    let mut w = World::simple(1);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(A + 0x1000, 0x80_1000, PageSize::Size4K, RW);
    w.read(0, A).unwrap();
    // Clear A in the upper levels; a walk that starts at the PDE cache does not
    // read (nor set A in) them.
    let upper: Vec<PhysAddr> = (2..=4).map(|l| w.entry(A, l)).collect();
    for pa in &upper {
        let v = w.get(*pa);
        w.mem.write_u64(*pa, v & !pte::A).unwrap();
    }
    w.read(0, A + 0x1000).unwrap();
    for pa in &upper {
        assert_eq!(w.get(*pa) & pte::A, 0);
    }
    assert_ne!(w.get(w.entry(A + 0x1000, 1)) & pte::A, 0);
    // With the caches disabled every walk starts at CR3.
    let cfg = MmuConfig {
        psc: PscConfig::disabled(),
        ..MmuConfig::default()
    };
    let mut w = World::new(&cfg, 1, 0, efer::NXE);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(A + 0x1000, 0x80_1000, PageSize::Size4K, RW);
    w.read(0, A).unwrap();
    let pml4e = w.entry(A, 4);
    let v = w.get(pml4e);
    w.mem.write_u64(pml4e, v & !pte::A).unwrap();
    w.read(0, A + 0x1000).unwrap();
    assert_ne!(w.get(pml4e) & pte::A, 0);
    assert_eq!(w.psc_len(0), 0);
}

#[test]
fn non_canonical_is_not_a_page_fault_and_touches_nothing() {
    let mut w = World::simple(1);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.read(0, A).unwrap();
    w.clear_events();
    let va = 0x0000_8000_0040_0000;
    assert_eq!(
        w.read(0, va),
        Err(TranslateError::NonCanonical(VirtAddr(va)))
    );
    assert!(w.sink.0.is_empty());
    assert_eq!(w.tlb_len(0), 1);
}

#[test]
fn paging_off_is_identity() {
    let mut w = World::simple(1);
    w.regs[0].cr0 &= !cr0::PG;
    assert_eq!(w.read(0, 0x1234_5678).unwrap(), PhysAddr(0x1234_5678));
    assert_eq!(w.tlb_len(0), 0);
}

#[test]
fn smap_ac_and_implicit_accesses() {
    let mut w = World::new(&MmuConfig::default(), 1, cr4::SMAP, efer::NXE);
    w.map(A, 0x80_0000, PageSize::Size4K, URW);
    let mut a = Access::kernel_read();
    assert_eq!(pf(&mut w, A, a), pf_err::P);
    a.rflags_ac = true;
    assert!(w.access(0, A, a).is_ok());
    // Implicit supervisor accesses ignore AC, and report U=0 even at CPL 3.
    let imp = Access {
        kind: AccessKind::Read,
        cpl: 3,
        implicit_supervisor: true,
        rflags_ac: true,
    };
    assert_eq!(pf(&mut w, A, imp), pf_err::P);
}

#[test]
fn tlb_arrays_per_page_size() {
    let cfg = MmuConfig {
        tlb: TlbConfig {
            data: vec![
                TlbArrayConfig {
                    entries: 8,
                    ways: 2,
                    policy: Replacement::Fifo,
                    sizes: vec![PageSize::Size4K],
                },
                TlbArrayConfig {
                    entries: 4,
                    ways: 4,
                    policy: Replacement::Lru,
                    sizes: vec![PageSize::Size2M],
                },
            ],
            instruction: None,
        },
        ..MmuConfig::default()
    };
    assert!(cfg.validate().is_ok());
    let mut w = World::new(&cfg, 1, 0, efer::NXE);
    w.map(A, 0x80_0000, PageSize::Size4K, RW);
    w.map(0x20_0000, 0x60_0000, PageSize::Size2M, RW);
    w.map(0x4000_0000, 0x4000_0000, PageSize::Size1G, RW);
    w.read(0, A).unwrap();
    w.read(0, 0x20_0000).unwrap();
    // No array holds 1 GiB pages: translated, never cached.
    w.read(0, 0x4000_0000).unwrap();
    assert_eq!(w.tlb_len(0), 2);
    w.clear_events();
    w.read(0, 0x4000_0000).unwrap();
    assert!(!w
        .sink
        .0
        .iter()
        .any(|e| matches!(e, MmuEvent::TlbFill { .. })));
    let sizes: Vec<_> = w.cores[0]
        .dump(&w.tracker)
        .tlb
        .iter()
        .map(|e| match e.cached {
            WalkResult::Leaf { size, .. } => size,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(sizes, vec![PageSize::Size2M, PageSize::Size4K]);
}

#[test]
fn config_validation_and_serde() {
    let mut cfg = MmuConfig::default();
    cfg.tlb.data[0].ways = 3;
    assert!(matches!(
        cfg.validate(),
        Err(ConfigError::BadGeometry { .. })
    ));
    cfg.tlb.data[0].ways = 4;
    cfg.maxphyaddr = 60;
    assert_eq!(cfg.validate(), Err(ConfigError::BadMaxPhyAddr(60)));
    let cfg = MmuConfig {
        errata: vec![Erratum::InvlpgMissesGlobalWithPcid],
        ..MmuConfig::default()
    };
    let s = serde_json::to_string(&cfg).unwrap();
    let back: MmuConfig = serde_json::from_str(&s).unwrap();
    assert_eq!(back, cfg);
    let partial: MmuConfig = serde_json::from_str(r#"{"huge_1g": false}"#).unwrap();
    assert!(!partial.huge_1g);
    assert_eq!(partial.tlb, TlbConfig::default());
}

#[test]
fn builder_is_deterministic_and_reports_errors() {
    let build = || {
        let mut mem = PhysMem::new(MEM);
        let mut b =
            pagetable::Builder::new(&mut mem, PhysAddr(TABLES), PhysAddr(TABLES + 0x5000)).unwrap();
        let e = b
            .map(
                &mut mem,
                VirtAddr(A),
                PhysAddr(0x80_0000),
                PageSize::Size4K,
                RW,
            )
            .unwrap();
        (b.next_frame(), e, b.clone())
    };
    let (n1, e1, _) = build();
    let (n2, e2, mut b) = build();
    assert_eq!((n1, e1), (n2, e2));
    let mut mem = PhysMem::new(MEM);
    assert!(matches!(
        b.map(&mut mem, VirtAddr(A + 1), PhysAddr(0), PageSize::Size4K, RW),
        Err(pagetable::BuildError::Misaligned { .. })
    ));
    let mut b =
        pagetable::Builder::new(&mut mem, PhysAddr(TABLES), PhysAddr(TABLES + 0x2000)).unwrap();
    assert!(matches!(
        b.map(&mut mem, VirtAddr(A), PhysAddr(0), PageSize::Size4K, RW),
        Err(pagetable::BuildError::OutOfFrames { .. })
    ));
}
