//! Software translation caches (`soft_tlbs`, docs/scenario-format.md): their
//! real PTEs are derived tracker entries, so a use of a stale one is an ordinary
//! stale use, judged by every coherence rule and expectation as a hardware one is;
//! the layout of the software entries comes from the scenario, with located
//! errors; the vkernel pairs keep their verdicts.

use emu::events::{CountSink, EventSink};
use emu::scenario::schema::{Coherence, Expect, KindSpec, Value};
use emu::scenario::{build, load, run, validate, Ending, Plan, RunReport, Scenario};
use mmu::AccessKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn load_file(name: &str) -> Scenario {
    let (s, _) = load(&dir().join(name)).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    s
}

fn run_scenario(s: &Scenario) -> RunReport {
    let built = build(s, &dir()).unwrap_or_else(|p| panic!("{}: build: {p:?}", s.name));
    validate(s, &built).unwrap_or_else(|p| panic!("{}: validate: {p:?}", s.name));
    let plan = Plan::compile(s, built).unwrap_or_else(|p| panic!("{}: compile: {p:?}", s.name));
    run(&Arc::new(plan), false)
}

fn passes(r: &RunReport) {
    assert_eq!(r.ending, Ending::Completed, "{}", r.name);
    for e in &r.expectations {
        assert!(e.ok, "{}: {} (found {})", r.name, e.what, e.actual);
    }
}

const FEATURE: &str = "features/soft-tlb.ron";
const REGION: u64 = 0x4000_0000;

/// The violations' (core, va page, kind) and the uses' count.
fn uses(r: &RunReport) -> Vec<(u32, u64, Option<AccessKind>, bool)> {
    r.stale_uses
        .iter()
        .map(|u| {
            let d = &u.detail;
            (
                d.ctx.core,
                d.va.raw() & !0xfff,
                d.access.map(|a| a.kind),
                u.violation,
            )
        })
        .collect()
}

#[test]
fn the_feature_example_is_judged_by_the_completed_rule() {
    let r = run_scenario(&load_file(FEATURE));
    passes(&r);
    let w = Some(AccessKind::Write);
    assert_eq!(uses(&r), [(1, REGION, w, false), (1, REGION, w, true)]);
    let d = &r.stale_uses[1].detail;
    let src = d.derived.as_ref().expect("a software cache's entry");
    assert_eq!(src.cache, "software tables");
    assert!(src.mismatch.write && !src.mismatch.frame);
    let by = d.made_stale_by.expect("the software write");
    assert_eq!((by.core, by.old, by.new), (0, 0x10043, 0x10003));
    // The rule names the writer and its label, as for a hardware entry.
    let why = r.stale_uses[1].why.as_deref().unwrap_or_default();
    assert!(why.contains("core 0 made the entry stale"), "{why}");
    let text = r.to_text(true);
    for want in [
        "via the real PTE, a cache of software entries `software tables`",
        "software entry now at 0x701000 = 0x0000000000010003",
        "real PTE present in the initial page tables",
        "the real PTE was never removed since",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
}

#[test]
fn every_coherence_rule_applies_to_software_caches() {
    let with = |c: Coherence| {
        let mut s = load_file(FEATURE);
        s.coherence = c;
        s.expect.clear();
        run_scenario(&s)
    };
    // All: both uses.
    assert_eq!(with(Coherence::All).violations, 2);
    // AfterLabel: the single instant core 0 reaches `done`: only the second.
    assert_eq!(with(Coherence::AfterLabel("done".into())).violations, 1);
    // FreedFrames: the real PTE's frame is freed at `done`, or another one is.
    let freed = |f: u64| Coherence::FreedFrames {
        label: "done".into(),
        frames: vec![Value::Num(f)],
    };
    assert_eq!(with(freed(0x71_0000)).violations, 1);
    assert_eq!(with(freed(0x72_0000)).violations, 0);
    // CompletedLatent: the stale real PTE is still present when its writer
    // reaches `done`: one latent violation besides the use.
    let r = with(Coherence::CompletedLatent {
        label: "done".into(),
        cores: None,
    });
    assert_eq!(r.latent_violations.len(), 1, "{:?}", r.latent_violations);
    assert!(r.latent_violations[0].contains("real PTE for va 0x40000000"));
    assert_eq!(r.violations, 2);
}

#[test]
fn stale_entry_and_use_expectations_see_software_caches() {
    let mut s = load_file(FEATURE);
    s.expect = vec![
        // The ordinary spellings count software uses too ...
        Expect::StaleUse {
            core: Some(1),
            va: Some(Value::Sym("REGION".into())),
            kind: Some(KindSpec::Write),
        },
        // ... the software spellings only them.
        Expect::NoSoftStaleUse {
            core: Some(0),
            va: None,
            kind: None,
        },
        // A stale real PTE is left at the end and when core 0 reaches `done`.
        Expect::NoStaleEntries {
            core: None,
            at: None,
        },
        Expect::NoStaleEntries {
            core: None,
            at: Some("done".into()),
        },
    ];
    let r = run_scenario(&s);
    let ok: Vec<bool> = r.expectations.iter().map(|e| e.ok).collect();
    assert_eq!(ok, [true, true, false, false], "{:?}", r.expectations);
    assert!(
        r.expectations[2]
            .actual
            .contains("real PTE for va 0x40000000"),
        "{}",
        r.expectations[2].actual
    );
}

#[test]
fn removing_the_real_pte_ends_the_cached_entry() {
    // The fix of the feature example: core 0 clears the real PTE (as MADV_INVAL
    // does) right after cleaning the software entry; the next write faults.
    let mut s = load_file(FEATURE);
    let asm = s.code[0].asm.as_mut().unwrap();
    let from = "c0_cleared:                           # ... and does not\n";
    assert!(asm.contains(from));
    *asm = asm.replace(
        from,
        "    movabsq $dmap + k.pte.40000000, %rbx\n    movq $0, (%rbx)\n    invlpg REGION\nc0_cleared:\n",
    );
    s.schedule.truncate(2);
    s.expect = vec![
        Expect::Violations(0),
        Expect::NoStaleUse {
            core: None,
            va: None,
            kind: None,
        },
    ];
    let r = run_scenario(&s);
    passes(&r);
}

#[test]
fn a_bad_declaration_is_located() {
    let located = |f: &dyn Fn(&mut Scenario)| {
        let mut s = load_file(FEATURE);
        f(&mut s);
        let built = build(&s, &dir()).unwrap();
        let p = validate(&s, &built).unwrap_err();
        (p.path, p.message)
    };
    let (p, m) = located(&|s| s.soft_tlbs[0].space = "kk".into());
    assert_eq!(p, "soft_tlbs[0].space");
    assert!(m.contains("unknown address space `kk`"), "{m}");
    let (p, _) = located(&|s| s.soft_tlbs[0].region.len = Value::Num(0x1800));
    assert_eq!(p, "soft_tlbs[0].region");
    let (p, m) = located(&|s| s.soft_tlbs[0].layout.dirty = Some(Value::Sym("S_W".into())));
    assert_eq!(p, "soft_tlbs[0].layout.dirty");
    assert!(m.contains("overlaps"), "{m}");
    let (p, _) = located(&|s| s.soft_tlbs[0].layout.levels = 7);
    assert_eq!(p, "soft_tlbs[0].layout.levels");
    let (p, m) = located(&|s| s.soft_tlbs[0].layout.valid = Value::Sym("S_X".into()));
    assert_eq!(p, "soft_tlbs[0].layout.valid");
    assert!(m.contains("S_X"), "{m}");
}

#[test]
fn unknown_layout_fields_are_refused() {
    let text = std::fs::read_to_string(dir().join(FEATURE)).unwrap();
    let bad = text.replace("levels: 1,", "levels: 1, user: 0x4,");
    let tmp = std::env::temp_dir().join(format!("tlbemu-soft-layout-{}.ron", std::process::id()));
    std::fs::write(&tmp, bad).unwrap();
    let e = load(&tmp).expect_err("`user` is not a layout field");
    let _ = std::fs::remove_file(&tmp);
    let msg = format!("{e:?}");
    assert!(msg.contains("user"), "{msg}");
}

#[test]
fn scenarios_without_soft_tlbs_are_untouched() {
    // No declaration: the runner does not ask for accesses.
    let s = load_file("missing-invlpg.ron");
    assert!(s.soft_tlbs.is_empty());
    let r = run_scenario(&s);
    assert!(r.stale_uses.iter().all(|u| u.detail.derived.is_none()));
    assert!(!CountSink::default().observes_accesses());
}

#[test]
fn json_report_carries_the_derived_source() {
    let r = run_scenario(&load_file(FEATURE));
    let j = r.to_json(true);
    let d = &j["stale_uses"][1]["detail"]["derived"];
    assert_eq!(d["cache"], "software tables");
    assert_eq!(d["source"]["value"], 0x10003);
    assert_eq!(d["mismatch"]["write"], true);
    assert_eq!(j["violations"], 1);
    assert!(j.get("soft_stale_uses").is_none(), "one list of stale uses");
}

#[test]
fn debugger_lists_software_uses_with_the_others_and_steps_back() {
    use emu::debug::{execute, parse, Session};
    let mut s = Session::open(&dir().join(FEATURE)).unwrap();
    let ok = |s: &mut Session, line: &str| {
        let r = execute(s, &parse(line).unwrap().unwrap());
        assert!(!r.error, "`{line}`: {}", r.text);
        r.text
    };
    ok(&mut s, "continue");
    assert_eq!(s.runner().stale_uses().len(), 2);
    let t = ok(&mut s, "stale");
    assert!(t.contains("#2 (violation) stale use on core 1"), "{t}");
    // Reverse stepping restores the derived entries with the machine.
    ok(&mut s, "goto 0");
    assert!(s.runner().stale_uses().is_empty());
    ok(&mut s, "continue");
    assert_eq!(s.runner().violations(), 1);
}

#[test]
fn vkernel_pairs_keep_their_verdicts() {
    for (name, violations) in [
        ("vkernel-lost-dirty-bit.ron", 1),
        ("vkernel-lost-dirty-bit-fixed.ron", 0),
        ("vkernel-vpte-no-madv-inval.ron", 1),
        ("vkernel-vpte-no-madv-inval-fixed.ron", 0),
    ] {
        let r = run_scenario(&load_file(name));
        passes(&r);
        assert_eq!(r.violations, violations, "{name}");
        for u in &r.stale_uses {
            assert!(u.detail.derived.is_some(), "{name}: only the VPTE cache");
        }
    }
}
