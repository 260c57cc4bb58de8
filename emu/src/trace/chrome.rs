//! Export to the Chrome trace-event JSON format (chrome://tracing, Perfetto).
//!
//! - One process ("tlbemu: <scenario>"), one thread (tid) per core.
//! - Time is the global step: `ts` = step number, in microseconds.
//! - Instructions become complete events (`"ph":"X"`): a run of consecutive global
//!   steps on one core whose RIPs fall under the same nearest-preceding code label
//!   is one slice named after the label. A step that delivers an interrupt counts
//!   as being at the handler's address.
//! - TLB and paging-structure-cache fills, evictions, invalidations, entries
//!   becoming stale, stale uses, exceptions, IPIs sent and interrupts taken are
//!   thread-scoped instant events (`"ph":"i"`, `"s":"t"`) with their details in
//!   `args`.
//! - Each IPI is a flow from the sender's step (`"ph":"s"`) to each target's
//!   delivery of that vector (`"ph":"f"`, `"bp":"e"`), named by the vector.

use super::text::{details, explanation, Symbols};
use super::Trace;
use crate::events::{Event, EventKind};
use mmu::MmuEvent;
use serde_json::{json, Value};

/// Kind names exported as instant events.
const INSTANTS: &[&str] = &[
    "tlb-fill",
    "psc-fill",
    "eviction",
    "invalidation",
    "became-stale",
    "stale-use",
    "exception",
    "ipi-sent",
    "interrupt",
    "halt",
    "stopped",
];

struct Slice {
    name: String,
    first: u64,
    last: u64,
    first_rip: u64,
    steps: u64,
}

/// The RIP a step stands for on its core: the retired instruction, or the handler
/// an interrupt was delivered to.
fn step_rip(e: &Event) -> Option<u64> {
    match &e.kind {
        EventKind::Retired { rip, .. } => Some(*rip),
        EventKind::Interrupt { handler, .. } => Some(*handler),
        _ => None,
    }
}

fn instant_args(e: &Event, sym: &Symbols) -> Value {
    let mut args = json!({ "detail": details(&e.kind, sym) });
    if let Some(x) = explanation(e) {
        args["explanation"] = Value::String(x);
    }
    if let EventKind::Mmu(MmuEvent::StaleUse(su)) = &e.kind {
        args["va"] = Value::String(format!("{:#x}", su.va.raw()));
        args["rip"] = Value::String(format!("{:#x}", su.ctx.rip));
    }
    args
}

/// An IPI sent and not yet taken by one of its targets.
struct Pending {
    /// Index of the `ipi-sent` event.
    index: usize,
    vector: u8,
    from: u32,
    step: u64,
}

/// A matched IPI: sent at event `index` by `from` at step `sent`, taken by
/// `to` at step `taken`.
struct Flow {
    index: usize,
    to: u32,
    vector: u8,
    from: u32,
    sent: u64,
    taken: u64,
}

/// The export, built one event at a time. The output groups entries by kind
/// (each core's slices, then the instants, then the flows) while events come
/// in time order, so each group is written to its own part (`W`: a buffer in
/// memory, or a spool file beside the output) and the parts are joined at the
/// end. Only the open slice of each core and the IPIs still in flight are held.
pub struct Exporter<W> {
    sym: Symbols,
    cores: u32,
    /// Per core: its slices so far, and the one still growing.
    slices: Vec<W>,
    open: Vec<Option<Slice>>,
    /// Per core, the step last placed in a slice (a step with both an
    /// interrupt and a retired instruction counts once).
    last_step: Vec<Option<u64>>,
    instants: W,
    /// Per target core, the IPIs sent to it and not yet taken, oldest first.
    pending: Vec<Vec<Pending>>,
    flows: Vec<Flow>,
    index: usize,
}

/// Where a part of the export goes.
type PartResult = std::io::Result<()>;

fn put<W: std::io::Write>(w: &mut W, v: &Value) -> PartResult {
    w.write_all(b",\n")?;
    w.write_all(v.to_string().as_bytes())
}

impl<W: std::io::Write> Exporter<W> {
    /// An exporter for a trace with these `labels` and `cores`; `part` makes
    /// the empty parts (one per core for slices, then one for instants).
    pub fn new(
        labels: &[(u64, String)],
        cores: u32,
        mut part: impl FnMut(&str) -> std::io::Result<W>,
    ) -> std::io::Result<Self> {
        let n = cores as usize;
        let mut slices = Vec::with_capacity(n);
        for c in 0..n {
            slices.push(part(&format!("core{c}"))?);
        }
        Ok(Exporter {
            sym: Symbols::from_labels(labels),
            cores,
            slices,
            open: (0..n).map(|_| None).collect(),
            last_step: vec![None; n],
            instants: part("instants")?,
            pending: (0..n).map(|_| Vec::new()).collect(),
            flows: Vec::new(),
            index: 0,
        })
    }

    fn close(&mut self, c: usize) -> PartResult {
        if let (Some(s), Some(w)) = (self.open[c].take(), self.slices.get_mut(c)) {
            put(
                w,
                &json!({
                    "ph": "X", "name": s.name, "cat": "code", "pid": 0, "tid": c,
                    "ts": s.first, "dur": s.last - s.first + 1,
                    "args": { "first_rip": format!("{:#x}", s.first_rip), "steps": s.steps },
                }),
            )?;
        }
        Ok(())
    }

    /// Takes the next event of the trace.
    pub fn event(&mut self, e: &Event) -> PartResult {
        let i = self.index;
        self.index += 1;
        let c = e.core as usize;
        if c >= self.cores as usize {
            return Ok(());
        }
        if let Some(rip) = step_rip(e) {
            if self.last_step[c] != Some(e.step) {
                self.last_step[c] = Some(e.step);
                let name = match self.sym.label_of(rip) {
                    Some((l, _)) => l.to_string(),
                    None => format!("{rip:#x}"),
                };
                match &mut self.open[c] {
                    Some(s) if s.name == name && s.last + 1 == e.step => {
                        s.last = e.step;
                        s.steps += 1;
                    }
                    _ => {
                        self.close(c)?;
                        self.open[c] = Some(Slice {
                            name,
                            first: e.step,
                            last: e.step,
                            first_rip: rip,
                            steps: 1,
                        });
                    }
                }
            }
        }
        let name = e.kind.name();
        if INSTANTS.contains(&name) {
            let cat = match name {
                "stale-use" | "became-stale" => "coherence",
                "ipi-sent" | "interrupt" => "ipi",
                "exception" | "halt" | "stopped" => "core",
                _ => "mmu",
            };
            put(
                &mut self.instants,
                &json!({
                    "ph": "i", "s": "t", "name": name, "cat": cat, "pid": 0, "tid": e.core,
                    "ts": e.step, "args": instant_args(e, &self.sym),
                }),
            )?;
        }
        // IPI flows: each target's first delivery of the vector after the send,
        // the oldest send first.
        match &e.kind {
            EventKind::IpiSent {
                vector, targets, ..
            } => {
                for t in (0..self.cores).filter(|t| *t < 64 && targets & (1u64 << t) != 0) {
                    self.pending[t as usize].push(Pending {
                        index: i,
                        vector: *vector,
                        from: e.core,
                        step: e.step,
                    });
                }
            }
            EventKind::Interrupt { vector, .. } => {
                let q = &mut self.pending[c];
                if let Some(k) = q.iter().position(|p| p.vector == *vector) {
                    let p = q.remove(k);
                    self.flows.push(Flow {
                        index: p.index,
                        to: e.core,
                        vector: p.vector,
                        from: p.from,
                        sent: p.step,
                        taken: e.step,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes the open slices and hands back the parts (each core's slices in
    /// core order, then the instants) and the flow entries, each entry
    /// preceded by `,\n`.
    pub fn finish(mut self) -> std::io::Result<(Vec<W>, W, String)> {
        for c in 0..self.cores as usize {
            self.close(c)?;
        }
        self.flows.sort_by_key(|f| (f.index, f.to));
        let mut flows = Vec::new();
        for (k, f) in self.flows.iter().enumerate() {
            let id = k as u64 + 1;
            let name = format!("ipi {:#x}", f.vector);
            put(
                &mut flows,
                &json!({
                    "ph": "s", "id": id, "name": name, "cat": "ipi", "pid": 0, "tid": f.from,
                    "ts": f.sent, "args": { "vector": f.vector, "from": f.from, "to": f.to },
                }),
            )?;
            put(
                &mut flows,
                &json!({
                    "ph": "f", "bp": "e", "id": id, "name": name, "cat": "ipi", "pid": 0,
                    "tid": f.to, "ts": f.taken,
                    "args": { "vector": f.vector, "from": f.from, "to": f.to },
                }),
            )?;
        }
        Ok((
            self.slices,
            self.instants,
            String::from_utf8_lossy(&flows).into_owned(),
        ))
    }
}

/// What comes before the parts: the object's start and the metadata entries
/// (process and thread names), the last one without a trailing separator.
pub fn prologue(name: &str, scenario: &str, cores: u32) -> String {
    let mut out: Vec<Value> = Vec::new();
    out.push(json!({
        "ph": "M", "name": "process_name", "pid": 0, "tid": 0,
        "args": { "name": format!("tlbemu: {name}") },
    }));
    for c in 0..cores {
        out.push(json!({
            "ph": "M", "name": "thread_name", "pid": 0, "tid": c,
            "args": { "name": format!("core {c}") },
        }));
        out.push(json!({
            "ph": "M", "name": "thread_sort_index", "pid": 0, "tid": c,
            "args": { "sort_index": c },
        }));
    }
    let mut s = String::from("{\"displayTimeUnit\":\"ms\",\"otherData\":");
    s += &json!({
        "format": super::FORMAT,
        "scenario": scenario,
        "name": name,
        "time": "1 us = 1 global step",
    })
    .to_string();
    s += ",\"traceEvents\":[\n";
    let lines: Vec<String> = out.iter().map(Value::to_string).collect();
    s += &lines.join(",\n");
    s
}

/// What ends the export, after the last part.
pub const EPILOGUE: &str = "\n]}\n";

/// The Chrome trace-event JSON of a trace in memory: an object with
/// `traceEvents`, one event per line. `tlbemu trace export` streams the same
/// bytes through [`Exporter`] with its parts in spool files.
pub fn export(t: &Trace) -> String {
    let mut x = match Exporter::new(&t.labels, t.cores, |_| Ok(Vec::<u8>::new())) {
        Ok(x) => x,
        Err(_) => return String::new(),
    };
    for e in &t.events {
        // Writing into memory does not fail.
        let _ = x.event(e);
    }
    let mut s = prologue(&t.name, &t.scenario, t.cores);
    if let Ok((slices, instants, flows)) = x.finish() {
        for p in slices.iter().chain([&instants]) {
            s += &String::from_utf8_lossy(p);
        }
        s += &flows;
    }
    s += EPILOGUE;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(step: u64, core: u32, kind: EventKind) -> Event {
        Event { step, core, kind }
    }

    fn sent(step: u64, core: u32, vector: u8, targets: u64) -> Event {
        ev(
            step,
            core,
            EventKind::IpiSent {
                vector,
                dest: crate::apic::IpiDest::Logical(targets as u32),
                targets,
            },
        )
    }

    fn taken(step: u64, core: u32, vector: u8) -> Event {
        ev(
            step,
            core,
            EventKind::Interrupt {
                vector,
                from: 0x1000,
                handler: 0x2000,
            },
        )
    }

    /// The flows as (sender, sent at, target, taken at), by the definition:
    /// for each send in order, each target takes its first later delivery of the
    /// vector that no earlier send took.
    fn reference(events: &[Event]) -> Vec<(u32, u64, u32, u64)> {
        let mut taken = vec![false; events.len()];
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let EventKind::IpiSent {
                vector, targets, ..
            } = &e.kind
            else {
                continue;
            };
            for t in (0..4u32).filter(|t| targets & (1 << t) != 0) {
                let hit = events.iter().enumerate().skip(i + 1).find(|(j, x)| {
                    !taken[*j]
                        && x.core == t
                        && matches!(&x.kind, EventKind::Interrupt { vector: v, .. } if v == vector)
                });
                if let Some((j, d)) = hit {
                    taken[j] = true;
                    out.push((e.core, e.step, t, d.step));
                }
            }
        }
        out
    }

    #[test]
    fn streamed_ipi_flows_match_the_definition() {
        // Interleaved sends of two vectors to overlapping targets, some taken
        // late, some never.
        let events = vec![
            sent(1, 0, 0xf0, 0b0110),
            sent(2, 3, 0xf0, 0b0100),
            taken(3, 2, 0xf0),
            sent(4, 0, 0xf1, 0b0010),
            taken(5, 1, 0xf1),
            taken(6, 2, 0xf0),
            taken(7, 1, 0xf0),
            sent(8, 1, 0xf0, 0b0001),
            taken(9, 2, 0xf0),
            taken(10, 0, 0xf0),
        ];
        let t = Trace {
            scenario: "x.ron".into(),
            fnv1a64: 0,
            files: Vec::new(),
            name: "x".into(),
            cores: 4,
            labels: Vec::new(),
            decisions: Vec::new(),
            events: events.clone(),
        };
        let json: Value = serde_json::from_str(&export(&t)).expect("json");
        let list = json["traceEvents"].as_array().cloned().unwrap_or_default();
        let starts: Vec<&Value> = list.iter().filter(|v| v["ph"] == "s").collect();
        let ends: Vec<&Value> = list.iter().filter(|v| v["ph"] == "f").collect();
        let got: Vec<(u32, u64, u32, u64)> = starts
            .iter()
            .zip(&ends)
            .map(|(s, f)| {
                assert_eq!(s["id"], f["id"]);
                (
                    s["tid"].as_u64().unwrap_or(99) as u32,
                    s["ts"].as_u64().unwrap_or(0),
                    f["tid"].as_u64().unwrap_or(99) as u32,
                    f["ts"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(got, reference(&events));
        let ids: Vec<u64> = starts.iter().filter_map(|s| s["id"].as_u64()).collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    }
}
