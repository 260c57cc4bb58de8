//! The terminal UI of `tlbemu debug`: ratatui panes over an
//! [`emu::debug::Session`], keys handled in [`app`], drawing in [`render`].
//!
//! The terminal is put back (raw mode off, main screen, cursor shown) on every
//! way out: normal exit and errors (a drop guard), panics (a panic hook that
//! restores before the default hook prints), and Ctrl-C (raw mode delivers it as
//! a key, which quits). During a long command, Ctrl-C interrupts the command
//! instead: the session polls [`ctrl_c_pending`] between units.

mod app;
mod render;
#[cfg(test)]
mod tests;

pub use app::App;

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use emu::debug::Session;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io;

/// Whether Ctrl-C was typed since the last look. Called from inside a long
/// command, when the main loop is not reading keys: the keys typed meanwhile
/// are read and dropped (a command typed ahead would run against a state the
/// user has not seen).
pub fn ctrl_c_pending() -> bool {
    let mut hit = false;
    while event::poll(std::time::Duration::ZERO).unwrap_or(false) {
        match event::read() {
            Ok(Event::Key(k))
                if k.kind != KeyEventKind::Release
                    && k.code == crossterm::event::KeyCode::Char('c')
                    && k.modifiers
                        .contains(crossterm::event::KeyModifiers::CONTROL) =>
            {
                hit = true
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    hit
}

/// Puts the terminal back; safe to call more than once.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Restores the terminal when dropped (early returns, errors).
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Runs the UI until the user quits.
pub fn run(session: Session) -> io::Result<()> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    enable_raw_mode()?;
    let _guard = Guard;
    execute!(io::stdout(), EnterAlternateScreen)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let mut app = App::new(session);
    while !app.quit {
        terminal.draw(|f| render::draw(f, &app))?;
        match event::read()? {
            Event::Key(k) if k.kind != KeyEventKind::Release => app.key(k),
            _ => {}
        }
    }
    Ok(())
}
