//! The emulator side of the differential test behind paging: the same linear
//! addresses as the host, but every code and data access goes through 4-level
//! paging with 4 KiB pages, the core's TLB model and paging-structure caches, and
//! the coherence tracker (a [`Machine`]'s bus, as the scenarios run).
//!
//! The pages map to scattered physical frames, out of order, so an access that
//! crosses from the first buffer page into the second lands in a frame that is
//! *not* the next one: a page-crossing access translated once, or a linear
//! address used as physical, reads or writes the wrong bytes. Before each case
//! the buffer pages are moved to other frames by tracked PTE writes followed by
//! INVLPG (SDM Vol. 3A 4.10.4.1), so a translation the TLB model keeps past its
//! invalidation uses frames that no longer hold the buffer; and on every other
//! case a MOV CR3 empties the TLB, so both the walk and the TLB hit serve the
//! instruction. No case may use a stale translation (the tracker counts them).

use crate::native::{BUF_ADDR, BUF_LEN, CODE_ADDR};
use crate::{Case, EmuOut, Emulator, EMU_RSP};
use emu::events::NullSink;
use emu::state::control::{CR0_WP, EFER_NXE};
use emu::{Bus, Cpu, CpuFeatures, CpuState, DecodeCache, EmuError, Machine, MachineConfig};
use mmu::pagetable::Builder;
use mmu::{pte, Invalidation, PageSize, PhysAddr, VirtAddr};

const PAGE: u64 = 0x1000;
/// Page tables come from here.
const TABLES: u64 = 0x10_0000;
const TABLES_END: u64 = 0x20_0000;
/// Frames of the two code pages (the instruction's and the next, for the HLT
/// after it): not adjacent, the second below the first.
const CODE_FRAMES: [u64; 2] = [0x35_7000, 0x31_2000];
/// Frame pairs the two buffer pages rotate through, each pair out of order.
const BUF_FRAMES: [[u64; 2]; 3] = [
    [0x47_3000, 0x41_1000],
    [0x52_c000, 0x44_9000],
    [0x61_0000, 0x5f_e000],
];

/// One core on a one-core machine, its registers kept here so that a case's
/// exception comes back as an outcome instead of being delivered.
pub struct Paged {
    m: Machine,
    cpu: Cpu,
    cache: DecodeCache,
    cr3: u64,
    /// Leaf entries of the two buffer pages.
    buf_ptes: [PhysAddr; 2],
    /// Frames of the buffer pages now.
    buf: [u64; 2],
    cases: u64,
}

impl Paged {
    pub fn new() -> Self {
        let cfg = MachineConfig {
            memory: 8 << 20,
            ..MachineConfig::default()
        };
        let mut m = Machine::new(cfg).expect("one-core machine");
        let mut pt = Builder::new(&mut m.mem, PhysAddr(TABLES), PhysAddr(TABLES_END))
            .expect("page-table range");
        let mut map = |m: &mut Machine, va: u64, pa: u64, flags: u64| {
            pt.map(
                &mut m.mem,
                VirtAddr(va),
                PhysAddr(pa),
                PageSize::Size4K,
                flags,
            )
            .expect("map")
        };
        for (i, f) in CODE_FRAMES.iter().enumerate() {
            map(&mut m, CODE_ADDR + i as u64 * PAGE, *f, pte::P);
        }
        let buf = BUF_FRAMES[0];
        let data = pte::P | pte::RW | pte::NX;
        let buf_ptes = [
            map(&mut m, BUF_ADDR, buf[0], data),
            map(&mut m, BUF_ADDR + PAGE, buf[1], data),
        ];
        let cr3 = pt.cr3(0);
        Paged {
            m,
            cpu: Cpu::new(0, CpuFeatures::default()),
            cache: DecodeCache::new(),
            cr3,
            buf_ptes,
            buf,
            cases: 0,
        }
    }

    /// Physical address of linear `va` in the code or buffer pages.
    fn pa(&self, va: u64) -> PhysAddr {
        let page = va & !(PAGE - 1);
        let frame = if page == CODE_ADDR {
            CODE_FRAMES[0]
        } else if page == CODE_ADDR + PAGE {
            CODE_FRAMES[1]
        } else if page == BUF_ADDR {
            self.buf[0]
        } else if page == BUF_ADDR + PAGE {
            self.buf[1]
        } else {
            panic!("{va:#x} is not mapped");
        };
        PhysAddr(frame + (va & (PAGE - 1)))
    }

    /// Writes `data` at linear `va`, page by page, as a debugger would (the tracker
    /// and the decode cache are told).
    fn write(&mut self, va: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let a = va + done as u64;
            let n = ((PAGE - (a & (PAGE - 1))) as usize).min(data.len() - done);
            let pa = self.pa(a);
            self.m
                .write_phys(pa, &data[done..done + n], &mut NullSink)
                .expect("mapped frame");
            done += n;
        }
    }

    /// Reads `n` bytes at linear `va`, page by page, without translating.
    fn read(&self, va: u64, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let mut done = 0;
        while done < n {
            let a = va + done as u64;
            let k = ((PAGE - (a & (PAGE - 1))) as usize).min(n - done);
            self.m
                .mem
                .read(self.pa(a), &mut out[done..done + k])
                .expect("mapped frame");
            done += k;
        }
        out
    }

    /// Moves the buffer pages to the next pair of frames: PTE writes the tracker
    /// sees, then INVLPG of each page on the core.
    fn move_buffer(&mut self, state: &CpuState) {
        let next = BUF_FRAMES[(self.cases % BUF_FRAMES.len() as u64) as usize];
        for (pte_pa, frame) in self.buf_ptes.into_iter().zip(next) {
            let old = self.m.mem.read_u64(pte_pa).expect("PTE");
            // Same flags (bits 11:0 and XD), the new frame.
            let new = (old & (0xfff | pte::NX)) | frame;
            self.m
                .write_phys(pte_pa, &new.to_le_bytes(), &mut NullSink)
                .expect("PTE");
        }
        self.buf = next;
        let mut sink = NullSink;
        let mut bus = self.m.bus(0, &mut sink);
        for i in 0..2 {
            let va = VirtAddr(BUF_ADDR + i * PAGE);
            bus.invalidate(state, Invalidation::Invlpg { va })
                .expect("INVLPG");
        }
        if self.cases.is_multiple_of(2) {
            bus.invalidate(state, Invalidation::MovCr3 { src: self.cr3 })
                .expect("MOV CR3");
        }
    }
}

impl Emulator for Paged {
    fn run(&mut self, case: &Case, at: u64) -> Result<EmuOut, EmuError> {
        let mut gpr = case.regs.gpr;
        gpr[4] = EMU_RSP;
        let base = CpuState::default();
        self.cpu.state = CpuState {
            gpr,
            rflags: case.regs.rflags,
            rip: at,
            cr0: base.cr0 | CR0_WP,
            cr3: self.cr3,
            efer: base.efer | EFER_NXE,
            ..base
        };
        self.cases += 1;
        let state = self.cpu.state.clone();
        self.move_buffer(&state);
        let mut code = case.bytes.clone();
        code.push(0xf4); // HLT, in case the emulator runs on
        self.write(at, &code);
        if !case.mem.is_empty() {
            self.write(BUF_ADDR, &case.mem);
        }
        let stale_before = self.m.tracker.stale_uses();
        let mut sink = NullSink;
        let outcome = {
            let mut bus = self.m.bus(0, &mut sink);
            self.cpu.step(&mut self.cache, &mut bus)?
        };
        let stale = self.m.tracker.stale_uses() - stale_before;
        assert_eq!(
            stale,
            0,
            "[{}] used a stale translation",
            emu::hex_bytes(&case.bytes)
        );
        let mem = if case.mem.is_empty() {
            Vec::new()
        } else {
            self.read(BUF_ADDR, BUF_LEN)
        };
        Ok(EmuOut {
            outcome,
            state: self.cpu.state.clone(),
            mem,
        })
    }
}
