//! Guest physical memory: sparse, copy-on-write, page granular.
//!
//! Memory is a two-level table: 2 MiB chunks of 512 page pointers. A page that was
//! never written reads as zeros and costs nothing. Cloning a [`PhysMem`] copies the
//! chunk pointers only; the first write to a shared chunk or page after a clone
//! copies just that chunk or page (`Arc::make_mut`). That is what makes machine
//! snapshots (reverse stepping, schedule exploration) cheap.
//!
//! Each page carries a few flag bits that other layers set to be told about writes:
//! [`page_flags::CODE`] (the decoded-instruction cache holds instructions from this
//! page) and [`page_flags::PAGING`] (the coherence tracker has cached entries built
//! from paging-structure entries in this page). A write to a `CODE` page clears the
//! flag and queues the frame in a drop list that the decode cache drains before its
//! next lookup, so self-modifying code stays correct whoever did the write (an
//! instruction, the walker's A/D update, a debugger). `PAGING` is reported back to
//! the writer, who owns the context (core, step, RIP) the tracker needs.
//!
//! Writes without atomics: `Arc::make_mut` is an atomic compare-exchange on the
//! strong count, and a store used to pay two (chunk, then page) — about 75 % of
//! `PhysMem::write` in the `cpu_loop` profile. [`PhysMem`] therefore remembers
//! which chunks it alone holds (`owned`, one flag per chunk) and each such chunk
//! remembers which of its pages it alone holds (`Chunk::owned_pages`); a write to
//! an owned page of an owned chunk goes straight to the bytes. `Clone` clears the
//! flags of both copies, so the first write after a snapshot takes the
//! `make_mut` path again and copies what is shared.

use crate::addr::{Pfn, PhysAddr, PAGE_SIZE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// Flag bits kept per physical page.
pub mod page_flags {
    /// The decoded-instruction cache holds instructions decoded from this page.
    pub const CODE: u8 = 1 << 0;
    /// Some TLB or paging-structure-cache entry was built from an entry in this page.
    pub const PAGING: u8 = 1 << 1;
}

const PAGES_PER_CHUNK: usize = 512;
const CHUNK_SHIFT: u32 = 21;

#[derive(Clone)]
#[repr(align(64))]
struct Page([u8; PAGE_SIZE as usize]);

struct Chunk {
    pages: [Option<Arc<Page>>; PAGES_PER_CHUNK],
    flags: [u8; PAGES_PER_CHUNK],
    /// Bit i set: `pages[i]` is `Some` and its `Arc` is referenced by this chunk
    /// only. Meaningful only while the owning [`PhysMem`] has this chunk's `owned`
    /// flag set (it is reset whenever that flag is set again).
    owned_pages: [u64; PAGES_PER_CHUNK / 64],
}

impl Clone for Chunk {
    /// A copy shares every page with the original, so it owns none of them.
    fn clone(&self) -> Self {
        Chunk {
            pages: self.pages.clone(),
            flags: self.flags,
            owned_pages: [0; PAGES_PER_CHUNK / 64],
        }
    }
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            pages: std::array::from_fn(|_| None),
            flags: [0; PAGES_PER_CHUNK],
            owned_pages: [0; PAGES_PER_CHUNK / 64],
        }
    }

    /// The bytes of page `idx` for writing (allocated zeroed on first write).
    #[inline(always)]
    fn page_mut(&mut self, idx: usize) -> &mut Page {
        if self.owned_pages[idx / 64] & (1u64 << (idx % 64)) != 0 {
            if let Some(page) = &self.pages[idx] {
                let p = Arc::as_ptr(page) as *mut Page;
                // SAFETY: the `owned_pages` bit says this chunk holds the only
                // reference to the page (it is set in `page_mut_slow` right after
                // `make_mut` made it unique, and cleared on every path that could
                // share it: `Chunk::clone` and `PhysMem::chunk_mut_slow` taking
                // ownership again). No `Weak` is ever created. We hold `&mut self`,
                // so no other reference into the page exists while the returned one
                // lives. This is what the unstable `Arc::get_mut_unchecked` does.
                return unsafe { &mut *p };
            }
        }
        self.page_mut_slow(idx)
    }

    /// First write to a page since this chunk became owned: copy it if shared.
    #[cold]
    #[inline(never)]
    fn page_mut_slow(&mut self, idx: usize) -> &mut Page {
        self.owned_pages[idx / 64] |= 1u64 << (idx % 64);
        let page = self.pages[idx].get_or_insert_with(|| Arc::new(Page([0; PAGE_SIZE as usize])));
        Arc::make_mut(page)
    }
}

/// A physical access that guest memory cannot serve: outside the machine's
/// memory, or (`host_cap`) a write that would allocate a page past
/// [`MAX_RESIDENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{}", self.describe())]
pub struct MemError {
    /// First byte of the access.
    pub addr: PhysAddr,
    /// Length of the access in bytes.
    pub len: u64,
    /// Size of guest physical memory.
    pub size: u64,
    /// The access is inside memory, but serving it would take the host-side
    /// allocation past its cap.
    pub host_cap: bool,
}

impl MemError {
    fn describe(&self) -> String {
        if self.host_cap {
            format!(
                "physical write of {} bytes at {} would allocate more than the host-side cap of {} MiB of touched guest memory",
                self.len,
                self.addr,
                MAX_RESIDENT_BYTES >> 20
            )
        } else {
            format!(
                "physical access of {} bytes at {} is outside guest memory (size {:#x})",
                self.len, self.addr, self.size
            )
        }
    }
}

/// Host-side cap on the guest memory one [`PhysMem`] allocates: 4 GiB of
/// touched pages. The machine's `memory` bounds addresses (up to 64 GiB), and
/// memory is allocated only when first written, so a guest that writes every page
/// of a large machine would otherwise take the host's memory with it. At the cap
/// a write to a new page fails with a [`MemError`] whose `host_cap` is set, which
/// stops the core with an emulator error instead of exhausting the host. Reads
/// of untouched pages still see zeros and cost nothing.
pub const MAX_RESIDENT_BYTES: u64 = 4 << 30;

/// One 2 MiB chunk of guest memory and whether this [`PhysMem`] owns it. The flag
/// sits next to the pointer so a write finds both with one bounds check.
struct ChunkSlot {
    chunk: Option<Arc<Chunk>>,
    /// Set: `chunk` is `Some` and this `PhysMem` holds its only reference (set by
    /// [`PhysMem::chunk_mut`] after `make_mut`, cleared in both copies by
    /// `Clone`). Atomic only so that `clone(&self)` can clear it; all accesses are
    /// relaxed loads and stores (plain moves on x86).
    owned: AtomicBool,
}

impl ChunkSlot {
    fn empty() -> Self {
        ChunkSlot {
            chunk: None,
            owned: AtomicBool::new(false),
        }
    }
}

impl Clone for ChunkSlot {
    /// The copy shares the chunk, so it does not own it.
    fn clone(&self) -> Self {
        ChunkSlot {
            chunk: self.chunk.clone(),
            owned: AtomicBool::new(false),
        }
    }
}

/// Guest physical memory.
pub struct PhysMem {
    chunks: Vec<ChunkSlot>,
    size: u64,
    code_dropped: Vec<Pfn>,
    /// Pages this memory holds (written at least once).
    resident: u64,
    /// Most pages it may hold ([`MAX_RESIDENT_BYTES`] unless lowered).
    resident_cap: u64,
}

impl Clone for PhysMem {
    /// Copies the chunk pointers. Both copies now share every chunk, so neither
    /// owns any: their next write to a chunk or page goes through `make_mut`.
    fn clone(&self) -> Self {
        for c in &self.chunks {
            c.owned.store(false, Ordering::Relaxed);
        }
        PhysMem {
            chunks: self.chunks.clone(),
            size: self.size,
            code_dropped: self.code_dropped.clone(),
            resident: self.resident,
            resident_cap: self.resident_cap,
        }
    }
}

impl std::fmt::Debug for PhysMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysMem")
            .field("size", &format_args!("{:#x}", self.size))
            .field("touched_pages", &self.touched_pages())
            .finish()
    }
}

impl PhysMem {
    /// Memory of `size` bytes (rounded up to 2 MiB), all zero, nothing allocated yet.
    pub fn new(size: u64) -> Self {
        let chunks = size.div_ceil(1 << CHUNK_SHIFT) as usize;
        PhysMem {
            chunks: (0..chunks).map(|_| ChunkSlot::empty()).collect(),
            size: (chunks as u64) << CHUNK_SHIFT,
            code_dropped: Vec::with_capacity(16),
            resident: 0,
            resident_cap: MAX_RESIDENT_BYTES / PAGE_SIZE,
        }
    }

    /// Lowers (or raises) the cap on pages held, in bytes; for tests that need to
    /// reach the cap without allocating gigabytes.
    pub fn set_resident_cap(&mut self, bytes: u64) {
        self.resident_cap = bytes / PAGE_SIZE;
    }

    /// The error for a write refused at the cap.
    #[cold]
    fn cap_error(&self, pa: PhysAddr, len: usize) -> MemError {
        MemError {
            addr: pa,
            len: len as u64,
            size: self.size,
            host_cap: true,
        }
    }

    /// Size of guest physical memory in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of pages that hold data (were written at least once).
    pub fn touched_pages(&self) -> usize {
        self.chunks
            .iter()
            .filter_map(|c| c.chunk.as_ref())
            .map(|c| c.pages.iter().filter(|p| p.is_some()).count())
            .sum()
    }

    #[inline]
    fn check(&self, pa: PhysAddr, len: usize) -> Result<(), MemError> {
        let end = pa.0.checked_add(len as u64);
        match end {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(MemError {
                addr: pa,
                len: len as u64,
                size: self.size,
                host_cap: false,
            }),
        }
    }

    #[inline]
    fn page(&self, pfn: u64) -> Option<&Page> {
        let chunk = self.chunks.get((pfn >> 9) as usize)?.chunk.as_ref()?;
        chunk.pages[(pfn & 511) as usize].as_deref()
    }

    #[inline(always)]
    fn chunk_mut(&mut self, pfn: u64) -> &mut Chunk {
        let i = (pfn >> 9) as usize;
        let slot = &self.chunks[i];
        if slot.owned.load(Ordering::Relaxed) {
            if let Some(chunk) = &slot.chunk {
                let p = Arc::as_ptr(chunk) as *mut Chunk;
                // SAFETY: `owned[i]` says this PhysMem holds the only reference to
                // the chunk: it is set in `chunk_mut_slow` right after `make_mut`
                // made it unique, and `Clone` (the only way to share a chunk)
                // clears it in both copies. No `Weak` is ever created. We hold
                // `&mut self`, so no other reference into the chunk exists while
                // the returned one lives (what the unstable
                // `Arc::get_mut_unchecked` does).
                return unsafe { &mut *p };
            }
        }
        self.chunk_mut_slow(i)
    }

    /// First write to a chunk since it was allocated or shared by a clone.
    #[cold]
    #[inline(never)]
    fn chunk_mut_slow(&mut self, i: usize) -> &mut Chunk {
        let slot = &mut self.chunks[i];
        slot.owned.store(true, Ordering::Relaxed);
        let chunk = Arc::make_mut(slot.chunk.get_or_insert_with(|| Arc::new(Chunk::new())));
        // The chunk may have been shared until now (its page bits could describe
        // pages that another copy also holds): start its page ownership afresh.
        chunk.owned_pages = [0; PAGES_PER_CHUNK / 64];
        chunk
    }

    /// Reads `buf.len()` bytes at `pa`. Never-written memory reads as zeros.
    #[inline]
    pub fn read(&self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.check(pa, buf.len())?;
        let off = (pa.0 & (PAGE_SIZE - 1)) as usize;
        if off + buf.len() <= PAGE_SIZE as usize {
            // One page: no loop, and constant-size copies for the usual operand
            // sizes instead of a `memcpy` call.
            match self.page(pa.0 >> 12) {
                Some(p) => match buf.len() {
                    8 => buf[..8].copy_from_slice(&p.0[off..off + 8]),
                    4 => buf[..4].copy_from_slice(&p.0[off..off + 4]),
                    n => buf.copy_from_slice(&p.0[off..off + n]),
                },
                None => buf.fill(0),
            }
            return Ok(());
        }
        let mut addr = pa.0;
        let mut done = 0;
        while done < buf.len() {
            let off = (addr & (PAGE_SIZE - 1)) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            match self.page(addr >> 12) {
                Some(p) => buf[done..done + n].copy_from_slice(&p.0[off..off + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
            addr += n as u64;
        }
        Ok(())
    }

    /// Writes `data` at `pa`. Returns the union of the flags of the pages written
    /// (before the write), so the caller can notify the coherence tracker.
    ///
    /// Inlined into every store: the common case (one page, inside memory, the
    /// page owned) is a handful of loads and the copy; crossing a page, the first
    /// write after a clone, and a write to a page holding decoded code go out of
    /// line.
    #[inline(always)]
    pub fn write(&mut self, pa: PhysAddr, data: &[u8]) -> Result<u8, MemError> {
        let off = (pa.0 & (PAGE_SIZE - 1)) as usize;
        // `size` is a whole number of pages, so an access that starts inside
        // memory and stays on its page ends inside memory.
        if off + data.len() > PAGE_SIZE as usize || pa.0 >= self.size {
            return self.write_spanning(pa, data);
        }
        let pfn = pa.0 >> 12;
        let idx = (pfn & 511) as usize;
        let chunk = self.chunk_mut(pfn);
        if chunk.pages[idx].is_none() {
            return self.write_spanning(pa, data);
        }
        let f = chunk.flags[idx];
        let page = &mut chunk.page_mut(idx).0;
        match data.len() {
            // Constant-size copies for the usual operand sizes instead of a
            // `memcpy` call.
            8 => page[off..off + 8].copy_from_slice(&data[..8]),
            4 => page[off..off + 4].copy_from_slice(&data[..4]),
            n => page[off..off + n].copy_from_slice(data),
        }
        if f & page_flags::CODE != 0 {
            self.drop_code(pfn);
        }
        Ok(f)
    }

    /// The written frame `pfn` held decoded code: clear its flag and queue it for
    /// the decode cache.
    #[cold]
    #[inline(never)]
    fn drop_code(&mut self, pfn: u64) {
        self.chunk_mut(pfn).flags[(pfn & 511) as usize] &= !page_flags::CODE;
        self.code_dropped.push(Pfn(pfn));
    }

    /// [`PhysMem::write`] of an access that crosses a page boundary or does not
    /// fit in memory.
    #[cold]
    #[inline(never)]
    fn write_spanning(&mut self, pa: PhysAddr, data: &[u8]) -> Result<u8, MemError> {
        self.check(pa, data.len())?;
        // Refuse before writing anything, so a write is all or nothing.
        let new_pages = (pa.0 >> 12..=(pa.0 + data.len() as u64 - 1) >> 12)
            .filter(|&pfn| self.page(pfn).is_none())
            .count() as u64;
        if new_pages > 0 && self.resident + new_pages > self.resident_cap {
            return Err(self.cap_error(pa, data.len()));
        }
        self.resident += new_pages;
        let mut addr = pa.0;
        let mut done = 0;
        let mut flags = 0;
        while done < data.len() {
            let pfn = addr >> 12;
            let off = (addr & (PAGE_SIZE - 1)) as usize;
            let n = (PAGE_SIZE as usize - off).min(data.len() - done);
            let chunk = self.chunk_mut(pfn);
            let idx = (pfn & 511) as usize;
            let f = chunk.flags[idx];
            flags |= f;
            chunk.page_mut(idx).0[off..off + n].copy_from_slice(&data[done..done + n]);
            if f & page_flags::CODE != 0 {
                self.drop_code(pfn);
            }
            done += n;
            addr += n as u64;
        }
        Ok(flags)
    }

    /// Reads a little-endian u64 (any alignment).
    #[inline]
    pub fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        self.read(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian u64; returns the page flags as [`PhysMem::write`] does.
    #[inline]
    pub fn write_u64(&mut self, pa: PhysAddr, v: u64) -> Result<u8, MemError> {
        self.write(pa, &v.to_le_bytes())
    }

    /// Reads a little-endian value of `size` bytes (1, 2, 4 or 8), zero-extended.
    #[inline]
    pub fn read_uint(&self, pa: PhysAddr, size: usize) -> Result<u64, MemError> {
        debug_assert!(matches!(size, 1 | 2 | 4 | 8));
        let mut b = [0u8; 8];
        self.read(pa, &mut b[..size])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Atomic compare-and-exchange of a u64, as a locked CMPXCHG on the bus: if the
    /// value at `pa` equals `expected`, store `new`. Returns the value found and the
    /// page flags (0 when nothing was written).
    pub fn compare_exchange_u64(
        &mut self,
        pa: PhysAddr,
        expected: u64,
        new: u64,
    ) -> Result<(u64, u8), MemError> {
        let cur = self.read_u64(pa)?;
        if cur == expected {
            let f = self.write_u64(pa, new)?;
            Ok((cur, f))
        } else {
            Ok((cur, 0))
        }
    }

    /// Flags of the page holding frame `pfn` (0 outside memory).
    #[inline]
    pub fn flags(&self, pfn: Pfn) -> u8 {
        match self.chunks.get((pfn.0 >> 9) as usize) {
            Some(ChunkSlot { chunk: Some(c), .. }) => c.flags[(pfn.0 & 511) as usize],
            _ => 0,
        }
    }

    /// Sets `bits` in the flags of frame `pfn` (ignored outside memory).
    pub fn set_flags(&mut self, pfn: Pfn, bits: u8) {
        if ((pfn.0 >> 9) as usize) < self.chunks.len() && self.flags(pfn) & bits != bits {
            self.chunk_mut(pfn.0).flags[(pfn.0 & 511) as usize] |= bits;
        }
    }

    /// Clears `bits` in the flags of frame `pfn`.
    pub fn clear_flags(&mut self, pfn: Pfn, bits: u8) {
        if self.flags(pfn) & bits != 0 {
            self.chunk_mut(pfn.0).flags[(pfn.0 & 511) as usize] &= !bits;
        }
    }

    /// True when some written page held decoded code since the last
    /// [`PhysMem::drain_dropped_code`].
    #[inline]
    pub fn has_dropped_code(&self) -> bool {
        !self.code_dropped.is_empty()
    }

    /// Hands each frame whose decoded code became invalid to `f`, and forgets them.
    pub fn drain_dropped_code(&mut self, mut f: impl FnMut(Pfn)) {
        for pfn in self.code_dropped.drain(..) {
            f(pfn);
        }
    }

    /// True when `self` and `other` share the storage of frame `pfn` (neither wrote it
    /// since one was cloned from the other). For snapshot tests and statistics.
    pub fn shares_page_with(&self, other: &PhysMem, pfn: Pfn) -> bool {
        let a = self
            .chunks
            .get((pfn.0 >> 9) as usize)
            .and_then(|c| c.chunk.as_ref());
        let b = other
            .chunks
            .get((pfn.0 >> 9) as usize)
            .and_then(|c| c.chunk.as_ref());
        match (a, b) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => true,
            (Some(a), Some(b)) => {
                let i = (pfn.0 & 511) as usize;
                match (&a.pages[i], &b.pages[i]) {
                    (Some(x), Some(y)) => Arc::ptr_eq(x, y),
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_reads_zero_and_allocates_nothing() {
        let m = PhysMem::new(1 << 30);
        let mut b = [0xffu8; 16];
        m.read(PhysAddr(0x1234), &mut b).unwrap();
        assert_eq!(b, [0; 16]);
        assert_eq!(m.touched_pages(), 0);
    }

    #[test]
    fn write_read_across_page_boundary() {
        let mut m = PhysMem::new(1 << 30);
        m.write(PhysAddr(0xffc), &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(m.read_u64(PhysAddr(0xffc)).unwrap(), 0x0807060504030201);
        assert_eq!(m.touched_pages(), 2);
    }

    #[test]
    fn writes_past_the_resident_cap_fail_and_leave_memory_unchanged() {
        let mut m = PhysMem::new(1 << 30);
        m.set_resident_cap(3 * PAGE_SIZE);
        for i in 0..3 {
            m.write_u64(PhysAddr(i * PAGE_SIZE), 7).unwrap();
        }
        // Pages already held may still be written; a fourth may not be allocated.
        m.write_u64(PhysAddr(8), 9).unwrap();
        let e = m.write_u64(PhysAddr(3 * PAGE_SIZE), 1).unwrap_err();
        assert!(e.host_cap, "{e}");
        assert!(e.to_string().contains("host-side cap"), "{e}");
        // A write that spans a held page and a new one is refused whole.
        let e = m
            .write(PhysAddr(3 * PAGE_SIZE - 4), &[0xaa; 8])
            .unwrap_err();
        assert!(e.host_cap);
        assert_eq!(m.read_u64(PhysAddr(3 * PAGE_SIZE - 8)).unwrap(), 0);
        assert_eq!(m.touched_pages(), 3);
        // A clone holds the same pages and the same cap.
        let mut c = m.clone();
        assert!(
            c.write_u64(PhysAddr(5 * PAGE_SIZE), 1)
                .unwrap_err()
                .host_cap
        );
    }

    #[test]
    fn out_of_range_is_an_error() {
        let mut m = PhysMem::new(4 << 20);
        assert!(m.read_u64(PhysAddr((4 << 20) - 4)).is_err());
        assert!(m.write_u64(PhysAddr(u64::MAX - 2), 0).is_err());
        assert!(m.read_u64(PhysAddr((4 << 20) - 8)).is_ok());
    }

    #[test]
    fn clone_is_copy_on_write() {
        let mut a = PhysMem::new(64 << 20);
        a.write_u64(PhysAddr(0x1000), 1).unwrap();
        a.write_u64(PhysAddr(0x2000), 2).unwrap();
        let mut b = a.clone();
        assert!(a.shares_page_with(&b, Pfn(1)));
        b.write_u64(PhysAddr(0x1000), 3).unwrap();
        assert!(!a.shares_page_with(&b, Pfn(1)));
        assert!(a.shares_page_with(&b, Pfn(2)));
        assert_eq!(a.read_u64(PhysAddr(0x1000)).unwrap(), 1);
        assert_eq!(b.read_u64(PhysAddr(0x1000)).unwrap(), 3);
    }

    #[test]
    fn owned_fast_writes_stay_copy_on_write() {
        // Writes before a clone take the owned (no make_mut) path; the clone must
        // still separate both copies, in either direction, and again after a
        // second clone of a page that was re-owned.
        let mut a = PhysMem::new(64 << 20);
        for i in 0..4u64 {
            a.write_u64(PhysAddr(0x1000 + i * 8), i).unwrap();
            a.write_u64(PhysAddr(0x20_1000), i).unwrap(); // second chunk
        }
        let mut b = a.clone();
        a.write_u64(PhysAddr(0x1000), 10).unwrap();
        a.write_u64(PhysAddr(0x1000), 11).unwrap();
        assert_eq!(b.read_u64(PhysAddr(0x1000)).unwrap(), 0);
        b.write_u64(PhysAddr(0x1008), 20).unwrap();
        b.write_u64(PhysAddr(0x1008), 21).unwrap();
        assert_eq!(a.read_u64(PhysAddr(0x1008)).unwrap(), 1);
        assert_eq!(b.read_u64(PhysAddr(0x1000)).unwrap(), 0);
        assert_eq!(a.read_u64(PhysAddr(0x1000)).unwrap(), 11);
        assert!(a.shares_page_with(&b, Pfn(0x201)));
        let c = b.clone();
        b.write_u64(PhysAddr(0x1008), 22).unwrap();
        b.write_u64(PhysAddr(0x20_1000), 23).unwrap();
        assert_eq!(c.read_u64(PhysAddr(0x1008)).unwrap(), 21);
        assert_eq!(c.read_u64(PhysAddr(0x20_1000)).unwrap(), 3);
        assert_eq!(a.read_u64(PhysAddr(0x20_1000)).unwrap(), 3);
        // Flag changes on a shared chunk also copy it.
        let d = b.clone();
        b.set_flags(Pfn(1), page_flags::CODE);
        assert_eq!(d.flags(Pfn(1)), 0);
        b.write(PhysAddr(0x1ffc), &[1, 2, 3, 4, 5, 6, 7, 8])
            .unwrap();
        assert_eq!(d.read_u64(PhysAddr(0x1ffc)).unwrap(), 0);
        assert_eq!(b.read_u64(PhysAddr(0x1ffc)).unwrap(), 0x0807060504030201);
    }

    #[test]
    fn code_flag_dropped_on_write() {
        let mut m = PhysMem::new(4 << 20);
        m.set_flags(Pfn(3), page_flags::CODE | page_flags::PAGING);
        let f = m.write(PhysAddr(0x3008), &[0x90]).unwrap();
        assert_eq!(f, page_flags::CODE | page_flags::PAGING);
        assert_eq!(m.flags(Pfn(3)), page_flags::PAGING);
        let mut dropped = vec![];
        m.drain_dropped_code(|p| dropped.push(p));
        assert_eq!(dropped, vec![Pfn(3)]);
        assert!(!m.has_dropped_code());
    }

    #[test]
    fn compare_exchange() {
        let mut m = PhysMem::new(4 << 20);
        m.write_u64(PhysAddr(0x10), 5).unwrap();
        assert_eq!(m.compare_exchange_u64(PhysAddr(0x10), 4, 9).unwrap().0, 5);
        assert_eq!(m.read_u64(PhysAddr(0x10)).unwrap(), 5);
        assert_eq!(m.compare_exchange_u64(PhysAddr(0x10), 5, 9).unwrap().0, 5);
        assert_eq!(m.read_u64(PhysAddr(0x10)).unwrap(), 9);
    }
}
