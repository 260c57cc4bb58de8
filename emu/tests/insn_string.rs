//! String instructions: every size, REP/REPE/REPNE, both directions, one iteration
//! per step, segment overrides, 32-bit addressing and faults in mid-REP.

use emu::state::control::{DF, ZF};
use emu::state::{RAX, RCX, RDI, RSI};
use emu::StepOutcome;
use emu::{AccessKind, Bus, CpuState, Exception, Fault, FlatBus};
use insn_support::{TestBus, CODE};
use mmu::{Invalidation, PhysAddr, PhysMem, VirtAddr};

mod insn_support;

/// Memory where linear addresses alias into 16 MiB of physical memory (so the top
/// of the canonical lower half is usable) and one page faults with #PF (to test a
/// fault in mid-REP).
struct FaultBus {
    flat: FlatBus,
    bad_page: Option<u64>,
}

impl Bus for FaultBus {
    fn translate(
        &mut self,
        cpu: &CpuState,
        la: VirtAddr,
        kind: AccessKind,
        imp: bool,
    ) -> Result<PhysAddr, Fault> {
        if Some(la.raw() >> 12) == self.bad_page {
            let code = if kind == AccessKind::Write { 2 } else { 0 };
            return Err(Exception::PageFault {
                addr: la.raw(),
                code,
            }
            .into());
        }
        let aliased = VirtAddr(la.raw() & 0xff_ffff);
        self.flat.translate(cpu, aliased, kind, imp)
    }
    fn read_phys(&mut self, cpu: &CpuState, pa: PhysAddr, buf: &mut [u8]) -> Result<(), Fault> {
        self.flat.read_phys(cpu, pa, buf)
    }
    fn write_phys(&mut self, cpu: &CpuState, pa: PhysAddr, data: &[u8]) -> Result<(), Fault> {
        self.flat.write_phys(cpu, pa, data)
    }
    fn phys_mem(&mut self) -> &mut PhysMem {
        &mut self.flat.mem
    }
    fn clock(&self) -> u64 {
        0
    }
    fn invalidate(&mut self, _cpu: &CpuState, _op: Invalidation) -> Result<(), Fault> {
        Ok(())
    }
}

impl TestBus for FaultBus {
    fn around(flat: FlatBus) -> Self {
        FaultBus {
            flat,
            bad_page: None,
        }
    }
    fn flat(&self) -> &FlatBus {
        &self.flat
    }
    fn flat_mut(&mut self) -> &mut FlatBus {
        &mut self.flat
    }
}

type M = insn_support::M<FaultBus>;

impl M {
    /// Steps until RIP leaves the first instruction; returns the step count.
    fn run_first(&mut self) -> usize {
        let mut n = 0;
        while self.cpu.state.rip == CODE {
            assert_eq!(self.step(), StepOutcome::Retired);
            n += 1;
            assert!(n < 10_000);
        }
        n
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn rep_movs_every_size_forward() {
    for (size, code) in [(1u64, 0xa4u8), (2, 0xa5), (4, 0xa5), (8, 0xa5)] {
        let bytes: Vec<u8> = match size {
            1 => vec![0xf3, code],
            2 => vec![0x66, 0xf3, code],
            4 => vec![0xf3, code],
            _ => vec![0xf3, 0x48, code],
        };
        let mut m = M::bytes(&bytes);
        m.set(0x2000, &pattern(64));
        m.cpu.state.gpr[RSI] = 0x2000;
        m.cpu.state.gpr[RDI] = 0x3000;
        m.cpu.state.gpr[RCX] = 5;
        let steps = m.run_first();
        assert_eq!(steps, 5, "one iteration per step, size {size}");
        let n = 5 * size as usize;
        assert_eq!(m.read(0x3000, n), pattern(64)[..n].to_vec());
        assert_eq!(m.read(0x3000 + n as u64, 1), vec![0]);
        assert_eq!(m.r(RSI), 0x2000 + n as u64);
        assert_eq!(m.r(RDI), 0x3000 + n as u64);
        assert_eq!(m.r(RCX), 0);
    }
}

#[test]
fn rep_movsq_steps_rip_stays_and_rcx_counts_down() {
    let mut m = M::asm(|a| {
        a.rep().movsq()?;
        a.nop()
    });
    m.cpu.state.gpr[RSI] = 0x2000;
    m.cpu.state.gpr[RDI] = 0x3000;
    m.cpu.state.gpr[RCX] = 3;
    for left in [2, 1] {
        assert_eq!(m.step(), StepOutcome::Retired);
        assert_eq!(m.cpu.state.rip, CODE, "RIP stays while iterations remain");
        assert_eq!(m.r(RCX), left);
    }
    assert_eq!(m.step(), StepOutcome::Retired);
    assert_eq!(m.cpu.state.rip, CODE + 3);
    assert_eq!(m.r(RCX), 0);
}

#[test]
fn rep_with_zero_count_does_nothing() {
    let mut m = M::asm(|a| a.rep().stosq());
    m.cpu.state.gpr[RDI] = 0x3000;
    m.cpu.state.gpr[RAX] = u64::MAX;
    assert_eq!(m.run_first(), 1);
    assert_eq!(m.r(RDI), 0x3000);
    assert_eq!(m.read(0x3000, 8), vec![0; 8]);
}

#[test]
fn movs_backward_with_df() {
    let mut m = M::asm(|a| a.rep().movsd());
    m.set(0x2000, &pattern(16));
    m.cpu.state.rflags |= DF;
    m.cpu.state.gpr[RSI] = 0x200c;
    m.cpu.state.gpr[RDI] = 0x300c;
    m.cpu.state.gpr[RCX] = 4;
    m.run_first();
    assert_eq!(m.read(0x3000, 16), pattern(16));
    assert_eq!(m.r(RSI), 0x1ffc);
    assert_eq!(m.r(RDI), 0x2ffc);
}

#[test]
fn single_movs_without_rep_ignores_rcx() {
    let mut m = M::asm(|a| a.movsb());
    m.set(0x2000, &[0x5a]);
    m.cpu.state.gpr[RSI] = 0x2000;
    m.cpu.state.gpr[RDI] = 0x3000;
    m.cpu.state.gpr[RCX] = 0;
    assert_eq!(m.run_first(), 1);
    assert_eq!(m.read(0x3000, 1), vec![0x5a]);
    assert_eq!(m.r(RCX), 0);
}

#[test]
fn stos_every_size_both_directions() {
    for (size, pre) in [
        (1usize, vec![0xf3, 0xaa]),
        (2, vec![0x66, 0xf3, 0xab]),
        (4, vec![0xf3, 0xab]),
        (8, vec![0xf3, 0x48, 0xab]),
    ] {
        for df in [false, true] {
            let mut m = M::bytes(&pre);
            m.cpu.state.gpr[RAX] = 0x1122_3344_5566_7788;
            m.cpu.state.gpr[RCX] = 3;
            let start = if df { 0x3000 + 2 * size as u64 } else { 0x3000 };
            m.cpu.state.gpr[RDI] = start;
            if df {
                m.cpu.state.rflags |= DF;
            }
            m.run_first();
            let want: Vec<u8> = (0..3)
                .flat_map(|_| 0x1122_3344_5566_7788u64.to_le_bytes()[..size].to_vec())
                .collect();
            assert_eq!(m.read(0x3000, 3 * size), want, "size {size} df {df}");
            let end = if df {
                0x3000 - size as u64
            } else {
                0x3000 + 3 * size as u64
            };
            assert_eq!(m.r(RDI), end);
        }
    }
}

#[test]
fn lods_every_size() {
    let mut m = M::asm(|a| {
        a.lodsb()?;
        a.lodsw()?;
        a.lodsd()?;
        a.lodsq()
    });
    m.set(0x2000, &pattern(16));
    m.cpu.state.gpr[RSI] = 0x2000;
    m.cpu.state.gpr[RAX] = u64::MAX;
    let p = pattern(16);
    m.step();
    assert_eq!(m.r(RAX), 0xffff_ffff_ffff_ff00 | p[0] as u64);
    m.step();
    assert_eq!(m.r(RAX) & 0xffff, u16::from_le_bytes([p[1], p[2]]) as u64);
    m.step();
    assert_eq!(
        m.r(RAX),
        u32::from_le_bytes([p[3], p[4], p[5], p[6]]) as u64
    );
    m.step();
    let mut q = [0u8; 8];
    q.copy_from_slice(&p[7..15]);
    assert_eq!(m.r(RAX), u64::from_le_bytes(q));
    assert_eq!(m.r(RSI), 0x2000 + 15);
}

#[test]
fn repe_cmps_stops_at_first_mismatch() {
    let mut m = M::asm(|a| a.repe().cmpsb());
    m.set(0x2000, b"abcdXfgh");
    m.set(0x3000, b"abcdYfgh");
    m.cpu.state.gpr[RSI] = 0x2000;
    m.cpu.state.gpr[RDI] = 0x3000;
    m.cpu.state.gpr[RCX] = 8;
    assert_eq!(m.run_first(), 5);
    assert_eq!(m.r(RCX), 3);
    assert_eq!(m.r(RSI), 0x2005);
    assert_eq!(m.cpu.state.rflags & ZF, 0);
    // 'X' < 'Y': CF set.
    assert_ne!(m.cpu.state.rflags & 1, 0);
}

#[test]
fn repe_cmps_equal_runs_out_with_zf() {
    let mut m = M::asm(|a| a.repe().cmpsq());
    m.set(0x2000, &pattern(32));
    m.set(0x3000, &pattern(32));
    m.cpu.state.gpr[RSI] = 0x2000;
    m.cpu.state.gpr[RDI] = 0x3000;
    m.cpu.state.gpr[RCX] = 4;
    assert_eq!(m.run_first(), 4);
    assert_eq!(m.r(RCX), 0);
    assert_ne!(m.cpu.state.rflags & ZF, 0);
}

#[test]
fn repne_scas_finds_byte() {
    let mut m = M::asm(|a| a.repne().scasb());
    m.set(0x3000, b"hello\0world");
    m.cpu.state.gpr[RDI] = 0x3000;
    m.cpu.state.gpr[RCX] = u64::MAX;
    m.cpu.state.gpr[RAX] = 0;
    assert_eq!(m.run_first(), 6);
    assert_eq!(m.r(RDI), 0x3006);
    assert_eq!(m.r(RCX), u64::MAX - 6);
    assert_ne!(m.cpu.state.rflags & ZF, 0);
}

#[test]
fn repe_scas_word_and_dword_backward() {
    let mut m = M::asm(|a| a.repe().scasd());
    m.set(0x3000, &[7, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0]);
    m.cpu.state.rflags |= DF;
    m.cpu.state.gpr[RDI] = 0x3008;
    m.cpu.state.gpr[RCX] = 10;
    m.cpu.state.gpr[RAX] = 0xffff_ffff_0000_0009;
    assert_eq!(m.run_first(), 3);
    assert_eq!(m.r(RDI), 0x3000 - 4);
    assert_eq!(m.r(RCX), 7);
    assert_eq!(m.cpu.state.rflags & ZF, 0);
}

#[test]
fn source_segment_override_uses_gs_base() {
    // 65 f3 a4: rep movsb gs:[rsi] -> es:[rdi]
    let mut m = M::bytes(&[0x65, 0xf3, 0xa4]);
    m.cpu.state.gs_base = 0x1000;
    m.set(0x3000, b"from-gs!");
    m.cpu.state.gpr[RSI] = 0x2000;
    m.cpu.state.gpr[RDI] = 0x4000;
    m.cpu.state.gpr[RCX] = 8;
    m.run_first();
    assert_eq!(m.read(0x4000, 8), b"from-gs!".to_vec());
    assert_eq!(
        m.r(RSI),
        0x2008,
        "RSI is the offset, not the linear address"
    );
}

#[test]
fn es_override_is_not_applied_to_destination() {
    // 64 aa: stosb with an FS prefix; the destination stays ES:RDI.
    let mut m = M::bytes(&[0x64, 0xaa]);
    m.cpu.state.fs_base = 0x1000;
    m.cpu.state.gpr[RDI] = 0x3000;
    m.cpu.state.gpr[RAX] = 0x42;
    m.run_first();
    assert_eq!(m.read(0x3000, 1), vec![0x42]);
    assert_eq!(m.read(0x4000, 1), vec![0]);
}

#[test]
fn address_size_32_uses_ecx_esi_edi() {
    // 67 f3 a4: rep movsb with 32-bit addressing.
    let mut m = M::bytes(&[0x67, 0xf3, 0xa4]);
    m.set(0x2000, b"ab");
    m.cpu.state.gpr[RSI] = 0xdead_0000_0000_2000;
    m.cpu.state.gpr[RDI] = 0xdead_0000_0000_3000;
    m.cpu.state.gpr[RCX] = 0xdead_0000_0000_0002;
    m.run_first();
    assert_eq!(m.read(0x3000, 2), b"ab".to_vec());
    assert_eq!(m.r(RSI), 0x2002);
    assert_eq!(m.r(RDI), 0x3002);
    assert_eq!(m.r(RCX), 0);
}

#[test]
fn fault_in_mid_rep_keeps_progress_noncanonical() {
    // The destination runs off the top of the canonical lower half: iterations 1
    // and 2 complete, iteration 3 raises #GP(0) with RIP on the instruction and
    // RCX/RDI showing the progress.
    let mut m = M::asm(|a| a.rep().stosq());
    let top = 0x0000_8000_0000_0000u64;
    m.cpu.state.gpr[RDI] = top - 16;
    m.cpu.state.gpr[RCX] = 4;
    m.cpu.state.gpr[RAX] = 0x77;
    assert_eq!(m.step(), StepOutcome::Retired);
    assert_eq!(m.step(), StepOutcome::Retired);
    let before = m.cpu.state.clone();
    assert_eq!(
        m.step(),
        StepOutcome::Exception(Exception::GeneralProtection(0))
    );
    assert_eq!(m.cpu.state, before);
    assert_eq!(m.cpu.state.rip, CODE);
    assert_eq!(m.r(RCX), 2);
    assert_eq!(m.r(RDI), top);
    assert_eq!(
        m.read((top - 16) & 0xff_ffff, 16),
        [0x77, 0, 0, 0, 0, 0, 0, 0].repeat(2)
    );
}

#[test]
fn fault_in_mid_rep_keeps_progress_page_fault() {
    let mut m = M::asm(|a| a.rep().movsq());
    m.set(0x2000, &pattern(64));
    m.bus.bad_page = Some(0x5);
    // Destination 0x4ff0: two quadwords fit below the bad page at 0x5000.
    m.cpu.state.gpr[RSI] = 0x2000;
    m.cpu.state.gpr[RDI] = 0x4ff0;
    m.cpu.state.gpr[RCX] = 6;
    assert_eq!(m.step(), StepOutcome::Retired);
    assert_eq!(m.step(), StepOutcome::Retired);
    assert_eq!(
        m.step(),
        StepOutcome::Exception(Exception::PageFault {
            addr: 0x5000,
            code: 2
        })
    );
    assert_eq!(m.cpu.state.rip, CODE);
    assert_eq!(m.r(RCX), 4);
    assert_eq!(m.r(RSI), 0x2010);
    assert_eq!(m.r(RDI), 0x5000);
    assert_eq!(m.read(0x4ff0, 16), pattern(16));
    // The handler maps the page; the instruction resumes where it stopped.
    m.bus.bad_page = None;
    m.run_first();
    assert_eq!(m.read(0x4ff0, 48), pattern(48));
    assert_eq!(m.r(RCX), 0);
}

#[test]
fn source_fault_noncanonical_through_fs_mid_rep() {
    // rep lodsq fs:[rsi]: the FS base puts the third element past the boundary.
    let mut m = M::bytes(&[0x64, 0xf3, 0x48, 0xad]);
    m.cpu.state.fs_base = 0x0000_8000_0000_0000 - 0x1010;
    m.cpu.state.gpr[RSI] = 0x1000;
    m.cpu.state.gpr[RCX] = 3;
    m.step();
    m.step();
    assert_eq!(m.r(RCX), 1);
    assert_eq!(
        m.step(),
        StepOutcome::Exception(Exception::GeneralProtection(0))
    );
    assert_eq!(m.r(RSI), 0x1010);
    assert_eq!(m.cpu.state.rip, CODE);
}
