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
//!   hit does — except when that slot is already the most recently used of its
//!   array (see [`FastPath::fetch_touch`]): refreshing it again would change no
//!   order between any two entries, so it is skipped.

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

/// The last instruction-fetch hit: a copy of the `instr` entry that served it,
/// with the privilege key it was checked for. It is a shortcut to that entry, not
/// a separate cache: it is valid only while the generation is unchanged (so the
/// registers, the tracker and this core's TLBs are as they were) and `instr` has
/// not been written since (`insert` clears it), i.e. exactly while `lookup` would
/// return the same hit for the same page and key.
#[derive(Clone, Copy, Debug)]
struct FetchMemo {
    vpn: u64,
    gen: u64,
    page: u64,
    key: u8,
    arr: u8,
    slot: u32,
}

const NO_MEMO: FetchMemo = FetchMemo {
    vpn: u64::MAX,
    gen: 0,
    page: 0,
    key: 0,
    arr: 0,
    slot: 0,
};

#[derive(Clone, Debug)]
pub(crate) struct FastPath {
    data: Box<[FastEntry; SLOTS]>,
    instr: Box<[FastEntry; SLOTS]>,
    fetch: FetchMemo,
    /// The same for the last data-access hit (key: `perm_index`), mirroring a
    /// `data` entry; `insert` into `data` clears it.
    data_memo: FetchMemo,
    gen: u64,
    seen_tracker: u64,
    regs: PagingRegs,
    pub(crate) enabled: bool,
    /// The TLB slot behind `fetch` is the most recently used of its array: it was
    /// touched last and nothing has touched, filled or emptied a slot of that
    /// array since. Set by [`FastPath::fetch_touch`]; cleared by every other touch
    /// ([`FastPath::touched_elsewhere`], a data touch when instruction and data
    /// share arrays). A fill or removal moves the generation, which invalidates
    /// the memo itself, and a new memo is always touched before it is relied on.
    fetch_mru: bool,
    /// The same for `data_memo`.
    data_mru: bool,
    /// Instruction fetches use their own TLB, so data touches leave `fetch_mru`
    /// alone (and fetch touches `data_mru`).
    split: bool,
}

/// Privilege class of an access: 0 user, 1 supervisor AC=0, 2 supervisor AC=1,
/// 3 implicit supervisor (an implicit access is supervisor whatever the CPL).
const fn class_of(implicit: bool, cpl3: bool, ac: bool) -> u8 {
    if implicit {
        3
    } else if cpl3 {
        0
    } else if ac {
        2
    } else {
        1
    }
}

/// The permission bit of every (write, implicit, CPL 3, AC) combination, indexed
/// as in [`perm_bit`]: bit `class` for reads and fetches, bit `class + 4` for
/// writes. A table lookup replaces the class branches on every fast-path lookup
/// (~10 of the ~80 x86 instructions of a hit).
const PERM_BITS: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        let c = class_of(i & 4 != 0, i & 2 != 0, i & 1 != 0);
        t[i] = if i & 8 != 0 { 1 << (c + 4) } else { 1 << c };
        i += 1;
    }
    t
};

/// Index of `a` into [`PERM_BITS`]: everything about an access that decides
/// whether a fast entry's permissions allow it.
#[inline]
pub(crate) fn perm_index(a: &Access) -> u8 {
    ((a.kind == AccessKind::Write) as u8) << 3
        | (a.implicit_supervisor as u8) << 2
        | ((a.cpl == 3) as u8) << 1
        | a.rflags_ac as u8
}

#[inline]
fn perm_bit(a: &Access) -> u8 {
    PERM_BITS[perm_index(a) as usize]
}

impl FastPath {
    pub(crate) fn new(enabled: bool, split: bool) -> Self {
        FastPath {
            data: Box::new([EMPTY; SLOTS]),
            instr: Box::new([EMPTY; SLOTS]),
            fetch: NO_MEMO,
            data_memo: NO_MEMO,
            gen: 1,
            seen_tracker: 0,
            regs: PagingRegs::default(),
            enabled,
            fetch_mru: false,
            data_mru: false,
            split,
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

    /// Instruction fetches only: the memoised hit for page `vpn` under privilege
    /// `key` (`(CPL == 3) << 1 | AC`, the index `perm_bit` uses for a non-implicit
    /// access), if the registers and the tracker generation are those `sync` last
    /// saw and nothing moved the generation or wrote `instr` since. When it returns
    /// a hit, `sync` would have been a no-op and `lookup` would have returned the
    /// same hit, so the caller must do what it does after a `lookup` hit (touch
    /// the TLB slot: LRU order stays exact).
    #[inline(always)]
    pub(crate) fn fetch_memo(
        &self,
        regs: &PagingRegs,
        tracker_gen: u64,
        vpn: u64,
        key: u8,
    ) -> Option<FastHit> {
        self.memo_hit(&self.fetch, regs, tracker_gen, vpn, key)
    }

    /// Data accesses only: like [`FastPath::fetch_memo`] for the last data hit,
    /// `key` being [`perm_index`] of the access (kind, implicit, CPL 3, AC), so a
    /// read's memo never serves a write.
    #[inline(always)]
    pub(crate) fn data_memo(
        &self,
        regs: &PagingRegs,
        tracker_gen: u64,
        vpn: u64,
        key: u8,
    ) -> Option<FastHit> {
        self.memo_hit(&self.data_memo, regs, tracker_gen, vpn, key)
    }

    #[inline(always)]
    fn memo_hit(
        &self,
        m: &FetchMemo,
        regs: &PagingRegs,
        tracker_gen: u64,
        vpn: u64,
        key: u8,
    ) -> Option<FastHit> {
        if m.vpn == vpn
            && m.gen == self.gen
            && m.key == key
            && self.seen_tracker == tracker_gen
            && self.regs == *regs
        {
            Some(FastHit {
                page: m.page,
                arr: m.arr as usize,
                slot: m.slot as usize,
            })
        } else {
            None
        }
    }

    /// Whether the caller must refresh the LRU stamp of the fetch memo's slot (it
    /// is about to use it): false when that slot is already its array's most
    /// recently used, where a refresh changes no relative order, i.e. no future
    /// eviction. Call on every fetch hit (memo or `lookup`), after
    /// [`FastPath::remember_fetch`] when the memo is new.
    ///
    /// On the benchmark loop this saves the touch on four fetches out of five;
    /// the order the replacement policy sees is the same as touching every time.
    #[inline(always)]
    pub(crate) fn fetch_touch(&mut self) -> bool {
        if self.fetch_mru {
            return false;
        }
        self.fetch_mru = true;
        if !self.split {
            self.data_mru = false;
        }
        true
    }

    /// [`FastPath::fetch_touch`] for the data memo.
    #[inline(always)]
    pub(crate) fn data_touch(&mut self) -> bool {
        if self.data_mru {
            return false;
        }
        self.data_mru = true;
        if !self.split {
            self.fetch_mru = false;
        }
        true
    }

    /// A TLB slot was touched outside the memo paths: neither memo's slot can be
    /// assumed most recently used any more.
    #[inline(always)]
    pub(crate) fn touched_elsewhere(&mut self) {
        self.fetch_mru = false;
        self.data_mru = false;
    }

    /// Remembers an instruction-fetch `lookup` hit on page `vpn` for `key` (see
    /// [`FastPath::fetch_memo`]); call right after that hit.
    #[inline(always)]
    pub(crate) fn remember_fetch(&mut self, vpn: u64, key: u8, hit: &FastHit) {
        self.fetch_mru = false;
        self.fetch = FetchMemo {
            vpn,
            gen: self.gen,
            page: hit.page,
            key,
            arr: hit.arr as u8,
            slot: hit.slot as u32,
        };
    }

    /// Remembers a data `lookup` hit on page `vpn` for `key` (see
    /// [`FastPath::data_memo`]); call right after that hit.
    #[inline(always)]
    pub(crate) fn remember_data(&mut self, vpn: u64, key: u8, hit: &FastHit) {
        self.data_mru = false;
        self.data_memo = FetchMemo {
            vpn,
            gen: self.gen,
            page: hit.page,
            key,
            arr: hit.arr as u8,
            slot: hit.slot as u32,
        };
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
            // The memo mirrors an `instr` entry; this one may overwrite it.
            self.fetch = NO_MEMO;
            &mut self.instr
        } else {
            // Likewise for the data memo.
            self.data_memo = NO_MEMO;
            &mut self.data
        };
        table[(vpn as usize) & (SLOTS - 1)] = e;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table gives the bits the per-class rules give (user = CPL 3 and not
    /// implicit; implicit = 3; else AC picks 2 or 1; writes use the upper nibble).
    #[test]
    fn perm_bits_follow_the_classes() {
        for kind in [AccessKind::Read, AccessKind::Write, AccessKind::Execute] {
            for cpl in 0..4u8 {
                for implicit_supervisor in [false, true] {
                    for rflags_ac in [false, true] {
                        let a = Access {
                            kind,
                            cpl,
                            implicit_supervisor,
                            rflags_ac,
                        };
                        let c = if a.is_user() {
                            0
                        } else if implicit_supervisor {
                            3
                        } else if rflags_ac {
                            2
                        } else {
                            1
                        };
                        let want = if kind == AccessKind::Write {
                            1 << (c + 4)
                        } else {
                            1 << c
                        };
                        assert_eq!(perm_bit(&a), want, "{a:?}");
                    }
                }
            }
        }
    }
}
