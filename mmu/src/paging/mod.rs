//! x86-64 4-level paging: entry bits, access rights, the walk.

pub(crate) mod access;
pub(crate) mod entry;
pub(crate) mod walker;
