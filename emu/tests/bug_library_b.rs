//! The real-bug library, part B: MINIX SMP p_stale_tlb, DragonFly vkernel
//! MAP_VPAGETABLE (stale VPTE, lost dirty bit), FreeBSD device-pager lookup race.
//!
//! Each case is a pair of scenario files on the same machine, workload and
//! schedule: the buggy one must show exactly its failure, the fixed one none.
//! Every fixed scenario is also run under a round-robin sweep (quantum 1..=8,
//! each core first) with schedule-independent expectations, so the fix holds on
//! more than the one interleaving the file spells out.

use emu::scenario::schema::{Expect, Sched, Until, Value};
use emu::scenario::{build, load, run, validate, Ending, Plan, RunReport, Scenario};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn load_file(name: &str) -> Scenario {
    let path = dir().join(name);
    let (s, _) = load(&path).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    s
}

fn run_scenario(s: &Scenario) -> RunReport {
    let built = build(s, &dir()).unwrap_or_else(|p| panic!("{}: build: {p:?}", s.name));
    validate(s, &built).unwrap_or_else(|p| panic!("{}: validate: {p:?}", s.name));
    let plan = Plan::compile(s, built).unwrap_or_else(|p| panic!("{}: compile: {p:?}", s.name));
    run(&Arc::new(plan), false)
}

fn assert_passes(r: &RunReport) {
    assert_eq!(
        r.ending,
        Ending::Completed,
        "{}: schedule did not complete",
        r.name
    );
    for e in &r.expectations {
        assert!(
            e.ok,
            "{}: expect[{}] {} failed (found {})",
            r.name, e.index, e.what, e.actual
        );
    }
}

/// Runs a scenario file as written and checks its expectations and violation count.
fn check_file(name: &str, violations: usize) -> Scenario {
    let s = load_file(name);
    let r = run_scenario(&s);
    assert_passes(&r);
    assert_eq!(r.violations, violations, "{name}: violations");
    s
}

/// The buggy and the fixed file differ in code only: same machine, cores and
/// schedule.
fn assert_same_workload(buggy: &Scenario, fixed: &Scenario) {
    assert_eq!(
        buggy.schedule, fixed.schedule,
        "{} / {}: schedules differ",
        buggy.name, fixed.name
    );
    assert_eq!(buggy.machine.cores, fixed.machine.cores);
    assert_eq!(buggy.symbols, fixed.symbols);
    assert_eq!(buggy.cores.len(), fixed.cores.len());
}

fn mem(at: &str, space: Option<&str>, value: Value) -> Expect {
    Expect::Mem {
        at: Value::Sym(at.into()),
        space: space.map(Into::into),
        size: None,
        value,
    }
}

/// Runs `fixed` under RoundRobin(quantum 1..=8, each core first) until `until`,
/// with `invariants` as the only expectations. Returns the number of runs.
fn sweep(fixed: &Scenario, until: Until, invariants: Vec<Expect>) -> usize {
    let n = fixed.machine.cores;
    let mut runs = 0;
    for first in 0..n {
        let cores: Vec<usize> = (0..n).map(|i| (first + i) % n).collect();
        for quantum in 1..=8u64 {
            let mut s = fixed.clone();
            s.schedule = vec![Sched::RoundRobin {
                cores: cores.clone(),
                quantum,
                until: until.clone(),
            }];
            s.expect = invariants.clone();
            s.expect.push(Expect::Violations(0));
            let r = run_scenario(&s);
            assert_eq!(
                r.ending,
                Ending::Completed,
                "{}: cores {cores:?} quantum {quantum}: {:?}",
                s.name,
                r.ending
            );
            for e in &r.expectations {
                assert!(
                    e.ok,
                    "{}: cores {cores:?} quantum {quantum}: {} failed (found {})",
                    s.name, e.what, e.actual
                );
            }
            assert_eq!(r.violations, 0);
            runs += 1;
        }
    }
    runs
}

/// Server D's reply to P (the second copy) and its first message.
const MINIX_MSG: u64 = 0x2167736d2078696d;
const MINIX_MSG1: u64 = 0x3167736d2078696d;

#[test]
fn minix_stale_tlb_copy_buggy_writes_old_frame() {
    // 16 byte writes of `rep movsb` through CPU 1's stale entry for the
    // borrowed slot's window: one reported use with a count, one violation.
    check_file("minix-stale-tlb-copy.ron", 1);
}

#[test]
fn minix_rep_movsb_is_one_stale_use_with_a_count() {
    let r = run_scenario(&load_file("minix-stale-tlb-copy.ron"));
    assert_eq!(r.stale_uses.len(), 1, "{:#?}", r.stale_uses);
    let u = &r.stale_uses[0];
    assert_eq!(u.count, 16);
    assert_eq!(
        u.last_step - u.detail.ctx.step,
        15,
        "16 consecutive iterations"
    );
    assert_eq!(u.detail.va.raw(), 0x3fe00110, "the first byte, in slot 1");
    assert!(r
        .to_text(true)
        .contains("the same instruction used this entry 16 times"));
}

#[test]
fn minix_stale_tlb_copy_fixed_and_sweep() {
    let buggy = load_file("minix-stale-tlb-copy.ron");
    let fixed = check_file("minix-stale-tlb-copy-fixed.ron", 0);
    assert_same_workload(&buggy, &fixed);
    let runs = sweep(
        &fixed,
        Until::Label("p_done".into()),
        vec![
            mem("0x400110", Some("proc"), Value::Num(MINIX_MSG)),
            mem("0x400100", Some("proc"), Value::Num(MINIX_MSG1)),
            Expect::Reg {
                core: 1,
                reg: "rax".into(),
                value: Value::Num(MINIX_MSG),
            },
        ],
    );
    assert_eq!(runs, 16);
}

/// The vkernel pairs: same machine, cores, symbols and host code; the
/// schedules differ only in the fixed twin's shootdown IPI (the buggy twin
/// sends none).
fn assert_same_vkernel_machine(buggy: &Scenario, fixed: &Scenario) {
    assert_eq!(buggy.machine.cores, fixed.machine.cores);
    assert_eq!(buggy.symbols, fixed.symbols);
    assert_eq!(format!("{:?}", buggy.cores), format!("{:?}", fixed.cores));
    assert_eq!(buggy.soft_tlbs, fixed.soft_tlbs);
}

/// Runs a vkernel case under RoundRobin(quantum 1..=8, each vcpu first) until
/// the daemon is done, then vcpu 1 to its end, with no expectations; `check`
/// judges each run's final machine. Returns (runs, runs with a violation).
fn vkernel_sweep(
    s: &Scenario,
    check: &dyn Fn(&emu::machine::Machine) -> Result<(), String>,
) -> (usize, usize) {
    let (mut runs, mut exposed) = (0, 0);
    for first in 0..2usize {
        for quantum in 1..=8u64 {
            let mut t = s.clone();
            t.schedule = vec![
                Sched::RoundRobin {
                    cores: vec![first, 1 - first],
                    quantum,
                    until: Until::Label("vk_done".into()),
                },
                Sched::Run {
                    core: 1,
                    until: Until::Label("vk1_done".into()),
                },
            ];
            t.expect.clear();
            let r = run_scenario(&t);
            let at = format!("{}: vcpu {first} first, quantum {quantum}", s.name);
            assert_eq!(r.ending, Ending::Completed, "{at}");
            let m = r.machine.as_ref().expect("the final machine");
            if let Err(e) = check(m) {
                panic!("{at}: {e}");
            }
            runs += 1;
            exposed += usize::from(r.violations > 0);
        }
    }
    (runs, exposed)
}

fn word(m: &emu::machine::Machine, pa: u64) -> u64 {
    m.mem.read_u64(mmu::PhysAddr(pa)).expect("in memory")
}

/// Host physical addresses of the vkernel cases' words.
const VPTE3: u64 = 0x80_1018;
const SWAP: u64 = 0x82_0000;
const G1_HOST: u64 = 0x81_0000;
const G2_HOST: u64 = 0x81_1000;

#[test]
fn vkernel_vpte_no_madv_inval_buggy_writes_reused_page() {
    // One violation: the write through the stale real PTE (soft_tlbs).
    let s = check_file("vkernel-vpte-no-madv-inval.ron", 1);
    // No handshake forces the order; the sweep must still reach the stale
    // write (here every round-robin schedule does: laundering takes a few
    // instructions, the first write's host fault many).
    let (runs, exposed) = vkernel_sweep(&s, &|_| Ok(()));
    assert_eq!(runs, 16);
    assert!(exposed > 0, "no schedule exposed the stale write");
}

#[test]
fn vkernel_vpte_no_madv_inval_fixed_and_sweep() {
    let buggy = load_file("vkernel-vpte-no-madv-inval.ron");
    let fixed = check_file("vkernel-vpte-no-madv-inval-fixed.ron", 0);
    assert_same_vkernel_machine(&buggy, &fixed);
    // Whatever the order: the write reaches G2 (directly, or through the copy
    // when made before or in the window), G1 keeps its new owner's data, and
    // no use after the invalidation is stale.
    let (runs, exposed) = vkernel_sweep(&fixed, &|m| {
        let (g1, g2) = (word(m, G1_HOST), word(m, G2_HOST));
        if g2 == 0x600d && g1 == 0x0bad_0bad_0bad_0bad {
            Ok(())
        } else {
            Err(format!("G1 {g1:#x}, G2 {g2:#x}"))
        }
    });
    assert_eq!((runs, exposed), (16, 0));
}

#[test]
fn vkernel_lost_dirty_bit_buggy_loses_write() {
    // One violation: the write through the stale real PTE (soft_tlbs).
    let s = check_file("vkernel-lost-dirty-bit.ron", 1);
    let (runs, exposed) = vkernel_sweep(&s, &|_| Ok(()));
    assert_eq!(runs, 16);
    assert!(exposed > 0, "no schedule exposed the stale write");
}

#[test]
fn vkernel_lost_dirty_bit_fixed_and_sweep() {
    let buggy = load_file("vkernel-lost-dirty-bit.ron");
    let fixed = check_file("vkernel-lost-dirty-bit-fixed.ron", 0);
    assert_same_vkernel_machine(&buggy, &fixed);
    // Whatever the order, no write is lost: either swap holds the page's last
    // data, or the VPTE's M says the page must be laundered again.
    let (runs, exposed) = vkernel_sweep(&fixed, &|m| {
        let (page, swap, vpte) = (word(m, G1_HOST), word(m, SWAP), word(m, VPTE3));
        if page == 0x2222 && (swap == 0x2222 || vpte & 0x40 != 0) {
            Ok(())
        } else {
            Err(format!("page {page:#x}, swap {swap:#x}, VPTE {vpte:#x}"))
        }
    });
    assert_eq!((runs, exposed), (16, 0));
}

#[test]
fn freebsd_pager_lookup_race_buggy_use_after_free() {
    check_file("freebsd-pager-lookup-race.ron", 0);
}

#[test]
fn freebsd_pager_lookup_race_fixed_and_sweep() {
    let buggy = load_file("freebsd-pager-lookup-race.ron");
    let fixed = check_file("freebsd-pager-lookup-race-fixed.ron", 0);
    assert_same_workload(&buggy, &fixed);
    // Whichever side wins, the object Pa got is alive and holds exactly its
    // reference.
    // (Until a label at core 0's final HLT, so the check sees the moment the
    // lookup side is done.)
    sweep(
        &fixed,
        Until::Label("pa_done".into()),
        vec![
            mem("result_handle", Some("k"), Value::Sym("CDEV".into())),
            mem("result_ref", Some("k"), Value::Num(1)),
        ],
    );
}

/// The same sweep on the buggy lookup: the race needs the terminating core to set
/// OBJ_DEAD before the lookup finds the object and to drop the object lock before
/// the reference; with both cores starting together that is what round-robin
/// schedules produce, so the sweep must find the use-after-free.
#[test]
fn freebsd_pager_lookup_race_buggy_sweep_finds_it_sometimes() {
    let buggy = load_file("freebsd-pager-lookup-race.ron");
    let mut bad = 0;
    let mut total = 0;
    for first in 0..2 {
        for quantum in 1..=8u64 {
            let mut s = buggy.clone();
            s.schedule = vec![Sched::RoundRobin {
                cores: vec![first, 1 - first],
                quantum,
                until: Until::Label("pa_done".into()),
            }];
            s.expect = vec![mem("result_ref", Some("k"), Value::Num(1))];
            let r = run_scenario(&s);
            assert_eq!(r.ending, Ending::Completed);
            total += 1;
            if !r.expectations[0].ok {
                bad += 1;
            }
        }
    }
    eprintln!(
        "freebsd buggy lookup: {bad} of {total} round-robin schedules hit the use-after-free"
    );
    assert!(bad > 0, "no round-robin schedule exposed the race");
}

/// Counts the round-robin schedules (quantum 1..=8, each core first) on which
/// the buggy scenario shows its failure, i.e. on which `healthy` does not hold
/// or a violation appears.
fn buggy_sweep(name: &str, until: Until, healthy: Expect) -> (usize, usize) {
    let buggy = load_file(name);
    let n = buggy.machine.cores;
    let (mut bad, mut total) = (0, 0);
    for first in 0..n {
        for quantum in 1..=8u64 {
            let mut s = buggy.clone();
            s.schedule = vec![Sched::RoundRobin {
                cores: (0..n).map(|i| (first + i) % n).collect(),
                quantum,
                until: until.clone(),
            }];
            s.expect = vec![healthy.clone()];
            let r = run_scenario(&s);
            assert_eq!(r.ending, Ending::Completed, "{name}: quantum {quantum}");
            total += 1;
            if !r.expectations[0].ok || r.violations > 0 {
                bad += 1;
            }
        }
    }
    eprintln!("{name}: {bad} of {total} round-robin schedules show the bug");
    (bad, total)
}

/// Runs `s` under each schedule and counts those on which `healthy` fails
/// or a violation appears.
fn count_bad(s: &Scenario, schedules: Vec<Vec<Sched>>, healthy: &Expect) -> (usize, usize) {
    let mut bad = 0;
    let total = schedules.len();
    for sched in schedules {
        let mut s = s.clone();
        s.schedule = sched;
        s.expect = vec![healthy.clone()];
        let r = run_scenario(&s);
        assert_eq!(r.ending, Ending::Completed, "{}: {:?}", s.name, s.schedule);
        if !r.expectations[0].ok || r.violations > 0 {
            bad += 1;
        }
    }
    (bad, total)
}

/// Speed sweeps: core 1 runs w = 1..=32 instructions per instruction of
/// core 0 (a round-robin with quantum 1 over w copies of core 1 and core 0),
/// until `until`.
fn speed_schedules(until: &Until) -> Vec<Vec<Sched>> {
    (1..=32usize)
        .map(|w| {
            let mut cores = vec![1usize; w];
            cores.push(0);
            vec![Sched::RoundRobin {
                cores,
                quantum: 1,
                until: until.clone(),
            }]
        })
        .collect()
}

/// MINIX: the stale copy needs D's first copy (which caches the slot window)
/// before VM inhibits P, and its reply after VM is done (a reply tried while
/// P is inhibited is suspended, and CPU 1 goes idle with VM's table, which
/// flushes the window). Under 32 relative speeds of the two CPUs the buggy
/// twin must show it at least once, the fixed twin never.
#[test]
fn minix_speed_sweeps_expose_the_buggy_copy_only() {
    let until = Until::Label("p_done".into());
    let healthy = mem("0x400110", Some("proc"), Value::Num(MINIX_MSG));
    let buggy = load_file("minix-stale-tlb-copy.ron");
    let fixed = load_file("minix-stale-tlb-copy-fixed.ron");
    let (bad, total) = count_bad(&buggy, speed_schedules(&until), &healthy);
    eprintln!("minix buggy: {bad} of {total} speed schedules show the bug");
    assert!(bad > 0, "no speed schedule exposes the MINIX stale copy");
    let (bad, total) = count_bad(&fixed, speed_schedules(&until), &healthy);
    assert_eq!(
        bad, 0,
        "{bad} of {total} speed schedules break the fixed twin"
    );
}

/// The buggy files under the same sweeps. The vkernel protocol is sequential
/// (vcpus wait for each other's flags), so the missing MADV_INVAL bites on every
/// schedule. MINIX: D works long enough between its copies for VM's whole
/// change to fall between them.
#[test]
fn buggy_sweeps_show_the_bug_on_every_schedule() {
    let (bad, total) = buggy_sweep(
        "minix-stale-tlb-copy.ron",
        Until::Label("p_done".into()),
        mem("0x400110", Some("proc"), Value::Num(MINIX_MSG)),
    );
    assert_eq!(
        bad, total,
        "the MINIX stale copy on every round-robin schedule"
    );
    let (bad, total) = buggy_sweep(
        "vkernel-vpte-no-madv-inval.ron",
        Until::Label("vk1_done".into()),
        mem("0x811000", None, Value::Num(0x600d)),
    );
    assert_eq!(bad, total);
    let (bad, total) = buggy_sweep(
        "vkernel-lost-dirty-bit.ron",
        Until::Label("vk_done".into()),
        mem("swap_slot", Some("vk"), Value::Num(0x2222)),
    );
    assert_eq!(bad, total);
}
