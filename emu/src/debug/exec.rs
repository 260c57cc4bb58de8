//! Running a [`Command`] on a [`Session`]: the textual answer both front ends
//! show (the REPL prints it; the TUI puts it in its message line and panes).

use super::command::{BreakSpec, Command, PrintFmt, HELP};
use super::save::{saved_scenario, to_ron, write_new, SaveError};
use super::session::{core_status, BreakKind, Cond, Operand, Session, Stop, Syntax, Unit};
use super::view;
use crate::scenario::schema::Value;
use crate::scenario::{resolve, EVENT_KINDS};
use std::fmt::Write as _;
use std::path::Path;

/// What a command produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Text for the user (may span lines).
    pub text: String,
    /// The command failed (bad argument, nothing to do).
    pub error: bool,
    /// The user asked to leave.
    pub quit: bool,
    /// `save` found an existing file: ask, then run `save! PATH`.
    pub confirm_overwrite: Option<String>,
    /// `quit` found an unsaved interleaving: ask, then run `quit!`.
    pub confirm_quit: bool,
}

impl Reply {
    fn ok(text: String) -> Self {
        Reply {
            text,
            ..Reply::default()
        }
    }
    fn err(text: String) -> Self {
        Reply {
            text,
            error: true,
            ..Reply::default()
        }
    }
}

fn expr(s: &Session, e: &str) -> Result<u64, String> {
    resolve(&Value::Sym(e.to_string()), s.runner().symbols())
        .map_err(|m| format!("`{e}`: {m} (expected a number or a symbol expression)"))
}

/// Names and memory for the debugger's expressions (`print`): the focused core's
/// registers (`rax`.. `r15`, `rip`, `rflags`, `cr0`..`cr4`, `efer`, `gs_base`,
/// `kernel_gs_base`; register names win over symbols), the scenario's symbols,
/// and loads through the focused core's page tables (a read-only walk, so looking
/// changes no A/D bit or TLB).
struct DebugEnv<'a>(&'a Session);

impl DebugEnv<'_> {
    fn register(&self, name: &str) -> Option<u64> {
        let st = &self.0.runner().machine().cores[self.0.focus()].cpu.state;
        let name = name.to_ascii_lowercase();
        if let Some(k) = view::REG_NAMES.iter().position(|r| *r == name) {
            return Some(st.gpr[k]);
        }
        Some(match name.as_str() {
            "rip" => st.rip,
            "rflags" | "eflags" => st.rflags,
            "cr0" => st.cr0,
            "cr2" => st.cr2,
            "cr3" => st.cr3,
            "cr4" => st.cr4,
            "cr8" => st.cr8,
            "efer" => st.efer,
            "fs_base" => st.fs_base,
            "gs_base" => st.gs_base,
            "kernel_gs_base" => st.kernel_gs_base,
            _ => return None,
        })
    }
}

impl crate::asm::expr::Env for DebugEnv<'_> {
    fn lookup(
        &self,
        name: &str,
        _: crate::asm::expr::Pos,
    ) -> Result<Option<crate::asm::expr::Value>, crate::asm::AsmError> {
        let v = self
            .register(name)
            .or_else(|| self.0.runner().symbols().get(name).copied());
        Ok(v.map(|value| crate::asm::expr::Value {
            value,
            relocatable: false,
        }))
    }
    fn dot(&self) -> Option<u64> {
        None
    }
    fn load(
        &self,
        addr: u64,
        size: u8,
        pos: crate::asm::expr::Pos,
    ) -> Result<u64, crate::asm::AsmError> {
        let s = self.0;
        let bytes = view::read_linear(s.runner().machine(), s.focus(), addr, usize::from(size));
        let mut v = 0u64;
        for (i, b) in bytes.iter().enumerate() {
            let Some(b) = b else {
                return Err(crate::asm::AsmError::at(
                    pos,
                    crate::asm::AsmErrorKind::BadExpression(format!(
                        "{:#x} is not mapped on core {}",
                        addr.wrapping_add(i as u64),
                        s.focus()
                    )),
                ));
            };
            v |= u64::from(*b) << (8 * i);
        }
        Ok(v)
    }
}

/// Evaluates a `print` expression; errors name the column of the offending token.
fn eval_expr(s: &Session, e: &str) -> Result<u64, String> {
    crate::asm::expr::eval_debugger(e, &DebugEnv(s)).map_err(|err| {
        let col = err.col.saturating_sub(1) as usize;
        format!("`{e}`: {} (at column {})", err.kind, col + 1)
    })
}

/// `x/NUF`: units of `unit` bytes, 16 bytes a line, each line led by its address
/// (and symbol); a unit with an unmapped byte shows as `?`s.
fn examine_text(s: &Session, a: u64, count: u64, unit: u8, fmt: char) -> String {
    let per_line = (16 / u64::from(unit)).max(1);
    let bytes = view::read_linear(
        s.runner().machine(),
        s.focus(),
        a,
        (count * u64::from(unit)) as usize,
    );
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(usize::from(unit)).enumerate() {
        let i = i as u64;
        if i.is_multiple_of(per_line) {
            if i > 0 {
                out.push('\n');
            }
            let at = a.wrapping_add(i * u64::from(unit));
            let _ = write!(out, "{}:", super::session::site(s.runner().labels(), at));
        }
        let v = chunk
            .iter()
            .rev()
            .try_fold(0u64, |v, b| b.map(|b| v << 8 | u64::from(b)));
        let width = 2 * usize::from(unit);
        let _ = match (v, fmt) {
            (None, _) => write!(out, " {}", "?".repeat(width + 2)),
            (Some(v), 'd') => {
                let sh = 64 - 8 * u32::from(unit);
                write!(out, " {}", ((v << sh) as i64) >> sh)
            }
            (Some(v), _) => write!(out, " 0x{v:0width$x}"),
        };
    }
    out
}

/// The names of the set bits of `v` among `(bit, name)`.
fn flags(v: u64, names: &[(u32, &str)]) -> String {
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| v >> b & 1 == 1)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "-".to_string()
    } else {
        set.join(" ")
    }
}

/// `info cr|apic|gs` for core `c`. Flag bits: CR0 and CR4 (SDM Vol. 3A 2.5),
/// EFER (SDM Vol. 3A 2.2.1), CR3 with CR4.PCIDE (SDM Vol. 3A 4.10.1: PCID is
/// bits 11:0, the table base bits 51:12).
fn info_text(s: &Session, what: &str, c: usize) -> String {
    let m = s.runner().machine();
    let st = &m.cores[c].cpu.state;
    match what {
        "cr" => {
            let cr0 = flags(
                st.cr0,
                &[(0, "PE"), (1, "MP"), (5, "NE"), (16, "WP"), (18, "AM"), (29, "NW"), (30, "CD"), (31, "PG")],
            );
            let cr4 = flags(
                st.cr4,
                &[(4, "PSE"), (5, "PAE"), (7, "PGE"), (9, "OSFXSR"), (12, "LA57"), (16, "FSGSBASE"), (17, "PCIDE"), (20, "SMEP"), (21, "SMAP"), (22, "PKE")],
            );
            let efer = flags(st.efer, &[(0, "SCE"), (8, "LME"), (10, "LMA"), (11, "NXE")]);
            let cr3 = if st.cr4 >> 17 & 1 == 1 {
                format!(
                    "{:#x} (tables {:#x}, PCID {})",
                    st.cr3,
                    st.cr3 & 0x000f_ffff_ffff_f000,
                    st.cr3 & 0xfff
                )
            } else {
                format!("{:#x} (tables {:#x}, PCIDE off)", st.cr3, st.cr3 & 0x000f_ffff_ffff_f000)
            };
            format!(
                "core {c}\ncr0  {:#x} [{cr0}]\ncr2  {:#x}\ncr3  {cr3}\ncr4  {:#x} [{cr4}]\nefer {:#x} [{efer}]",
                st.cr0, st.cr2, st.cr4, st.efer
            )
        }
        "apic" => {
            let a = &m.apics[c];
            let list = |v: Vec<u8>| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.iter().map(|x| format!("{x:#x}")).collect::<Vec<_>>().join(" ")
                }
            };
            format!(
                "core {c} apic id {}\ntpr  {:#x}  ppr {:#x}\nirr  {} (requested, not yet accepted)\nisr  {} (in service, awaiting EOI)\nnext {}",
                a.id,
                a.tpr,
                a.ppr(),
                list(a.irr_vectors()),
                list(a.isr_vectors()),
                a.deliverable().map_or("nothing deliverable".to_string(), |v| format!("{v:#x} would be delivered"))
            )
        }
        _ => format!(
            "core {c}\ngs_base        {:#x}\nkernel_gs_base {:#x} (swapped in by SWAPGS)\nfs_base        {:#x}",
            st.gs_base, st.kernel_gs_base, st.fs_base
        ),
    }
}

/// A value as `print` shows it.
fn format_value(v: u64, fmt: PrintFmt) -> String {
    match fmt {
        PrintFmt::Both => format!("{v:#x} ({v})"),
        PrintFmt::Hex => format!("{v:#x}"),
        PrintFmt::Dec => format!("{}", v as i64),
        PrintFmt::CpuMask => {
            let cores: Vec<String> = (0..64)
                .filter(|b| v >> b & 1 == 1)
                .map(|b| b.to_string())
                .collect();
            format!("{{{}}}", cores.join(","))
        }
    }
}

/// An error unless the machine has core `c`.
fn check_core(s: &Session, c: usize) -> Result<(), String> {
    let n = s.runner().machine().num_cores();
    if c >= n {
        return Err(format!(
            "there is no core {c} (the machine has {n}, so 0..={})",
            n - 1
        ));
    }
    Ok(())
}

fn break_kind(s: &Session, b: &BreakSpec) -> Result<BreakKind, String> {
    Ok(match b {
        BreakSpec::Label(l) => match s.runner().symbols().get(l) {
            Some(a) => BreakKind::Label {
                name: l.clone(),
                addr: *a,
            },
            None => {
                return Err(format!(
                    "unknown label `{l}`{}",
                    crate::scenario::suggest(l, s.runner().symbols().keys())
                ))
            }
        },
        BreakSpec::Location(x) => match s.runner().symbols().get(x) {
            Some(a) => BreakKind::Label {
                name: x.clone(),
                addr: *a,
            },
            None => BreakKind::Addr(expr(s, x)?),
        },
        BreakSpec::Addr(x) => BreakKind::Addr(expr(s, x)?),
        BreakSpec::StaleUse => BreakKind::StaleUse,
        BreakSpec::TlbFill(x) => BreakKind::TlbFill(expr(s, x)?),
        BreakSpec::PagingWrite(x, ad) => BreakKind::PagingWrite {
            va: expr(s, x)?,
            core: s.focus(),
            ad: *ad,
        },
        BreakSpec::Ipi(c) => {
            check_core(s, *c)?;
            BreakKind::Ipi(*c)
        }
        BreakSpec::Event(k) => {
            if !EVENT_KINDS.contains(&k.as_str()) {
                return Err(format!(
                    "unknown event kind `{k}` (expected one of {})",
                    EVENT_KINDS.join(", ")
                ));
            }
            BreakKind::Event(k.clone())
        }
        BreakSpec::Watch {
            addr,
            phys,
            len,
            read,
            write,
        } => {
            let a = expr(s, addr)?;
            let (pa, linear) = if *phys {
                (a, None)
            } else {
                let f = s.focus();
                if (a & 0xfff) + u64::from(*len) > 0x1000 {
                    return Err(format!(
                        "`watch {addr}`: {len} bytes at {a:#x} cross a page boundary; watch each page's part"
                    ));
                }
                (view::translate(s.runner().machine(), f, a)?, Some(a))
            };
            BreakKind::Watch {
                name: addr.clone(),
                pa,
                len: *len,
                linear,
                read: *read,
                write: *write,
            }
        }
    })
}

fn stop_text(s: &Session, done: u64, stop: &Stop) -> String {
    let mut t = match stop {
        Stop::Done => String::new(),
        Stop::Break(w) => format!("{w}\n"),
        Stop::ScheduleOver(w) => format!("{w}\n"),
        Stop::NoProgress(w) => format!("{w}: nothing to do\n"),
        Stop::Interrupted(w) => format!("{w}\n"),
    };
    let _ = write!(t, "{} step(s); now at {}", done, here(s));
    t
}

/// "step N, core C rip RIP <label>".
fn here(s: &Session) -> String {
    let f = s.focus();
    let rip = s.runner().machine().cores[f].cpu.state.rip;
    let label = core_label(s.runner(), f);
    let label = if label.is_empty() {
        label
    } else {
        format!(" <{label}>")
    };
    format!("step {}, core {f} rip {rip:#x}{label}", s.step())
}

/// Where core `c` is, by label: the label at its RIP, or for a core halted by
/// HLT, `hlt@` and the HLT's own label (its RIP already points past it, SDM
/// Vol. 2A HLT); else `label+off` as `run` prints it; empty when no label is
/// near.
pub fn core_label(r: &crate::scenario::Runner, c: usize) -> String {
    let core = &r.machine().cores[c];
    let st = &core.cpu.state;
    let by_hlt = st.halted && core.stopped.is_none() && core.retired > 0;
    match crate::scenario::core_site(r.labels(), st.rip, by_hlt, core.retired) {
        Some(l) if by_hlt => format!("hlt@{l}"),
        Some(l) => l,
        None => crate::scenario::name_in(r.labels(), st.rip).unwrap_or_default(),
    }
}

/// The status line: the counters first (so a narrow terminal cuts only the
/// schedule text), then where the schedule is.
pub fn status_line(s: &Session) -> String {
    let r = s.runner();
    let c = r.cursor();
    let sched = match r.scenario().schedule.get(c.index) {
        Some(_) => format!("schedule step {} ({} taken)", c.index, c.taken),
        None => s.ending_text(),
    };
    format!(
        "step {}/{} | stale {} | violations {} | core {} | {}",
        s.step(),
        s.last_step(),
        r.stale_uses().len(),
        r.violations(),
        s.focus(),
        sched,
    )
}

/// A condition `REG OP VALUE` (either side a register or a number/symbol).
fn cond(s: &Session, text: &str) -> Result<Cond, String> {
    const OPS: [&str; 6] = ["==", "!=", "<=", ">=", "<", ">"];
    let Some((i, op)) = OPS
        .iter()
        .filter_map(|op| text.find(op).map(|i| (i, *op)))
        .min_by_key(|(i, _)| *i)
    else {
        return Err(format!(
            "`if {text}`: expected a comparison such as `rax == 1` (one of {})",
            OPS.join(" ")
        ));
    };
    let side = |t: &str| -> Result<Operand, String> {
        let t = t.trim();
        let name = t.trim_start_matches('%').to_ascii_lowercase();
        if let Some(k) = view::REG_NAMES.iter().position(|r| *r == name) {
            return Ok(Operand::Gpr(k));
        }
        Ok(match name.as_str() {
            "rip" => Operand::Rip,
            "rflags" | "eflags" => Operand::Rflags,
            "cr3" => Operand::Cr3,
            _ if t.is_empty() => return Err(format!("`if {text}`: a side of `{op}` is missing")),
            _ => Operand::Num(expr(s, t)?),
        })
    };
    Ok(Cond {
        lhs: side(&text[..i])?,
        op,
        rhs: side(&text[i + op.len()..])?,
    })
}

/// Runs one command. A Ctrl-C that came while no command ran is forgotten
/// first, so it does not cut the next command short.
pub fn execute(s: &mut Session, c: &Command) -> Reply {
    s.clear_interrupt();
    match run(s, c) {
        Ok(r) => r,
        Err(e) => Reply::err(e),
    }
}

fn run(s: &mut Session, c: &Command) -> Result<Reply, String> {
    let moves = matches!(
        c,
        Command::Step { .. }
            | Command::Next(_)
            | Command::Continue
            | Command::Until(_)
            | Command::ReverseStep(_)
            | Command::ReverseContinue
            | Command::Goto(_)
            | Command::Evict(_)
            | Command::Fill(_)
    );
    if moves {
        s.mark_before();
    }
    Ok(match c {
        Command::Step { core, count } => {
            let core = core.unwrap_or(s.focus());
            let (done, stop) = s.step_core(core, *count)?;
            if done == 0 {
                return Err(stop_text(s, done, &stop));
            }
            Reply::ok(stop_text(s, done, &stop))
        }
        Command::Next(n) => {
            let (done, stop) = s.run_schedule(Some(*n), None);
            Reply::ok(stop_text(s, done, &stop))
        }
        Command::Continue => {
            let (done, stop) = s.run_schedule(None, None);
            Reply::ok(stop_text(s, done, &stop))
        }
        Command::Until(b) => {
            let k = break_kind(s, b)?;
            let (done, stop) = s.run_schedule(None, Some(&k));
            Reply::ok(stop_text(s, done, &stop))
        }
        Command::ReverseStep(n) => {
            let (back, stop) = s.reverse_step(usize::try_from(*n).unwrap_or(usize::MAX));
            if let Stop::Interrupted(w) = stop {
                return Ok(Reply::ok(format!("{w}\nnow at {}", here(s))));
            }
            if back == 0 {
                return Err("already at step 0".into());
            }
            Reply::ok(format!("back {back} step(s); now at {}", here(s)))
        }
        Command::ReverseContinue => {
            let stop = s.reverse_continue();
            Reply::ok(stop_text(s, 0, &stop).replacen("0 step(s); now", "now", 1))
        }
        Command::Goto(n) => {
            let stop = s.goto_step(*n);
            let mut t = String::new();
            if let Stop::ScheduleOver(w) | Stop::Break(w) | Stop::Interrupted(w) = &stop {
                t = format!("{w}\n");
            }
            let _ = write!(t, "now at {}", here(s));
            Reply::ok(t)
        }
        Command::Focus(n) => {
            s.set_focus(*n)?;
            s.mark_before();
            Reply::ok(format!("focused core {n}; {}", here(s)))
        }
        Command::Break {
            spec,
            core,
            cond: c,
        } => {
            let k = break_kind(s, spec)?;
            if let Some(n) = core {
                check_core(s, *n)?;
            }
            let c = c.as_deref().map(|t| cond(s, t)).transpose()?;
            if let BreakKind::Watch { name, pa, len, .. } = &k {
                s.watch_range(name, *pa, *len);
            }
            let id = s.add_breakpoint_if(k, *core, c);
            let text = s
                .breakpoints()
                .iter()
                .find(|b| b.id == id)
                .map(|b| b.to_string())
                .unwrap_or_default();
            Reply::ok(format!("breakpoint {id}: {text}"))
        }
        Command::Delete(id) => {
            let n = s.delete_breakpoint(*id);
            match (id, n) {
                (Some(i), 0) => return Err(format!("there is no breakpoint {i} (see `breaks`)")),
                _ => Reply::ok(format!("deleted {n} breakpoint(s)")),
            }
        }
        Command::Breaks => {
            if s.breakpoints().is_empty() {
                Reply::ok("no breakpoints".into())
            } else {
                Reply::ok(
                    s.breakpoints()
                        .iter()
                        .map(|b| format!("{:>3}  {b}", b.id))
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
        }
        Command::Mem { phys, addr, len } => {
            let a = expr(s, addr)?;
            let len = (*len).min(4096);
            // The range must not wrap around the top of the address space (it would
            // show address 0's bytes as if they followed u64::MAX).
            if len > 0 && a.checked_add(len - 1).is_none() {
                return Err(format!(
                    "`{}`: {len} bytes at {a:#x} run past the top of the {} address space \
                     ({:#x} is its last byte); give a length of at most {:#x}",
                    if *phys { "xp" } else { "x" },
                    if *phys { "physical" } else { "linear" },
                    u64::MAX,
                    u64::MAX - a + 1
                ));
            }
            let len = len as usize;
            let m = s.runner().machine();
            let bytes: Vec<Option<u8>> = if *phys {
                (0..len as u64)
                    .map(|i| {
                        let mut b = [0u8];
                        m.mem
                            .read(mmu::PhysAddr(a.wrapping_add(i)), &mut b)
                            .ok()
                            .map(|_| b[0])
                    })
                    .collect()
            } else {
                view::read_linear(m, s.focus(), a, len)
            };
            Reply::ok(hexdump(a, &bytes, *phys, s.focus()))
        }
        Command::Walk(x) => {
            let va = expr(s, x)?;
            // A non-canonical address faults (#GP) before any walk (SDM Vol. 3A
            // 4.5 and 3.3.7.1): bits 63:47 must all equal bit 47.
            if !mmu::VirtAddr(va).is_canonical() {
                return Err(format!(
                    "{va:#x} is not canonical (bits 63:47 must all equal bit 47): an access \
                     to it raises #GP before any page walk; nothing to walk"
                ));
            }
            s.walk_va = Some(va);
            let m = s.runner().machine();
            let f = s.focus();
            let regs = m.paging_regs(f);
            let w = m.cores[f]
                .mmu
                .walk_view(&m.mem, &m.tracker, &regs, mmu::VirtAddr(va));
            Reply::ok(view::format_walk(&w).join("\n"))
        }
        Command::Tlb => Reply::ok(tlb_text(s)),
        Command::Who(x) => {
            let va = expr(s, x)?;
            s.walk_va = Some(va);
            Reply::ok(who_text(s, va).join("\n"))
        }
        Command::Regs => {
            let f = s.focus();
            let st = &s.runner().machine().cores[f].cpu.state;
            let prev = s.before().get(f);
            Reply::ok(view::format_regs(st, prev).join("\n"))
        }
        Command::Examine {
            count,
            unit,
            fmt,
            addr,
        } => {
            let f = s.focus();
            let m = s.runner().machine();
            let rip = m.cores[f].cpu.state.rip;
            let a = match addr {
                Some(a) => eval_expr(s, a)?,
                None => rip,
            };
            let count = (*count).min(4096);
            // As with `x ADDR LEN`: a range past the top of the address space
            // is refused rather than shown wrapped round to address 0.
            let len = count * u64::from(*unit);
            if *fmt != 'i' && len > 0 && a.checked_add(len - 1).is_none() {
                return Err(format!(
                    "`x/`: {count} units of {unit} bytes at {a:#x} run past the top of the \
                     linear address space ({:#x} is its last byte)",
                    u64::MAX
                ));
            }
            if *fmt == 'i' {
                let lines =
                    view::disassemble(m, f, s.runner().labels(), a, count as usize, s.syntax);
                return Ok(Reply::ok(disas_text(&lines, rip)));
            }
            Reply::ok(examine_text(s, a, count, *unit, *fmt))
        }
        Command::Info { what, core } => {
            let c = core.unwrap_or(s.focus());
            check_core(s, c)?;
            Reply::ok(info_text(s, what, c))
        }
        Command::Disas { addr, count } => {
            let f = s.focus();
            let m = s.runner().machine();
            let labels = s.runner().labels();
            let rip = m.cores[f].cpu.state.rip;
            let lines = match addr {
                Some(a) => {
                    let a = expr(s, a)?;
                    view::disassemble(m, f, labels, a, *count, s.syntax)
                }
                None => view::disassemble_around(m, f, labels, rip, 3, *count, s.syntax),
            };
            Reply::ok(disas_text(&lines, rip))
        }
        Command::Cores => Reply::ok(cores_text(s)),
        Command::Events { count, kind, core } => {
            if let Some(c) = core {
                check_core(s, *c)?;
            }
            if let Some(k) = kind {
                if !EVENT_KINDS.contains(&k.as_str()) {
                    return Err(format!(
                        "unknown event kind `{k}` (expected one of {})",
                        EVENT_KINDS.join(", ")
                    ));
                }
            }
            let evs: Vec<String> = filtered_events(s, kind.as_deref(), *core, *count)
                .iter()
                .map(view::format_event)
                .collect();
            if evs.is_empty() {
                Reply::ok("no events".into())
            } else {
                Reply::ok(evs.join("\n"))
            }
        }
        Command::Stale => {
            let st = s.runner().stale_uses();
            if st.is_empty() {
                Reply::ok("no stale uses so far".into())
            } else {
                let mut t = String::new();
                for (i, r) in st.iter().enumerate() {
                    let labels = s.runner().labels();
                    let detail: String = r
                        .detail
                        .to_string()
                        .lines()
                        .map(|l| {
                            crate::scenario::symbolize(l, &|a| crate::scenario::name_in(labels, a))
                                + "\n"
                        })
                        .collect();
                    let _ = write!(
                        t,
                        "#{} ({}) {detail}",
                        i + 1,
                        if r.violation { "violation" } else { "allowed" },
                    );
                }
                Reply::ok(t.trim_end().to_string())
            }
        }
        Command::Status => Reply::ok(status_line(s)),
        Command::Syntax(x) => {
            s.syntax = match x {
                Some(v) => *v,
                None => match s.syntax {
                    Syntax::Att => Syntax::Intel,
                    Syntax::Intel => Syntax::Att,
                },
            };
            Reply::ok(
                match s.syntax {
                    Syntax::Att => "syntax att",
                    Syntax::Intel => "syntax intel",
                }
                .into(),
            )
        }
        Command::Evict(x) | Command::Fill(x) => {
            let va = expr(s, x)?;
            let core = s.focus();
            if matches!(c, Command::Fill(_)) {
                // Filling what is already cached would take a step that changes
                // nothing.
                let m = s.runner().machine();
                let regs = m.paging_regs(core);
                let w = m.cores[core]
                    .mmu
                    .walk_view(&m.mem, &m.tracker, &regs, mmu::VirtAddr(va));
                if let Some(e) = w.tlb.first() {
                    return Ok(Reply::ok(format!(
                        "va {va:#x} is already in core {core}'s {} (pcid {:#x}, filled at step {}); \
                         nothing filled, no step taken",
                        view::cache_name(e.cache),
                        e.pcid,
                        e.filled_step
                    )));
                }
            }
            let u = if matches!(c, Command::Evict(_)) {
                Unit::Evict { core, va }
            } else {
                Unit::Fill { core, va }
            };
            let hits = s.take(u).unwrap_or_default();
            let mut t = format!(
                "{} va {va:#x} on core {core}; now at {}",
                if matches!(u, Unit::Evict { .. }) {
                    "evicted"
                } else {
                    "filled"
                },
                here(s)
            );
            for h in hits {
                t = format!("{h}\n{t}");
            }
            Reply::ok(t)
        }
        Command::Save { path, force } => {
            let r = save(s, path, *force)?;
            if !r.error {
                s.mark_saved();
            }
            r
        }
        Command::Print { fmt, expr } => {
            let v = eval_expr(s, expr)?;
            Reply::ok(format_value(v, *fmt))
        }
        Command::Help(topic) => Reply::ok(help_text(topic.as_deref())),
        Command::Quit { force } => {
            if !force && s.unsaved() {
                return Ok(Reply {
                    text: format!(
                        "the interleaving taken ({} step(s) off the schedule) is not saved; \
                         `save PATH` keeps it, `quit!` leaves without saving",
                        s.off_schedule_units()
                    ),
                    error: true,
                    confirm_quit: true,
                    ..Reply::default()
                });
            }
            Reply {
                quit: true,
                ..Reply::default()
            }
        }
    })
}

fn save(s: &Session, path: &str, force: bool) -> Result<Reply, String> {
    let p = Path::new(path);
    // A directory is never a file to overwrite: say so instead of asking.
    if p.is_dir() {
        return Err(format!(
            "{path} is a directory; give a file path inside it, such as {}",
            p.join("saved.ron").display()
        ));
    }
    let dir_of = |p: &Path| -> std::path::PathBuf {
        let d = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        d.canonicalize().unwrap_or_else(|_| d.to_path_buf())
    };
    let r = s.runner();
    let res = saved_scenario(
        r.scenario(),
        &s.decisions().to_vec(),
        r.stale_uses(),
        r.violations(),
        &dir_of(s.path()),
        &dir_of(p),
    )
    .and_then(|sc| to_ron(&sc))
    .and_then(|text| write_new(p, &text, force));
    match res {
        Ok(()) => Ok(Reply::ok(format!(
            "saved {} decision(s) to {path}; `tlbemu run {path}` replays them",
            s.decisions().len()
        ))),
        Err(SaveError::Exists(_)) => Ok(Reply {
            text: format!("{path} exists; overwrite it? (`save! {path}` or `save {path} --force`)"),
            error: true,
            confirm_overwrite: Some(path.to_string()),
            ..Reply::default()
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// The last `count` events, optionally of one kind and one core.
pub fn filtered_events(
    s: &Session,
    kind: Option<&str>,
    core: Option<usize>,
    count: usize,
) -> Vec<crate::events::Event> {
    let mut v: Vec<crate::events::Event> = s
        .events()
        .iter()
        .rev()
        .filter(|e| kind.is_none_or(|k| e.kind.name() == k))
        .filter(|e| core.is_none_or(|c| view::event_core(e) == c))
        .take(count)
        .collect();
    v.reverse();
    v
}

fn hexdump(a: u64, bytes: &[Option<u8>], phys: bool, core: usize) -> String {
    let mut t = if phys {
        format!("physical {a:#x}:\n")
    } else {
        format!("linear {a:#x} (core {core}'s address space):\n")
    };
    for (i, row) in bytes.chunks(16).enumerate() {
        let _ = write!(t, "{:016x}:", a.wrapping_add(i as u64 * 16));
        for b in row {
            match b {
                Some(b) => {
                    let _ = write!(t, " {b:02x}");
                }
                None => t.push_str(" ??"),
            }
        }
        t.push('\n');
    }
    t.trim_end().to_string()
}

fn disas_text(lines: &[view::DisLine], rip: u64) -> String {
    let mut t = String::new();
    for l in lines {
        if let Some(lb) = &l.label {
            let _ = writeln!(t, "{lb}:");
        }
        let bytes: String = l.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            t,
            "{} {:016x}  {:<20} {}",
            if l.addr == rip { "=>" } else { "  " },
            l.addr,
            bytes,
            l.text
        );
    }
    t.trim_end().to_string()
}

/// The focused core's TLB and paging-structure caches as text.
pub fn tlb_text(s: &Session) -> String {
    let f = s.focus();
    let m = s.runner().machine();
    let d = m.cores[f].mmu.dump(&m.tracker);
    let mut t = format!(
        "core {f}: {} TLB entries, {} PSC entries\n",
        d.tlb.len(),
        d.psc.len()
    );
    t.push_str("cache   pcid                 va -> pa/next         size rts G D origin\n");
    for e in d.tlb.iter().chain(d.psc.iter()) {
        let _ = writeln!(t, "{}", view::format_entry(e));
        if e.stale {
            if let Some(w) = view::stale_reason(e, s.events()) {
                let _ = writeln!(t, "    stale: {}; not invalidated since", named(s, &w));
            }
        }
    }
    t.trim_end().to_string()
}

/// `text` with ` <label+off>` after each `rip 0x...`, as `run` prints it.
fn named(s: &Session, text: &str) -> String {
    let labels = s.runner().labels();
    crate::scenario::symbolize(text, &|a| crate::scenario::name_in(labels, a))
}

/// Whether a cached entry translates (TLB) or covers (PSC) linear `va`.
fn entry_covers(e: &mmu::EntryView, va: u64) -> bool {
    let span: u64 = match (e.cache, e.cached) {
        (_, mmu::WalkResult::Leaf { size, .. }) => size.bytes(),
        // A level-L paging-structure cache entry stands for a level-L entry:
        // 512 GiB (PML4E), 1 GiB (PDPTE) or 2 MiB (PDE) of linear space (SDM
        // Vol. 3A 4.10.3.1).
        (mmu::CacheKind::Psc { level }, _) => 1u64 << (12 + 9 * u32::from(level.max(1) - 1)),
        _ => return false,
    };
    let base = e.va.raw() & !(span - 1);
    va & !(span - 1) == base
}

/// Every core's TLB and paging-structure-cache entries for `va`, with PCID,
/// fill step, and for a stale one why: coherence bugs are about which core
/// still holds an entry.
pub fn who_text(s: &Session, va: u64) -> Vec<String> {
    let m = s.runner().machine();
    let mut out = vec![format!("who caches va {va:#x}:")];
    for c in 0..m.num_cores() {
        let d = m.cores[c].mmu.dump(&m.tracker);
        let st = &m.cores[c].cpu.state;
        let pcid = if st.cr4 & mmu::cr4::PCIDE != 0 {
            st.cr3 & 0xfff
        } else {
            0
        };
        let hits: Vec<&mmu::EntryView> = d
            .tlb
            .iter()
            .chain(d.psc.iter())
            .filter(|e| entry_covers(e, va))
            .collect();
        out.push(format!(
            "core {c} (current pcid {pcid:#x}): {}",
            if hits.is_empty() {
                "nothing cached".to_string()
            } else {
                format!(
                    "{} entr{}",
                    hits.len(),
                    if hits.len() == 1 { "y" } else { "ies" }
                )
            }
        ));
        for e in hits {
            out.push(format!("  {}", view::format_entry(e)));
            if e.stale {
                if let Some(w) = view::stale_reason(e, s.events()) {
                    out.push(format!("    stale: {}", named(s, &w)));
                }
            }
        }
    }
    out
}

/// One line per core: rip, label, status.
pub fn cores_text(s: &Session) -> String {
    let r = s.runner();
    let m = r.machine();
    (0..m.num_cores())
        .map(|c| {
            let st = &m.cores[c].cpu.state;
            let label = core_label(r, c);
            format!(
                "{} core {c}: rip {:#x}{} {} retired {}",
                if c == s.focus() { '*' } else { ' ' },
                st.rip,
                if label.is_empty() {
                    label
                } else {
                    format!(" <{label}>")
                },
                core_status(r, c),
                m.cores[c].retired
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn help_text(topic: Option<&str>) -> String {
    let rows: Vec<&(&str, &str)> = HELP
        .iter()
        .filter(|(u, _)| topic.is_none_or(|t| u.split_whitespace().next() == Some(t)))
        .collect();
    if rows.is_empty() {
        return format!("no command `{}`; `help` lists them", topic.unwrap_or(""));
    }
    rows.iter()
        .map(|(u, d)| format!("{u:<30} {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}
