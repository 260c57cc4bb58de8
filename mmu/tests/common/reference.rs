//! The architectural answer for one access, written directly from SDM Vol. 3A
//! 4.5 (4-level paging: the walk and its reserved bits), 4.6.1 (access rights,
//! with CR0.WP, CR4.SMEP, CR4.SMAP and RFLAGS.AC), 4.7 (the page-fault error
//! code) and 4.8 (accessed and dirty flags). It reads guest memory and shares no
//! code with the crate's walker or rights check, so a bug there cannot hide
//! behind the same bug here. Entry bits are numbered as the SDM's tables number
//! them, not taken from the crate.

use crate::common::World;
use mmu::{
    cr0, cr4, EntryView, PagingRegs, PhysAddr, PhysMem, TranslateError, VirtAddr, WalkResult,
};

/// MAXPHYADDR the tests run with (the crate's default).
pub const MAXPHY: u32 = 46;

pub const B_P: u64 = 1;
pub const B_RW: u64 = 1 << 1;
pub const B_US: u64 = 1 << 2;
pub const B_A: u64 = 1 << 5;
pub const B_D: u64 = 1 << 6;
pub const B_PS: u64 = 1 << 7;
pub const B_G: u64 = 1 << 8;
pub const B_NX: u64 = 1 << 63;

/// Bits 12..MAXPHYADDR-1: the physical address an entry (or CR3) references.
pub const ADDR: u64 = ((1 << MAXPHY) - 1) & !0xfff;
/// Bits MAXPHYADDR..51: reserved in every present entry (SDM 4.5, tables 4-14..4-19).
pub const HIGH_RSVD: u64 = ((1 << 52) - 1) & !((1 << MAXPHY) - 1);

/// The paging controls that decide an access.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    pub wp: bool,
    pub smep: bool,
    pub smap: bool,
    pub nxe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    R,
    W,
    X,
}

/// Who accesses: user mode (CPL 3), supervisor mode (CPL < 3), or an implicit
/// supervisor-mode access (SDM 4.6: e.g. a descriptor-table read at any CPL).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Who {
    User,
    Supervisor,
    Implicit,
}

/// One paging-structure entry the walk read: level 4 (PML4E) .. 1 (PTE).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Used {
    pub level: u8,
    pub pa: u64,
    pub value: u64,
}

/// Rights combined over the entries used so far (SDM 4.6.1: R/W and U/S must be 1
/// in every entry; XD in any entry forbids fetches when EFER.NXE = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    pub write: bool,
    pub user: bool,
    pub exec: bool,
}

impl Rights {
    fn all() -> Self {
        Rights {
            write: true,
            user: true,
            exec: true,
        }
    }
    fn and(self, e: u64, nxe: bool) -> Self {
        Rights {
            write: self.write && e & B_RW != 0,
            user: self.user && e & B_US != 0,
            exec: self.exec && !(nxe && e & B_NX != 0),
        }
    }
}

/// Rights combined over the entries in `used` from level 4 down to and including
/// `level` (what a paging-structure-cache entry for that level holds).
pub fn combined(used: &[Used], level: u8, nxe: bool) -> Rights {
    used.iter()
        .filter(|u| u.level >= level)
        .fold(Rights::all(), |r, u| r.and(u.value, nxe))
}

/// What the walk found in memory, before any rights check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Found {
    /// A page: its physical base, size in bytes, combined rights and G flag.
    Page {
        base: u64,
        size: u64,
        rights: Rights,
        global: bool,
    },
    /// P = 0 at `level`.
    NotPresent { level: u8 },
    /// A reserved bit set at `level`.
    Reserved { level: u8 },
}

/// The walk of SDM 4.5 for `va` from `cr3`: every entry read (top-down) and what
/// it found. Reads memory only.
pub fn walk(mem: &PhysMem, cr3: u64, va: u64, nxe: bool) -> (Vec<Used>, Found) {
    let mut used = Vec::new();
    let mut table = cr3 & ADDR;
    let mut rights = Rights::all();
    for level in (1..=4u8).rev() {
        let shift = 12 + 9 * (level as u32 - 1);
        let pa = table + ((va >> shift) & 0x1ff) * 8;
        let value = mem.read_u64(PhysAddr(pa)).expect("entry in memory");
        used.push(Used { level, pa, value });
        if value & B_P == 0 {
            return (used, Found::NotPresent { level });
        }
        let large = value & B_PS != 0 && (level == 2 || level == 3);
        let mut rsvd = HIGH_RSVD;
        if !nxe {
            rsvd |= B_NX;
        }
        match level {
            4 => rsvd |= B_PS,
            // A 1-GiB page: bits 29:13 reserved; a 2-MiB page: bits 20:13
            // (bit 12 is PAT in both).
            3 if large => rsvd |= ((1 << 30) - 1) & !((1 << 13) - 1),
            2 if large => rsvd |= ((1 << 21) - 1) & !((1 << 13) - 1),
            _ => {}
        }
        if value & rsvd != 0 {
            return (used, Found::Reserved { level });
        }
        rights = rights.and(value, nxe);
        if level == 1 || large {
            let size = 1u64 << shift;
            return (
                used,
                Found::Page {
                    base: value & ADDR & !(size - 1),
                    size,
                    rights,
                    global: value & B_G != 0,
                },
            );
        }
        table = value & ADDR;
    }
    unreachable!("level 1 always ends the walk")
}

/// Whether SDM 4.6.1 allows `kind` by `who` (with RFLAGS.AC = `ac`) on a page
/// with combined `rights`.
pub fn allowed(rights: Rights, env: Env, kind: Kind, who: Who, ac: bool) -> bool {
    let refuse = match (who, kind) {
        (Who::User, Kind::R) => !rights.user,
        (Who::User, Kind::W) => !rights.user || !rights.write,
        (Who::User, Kind::X) => !rights.user || !rights.exec,
        (_, Kind::X) => !rights.exec || (rights.user && env.smep),
        (w, k) => {
            let smap_blocks = rights.user && env.smap && (w == Who::Implicit || !ac);
            smap_blocks || (k == Kind::W && env.wp && !rights.write)
        }
    };
    !refuse
}

/// The outcome of one access.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The physical address, or the #PF error code.
    pub result: Result<u64, u32>,
    /// Entries read by the walk, top-down, with their values before the access.
    pub used: Vec<Used>,
    /// What the walk found.
    pub found: Found,
    /// Entries the access changes (A, and D on the leaf of a write), with their
    /// new values: SDM 4.8. Empty on a fault.
    pub updates: Vec<(u64, u64)>,
}

/// The architectural outcome of `kind` by `who` at `va` with memory as it is now.
pub fn access(
    mem: &PhysMem,
    cr3: u64,
    va: u64,
    env: Env,
    kind: Kind,
    who: Who,
    ac: bool,
) -> Outcome {
    // Error-code bits that describe the access (SDM 4.7): W/R, U/S (a user-mode
    // access; implicit supervisor accesses are supervisor-mode), I/D (a fetch,
    // when SMEP or NXE is on).
    let mut ec = 0u32;
    if kind == Kind::W {
        ec |= 2;
    }
    if who == Who::User {
        ec |= 4;
    }
    if kind == Kind::X && (env.nxe || env.smep) {
        ec |= 16;
    }
    let (used, found) = walk(mem, cr3, va, env.nxe);
    let result = match found {
        Found::NotPresent { .. } => Err(ec),
        Found::Reserved { .. } => Err(ec | 1 | 8),
        Found::Page { rights, .. } if !allowed(rights, env, kind, who, ac) => Err(ec | 1),
        Found::Page { base, size, .. } => Ok(base + (va & (size - 1))),
    };
    let mut updates = Vec::new();
    if result.is_ok() {
        let last = used.len() - 1;
        for (i, u) in used.iter().enumerate() {
            let mut v = u.value | B_A;
            if i == last && kind == Kind::W {
                v |= B_D;
            }
            if v != u.value {
                updates.push((u.pa, v));
            }
        }
    }
    Outcome {
        result,
        used,
        found,
        updates,
    }
}

/// The paging controls of `regs`, as the reference takes them.
pub fn env_of(regs: &PagingRegs) -> Env {
    Env {
        wp: regs.cr0 & cr0::WP != 0,
        smep: regs.cr4 & cr4::SMEP != 0,
        smap: regs.cr4 & cr4::SMAP != 0,
        nxe: regs.nxe(),
    }
}

fn same_rights(cached: mmu::Rights, r: Rights) -> bool {
    cached.write() == r.write && cached.user() == r.user && cached.exec() == r.exec
}

/// Whether `e`, a cached entry, covers `va` and disagrees with what the walk of
/// memory now (`want`) finds at its level: another page or table, other rights,
/// or nothing at all. Only such an entry can explain a fault memory does not
/// give.
pub fn disagrees(e: &EntryView, va: u64, want: &Outcome, nxe: bool) -> bool {
    match e.cached {
        WalkResult::Leaf {
            frame,
            size,
            rights,
            ..
        } => {
            let base = e.va.raw();
            if va < base || va - base >= size.bytes() {
                return false;
            }
            match want.found {
                Found::Page {
                    base: b,
                    size: s,
                    rights: r,
                    ..
                } => frame.raw() != b || size.bytes() != s || !same_rights(rights, r),
                _ => true,
            }
        }
        WalkResult::Table {
            level,
            next,
            rights,
        } => {
            // An entry at `level` covers 2^(12 + 9 * (level - 1)) bytes.
            let shift = 12 + 9 * (level as u32 - 1);
            if (va ^ e.va.raw()) >> shift != 0 {
                return false;
            }
            let Some(u) = want.used.iter().find(|u| u.level == level) else {
                return true;
            };
            let table = u.value & B_P != 0 && u.value & B_PS == 0;
            !table
                || u.value & ADDR != next.raw()
                || !same_rights(rights, combined(&want.used, level, nxe))
        }
        _ => true,
    }
}

/// One access about to happen on a core of a [`World`]: the architectural answer
/// for memory as it is, and whether the core's caches could explain a fault
/// memory does not give.
pub struct Expect {
    pub want: Outcome,
    /// Some cached entry covering the address disagrees with memory.
    pub explained: bool,
}

impl Expect {
    /// Computed before the access (which changes only A/D bits, never an answer).
    pub fn new(w: &World, core: u32, va: u64, kind: Kind, who: Who) -> Self {
        let regs = w.regs[core as usize];
        let want = access(&w.mem, regs.cr3, va, env_of(&regs), kind, who, false);
        let dump = w.cores[core as usize].dump(&w.tracker);
        let explained = dump
            .tlb
            .iter()
            .chain(&dump.psc)
            .any(|e| disagrees(e, va, &want, regs.nxe()));
        Expect { want, explained }
    }

    /// Whether `got` is what memory gives, or what a stale entry gives when the
    /// tracker reported that use (`stale_reported`), or a #PF some disagreeing
    /// cached entry explains (SDM 4.10.4.3: rights raised in memory but not yet
    /// invalidated may still fault). A fault must carry the reference's error
    /// code and the faulting address.
    pub fn check(
        &self,
        va: u64,
        got: &Result<PhysAddr, TranslateError>,
        stale_reported: bool,
    ) -> Result<(), String> {
        let want = &self.want.result;
        match got {
            Ok(pa) if stale_reported || *want == Ok(pa.raw()) => Ok(()),
            Ok(pa) => Err(format!("at {va:#x}: got {pa} but memory gives {want:?}")),
            Err(TranslateError::PageFault(pf)) if pf.addr != VirtAddr(va) => {
                Err(format!("at {va:#x}: #PF reports address {}", pf.addr))
            }
            Err(TranslateError::PageFault(pf)) if self.explained || *want == Err(pf.error_code) => {
                Ok(())
            }
            Err(TranslateError::PageFault(pf)) => Err(format!(
                "at {va:#x}: #PF error code {:#x}, but memory gives {want:?} and no cached \
                 entry for the address disagrees with memory",
                pf.error_code
            )),
            Err(e) => Err(format!("at {va:#x}: unexpected {e:?}")),
        }
    }
}
