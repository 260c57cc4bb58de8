//! The compiled plan and the runner on it: names are resolved once, a run without
//! recording judges exactly as one with every event recorded, runs from one plan
//! are independent and identical, and the decision log of a round robin stays
//! small however long it runs.

use emu::events::EventClass;
use emu::scenario::{self, Decision, Plan, RunReport, Runner, Step, Stop, Test};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ron_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // Unscripted twins have no schedule to run; explore's tests hold them.
            if p.file_name().is_some_and(|n| n == "unscripted") {
                continue;
            }
            ron_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ron") {
            out.push(p);
        }
    }
}

fn plan(rel: &str) -> Arc<Plan> {
    let (_, _, plan) =
        scenario::prepare(&root().join(rel)).unwrap_or_else(|d| panic!("{rel}: {d}"));
    plan
}

/// Everything a report says that a consumer can see, as text.
fn verdict(r: &RunReport) -> String {
    let mut s = format!(
        "{:?}\nsteps {}\nviolations {}\n",
        r.ending, r.steps, r.violations
    );
    for u in &r.stale_uses {
        s += &format!("stale {:?} {:?}\n", u.violation, u.detail);
    }
    for e in &r.expectations {
        s += &format!("expect {} {} {}\n", e.what, e.ok, e.actual);
    }
    for c in &r.cores {
        s += &format!("core {c:?}\n");
    }
    s += &format!("{:?}\n", r.decisions);
    s
}

#[test]
fn a_run_without_recording_judges_exactly_as_a_recorded_one() {
    // Without a trace only the event classes the oracle and the plan consume are
    // built; stale uses, violations, exceptions, counts and every expectation
    // must come out as when every event is kept.
    let mut files = Vec::new();
    ron_files(&root().join("scenarios"), &mut files);
    assert!(files.len() > 10, "only {} scenarios found", files.len());
    for f in &files {
        let (_, _, plan) = scenario::prepare(f).unwrap_or_else(|d| panic!("{d}"));
        let quiet = scenario::run(&plan, false);
        let loud = scenario::run(&plan, true);
        assert!(quiet.events.is_empty());
        assert_eq!(
            verdict(&quiet),
            verdict(&loud),
            "{}: recording changed the verdict",
            f.display()
        );
        assert_eq!(
            quiet.passed(plan.expects_violations()),
            loud.passed(plan.expects_violations()),
            "{}",
            f.display()
        );
    }
}

#[test]
fn runs_from_one_plan_are_independent_and_identical() {
    let p = plan("scenarios/dragonfly-2017-swtch-pmactive-buggy.ron");
    let first = scenario::run(&p, false);
    assert!(
        first.passed(p.expects_violations()),
        "{}",
        first.to_text(true)
    );
    assert!(first.violations > 0);
    // A runner part-way through does not disturb a later one from the plan.
    let mut half = Runner::start(Arc::clone(&p), false);
    for _ in 0..first.steps / 2 {
        half.step();
    }
    let fork = half.clone();
    half.run_to_end();
    for _ in 0..3 {
        assert_eq!(verdict(&scenario::run(&p, false)), verdict(&first));
    }
    assert_eq!(verdict(&half.report()), verdict(&first));
    let mut fork = fork;
    fork.run_to_end();
    assert_eq!(verdict(&fork.report()), verdict(&first));
    assert_eq!(p.machine().steps, 0, "the plan's machine is never stepped");
}

#[test]
fn the_plan_holds_resolved_names() {
    let p = plan("scenarios/dragonfly-2017-swtch-pmactive-buggy.ron");
    let s = p.scenario();
    assert_eq!(p.schedule().len(), s.schedule.len());
    let mut labels = 0;
    for (st, orig) in p.schedule().iter().zip(&s.schedule) {
        if let (
            Step::Run { until, .. },
            scenario::schema::Sched::Run {
                until: scenario::schema::Until::Label(l),
                ..
            },
        ) = (st, orig)
        {
            assert_eq!(until.stop, Stop::At(p.symbols()[l]), "{l}");
            assert_eq!(until.text, format!("Label({l:?})"));
            labels += 1;
        }
    }
    assert!(labels > 0, "the scenario stops at labels");
    assert_eq!(
        p.rule().label().is_some(),
        s.coherence != Default::default()
    );

    let p = plan("scenarios/bench/loop-4core-rr1.ron");
    assert!(p.checks().iter().any(|c| matches!(
        c.test,
        Test::Events {
            class: EventClass::Retired,
            ..
        }
    )));
    assert!(p.counted().has(EventClass::Retired));
}

#[test]
fn a_round_robin_decision_log_stays_small_and_replays_exactly() {
    let p = plan("scenarios/bench/loop-4core-rr1.ron");
    let mut r = Runner::start(Arc::clone(&p), false);
    r.run_to_end();
    let d = r.decisions();
    // One decision per quantum: 4 cores x 5001 instructions.
    assert_eq!(d.len(), 20_004);
    assert!(d.stored() <= 8, "{} decisions stored", d.stored());
    let list = d.to_vec();
    assert_eq!(list.len(), d.len());
    assert!(list
        .iter()
        .all(|x| matches!(x, Decision::Step { n: 1, .. })));
    // Replaying the unfolded list reaches the same state.
    let mut again = Runner::start(Arc::clone(&p), false);
    for x in &list {
        again.apply(x);
    }
    assert_eq!(again.decisions(), r.decisions());
    assert_eq!(again.machine().steps, r.machine().steps);
    for (a, b) in again.machine().cores.iter().zip(&r.machine().cores) {
        assert_eq!(a.cpu.state.gpr, b.cpu.state.gpr);
        assert_eq!(a.cpu.state.rip, b.cpu.state.rip);
    }
}

#[test]
fn batched_runs_take_exactly_the_steps_one_at_a_time_takes() {
    // `Runner::run_for` (what `tlbemu run` and `run_to_end` use) steps `Run` and
    // `RoundRobin` in tight loops; wherever a batch ends, the events, the
    // verdict and the decision log must be those of `Runner::step` called until
    // the schedule is over.
    let mut files = Vec::new();
    ron_files(&root().join("scenarios"), &mut files);
    assert!(files.len() > 10, "only {} scenarios found", files.len());
    for f in &files {
        let (_, _, plan) = scenario::prepare(f).unwrap_or_else(|d| panic!("{d}"));
        let mut one = Runner::start(Arc::clone(&plan), true);
        while one.step() != scenario::Progress::Done {}
        for batch in [1, 3, 64, u64::MAX] {
            let mut b = Runner::start(Arc::clone(&plan), true);
            while !b.run_for(batch) {
                assert!(
                    b.machine().steps <= one.machine().steps,
                    "{}: batches of {batch} overran",
                    f.display()
                );
            }
            assert_eq!(
                verdict(&b.report()),
                verdict(&one.report()),
                "{}: batches of {batch}",
                f.display()
            );
            assert_eq!(
                b.events(),
                one.events(),
                "{}: batches of {batch}",
                f.display()
            );
            assert_eq!(
                b.cursor(),
                one.cursor(),
                "{}: batches of {batch}",
                f.display()
            );
        }
    }
}
