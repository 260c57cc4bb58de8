//! Comparing event streams and replaying a trace's decisions: the first event
//! where two runs differ, with enough context to see why.

use super::text::{describe, Symbols};
use super::{Trace, TraceError, TraceStream};
use crate::events::{Event, EventKind};
use crate::scenario::{Decision, Plan, Runner};
use std::collections::VecDeque;
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
fn rip_in<'a>(stream: impl IntoIterator<Item = &'a Event>, step: u64, core: u32) -> Option<u64> {
    stream
        .into_iter()
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

/// Why a trace could not be replayed at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// The trace's decisions take more steps than the scenario allows.
    TooLong(String),
    /// A line of the trace could not be read (found while streaming it).
    Trace(TraceError),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::TooLong(m) => f.write_str(m),
            ReplayError::Trace(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReplayError {}

/// Re-executes a trace's decisions on a freshly built scenario and compares the
/// event stream as it is produced, stopping at the first divergence. Errors are
/// traces this scenario cannot replay at all (too many steps for its budget, a
/// core it lacks).
pub fn replay(t: &Trace, plan: &Arc<Plan>) -> Result<Replay, String> {
    let mut events = t.events.iter();
    replay_from(
        t.decisions.iter().cloned(),
        t.steps(),
        t.events.len(),
        &|cores| t.check_cores(cores),
        &mut || Ok(events.next().cloned()),
        plan,
    )
    .map_err(|e| e.to_string())
}

/// [`replay`] of a trace being read: the recorded events come one at a time
/// from `stream`, and only the last [`CONTEXT_EVENTS`] of them are kept, so
/// memory does not grow with the trace.
pub fn replay_stream<R: std::io::BufRead>(
    stream: &mut TraceStream<R>,
    plan: &Arc<Plan>,
) -> Result<Replay, ReplayError> {
    let head = stream.head().clone();
    replay_from(
        head.decisions.iter(),
        head.steps(),
        head.events,
        &|cores| head.check_cores(cores),
        &mut || stream.next_event(),
        plan,
    )
}

type Source<'a> = dyn FnMut() -> Result<Option<Event>, TraceError> + 'a;

/// The replay itself, over any source of recorded events.
fn replay_from(
    decisions: impl Iterator<Item = Decision>,
    steps: u64,
    recorded: usize,
    check_cores: &dyn Fn(usize) -> Result<(), TraceError>,
    next: &mut Source<'_>,
    plan: &Arc<Plan>,
) -> Result<Replay, ReplayError> {
    let budget = plan.budget().max(recorded as u64);
    if steps > budget {
        return Err(ReplayError::TooLong(format!(
            "the trace's decisions take {steps} steps, more than the scenario's step budget ({budget}) and the trace's event count; expected a trace recorded from this scenario"
        )));
    }
    let mut r = Runner::start(Arc::clone(plan), true);
    let cores = r.machine().num_cores();
    check_cores(cores).map_err(|e| ReplayError::TooLong(e.to_string()))?;
    let mut cmp = Compare {
        index: 0,
        window: VecDeque::with_capacity(CONTEXT_EVENTS + 1),
        batch: Vec::new(),
    };
    let diverged = |d: Divergence| Replay {
        events: d.index,
        outcome: ReplayOutcome::Diverged(Box::new(d)),
    };
    for d in decisions {
        match d {
            Decision::Step { core, n } => {
                let c = core as usize;
                for _ in 0..n {
                    // The RIP the stepped core had before the step.
                    let rip = (c < cores).then(|| r.machine().cores[c].cpu.state.rip);
                    r.apply(&Decision::Step { core, n: 1 });
                    if let Some(d) = cmp.step(&mut r, rip, next)? {
                        return Ok(diverged(d));
                    }
                }
            }
            other => {
                r.apply(&other);
                if let Some(d) = cmp.step(&mut r, None, next)? {
                    return Ok(diverged(d));
                }
            }
        }
    }
    if let Some(exp) = next().map_err(ReplayError::Trace)? {
        let rip = rip_in(cmp.window.iter().chain([&exp]), exp.step, exp.core);
        return Ok(diverged(Divergence {
            index: cmp.index,
            expected: Some(exp),
            actual: None,
            before: cmp.window.iter().cloned().collect(),
            rip,
        }));
    }
    Ok(Replay {
        events: cmp.index,
        outcome: ReplayOutcome::Identical,
    })
}

/// The comparison state of a replay: how many events matched, and the last few
/// of them (the context a divergence is shown with).
struct Compare {
    index: usize,
    window: VecDeque<Event>,
    batch: Vec<Event>,
}

impl Compare {
    /// Compares the events the last step produced with the next recorded ones.
    fn step(
        &mut self,
        r: &mut Runner,
        rip: Option<u64>,
        next: &mut Source<'_>,
    ) -> Result<Option<Divergence>, ReplayError> {
        self.batch.clear();
        self.batch.extend(r.take_events());
        for i in 0..self.batch.len() {
            let ev = &self.batch[i];
            let exp = next().map_err(ReplayError::Trace)?;
            if exp.as_ref() == Some(ev) {
                if self.window.len() == CONTEXT_EVENTS {
                    self.window.pop_front();
                }
                self.window.push_back(ev.clone());
                self.index += 1;
                continue;
            }
            let rip = rip
                .or_else(|| rip_in(&self.batch[..=i], ev.step, ev.core))
                .or_else(|| rip_in(self.window.iter().chain(exp.as_ref()), ev.step, ev.core));
            return Ok(Some(Divergence {
                index: self.index,
                expected: exp,
                actual: Some(ev.clone()),
                before: self.window.iter().cloned().collect(),
                rip,
            }));
        }
        Ok(None)
    }
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
