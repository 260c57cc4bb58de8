//! UI state and key handling. Every key either edits UI state (focus, filters,
//! overlays) or becomes a [`Command`] run through the same executor the REPL uses.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use emu::debug::{execute, parse, Command, Completions, Reply, Session};

/// Rows of the message area under the panes: longer replies go to the overlay
/// (a reply of exactly this many lines plus one would lose its last line).
pub const MESSAGE_ROWS: usize = 2;

/// Event kinds the `e` key cycles through (`None`: every kind).
pub const EVENT_FILTERS: &[Option<&str>] = &[
    None,
    Some("stale-use"),
    Some("tlb-fill"),
    Some("paging-write"),
    Some("became-stale"),
    Some("invalidation"),
    Some("ipi-sent"),
    Some("cr-write"),
    Some("retired"),
];

/// Keys, as the help overlay lists them.
pub const KEYS: &[(&str, &str)] = &[
    (
        "s",
        "step the focused core (a count typed first repeats: 5s)",
    ),
    ("n", "one step along the schedule (5n: five)"),
    (
        "c",
        "continue along the schedule to a breakpoint or the end",
    ),
    ("b", "step back (5b: five)"),
    ("B", "reverse-continue to the previous breakpoint hit"),
    ("Tab / ]", "focus the next core"),
    ("Shift-Tab / [", "focus the previous core"),
    ("i", "toggle AT&T / Intel disassembly"),
    ("w", "page walk of a VA (opens `:walk `)"),
    ("e", "cycle the event-log kind filter"),
    ("E", "event log: all cores / focused core only"),
    ("j / k", "scroll the TLB pane"),
    (
        ":",
        "command line: Enter runs, Esc cancels, Up/Down history, Tab completes, Left/Right/Home/End move, Ctrl-U/Ctrl-W delete",
    ),
    ("?", "this help (j/k/Space scroll, any other key closes)"),
    (
        "q / Ctrl-C",
        "quit (asks first when the interleaving is not saved)",
    ),
];

/// What keys go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Single-key commands.
    Normal,
    /// Typing a `:` command.
    Command,
    /// Asking whether to overwrite a file (y/n).
    Confirm(String),
    /// Asking whether to quit without saving the interleaving (y/q/Ctrl-C).
    ConfirmQuit,
}

/// The UI's state.
pub struct App {
    /// The debugging session.
    pub session: Session,
    /// Key mode.
    pub mode: Mode,
    /// Command line being typed.
    pub input: String,
    /// Cursor in `input`, in characters.
    pub cursor: usize,
    /// Tab completion's names.
    completions: Completions,
    /// Commands typed before (for Up/Down).
    pub history: Vec<String>,
    history_at: Option<usize>,
    /// The last reply's text, shown in the message area.
    pub message: String,
    /// The last reply was an error.
    pub message_error: bool,
    /// Long output (help, `stale`, `tlb`) shown over the panes until a key.
    pub overlay: Option<(String, String)>,
    /// First overlay line shown (j/k, PageUp/PageDown scroll).
    pub overlay_scroll: u16,
    /// A count typed before a key.
    pub count: Option<u64>,
    /// Index into [`EVENT_FILTERS`].
    pub event_filter: usize,
    /// Only the focused core's events.
    pub event_focused_only: bool,
    /// First TLB row shown.
    pub tlb_scroll: usize,
    /// The user asked to leave.
    pub quit: bool,
}

impl App {
    /// A UI over a session.
    pub fn new(session: Session) -> Self {
        let completions = Completions::new(session.runner().symbols().keys());
        App {
            session,
            mode: Mode::Normal,
            input: String::new(),
            cursor: 0,
            completions,
            history: Vec::new(),
            history_at: None,
            message: "? for help, : for commands".into(),
            message_error: false,
            overlay: None,
            overlay_scroll: 0,
            count: None,
            event_filter: 0,
            event_focused_only: false,
            tlb_scroll: 0,
            quit: false,
        }
    }

    /// Runs a command line as typed after `:`.
    pub fn run_line(&mut self, line: &str) {
        match parse(line) {
            Ok(None) => {}
            Ok(Some(c)) => self.run(&c),
            Err(e) => {
                self.message = e.to_string();
                self.message_error = true;
            }
        }
    }

    /// Runs a command and shows its reply (long replies in the overlay).
    pub fn run(&mut self, c: &Command) {
        let r: Reply = execute(&mut self.session, c);
        if r.quit {
            self.quit = true;
            return;
        }
        if r.confirm_quit {
            self.message = format!("{} — y or q leaves, any other key stays", r.text);
            self.message_error = true;
            self.mode = Mode::ConfirmQuit;
            return;
        }
        if let Some(p) = r.confirm_overwrite.clone() {
            self.message = format!("{p} exists; overwrite it? (y/n)");
            self.message_error = true;
            self.mode = Mode::Confirm(p);
            return;
        }
        // The walk pane shows a walk; anything else longer than the message
        // area goes to the overlay.
        let long = r.text.lines().count() > MESSAGE_ROWS && !matches!(c, Command::Walk(_));
        if long {
            let title = format!("{c:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("output")
                .to_lowercase();
            self.overlay = Some((title, r.text));
            self.message.clear();
        } else if matches!(c, Command::Walk(_)) && !r.error {
            // The page-walk pane shows it.
            self.message = r.text.lines().next().unwrap_or_default().to_string();
        } else {
            self.message = r.text;
        }
        self.message_error = r.error;
    }

    fn take_count(&mut self) -> u64 {
        self.count.take().unwrap_or(1).max(1)
    }

    /// One key.
    pub fn key(&mut self, k: KeyEvent) {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            if self.mode == Mode::ConfirmQuit {
                self.quit = true;
            } else {
                self.mode = Mode::Normal;
                self.run(&Command::Quit { force: false });
            }
            return;
        }
        if self.overlay.is_some() {
            match k.code {
                KeyCode::Char('j') | KeyCode::Down => self.overlay_scroll += 1,
                KeyCode::PageDown | KeyCode::Char(' ') => self.overlay_scroll += 10,
                KeyCode::Char('k') | KeyCode::Up => {
                    self.overlay_scroll = self.overlay_scroll.saturating_sub(1)
                }
                KeyCode::PageUp => self.overlay_scroll = self.overlay_scroll.saturating_sub(10),
                _ => {
                    self.overlay = None;
                    self.overlay_scroll = 0;
                }
            }
            return;
        }
        match self.mode.clone() {
            Mode::Confirm(path) => {
                self.mode = Mode::Normal;
                if k.code == KeyCode::Char('y') || k.code == KeyCode::Char('Y') {
                    self.run(&Command::Save { path, force: true });
                } else {
                    self.message = "not saved".into();
                    self.message_error = false;
                }
            }
            Mode::ConfirmQuit => {
                self.mode = Mode::Normal;
                if matches!(k.code, KeyCode::Char('y' | 'Y' | 'q')) {
                    self.quit = true;
                } else {
                    self.message = "not quitting".into();
                    self.message_error = false;
                }
            }
            Mode::Command => self.command_key(k),
            Mode::Normal => self.normal_key(k),
        }
    }

    /// Byte offset of character `i` of the input.
    fn at(&self, i: usize) -> usize {
        self.input
            .char_indices()
            .nth(i)
            .map_or(self.input.len(), |(b, _)| b)
    }

    fn set_input(&mut self, text: String) {
        self.cursor = text.chars().count();
        self.input = text;
    }

    fn command_key(&mut self, k: KeyEvent) {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let len = self.input.chars().count();
        match k.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                self.set_input(String::new());
            }
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                let line = std::mem::take(&mut self.input);
                self.cursor = 0;
                if !line.trim().is_empty() {
                    self.history.push(line.clone());
                }
                self.history_at = None;
                self.run_line(&line);
            }
            // Backspace on an empty line leaves command mode, as in vi.
            KeyCode::Backspace if self.input.is_empty() => self.mode = Mode::Normal,
            KeyCode::Backspace if self.cursor > 0 => {
                let b = self.at(self.cursor - 1);
                self.input.remove(b);
                self.cursor -= 1;
            }
            KeyCode::Delete if self.cursor < len => {
                let b = self.at(self.cursor);
                self.input.remove(b);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(len),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = len,
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = len,
            KeyCode::Char('b') if ctrl => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Char('f') if ctrl => self.cursor = (self.cursor + 1).min(len),
            // Ctrl-U: delete to the start of the line; Ctrl-K: to its end.
            KeyCode::Char('u') if ctrl => {
                let b = self.at(self.cursor);
                self.input.replace_range(..b, "");
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => {
                let b = self.at(self.cursor);
                self.input.truncate(b);
            }
            // Ctrl-W: delete the word before the cursor.
            KeyCode::Char('w') if ctrl => {
                let end = self.at(self.cursor);
                let head = self.input[..end].trim_end();
                let start = head.rfind(' ').map_or(0, |i| i + 1);
                self.input.replace_range(start..end, "");
                self.cursor = self.input[..start].chars().count();
            }
            KeyCode::Tab => {
                let end = self.at(self.cursor);
                let (start, found) = self.completions.complete(&self.input[..end]);
                match found.as_slice() {
                    [] => {}
                    [one] => {
                        let word = format!("{one} ");
                        self.input.replace_range(start..end, &word);
                        self.cursor = self.input[..start + word.len()].chars().count();
                    }
                    many => {
                        // Complete the common prefix and list the choices.
                        let common = many.iter().skip(1).fold(many[0].clone(), |acc, w| {
                            acc.chars()
                                .zip(w.chars())
                                .take_while(|(a, b)| a == b)
                                .map(|(a, _)| a)
                                .collect()
                        });
                        self.input.replace_range(start..end, &common);
                        self.cursor = self.input[..start + common.len()].chars().count();
                        let shown: Vec<&str> = many.iter().take(20).map(String::as_str).collect();
                        self.message = format!(
                            "{}{}",
                            shown.join(" "),
                            if many.len() > 20 { " ..." } else { "" }
                        );
                        self.message_error = false;
                    }
                }
            }
            KeyCode::Up => {
                let i = match self.history_at {
                    None => self.history.len().checked_sub(1),
                    Some(i) => Some(i.saturating_sub(1)),
                };
                if let Some(i) = i {
                    self.history_at = Some(i);
                    self.set_input(self.history[i].clone());
                }
            }
            KeyCode::Down => match self.history_at {
                Some(i) if i + 1 < self.history.len() => {
                    self.history_at = Some(i + 1);
                    self.set_input(self.history[i + 1].clone());
                }
                _ => {
                    self.history_at = None;
                    self.set_input(String::new());
                }
            },
            KeyCode::Char(c) if !ctrl => {
                let b = self.at(self.cursor);
                self.input.insert(b, c);
                self.cursor += 1;
            }
            _ => {}
        }
    }

    fn normal_key(&mut self, k: KeyEvent) {
        let cores = self.session.runner().machine().num_cores();
        match k.code {
            KeyCode::Char(d @ '0'..='9') => {
                let v = self.count.unwrap_or(0).saturating_mul(10) + u64::from(d as u8 - b'0');
                self.count = Some(v);
                self.message = format!("count {v}");
                self.message_error = false;
                return;
            }
            KeyCode::Char('s') => {
                let n = self.take_count();
                self.run(&Command::Step {
                    core: None,
                    count: n,
                });
            }
            KeyCode::Char('n') => {
                let n = self.take_count();
                self.run(&Command::Next(n));
            }
            KeyCode::Char('c') => self.run(&Command::Continue),
            KeyCode::Char('b') => {
                let n = self.take_count();
                self.run(&Command::ReverseStep(n));
            }
            KeyCode::Char('B') => self.run(&Command::ReverseContinue),
            KeyCode::Tab | KeyCode::Char(']') => {
                let f = (self.session.focus() + 1) % cores;
                self.run(&Command::Focus(f));
            }
            KeyCode::BackTab | KeyCode::Char('[') => {
                let f = (self.session.focus() + cores - 1) % cores;
                self.run(&Command::Focus(f));
            }
            KeyCode::Char('i') => self.run(&Command::Syntax(None)),
            KeyCode::Char('w') => {
                self.mode = Mode::Command;
                self.set_input("walk ".into());
            }
            KeyCode::Char('e') => {
                self.event_filter = (self.event_filter + 1) % EVENT_FILTERS.len();
            }
            KeyCode::Char('E') => self.event_focused_only = !self.event_focused_only,
            KeyCode::Char('j') | KeyCode::Down => self.tlb_scroll += 1,
            KeyCode::Char('k') | KeyCode::Up => self.tlb_scroll = self.tlb_scroll.saturating_sub(1),
            KeyCode::Char(':') => {
                self.mode = Mode::Command;
                self.set_input(String::new());
            }
            KeyCode::Char('?') => {
                let mut t = String::from("keys\n");
                for (key, what) in KEYS {
                    t += &format!("  {key:<14} {what}\n");
                }
                t += "\ncommands (after :)\n";
                for (u, d) in emu::debug::HELP {
                    t += &format!("  {u:<30} {d}\n");
                }
                self.overlay = Some(("help".into(), t.trim_end().to_string()));
            }
            KeyCode::Char('q') => self.run(&Command::Quit { force: false }),
            KeyCode::Esc => {}
            _ => {}
        }
        self.count = None;
    }
}
