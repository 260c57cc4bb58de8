//! The trace file format, `tlbemu-trace/1`: JSON lines. See `docs/trace-format.md`.
//!
//! ```text
//! {"format":"tlbemu-trace/1","scenario":"scenarios/x.ron","fnv1a64":"0x…","files":[],"name":"x","cores":1,"labels":2,"decisions":1,"events":40}
//! ["label","0xffffffff80000000","start"]          × labels
//! ["step",0,6]                                     × decisions  (or ["evict",core,"0xva"], ["fill",core,"0xva"])
//! [1,0,"0xffffffff80000000",7]                     × events: a retired instruction (step, core, rip, length)
//! [1,0,{"Mmu":{"TlbFill":{…}}}]                    × events: anything else (step, core, the event kind)
//! ```

use crate::events::{Event, EventKind};
use crate::scenario::Decision;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::path::Path;

/// The format tag written in (and required of) every trace header.
pub const FORMAT: &str = "tlbemu-trace/1";

/// Largest trace file read (a guard against pointing at the wrong file).
pub const MAX_TRACE_BYTES: u64 = 1 << 30;

/// A recorded run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// Path of the scenario as recorded (forward slashes).
    pub scenario: String,
    /// FNV-1a 64 of the scenario file's bytes.
    pub fnv1a64: u64,
    /// Code files the scenario includes: (path as written, FNV-1a 64).
    pub files: Vec<(String, u64)>,
    /// Scenario name.
    pub name: String,
    /// Number of cores.
    pub cores: u32,
    /// Code labels, by address (ascending).
    pub labels: Vec<(u64, String)>,
    /// The schedule decisions.
    pub decisions: Vec<Decision>,
    /// The event stream.
    pub events: Vec<Event>,
}

/// A trace that could not be read: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// The file ("" when parsing text that came from nowhere).
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (true, 0) => write!(f, "error: {}", self.message),
            (true, l) => write!(f, "line {l}: error: {}", self.message),
            (false, 0) => write!(f, "{}: error: {}", self.file, self.message),
            (false, l) => write!(f, "{}:{l}: error: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for TraceError {}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

fn json_str(s: &str) -> String {
    // Serialising a str cannot fail; fall back to an empty string literal anyway.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The header line (with its `\n`), from its fields; `counts` are the numbers
/// of labels, decisions and events that follow.
#[allow(clippy::too_many_arguments)]
pub(crate) fn header_line(
    scenario: &str,
    fnv1a64: u64,
    files: &[(String, u64)],
    name: &str,
    cores: u32,
    counts: (usize, usize, usize),
) -> String {
    let files: Vec<String> = files
        .iter()
        .map(|(f, h)| format!("[{},\"{:#018x}\"]", json_str(f), h))
        .collect();
    format!(
        "{{\"format\":\"{FORMAT}\",\"scenario\":{},\"fnv1a64\":\"{:#018x}\",\"files\":[{}],\"name\":{},\"cores\":{},\"labels\":{},\"decisions\":{},\"events\":{}}}\n",
        json_str(scenario),
        fnv1a64,
        files.join(","),
        json_str(name),
        cores,
        counts.0,
        counts.1,
        counts.2,
    )
}

/// One label line, with its `\n`.
pub(crate) fn label_line(addr: u64, label: &str) -> String {
    format!("[\"label\",\"{}\",{}]\n", hex(addr), json_str(label))
}

/// One decision line, with its `\n`, appended to `out`.
pub(crate) fn push_decision_line(out: &mut String, d: &Decision) {
    use std::fmt::Write as _;
    // Writing into a String does not fail.
    let _ = match d {
        Decision::Step { core, n } => writeln!(out, "[\"step\",{core},{n}]"),
        Decision::Evict { core, va } => writeln!(out, "[\"evict\",{core},\"{va:#x}\"]"),
        Decision::Fill { core, va } => writeln!(out, "[\"fill\",{core},\"{va:#x}\"]"),
    };
}

impl Trace {
    /// The trace as text: the header line, then labels, decisions and events, one
    /// per line, each line ending in `\n`. The streaming writer
    /// ([`super::TraceWriter`]) writes the same bytes through the same line
    /// functions.
    pub fn to_text(&self) -> String {
        let mut out = header_line(
            &self.scenario,
            self.fnv1a64,
            &self.files,
            &self.name,
            self.cores,
            (self.labels.len(), self.decisions.len(), self.events.len()),
        );
        for (a, l) in &self.labels {
            out += &label_line(*a, l);
        }
        for d in &self.decisions {
            push_decision_line(&mut out, d);
        }
        for e in &self.events {
            push_event_line(&mut out, e);
        }
        out
    }

    /// Reads a whole trace file into memory (golden traces, tests). Commands that
    /// read traces of any length use [`super::TraceStream`] instead.
    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let mut s = super::TraceStream::open(path)?;
        let mut events = Vec::new();
        while let Some(e) = s.next_event()? {
            events.push(e);
        }
        Ok(s.into_head().into_trace(events))
    }

    /// Checks that every decision names a core a machine of `cores` cores has,
    /// before anything is replayed on it. A trace is only self-consistent (its
    /// header's core count bounds its decisions); replayed against another
    /// scenario, a decision may name a core that scenario lacks, and that is bad
    /// input, reported at the decision's line (the file is left empty).
    pub fn check_cores(&self, cores: usize) -> Result<(), TraceError> {
        for (i, d) in self.decisions.iter().enumerate() {
            let c = decision_core(d);
            if c as usize >= cores {
                // The header, then the labels, then the decisions.
                return Err(core_error(2 + self.labels.len() + i, c, cores));
            }
        }
        Ok(())
    }

    /// Parses trace text. Errors carry the line (the file is left empty).
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut s = super::TraceStream::new(text.as_bytes(), "")?;
        let mut events = Vec::new();
        while let Some(e) = s.next_event()? {
            events.push(e);
        }
        Ok(s.into_head().into_trace(events))
    }
}

/// A decision on `line` names core `c`, which a machine of `cores` cores lacks.
pub(crate) fn core_error(line: usize, c: u32, cores: usize) -> TraceError {
    TraceError {
        file: String::new(),
        line,
        message: format!(
            "a decision names core {c} but the scenario's machine has {cores} core(s) (0..={}); expected a trace recorded from this scenario",
            cores.saturating_sub(1)
        ),
    }
}

/// The core a decision names.
pub fn decision_core(d: &Decision) -> u32 {
    match d {
        Decision::Step { core, .. }
        | Decision::Evict { core, .. }
        | Decision::Fill { core, .. } => *core,
    }
}

/// One event line, with its `\n`, appended to `out` (no allocation for the
/// retired instructions that make up most of a trace).
pub(crate) fn push_event_line(out: &mut String, e: &Event) {
    use std::fmt::Write as _;
    // Writing into a String does not fail.
    let _ = match &e.kind {
        EventKind::Retired { rip, len } => {
            writeln!(out, "[{},{},\"{rip:#x}\",{len}]", e.step, e.core)
        }
        k => writeln!(
            out,
            "[{},{},{}]",
            e.step,
            e.core,
            // Derived serialisation of plain data into JSON does not fail.
            serde_json::to_string(k).unwrap_or_else(|_| "null".into())
        ),
    };
}

pub(crate) struct Header {
    pub(crate) scenario: String,
    pub(crate) fnv1a64: u64,
    pub(crate) files: Vec<(String, u64)>,
    pub(crate) name: String,
    pub(crate) cores: u32,
    pub(crate) labels: usize,
    pub(crate) decisions: usize,
    pub(crate) events: usize,
}

#[derive(Deserialize)]
struct RawHeader {
    format: String,
    scenario: String,
    fnv1a64: String,
    #[serde(default)]
    files: Vec<(String, String)>,
    name: String,
    cores: u32,
    labels: usize,
    decisions: usize,
    events: usize,
}

fn parse_hex(s: &str, what: &str) -> Result<u64, String> {
    s.strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("expected {what} as a hex string like \"0x1f\", found \"{s}\""))
}

pub(crate) fn parse_header(line: &str) -> Result<Header, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| {
        format!("expected a {FORMAT} header (one JSON object on the first line): {e}")
    })?;
    match v.get("format").and_then(Value::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(format!(
                "unsupported trace format \"{other}\" (this tlbemu reads \"{FORMAT}\")"
            ))
        }
        None => {
            return Err(format!(
                "expected a header object with \"format\": \"{FORMAT}\""
            ))
        }
    }
    let h: RawHeader =
        serde_json::from_value(v).map_err(|e| format!("malformed {FORMAT} header: {e}"))?;
    let _ = h.format;
    // The core count sizes per-core tables in every reader; a machine never has
    // more than MAX_CORES, so a larger claim is a damaged or hostile header.
    let max = crate::machine::MAX_CORES;
    if h.cores == 0 || h.cores as usize > max {
        return Err(format!(
            "the header says {} cores; expected 1 to {max}",
            h.cores
        ));
    }
    let mut files = Vec::new();
    for (f, hs) in h.files {
        files.push((f, parse_hex(&hs, "a file hash")?));
    }
    Ok(Header {
        scenario: h.scenario,
        fnv1a64: parse_hex(&h.fnv1a64, "fnv1a64")?,
        files,
        name: h.name,
        cores: h.cores,
        labels: h.labels,
        decisions: h.decisions,
        events: h.events,
    })
}

pub(crate) fn parse_label(v: &Value) -> Result<(u64, String), String> {
    const WANT: &str = "expected a label line [\"label\",\"0xADDR\",\"name\"]";
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(tag), Value::String(a), Value::String(name)]) if tag == "label" => {
            Ok((parse_hex(a, "the label address")?, name.clone()))
        }
        _ => Err(format!("{WANT}, found {}", short(v))),
    }
}

fn u32_of(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

pub(crate) fn parse_decision(v: &Value) -> Result<Decision, String> {
    const WANT: &str = "expected a decision line [\"step\",core,n], [\"evict\",core,\"0xVA\"] or [\"fill\",core,\"0xVA\"]";
    let bad = || format!("{WANT}, found {}", short(v));
    let Some([Value::String(tag), core, arg]) = v.as_array().map(Vec::as_slice) else {
        return Err(bad());
    };
    let core = u32_of(core).ok_or_else(bad)?;
    match (tag.as_str(), arg) {
        ("step", n) => {
            let n = n.as_u64().filter(|n| *n > 0).ok_or_else(bad)?;
            Ok(Decision::Step { core, n })
        }
        ("evict", Value::String(a)) => Ok(Decision::Evict {
            core,
            va: parse_hex(a, "the linear address")?,
        }),
        ("fill", Value::String(a)) => Ok(Decision::Fill {
            core,
            va: parse_hex(a, "the linear address")?,
        }),
        _ => Err(bad()),
    }
}

pub(crate) fn parse_event(v: Value) -> Result<Event, String> {
    const WANT: &str = "expected an event line [step,core,\"0xRIP\",len] (a retired instruction) or [step,core,{kind}]";
    let found = short(&v);
    let Value::Array(mut items) = v else {
        return Err(format!("{WANT}, found {found}"));
    };
    let (step, core) = match items.as_slice() {
        [s, c, ..] => match (s.as_u64(), u32_of(c)) {
            (Some(s), Some(c)) => (s, c),
            _ => return Err(format!("{WANT}, found {found}")),
        },
        _ => return Err(format!("{WANT}, found {found}")),
    };
    let kind = match items.len() {
        4 => {
            let len = items[3].as_u64().and_then(|l| u8::try_from(l).ok());
            match (&items[2], len) {
                (Value::String(r), Some(len)) => EventKind::Retired {
                    rip: parse_hex(r, "the instruction's RIP")?,
                    len,
                },
                _ => return Err(format!("{WANT}, found {found}")),
            }
        }
        3 => {
            let k = items.pop().unwrap_or(Value::Null);
            serde_json::from_value::<EventKind>(k)
                .map_err(|e| format!("expected an event kind as tlbemu writes it: {e}"))?
        }
        _ => return Err(format!("{WANT}, found {found}")),
    };
    Ok(Event { step, core, kind })
}

/// The start of a JSON value, for error messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let head: String = s.chars().take(57).collect();
        format!("{head}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trace {
        Trace {
            scenario: "scenarios/x.ron".into(),
            fnv1a64: 0x1234,
            files: vec![("asm/a.s".into(), 7)],
            name: "x".into(),
            cores: 2,
            labels: vec![(0xffff_ffff_8000_0000, "start".into())],
            decisions: vec![
                Decision::Step { core: 0, n: 2 },
                Decision::Evict {
                    core: 1,
                    va: 0x400000,
                },
                Decision::Fill {
                    core: 1,
                    va: 0x400000,
                },
            ],
            events: vec![
                Event {
                    step: 1,
                    core: 0,
                    kind: EventKind::Retired {
                        rip: 0xffff_ffff_8000_0000,
                        len: 7,
                    },
                },
                Event {
                    step: 2,
                    core: 1,
                    kind: EventKind::Woken,
                },
                Event {
                    step: 2,
                    core: 1,
                    kind: EventKind::ControlWrite {
                        cr: 3,
                        old: 1,
                        new: 2,
                    },
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let t = sample();
        let text = t.to_text();
        assert_eq!(Trace::parse(&text), Ok(t));
    }

    #[test]
    fn errors_name_the_line() {
        let text = sample().to_text();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[3] = "[\"step\",0]";
        let e = Trace::parse(&lines.join("\n")).err();
        assert_eq!(e.as_ref().map(|e| e.line), Some(4), "{e:?}");
        let truncated: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
        let e = Trace::parse(&truncated).err();
        assert_eq!(e.as_ref().map(|e| e.line), Some(6), "{e:?}");
        let e = Trace::parse("{\"format\":\"other/9\"}").err();
        assert!(e.is_some_and(|e| e.line == 1 && e.message.contains("unsupported")));
        assert!(Trace::parse("").is_err());
    }
}
