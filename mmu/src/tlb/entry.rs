//! One TLB entry (SDM Vol. 3A 4.10.2.2: what a TLB entry holds).

use crate::addr::{PageSize, PhysAddr, VirtAddr};
use crate::coherence::RecId;
use crate::paging::access::Rights;

/// A cached translation of one page.
///
/// Per SDM 4.10.2.2 an entry holds the physical frame, the access rights combined
/// across all levels (R/W, U/S, XD), the dirty flag of the leaf, and — our
/// addition — the tracker record describing its origin.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TlbEntry {
    /// Slot in use.
    pub valid: bool,
    /// PCID the entry was made under (000H with CR4.PCIDE=0), SDM 4.10.2.1.
    pub pcid: u16,
    /// CR4.PGE=1 and G=1 in the leaf when made (SDM 4.10.2.4): matches any PCID.
    pub global: bool,
    /// Page number at `size` granularity (va >> 12/21/30).
    pub vpn: u64,
    /// Page size.
    pub size: PageSize,
    /// Physical base of the page.
    pub frame: PhysAddr,
    /// Combined rights.
    pub rights: Rights,
    /// Cached D flag: a write through a clean entry walks again (SDM 4.8).
    pub dirty: bool,
    /// Coherence-tracker record (origin, staleness).
    pub rec: RecId,
    /// Replacement stamp (LRU: last use; FIFO: fill time).
    pub stamp: u64,
}

impl TlbEntry {
    pub(crate) const EMPTY: TlbEntry = TlbEntry {
        valid: false,
        pcid: 0,
        global: false,
        vpn: 0,
        size: PageSize::Size4K,
        frame: PhysAddr(0),
        rights: Rights(0),
        dirty: false,
        rec: RecId(u32::MAX),
        stamp: 0,
    };

    /// Does this entry map `va`'s page?
    #[inline]
    pub fn covers(&self, va: VirtAddr) -> bool {
        self.valid && (va.raw() >> size_shift(self.size)) == self.vpn
    }

    /// Usable under `pcid`: own PCID or global (SDM 4.10.2.4).
    #[inline]
    pub fn usable_with(&self, pcid: u16) -> bool {
        self.pcid == pcid || self.global
    }
}

/// log2 of the page size.
#[inline]
pub(crate) const fn size_shift(s: PageSize) -> u32 {
    match s {
        PageSize::Size4K => 12,
        PageSize::Size2M => 21,
        PageSize::Size1G => 30,
    }
}

/// Sign-extends a 48-bit linear address.
#[inline]
pub(crate) const fn sign_extend(v: u64) -> u64 {
    (((v << 16) as i64) >> 16) as u64
}
