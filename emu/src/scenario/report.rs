//! Human-readable and JSON forms of a run report.

use super::run::{Ending, RunReport, StaleRecord};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Where a core is, for reports: the label at its RIP, or, for a core halted
/// by HLT (`halted` and it has retired an instruction; a parked core never
/// ran one), the HLT's own location as `label+off`. After HLT, RIP already
/// points at the next instruction (SDM Vol. 2A, HLT), whose label belongs to
/// other code.
pub fn core_site(
    labels: &BTreeMap<u64, String>,
    rip: u64,
    halted: bool,
    retired: u64,
) -> Option<String> {
    if halted && retired > 0 {
        // HLT is one byte (F4).
        name_in(labels, rip.wrapping_sub(1))
    } else {
        labels.get(&rip).cloned()
    }
}

/// `label+0x12` for `addr` in `labels` (the nearest label at or before it,
/// within 64 KiB), or `None`.
pub(crate) fn name_in(labels: &BTreeMap<u64, String>, addr: u64) -> Option<String> {
    let (base, name) = labels.range(..=addr).next_back()?;
    let off = addr - base;
    if off >= 0x10000 {
        return None;
    }
    Some(if off == 0 {
        name.clone()
    } else {
        format!("{name}+{off:#x}")
    })
}

/// Appends ` <label+off>` after every `rip 0x...` in a line of text, naming
/// addresses with `name_of`.
pub(crate) fn symbolize(line: &str, name_of: &dyn Fn(u64) -> Option<String>) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = line;
    while let Some(i) = rest.find("rip 0x") {
        let start = i + 4;
        let end = rest[start + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .map_or(rest.len(), |j| start + 2 + j);
        out.push_str(&rest[..end]);
        if let Ok(a) = u64::from_str_radix(&rest[start + 2..end], 16) {
            if let Some(n) = name_of(a) {
                out.push_str(&format!(" <{n}>"));
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl RunReport {
    /// `label+0x12` for an address inside labelled code (the nearest label at or
    /// before it, within 64 KiB), or `None`.
    /// With C source lines (objects compiled with `-g`), the name is followed
    /// by the `file:line` (`pmap_set_active+0x4 mine.c:7`).
    pub fn name_of(&self, addr: u64) -> Option<String> {
        let name = super::hang::name_in(&self.labels, addr, 0x10000)?;
        Some(match super::object::line_of(&self.lines, addr) {
            Some(l) => format!("{name} {l}"),
            None => name,
        })
    }

    /// Appends ` <label+off>` after every `rip 0x...` in a line of text.
    fn symbolize(&self, line: &str) -> String {
        symbolize(line, &|a| self.name_of(a))
    }

    /// `rip 0x… <label+off>`.
    fn at(&self, rip: u64) -> String {
        match self.name_of(rip) {
            Some(n) => format!("<{n}>"),
            None => format!("rip {rip:#x}"),
        }
    }

    /// A stale use's watched accesses (runs of equal reads folded) and the mask
    /// reads that left the using core out.
    fn watched_text(&self, s: &mut String, r: &StaleRecord) {
        /// At most this many lines of watched accesses per stale use.
        const MAX_LINES: usize = 40;
        if r.watched.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "    watched words from the fill (step {}) to the use (step {}):",
            r.detail.filled.step, r.detail.ctx.step
        );
        let mut lines = 0;
        let mut i = 0;
        let w = &r.watched;
        while i < w.len() {
            let a = &w[i];
            // The read half of a read-modify-write: the write line says it all.
            if !a.write
                && w.get(i + 1).is_some_and(|b| {
                    b.write && (b.core, b.step, &b.name) == (a.core, a.step, &a.name)
                })
            {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while !a.write
                && j < w.len()
                && !w[j].write
                && (w[j].core, &w[j].name, w[j].new) == (a.core, &a.name, a.new)
            {
                j += 1;
            }
            if lines == MAX_LINES {
                let _ = writeln!(s, "      ... and {} more access(es)", w.len() - i);
                break;
            }
            let text = crate::trace::text::watched(&a.name, a.write, a.old, a.new);
            let steps = if j - i > 1 {
                format!("steps {}..{}", a.step, w[j - 1].step)
            } else {
                format!("step {}", a.step)
            };
            let times = if j - i > 1 {
                format!(" ({} times)", j - i)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "      {steps} core {} {text}{times} {}",
                a.core,
                self.at(a.rip)
            );
            lines += 1;
            i = j;
        }
        for m in &r.missed {
            let again = match &m.set_again_by {
                Some(a) => format!(", set again at step {} {}", a.step, self.at(a.rip)),
                None => ", not set again before the use".into(),
            };
            let _ = writeln!(
                s,
                "    missed: core {} read {} = {} at step {} {} while core {}'s bit was clear (cleared at step {} {}{again})",
                m.read.core,
                m.read.name,
                super::watch::bits(m.read.new),
                m.read.step,
                self.at(m.read.rip),
                m.core,
                m.cleared_by.step,
                self.at(m.cleared_by.rip),
            );
        }
    }

    /// The human summary `tlbemu run` prints: per core, every stale use with its
    /// explanation, violations, and each expectation with expected vs actual.
    pub fn to_text(&self, expects_violations: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "scenario {}: {} steps", self.name, self.steps);
        match &self.ending {
            Ending::Completed => {
                let _ = writeln!(s, "schedule: completed");
            }
            Ending::Stuck { index, reason } => {
                let _ = writeln!(s, "schedule: STUCK at schedule[{index}]: {reason}");
            }
        }
        if let Some(h) = &self.hang {
            s.push_str(&h.to_text());
        }
        for c in &self.cores {
            // A halted core's label names its HLT, not the RIP after it.
            let (at_rip, at_hlt) = match &c.label {
                Some(l) if c.status == "halted" && c.retired > 0 => {
                    (String::new(), format!(" (HLT at <{l}>)"))
                }
                Some(l) => (format!(" <{l}>"), String::new()),
                None => (String::new(), String::new()),
            };
            let _ = writeln!(
                s,
                "core {}: {} instructions retired, rip {:#x}{at_rip}, {}{at_hlt}",
                c.core, c.retired, c.rip, c.status
            );
        }
        let _ = writeln!(
            s,
            "stale uses: {} ({} violation{})",
            self.stale_uses.len(),
            self.violations,
            if self.violations == 1 { "" } else { "s" }
        );
        for (i, r) in self.stale_uses.iter().enumerate() {
            let tag = if r.violation { "VIOLATION" } else { "allowed" };
            let _ = writeln!(s, "  #{} [{tag}]", i + 1);
            if let Some(why) = &r.why {
                let _ = writeln!(s, "    rule: {}", self.symbolize(why));
            }
            for line in r.detail.to_string().lines() {
                let _ = writeln!(s, "    {}", self.symbolize(line));
            }
            if r.count > 1 {
                let _ = writeln!(
                    s,
                    "    the same instruction used this entry {} times, through step {} (reported once)",
                    r.count, r.last_step
                );
            }
            self.watched_text(&mut s, r);
        }
        if !self.latent_violations.is_empty() {
            let _ = writeln!(
                s,
                "stale entries left at completion points: {} (each a violation)",
                self.latent_violations.len()
            );
            for (i, l) in self.latent_violations.iter().enumerate() {
                let _ = writeln!(s, "  L{} [VIOLATION] {}", i + 1, self.symbolize(l));
            }
        }
        if !self.expectations.is_empty() {
            let _ = writeln!(s, "expectations:");
            for e in &self.expectations {
                let _ = writeln!(
                    s,
                    "  {} expect[{}]: {} (found {})",
                    if e.ok { "ok  " } else { "FAIL" },
                    e.index,
                    e.what,
                    e.actual
                );
            }
        }
        if self.violations > 0 && !expects_violations {
            let _ = writeln!(
                s,
                "unexpected: {} violation(s) and the scenario expects none",
                self.violations
            );
        }
        for c in self.stopped.iter().filter(|c| !c.expected) {
            let _ = writeln!(
                s,
                "unexpected: core {} stopped ({}) and no expectation says it should",
                c.core, c.reason
            );
        }
        let _ = writeln!(
            s,
            "result: {}",
            if self.passed(expects_violations) {
                "PASS"
            } else {
                "FAIL"
            }
        );
        s
    }

    /// The JSON form (`docs/run-json.md` documents the schema).
    pub fn to_json(&self, expects_violations: bool) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("schema".into(), "tlbemu-run/1".into());
            o.insert("passed".into(), self.passed(expects_violations).into());
        }
        v
    }
}
