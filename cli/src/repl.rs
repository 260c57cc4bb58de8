//! The line-mode debugger: one command per line from stdin, textual answers on
//! stdout. Interactive use gets a prompt; scripted use (stdin not a terminal)
//! echoes each command so the transcript reads in order.

use emu::debug::{execute, parse, status_line, Command, Session};
use std::io::{BufRead, IsTerminal, Write};

/// Runs the REPL until `quit` or end of input. Returns true if every command
/// succeeded.
pub fn run(session: &mut Session) -> bool {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut out = std::io::stdout().lock();
    let mut input = stdin.lock();
    let name = session.runner().scenario().name.clone();
    let _ = writeln!(
        out,
        "tlbemu debug: {name} ({} core(s)); `help` lists the commands",
        session.runner().machine().num_cores()
    );
    let _ = writeln!(out, "{}", status_line(session));
    let mut all_ok = true;
    let mut line = String::new();
    loop {
        if interactive {
            let _ = write!(out, "(tlbemu) ");
            let _ = out.flush();
        }
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(out, "error: cannot read input: {e}");
                all_ok = false;
                break;
            }
        }
        let text = line.trim();
        if !interactive && !text.is_empty() {
            let _ = writeln!(out, "(tlbemu) {text}");
        }
        let cmd = match parse(text) {
            Ok(None) => continue,
            Ok(Some(c)) => c,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                all_ok = false;
                continue;
            }
        };
        let mut reply = execute(session, &cmd);
        if let Some(path) = reply.confirm_overwrite.take() {
            if interactive {
                let _ = write!(out, "{path} exists; overwrite it? [y/N] ");
                let _ = out.flush();
                let mut answer = String::new();
                let _ = input.read_line(&mut answer);
                if answer.trim().eq_ignore_ascii_case("y") {
                    reply = execute(session, &Command::Save { path, force: true });
                } else {
                    let _ = writeln!(out, "not saved");
                    continue;
                }
            }
        }
        if reply.error {
            all_ok = false;
            let _ = writeln!(out, "error: {}", reply.text);
        } else if !reply.text.is_empty() {
            let _ = writeln!(out, "{}", reply.text);
        }
        if reply.quit {
            break;
        }
    }
    all_ok
}
