//! Traces of any length: written as the run goes and read line by line, so
//! memory does not grow with the number of events.
//!
//! The format puts the header (with the event count) and the decisions before
//! the events, but a run produces events first and knows its decisions only at
//! the end. [`TraceWriter`] therefore streams event lines into a spool file
//! beside the output, and [`TraceWriter::finish`] writes the header, labels and
//! decisions into a temporary file beside the target, appends the spool and
//! moves the result into place ([`crate::files::NewFile`]): the bytes are those
//! of [`super::Trace::to_text`], and a run that fails half way leaves the target
//! untouched.
//!
//! [`TraceStream`] reads the header, labels and decisions up front (the
//! decisions folded into a [`Decisions`] log, which stays small however many
//! there are) and then hands out one event at a time. Each line is read with a
//! length cap ([`MAX_LINE_BYTES`]) and the file as a whole with the size cap of
//! [`super::format::MAX_TRACE_BYTES`], so hostile input costs at most one line's
//! worth of memory.

use super::format::{
    core_error, header_line, label_line, parse_decision, parse_event, parse_header, parse_label,
    push_decision_line, push_event_line, Trace, TraceError, FORMAT, MAX_TRACE_BYTES,
};
use super::Inputs;
use crate::events::Event;
use crate::files::{NewFile, Spool, WriteError};
use crate::scenario::{Decision, Decisions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Longest line a trace may have. A stale use with its whole explanation is a
/// few kilobytes; a line beyond this is a damaged or hostile file, refused
/// before it is held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Everything in a trace before its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHead {
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
    /// The schedule decisions (consecutive steps of one core merged).
    pub decisions: Decisions,
    /// Number of events the header promises (the reader checks it).
    pub events: usize,
    /// Per core, the line of the first decision that names it (for
    /// [`TraceHead::check_cores`]).
    first_line: Vec<Option<usize>>,
}

impl TraceHead {
    /// Total machine steps the decisions take.
    pub fn steps(&self) -> u64 {
        steps_of(self.decisions.iter())
    }

    /// As [`Trace::check_cores`]: an error at the first decision line that names
    /// a core a machine of `cores` cores lacks.
    pub fn check_cores(&self, cores: usize) -> Result<(), TraceError> {
        let first = self
            .first_line
            .iter()
            .enumerate()
            .skip(cores)
            .filter_map(|(c, l)| l.map(|l| (l, c)))
            .min();
        match first {
            Some((line, c)) => Err(core_error(line, c as u32, cores)),
            None => Ok(()),
        }
    }

    /// The whole trace, with its events.
    pub fn into_trace(self, events: Vec<Event>) -> Trace {
        Trace {
            scenario: self.scenario,
            fnv1a64: self.fnv1a64,
            files: self.files,
            name: self.name,
            cores: self.cores,
            labels: self.labels,
            decisions: self.decisions.to_vec(),
            events,
        }
    }
}

/// Total machine steps of a decision sequence.
pub(crate) fn steps_of(ds: impl Iterator<Item = Decision>) -> u64 {
    ds.map(|d| match d {
        Decision::Step { n, .. } => n,
        _ => 0,
    })
    .fold(0u64, |a, n| a.saturating_add(n))
}

/// A trace being read: its head, then its events one at a time.
pub struct TraceStream<R> {
    src: R,
    file: String,
    /// Lines read so far (the 1-based number of the last one).
    line: usize,
    /// Bytes read before the current line (for the offset of a non-UTF-8 byte).
    line_start: u64,
    /// Bytes read so far.
    offset: u64,
    buf: Vec<u8>,
    head: TraceHead,
    /// Events still to come, by the header's count.
    left: usize,
    /// The header's counts, for messages.
    counts: (usize, usize, usize),
}

impl TraceStream<BufReader<std::io::Take<std::fs::File>>> {
    /// Opens a trace file and reads its head. Errors name the file.
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let file = path.display().to_string();
        let whole = |message: String| TraceError {
            file: file.clone(),
            line: 0,
            message,
        };
        let (f, _) = crate::files::open_regular(path, MAX_TRACE_BYTES).map_err(|e| match e {
            crate::files::ReadError::Directory => whole("is a directory, not a trace file".into()),
            crate::files::ReadError::TooLarge { len, limit } => {
                whole(format!("trace file is {len} bytes; the limit is {limit}"))
            }
            e => whole(format!("cannot read trace: {e}")),
        })?;
        TraceStream::new(BufReader::with_capacity(1 << 16, f), &file)
    }

    /// Reads a whole trace file once, checking every line, and returns its head:
    /// commands that must refuse a malformed file before they act on any of it
    /// (`trace show`, `replay`) validate first and then stream it again.
    pub fn validate(path: &Path) -> Result<TraceHead, TraceError> {
        let mut s = TraceStream::open(path)?;
        while s.next_event()?.is_some() {}
        Ok(s.into_head())
    }
}

impl<R: BufRead> TraceStream<R> {
    /// Reads the head (header, labels, decisions) from `src`. `file` names the
    /// source in errors ("" for none).
    pub fn new(src: R, file: &str) -> Result<Self, TraceError> {
        let mut s = TraceStream {
            src,
            file: file.to_string(),
            line: 0,
            line_start: 0,
            offset: 0,
            buf: Vec::new(),
            head: TraceHead {
                scenario: String::new(),
                fnv1a64: 0,
                files: Vec::new(),
                name: String::new(),
                cores: 0,
                labels: Vec::new(),
                decisions: Decisions::new(),
                events: 0,
                first_line: Vec::new(),
            },
            left: 0,
            counts: (0, 0, 0),
        };
        if !s.next_line()? {
            return Err(s.err(
                0,
                format!("the file is empty; expected a {FORMAT} header line"),
            ));
        }
        let header = parse_header(s.text()?).map_err(|m| s.err(1, m))?;
        s.counts = (header.labels, header.decisions, header.events);
        s.head = TraceHead {
            scenario: header.scenario,
            fnv1a64: header.fnv1a64,
            files: header.files,
            name: header.name,
            cores: header.cores,
            labels: Vec::with_capacity(header.labels.min(1 << 16)),
            decisions: Decisions::new(),
            events: header.events,
            first_line: vec![None; header.cores as usize],
        };
        for k in 0..header.labels {
            let v = s.value("label", k, header.labels)?;
            let l = parse_label(&v).map_err(|m| s.err(s.line, m))?;
            s.head.labels.push(l);
        }
        for k in 0..header.decisions {
            let v = s.value("decision", k, header.decisions)?;
            let d = parse_decision(&v).map_err(|m| s.err(s.line, m))?;
            let c = super::format::decision_core(&d);
            let cores = s.head.cores;
            match s.head.first_line.get_mut(c as usize) {
                Some(slot) => {
                    slot.get_or_insert(s.line);
                }
                None => {
                    return Err(s.err(
                        s.line,
                        format!("a decision names core {c} but the trace has {cores} core(s)"),
                    ))
                }
            }
            s.head.decisions.push(d);
        }
        s.left = header.events;
        Ok(s)
    }

    /// The head.
    pub fn head(&self) -> &TraceHead {
        &self.head
    }

    /// The head, giving up the rest of the stream.
    pub fn into_head(self) -> TraceHead {
        self.head
    }

    /// The next event, or `None` after the last one the header promised (then
    /// the rest of the file must be blank).
    pub fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        if self.left == 0 {
            while self.next_line()? {
                if !self.text()?.trim().is_empty() {
                    let (l, d, e) = self.counts;
                    return Err(self.err(
                        self.line,
                        format!(
                            "unexpected line after the last event (the header promises {l} labels, {d} decisions, {e} events)"
                        ),
                    ));
                }
            }
            return Ok(None);
        }
        let total = self.counts.2;
        let k = total - self.left;
        self.expect_line("event", k, total)?;
        let e = match retired_line(&self.buf) {
            Some(e) => e,
            None => {
                let v = self.json("event")?;
                parse_event(v).map_err(|m| self.err(self.line, m))?
            }
        };
        if e.core >= self.head.cores {
            return Err(self.err(
                self.line,
                format!(
                    "event on core {} but the trace has {} core(s)",
                    e.core, self.head.cores
                ),
            ));
        }
        self.left -= 1;
        Ok(Some(e))
    }

    fn err(&self, line: usize, message: String) -> TraceError {
        TraceError {
            file: self.file.clone(),
            line,
            message,
        }
    }

    /// Reads the next line into the buffer (without its `\n` or `\r\n`); false
    /// at the end of the input.
    fn next_line(&mut self) -> Result<bool, TraceError> {
        self.buf.clear();
        let cap = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.src)
            .take(cap)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| self.err(self.line + 1, format!("cannot read trace: {e}")))?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if n as u64 >= cap {
            return Err(self.err(
                self.line,
                format!("line is longer than {MAX_LINE_BYTES} bytes; expected {FORMAT} JSON lines"),
            ));
        }
        self.line_start = self.offset;
        self.offset += n as u64;
        Ok(true)
    }

    /// The current line as text.
    fn text(&self) -> Result<&str, TraceError> {
        std::str::from_utf8(&self.buf).map_err(|e| {
            let start = self.line_start;
            self.err(
                0,
                format!(
                    "trace is not UTF-8 text (invalid byte at offset {}); expected {FORMAT} JSON lines",
                    start + e.valid_up_to() as u64
                ),
            )
        })
    }

    /// Reads the line of item `k` of `count` of kind `what`; its absence is an
    /// error.
    fn expect_line(&mut self, what: &str, k: usize, count: usize) -> Result<(), TraceError> {
        if self.next_line()? {
            return Ok(());
        }
        let (l, d, e) = self.counts;
        Err(self.err(
            self.line + 1,
            format!(
                "the trace ends early: expected {what} {} of {count} (the header promises {l} labels, {d} decisions, {e} events)",
                k + 1
            ),
        ))
    }

    /// The current line as JSON.
    fn json(&self, what: &str) -> Result<Value, TraceError> {
        let n = self.line;
        serde_json::from_str(self.text()?)
            .map_err(|e| self.err(n, format!("expected a JSON {what} line: {e}")))
    }

    /// The next line as JSON, for item `k` of `count` of kind `what`.
    fn value(&mut self, what: &str, k: usize, count: usize) -> Result<Value, TraceError> {
        self.expect_line(what, k, count)?;
        self.json(what)
    }
}

/// A decimal JSON number with no sign, exponent or leading zero, as the
/// writer writes them; `None` for anything else.
fn plain_number(b: &[u8]) -> Option<u64> {
    if b.is_empty() || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// A retired-instruction line exactly as the writer writes it,
/// `[step,core,"0xRIP",len]`, parsed without building a JSON value (these lines
/// are nearly all of a trace). Anything else, including every malformed line,
/// is `None` and goes through the general parser, which says what is wrong.
fn retired_line(b: &[u8]) -> Option<Event> {
    let inner = b.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let mut parts = inner.splitn(4, |c| *c == b',');
    let step = plain_number(parts.next()?)?;
    let core = u32::try_from(plain_number(parts.next()?)?).ok()?;
    let rip = parts.next()?.strip_prefix(b"\"0x")?.strip_suffix(b"\"")?;
    let len = u8::try_from(plain_number(parts.next()?)?).ok()?;
    if rip.is_empty() || rip.len() > 16 || !rip.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let rip = u64::from_str_radix(std::str::from_utf8(rip).ok()?, 16).ok()?;
    Some(Event {
        step,
        core,
        kind: crate::events::EventKind::Retired { rip, len },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retired_fast_path_agrees_with_the_general_parser() {
        let general = |l: &str| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| parse_event(v).ok())
        };
        for l in [
            "[1,0,\"0xffffffff8000001c\",8]",
            "[18446744073709551615,4294967295,\"0xFFff\",255]",
            "[0,0,\"0x0\",0]",
        ] {
            assert!(retired_line(l.as_bytes()).is_some(), "{l}");
            assert_eq!(retired_line(l.as_bytes()), general(l), "{l}");
        }
        // Whatever the fast path declines is left to the general parser.
        for l in [
            "[01,0,\"0x1\",1]",
            "[1,0,\"0x\",1]",
            "[1,0,\"0x+1\",1]",
            "[1,0,\"0x1\",256]",
            "[1,4294967296,\"0x1\",1]",
            "[18446744073709551616,0,\"0x1\",1]",
            "[1, 0,\"0x1\",1]",
            "[1,0,\"0x1\",1,2]",
            "[1,0,\"0x11111111111111111\",1]",
            "[1,0,\"1f\",1]",
        ] {
            assert_eq!(retired_line(l.as_bytes()), None, "{l}");
        }
    }
}

/// Writes a trace as the run goes (see the module documentation).
#[derive(Debug)]
pub struct TraceWriter {
    out: NewFile,
    spool: Spool,
    scenario: String,
    inputs: Inputs,
    name: String,
    cores: u32,
    labels: Vec<(u64, String)>,
    events: usize,
    line: String,
}

impl TraceWriter {
    /// Starts a trace of a run of scenario `name` (`cores` cores, code `labels`)
    /// recorded from `recorded_path`, to be written to `target`.
    pub fn create(
        target: &Path,
        recorded_path: &str,
        inputs: Inputs,
        name: &str,
        cores: u32,
        labels: &BTreeMap<u64, String>,
    ) -> Result<Self, WriteError> {
        Ok(TraceWriter {
            out: NewFile::create(target)?,
            spool: Spool::beside(target, "events")?,
            scenario: recorded_path.replace('\\', "/"),
            inputs,
            name: name.to_string(),
            cores,
            labels: labels.iter().map(|(a, l)| (*a, l.clone())).collect(),
            events: 0,
            line: String::with_capacity(256),
        })
    }

    /// Appends one event.
    #[inline]
    pub fn event(&mut self, e: &Event) -> Result<(), WriteError> {
        self.line.clear();
        push_event_line(&mut self.line, e);
        self.events += 1;
        self.spool.append_bytes(self.line.as_bytes())
    }

    /// Events written so far.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Writes the header, labels and `decisions`, then the events, and moves
    /// the file into place (an existing target only with `force`). Returns the
    /// number of events.
    pub fn finish(mut self, decisions: &Decisions, force: bool) -> Result<usize, WriteError> {
        let head = header_line(
            &self.scenario,
            self.inputs.scenario,
            &self.inputs.files,
            &self.name,
            self.cores,
            (self.labels.len(), decisions.len(), self.events),
        );
        self.out.write_all(head.as_bytes())?;
        for (a, l) in &self.labels {
            self.out.write_all(label_line(*a, l).as_bytes())?;
        }
        let mut chunk = String::with_capacity(1 << 16);
        for d in decisions {
            push_decision_line(&mut chunk, &d);
            if chunk.len() >= 1 << 16 {
                self.out.write_all(chunk.as_bytes())?;
                chunk.clear();
            }
        }
        self.out.write_all(chunk.as_bytes())?;
        self.out.append(&mut self.spool)?;
        let n = self.events;
        self.out.commit(force)?;
        Ok(n)
    }
}

#[cfg(test)]
mod head_tests {
    use super::*;

    #[test]
    fn a_long_round_robin_is_read_into_a_folded_log() {
        // 40,000 decisions of four cores at quantum 1: the head holds a handful
        // of entries, and the steps and core check come out of them.
        let mut text = header_line("x.ron", 1, &[], "x", 4, (0, 40_000, 0));
        for i in 0..40_000u32 {
            push_decision_line(&mut text, &Decision::Step { core: i % 4, n: 1 });
        }
        let s = TraceStream::new(text.as_bytes(), "").expect("parses");
        let h = s.head();
        assert!(h.decisions.stored() <= 8, "{} stored", h.decisions.stored());
        assert_eq!(h.decisions.len(), 40_000);
        assert_eq!(h.steps(), 40_000);
        assert!(h.check_cores(4).is_ok());
        // Core 3 first appears on line 5 (header, then cores 0, 1, 2, 3).
        assert_eq!(h.check_cores(3).err().map(|e| e.line), Some(5));
    }
}
