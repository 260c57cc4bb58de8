//! The command language shared by the TUI's `:` line and the REPL: one line of
//! text becomes one [`Command`]. Addresses stay text here (symbol expressions
//! such as `start`, `dmap+0x1000`, `0x400000`) and are resolved against the
//! scenario's symbols when the command runs.

use std::fmt;

/// What a breakpoint or `until` waits for, as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakSpec {
    /// `label NAME`.
    Label(String),
    /// `addr EXPR`.
    Addr(String),
    /// A bare `EXPR`: a label if one has this name, otherwise an address.
    Location(String),
    /// `stale`.
    StaleUse,
    /// `fill VA`.
    TlbFill(String),
    /// `ptwrite VA [+ad]`: with `+ad`, the walker's A/D updates count too.
    PagingWrite(String, bool),
    /// `ipi CORE`.
    Ipi(usize),
    /// `event KIND`.
    Event(String),
    /// `watch ADDR [LEN] [r|w|rw]`: a guest access to the range (`p:ADDR` for
    /// a physical address).
    Watch {
        /// Address expression (without `p:`).
        addr: String,
        /// Physical.
        phys: bool,
        /// Bytes (1, 2, 4 or 8).
        len: u8,
        /// Reads count.
        read: bool,
        /// Writes count.
        write: bool,
    },
}

/// One debugger command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `step [N]`, `step core C [N]`: step one core outside the schedule.
    Step {
        /// The core (`None`: the focused core).
        core: Option<usize>,
        /// How many instructions.
        count: u64,
    },
    /// `next [N]`: N steps along the schedule.
    Next(u64),
    /// `continue`: along the schedule until a breakpoint or its end.
    Continue,
    /// `until SPEC`: along the schedule until the condition (or a breakpoint).
    Until(BreakSpec),
    /// `rstep [N]`: back N steps.
    ReverseStep(u64),
    /// `rcontinue`: back to the previous breakpoint hit.
    ReverseContinue,
    /// `goto N`: to machine step N (the step numbers explanations and events
    /// use).
    Goto(u64),
    /// `focus C`.
    Focus(usize),
    /// `break SPEC [core C] [if COND]`.
    Break {
        /// What it waits for.
        spec: BreakSpec,
        /// Only on this core.
        core: Option<usize>,
        /// Only when this holds (`REG OP VALUE`, as typed).
        cond: Option<String>,
    },
    /// `delete [ID]`.
    Delete(Option<usize>),
    /// `breaks`.
    Breaks,
    /// `x ADDR [LEN]` (linear, focused core) or `xp ADDR [LEN]` (physical).
    Mem {
        /// Physical.
        phys: bool,
        /// Address expression.
        addr: String,
        /// Bytes.
        len: u64,
    },
    /// `x/NUF [ADDR]`, gdb's form: N units of U bytes (`b` 1, `h` 2, `w` 4, `g` 8)
    /// at linear ADDR in format F (`x` hex, `d` signed decimal, `i` N instructions,
    /// from RIP when ADDR is left out).
    Examine {
        /// How many units (or instructions).
        count: u64,
        /// Bytes per unit.
        unit: u8,
        /// `x`, `d` or `i`.
        fmt: char,
        /// Address expression (`None`: RIP, for `i` only).
        addr: Option<String>,
    },
    /// `info cr|apic|gs [core C]`: a decoded summary of one core's control
    /// registers, local APIC or segment bases.
    Info {
        /// `cr`, `apic` or `gs`.
        what: String,
        /// The core (`None`: the focused core).
        core: Option<usize>,
    },
    /// `walk VA`: the page walk of VA (also shown in the TUI's walk pane).
    Walk(String),
    /// `tlb`: the focused core's TLB and paging-structure caches.
    Tlb,
    /// `who VA`: every core's cached entries for VA's page.
    Who(String),
    /// `regs`.
    Regs,
    /// `disas [ADDR] [N]`.
    Disas {
        /// Start (`None`: around RIP).
        addr: Option<String>,
        /// Lines.
        count: usize,
    },
    /// `cores`.
    Cores,
    /// `events [N] [kind K] [core C]`.
    Events {
        /// How many (the last N).
        count: usize,
        /// Only this kind.
        kind: Option<String>,
        /// Only this core.
        core: Option<usize>,
    },
    /// `stale`: every stale use so far, fully explained.
    Stale,
    /// `status`.
    Status,
    /// `syntax [att|intel]` (no argument: toggle).
    Syntax(Option<super::Syntax>),
    /// `evict VA`: evict the focused core's cached translations of VA.
    Evict(String),
    /// `fill VA`: speculatively fill the focused core's TLB for VA.
    Fill(String),
    /// `save PATH [--force]`, `save! PATH`.
    Save {
        /// Where.
        path: String,
        /// Overwrite an existing file.
        force: bool,
    },
    /// `print[/FMT] EXPR`: the value of an expression over registers, symbols and
    /// `*(uN*)ADDR` loads from the focused core's linear memory.
    Print {
        /// How to show it.
        fmt: PrintFmt,
        /// The expression, as typed.
        expr: String,
    },
    /// `help [COMMAND]`.
    Help(Option<String>),
    /// `quit`, `quit!` (`force`: leave even with an unsaved interleaving).
    Quit {
        /// Do not ask.
        force: bool,
    },
}

/// How `print` shows a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrintFmt {
    /// Hex and decimal (no `/FMT`).
    Both,
    /// `/x`: hex.
    Hex,
    /// `/d`: signed decimal.
    Dec,
    /// `/cpumask`: the set bits as core numbers, `{0,2}`.
    CpuMask,
}

/// A line that is not a command, with what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The message.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Every command with its usage, one per line (the `help` text).
pub const HELP: &[(&str, &str)] = &[
    ("step [N]", "step the focused core N instructions (default 1)"),
    ("step core C [N]", "step core C N instructions, outside the schedule"),
    ("next [N]", "take N steps along the scenario's schedule"),
    ("continue", "follow the schedule until a breakpoint or its end (c)"),
    ("until SPEC", "follow the schedule until SPEC (same forms as break)"),
    ("rstep [N]", "step back N steps (rs)"),
    ("rcontinue", "go back to the previous breakpoint hit (rc)"),
    ("goto N", "go to step N (back by re-execution, forward along history/schedule)"),
    ("focus C", "focus core C"),
    ("break SPEC [core C] [if COND]", "break on: label NAME | addr EXPR | NAME-or-EXPR | stale | fill VA | ptwrite VA [+ad] | ipi CORE | event KIND (b); COND is REG OP VALUE, OP one of == != < <= > >="),
    ("watch ADDR [LEN] [r|w|rw] [core C] [if COND]", "stop when the guest reads/writes LEN (1, 2, 4, 8; default 8) bytes at a linear ADDR of the focused core, or p:ADDR physical; default w"),
    ("delete [ID]", "delete breakpoint or watchpoint ID, or all"),
    ("breaks", "list breakpoints"),
    ("x ADDR [LEN]", "memory at a linear address of the focused core (read-only walk)"),
    ("xp ADDR [LEN]", "physical memory"),
    ("x/NUF [ADDR]", "N units U (b h w g: 1 2 4 8 bytes, default g) at linear ADDR, F x (hex, default) or d (decimal); x/Ni: N instructions at ADDR or RIP"),
    ("info cr|apic|gs [core C]", "CR0, CR2, CR3 (PCID), CR4 and EFER with their flags; the local APIC's TPR, PPR, IRR, ISR; GS base and KERNEL_GS_BASE"),
    ("walk VA", "page walk of VA: each level, cached vs memory (translate)"),
    ("tlb", "the focused core's TLB and paging-structure caches"),
    ("who VA", "every core's TLB and PSC entries for VA: PCID, fill step, STALE and why"),
    ("regs", "the focused core's registers"),
    ("disas [ADDR] [N]", "disassemble (around RIP by default)"),
    ("cores", "every core: rip, label, status"),
    ("events [N] [kind K] [core C]", "the last N events, filtered"),
    ("stale", "every stale use so far, with the full explanation"),
    ("status", "step, schedule position, violations"),
    ("syntax [att|intel]", "disassembly syntax (no argument: toggle)"),
    ("evict VA", "evict the focused core's cached translations of VA"),
    ("fill VA", "speculatively fill the focused core's TLB for VA"),
    ("save PATH [--force]", "save the steps taken as a scenario (save! PATH overwrites)"),
    ("print[/x|/d|/cpumask] EXPR", "evaluate EXPR: registers, symbols, + - * / << >> & | ^ ~ ! (GNU as precedence), *(u8|u16|u32|u64*)ADDR and *ADDR (8 bytes) at a linear address of the focused core (p)"),
    ("help [CMD]", "this list (h, ?)"),
    ("quit", "leave (q); asks first if the interleaving is not saved (quit! does not)"),
];

fn err(message: String) -> ParseError {
    ParseError { message }
}

fn usage(cmd: &str) -> String {
    HELP.iter()
        .find(|(u, _)| u.split([' ', '[']).next() == Some(cmd))
        .map(|(u, d)| format!("usage: {u} — {d}"))
        .unwrap_or_default()
}

fn number<T: TryFrom<u64>>(cmd: &str, what: &str, t: &str) -> Result<T, ParseError> {
    let t2 = t.replace('_', "");
    let v = if let Some(h) = t2.strip_prefix("0x").or_else(|| t2.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        t2.parse::<u64>().ok()
    };
    v.and_then(|v| T::try_from(v).ok()).ok_or_else(|| {
        err(format!(
            "`{cmd}`: expected {what} (a number), found `{t}`\n{}",
            usage(cmd)
        ))
    })
}

fn no_more(cmd: &str, rest: &[&str]) -> Result<(), ParseError> {
    match rest.first() {
        None => Ok(()),
        Some(t) => Err(err(format!("`{cmd}`: unexpected `{t}`\n{}", usage(cmd)))),
    }
}

fn break_spec(cmd: &str, args: &[&str]) -> Result<BreakSpec, ParseError> {
    let need = |what: &str| -> Result<String, ParseError> {
        match args.get(1) {
            Some(a) => {
                no_more(cmd, &args[2..])?;
                Ok(a.to_string())
            }
            None => Err(err(format!(
                "`{cmd} {}`: expected {what}\n{}",
                args[0],
                usage(cmd)
            ))),
        }
    };
    let Some(first) = args.first() else {
        return Err(err(format!(
            "`{cmd}`: expected a condition\n{}",
            usage(cmd)
        )));
    };
    Ok(match *first {
        "label" => BreakSpec::Label(need("a label name")?),
        "addr" | "address" => BreakSpec::Addr(need("an address")?),
        "stale" | "stale-use" => {
            no_more(cmd, &args[1..])?;
            BreakSpec::StaleUse
        }
        "fill" | "tlb-fill" => BreakSpec::TlbFill(need("a linear address")?),
        "ptwrite" | "pte" | "paging-write" => match args {
            [_, va, ad] if *ad == "+ad" => BreakSpec::PagingWrite(va.to_string(), true),
            _ => BreakSpec::PagingWrite(
                need("a linear address (then `+ad` for A/D updates too)")?,
                false,
            ),
        },
        "ipi" => BreakSpec::Ipi(number(cmd, "a core number", &need("a core number")?)?),
        "event" => BreakSpec::Event(need("an event kind")?),
        other => {
            no_more(cmd, &args[1..])?;
            BreakSpec::Location(other.to_string())
        }
    })
}

/// `break`/`watch` arguments once `if COND` is taken out: SPEC, then maybe
/// `core C`.
fn break_with(
    cmd: &str,
    args: Vec<&str>,
    cond: Option<String>,
) -> Result<Option<Command>, ParseError> {
    let (spec_args, core) = match args.as_slice() {
        [spec @ .., k, n] if *k == "core" && !spec.is_empty() => {
            (spec.to_vec(), Some(number(cmd, "a core number", n)?))
        }
        _ => (args.clone(), None),
    };
    let spec = if cmd == "watch" {
        watch_spec(&spec_args)?
    } else {
        break_spec(cmd, &spec_args)?
    };
    Ok(Some(Command::Break { spec, core, cond }))
}

/// `ADDR [LEN] [r|w|rw]`.
fn watch_spec(args: &[&str]) -> Result<BreakSpec, ParseError> {
    let Some(first) = args.first() else {
        return Err(err(format!(
            "`watch`: expected an address\n{}",
            usage("watch")
        )));
    };
    let (addr, phys) = match first.strip_prefix("p:") {
        Some(a) => (a.to_string(), true),
        None => (first.to_string(), false),
    };
    let (mut len, mut read, mut write) = (8u8, false, true);
    for a in &args[1..] {
        match *a {
            "r" => (read, write) = (true, false),
            "w" => (read, write) = (false, true),
            "rw" | "a" => (read, write) = (true, true),
            t => {
                len = number("watch", "a length (1, 2, 4 or 8) or r, w, rw", t)?;
                if ![1, 2, 4, 8].contains(&len) {
                    return Err(err(format!(
                        "`watch`: a length of 1, 2, 4 or 8 bytes, not {len}\n{}",
                        usage("watch")
                    )));
                }
            }
        }
    }
    Ok(BreakSpec::Watch {
        addr,
        phys,
        len,
        read,
        write,
    })
}

/// Parses one line. Blank lines and `#` comments are `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let toks: Vec<&str> = line.split_whitespace().collect();
    let (cmd, args) = (toks[0], &toks[1..]);
    // A count of 0 would do nothing and still look like a command that ran.
    let opt_count = |cmd: &str, args: &[&str]| -> Result<u64, ParseError> {
        match args.first() {
            None => Ok(1),
            Some(t) => {
                no_more(cmd, &args[1..])?;
                match number(cmd, "a count", t)? {
                    0 => Err(err(format!(
                        "`{cmd}`: a count of 0 does nothing (give 1 or more)\n{}",
                        usage(cmd)
                    ))),
                    n => Ok(n),
                }
            }
        }
    };
    let c = match cmd {
        "step" | "s" | "si" => {
            if args.first() == Some(&"core") {
                let Some(c) = args.get(1) else {
                    return Err(err(format!(
                        "`step core`: expected a core number\n{}",
                        usage("step")
                    )));
                };
                Command::Step {
                    core: Some(number("step", "a core number", c)?),
                    count: opt_count("step", &args[2..])?,
                }
            } else {
                Command::Step {
                    core: None,
                    count: opt_count("step", args)?,
                }
            }
        }
        "next" | "n" => Command::Next(opt_count("next", args)?),
        "continue" | "c" | "cont" => {
            no_more("continue", args)?;
            Command::Continue
        }
        "until" | "u" => Command::Until(break_spec("until", args)?),
        "rstep" | "rs" | "reverse-step" => Command::ReverseStep(opt_count("rstep", args)?),
        "rcontinue" | "rc" | "reverse-continue" => {
            no_more("rcontinue", args)?;
            Command::ReverseContinue
        }
        "goto" | "g" => match args.first() {
            Some(t) => {
                no_more("goto", &args[1..])?;
                Command::Goto(number("goto", "a step number", t)?)
            }
            None => {
                return Err(err(format!(
                    "`goto`: expected a step number\n{}",
                    usage("goto")
                )))
            }
        },
        "focus" | "f" | "core" => match args.first() {
            Some(t) => {
                no_more("focus", &args[1..])?;
                Command::Focus(number("focus", "a core number", t)?)
            }
            None => {
                return Err(err(format!(
                    "`focus`: expected a core number\n{}",
                    usage("focus")
                )))
            }
        },
        "break" | "b" | "watch" | "wa" => {
            let cmd = if cmd.starts_with('w') {
                "watch"
            } else {
                "break"
            };
            // `if COND` runs to the end of the line, or up to a final `core C`.
            let Some(i) = args.iter().position(|a| *a == "if") else {
                return break_with(cmd, args.to_vec(), None);
            };
            let (head, tail) = args.split_at(i);
            let (cond, core) = match &tail[1..] {
                [c @ .., k, n] if *k == "core" && !c.is_empty() => (c.join(" "), vec![*k, *n]),
                c => (c.join(" "), Vec::new()),
            };
            if cond.is_empty() {
                return Err(err(format!(
                    "`{cmd} ... if`: expected a condition such as `rax == 1`\n{}",
                    usage(cmd)
                )));
            }
            let mut v = head.to_vec();
            v.extend(core);
            return break_with(cmd, v, Some(cond));
        }
        "delete" | "d" => match args.first() {
            None => Command::Delete(None),
            Some(t) => {
                no_more("delete", &args[1..])?;
                Command::Delete(Some(number("delete", "a breakpoint number", t)?))
            }
        },
        "breaks" | "breakpoints" => {
            no_more("breaks", args)?;
            Command::Breaks
        }
        _ if cmd == "print" || cmd == "p" || cmd.starts_with("print/") || cmd.starts_with("p/") => {
            let fmt = match cmd.split_once('/').map(|(_, f)| f) {
                None => PrintFmt::Both,
                Some("x") => PrintFmt::Hex,
                Some("d") => PrintFmt::Dec,
                Some("cpumask") => PrintFmt::CpuMask,
                Some(f) => {
                    return Err(err(format!(
                        "`print/{f}`: unknown format (expected /x, /d or /cpumask)\n{}",
                        usage("print")
                    )))
                }
            };
            let expr = line[cmd.len()..].trim();
            if expr.is_empty() {
                return Err(err(format!(
                    "`print`: expected an expression such as `rax + 8` or `*(u64*)pmap_p`\n{}",
                    usage("print")
                )));
            }
            Command::Print {
                fmt,
                expr: expr.to_string(),
            }
        }
        _ if cmd.starts_with("x/") => {
            let spec = &cmd[2..];
            let digits = spec.len() - spec.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let count = match &spec[..digits] {
                "" => 1,
                n => match number::<u64>("x", "a count", n)? {
                    0 => {
                        return Err(err(format!(
                            "`{cmd}`: a count of 0 shows nothing (give 1 or more)\n{}",
                            usage("x/NUF")
                        )))
                    }
                    n => n,
                },
            };
            let (mut unit, mut fmt) = (8u8, 'x');
            for ch in spec[digits..].chars() {
                match ch {
                    'b' => unit = 1,
                    'h' => unit = 2,
                    'w' => unit = 4,
                    'g' => unit = 8,
                    'x' | 'd' | 'i' => fmt = ch,
                    _ => {
                        return Err(err(format!(
                        "`{cmd}`: unknown unit or format `{ch}` (units b h w g, formats x d i)\n{}",
                        usage("x/NUF")
                    )))
                    }
                }
            }
            let addr = line[cmd.len()..].trim();
            if addr.is_empty() && fmt != 'i' {
                return Err(err(format!(
                    "`{cmd}`: expected an address\n{}",
                    usage("x/NUF")
                )));
            }
            Command::Examine {
                count,
                unit,
                fmt,
                addr: (!addr.is_empty()).then(|| addr.to_string()),
            }
        }
        "info" => {
            let what = match args.first() {
                Some(w @ (&"cr" | &"apic" | &"gs")) => w.to_string(),
                _ => {
                    return Err(err(format!(
                        "`info`: expected cr, apic or gs\n{}",
                        usage("info")
                    )))
                }
            };
            let core = match &args[1..] {
                [] => None,
                ["core", c] => Some(number("info", "a core", c)?),
                _ => {
                    return Err(err(format!(
                        "`info {what}`: expected nothing or `core C` after it\n{}",
                        usage("info")
                    )))
                }
            };
            Command::Info { what, core }
        }
        "x" | "xp" | "mem" => {
            let phys = cmd == "xp";
            let Some(a) = args.first() else {
                return Err(err(format!(
                    "`{cmd}`: expected an address\n{}",
                    usage(if phys { "xp" } else { "x" })
                )));
            };
            let len = match args.get(1) {
                None => 64,
                Some(t) => {
                    no_more("x", &args[2..])?;
                    number("x", "a length", t)?
                }
            };
            Command::Mem {
                phys,
                addr: a.to_string(),
                len,
            }
        }
        "walk" | "translate" | "t" => match args.first() {
            Some(a) => {
                no_more("walk", &args[1..])?;
                Command::Walk(a.to_string())
            }
            None => {
                return Err(err(format!(
                    "`walk`: expected a linear address\n{}",
                    usage("walk")
                )))
            }
        },
        "tlb" => {
            no_more("tlb", args)?;
            Command::Tlb
        }
        "who" => match args {
            [a] => Command::Who(a.to_string()),
            [] => {
                return Err(err(format!(
                    "`who`: expected a linear address\n{}",
                    usage("who")
                )))
            }
            [_, t, ..] => return Err(err(format!("`who`: unexpected `{t}`\n{}", usage("who")))),
        },
        "regs" | "r" => {
            no_more("regs", args)?;
            Command::Regs
        }
        "disas" | "dis" => {
            // Two arguments are always ADDR N; a single one is ADDR unless it is a
            // plain decimal number, which is N (`disas 5`: five lines around RIP).
            let (addr, rest) = match args {
                [a, _, ..] => (Some(a.to_string()), &args[1..]),
                [t] if number::<u64>("disas", "", t).is_err() || t.starts_with("0x") => {
                    (Some(t.to_string()), &args[1..])
                }
                _ => (None, args),
            };
            let count = match rest.first() {
                None => 12,
                Some(t) => {
                    no_more("disas", &rest[1..])?;
                    number("disas", "a line count", t)?
                }
            };
            Command::Disas { addr, count }
        }
        "cores" => {
            no_more("cores", args)?;
            Command::Cores
        }
        "events" | "ev" => {
            let mut count = 20;
            let mut kind = None;
            let mut core = None;
            let mut i = 0;
            while i < args.len() {
                match args[i] {
                    "kind" => {
                        let Some(k) = args.get(i + 1) else {
                            return Err(err(format!(
                                "`events kind`: expected an event kind\n{}",
                                usage("events")
                            )));
                        };
                        kind = Some(k.to_string());
                        i += 2;
                    }
                    "core" => {
                        let Some(c) = args.get(i + 1) else {
                            return Err(err(format!(
                                "`events core`: expected a core number\n{}",
                                usage("events")
                            )));
                        };
                        core = Some(number("events", "a core number", c)?);
                        i += 2;
                    }
                    t => {
                        count = number("events", "a count, `kind K` or `core C`", t)?;
                        i += 1;
                    }
                }
            }
            Command::Events { count, kind, core }
        }
        "stale" => {
            no_more("stale", args)?;
            Command::Stale
        }
        "status" | "st" => {
            no_more("status", args)?;
            Command::Status
        }
        "syntax" => match args.first() {
            None => Command::Syntax(None),
            Some(&"att") | Some(&"gas") => Command::Syntax(Some(super::Syntax::Att)),
            Some(&"intel") => Command::Syntax(Some(super::Syntax::Intel)),
            Some(t) => {
                return Err(err(format!(
                    "`syntax`: expected `att` or `intel`, found `{t}`"
                )))
            }
        },
        "evict" | "fill" => match args.first() {
            Some(a) => {
                no_more(cmd, &args[1..])?;
                if cmd == "evict" {
                    Command::Evict(a.to_string())
                } else {
                    Command::Fill(a.to_string())
                }
            }
            None => {
                return Err(err(format!(
                    "`{cmd}`: expected a linear address\n{}",
                    usage(cmd)
                )))
            }
        },
        "save" | "save!" | "w" | "w!" => {
            let mut force = cmd.ends_with('!');
            let mut path = None;
            for a in args {
                match *a {
                    "--force" | "-f" => force = true,
                    p if path.is_none() => path = Some(p.to_string()),
                    p => {
                        return Err(err(format!(
                            "`save`: unexpected `{p}` (one path only)\n{}",
                            usage("save")
                        )))
                    }
                }
            }
            let Some(path) = path else {
                return Err(err(format!(
                    "`save`: expected a file path\n{}",
                    usage("save")
                )));
            };
            Command::Save { path, force }
        }
        "help" | "h" | "?" => Command::Help(args.first().map(|s| s.to_string())),
        "quit" | "q" | "exit" | "quit!" | "q!" => {
            no_more("quit", args)?;
            Command::Quit {
                force: cmd.ends_with('!'),
            }
        }
        other => {
            let known: Vec<&str> = HELP
                .iter()
                .filter_map(|(u, _)| u.split_whitespace().next())
                .collect();
            let mut known = known;
            known.dedup();
            return Err(err(format!(
                "unknown command `{other}` (expected one of: {}; `help` explains them)",
                known.join(", ")
            )));
        }
    };
    Ok(Some(c))
}

impl Command {
    /// Whether an empty line repeats this command (the stepping commands, as
    /// in gdb: pressing Enter after `step` steps again).
    pub fn repeats(&self) -> bool {
        matches!(
            self,
            Command::Step { .. }
                | Command::Next(_)
                | Command::Continue
                | Command::ReverseStep(_)
                | Command::ReverseContinue
        )
    }
}

/// Words that follow a command: break/until kinds, filters and modifiers.
const ARG_WORDS: &[&str] = &[
    "label", "addr", "rw", "stale", "fill", "ptwrite", "ipi", "event", "core", "kind", "if", "+ad",
    "att", "intel", "--force",
];

/// Tab completion for both front ends: command names for the first word,
/// then argument keywords, event kinds, labels and symbols. Built once per
/// session (the names do not change while it runs).
#[derive(Clone, Debug, Default)]
pub struct Completions {
    commands: Vec<String>,
    words: Vec<String>,
}

impl Completions {
    /// The names a scenario offers: its symbols (labels included).
    pub fn new<'a>(symbols: impl Iterator<Item = &'a String>) -> Self {
        let mut commands: Vec<String> = HELP
            .iter()
            .filter_map(|(u, _)| u.split_whitespace().next())
            .map(str::to_string)
            .collect();
        commands.sort();
        commands.dedup();
        let mut words: Vec<String> = ARG_WORDS.iter().map(|w| w.to_string()).collect();
        words.extend(crate::scenario::EVENT_KINDS.iter().map(|k| k.to_string()));
        words.extend(symbols.cloned());
        words.sort();
        words.dedup();
        Completions { commands, words }
    }

    /// For the text before the cursor: where the word being completed starts,
    /// and the candidates (sorted) that begin with it.
    pub fn complete(&self, before_cursor: &str) -> (usize, Vec<String>) {
        let start = before_cursor
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + 1);
        let word = &before_cursor[start..];
        let first = before_cursor[..start].trim().is_empty();
        let pool = if first { &self.commands } else { &self.words };
        let found = pool
            .iter()
            .filter(|w| w.starts_with(word))
            .cloned()
            .collect();
        (start, found)
    }
}
