//! # emu — x86-64 cores on iced-x86
//!
//! Architectural state, instruction semantics (one file per family under `insn/`),
//! exceptions as values, and the decoded-instruction cache. A core reaches memory
//! only through a [`Bus`], the seam the MMU plugs into.
#![warn(missing_docs)]

mod apic;
pub mod asm;
mod bus;
mod cpu;
pub mod debug;
mod decode_cache;
mod dispatch;
pub mod events;
mod exception;
pub mod exec;
pub mod explore;
mod features;
pub mod files;
mod flags;
mod insn;
mod interrupt;
pub mod machine;
pub mod scenario;
pub mod state;
pub mod trace;

pub use apic::{logical_id, X2APIC_BROADCAST};
pub use apic::{reg as apic_reg, Apic, ApicWrite, IpiDest, IpiRequest};
pub use bus::{AccessKind, Bus, FlatBus};
pub use cpu::{Cpu, LastInsn, StepOutcome};
pub use decode_cache::DecodeCache;
pub use dispatch::implemented_mnemonics;
pub use events::{
    ClassSet, CollectSink, CountSink, Event, EventClass, EventKind, EventSink, NullSink, StopReason,
};
pub use exception::{hex_bytes, EmuError, Exception, Fault};
pub use features::CpuFeatures;
pub use interrupt::{deliver, Delivery, Vectoring};
pub use machine::{Core, Machine, MachineConfig, MachineError, StepResult, Straight};
pub use state::CpuState;
