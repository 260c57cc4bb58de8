mod common;
use common::*;
use mmu::*;

#[test]
fn translate_fill_hit_and_ad_bits() {
    let mut w = World::simple(1);
    let pte_pa = w.map(0x40_0000, 0x80_0000, PageSize::Size4K, RW);
    assert_eq!(w.read(0, 0x40_0123).unwrap(), PhysAddr(0x80_0123));
    assert_eq!(w.get(pte_pa) & (pte::A | pte::D), pte::A);
    assert_eq!(w.tlb_len(0), 1);
    assert_eq!(w.psc_len(0), 3);
    // Hit (fast path) gives the same.
    assert_eq!(w.read(0, 0x40_0456).unwrap(), PhysAddr(0x80_0456));
    // Write: D=0 cached -> re-walk sets D.
    assert_eq!(w.write(0, 0x40_0008).unwrap(), PhysAddr(0x80_0008));
    assert_ne!(w.get(pte_pa) & pte::D, 0);
    assert!(w.stale_uses().is_empty());
}
