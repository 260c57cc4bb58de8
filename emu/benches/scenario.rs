//! The paths users run: scenarios through the same engine `tlbemu run` uses
//! (a compiled [`Plan`], a [`Runner`], the coherence oracle on, no trace).
//!
//! - `loop-1core`: `scenarios/bench/loop-1core.ron`, one core in the tight loop
//!   `add rax,rbx; xor rcx,rax; mov [rsi],rcx; dec rdx; jnz` through real page
//!   tables, run to its halt with [`emu::scenario::run`] (report included);
//! - `loop-1core-nullsink`: the same plan's machine stepped with a [`NullSink`]
//!   (no oracle, no schedule), so the engine's own cost stays visible;
//! - `loop-4core-rr1`: `scenarios/bench/loop-4core-rr1.ron`, four cores in that
//!   loop under `RoundRobin(quantum: 1)`;
//! - `dragonfly-reruns`: `scenarios/dragonfly-2017-swtch-pmactive-buggy.ron`
//!   re-run [`RERUNS`] times from one built plan (a fresh runner each time, run
//!   to the end, violations counted), which is what exploration pays per
//!   schedule.
//!
//! Each prints its runs, the median and the load average. Times are wall clock
//! and, beside them, the CPU time this thread got (from `/proc/thread-self/stat`,
//! 10 ms ticks), because on a shared machine the two differ. Wall-clock time is
//! fine here: this is a benchmark, not a test. `cargo bench -p emu --bench
//! scenario`; `SCENARIO_BENCH_ONLY=NAME` runs one; `SCENARIO_BENCH_SCALE=F`
//! multiplies the work.

use emu::scenario::{self, Plan, Runner, Scenario};
use emu::{Machine, NullSink, StepResult};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Loop iterations of the one-core benchmark (5 instructions each).
const ITER_1CORE: u64 = 20_000_000;
/// Loop iterations per core of the four-core benchmark.
const ITER_4CORE: u64 = 5_000_000;
/// Re-runs of the DragonFly scenario per timed run.
const RERUNS: u64 = 10_000;
/// Timed runs; the median is reported.
const RUNS: usize = 5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The scenario at `rel` (from the workspace root), compiled. `edit` adjusts the
/// parsed scenario first (the bench sizes its loops).
fn plan_of(rel: &str, edit: impl FnOnce(&mut Scenario)) -> Arc<Plan> {
    let path = root().join(rel);
    let (mut s, src) = scenario::load(&path).unwrap_or_else(|d| panic!("{d}"));
    edit(&mut s);
    let dir = path.parent().unwrap_or(Path::new("."));
    let built = scenario::build(&s, dir).unwrap_or_else(|p| panic!("{}", p.locate(&src)));
    let plan = Plan::compile(&s, built).unwrap_or_else(|p| panic!("{}", p.locate(&src)));
    Arc::new(plan)
}

/// Sets every core's loop count to `iterations`, allows the steps, and drops the
/// expectations (they hold for the bundled count only).
fn sized(s: &mut Scenario, iterations: u64) {
    for c in &mut s.cores {
        c.regs
            .insert("rdx".into(), scenario::schema::Value::Num(iterations));
    }
    s.max_steps = Some(u64::MAX);
    s.expect.clear();
}

/// CPU seconds this thread has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th
    // and 13th of them (fields 14 and 15 of proc(5)).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `f` (which returns how many units it did) `runs` times and prints the
/// per-run rates and the medians, in million units per second when `millions`.
fn bench(name: &str, unit: &str, runs: usize, millions: bool, mut f: impl FnMut() -> u64) {
    let scale = if millions { 1e6 } else { 1.0 };
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for i in 0..runs {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let n = f();
        let secs = t0.elapsed().as_secs_f64();
        let csecs = (cpu_seconds() - c0).max(0.01);
        let (w, c) = (n as f64 / secs / scale, n as f64 / csecs / scale);
        println!(
            "{name} run {i}: {n} {unit} in {secs:.3} s wall ({csecs:.2} s cpu) = {w:.1} {}{unit}/s wall, {c:.1} per cpu-s",
            if millions { "M " } else { "" }
        );
        wall.push(w);
        cpu.push(c);
    }
    println!(
        "scenario {name}: median {:.1} {}{unit}/s wall, {:.1} per cpu-second, over {runs} runs (loadavg {})",
        median(wall),
        if millions { "M " } else { "" },
        median(cpu),
        loadavg()
    );
}

/// A plan run to its end as `tlbemu run` does; returns the machine steps.
fn run_plan(plan: &Arc<Plan>) -> u64 {
    let r = scenario::run(plan, false);
    assert_eq!(
        r.ending,
        scenario::Ending::Completed,
        "{}",
        r.to_text(false)
    );
    assert_eq!(r.violations, 0);
    r.steps
}

/// The plan's pristine machine stepped on core 0 with a [`NullSink`] until it
/// halts; returns the steps.
fn run_nullsink(plan: &Arc<Plan>) -> u64 {
    let mut m: Machine = plan.machine().clone();
    loop {
        match m.step(0, &mut NullSink) {
            Ok(StepResult::Retired) => {}
            Ok(StepResult::Halted) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    m.steps
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run a
    // short smoke version only.
    let benching = std::env::args().any(|a| a == "--bench");
    let scale: f64 = std::env::var("SCENARIO_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 1.0 } else { 0.001 });
    let runs = if benching { RUNS } else { 1 };
    let only = std::env::var("SCENARIO_BENCH_ONLY").unwrap_or_default();
    let want = |n: &str| only.is_empty() || only == n;
    let n1 = ((ITER_1CORE as f64 * scale) as u64).max(1);
    let n4 = ((ITER_4CORE as f64 * scale) as u64).max(1);
    let reruns = ((RERUNS as f64 * scale) as u64).max(1);
    if want("loop-1core") || want("loop-1core-nullsink") {
        let plan = plan_of("scenarios/bench/loop-1core.ron", |s| sized(s, n1));
        if want("loop-1core") {
            bench("loop-1core", "instructions", runs, true, || run_plan(&plan));
        }
        if want("loop-1core-nullsink") {
            bench("loop-1core-nullsink", "instructions", runs, true, || {
                run_nullsink(&plan)
            });
        }
    }
    if want("loop-4core-rr1") {
        let plan = plan_of("scenarios/bench/loop-4core-rr1.ron", |s| sized(s, n4));
        bench("loop-4core-rr1", "steps", runs, true, || run_plan(&plan));
    }
    if want("dragonfly-reruns") {
        let plan = plan_of("scenarios/dragonfly-2017-swtch-pmactive-buggy.ron", |_| {});
        // The scenario's own verdict, once, so the re-runs measure a real run.
        let r = scenario::run(&plan, false);
        assert!(r.passed(plan.expects_violations()), "{}", r.to_text(true));
        let want_violations = r.violations;
        bench("dragonfly-reruns", "runs", runs, false, || {
            for _ in 0..reruns {
                let mut r = Runner::start(Arc::clone(&plan), false);
                r.run_to_end();
                assert_eq!(r.violations(), want_violations);
            }
            reruns
        });
    }
}
