//! Control-register bits, accesses, combined access rights and the SDM 4.6 checks.

use serde::{Deserialize, Serialize};

/// CR0 bits the MMU reads.
pub mod cr0 {
    /// Write protect: supervisor writes honour R/W (SDM Vol. 3A 4.6.1).
    pub const WP: u64 = 1 << 16;
    /// Paging enabled.
    pub const PG: u64 = 1 << 31;
}

/// CR4 bits the MMU reads.
pub mod cr4 {
    /// Physical-address extension (required for 4-level paging).
    pub const PAE: u64 = 1 << 5;
    /// Page global enable (SDM 4.10.2.4).
    pub const PGE: u64 = 1 << 7;
    /// Process-context identifiers (SDM 4.10.1).
    pub const PCIDE: u64 = 1 << 17;
    /// Supervisor-mode execution prevention (SDM 4.6.1).
    pub const SMEP: u64 = 1 << 20;
    /// Supervisor-mode access prevention (SDM 4.6.1).
    pub const SMAP: u64 = 1 << 21;
}

/// IA32_EFER bits the MMU reads.
pub mod efer {
    /// Long mode enable.
    pub const LME: u64 = 1 << 8;
    /// Long mode active.
    pub const LMA: u64 = 1 << 10;
    /// Execute-disable enable: bit 63 of entries is XD instead of reserved (SDM 4.5).
    pub const NXE: u64 = 1 << 11;
}

/// Page-fault error-code bits (SDM Vol. 3A 4.7, figure 4-12).
pub mod pf_err {
    /// 0: no valid translation (a P=0 entry); 1: protection or reserved-bit violation.
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was a user-mode access (CPL=3 and not an implicit supervisor access).
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in some paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch and EFER.NXE=1 or CR4.SMEP=1.
    pub const I: u32 = 1 << 4;
}

/// The paging-related registers of one core, as the CPU holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagingRegs {
    /// CR0 (PG, WP are read).
    pub cr0: u64,
    /// CR3 (root table address; PCID in bits 11:0 when CR4.PCIDE=1).
    pub cr3: u64,
    /// CR4 (PAE, PGE, PCIDE, SMEP, SMAP are read).
    pub cr4: u64,
    /// IA32_EFER (NXE is read).
    pub efer: u64,
}

impl PagingRegs {
    /// Long-mode 4-level paging with the given CR3 and extra CR4/EFER bits
    /// (CR0.PG|WP, CR4.PAE, EFER.LME|LMA are always set). Handy for tests and setup.
    pub fn long_mode(cr3: u64, extra_cr4: u64, extra_efer: u64) -> Self {
        PagingRegs {
            cr0: cr0::PG | cr0::WP | 1,
            cr3,
            cr4: cr4::PAE | extra_cr4,
            efer: efer::LME | efer::LMA | extra_efer,
        }
    }
    /// CR0.PG.
    #[inline]
    pub fn paging(&self) -> bool {
        self.cr0 & cr0::PG != 0
    }
    /// CR0.WP.
    #[inline]
    pub fn wp(&self) -> bool {
        self.cr0 & cr0::WP != 0
    }
    /// CR4.PGE.
    #[inline]
    pub fn pge(&self) -> bool {
        self.cr4 & cr4::PGE != 0
    }
    /// CR4.PCIDE.
    #[inline]
    pub fn pcide(&self) -> bool {
        self.cr4 & cr4::PCIDE != 0
    }
    /// CR4.SMEP.
    #[inline]
    pub fn smep(&self) -> bool {
        self.cr4 & cr4::SMEP != 0
    }
    /// CR4.SMAP.
    #[inline]
    pub fn smap(&self) -> bool {
        self.cr4 & cr4::SMAP != 0
    }
    /// EFER.NXE.
    #[inline]
    pub fn nxe(&self) -> bool {
        self.efer & efer::NXE != 0
    }
    /// The current PCID: CR3 bits 11:0 with CR4.PCIDE=1, else 000H (SDM 4.10.1).
    #[inline]
    pub fn pcid(&self) -> u16 {
        if self.pcide() {
            (self.cr3 & 0xfff) as u16
        } else {
            0
        }
    }
}

/// What an access does with the memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessKind {
    /// Data read.
    Read,
    /// Data write (also the write half of a read-modify-write).
    Write,
    /// Instruction fetch.
    Execute,
}

/// One access to a linear address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Read, write or fetch.
    pub kind: AccessKind,
    /// Current privilege level (0..=3).
    pub cpl: u8,
    /// A supervisor-mode access made implicitly (GDT/IDT/TSS reads, ...) whatever the CPL
    /// (SDM 4.6: implicit accesses are supervisor-mode and SMAP ignores AC for them).
    pub implicit_supervisor: bool,
    /// RFLAGS.AC, which lets explicit supervisor accesses reach user pages under SMAP.
    pub rflags_ac: bool,
}

impl Access {
    /// An explicit access at `cpl`, AC=0.
    pub const fn new(kind: AccessKind, cpl: u8) -> Self {
        Access {
            kind,
            cpl,
            implicit_supervisor: false,
            rflags_ac: false,
        }
    }
    /// Supervisor-mode data read (CPL 0).
    pub const fn kernel_read() -> Self {
        Access::new(AccessKind::Read, 0)
    }
    /// Supervisor-mode data write (CPL 0).
    pub const fn kernel_write() -> Self {
        Access::new(AccessKind::Write, 0)
    }
    /// A user-mode access: CPL=3 and not implicit (SDM 4.6).
    #[inline]
    pub fn is_user(&self) -> bool {
        self.cpl == 3 && !self.implicit_supervisor
    }
}

/// Access rights of a translation, combined across all levels (SDM 4.6, 4.10.2.2):
/// writable only if R/W=1 everywhere, user only if U/S=1 everywhere, executable
/// unless some XD=1 (with EFER.NXE=1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rights(pub u8);

impl Rights {
    /// Writes allowed by R/W.
    pub const WRITE: u8 = 1;
    /// User-mode page (U/S=1 everywhere).
    pub const USER: u8 = 2;
    /// Not execute-disabled.
    pub const EXEC: u8 = 4;
    /// Everything, the neutral element of [`Rights::and`].
    pub const ALL: Rights = Rights(7);

    /// The rights one entry grants on its own.
    #[inline]
    pub fn of_entry(v: u64, nxe: bool) -> Rights {
        use super::entry::pte;
        let mut r = 0;
        if v & pte::RW != 0 {
            r |= Rights::WRITE;
        }
        if v & pte::US != 0 {
            r |= Rights::USER;
        }
        if !(nxe && v & pte::NX != 0) {
            r |= Rights::EXEC;
        }
        Rights(r)
    }
    /// Combination along the walk.
    #[inline]
    pub fn and(self, o: Rights) -> Rights {
        Rights(self.0 & o.0)
    }
    /// Writable.
    #[inline]
    pub fn write(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    /// User page.
    #[inline]
    pub fn user(self) -> bool {
        self.0 & Self::USER != 0
    }
    /// Executable.
    #[inline]
    pub fn exec(self) -> bool {
        self.0 & Self::EXEC != 0
    }
    /// True when `self` lacks some right that `cached` grants — the coherence
    /// oracle's "grants fewer rights" test.
    #[inline]
    pub fn lacks_some_of(self, cached: Rights) -> bool {
        self.0 & cached.0 != cached.0
    }
}

impl std::fmt::Debug for Rights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}{}",
            if self.write() { "W" } else { "-" },
            if self.user() { "U" } else { "S" },
            if self.exec() { "X" } else { "-" }
        )
    }
}

/// Does SDM Vol. 3A 4.6.1 allow `access` to a page with combined `rights`?
///
/// Supervisor-mode accesses (CPL<3, or implicit):
/// - reads of user pages: allowed unless CR4.SMAP=1 and (implicit, or AC=0);
/// - writes: to user pages as for reads under SMAP; then with CR0.WP=1 only if
///   writable, with CR0.WP=0 always;
/// - fetches: from user pages never with CR4.SMEP=1; XD forbids with NXE=1.
///
/// User-mode accesses: user pages only; writes need R/W; fetches need no XD.
#[inline]
pub fn access_allowed(rights: Rights, access: &Access, regs: &PagingRegs) -> bool {
    let user_page = rights.user();
    if access.is_user() {
        if !user_page {
            return false;
        }
        return match access.kind {
            AccessKind::Read => true,
            AccessKind::Write => rights.write(),
            AccessKind::Execute => rights.exec(),
        };
    }
    match access.kind {
        AccessKind::Read | AccessKind::Write => {
            if user_page && regs.smap() && (access.implicit_supervisor || !access.rflags_ac) {
                return false;
            }
            access.kind == AccessKind::Read || !regs.wp() || rights.write()
        }
        AccessKind::Execute => !(user_page && regs.smep()) && rights.exec(),
    }
}

/// The #PF error code for `access` (SDM 4.7): `present` is false for a P=0 entry,
/// `rsvd` true for a reserved-bit violation (which also sets P).
#[inline]
pub fn pf_error_code(access: &Access, regs: &PagingRegs, present: bool, rsvd: bool) -> u32 {
    let mut e = 0;
    if present || rsvd {
        e |= pf_err::P;
    }
    if access.kind == AccessKind::Write {
        e |= pf_err::W;
    }
    if access.is_user() {
        e |= pf_err::U;
    }
    if rsvd {
        e |= pf_err::RSVD;
    }
    if access.kind == AccessKind::Execute && (regs.nxe() || regs.smep()) {
        e |= pf_err::I;
    }
    e
}
