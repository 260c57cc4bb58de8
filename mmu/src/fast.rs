//! The per-core fast path: a tiny direct-mapped array in front of the TLB model.
//!
//! An entry says "4 KiB page `vpn` is at `page`, and these access classes are
//! allowed", plus the TLB slot it came from. It is valid only while its generation
//! equals the core's, and the core's generation moves on every fill, eviction and
//! invalidation on this core, every change of the paging registers, and every
//! staleness transition anywhere (the tracker's machine-wide generation). Hence:
//! - a stale entry is never in the fast path (entries are inserted only from
//!   non-stale TLB entries, and a staleness mark empties every fast path);
//! - a write through a clean (D=0) entry never hits (write classes need D=1);
//! - LRU order is exact: a fast hit refreshes the TLB slot's stamp, just as a slow
//!   hit does.

use crate::addr::VirtAddr;
use crate::paging::access::{access_allowed, Access, AccessKind, PagingRegs, Rights};

const SLOTS: usize = 64;

#[derive(Clone, Copy, Debug)]
struct FastEntry {
    vpn: u64,
    gen: u64,
    page: u64,
    perm: u8,
    arr: u8,
    slot: u32,
}

const EMPTY: FastEntry = FastEntry {
    vpn: u64::MAX,
    gen: 0,
    page: 0,
    perm: 0,
    arr: 0,
    slot: 0,
};

/// A hit: physical address of the 4 KiB page, and the TLB (array, slot) to touch.
pub(crate) struct FastHit {
    pub page: u64,
    pub arr: usize,
    pub slot: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct FastPath {
    data: Box<[FastEntry; SLOTS]>,
    instr: Box<[FastEntry; SLOTS]>,
    gen: u64,
    seen_tracker: u64,
    regs: PagingRegs,
    pub(crate) enabled: bool,
}

/// Privilege class of an access: 0 user, 1 supervisor AC=0, 2 supervisor AC=1,
/// 3 implicit supervisor.
#[inline]
fn class(a: &Access) -> u8 {
    // Same classes as `is_user()` first: an implicit access is supervisor whatever
    // the CPL; otherwise CPL 3 is user and the rest split on AC (AC is a bool, so
    // `1 + ac` is 1 or 2 without a branch).
    if a.implicit_supervisor {
        3
    } else if a.cpl == 3 {
        0
    } else {
        1 + a.rflags_ac as u8
    }
}

#[inline]
fn perm_bit(a: &Access) -> u8 {
    let c = class(a);
    match a.kind {
        AccessKind::Write => 1 << (c + 4),
        _ => 1 << c,
    }
}

impl FastPath {
    pub(crate) fn new(enabled: bool) -> Self {
        FastPath {
            data: Box::new([EMPTY; SLOTS]),
            instr: Box::new([EMPTY; SLOTS]),
            gen: 1,
            seen_tracker: 0,
            regs: PagingRegs::default(),
            enabled,
        }
    }

    /// Forgets everything.
    #[inline]
    pub(crate) fn bump(&mut self) {
        self.gen += 1;
    }

    /// Forgets everything if the registers or the tracker's generation moved.
    #[inline]
    pub(crate) fn sync(&mut self, regs: &PagingRegs, tracker_gen: u64) {
        if self.seen_tracker != tracker_gen || self.regs != *regs {
            self.gen += 1;
            self.seen_tracker = tracker_gen;
            self.regs = *regs;
        }
    }

    #[inline]
    pub(crate) fn lookup(&self, va: VirtAddr, access: &Access) -> Option<FastHit> {
        let vpn = va.vpn();
        let arr = if access.kind == AccessKind::Execute {
            &self.instr
        } else {
            &self.data
        };
        let e = &arr[(vpn as usize) & (SLOTS - 1)];
        if e.gen == self.gen && e.vpn == vpn && e.perm & perm_bit(access) != 0 {
            Some(FastHit {
                page: e.page,
                arr: e.arr as usize,
                slot: e.slot as usize,
            })
        } else {
            None
        }
    }

    /// Caches the 4 KiB page of `va` from TLB slot (`arr`, `slot`), with the access
    /// classes `rights` allow under the current registers (SDM 4.6, computed by the
    /// same function as the slow path). Call only after `sync` for these registers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        va: VirtAddr,
        instruction: bool,
        page: u64,
        rights: Rights,
        dirty: bool,
        arr: usize,
        slot: usize,
    ) {
        if !self.enabled || arr > u8::MAX as usize {
            return;
        }
        let regs = self.regs;
        let mut perm = 0u8;
        for c in 0..4u8 {
            let a = Access {
                kind: AccessKind::Read,
                cpl: if c == 0 { 3 } else { 0 },
                implicit_supervisor: c == 3,
                rflags_ac: c == 2,
            };
            if instruction {
                let x = Access {
                    kind: AccessKind::Execute,
                    ..a
                };
                if access_allowed(rights, &x, &regs) {
                    perm |= 1 << c;
                }
            } else {
                if access_allowed(rights, &a, &regs) {
                    perm |= 1 << c;
                }
                let w = Access {
                    kind: AccessKind::Write,
                    ..a
                };
                if dirty && access_allowed(rights, &w, &regs) {
                    perm |= 1 << (c + 4);
                }
            }
        }
        let vpn = va.vpn();
        let e = FastEntry {
            vpn,
            gen: self.gen,
            page,
            perm,
            arr: arr as u8,
            slot: slot as u32,
        };
        let table = if instruction {
            &mut self.instr
        } else {
            &mut self.data
        };
        table[(vpn as usize) & (SLOTS - 1)] = e;
    }
}
