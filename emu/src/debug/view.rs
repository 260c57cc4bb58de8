//! Read-only views for the debugger: linear translation and reads without
//! touching any cache, disassembly with labels, and text for TLB entries, page
//! walks, registers and events. Nothing here changes the machine.

use super::session::Syntax;
use crate::events::{Event, EventKind};
use crate::machine::Machine;
use crate::state::CpuState;
use iced_x86::{
    Decoder, DecoderOptions, Formatter, GasFormatter, Instruction, IntelFormatter, SymbolResolver,
    SymbolResult,
};
use mmu::{EntryView, MmuEvent, PhysAddr, Rights, VirtAddr, WalkResult, WalkView};
use std::collections::BTreeMap;

/// Register names in display order (index into `CpuState::gpr` for the first 16).
pub const REG_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Translates `va` as `core` would, by a plain walk of the tables in memory from
/// its CR3: no TLB lookup, no fill, no A/D update. Identity when paging is off.
pub fn translate(m: &Machine, core: usize, va: u64) -> Result<u64, String> {
    if core >= m.num_cores() {
        return Err(format!("there is no core {core}"));
    }
    let regs = m.paging_regs(core);
    if !regs.paging() {
        return Ok(va);
    }
    let params = mmu::WalkParams {
        maxphyaddr: m.config.mmu.maxphyaddr,
        huge_1g: m.config.mmu.huge_1g,
        nxe: regs.efer & mmu::efer::NXE != 0,
    };
    let root = mmu::cr3_root(regs.cr3, m.config.mmu.maxphyaddr);
    match mmu::walk(
        &m.mem,
        VirtAddr(va),
        mmu::WalkStart::root(root),
        params,
        0,
        &mut mmu::Path::new(),
    ) {
        Ok(WalkResult::Leaf { frame, size, .. }) => Ok(frame.raw() + (va & size.offset_mask())),
        Ok(WalkResult::NotPresent { level }) => Err(format!(
            "{va:#x} is not mapped (level {level} entry not present)"
        )),
        Ok(WalkResult::Reserved { level }) => Err(format!(
            "{va:#x}: reserved bit set in the level {level} entry"
        )),
        Ok(WalkResult::Table { .. }) => Err(format!("{va:#x}: walk stopped early")),
        Err(e) => Err(format!("{va:#x}: {e}")),
    }
}

/// Reads `len` bytes at linear `va` through `core`'s tables (read-only walk);
/// `None` for bytes that are not mapped.
pub fn read_linear(m: &Machine, core: usize, va: u64, len: usize) -> Vec<Option<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut page: Option<(u64, Option<u64>)> = None;
    for i in 0..len as u64 {
        let a = va.wrapping_add(i);
        let base = a & !0xfff;
        let pa_base = match page {
            Some((b, p)) if b == base => p,
            _ => {
                let p = translate(m, core, base).ok();
                page = Some((base, p));
                p
            }
        };
        let byte = pa_base.and_then(|p| {
            let mut b = [0u8];
            m.mem
                .read(PhysAddr(p + (a & 0xfff)), &mut b)
                .ok()
                .map(|_| b[0])
        });
        out.push(byte);
    }
    out
}

/// One disassembled instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisLine {
    /// Linear address.
    pub addr: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The instruction text (or `(bad)` / `(unmapped)`).
    pub text: String,
    /// The label at this address, if any.
    pub label: Option<String>,
}

struct Labels(BTreeMap<u64, String>);

impl SymbolResolver for Labels {
    fn symbol(
        &mut self,
        _instruction: &Instruction,
        _operand: u32,
        _instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        self.0
            .get(&address)
            .map(|s| SymbolResult::with_str(address, s.as_str()))
    }
}

/// Disassembles `count` instructions from `start` in `core`'s address space.
pub fn disassemble(
    m: &Machine,
    core: usize,
    labels: &BTreeMap<u64, String>,
    start: u64,
    count: usize,
    syntax: Syntax,
) -> Vec<DisLine> {
    let resolver = Box::new(Labels(labels.clone()));
    let mut fmt: Box<dyn Formatter> = match syntax {
        Syntax::Att => Box::new(GasFormatter::with_options(Some(resolver), None)),
        Syntax::Intel => Box::new(IntelFormatter::with_options(Some(resolver), None)),
    };
    fmt.options_mut().set_first_operand_char_index(8);
    let mut out = Vec::new();
    let mut addr = start;
    while out.len() < count {
        let raw = read_linear(m, core, addr, 15);
        let n = raw.iter().take_while(|b| b.is_some()).count();
        if n == 0 {
            out.push(DisLine {
                addr,
                bytes: Vec::new(),
                text: "(unmapped)".into(),
                label: labels.get(&addr).cloned(),
            });
            break;
        }
        let bytes: Vec<u8> = raw[..n].iter().map(|b| b.unwrap_or(0)).collect();
        let mut d = Decoder::with_ip(64, &bytes, addr, DecoderOptions::NONE);
        let insn = d.decode();
        let len = if insn.is_invalid() { 1 } else { insn.len() };
        let mut text = String::new();
        if insn.is_invalid() {
            text.push_str("(bad)");
        } else {
            fmt.format(&insn, &mut text);
        }
        out.push(DisLine {
            addr,
            bytes: bytes[..len.min(bytes.len())].to_vec(),
            text,
            label: labels.get(&addr).cloned(),
        });
        addr = addr.wrapping_add(len as u64);
    }
    out
}

/// Disassembly around `rip`: decoding starts at the earliest label within 256
/// bytes before it from which the instruction stream lands exactly on `rip` (so
/// the lines before `rip` decode as written), else at `rip`; at most `before`
/// lines before it and `total` lines in all.
pub fn disassemble_around(
    m: &Machine,
    core: usize,
    labels: &BTreeMap<u64, String>,
    rip: u64,
    before: usize,
    total: usize,
    syntax: Syntax,
) -> Vec<DisLine> {
    for (&start, _) in labels.range(rip.saturating_sub(256)..=rip) {
        let lines = disassemble(m, core, labels, start, 256 + total, syntax);
        if let Some(at) = lines.iter().position(|l| l.addr == rip) {
            let first = at.saturating_sub(before);
            return lines.into_iter().skip(first).take(total).collect();
        }
    }
    disassemble(m, core, labels, rip, total, syntax)
}

/// Rights as three letters: `w` writable, `u` user, `x` executable (`-` if not).
pub fn rights_text(r: Rights) -> String {
    let b = |bit: u8, c: char| if r.0 & bit != 0 { c } else { '-' };
    [
        b(Rights::WRITE, 'w'),
        b(Rights::USER, 'u'),
        b(Rights::EXEC, 'x'),
    ]
    .iter()
    .collect()
}

/// Short cache names for table rows: `TLB`, `ITLB`, `PSC-L4` .. `PSC-L2`.
pub fn cache_name(c: mmu::CacheKind) -> String {
    match c {
        mmu::CacheKind::Tlb { instruction: false } => "TLB".into(),
        mmu::CacheKind::Tlb { instruction: true } => "ITLB".into(),
        mmu::CacheKind::Psc { level } => format!("PSC-L{level}"),
    }
}

/// One cached entry as a table row: cache, PCID, VA→PA (or next table), size,
/// rights, G, D, origin step, and a stale mark.
pub fn format_entry(e: &EntryView) -> String {
    let (target, size, rights, g, d) = match e.cached {
        WalkResult::Leaf {
            frame,
            size,
            rights,
            global,
            dirty,
        } => (
            format!("{:#x}", frame.raw()),
            size.name().to_string(),
            rights_text(rights),
            global,
            dirty,
        ),
        WalkResult::Table {
            level,
            next,
            rights,
        } => (
            format!("L{level}->{:#x}", next.raw()),
            "tbl".to_string(),
            rights_text(rights),
            false,
            false,
        ),
        other => (
            walk_result_text(&other),
            String::new(),
            String::new(),
            false,
            false,
        ),
    };
    format!(
        "{:<6} {:>5} {:>18} -> {:<14} {:<4} {:<3} {} {} @{}{}",
        cache_name(e.cache),
        format!("{:#x}", e.pcid),
        format!("{:#x}", e.va.raw()),
        target,
        size,
        rights,
        if g { 'G' } else { '-' },
        if d { 'D' } else { '-' },
        e.filled_step,
        if e.stale { " STALE" } else { "" }
    )
}

/// Why `e` is stale: the latest write that made it so, found in the event log.
pub fn stale_reason(e: &EntryView, events: &super::EventLog) -> Option<String> {
    events.rare_rev().find_map(|ev| match &ev.kind {
        EventKind::Mmu(MmuEvent::BecameStale {
            entry,
            write,
            root_change,
        }) if entry.core == e.core
            && entry.cache == e.cache
            && entry.pcid == e.pcid
            && entry.va == e.va
            && entry.filled_step == e.filled_step =>
        {
            match (write, root_change) {
                (Some(w), _) => Some(format!(
                    "core {} wrote {} at step {} (rip {:#x}): {:#x} -> {:#x}",
                    w.core, w.pa, w.step, w.rip, w.old, w.new
                )),
                (None, Some(c)) => Some(format!(
                    "core {} loaded CR3 at step {} (rip {:#x}): root {} -> {} without flushing it",
                    c.core, c.step, c.rip, c.from, c.to
                )),
                (None, None) => None,
            }
        }
        _ => None,
    })
}

/// A page walk as text lines: one per level (with this core's cached
/// paging-structure entry under it when there is one), what memory says, and the
/// TLB entry the core would use, each marked where it differs from memory.
pub fn format_walk(w: &WalkView) -> Vec<String> {
    let mut out = vec![format!(
        "walk of va {:#x}: PCID {:#x}, root {}",
        w.va.raw(),
        w.pcid,
        w.root
    )];
    let name = |l: u8| match l {
        4 => "PML4E",
        3 => "PDPTE",
        2 => "PDE",
        _ => "PTE",
    };
    for l in &w.levels {
        out.push(format!(
            "{:<5} @{:<10} = {:#018x} {}",
            name(l.level),
            l.entry_pa.to_string(),
            l.value,
            l.flags
        ));
        if let Some(c) = l.cached_value {
            out.push(format!(
                "      PSC cached {c:#018x}{}",
                if l.cached_differs {
                    "  DIFFERS from memory"
                } else {
                    ""
                }
            ));
        } else if l.cached_differs {
            out.push("      PSC entry DIFFERS from memory".into());
        }
    }
    out.push(match &w.result {
        Some(WalkResult::Leaf {
            frame,
            size,
            rights,
            ..
        }) => format!(
            "memory: {:#x} -> {:#x} ({}, {})",
            w.va.raw(),
            frame.raw() + (w.va.raw() & size.offset_mask()),
            size.name(),
            rights_text(*rights)
        ),
        Some(r) => format!("memory: {}", walk_result_text(r)),
        None => "memory: the walk failed".into(),
    });
    if w.tlb.is_empty() {
        out.push("TLB: no entry for this address".into());
    }
    for e in &w.tlb {
        let (frame, size, rights) = match e.cached {
            WalkResult::Leaf {
                frame,
                size,
                rights,
                ..
            } => (frame, size, rights),
            _ => continue,
        };
        let differs = match &w.result {
            Some(WalkResult::Leaf {
                frame: f2,
                rights: r2,
                ..
            }) => frame != *f2 || rights != *r2,
            _ => true,
        };
        out.push(format!(
            "{}: {:#x} -> {:#x} ({}, {}) filled @{}{}{}",
            cache_name(e.cache),
            e.va.raw(),
            frame.raw() + (w.va.raw() & size.offset_mask()),
            size.name(),
            rights_text(rights),
            e.filled_step,
            if e.stale { " STALE" } else { "" },
            if differs { "  DIFFERS from memory" } else { "" }
        ));
    }
    out
}

/// General registers, RIP, RFLAGS and paging state; a `*` marks values that
/// differ from `prev`.
pub fn format_regs(s: &CpuState, prev: Option<&CpuState>) -> Vec<String> {
    let mark = |changed: bool| if changed { '*' } else { ' ' };
    let mut out = Vec::new();
    for (i, n) in REG_NAMES.iter().enumerate() {
        let ch = prev.is_some_and(|p| p.gpr[i] != s.gpr[i]);
        out.push(format!("{n:>4}{}{:#018x}", mark(ch), s.gpr[i]));
    }
    let ch = prev.is_some_and(|p| p.rip != s.rip);
    out.push(format!(" rip{}{:#018x}", mark(ch), s.rip));
    let ch = prev.is_some_and(|p| p.rflags != s.rflags);
    out.push(format!(
        "rflags{}{:#x} [{}]",
        mark(ch),
        s.rflags,
        flags_text(s.rflags)
    ));
    let ch = prev.is_some_and(|p| p.cr3 != s.cr3);
    let pcide = s.cr4 & mmu::cr4::PCIDE != 0;
    out.push(format!(
        " cr3{}{:#x} pcid {:#x} cpl {}",
        mark(ch),
        s.cr3,
        if pcide { s.cr3 & 0xfff } else { 0 },
        s.cpl()
    ));
    out
}

/// Names of the set arithmetic and control flags.
pub fn flags_text(f: u64) -> String {
    const FLAGS: [(u32, &str); 8] = [
        (0, "CF"),
        (2, "PF"),
        (4, "AF"),
        (6, "ZF"),
        (7, "SF"),
        (9, "IF"),
        (10, "DF"),
        (11, "OF"),
    ];
    FLAGS
        .iter()
        .filter(|(b, _)| f & (1 << b) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One event as a short line.
pub fn format_event(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::Retired { rip, .. } => format!("retired {rip:#x}"),
        EventKind::Mmu(m) => match m {
            MmuEvent::TlbFill { entry } | MmuEvent::PscFill { entry } => format!(
                "{} fill pcid {:#x} va {:#x}",
                entry.cache,
                entry.pcid,
                entry.va.raw()
            ),
            MmuEvent::Eviction { entry, .. } => {
                format!("{} evict va {:#x}", entry.cache, entry.va.raw())
            }
            MmuEvent::Invalidation { op, removed, .. } => format!(
                "invalidation {op}: -{} TLB -{} PSC",
                removed.tlb, removed.psc
            ),
            MmuEvent::PagingWrite { write, affected } => format!(
                "paging write {} {:#x} -> {:#x} ({affected} cached)",
                write.pa, write.old, write.new
            ),
            MmuEvent::BecameStale {
                entry,
                write,
                root_change,
            } => format!(
                "became stale: {} pcid {:#x} va {:#x} ({})",
                entry.cache,
                entry.pcid,
                entry.va.raw(),
                match (write, root_change) {
                    (Some(w), _) => format!("core {} wrote {}", w.core, w.pa),
                    (None, Some(c)) => format!("core {} loaded root {}", c.core, c.to),
                    (None, None) => "no cause recorded".to_string(),
                }
            ),
            MmuEvent::BecameFresh { entry, .. } => {
                format!("became fresh: {} va {:#x}", entry.cache, entry.va.raw())
            }
            MmuEvent::StaleUse(su) => {
                format!(
                    "STALE USE va {} via {} rip {:#x}",
                    su.va, su.cache, su.ctx.rip
                )
            }
            MmuEvent::DirtyRewalk { va, .. } => format!("dirty rewalk va {va}"),
            MmuEvent::AccessedDirtySet { write, .. } => {
                format!("A/D set {} -> {:#x}", write.pa, write.new)
            }
        },
        EventKind::ControlWrite { cr, old, new } => format!("mov cr{cr} {old:#x} -> {new:#x}"),
        EventKind::IpiSent {
            vector, targets, ..
        } => format!("IPI vector {vector:#x} to cores {targets:#b}"),
        EventKind::Eoi { vector } => match vector {
            Some(v) => format!("EOI vector {v:#x}"),
            None => "EOI (no interrupt in service)".to_string(),
        },
        EventKind::Interrupt { vector, from, .. } => {
            format!("interrupt {vector:#x} at {from:#x}")
        }
        EventKind::Exception {
            delivered, from, ..
        } => {
            format!("exception {delivered} at {from:#x}")
        }
        EventKind::Halted { rip } => format!("hlt ({rip:#x})"),
        EventKind::Woken => "woken".into(),
        EventKind::Stopped(r) => format!("stopped: {r}"),
        EventKind::Watched {
            name,
            write,
            old,
            new,
        } => crate::trace::text::watched(name, *write, *old, *new),
    };
    format!(
        "{:>5} c{} {:<12} {what}",
        e.step,
        event_core(e),
        e.kind.name()
    )
}

/// The core an event is about: for an entry that became stale or fresh, the
/// core whose cache holds it (the writer is named in the event's text);
/// otherwise the core that executed.
pub fn event_core(e: &Event) -> usize {
    match &e.kind {
        EventKind::Mmu(MmuEvent::BecameStale { entry, .. })
        | EventKind::Mmu(MmuEvent::BecameFresh { entry, .. }) => entry.core as usize,
        _ => e.core as usize,
    }
}

/// A walk's outcome in words (no Rust debug text).
pub fn walk_result_text(r: &WalkResult) -> String {
    match r {
        WalkResult::Leaf { frame, size, .. } => {
            format!("maps {:#x} ({})", frame.raw(), size.name())
        }
        WalkResult::Table { level, next, .. } => {
            format!("level {level} table at {:#x}", next.raw())
        }
        WalkResult::NotPresent { level } => {
            format!("not present (level {level} entry has P=0)")
        }
        WalkResult::Reserved { level } => {
            format!("reserved bit set in the level {level} entry")
        }
    }
}
