//! Snapshot tests of whole frames drawn on ratatui's `TestBackend`: the TLB pane
//! after a fill, after INVLPG and with a stale entry; the page-walk pane; the
//! state after a reverse step; the help overlay. (They live here rather than in
//! `cli/tests/` because `tlbemu` is a binary crate: integration tests cannot reach
//! its modules.)

use super::app::App;
use super::render::draw;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use emu::debug::Session;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::PathBuf;

const W: u16 = 160;
const H: u16 = 48;

fn app(name: &str) -> App {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    match Session::open(&p) {
        Ok(s) => App::new(s),
        Err(d) => panic!("{name}: {d}"),
    }
}

fn keys(a: &mut App, ks: &str) {
    for c in ks.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\t' => KeyCode::Tab,
            c => KeyCode::Char(c),
        };
        a.key(KeyEvent::new(code, KeyModifiers::NONE));
    }
}

/// The frame as text, one line per row, trailing blanks trimmed.
fn frame(a: &App) -> String {
    frame_at(a, W, H)
}

/// The frame on a `w` x `h` terminal.
fn frame_at(a: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| panic!("{e}"));
    t.draw(|f| draw(f, a)).unwrap_or_else(|e| panic!("{e}"));
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn tlb_after_a_fill() {
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, "s");
    insta::assert_snapshot!("tlb_after_fill", frame(&a));
}

#[test]
fn tlb_after_invlpg() {
    let mut a = app("missing-invlpg-fixed.ron");
    // Through `invlpg 0x400000` (the fifth instruction).
    keys(&mut a, "5s");
    assert_eq!(
        a.session.runner().machine().cores[0].cpu.state.rip,
        a.session.runner().symbols()["changed"]
    );
    insta::assert_snapshot!("tlb_after_invlpg", frame(&a));
}

#[test]
fn tlb_with_a_stale_entry_and_the_page_walk() {
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, ":break stale\nc:walk 0x400000\n");
    assert_eq!(a.session.runner().stale_uses().len(), 1);
    insta::assert_snapshot!("stale_entry_and_walk", frame(&a));
}

#[test]
fn after_a_reverse_step() {
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, "5sb");
    assert_eq!(a.session.pos(), 4);
    insta::assert_snapshot!("after_reverse_step", frame(&a));
}

#[test]
fn multi_core_focus_and_event_filter() {
    let mut a = app("dragonfly-2017-swtch-pmactive-buggy.ron");
    keys(&mut a, ":break stale\nc\tee");
    assert_eq!(a.session.focus(), 1);
    insta::assert_snapshot!("dragonfly_core1_tlb_fill_events", frame(&a));
}

#[test]
fn help_overlay_and_bad_command() {
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, ":step core 9\n");
    assert!(a.message_error);
    insta::assert_snapshot!("bad_command", frame(&a));
    keys(&mut a, "?");
    insta::assert_snapshot!("help_overlay", frame(&a));
    keys(&mut a, "    ");
    insta::assert_snapshot!("help_overlay_scrolled", frame(&a));
    keys(&mut a, "x");
    assert!(a.overlay.is_none());
}

#[test]
fn overwrite_asks_first() {
    let dir = std::env::temp_dir().join(format!("tlbemu-tui-save-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("s.ron");
    let _ = std::fs::write(&p, "keep me");
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, &format!("s:save {}\n", p.display()));
    assert!(matches!(a.mode, super::app::Mode::Confirm(_)));
    keys(&mut a, "n");
    assert_eq!(std::fs::read_to_string(&p).ok().as_deref(), Some("keep me"));
    keys(&mut a, &format!(":save {}\ny", p.display()));
    let saved = std::fs::read_to_string(&p).unwrap_or_default();
    assert!(saved.contains("missing-invlpg-session"), "{saved}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_quits() {
    let mut a = app("missing-invlpg.ron");
    a.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(a.quit);
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut a = app("dragonfly-2017-swtch-pmactive-buggy.ron");
    keys(&mut a, "5s:walk 0x400000\n?");
    for (w, h) in [(1, 1), (8, 3), (20, 6), (40, 10)] {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| panic!("{e}"));
        t.draw(|f| draw(f, &a)).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn ctrl(a: &mut App, c: char) {
    a.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
}

fn code(a: &mut App, k: KeyCode) {
    a.key(KeyEvent::new(k, KeyModifiers::NONE));
}

#[test]
fn three_line_output_keeps_its_last_line() {
    let mut a = app("dragonfly-2017-swtch-pmactive-buggy.ron");
    keys(&mut a, ":cores\n");
    let f = frame(&a);
    for c in 0..3 {
        assert!(
            f.contains(&format!("core {c}: rip")),
            "core {c} missing:\n{f}"
        );
    }
}

#[test]
fn at_80x24_the_disassembly_keeps_40_columns_and_the_counters_show() {
    let mut a = app("dragonfly-2017-swtch-pmactive-buggy.ron");
    keys(&mut a, ":break stale\nc");
    let f = frame_at(&a, 80, 24);
    insta::assert_snapshot!("stale_80x24", f);
    let status = f.lines().next().unwrap_or_default();
    assert!(status.contains("violations 1"), "{status}");
    // The disassembly pane's right border is at column 40 or further.
    let row = f.lines().nth(1).unwrap_or_default();
    let border = row.chars().skip(1).position(|c| c == '┐').map(|i| i + 2);
    assert!(border.is_some_and(|b| b >= 40), "{row}");
    insta::assert_snapshot!("stale_200x50", frame_at(&a, 200, 50));
}

#[test]
fn command_line_moves_the_cursor_and_ctrl_u_deletes_before_it() {
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, ":sep 2");
    for _ in 0..4 {
        code(&mut a, KeyCode::Left);
    }
    keys(&mut a, "t");
    assert_eq!(a.input, "step 2");
    code(&mut a, KeyCode::End);
    ctrl(&mut a, 'w');
    assert_eq!(a.input, "step ");
    keys(&mut a, "3");
    code(&mut a, KeyCode::Home);
    code(&mut a, KeyCode::Right);
    ctrl(&mut a, 'u');
    assert_eq!(a.input, "tep 3");
    assert_eq!(a.cursor, 0);
    ctrl(&mut a, 'u');
    keys(&mut a, "who 0x4");
    ctrl(&mut a, 'a');
    ctrl(&mut a, 'k');
    assert_eq!(a.input, "");
    // Tab completes a command (as far as it is unique, listing the choices),
    // then a label.
    keys(&mut a, "brea");
    code(&mut a, KeyCode::Tab);
    assert_eq!(a.input, "break");
    assert_eq!(a.message, "break breaks");
    keys(&mut a, " chan");
    code(&mut a, KeyCode::Tab);
    assert_eq!(a.input, "break changed ");
    code(&mut a, KeyCode::Enter);
    assert_eq!(a.session.breakpoints().len(), 1);
}

#[test]
fn quitting_with_an_unsaved_interleaving_asks() {
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, "sq");
    assert!(!a.quit);
    assert!(a.message.contains("not saved"), "{}", a.message);
    keys(&mut a, "x");
    assert!(!a.quit);
    ctrl(&mut a, 'c');
    assert!(!a.quit);
    ctrl(&mut a, 'c');
    assert!(a.quit);
    let mut a = app("missing-invlpg.ron");
    keys(&mut a, "sqq");
    assert!(a.quit);
}
