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
    let mut t = Terminal::new(TestBackend::new(W, H)).unwrap_or_else(|e| panic!("{e}"));
    t.draw(|f| draw(f, a)).unwrap_or_else(|e| panic!("{e}"));
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..H {
        let mut line = String::new();
        for x in 0..W {
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
