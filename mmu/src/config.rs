//! Configuration of one machine's MMUs: TLB geometry, paging-structure caches,
//! CPU parameters, opt-in "may" invalidations and errata.

use crate::addr::PageSize;
use crate::paging::entry::DEFAULT_MAXPHYADDR;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which entry a full set gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Replacement {
    /// Least recently used (every hit, including fast-path hits, refreshes it).
    #[default]
    Lru,
    /// First in, first out (hits do not matter).
    Fifo,
    /// Never evict: a full set grows. Entries leave only by invalidation.
    Unbounded,
}

/// One set-associative TLB array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbArrayConfig {
    /// Total entries (sets × ways).
    pub entries: usize,
    /// Ways per set; `entries / ways` sets, indexed by the low bits of the page
    /// number of the page size being looked up.
    pub ways: usize,
    /// Replacement policy.
    pub policy: Replacement,
    /// Page sizes this array holds; empty = all sizes (a unified array).
    pub sizes: Vec<PageSize>,
}

impl TlbArrayConfig {
    /// A unified array holding every page size.
    pub fn unified(entries: usize, ways: usize, policy: Replacement) -> Self {
        TlbArrayConfig {
            entries,
            ways,
            policy,
            sizes: Vec::new(),
        }
    }
}

/// The TLBs of one core. A translation of page size S is filled into the first
/// array (in order) that holds S; no array holding S means S is never cached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbConfig {
    /// Data TLB arrays (reads and writes).
    pub data: Vec<TlbArrayConfig>,
    /// Instruction TLB arrays; `None` = fetches share the data arrays (unified).
    pub instruction: Option<Vec<TlbArrayConfig>>,
}

impl Default for TlbConfig {
    /// 64-entry 4-way LRU data TLB plus a separate 64-entry 4-way LRU instruction
    /// TLB, each holding all page sizes.
    fn default() -> Self {
        TlbConfig {
            data: vec![TlbArrayConfig::unified(64, 4, Replacement::Lru)],
            instruction: Some(vec![TlbArrayConfig::unified(64, 4, Replacement::Lru)]),
        }
    }
}

/// Capacities of the paging-structure caches (SDM Vol. 3A 4.10.3), fully
/// associative with LRU replacement. 0 disables a cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PscConfig {
    /// PML4E cache entries.
    pub pml4e: usize,
    /// PDPTE cache entries.
    pub pdpte: usize,
    /// PDE cache entries.
    pub pde: usize,
}

impl Default for PscConfig {
    /// 16 / 16 / 32 entries.
    fn default() -> Self {
        PscConfig {
            pml4e: 16,
            pdpte: 16,
            pde: 32,
        }
    }
}

impl PscConfig {
    /// No paging-structure caches: every walk starts at CR3.
    pub fn disabled() -> Self {
        PscConfig {
            pml4e: 0,
            pdpte: 0,
            pde: 0,
        }
    }
}

/// Named CPU errata, opt-in per scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Erratum {
    /// Some Alder Lake / Raptor Lake parts: with CR4.PCIDE=1, INVLPG leaves global
    /// TLB entries for the page in place (paging-structure caches are still flushed).
    InvlpgMissesGlobalWithPcid,
}

/// Configuration shared by all cores of a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MmuConfig {
    /// TLB geometry.
    pub tlb: TlbConfig,
    /// Paging-structure caches.
    pub psc: PscConfig,
    /// MAXPHYADDR (default 46).
    pub maxphyaddr: u8,
    /// 1 GiB pages supported (default true); without, PS=1 in a PDPTE is reserved.
    pub huge_1g: bool,
    /// Perform the SDM's permitted extra ("may") invalidations; see
    /// [`crate::Invalidation`] for the list.
    pub extra_invalidations: bool,
    /// Errata to model.
    pub errata: Vec<Erratum>,
    /// Enable the per-core fast path (default true). Off is for differential tests.
    pub fast_path: bool,
}

impl Default for MmuConfig {
    fn default() -> Self {
        MmuConfig {
            tlb: TlbConfig::default(),
            psc: PscConfig::default(),
            maxphyaddr: DEFAULT_MAXPHYADDR,
            huge_1g: true,
            extra_invalidations: false,
            errata: Vec::new(),
            fast_path: true,
        }
    }
}

/// A configuration that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// ways = 0, entries = 0, or entries not a multiple of ways.
    #[error("TLB array {index} of the {which} TLB: {entries} entries in {ways} ways is not a whole number of sets (need entries = sets x ways, both > 0)")]
    BadGeometry {
        /// "data" or "instruction".
        which: &'static str,
        /// Array index.
        index: usize,
        /// Configured entries.
        entries: usize,
        /// Configured ways.
        ways: usize,
    },
    /// MAXPHYADDR out of range.
    #[error("MAXPHYADDR {0} is outside 32..=52")]
    BadMaxPhyAddr(u8),
}

impl MmuConfig {
    /// Checks the geometry. [`crate::CoreMmu::new`] clamps bad values instead of
    /// failing, so scenario loaders should call this first to report errors.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(32..=52).contains(&self.maxphyaddr) {
            return Err(ConfigError::BadMaxPhyAddr(self.maxphyaddr));
        }
        let mut all = vec![("data", &self.tlb.data)];
        if let Some(i) = &self.tlb.instruction {
            all.push(("instruction", i));
        }
        for (which, arrays) in all {
            for (index, a) in arrays.iter().enumerate() {
                if a.ways == 0 || a.entries == 0 || a.entries % a.ways != 0 {
                    return Err(ConfigError::BadGeometry {
                        which,
                        index,
                        entries: a.entries,
                        ways: a.ways,
                    });
                }
            }
        }
        Ok(())
    }

    /// Is `e` enabled?
    pub fn has_erratum(&self, e: Erratum) -> bool {
        self.errata.contains(&e)
    }
}
