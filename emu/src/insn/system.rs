//! System family: MOV to/from CR0/CR2/CR3/CR4/CR8, INVLPG, INVPCID, RDMSR/WRMSR,
//! CPUID, RDTSC/RDTSCP, HLT, INT3, INT n, SWAPGS, UD2, LIDT/LGDT/SIDT/SGDT,
//! the fences, PAUSE and NOP (SDM Vol. 2 and Vol. 3A chapters 2, 4, 6).
//!
//! Model choices:
//! - LFENCE/SFENCE/MFENCE and PAUSE retire as no-ops: every instruction is one
//!   sequentially consistent step, so there is nothing to order or wait for.
//! - CPUID reports the features in [`CpuFeatures`] plus a fixed baseline; leaves
//!   above the highest basic or extended leaf return the highest basic leaf's data
//!   (as Intel parts do); unimplemented leaves below the maxima return zeros.
//! - Every control-register write, INVLPG and INVPCID takes its paging checks and
//!   the [`Invalidation`] to apply from the mmu crate (one definition of each SDM
//!   Vol. 3A 4.10.4 rule), hands that to [`Bus::invalidate`] before writing any
//!   register (the MMU reads the current PCID and CR4.PCIDE from the registers as
//!   they were), and only then writes the register.

use super::{Exec, ExecResult};
use crate::bus::{AccessKind, Bus};
use crate::exception::{Exception, GP0, UD};
use crate::features::CpuFeatures;
use crate::state::control::*;
use crate::state::msr;
use crate::state::{RAX, RCX, RDX};
use iced_x86::{Mnemonic, Register};
use mmu::{Invalidation, VirtAddr};

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        // Architectural no-ops in a one-instruction-per-step, sequentially
        // consistent model (SDM Vol. 2A LFENCE, MFENCE; Vol. 2B PAUSE, SFENCE, NOP).
        Mnemonic::Nop | Mnemonic::Pause | Mnemonic::Lfence | Mnemonic::Sfence => Ok(()),
        Mnemonic::Mfence => Ok(()),
        Mnemonic::Hlt => hlt(x),
        Mnemonic::Mov => mov_cr(x),
        Mnemonic::Invlpg => invlpg(x),
        Mnemonic::Invpcid => invpcid(x),
        Mnemonic::Rdmsr => rdmsr(x),
        Mnemonic::Wrmsr => wrmsr(x),
        Mnemonic::Cpuid => cpuid(x),
        Mnemonic::Rdtsc => rdtsc(x, false),
        Mnemonic::Rdtscp => rdtsc(x, true),
        Mnemonic::Int3 => Err(Exception::Breakpoint.into()),
        Mnemonic::Int => Err(Exception::SoftwareInterrupt(x.ins.immediate8()).into()),
        Mnemonic::Ud2 => Err(UD),
        Mnemonic::Swapgs => swapgs(x),
        Mnemonic::Lgdt | Mnemonic::Lidt => load_dtr(x, m == Mnemonic::Lidt),
        Mnemonic::Sgdt | Mnemonic::Sidt => store_dtr(x, m == Mnemonic::Sidt),
        _ => Err(x.unsupported()),
    }
}

/// HLT: CPL 0 only; the core sleeps until an interrupt is pending (SDM Vol. 2A HLT).
fn hlt<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()?;
    x.cpu.halted = true;
    Ok(())
}

/// Little-endian u64 from up to eight bytes.
fn le64(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |a, &v| (a << 8) | v as u64)
}

// ---------------------------------------------------------------------------
// Control registers
// ---------------------------------------------------------------------------

/// MOV to or from CR0/CR2/CR3/CR4/CR8 (SDM Vol. 2A "MOV—Move to/from Control
/// Registers"). Other control registers are #UD; any CPL but 0 is #GP(0).
fn mov_cr<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let to_cr = x.ins.op0_register().is_cr();
    let cr = if to_cr {
        x.ins.op0_register()
    } else {
        x.ins.op1_register()
    };
    if !matches!(
        cr,
        Register::CR0 | Register::CR2 | Register::CR3 | Register::CR4 | Register::CR8
    ) {
        return Err(UD);
    }
    x.require_cpl0()?;
    if !to_cr {
        let v = match cr {
            Register::CR0 => x.cpu.cr0,
            Register::CR2 => x.cpu.cr2,
            Register::CR3 => x.cpu.cr3,
            Register::CR4 => x.cpu.cr4,
            _ => x.cpu.cr8,
        };
        x.cpu.write_gpr(x.ins.op0_register(), v);
        return Ok(());
    }
    let v = x.cpu.read_gpr(x.ins.op1_register());
    match cr {
        Register::CR0 => write_cr0(x, v),
        Register::CR2 => {
            x.cpu.cr2 = v;
            Ok(())
        }
        Register::CR3 => write_cr3(x, v),
        Register::CR4 => write_cr4(x, v),
        _ => write_cr8(x, v),
    }
}

/// MOV to CR0 (SDM Vol. 2A MOV CR, exceptions; Vol. 3A 2.5). #GP(0) for a 1 in bits
/// 63:32, PG without PE, NW without CD, and clearing PG in 64-bit mode; the paging
/// rule (clearing PG with CR4.PCIDE=1, SDM Vol. 3A 4.10.1) is [`mmu::check_mov_cr0`].
/// Reserved bits in 31:0 are ignored and read back as 0 (SDM MOV CR: "reserved bits
/// in CR0 remain clear"); ET is hardwired to 1.
fn write_cr0<B: Bus>(x: &mut Exec<'_, B>, v: u64) -> ExecResult {
    if v >> 32 != 0
        || (v & CR0_PG != 0 && v & CR0_PE == 0)
        || (v & CR0_NW != 0 && v & CR0_CD == 0)
        || (x.cpu.efer & EFER_LMA != 0 && v & CR0_PG == 0)
    {
        return Err(GP0);
    }
    let old = x.cpu.cr0;
    let new = (v & CR0_DEFINED) | CR0_ET;
    mmu::check_mov_cr0(old, new, x.cpu.cr4).map_err(|_| GP0)?;
    x.bus.invalidate(x.cpu, Invalidation::MovCr0 { old, new })?;
    x.cpu.cr0 = new;
    Ok(())
}

/// MOV to CR3 (SDM Vol. 2A MOV CR; Vol. 3A 4.10.4.1). The value stored is
/// [`mmu::cr3_after_mov`] (with CR4.PCIDE=1, source bit 63 is the no-flush hint and
/// is not stored); any other bit at or above MAXPHYADDR is #GP(0).
fn write_cr3<B: Bus>(x: &mut Exec<'_, B>, v: u64) -> ExecResult {
    let new = mmu::cr3_after_mov(v, x.cpu.cr4);
    let width = x.features.maxphyaddr as u32;
    if width < 64 && new >> width != 0 {
        return Err(GP0);
    }
    x.bus.invalidate(x.cpu, Invalidation::MovCr3 { src: v })?;
    x.cpu.cr3 = new;
    Ok(())
}

/// CR4 bits this CPU model lets software set: the baseline plus the bits whose
/// features [`CpuFeatures`] reports. VME/PVI, UMIP, FSGSBASE and OSXSAVE belong to
/// features CPUID does not report, so setting them is #GP(0).
pub(crate) fn cr4_allowed(f: &CpuFeatures) -> u64 {
    let mut m = CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_MCE | CR4_PCE | CR4_OSFXSR;
    m |= CR4_OSXMMEXCPT;
    if f.pge {
        m |= CR4_PGE;
    }
    if f.pcid {
        m |= CR4_PCIDE;
    }
    if f.smep {
        m |= CR4_SMEP;
    }
    if f.smap {
        m |= CR4_SMAP;
    }
    m
}

/// MOV to CR4 (SDM Vol. 2A MOV CR, exceptions; Vol. 3A 2.5, 4.10.1). #GP(0) for
/// reserved or unsupported bits, for clearing PAE in IA-32e mode, and for setting
/// PCIDE outside IA-32e mode; setting PCIDE with CR3[11:0] other than 0 is the
/// paging rule of [`mmu::check_mov_cr4`].
fn write_cr4<B: Bus>(x: &mut Exec<'_, B>, v: u64) -> ExecResult {
    let old = x.cpu.cr4;
    let lma = x.cpu.efer & EFER_LMA != 0;
    if v & !cr4_allowed(x.features) != 0 || (lma && v & CR4_PAE == 0) {
        return Err(GP0);
    }
    if old & CR4_PCIDE == 0 && v & CR4_PCIDE != 0 && !lma {
        return Err(GP0);
    }
    mmu::check_mov_cr4(old, v, x.cpu.cr3).map_err(|_| GP0)?;
    x.bus
        .invalidate(x.cpu, Invalidation::MovCr4 { old, new: v })?;
    x.cpu.cr4 = v;
    Ok(())
}

/// MOV to CR8, the task-priority register: bits 63:4 are reserved (SDM Vol. 3A
/// 10.8.6.1).
fn write_cr8<B: Bus>(x: &mut Exec<'_, B>, v: u64) -> ExecResult {
    if v >> 4 != 0 {
        return Err(GP0);
    }
    x.cpu.cr8 = v;
    x.bus.set_task_priority(v as u8);
    Ok(())
}

// ---------------------------------------------------------------------------
// TLB maintenance
// ---------------------------------------------------------------------------

/// INVLPG m (SDM Vol. 2A INVLPG): CPL 0 only. The operand's linear address is
/// computed but memory is not accessed; [`mmu::invlpg`] makes a non-canonical
/// address a no-op, not a fault.
fn invlpg<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()?;
    let la = x
        .cpu
        .seg_base(x.ins.memory_segment())
        .wrapping_add(x.effective_offset());
    match mmu::invlpg(VirtAddr(la)) {
        Some(op) => x.bus.invalidate(x.cpu, op),
        None => Ok(()),
    }
}

/// INVPCID r64, m128 (SDM Vol. 2A INVPCID). #UD without the feature; #GP(0) above
/// CPL 0; the 16-byte descriptor is read (and can fault); then [`mmu::invpcid`]
/// gives #GP(0) for a type above 3, descriptor bits 63:12 set, a non-canonical
/// address with type 0, or a nonzero PCID with types 0/1 while CR4.PCIDE=0.
fn invpcid<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    if !x.features.invpcid {
        return Err(UD);
    }
    x.require_cpl0()?;
    let kind = x.cpu.read_gpr(x.ins.op0_register());
    let la = x.mem_la()?;
    let loc = x.translate(la, 16, AccessKind::Read)?;
    let mut buf = [0u8; 16];
    x.load_bytes(loc, &mut buf)?;
    let (lo, hi) = buf.split_at(8);
    let op = mmu::invpcid(kind, le64(lo), le64(hi), x.cpu.cr4).map_err(|_| GP0)?;
    x.bus.invalidate(x.cpu, op)
}

// ---------------------------------------------------------------------------
// MSRs
// ---------------------------------------------------------------------------

/// EFER bits that exist in this model.
const EFER_DEFINED: u64 = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;

/// RDMSR (SDM Vol. 2B RDMSR): CPL 0; EDX:EAX ← MSR[ECX]. The core MSRs of
/// [`msr::CORE_MSRS`], the x2APIC range through the bus, anything else #GP(0).
fn rdmsr<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()?;
    let index = x.cpu.gpr[RCX] as u32;
    let c = &*x.cpu;
    let v = match index {
        msr::IA32_TSC => x.bus.clock().wrapping_add(c.tsc_offset),
        msr::IA32_APIC_BASE => msr::apic_base_value(x.core_id == 0),
        msr::IA32_PAT => c.pat,
        msr::IA32_EFER => c.efer,
        msr::IA32_FS_BASE => c.fs_base,
        msr::IA32_GS_BASE => c.gs_base,
        msr::IA32_KERNEL_GS_BASE => c.kernel_gs_base,
        msr::IA32_TSC_AUX => c.tsc_aux,
        msr::IA32_STAR => c.star,
        msr::IA32_LSTAR => c.lstar,
        msr::IA32_FMASK => c.fmask,
        msr::X2APIC_FIRST..=msr::X2APIC_LAST => x.bus.apic_msr(x.cpu, index, None)?,
        _ => return Err(GP0),
    };
    x.cpu.gpr[RAX] = v & 0xffff_ffff;
    x.cpu.gpr[RDX] = v >> 32;
    Ok(())
}

/// A PAT entry type is valid when it is UC, WC, WT, WP, WB or UC- (SDM Vol. 3A
/// 11.12.2); any other value, or a reserved bit, makes WRMSR #GP(0).
fn pat_valid(v: u64) -> bool {
    v.to_le_bytes()
        .iter()
        .all(|b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7))
}

/// WRMSR (SDM Vol. 2B WRMSR): CPL 0; MSR[ECX] ← EDX:EAX with each MSR's rules:
/// EFER (reserved bits, NXE needs NX, LME cannot change while paging is on, LMA is
/// read-only and keeps its value), the base MSRs (canonical), TSC (sets the offset
/// so the TSC reads the written value now), TSC_AUX (32 bits), PAT (valid types),
/// APIC_BASE (fixed: only its current value may be written), STAR/LSTAR/FMASK.
fn wrmsr<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()?;
    let index = x.cpu.gpr[RCX] as u32;
    let v = (x.cpu.gpr[RDX] << 32) | (x.cpu.gpr[RAX] & 0xffff_ffff);
    let canonical = VirtAddr(v).is_canonical();
    match index {
        msr::IA32_TSC => x.cpu.tsc_offset = v.wrapping_sub(x.bus.clock()),
        msr::IA32_APIC_BASE => {
            if v != msr::apic_base_value(x.core_id == 0) {
                return Err(GP0);
            }
        }
        msr::IA32_PAT => {
            if !pat_valid(v) {
                return Err(GP0);
            }
            x.cpu.pat = v;
        }
        msr::IA32_EFER => {
            let old = x.cpu.efer;
            if v & !EFER_DEFINED != 0
                || (v & EFER_NXE != 0 && !x.features.nx)
                || ((v ^ old) & EFER_LME != 0 && x.cpu.cr0 & CR0_PG != 0)
            {
                return Err(GP0);
            }
            x.cpu.efer = (v & !EFER_LMA) | (old & EFER_LMA);
        }
        msr::IA32_FS_BASE | msr::IA32_GS_BASE | msr::IA32_KERNEL_GS_BASE | msr::IA32_LSTAR
            if !canonical =>
        {
            return Err(GP0)
        }
        // SYSCALL/SYSRET MSRs (SDM Vol. 2B SYSCALL; Vol. 4 table 2-2): STAR takes any
        // value, LSTAR must be canonical, FMASK's bits 63:32 are reserved.
        msr::IA32_STAR => x.cpu.star = v,
        msr::IA32_LSTAR => x.cpu.lstar = v,
        msr::IA32_FMASK if v >> 32 != 0 => return Err(GP0),
        msr::IA32_FMASK => x.cpu.fmask = v,
        msr::IA32_FS_BASE => x.cpu.fs_base = v,
        msr::IA32_GS_BASE => x.cpu.gs_base = v,
        msr::IA32_KERNEL_GS_BASE => x.cpu.kernel_gs_base = v,
        msr::IA32_TSC_AUX => {
            if v >> 32 != 0 {
                return Err(GP0);
            }
            x.cpu.tsc_aux = v;
        }
        msr::X2APIC_FIRST..=msr::X2APIC_LAST => {
            x.bus.apic_msr(x.cpu, index, Some(v))?;
            // CR8 is TPR bits 7:4 (SDM Vol. 3A 10.8.6.1): read back what the APIC
            // kept, so CR8 follows the write at once.
            if index == msr::X2APIC_TPR {
                x.cpu.cr8 = x.bus.apic_msr(x.cpu, index, None)? >> 4;
            }
        }
        _ => return Err(GP0),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CPUID and the time-stamp counter
// ---------------------------------------------------------------------------

/// Highest basic CPUID leaf reported.
const MAX_BASIC: u32 = 7;
/// Highest extended CPUID leaf reported.
const MAX_EXT: u32 = 0x8000_0008;
/// CPUID.01H:EAX: family 6, model 0x8f, stepping 8 (a part with PCID, INVPCID,
/// SMEP and SMAP). Fixed so runs are reproducible.
const SIGNATURE: u32 = 0x0008_06f8;

/// Feature bits of CPUID.01H:EDX always reported: FPU, DE, PSE, TSC, MSR, PAE,
/// MCE, CX8, APIC, CMOV, PAT, CLFSH, FXSR, SSE, SSE2 (x86-64's architectural
/// minimum plus what the modelled CR4 bits advertise).
const LEAF1_EDX: u32 = 1 | 1 << 2 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8;
const LEAF1_EDX_HI: u32 = 1 << 9 | 1 << 15 | 1 << 16 | 1 << 19 | 1 << 24 | 1 << 25 | 1 << 26;
/// CPUID.01H:ECX always reported: CX16, x2APIC, POPCNT.
const LEAF1_ECX: u32 = 1 << 13 | 1 << 21 | 1 << 23;

/// The four CPUID result registers for `leaf`/`sub` (SDM Vol. 2A CPUID, tables
/// 3-8 and 3-17): vendor "GenuineIntel", the feature flags of `f` plus the
/// baseline above, and the initial APIC ID `apic_id` in CPUID.01H:EBX[31:24].
pub(crate) fn cpuid_leaf(f: &CpuFeatures, apic_id: u32, leaf: u32, sub: u32) -> [u32; 4] {
    let bit = |on: bool, n: u32| if on { 1u32 << n } else { 0 };
    match leaf {
        // "Genu" "ntel" "ineI" in EBX, ECX, EDX.
        0 => [MAX_BASIC, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
        1 => [
            SIGNATURE,
            (apic_id & 0xff) << 24 | 1 << 16 | 8 << 8,
            LEAF1_ECX | bit(f.pcid, 17),
            LEAF1_EDX | LEAF1_EDX_HI | bit(f.pge, 13),
        ],
        7 if sub == 0 => [
            0,
            // BMI1 (for TZCNT), SMEP, INVPCID, SMAP, CLFLUSHOPT.
            1 << 3 | bit(f.smep, 7) | bit(f.invpcid, 10) | bit(f.smap, 20) | 1 << 23,
            // RDPID.
            1 << 22,
            0,
        ],
        2..=MAX_BASIC => [0; 4],
        0x8000_0000 => [MAX_EXT, 0, 0, 0],
        0x8000_0001 => [
            0,
            0,
            // LZCNT (ABM).
            1 << 5,
            // SYSCALL, NX, 1-GByte pages, RDTSCP, LM.
            1 << 11 | bit(f.nx, 20) | bit(f.huge_1g, 26) | 1 << 27 | 1 << 29,
        ],
        0x8000_0008 => [f.maxphyaddr as u32 | 48 << 8, 0, 0, 0],
        0x8000_0002..=0x8000_0007 => [0; 4],
        // Above both maxima: the highest basic leaf's data, as Intel does.
        _ => cpuid_leaf(f, apic_id, MAX_BASIC, sub),
    }
}

/// CPUID (SDM Vol. 2A CPUID): EAX/EBX/ECX/EDX ← the leaf in EAX, subleaf in ECX.
/// Allowed at any CPL; 32-bit results zero the upper halves.
fn cpuid<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let leaf = x.cpu.gpr[RAX] as u32;
    let sub = x.cpu.gpr[RCX] as u32;
    let r = cpuid_leaf(x.features, x.core_id, leaf, sub);
    x.cpu.gpr[RAX] = r[0] as u64;
    x.cpu.gpr[crate::state::RBX] = r[1] as u64;
    x.cpu.gpr[RCX] = r[2] as u64;
    x.cpu.gpr[RDX] = r[3] as u64;
    Ok(())
}

/// RDTSC / RDTSCP (SDM Vol. 2B RDTSC, RDTSCP): EDX:EAX ← the TSC, the virtual
/// clock (global step count) plus the core's offset; RDTSCP also loads ECX with
/// IA32_TSC_AUX. CR4.TSD makes both #GP(0) above CPL 0.
fn rdtsc<B: Bus>(x: &mut Exec<'_, B>, aux: bool) -> ExecResult {
    if x.cpu.cr4 & CR4_TSD != 0 && x.cpu.cpl() != 0 {
        return Err(GP0);
    }
    let tsc = x.bus.clock().wrapping_add(x.cpu.tsc_offset);
    x.cpu.gpr[RAX] = tsc & 0xffff_ffff;
    x.cpu.gpr[RDX] = tsc >> 32;
    if aux {
        x.cpu.gpr[RCX] = x.cpu.tsc_aux & 0xffff_ffff;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// SWAPGS, descriptor-table registers
// ---------------------------------------------------------------------------

/// SWAPGS (SDM Vol. 2B SWAPGS): CPL 0 only; exchanges GS base and
/// IA32_KERNEL_GS_BASE.
fn swapgs<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()?;
    std::mem::swap(&mut x.cpu.gs_base, &mut x.cpu.kernel_gs_base);
    Ok(())
}

/// LGDT / LIDT m16&64 (SDM Vol. 2A LGDT/LIDT): CPL 0; reads the 2-byte limit and
/// the 8-byte base as one 10-byte access.
fn load_dtr<B: Bus>(x: &mut Exec<'_, B>, idt: bool) -> ExecResult {
    x.require_cpl0()?;
    let la = x.mem_la()?;
    let loc = x.translate(la, 10, AccessKind::Read)?;
    let mut buf = [0u8; 10];
    x.load_bytes(loc, &mut buf)?;
    let (limit, base) = buf.split_at(2);
    let t = crate::state::DescTable {
        base: le64(base),
        limit: le64(limit) as u16,
    };
    if idt {
        x.cpu.idtr = t;
    } else {
        x.cpu.gdtr = t;
    }
    Ok(())
}

/// SGDT / SIDT m16&64 (SDM Vol. 2B SGDT/SIDT): stores limit then base (10 bytes).
/// Allowed at any CPL: CR4.UMIP, which would forbid it at CPL > 0, is not a
/// feature of this model.
fn store_dtr<B: Bus>(x: &mut Exec<'_, B>, idt: bool) -> ExecResult {
    let t = if idt { x.cpu.idtr } else { x.cpu.gdtr };
    let la = x.mem_la()?;
    let loc = x.translate(la, 10, AccessKind::Write)?;
    let mut buf = [0u8; 10];
    let (limit, base) = buf.split_at_mut(2);
    limit.copy_from_slice(&t.limit.to_le_bytes());
    base.copy_from_slice(&t.base.to_le_bytes());
    x.store_bytes(loc, &buf)
}
