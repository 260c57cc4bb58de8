//! The debugger's command layer: parse + execute on a session over real scenario
//! files, reverse stepping to identical states, breakpoints, and saving a session
//! as a scenario that replays to the same stale use.

use emu::debug::{execute, parse, Command, Interrupt, Session, SNAPSHOT_EVERY};
use emu::scenario::{self, Runner};
use std::path::PathBuf;
use std::sync::Arc;

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn open(name: &str) -> Session {
    match Session::open(&scenario_path(name)) {
        Ok(s) => s,
        Err(d) => panic!("{name}: {d}"),
    }
}

/// Runs one command line; panics (the test fails) on a parse or command error.
fn ok(s: &mut Session, line: &str) -> String {
    let c = parse(line)
        .unwrap_or_else(|e| panic!("`{line}` did not parse: {e}"))
        .unwrap_or_else(|| panic!("`{line}` parsed to nothing"));
    let r = execute(s, &c);
    assert!(!r.error, "`{line}` failed: {}", r.text);
    r.text
}

fn fails(s: &mut Session, line: &str) -> String {
    match parse(line) {
        Err(e) => e.message,
        Ok(Some(c)) => {
            let r = execute(s, &c);
            assert!(r.error, "`{line}` should have failed, said: {}", r.text);
            r.text
        }
        Ok(None) => panic!("`{line}` parsed to nothing"),
    }
}

/// Everything observable about the machine: registers of every core, the memory
/// fingerprint, every core's TLB/PSC dump, the position and the stale uses.
fn fingerprint(s: &Session) -> String {
    let m = s.runner().machine();
    let mut out = format!(
        "pos {} steps {} mem {:#x} stale {}\n",
        s.pos(),
        m.steps,
        s.memory_fingerprint(),
        s.runner().stale_uses().len()
    );
    for (i, c) in m.cores.iter().enumerate() {
        out += &format!(
            "core {i}: {:?}\n{:?}\n",
            c.cpu.state,
            c.mmu.dump(&m.tracker)
        );
    }
    out += &format!("{:?}\n", s.runner().decisions());
    out
}

#[test]
fn parse_errors_say_what_was_expected() {
    let msg = |l: &str| parse(l).err().map(|e| e.message).unwrap_or_default();
    assert!(msg("step x").contains("expected a count"));
    assert!(msg("step core").contains("expected a core number"));
    assert!(msg("goto").contains("expected a step number"));
    assert!(msg("break fill").contains("expected a linear address"));
    assert!(msg("frobnicate").contains("unknown command `frobnicate`"));
    assert!(msg("save").contains("expected a file path"));
    assert!(msg("syntax klingon").contains("expected `att` or `intel`"));
    assert_eq!(parse("  # a comment"), Ok(None));
    assert_eq!(
        parse("step core 2 5"),
        Ok(Some(Command::Step {
            core: Some(2),
            count: 5
        }))
    );
    assert_eq!(
        parse("save! out.ron"),
        Ok(Some(Command::Save {
            path: "out.ron".into(),
            force: true
        }))
    );
}

#[test]
fn step_and_step_core_advance_one_core() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "step");
    assert_eq!(s.pos(), 1);
    assert_eq!(s.runner().machine().cores[0].cpu.state.gpr[0], 0x1111);
    ok(&mut s, "step core 0 2");
    assert_eq!(s.pos(), 3);
    assert_eq!(s.runner().machine().steps, 3);
    let e = fails(&mut s, "step core 7");
    assert!(e.contains("there is no core 7"), "{e}");
    let e = fails(&mut s, "x nosuchsym");
    assert!(
        e.contains("expected a number or a symbol expression"),
        "{e}"
    );
}

#[test]
fn step_core_on_a_multi_core_scenario_leaves_the_others_alone() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    let before: Vec<u64> = s
        .runner()
        .machine()
        .cores
        .iter()
        .map(|c| c.cpu.state.rip)
        .collect();
    // Core 2 runs two instructions and halts; the third step cannot make progress.
    let t = ok(&mut s, "step core 2 3");
    assert!(t.contains("core 2 is halted"), "{t}");
    let m = s.runner().machine();
    assert_eq!(m.cores[0].cpu.state.rip, before[0]);
    assert_eq!(m.cores[1].cpu.state.rip, before[1]);
    assert_ne!(m.cores[2].cpu.state.rip, before[2]);
    assert_eq!(m.cores[2].retired, 2);
    assert_eq!(s.pos(), 2);
}

#[test]
fn reverse_step_returns_to_the_identical_state() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "step 3");
    let at3 = fingerprint(&s);
    ok(&mut s, "step 2");
    assert_eq!(s.runner().stale_uses().len(), 1);
    assert_ne!(fingerprint(&s), at3);
    ok(&mut s, "rstep 2");
    assert_eq!(fingerprint(&s), at3);
    // And forward again along the recorded history reaches the same end.
    ok(&mut s, "step 2");
    let at5 = fingerprint(&s);
    ok(&mut s, "goto 0");
    ok(&mut s, "goto 5");
    assert_eq!(fingerprint(&s), at5);
}

#[test]
fn goto_crosses_snapshots_on_a_long_run() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    s.set_snapshot_every(16);
    ok(&mut s, "continue");
    let end = s.pos();
    assert!(end > 100, "the scenario is long enough to exercise replay");
    // Snapshots thin out with distance from the present: far fewer than one
    // per 16 units, position 0 and the newest multiple of 16 always there.
    let pos = s.snapshot_positions();
    assert!(pos.len() < end / 16 + 1, "{pos:?}");
    assert_eq!(pos.first(), Some(&0));
    assert_eq!(pos.last(), Some(&(end / 16 * 16)));
    let mut states = Vec::new();
    for n in [end / 3, end / 2, end - 1] {
        ok(&mut s, &format!("goto {n}"));
        states.push((n, fingerprint(&s)));
    }
    // Re-execute from scratch in a fresh session and compare.
    let mut fresh = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    for (n, fp) in states {
        ok(&mut fresh, "goto 0");
        ok(&mut fresh, &format!("next {n}"));
        assert_eq!(fingerprint(&fresh), fp, "position {n}");
    }
    // Default spacing: the state just past the first snapshot replays the same.
    let mut a = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut a, &format!("next {}", SNAPSHOT_EVERY.min(end - 2) + 1));
    let want = fingerprint(&a);
    ok(&mut a, "rstep 1");
    ok(&mut a, "goto 0");
    ok(&mut a, &format!("goto {}", SNAPSHOT_EVERY.min(end - 2) + 1));
    assert_eq!(fingerprint(&a), want);
}

#[test]
fn breakpoint_on_stale_use_stops_there_and_reverse_continue_goes_back() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "break stale");
    let t = ok(&mut s, "continue");
    assert!(t.contains("breakpoint 1 (stale use)"), "{t}");
    assert_eq!(s.runner().stale_uses().len(), 1);
    let hit = s.pos();
    ok(&mut s, "continue");
    assert!(s.pos() > hit);
    let t = ok(&mut s, "rcontinue");
    assert!(t.contains("breakpoint 1"), "{t}");
    assert_eq!(s.pos(), hit);
}

#[test]
fn breakpoint_on_a_label_and_until() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "break changed");
    let t = ok(&mut s, "continue");
    assert!(t.contains("label changed"), "{t}");
    let rip = s.runner().machine().cores[0].cpu.state.rip;
    assert_eq!(Some(&rip), s.runner().symbols().get("changed"));
    assert_eq!(s.runner().stale_uses().len(), 0);
    ok(&mut s, "delete");
    ok(&mut s, "goto 0");
    let t = ok(&mut s, "until event stale-use");
    assert!(t.contains("reached event stale-use"), "{t}");
}

#[test]
fn breakpoint_on_tlb_fill_and_paging_write() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "break fill 0x400000");
    let t = ok(&mut s, "continue");
    assert!(t.contains("filled its TLB for va 0x400000"), "{t}");
    assert_eq!(s.pos(), 1);
    ok(&mut s, "delete 1");
    ok(&mut s, "break ptwrite 0x400000");
    let t = ok(&mut s, "continue");
    assert!(t.contains("breakpoint 2"), "{t}");
    assert_eq!(s.pos(), 4, "the fourth instruction writes the PTE");
}

#[test]
fn breakpoint_on_ipi_to_a_core() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut s, "break ipi 2");
    let t = ok(&mut s, "continue");
    assert!(t.contains("to core 2"), "{t}");
    let last = s
        .events()
        .iter()
        .rev()
        .find(|e| e.kind.name() == "ipi-sent");
    assert!(last.is_some());
}

#[test]
fn views_change_nothing() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "step 2");
    let before = fingerprint(&s);
    for l in [
        "tlb",
        "walk 0x400000",
        "x 0x400000 32",
        "xp 0x200000 16",
        "regs",
        "disas",
        "disas start 4",
        "cores",
        "events 10 kind tlb-fill core 0",
        "status",
        "breaks",
    ] {
        ok(&mut s, l);
    }
    assert_eq!(fingerprint(&s), before);
    let t = ok(&mut s, "x 0x400000 8");
    assert!(t.contains("11 11 00 00"), "{t}");
}

#[test]
fn saved_session_replays_to_the_same_stale_use() {
    let dir = std::env::temp_dir().join(format!("tlbemu-debug-save-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let out = dir.join("session.ron");
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut s, "break stale");
    ok(&mut s, "continue");
    let want = s.runner().stale_uses()[0].detail.clone();
    ok(&mut s, "rstep");
    ok(&mut s, "step core 0");
    ok(&mut s, &format!("save {}", out.display()));
    // Never overwrite without confirmation.
    let c = parse(&format!("save {}", out.display())).ok().flatten();
    let r = execute(&mut s, &c.unwrap_or(Command::Quit { force: true }));
    assert!(r.error && r.confirm_overwrite.is_some(), "{}", r.text);
    ok(&mut s, &format!("save! {}", out.display()));

    let (sc, _src) = scenario::load(&out).unwrap_or_else(|d| panic!("{d}"));
    let built = scenario::build(&sc, &dir).unwrap_or_else(|p| panic!("{p:?}"));
    let plan = scenario::Plan::compile(&sc, built).unwrap_or_else(|p| panic!("{p:?}"));
    let report = scenario::run(&Arc::new(plan), false);
    assert!(report.passed(true), "{}", report.to_text(true));
    assert_eq!(report.stale_uses.len(), 1);
    assert_eq!(report.stale_uses[0].detail, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn runner_clone_is_a_snapshot() {
    // The session relies on this: a clone does not see later steps.
    let (_sc, _src, plan) =
        scenario::prepare(&scenario_path("missing-invlpg.ron")).unwrap_or_else(|d| panic!("{d}"));
    let mut r = Runner::start(plan, true);
    r.step();
    let snap = r.clone();
    r.run_to_end();
    assert_eq!(snap.machine().steps, 1);
    assert!(r.machine().steps > 1);
}

#[test]
fn stepping_a_core_stops_at_the_step_budget() {
    let path = scenario_path("missing-invlpg.ron");
    let (mut sc, _src, plan) = scenario::prepare(&path).unwrap_or_else(|d| panic!("{d}"));
    sc.max_steps = Some(2);
    let plan =
        scenario::Plan::compile(&sc, plan.built().clone()).unwrap_or_else(|p| panic!("{p:?}"));
    let mut s = Session::new(&path, Arc::new(plan));
    let t = ok(&mut s, "step 1000000");
    assert!(t.contains("step budget of 2"), "{t}");
    assert_eq!(s.pos(), 2);
}

#[test]
fn evict_is_a_step_that_replays_and_saves() {
    let dir = std::env::temp_dir().join(format!("tlbemu-debug-evict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let out = dir.join("evicted.ron");
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "step 4");
    ok(&mut s, "evict 0x400000");
    ok(&mut s, "step 1");
    // The entry was gone, so the read walked the new PTE: no stale use.
    assert_eq!(s.runner().stale_uses().len(), 0);
    assert_eq!(s.runner().machine().cores[0].cpu.state.gpr[2], 0x2222);
    let end = fingerprint(&s);
    ok(&mut s, "rstep 2");
    assert_eq!(s.pos(), 4);
    // `goto` counts machine steps, which the eviction does not add to: four
    // instructions, the eviction, the fifth.
    ok(&mut s, "goto 5");
    assert_eq!(fingerprint(&s), end);
    ok(&mut s, &format!("save {}", out.display()));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(text.contains("Evict("), "{text}");
    let (sc, _src) = scenario::load(&out).unwrap_or_else(|d| panic!("{d}"));
    let built = scenario::build(&sc, &dir).unwrap_or_else(|p| panic!("{p:?}"));
    let plan = scenario::Plan::compile(&sc, built).unwrap_or_else(|p| panic!("{p:?}"));
    let report = scenario::run(&Arc::new(plan), false);
    assert!(report.passed(true), "{}", report.to_text(true));
    assert_eq!(report.stale_uses.len(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything a position determines: registers, caches, memory, decisions,
/// the schedule's cursor, the oracle's findings and the event log.
fn full_state(s: &Session) -> String {
    let r = s.runner();
    let mut out = fingerprint(s);
    out += &format!("{:?}\n{:?}\n", r.machine().cores, r.cursor());
    out += &format!("{:?}\n", r.stale_uses());
    out += &format!("{:?}\n", s.events().iter().collect::<Vec<_>>());
    out
}

/// A copy of a bench loop scenario with `rdx` iterations, in a scratch file.
fn loop_scenario(name: &str, rdx: u64) -> PathBuf {
    let text = std::fs::read_to_string(scenario_path(&format!("bench/{name}.ron")))
        .expect("bench scenario")
        .replace("\"rdx\": 1000,", &format!("\"rdx\": {rdx},"));
    let dir = std::env::temp_dir().join(format!("emu-debug-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let p = dir.join(format!("{name}.ron"));
    std::fs::write(&p, text).expect("write scenario");
    p
}

#[test]
fn reverse_steps_after_a_long_run_match_a_fresh_run() {
    // Sparse snapshots far back: going back any distance re-executes from the
    // nearest earlier one and must land on exactly the state a fresh run reaches.
    let mut s = open("bench/loop-4core-rr1.ron");
    s.set_snapshot_every(4);
    let n = 3000;
    ok(&mut s, &format!("next {n}"));
    assert_eq!(s.pos(), n);
    assert!(
        s.snapshot_count() <= 2 * (n / 4).ilog2() as usize + 2,
        "{:?}",
        s.snapshot_positions()
    );
    assert_eq!(
        s.history().stored(),
        1,
        "a run of schedule steps is one entry"
    );
    for k in [1, 3, 7, 100, 1500, 2999] {
        ok(&mut s, &format!("goto {n}"));
        ok(&mut s, &format!("rstep {k}"));
        let mut fresh = open("bench/loop-4core-rr1.ron");
        ok(&mut fresh, &format!("next {}", n - k));
        assert_eq!(full_state(&s), full_state(&fresh), "back {k} from {n}");
    }
    // The same on one core stepped outside the schedule.
    let mut s = open("bench/loop-1core.ron");
    s.set_snapshot_every(8);
    ok(&mut s, "step 4000");
    ok(&mut s, "rstep 777");
    let mut fresh = open("bench/loop-1core.ron");
    ok(&mut fresh, "step 3223");
    assert_eq!(full_state(&s), full_state(&fresh));
}

#[test]
fn a_new_path_after_stepping_back_forgets_the_old_future() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    s.set_snapshot_every(2);
    ok(&mut s, "next 10");
    ok(&mut s, "step core 1 5");
    ok(&mut s, "next 5");
    assert_eq!(s.history().stored(), 3);
    // Back into the core-1 run, then a different unit there.
    ok(&mut s, "rstep 9");
    ok(&mut s, "step core 0 3");
    assert_eq!(s.history().len(), 14);
    let mut fresh = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut fresh, "next 10");
    ok(&mut fresh, "step core 1 1");
    ok(&mut fresh, "step core 0 3");
    assert_eq!(full_state(&s), full_state(&fresh));
    for k in [1, 2, 5] {
        ok(&mut s, "goto 14");
        ok(&mut fresh, "goto 14");
        ok(&mut s, &format!("rstep {k}"));
        ok(&mut fresh, &format!("rstep {k}"));
        assert_eq!(full_state(&s), full_state(&fresh), "back {k}");
    }
}

#[test]
fn an_interrupt_stops_a_long_step_where_it_is() {
    let p = loop_scenario("loop-1core", 1_000_000);
    let mut s = Session::open(&p).unwrap_or_else(|d| panic!("{d}"));
    // A poll that answers "Ctrl-C" the first time it is asked.
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = Arc::clone(&asked);
    let poll: Arc<dyn Fn() -> bool + Send + Sync> =
        Arc::new(move || !a.swap(true, std::sync::atomic::Ordering::Relaxed));
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    s.set_interrupt(Interrupt::flag(Arc::clone(&flag)).with_poll(poll));
    let t = ok(&mut s, "step 100000");
    let at = emu::debug::POLL_EVERY as usize - 1;
    assert!(t.contains("interrupted (Ctrl-C)"), "{t}");
    assert!(t.contains(&format!("now at step {at}")), "{t}");
    assert_eq!(s.pos(), at);
    // The request was consumed: the next command runs to its end.
    let t = ok(&mut s, "step 10");
    assert!(!t.contains("interrupted"), "{t}");
    assert_eq!(s.pos(), at + 10);
    // A flag set by a signal handler stops the next unit.
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let (done, stop) = s.run_schedule(Some(5), None);
    assert_eq!(done, 0);
    assert!(matches!(stop, emu::debug::Stop::Interrupted(_)), "{stop:?}");
}

#[test]
fn a_budget_refusal_says_how_to_raise_it() {
    let p = loop_scenario("loop-1core", 1_000_000);
    let text = std::fs::read_to_string(&p).expect("scenario");
    let p2 = p.with_file_name("small-budget.ron");
    std::fs::write(
        &p2,
        text.replace(
            "machine: (cores: 1, memory: 0x1000000),",
            "machine: (cores: 1, memory: 0x1000000), max_steps: 5,",
        ),
    )
    .expect("write");
    let mut s = Session::open(&p2).unwrap_or_else(|d| panic!("{d}"));
    let t = ok(&mut s, "step 10");
    assert!(t.contains("raise `max_steps: N`"), "{t}");
    let mut s = Session::open(&p2).unwrap_or_else(|d| panic!("{d}"));
    let t = ok(&mut s, "continue");
    assert!(t.contains("raise `max_steps: N`"), "{t}");
}

/// The reply to one parsed line, error or not.
fn reply(s: &mut Session, line: &str) -> emu::debug::Reply {
    let c = parse(line)
        .unwrap_or_else(|e| panic!("`{line}` did not parse: {e}"))
        .unwrap_or_else(|| panic!("`{line}` parsed to nothing"));
    execute(s, &c)
}

#[test]
fn became_stale_events_are_filed_under_the_core_whose_entry_went_stale() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut s, "break stale");
    ok(&mut s, "continue");
    let t = ok(&mut s, "events 10 kind became-stale core 0");
    assert!(t.contains(" c0 became-stale"), "{t}");
    // Core 1 wrote the PTE; the event still names it.
    assert!(t.contains("core 1 wrote"), "{t}");
    assert!(!t.contains(" c1 "), "{t}");
}

#[test]
fn goto_counts_the_steps_explanations_count_even_after_a_fill() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "step 1");
    // An address the kernel has not touched yet: the fill is a real unit.
    let t = ok(&mut s, "fill 0xffff880003c00000");
    assert!(t.contains("filled"), "{t}");
    ok(&mut s, "break stale");
    let t = ok(&mut s, "continue");
    let step: u64 = t
        .split("at step ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step in {t}"));
    ok(&mut s, &format!("goto {}", step - 1));
    assert_eq!(s.runner().stale_uses().len(), 0);
    ok(&mut s, &format!("goto {step}"));
    assert_eq!(s.runner().machine().steps, step);
    assert_eq!(s.runner().stale_uses().len(), 1);
    assert!(ok(&mut s, "status").starts_with(&format!("step {step}/")));
}

#[test]
fn fill_of_a_cached_va_says_so_and_takes_no_step() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "step 1");
    let t = ok(&mut s, "fill 0x400000");
    assert!(t.contains("already in core 0's TLB"), "{t}");
    assert!(t.contains("no step taken"), "{t}");
    assert_eq!(s.pos(), 1);
    assert_eq!(s.history().len(), 1);
}

#[test]
fn ptwrite_leaves_out_the_walkers_ad_updates_unless_asked() {
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "break ptwrite 0x400000 +ad");
    let t = ok(&mut s, "continue");
    assert!(
        t.contains("0x3c04007 -> 0x3c04027"),
        "the A bit set on step 1: {t}"
    );
    assert_eq!(s.pos(), 1);
    ok(&mut s, "delete");
    ok(&mut s, "goto 0");
    ok(&mut s, "break ptwrite 0x400000");
    let t = ok(&mut s, "continue");
    assert!(t.contains("core 0 wrote"), "{t}");
    assert_eq!(s.pos(), 4);
}

#[test]
fn walk_of_a_non_canonical_va_is_reported() {
    let mut s = open("missing-invlpg.ron");
    let t = fails(&mut s, "walk 0x8000000000000000");
    assert!(t.contains("not canonical"), "{t}");
    assert_eq!(s.walk_va, None);
}

#[test]
fn no_rust_debug_text_in_events_walks_or_entries() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut s, "continue");
    let mut all = ok(&mut s, "events 100000");
    all += &ok(&mut s, "tlb");
    all += &ok(&mut s, "walk 0x7000000000");
    all += &ok(&mut s, "status");
    for bad in [
        "Some(",
        "None",
        "VirtAddr(",
        "PhysAddr(",
        " { ",
        "Invlpg",
        "NotPresent",
    ] {
        assert!(!all.contains(bad), "`{bad}` in:\n{all}");
    }
    assert!(all.contains("invalidation INVLPG 0x400000"), "{all}");
    assert!(all.contains("EOI vector 0x"), "{all}");
}

#[test]
fn a_halted_core_is_named_by_its_hlt_and_explanations_name_code() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut s, "break stale");
    let t = ok(&mut s, "continue");
    assert!(t.contains("(rip 0xffffffff80002017 <t2_body>)"), "{t}");
    let t = ok(&mut s, "cores");
    assert!(t.contains("<hlt@b_done> halted"), "{t}");
}

#[test]
fn quit_asks_while_an_interleaving_is_unsaved() {
    let dir = std::env::temp_dir().join(format!("tlbemu-debug-quit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut s = open("missing-invlpg.ron");
    // Along the schedule only: nothing to lose.
    ok(&mut s, "next 1");
    assert!(reply(&mut s, "quit").quit);
    ok(&mut s, "step 1");
    let r = reply(&mut s, "quit");
    assert!(!r.quit && r.confirm_quit, "{r:?}");
    assert!(r.text.contains("not saved"), "{}", r.text);
    assert!(reply(&mut s, "quit!").quit);
    ok(&mut s, &format!("save {}", dir.join("a.ron").display()));
    assert!(reply(&mut s, "quit").quit);
    ok(&mut s, "step 1");
    assert!(reply(&mut s, "quit").confirm_quit);
    // A directory is not offered for overwriting.
    let r = reply(&mut s, &format!("save {}", dir.display()));
    assert!(r.error && r.confirm_overwrite.is_none(), "{r:?}");
    assert!(r.text.contains("is a directory"), "{}", r.text);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_zero_count_is_refused_when_parsed() {
    for line in ["step core 1 0", "step 0", "next 0", "rstep 0"] {
        let e = parse(line)
            .err()
            .unwrap_or_else(|| panic!("`{line}` parsed"));
        assert!(e.message.contains("a count of 0 does nothing"), "{e}");
    }
}

#[test]
fn breakpoints_can_be_per_core_and_conditional() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    let t = ok(&mut s, "break event tlb-fill core 1");
    assert!(t.contains("event tlb-fill core 1"), "{t}");
    let t = ok(&mut s, "continue");
    assert!(t.contains("tlb-fill event on core 1"), "{t}");
    ok(&mut s, "delete");
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "break changed if rdx == 0x5");
    let t = ok(&mut s, "continue");
    assert!(
        !t.contains("breakpoint 1"),
        "the condition is false there: {t}"
    );
    ok(&mut s, "goto 0");
    let t = ok(&mut s, "break changed core 0 if rip == changed");
    assert!(t.contains("core 0 if rip =="), "{t}");
    let t = ok(&mut s, "continue");
    assert!(t.contains("breakpoint 2"), "{t}");
    assert!(fails(&mut s, "break changed if rax").contains("expected a comparison"));
    assert!(fails(&mut s, "break changed core 9").contains("no core 9"));
}

#[test]
fn watchpoints_stop_on_guest_accesses_and_reverse_continue_finds_the_previous_hit() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    let t = ok(&mut s, "watch pmap_p w");
    assert!(t.contains("watch write of pmap_p"), "{t}");
    let t = ok(&mut s, "continue");
    assert!(
        t.contains("core 0 write pmap_p 0x7 {0,1,2} -> 0x6 {1,2} (cleared {0})"),
        "{t}"
    );
    let cleared = s.step();
    ok(&mut s, "delete");
    let t = ok(&mut s, "watch pmap_p+PM_ACTIVE r core 1");
    assert!(t.ends_with("core 1"), "{t}");
    let t = ok(&mut s, "continue");
    assert!(
        t.contains("core 1 read pmap_p+PM_ACTIVE = 0x6 {1,2}"),
        "{t}"
    );
    let first = s.step();
    assert!(first > cleared);
    ok(&mut s, "continue");
    assert!(s.step() > first);
    let t = ok(&mut s, "rcontinue");
    assert!(t.contains("core 1 read"), "{t}");
    assert_eq!(s.step(), first);
    assert!(ok(&mut s, "breaks").contains("watch read of pmap_p+PM_ACTIVE"));
    ok(&mut s, "delete");
    assert_eq!(ok(&mut s, "breaks"), "no breakpoints");
}

#[test]
fn a_watchpoint_ignores_the_walkers_ad_updates_and_the_debuggers_reads() {
    // Step 1's walk sets the accessed bit of the PML4 entry at 0x3c00000; no
    // guest instruction stores there.
    let mut s = open("missing-invlpg.ron");
    ok(&mut s, "watch p:0x3c00000 rw");
    ok(&mut s, "xp 0x3c00000 8");
    let t = ok(&mut s, "continue");
    assert!(!t.contains("breakpoint 1"), "{t}");
    assert!(t.contains("the schedule completed"), "{t}");
    let mut s = open("missing-invlpg.ron");
    assert!(fails(&mut s, "watch 0x400ffc 8").contains("cross a page boundary"));
    assert!(fails(&mut s, "watch 0x400000 3").contains("1, 2, 4 or 8"));
}

#[test]
fn who_shows_every_cores_entries_for_a_page_and_why_one_is_stale() {
    let mut s = open("dragonfly-2017-swtch-pmactive-buggy.ron");
    ok(&mut s, "break stale");
    ok(&mut s, "continue");
    let t = ok(&mut s, "who 0x400000");
    for c in 0..3 {
        assert!(
            t.contains(&format!("core {c} (current pcid 0x0): 4 entries")),
            "{t}"
        );
    }
    assert!(
        t.contains("0x400000 -> 0x800000       4K   wux - - @4 STALE"),
        "{t}"
    );
    assert!(
        t.contains(
            "stale: core 1 wrote 0x3c08000 at step 107 (rip 0xffffffff800010e8 <ipis_sent+0x17>)"
        ),
        "{t}"
    );
    assert!(
        t.contains("PSC-L2   0x0           0x400000 -> L2->0x3c08000"),
        "{t}"
    );
    assert_eq!(t.matches("STALE").count(), 1, "{t}");
    let t = ok(&mut s, "who 0x8000000000");
    assert_eq!(t.matches("nothing cached").count(), 3, "{t}");
}
