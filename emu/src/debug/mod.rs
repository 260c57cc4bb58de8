//! The step-debugger's emulation side: a [`Session`] wraps a scenario
//! [`Runner`](crate::scenario::Runner) and adds a position counter, snapshots and
//! deterministic re-execution (reverse stepping, "go to step N"), breakpoints,
//! read-only views (disassembly, memory, TLB dumps, page walks), and saving the
//! steps taken as a scenario that replays them.
//!
//! Front ends (the terminal UI and the line-mode REPL in `tlbemu`) share one
//! command language: [`parse`] turns a line into a [`Command`], [`execute`] runs it
//! on a session and returns a [`Reply`]. Nothing here draws or reads a terminal.

mod command;
mod exec;
mod log;
mod save;
mod session;
mod view;

pub use command::{parse, BreakSpec, Command, Completions, ParseError, PrintFmt, HELP};
pub use exec::{
    core_label, cores_text, execute, filtered_events, status_line, tlb_text, who_text, Reply,
};
pub use log::EventLog;
pub use save::{rebase_code_paths, saved_scenario, to_ron, write_new, SaveError};
pub use session::{
    BreakKind, Breakpoint, Cond, History, Interrupt, Operand, Session, Stop, Syntax, Unit,
    POLL_EVERY, SNAPSHOT_EVERY,
};
pub use view::{
    cache_name, disassemble, disassemble_around, flags_text, format_entry, format_event,
    format_regs, format_walk, read_linear, rights_text, stale_reason, translate, DisLine,
    REG_NAMES,
};
