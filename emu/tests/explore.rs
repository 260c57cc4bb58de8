//! Schedule exploration on the bug library's unscripted twins: each buggy twin's
//! bug is found with the scripted scenario's root cause and the written scenario
//! reproduces it; fixed twins come out clean under bounded search; mutants of a
//! fixed scenario are found; the report is the same for any thread count and
//! any sharding.

use emu::explore::{self, Config, FindingKind, Report, Strategy};
use emu::scenario::{self, prepare, prepare_for, Mode, Plan, Scenario};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn twin(name: &str) -> Arc<Plan> {
    let p = root().join("unscripted").join(format!("{name}.ron"));
    match prepare_for(&p, Mode::Unscripted) {
        Ok((_, _, plan)) => plan,
        Err(d) => panic!("{}", d.rendered()),
    }
}

fn never() -> bool {
    false
}

fn search(plan: &Arc<Plan>, cfg: &Config, jobs: usize) -> Report {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .expect("thread pool");
    pool.install(|| explore::explore(plan, cfg, &never, &|_| {}))
}

fn pct(runs: u64) -> Config {
    Config {
        strategy: Strategy::Pct,
        runs,
        ..Config::default()
    }
}

/// The scripted scenario's violation: (kind, core, page, write RIP, use RIP).
fn scripted_cause(name: &str) -> (FindingKind, usize, u64, u64, u64) {
    let (_, _, plan) = prepare(&root().join(format!("{name}.ron"))).expect("scripted scenario");
    let rep = scenario::run(&plan, false);
    if let Some(u) = rep.stale_uses.iter().find(|u| u.violation) {
        let d = &u.detail;
        return (
            FindingKind::StaleUse,
            d.ctx.core as usize,
            d.va.raw() & !0xfff,
            d.made_stale_by.map_or(0, |w| w.rip),
            d.ctx.rip,
        );
    }
    // Software caches' stale uses are ordinary stale uses, found above.
    panic!("the scripted scenario {name} shows no violation")
}

/// Explores a buggy twin: the finding has the scripted case's root cause (same
/// core, page, writing instruction and using instruction), and the scenario
/// written for it reproduces it under `run`.
fn found_like_scripted(name: &str, runs: u64) -> explore::Found {
    let plan = twin(name);
    let rep = search(&plan, &pct(runs), 2);
    let want = scripted_cause(name);
    let f = rep
        .findings
        .iter()
        .find(|f| {
            let s = f.signature;
            (s.kind, s.core, s.page, s.write_rip, s.use_rip) == want
        })
        .unwrap_or_else(|| panic!("{name}: no finding like {want:x?}; got {:#?}", rep.findings))
        .clone();
    let orig = plan.scenario().clone();
    let written = explore::finding_scenario(&orig, &plan, &f).expect("scenario for the finding");
    assert!(!written.schedule.is_empty());
    let scripted =
        Plan::compile(&written, plan.built().clone()).expect("written scenario compiles");
    let scripted = Arc::new(scripted);
    assert!(
        explore::reproduces(&scripted, &f.signature),
        "{name}: the written scenario does not reproduce {:?}",
        f.signature
    );
    let r = scenario::run(&scripted, false);
    assert!(
        r.passed(scripted.expects_violations()),
        "{name}: the written scenario's own expectations fail"
    );
    f
}

#[test]
fn dragonfly_buggy_twin_is_found_as_scripted() {
    let f = found_like_scripted("dragonfly-2017-swtch-pmactive-buggy", 400);
    assert!(f.preemptions >= 1, "the race needs a preemption");
}

#[test]
fn dragonfly_two_cpu_twin_is_found_as_scripted() {
    found_like_scripted("dragonfly-2017-local-buggy", 100);
}

#[test]
fn d16618_curpmap_buggy_twin_is_found_as_scripted() {
    found_like_scripted("freebsd-d16618-curpmap-buggy", 50);
}

#[test]
fn d16618_pcid_buggy_twin_is_found_as_scripted() {
    found_like_scripted("freebsd-d16618-pcid-nogen-buggy", 50);
}

#[test]
fn minix_buggy_twin_is_found_as_scripted() {
    found_like_scripted("minix-stale-tlb-copy", 200);
}

#[test]
fn missing_invlpg_twin_is_found_as_scripted() {
    found_like_scripted("missing-invlpg", 4);
}

#[test]
fn vkernel_lost_dirty_twin_is_found_as_scripted() {
    found_like_scripted("vkernel-lost-dirty-bit", 8);
}

#[test]
fn vkernel_vpte_twin_is_found_as_scripted() {
    found_like_scripted("vkernel-vpte-no-madv-inval", 8);
}

#[test]
fn pager_race_twin_breaks_its_invariant() {
    let plan = twin("freebsd-pager-lookup-race");
    let rep = search(&plan, &pct(50), 2);
    let f = rep
        .findings
        .iter()
        .find(|f| f.signature.kind == FindingKind::Invariant)
        .expect("the use-after-free breaks the invariant");
    let written = explore::finding_scenario(plan.scenario(), &plan, f).expect("scenario");
    let scripted = Arc::new(Plan::compile(&written, plan.built().clone()).expect("compiles"));
    assert!(explore::reproduces(&scripted, &f.signature));
}

fn bounded(k: u32, fills: bool) -> Config {
    Config {
        strategy: Strategy::Bounded,
        preemptions: k,
        runs: 1_000_000,
        fills,
        ..Config::default()
    }
}

fn clean_exhaustively(name: &str, k: u32, fills: bool) {
    let rep = search(&twin(name), &bounded(k, fills), 2);
    assert!(rep.exhaustive, "{name}: bounded search did not finish");
    assert!(rep.findings.is_empty(), "{name}: {:#?}", rep.findings);
    assert!(rep.schedules >= 1);
}

#[test]
fn fixed_twins_are_clean_to_two_preemptions() {
    for n in [
        "dragonfly-2017-local-fixed",
        "freebsd-d16618-curpmap-fixed",
        "freebsd-pager-lookup-race-fixed",
        "missing-invlpg-fixed",
        "vkernel-lost-dirty-bit-fixed",
    ] {
        clean_exhaustively(n, 2, false);
    }
}

#[test]
fn dragonfly_fixed_twin_is_clean_to_one_preemption() {
    clean_exhaustively("dragonfly-2017-swtch-pmactive-fixed", 1, false);
}

/// Clean at two preemptions now that cpu_switch runs with interrupts off, as
/// under FreeBSD's thread lock (before, the shootdown IPI could land between
/// the generation check and the %cr3 load).
#[test]
fn d16618_pcid_fixed_twin_is_clean_to_two_preemptions() {
    clean_exhaustively("freebsd-d16618-pcid-nogen-fixed", 2, false);
}

/// The small fixed twins, exhaustively at two deviations with fills and
/// evictions too. (The larger ones are measured outside the suite.)
#[test]
fn small_fixed_twins_are_clean_with_fills_to_two() {
    for n in [
        "freebsd-d16618-curpmap-fixed",
        "missing-invlpg-fixed",
        "freebsd-pager-lookup-race-fixed",
    ] {
        clean_exhaustively(n, 2, true);
    }
}

/// State-hash pruning skips schedules and loses no finding: the buggy twin's
/// findings are the same with and without it, and it cuts the fixed twin's
/// search.
#[test]
fn pruning_prunes_and_keeps_every_finding() {
    let sigs = |r: &Report| -> Vec<_> { r.findings.iter().map(|f| f.signature).collect() };
    let plan = twin("freebsd-d16618-pcid-nogen-buggy");
    let on = search(&plan, &bounded(2, false), 2);
    let off = search(
        &plan,
        &Config {
            prune: false,
            ..bounded(2, false)
        },
        2,
    );
    assert!(!on.findings.is_empty());
    assert_eq!(sigs(&on), sigs(&off));
    assert!(on.pruned > 0 && off.pruned == 0);
    let fixed = twin("dragonfly-2017-local-fixed");
    let on = search(&fixed, &bounded(2, false), 2);
    let off = search(
        &fixed,
        &Config {
            prune: false,
            ..bounded(2, false)
        },
        2,
    );
    assert!(on.exhaustive && off.exhaustive);
    assert!(
        on.schedules * 2 < off.schedules,
        "pruning ran {} of {} schedules",
        on.schedules,
        off.schedules
    );
}

/// A hang found by explore carries the oracle's diagnosis, and the written
/// scenario expects the verdict and passes under `run`.
#[test]
fn hang_finding_carries_the_diagnosis() {
    let p = root().join("features/hang-protocol.ron");
    let plan = match prepare_for(&p, Mode::Unscripted) {
        Ok((_, _, plan)) => plan,
        Err(d) => panic!("{}", d.rendered()),
    };
    let rep = search(&plan, &bounded(1, false), 2);
    let f = rep
        .findings
        .iter()
        .find(|f| f.signature.kind == FindingKind::Hang)
        .expect("the missing IPI hangs the initiator");
    assert!(
        f.explanation.contains("livelock/deadlock") && f.explanation.contains("ack"),
        "{}",
        f.explanation
    );
    let written = explore::finding_scenario(plan.scenario(), &plan, f).expect("scenario");
    assert!(
        format!("{:?}", written.expect).contains("Deadlock"),
        "{:?}",
        written.expect
    );
    let scripted = Arc::new(Plan::compile(&written, plan.built().clone()).expect("compiles"));
    assert!(explore::reproduces(&scripted, &f.signature));
    assert!(scenario::run(&scripted, false).passed(scripted.expects_violations()));
}

/// A mutant of the fixed DragonFly case: one edit to one of its assembly
/// files, written beside a copy of the unscripted twin.
fn mutant(name: &str, file: &str, edits: &[(&str, &str)]) -> Arc<Plan> {
    mutant_with(name, file, edits, "")
}

/// As `mutant`, with `invariants` (RON list items) added to the twin.
fn mutant_with(name: &str, file: &str, edits: &[(&str, &str)], invariants: &str) -> Arc<Plan> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("explore-mutants")
        .join(name);
    let asm = dir.join("asm");
    std::fs::create_dir_all(&asm).expect("mutant dir");
    for e in std::fs::read_dir(root().join("asm")).expect("asm dir") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, asm.join(p.file_name().expect("name"))).expect("copy");
    }
    let path = asm.join(file);
    let mut text = std::fs::read_to_string(&path).expect("asm");
    for (from, to) in edits {
        assert!(text.contains(from), "{name}: `{from}` not in {file}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&path, text).expect("write mutant");
    let twin =
        std::fs::read_to_string(root().join("unscripted/dragonfly-2017-swtch-pmactive-fixed.ron"))
            .expect("twin");
    let mut twin = twin.replace("file: \"../asm/", "file: \"asm/");
    if !invariants.is_empty() {
        let rule = "coherence: AfterLabel(\"inval_done\"),";
        assert!(twin.contains(rule), "{name}: the twin's rule changed");
        twin = twin.replacen(rule, &format!("{rule}\n    invariants: [{invariants}],"), 1);
    }
    let s = dir.join("s.ron");
    std::fs::write(&s, twin).expect("write twin");
    match prepare_for(&s, Mode::Unscripted) {
        Ok((_, _, p)) => p,
        Err(d) => panic!("{}", d.rendered()),
    }
}

fn finds_stale_use(plan: &Arc<Plan>, fills: bool, runs: u64) -> bool {
    let cfg = Config { fills, ..pct(runs) };
    search(plan, &cfg, 2)
        .findings
        .iter()
        .any(|f| f.signature.kind == FindingKind::StaleUse)
}

#[test]
fn mutant_handler_skips_invlpg_is_found() {
    let p = mutant(
        "skip-invlpg",
        "dragonfly-2017-pmap-inval.s",
        &[("4:  invlpg  (%rsi)\n", "4:  nop\n")],
    );
    assert!(finds_stale_use(&p, false, 300));
}

#[test]
fn mutant_local_invalidation_before_store_is_found_with_fills() {
    let p = mutant(
        "local-before-store",
        "dragonfly-2017-pmap-inval.s",
        &[
            (
                "11:\n    # pmap_inval.c: store the new PTE (atomic swap)\n",
                "11:\n    call    inval_local\n    # pmap_inval.c: store the new PTE (atomic swap)\n",
            ),
            (
                "mask_released:\n    # pmap_inval.c: invalidate locally, then clear our own done bit\n    call    inval_local\n",
                "mask_released:\n",
            ),
        ],
    );
    assert!(finds_stale_use(&p, true, 600));
}

#[test]
fn mutant_target_dropped_from_mask_is_found_with_fills() {
    let p = mutant(
        "drop-target",
        "dragonfly-2017-pmap-inval.s",
        &[(
            "    orq     %gs:PC_CPUMASK, %rax\n    movq    %rax, INFO_MASK(%rbx)\n",
            "    orq     %gs:PC_CPUMASK, %rax\n    btrq    $2, %rax\n    movq    %rax, INFO_MASK(%rbx)\n",
        )],
    );
    assert!(finds_stale_use(&p, true, 600));
}

/// cpu_heavy_restore sets pm_active only after its EXCL check and %cr3
/// reload. A shootdown that reads pm_active in that window skips core A, whose
/// TLB was just flushed; a speculative fill of the old PTE before the store
/// then survives the shootdown, and T2 uses it. T2 reads the page only once,
/// so without a fill its one read comes before the store (a fresh use) or
/// after it (a fresh walk): the stale use needs a fill, and four deviations
/// in all (beyond bounded K = 2; PCT finds it).
#[test]
fn mutant_pm_active_set_after_cr3_check_is_found_with_fills() {
    let cfg = Config {
        depth: 2,
        fills: true,
        ..pct(600)
    };
    let stale = |p: &Arc<Plan>| {
        search(p, &cfg, 2)
            .findings
            .iter()
            .any(|f| f.signature.kind == FindingKind::StaleUse)
    };
    let p = mutant(
        "pm-active-after-cr3",
        "dragonfly-2017-swtch-fixed.s",
        &[
            (
                "    movq    %gs:PC_CPUMASK, %rcx\n    lock orq %rcx, PM_ACTIVE(%rbx)\na_bit_set:\n",
                "a_bit_set:\n",
            ),
            (
                "4:\na_cr3_done:\n",
                "4:\n    movq    %gs:PC_CPUMASK, %rcx\n    lock orq %rcx, PM_ACTIVE(%rbx)\na_cr3_done:\n",
            ),
        ],
    );
    assert!(stale(&p), "the mutant is not found");
    assert!(
        !stale(&twin("dragonfly-2017-swtch-pmactive-fixed")),
        "the fixed twin is not clean under the same search"
    );
}

/// The handler clears its done bit before its INVLPG, so pmap_inval_smp can
/// return while core C still caches the old PTE. C never uses it (the
/// handler runs with IF=0 and INVLPGs next), so no stale use exists under any
/// order or fill: the bug is an entry kept at the shootdown's completion,
/// which the invariant "no target of the shootdown still caches a stale entry
/// when it returns" names. Core A is left out of it: a switching core is
/// legitimately skipped by the shootdown and reloads %cr3 before its next use.
/// The fixed twin is clean under the same invariant, exhaustively.
#[test]
fn mutant_ack_before_invlpg_breaks_the_completion_invariant() {
    let inv = "NoStaleEntries(core: 2, at: \"inval_done\")";
    let broken = |p: &Arc<Plan>| {
        let rep = search(p, &bounded(2, false), 2);
        assert!(rep.exhaustive);
        rep.findings
            .iter()
            .any(|f| f.signature.kind == FindingKind::Invariant)
    };
    let p = mutant_with(
        "ack-before-invlpg",
        "dragonfly-2017-pmap-inval.s",
        &[
            (
                "    # pmap_inval.c: clear our bit in done\n    movq    %gs:PC_CPUMASK_NOT, %rax\n    lock andq %rax, INFO_DONE(%rbx)\nipi_acked:\n",
                "ipi_acked:\n",
            ),
            (
                "3:\n    # pmap_inval.c: INVLPG the request's pages\n",
                "3:\n    movq    %gs:PC_CPUMASK_NOT, %rax\n    lock andq %rax, INFO_DONE(%rbx)\n    # pmap_inval.c: INVLPG the request's pages\n",
            ),
        ],
        inv,
    );
    assert!(broken(&p), "the mutant is not found");
    let fixed = mutant_with(
        "ack-before-invlpg-unmutated",
        "dragonfly-2017-pmap-inval.s",
        &[],
        inv,
    );
    assert!(!broken(&fixed), "the fixed twin breaks the invariant");
}

#[test]
fn report_is_the_same_for_one_and_two_threads() {
    let plan = twin("dragonfly-2017-swtch-pmactive-buggy");
    let cfg = pct(300);
    let a = search(&plan, &cfg, 1);
    let b = search(&plan, &cfg, 2);
    assert!(!a.findings.is_empty());
    assert_eq!(a, b);
    let bc = bounded(1, false);
    assert_eq!(search(&plan, &bc, 1), search(&plan, &bc, 2));
}

#[test]
fn four_shards_merged_equal_the_whole_search() {
    let plan = twin("dragonfly-2017-swtch-pmactive-buggy");
    for cfg in [pct(300), bounded(1, false)] {
        let whole = search(&plan, &cfg, 2);
        let parts: Vec<Report> = (0..4)
            .map(|i| {
                search(
                    &plan,
                    &Config {
                        shard: (i, 4),
                        ..cfg.clone()
                    },
                    2,
                )
            })
            .collect();
        let merged = explore::merge(&parts).expect("merge");
        assert_eq!(merged.findings, whole.findings, "{:?}", cfg.strategy);
        assert_eq!(merged.schedules, whole.schedules);
    }
}

/// An unscripted twin is its scripted scenario with the schedule and the
/// expectations removed (and code paths one directory up): nothing else may
/// drift apart.
#[test]
fn twins_match_their_scripted_scenarios() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("unscripted")).expect("dir") {
        let p = e.expect("entry").path();
        if p.extension().is_none_or(|x| x != "ron") {
            continue;
        }
        let name = p.file_name().expect("name");
        let load = |p: &Path| -> Scenario {
            scenario::load(p)
                .unwrap_or_else(|d| panic!("{}", d.rendered()))
                .0
        };
        let mut t = load(&p);
        let mut s = load(&root().join(name));
        s.schedule.clear();
        s.expect.clear();
        t.invariants.clear();
        for c in &mut t.code {
            if let Some(f) = &c.file {
                c.file = Some(f.trim_start_matches("../").to_string());
            }
        }
        assert_eq!(
            format!("{t:?}"),
            format!("{s:?}"),
            "{} drifted from its scripted scenario",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 18, "expected a twin for every library case, found {n}");
}

#[test]
fn a_scenario_without_a_schedule_is_refused_by_run() {
    let p = root().join("unscripted/missing-invlpg.ron");
    let Err(e) = prepare(&p) else {
        panic!("run needs a schedule");
    };
    assert!(e.to_string().contains("no schedule"), "{e}");
}

/// The vkernel fixed twins have no handshake ordering the vcpus: bounded
/// search to two preemptions finds nothing (the lost-dirty-bit twin is in
/// `fixed_twins_are_clean_to_two_preemptions`), nor with speculative fills at
/// one preemption (two, measured from the command line, take minutes).
#[test]
fn vkernel_fixed_twins_are_clean_without_handshakes() {
    clean_exhaustively("vkernel-vpte-no-madv-inval-fixed", 2, false);
    clean_exhaustively("vkernel-lost-dirty-bit-fixed", 1, true);
}
