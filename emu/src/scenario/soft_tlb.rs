//! Software translation caches: the oracle one level above the hardware.
//!
//! A kernel that fills real PTEs from software page tables (the DragonFly vkernel's
//! VPTEs behind a MAP_VPAGETABLE region: the host's #PF handler walks them and
//! enters a real PTE) makes every real PTE in that region a *cache* of a software
//! entry, exactly as a TLB entry caches a PTE. When the software entry changes and
//! nobody removes the real PTE (MADV_INVAL), the real page tables never change, so
//! the hardware tracker has nothing to say; the stale translation is one level up.
//!
//! This module keeps, per declared region ([`SoftTlb`]), a snapshot of every page's
//! real PTE and software entry, refreshed after each step, with the history the
//! explanation needs (which write filled the real PTE, which software writes came
//! after, which invalidations). The accesses an instruction made come from the
//! machine's access observer ([`crate::events::EventSink::access`]), which is only
//! switched on when a scenario declares `soft_tlbs`, so everything here costs
//! nothing otherwise.
//!
//! Staleness rule (`docs/soft-tlb.md`): a present real PTE is stale when the
//! software walk now fails (an entry without V), names a different host frame, or
//! forbids something the real PTE still allows: writes (the host maps writable only
//! when the walk has RW at every level and M in the leaf) or fetches (NX at some
//! level). A *stale use* is an access whose translation came from a stale real PTE
//! (the physical frame used is the real PTE's) and that the difference affects:
//! any access for a frame or validity mismatch, only writes for a lost write right
//! (a read through a clean page's writable PTE is harmless), only fetches for NX.

use super::build::{resolve, Built};
use super::plan::Rule;
use super::schema::{SoftFormat, SoftTlb};
use crate::machine::Machine;
use mmu::{AccessKind, Invalidation, InvpcidKind, PhysAddr, PhysMem, VirtAddr, WalkResult};
use serde::Serialize;
use std::fmt;

/// VPTE bits (DragonFly `vm/vm_page.h` layout, as `asm/vkernel-host.s` uses them).
pub mod vpte {
    /// Valid.
    pub const V: u64 = 0x1;
    /// Writable.
    pub const RW: u64 = 0x2;
    /// User.
    pub const U: u64 = 0x4;
    /// Accessed.
    pub const A: u64 = 0x20;
    /// Modified.
    pub const M: u64 = 0x40;
    /// Page size: the walk ends here.
    pub const PS: u64 = 0x80;
    /// Global.
    pub const G: u64 = 0x100;
    /// No execute.
    pub const NX: u64 = 1 << 63;
    /// Frame field.
    pub const FRAME: u64 = 0x000f_ffff_ffff_f000;
}

/// Largest region checked (pages are rescanned after every step).
pub const MAX_REGION: u64 = 64 << 20;

/// Real-PTE bits the hardware changes on its own (A, D): not a refill.
const REAL_AD: u64 = 0x60;

/// The real PTE of one page of the region, as the real page tables hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RealPte {
    /// Physical address of the leaf entry.
    pub entry_pa: u64,
    /// Its value.
    pub value: u64,
    /// Host physical page the entry maps (page of the access, not the large-page base).
    pub frame: u64,
    /// Writes allowed (rights combined over all levels).
    pub writable: bool,
    /// Fetches allowed.
    pub executable: bool,
}

/// What the software tables say now for one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SoftEntry {
    /// Host physical address of the entry the walk ended at (the leaf, or the
    /// first invalid entry); the root's location when the root itself ended it.
    pub entry_pa: u64,
    /// Its value.
    pub value: u64,
    /// The walk gives a translation.
    pub valid: bool,
    /// Host physical page it names (when valid).
    pub frame: u64,
    /// The host would enter a writable real PTE: RW at every level and M in the leaf.
    pub writable: bool,
    /// No NX at any level.
    pub executable: bool,
}

/// How a real PTE disagrees with its software entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The software walk fails now.
    pub invalid: bool,
    /// The software entry names another frame.
    pub frame: bool,
    /// The real PTE allows writes the software entry no longer allows (RW or M clear).
    pub write: bool,
    /// The real PTE allows fetches the software entry forbids (NX).
    pub exec: bool,
}

impl Mismatch {
    /// Any difference at all.
    pub fn any(&self) -> bool {
        self.invalid || self.frame || self.write || self.exec
    }

    /// The difference matters for an access of `kind`.
    pub fn affects(&self, kind: AccessKind) -> bool {
        self.invalid
            || self.frame
            || (self.write && kind == AccessKind::Write)
            || (self.exec && kind == AccessKind::Execute)
    }

    fn text(&self) -> String {
        let mut v = Vec::new();
        if self.invalid {
            v.push("the software entry is no longer valid");
        } else if self.frame {
            v.push("the software entry names another frame");
        }
        if self.write {
            v.push("the real PTE is writable but the software entry lacks RW or M");
        }
        if self.exec {
            v.push("the real PTE allows fetches but the software entry has NX");
        }
        v.join("; ")
    }
}

/// The staleness rule: how `real` disagrees with what `soft` says now.
pub fn compare(real: &RealPte, soft: &SoftEntry) -> Mismatch {
    if !soft.valid {
        return Mismatch {
            invalid: true,
            ..Mismatch::default()
        };
    }
    Mismatch {
        invalid: false,
        frame: real.frame != soft.frame,
        write: real.writable && !soft.writable,
        exec: real.executable && !soft.executable,
    }
}

/// Walks VPTEs for the page at `offset` in the region, read-only: the same walk as
/// the host's fault handler (`vm_fault_vpagetable` in `asm/vkernel-host.s`), from
/// the root entry `root` (found at `root_pa`) down `levels` tables of 512 entries,
/// with tables and frames at `backing + frame`.
pub fn walk_vpte(
    mem: &PhysMem,
    root_pa: u64,
    root: u64,
    levels: u8,
    backing: u64,
    offset: u64,
) -> SoftEntry {
    walk_vpte_watch(mem, root_pa, root, levels, backing, offset, &mut Vec::new())
}

/// [`walk_vpte`], pushing the page number of every table entry it read to `watch`.
fn walk_vpte_watch(
    mem: &PhysMem,
    root_pa: u64,
    root: u64,
    levels: u8,
    backing: u64,
    offset: u64,
    watch: &mut Vec<u64>,
) -> SoftEntry {
    let mut v = root;
    let mut at = root_pa;
    let mut shift = 9 * levels as u32; // index bits remaining below `v`
    let mut writable = true;
    let mut executable = true;
    loop {
        if v & vpte::V == 0 {
            return SoftEntry {
                entry_pa: at,
                value: v,
                valid: false,
                frame: 0,
                writable: false,
                executable: false,
            };
        }
        writable &= v & vpte::RW != 0;
        executable &= v & vpte::NX == 0;
        if v & vpte::PS != 0 || shift == 0 {
            let block = (1u64 << (12 + shift)) - 1;
            let frame = backing.wrapping_add(v & vpte::FRAME) + (offset & block & !0xfff);
            return SoftEntry {
                entry_pa: at,
                value: v,
                valid: true,
                frame,
                writable: writable && v & vpte::M != 0,
                executable,
            };
        }
        shift -= 9;
        let index = (offset >> (12 + shift)) & 511;
        at = backing.wrapping_add(v & vpte::FRAME) + index * 8;
        watch.push(at >> 12);
        // A table outside memory reads as an invalid entry: the host would fail.
        v = mem.read_u64(PhysAddr(at)).unwrap_or(0);
    }
}

/// A write that changed a real PTE or a software entry, seen between two steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Step of the write (0: the scenario's initial state).
    pub step: u64,
    /// Core that took the step.
    pub core: u32,
    /// RIP of the instruction it was executing.
    pub rip: u64,
    /// Physical address of the entry.
    pub entry_pa: u64,
    /// Value before.
    pub old: u64,
    /// Value after.
    pub new: u64,
}

/// A hardware invalidation that covered the page while the real PTE was cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct InvalNote {
    /// Step.
    pub step: u64,
    /// Core.
    pub core: u32,
    /// RIP.
    pub rip: u64,
    /// The operation.
    pub op: Invalidation,
}

/// One access through a stale real PTE, with its explanation.
#[derive(Clone, Debug, Serialize)]
pub struct SoftStaleUse {
    /// The soft TLB's `name`.
    pub table: String,
    /// Core.
    pub core: u32,
    /// Step.
    pub step: u64,
    /// RIP of the instruction.
    pub rip: u64,
    /// Linear address accessed (first byte the instruction touched in the page).
    pub va: u64,
    /// Physical address it reached.
    pub pa: u64,
    /// Access kind.
    pub kind: AccessKind,
    /// The cached translation: the real PTE.
    pub cached: RealPte,
    /// The software entry now.
    pub source: SoftEntry,
    /// How they differ.
    pub mismatch: Mismatch,
    /// The write that entered the real PTE (None: present from the start).
    pub filled: Option<Change>,
    /// The software write that made it stale (None: stale when filled).
    pub staled_by: Option<Change>,
    /// Every software-entry change since the fill, in order.
    pub source_writes: Vec<Change>,
    /// Hardware invalidations of the page since the fill (none removes a real PTE;
    /// only clearing it, as MADV_INVAL does, would have).
    pub invalidations: Vec<InvalNote>,
    /// Whether the coherence rule makes it a violation.
    pub violation: bool,
}

fn kind_text(k: AccessKind) -> &'static str {
    match k {
        AccessKind::Read => "read",
        AccessKind::Write => "write",
        AccessKind::Execute => "fetch",
    }
}

fn yes(b: bool, t: &'static str) -> &'static str {
    if b {
        t
    } else {
        "-"
    }
}

impl fmt::Display for SoftStaleUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} on core {} at step {}, rip {:#x}: {} of va {:#x} (pa {:#x}) through a stale real PTE [{}]",
            self.table,
            self.core,
            self.step,
            self.rip,
            kind_text(self.kind),
            self.va,
            self.pa,
            self.mismatch.text()
        )?;
        let c = &self.cached;
        writeln!(
            f,
            "  cached (real PTE at pa {:#x}): {:#x} -> frame {:#x}, {}{}",
            c.entry_pa,
            c.value,
            c.frame,
            if c.writable { "RW" } else { "RO" },
            yes(c.executable, " X")
        )?;
        let s = &self.source;
        if s.valid {
            writeln!(
                f,
                "  source now (software entry at pa {:#x}): {:#x} -> frame {:#x}, host would map {}{}",
                s.entry_pa,
                s.value,
                s.frame,
                if s.writable { "RW" } else { "RO" },
                yes(s.executable, " X")
            )?;
        } else {
            writeln!(
                f,
                "  source now (software entry at pa {:#x}): {:#x}, not valid: the host would fault",
                s.entry_pa, s.value
            )?;
        }
        match &self.filled {
            Some(w) => writeln!(
                f,
                "  filled: step {} core {} rip {:#x} wrote the real PTE {:#x} -> {:#x}",
                w.step, w.core, w.rip, w.old, w.new
            )?,
            None => writeln!(f, "  filled: present in the initial page tables")?,
        }
        match &self.staled_by {
            Some(w) => writeln!(
                f,
                "  made stale: step {} core {} rip {:#x} wrote the software entry at pa {:#x}: {:#x} -> {:#x}",
                w.step, w.core, w.rip, w.entry_pa, w.old, w.new
            )?,
            None => writeln!(f, "  made stale: already stale when filled")?,
        }
        if self.source_writes.len() > 1 || self.staled_by.is_none() {
            writeln!(f, "  software-entry writes since the fill:")?;
            for w in &self.source_writes {
                writeln!(
                    f,
                    "    step {} core {} rip {:#x}: pa {:#x} {:#x} -> {:#x}",
                    w.step, w.core, w.rip, w.entry_pa, w.old, w.new
                )?;
            }
        }
        writeln!(
            f,
            "  invalidations since the fill: the real PTE was never removed (no MADV_INVAL){}",
            if self.invalidations.is_empty() {
                "; no INVLPG/INVPCID/flush covered the page on any core"
            } else {
                "; hardware invalidations (they flush TLBs, not the real PTE):"
            }
        )?;
        for n in &self.invalidations {
            writeln!(
                f,
                "    step {} core {} rip {:#x}: {}",
                n.step, n.core, n.rip, n.op
            )?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Page {
    real: Option<RealPte>,
    soft: SoftEntry,
    filled: Option<Change>,
    staled_by: Option<Change>,
    source_writes: Vec<Change>,
    invalidations: Vec<InvalNote>,
}

/// Keeps the explanation bounded when a loop rewrites an entry.
const HISTORY: usize = 16;

#[derive(Clone, Debug)]
struct Table {
    name: String,
    root: u64,
    pcid: u16,
    base: u64,
    len: u64,
    root_pa: u64,
    levels: u8,
    backing: u64,
    params: mmu::WalkParams,
    pages: Vec<Page>,
    /// Sorted page numbers of every entry the last scan read (real paging
    /// structures, the root entry, VPTE tables): only a write to one of them can
    /// change the snapshot, so steps without one skip the rescan.
    watched: Vec<u64>,
}

impl Table {
    fn real(&self, mem: &PhysMem, va: u64, watch: &mut Vec<u64>) -> Option<RealPte> {
        let mut path = mmu::Path::new();
        let r = mmu::walk(
            mem,
            VirtAddr(va),
            mmu::WalkStart::root(PhysAddr(self.root)),
            self.params,
            0,
            &mut path,
        );
        watch.extend(path.entries().iter().map(|e| e.pa.raw() >> 12));
        match r {
            Ok(WalkResult::Leaf {
                frame,
                size,
                rights,
                ..
            }) => {
                let leaf = path.entries().last().copied()?;
                Some(RealPte {
                    entry_pa: leaf.pa.raw(),
                    value: leaf.value,
                    frame: frame.raw() + (va & size.offset_mask() & !0xfff),
                    writable: rights.write(),
                    executable: rights.exec(),
                })
            }
            _ => None,
        }
    }

    fn soft(&self, mem: &PhysMem, off: u64, watch: &mut Vec<u64>) -> SoftEntry {
        let root = mem.read_u64(PhysAddr(self.root_pa)).unwrap_or(0);
        watch.push(self.root_pa >> 12);
        walk_vpte_watch(
            mem,
            self.root_pa,
            root,
            self.levels,
            self.backing,
            off,
            watch,
        )
    }

    fn page_of(&self, va: u64) -> Option<usize> {
        let off = va.wrapping_sub(self.base);
        (off < self.len).then_some((off >> 12) as usize)
    }
}

/// One access the observer reported during the current step.
#[derive(Clone, Copy, Debug)]
struct Access {
    core: u32,
    step: u64,
    la: u64,
    pa: u64,
    kind: AccessKind,
}

/// The software-TLB checker the runner drives: accesses and invalidations come in
/// during a step, [`SoftCheck::after_step`] judges and rescans.
#[derive(Clone, Debug, Default)]
pub struct SoftCheck {
    tables: Vec<Table>,
    accesses: Vec<Access>,
    /// Page numbers the current step wrote (through translations).
    writes: Vec<u64>,
    /// Rescan after the next step whatever it wrote (memory changed behind the
    /// observer's back, e.g. a debugger poke).
    force: bool,
    invals: Vec<InvalNote>,
    /// Stale uses so far.
    pub uses: Vec<SoftStaleUse>,
}

fn resolve_root(
    t: &SoftTlb,
    built: &Built,
    mem: &PhysMem,
    params: mmu::WalkParams,
) -> Result<u64, String> {
    let at = resolve(&t.root.at, &built.symbols)?;
    let Some(sp) = &t.root.space else {
        return Ok(at);
    };
    let info = built
        .spaces
        .get(sp)
        .ok_or_else(|| format!("unknown address space `{sp}`"))?;
    match mmu::walk(
        mem,
        VirtAddr(at),
        mmu::WalkStart::root(info.root),
        params,
        0,
        &mut mmu::Path::new(),
    ) {
        Ok(WalkResult::Leaf { frame, size, .. }) => Ok(frame.raw() + (at & size.offset_mask())),
        _ => Err(format!("root.at {at:#x} is not mapped in `{sp}`")),
    }
}

impl SoftCheck {
    /// The checker for a scenario's `soft_tlbs`, with the initial snapshot taken
    /// (real PTEs present at the start count as filled by the scenario).
    pub fn new(decl: &[SoftTlb], built: &Built) -> Result<Self, (String, String)> {
        let m = &built.machine;
        let params = mmu::WalkParams {
            maxphyaddr: m.config.mmu.maxphyaddr,
            huge_1g: m.config.mmu.huge_1g,
            nxe: true,
        };
        let mut tables = Vec::new();
        for (i, t) in decl.iter().enumerate() {
            let p = |f: &str| format!("soft_tlbs[{i}].{f}");
            let info = built.spaces.get(&t.space).ok_or_else(|| {
                (
                    p("space"),
                    format!(
                        "unknown address space `{}`{}",
                        t.space,
                        super::build::suggest(&t.space, built.spaces.keys())
                    ),
                )
            })?;
            let base = resolve(&t.region.va, &built.symbols).map_err(|e| (p("region.va"), e))?;
            let len = resolve(&t.region.len, &built.symbols).map_err(|e| (p("region.len"), e))?;
            if base & 0xfff != 0 || len & 0xfff != 0 || len == 0 || len > MAX_REGION {
                return Err((
                    p("region"),
                    format!(
                        "the region must be page aligned, a whole number of pages and at most {MAX_REGION:#x} bytes (got va {base:#x}, len {len:#x})"
                    ),
                ));
            }
            let backing = resolve(&t.backing, &built.symbols).map_err(|e| (p("backing"), e))?;
            let root_pa = resolve_root(t, built, &m.mem, params).map_err(|e| (p("root"), e))?;
            let SoftFormat::Vpte { levels } = t.format;
            if levels > 4 {
                return Err((
                    p("format"),
                    format!("Vpte levels must be 0..=4 (got {levels})"),
                ));
            }
            let mut table = Table {
                name: t.name.clone(),
                root: info.root.raw(),
                pcid: info.pcid,
                base,
                len,
                root_pa,
                levels,
                backing,
                params,
                pages: Vec::new(),
                watched: Vec::new(),
            };
            let mut watch = Vec::new();
            table.pages = (0..len >> 12)
                .map(|n| {
                    let real = table.real(&m.mem, base + (n << 12), &mut watch);
                    Page {
                        real,
                        soft: table.soft(&m.mem, n << 12, &mut watch),
                        filled: None,
                        staled_by: None,
                        source_writes: Vec::new(),
                        invalidations: Vec::new(),
                    }
                })
                .collect();
            watch.sort_unstable();
            watch.dedup();
            table.watched = watch;
            tables.push(table);
        }
        Ok(SoftCheck {
            tables,
            ..SoftCheck::default()
        })
    }

    /// Memory may have changed without a translated write (a debugger writing
    /// physical memory): rescan after the next step.
    pub fn force_rescan(&mut self) {
        self.force = true;
    }

    /// Whether anything is declared (the runner only observes accesses then).
    pub fn active(&self) -> bool {
        !self.tables.is_empty()
    }

    /// An access the observer reported; kept when it falls in a region.
    pub fn access(&mut self, core: u32, step: u64, la: VirtAddr, pa: PhysAddr, kind: AccessKind) {
        if kind == AccessKind::Write && self.writes.last() != Some(&(pa.raw() >> 12)) {
            self.writes.push(pa.raw() >> 12);
        }
        let la = la.raw();
        if self.tables.iter().any(|t| t.page_of(la).is_some()) {
            self.accesses.push(Access {
                core,
                step,
                la,
                pa: pa.raw(),
                kind,
            });
        }
    }

    /// A hardware invalidation event; kept for the explanation.
    pub fn invalidation(&mut self, ctx: mmu::AccessCtx, op: Invalidation) {
        if self.active() {
            self.invals.push(InvalNote {
                step: ctx.step,
                core: ctx.core,
                rip: ctx.rip,
                op,
            });
        }
    }

    /// After a step of `core` that started at `rip`: judge the step's accesses
    /// against the snapshot they were made under, then rescan and update history.
    /// `violation` applies the scenario's coherence rule to a frame.
    pub fn after_step(
        &mut self,
        m: &Machine,
        core: usize,
        rip: u64,
        violation: &dyn Fn(u64) -> bool,
    ) {
        let accesses = std::mem::take(&mut self.accesses);
        let invals = std::mem::take(&mut self.invals);
        let writes = std::mem::take(&mut self.writes);
        let force = std::mem::take(&mut self.force);
        let cr3 = m.cores[core].cpu.state.cr3 & 0x000f_ffff_ffff_f000;
        let step = m.steps;
        for t in &mut self.tables {
            if cr3 == t.root {
                let mut seen: Vec<(usize, AccessKind)> = Vec::new();
                for a in &accesses {
                    let Some(n) = t.page_of(a.la) else { continue };
                    if seen.contains(&(n, a.kind)) {
                        continue;
                    }
                    seen.push((n, a.kind));
                    let pg = &t.pages[n];
                    let Some(mut real) = pg.real else { continue };
                    // The snapshot skips A/D updates; show the entry as it is.
                    let now = m
                        .mem
                        .read_u64(PhysAddr(real.entry_pa))
                        .unwrap_or(real.value);
                    if now & !REAL_AD == real.value & !REAL_AD {
                        real.value = now;
                    }
                    // A translation that did not come from the real PTE came from a
                    // stale TLB entry: the hardware tracker's business.
                    if a.pa & !0xfff != real.frame {
                        continue;
                    }
                    let mm = compare(&real, &pg.soft);
                    if !mm.affects(a.kind) {
                        continue;
                    }
                    self.uses.push(SoftStaleUse {
                        table: t.name.clone(),
                        core: a.core,
                        step: a.step,
                        rip,
                        va: a.la,
                        pa: a.pa,
                        kind: a.kind,
                        cached: real,
                        source: pg.soft,
                        mismatch: mm,
                        filled: pg.filled,
                        staled_by: pg.staled_by,
                        source_writes: pg.source_writes.clone(),
                        invalidations: pg.invalidations.clone(),
                        violation: violation(real.frame),
                    });
                }
            }
            // Every write a step makes to memory goes through a translation the
            // observer reports, except the walker's own A/D updates, which the
            // snapshot ignores; so a step that wrote no watched page changed
            // nothing here.
            if force || writes.iter().any(|p| t.watched.binary_search(p).is_ok()) {
                t.rescan(&m.mem, step, core as u32, rip, &invals);
            } else if !invals.is_empty() {
                t.note_invalidations(&invals);
            }
        }
    }
}

impl Table {
    fn covers(&self, op: &Invalidation, va: u64) -> bool {
        let same = |x: VirtAddr| x.raw() >> 12 == va >> 12;
        match op {
            Invalidation::Invlpg { va } | Invalidation::PageFault { va } => same(*va),
            Invalidation::Invpcid { kind, pcid, va } => match kind {
                InvpcidKind::IndividualAddress => *pcid == self.pcid && same(*va),
                InvpcidKind::SingleContext => *pcid == self.pcid,
                _ => true,
            },
            Invalidation::MovCr3 { src } => src >> 63 == 0,
            Invalidation::MovCr4 { .. } | Invalidation::MovCr0 { .. } => true,
        }
    }

    fn rescan(&mut self, mem: &PhysMem, step: u64, core: u32, rip: u64, invals: &[InvalNote]) {
        let change = |entry_pa, old, new| Change {
            step,
            core,
            rip,
            entry_pa,
            old,
            new,
        };
        let mut watch = Vec::new();
        for n in 0..self.pages.len() {
            let va = self.base + ((n as u64) << 12);
            let real = self.real(mem, va, &mut watch);
            let soft = self.soft(mem, (n as u64) << 12, &mut watch);
            let pg = &self.pages[n];
            let was_stale = pg.real.is_some_and(|r| compare(&r, &pg.soft).any());
            let old_real = pg.real;
            let old_soft = pg.soft;
            let pg = &mut self.pages[n];
            let real_changed = match (old_real, real) {
                (Some(a), Some(b)) => a.value & !REAL_AD != b.value & !REAL_AD,
                (a, b) => a.is_some() != b.is_some(),
            };
            if real_changed {
                // A new real PTE starts a new cache line's history; a removed one
                // (MADV_INVAL) ends it.
                pg.source_writes.clear();
                pg.invalidations.clear();
                pg.staled_by = None;
                pg.filled =
                    real.map(|r| change(r.entry_pa, old_real.map_or(0, |o| o.value), r.value));
            }
            pg.real = real;
            pg.soft = soft;
            if real.is_none() {
                continue;
            }
            if !real_changed && (old_soft.value != soft.value || old_soft.entry_pa != soft.entry_pa)
            {
                let w = change(soft.entry_pa, old_soft.value, soft.value);
                if pg.source_writes.len() < HISTORY {
                    pg.source_writes.push(w);
                }
                let stale = real.is_some_and(|r| compare(&r, &soft).any());
                if stale && !was_stale {
                    pg.staled_by = Some(w);
                }
            }
            self.note_page(n, invals);
        }
        watch.sort_unstable();
        watch.dedup();
        self.watched = watch;
    }

    /// Adds the invalidations covering page `n` to its history (while cached).
    fn note_page(&mut self, n: usize, invals: &[InvalNote]) {
        if self.pages[n].real.is_none() {
            return;
        }
        let va = self.base + ((n as u64) << 12);
        for i in invals {
            if self.covers(&i.op, va) && self.pages[n].invalidations.len() < HISTORY {
                self.pages[n].invalidations.push(*i);
            }
        }
    }

    fn note_invalidations(&mut self, invals: &[InvalNote]) {
        for n in 0..self.pages.len() {
            self.note_page(n, invals);
        }
    }
}

/// The coherence rule for a soft stale use of `frame` (the real PTE's frame):
/// every use under `All`, after the label under `AfterLabel`, and under
/// `FreedFrames` when the frame is one of the freed ones.
pub fn is_violation(rule: &Rule, label_reached: bool, frame: u64) -> bool {
    match rule {
        Rule::All => true,
        // Software caches name no writer yet, so `Completed` falls back to the
        // label being reached by some core.
        Rule::AfterLabel(_) | Rule::Completed(_) | Rule::CompletedLatent { .. } => label_reached,
        Rule::FreedFrames { frames, .. } => label_reached && frames.contains(&frame),
    }
}

/// Stale uses matching an expectation's filters.
pub fn matching(
    uses: &[SoftStaleUse],
    core: Option<usize>,
    va: Option<u64>,
    kind: Option<super::schema::KindSpec>,
) -> usize {
    use super::schema::KindSpec;
    uses.iter()
        .filter(|u| {
            core.is_none_or(|c| u.core == c as u32)
                && va.is_none_or(|a| u.va >> 12 == a >> 12)
                && kind.is_none_or(|k| match k {
                    KindSpec::Read => u.kind == AccessKind::Read,
                    KindSpec::Write => u.kind == AccessKind::Write,
                    KindSpec::Execute => u.kind == AccessKind::Execute,
                    KindSpec::Walk => false,
                })
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACK: u64 = 0x80_0000;

    fn mem_with(entries: &[(u64, u64)]) -> PhysMem {
        let mut m = PhysMem::new(16 << 20);
        for (pa, v) in entries {
            m.write(PhysAddr(*pa), &v.to_le_bytes()).unwrap();
        }
        m
    }

    fn real(frame: u64, writable: bool) -> RealPte {
        RealPte {
            entry_pa: 0x1000,
            value: frame | 5 | if writable { 2 } else { 0 },
            frame,
            writable,
            executable: true,
        }
    }

    #[test]
    fn one_level_walk_matches_the_host_handler() {
        // Root 0x1007 -> table at guest 0x1000 (host 0x801000); entry 3 -> G1.
        let mem = mem_with(&[(BACK + 0x1018, 0x10067)]);
        let e = walk_vpte(&mem, 0x100, 0x1007, 1, BACK, 0x3000);
        assert!(e.valid);
        assert_eq!(e.entry_pa, BACK + 0x1018);
        assert_eq!(e.frame, BACK + 0x10000);
        assert!(e.writable, "RW and M: the host maps it writable");
        assert!(e.executable);
    }

    #[test]
    fn write_right_needs_rw_everywhere_and_m_in_the_leaf() {
        let no_m = mem_with(&[(BACK + 0x1018, 0x10027)]);
        assert!(!walk_vpte(&no_m, 0, 0x1007, 1, BACK, 0x3000).writable);
        let ro_root = mem_with(&[(BACK + 0x1018, 0x10067)]);
        assert!(!walk_vpte(&ro_root, 0, 0x1005, 1, BACK, 0x3000).writable);
        let nx = mem_with(&[(BACK + 0x1018, 0x10067 | vpte::NX)]);
        assert!(!walk_vpte(&nx, 0, 0x1007, 1, BACK, 0x3000).executable);
    }

    #[test]
    fn invalid_entries_and_ps_blocks() {
        let mem = mem_with(&[]);
        let e = walk_vpte(&mem, 0x100, 0x1007, 1, BACK, 0x3000);
        assert!(!e.valid);
        assert_eq!(e.entry_pa, BACK + 0x1018, "the walk stopped at the leaf");
        let root_invalid = walk_vpte(&mem, 0x100, 0x1006, 1, BACK, 0x3000);
        assert_eq!(root_invalid.entry_pa, 0x100);
        // A PS root maps the whole 2 MiB block: page 5 is frame + 0x5000.
        let ps = walk_vpte(&mem, 0x100, 0x200000 | vpte::PS | 0x47, 1, BACK, 0x5123);
        assert!(ps.valid && ps.writable);
        assert_eq!(ps.frame, BACK + 0x205000);
    }

    #[test]
    fn two_levels_index_nine_bits_each() {
        // Root -> table at 0x2000; entry 1 (offset bits 29:21) -> table at 0x3000;
        // entry 5 (bits 20:12) -> frame 0x40000.
        let mem = mem_with(&[(BACK + 0x2008, 0x3007), (BACK + 0x3028, 0x40047)]);
        let off = (1 << 21) | (5 << 12);
        let e = walk_vpte(&mem, 0, 0x2007, 2, BACK, off);
        assert!(e.valid && e.writable);
        assert_eq!((e.entry_pa, e.frame), (BACK + 0x3028, BACK + 0x40000));
        // A PS entry at the middle level maps 2 MiB.
        let mem = mem_with(&[(BACK + 0x2008, 0x200000 | vpte::PS | 0x27)]);
        let e = walk_vpte(&mem, 0, 0x2007, 2, BACK, off + 0x10);
        assert!(e.valid && !e.writable, "PS leaf without M");
        assert_eq!(e.frame, BACK + 0x205000);
    }

    #[test]
    fn staleness_rule() {
        let mem = mem_with(&[(BACK + 0x1018, 0x11067)]);
        let now = walk_vpte(&mem, 0, 0x1007, 1, BACK, 0x3000);
        // The real PTE still maps the old frame: every access is stale.
        let m = compare(&real(BACK + 0x10000, true), &now);
        assert!(m.frame && m.affects(AccessKind::Read) && m.affects(AccessKind::Write));
        // Same frame, same rights: fresh.
        assert!(!compare(&real(BACK + 0x11000, true), &now).any());
        // M cleared: writable real PTE is stale for writes only.
        let clean = mem_with(&[(BACK + 0x1018, 0x11027)]);
        let now = walk_vpte(&clean, 0, 0x1007, 1, BACK, 0x3000);
        let m = compare(&real(BACK + 0x11000, true), &now);
        assert!(m.write && !m.frame);
        assert!(m.affects(AccessKind::Write) && !m.affects(AccessKind::Read));
        // A read-only real PTE of a clean page is what the host enters: fresh.
        assert!(!compare(&real(BACK + 0x11000, false), &now).any());
        // The entry swapped to 0: stale for everything.
        let gone = walk_vpte(&mem_with(&[]), 0, 0x1007, 1, BACK, 0x3000);
        let m = compare(&real(BACK + 0x11000, false), &gone);
        assert!(m.invalid && m.affects(AccessKind::Read));
    }
}
