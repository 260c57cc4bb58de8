//! Software translation caches (`soft_tlbs`): the scenario's declarations turned
//! into derived entries of the coherence tracker, and a step's accesses turned into
//! stale uses.
//!
//! A kernel that fills real PTEs from software page tables (the DragonFly vkernel's
//! VPTEs behind a MAP_VPAGETABLE region) makes each real PTE there a cache of a
//! software entry. The tracker keeps one derived record per page of a declared
//! region ([`mmu::SoftCacheSpec`]), indexed by the entries both walks read, so a
//! write re-evaluates only the pages built from the written entry (see
//! `mmu::derived`). What is left here: resolving the declaration (the layout of
//! the software entries comes from the scenario), and, after each step, asking the
//! tracker whether the step's accesses in a region went through a stale real PTE.
//! The answer is an ordinary [`mmu::StaleUse`]: the runner classifies it with the
//! same coherence rule and expectations as a hardware one.
//!
//! The accesses come from the machine's access observer
//! ([`crate::events::EventSink::access`]), switched on only when a scenario
//! declares `soft_tlbs`, so scenarios without them pay nothing.

use super::build::{resolve, Built};
use super::diag::Problem;
use super::schema::{SoftLayoutDecl, SoftTlb, Value};
use crate::machine::Machine;
use mmu::{
    Access, AccessCtx, AccessKind, PhysAddr, PhysMem, SoftCacheSpec, SoftLayout, StaleUse,
    VirtAddr, WalkResult,
};

/// Largest region checked (one derived record per page).
pub const MAX_REGION: u64 = 64 << 20;

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

/// The layout a declaration describes, with each field's problem located.
fn layout(d: &SoftLayoutDecl, built: &Built, p: &str) -> Result<SoftLayout, Problem> {
    let val = |v: &Value, f: &str| {
        resolve(v, &built.symbols).map_err(|e| Problem::at(format!("{p}.{f}"), e))
    };
    let opt = |v: &Option<Value>, f: &str| v.as_ref().map_or(Ok(0), |v| val(v, f));
    let l = SoftLayout {
        levels: d.levels,
        index_bits: d.index_bits.unwrap_or(9),
        valid: val(&d.valid, "valid")?,
        write: val(&d.write, "write")?,
        dirty: opt(&d.dirty, "dirty")?,
        no_exec: opt(&d.no_exec, "no_exec")?,
        page_size: opt(&d.page_size, "page_size")?,
        frame: val(&d.frame, "frame")?,
        backing: val(&d.backing, "backing")?,
    };
    l.check()
        .map_err(|e| Problem::at(format!("{p}.{}", e.field()), e.to_string()))?;
    Ok(l)
}

/// The tracker's specs for a scenario's `soft_tlbs`, resolved against the built
/// machine; problems are located at the declaration's field.
pub fn specs(decl: &[SoftTlb], built: &Built) -> Result<Vec<SoftCacheSpec>, Problem> {
    let m = &built.machine;
    let params = mmu::WalkParams {
        maxphyaddr: m.config.mmu.maxphyaddr,
        huge_1g: m.config.mmu.huge_1g,
        nxe: true,
    };
    let mut out = Vec::new();
    for (i, t) in decl.iter().enumerate() {
        let p = |f: &str| format!("soft_tlbs[{i}].{f}");
        let info = built.spaces.get(&t.space).ok_or_else(|| {
            Problem::at(
                p("space"),
                format!(
                    "unknown address space `{}`{}",
                    t.space,
                    super::build::suggest(&t.space, built.spaces.keys())
                ),
            )
        })?;
        let base =
            resolve(&t.region.va, &built.symbols).map_err(|e| Problem::at(p("region.va"), e))?;
        let len =
            resolve(&t.region.len, &built.symbols).map_err(|e| Problem::at(p("region.len"), e))?;
        if base & 0xfff != 0 || len & 0xfff != 0 || len == 0 || len > MAX_REGION {
            return Err(Problem::at(
                p("region"),
                format!(
                    "the region must be page aligned, a whole number of pages and at most {MAX_REGION:#x} bytes (got va {base:#x}, len {len:#x})"
                ),
            ));
        }
        let layout = layout(&t.layout, built, &p("layout"))?;
        let root_entry =
            resolve_root(t, built, &m.mem, params).map_err(|e| Problem::at(p("root"), e))?;
        out.push(SoftCacheSpec {
            name: t.name.clone(),
            root: info.root,
            pcid: info.pcid,
            base: VirtAddr(base),
            pages: (len >> 12) as u32,
            root_entry: PhysAddr(root_entry),
            layout,
            params,
        });
    }
    Ok(out)
}

/// One access the observer reported during the current step.
#[derive(Clone, Copy, Debug)]
struct Seen {
    la: u64,
    pa: u64,
    kind: AccessKind,
}

/// Collects a step's accesses while the scenario declares software caches, and
/// asks the tracker which of them were stale uses once the step is over.
#[derive(Clone, Debug, Default)]
pub struct SoftCheck {
    active: bool,
    accesses: Vec<Seen>,
}

impl SoftCheck {
    /// A check that collects accesses only when `active`.
    pub fn new(active: bool) -> Self {
        SoftCheck {
            active,
            accesses: Vec::new(),
        }
    }

    /// Whether anything is declared (the runner only observes accesses then).
    pub fn active(&self) -> bool {
        self.active
    }

    /// An access the observer reported.
    pub fn access(&mut self, la: VirtAddr, pa: PhysAddr, kind: AccessKind) {
        self.accesses.push(Seen {
            la: la.raw(),
            pa: pa.raw(),
            kind,
        });
    }

    /// After `core`'s step `step` that began at `rip`: the stale uses among the
    /// step's accesses, one per page and kind (an instruction that reaches a
    /// page twice, as a read-modify-write does, uses its entry once).
    pub fn take_uses(&mut self, m: &Machine, core: usize, step: u64, rip: u64) -> Vec<StaleUse> {
        let seen = std::mem::take(&mut self.accesses);
        let Some(k) = m.cores.get(core) else {
            return Vec::new();
        };
        let root = mmu::cr3_root(k.cpu.state.cr3, m.config.mmu.maxphyaddr);
        let cpl = k.cpu.state.cpl();
        let ctx = AccessCtx {
            core: core as u32,
            step,
            rip,
        };
        let mut done: Vec<(u64, AccessKind)> = Vec::new();
        let mut out = Vec::new();
        for a in seen {
            if done.contains(&(a.la >> 12, a.kind)) {
                continue;
            }
            done.push((a.la >> 12, a.kind));
            if let Some(su) = m.tracker.soft_use(
                root,
                ctx,
                VirtAddr(a.la),
                PhysAddr(a.pa),
                Access::new(a.kind, cpl),
            ) {
                out.push(su);
            }
        }
        out
    }
}
