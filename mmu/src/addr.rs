//! Address newtypes.
//!
//! Physical and linear addresses never mix: the walker turns a [`VirtAddr`] into a
//! [`PhysAddr`], and nothing else does. Arithmetic is by named methods so that an
//! overflow is a visible decision, not an accident.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Size of the smallest page, 4 KiB.
pub const PAGE_SIZE: u64 = 4096;
/// Mask of the offset inside a 4 KiB page.
pub const PAGE_MASK: u64 = PAGE_SIZE - 1;

/// A guest physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct PhysAddr(pub u64);

/// A linear (virtual) address, as produced by segmentation in 64-bit mode.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct VirtAddr(pub u64);

/// A physical frame number (physical address >> 12).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Pfn(pub u64);

impl PhysAddr {
    /// The raw value.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// The 4 KiB frame holding this address.
    #[inline]
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> 12)
    }
    /// Offset inside the 4 KiB page.
    #[inline]
    pub const fn page_offset(self) -> u64 {
        self.0 & PAGE_MASK
    }
    /// This address plus `off`, wrapping at 2^64 (physical addresses never get near it).
    #[inline]
    pub const fn add(self, off: u64) -> PhysAddr {
        PhysAddr(self.0.wrapping_add(off))
    }
    /// Rounded down to a multiple of `align` (a power of two).
    #[inline]
    pub const fn align_down(self, align: u64) -> PhysAddr {
        PhysAddr(self.0 & !(align - 1))
    }
}

impl VirtAddr {
    /// The raw value.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// Virtual page number of the 4 KiB page (bits 63:12).
    #[inline]
    pub const fn vpn(self) -> u64 {
        self.0 >> 12
    }
    /// Offset inside the 4 KiB page.
    #[inline]
    pub const fn page_offset(self) -> u64 {
        self.0 & PAGE_MASK
    }
    /// This address plus `off`, wrapping at 2^64 as linear addresses do.
    #[inline]
    pub const fn add(self, off: u64) -> VirtAddr {
        VirtAddr(self.0.wrapping_add(off))
    }
    /// Rounded down to a multiple of `align` (a power of two).
    #[inline]
    pub const fn align_down(self, align: u64) -> VirtAddr {
        VirtAddr(self.0 & !(align - 1))
    }
    /// Canonical for 48-bit linear addresses: bits 63:47 all equal (SDM Vol. 3A 3.3.7.1).
    #[inline]
    pub const fn is_canonical(self) -> bool {
        let top = (self.0 as i64) >> 47;
        top == 0 || top == -1
    }
    /// Index into the paging structure of `level` (4 = PML4, 3 = PDPT, 2 = PD, 1 = PT).
    #[inline]
    pub const fn table_index(self, level: u8) -> u64 {
        (self.0 >> (12 + 9 * (level as u32 - 1))) & 0x1ff
    }
}

impl Pfn {
    /// First byte of the frame.
    #[inline]
    pub const fn addr(self) -> PhysAddr {
        PhysAddr(self.0 << 12)
    }
}

/// The size of a page mapped by a leaf paging-structure entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum PageSize {
    /// 4 KiB, mapped by a PTE.
    Size4K,
    /// 2 MiB, mapped by a PDE with PS=1.
    Size2M,
    /// 1 GiB, mapped by a PDPTE with PS=1.
    Size1G,
}

impl PageSize {
    /// Bytes in a page of this size.
    #[inline]
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }
    /// Mask of the offset inside a page of this size.
    #[inline]
    pub const fn offset_mask(self) -> u64 {
        self.bytes() - 1
    }
    /// The paging-structure level whose entry maps a page of this size.
    #[inline]
    pub const fn leaf_level(self) -> u8 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }
    /// Short human name ("4K", "2M", "1G").
    pub const fn name(self) -> &'static str {
        match self {
            PageSize::Size4K => "4K",
            PageSize::Size2M => "2M",
            PageSize::Size1G => "1G",
        }
    }
}

macro_rules! hex_fmt {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($t), self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}
hex_fmt!(PhysAddr);
hex_fmt!(VirtAddr);
hex_fmt!(Pfn);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_boundaries() {
        assert!(VirtAddr(0x0000_7fff_ffff_ffff).is_canonical());
        assert!(!VirtAddr(0x0000_8000_0000_0000).is_canonical());
        assert!(!VirtAddr(0xffff_7fff_ffff_ffff).is_canonical());
        assert!(VirtAddr(0xffff_8000_0000_0000).is_canonical());
        assert!(VirtAddr(u64::MAX).is_canonical());
    }

    #[test]
    fn table_indices() {
        let va = VirtAddr(0xffff_ffff_8020_3000);
        assert_eq!(va.table_index(4), 511);
        assert_eq!(va.table_index(3), 510);
        assert_eq!(va.table_index(2), 1);
        assert_eq!(va.table_index(1), 3);
    }
}
