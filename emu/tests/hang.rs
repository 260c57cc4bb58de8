//! Hang diagnosis: each verdict from the state it names, the loop and its words
//! with their last writers, what could wake a halted core, and nothing for a
//! schedule that completed.

mod features_support;

use emu::scenario::schema::{Sched, Until};
use emu::scenario::{diagnose, CoreHang, RunReport, Runner, Scenario, Verdict};
use features_support::{plan, scenario};

fn runner(s: &Scenario) -> Runner {
    let mut r = Runner::start(plan(s), false);
    r.run_to_end();
    r
}

fn report(s: &Scenario) -> RunReport {
    runner(s).report()
}

fn edit(s: &mut Scenario, from: &str, to: &str) {
    let asm = s.code[0].asm.as_mut().expect("inline assembly");
    assert_eq!(asm.matches(from).count(), 1, "`{from}`");
    *asm = asm.replace(from, to);
}

#[test]
fn protocol_hang_names_the_loop_the_word_its_writer_and_the_wakeup() {
    let r = report(&scenario("hang-protocol.ron"));
    let h = r.hang.as_ref().expect("the schedule did not complete");
    assert_eq!(h.verdict, Verdict::Deadlock { cores: vec![0] });
    assert!(h
        .summary
        .starts_with("livelock/deadlock: core 0 spins on ack = 0x0"));
    let CoreHang::Spinning {
        at, reads, length, ..
    } = &h.cores[0]
    else {
        panic!("core 0 spins: {:?}", h.cores[0]);
    };
    assert_eq!(at, "wait_ack..wait_ack+0xb");
    assert_eq!(*length, 3);
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].name.as_deref(), Some("ack"));
    let w = reads[0].last_write.as_ref().expect("core 0 reset ack");
    assert_eq!((w.core, w.step), (0, 6));
    let CoreHang::Halted { wake, .. } = &h.cores[1] else {
        panic!("core 1 sleeps: {:?}", h.cores[1]);
    };
    assert!(wake.if_flag && wake.requested.is_empty());
    assert_eq!(wake.gates.len(), 1);
    assert_eq!(wake.gates[0].vector, 0xf0);
    assert_eq!(wake.gates[0].at.as_deref(), Some("inval_handler"));
}

#[test]
fn a_word_nobody_wrote_says_so() {
    // Without the reset, `ack` keeps its initial value: no writer to name.
    let mut s = scenario("hang-protocol.ron");
    edit(&mut s, "movq $0, ack", "nop");
    let h = report(&s).hang.expect("hangs");
    let CoreHang::Spinning { reads, .. } = &h.cores[0] else {
        panic!("{:?}", h.cores[0]);
    };
    assert_eq!(reads[0].last_write, None);
    assert!(
        h.summary.contains("not written since the start"),
        "{}",
        h.summary
    );
}

#[test]
fn sending_the_ipi_completes_and_leaves_no_diagnosis() {
    let mut s = scenario("hang-protocol.ron");
    edit(
        &mut s,
        "movq $0, ack                     # reset the acknowledgement ...",
        "movl $0x830, %ecx\n    movl $0xf0, %eax\n    movl $1, %edx\n    wrmsr",
    );
    s.expect.clear();
    let r = runner(&s);
    assert!(diagnose(&r).is_none());
    let rep = r.report();
    assert!(
        rep.hang.is_none() && rep.passed(false),
        "{}",
        rep.to_text(false)
    );
}

#[test]
fn schedule_mistake_is_not_a_deadlock() {
    let h = report(&scenario("hang-schedule.ron")).hang.expect("hangs");
    assert_eq!(
        h.verdict,
        Verdict::ScheduleWaits {
            core: 0,
            until: "Label(\"unlocked\")".into()
        }
    );
    assert!(matches!(h.cores[1], CoreHang::Halts { after: 4, .. }));
}

#[test]
fn a_spinner_run_alone_while_its_releaser_could_run_is_unscheduled() {
    // Core 1 waits for the lock before core 0 has released it, alone.
    let mut s = scenario("hang-schedule.ron");
    s.schedule = vec![Sched::Run {
        core: 1,
        until: Until::Label("unlocked".into()),
    }];
    s.max_steps = Some(200);
    let h = report(&s).hang.expect("hangs");
    assert_eq!(
        h.verdict,
        Verdict::Unscheduled {
            core: 1,
            until: "Label(\"unlocked\")".into(),
            runnable: vec![0]
        }
    );
    let CoreHang::Spinning { reads, .. } = &h.cores[1] else {
        panic!("{:?}", h.cores[1]);
    };
    assert_eq!(
        (reads[0].name.as_deref(), reads[0].value),
        (Some("lock"), 1)
    );
}

#[test]
fn two_cores_waiting_for_each_other_are_one_deadlock() {
    let mut s = scenario("hang-schedule.ron");
    edit(
        &mut s,
        "movq $0, lock                    # release the lock\n    hlt",
        "pause\n    cmpq $2, lock\n    jne owner",
    );
    s.schedule = vec![Sched::RoundRobin {
        cores: vec![0, 1],
        quantum: 3,
        until: Until::Halt,
    }];
    s.max_steps = Some(300);
    let h = report(&s).hang.expect("hangs");
    assert_eq!(h.verdict, Verdict::Deadlock { cores: vec![0, 1] });
    assert!(
        h.summary
            .starts_with("livelock/deadlock: cores 0 and 1 spin"),
        "{}",
        h.summary
    );
}

#[test]
fn a_core_still_counting_when_the_budget_ends_is_a_budget_verdict() {
    let mut s = scenario("hang-schedule.ron");
    edit(
        &mut s,
        "movq $0, lock                    # release the lock\n    hlt",
        "incq %rax\n    jmp owner",
    );
    s.schedule = vec![Sched::Run {
        core: 0,
        until: Until::Halt,
    }];
    s.max_steps = Some(100);
    let h = report(&s).hang.expect("hangs");
    assert_eq!(h.verdict, Verdict::Budget { cores: vec![0] });
}
