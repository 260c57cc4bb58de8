//! Every combination of PDE/PTE flags, CR0.WP, CR4.SMEP, CR4.SMAP with RFLAGS.AC,
//! EFER.NXE and access (read/write/fetch × user/supervisor/implicit supervisor),
//! in the spirit of kvm-unit-tests x86/access.c. Each result (fault or not, error
//! code, A/D afterwards) is checked against `reference`, written here directly from
//! SDM Vol. 3A 4.5-4.8 and sharing no code with the walker.

mod common;
use common::*;
use mmu::*;

const VA: u64 = 0x40_0000;
const FRAME: u64 = 0x80_0000;
const RSVD_BIT: u64 = 1 << 51; // reserved with MAXPHYADDR 46

// Bits of the entries as the SDM tables number them (not taken from the crate).
const B_P: u64 = 1;
const B_RW: u64 = 2;
const B_US: u64 = 4;
const B_A: u64 = 32;
const B_D: u64 = 64;
const B_PS: u64 = 128;
const B_NX: u64 = 1 << 63;

#[derive(Clone, Copy, Debug)]
struct Env {
    wp: bool,
    smep: bool,
    smap: bool,
    ac: bool,
    nxe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    R,
    W,
    X,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    User,
    Supervisor,
    Implicit,
}

/// The expected outcome: Ok(physical address) or Err(error code), and the PDE and
/// PTE values afterwards.
fn reference(pde: u64, pte: u64, env: Env, kind: Kind, who: Who) -> (Result<u64, u32>, u64, u64) {
    // Error-code bits that describe the access (SDM 4.7).
    let mut ec_access = 0u32;
    if kind == Kind::W {
        ec_access |= 2;
    }
    if who == Who::User {
        ec_access |= 4;
    }
    if kind == Kind::X && (env.nxe || env.smep) {
        ec_access |= 16;
    }
    let rsvd = |e: u64| e & RSVD_BIT != 0 || (!env.nxe && e & B_NX != 0);
    // The walk (SDM 4.5): PDE first.
    if pde & B_P == 0 {
        return (Err(ec_access), pde, pte);
    }
    if rsvd(pde) {
        return (Err(ec_access | 1 | 8), pde, pte);
    }
    let large = pde & B_PS != 0;
    if !large {
        if pte & B_P == 0 {
            return (Err(ec_access), pde, pte);
        }
        if rsvd(pte) {
            return (Err(ec_access | 1 | 8), pde, pte);
        }
    }
    let leaf = if large { pde } else { pde & pte };
    let writable = leaf & B_RW != 0;
    let user_page = leaf & B_US != 0;
    let nx = env.nxe && (pde | if large { 0 } else { pte }) & B_NX != 0;
    // SDM 4.6.1, as a list of reasons to refuse.
    let refuse = match (who, kind) {
        (Who::User, Kind::R) => !user_page,
        (Who::User, Kind::W) => !user_page || !writable,
        (Who::User, Kind::X) => !user_page || nx,
        (_, Kind::X) => nx || (user_page && env.smep),
        (w, k) => {
            let smap_blocks = user_page && env.smap && (w == Who::Implicit || !env.ac);
            smap_blocks || (k == Kind::W && env.wp && !writable)
        }
    };
    if refuse {
        return (Err(ec_access | 1), pde, pte);
    }
    // SDM 4.8: A on each entry used, D on the leaf for a write.
    let d = if kind == Kind::W { B_D } else { 0 };
    let (pde2, pte2) = if large {
        (pde | B_A | d, pte)
    } else {
        (pde | B_A, pte | B_A | d)
    };
    let pa = if large { FRAME + 0x1234 } else { FRAME + 0x234 };
    (Ok(pa), pde2, pte2)
}

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
            ac: env_bits & 8 != 0,
            nxe,
        };
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
                    rflags_ac: env.ac,
                };
                for &(pde, pte) in &pages {
                    w.mem.write_u64(pde_pa, pde).unwrap();
                    w.mem.write_u64(pte_pa, pte).unwrap();
                    let va = if pde & B_PS != 0 {
                        VA + 0x1234
                    } else {
                        VA + 0x234
                    };
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
                    let (want, want_pde, want_pte) = reference(pde, pte, env, kind, who);
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
