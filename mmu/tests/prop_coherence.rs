//! Property: random page-table edits, accesses and invalidations on several cores.
//! Every access agrees with the architectural answer for memory as it is now
//! (`common::reference`, written from the SDM and sharing no code with the
//! walker) unless the tracker reported a stale use for it. A page fault where
//! memory allows the access is accepted only when the core held a cached entry
//! for that address that disagrees with memory (SDM Vol. 3A 4.10.4.3: software
//! that increases rights without invalidating may see a spurious #PF); any other
//! fault must carry the reference's error code. Every reported stale use really
//! differs from a fresh walk. The committed regression seeds
//! (prop_coherence.proptest-regressions) run before the random cases.

mod common;
use common::reference::{Expect, Kind, Who};
use common::*;
use mmu::*;
use proptest::prelude::*;

const NCORES: u32 = 3;
/// Pages: 4 in region 0 (2 MiB at 0x40_0000), 2 in region 1 (0x60_0000),
/// 2 under another PML4E.
const VAS: [u64; 8] = [
    0x40_0000,
    0x40_1000,
    0x40_2000,
    0x40_5000,
    0x60_0000,
    0x60_3000,
    0x80_0000_0000,
    0x80_0000_1000,
];
const FRAMES: [u64; 4] = [0x100_0000, 0x101_0000, 0x102_0000, 0x103_0000];

#[derive(Clone, Debug)]
enum Op {
    Access {
        core: u32,
        va: usize,
        kind: u8,
        user: bool,
    },
    SetPte {
        core: u32,
        va: usize,
        frame: usize,
        flags: u8,
    },
    /// Region 0's PDE: 0 original PT, 1 alternate PT, 2 not present; plus rights.
    SetPde {
        core: u32,
        target: u8,
        flags: u8,
    },
    Invlpg {
        core: u32,
        va: usize,
    },
    ReloadCr3 {
        core: u32,
    },
    InvpcidAll {
        core: u32,
    },
    Evict {
        core: u32,
        va: usize,
    },
    SpecFill {
        core: u32,
        va: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let core = 0..NCORES;
    prop_oneof![
        6 => (core.clone(), 0..VAS.len(), 0u8..3, any::<bool>())
            .prop_map(|(core, va, kind, user)| Op::Access { core, va, kind, user }),
        3 => (core.clone(), 0..VAS.len(), 0..FRAMES.len(), 0u8..32)
            .prop_map(|(core, va, frame, flags)| Op::SetPte { core, va, frame, flags }),
        1 => (core.clone(), 0u8..3, 0u8..4)
            .prop_map(|(core, target, flags)| Op::SetPde { core, target, flags }),
        2 => (core.clone(), 0..VAS.len()).prop_map(|(core, va)| Op::Invlpg { core, va }),
        1 => core.clone().prop_map(|core| Op::ReloadCr3 { core }),
        1 => core.clone().prop_map(|core| Op::InvpcidAll { core }),
        1 => (core.clone(), 0..VAS.len()).prop_map(|(core, va)| Op::Evict { core, va }),
        1 => (core, 0..VAS.len()).prop_map(|(core, va)| Op::SpecFill { core, va }),
    ]
}

fn pte_value(frame: u64, flags: u8) -> u64 {
    let mut v = frame;
    for (bit, f) in [
        (0, pte::P),
        (1, pte::RW),
        (2, pte::US),
        (3, pte::NX),
        (4, pte::G),
    ] {
        if flags & (1 << bit) != 0 {
            v |= f;
        }
    }
    v
}

/// The oracle's staleness definition, restated independently for checking.
fn differs(cached: &WalkResult, fresh: &WalkResult, smep_smap: bool) -> bool {
    match (cached, fresh) {
        (
            WalkResult::Leaf {
                frame,
                size,
                rights,
                ..
            },
            WalkResult::Leaf {
                frame: f,
                size: s,
                rights: r,
                ..
            },
        ) => {
            frame != f
                || size != s
                || (rights.write() && !r.write())
                || (rights.user() && !r.user())
                || (rights.exec() && !r.exec())
                || (smep_smap && !rights.user() && r.user())
        }
        (
            WalkResult::Table {
                level,
                next,
                rights,
            },
            WalkResult::Table {
                level: l,
                next: n,
                rights: r,
            },
        ) => {
            level != l
                || next != n
                || (rights.write() && !r.write())
                || (rights.user() && !r.user())
                || (rights.exec() && !r.exec())
                || (smep_smap && !rights.user() && r.user())
        }
        _ => true,
    }
}

fn run(ops: Vec<Op>, pcide: bool, smap: bool, tiny_tlb: bool) -> Result<(), TestCaseError> {
    let mut cfg = MmuConfig::default();
    if tiny_tlb {
        cfg.tlb = TlbConfig {
            data: vec![TlbArrayConfig::unified(4, 2, Replacement::Lru)],
            instruction: None,
        };
        cfg.psc = PscConfig {
            pml4e: 1,
            pdpte: 1,
            pde: 2,
        };
    }
    let mut cr4_bits = cr4::PGE;
    if pcide {
        cr4_bits |= cr4::PCIDE;
    }
    if smap {
        cr4_bits |= cr4::SMAP | cr4::SMEP;
    }
    let mut w = World::new(&cfg, NCORES, cr4_bits, efer::NXE);
    for (i, va) in VAS.iter().enumerate() {
        w.map(*va, FRAMES[i % 4], PageSize::Size4K, URW);
    }
    let pcid = if pcide { 1 } else { 0 };
    for r in w.regs.iter_mut() {
        r.cr3 = w.b.cr3(pcid);
    }
    let ptes: Vec<PhysAddr> = VAS.iter().map(|va| w.entry(*va, 1)).collect();
    let pde0 = w.entry(VAS[0], 2);
    let pt0 = w.get(pde0) & 0x000f_ffff_ffff_f000;
    // An alternate page table for region 0 mapping every slot to FRAMES[3].
    let alt = w.b.alloc_table(&mut w.mem).unwrap();
    for i in 0..8u64 {
        w.mem.write_u64(alt.add(i * 8), FRAMES[3] | URW).unwrap();
    }
    for op in ops {
        match op {
            Op::Access {
                core,
                va,
                kind,
                user,
            } => {
                let access = Access {
                    kind: [AccessKind::Read, AccessKind::Write, AccessKind::Execute][kind as usize],
                    cpl: if user { 3 } else { 0 },
                    implicit_supervisor: false,
                    rflags_ac: false,
                };
                let va = VAS[va] + 0x18;
                // The architectural answer and the core's caches, before the access.
                let rkind = [Kind::R, Kind::W, Kind::X][kind as usize];
                let who = if user { Who::User } else { Who::Supervisor };
                let expect = Expect::new(&w, core, va, rkind, who);
                let before = w.sink.0.len();
                let got = w.access(core, va, access);
                let reported = w.sink.0[before..]
                    .iter()
                    .any(|e| matches!(e, MmuEvent::StaleUse(_)));
                if let Err(e) = expect.check(va, &got, reported) {
                    prop_assert!(false, "core {core} {access:?}: {e}");
                }
            }
            Op::SetPte {
                core,
                va,
                frame,
                flags,
            } => {
                w.set_entry(core, ptes[va], pte_value(FRAMES[frame], flags));
            }
            Op::SetPde {
                core,
                target,
                flags,
            } => {
                let mut v = match target {
                    0 => pt0 | pte::P,
                    1 => alt.raw() | pte::P,
                    _ => 0,
                };
                if v != 0 {
                    v |= if flags & 1 != 0 { pte::RW } else { 0 };
                    v |= if flags & 2 != 0 { pte::US } else { 0 };
                }
                w.set_entry(core, pde0, v);
            }
            Op::Invlpg { core, va } => {
                w.inv(
                    core,
                    Invalidation::Invlpg {
                        va: VirtAddr(VAS[va]),
                    },
                );
            }
            Op::ReloadCr3 { core } => {
                let src = w.regs[core as usize].cr3;
                w.inv(core, Invalidation::MovCr3 { src });
            }
            Op::InvpcidAll { core } => {
                w.inv(
                    core,
                    Invalidation::Invpcid {
                        kind: InvpcidKind::AllIncludingGlobal,
                        pcid: 0,
                        va: VirtAddr(0),
                    },
                );
            }
            Op::Evict { core, va } => {
                let ctx = w.ctx(core);
                let regs = w.regs[core as usize];
                w.cores[core as usize].evict(
                    &mut w.tracker,
                    &regs,
                    VirtAddr(VAS[va]),
                    ctx,
                    &mut w.sink,
                );
            }
            Op::SpecFill { core, va } => {
                let ctx = w.ctx(core);
                let regs = w.regs[core as usize];
                w.cores[core as usize]
                    .speculative_fill(
                        &mut w.mem,
                        &mut w.tracker,
                        &regs,
                        VirtAddr(VAS[va]),
                        false,
                        ctx,
                        &mut w.sink,
                    )
                    .unwrap();
            }
        }
    }
    // Every reported stale use really differs from a fresh walk made at that time:
    // the event carries that walk; re-check its claim and its consistency.
    for s in w.sink.stale_uses() {
        prop_assert!(
            differs(&s.cached, &s.fresh, smap),
            "reported stale use does not differ: {s}"
        );
        prop_assert!(s.made_stale_by.is_some_and(|w| w.old != w.new));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        // Named, not left to the default: the seeds sit beside this file.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn accesses_agree_with_fresh_walks_unless_reported(
        ops in proptest::collection::vec(op(), 1..80),
        pcide in any::<bool>(),
        smap in any::<bool>(),
        tiny in any::<bool>(),
    ) {
        run(ops, pcide, smap, tiny)?;
    }
}

/// The committed regression seed's case as it shrank (the seed itself replays
/// through the strategy, which may since have changed what it generates): a
/// write to a page table that a not-present PDE no longer references.
#[test]
fn write_to_an_unreferenced_page_table() {
    let ops = vec![
        Op::SetPde {
            core: 0,
            target: 2,
            flags: 0,
        },
        Op::SetPte {
            core: 0,
            va: 0,
            frame: 0,
            flags: 0,
        },
        Op::Access {
            core: 0,
            va: 0,
            kind: 0,
            user: false,
        },
    ];
    for (pcide, smap, tiny) in [(false, false, false), (true, true, true)] {
        run(ops.clone(), pcide, smap, tiny).unwrap();
    }
}
