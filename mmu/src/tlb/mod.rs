//! Per-core TLBs (SDM Vol. 3A 4.10.2): PCID-tagged, set-associative, deterministic
//! replacement. Only fills, capacity evictions and `invalidate::apply` change them.

pub(crate) mod entry;
pub(crate) mod set_assoc;

pub(crate) use entry::TlbEntry;
pub(crate) use set_assoc::Tlb;
