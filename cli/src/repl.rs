//! The line-mode debugger: one command per line, textual answers on stdout.
//! Interactive use gets a line editor (rustyline: cursor movement, history,
//! Tab completion of commands, labels and symbols); scripted use (stdin not a
//! terminal) reads plain lines and echoes each command so the transcript reads
//! in order. In both, an empty line repeats the last stepping command.

use emu::debug::{execute, parse, status_line, Command, Completions, Reply, Session};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use std::io::{BufRead, IsTerminal, Write};

/// Where the next line comes from.
enum Input {
    /// A terminal: the line editor.
    Editor(Box<Editor<Complete, DefaultHistory>>),
    /// A pipe or file.
    Lines(std::io::StdinLock<'static>),
}

/// A line, the end of input, or Ctrl-C at the prompt.
enum Line {
    Text(String),
    End,
    Interrupted,
}

/// rustyline's hook into the shared completion.
struct Complete(Completions);

impl Completer for Complete {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.0.complete(&line[..pos.min(line.len())]))
    }
}

impl Hinter for Complete {
    type Hint = String;
}
impl Highlighter for Complete {}
impl Validator for Complete {}
impl Helper for Complete {}

impl Input {
    fn read(&mut self, prompt: &str) -> Line {
        match self {
            Input::Editor(ed) => match ed.readline(prompt) {
                Ok(l) => {
                    if !l.trim().is_empty() {
                        let _ = ed.add_history_entry(l.as_str());
                    }
                    Line::Text(l)
                }
                Err(ReadlineError::Interrupted) => Line::Interrupted,
                Err(_) => Line::End,
            },
            Input::Lines(i) => {
                let mut l = String::new();
                match i.read_line(&mut l) {
                    Ok(0) | Err(_) => Line::End,
                    Ok(_) => Line::Text(l),
                }
            }
        }
    }
}

/// Runs the REPL until `quit` or end of input. Returns true if every command
/// succeeded (the exit code, see docs/exit-codes.md).
pub fn run(session: &mut Session) -> bool {
    let interactive = std::io::stdin().is_terminal();
    let completions = Completions::new(session.runner().symbols().keys());
    let mut input = if interactive {
        match Editor::<Complete, DefaultHistory>::new() {
            Ok(mut ed) => {
                ed.set_helper(Some(Complete(completions)));
                Input::Editor(Box::new(ed))
            }
            Err(_) => Input::Lines(std::io::stdin().lock()),
        }
    } else {
        Input::Lines(std::io::stdin().lock())
    };
    let mut out = std::io::stdout().lock();
    let name = session.runner().scenario().name.clone();
    let _ = writeln!(
        out,
        "tlbemu debug: {name} ({} core(s)); `help` lists the commands",
        session.runner().machine().num_cores()
    );
    let _ = writeln!(out, "{}", status_line(session));
    let mut all_ok = true;
    let mut last: Option<Command> = None;
    // Set after a warning about an unsaved interleaving: a second `quit` or
    // Ctrl-C leaves.
    let mut warned = false;
    loop {
        let _ = out.flush();
        let text = match input.read("(tlbemu) ") {
            Line::Text(t) => t,
            Line::End => break,
            Line::Interrupted => "quit".to_string(),
        };
        let text = text.trim();
        if !interactive && !text.is_empty() {
            let _ = writeln!(out, "(tlbemu) {text}");
        }
        let cmd = match parse(text) {
            Ok(None) if text.is_empty() => match &last {
                Some(c) => c.clone(),
                None => continue,
            },
            Ok(None) => continue,
            Ok(Some(c)) => c,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                all_ok = false;
                continue;
            }
        };
        if cmd.repeats() {
            last = Some(cmd.clone());
        }
        let cmd = match cmd {
            Command::Quit { force: false } if warned => Command::Quit { force: true },
            c => c,
        };
        let mut reply = execute(session, &cmd);
        warned = reply.confirm_quit;
        if let Some(path) = reply.confirm_overwrite.take() {
            if interactive {
                match input.read(&format!("{path} exists; overwrite it? [y/N] ")) {
                    Line::Text(a) if a.trim().eq_ignore_ascii_case("y") => {
                        reply = execute(session, &Command::Save { path, force: true });
                    }
                    _ => {
                        let _ = writeln!(out, "not saved");
                        continue;
                    }
                }
            }
        }
        if show(&mut out, &reply, warned) {
            all_ok = false;
        }
        if reply.quit {
            break;
        }
    }
    all_ok
}

/// Prints a reply; returns true if it was an error. A quit warning is not a
/// failed command: it asks.
fn show(out: &mut impl Write, reply: &Reply, asking_quit: bool) -> bool {
    if asking_quit {
        let _ = writeln!(out, "{} (quit again to leave)", reply.text);
        return false;
    }
    if reply.error {
        let _ = writeln!(out, "error: {}", reply.text);
        return true;
    }
    if !reply.text.is_empty() {
        let _ = writeln!(out, "{}", reply.text);
    }
    false
}
