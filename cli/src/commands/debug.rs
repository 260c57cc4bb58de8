//! `tlbemu debug SCENARIO`: the step-debugger, as a terminal UI or a REPL.

use crate::interrupt::Cancel;
use crate::{EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK};
use clap::Args;
use emu::debug::{Interrupt, Session};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Arguments of `tlbemu debug`.
#[derive(Args, Debug)]
pub struct DebugArgs {
    /// The scenario file (.ron).
    scenario: PathBuf,
    /// Line-mode REPL instead of the terminal UI (automatic when stdin or stdout
    /// is not a terminal).
    #[arg(long)]
    repl: bool,
}

/// Runs the command and returns the exit code.
pub fn run(a: DebugArgs) -> u8 {
    let mut session = match Session::open(&a.scenario) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{}", d.rendered());
            return EXIT_BAD_INPUT;
        }
    };
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    // Ctrl-C (SIGINT) stops a long command between two units and keeps the
    // position reached; a second one while the first is pending exits.
    let cancel = Cancel::install();
    session.set_interrupt(Interrupt::flag(cancel.flag()));
    if a.repl || !terminal {
        return if crate::repl::run(&mut session) {
            EXIT_OK
        } else {
            EXIT_FAIL
        };
    }
    // Raw mode delivers Ctrl-C as a key, not a signal: long commands poll for it.
    session.set_interrupt(
        Interrupt::flag(cancel.flag()).with_poll(std::sync::Arc::new(crate::tui::ctrl_c_pending)),
    );
    match crate::tui::run(session) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("tlbemu debug: terminal error: {e}");
            EXIT_FAIL
        }
    }
}
