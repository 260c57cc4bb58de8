//! Property: the fast path's shortcuts (the fetch and data memos, and the skipped
//! LRU refresh of a slot that is already most recently used) change nothing a
//! guest or a user can see. Two one-core worlds run the same random sequence of
//! fetches, reads, writes, generic translations, INVLPGs, evictions and
//! privilege changes on a tiny TLB: one the way the machine's bus does (memo
//! shortcuts first, `translate` on a miss), the other with the fast path off.
//! After every operation both must agree on the outcome, on every MMU event
//! (fills, evictions with their victims, invalidations) and on the TLB contents.

mod common;
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
        1 => any::<bool>().prop_map(Op::User),
    ]
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
        w.map(
            *va,
            0x100_0000 + i as u64 * 0x1000,
            PageSize::Size4K,
            pte::P | pte::RW | pte::US,
        );
    }
    w
}

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
        Op::User(u) => {
            *cpl = if u { 3 } else { 0 };
            return String::new();
        }
    };
    if shortcuts && !matches!(op, Op::Generic(_)) {
        let gen = w.tracker.generation();
        let core = &mut w.cores[0];
        let hit = if a.kind == AccessKind::Execute {
            core.translate_fetch_fast(gen, &regs, VirtAddr(va), a.cpl == 3, false)
        } else {
            core.translate_data_fast(gen, &regs, VirtAddr(va), a)
        };
        if let Some(pa) = hit {
            return format!("{:?}", Ok::<PhysAddr, TranslateError>(pa));
        }
    }
    let r = w.cores[0].translate(
        &mut w.mem,
        &mut w.tracker,
        &regs,
        VirtAddr(va),
        a,
        ctx,
        &mut w.sink,
    );
    format!("{r:?}")
}

fn same_everywhere(split: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut fast = world(split, true);
    let mut model = world(split, false);
    let (mut cpl_f, mut cpl_m) = (0u8, 0u8);
    for (n, op) in ops.iter().enumerate() {
        let rf = apply(&mut fast, *op, &mut cpl_f, true);
        let rm = apply(&mut model, *op, &mut cpl_m, false);
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
            assert_eq!(
                apply(&mut fast, *op, &mut a, true),
                apply(&mut model, *op, &mut b, false)
            );
        }
        assert_eq!(fast.sink.0, model.sink.0);
        assert!(fast.has_tlb(0, kept), "split={split}: {kept:#x} kept");
        assert!(
            !fast.has_tlb(0, evicted),
            "split={split}: {evicted:#x} evicted"
        );
    }
}
