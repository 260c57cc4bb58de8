//! Comparing event streams and replaying a trace's decisions: the first event
//! where two runs differ, with enough context to see why.

use super::text::{describe, Symbols};
use super::Trace;
use crate::events::{Event, EventKind};
use crate::scenario::{Decision, Plan, Runner};
use std::sync::Arc;

/// How many events before the divergence are shown.
pub const CONTEXT_EVENTS: usize = 4;

/// The first place two event streams differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing event (0-based).
    pub index: usize,
    /// The recorded event there (`None`: the recording ended first).
    pub expected: Option<Event>,
    /// The event the run produced there (`None`: the run ended first).
    pub actual: Option<Event>,
    /// Up to [`CONTEXT_EVENTS`] events before it (identical in both streams).
    pub before: Vec<Event>,
    /// RIP of the instruction being executed at that point, when known.
    pub rip: Option<u64>,
}

impl Divergence {
    /// Step and core of the divergence (of the actual event, else the expected one).
    pub fn at(&self) -> Option<(u64, u32)> {
        self.actual
            .as_ref()
            .or(self.expected.as_ref())
            .map(|e| (e.step, e.core))
    }
}

/// The RIP of the instruction `core` executed at `step`, from a stream: its
/// retired event, or the faulting/interrupted RIP of an exception or interrupt.
fn rip_in(stream: &[Event], step: u64, core: u32) -> Option<u64> {
    stream
        .iter()
        .filter(|e| e.step == step && e.core == core)
        .find_map(|e| match &e.kind {
            EventKind::Retired { rip, .. } => Some(*rip),
            EventKind::Exception { from, .. } | EventKind::Interrupt { from, .. } => Some(*from),
            _ => None,
        })
}

/// Compares two streams; `None` when they are identical.
pub fn first_divergence(expected: &[Event], actual: &[Event]) -> Option<Divergence> {
    let index = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .or_else(|| (expected.len() != actual.len()).then(|| expected.len().min(actual.len())))?;
    let exp = expected.get(index).cloned();
    let act = actual.get(index).cloned();
    let (step, core) = act.as_ref().or(exp.as_ref()).map(|e| (e.step, e.core))?;
    let rip = rip_in(actual, step, core).or_else(|| rip_in(expected, step, core));
    Some(Divergence {
        index,
        expected: exp,
        actual: act,
        before: expected[index.saturating_sub(CONTEXT_EVENTS)..index].to_vec(),
        rip,
    })
}

/// What a replay found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Every recorded event came back, and no more.
    Identical,
    /// The first difference.
    Diverged(Box<Divergence>),
}

/// A replay's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Events compared (the recorded count when identical).
    pub events: usize,
    /// The verdict.
    pub outcome: ReplayOutcome,
}

/// Re-executes a trace's decisions on a freshly built scenario and compares the
/// event stream as it is produced, stopping at the first divergence. Errors are
/// traces this scenario cannot replay at all (too many steps for its budget).
pub fn replay(t: &Trace, plan: &Arc<Plan>) -> Result<Replay, String> {
    let budget = plan.budget().max(t.events.len() as u64);
    if t.steps() > budget {
        return Err(format!(
            "the trace's decisions take {} steps, more than the scenario's step budget ({budget}) and the trace's event count; expected a trace recorded from this scenario",
            t.steps()
        ));
    }
    let mut r = Runner::start(Arc::clone(plan), true);
    let cores = r.machine().num_cores();
    t.check_cores(cores).map_err(|e| e.to_string())?;
    let mut checked = 0usize;
    // Compares the events produced since the last check; the RIP is the one the
    // stepped core had before the step.
    let compare = |r: &Runner, checked: &mut usize, rip: Option<u64>| -> Option<Divergence> {
        let ev = r.events();
        while *checked < ev.len() {
            let i = *checked;
            if t.events.get(i) != Some(&ev[i]) {
                let mut d = first_divergence(&t.events[..(i + 1).min(t.events.len())], &ev[..=i])?;
                d.rip = rip.or(d.rip);
                return Some(d);
            }
            *checked += 1;
        }
        None
    };
    for d in &t.decisions {
        match d {
            Decision::Step { core, n } => {
                let c = *core as usize;
                for _ in 0..*n {
                    let rip = (c < cores).then(|| r.machine().cores[c].cpu.state.rip);
                    r.apply(&Decision::Step { core: *core, n: 1 });
                    if let Some(d) = compare(&r, &mut checked, rip) {
                        return Ok(Replay {
                            events: d.index,
                            outcome: ReplayOutcome::Diverged(Box::new(d)),
                        });
                    }
                }
            }
            other => {
                r.apply(other);
                if let Some(d) = compare(&r, &mut checked, None) {
                    return Ok(Replay {
                        events: d.index,
                        outcome: ReplayOutcome::Diverged(Box::new(d)),
                    });
                }
            }
        }
    }
    if checked < t.events.len() {
        let d = first_divergence(&t.events, r.events());
        if let Some(d) = d {
            return Ok(Replay {
                events: d.index,
                outcome: ReplayOutcome::Diverged(Box::new(d)),
            });
        }
    }
    Ok(Replay {
        events: t.events.len(),
        outcome: ReplayOutcome::Identical,
    })
}

/// The divergence as text, several lines, each ending in `\n`.
pub fn render_divergence(d: &Divergence, sym: &Symbols) -> String {
    let mut out = String::new();
    match d.at() {
        Some((step, core)) => {
            out += &format!(
                "first divergence at event #{} (step {step}, core {core})\n",
                d.index
            )
        }
        None => out += &format!("first divergence at event #{}\n", d.index),
    }
    out += &format!(
        "  expected: {}\n",
        d.expected.as_ref().map_or(
            "(nothing: the recorded stream ends here)".to_string(),
            |e| describe(e, sym)
        )
    );
    out += &format!(
        "  actual:   {}\n",
        d.actual.as_ref().map_or(
            "(nothing: the run produced no more events)".to_string(),
            |e| describe(e, sym)
        )
    );
    if let Some(rip) = d.rip {
        out += &format!("  instruction: {}", sym.addr(rip));
        if let Some(src) = sym.source(rip) {
            out += &format!(" ({src})");
        }
        out.push('\n');
    }
    if !d.before.is_empty() {
        out += "  events before it:\n";
        let first = d.index - d.before.len();
        for (k, e) in d.before.iter().enumerate() {
            out += &format!("    #{:<5} {}\n", first + k, describe(e, sym));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(step: u64, rip: u64) -> Event {
        Event {
            step,
            core: 0,
            kind: EventKind::Retired { rip, len: 1 },
        }
    }

    #[test]
    fn identical_streams_have_no_divergence() {
        let a = vec![ev(1, 1), ev(2, 2)];
        assert_eq!(first_divergence(&a, &a), None);
    }

    #[test]
    fn first_difference_and_length_differences() {
        let a = vec![ev(1, 1), ev(2, 2), ev(3, 3)];
        let b = vec![ev(1, 1), ev(2, 9), ev(3, 3)];
        let d = first_divergence(&a, &b).map(|d| (d.index, d.rip, d.before.len()));
        assert_eq!(d, Some((1, Some(9), 1)));
        let d = first_divergence(&a, &a[..2]);
        assert_eq!(
            d.as_ref().map(|d| (d.index, d.actual.is_none())),
            Some((2, true))
        );
        let d = first_divergence(&a[..1], &a);
        assert_eq!(
            d.as_ref().map(|d| (d.index, d.expected.is_none())),
            Some((1, true))
        );
    }
}
