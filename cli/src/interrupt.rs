//! Ending a long run on SIGINT or SIGTERM with its partial report.
//!
//! The handler only sets a flag; the command's step loop polls it between
//! steps, so the machine is always between two instructions when the run stops
//! and the report describes a real state. A second SIGINT or SIGTERM while the
//! first is being handled exits at once with [`EXIT_INTERRUPTED`], for a report
//! that takes too long.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit code of a run ended by SIGINT or SIGTERM (128 + SIGINT, as shells use).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Set once SIGINT or SIGTERM arrived.
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Installs the handlers. Without them (registration failed, which only
    /// happens for forbidden signals) the run just cannot be interrupted
    /// cleanly, so failure is not an error.
    pub fn install() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // The conditional handler is registered first so that it sees the
            // flag as it was before this signal: set means a second signal.
            let _ = signal_hook::flag::register_conditional_shutdown(
                sig,
                i32::from(EXIT_INTERRUPTED),
                Arc::clone(&flag),
            );
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        Cancel(flag)
    }

    /// The flag itself, for code outside the CLI that polls it between units
    /// of work (the debugger's long commands).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// Whether the run should stop now.
    #[inline]
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
