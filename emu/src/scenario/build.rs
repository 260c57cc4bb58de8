//! From a parsed scenario to a ready machine: validate, resolve symbols, build the
//! address spaces as real page tables, assemble and place the code and data, write
//! the IDT and set every core's initial state.
//!
//! Everything here is deterministic: page-table frames are allocated in order from
//! one range, address spaces are built in name order (after the ones they share),
//! and symbol tables are sorted maps.

use super::diag::Problem;
use super::schema::*;
use crate::asm::{assemble, AsmOptions, SymbolLookup, Syntax};
use crate::features::CpuFeatures;
use crate::machine::{Machine, MachineConfig};
use crate::state::control::{CR0_WP, CR4_PCIDE, CR4_PGE, CR4_SMAP, CR4_SMEP, EFER_NXE};
use crate::state::{Seg, USER_CS, USER_SS};
use mmu::pagetable::Builder;
use mmu::{
    pte, Erratum, MmuConfig, PageSize, PhysAddr, PscConfig, Replacement, TlbArrayConfig, TlbConfig,
    VirtAddr,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bytes of one code section and its (address, line) map.
type Assembled = (Vec<u8>, Vec<(u64, u32)>);

/// A built address space.
#[derive(Clone, Debug)]
pub struct SpaceInfo {
    /// PML4 physical address.
    pub root: PhysAddr,
    /// Its PCID.
    pub pcid: u16,
}

/// Where a code section's source lines landed.
#[derive(Clone, Debug)]
pub struct SourceMap {
    /// Index in `code`.
    pub section: usize,
    /// (address, 1-based line within the section's text).
    pub lines: Vec<(u64, u32)>,
}

/// The result of building a scenario.
#[derive(Clone, Debug)]
pub struct Built {
    /// The machine, ready to step.
    pub machine: Machine,
    /// Every symbol: constants, address-space values, data names, labels.
    pub symbols: BTreeMap<String, u64>,
    /// Code labels by address (for reports and disassembly).
    pub labels: BTreeMap<u64, String>,
    /// Address spaces by name.
    pub spaces: BTreeMap<String, SpaceInfo>,
    /// Source maps of assembled sections.
    pub source_maps: Vec<SourceMap>,
    /// C source lines of object code compiled with `-g`: start → (end,
    /// `file:line`); see [`super::object::line_of`].
    pub lines: super::object::LineMap,
}

/// Evaluates a value: a number, or `name`, `name+off`, `name-off`, `a+b+...`.
pub fn resolve(v: &Value, symbols: &BTreeMap<String, u64>) -> Result<u64, String> {
    match v {
        Value::Num(n) => Ok(*n),
        Value::Sym(s) => eval(s, symbols),
    }
}

fn parse_num(t: &str) -> Option<u64> {
    let t = t.replace('_', "");
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(b) = t.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else {
        t.parse().ok()
    }
}

fn eval(expr: &str, symbols: &BTreeMap<String, u64>) -> Result<u64, String> {
    let mut total: u64 = 0;
    let mut sign = 1i8;
    let mut term = String::new();
    let flush = |term: &mut String, sign: i8, total: &mut u64| -> Result<(), String> {
        let t = term.trim();
        if t.is_empty() {
            return Err(format!(
                "`{expr}` is not a valid expression (expected symbol or number, with + or -)"
            ));
        }
        let v = match parse_num(t) {
            Some(n) => n,
            None => *symbols
                .get(t)
                .ok_or_else(|| format!("unknown symbol `{t}`{}", suggest(t, symbols.keys())))?,
        };
        *total = if sign > 0 {
            total.wrapping_add(v)
        } else {
            total.wrapping_sub(v)
        };
        term.clear();
        Ok(())
    };
    for c in expr.chars() {
        match c {
            '+' | '-' => {
                flush(&mut term, sign, &mut total)?;
                sign = if c == '+' { 1 } else { -1 };
            }
            c => term.push(c),
        }
    }
    flush(&mut term, sign, &mut total)?;
    Ok(total)
}

/// " (did you mean `x`?)" for the closest known name, if any is close.
pub fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let mut best: Option<(usize, &String)> = None;
    for k in known {
        let d = edit_distance(name, k);
        if d <= 2.max(name.len() / 4) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    match best {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn flag_bits(flags: &[PteFlag]) -> u64 {
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            PteFlag::P => pte::P,
            PteFlag::RW => pte::RW,
            PteFlag::US => pte::US,
            PteFlag::PWT => pte::PWT,
            PteFlag::PCD => pte::PCD,
            PteFlag::A => pte::A,
            PteFlag::D => pte::D,
            PteFlag::G => pte::G,
            PteFlag::NX => pte::NX,
        }
    })
}

fn page_size(s: SizeSpec) -> PageSize {
    match s {
        SizeSpec::Size4K => PageSize::Size4K,
        SizeSpec::Size2M => PageSize::Size2M,
        SizeSpec::Size1G => PageSize::Size1G,
    }
}

/// The machine configuration a scenario asks for.
pub fn machine_config(s: &Scenario) -> MachineConfig {
    let m = &s.machine;
    let mut features = CpuFeatures::default();
    if let Some(list) = &m.features {
        let has = |f: Feature| list.contains(&f);
        features = CpuFeatures {
            pcid: has(Feature::Pcid),
            invpcid: has(Feature::Invpcid),
            pge: has(Feature::Pge),
            smep: has(Feature::Smep),
            smap: has(Feature::Smap),
            nx: has(Feature::Nx),
            huge_1g: has(Feature::Huge1G),
            maxphyaddr: m.maxphyaddr,
        };
    }
    features.maxphyaddr = m.maxphyaddr;
    let policy = match m.tlb.policy {
        Policy::Lru => Replacement::Lru,
        Policy::Fifo => Replacement::Fifo,
        Policy::Unbounded => Replacement::Unbounded,
    };
    let arr = TlbArrayConfig::unified(m.tlb.entries, m.tlb.ways, policy);
    let mmu = MmuConfig {
        tlb: TlbConfig {
            data: vec![arr.clone()],
            instruction: if m.tlb.split { Some(vec![arr]) } else { None },
        },
        psc: match &m.psc {
            Some(p) => PscConfig {
                pml4e: p.pml4e,
                pdpte: p.pdpte,
                pde: p.pde,
            },
            None => PscConfig::default(),
        },
        maxphyaddr: m.maxphyaddr,
        huge_1g: features.huge_1g,
        extra_invalidations: m.extra_invalidations,
        errata: m
            .errata
            .iter()
            .map(|e| match e {
                ErratumSpec::InvlpgMissesGlobalWithPcid => Erratum::InvlpgMissesGlobalWithPcid,
            })
            .collect(),
        ..MmuConfig::default()
    };
    MachineConfig {
        cores: m.cores,
        memory: m.memory,
        features,
        mmu,
    }
}

struct Lookup<'a> {
    known: &'a BTreeMap<String, u64>,
    lenient: Option<u64>,
}

impl SymbolLookup for Lookup<'_> {
    fn lookup(&self, name: &str) -> Option<u64> {
        self.known.get(name).copied().or(self.lenient)
    }
}

/// One contiguous piece of a linear range and where it lands physically.
fn va_to_pa(
    s: &Scenario,
    symbols: &BTreeMap<String, u64>,
    va: u64,
) -> Result<Option<(u64, u64)>, String> {
    // Returns (pa, bytes left in this mapping) for va, searching every space;
    // two spaces that map va differently make the placement ambiguous.
    let mut found: Option<(u64, u64, String)> = None;
    for (name, space) in &s.address_spaces {
        for m in &space.mappings {
            let mva = resolve(&m.va, symbols)?;
            let mpa = resolve(&m.pa, symbols)?;
            let len = m.len.unwrap_or(page_size(m.size).bytes());
            if va >= mva && va - mva < len {
                let pa = mpa + (va - mva);
                let left = len - (va - mva);
                if let Some((fpa, _, fname)) = &found {
                    if *fpa != pa {
                        return Err(format!(
                            "{va:#x} maps to {fpa:#x} in `{fname}` but to {pa:#x} in `{name}`: cannot tell where to place it"
                        ));
                    }
                } else {
                    found = Some((pa, left, name.clone()));
                }
            }
        }
    }
    Ok(found.map(|(pa, left, _)| (pa, left)))
}

/// Writes `bytes` at linear address `va` through the scenario's mappings, and
/// records the physical pieces written as `what` in `used`.
fn place(
    m: &mut Machine,
    s: &Scenario,
    symbols: &BTreeMap<String, u64>,
    va: u64,
    bytes: &[u8],
    (used, what): (&mut Vec<Region>, &str),
) -> Result<(), String> {
    let mut off = 0usize;
    while off < bytes.len() {
        let a = va.wrapping_add(off as u64);
        let Some((pa, left)) = va_to_pa(s, symbols, a)? else {
            return Err(format!(
                "{a:#x} is not mapped in any address space (bytes {off}..{} of {} cannot be placed)",
                bytes.len(),
                bytes.len()
            ));
        };
        let n = (left.min((bytes.len() - off) as u64)) as usize;
        m.mem
            .write(PhysAddr(pa), &bytes[off..off + n])
            .map_err(|e| e.to_string())?;
        used.push(Region::new(what, pa, n as u64));
        off += n;
    }
    Ok(())
}

/// Largest TLB (entries per array) a scenario may ask for. Real second-level TLBs
/// hold a few thousand entries; the arrays are allocated up front for every core
/// (twice with a split TLB), so the limit also bounds a 64-core machine's memory.
pub const MAX_TLB_ENTRIES: usize = 1 << 13;
/// Largest paging-structure cache (entries per level); allocated up front too.
pub const MAX_PSC_ENTRIES: usize = 1 << 12;

/// Checks the machine's numbers before anything is allocated from them, so that a
/// typo such as `memory: 0x4000000000000` is an error at its field instead of an
/// allocation failure.
fn check_machine(m: &MachineSpec) -> Result<(), Problem> {
    let max = crate::machine::MAX_CORES;
    if m.cores == 0 || m.cores > max {
        return Err(Problem::at(
            "machine.cores",
            format!("{} cores: expected 1 to {max}", m.cores),
        ));
    }
    if m.memory < (8 << 20) || m.memory > (64 << 30) {
        return Err(Problem::at(
            "machine.memory",
            format!(
                "memory {:#x} is out of range (expected 8 MiB to 64 GiB, 0x800000..=0x1000000000)",
                m.memory
            ),
        ));
    }
    if !(32..=52).contains(&m.maxphyaddr) {
        return Err(Problem::at(
            "machine.maxphyaddr",
            format!(
                "MAXPHYADDR {} is out of range (expected 32 to 52)",
                m.maxphyaddr
            ),
        ));
    }
    if m.memory > 1u64 << m.maxphyaddr {
        return Err(Problem::at(
            "machine.memory",
            format!(
                "memory {:#x} does not fit below MAXPHYADDR {} ({:#x} bytes)",
                m.memory,
                m.maxphyaddr,
                1u64 << m.maxphyaddr
            ),
        ));
    }
    let t = &m.tlb;
    if t.entries == 0 || t.entries > MAX_TLB_ENTRIES {
        return Err(Problem::at(
            "machine.tlb.entries",
            format!("{} TLB entries: expected 1 to {MAX_TLB_ENTRIES}", t.entries),
        ));
    }
    if t.ways == 0 || t.ways > t.entries || !t.entries.is_multiple_of(t.ways) {
        return Err(Problem::at(
            "machine.tlb.ways",
            format!(
                "{} entries in {} ways is not a whole number of sets (expected ways from 1 to entries, dividing entries)",
                t.entries, t.ways
            ),
        ));
    }
    if let Some(p) = &m.psc {
        for (name, n) in [("pml4e", p.pml4e), ("pdpte", p.pdpte), ("pde", p.pde)] {
            if n > MAX_PSC_ENTRIES {
                return Err(Problem::at(
                    format!("machine.psc.{name}"),
                    format!("{n} entries: expected 0 (off) to {MAX_PSC_ENTRIES}"),
                ));
            }
        }
    }
    Ok(())
}

/// Builds the scenario. `base_dir` is where `file:` paths are relative to.
///
/// The phases run in order, each adding to the symbols the later ones resolve
/// against: the machine, the address spaces' page tables (and the names of their
/// entries), the data names, the code (assembled until its labels settle), the
/// data values, the IDT and the cores' initial state.
pub fn build(s: &Scenario, base_dir: &Path) -> Result<Built, Problem> {
    let mut m = machine(s)?;
    // Objects are laid out first: the pages they need join the address spaces
    // and their stubs join the code (docs/objects.md).
    let layout = super::object::layout(s, base_dir, m.config.features.nx)?;
    let extended;
    let s = if layout.is_empty() {
        s
    } else {
        extended = layout.extend(s)?;
        &extended
    };
    let mut symbols = s.symbols.clone();
    let spaces = page_tables(s, &mut m, &mut symbols)?;
    entry_symbols(s, base_dir, &m, &spaces, &mut symbols)?;
    data_names(s, &mut symbols)?;
    let pt = page_table_range(s);
    let mut used = vec![Region::new("page_tables", pt.start, pt.end - pt.start)];
    let mut by_addr: BTreeMap<u64, String> = BTreeMap::new();
    layout.define(&mut symbols, &mut by_addr)?;
    let (labels, source_maps) = code(s, base_dir, &mut m, &mut symbols, &mut used)?;
    layout.link(&symbols, |va, bytes| {
        let what = format!("an object section at {va:#x}");
        place(&mut m, s, &symbols, va, bytes, (&mut used, &what))
    })?;
    data(s, &mut m, &symbols, &mut used)?;
    let idt_base = idt(s, &mut m, &mut symbols, &mut used)?;
    check_overlaps(s, used)?;
    cores(s, &mut m, &symbols, &spaces, idt_base)?;
    by_addr.extend(labels.iter().map(|(k, v)| (*v, k.clone())));
    // A stub's entry is named `stub:NAME`, so reports and traces show each
    // call into it as a stub rather than as the function it stands in for.
    for st in &s.stubs {
        if let Some(a) = labels.get(&st.name) {
            by_addr.insert(*a, format!("stub:{}", st.name));
        }
    }
    Ok(Built {
        machine: m,
        symbols,
        labels: by_addr,
        spaces,
        source_maps,
        lines: layout.lines(),
    })
}

/// The machine the scenario's `machine` section describes, with nothing in it.
fn machine(s: &Scenario) -> Result<Machine, Problem> {
    check_machine(&s.machine)?;
    let cfg = machine_config(s);
    Machine::new(cfg).map_err(|e| Problem::at("machine", e.to_string()))
}

/// The address spaces as real 4-level page tables in guest memory, each built
/// after the spaces it shares; defines `NAME.root`, `NAME.cr3` and `NAME.pcid`.
fn page_tables(
    s: &Scenario,
    m: &mut Machine,
    symbols: &mut BTreeMap<String, u64>,
) -> Result<BTreeMap<String, SpaceInfo>, Problem> {
    let pt = page_table_range(s);
    if pt.start >= pt.end || pt.end > s.machine.memory || !pt.start.is_multiple_of(4096) {
        return Err(Problem::at(
            "page_tables",
            format!(
                "page-table range {:#x}..{:#x} must be page aligned, non-empty and inside memory ({:#x})",
                pt.start, pt.end, s.machine.memory
            ),
        ));
    }
    let mut order: Vec<&String> = Vec::new();
    let mut visiting: Vec<&String> = Vec::new();
    fn visit<'a>(
        n: &'a String,
        s: &'a Scenario,
        order: &mut Vec<&'a String>,
        visiting: &mut Vec<&'a String>,
    ) -> Result<(), Problem> {
        if order.contains(&n) {
            return Ok(());
        }
        if let Some(at) = visiting.iter().position(|v| *v == n) {
            let cycle: Vec<&str> = visiting[at..].iter().map(|v| v.as_str()).collect();
            return Err(Problem::at(
                format!("address_spaces.{n}.share"),
                format!(
                    "address space `{n}` shares itself through a cycle ({} -> {n}); `share` must not loop",
                    cycle.join(" -> ")
                ),
            ));
        }
        visiting.push(n);
        for (i, d) in s.address_spaces[n].share.iter().enumerate() {
            if !s.address_spaces.contains_key(d) {
                return Err(Problem::at(
                    format!("address_spaces.{n}.share[{i}]"),
                    format!(
                        "unknown address space `{d}`{}",
                        suggest(d, s.address_spaces.keys())
                    ),
                ));
            }
            let d = s
                .address_spaces
                .get_key_value(d)
                .map(|(k, _)| k)
                .unwrap_or(n);
            visit(d, s, order, visiting)?;
        }
        visiting.pop();
        order.push(n);
        Ok(())
    }
    for n in s.address_spaces.keys() {
        visit(n, s, &mut order, &mut visiting)?;
    }
    let mut spaces: BTreeMap<String, SpaceInfo> = BTreeMap::new();
    let mut next = pt.start;
    for name in order {
        let sp = &s.address_spaces[name];
        let path = format!("address_spaces.{name}");
        if sp.pcid > 0xfff {
            return Err(Problem::at(
                format!("{path}.pcid"),
                format!("PCID {:#x} does not fit in 12 bits", sp.pcid),
            ));
        }
        let mut b = Builder::new(&mut m.mem, PhysAddr(next), PhysAddr(pt.end))
            .map_err(|e| Problem::at(&path, e.to_string()))?
            .with_table_flags(pte::P | pte::RW | pte::US);
        for d in &sp.share {
            let other = &spaces[d];
            for i in 0..512u64 {
                let e = m
                    .mem
                    .read_u64(other.root.add(i * 8))
                    .map_err(|e| Problem::at(&path, e.to_string()))?;
                if e != 0 {
                    m.mem
                        .write_u64(b.root().add(i * 8), e)
                        .map_err(|e| Problem::at(&path, e.to_string()))?;
                }
            }
        }
        // Overlap check inside this space.
        let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
        for (i, mp) in sp.mappings.iter().enumerate() {
            let mpath = format!("{path}.mappings[{i}]");
            let va = resolve(&mp.va, symbols).map_err(|e| Problem::at(format!("{mpath}.va"), e))?;
            let pa = resolve(&mp.pa, symbols).map_err(|e| Problem::at(format!("{mpath}.pa"), e))?;
            let size = page_size(mp.size);
            let len = mp.len.unwrap_or(size.bytes());
            if len == 0 || len % size.bytes() != 0 {
                return Err(Problem::at(
                    format!("{mpath}.len"),
                    format!(
                        "length {len:#x} is not a positive multiple of the {} page size",
                        size.name()
                    ),
                ));
            }
            if pa.checked_add(len).is_none_or(|e| e > s.machine.memory) {
                return Err(Problem::at(
                    format!("{mpath}.pa"),
                    format!(
                        "{pa:#x}+{len:#x} lies outside the machine's {:#x} bytes of memory",
                        s.machine.memory
                    ),
                ));
            }
            let align = size.bytes();
            if !va.is_multiple_of(align) {
                return Err(Problem::at(
                    format!("{mpath}.va"),
                    format!(
                        "va {va:#x} is not aligned to the {} page size (expected a multiple of {align:#x})",
                        size.name()
                    ),
                ));
            }
            if !pa.is_multiple_of(align) {
                return Err(Problem::at(
                    format!("{mpath}.pa"),
                    format!(
                        "pa {pa:#x} is not aligned to the {} page size (expected a multiple of {align:#x})",
                        size.name()
                    ),
                ));
            }
            if size == PageSize::Size1G && !m.config.features.huge_1g {
                return Err(Problem::at(
                    format!("{mpath}.size"),
                    "1 GiB pages need the `Huge1G` feature, which machine.features leaves out (add it there or use Size2M)",
                ));
            }
            let last = match va.checked_add(len - 1) {
                Some(l) => l,
                None => {
                    return Err(Problem::at(
                        format!("{mpath}.len"),
                        format!(
                        "mapping {va:#x}+{len:#x} runs past the top of the linear address space"
                    ),
                    ))
                }
            };
            for a in [va, last] {
                if !VirtAddr(a).is_canonical() {
                    return Err(Problem::at(
                        format!("{mpath}.va"),
                        format!(
                            "mapping {va:#x}..={last:#x} reaches {a:#x}, which is not canonical (expected below 0x800000000000 or at or above 0xffff800000000000)"
                        ),
                    ));
                }
            }
            if (va >> 63) != (last >> 63) {
                return Err(Problem::at(
                    format!("{mpath}.len"),
                    format!("mapping {va:#x}..={last:#x} crosses the non-canonical hole"),
                ));
            }
            // Inclusive ends, so a mapping of the very last page compares correctly.
            if let Some((a, l, j)) = ranges.iter().find(|(a, l, _)| va <= *l && *a <= last) {
                return Err(Problem::at(
                    format!("{mpath}.va"),
                    format!("mapping {va:#x}..={last:#x} overlaps mappings[{j}] ({a:#x}..={l:#x}) of the same address space"),
                ));
            }
            ranges.push((va, last, i));
            let flags = flag_bits(&mp.flags);
            let mut off = 0;
            while off < len {
                b.map(
                    &mut m.mem,
                    VirtAddr(va.wrapping_add(off)),
                    PhysAddr(pa + off),
                    size,
                    flags,
                )
                .map_err(|e| {
                    let mut msg = e.to_string();
                    if msg.contains("exhausted") {
                        msg.push_str(&format!(
                            " (page tables are allocated from `page_tables`, {:#x}..{:#x}: make it larger)",
                            pt.start, pt.end
                        ));
                    }
                    Problem::at(&mpath, msg)
                })?;
                off += size.bytes();
            }
        }
        next = b.next_frame().raw();
        symbols.insert(format!("{name}.root"), b.root().raw());
        symbols.insert(format!("{name}.cr3"), b.cr3(sp.pcid));
        symbols.insert(format!("{name}.pcid"), sp.pcid as u64);
        spaces.insert(
            name.clone(),
            SpaceInfo {
                root: b.root(),
                pcid: sp.pcid,
            },
        );
    }
    Ok(spaces)
}

/// Where page tables are allocated: `page_tables`, or the last 4 MiB of memory.
fn page_table_range(s: &Scenario) -> Range {
    s.page_tables.unwrap_or(Range {
        start: s.machine.memory.saturating_sub(4 << 20),
        end: s.machine.memory,
    })
}

/// Physical bytes `[start, end)` that one part of the scenario (`what`, a path
/// such as `code[1].at`) wrote or reserved while it was built.
#[derive(Clone, Debug)]
pub(crate) struct Region {
    what: String,
    start: u64,
    end: u64,
}

impl Region {
    fn new(what: &str, start: u64, len: u64) -> Self {
        Region {
            what: what.to_string(),
            start,
            end: start.saturating_add(len),
        }
    }

    /// How a message names the region.
    fn describe(&self, s: &Scenario) -> String {
        let name = match self.what.as_str() {
            "page_tables" if s.page_tables.is_none() => {
                "the page-table range (by default the last 4 MiB of memory)".to_string()
            }
            "page_tables" => "the page-table range `page_tables`".to_string(),
            w => w.trim_end_matches(".at").to_string(),
        };
        format!("{name} (physical {:#x}..={:#x})", self.start, self.end - 1)
    }
}

/// Whether two regions may share bytes: the pieces of one region (a section
/// placed through two mappings), and two data items, because data are written in
/// order and a later item filling fields of an earlier reserved block (`zero:`,
/// then `at: "tss+4"`) is how a scenario lays out a structure.
fn may_share(a: &str, b: &str) -> bool {
    a == b || (a.starts_with("data[") && b.starts_with("data["))
}

/// Refuses code, data, the IDT and the page-table range that share physical
/// bytes: whichever is written later silently replaces the other's bytes (a data
/// item over code, code over page tables), and the run then fails far from the
/// cause, or passes for the wrong reason. Regions are compared physically, so two
/// linear addresses that alias one frame are caught too. The error points at the
/// region built later and names both.
fn check_overlaps(s: &Scenario, mut used: Vec<Region>) -> Result<(), Problem> {
    // Empty pieces occupy nothing.
    used.retain(|r| r.end > r.start);
    // Each region's build order (its first piece's index) breaks ties and picks
    // the later one; a sweep in start order meets every overlap as the current
    // region against the furthest-reaching one before it.
    let order: BTreeMap<&str, usize> = used
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| (r.what.as_str(), i))
        .collect();
    let mut sorted: Vec<(usize, &Region)> = used
        .iter()
        .map(|r| (order.get(r.what.as_str()).copied().unwrap_or(0), r))
        .collect();
    sorted.sort_by_key(|(o, r)| (r.start, *o));
    let mut reach: Option<(usize, &Region)> = None;
    for (o, r) in sorted {
        if let Some((ro, prev)) = reach {
            if r.start < prev.end && !may_share(&prev.what, &r.what) {
                let (early, late) = if ro < o { (prev, r) } else { (r, prev) };
                return Err(Problem::at(
                    late.what.clone(),
                    format!(
                        "{} overlaps {}; expected code, data, the IDT and the page-table range in separate physical memory",
                        late.describe(s),
                        early.describe(s)
                    ),
                ));
            }
            if r.end <= prev.end {
                continue;
            }
        }
        reach = Some((o, r));
    }
    Ok(())
}

/// The paging-structure entry symbols (`space.pte.VA` and friends) named anywhere
/// in the scenario or its assembly.
fn entry_symbols(
    s: &Scenario,
    base_dir: &Path,
    m: &Machine,
    spaces: &BTreeMap<String, SpaceInfo>,
    symbols: &mut BTreeMap<String, u64>,
) -> Result<(), Problem> {
    for name in referenced_names(s, &sources_text(s, base_dir)) {
        if symbols.contains_key(&name) {
            continue;
        }
        if let Some(r) = entry_symbol(&name, &m.mem, spaces, m.config.mmu.maxphyaddr) {
            let pa = r.map_err(|e| Problem::at("address_spaces", e))?;
            symbols.insert(name, pa);
        }
    }
    Ok(())
}

/// Data names (addresses only; values may use labels and are written later).
fn data_names(s: &Scenario, symbols: &mut BTreeMap<String, u64>) -> Result<(), Problem> {
    for (i, d) in s.data.iter().enumerate() {
        if let Some(n) = &d.name {
            let at =
                resolve(&d.at, symbols).map_err(|e| Problem::at(format!("data[{i}].at"), e))?;
            if symbols.insert(n.clone(), at).is_some() {
                let first = s.data[..i]
                    .iter()
                    .position(|d| d.name.as_deref() == Some(n.as_str()))
                    .map_or_else(
                        || "a scenario symbol or address-space value".to_string(),
                        |j| format!("data[{j}].name"),
                    );
                return Err(Problem::at(
                    format!("data[{i}].name"),
                    format!(
                        "symbol `{n}` is already defined by {first}; data names must be unique"
                    ),
                ));
            }
        }
    }

    Ok(())
}

/// The code sections, assembled until the labels are stable and placed through
/// the address spaces; adds the labels to the symbols and returns them with each
/// section's source map.
fn code(
    s: &Scenario,
    base_dir: &Path,
    m: &mut Machine,
    symbols: &mut BTreeMap<String, u64>,
    used: &mut Vec<Region>,
) -> Result<(BTreeMap<String, u64>, Vec<SourceMap>), Problem> {
    let mut sources: Vec<Option<(String, Syntax)>> = Vec::new();
    let mut raw: Vec<Option<Vec<u8>>> = Vec::new();
    for (i, c) in s.code.iter().enumerate() {
        let path = format!("code[{i}]");
        let given = [c.asm.is_some(), c.hex.is_some(), c.file.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            let names: Vec<&str> = ["asm", "hex", "file"]
                .iter()
                .zip(given)
                .filter(|(_, g)| *g)
                .map(|(n, _)| *n)
                .collect();
            let has = if names.is_empty() {
                "it has none".to_string()
            } else {
                format!("it has {}", names.join(" and "))
            };
            return Err(Problem::at(
                &path,
                format!("a code section needs exactly one of `asm`, `hex` or `file`; {has}"),
            ));
        }
        let syntax = match c.syntax {
            SyntaxSpec::Att => Syntax::Att,
            SyntaxSpec::Intel => Syntax::Intel,
        };
        if let Some(a) = &c.asm {
            sources.push(Some((a.clone(), syntax)));
            raw.push(None);
        } else if let Some(h) = &c.hex {
            let bytes = parse_hex(h).map_err(|e| Problem::at(format!("{path}.hex"), e))?;
            sources.push(None);
            raw.push(Some(bytes));
        } else if let Some(f) = &c.file {
            let p = base_dir.join(f);
            let data = crate::files::read_regular(&p, super::MAX_SCENARIO_BYTES).map_err(|e| {
                Problem::at(
                    format!("{path}.file"),
                    format!("cannot read `{}`: {e}", p.display()),
                )
            })?;
            let is_asm = matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("s") | Some("S") | Some("asm")
            );
            if is_asm {
                let text = String::from_utf8(data).map_err(|_| {
                    Problem::at(
                        format!("{path}.file"),
                        format!("`{}` is not UTF-8 text", p.display()),
                    )
                })?;
                sources.push(Some((text, syntax)));
                raw.push(None);
            } else {
                sources.push(None);
                raw.push(Some(data));
            }
        }
    }
    let mut bases = Vec::new();
    for (i, c) in s.code.iter().enumerate() {
        bases.push(resolve(&c.at, symbols).map_err(|e| Problem::at(format!("code[{i}].at"), e))?);
    }
    let mut labels: BTreeMap<String, u64> = BTreeMap::new();
    let mut label_section: BTreeMap<String, usize> = BTreeMap::new();
    let mut outputs: Vec<Assembled> = Vec::new();
    let mut stable = false;
    for pass in 0..8 {
        let mut known = symbols.clone();
        known.extend(labels.iter().map(|(k, v)| (k.clone(), *v)));
        let mut new_labels: BTreeMap<String, u64> = BTreeMap::new();
        label_section.clear();
        outputs.clear();
        for (i, src) in sources.iter().enumerate() {
            match src {
                Some((text, syntax)) => {
                    let look = Lookup {
                        known: &known,
                        lenient: if pass == 0 { Some(bases[i]) } else { None },
                    };
                    let opts = AsmOptions {
                        syntax: *syntax,
                        base: bases[i],
                        symbols: &look,
                    };
                    let a = assemble(text, &opts).map_err(|e| Problem::asm(i, &s.code[i], e))?;
                    for (name, addr) in &a.labels {
                        if symbols.contains_key(name) {
                            let what = if s.symbols.contains_key(name) {
                                format!("`symbols.{name}`")
                            } else {
                                "a data name or address-space value".to_string()
                            };
                            return Err(Problem::at(
                                format!("code[{i}]"),
                                format!("label `{name}` in code[{i}] clashes with {what} of the same name; rename one"),
                            ));
                        }
                        if new_labels.insert(name.clone(), *addr).is_some() {
                            let first = label_section.get(name).copied().unwrap_or(0);
                            return Err(Problem::at(
                                format!("code[{i}]"),
                                format!("label `{name}` is defined in code[{first}] and again in code[{i}]"),
                            ));
                        }
                        label_section.insert(name.clone(), i);
                    }
                    outputs.push((a.bytes, a.line_addrs));
                }
                None => outputs.push((raw[i].clone().unwrap_or_default(), Vec::new())),
            }
        }
        if pass > 0 && new_labels == labels {
            stable = true;
            break;
        }
        labels = new_labels;
    }
    if !stable && !sources.iter().all(|s| s.is_none()) {
        return Err(Problem::at(
            "code",
            "label addresses did not settle after 8 assembler passes (code sizes keep changing)",
        ));
    }
    symbols.extend(labels.iter().map(|(k, v)| (k.clone(), *v)));
    let mut source_maps = Vec::new();
    for (i, (bytes, lines)) in outputs.iter().enumerate() {
        let what = format!("code[{i}].at");
        place(m, s, symbols, bases[i], bytes, (used, &what)).map_err(|e| Problem::at(&what, e))?;
        source_maps.push(SourceMap {
            section: i,
            lines: lines.clone(),
        });
    }
    Ok((labels, source_maps))
}

/// The data values, written through the address spaces or physically.
fn data(
    s: &Scenario,
    m: &mut Machine,
    symbols: &BTreeMap<String, u64>,
    used: &mut Vec<Region>,
) -> Result<(), Problem> {
    for (i, d) in s.data.iter().enumerate() {
        let path = format!("data[{i}]");
        let at = resolve(&d.at, symbols).map_err(|e| Problem::at(format!("{path}.at"), e))?;
        let mut bytes = Vec::new();
        for (j, q) in d.quad.iter().enumerate() {
            let v = resolve(q, symbols).map_err(|e| Problem::at(format!("{path}.quad[{j}]"), e))?;
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        for (j, q) in d.long.iter().enumerate() {
            let v = resolve(q, symbols).map_err(|e| Problem::at(format!("{path}.long[{j}]"), e))?;
            if v > u32::MAX as u64 {
                return Err(Problem::at(
                    format!("{path}.long[{j}]"),
                    format!("{v:#x} does not fit in 32 bits"),
                ));
            }
            bytes.extend_from_slice(&(v as u32).to_le_bytes());
        }
        bytes.extend_from_slice(&d.bytes);
        if d.zero > (64 << 20) {
            return Err(Problem::at(
                format!("{path}.zero"),
                "more than 64 MiB of zeros",
            ));
        }
        bytes.resize(bytes.len() + d.zero as usize, 0);
        let what = format!("{path}.at");
        if d.phys {
            m.mem
                .write(PhysAddr(at), &bytes)
                .map_err(|e| Problem::at(&what, e.to_string()))?;
            used.push(Region::new(&what, at, bytes.len() as u64));
        } else {
            place(m, s, symbols, at, &bytes, (used, &what)).map_err(|e| Problem::at(&what, e))?;
        }
    }
    Ok(())
}

/// The IDT, if the scenario declares one: written and named `idt`; returns its
/// base for the cores that do not load their own.
fn idt(
    s: &Scenario,
    m: &mut Machine,
    symbols: &mut BTreeMap<String, u64>,
    used: &mut Vec<Region>,
) -> Result<Option<u64>, Problem> {
    let mut idt_base = None;
    if let Some(idt) = &s.idt {
        let at = resolve(&idt.at, symbols).map_err(|e| Problem::at("idt.at", e))?;
        let mut table = vec![0u8; 4096];
        for (i, g) in idt.gates.iter().enumerate() {
            let gp = format!("idt.gates[{i}]");
            let h = resolve(&g.handler, symbols)
                .map_err(|e| Problem::at(format!("{gp}.handler"), e))?;
            if g.ist > 7 {
                return Err(Problem::at(
                    format!("{gp}.ist"),
                    format!(
                        "IST index {} is out of range (expected 0 to 7; 0 means no IST)",
                        g.ist
                    ),
                ));
            }
            if g.dpl > 3 {
                return Err(Problem::at(
                    format!("{gp}.dpl"),
                    format!("DPL {} is out of range (expected 0 to 3)", g.dpl),
                ));
            }
            let ty: u64 = if g.trap { 0xf } else { 0xe };
            let lo = (h & 0xffff)
                | ((crate::state::KERNEL_CS as u64) << 16)
                | ((g.ist as u64) << 32)
                | (ty << 40)
                | ((g.dpl as u64) << 45)
                | (1 << 47)
                | ((h >> 16) & 0xffff) << 48;
            let hi = h >> 32;
            let o = g.vector as usize * 16;
            table[o..o + 8].copy_from_slice(&lo.to_le_bytes());
            table[o + 8..o + 16].copy_from_slice(&hi.to_le_bytes());
        }
        place(m, s, symbols, at, &table, (used, "idt.at")).map_err(|e| Problem::at("idt.at", e))?;
        idt_base = Some(at);
        symbols.insert("idt".into(), at);
    }
    Ok(idt_base)
}

/// Every core's initial state; a core without an entry is parked (halted with
/// interrupts off).
fn cores(
    s: &Scenario,
    m: &mut Machine,
    symbols: &BTreeMap<String, u64>,
    spaces: &BTreeMap<String, SpaceInfo>,
    idt_base: Option<u64>,
) -> Result<(), Problem> {
    if s.cores.len() > m.num_cores() {
        return Err(Problem::at(
            format!("cores[{}]", m.num_cores()),
            format!(
                "{} cores are initialised but the machine has {} (machine.cores)",
                s.cores.len(),
                m.num_cores()
            ),
        ));
    }
    for (i, c) in m.cores.iter_mut().enumerate() {
        let st = &mut c.cpu.state;
        let Some(ci) = s.cores.get(i) else {
            // No entry: parked, halted with interrupts off.
            st.halted = true;
            continue;
        };
        let p = format!("cores[{i}]");
        st.rip =
            match (&ci.call, &ci.rip) {
                (Some(c), _) => resolve(&c.func, symbols)
                    .map_err(|e| Problem::at(format!("{p}.call.func"), e))?,
                (None, Value::Sym(r)) if r.is_empty() => return Err(Problem::at(
                    &p,
                    "a core entry needs `rip` (where it starts) or `call` (a function to start in)",
                )),
                (None, r) => resolve(r, symbols).map_err(|e| Problem::at(format!("{p}.rip"), e))?,
            };
        if let Some(v) = &ci.rsp {
            st.gpr[crate::state::RSP] =
                resolve(v, symbols).map_err(|e| Problem::at(format!("{p}.rsp"), e))?;
        }
        let f = &c.cpu.features;
        for b in &ci.cr4 {
            let (bit, ok, feature) = match b {
                Cr4Bit::Pge => (CR4_PGE, f.pge, "Pge"),
                Cr4Bit::Pcide => (CR4_PCIDE, f.pcid, "Pcid"),
                Cr4Bit::Smep => (CR4_SMEP, f.smep, "Smep"),
                Cr4Bit::Smap => (CR4_SMAP, f.smap, "Smap"),
            };
            if !ok {
                return Err(Problem::at(
                    format!("{p}.cr4"),
                    format!(
                        "CR4 bit {b:?} needs the CPU feature `{feature}`, which machine.features leaves out (add it there or drop the bit)"
                    ),
                ));
            }
            st.cr4 |= bit;
        }
        if !ci.wp {
            st.cr0 &= !CR0_WP;
        } else {
            st.cr0 |= CR0_WP;
        }
        if ci.nxe && f.nx {
            st.efer |= EFER_NXE;
        }
        if let Some(v) = &ci.cr3 {
            st.cr3 = match v {
                Value::Sym(n) if spaces.contains_key(n) => {
                    let sp = &spaces[n];
                    if st.cr4 & CR4_PCIDE != 0 {
                        sp.root.raw() | sp.pcid as u64
                    } else {
                        sp.root.raw()
                    }
                }
                Value::Sym(n) if !n.contains(['+', '-']) && !symbols.contains_key(n) => {
                    return Err(Problem::at(
                        format!("{p}.cr3"),
                        format!(
                            "`{n}` is neither an address space nor a symbol (expected an address-space name such as {}, or a CR3 value){}",
                            spaces.keys().next().map_or("`k`".to_string(), |k| format!("`{k}`")),
                            suggest(n, spaces.keys().chain(symbols.keys()))
                        ),
                    ));
                }
                v => resolve(v, symbols).map_err(|e| Problem::at(format!("{p}.cr3"), e))?,
            };
        }
        if let Some(r) = ci.rflags {
            st.rflags = (r & crate::state::control::RFLAGS_WRITABLE) | 2;
        }
        match ci.cpl {
            0 => {}
            3 => {
                st.sel[Seg::Cs as usize] = USER_CS;
                st.sel[Seg::Ss as usize] = USER_SS;
            }
            other => {
                return Err(Problem::at(
                    format!("{p}.cpl"),
                    format!("CPL {other} is not modelled (expected 0 or 3)"),
                ))
            }
        }
        for (field, val, slot) in [
            ("fs_base", &ci.fs_base, 0),
            ("gs_base", &ci.gs_base, 1),
            ("kernel_gs_base", &ci.kernel_gs_base, 2),
            ("tss", &ci.tss, 3),
        ] {
            if let Some(v) = val {
                let x = resolve(v, symbols).map_err(|e| Problem::at(format!("{p}.{field}"), e))?;
                match slot {
                    0 => st.fs_base = x,
                    1 => st.gs_base = x,
                    2 => st.kernel_gs_base = x,
                    _ => st.tss_base = x,
                }
            }
        }
        let idt = match &ci.idt {
            Some(v) => Some(resolve(v, symbols).map_err(|e| Problem::at(format!("{p}.idt"), e))?),
            None => idt_base,
        };
        if let Some(base) = idt {
            st.idtr = crate::state::DescTable { base, limit: 4095 };
        }
        for (name, v) in &ci.regs {
            let x = resolve(v, symbols).map_err(|e| Problem::at(format!("{p}.regs.{name}"), e))?;
            if !crate::state::GPR_NAMES.contains(&name.as_str()) {
                return Err(Problem::at(
                    format!("{p}.regs.{name}#key"),
                    format!(
                        "`{name}` is not a general-purpose register (expected rax..r15){}",
                        suggest(
                            name,
                            crate::state::GPR_NAMES
                                .iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>()
                                .iter()
                        )
                    ),
                ));
            }
            st.set_by_name(name, x);
        }
    }
    enter_calls(s, m, symbols)
}

/// System V AMD64 argument registers, in order (psABI 3.2.3).
const ARG_REGS: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];

/// The cores that start in a function: arguments in the System V registers and
/// the return address pushed on the stack, so the function's `ret` goes to
/// `call.ret` (or the halting [`super::object::RETURN_LABEL`]). RSP then holds
/// 8 mod 16 for a 16-byte aligned `rsp`, as after a `call` (psABI 3.2.2).
fn enter_calls(
    s: &Scenario,
    m: &mut Machine,
    symbols: &BTreeMap<String, u64>,
) -> Result<(), Problem> {
    for (i, ci) in s.cores.iter().enumerate() {
        let Some(c) = &ci.call else { continue };
        let p = format!("cores[{i}].call");
        if c.args.len() > ARG_REGS.len() {
            return Err(Problem::at(
                format!("{p}.args"),
                format!(
                    "{} arguments: at most 6 are passed in registers (RDI, RSI, RDX, RCX, R8, R9); stack arguments are not modelled",
                    c.args.len()
                ),
            ));
        }
        let Some(rsp) = ci.rsp.as_ref() else {
            return Err(Problem::at(
                &p,
                "`call` pushes a return address: give the core `rsp`",
            ));
        };
        let rsp = resolve(rsp, symbols).map_err(|e| Problem::at(format!("cores[{i}].rsp"), e))?;
        let label = c.ret.as_deref().unwrap_or(super::object::RETURN_LABEL);
        let ret = symbols.get(label).copied().ok_or_else(|| {
            Problem::at(
                format!("{p}.ret"),
                format!("unknown label `{label}`{}", suggest(label, symbols.keys())),
            )
        })?;
        let mut args = Vec::new();
        for (j, a) in c.args.iter().enumerate() {
            args.push(resolve(a, symbols).map_err(|e| Problem::at(format!("{p}.args[{j}]"), e))?);
        }
        let sp = rsp.wrapping_sub(8);
        // The return slot is stack, which no other region claims.
        place(m, s, symbols, sp, &ret.to_le_bytes(), (&mut Vec::new(), ""))
            .map_err(|e| Problem::at(format!("cores[{i}].rsp"), e))?;
        let st = &mut m.cores[i].cpu.state;
        st.gpr[crate::state::RSP] = sp;
        for (r, v) in ARG_REGS.iter().zip(args) {
            st.set_by_name(r, v);
        }
    }
    Ok(())
}

fn sources_text(s: &Scenario, base_dir: &Path) -> String {
    let mut t = String::new();
    for c in &s.code {
        if let Some(a) = &c.asm {
            t.push_str(a);
            t.push('\n');
        }
        if let Some(f) = &c.file {
            let bytes = crate::files::read_regular(&base_dir.join(f), super::MAX_SCENARIO_BYTES);
            if let Some(x) = bytes.ok().and_then(|b| String::from_utf8(b).ok()) {
                t.push_str(&x);
                t.push('\n');
            }
        }
    }
    t
}

/// Every identifier-like token in the scenario's values and assembly text.
fn referenced_names(s: &Scenario, asm: &str) -> BTreeSet<String> {
    let mut texts: Vec<String> = vec![asm.to_string()];
    let v = serde_json::to_string(s).unwrap_or_default();
    texts.push(v);
    let mut out = BTreeSet::new();
    for t in texts {
        let mut cur = String::new();
        for ch in t.chars().chain(std::iter::once(' ')) {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || ch == '$' {
                cur.push(ch);
            } else {
                // An AT&T immediate (`$k.pte.400000`) names the symbol without its `$`.
                let name = cur.trim_start_matches('$');
                if name.contains(".pte.")
                    || name.contains(".pde.")
                    || name.contains(".pdpte.")
                    || name.contains(".pml4e.")
                {
                    out.insert(name.to_string());
                }
                cur.clear();
            }
        }
    }
    out
}

/// Resolves `SPACE.LEVEL.VA` (LEVEL one of pml4e, pdpte, pde, pte; VA in hex, with
/// or without 0x) to the physical address of that paging-structure entry, walking
/// the space's tables as built. `None` when the name has another shape.
pub fn entry_symbol(
    name: &str,
    mem: &mmu::PhysMem,
    spaces: &BTreeMap<String, SpaceInfo>,
    maxphyaddr: u8,
) -> Option<Result<u64, String>> {
    let (rest, va) = name.rsplit_once('.')?;
    let (space, level) = rest.rsplit_once('.')?;
    let level: u8 = match level {
        "pml4e" => 4,
        "pdpte" => 3,
        "pde" => 2,
        "pte" => 1,
        _ => return None,
    };
    let sp = spaces.get(space)?;
    let va = u64::from_str_radix(va.trim_start_matches("0x"), 16).ok()?;
    let mask = mmu::table_addr_mask(maxphyaddr);
    let mut table = sp.root.raw();
    for l in (level..=4).rev() {
        let idx = VirtAddr(va).table_index(l);
        let ea = table + idx * 8;
        if l == level {
            return Some(Ok(ea));
        }
        let e = match mem.read_u64(PhysAddr(ea)) {
            Ok(e) => e,
            Err(e) => return Some(Err(e.to_string())),
        };
        if e & pte::P == 0 {
            return Some(Err(format!(
                "`{name}`: address space `{space}` has no level-{} table for {va:#x} (the level-{l} entry is not present)",
                l - 1
            )));
        }
        if l <= 3 && e & pte::PS != 0 {
            return Some(Err(format!(
                "`{name}`: {va:#x} is mapped by a large page at level {l} in `{space}`, so there is no level-{level} entry"
            )));
        }
        table = e & mask;
    }
    None
}

/// Parses hex bytes ("48 89 e5", "0x90,0x90").
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let mut digits = String::new();
    for tok in s.split(|c: char| c.is_whitespace() || c == ',') {
        let t = tok
            .strip_prefix("0x")
            .or_else(|| tok.strip_prefix("0X"))
            .unwrap_or(tok);
        digits.push_str(t);
    }
    if let Some((i, c)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("`{c}` at digit {} is not a hex digit", i + 1));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "odd number of hex digits ({}); each byte needs two",
            digits.len()
        ));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}
