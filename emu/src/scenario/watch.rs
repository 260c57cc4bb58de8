//! Watched words: named memory words (a CPU mask, a lock, a generation count)
//! whose every read and write by a core's instruction is recorded with the
//! value and the bits that changed, so that a stale-use explanation can say
//! which read of the mask left the using core out.
//!
//! The words are resolved to physical addresses once, by [`super::Plan::compile`];
//! the runner sees accesses through the machine's data hook
//! ([`crate::events::EventSink::data`]), which reports each access's bytes, so
//! nothing is polled. The runner keeps each word's current value from the
//! pristine machine on: a write's old value is that, and a read resynchronises
//! it. Writes made from outside the guest (the debugger) are not seen until the
//! next read.

use super::build::{resolve, suggest, Built};
use super::diag::Problem;
use super::schema::Watch;
use serde::Serialize;
use std::collections::BTreeMap;

/// A watched word, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchWord {
    /// Its name in the scenario.
    pub name: String,
    /// Physical address.
    pub pa: u64,
    /// Bytes (1, 2, 4 or 8).
    pub len: u8,
    /// Value in the pristine machine.
    pub initial: u64,
}

/// One read or write of a watched word.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchAccess {
    /// The word's name.
    pub name: String,
    /// Core.
    pub core: u32,
    /// Global step.
    pub step: u64,
    /// RIP of the instruction.
    pub rip: u64,
    /// A write (else a read).
    pub write: bool,
    /// The word before the access (equal to `new` for a read).
    pub old: u64,
    /// The word after the access (the value read, for a read).
    pub new: u64,
}

impl WatchAccess {
    /// Bits set by a write.
    pub fn set(&self) -> u64 {
        !self.old & self.new
    }

    /// Bits cleared by a write.
    pub fn cleared(&self) -> u64 {
        self.old & !self.new
    }
}

/// `{0,2}`: the bit numbers set in `v` (a CPU mask reads as the set of CPUs).
pub fn bits(v: u64) -> String {
    let b: Vec<String> = (0..64)
        .filter(|i| v >> i & 1 == 1)
        .map(|i| i.to_string())
        .collect();
    format!("{{{}}}", b.join(","))
}

/// A watched read of a mask that left the using core's bit out, between the
/// fill of the entry and its stale use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissedBit {
    /// The read.
    pub read: WatchAccess,
    /// The core whose bit was clear (the core that used the stale entry).
    pub core: u32,
    /// The write that cleared it before the read.
    pub cleared_by: WatchAccess,
    /// The first write after the read that set it again, if any by the use.
    pub set_again_by: Option<WatchAccess>,
}

/// Resolves the scenario's `watch` map against the build: an address in an
/// address space is walked through its page tables (the word must not cross a
/// page), a physical one is taken as is; each must lie in memory.
pub(crate) fn resolve_words(
    watch: &BTreeMap<String, Watch>,
    built: &Built,
) -> Result<Vec<WatchWord>, Problem> {
    let m = &built.machine;
    let mut out = Vec::new();
    for (name, w) in watch {
        let p = format!("watch.{name}");
        let at = resolve(&w.at, &built.symbols).map_err(|e| Problem::at(format!("{p}.at"), e))?;
        let len = match w.size {
            None => 8u8,
            Some(z @ (1 | 2 | 4 | 8)) => z,
            Some(_) => {
                return Err(Problem::at(
                    format!("{p}.size"),
                    "size must be 1, 2, 4 or 8",
                ))
            }
        };
        let pa = match &w.space {
            None => at,
            Some(sp) => {
                let Some(info) = built.spaces.get(sp) else {
                    return Err(Problem::at(
                        format!("{p}.space"),
                        format!(
                            "unknown address space `{sp}`{}",
                            suggest(sp, built.spaces.keys())
                        ),
                    ));
                };
                if at & 0xfff > 0x1000 - len as u64 {
                    return Err(Problem::at(
                        format!("{p}.at"),
                        format!("the {len}-byte word at {at:#x} crosses a page; expected it inside one page"),
                    ));
                }
                let walked = mmu::walk(
                    &m.mem,
                    mmu::VirtAddr(at),
                    mmu::WalkStart::root(info.root),
                    mmu::WalkParams {
                        maxphyaddr: m.config.mmu.maxphyaddr,
                        huge_1g: m.config.mmu.huge_1g,
                        nxe: true,
                    },
                    0,
                    &mut mmu::Path::new(),
                );
                match walked {
                    Ok(mmu::WalkResult::Leaf { frame, size, .. }) => {
                        frame.raw() + (at & size.offset_mask())
                    }
                    _ => {
                        return Err(Problem::at(
                            format!("{p}.at"),
                            format!("{at:#x} is not mapped in address space `{sp}`; expected a mapped address (or no `space` for a physical one)"),
                        ))
                    }
                }
            }
        };
        let mut b = [0u8; 8];
        m.mem
            .read(mmu::PhysAddr(pa), &mut b[..len as usize])
            .map_err(|e| {
                Problem::at(
                    format!("{p}.at"),
                    format!("physical {pa:#x} is not in the machine's memory: {e}"),
                )
            })?;
        out.push(WatchWord {
            name: name.clone(),
            pa,
            len,
            initial: u64::from_le_bytes(b),
        });
    }
    Ok(out)
}

/// The runner's record of the watched words: current values and every access.
#[derive(Clone, Debug, Default)]
pub(crate) struct Watcher {
    words: Vec<(WatchWord, u64)>,
    /// Every access, in order.
    pub(crate) log: Vec<WatchAccess>,
}

impl Watcher {
    pub(crate) fn new(words: &[WatchWord]) -> Self {
        Watcher {
            words: words.iter().map(|w| (w.clone(), w.initial)).collect(),
            log: Vec::new(),
        }
    }

    /// Watches one more word (the debugger's watchpoints), whose value now is
    /// `value`; a name already watched is left as it is.
    pub(crate) fn add(&mut self, word: WatchWord, value: u64) {
        if !self.words.iter().any(|(w, _)| w.name == word.name) {
            self.words.push((word, value));
        }
    }

    /// Stops watching a word added by [`Watcher::add`].
    pub(crate) fn remove(&mut self, name: &str) {
        self.words.retain(|(w, _)| w.name != name);
    }

    /// Whether any word is watched.
    pub(crate) fn active(&self) -> bool {
        !self.words.is_empty()
    }

    /// One data access; the accesses of watched words it touches, recorded and
    /// returned (indices into the log).
    pub(crate) fn access(
        &mut self,
        core: u32,
        step: u64,
        rip: u64,
        pa: u64,
        bytes: &[u8],
        write: bool,
    ) -> std::ops::Range<usize> {
        let first = self.log.len();
        let end = pa + bytes.len() as u64;
        for (w, cur) in &mut self.words {
            let wend = w.pa + w.len as u64;
            if pa >= wend || w.pa >= end {
                continue;
            }
            let mut v = cur.to_le_bytes();
            for (i, b) in bytes.iter().enumerate() {
                let a = pa + i as u64;
                if a >= w.pa && a < wend {
                    v[(a - w.pa) as usize] = *b;
                }
            }
            let new = u64::from_le_bytes(v);
            let old = if write { *cur } else { new };
            *cur = new;
            self.log.push(WatchAccess {
                name: w.name.clone(),
                core,
                step,
                rip,
                write,
                old,
                new,
            });
        }
        first..self.log.len()
    }

    /// The accesses from step `from` to step `to` (inclusive).
    pub(crate) fn between(&self, from: u64, to: u64) -> Vec<WatchAccess> {
        self.log
            .iter()
            .filter(|a| a.step >= from && a.step <= to)
            .cloned()
            .collect()
    }

    /// The reads in `window` by another core that saw bit `core` clear after a
    /// write had cleared it: the mask reads that left the using core out. Each
    /// (reader, word, value) once.
    pub(crate) fn missed(&self, window: &[WatchAccess], core: u32) -> Vec<MissedBit> {
        if core >= 64 {
            return Vec::new();
        }
        let bit = 1u64 << core;
        let mut out: Vec<MissedBit> = Vec::new();
        for r in window.iter().filter(|a| !a.write && a.core != core) {
            if r.new & bit != 0 {
                continue;
            }
            if out
                .iter()
                .any(|m| m.read.core == r.core && m.read.name == r.name && m.read.new == r.new)
            {
                continue;
            }
            let same = |a: &&WatchAccess| a.write && a.name == r.name;
            let Some(cleared) = self
                .log
                .iter()
                .filter(same)
                .rfind(|a| a.step <= r.step && a.cleared() & bit != 0)
            else {
                continue;
            };
            let set_again = self
                .log
                .iter()
                .filter(same)
                .find(|a| a.step > r.step && a.set() & bit != 0)
                .cloned();
            out.push(MissedBit {
                read: r.clone(),
                core,
                cleared_by: cleared.clone(),
                set_again_by: set_again,
            });
        }
        out
    }
}
