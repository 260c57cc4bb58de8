//! Paging-structure entry bits for 4-level paging (SDM Vol. 3A 4.5, tables 4-14..4-19).
//!
//! The bit layout is data: named constants and two mask functions. The walker and
//! the page-table builder read these; nothing else decodes raw entries.

/// Bits of a 4-level paging-structure entry (SDM Vol. 3A 4.5, tables 4-14..4-19).
pub mod pte {
    /// Present (bit 0): the entry maps a page or references a table.
    pub const P: u64 = 1 << 0;
    /// Read/write (bit 1): 0 forbids writes through this entry (SDM 4.6).
    pub const RW: u64 = 1 << 1;
    /// User/supervisor (bit 2): 0 forbids user-mode accesses (SDM 4.6).
    pub const US: u64 = 1 << 2;
    /// Page-level write-through (bit 3). Carried, not modelled (no memory types).
    pub const PWT: u64 = 1 << 3;
    /// Page-level cache disable (bit 4). Carried, not modelled.
    pub const PCD: u64 = 1 << 4;
    /// Accessed (bit 5), set by the walker (SDM 4.8).
    pub const A: u64 = 1 << 5;
    /// Dirty (bit 6), set by the walker on writes, leaf entries only (SDM 4.8).
    pub const D: u64 = 1 << 6;
    /// Page size (bit 7): in a PDPTE or PDE, the entry maps a 1 GiB or 2 MiB page.
    /// Reserved in a PML4E; it is the PAT bit in a PTE (tables 4-15, 4-19).
    pub const PS: u64 = 1 << 7;
    /// Global (bit 8), leaf entries only; honoured only with CR4.PGE=1 (SDM 4.10.2.4).
    pub const G: u64 = 1 << 8;
    /// PAT bit of a 2 MiB / 1 GiB leaf (bit 12). Carried, not modelled.
    pub const PAT_LARGE: u64 = 1 << 12;
    /// Execute-disable (bit 63); reserved unless IA32_EFER.NXE=1 (SDM 4.5, 4.6).
    pub const NX: u64 = 1 << 63;
}

/// Default MAXPHYADDR (bits of physical address) of the emulated CPU.
pub const DEFAULT_MAXPHYADDR: u8 = 46;

/// Mask of a physical address field bits `maxphyaddr-1 .. lo` (lo = 12, 21 or 30).
#[inline]
pub const fn addr_field(maxphyaddr: u8, lo: u32) -> u64 {
    let hi = if maxphyaddr as u32 >= 52 {
        52
    } else {
        maxphyaddr as u32
    };
    ((1u64 << hi) - 1) & !((1u64 << lo) - 1)
}

/// Mask of the address of the next table, or of a 4 KiB frame (bits M-1:12).
#[inline]
pub const fn table_addr_mask(maxphyaddr: u8) -> u64 {
    addr_field(maxphyaddr, 12)
}

/// Reserved bits of an entry at `level` (4 = PML4E .. 1 = PTE), given whether it
/// maps a page (`leaf`, i.e. PS=1 at level 3/2, always at level 1).
///
/// SDM Vol. 3A 4.5, tables 4-14..4-19 and 4.5.4 "reserved bits":
/// - bits 51:MAXPHYADDR of every entry;
/// - bit 63 (XD) when IA32_EFER.NXE = 0;
/// - PML4E: bit 7 (PS) — there are no 512 GiB pages;
/// - PDPTE mapping a 1 GiB page: bits 29:13 (between PAT at 12 and the frame at 30);
/// - PDE mapping a 2 MiB page: bits 20:13.
///
/// Whether PS=1 is itself legal in a PDPTE (1 GiB pages) is the walker's decision
/// (a config option); it passes `leaf = false` and checks PS separately.
#[inline]
pub const fn reserved_mask(level: u8, leaf: bool, maxphyaddr: u8, nxe: bool) -> u64 {
    let mp = if maxphyaddr >= 52 { 52 } else { maxphyaddr };
    // Bits 51:M.
    let mut m = ((1u64 << 52) - 1) & !((1u64 << mp) - 1);
    if !nxe {
        m |= pte::NX;
    }
    match (level, leaf) {
        (4, _) => m |= pte::PS,
        (3, true) => m |= ((1u64 << 30) - 1) & !((1u64 << 13) - 1),
        (2, true) => m |= ((1u64 << 21) - 1) & !((1u64 << 13) - 1),
        _ => {}
    }
    m
}

/// Human-readable flag names of an entry, for dumps ("P RW US A D PS G NX").
pub fn flag_names(v: u64) -> String {
    const NAMES: [(u64, &str); 10] = [
        (pte::P, "P"),
        (pte::RW, "RW"),
        (pte::US, "US"),
        (pte::PWT, "PWT"),
        (pte::PCD, "PCD"),
        (pte::A, "A"),
        (pte::D, "D"),
        (pte::PS, "PS"),
        (pte::G, "G"),
        (pte::NX, "NX"),
    ];
    let mut s = String::new();
    for (bit, name) in NAMES {
        if v & bit != 0 {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(name);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_masks_follow_maxphyaddr() {
        assert_eq!(table_addr_mask(46), 0x0000_3fff_ffff_f000);
        assert_eq!(table_addr_mask(52), 0x000f_ffff_ffff_f000);
        assert_eq!(addr_field(46, 21), 0x0000_3fff_ffe0_0000);
        assert_eq!(addr_field(46, 30), 0x0000_3fff_c000_0000);
    }

    #[test]
    fn reserved_masks_per_level() {
        // Table 4-14: PML4E bit 7 is reserved; bits 51:46 too with MAXPHYADDR 46.
        let r = reserved_mask(4, false, 46, true);
        assert_ne!(r & pte::PS, 0);
        assert_ne!(r & (1 << 46), 0);
        assert_eq!(r & pte::NX, 0);
        // NX reserved when NXE=0.
        assert_ne!(reserved_mask(1, true, 46, false) & pte::NX, 0);
        // Table 4-16: 1 GiB page, bits 29:13 reserved, PAT (12) not.
        let r = reserved_mask(3, true, 46, true);
        assert_ne!(r & (1 << 13), 0);
        assert_ne!(r & (1 << 29), 0);
        assert_eq!(r & (1 << 12), 0);
        // Table 4-18: 2 MiB page, bits 20:13 reserved.
        let r = reserved_mask(2, true, 46, true);
        assert_ne!(r & (1 << 20), 0);
        assert_eq!(r & (1 << 21), 0);
        // Table 4-19: PTE bit 7 is PAT, not reserved.
        assert_eq!(reserved_mask(1, true, 46, true) & pte::PS, 0);
        // Non-leaf PDE: bits 20:13 are address bits.
        assert_eq!(reserved_mask(2, false, 46, true) & (1 << 13), 0);
    }

    #[test]
    fn names() {
        assert_eq!(flag_names(pte::P | pte::RW | pte::NX), "P RW NX");
    }
}
