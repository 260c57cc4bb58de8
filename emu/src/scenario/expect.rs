//! Checking a run's expectations: one function per kind of [`Test`], each given
//! only what it reads, returning whether it held and what was found (reports
//! print the second part as "found …").

use super::hang::{HangDiagnosis, Verdict};
use super::plan::{Check, Reg, Test, UseFilter};
use super::run::{stop_kind, StaleRecord};
use super::schema::{Expect, HangKind, KindSpec, StopKind, Value};
use crate::events::EventClass;
use crate::machine::Machine;
use mmu::{StaleUse, WalkResult};

/// What a finished (or paused) run produced, as the expectations read it.
pub(crate) struct Outcome<'a> {
    /// The machine now.
    pub machine: &'a Machine,
    /// Stale uses (of hardware and software caches), in order.
    pub stale: &'a [StaleRecord],
    /// Violations so far.
    pub violations: usize,
    /// Exceptions taken or stopped on: (core, vector).
    pub exceptions: &'a [(u32, u8)],
    /// Events counted for `Events` expectations: `count(class, core)`, where
    /// `core` `None` sums every core (and events from outside any core).
    pub count: &'a dyn Fn(EventClass, Option<usize>) -> u64,
    /// What the `NoStaleEntries(at: …)` check with this index found at its
    /// completion points.
    pub latent: &'a dyn Fn(usize) -> &'a Vec<String>,
    /// The hang diagnosis, when the schedule did not complete.
    pub hang: Option<&'a HangDiagnosis>,
}

/// Whether `c` held, and what was found.
pub(crate) fn check(index: usize, c: &Check, o: &Outcome<'_>) -> (bool, String) {
    match &c.test {
        Test::NoStaleEntries { core, at } => no_stale_entries(o, index, *core, at.is_some()),
        Test::Stopped { core, reason } => stopped(o.machine, *core, *reason),
        Test::Hung(kind) => hung(o.hang, *kind),
        Test::Reg { core, reg, value } => reg_value(o.machine, *core, *reg, *value),
        Test::Mem {
            at,
            root,
            size,
            value,
        } => memory(o.machine, *at, *root, *size, *value),
        Test::StaleUse { filter, present } => stale_uses(o.stale, filter, *present),
        Test::Violations(n) => (o.violations == *n, format!("{}", o.violations)),
        Test::Exception { core, vector } => exception(o.exceptions, *core, *vector),
        Test::Halted(core) => halted(o.machine, *core),
        Test::Events { class, core, count } => {
            let n = (o.count)(*class, *core);
            (n == *count, format!("{n}"))
        }
    }
}

fn reg_value(m: &Machine, core: usize, reg: Reg, want: u64) -> (bool, String) {
    let st = &m.cores[core].cpu.state;
    let got = match reg {
        Reg::Rip => st.rip,
        Reg::Rflags => st.rflags,
        Reg::Cr2 => st.cr2,
        Reg::Cr3 => st.cr3,
        Reg::Gpr(i) => st.gpr[i],
    };
    (got == want, format!("{got:#x}"))
}

/// `size` bytes at `at`: physical, or linear through the tables at `root` as a
/// fresh walk sees them now (not through any core's TLB).
fn memory(m: &Machine, at: u64, root: Option<u64>, size: usize, want: u64) -> (bool, String) {
    // Each page the value spans is translated on its own.
    match super::checks::read_expected(m, root, at, size) {
        Ok(g) => (
            g == want & crate::flags::mask(size as u32),
            format!("{g:#x}"),
        ),
        Err(e) => (false, e),
    }
}

fn stale_uses(stale: &[StaleRecord], f: &UseFilter, present: bool) -> (bool, String) {
    let n = stale.iter().filter(|r| stale_matches(r, f)).count();
    ((n > 0) == present, format!("{n} matching stale use(s)"))
}

fn exception(exceptions: &[(u32, u8)], core: usize, vector: u8) -> (bool, String) {
    let hit = exceptions
        .iter()
        .any(|(c, v)| *c == core as u32 && *v == vector);
    let seen: Vec<String> = exceptions
        .iter()
        .filter(|(c, _)| *c == core as u32)
        .map(|(_, v)| format!("{v:#x}"))
        .collect();
    (hit, format!("vectors [{}]", seen.join(", ")))
}

fn halted(m: &Machine, core: usize) -> (bool, String) {
    let h = m.cores[core].cpu.state.halted;
    (
        h,
        if h {
            "halted".into()
        } else {
            "not halted".into()
        },
    )
}

/// Stale entries cached now (on `core`, or every core), or, for a check with a
/// completion point, what it found there.
fn no_stale_entries(
    o: &Outcome<'_>,
    index: usize,
    core: Option<usize>,
    at_label: bool,
) -> (bool, String) {
    let m = o.machine;
    let found: Vec<String> = if at_label {
        (o.latent)(index).clone()
    } else {
        m.cores
            .iter()
            .enumerate()
            .filter(|(c, _)| core.is_none_or(|o| o == *c))
            .flat_map(|(_, k)| k.mmu.stale_entries(&m.tracker))
            .map(|l| l.to_string())
            // A software cache's real PTEs belong to no core's caches.
            .chain(
                core.is_none()
                    .then(|| m.tracker.soft_stale_entries())
                    .into_iter()
                    .flatten()
                    .map(|d| d.to_string()),
            )
            .collect()
    };
    if found.is_empty() {
        (true, "none".into())
    } else {
        (false, found.join("; "))
    }
}

/// The verdict kind a `Hung` expectation compares.
pub(crate) fn hang_kind(v: &Verdict) -> HangKind {
    match v {
        Verdict::Deadlock { .. } => HangKind::Deadlock,
        Verdict::ScheduleWaits { .. } => HangKind::ScheduleWaits,
        Verdict::Unscheduled { .. } => HangKind::Unscheduled,
        Verdict::Budget { .. } => HangKind::Budget,
        Verdict::Stopped { .. } => HangKind::Stopped,
    }
}

fn hung(h: Option<&HangDiagnosis>, want: Option<HangKind>) -> (bool, String) {
    match h {
        Some(h) => {
            let k = hang_kind(&h.verdict);
            (want.is_none_or(|w| w == k), format!("hung ({k:?})"))
        }
        None => (false, "the schedule completed".into()),
    }
}

fn stopped(m: &Machine, core: usize, reason: Option<StopKind>) -> (bool, String) {
    match &m.cores[core].stopped {
        Some(r) => (
            reason.is_none_or(|k| k == stop_kind(r)),
            format!("stopped ({:?}): {r}", stop_kind(r)),
        ),
        None => (false, "not stopped".into()),
    }
}

fn stale_matches(r: &StaleRecord, f: &UseFilter) -> bool {
    f.core.is_none_or(|c| r.detail.ctx.core == c as u32)
        && f.va.is_none_or(|a| {
            // Any address inside the page the stale entry maps matches, whatever
            // its size (a 2 MiB entry covers 512 small pages).
            let mask = match r.detail.cached {
                WalkResult::Leaf { size, .. } => !size.offset_mask(),
                _ => !0xfff,
            };
            r.detail.va.raw() & mask == a & mask
        })
        && kind_matches(f.kind, &r.detail)
        && (!f.software || r.detail.derived.is_some())
}

fn kind_matches(k: Option<KindSpec>, su: &StaleUse) -> bool {
    match k {
        None => true,
        Some(KindSpec::Walk) => {
            su.access.is_none() || matches!(su.cached, WalkResult::Table { .. })
        }
        Some(k) => {
            let want = match k {
                KindSpec::Read => mmu::AccessKind::Read,
                KindSpec::Write => mmu::AccessKind::Write,
                _ => mmu::AccessKind::Execute,
            };
            su.access.is_some_and(|a| a.kind == want)
                && matches!(su.cached, WalkResult::Leaf { .. })
        }
    }
}

/// Human text for an expectation.
pub fn describe(e: &Expect) -> String {
    let v = |v: &Value| match v {
        Value::Num(n) => format!("{n:#x}"),
        Value::Sym(s) => s.clone(),
    };
    match e {
        Expect::Reg { core, reg, value } => format!("core {core} {reg} == {}", v(value)),
        Expect::Mem {
            at,
            space,
            size,
            value,
        } => format!(
            "{}-byte memory at {}{} == {}",
            size.unwrap_or(8),
            v(at),
            space
                .as_ref()
                .map_or(" (physical)".to_string(), |s| format!(" in {s}")),
            v(value)
        ),
        Expect::StaleUse { core, va, kind } => format!("a stale use{}", filt(core, va, kind)),
        Expect::NoStaleUse { core, va, kind } => format!("no stale use{}", filt(core, va, kind)),
        Expect::SoftStaleUse { core, va, kind } => {
            format!("a software-TLB stale use{}", filt(core, va, kind))
        }
        Expect::NoSoftStaleUse { core, va, kind } => {
            format!("no software-TLB stale use{}", filt(core, va, kind))
        }
        Expect::Violations(n) => format!("{n} violation(s)"),
        Expect::Exception { core, vector } => format!("core {core} took vector {vector:#x}"),
        Expect::Halted(c) => format!("core {c} halted"),
        Expect::NoStaleEntries { core, at } => format!(
            "no stale entry cached{}{}",
            core.map_or(String::new(), |c| format!(" on core {c}")),
            at.as_ref().map_or(" at the end".to_string(), |l| format!(
                " when a core reaches `{l}`"
            ))
        ),
        Expect::Hung { verdict } => match verdict {
            Some(k) => format!("the schedule hangs ({k:?})"),
            None => "the schedule hangs".into(),
        },
        Expect::Stopped { core, reason } => match reason {
            Some(k) => format!("core {core} stopped ({k:?})"),
            None => format!("core {core} stopped"),
        },
        Expect::Events { kind, core, count } => format!(
            "{count} `{kind}` event(s){}",
            core.map_or(String::new(), |c| format!(" on core {c}"))
        ),
    }
}

fn filt(core: &Option<usize>, va: &Option<Value>, kind: &Option<KindSpec>) -> String {
    let mut s = String::new();
    if let Some(c) = core {
        s += &format!(" on core {c}");
    }
    if let Some(va) = va {
        s += &match va {
            Value::Num(n) => format!(" at va {n:#x}"),
            Value::Sym(x) => format!(" at va {x}"),
        };
    }
    if let Some(k) = kind {
        s += &format!(" ({k:?})");
    }
    s
}
