//! System instructions: control registers (with the invalidations they send to the
//! bus), INVLPG/INVPCID, MSRs, CPUID, the TSC, software interrupts, IRETQ, SWAPGS,
//! the descriptor-table registers, and #GP(0) for every privileged one at CPL 3.

use emu::state::control::*;
use emu::state::msr;
use emu::state::{RAX, RBX, RCX, RDX, RSP};
use emu::StepOutcome;
use emu::{AccessKind, Bus, CpuFeatures, CpuState, Exception, Fault, FlatBus};
use iced_x86::code_asm::*;
use insn_support::{TestBus, CODE, STACK};
use mmu::{Invalidation, InvpcidKind, PhysAddr, PhysMem, VirtAddr};

mod insn_support;

const NONCANON: u64 = 0x8000_0000_0000_0000;

/// Flat memory that records every invalidation (with the CR3 the core held when it
/// asked) and x2APIC MSR access, with a settable clock and an optional page that
/// faults.
struct RecBus {
    flat: FlatBus,
    inv: Vec<Invalidation>,
    cr3_seen: Vec<u64>,
    apic: Vec<(u32, Option<u64>)>,
    clock: u64,
    bad_page: Option<u64>,
}

impl Bus for RecBus {
    fn translate(
        &mut self,
        cpu: &CpuState,
        la: VirtAddr,
        kind: AccessKind,
        imp: bool,
    ) -> Result<PhysAddr, Fault> {
        if Some(la.raw() >> 12) == self.bad_page {
            return Err(Exception::PageFault {
                addr: la.raw(),
                code: 0,
            }
            .into());
        }
        self.flat.translate(cpu, la, kind, imp)
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
        self.clock
    }
    fn apic_msr(&mut self, _cpu: &CpuState, msr: u32, write: Option<u64>) -> Result<u64, Fault> {
        self.apic.push((msr, write));
        Ok(0x1234_0000_0000_0042)
    }
    fn invalidate(&mut self, cpu: &CpuState, op: Invalidation) -> Result<(), Fault> {
        self.inv.push(op);
        self.cr3_seen.push(cpu.cr3);
        Ok(())
    }
}

impl TestBus for RecBus {
    fn around(flat: FlatBus) -> Self {
        RecBus {
            flat,
            inv: Vec::new(),
            cr3_seen: Vec::new(),
            apic: Vec::new(),
            clock: 0,
            bad_page: None,
        }
    }
    fn flat(&self) -> &FlatBus {
        &self.flat
    }
    fn flat_mut(&mut self) -> &mut FlatBus {
        &mut self.flat
    }
    /// A faulting instruction invalidates nothing.
    fn after_fault(&self) {
        assert!(self.inv.is_empty(), "fault invalidated");
    }
}

type M = insn_support::M<RecBus>;

type Asm = fn(&mut CodeAssembler) -> Result<(), IcedError>;

// --- Control registers ------------------------------------------------------------

#[test]
fn mov_cr_reads_and_writes_notify_the_bus() {
    let mut m = M::asm(|a| {
        a.mov(rax, cr0)?;
        a.mov(cr0, rax)?;
        a.mov(cr3, rbx)?;
        a.mov(rcx, cr3)?;
        a.mov(rdx, cr4)?;
        a.or(rdx, 0x80)?; // PGE
        a.mov(cr4, rdx)?;
        a.mov(cr2, rsi)?;
        a.mov(rdi, cr2)?;
        a.mov(cr8, r8)?;
        a.mov(r9, cr8)
    });
    m.cpu.state.gpr[RBX] = 0x20_3000;
    m.cpu.state.gpr[6] = 0xdead_b000;
    m.cpu.state.gpr[8] = 0xf;
    m.steps(11);
    let c0 = m.cpu.state.cr0;
    assert_eq!(m.r(RAX), c0);
    assert_eq!(m.r(RCX), 0x20_3000);
    assert_eq!(m.r(7), 0xdead_b000);
    assert_eq!(m.r(9), 0xf);
    assert_eq!(m.cpu.state.cr4, CR4_PAE | CR4_PGE);
    assert_eq!(
        m.bus.inv,
        vec![
            Invalidation::MovCr0 { old: c0, new: c0 },
            Invalidation::MovCr3 { src: 0x20_3000 },
            Invalidation::MovCr4 {
                old: CR4_PAE,
                new: CR4_PAE | CR4_PGE
            },
        ]
    );
    // The bus is asked before the register changes: it sees the old CR3 (0) with
    // the MOV CR3, and the new one (read back into RCX above) afterwards.
    assert_eq!(m.bus.cr3_seen, vec![0, 0, 0x20_3000]);
}

fn write_cr_faults(cr: AsmRegisterCr, v: u64, setup: impl FnOnce(&mut M), feat: CpuFeatures) {
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(cr, rax).unwrap();
    let mut m = M::bytes_with(feat, &a.assemble(CODE).unwrap());
    m.cpu.state.gpr[RAX] = v;
    setup(&mut m);
    m.expect_fault(Exception::GeneralProtection(0));
}

#[test]
fn mov_cr0_faults() {
    let base = CpuState::default().cr0;
    let f = CpuFeatures::default;
    write_cr_faults(cr0, base | 1 << 32, |_| {}, f());
    write_cr_faults(cr0, base & !CR0_PG, |_| {}, f());
    write_cr_faults(cr0, (base | CR0_NW) & !CR0_CD, |_| {}, f());
    write_cr_faults(cr0, base & !CR0_PE, |_| {}, f());
}

#[test]
fn mov_cr0_ignores_low_reserved_bits() {
    let mut m = M::asm(|a| a.mov(cr0, rax));
    let base = m.cpu.state.cr0;
    m.cpu.state.gpr[RAX] = (base | 1 << 6 | CR0_WP) & !CR0_ET;
    m.steps(1);
    assert_eq!(m.cpu.state.cr0, base | CR0_WP);
}

#[test]
fn mov_cr4_faults() {
    let base = CR4_PAE;
    let f = CpuFeatures::default;
    write_cr_faults(cr4, base | 1 << 32, |_| {}, f());
    write_cr_faults(cr4, base | CR4_UMIP, |_| {}, f());
    write_cr_faults(cr4, base | CR4_VME, |_| {}, f());
    write_cr_faults(cr4, 0, |_| {}, f()); // clearing PAE in IA-32e mode
    let no = |g: fn(&mut CpuFeatures)| {
        let mut f = CpuFeatures::default();
        g(&mut f);
        f
    };
    write_cr_faults(cr4, base | CR4_PCIDE, |_| {}, no(|f| f.pcid = false));
    write_cr_faults(cr4, base | CR4_PGE, |_| {}, no(|f| f.pge = false));
    write_cr_faults(cr4, base | CR4_SMEP, |_| {}, no(|f| f.smep = false));
    write_cr_faults(cr4, base | CR4_SMAP, |_| {}, no(|f| f.smap = false));
    // PCIDE needs CR3[11:0] = 0.
    write_cr_faults(cr4, base | CR4_PCIDE, |m| m.cpu.state.cr3 = 0x1005, f());
}

#[test]
fn cr4_pcide_set_with_clean_cr3() {
    let mut m = M::asm(|a| a.mov(cr4, rax));
    m.cpu.state.cr3 = 0x5000;
    m.cpu.state.gpr[RAX] = CR4_PAE | CR4_PCIDE | CR4_SMEP | CR4_SMAP | CR4_PGE;
    m.steps(1);
    assert_eq!(
        m.cpu.state.cr4,
        CR4_PAE | CR4_PCIDE | CR4_SMEP | CR4_SMAP | CR4_PGE
    );
}

#[test]
fn mov_cr3_bit63_with_pcide_is_the_noflush_hint() {
    let mut m = M::asm(|a| a.mov(cr3, rax));
    m.cpu.state.cr4 |= CR4_PCIDE;
    m.cpu.state.cr3 = 0x1001;
    m.cpu.state.gpr[RAX] = CR3_NOFLUSH | 0x2002;
    m.steps(1);
    assert_eq!(m.cpu.state.cr3, 0x2002);
    assert_eq!(
        m.bus.inv,
        vec![Invalidation::MovCr3 {
            src: CR3_NOFLUSH | 0x2002
        }]
    );
    assert_eq!(m.bus.cr3_seen, vec![0x1001]);
}

#[test]
fn mov_cr3_reserved_bits_fault() {
    let f = CpuFeatures::default;
    // Bit 63 without PCIDE is a reserved bit.
    write_cr_faults(cr3, CR3_NOFLUSH | 0x2000, |_| {}, f());
    // A bit at MAXPHYADDR (46).
    write_cr_faults(cr3, 1 << 46, |_| {}, f());
    // A bit at MAXPHYADDR with PCIDE and the hint set.
    write_cr_faults(
        cr3,
        CR3_NOFLUSH | 1 << 50,
        |m| m.cpu.state.cr4 |= CR4_PCIDE,
        f(),
    );
    let mut narrow = f();
    narrow.maxphyaddr = 36;
    write_cr_faults(cr3, 1 << 40, |_| {}, narrow);
}

#[test]
fn mov_cr8_reserved_bits_fault() {
    write_cr_faults(cr8, 0x10, |_| {}, CpuFeatures::default());
}

#[test]
fn mov_other_control_registers_is_ud() {
    // 0f 22 c8: mov cr1, rax; 0f 20 e8: mov rax, cr5.
    for code in [[0x0f, 0x22, 0xc8], [0x0f, 0x20, 0xe8]] {
        let mut m = M::bytes(&code);
        m.expect_fault(Exception::InvalidOpcode);
    }
}

// --- INVLPG / INVPCID --------------------------------------------------------------

#[test]
fn invlpg_sends_linear_address_without_accessing_memory() {
    // invlpg [rax+0x10]; invlpg [rbx]; invlpg gs:[rcx]
    let mut m = M::bytes(&[
        0x0f, 0x01, 0x78, 0x10, 0x0f, 0x01, 0x3b, 0x65, 0x0f, 0x01, 0x39,
    ]);
    // Far beyond the 16 MiB of memory: an access would be an emulator error.
    m.cpu.state.gpr[RAX] = 0x7fff_0000_0000;
    m.cpu.state.gpr[RBX] = NONCANON;
    m.cpu.state.gpr[RCX] = 0x10;
    m.cpu.state.gs_base = 0xffff_8000_0000_0000;
    m.steps(3);
    assert_eq!(
        m.bus.inv,
        vec![
            Invalidation::Invlpg {
                va: VirtAddr(0x7fff_0000_0010)
            },
            Invalidation::Invlpg {
                va: VirtAddr(0xffff_8000_0000_0010)
            },
        ]
    );
}

fn invpcid_case(kind: u64, lo: u64, hi: u64, setup: impl FnOnce(&mut M)) -> (M, StepOutcome) {
    let mut m = M::asm(|a| a.invpcid(rax, xmmword_ptr(rbx)));
    m.cpu.state.gpr[RAX] = kind;
    m.cpu.state.gpr[RBX] = 0x3000;
    m.set64(0x3000, lo);
    m.set64(0x3008, hi);
    setup(&mut m);
    let o = m.step();
    (m, o)
}

#[test]
fn invpcid_valid_types() {
    let (m, o) = invpcid_case(0, 5, 0x40_0000, |m| m.cpu.state.cr4 |= CR4_PCIDE);
    assert_eq!(o, StepOutcome::Retired);
    assert_eq!(
        m.bus.inv,
        vec![Invalidation::Invpcid {
            kind: InvpcidKind::IndividualAddress,
            pcid: 5,
            va: VirtAddr(0x40_0000)
        }]
    );
    // Types 2 and 3 ignore PCID and address; type 1 ignores the address.
    for kind in 1..=3 {
        let pcid = if kind == 1 { 0 } else { 7 };
        let (m, o) = invpcid_case(kind, pcid, NONCANON, |_| {});
        assert_eq!(o, StepOutcome::Retired, "type {kind}");
        assert_eq!(m.bus.inv.len(), 1);
    }
}

#[test]
fn invpcid_fault_rules() {
    let gp = StepOutcome::Exception(Exception::GeneralProtection(0));
    let pcide = |m: &mut M| m.cpu.state.cr4 |= CR4_PCIDE;
    // Type above 3.
    assert_eq!(invpcid_case(4, 0, 0, pcide).1, gp);
    // Descriptor bits 63:12.
    assert_eq!(invpcid_case(2, 1 << 12, 0, pcide).1, gp);
    // Non-canonical address with type 0.
    assert_eq!(invpcid_case(0, 1, NONCANON, pcide).1, gp);
    // Nonzero PCID with PCIDE=0, types 0 and 1.
    assert_eq!(invpcid_case(0, 1, 0, |_| {}).1, gp);
    assert_eq!(invpcid_case(1, 1, 0, |_| {}).1, gp);
    // CPL 3.
    assert_eq!(invpcid_case(2, 0, 0, |m| m.user()).1, gp);
    // The descriptor read can page-fault.
    let (m, o) = invpcid_case(2, 0, 0, |m| m.bus.bad_page = Some(3));
    assert_eq!(
        o,
        StepOutcome::Exception(Exception::PageFault {
            addr: 0x3000,
            code: 0
        })
    );
    assert!(m.bus.inv.is_empty());
    assert_eq!(m.cpu.state.rip, CODE);
    // Without the feature: #UD.
    let f = CpuFeatures {
        invpcid: false,
        ..Default::default()
    };
    let mut m = M::asm_with(f, |a| a.invpcid(rax, xmmword_ptr(rbx)));
    m.cpu.state.gpr[RBX] = 0x3000;
    m.expect_fault(Exception::InvalidOpcode);
}

// --- MSRs ----------------------------------------------------------------------

fn wrmsr(index: u32, v: u64, setup: impl FnOnce(&mut M)) -> (M, StepOutcome) {
    let mut m = M::asm(|a| a.wrmsr());
    m.cpu.state.gpr[RCX] = index as u64;
    m.cpu.state.gpr[RAX] = v & 0xffff_ffff;
    m.cpu.state.gpr[RDX] = v >> 32;
    setup(&mut m);
    let o = m.step();
    (m, o)
}

fn rdmsr(index: u32, setup: impl FnOnce(&mut M)) -> (M, StepOutcome, u64) {
    let mut m = M::asm(|a| a.rdmsr());
    setup(&mut m);
    m.cpu.state.rip = CODE;
    m.cpu.state.gpr[RCX] = index as u64;
    m.cpu.state.gpr[RAX] = u64::MAX;
    m.cpu.state.gpr[RDX] = u64::MAX;
    let o = m.step();
    let v = (m.r(RDX) << 32) | m.r(RAX);
    assert!(o != StepOutcome::Retired || (m.r(RAX) >> 32 == 0 && m.r(RDX) >> 32 == 0));
    (m, o, v)
}

#[test]
fn msr_base_registers_round_trip_and_check_canonical() {
    let ok = StepOutcome::Retired;
    let gp = StepOutcome::Exception(Exception::GeneralProtection(0));
    for index in [
        msr::IA32_FS_BASE,
        msr::IA32_GS_BASE,
        msr::IA32_KERNEL_GS_BASE,
    ] {
        let (m, o) = wrmsr(index, 0xffff_8880_0000_1000, |_| {});
        assert_eq!(o, ok);
        let st = m.cpu.state.clone();
        let (_, o, v) = rdmsr(index, |m| m.cpu.state = st.clone());
        assert_eq!((o, v), (ok, 0xffff_8880_0000_1000));
        assert_eq!(wrmsr(index, NONCANON, |_| {}).1, gp);
    }
}

#[test]
fn msr_efer_rules() {
    let ok = StepOutcome::Retired;
    let gp = StepOutcome::Exception(Exception::GeneralProtection(0));
    let base = EFER_SCE | EFER_LME | EFER_LMA;
    // NXE settable; LMA is kept whatever is written.
    let (m, o) = wrmsr(msr::IA32_EFER, EFER_SCE | EFER_LME | EFER_NXE, |_| {});
    assert_eq!(o, ok);
    assert_eq!(m.cpu.state.efer, base | EFER_NXE);
    // Reserved bit.
    assert_eq!(wrmsr(msr::IA32_EFER, base | 1 << 1, |_| {}).1, gp);
    // NXE without the NX feature.
    let (_, o) = wrmsr(msr::IA32_EFER, base | EFER_NXE, |m| {
        m.cpu.features.nx = false
    });
    assert_eq!(o, gp);
    // LME cannot change while paging is on.
    assert_eq!(wrmsr(msr::IA32_EFER, EFER_SCE | EFER_LMA, |_| {}).1, gp);
    let (_, o, v) = rdmsr(msr::IA32_EFER, |_| {});
    assert_eq!((o, v), (ok, base));
}

#[test]
fn msr_tsc_tsc_aux_pat_apic_base() {
    let ok = StepOutcome::Retired;
    let gp = StepOutcome::Exception(Exception::GeneralProtection(0));
    // Writing the TSC makes it read the written value now, and advance with the clock.
    let (m, o) = wrmsr(msr::IA32_TSC, 1_000_000, |m| m.bus.clock = 500);
    assert_eq!(o, ok);
    let st = m.cpu.state.clone();
    let (_, _, v) = rdmsr(msr::IA32_TSC, |m| {
        m.cpu.state = st;
        m.bus.clock = 510;
    });
    assert_eq!(v, 1_000_010);
    // TSC_AUX: 32 bits.
    assert_eq!(wrmsr(msr::IA32_TSC_AUX, 7, |_| {}).1, ok);
    assert_eq!(wrmsr(msr::IA32_TSC_AUX, 1 << 32, |_| {}).1, gp);
    // PAT: valid memory types only.
    let (m, o) = wrmsr(msr::IA32_PAT, 0x0007_0406_0007_0401, |_| {});
    assert_eq!((o, m.cpu.state.pat), (ok, 0x0007_0406_0007_0401));
    assert_eq!(wrmsr(msr::IA32_PAT, 0x02, |_| {}).1, gp);
    assert_eq!(wrmsr(msr::IA32_PAT, 0x0800_0000_0000_0000, |_| {}).1, gp);
    // APIC_BASE: BSP flag on core 0; writes may only restate the value.
    let (_, o, v) = rdmsr(msr::IA32_APIC_BASE, |_| {});
    assert_eq!((o, v), (ok, msr::apic_base_value(true)));
    assert_eq!(wrmsr(msr::IA32_APIC_BASE, v, |_| {}).1, ok);
    assert_eq!(wrmsr(msr::IA32_APIC_BASE, 0xfee0_0000, |_| {}).1, gp);
}

#[test]
fn msr_x2apic_goes_to_the_bus_and_unknown_is_gp() {
    let (m, o, v) = rdmsr(0x802, |_| {});
    assert_eq!(o, StepOutcome::Retired);
    assert_eq!(v, 0x1234_0000_0000_0042);
    assert_eq!(m.bus.apic, vec![(0x802, None)]);
    let (m, o) = wrmsr(0x830, 0x0000_0001_0000_00fd, |_| {});
    assert_eq!(o, StepOutcome::Retired);
    assert_eq!(m.bus.apic, vec![(0x830, Some(0x0000_0001_0000_00fd))]);
    let gp = StepOutcome::Exception(Exception::GeneralProtection(0));
    assert_eq!(rdmsr(0x3a, |_| {}).1, gp);
    assert_eq!(wrmsr(0xc000_0083, 0, |_| {}).1, gp); // IA32_CSTAR: not on Intel parts
}

// --- CPUID / TSC ----------------------------------------------------------------

fn cpuid(feat: CpuFeatures, core: u32, leaf: u32, sub: u32) -> [u64; 4] {
    let mut m = M::asm_with(feat, |a| a.cpuid());
    m.cpu.id = core;
    m.cpu.state.gpr[RAX] = 0xffff_ffff_0000_0000 | leaf as u64;
    m.cpu.state.gpr[RCX] = sub as u64;
    m.cpu.state.gpr[RBX] = u64::MAX;
    m.cpu.state.gpr[RDX] = u64::MAX;
    m.user();
    m.steps(1);
    [m.r(RAX), m.r(RBX), m.r(RCX), m.r(RDX)]
}

#[test]
fn cpuid_reports_features_and_apic_id() {
    let f = CpuFeatures::default;
    let l0 = cpuid(f(), 0, 0, 0);
    assert_eq!(l0[0], 7);
    let mut vendor = Vec::new();
    for r in [l0[1], l0[3], l0[2]] {
        vendor.extend_from_slice(&(r as u32).to_le_bytes());
    }
    assert_eq!(vendor, b"GenuineIntel");
    let l1 = cpuid(f(), 5, 1, 0);
    assert_eq!(l1[1] >> 24, 5, "initial APIC ID");
    assert_ne!(l1[2] & 1 << 17, 0, "PCID");
    assert_ne!(l1[2] & 1 << 21, 0, "x2APIC");
    assert_ne!(l1[3] & 1 << 13, 0, "PGE");
    assert_ne!(l1[3] & 1 << 4, 0, "TSC");
    let l7 = cpuid(f(), 0, 7, 0);
    assert_eq!(
        l7[1] & (1 << 7 | 1 << 10 | 1 << 20),
        1 << 7 | 1 << 10 | 1 << 20
    );
    let e1 = cpuid(f(), 0, 0x8000_0001, 0);
    assert_ne!(e1[3] & 1 << 20, 0, "NX");
    assert_ne!(e1[3] & 1 << 29, 0, "LM");
    assert_ne!(e1[3] & 1 << 27, 0, "RDTSCP");
    assert_eq!(cpuid(f(), 0, 0x8000_0000, 0)[0], 0x8000_0008);
    assert_eq!(cpuid(f(), 0, 0x8000_0008, 0)[0] & 0xff, 46);

    let none = CpuFeatures {
        pcid: false,
        invpcid: false,
        pge: false,
        smep: false,
        smap: false,
        nx: false,
        huge_1g: false,
        maxphyaddr: 39,
    };
    assert_eq!(cpuid(none.clone(), 0, 1, 0)[2] & 1 << 17, 0);
    assert_eq!(cpuid(none.clone(), 0, 1, 0)[3] & 1 << 13, 0);
    assert_eq!(
        cpuid(none.clone(), 0, 7, 0)[1] & (1 << 7 | 1 << 10 | 1 << 20),
        0
    );
    let e1 = cpuid(none.clone(), 0, 0x8000_0001, 0);
    assert_eq!(e1[3] & (1 << 20 | 1 << 26), 0);
    assert_eq!(cpuid(none, 0, 0x8000_0008, 0)[0] & 0xff, 39);
}

#[test]
fn cpuid_unknown_leaves_return_highest_basic_leaf() {
    let f = CpuFeatures::default;
    let l7 = cpuid(f(), 0, 7, 0);
    assert_eq!(cpuid(f(), 0, 0x20, 0), l7);
    assert_eq!(cpuid(f(), 0, 0x8000_0010, 0), l7);
    assert_eq!(cpuid(f(), 0, 4, 0), [0; 4]);
}

#[test]
fn rdtsc_rdtscp_and_tsd() {
    let mut m = M::asm(|a| {
        a.rdtsc()?;
        a.mov(rsi, rax)?;
        a.mov(rdi, rdx)?;
        a.rdtscp()
    });
    m.bus.clock = 0x1_0000_0005;
    m.cpu.state.tsc_offset = 10;
    m.cpu.state.tsc_aux = 3;
    m.user();
    m.steps(4);
    assert_eq!((m.r(6), m.r(7)), (0xf, 1));
    assert_eq!((m.r(RAX), m.r(RDX), m.r(RCX)), (0xf, 1, 3));
    for code in [&[0x0f, 0x31][..], &[0x0f, 0x01, 0xf9]] {
        let mut m = M::bytes(code);
        m.cpu.state.cr4 |= CR4_TSD;
        m.user();
        m.expect_fault(Exception::GeneralProtection(0));
        let mut m = M::bytes(code);
        m.cpu.state.cr4 |= CR4_TSD;
        m.steps(1);
    }
}

// --- Software interrupts and #UD -------------------------------------------------

#[test]
fn traps_leave_rip_after_and_faults_at_the_instruction() {
    let mut m = M::bytes(&[0xcc]);
    assert_eq!(m.step(), StepOutcome::Exception(Exception::Breakpoint));
    assert_eq!(m.cpu.state.rip, CODE + 1);
    let mut m = M::bytes(&[0xcd, 0x80]);
    assert_eq!(
        m.step(),
        StepOutcome::Exception(Exception::SoftwareInterrupt(0x80))
    );
    assert_eq!(m.cpu.state.rip, CODE + 2);
    let mut m = M::bytes(&[0x0f, 0x0b]);
    m.expect_fault(Exception::InvalidOpcode);
    assert_eq!(m.cpu.state.rip, CODE);
}

// --- IRETQ ------------------------------------------------------------------------

/// RIP, CS, RFLAGS, RSP, SS as IRETQ pops them.
type Frame = (u64, u64, u64, u64, u64);

fn iret_frame(m: &mut M, rip: u64, csel: u64, rflags: u64, new_rsp: u64, ssel: u64) {
    for (i, v) in [rip, csel, rflags, new_rsp, ssel].into_iter().enumerate() {
        m.set64(STACK + 8 * i as u64, v);
    }
}

#[test]
fn iretq_to_cpl3() {
    let mut m = M::bytes(&[0x48, 0xcf]);
    iret_frame(
        &mut m,
        0x40_0000,
        0x2b,
        0x2 | IF | CF | IOPL | RF,
        0x7fff_f000,
        0x23,
    );
    m.cpu.state.rflags = 0x2;
    m.steps(1);
    let s = &m.cpu.state;
    assert_eq!(s.rip, 0x40_0000);
    assert_eq!(s.cpl(), 3);
    assert_eq!(s.sel[1], 0x2b);
    assert_eq!(s.sel[2], 0x23);
    assert_eq!(s.gpr[RSP], 0x7fff_f000);
    // At CPL 0 IRET may set IF, IOPL and RF.
    assert_eq!(s.rflags, 0x2 | IF | CF | IOPL | RF);
}

#[test]
fn iretq_same_level_pops_all_five() {
    let mut m = M::bytes(&[0x48, 0xcf]);
    iret_frame(
        &mut m,
        0x20_0000,
        0x08,
        0x2 | ZF | VIF | VIP,
        0x6_0000,
        0x10,
    );
    m.steps(1);
    assert_eq!(m.cpu.state.rip, 0x20_0000);
    assert_eq!(m.cpu.state.gpr[RSP], 0x6_0000);
    assert_eq!(m.cpu.state.rflags, 0x2 | ZF | VIF | VIP);
    assert_eq!(m.cpu.state.cpl(), 0);
}

#[test]
fn iretq_at_cpl3_keeps_iopl_if_vif_vip() {
    let mut m = M::bytes(&[0x48, 0xcf]);
    m.user();
    m.cpu.state.rflags = 0x2 | IF;
    iret_frame(
        &mut m,
        0x40_0000,
        0x2b,
        0x2 | IOPL | VIF | VIP | SF,
        0x7000,
        0x23,
    );
    m.steps(1);
    assert_eq!(m.cpu.state.rflags, 0x2 | IF | SF);
}

#[test]
fn iretq_faults() {
    let gp0 = Exception::GeneralProtection(0);
    let cases: &[(Frame, Exception, bool)] = &[
        ((NONCANON, 0x2b, 2, 0x7000, 0x23), gp0, false),
        ((0x40_0000, 0x00, 2, 0x7000, 0x23), gp0, false),
        // Back to CPL 3 with a null SS.
        ((0x40_0000, 0x2b, 2, 0x7000, 0x00), gp0, false),
        // SS RPL differs from the new CPL.
        (
            (0x40_0000, 0x2b, 2, 0x7000, 0x10),
            Exception::GeneralProtection(0x10),
            false,
        ),
        // From CPL 3 to CPL 0: an inner level.
        (
            (0x40_0000, 0x08, 2, 0x7000, 0x10),
            Exception::GeneralProtection(0x08),
            true,
        ),
    ];
    for &((rip, csel, fl, new_rsp, ssel), e, user) in cases {
        let mut m = M::bytes(&[0x48, 0xcf]);
        if user {
            m.user();
        }
        iret_frame(&mut m, rip, csel, fl, new_rsp, ssel);
        m.expect_fault(e);
    }
    // NT=1 in IA-32e mode.
    let mut m = M::bytes(&[0x48, 0xcf]);
    iret_frame(&mut m, 0x40_0000, 0x08, 2, 0x7000, 0x10);
    m.cpu.state.rflags |= NT;
    m.expect_fault(gp0);
    // A non-canonical stack.
    let mut m = M::bytes(&[0x48, 0xcf]);
    m.cpu.state.gpr[RSP] = NONCANON;
    m.expect_fault(Exception::StackFault(0));
}

// --- SWAPGS, descriptor tables, no-ops ---------------------------------------------

#[test]
fn swapgs_swaps() {
    let mut m = M::bytes(&[0x0f, 0x01, 0xf8]);
    m.cpu.state.gs_base = 1;
    m.cpu.state.kernel_gs_base = 2;
    m.steps(1);
    assert_eq!((m.cpu.state.gs_base, m.cpu.state.kernel_gs_base), (2, 1));
}

#[test]
fn descriptor_table_registers_round_trip() {
    // lgdt [0x3000]; lidt [0x3010]; sgdt [0x3020]; sidt [0x3030]
    let mut code = Vec::new();
    for (op, a) in [
        (0x10u8, 0x3000u32),
        (0x18, 0x3010),
        (0x00, 0x3020),
        (0x08, 0x3030),
    ] {
        code.extend_from_slice(&[0x0f, 0x01, op | 0x04, 0x25]);
        code.extend_from_slice(&a.to_le_bytes());
    }
    let mut m = M::bytes(&code);
    m.bus
        .flat
        .mem
        .write(PhysAddr(0x3000), &[0x7f, 0x00])
        .unwrap();
    m.set64(0x3002, 0xffff_ffff_8000_1000);
    m.bus
        .flat
        .mem
        .write(PhysAddr(0x3010), &[0xff, 0x0f])
        .unwrap();
    m.set64(0x3012, 0xffff_ffff_8000_2000);
    m.steps(2);
    assert_eq!(m.cpu.state.gdtr.base, 0xffff_ffff_8000_1000);
    assert_eq!(m.cpu.state.gdtr.limit, 0x7f);
    assert_eq!(m.cpu.state.idtr.base, 0xffff_ffff_8000_2000);
    assert_eq!(m.cpu.state.idtr.limit, 0xfff);
    m.user(); // SGDT/SIDT are allowed at CPL 3 (no UMIP).
    m.steps(2);
    assert_eq!(m.m64(0x3020) & 0xffff, 0x7f);
    assert_eq!(m.m64(0x3022), 0xffff_ffff_8000_1000);
    assert_eq!(m.m64(0x3030) & 0xffff, 0xfff);
    assert_eq!(m.m64(0x3032), 0xffff_ffff_8000_2000);
}

#[test]
fn fences_pause_and_multibyte_nop_are_noops() {
    let mut m = M::asm(|a| {
        a.lfence()?;
        a.sfence()?;
        a.mfence()?;
        a.pause()?;
        a.nop_1(dword_ptr(rax + rax * 1 + 0))?;
        a.nop_1(word_ptr(rax + rax * 1 + 0x100))
    });
    m.cpu.state.gpr[RAX] = NONCANON; // the NOP's operand is never accessed
    m.user();
    let before = m.cpu.state.clone();
    m.steps(6);
    let mut after = m.cpu.state.clone();
    after.rip = before.rip;
    assert_eq!(after, before);
}

// --- Every privileged instruction at CPL 3 ------------------------------------

#[test]
fn privileged_instructions_at_cpl3_are_gp0() {
    let cases: &[(&str, Asm)] = &[
        ("mov cr0, rax", |a| a.mov(cr0, rax)),
        ("mov cr2, rax", |a| a.mov(cr2, rax)),
        ("mov cr3, rax", |a| a.mov(cr3, rax)),
        ("mov cr4, rax", |a| a.mov(cr4, rax)),
        ("mov cr8, rax", |a| a.mov(cr8, rax)),
        ("mov rax, cr0", |a| a.mov(rax, cr0)),
        ("mov rax, cr3", |a| a.mov(rax, cr3)),
        ("mov rax, cr4", |a| a.mov(rax, cr4)),
        ("mov rax, cr8", |a| a.mov(rax, cr8)),
        ("invlpg", |a| a.invlpg(byte_ptr(0x3000))),
        ("invpcid", |a| a.invpcid(rax, xmmword_ptr(0x3000))),
        ("rdmsr", |a| a.rdmsr()),
        ("wrmsr", |a| a.wrmsr()),
        ("hlt", |a| a.hlt()),
        ("swapgs", |a| a.swapgs()),
        ("lgdt", |a| a.lgdt(ptr(0x3000))),
        ("lidt", |a| a.lidt(ptr(0x3000))),
        ("cli", |a| a.cli()),
        ("sti", |a| a.sti()),
    ];
    for (name, f) in cases {
        let mut m = M::asm(f);
        m.user();
        m.cpu.state.gpr[RCX] = msr::IA32_EFER as u64;
        let before = m.cpu.state.clone();
        assert_eq!(
            m.step(),
            StepOutcome::Exception(Exception::GeneralProtection(0)),
            "{name}"
        );
        assert_eq!(m.cpu.state, before, "{name}");
        assert!(m.bus.inv.is_empty(), "{name}");
    }
}

#[test]
fn hlt_at_cpl0_halts() {
    let mut m = M::bytes(&[0xf4]);
    assert_eq!(m.step(), StepOutcome::Halted);
    assert!(m.cpu.state.halted);
    assert_eq!(m.r(RBX), 0);
}

// --- A return-to-user path end to end ------------------------------------------

#[test]
fn kernel_exit_to_user_then_user_traps_and_faults() {
    // Kernel: switch address space keeping the TLB (PCID + no-flush), swapgs,
    // iretq to user code at 0x40_0000. User: INT 0x80 (a trap), then HLT (#GP).
    let mut m = M::asm(|a| {
        a.mov(cr3, rax)?;
        a.swapgs()?;
        a.iretq()
    });
    m.bus
        .flat
        .mem
        .write(PhysAddr(0x40_0000), &[0xcd, 0x80, 0xf4])
        .unwrap();
    m.cpu.state.cr4 |= CR4_PCIDE;
    m.cpu.state.gpr[RAX] = CR3_NOFLUSH | 0x0020_0000 | 3;
    m.cpu.state.kernel_gs_base = 0x7000;
    iret_frame(&mut m, 0x40_0000, 0x2b, 0x2 | IF, 0x7ff0, 0x23);
    m.steps(3);
    assert_eq!(m.cpu.state.cr3, 0x0020_0003);
    assert_eq!(m.cpu.state.gs_base, 0x7000);
    assert_eq!(m.cpu.state.cpl(), 3);
    assert_eq!(m.cpu.state.rip, 0x40_0000);
    assert_eq!(
        m.step(),
        StepOutcome::Exception(Exception::SoftwareInterrupt(0x80))
    );
    assert_eq!(m.cpu.state.rip, 0x40_0002, "INT n is a trap: RIP after it");
    m.bus.inv.clear();
    m.expect_fault(Exception::GeneralProtection(0));
    assert_eq!(m.cpu.state.rip, 0x40_0002, "#GP is a fault: RIP at HLT");
}

#[test]
fn sti_shadow_covers_exactly_one_instruction() {
    let mut m = M::asm(|a| {
        a.sti()?;
        a.nop()?;
        a.nop()
    });
    m.steps(1);
    assert!(m.cpu.state.interrupt_shadow);
    m.steps(1);
    assert!(!m.cpu.state.interrupt_shadow);
}
