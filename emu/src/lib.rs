//! # emu — x86-64 cores on iced-x86
//!
//! Architectural state, instruction semantics (one file per family under `insn/`),
//! exceptions as values, and the decoded-instruction cache. A core reaches memory
//! only through a [`Bus`], the seam the MMU plugs into.
#![warn(missing_docs)]

mod apic;
mod bus;
mod interrupt;
mod cpu;
mod decode_cache;
mod dispatch;
pub mod exec;
mod exception;
mod features;
mod flags;
mod insn;
pub mod state;

pub use bus::{AccessKind, Bus, FlatBus, Invalidate};
pub use cpu::{Cpu, LastInsn, StepOutcome};
pub use decode_cache::DecodeCache;
pub use exception::{hex_bytes, EmuError, Exception, Fault};
pub use features::CpuFeatures;
pub use state::CpuState;
pub use apic::{reg as apic_reg, Apic, ApicWrite, IpiDest, IpiRequest};
pub use interrupt::{deliver, Delivery, Vectoring};
