//! The real-bug library, part A: DragonFly BSD 2017 (swtch.s pm_active race)
//! and FreeBSD D16618 (stale curpmap; plus the PCID generation reset).
//!
//! - Every scenario file passes as written (the buggy ones expect their
//!   violation, the fixed ones expect none).
//! - Schedule sweeps: the same code under `RoundRobin` with quantum 1..=8 and
//!   each core started first. The fixed code never uses a stale translation;
//!   for the buggy code the tests count (and print) how many sweeps expose it.
//! - Non-vacuity: removing one step from the FIXED code (the handler's INVLPG,
//!   the pm_active set, the curpmap store, the local INVLPG, the PCID
//!   generation reset) brings a violation back under a scheduled interleaving;
//!   removing an IPI makes the shootdown hang instead (both protocols wait for
//!   every target's acknowledgement).
//!
//! Run with `cargo test -p emu --test bug_library_a -- --nocapture` to see the
//! sweep counts.

use emu::scenario::schema::{Coherence, Expect, Sched, Until, Value};
use emu::scenario::{build, load, run, validate, Ending, Plan, RunReport, Scenario};
use std::path::PathBuf;
use std::sync::Arc;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn scenario(name: &str) -> Scenario {
    let p = dir().join(name);
    load(&p)
        .unwrap_or_else(|d| panic!("{}: {d:?}", p.display()))
        .0
}

fn go(s: &Scenario) -> RunReport {
    let b = build(s, &dir()).unwrap_or_else(|p| panic!("{}: build: {p:?}", s.name));
    validate(s, &b).unwrap_or_else(|p| panic!("{}: validate: {p:?}", s.name));
    let plan = Plan::compile(s, b).unwrap_or_else(|p| panic!("{}: compile: {p:?}", s.name));
    run(&Arc::new(plan), false)
}

/// Replaces `from` (which must occur exactly once) by `to` in the assembly
/// file of the code section loaded from a file ending in `file_suffix`; the
/// section becomes inline `asm`.
fn edit_asm(s: &mut Scenario, file_suffix: &str, from: &str, to: &str) {
    let sec = s
        .code
        .iter_mut()
        .find(|c| c.file.as_deref().is_some_and(|f| f.ends_with(file_suffix)))
        .unwrap_or_else(|| panic!("no code section from `{file_suffix}`"));
    let path = dir().join(sec.file.as_ref().unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur exactly once in {}",
        path.display()
    );
    sec.asm = Some(text.replace(from, to));
    sec.file = None;
}

fn run_until(core: usize, label: &str) -> Sched {
    Sched::Run {
        core,
        until: Until::Label(label.into()),
    }
}

fn run_halt(core: usize) -> Sched {
    Sched::Run {
        core,
        until: Until::Halt,
    }
}

/// Violations on `core` (any core when `None`).
fn violations_on(r: &RunReport, core: Option<u32>) -> usize {
    r.stale_uses
        .iter()
        .filter(|u| u.violation && core.is_none_or(|c| u.detail.ctx.core == c))
        .count()
}

/// The run completes with no violation (the unmodified fixed code on a schedule).
fn assert_clean(s: &Scenario) {
    let r = go(s);
    assert_eq!(r.ending, Ending::Completed, "{:?}", r.ending);
    assert_eq!(r.violations, 0, "the unmodified fixed code is clean here");
}

/// The run completes with exactly one violation, on `core`.
fn assert_one_violation_on(s: &Scenario, core: u32) {
    let r = go(s);
    assert_eq!(r.ending, Ending::Completed);
    assert_eq!(violations_on(&r, Some(core)), 1, "{:#?}", r.stale_uses);
    assert_eq!(r.violations, 1);
}

fn expect_pass(name: &str) {
    let s = scenario(name);
    let r = go(&s);
    let expects = s.expect.iter().any(|e| {
        matches!(e, Expect::Violations(n) if *n > 0) || matches!(e, Expect::StaleUse { .. })
    });
    assert_eq!(r.ending, Ending::Completed, "{name}: {:?}", r.ending);
    for e in &r.expectations {
        assert!(
            e.ok,
            "{name}: expect[{}] {} (found {})",
            e.index, e.what, e.actual
        );
    }
    assert!(r.passed(expects), "{name} did not pass");
}

#[test]
fn every_scenario_file_passes() {
    for name in [
        "dragonfly-2017-swtch-pmactive-buggy.ron",
        "dragonfly-2017-swtch-pmactive-fixed.ron",
        "dragonfly-2017-local-buggy.ron",
        "dragonfly-2017-local-fixed.ron",
        "freebsd-d16618-curpmap-buggy.ron",
        "freebsd-d16618-curpmap-fixed.ron",
        "freebsd-d16618-pcid-nogen-buggy.ron",
        "freebsd-d16618-pcid-nogen-fixed.ron",
    ] {
        expect_pass(name);
    }
}

/// One sweep's outcome.
struct Sweep {
    /// Which schedule: `q3 first 1` (round-robin) or `a+20 w16` (preemption).
    what: String,
    /// A round-robin sweep (not a preemption sweep).
    round_robin: bool,
    stale: usize,
    violations: usize,
    ending: Ending,
    /// Core 0's %rax at the end: the value its last thread read from the page.
    rax0: u64,
    /// Every core ended halted.
    all_halted: bool,
    /// Each core's final label (for a halted core, its HLT's location).
    labels: Vec<Option<String>>,
    /// The expectations kept for the sweep (`keep`) all held.
    kept_ok: bool,
}

/// How many instructions core 0 runs alone before a preemption sweep hands
/// the machine to the others (0..=PREEMPT_MAX).
const PREEMPT_MAX: u64 = 48;
/// In a preemption sweep, each other core runs this many instructions per
/// instruction of core 0.
const PREEMPT_WEIGHT: usize = 16;

/// The scenario's code and machine under two families of schedules, each
/// running until the shootdown completes (`done`, the label of the file's
/// coherence rule) and then every core on to its halt, with `keep` as the
/// only expectations (the coherence rule stays the file's):
///
/// - round-robin: `RoundRobin` with quantum 1..=8 and each core first (the
///   others in ascending order after it);
/// - preemption: core 0 runs alone for n = 0..=PREEMPT_MAX instructions, then
///   a round-robin in which every other core runs PREEMPT_WEIGHT instructions
///   per instruction of core 0. This is the shape of the races here: core 0
///   is in a short window of its context switch while the others run a whole
///   shootdown.
fn sweeps(name: &str, keep: &[Expect]) -> Vec<Sweep> {
    let base = scenario(name);
    let n = base.cores.len();
    let done = match &base.coherence {
        Coherence::AfterLabel(l) => l.clone(),
        c => panic!("{name}: sweeps expect an AfterLabel rule, found {c:?}"),
    };
    let mut schedules = Vec::new();
    for quantum in 1..=8u64 {
        for first in 0..n {
            let cores: Vec<usize> = (0..n).map(|i| (first + i) % n).collect();
            let mut sched = vec![Sched::RoundRobin {
                cores: cores.clone(),
                quantum,
                until: Until::Label(done.clone()),
            }];
            sched.extend(cores.iter().map(|&c| run_halt(c)));
            schedules.push((format!("q{quantum} first {first}"), true, sched));
        }
    }
    let mut weighted: Vec<usize> = (1..n)
        .flat_map(|c| std::iter::repeat_n(c, PREEMPT_WEIGHT))
        .collect();
    weighted.push(0);
    for alone in 0..=PREEMPT_MAX {
        let mut sched = Vec::new();
        if alone > 0 {
            sched.push(Sched::Step { core: 0, n: alone });
        }
        sched.push(Sched::RoundRobin {
            cores: weighted.clone(),
            quantum: 1,
            until: Until::Label(done.clone()),
        });
        sched.extend((0..n).map(run_halt));
        schedules.push((format!("a+{alone} w{PREEMPT_WEIGHT}"), false, sched));
    }
    schedules
        .into_iter()
        .map(|(what, round_robin, sched)| {
            let mut s = base.clone();
            s.schedule = sched;
            s.expect = keep.to_vec();
            let r = go(&s);
            let m = r.machine.as_ref().unwrap();
            Sweep {
                rax0: m.cores[0].cpu.state.gpr[0],
                all_halted: r.cores.iter().all(|c| c.status == "halted"),
                labels: r.cores.iter().map(|c| c.label.clone()).collect(),
                kept_ok: r.expectations.iter().all(|e| e.ok),
                what,
                round_robin,
                stale: r.stale_uses.len(),
                violations: r.violations,
                ending: r.ending.clone(),
            }
        })
        .collect()
}

/// Every sweep completes with no stale use, every kept expectation holds,
/// core 0's last read saw the new page and each core ends parked on the HLT
/// named in `halts` (one per core). Returns the number of sweeps.
fn assert_clean_sweeps(name: &str, keep: &[Expect], halts: &[&str]) -> usize {
    let sw = sweeps(name, keep);
    for w in &sw {
        let at = format!("{name}: {}", w.what);
        assert_eq!(w.ending, Ending::Completed, "{at}: {:?}", w.ending);
        assert_eq!((w.stale, w.violations), (0, 0), "{at}: stale uses");
        assert!(w.kept_ok, "{at}: a kept expectation failed");
        // The workload ran to its end. Under round-robin core 0's last read
        // comes after the PTE change and sees the new page; a preemption
        // sweep may let it read before the change (the old page, legitimately).
        assert!(w.all_halted, "{at}: a core did not halt");
        if w.round_robin {
            assert_eq!(w.rax0, 0x2222, "{at}");
        } else {
            assert!(matches!(w.rax0, 0x1111 | 0x2222), "{at}: {:#x}", w.rax0);
        }
        let want: Vec<Option<String>> = halts.iter().map(|h| Some(h.to_string())).collect();
        assert_eq!(w.labels, want, "{at}: where the cores halted");
    }
    println!("{name}: {} sweeps, 0 stale uses, 0 violations", sw.len());
    sw.len()
}

/// Every sweep completes; returns (exposing, total) and prints which expose.
fn count_exposing_sweeps(name: &str) -> (usize, usize) {
    let sw = sweeps(name, &[]);
    for w in &sw {
        assert_eq!(
            w.ending,
            Ending::Completed,
            "{name}: {}: {:?}",
            w.what,
            w.ending
        );
    }
    let exposed: Vec<&Sweep> = sw.iter().filter(|w| w.violations > 0).collect();
    println!(
        "{name}: exposed in {} of {} sweeps{}",
        exposed.len(),
        sw.len(),
        exposed
            .iter()
            .map(|w| format!(" ({})", w.what))
            .collect::<String>()
    );
    (exposed.len(), sw.len())
}

/// Round-robin sweeps (quantum 1..=8, each core first) plus preemption sweeps.
const RR_3: usize = 24;
const RR_2: usize = 16;
const PREEMPT: usize = PREEMPT_MAX as usize + 1;

/// Core A never runs pmap_inval_smp: a finished thread stays parked on its
/// HLT (a HLT without a loop, woken by an IPI, used to fall through into T3's
/// body and run a second shootdown from A).
fn a_sends_no_ipi() -> Vec<Expect> {
    vec![Expect::Events {
        kind: "ipi-sent".into(),
        core: Some(0),
        count: 0,
    }]
}

#[test]
fn dragonfly_fixed_is_clean_under_every_sweep() {
    assert_eq!(
        assert_clean_sweeps(
            "dragonfly-2017-swtch-pmactive-fixed.ron",
            &a_sends_no_ipi(),
            &["t2_done", "b_done", "c_idle"],
        ),
        RR_3 + PREEMPT
    );
}

#[test]
fn dragonfly_buggy_some_sweep_exposes_it() {
    // The race needs B's whole shootdown inside A's switch window: no plain
    // round-robin does that, a preemption inside the window does.
    let (k, n) = count_exposing_sweeps("dragonfly-2017-swtch-pmactive-buggy.ron");
    assert_eq!(n, RR_3 + PREEMPT);
    assert!(k >= 1, "no sweep schedule exposes the DragonFly race");
}

#[test]
fn dragonfly_local_fixed_is_clean_under_every_sweep() {
    assert_eq!(
        assert_clean_sweeps(
            "dragonfly-2017-local-fixed.ron",
            &a_sends_no_ipi(),
            &["t2_done", "b_done"],
        ),
        RR_2 + PREEMPT
    );
}

#[test]
fn dragonfly_local_buggy_some_sweep_exposes_it() {
    // On two CPUs B's local-only path is short and fits in A's window (flags
    // saved, interrupts off, debug-register and FPU checks, stack switch);
    // the round-robin sweeps start both threads together and miss it, the
    // preemption sweeps find it.
    let (k, n) = count_exposing_sweeps("dragonfly-2017-local-buggy.ron");
    assert_eq!(n, RR_2 + PREEMPT);
    assert!(k >= 1, "no sweep exposes the two-CPU DragonFly race");
}

#[test]
fn freebsd_fixed_are_clean_under_every_sweep() {
    assert_eq!(
        assert_clean_sweeps(
            "freebsd-d16618-curpmap-fixed.ron",
            &[],
            &["k0_done", "b_idle"]
        ),
        RR_2 + PREEMPT
    );
    assert_eq!(
        assert_clean_sweeps(
            "freebsd-d16618-pcid-nogen-fixed.ron",
            &[],
            &["pa_done", "pb_done"]
        ),
        RR_2 + PREEMPT
    );
}

#[test]
fn freebsd_buggy_some_sweep_exposes_them() {
    // The curpmap bug does not depend on the interleaving: every sweep shows it.
    let (k, n) = count_exposing_sweeps("freebsd-d16618-curpmap-buggy.ron");
    assert_eq!((k, n), (RR_2 + PREEMPT, RR_2 + PREEMPT));
    let (k, n) = count_exposing_sweeps("freebsd-d16618-pcid-nogen-buggy.ron");
    assert_eq!(n, RR_2 + PREEMPT);
    assert!(k >= 1, "no sweep schedule exposes the PCID generation bug");
}

#[test]
fn dragonfly_halted_cores_are_labelled_with_their_hlt() {
    // After HLT, RIP is the next instruction; the report names the HLT itself.
    let r = go(&scenario("dragonfly-2017-swtch-pmactive-fixed.ron"));
    let at: Vec<(&str, Option<&str>)> = r
        .cores
        .iter()
        .map(|c| (c.status.as_str(), c.label.as_deref()))
        .collect();
    assert_eq!(at[0], ("halted", Some("t2_done")));
    assert_eq!(at[1], ("halted", Some("b_done")));
    let text = r.to_text(false);
    assert!(text.contains("halted (HLT at <t2_done>)"), "{text}");
}

// ---------------------------------------------------------------------------
// Non-vacuity: one step removed from the FIXED code.

const DFLY_FIXED: &str = "dragonfly-2017-swtch-pmactive-fixed.ron";
const FBSD_FIXED: &str = "freebsd-d16618-curpmap-fixed.ron";
const FBSD_PCID_FIXED: &str = "freebsd-d16618-pcid-nogen-fixed.ron";

/// The DragonFly workload, with C's read after the IPI placed after B has
/// completed the shootdown (so the AfterLabel rule counts it).
fn dfly_late_reader_schedule() -> Vec<Sched> {
    vec![
        run_halt(2),
        run_until(1, "b_ready"),
        run_until(0, "a_bit_cleared"),
        run_until(1, "ipis_sent"),
        run_until(2, "ipi_quiesced"),
        run_until(1, "mask_released"),
        // C: INVLPG (if any), clears its done bit
        run_until(2, "ipi_acked"),
        // B completes the shootdown
        run_until(1, "inval_done"),
        run_halt(1),
        // C: EOI, IRETQ, reads the page
        run_until(2, "c_idle"),
        run_halt(0),
    ]
}

#[test]
fn dragonfly_without_handler_invlpg_c_reads_stale() {
    let mut s = scenario(DFLY_FIXED);
    s.schedule = dfly_late_reader_schedule();
    s.expect.clear();
    assert_clean(&s);

    edit_asm(
        &mut s,
        "dragonfly-2017-pmap-inval.s",
        "4:  invlpg  (%rsi)\nipi_invlpg:",
        "4:\nipi_invlpg:",
    );
    assert_one_violation_on(&s, 2);
}

#[test]
fn dragonfly_without_pm_active_set_a_is_missed() {
    // cpu_heavy_restore without the lock orq: A runs T2 with its bit clear,
    // so B's shootdown never targets it. A's reload of %cr3 at the switch
    // empties its TLB; the translation T2 then holds comes from a fill (as the
    // hardware may do at any time while P is loaded) before the PTE changes.
    let mut s = scenario(DFLY_FIXED);
    edit_asm(
        &mut s,
        "dragonfly-2017-swtch-fixed.s",
        "    lock orq %rcx, PM_ACTIVE(%rbx)\n",
        "",
    );
    s.schedule = vec![
        run_halt(2),
        run_until(1, "b_ready"),
        run_until(0, "t2_body"),
        Sched::Fill {
            core: 0,
            va: Value::Sym("UVA".into()),
        },
        run_until(1, "ipis_sent"),
        run_until(2, "ipi_quiesced"),
        run_until(1, "mask_released"),
        run_until(2, "c_idle"),
        run_until(1, "inval_done"),
        run_halt(1),
        run_halt(0),
    ];
    s.expect.clear();
    let r = go(&s);
    assert_eq!(r.ending, Ending::Completed, "{:?}", r.ending);
    assert_eq!(violations_on(&r, Some(0)), 1, "{:#?}", r.stale_uses);
    assert_eq!(r.violations, 1);
}

#[test]
fn dragonfly_without_ipi_to_c_the_shootdown_hangs() {
    // pmap_inval_smp without the IPI to core C: C never quiesces, B waits for
    // it forever. The mask/done handshake turns a lost IPI into a hang, not a
    // stale use; the scenario's own schedule gets stuck where C should take it.
    let mut s = scenario(DFLY_FIXED);
    edit_asm(
        &mut s,
        "dragonfly-2017-pmap-inval.s",
        "    andq    %gs:PC_CPUMASK_NOT, %r9\n",
        "    andq    %gs:PC_CPUMASK_NOT, %r9\n    btrq    $2, %r9\n",
    );
    let r = go(&s);
    match &r.ending {
        Ending::Stuck { index, .. } => assert_eq!(*index, 4, "{:?}", r.ending),
        e => panic!("expected the schedule to get stuck, got {e:?}"),
    }
    assert_eq!(r.violations, 0);
    // Under a round-robin the shootdown never completes either.
    s.schedule = vec![Sched::RoundRobin {
        cores: vec![0, 1, 2],
        quantum: 1,
        until: Until::Label("inval_done".into()),
    }];
    s.max_steps = Some(20_000);
    s.expect.clear();
    let r = go(&s);
    assert!(matches!(r.ending, Ending::Stuck { .. }), "{:?}", r.ending);
}

/// Replaces the code section loaded from `from` by the file `to`.
fn swap_file(s: &mut Scenario, from: &str, to: &str) {
    let sec = s
        .code
        .iter_mut()
        .find(|c| c.file.as_deref() == Some(from))
        .unwrap_or_else(|| panic!("no code section from `{from}`"));
    sec.file = Some(to.into());
}

const FBSD_BOOT_BUGGY: &str = "asm/freebsd-d16618-boot-buggy.s";
const FBSD_BOOT_FIXED: &str = "asm/freebsd-d16618-boot-fixed.s";

/// kernel_pmap's pm_active at the end of a run: kernel data KD (0x...80100000)
/// is physical 0x200000, kernel_pmap is at KD+0x1000, pm_active at +8.
fn kernel_pmap_active(r: &RunReport) -> u64 {
    let m = r.machine.as_ref().unwrap();
    m.mem
        .read_u64(mmu::PhysAddr(0x201008))
        .expect("kernel_pmap is in memory")
}

#[test]
fn freebsd_half_fix_leaves_kernel_pmap_damaged() {
    // Only pmap_activate_sw fixed, the boot code as before D16618 (curpmap =
    // kernel_pmap on every CPU): the invalidation is right, but A's switch
    // away from kernel_pmap clears A's bit in its pm_active for good, which
    // is what the review measured. pmap_activate_boot is what keeps it full.
    let mut s = scenario(FBSD_FIXED);
    s.expect.clear();
    let r = go(&s);
    assert_eq!(r.violations, 0);
    assert_eq!(kernel_pmap_active(&r), 3, "full fix: never deactivated");

    swap_file(&mut s, FBSD_BOOT_FIXED, FBSD_BOOT_BUGGY);
    let r = go(&s);
    assert_eq!(r.ending, Ending::Completed, "{:?}", r.ending);
    assert_eq!(r.violations, 0, "{:#?}", r.stale_uses);
    assert_eq!(kernel_pmap_active(&r), 2, "A's bit is gone");
}

#[test]
fn freebsd_without_curpmap_store_initiator_skips_its_invlpg() {
    // The fixed non-PCID path with the curpmap store removed (the %cr3 load
    // kept), from the old boot state (curpmap = kernel_pmap, so the switch
    // to vmspace0's pmap reaches that path): the bug's effect comes back.
    let mut s = scenario(FBSD_FIXED);
    swap_file(&mut s, FBSD_BOOT_FIXED, FBSD_BOOT_BUGGY);
    s.expect.clear();
    assert_clean(&s);
    edit_asm(
        &mut s,
        "freebsd-d16618-swtch-fixed.s",
        "    movq    %rax, %cr3\n    movq    %rbx, %gs:PC_CURPMAP\n8:",
        "    movq    %rax, %cr3\n8:",
    );
    assert_one_violation_on(&s, 0);
}

#[test]
fn freebsd_without_pmap_activate_boot_curpmap_a_is_wrong() {
    // The fixed boot with pmap_activate_boot's curpmap store removed: A's
    // curpmap stays 0 after init_secondary, so A's first switch treats
    // vmspace0 as a new pmap (the fixed path loads %cr3 and sets curpmap) and
    // clears its bit in "pm_active" of pmap 0 -- a fault on the null page.
    let mut s = scenario(FBSD_FIXED);
    edit_asm(
        &mut s,
        "freebsd-d16618-boot-fixed.s",
        "    movq    %rdi, %gs:PC_CURPMAP\n",
        "",
    );
    s.expect.clear();
    let r = go(&s);
    assert!(
        !r.stopped.is_empty() || !matches!(r.ending, Ending::Completed),
        "A must not get through a switch from a null curpmap: {:?}",
        r.ending
    );
}

#[test]
fn freebsd_without_local_invlpg_initiator_reads_stale() {
    let mut s = scenario(FBSD_FIXED);
    edit_asm(
        &mut s,
        "freebsd-d16618-invalidate.s",
        "    invlpg  (%rsi)\nlocal_invlpg:",
        "local_invlpg:",
    );
    s.expect.clear();
    let r = go(&s);
    assert_eq!(r.ending, Ending::Completed);
    assert_eq!(violations_on(&r, Some(0)), 1, "{:#?}", r.stale_uses);
}

#[test]
fn freebsd_without_handler_invlpg_target_reads_stale() {
    let late_reader = vec![
        run_halt(1),
        run_until(0, "ipis_sent"),
        // B: the IPI handler (done-generation stored), IRETQ
        run_until(1, "b_woken"),
        // A: sees B done, finishes pmap_invalidate_page, reads, halts
        run_halt(0),
        // B reads the page
        run_until(1, "b_idle"),
    ];
    let mut s = scenario(FBSD_FIXED);
    s.schedule = late_reader.clone();
    s.expect.clear();
    assert_clean(&s);

    edit_asm(
        &mut s,
        "freebsd-d16618-invalidate.s",
        "    invlpg  (%rax)\n    movq    %rdx, %gs:PC_SMP_TLB_DONE",
        "    movq    %rdx, %gs:PC_SMP_TLB_DONE",
    );
    assert_one_violation_on(&s, 1);
}

#[test]
fn freebsd_without_ipi_the_initiator_hangs() {
    let mut s = scenario(FBSD_FIXED);
    edit_asm(
        &mut s,
        "freebsd-d16618-invalidate.s",
        "    movl    $MSR_X2APIC_ICR, %ecx\n    wrmsr\n",
        "    movl    $MSR_X2APIC_ICR, %ecx\n",
    );
    s.max_steps = Some(20_000);
    let r = go(&s);
    assert!(matches!(r.ending, Ending::Stuck { .. }), "{:?}", r.ending);
    assert_eq!(r.violations, 0);
}

#[test]
fn freebsd_pcid_without_generation_reset_keeps_the_entry() {
    // The fixed PCID scenario with the other-CPU pm_gen reset cut out of
    // pmap_invalidate_page: equivalent to the -buggy file, built here from
    // the fixed text to show that this one step is what keeps A coherent.
    let mut s = scenario(FBSD_PCID_FIXED);
    edit_asm(
        &mut s,
        "freebsd-d16618-invalidate.s",
        "    movl    $0, PM_PCIDS+PCID_GEN(%rdi,%rcx,8)\n7:",
        "7:",
    );
    s.expect.clear();
    let r = go(&s);
    assert_eq!(r.ending, Ending::Completed);
    assert_eq!(violations_on(&r, Some(0)), 1, "{:#?}", r.stale_uses);
}

#[test]
fn freebsd_pcid_fixed_with_all_rule_has_no_stale_use() {
    // The coherence rule of the files counts stale uses after the shootdown;
    // under `All` the fixed scenarios are clean too.
    for name in [DFLY_FIXED, FBSD_FIXED, FBSD_PCID_FIXED] {
        let mut s = scenario(name);
        s.coherence = Coherence::All;
        let r = go(&s);
        assert_eq!(r.stale_uses.len(), 0, "{name}: {:#?}", r.stale_uses);
    }
}
