//! A small multi-core rig for the machine tests: N cores, the low 16 MiB identity
//! mapped with 4 KiB pages through real page tables, one IDT shared by all cores,
//! a 64-bit TSS, a stack per core, and code assembled by the in-tree assembler
//! (Intel syntax) with the rig's addresses available as symbols.
#![allow(dead_code)]

use emu::asm::{assemble, AsmOptions, Syntax};
use emu::events::{CollectSink, Event, EventKind};
use emu::state::control::IF;
use emu::{Machine, MachineConfig, StepResult};
use mmu::pagetable::Builder;
use mmu::{pte, PhysAddr, VirtAddr};
use std::collections::BTreeMap;

/// Where code goes.
pub const CODE: u64 = 0x10_0000;
/// The IDT (256 gates, 4 KiB).
pub const IDT: u64 = 0x20_0000;
/// The 64-bit TSS (RSP0 at +4, IST1 at +0x24).
pub const TSS: u64 = 0x21_0000;
/// Shared data: flags, counters, slots handlers write to.
pub const DATA: u64 = 0x30_0000;
/// Top of core 0's kernel stack; core i's is `STACK + i * 0x1_0000`.
pub const STACK: u64 = 0x40_0000;
/// Top of the kernel stack the TSS's RSP0 names.
pub const RSP0: u64 = 0x50_0000;
/// Top of a user stack (for CPL 3 tests).
pub const USER_STACK: u64 = 0x58_0000;
/// Two data pages whose TLB entries the tests watch.
pub const VA_X: u64 = 0x60_0000;
/// See [`VA_X`].
pub const VA_Y: u64 = 0x60_1000;
/// A page mapped not-present (for #PF tests); its frame holds data.
pub const VA_NP: u64 = 0x61_0000;
/// Page-table frames (identity mapped too, so handlers can fix PTEs).
pub const TABLES: u64 = 0xc0_0000;
/// Identity-mapped span.
pub const MAPPED: u64 = 16 << 20;

/// One test machine with its event log and symbols.
pub struct Rig {
    /// The machine.
    pub m: Machine,
    /// Every event so far.
    pub ev: CollectSink,
    /// Label and symbol addresses.
    pub sym: BTreeMap<String, u64>,
    /// The page-table builder (for PTE addresses).
    pub pt: Builder,
}

/// Options for [`Rig::new`].
#[derive(Clone, Copy)]
pub struct Opts {
    /// Number of cores.
    pub cores: usize,
    /// Leaves get US (user accessible).
    pub user: bool,
    /// Load the IDT (else IDTR base = limit = 0).
    pub idt: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            cores: 2,
            user: false,
            idt: true,
        }
    }
}

fn base_symbols() -> BTreeMap<String, u64> {
    let mut s = BTreeMap::new();
    for (k, v) in [
        ("DATA", DATA),
        ("VA_X", VA_X),
        ("VA_Y", VA_Y),
        ("VA_NP", VA_NP),
        ("IDT", IDT),
        ("TSS", TSS),
    ] {
        s.insert(k.to_string(), v);
    }
    s
}

/// An IDT gate (SDM Vol. 3A 6.14.1, figure 6-8).
pub fn gate(handler: u64, selector: u16, kind: u8, dpl: u8, ist: u8, present: bool) -> [u64; 2] {
    let lo = (handler & 0xffff)
        | ((selector as u64) << 16)
        | ((ist as u64 & 7) << 32)
        | ((kind as u64 & 0xf) << 40)
        | ((dpl as u64 & 3) << 45)
        | ((present as u64) << 47)
        | (((handler >> 16) & 0xffff) << 48);
    [lo, handler >> 32]
}

impl Rig {
    /// Builds the machine and loads `src` (Intel syntax) at [`CODE`]. Every core
    /// starts at label `core<i>` if present (else at `CODE`), at CPL 0, IF=0, with
    /// its own stack.
    pub fn new(opts: Opts, src: &str) -> Rig {
        let cfg = MachineConfig {
            cores: opts.cores,
            memory: 32 << 20,
            ..MachineConfig::default()
        };
        let mut m = Machine::new(cfg).unwrap();
        let mut pt =
            Builder::new(&mut m.mem, PhysAddr(TABLES), PhysAddr(TABLES + (1 << 20))).unwrap();
        let leaf = pte::P | pte::RW | if opts.user { pte::US } else { 0 };
        pt.map_range(&mut m.mem, VirtAddr(0), PhysAddr(0), MAPPED, leaf)
            .unwrap();
        // VA_NP: mapped but not present; its frame holds a known value.
        let e = pt.entry_addr(&m.mem, VirtAddr(VA_NP), 1).unwrap();
        m.mem.write_u64(e, VA_NP | (leaf & !pte::P)).unwrap();
        m.mem.write_u64(PhysAddr(VA_NP), 0x1234_5678).unwrap();
        let mut sym = base_symbols();
        sym.insert("PTE_NP".into(), e.raw());
        for (name, va) in [("PTE_X", VA_X), ("PTE_Y", VA_Y)] {
            let a = pt.entry_addr(&m.mem, VirtAddr(va), 1).unwrap();
            sym.insert(name.into(), a.raw());
        }
        let asm = assemble(
            src,
            &AsmOptions {
                syntax: Syntax::Intel,
                base: CODE,
                symbols: &sym,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        m.mem.write(PhysAddr(CODE), &asm.bytes).unwrap();
        sym.extend(asm.labels);
        m.mem.write_u64(PhysAddr(TSS + 4), RSP0).unwrap();
        let cr3 = pt.cr3(0);
        for i in 0..opts.cores {
            let s = &mut m.cores[i].cpu.state;
            s.cr3 = cr3;
            s.rip = sym.get(&format!("core{i}")).copied().unwrap_or(CODE);
            s.gpr[4] = STACK + i as u64 * 0x1_0000;
            s.tss_base = TSS;
            if opts.idt {
                s.idtr.base = IDT;
                s.idtr.limit = 0xfff;
            }
        }
        Rig {
            m,
            ev: CollectSink::default(),
            sym,
            pt,
        }
    }

    /// Address of a label or symbol.
    pub fn at(&self, name: &str) -> u64 {
        *self
            .sym
            .get(name)
            .unwrap_or_else(|| panic!("no label {name}"))
    }

    /// Installs an interrupt gate (type 0xE, DPL 0, selector 0x08) to `label`.
    pub fn intr_gate(&mut self, vector: u8, label: &str) {
        let h = self.at(label);
        self.set_gate(vector, gate(h, 0x08, 0xe, 0, 0, true));
    }

    /// Writes raw gate words.
    pub fn set_gate(&mut self, vector: u8, g: [u64; 2]) {
        let a = IDT + vector as u64 * 16;
        self.m.mem.write_u64(PhysAddr(a), g[0]).unwrap();
        self.m.mem.write_u64(PhysAddr(a + 8), g[1]).unwrap();
    }

    /// Reads a guest-physical u64.
    pub fn peek(&self, pa: u64) -> u64 {
        self.m.mem.read_u64(PhysAddr(pa)).unwrap()
    }

    /// Steps `core` once, checking the interrupt-boundary invariant: an external
    /// interrupt is taken only with IF=1, no interrupt shadow, at the RIP the core
    /// was at (an instruction boundary), and a NoProgress step consumes no global
    /// step.
    pub fn step(&mut self, core: usize) -> StepResult {
        let before = self.m.cores[core].cpu.state.clone();
        let steps = self.m.steps;
        let n = self.ev.events.len();
        let r = self.m.step(core, &mut self.ev).unwrap();
        match &r {
            StepResult::Interrupt(v) => {
                assert!(before.rflags & IF != 0, "interrupt {v:#x} taken with IF=0");
                assert!(
                    !before.interrupt_shadow,
                    "interrupt {v:#x} taken in a shadow"
                );
                let ev = self.ev.events[n..]
                    .iter()
                    .find_map(|e| match e.kind {
                        EventKind::Interrupt { vector, from, .. } if e.core == core as u32 => {
                            Some((vector, from))
                        }
                        _ => None,
                    })
                    .expect("an Interrupt event");
                assert_eq!(ev, (*v, before.rip), "interrupt not at the boundary");
                assert_eq!(self.m.steps, steps + 1);
            }
            StepResult::NoProgress => {
                assert_eq!(self.m.steps, steps, "NoProgress consumed a step");
                assert_eq!(self.ev.events.len(), n, "NoProgress emitted events");
                assert_eq!(self.m.cores[core].cpu.state, before);
            }
            _ => {}
        }
        r
    }

    /// Steps `core` `n` times, expecting every step to retire.
    pub fn retire(&mut self, core: usize, n: usize) {
        for i in 0..n {
            let r = self.step(core);
            assert_eq!(
                r,
                StepResult::Retired,
                "core {core} step {i} at {:#x}",
                self.m.cores[core].cpu.state.rip
            );
        }
    }

    /// Events of one kind name on a core, with their indices in the log.
    pub fn find<'a>(
        &'a self,
        core: u32,
        name: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Event)> + 'a {
        self.ev
            .events
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.core == core && e.kind.name() == name)
    }
}

/// A tiny seeded generator (xorshift64*) for random-but-reproducible schedules.
pub struct Rng(pub u64);

impl Rng {
    /// Next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
