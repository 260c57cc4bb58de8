//! A finding as a scenario: the original, with `schedule` set to the minimised
//! interleaving and `expect` set to what it found, so `tlbemu run` reproduces it
//! and `tlbemu debug` opens it.

use super::exec::{Choice, Exec};
use super::minimize::Script;
use super::{Finding, FindingKind, Found, Signature};
use crate::machine::StepResult;
use crate::scenario::schema::{Expect, KindSpec, Sched, Until, Value};
use crate::scenario::{stop_kind, Ending, Plan, Runner, Scenario};
use mmu::{AccessKind, WalkResult};
use std::sync::Arc;

/// Why a finding cannot be written as a scenario.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The minimised schedule no longer produces the finding.
    #[error("the minimised schedule no longer produces {0:?}")]
    Lost(Signature),
    /// The written scenario does not compile (a bug of ours).
    #[error("the written scenario does not compile: {0}")]
    Compile(String),
}

/// Replays `devs` until `sig` appears (for findings a run can show before its
/// end) or to the end; the run and the finding, if it appeared.
pub(crate) fn replay_to(
    plan: &Arc<Plan>,
    devs: &[(u64, Choice)],
    sig: &Signature,
) -> Option<(Exec, Finding)> {
    let mut ex = Exec::new(plan);
    let s = Script {
        at: devs.iter().copied().collect(),
    };
    let early = matches!(sig.kind, FindingKind::StaleUse | FindingKind::DeadCore);
    let mut seen = 0usize;
    while let Some((runnable, d)) = ex.at_point() {
        let choice = s.at.get(&ex.points()).copied().unwrap_or(Choice::Run(d));
        ex.apply(choice, &runnable, d);
        let n = ex.runner().stale_uses().len();
        let stopped = ex
            .runner()
            .machine()
            .cores
            .iter()
            .filter(|c| c.stopped.is_some())
            .count();
        if early && n + stopped != seen {
            seen = n + stopped;
            if let Some(f) = ex.findings().into_iter().find(|f| f.sig == *sig) {
                return Some((ex, f));
            }
        }
    }
    let mut f = ex.findings().into_iter().find(|f| f.sig == *sig)?;
    if sig.kind == FindingKind::Hang {
        // The oracle's hang diagnosis of the stuck run: its verdict, each
        // core's loop, the words it reads and who last wrote them.
        if let Some(d) = crate::scenario::diagnose(ex.runner()) {
            f.explanation = format!("{}\n{}", f.explanation, d.to_text());
        }
    }
    Some((ex, f))
}

fn kind_spec(k: AccessKind, cached: &WalkResult) -> KindSpec {
    match (k, cached) {
        (AccessKind::Read, WalkResult::Leaf { .. }) => KindSpec::Read,
        (AccessKind::Write, WalkResult::Leaf { .. }) => KindSpec::Write,
        (AccessKind::Execute, WalkResult::Leaf { .. }) => KindSpec::Execute,
        _ => KindSpec::Walk,
    }
}

/// The scenario that reproduces `found`: `orig` with the minimised schedule
/// (`Run(until: Label)` where a label sits at a switch and is not passed
/// earlier in that stretch, `Run(until: Halt)` where the core went idle, else
/// `Step`) and expectations naming the finding.
pub fn finding_scenario(
    orig: &Scenario,
    plan: &Arc<Plan>,
    found: &Found,
) -> Result<Scenario, EmitError> {
    let (ex, _) = replay_to(plan, &found.deviations, &found.signature)
        .ok_or(EmitError::Lost(found.signature))?;
    // Merge consecutive stretches of one core, then re-run them on a plain
    // runner to see every RIP on the way.
    let mut stretches: Vec<Choice> = Vec::new();
    let mut lens: Vec<u64> = Vec::new();
    for t in ex.taken() {
        match (t.choice, stretches.last()) {
            (Choice::Run(c), Some(Choice::Run(p))) if c == *p => {
                if let Some(l) = lens.last_mut() {
                    *l += t.steps;
                }
            }
            (c, _) => {
                stretches.push(c);
                lens.push(t.steps);
            }
        }
    }
    let mut r = Runner::start(Arc::clone(plan), false);
    let labels = plan.labels();
    let mut schedule = Vec::new();
    for (c, n) in stretches.iter().zip(&lens) {
        match *c {
            Choice::Fill(core, va) | Choice::Evict(core, va) => {
                let fill = matches!(c, Choice::Fill(..));
                let (d, st) = if fill {
                    let d = crate::scenario::Decision::Fill {
                        core: core as u32,
                        va,
                    };
                    (
                        d,
                        Sched::Fill {
                            core,
                            va: Value::Num(va),
                        },
                    )
                } else {
                    let d = crate::scenario::Decision::Evict {
                        core: core as u32,
                        va,
                    };
                    (
                        d,
                        Sched::Evict {
                            core,
                            va: Value::Num(va),
                        },
                    )
                };
                r.cache_op(&d);
                schedule.push(st);
            }
            Choice::Run(core) => {
                if *n == 0 {
                    continue;
                }
                let mut rips = Vec::with_capacity(*n as usize);
                let mut last = StepResult::Retired;
                for _ in 0..*n {
                    last = r.step_core(core);
                    rips.push(r.machine().cores[core].cpu.state.rip);
                }
                let end = rips.last().copied().unwrap_or(0);
                let passed_before = rips[..rips.len() - 1].contains(&end);
                let idle = r.machine().is_idle(core);
                let until = match labels.get(&end) {
                    Some(l) if !passed_before => Some(Until::Label(l.clone())),
                    _ if idle && matches!(last, StepResult::Halted) => Some(Until::Halt),
                    _ => None,
                };
                schedule.push(match until {
                    Some(until) => Sched::Run { core, until },
                    None => Sched::Step { core, n: *n },
                });
            }
        }
    }
    if found.signature.kind == FindingKind::Hang {
        // Let every core go on until the budget shows the hang.
        schedule.push(Sched::RoundRobin {
            cores: (0..r.machine().num_cores()).collect(),
            quantum: 1,
            until: Until::Halt,
        });
    }
    let mut s = orig.clone();
    s.name = format!("{}-found", orig.name);
    s.description = format!(
        "Found by `tlbemu explore` in `{}`: {} (schedule {} of the search; {} preemption(s), {} fill(s)). The schedule is the minimised interleaving; the expectations name what it found.",
        orig.name,
        found.explanation.lines().next().unwrap_or(""),
        found.schedule_index,
        found.preemptions,
        found.fills
    );
    s.schedule = schedule;
    let sig = found.signature;
    s.expect = match sig.kind {
        FindingKind::StaleUse => {
            let kind = ex
                .runner()
                .stale_uses()
                .iter()
                .find(|r| r.violation && r.detail.ctx.rip == sig.use_rip)
                .map(|r| match &r.detail.access {
                    Some(a) => kind_spec(a.kind, &r.detail.cached),
                    None => KindSpec::Walk,
                });
            vec![Expect::StaleUse {
                core: Some(sig.core),
                va: Some(Value::Num(sig.page)),
                kind,
            }]
        }
        FindingKind::DeadCore => {
            let reason = ex.runner().machine().cores[sig.core]
                .stopped
                .as_ref()
                .map(stop_kind);
            vec![Expect::Stopped {
                core: sig.core,
                reason,
            }]
        }
        // A hang is expected with the verdict `run` diagnoses for the written
        // schedule, so the scenario demonstrates it and passes.
        FindingKind::Hang => vec![Expect::Hung { verdict: None }],
        // A failed invariant fails `run` by itself.
        FindingKind::LatentEntry | FindingKind::Invariant => Vec::new(),
    };
    // The exact count of violations the schedule shows, measured on it.
    let mut sc = s.clone();
    sc.expect.push(Expect::Violations(0));
    let probe = Plan::compile(&sc, plan.built().clone())
        .map_err(|p| EmitError::Compile(format!("{}: {}", p.path, p.message)))?;
    let probe = Arc::new(probe);
    let rep = crate::scenario::run(&probe, false);
    if sig.kind != FindingKind::Invariant && sig.kind != FindingKind::Hang {
        s.expect.push(Expect::Violations(rep.violations));
    }
    if sig.kind == FindingKind::Hang {
        let mut r = Runner::start(Arc::clone(&probe), false);
        r.run_to_end();
        if let Some(d) = crate::scenario::diagnose(&r) {
            s.expect = vec![Expect::Hung {
                verdict: Some(crate::scenario::hang_kind(&d.verdict)),
            }];
        }
    }
    Ok(s)
}

/// Whether running `plan` (a scenario [`finding_scenario`] wrote, compiled
/// scripted) shows `sig` again.
pub fn reproduces(plan: &Arc<Plan>, sig: &Signature) -> bool {
    let mut r = Runner::start(Arc::clone(plan), false);
    r.run_to_end();
    let m = r.machine();
    match sig.kind {
        FindingKind::StaleUse => r.stale_uses().iter().any(|u| {
            u.violation
                && u.detail.ctx.core as usize == sig.core
                && u.detail.va.raw() & !0xfff == sig.page
                && u.detail.pcid == sig.pcid
                && u.detail.ctx.rip == sig.use_rip
                && u.detail.made_stale_by.map_or(0, |w| w.rip) == sig.write_rip
        }),
        FindingKind::LatentEntry => !r.latent_violations().is_empty(),
        FindingKind::DeadCore => m.cores.get(sig.core).is_some_and(|c| c.stopped.is_some()),
        FindingKind::Hang => matches!(r.ending(), Some(Ending::Stuck { .. })),
        FindingKind::Invariant => {
            let rep = r.report();
            let first = plan.checks().len() - plan.invariant_checks().len();
            rep.expectations
                .iter()
                .any(|e| e.index == first + sig.use_rip as usize && !e.ok)
        }
    }
}
