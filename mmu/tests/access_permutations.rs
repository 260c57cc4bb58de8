//! Every combination of PDE/PTE flags, CR0.WP, CR4.SMEP, CR4.SMAP with RFLAGS.AC,
//! EFER.NXE and access (read/write/fetch × user/supervisor/implicit supervisor),
//! in the spirit of kvm-unit-tests x86/access.c. Each result (fault or not, error
//! code, A/D afterwards) is checked against `common::reference`, written directly
//! from SDM Vol. 3A 4.5-4.8 and sharing no code with the walker (prop_coherence.rs
//! checks against the same reference).

mod common;
use common::reference::{self, Env, Kind, Who, B_A, B_D, B_NX, B_P, B_PS, B_RW, B_US};
use common::*;
use mmu::*;

const VA: u64 = 0x40_0000;
const FRAME: u64 = 0x80_0000;
const RSVD_BIT: u64 = 1 << 51; // reserved with MAXPHYADDR 46

fn flag_combos(bits: &[u64]) -> Vec<u64> {
    (0..1u32 << bits.len())
        .map(|m| {
            bits.iter()
                .enumerate()
                .filter(|(i, _)| m & (1 << i) != 0)
                .fold(0, |a, (_, b)| a | b)
        })
        .collect()
}

fn run(nxe: bool) -> usize {
    let cfg = MmuConfig::default();
    let mut w = World::new(&cfg, 1, 0, 0);
    w.map(VA, FRAME, PageSize::Size4K, RW);
    let pde_pa = w.entry(VA, 2);
    let pte_pa = w.entry(VA, 1);
    let pt = w.get(pde_pa) & 0x000f_ffff_ffff_f000;
    let pte_sets = flag_combos(&[B_P, B_RW, B_US, B_A, B_D, B_NX, RSVD_BIT]);
    let pde_sets = flag_combos(&[B_P, B_RW, B_US, B_A, B_D, B_NX, B_PS, RSVD_BIT]);
    let mut pages = Vec::new();
    for &pde_f in &pde_sets {
        if pde_f & B_PS != 0 {
            pages.push((FRAME | pde_f, 0));
        } else if pde_f & B_D == 0 {
            // D is ignored in a non-leaf PDE: one value suffices.
            for &pte_f in &pte_sets {
                pages.push((pt | pde_f, FRAME | pte_f));
            }
        }
    }
    let mut n = 0;
    let mut sink = NullSink;
    let mut mmu = CoreMmu::new(0, &cfg);
    for env_bits in 0..16u32 {
        let env = Env {
            wp: env_bits & 1 != 0,
            smep: env_bits & 2 != 0,
            smap: env_bits & 4 != 0,
            nxe,
        };
        let ac = env_bits & 8 != 0;
        let mut regs = PagingRegs::long_mode(w.b.cr3(0), 0, 0);
        if !env.wp {
            regs.cr0 &= !cr0::WP;
        }
        if env.smep {
            regs.cr4 |= cr4::SMEP;
        }
        if env.smap {
            regs.cr4 |= cr4::SMAP;
        }
        if env.nxe {
            regs.efer |= efer::NXE;
        }
        for kind in [Kind::R, Kind::W, Kind::X] {
            for who in [Who::User, Who::Supervisor, Who::Implicit] {
                if who == Who::Implicit && kind == Kind::X {
                    continue; // there are no implicit instruction fetches
                }
                let access = Access {
                    kind: match kind {
                        Kind::R => AccessKind::Read,
                        Kind::W => AccessKind::Write,
                        Kind::X => AccessKind::Execute,
                    },
                    cpl: if who == Who::Supervisor { 0 } else { 3 },
                    implicit_supervisor: who == Who::Implicit,
                    rflags_ac: ac,
                };
                for &(pde, pte) in &pages {
                    w.mem.write_u64(pde_pa, pde).unwrap();
                    w.mem.write_u64(pte_pa, pte).unwrap();
                    let va = if pde & B_PS != 0 {
                        VA + 0x1234
                    } else {
                        VA + 0x234
                    };
                    let cr3 = regs.cr3;
                    let want = reference::access(&w.mem, cr3, va, env, kind, who, ac);
                    let ctx = AccessCtx::default();
                    let got = mmu.translate(
                        &mut w.mem,
                        &mut w.tracker,
                        &regs,
                        VirtAddr(va),
                        access,
                        ctx,
                        &mut sink,
                    );
                    let got = match got {
                        Ok(pa) => Ok(pa.raw()),
                        Err(TranslateError::PageFault(pf)) => {
                            assert_eq!(pf.addr, VirtAddr(va));
                            Err(pf.error_code)
                        }
                        Err(e) => panic!("unexpected {e:?}"),
                    };
                    let after = |pa: PhysAddr, before: u64| {
                        let new = want.updates.iter().find(|(a, _)| *a == pa.raw());
                        new.map_or(before, |(_, v)| *v)
                    };
                    let (want_pde, want_pte) = (after(pde_pa, pde), after(pte_pa, pte));
                    let want = want.result;
                    let ctxs = format!("pde {pde:#x} pte {pte:#x} {env:?} {kind:?} {who:?}");
                    assert_eq!(got, want, "result for {ctxs}");
                    assert_eq!(w.get(pde_pa), want_pde, "PDE after {ctxs}");
                    assert_eq!(w.get(pte_pa), want_pte, "PTE after {ctxs}");
                    if want.is_ok() {
                        // The same access again hits the TLB (or fast path): same answer.
                        let again = mmu.translate(
                            &mut w.mem,
                            &mut w.tracker,
                            &regs,
                            VirtAddr(va),
                            access,
                            ctx,
                            &mut sink,
                        );
                        assert_eq!(again.map(|p| p.raw()).ok(), want.ok(), "hit for {ctxs}");
                        let flush = Invalidation::MovCr0 {
                            old: regs.cr0,
                            new: regs.cr0 & !cr0::PG,
                        };
                        mmu.invalidate(&mut w.mem, flush, &regs, &mut w.tracker, ctx, &mut sink);
                    }
                    n += 1;
                }
            }
        }
    }
    n
}

#[test]
fn permutations_nxe_off() {
    assert!(run(false) > 100_000);
}

#[test]
fn permutations_nxe_on() {
    assert!(run(true) > 100_000);
}
