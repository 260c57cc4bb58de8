//! Software translation caches (`soft_tlbs`, docs/soft-tlb.md): the vkernel pair
//! reports exactly its stale real-PTE use with the full explanation, the fixed
//! twins (VPTE change followed by MADV_INVAL) report nothing, and the check is
//! precise about which accesses a difference affects.

use emu::events::{CountSink, EventSink};
use emu::scenario::schema::{Expect, KindSpec, Value};
use emu::scenario::soft_tlb::SoftStaleUse;
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

fn label(r: &RunReport, rip: u64) -> String {
    r.name_of(rip).unwrap_or_default()
}

/// `rip` is the instruction right before `name` (at most 15 bytes before it).
fn just_before(r: &RunReport, rip: u64, name: &str) -> bool {
    r.labels
        .iter()
        .any(|(a, l)| l == name && *a > rip && *a - rip <= 15)
}

/// Replaces one line of the vkernel's guest code (the scenario's second section).
fn patch_guest(s: &mut Scenario, from: &str, to: &str) {
    let asm = s.code[1].asm.as_mut().expect("guest code is inline asm");
    assert!(asm.contains(from), "{from}");
    *asm = asm.replace(from, to);
}

const GVA: u64 = 0x4000_3000;
const G1_HOST: u64 = 0x81_0000;
const G2_HOST: u64 = 0x81_1000;
const VPTE3_HOST: u64 = 0x80_1018;

#[test]
fn vpte_remap_without_madv_inval_is_one_explained_stale_use() {
    let r = run_scenario(&load_file("vkernel-vpte-no-madv-inval.ron"));
    passes(&r);
    assert!(
        r.stale_uses.is_empty(),
        "nothing stale at the hardware level"
    );
    assert_eq!(r.violations, 1);
    let [u]: &[SoftStaleUse; 1] = r.soft_stale_uses.as_slice().try_into().unwrap();
    assert!(u.violation);
    assert_eq!((u.core, u.va, u.kind), (1, GVA, AccessKind::Write));
    assert_eq!(label(&r, u.rip), "vk1_write");
    // The cache still names G1; the VPTE now names G2.
    assert_eq!(u.cached.frame, G1_HOST);
    assert!(u.cached.writable);
    assert_eq!(u.source.entry_pa, VPTE3_HOST);
    assert_eq!(u.source.value, 0x11007);
    assert_eq!(u.source.frame, G2_HOST);
    assert!(u.mismatch.frame);
    // Filled by the host's fault handler on vcpu 1's first write.
    let fill = u.filled.expect("entered by the host");
    assert_eq!(fill.core, 1);
    assert_eq!(label(&r, fill.rip), "host_pf_enter");
    assert_eq!((fill.old, fill.new), (0, G1_HOST | 7));
    // Made stale by vcpu 0 swapping the VPTE to 0; then the new VPTE for G2.
    let st = u.staled_by.expect("a VPTE write made it stale");
    assert_eq!(st.core, 0);
    assert_eq!((st.entry_pa, st.old, st.new), (VPTE3_HOST, 0x10067, 0));
    assert!(just_before(&r, st.rip, "vk_vpte_cleared"), "the xchg");
    let writes: Vec<(u64, u64)> = u.source_writes.iter().map(|w| (w.old, w.new)).collect();
    assert_eq!(writes, [(0x10067, 0), (0, 0x11007)]);
    assert!(u.invalidations.is_empty(), "no INVLPG, no MADV_INVAL");
    let text = r.to_text(true);
    for want in [
        "write of va 0x40003000 (pa 0x810000) through a stale real PTE",
        "frame 0x810000, RW",
        "0x11007 -> frame 0x811000",
        "<host_pf_enter>",
        "made stale: step",
        "<vk1_write>",
        "never removed (no MADV_INVAL)",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
}

#[test]
fn m_cleared_without_madv_inval_is_a_stale_write() {
    let r = run_scenario(&load_file("vkernel-lost-dirty-bit.ron"));
    passes(&r);
    assert_eq!(r.violations, 1);
    let [u]: &[SoftStaleUse; 1] = r.soft_stale_uses.as_slice().try_into().unwrap();
    assert_eq!((u.core, u.va, u.kind), (1, GVA, AccessKind::Write));
    // Same frame; only the write right is stale.
    assert_eq!(u.cached.frame, G1_HOST);
    assert_eq!(u.source.frame, G1_HOST);
    assert!(u.mismatch.write && !u.mismatch.frame && !u.mismatch.invalid);
    assert!(
        !u.source.writable,
        "M clear: the host would map it read-only"
    );
    let st = u.staled_by.unwrap();
    assert_eq!((st.core, st.old, st.new), (0, 0x10067, 0x10027));
    assert!(just_before(&r, st.rip, "vk_m_cleared"), "the lock and");
}

#[test]
fn vpte_change_followed_by_madv_inval_reports_nothing() {
    for name in [
        "vkernel-vpte-no-madv-inval-fixed.ron",
        "vkernel-lost-dirty-bit-fixed.ron",
    ] {
        let r = run_scenario(&load_file(name));
        passes(&r);
        assert!(r.soft_stale_uses.is_empty(), "{name}");
        assert_eq!(r.violations, 0, "{name}");
    }
}

#[test]
fn a_read_through_a_writable_pte_of_a_clean_page_is_fine() {
    // The lost-dirty-bit bug, but vcpu 1 reads instead of writing: the real PTE is
    // writable while M is clear, which only matters for writes.
    let mut s = load_file("vkernel-lost-dirty-bit.ron");
    patch_guest(
        &mut s,
        "movq $0x2222, GVA                # writes",
        "movq GVA, %rax                   # reads",
    );
    s.expect = vec![Expect::NoSoftStaleUse {
        core: None,
        va: None,
        kind: None,
    }];
    let r = run_scenario(&s);
    passes(&r);
    assert_eq!(r.violations, 0);
}

#[test]
fn a_read_through_a_remapped_pte_is_stale() {
    // The remap bug, but vcpu 1 reads: a wrong frame is wrong for reads too.
    let mut s = load_file("vkernel-vpte-no-madv-inval.ron");
    patch_guest(
        &mut s,
        "movq $0x600d, GVA                # the guest's write",
        "movq GVA, %rax                   # the guest's read",
    );
    s.expect = vec![
        Expect::SoftStaleUse {
            core: Some(1),
            va: Some(Value::Sym("GVA".into())),
            kind: Some(KindSpec::Read),
        },
        Expect::NoSoftStaleUse {
            core: None,
            va: None,
            kind: Some(KindSpec::Write),
        },
        Expect::Violations(1),
    ];
    let r = run_scenario(&s);
    passes(&r);
    // It read the reused G1 instead of the migrated page.
    assert_eq!(r.soft_stale_uses[0].pa, G1_HOST);
}

#[test]
fn afterlabel_coherence_allows_uses_before_the_label() {
    // Under AfterLabel with a label never reached, the use is reported but allowed.
    let mut s = load_file("vkernel-vpte-no-madv-inval.ron");
    s.coherence = emu::scenario::schema::Coherence::AfterLabel("vk0_start".into());
    s.expect.clear();
    let r = run_scenario(&s);
    assert_eq!(r.soft_stale_uses.len(), 1);
    assert!(!r.soft_stale_uses[0].violation);
    assert_eq!(r.violations, 0);
}

#[test]
fn a_bad_declaration_is_located() {
    let mut s = load_file("vkernel-lost-dirty-bit.ron");
    s.soft_tlbs[0].space = "vkk".into();
    let built = build(&s, &dir()).unwrap();
    let p = validate(&s, &built).unwrap_err();
    assert_eq!(p.path, "soft_tlbs[0].space");
    assert!(
        p.message.contains("unknown address space `vkk`"),
        "{}",
        p.message
    );
    let mut s = load_file("vkernel-lost-dirty-bit.ron");
    s.soft_tlbs[0].region.len = Value::Num(0x1800);
    let built = build(&s, &dir()).unwrap();
    assert_eq!(
        validate(&s, &built).unwrap_err().path,
        "soft_tlbs[0].region"
    );
}

#[test]
fn scenarios_without_soft_tlbs_are_untouched() {
    // No declaration: the runner does not ask for accesses, and reports none.
    let s = load_file("missing-invlpg.ron");
    assert!(s.soft_tlbs.is_empty());
    let r = run_scenario(&s);
    assert!(r.soft_stale_uses.is_empty());
    // Sinks that do not opt in are never asked for accesses.
    assert!(!CountSink::default().observes_accesses());
}

#[test]
fn json_report_carries_the_explanation() {
    let r = run_scenario(&load_file("vkernel-lost-dirty-bit.ron"));
    let j = r.to_json(true);
    let u = &j["soft_stale_uses"][0];
    assert_eq!(u["table"], "vkernel VPTEs");
    assert_eq!(u["kind"], "Write");
    assert_eq!(u["source"]["value"], 0x10027);
    assert_eq!(u["mismatch"]["write"], true);
    assert_eq!(j["violations"], 1);
}

#[test]
fn invlpg_is_not_madv_inval_and_is_listed() {
    // A wrong fix: the vkernel (run at CPL 0 here so it may) INVLPGs the page after
    // the VPTE change. That flushes TLBs, not the host's real PTE: the write is
    // still a stale use, and the explanation lists the INVLPG.
    let mut s = load_file("vkernel-vpte-no-madv-inval.ron");
    s.cores[0].cpl = 0;
    patch_guest(
        &mut s,
        "vk_vpte_cleared:\n",
        "vk_vpte_cleared:\n    invlpg GVA\n",
    );
    s.expect = vec![Expect::Violations(1)];
    let r = run_scenario(&s);
    passes(&r);
    let u = &r.soft_stale_uses[0];
    assert_eq!(u.invalidations.len(), 1, "{:?}", u.invalidations);
    let n = u.invalidations[0];
    assert_eq!(n.core, 0);
    assert_eq!(n.op.to_string(), format!("INVLPG {}", mmu::VirtAddr(GVA)));
    let text = r.to_text(true);
    assert!(text.contains("hardware invalidations (they flush TLBs, not the real PTE)"));
    assert!(text.contains("INVLPG"), "{text}");
}

#[test]
fn debugger_lists_soft_stale_uses_and_steps_back_over_them() {
    use emu::debug::{execute, parse, Session};
    let mut s = Session::open(&dir().join("vkernel-lost-dirty-bit.ron")).unwrap();
    let ok = |s: &mut Session, line: &str| {
        let r = execute(s, &parse(line).unwrap().unwrap());
        assert!(!r.error, "`{line}`: {}", r.text);
        r.text
    };
    ok(&mut s, "continue");
    assert_eq!(s.runner().soft_stale_uses().len(), 1);
    let t = ok(&mut s, "stale");
    assert!(t.contains("S1 (violation) vkernel VPTEs on core 1"), "{t}");
    // Reverse stepping restores the checker with the machine (snapshots clone it).
    ok(&mut s, "goto 0");
    assert!(s.runner().soft_stale_uses().is_empty());
    ok(&mut s, "continue");
    assert_eq!(s.runner().soft_stale_uses().len(), 1);
    assert_eq!(s.runner().violations(), 1);
}

#[test]
fn saved_debugger_session_keeps_the_declaration_and_the_use() {
    use emu::debug::{execute, parse, Session};
    let tmp = std::env::temp_dir().join(format!("tlbemu-soft-save-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join("session.ron");
    let mut s = Session::open(&dir().join("vkernel-vpte-no-madv-inval.ron")).unwrap();
    for line in ["continue".to_string(), format!("save {}", out.display())] {
        let r = execute(&mut s, &parse(&line).unwrap().unwrap());
        assert!(!r.error, "`{line}`: {}", r.text);
    }
    let (sc, _) = load(&out).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        sc.soft_tlbs,
        load_file("vkernel-vpte-no-madv-inval.ron").soft_tlbs
    );
    let built = build(&sc, &tmp).unwrap_or_else(|p| panic!("{p:?}"));
    let plan = Plan::compile(&sc, built).unwrap_or_else(|p| panic!("{p:?}"));
    let r = run(&Arc::new(plan), false);
    assert!(r.passed(true), "{}", r.to_text(true));
    assert_eq!(r.soft_stale_uses.len(), 1);
    assert_eq!(r.violations, 1);
    let _ = std::fs::remove_dir_all(&tmp);
}
