//! Events as human text: one line per event, code addresses as `label+offset`,
//! and the assembly source line when the scenario is at hand.

use super::Trace;
use crate::events::{Event, EventKind};
use crate::scenario::{Built, Scenario};
use mmu::{EntryView, MmuEvent, WalkResult};
use std::collections::BTreeMap;
use std::path::Path;

/// A label further than this below an address is not used to name it.
const MAX_LABEL_DISTANCE: u64 = 1 << 20;

/// What is known about code addresses: labels, and (when the scenario was built)
/// the source line of each assembled instruction.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    labels: BTreeMap<u64, String>,
    lines: BTreeMap<u64, String>,
    /// C source lines of object code compiled with `-g`.
    c_lines: crate::scenario::object::LineMap,
}

impl Symbols {
    /// Labels only, from a trace.
    pub fn from_trace(t: &Trace) -> Self {
        Symbols::from_labels(&t.labels)
    }

    /// Labels only, from a trace's label lines.
    pub fn from_labels(labels: &[(u64, String)]) -> Self {
        Symbols {
            labels: labels.iter().cloned().collect(),
            lines: BTreeMap::new(),
            c_lines: Default::default(),
        }
    }

    /// Labels and source lines of a built scenario. `scenario_path` locates code
    /// files (`code: [(file: ...)]`); unreadable ones just have no source lines.
    pub fn from_build(scenario_path: &Path, s: &Scenario, built: &Built) -> Self {
        let dir = scenario_path.parent().unwrap_or(Path::new("."));
        let mut lines = BTreeMap::new();
        for map in &built.source_maps {
            let Some(code) = s.code.get(map.section) else {
                continue;
            };
            let (origin, text) = match (&code.asm, &code.file) {
                (Some(a), _) => (format!("code[{}]", map.section), a.clone()),
                (None, Some(f)) => {
                    let bytes = crate::files::read_regular(
                        &dir.join(f),
                        crate::scenario::MAX_SCENARIO_BYTES,
                    );
                    match bytes.ok().and_then(|b| String::from_utf8(b).ok()) {
                        Some(t) => (f.clone(), t),
                        None => continue,
                    }
                }
                _ => continue,
            };
            let src: Vec<&str> = text.lines().collect();
            for (addr, line) in &map.lines {
                let l = src
                    .get((*line as usize).wrapping_sub(1))
                    .map_or("", |l| l.trim());
                lines.insert(*addr, format!("{origin} line {line}: {l}"));
            }
        }
        Symbols {
            labels: built.labels.clone(),
            lines,
            c_lines: built.lines.clone(),
        }
    }

    /// The nearest label at or below `addr` and the offset from it.
    pub fn label_of(&self, addr: u64) -> Option<(&str, u64)> {
        self.labels
            .range(..=addr)
            .next_back()
            .filter(|(a, _)| addr - **a < MAX_LABEL_DISTANCE)
            .map(|(a, l)| (l.as_str(), addr - *a))
    }

    /// `label`, `label+0x7`, or the bare address when no label is near.
    pub fn name(&self, addr: u64) -> String {
        match self.label_of(addr) {
            Some((l, 0)) => l.to_string(),
            Some((l, off)) => format!("{l}+{off:#x}"),
            None => format!("{addr:#x}"),
        }
    }

    /// `0xaddr <label+off>`, and ` file.c:12` for object code with C lines.
    pub fn addr(&self, addr: u64) -> String {
        let c = crate::scenario::object::line_of(&self.c_lines, addr)
            .map(|l| format!(" {l}"))
            .unwrap_or_default();
        match self.label_of(addr) {
            Some(_) => format!("{addr:#x} <{}>{c}", self.name(addr)),
            None => format!("{addr:#x}{c}"),
        }
    }

    /// The assembly source line of the instruction at `addr` (or, for object
    /// code compiled with `-g`, its C `file:line`), when known.
    pub fn source(&self, addr: u64) -> Option<&str> {
        self.lines
            .get(&addr)
            .map(String::as_str)
            .or_else(|| crate::scenario::object::line_of(&self.c_lines, addr))
    }
}

fn walk(w: &WalkResult) -> String {
    match w {
        WalkResult::Leaf {
            frame,
            size,
            rights,
            global,
            dirty,
        } => format!(
            "frame {frame} {} {rights:?}{}{}",
            size.name(),
            if *global { " G" } else { "" },
            if *dirty { " D" } else { "" }
        ),
        WalkResult::Table {
            level,
            next,
            rights,
        } => format!("level-{level} table -> {next} {rights:?}"),
        WalkResult::NotPresent { level } => format!("not present at level {level}"),
        WalkResult::Reserved { level } => format!("reserved bit at level {level}"),
    }
}

fn entry(e: &EntryView) -> String {
    format!(
        "{} va {} pcid {:#x}: {}{}",
        e.cache,
        e.va,
        e.pcid,
        walk(&e.cached),
        if e.stale { " (stale)" } else { "" }
    )
}

fn cores_of(mask: u64) -> String {
    let v: Vec<String> = (0..64)
        .filter(|i| mask & (1u64 << i) != 0)
        .map(|i| i.to_string())
        .collect();
    if v.is_empty() {
        "no core".into()
    } else {
        format!("core {}", v.join(","))
    }
}

/// The details of an event, without step, core and kind.
pub fn details(k: &EventKind, sym: &Symbols) -> String {
    match k {
        EventKind::Retired { rip, len } => format!("{} ({len} bytes)", sym.addr(*rip)),
        EventKind::Mmu(m) => match m {
            MmuEvent::TlbFill { entry: e } | MmuEvent::PscFill { entry: e } => entry(e),
            MmuEvent::Eviction { entry: e, .. } => entry(e),
            MmuEvent::Invalidation {
                ctx, op, removed, ..
            } => format!(
                "{op:?} at {} removed {} TLB / {} PSC entries",
                sym.addr(ctx.rip),
                removed.tlb,
                removed.psc
            ),
            MmuEvent::PagingWrite { write, affected } => format!(
                "{} {:#018x} -> {:#018x} at {}; {affected} cached entries re-evaluated",
                write.pa,
                write.old,
                write.new,
                sym.addr(write.rip)
            ),
            MmuEvent::BecameStale {
                entry: e,
                write,
                root_change,
            } => match (write, root_change) {
                (Some(w), _) => format!(
                    "{} by the write to {} at step {} ({})",
                    entry(e),
                    w.pa,
                    w.step,
                    sym.name(w.rip)
                ),
                (None, Some(c)) => format!(
                    "{} under root {} (CR3 load at step {}, {}; filled under another root)",
                    entry(e),
                    c.to,
                    c.step,
                    sym.name(c.rip)
                ),
                (None, None) => entry(e),
            },
            MmuEvent::BecameFresh {
                entry: e,
                write,
                root_change,
            } => match (write, root_change) {
                (Some(w), _) => format!(
                    "{} again after the write to {} at step {}",
                    entry(e),
                    w.pa,
                    w.step
                ),
                (None, Some(c)) => format!(
                    "{} again under root {} (CR3 load at step {})",
                    entry(e),
                    c.to,
                    c.step
                ),
                (None, None) => entry(e),
            },
            MmuEvent::StaleUse(su) => format!(
                "{} va {} via {} at {}: cached {}, fresh walk {}",
                su.access
                    .as_ref()
                    .map_or("walk".to_string(), |a| format!("{:?}", a.kind)
                        .to_lowercase()),
                su.va,
                su.cache,
                sym.addr(su.ctx.rip),
                walk(&su.cached),
                walk(&su.fresh)
            ),
            MmuEvent::DirtyRewalk { ctx, va } => {
                format!("va {va} at {}", sym.addr(ctx.rip))
            }
            MmuEvent::AccessedDirtySet { write, .. } => {
                format!("{} {:#018x} -> {:#018x}", write.pa, write.old, write.new)
            }
        },
        EventKind::ControlWrite { cr, old, new } => format!("cr{cr} {old:#x} -> {new:#x}"),
        EventKind::IpiSent {
            vector,
            dest,
            targets,
        } => format!("vector {vector:#x} to {dest:?} ({})", cores_of(*targets)),
        EventKind::Eoi { vector } => match vector {
            Some(v) => format!("vector {v:#x}"),
            None => "nothing in service".into(),
        },
        EventKind::Interrupt {
            vector,
            from,
            handler,
        } => format!(
            "vector {vector:#x} at {} -> {}",
            sym.addr(*from),
            sym.addr(*handler)
        ),
        EventKind::Exception {
            raised,
            delivered,
            from,
            handler,
        } => {
            let what = if raised == delivered {
                format!("{delivered}")
            } else {
                format!("{raised} delivered as {delivered}")
            };
            format!("{what} at {} -> {}", sym.addr(*from), sym.addr(*handler))
        }
        EventKind::Halted { rip } => format!("next rip {}", sym.addr(*rip)),
        EventKind::Woken => "woke for an interrupt".into(),
        EventKind::Stopped(r) => r.to_string(),
        EventKind::Watched {
            name,
            write,
            old,
            new,
        } => watched(name, *write, *old, *new),
    }
}

/// A watched access: `write pm_active 0x7 {0,1,2} -> 0x6 {1,2} (cleared {0})`.
pub fn watched(name: &str, write: bool, old: u64, new: u64) -> String {
    use crate::scenario::bits;
    if !write {
        return format!("read {name} = {new:#x} {}", bits(new));
    }
    let mut s = format!(
        "write {name} {old:#x} {} -> {new:#x} {}",
        bits(old),
        bits(new)
    );
    let (set, cleared) = (!old & new, old & !new);
    let mut ch = Vec::new();
    if set != 0 {
        ch.push(format!("set {}", bits(set)));
    }
    if cleared != 0 {
        ch.push(format!("cleared {}", bits(cleared)));
    }
    if ch.is_empty() {
        ch.push("unchanged".into());
    }
    s += &format!(" ({})", ch.join(", "));
    s
}

/// One line: `step 5 core 0 stale-use   read va 0x400000 via TLB ...`.
pub fn describe(e: &Event, sym: &Symbols) -> String {
    format!(
        "step {:<5} core {} {:<12} {}",
        e.step,
        e.core,
        e.kind.name(),
        details(&e.kind, sym)
    )
}

/// The full explanation a stale use carries (several lines), or `None`.
pub fn explanation(e: &Event) -> Option<String> {
    match &e.kind {
        EventKind::Mmu(MmuEvent::StaleUse(su)) => Some(su.to_string()),
        _ => None,
    }
}
