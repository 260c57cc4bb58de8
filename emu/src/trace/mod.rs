//! Traces: a recorded run (the scenario's identity, its code labels, the schedule
//! decisions and the full event stream) in a line-oriented JSON format, and what
//! can be done with one: replay it against the scenario and name the first
//! divergence ([`diff`]), print it ([`text`]), or export it for a timeline viewer
//! ([`chrome`]).
//!
//! `docs/trace-format.md` documents the format. The writer is deterministic: the
//! same scenario bytes and decisions give the same trace bytes, because nothing in
//! it depends on the host (no wall clock, no host-seeded hashing, every map that
//! reaches the output is ordered).

pub mod chrome;
pub mod diff;
mod format;
mod stream;
pub mod text;

pub use diff::{
    first_divergence, render_divergence, replay, replay_stream, Divergence, Replay, ReplayError,
    ReplayOutcome,
};
pub use format::{Trace, TraceError, FORMAT, MAX_TRACE_BYTES};
pub use stream::{TraceHead, TraceStream, TraceWriter, MAX_LINE_BYTES};
pub use text::{describe, Symbols};

use crate::events::Event;
use crate::scenario::{Plan, RunReport, Runner, Scenario, Source};
use std::path::Path;
use std::sync::Arc;

/// FNV-1a, 64-bit: offset basis `0xcbf29ce484222325`, prime `0x100000001b3`, one
/// byte at a time. Chosen because it is tiny, stable and unseeded; it identifies
/// inputs, it is no defence against deliberate collisions.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The inputs a run depends on, as hashes: the scenario file and every code file
/// it includes (`code: [(file: ...)]`, paths as written, relative to the scenario).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inputs {
    /// FNV-1a 64 of the scenario file's bytes.
    pub scenario: u64,
    /// (path as written in the scenario, FNV-1a 64 of its bytes), in `code` order.
    pub files: Vec<(String, u64)>,
}

impl Inputs {
    /// Hashes the scenario text and the code files it names. A code file that
    /// cannot be read is an error naming it (the build would have failed anyway).
    pub fn of(scenario_path: &Path, src: &Source, s: &Scenario) -> Result<Self, String> {
        let dir = scenario_path.parent().unwrap_or(Path::new("."));
        let mut files = Vec::new();
        for c in &s.code {
            if let Some(f) = &c.file {
                let p = dir.join(f);
                let bytes = crate::files::read_regular(&p, crate::scenario::MAX_SCENARIO_BYTES)
                    .map_err(|e| format!("{}: cannot read code file: {e}", p.display()))?;
                files.push((f.clone(), fnv1a64(&bytes)));
            }
        }
        Ok(Inputs {
            scenario: fnv1a64(src.text.as_bytes()),
            files,
        })
    }

    /// Differences from the hashes a trace recorded, one human line each.
    pub fn changes_since(&self, t: &Trace) -> Vec<String> {
        self.changes(t.fnv1a64, &t.files)
    }

    /// [`Inputs::changes_since`] for a trace being streamed.
    pub fn changes_since_head(&self, t: &TraceHead) -> Vec<String> {
        self.changes(t.fnv1a64, &t.files)
    }

    fn changes(&self, fnv1a64: u64, files: &[(String, u64)]) -> Vec<String> {
        let mut out = Vec::new();
        if self.scenario != fnv1a64 {
            out.push(format!(
                "the scenario changed since the trace was recorded (FNV-1a 64 {:#018x} now, {:#018x} in the trace)",
                self.scenario, fnv1a64
            ));
        }
        for (f, h) in &self.files {
            match files.iter().find(|(g, _)| g == f) {
                Some((_, old)) if old == h => {}
                Some((_, old)) => out.push(format!(
                    "code file {f} changed since the trace was recorded (FNV-1a 64 {h:#018x} now, {old:#018x} in the trace)"
                )),
                None => out.push(format!("code file {f} is new since the trace was recorded")),
            }
        }
        for (f, _) in files {
            if !self.files.iter().any(|(g, _)| g == f) {
                out.push(format!("code file {f} is no longer used by the scenario"));
            }
        }
        out
    }
}

/// A run recorded as a trace, with its report.
#[derive(Debug)]
pub struct Recording {
    /// The trace.
    pub trace: Trace,
    /// The report of the same run.
    pub report: RunReport,
}

/// Runs a built scenario along its schedule with every event recorded, and turns
/// the run into a trace. `recorded_path` is the scenario path written into the
/// trace (as the user gave it, so the trace stays portable within a checkout).
pub fn record(recorded_path: &str, inputs: Inputs, plan: &Arc<Plan>) -> Recording {
    let mut r = Runner::start(Arc::clone(plan), true);
    r.run_to_end();
    let trace = Trace::from_runner(recorded_path, inputs, &r);
    let report = r.report();
    Recording { trace, report }
}

impl Trace {
    /// The trace of what a runner has done so far (it must have been created with
    /// recording on, or the event stream is empty).
    pub fn from_runner(recorded_path: &str, inputs: Inputs, r: &Runner) -> Trace {
        Trace {
            scenario: recorded_path.replace('\\', "/"),
            fnv1a64: inputs.scenario,
            files: inputs.files,
            name: r.scenario().name.clone(),
            cores: r.machine().num_cores() as u32,
            labels: r.labels().iter().map(|(a, l)| (*a, l.clone())).collect(),
            decisions: r.decisions().to_vec(),
            events: r.events().to_vec(),
        }
    }

    /// Total machine steps the decisions take.
    pub fn steps(&self) -> u64 {
        stream::steps_of(self.decisions.iter().cloned())
    }
}

/// The events of one kind name, for tests and filters.
pub fn events_named<'a>(events: &'a [Event], name: &'a str) -> impl Iterator<Item = &'a Event> {
    events.iter().filter(move |e| e.kind.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        // Reference values of the published algorithm.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
