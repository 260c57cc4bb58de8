//! Property: the fast path's shortcuts (the fetch and data memos, and the skipped
//! LRU refresh of a slot that is already most recently used) change nothing a
//! guest or a user can see. Two one-core worlds run the same random sequence of
//! fetches, reads, writes, generic translations, PTE writes (another frame, fewer
//! or more rights, not present), INVLPGs, evictions and privilege changes on a
//! tiny TLB: one the way the machine's bus does (memo shortcuts first,
//! `translate` on a miss), the other with the fast path off. After every
//! operation both must agree on the outcome, on every MMU event (fills,
//! evictions with their victims, invalidations, stale uses) and on the TLB
//! contents; and every access of the fast world must agree with the
//! architectural answer for memory as it is (`common::reference`) unless the
//! tracker reported a stale use, so a shortcut that survives a PTE write and its
//! INVLPG fails even where the model would be wrong the same way.

mod common;
use common::reference::{Expect, Kind, Who};
use common::*;
use mmu::*;
use proptest::prelude::*;

/// Eight 4 KiB pages over two page tables, more than the TLB holds.
const VAS: [u64; 8] = [
    0x40_0000, 0x40_1000, 0x40_2000, 0x40_3000, 0x40_4000, 0x60_0000, 0x60_1000, 0x60_2000,
];

#[derive(Clone, Copy, Debug)]
enum Op {
    Fetch(usize),
    Read(usize),
    Write(usize),
    /// A read through the generic `translate` (a slow-path hit touches elsewhere).
    Generic(usize),
    Invlpg(usize),
    Evict(usize),
    /// A tracked write of page i's PTE: value [`pte_choice`] j.
    SetPte(usize, usize),
    /// Switch between CPL 0 and CPL 3 (the memo key changes).
    User(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..VAS.len()).prop_map(Op::Fetch),
        3 => (0..VAS.len()).prop_map(Op::Read),
        2 => (0..VAS.len()).prop_map(Op::Write),
        1 => (0..VAS.len()).prop_map(Op::Generic),
        1 => (0..VAS.len()).prop_map(Op::Invlpg),
        1 => (0..VAS.len()).prop_map(Op::Evict),
        2 => (0..VAS.len(), 0..PTE_CHOICES).prop_map(|(i, j)| Op::SetPte(i, j)),
        1 => any::<bool>().prop_map(Op::User),
    ]
}

/// Frame of page i as first mapped.
fn frame(i: usize) -> u64 {
    0x100_0000 + i as u64 * 0x1000
}

const PTE_CHOICES: usize = 6;

/// The PTE values an `Op::SetPte` of page `i` may write: its own frame or
/// another page's, writable or read-only, user or supervisor, or not present.
fn pte_choice(i: usize, j: usize) -> u64 {
    let other = frame((i + 3) % VAS.len());
    match j {
        0 => frame(i) | pte::P | pte::RW | pte::US,
        1 => other | pte::P | pte::RW | pte::US,
        2 => frame(i) | pte::P | pte::US,
        3 => other | pte::P | pte::RW,
        4 => frame(i) | pte::P | pte::RW | pte::US | pte::NX,
        _ => frame(i) | pte::RW | pte::US,
    }
}

fn world(split: bool, fast_path: bool) -> World {
    let cfg = MmuConfig {
        tlb: TlbConfig {
            data: vec![TlbArrayConfig::unified(4, 2, Replacement::Lru)],
            instruction: split.then(|| vec![TlbArrayConfig::unified(2, 2, Replacement::Lru)]),
        },
        fast_path,
        ..MmuConfig::default()
    };
    let mut w = World::new(&cfg, 1, 0, efer::NXE);
    for (i, va) in VAS.iter().enumerate() {
        w.map(*va, frame(i), PageSize::Size4K, pte::P | pte::RW | pte::US);
    }
    w
}

/// How [`apply`]'s outcome starts when an access disagrees with the reference.
const WRONG: &str = "WRONG";

/// One operation; `shortcuts` routes fetches and data accesses the way
/// `MachineBus` does.
fn apply(w: &mut World, op: Op, cpl: &mut u8, shortcuts: bool) -> String {
    let ctx = w.ctx(0);
    let regs = w.regs[0];
    let access = |kind| Access::new(kind, *cpl);
    let (va, a) = match op {
        Op::Fetch(i) => (VAS[i], access(AccessKind::Execute)),
        Op::Read(i) | Op::Generic(i) => (VAS[i], access(AccessKind::Read)),
        Op::Write(i) => (VAS[i], access(AccessKind::Write)),
        Op::Invlpg(i) => {
            let va = VirtAddr(VAS[i]);
            let r = w.cores[0].invalidate(
                &mut w.mem,
                Invalidation::Invlpg { va },
                &regs,
                &mut w.tracker,
                ctx,
                &mut w.sink,
            );
            return format!("{r:?}");
        }
        Op::Evict(i) => {
            let va = VirtAddr(VAS[i]);
            let n = w.cores[0].evict(&mut w.tracker, &regs, va, ctx, &mut w.sink);
            return n.to_string();
        }
        Op::SetPte(i, j) => {
            let pa = w.entry(VAS[i], 1);
            w.set_entry(0, pa, pte_choice(i, j));
            return String::new();
        }
        Op::User(u) => {
            *cpl = if u { 3 } else { 0 };
            return String::new();
        }
    };
    let kind = match a.kind {
        AccessKind::Read => Kind::R,
        AccessKind::Write => Kind::W,
        AccessKind::Execute => Kind::X,
    };
    let who = if a.cpl == 3 {
        Who::User
    } else {
        Who::Supervisor
    };
    let expect = Expect::new(w, 0, va, kind, who);
    let before = w.sink.0.len();
    let got = access_once(w, op, va, a, shortcuts, ctx, regs);
    let reported = w.sink.0[before..]
        .iter()
        .any(|e| matches!(e, MmuEvent::StaleUse(_)));
    if let Err(e) = expect.check(va, &got, reported) {
        return format!("{WRONG} {op:?}: {e}");
    }
    format!("{got:?}")
}

/// The access itself: through the memo shortcuts first when `shortcuts`.
fn access_once(
    w: &mut World,
    op: Op,
    va: u64,
    a: Access,
    shortcuts: bool,
    ctx: AccessCtx,
    regs: PagingRegs,
) -> Result<PhysAddr, TranslateError> {
    if shortcuts && !matches!(op, Op::Generic(_)) {
        let gen = w.tracker.generation();
        let core = &mut w.cores[0];
        let hit = if a.kind == AccessKind::Execute {
            core.translate_fetch_fast(gen, &regs, VirtAddr(va), a.cpl == 3, false)
        } else {
            core.translate_data_fast(gen, &regs, VirtAddr(va), a)
        };
        if let Some(pa) = hit {
            return Ok(pa);
        }
    }
    w.cores[0].translate(
        &mut w.mem,
        &mut w.tracker,
        &regs,
        VirtAddr(va),
        a,
        ctx,
        &mut w.sink,
    )
}

fn same_everywhere(split: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut fast = world(split, true);
    let mut model = world(split, false);
    let (mut cpl_f, mut cpl_m) = (0u8, 0u8);
    for (n, op) in ops.iter().enumerate() {
        let rf = apply(&mut fast, *op, &mut cpl_f, true);
        let rm = apply(&mut model, *op, &mut cpl_m, false);
        for r in [&rf, &rm] {
            prop_assert!(!r.starts_with(WRONG), "op {}: {}", n, r);
        }
        prop_assert_eq!(&rf, &rm, "outcome of op {} {:?}", n, op);
        prop_assert_eq!(
            &fast.sink.0,
            &model.sink.0,
            "events after op {} {:?}",
            n,
            op
        );
        prop_assert_eq!(
            fast.cores[0].dump(&fast.tracker),
            model.cores[0].dump(&model.tracker),
            "TLB contents after op {} {:?}",
            n,
            op
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn shortcuts_match_the_model_with_split_tlbs(ops in prop::collection::vec(op(), 1..160)) {
        same_everywhere(true, &ops)?;
    }

    #[test]
    fn shortcuts_match_the_model_with_a_unified_tlb(ops in prop::collection::vec(op(), 1..160)) {
        same_everywhere(false, &ops)?;
    }
}

/// The case the MRU skip exists for, written out: a loop fetching from one page
/// and storing to another, then a third page in the same set. With split TLBs the
/// data set holds VAS[0] and VAS[2] and the new page evicts VAS[2] (the loop kept
/// VAS[0] recent). With one TLB for both, the fetched page VAS[4] competes in the
/// same set: the loop ends on a fetch, so VAS[4] must survive and VAS[0] go,
/// which holds only if the fetches after each store refreshed VAS[4] again.
#[test]
fn repeated_hits_on_the_most_recent_slot_keep_eviction_order() {
    for (split, kept, evicted) in [(true, VAS[0], VAS[2]), (false, VAS[4], VAS[0])] {
        let mut fast = world(split, true);
        let mut model = world(split, false);
        let mut ops = vec![Op::Read(0), Op::Read(2)];
        for _ in 0..5 {
            ops.extend([Op::Fetch(4), Op::Fetch(4), Op::Write(0), Op::Fetch(4)]);
        }
        // VAS[7] maps to set 0 of the 2-set data TLB, like VAS[0], VAS[2], VAS[4].
        ops.push(Op::Read(7));
        let (mut a, mut b) = (0, 0);
        for op in &ops {
            let r = apply(&mut fast, *op, &mut a, true);
            assert!(!r.starts_with(WRONG), "{r}");
            assert_eq!(r, apply(&mut model, *op, &mut b, false));
        }
        assert_eq!(fast.sink.0, model.sink.0);
        assert!(fast.has_tlb(0, kept), "split={split}: {kept:#x} kept");
        assert!(
            !fast.has_tlb(0, evicted),
            "split={split}: {evicted:#x} evicted"
        );
    }
}

/// Written out: a page used through the memo shortcuts, its PTE rewritten (to
/// another frame, read-only, execute-disabled). Without an INVLPG the next access
/// may still use the old translation, but then exactly as the model does, stale
/// use reported; after INVLPG it must see the new PTE, not the shortcut's old
/// translation.
#[test]
fn a_pte_write_and_its_invlpg_reach_the_shortcuts() {
    let moved = format!("{:?}", Ok::<PhysAddr, TranslateError>(PhysAddr(frame(3))));
    for split in [true, false] {
        for (access, i, choice) in [
            (Op::Read as fn(usize) -> Op, 0, 1),
            (Op::Write, 1, 2),
            (Op::Fetch, 2, 4),
        ] {
            for invlpg in [true, false] {
                let mut fast = world(split, true);
                let mut model = world(split, false);
                let mut ops = vec![access(i), access(i), Op::SetPte(i, choice)];
                if invlpg {
                    ops.push(Op::Invlpg(i));
                }
                ops.push(access(i));
                let (mut a, mut b) = (0, 0);
                let mut last = String::new();
                for op in ops {
                    last = apply(&mut fast, op, &mut a, true);
                    assert!(!last.starts_with(WRONG), "split={split}: {last}");
                    assert_eq!(last, apply(&mut model, op, &mut b, false), "{op:?}");
                    assert_eq!(fast.sink.0, model.sink.0, "events after {op:?}");
                }
                if !invlpg {
                    assert!(!fast.stale_uses().is_empty(), "split={split}: stale use");
                } else if choice == 1 {
                    assert_eq!(last, moved, "split={split}: read after the move");
                } else {
                    assert!(last.contains("PageFault"), "split={split}: {last}");
                }
            }
        }
    }
}
