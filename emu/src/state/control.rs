//! Control-register, EFER and RFLAGS bit definitions (SDM Vol. 3A 2.5, 2.2.1; Vol. 1 3.4.3).

/// RFLAGS.CF
pub const CF: u64 = 1 << 0;
/// RFLAGS.PF
pub const PF: u64 = 1 << 2;
/// RFLAGS.AF
pub const AF: u64 = 1 << 4;
/// RFLAGS.ZF
pub const ZF: u64 = 1 << 6;
/// RFLAGS.SF
pub const SF: u64 = 1 << 7;
/// RFLAGS.TF
pub const TF: u64 = 1 << 8;
/// RFLAGS.IF
pub const IF: u64 = 1 << 9;
/// RFLAGS.DF
pub const DF: u64 = 1 << 10;
/// RFLAGS.OF
pub const OF: u64 = 1 << 11;
/// RFLAGS.IOPL (2 bits)
pub const IOPL: u64 = 3 << 12;
/// RFLAGS.NT
pub const NT: u64 = 1 << 14;
/// RFLAGS.RF
pub const RF: u64 = 1 << 16;
/// RFLAGS.VM
pub const VM: u64 = 1 << 17;
/// RFLAGS.AC
pub const AC: u64 = 1 << 18;
/// RFLAGS.VIF
pub const VIF: u64 = 1 << 19;
/// RFLAGS.VIP
pub const VIP: u64 = 1 << 20;
/// RFLAGS.ID
pub const ID: u64 = 1 << 21;
/// The six arithmetic status flags.
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
/// Bits software can ever hold in RFLAGS (bit 1 always reads 1; VM stays 0 in 64-bit mode).
pub const RFLAGS_WRITABLE: u64 = STATUS | TF | IF | DF | IOPL | NT | RF | AC | VIF | VIP | ID;

/// CR0.PE
pub const CR0_PE: u64 = 1 << 0;
/// CR0.MP
pub const CR0_MP: u64 = 1 << 1;
/// CR0.EM
pub const CR0_EM: u64 = 1 << 2;
/// CR0.TS
pub const CR0_TS: u64 = 1 << 3;
/// CR0.ET
pub const CR0_ET: u64 = 1 << 4;
/// CR0.NE
pub const CR0_NE: u64 = 1 << 5;
/// CR0.WP
pub const CR0_WP: u64 = 1 << 16;
/// CR0.AM
pub const CR0_AM: u64 = 1 << 18;
/// CR0.NW
pub const CR0_NW: u64 = 1 << 29;
/// CR0.CD
pub const CR0_CD: u64 = 1 << 30;
/// CR0.PG
pub const CR0_PG: u64 = 1 << 31;
/// CR0 bits that exist; writing any other bit is #GP(0).
pub const CR0_DEFINED: u64 = CR0_PE
    | CR0_MP
    | CR0_EM
    | CR0_TS
    | CR0_ET
    | CR0_NE
    | CR0_WP
    | CR0_AM
    | CR0_NW
    | CR0_CD
    | CR0_PG;

/// CR4.VME
pub const CR4_VME: u64 = 1 << 0;
/// CR4.PVI
pub const CR4_PVI: u64 = 1 << 1;
/// CR4.TSD
pub const CR4_TSD: u64 = 1 << 2;
/// CR4.DE
pub const CR4_DE: u64 = 1 << 3;
/// CR4.PSE
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.MCE
pub const CR4_MCE: u64 = 1 << 6;
/// CR4.PGE
pub const CR4_PGE: u64 = 1 << 7;
/// CR4.PCE
pub const CR4_PCE: u64 = 1 << 8;
/// CR4.OSFXSR
pub const CR4_OSFXSR: u64 = 1 << 9;
/// CR4.OSXMMEXCPT
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// CR4.UMIP
pub const CR4_UMIP: u64 = 1 << 11;
/// CR4.FSGSBASE
pub const CR4_FSGSBASE: u64 = 1 << 16;
/// CR4.PCIDE
pub const CR4_PCIDE: u64 = 1 << 17;
/// CR4.OSXSAVE
pub const CR4_OSXSAVE: u64 = 1 << 18;
/// CR4.SMEP
pub const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP
pub const CR4_SMAP: u64 = 1 << 21;

/// EFER.SCE
pub const EFER_SCE: u64 = 1 << 0;
/// EFER.LME
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE
pub const EFER_NXE: u64 = 1 << 11;

/// CR3 bit 63: with CR4.PCIDE=1, a MOV to CR3 with this bit set need not invalidate
/// (SDM Vol. 3A 4.10.4.1); the bit is never stored in CR3.
pub const CR3_NOFLUSH: u64 = 1 << 63;
/// CR3 PCID field (bits 11:0) when CR4.PCIDE=1.
pub const CR3_PCID: u64 = 0xfff;
