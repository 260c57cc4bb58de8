//! A set-associative TLB array with a deterministic replacement policy.

use super::entry::{size_shift, TlbEntry};
use crate::addr::{PageSize, VirtAddr};
use crate::config::{Replacement, TlbArrayConfig};

const ALL_SIZES: [PageSize; 3] = [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G];

/// `sets × ways` slots, flat, set-major. Set index = page number mod sets, where the
/// page number is taken at the granularity of the entry's page size.
#[derive(Clone, Debug)]
pub(crate) struct TlbArray {
    sizes: [bool; 3],
    sets: usize,
    ways: usize,
    policy: Replacement,
    slots: Vec<TlbEntry>,
    clock: u64,
}

fn size_idx(s: PageSize) -> usize {
    match s {
        PageSize::Size4K => 0,
        PageSize::Size2M => 1,
        PageSize::Size1G => 2,
    }
}

impl TlbArray {
    pub(crate) fn new(cfg: &TlbArrayConfig) -> Self {
        let ways = cfg.ways.max(1);
        let sets = (cfg.entries / ways).max(1);
        let mut sizes = [cfg.sizes.is_empty(); 3];
        for s in &cfg.sizes {
            sizes[size_idx(*s)] = true;
        }
        TlbArray {
            sizes,
            sets,
            ways,
            policy: cfg.policy,
            slots: vec![TlbEntry::EMPTY; sets * ways],
            clock: 0,
        }
    }

    #[inline]
    pub(crate) fn holds(&self, s: PageSize) -> bool {
        self.sizes[size_idx(s)]
    }

    #[inline]
    fn set_base(&self, vpn: u64) -> usize {
        (vpn % self.sets as u64) as usize * self.ways
    }

    /// Slot of an entry usable under `pcid` that maps `va`, probing each page size
    /// this array holds (as a unified hardware TLB probes per size).
    #[inline]
    pub(crate) fn lookup(&self, va: VirtAddr, pcid: u16) -> Option<usize> {
        for s in ALL_SIZES {
            if !self.holds(s) {
                continue;
            }
            let vpn = va.raw() >> size_shift(s);
            let base = self.set_base(vpn);
            for i in base..base + self.ways {
                let e = &self.slots[i];
                if e.valid && e.vpn == vpn && e.size == s && e.usable_with(pcid) {
                    return Some(i);
                }
            }
        }
        None
    }

    #[inline]
    pub(crate) fn get(&self, slot: usize) -> &TlbEntry {
        &self.slots[slot]
    }

    /// Records a use of `slot` (LRU only; FIFO and Unbounded ignore uses).
    #[inline]
    pub(crate) fn touch(&mut self, slot: usize) {
        if self.policy == Replacement::Lru {
            self.clock += 1;
            self.slots[slot].stamp = self.clock;
        }
    }

    /// Inserts `e`, replacing an entry with the same (PCID, page, size, global) key
    /// or evicting the set's victim: an invalid way first, else the smallest stamp
    /// (lowest way on ties). Unbounded arrays grow instead of evicting.
    /// Returns the slot and the entry that left, if any.
    pub(crate) fn insert(&mut self, mut e: TlbEntry) -> (usize, Option<TlbEntry>) {
        self.clock += 1;
        e.stamp = self.clock;
        e.valid = true;
        let mut base = self.set_base(e.vpn);
        let mut victim = None;
        for i in base..base + self.ways {
            let o = &self.slots[i];
            if o.valid && o.vpn == e.vpn && o.size == e.size && o.pcid == e.pcid {
                let old = *o;
                self.slots[i] = e;
                return (i, Some(old));
            }
        }
        for i in base..base + self.ways {
            if !self.slots[i].valid {
                victim = Some(i);
                break;
            }
        }
        if victim.is_none() && self.policy == Replacement::Unbounded {
            self.grow();
            base = self.set_base(e.vpn);
            victim = Some(base + self.ways / 2);
        }
        let v = match victim {
            Some(v) => v,
            None => {
                let mut v = base;
                for i in base..base + self.ways {
                    if self.slots[i].stamp < self.slots[v].stamp {
                        v = i;
                    }
                }
                v
            }
        };
        let old = self.slots[v];
        self.slots[v] = e;
        (v, if old.valid { Some(old) } else { None })
    }

    /// Doubles the ways of every set, keeping entries in their set.
    fn grow(&mut self) {
        let nw = self.ways * 2;
        let mut slots = vec![TlbEntry::EMPTY; self.sets * nw];
        for s in 0..self.sets {
            slots[s * nw..s * nw + self.ways]
                .copy_from_slice(&self.slots[s * self.ways..(s + 1) * self.ways]);
        }
        self.slots = slots;
        self.ways = nw;
    }

    /// Removes every entry for which `pred` holds, handing each to `out`.
    pub(crate) fn remove_where(
        &mut self,
        mut pred: impl FnMut(&TlbEntry) -> bool,
        mut out: impl FnMut(TlbEntry),
    ) -> u32 {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if s.valid && pred(s) {
                out(*s);
                *s = TlbEntry::EMPTY;
                n += 1;
            }
        }
        n
    }

    /// Valid entries, in slot order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &TlbEntry> {
        self.slots.iter().filter(|e| e.valid)
    }
}

/// The arrays serving one kind of access (data or instruction).
#[derive(Clone, Debug)]
pub(crate) struct Tlb {
    pub(crate) arrays: Vec<TlbArray>,
}

impl Tlb {
    pub(crate) fn new(cfg: &[TlbArrayConfig]) -> Self {
        Tlb {
            arrays: cfg.iter().map(TlbArray::new).collect(),
        }
    }

    /// (array, slot) of a usable entry mapping `va`.
    #[inline]
    pub(crate) fn lookup(&self, va: VirtAddr, pcid: u16) -> Option<(usize, usize)> {
        for (a, arr) in self.arrays.iter().enumerate() {
            if let Some(s) = arr.lookup(va, pcid) {
                return Some((a, s));
            }
        }
        None
    }

    /// First array that holds page size `s`.
    pub(crate) fn array_for(&self, s: PageSize) -> Option<usize> {
        self.arrays.iter().position(|a| a.holds(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::PhysAddr;
    use crate::coherence::RecId;
    use crate::paging::access::Rights;

    fn ent(vpn: u64) -> TlbEntry {
        TlbEntry {
            valid: true,
            pcid: 0,
            global: false,
            vpn,
            size: PageSize::Size4K,
            frame: PhysAddr(vpn << 12),
            rights: Rights::ALL,
            dirty: true,
            rec: RecId(vpn as u32),
            stamp: 0,
        }
    }

    #[test]
    fn lru_evicts_least_recently_used() {
        let mut a = TlbArray::new(&TlbArrayConfig::unified(2, 2, Replacement::Lru));
        let (s1, _) = a.insert(ent(1));
        a.insert(ent(2));
        a.touch(s1);
        let (_, ev) = a.insert(ent(3));
        assert_eq!(ev.map(|e| e.vpn), Some(2));
    }

    #[test]
    fn fifo_ignores_hits() {
        let mut a = TlbArray::new(&TlbArrayConfig::unified(2, 2, Replacement::Fifo));
        let (s1, _) = a.insert(ent(1));
        a.insert(ent(2));
        a.touch(s1);
        let (_, ev) = a.insert(ent(3));
        assert_eq!(ev.map(|e| e.vpn), Some(1));
    }

    #[test]
    fn unbounded_never_evicts() {
        let mut a = TlbArray::new(&TlbArrayConfig::unified(2, 2, Replacement::Unbounded));
        for v in 0..100 {
            assert!(a.insert(ent(v)).1.is_none());
        }
        for v in 0..100 {
            assert!(a.lookup(VirtAddr(v << 12), 0).is_some());
        }
    }

    #[test]
    fn sets_are_indexed_by_vpn() {
        // 4 entries, 2 ways: 2 sets; vpn 0,2,4 share set 0.
        let mut a = TlbArray::new(&TlbArrayConfig::unified(4, 2, Replacement::Lru));
        a.insert(ent(0));
        a.insert(ent(2));
        a.insert(ent(1));
        let (_, ev) = a.insert(ent(4));
        assert_eq!(ev.map(|e| e.vpn), Some(0));
        assert!(a.lookup(VirtAddr(1 << 12), 0).is_some());
    }
}
