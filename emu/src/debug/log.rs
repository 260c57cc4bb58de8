//! The debugger's event log: every event from position 0 to the current
//! position, held once for the whole session (snapshots hold none), in a form
//! that keeps a long session small.
//!
//! Nearly every event of a long run is a retired instruction, so those are
//! stored as 24 bytes (step, RIP, core, length) and rebuilt into an [`Event`]
//! when read; every other kind is kept whole behind a box.

use crate::events::{Event, EventKind};

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    /// A retired instruction, unpacked.
    Retired {
        step: u64,
        rip: u64,
        core: u32,
        len: u8,
    },
    /// Anything else.
    Other(Box<Event>),
}

impl Item {
    fn of(e: Event) -> Item {
        match e.kind {
            EventKind::Retired { rip, len } => Item::Retired {
                step: e.step,
                rip,
                core: e.core,
                len,
            },
            _ => Item::Other(Box::new(e)),
        }
    }

    fn event(&self) -> Event {
        match self {
            Item::Retired {
                step,
                rip,
                core,
                len,
            } => Event {
                step: *step,
                core: *core,
                kind: EventKind::Retired {
                    rip: *rip,
                    len: *len,
                },
            },
            Item::Other(e) => (**e).clone(),
        }
    }
}

/// The events of a session, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    items: Vec<Item>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event.
    pub fn push(&mut self, e: Event) {
        self.items.push(Item::of(e));
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Keeps the first `n` events (going back to an earlier position).
    pub fn truncate(&mut self, n: usize) {
        self.items.truncate(n);
    }

    /// The events, oldest first (each rebuilt; iterate `.rev()` for the latest).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Event> + '_ {
        self.items.iter().map(Item::event)
    }

    /// The events other than retired instructions, newest first, without
    /// rebuilding anything (for searches for a rare kind).
    pub fn rare_rev(&self) -> impl Iterator<Item = &Event> + '_ {
        self.items.iter().rev().filter_map(|i| match i {
            Item::Other(e) => Some(&**e),
            Item::Retired { .. } => None,
        })
    }
}

impl Extend<Event> for EventLog {
    fn extend<I: IntoIterator<Item = Event>>(&mut self, it: I) {
        for e in it {
            self.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_back_as_pushed_and_retired_ones_are_small() {
        let evs = vec![
            Event {
                step: 1,
                core: 2,
                kind: EventKind::Retired {
                    rip: 0xffff_ffff_8000_0000,
                    len: 3,
                },
            },
            Event {
                step: 1,
                core: 2,
                kind: EventKind::Woken,
            },
        ];
        let mut log = EventLog::new();
        log.extend(evs.iter().cloned());
        assert_eq!(log.iter().collect::<Vec<_>>(), evs);
        assert_eq!(log.rare_rev().count(), 1);
        log.truncate(1);
        assert_eq!(log.iter().collect::<Vec<_>>(), evs[..1]);
        assert!(std::mem::size_of::<Item>() <= 24);
    }
}
