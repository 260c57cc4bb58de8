//! The run oracle: staleness judged against the root loaded now (PCID reuse), the
//! per-write `Completed` rule and the explanations each rule gives, freed frames
//! named in the verdict, and dead cores failing a run unless expected.

mod features_support;

use emu::scenario::schema::{Coherence, Expect, StopKind};
use emu::scenario::{load, run, RunReport, Scenario};
use features_support::{dir, plan, scenario};

fn go(s: &Scenario) -> RunReport {
    run(&plan(s), false)
}

/// Replaces the one occurrence of `from` in the scenario's inline assembly.
fn edit(s: &mut Scenario, from: &str, to: &str) {
    let asm = s.code[0].asm.as_mut().expect("inline assembly");
    assert_eq!(asm.matches(from).count(), 1, "`{from}`");
    *asm = asm.replace(from, to);
}

/// Two spaces sharing PCID 1, switched with bit 63: the read through the other
/// space's TLB entry and the walk from its PDE-cache entry are stale uses judged
/// against the root loaded now, and say which roots.
#[test]
fn pcid_reuse_is_flagged_with_both_roots() {
    let s = scenario("pcid-reuse.ron");
    let r = go(&s);
    assert!(r.passed(true), "{}", r.to_text(true));
    assert_eq!(r.stale_uses.len(), 2);
    for u in &r.stale_uses {
        let d = &u.detail;
        let under = d.used_under_root.expect("used under another root");
        assert_ne!(under, d.filled.root);
        assert!(d.made_stale_by.is_none());
        let c = d.root_change.expect("the CR3 load is named");
        assert_eq!((c.from, c.to), (d.filled.root, under));
        assert!(d.to_string().contains("used under root"));
    }
    assert!(matches!(
        r.stale_uses[1].detail.cache,
        mmu::CacheKind::Psc { level: 2 }
    ));
    // Bit 63 clear: the load flushes PCID 1, nothing is stale, and the reads see
    // the second space's frames.
    let mut s = s;
    edit(&mut s, "btsq $63, %rbx", "btrq $63, %rbx");
    s.expect = vec![Expect::Violations(0)];
    let r = go(&s);
    assert!(r.stale_uses.is_empty(), "{}", r.to_text(true));
}

/// `Completed`: a use is a violation only once the writer of the stale entry has
/// reached the label since its write. The same run under `AfterLabel` counts the
/// use made while the other core's shootdown was in progress too.
#[test]
fn completed_rule_is_per_write_and_per_core() {
    let s = scenario("coherence-completed.ron");
    let r = go(&s);
    assert!(r.passed(true), "{}", r.to_text(true));
    let verdicts: Vec<(u32, bool)> = r
        .stale_uses
        .iter()
        .map(|u| (u.detail.ctx.core, u.violation))
        .collect();
    assert_eq!(verdicts, vec![(1, true), (0, false), (0, true)]);
    let why: Vec<&str> = r
        .stale_uses
        .iter()
        .map(|u| u.why.as_deref().unwrap_or(""))
        .collect();
    assert!(why[0].contains("core 0 made the entry stale") && why[0].contains("reached `done`"));
    assert!(why[1].contains("in progress"), "{}", why[1]);
    assert!(why[2].contains("core 1") && why[2].contains("had returned"));

    let mut s = s;
    s.coherence = Coherence::AfterLabel("done".into());
    let r = go(&s);
    assert_eq!(r.violations, 3, "{}", r.to_text(true));
}

/// A freed-frame violation names the frame, the label, the core that reached it
/// and the step; the allowed uses say why they are allowed.
#[test]
fn freed_frame_verdicts_name_frame_label_core_and_step() {
    let r = go(&scenario("coherence-freed-frames.ron"));
    let why: Vec<(bool, String)> = r
        .stale_uses
        .iter()
        .map(|u| (u.violation, u.why.clone().unwrap_or_default()))
        .collect();
    assert_eq!(why.len(), 3);
    assert!(!why[0].0 && why[0].1.contains("no core has reached `freed`"));
    assert!(why[1].0);
    assert_eq!(
        why[1].1,
        "reaches frame 0x200000, freed at `freed`: core 0 reached it at step 6"
    );
    assert!(!why[2].0 && why[2].1.contains("reaches none of the frames"));
}

/// A core stopped by an unhandled #PF fails the run unless an expectation says it
/// should: `Exception` with its vector, or `Stopped` with the right reason.
#[test]
fn a_dead_core_fails_the_run_unless_expected() {
    let mut s = scenario("stale-kinds.ron");
    // Touch an unmapped page first: #PF with no IDT stops the core.
    edit(&mut s, "start:\n", "start:\n    movq 0x7000000, %rax\n");
    s.expect = vec![];
    let r = go(&s);
    assert_eq!(r.stopped.len(), 1);
    assert_eq!(r.stopped[0].core, 0);
    assert!(!r.stopped[0].expected);
    assert!(!r.passed(false), "{}", r.to_text(false));
    assert!(r.to_text(false).contains("unexpected: core 0 stopped"));
    for (e, pass) in [
        (
            Expect::Exception {
                core: 0,
                vector: 14,
            },
            true,
        ),
        (
            Expect::Exception {
                core: 0,
                vector: 13,
            },
            false,
        ),
        (
            Expect::Stopped {
                core: 0,
                reason: Some(StopKind::Exception),
            },
            true,
        ),
        (
            Expect::Stopped {
                core: 0,
                reason: None,
            },
            true,
        ),
        (
            Expect::Stopped {
                core: 0,
                reason: Some(StopKind::TripleFault),
            },
            false,
        ),
    ] {
        s.expect = vec![e.clone()];
        let r = go(&s);
        assert_eq!(r.passed(false), pass, "{e:?}\n{}", r.to_text(false));
    }
}

/// An unsupported instruction ends the schedule unless a `Stopped` expectation
/// with reason `Unsupported` accounts for it; then the run passes.
#[test]
fn an_unsupported_instruction_can_be_expected() {
    let mut s = scenario("stale-kinds.ron");
    // XGETBV is valid x86 that tlbemu does not implement.
    edit(&mut s, "start:\n", "start:\n    .byte 0x0f, 0x01, 0xd0\n");
    s.expect = vec![];
    let r = go(&s);
    assert!(!r.passed(false), "{}", r.to_text(false));
    s.expect = vec![Expect::Stopped {
        core: 0,
        reason: Some(StopKind::Unsupported),
    }];
    let r = go(&s);
    assert!(r.passed(false), "{}", r.to_text(false));
}

/// `Exception` also matches a delivered interrupt's vector (the IPI of the
/// shootdown example arrives on core 1 as vector 0xf0).
#[test]
fn exception_expectation_matches_delivered_interrupts() {
    let mut s = scenario("shootdown-ipi.ron");
    s.expect = vec![Expect::Exception {
        core: 1,
        vector: 0xf0,
    }];
    let r = go(&s);
    assert!(r.passed(false), "{}", r.to_text(false));
    s.expect = vec![Expect::Exception {
        core: 0,
        vector: 0xf0,
    }];
    assert!(!go(&s).passed(false));
}

/// `NoStaleEntries`: stale entries nobody uses are still found. At a completion
/// point it reports the entries the arriving core's own writes made stale, with
/// which entry, on which core, and since when; without `at`, what is left at the
/// end. A correct shootdown leaves none.
#[test]
fn no_stale_entries_finds_unused_stale_entries() {
    let mut s = scenario("coherence-completed.ron");
    s.expect = vec![
        Expect::NoStaleEntries {
            core: None,
            at: Some("done".into()),
        },
        Expect::NoStaleEntries {
            core: Some(1),
            at: Some("done".into()),
        },
        Expect::NoStaleEntries {
            core: None,
            at: None,
        },
    ];
    let r = go(&s);
    let e = &r.expectations;
    assert!(!e[0].ok);
    // Core 0 reached `done` (step 8) while core 1 still cached X, stale since
    // core 0's write at step 6; core 1 reached it (step 17) while core 0 cached Y.
    assert!(
        e[0].actual.contains("core 1 TLB va 0x400000")
            && e[0].actual.contains("stale since step 6: core 0's write")
            && e[0].actual.contains("when core 0 reached it at step 8"),
        "{}",
        e[0].actual
    );
    assert!(
        e[0].actual.contains("core 0 TLB va 0x401000")
            && e[0].actual.contains("when core 1 reached it at step 15"),
        "{}",
        e[0].actual
    );
    assert!(!e[1].ok);
    assert!(!e[1].actual.contains("core 0 TLB"), "{}", e[1].actual);
    assert!(!e[2].ok, "both stale entries are still cached at the end");

    let mut s = scenario("shootdown-ipi.ron");
    s.expect = vec![
        Expect::NoStaleEntries {
            core: None,
            at: Some("done".into()),
        },
        Expect::NoStaleEntries {
            core: None,
            at: None,
        },
    ];
    let r = go(&s);
    assert!(r.passed(false), "{}", r.to_text(false));
}

/// `CompletedLatent`: `Completed`, plus every stale entry the arriving core's
/// writes left cached at the label is a violation, used or not; restricted to a
/// set of cores when asked.
#[test]
fn completed_latent_counts_unused_stale_entries_at_completion() {
    let mut s = scenario("coherence-completed.ron");
    s.expect = vec![];
    s.coherence = Coherence::CompletedLatent {
        label: "done".into(),
        cores: None,
    };
    let r = go(&s);
    // The two uses `Completed` counts, plus core 1's X entry when core 0 reached
    // `done` and core 0's Y entry when core 1 did.
    assert_eq!(r.violations, 4, "{}", r.to_text(true));
    assert_eq!(r.latent_violations.len(), 2);
    assert!(r.latent_violations[0].starts_with("core 1 TLB va 0x400000"));
    assert!(r.latent_violations[0].contains("when core 0 reached the label at step 8"));
    assert!(r.latent_violations[1].starts_with("core 0 TLB va 0x401000"));
    s.coherence = Coherence::CompletedLatent {
        label: "done".into(),
        cores: Some(vec![1]),
    };
    let r = go(&s);
    assert_eq!(r.latent_violations.len(), 1, "{}", r.to_text(true));
    assert_eq!(r.violations, 3);
    // The correct shootdown leaves nothing behind.
    let mut s = scenario("shootdown-ipi.ron");
    s.coherence = Coherence::CompletedLatent {
        label: "done".into(),
        cores: None,
    };
    let r = go(&s);
    assert!(r.passed(false), "{}", r.to_text(false));
}

/// Uses of one stale entry collapse per instruction: each iteration of a `rep
/// movsb` is a step of its own, but the instruction's reads through the stale
/// entry are one record, with a count; one instruction run twice by a loop is
/// two records.
#[test]
fn stale_uses_collapse_per_instruction_not_per_rip() {
    let p = dir().join("../missing-invlpg.ron");
    let mut s = load(&p).unwrap_or_else(|d| panic!("{d:?}")).0;
    edit(
        &mut s,
        "changed:\n    movq 0x400000, %rdx\n",
        "changed:\n    movl $2, %r8d\n1:  movq 0x400000, %rdx\n    decl %r8d\n    jnz 1b\n    \
         movl $0x400000, %esi\n    movabsq $0xffffffff80004000, %rdi\n    movl $8, %ecx\n    rep movsb\n",
    );
    s.expect.clear();
    let r = go(&s);
    let got: Vec<(Option<mmu::AccessKind>, u64)> = r
        .stale_uses
        .iter()
        .map(|u| (u.detail.access.map(|a| a.kind), u.count))
        .collect();
    use mmu::AccessKind::Read;
    assert_eq!(
        got,
        vec![(Some(Read), 1), (Some(Read), 1), (Some(Read), 8)],
        "{}",
        r.to_text(true)
    );
    assert_eq!(r.violations, 3);
}
