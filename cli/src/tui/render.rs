//! Drawing one frame from the [`App`] state. Pure: the same state draws the same
//! frame (no clock, no terminal queries), which is what the snapshot tests rely on.

use super::app::{App, Mode, EVENT_FILTERS};
use emu::debug::{
    core_label, disassemble_around, filtered_events, flags_text, format_entry, format_event,
    format_walk, stale_reason, status_line, who_text, Syntax, REG_NAMES,
};

/// Below this width the registers go in one narrow column, so the disassembly
/// keeps at least [`MIN_DISAS`] columns (an 80-column terminal included).
const WIDE: u16 = 120;
/// Columns the disassembly pane keeps on a narrow terminal.
const MIN_DISAS: u16 = 40;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

fn block(title: String) -> Block<'static> {
    Block::default().borders(Borders::ALL).title(title)
}

/// Draws the whole UI.
pub fn draw(f: &mut Frame, app: &App) {
    let [status, top, middle, events, message, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(36),
        Constraint::Percentage(36),
        Constraint::Min(4),
        Constraint::Length(2),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let wide = f.area().width >= WIDE;
    let [dis, regs, cores] = if wide {
        Layout::horizontal([
            Constraint::Percentage(40),
            Constraint::Length(46),
            Constraint::Min(20),
        ])
        .areas(top)
    } else {
        Layout::horizontal([
            Constraint::Min(MIN_DISAS),
            Constraint::Length(22),
            Constraint::Length(18),
        ])
        .areas(top)
    };
    let [tlb, walk] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(middle);

    f.render_widget(
        Paragraph::new(status_line(&app.session))
            .style(Style::default().add_modifier(Modifier::REVERSED)),
        status,
    );
    draw_disassembly(f, app, dis, wide);
    if wide {
        draw_registers(f, app, regs);
    } else {
        draw_registers_narrow(f, app, regs);
    }
    draw_cores(f, app, cores, wide);
    draw_tlb(f, app, tlb);
    draw_walk(f, app, walk);
    draw_events(f, app, events);
    let style = if app.message_error {
        Style::default().fg(Color::Red)
    } else {
        Style::default()
    };
    f.render_widget(
        Paragraph::new(app.message.clone())
            .style(style)
            .wrap(Wrap { trim: false }),
        message,
    );
    draw_input(f, app, input);
    if let Some((title, text)) = &app.overlay {
        draw_overlay(f, title, text, app.overlay_scroll);
    }
}

fn draw_disassembly(f: &mut Frame, app: &App, area: Rect, wide: bool) {
    let s = &app.session;
    let core = s.focus();
    let m = s.runner().machine();
    let rip = m.cores[core].cpu.state.rip;
    let rows = area.height.saturating_sub(2) as usize;
    let lines = disassemble_around(m, core, s.runner().labels(), rip, rows / 3, rows, s.syntax);
    let mut out: Vec<Line> = Vec::new();
    let mut base: Option<u64> = None;
    for l in lines {
        if l.label.is_some() {
            base = Some(l.addr);
        }
        if let Some(lb) = &l.label {
            out.push(Line::styled(
                format!("{lb}:"),
                Style::default().fg(Color::Cyan),
            ));
        }
        let here = l.addr == rip;
        // Narrow: the offset from the label line above, to leave room for the
        // instruction.
        let mark = if here { "=>" } else { "  " };
        let text = match base {
            Some(b) if !wide => format!("{mark}+{:<4x}{}", l.addr - b, l.text),
            _ => format!("{mark} {:016x}  {}", l.addr, l.text),
        };
        out.push(if here {
            Line::styled(
                text,
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            )
        } else {
            Line::raw(text)
        });
    }
    let syntax = match s.syntax {
        Syntax::Att => "AT&T",
        Syntax::Intel => "Intel",
    };
    f.render_widget(
        Paragraph::new(out).block(block(format!(" core {core} — disassembly ({syntax}) "))),
        area,
    );
}

/// How a value that changed in the last step stands out.
fn changed_style() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}

/// One register as the registers panes show it: its name, `*` when the last
/// step changed it, and its value in hex.
fn reg_cell(name: &str, v: u64, was: Option<u64>) -> Vec<Span<'static>> {
    let ch = was.is_some_and(|w| w != v);
    vec![
        Span::raw(format!("{name:>3}{}", if ch { '*' } else { ' ' })),
        Span::styled(
            format!("{v:016x}"),
            if ch {
                changed_style()
            } else {
                Style::default()
            },
        ),
    ]
}

fn draw_registers(f: &mut Frame, app: &App, area: Rect) {
    let s = &app.session;
    let core = s.focus();
    let st = &s.runner().machine().cores[core].cpu.state;
    let prev = s.before().get(core);
    let changed = changed_style();
    let mut lines: Vec<Line> = Vec::new();
    for i in 0..8 {
        let mut spans = reg_cell(REG_NAMES[i], st.gpr[i], prev.map(|p| p.gpr[i]));
        spans.push(Span::raw(" "));
        spans.extend(reg_cell(
            REG_NAMES[i + 8],
            st.gpr[i + 8],
            prev.map(|p| p.gpr[i + 8]),
        ));
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(reg_cell("rip", st.rip, prev.map(|p| p.rip))));
    let fl = prev.is_some_and(|p| p.rflags != st.rflags);
    lines.push(Line::from(vec![
        Span::raw(format!("flg{}", if fl { '*' } else { ' ' })),
        Span::styled(
            format!("{:#x} {}", st.rflags, flags_text(st.rflags)),
            if fl { changed } else { Style::default() },
        ),
    ]));
    let pcide = st.cr4 & mmu::cr4::PCIDE != 0;
    lines.push(Line::from(reg_cell("cr3", st.cr3, prev.map(|p| p.cr3))));
    lines.push(Line::raw(format!(
        "    PCID {:#x}{} CPL {}{}",
        if pcide { st.cr3 & 0xfff } else { 0 },
        if pcide { "" } else { " (PCIDE=0)" },
        st.cpl(),
        if st.halted { " halted" } else { "" }
    )));
    f.render_widget(
        Paragraph::new(lines).block(block(format!(" core {core} — registers (* changed) "))),
        area,
    );
}

/// One register a line (RIP and CR3 first), for a narrow terminal.
fn draw_registers_narrow(f: &mut Frame, app: &App, area: Rect) {
    let s = &app.session;
    let core = s.focus();
    let st = &s.runner().machine().cores[core].cpu.state;
    let prev = s.before().get(core);
    let mut rows: Vec<(&str, u64, Option<u64>)> = vec![
        ("rip", st.rip, prev.map(|p| p.rip)),
        ("cr3", st.cr3, prev.map(|p| p.cr3)),
    ];
    for (i, n) in REG_NAMES.iter().enumerate() {
        rows.push((n, st.gpr[i], prev.map(|p| p.gpr[i])));
    }
    let lines: Vec<Line> = rows
        .into_iter()
        .map(|(n, v, was)| Line::from(reg_cell(n, v, was)))
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(block(format!(" core {core} regs "))),
        area,
    );
}

fn draw_cores(f: &mut Frame, app: &App, area: Rect, wide: bool) {
    let s = &app.session;
    let r = s.runner();
    let m = r.machine();
    let mut lines = Vec::new();
    for c in 0..m.num_cores() {
        let st = &m.cores[c].cpu.state;
        let status = match &m.cores[c].stopped {
            Some(_) => "stopped",
            None if st.halted => "halted",
            None => "running",
        };
        // A halted core is named by its HLT, not by the code after it.
        let label = core_label(r, c);
        let mark = if c == s.focus() { '*' } else { ' ' };
        // Narrow: the label (or RIP) and the status only.
        let line = if wide {
            format!(
                "{mark}{c} {:#x} {label} {status} ({})",
                st.rip, m.cores[c].retired
            )
        } else if label.is_empty() {
            format!("{mark}{c} {:x} {status}", st.rip)
        } else {
            format!("{mark}{c} {label} {status}")
        };
        lines.push(if c == s.focus() {
            Line::styled(line, Style::default().add_modifier(Modifier::BOLD))
        } else {
            Line::raw(line)
        });
    }
    let bps = s.breakpoints();
    if !bps.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::raw("breakpoints:"));
        for b in bps {
            lines.push(Line::raw(format!(" {} {}", b.id, b.kind)));
        }
    }
    f.render_widget(
        Paragraph::new(lines).block(block(if wide {
            " cores (rip label status retired) ".into()
        } else {
            " cores ".into()
        })),
        area,
    );
}

fn draw_tlb(f: &mut Frame, app: &App, area: Rect) {
    let s = &app.session;
    let core = s.focus();
    let m = s.runner().machine();
    let d = m.cores[core].mmu.dump(&m.tracker);
    let mut lines = vec![Line::styled(
        "cache   pcid                 va -> pa/next         size rts G D origin",
        Style::default().add_modifier(Modifier::UNDERLINED),
    )];
    let mut rows: Vec<Line> = Vec::new();
    for e in d.tlb.iter().chain(d.psc.iter()) {
        if e.stale {
            rows.push(Line::styled(
                format_entry(e),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
            if let Some(w) = stale_reason(e, s.events()) {
                rows.push(Line::styled(
                    format!("   stale: {w}"),
                    Style::default().fg(Color::Red),
                ));
            }
        } else {
            rows.push(Line::raw(format_entry(e)));
        }
    }
    if rows.is_empty() {
        rows.push(Line::raw("(empty)"));
    }
    let skip = app.tlb_scroll.min(rows.len().saturating_sub(1));
    lines.extend(rows.into_iter().skip(skip));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(format!(
                " core {core} — TLB {} + PSC {} (rts: w u x) ",
                d.tlb.len(),
                d.psc.len()
            ))),
        area,
    );
}

fn draw_walk(f: &mut Frame, app: &App, area: Rect) {
    let s = &app.session;
    let core = s.focus();
    let (title, lines): (String, Vec<Line>) = match s.walk_va {
        None => (
            " page walk ".into(),
            vec![Line::raw("no address chosen: press w or type :walk VA")],
        ),
        Some(va) => {
            let m = s.runner().machine();
            let regs = m.paging_regs(core);
            let w = m.cores[core]
                .mmu
                .walk_view(&m.mem, &m.tracker, &regs, mmu::VirtAddr(va));
            // Under the walk: which core caches this VA (`who`).
            (
                format!(" page walk of {va:#x} — core {core}; who caches it "),
                format_walk(&w)
                    .into_iter()
                    .skip(1)
                    .chain(who_text(s, va).into_iter().skip(1))
                    .map(|l| {
                        if l.contains("DIFFERS") || l.contains("STALE") {
                            Line::styled(l, Style::default().fg(Color::Red))
                        } else {
                            Line::raw(l)
                        }
                    })
                    .collect(),
            )
        }
    };
    f.render_widget(
        Paragraph::new(lines)
            .block(block(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_events(f: &mut Frame, app: &App, area: Rect) {
    let s = &app.session;
    let kind = EVENT_FILTERS.get(app.event_filter).copied().flatten();
    let core = app.event_focused_only.then_some(s.focus());
    let n = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = filtered_events(s, kind, core, n)
        .into_iter()
        .map(|e| {
            let t = format_event(&e);
            if e.kind.name() == "stale-use" {
                Line::styled(t, Style::default().fg(Color::Red))
            } else {
                Line::raw(t)
            }
        })
        .collect();
    let title = format!(
        " events — kind: {} (e), cores: {} (E) ",
        kind.unwrap_or("all"),
        match core {
            Some(c) => format!("core {c}"),
            None => "all".into(),
        }
    );
    f.render_widget(Paragraph::new(lines).block(block(title)), area);
}

fn draw_input(f: &mut Frame, app: &App, area: Rect) {
    match &app.mode {
        Mode::Command => {
            // Scroll horizontally so the cursor stays in view.
            let text = format!(":{}", app.input);
            let at = app.cursor + 1;
            let w = area.width.max(1) as usize;
            let skip = (at + 1).saturating_sub(w);
            let shown: String = text.chars().skip(skip).collect();
            let x = area.x + ((at - skip) as u16).min(area.width.saturating_sub(1));
            f.render_widget(Paragraph::new(shown), area);
            f.set_cursor_position((x, area.y));
        }
        Mode::ConfirmQuit => f.render_widget(
            Paragraph::new("quit without saving? y/q leaves, any other key stays")
                .style(Style::default().fg(Color::Red)),
            area,
        ),
        Mode::Confirm(p) => f.render_widget(
            Paragraph::new(format!("overwrite {p}? y/n")).style(Style::default().fg(Color::Red)),
            area,
        ),
        Mode::Normal => {
            let count = app.count.map(|c| format!("[{c}] ")).unwrap_or_default();
            f.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled(count, Style::default().fg(Color::Yellow)),
                    Span::raw(
                        "s step  n next  c continue  b back  B rev-continue  Tab core  i syntax  w walk  : command  ? help  q quit",
                    ),
                ])),
                area,
            );
        }
    }
}

fn draw_overlay(f: &mut Frame, title: &str, text: &str, scroll: u16) {
    let a = f.area();
    let w = a.width.saturating_sub(a.width / 8).max(10).min(a.width);
    let h = a.height.saturating_sub(a.height / 8).max(5).min(a.height);
    let r = Rect {
        x: a.x + (a.width - w) / 2,
        y: a.y + (a.height - h) / 2,
        width: w,
        height: h,
    };
    // Stop scrolling once the last line is in view (wrapped lines aside).
    let lines = text.lines().count() as u16;
    let scroll = scroll.min(lines.saturating_sub(h.saturating_sub(2)));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text.to_string())
            .block(block(format!(
                " {title} — j/k scroll, any other key closes "
            )))
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        r,
    );
}
