//! The machine's event stream: everything architecturally interesting, with the
//! global step number and the core, in a deterministic order.
//!
//! Sinks are pluggable ([`CollectSink`], [`CountSink`], [`NullSink`]). A sink that
//! reports `enabled() == false` lets the step path skip building events, which is
//! how benchmarks and fast exploration stay cheap when nobody listens.

use crate::apic::IpiDest;
use crate::exception::{EmuError, Exception};
use mmu::{AccessKind, MmuEvent, PhysAddr, VirtAddr};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Global step number (1-based; the step during which it happened).
    pub step: u64,
    /// Core it happened on.
    pub core: u32,
    /// What happened.
    pub kind: EventKind,
}

/// Why a core stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// An exception with no IDT to deliver it through.
    UnhandledException {
        /// The exception.
        exception: Exception,
        /// RIP reported with it (the faulting instruction for faults).
        rip: u64,
    },
    /// A fault while delivering #DF: the core shut down.
    TripleFault {
        /// The last fault.
        last: Exception,
        /// RIP at the time.
        rip: u64,
    },
    /// The emulator could not go on (unsupported instruction, missing memory).
    Error(EmuError),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::UnhandledException { exception, rip } => {
                write!(
                    f,
                    "unhandled exception {exception} at rip {rip:#x} (no IDT loaded)"
                )
            }
            StopReason::TripleFault { last, rip } => {
                write!(
                    f,
                    "triple fault ({last} while delivering #DF) at rip {rip:#x}"
                )
            }
            StopReason::Error(e) => write!(f, "{e}"),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// An instruction retired.
    Retired {
        /// Its RIP.
        rip: u64,
        /// Its length.
        len: u8,
    },
    /// Something in the core's MMU or the coherence tracker.
    Mmu(MmuEvent),
    /// A MOV to CR0, CR3 or CR4.
    ControlWrite {
        /// 0, 3 or 4.
        cr: u8,
        /// Value before.
        old: u64,
        /// Value after.
        new: u64,
    },
    /// An IPI was sent (ICR or self-IPI write).
    IpiSent {
        /// Vector.
        vector: u8,
        /// Destination as written.
        dest: IpiDest,
        /// Cores whose IRR got the vector, as a bit mask.
        targets: u64,
    },
    /// An EOI retired an in-service vector (None: nothing was in service).
    Eoi {
        /// The vector.
        vector: Option<u8>,
    },
    /// An external interrupt was accepted and delivered through the IDT.
    Interrupt {
        /// Vector.
        vector: u8,
        /// RIP interrupted.
        from: u64,
        /// Handler entry.
        handler: u64,
    },
    /// An exception was delivered through the IDT.
    Exception {
        /// What the instruction raised.
        raised: Exception,
        /// What was finally delivered (a #DF if delivery of `raised` faulted).
        delivered: Exception,
        /// RIP pushed in the frame.
        from: u64,
        /// Handler entry.
        handler: u64,
    },
    /// The core executed HLT.
    Halted {
        /// RIP after the HLT.
        rip: u64,
    },
    /// A halted core woke for an interrupt.
    Woken,
    /// The core stopped for good.
    Stopped(StopReason),
    /// A core's instruction read or wrote a word the scenario watches (made by
    /// the scenario runner, not the machine).
    Watched {
        /// The word's name.
        name: String,
        /// A write (else a read).
        write: bool,
        /// The word before (equal to `new` for a read).
        old: u64,
        /// The word after (the value read, for a read).
        new: u64,
    },
}

impl EventKind {
    /// A short stable name for counting and filtering ("retired", "tlb-fill", ...).
    pub fn name(&self) -> &'static str {
        self.class().name()
    }

    /// The kind without its payload.
    #[inline]
    pub fn class(&self) -> EventClass {
        match self {
            EventKind::Retired { .. } => EventClass::Retired,
            EventKind::Mmu(m) => match m {
                MmuEvent::TlbFill { .. } => EventClass::TlbFill,
                MmuEvent::PscFill { .. } => EventClass::PscFill,
                MmuEvent::Eviction { .. } => EventClass::Eviction,
                MmuEvent::Invalidation { .. } => EventClass::Invalidation,
                MmuEvent::PagingWrite { .. } => EventClass::PagingWrite,
                MmuEvent::BecameStale { .. } => EventClass::BecameStale,
                MmuEvent::BecameFresh { .. } => EventClass::BecameFresh,
                MmuEvent::StaleUse(_) => EventClass::StaleUse,
                MmuEvent::DirtyRewalk { .. } => EventClass::DirtyRewalk,
                MmuEvent::AccessedDirtySet { .. } => EventClass::AdSet,
            },
            EventKind::ControlWrite { .. } => EventClass::CrWrite,
            EventKind::IpiSent { .. } => EventClass::IpiSent,
            EventKind::Eoi { .. } => EventClass::Eoi,
            EventKind::Interrupt { .. } => EventClass::Interrupt,
            EventKind::Exception { .. } => EventClass::Exception,
            EventKind::Halted { .. } => EventClass::Halt,
            EventKind::Woken => EventClass::Wake,
            EventKind::Stopped(_) => EventClass::Stopped,
            EventKind::Watched { .. } => EventClass::Watch,
        }
    }
}

/// What kind of event, without the payload: the unit in which consumers say what
/// they want built (a scenario's `Until::Event` and `Events` expectations, trace
/// filters). The discriminants are the bit positions in [`ClassSet`] and follow
/// [`EventClass::NAMES`], so a mask over the names is a mask over the classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum EventClass {
    /// `retired`: an instruction retired.
    Retired,
    /// `tlb-fill`.
    TlbFill,
    /// `psc-fill`.
    PscFill,
    /// `eviction`.
    Eviction,
    /// `invalidation`.
    Invalidation,
    /// `paging-write`.
    PagingWrite,
    /// `became-stale`.
    BecameStale,
    /// `became-fresh`.
    BecameFresh,
    /// `stale-use`.
    StaleUse,
    /// `dirty-rewalk`.
    DirtyRewalk,
    /// `ad-set`.
    AdSet,
    /// `cr-write`.
    CrWrite,
    /// `ipi-sent`.
    IpiSent,
    /// `eoi`.
    Eoi,
    /// `interrupt`.
    Interrupt,
    /// `exception`.
    Exception,
    /// `halt`.
    Halt,
    /// `wake`.
    Wake,
    /// `stopped`.
    Stopped,
    /// `watch`: a watched word was read or written.
    Watch,
}

impl EventClass {
    /// Every class, in bit order.
    pub const ALL: [EventClass; 20] = [
        EventClass::Retired,
        EventClass::TlbFill,
        EventClass::PscFill,
        EventClass::Eviction,
        EventClass::Invalidation,
        EventClass::PagingWrite,
        EventClass::BecameStale,
        EventClass::BecameFresh,
        EventClass::StaleUse,
        EventClass::DirtyRewalk,
        EventClass::AdSet,
        EventClass::CrWrite,
        EventClass::IpiSent,
        EventClass::Eoi,
        EventClass::Interrupt,
        EventClass::Exception,
        EventClass::Halt,
        EventClass::Wake,
        EventClass::Stopped,
        EventClass::Watch,
    ];

    /// The stable names (scenario files, `trace show --kind`, reports), indexed
    /// like [`EventClass::ALL`].
    pub const NAMES: [&'static str; 20] = [
        "retired",
        "tlb-fill",
        "psc-fill",
        "eviction",
        "invalidation",
        "paging-write",
        "became-stale",
        "became-fresh",
        "stale-use",
        "dirty-rewalk",
        "ad-set",
        "cr-write",
        "ipi-sent",
        "eoi",
        "interrupt",
        "exception",
        "halt",
        "wake",
        "stopped",
        "watch",
    ];

    /// Its stable name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The class with this stable name.
    pub fn from_name(name: &str) -> Option<EventClass> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }

    /// Its bit in a [`ClassSet`].
    #[inline]
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// A set of [`EventClass`]es as a bit mask (bit `c as u32` for class `c`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassSet(pub u32);

impl ClassSet {
    /// No class.
    pub const NONE: ClassSet = ClassSet(0);
    /// Every class.
    pub const ALL: ClassSet = ClassSet((1 << EventClass::ALL.len()) - 1);

    /// Whether `c` is in the set.
    #[inline]
    pub const fn has(self, c: EventClass) -> bool {
        self.0 & c.bit() != 0
    }

    /// The set with `c` added.
    #[must_use]
    pub const fn with(self, c: EventClass) -> ClassSet {
        ClassSet(self.0 | c.bit())
    }

    /// The union.
    #[must_use]
    pub const fn union(self, o: ClassSet) -> ClassSet {
        ClassSet(self.0 | o.0)
    }
}

/// Receiver of events.
pub trait EventSink {
    /// When false, the machine does not build events.
    fn enabled(&self) -> bool {
        true
    }
    /// Whether events of `class` are wanted (asked only when [`EventSink::enabled`]
    /// says yes). The machine asks before building a `retired` event, the one
    /// event every instruction produces, so a sink that consumes only rare kinds
    /// (the scenario oracle without a trace) pays one predictable branch per
    /// instruction instead of building and discarding an event. Default: every
    /// class.
    #[inline]
    fn wants(&self, class: EventClass) -> bool {
        let _ = class;
        true
    }
    /// One event.
    fn event(&mut self, ev: Event);
    /// Whether this sink wants [`EventSink::access`] calls. Asked once per step,
    /// so a sink that says no (the default) costs one untaken branch per
    /// translation and nothing else.
    fn observes_accesses(&self) -> bool {
        false
    }
    /// A successful translation a core's instruction (or its delivery of an
    /// interrupt) made during step `step`: linear `la` became physical `pa` for
    /// `kind`. Only called when [`EventSink::observes_accesses`] said yes. This is
    /// not an event (it is not recorded in traces): oracles that must know which
    /// pages an instruction touched, such as the scenario runner's software-TLB
    /// check, use it.
    fn access(&mut self, core: u32, step: u64, la: VirtAddr, pa: PhysAddr, kind: AccessKind) {
        let _ = (core, step, la, pa, kind);
    }
    /// The bytes a core's instruction (or its delivery of an interrupt) read from
    /// or wrote to physical memory at `pa` during step `step`, the instruction at
    /// `rip`; one call per page-contiguous piece. Instruction fetches are not
    /// reported. Only called when [`EventSink::observes_accesses`] said yes. Like
    /// [`EventSink::access`] this is not an event: the scenario runner's watched
    /// words and hang diagnosis use it to see values, which translations alone
    /// do not carry.
    fn data(&mut self, core: u32, step: u64, rip: u64, pa: PhysAddr, bytes: &[u8], write: bool) {
        let _ = (core, step, rip, pa, bytes, write);
    }
}

/// Drops everything (and says so, so nothing is built).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn enabled(&self) -> bool {
        false
    }
    fn event(&mut self, _ev: Event) {}
}

/// Keeps every event.
#[derive(Clone, Debug, Default)]
pub struct CollectSink {
    /// The events, in order.
    pub events: Vec<Event>,
}

impl EventSink for CollectSink {
    fn event(&mut self, ev: Event) {
        self.events.push(ev);
    }
}

/// Counts events by [`EventKind::name`].
#[derive(Clone, Debug, Default)]
pub struct CountSink {
    /// Count per kind name (sorted, so printing it is deterministic).
    pub counts: BTreeMap<&'static str, u64>,
}

impl EventSink for CountSink {
    fn event(&mut self, ev: Event) {
        *self.counts.entry(ev.kind.name()).or_insert(0) += 1;
    }
}

impl<T: EventSink + ?Sized> EventSink for &mut T {
    fn enabled(&self) -> bool {
        (**self).enabled()
    }
    fn wants(&self, class: EventClass) -> bool {
        (**self).wants(class)
    }
    fn event(&mut self, ev: Event) {
        (**self).event(ev)
    }
    fn observes_accesses(&self) -> bool {
        (**self).observes_accesses()
    }
    fn access(&mut self, core: u32, step: u64, la: VirtAddr, pa: PhysAddr, kind: AccessKind) {
        (**self).access(core, step, la, pa, kind)
    }
    fn data(&mut self, core: u32, step: u64, rip: u64, pa: PhysAddr, bytes: &[u8], write: bool) {
        (**self).data(core, step, rip, pa, bytes, write)
    }
}

/// FNV-1a over the JSON form of each event: a stable fingerprint of a stream for
/// determinism checks (no host-seeded hashing).
pub fn fingerprint(events: &[Event]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for e in events {
        let s = serde_json::to_string(e).unwrap_or_default();
        for b in s.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
