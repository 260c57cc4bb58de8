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

fn slices(t: &Trace, sym: &Symbols) -> Vec<Vec<Slice>> {
    let mut per_core: Vec<Vec<Slice>> = (0..t.cores).map(|_| Vec::new()).collect();
    // (core, step) already placed, so a step with both an interrupt and a retired
    // instruction counts once.
    let mut last_step: Vec<Option<u64>> = vec![None; t.cores as usize];
    for e in &t.events {
        let Some(rip) = step_rip(e) else { continue };
        let c = e.core as usize;
        let (Some(list), Some(prev)) = (per_core.get_mut(c), last_step.get_mut(c)) else {
            continue;
        };
        if *prev == Some(e.step) {
            continue;
        }
        *prev = Some(e.step);
        let name = match sym.label_of(rip) {
            Some((l, _)) => l.to_string(),
            None => format!("{rip:#x}"),
        };
        match list.last_mut() {
            Some(s) if s.name == name && s.last + 1 == e.step => {
                s.last = e.step;
                s.steps += 1;
            }
            _ => list.push(Slice {
                name,
                first: e.step,
                last: e.step,
                first_rip: rip,
                steps: 1,
            }),
        }
    }
    per_core
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

/// The Chrome trace-event JSON: an object with `traceEvents`, one event per line.
pub fn export(t: &Trace) -> String {
    let sym = Symbols::from_trace(t);
    let mut out: Vec<Value> = Vec::new();
    out.push(json!({
        "ph": "M", "name": "process_name", "pid": 0, "tid": 0,
        "args": { "name": format!("tlbemu: {}", t.name) },
    }));
    for c in 0..t.cores {
        out.push(json!({
            "ph": "M", "name": "thread_name", "pid": 0, "tid": c,
            "args": { "name": format!("core {c}") },
        }));
        out.push(json!({
            "ph": "M", "name": "thread_sort_index", "pid": 0, "tid": c,
            "args": { "sort_index": c },
        }));
    }
    for (c, list) in slices(t, &sym).iter().enumerate() {
        for s in list {
            out.push(json!({
                "ph": "X", "name": s.name, "cat": "code", "pid": 0, "tid": c,
                "ts": s.first, "dur": s.last - s.first + 1,
                "args": { "first_rip": format!("{:#x}", s.first_rip), "steps": s.steps },
            }));
        }
    }
    for e in &t.events {
        let name = e.kind.name();
        if INSTANTS.contains(&name) {
            let cat = match name {
                "stale-use" | "became-stale" => "coherence",
                "ipi-sent" | "interrupt" => "ipi",
                "exception" | "halt" | "stopped" => "core",
                _ => "mmu",
            };
            out.push(json!({
                "ph": "i", "s": "t", "name": name, "cat": cat, "pid": 0, "tid": e.core,
                "ts": e.step, "args": instant_args(e, &sym),
            }));
        }
    }
    // IPI flows: each target's first delivery of the vector at or after the send.
    let mut taken = vec![false; t.events.len()];
    let mut id = 0u64;
    for (i, e) in t.events.iter().enumerate() {
        let EventKind::IpiSent {
            vector, targets, ..
        } = &e.kind
        else {
            continue;
        };
        for target in (0..t.cores).filter(|c| *c < 64 && targets & (1u64 << c) != 0) {
            let hit = t.events.iter().enumerate().skip(i + 1).find(|(j, x)| {
                !taken[*j]
                    && x.core == target
                    && matches!(&x.kind, EventKind::Interrupt { vector: v, .. } if v == vector)
            });
            let Some((j, d)) = hit else { continue };
            taken[j] = true;
            id += 1;
            let name = format!("ipi {vector:#x}");
            out.push(json!({
                "ph": "s", "id": id, "name": name, "cat": "ipi", "pid": 0, "tid": e.core,
                "ts": e.step, "args": { "vector": vector, "from": e.core, "to": target },
            }));
            out.push(json!({
                "ph": "f", "bp": "e", "id": id, "name": name, "cat": "ipi", "pid": 0,
                "tid": target, "ts": d.step,
                "args": { "vector": vector, "from": e.core, "to": target },
            }));
        }
    }
    let mut s = String::from("{\"displayTimeUnit\":\"ms\",\"otherData\":");
    s += &json!({
        "format": super::FORMAT,
        "scenario": t.scenario,
        "name": t.name,
        "time": "1 us = 1 global step",
    })
    .to_string();
    s += ",\"traceEvents\":[\n";
    let lines: Vec<String> = out.iter().map(Value::to_string).collect();
    s += &lines.join(",\n");
    s += "\n]}\n";
    s
}
