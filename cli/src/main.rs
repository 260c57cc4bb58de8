//! `tlbemu`: run, replay, check and step-debug TLB-coherence scenarios on emulated
//! x86-64 cores. A thin layer over the `emu` and `mmu` crates: argument parsing,
//! output formats and exit codes live here, emulation does not.
//!
//! Exit codes: 0 success; 1 an expectation failed, an unexpected violation
//! appeared, or a replay diverged; 2 bad input (arguments, scenario, assembly,
//! files).

mod commands;
mod interrupt;
mod repl;
mod tui;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code when the emulated run disagrees with what was expected.
pub const EXIT_FAIL: u8 = 1;
/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "tlbemu",
    version,
    about = "Instruction-level x86-64 MMU/TLB emulator for TLB-coherence bugs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario along its schedule and report stale uses and expectations.
    Run(commands::run::RunArgs),
    /// Run raw machine code on one core and print the final state.
    Exec(commands::exec::ExecArgs),
    /// Search the interleavings (and, with --fills, the hardware's caching
    /// choices) for stale uses, dead cores, hangs and broken invariants.
    Explore(commands::explore::ExploreArgs),
    /// Re-execute a trace's decisions and name the first divergent event.
    Replay(commands::replay::ReplayArgs),
    /// Run a suite of scenarios against their expectations and golden traces.
    Check(commands::check::CheckArgs),
    /// Show a trace or export it for a timeline viewer.
    Trace(commands::trace::TraceArgs),
    /// Step-debug a scenario: a terminal UI, or a line-mode REPL (`--repl`, or when
    /// stdin or stdout is not a terminal).
    Debug(commands::debug::DebugArgs),
}

/// Restores the default action of SIGPIPE, which the Rust runtime sets to ignore.
/// Ignored, a write to a closed pipe (`tlbemu run x.ron | head -1`) returns EPIPE
/// and every `println!` in every command panics; with the default action the
/// process ends quietly when its reader goes away, as other command-line tools do.
/// One fix here covers every command and every later print.
fn default_sigpipe() {
    // SAFETY: called first thing in `main`, before any other thread exists, so
    // nothing races on the signal disposition; SIG_DFL is a valid handler value.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(a) => commands::run::run(a),
        Command::Exec(a) => commands::exec::run(a),
        Command::Explore(a) => commands::explore::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Check(a) => commands::check::run(a),
        Command::Trace(a) => commands::trace::run(a),
        Command::Debug(a) => commands::debug::run(a),
    };
    ExitCode::from(code)
}
