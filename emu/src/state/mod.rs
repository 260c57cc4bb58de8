//! Architectural state of one x86-64 core.

pub mod control;
pub mod msr;

use iced_x86::Register;
use serde::{Deserialize, Serialize};

/// A descriptor-table register (GDTR, IDTR): base and limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DescTable {
    /// Linear base address of the table.
    pub base: u64,
    /// Limit (size in bytes minus one).
    pub limit: u16,
}

/// Segment registers by their encoding order (ES, CS, SS, DS, FS, GS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seg {
    /// ES
    Es = 0,
    /// CS
    Cs = 1,
    /// SS
    Ss = 2,
    /// DS
    Ds = 3,
    /// FS
    Fs = 4,
    /// GS
    Gs = 5,
}

/// The register file and control state of one core.
///
/// In 64-bit mode segmentation is flat except for the FS and GS bases, so a segment
/// register is just its selector (CS's RPL is the CPL) plus the two bases.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CpuState {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    /// Instruction pointer of the next instruction to execute.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// Selectors, indexed by [`Seg`].
    pub sel: [u16; 6],
    /// FS base (IA32_FS_BASE).
    pub fs_base: u64,
    /// GS base (IA32_GS_BASE).
    pub gs_base: u64,
    /// IA32_KERNEL_GS_BASE, swapped with GS base by SWAPGS.
    pub kernel_gs_base: u64,
    /// CR0.
    pub cr0: u64,
    /// CR2, the last page-fault linear address.
    pub cr2: u64,
    /// CR3, the paging root (and PCID when CR4.PCIDE=1).
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8 (task-priority register).
    pub cr8: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// Added to the virtual clock to give the TSC (WRMSR to IA32_TSC adjusts it).
    pub tsc_offset: u64,
    /// IA32_TSC_AUX, returned in ECX by RDTSCP.
    pub tsc_aux: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// IA32_STAR: SYSCALL's CS/SS selector base in bits 47:32, SYSRET's in 63:48.
    pub star: u64,
    /// IA32_LSTAR: SYSCALL's 64-bit entry point.
    pub lstar: u64,
    /// IA32_FMASK: RFLAGS bits SYSCALL clears (bits 31:0).
    pub fmask: u64,
    /// GDTR.
    pub gdtr: DescTable,
    /// IDTR.
    pub idtr: DescTable,
    /// Task register's TSS base (64-bit TSS: RSP0..2 and IST1..7 live there).
    pub tss_base: u64,
    /// Set by STI (when IF was 0) and POP SS / MOV SS: interrupts are blocked until
    /// the end of the next instruction (SDM Vol. 3A 6.8.3).
    pub interrupt_shadow: bool,
    /// The core executed HLT and sleeps until an interrupt is pending.
    pub halted: bool,
}

/// Kernel code selector used by the default machine.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data/stack selector used by the default machine.
pub const KERNEL_SS: u16 = 0x10;
/// User code selector (RPL 3).
pub const USER_CS: u16 = 0x2b;
/// User data/stack selector (RPL 3).
pub const USER_SS: u16 = 0x23;

impl Default for CpuState {
    fn default() -> Self {
        CpuState {
            gpr: [0; 16],
            rip: 0,
            rflags: 0x2,
            sel: [0, KERNEL_CS, KERNEL_SS, 0, 0, 0],
            fs_base: 0,
            gs_base: 0,
            kernel_gs_base: 0,
            cr0: control::CR0_PE | control::CR0_PG | control::CR0_ET | control::CR0_NE,
            cr2: 0,
            cr3: 0,
            cr4: control::CR4_PAE,
            cr8: 0,
            efer: control::EFER_LME | control::EFER_LMA | control::EFER_SCE,
            tsc_offset: 0,
            tsc_aux: 0,
            pat: 0x0007_0406_0007_0406,
            star: 0,
            lstar: 0,
            fmask: 0,
            gdtr: DescTable::default(),
            idtr: DescTable::default(),
            tss_base: 0,
            interrupt_shadow: false,
            halted: false,
        }
    }
}

/// Names of the 64-bit GPRs in encoding order.
pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Index of RSP in [`CpuState::gpr`].
pub const RSP: usize = 4;
/// Index of RAX.
pub const RAX: usize = 0;
/// Index of RCX.
pub const RCX: usize = 1;
/// Index of RDX.
pub const RDX: usize = 2;
/// Index of RBX.
pub const RBX: usize = 3;
/// Index of RSI.
pub const RSI: usize = 6;
/// Index of RDI.
pub const RDI: usize = 7;

/// Where a general-purpose register name lives in [`CpuState::gpr`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct GprSlot {
    /// Index 0..16.
    pub index: usize,
    /// Width in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// True for AH, CH, DH, BH (bits 15:8).
    pub high8: bool,
}

/// Looks up where an iced GPR lives; `None` for anything that is not a GPR.
#[inline]
pub(crate) fn gpr_slot(r: Register) -> Option<GprSlot> {
    let n = r as u32;
    let (base, size) = if r.is_gpr64() {
        (Register::RAX as u32, 8)
    } else if r.is_gpr32() {
        (Register::EAX as u32, 4)
    } else if r.is_gpr16() {
        (Register::AX as u32, 2)
    } else if r.is_gpr8() {
        let i = n - Register::AL as u32;
        // AL CL DL BL AH CH DH BH SPL BPL SIL DIL R8L..R15L
        return Some(match i {
            4..=7 => GprSlot {
                index: (i - 4) as usize,
                size: 1,
                high8: true,
            },
            0..=3 => GprSlot {
                index: i as usize,
                size: 1,
                high8: false,
            },
            _ => GprSlot {
                index: (i - 4) as usize,
                size: 1,
                high8: false,
            },
        });
    } else {
        return None;
    };
    Some(GprSlot {
        index: (n - base) as usize,
        size,
        high8: false,
    })
}

impl CpuState {
    /// Current privilege level: the RPL of CS (SDM Vol. 3A 5.5).
    #[inline]
    pub fn cpl(&self) -> u8 {
        (self.sel[Seg::Cs as usize] & 3) as u8
    }

    /// Reads a general-purpose register by iced name, zero-extended. Other register
    /// kinds read as 0; callers check kinds before (the dispatcher only routes GPR
    /// operands here).
    #[inline]
    pub fn read_gpr(&self, r: Register) -> u64 {
        match gpr_slot(r) {
            Some(s) => {
                let v = self.gpr[s.index];
                match (s.size, s.high8) {
                    (1, true) => (v >> 8) & 0xff,
                    (1, false) => v & 0xff,
                    (2, _) => v & 0xffff,
                    (4, _) => v & 0xffff_ffff,
                    _ => v,
                }
            }
            None => 0,
        }
    }

    /// Writes a general-purpose register with x86's rules: a 32-bit write zeroes bits
    /// 63:32, 8- and 16-bit writes merge (SDM Vol. 1 3.4.1.1).
    #[inline]
    pub fn write_gpr(&mut self, r: Register, v: u64) {
        if let Some(s) = gpr_slot(r) {
            let old = self.gpr[s.index];
            self.gpr[s.index] = match (s.size, s.high8) {
                (1, true) => (old & !0xff00) | ((v & 0xff) << 8),
                (1, false) => (old & !0xff) | (v & 0xff),
                (2, _) => (old & !0xffff) | (v & 0xffff),
                (4, _) => v & 0xffff_ffff,
                _ => v,
            };
        }
    }

    /// Sets a register by lower-case name ("rax".."r15", "rip", "rflags", "cr0", ...).
    /// Returns false for an unknown name.
    pub fn set_by_name(&mut self, name: &str, v: u64) -> bool {
        if let Some(i) = GPR_NAMES.iter().position(|n| *n == name) {
            self.gpr[i] = v;
            return true;
        }
        match name {
            "rip" => self.rip = v,
            "rflags" => self.rflags = (v & control::RFLAGS_WRITABLE) | 0x2,
            "cr0" => self.cr0 = v,
            "cr2" => self.cr2 = v,
            "cr3" => self.cr3 = v,
            "cr4" => self.cr4 = v,
            "cr8" => self.cr8 = v,
            "efer" => self.efer = v,
            "fs_base" => self.fs_base = v,
            "gs_base" => self.gs_base = v,
            "kernel_gs_base" => self.kernel_gs_base = v,
            _ => return false,
        }
        true
    }

    /// Base of a segment for linear-address formation in 64-bit mode: FS and GS have
    /// bases, the others are flat (SDM Vol. 3A 3.4.4).
    #[inline]
    pub fn seg_base(&self, seg: Register) -> u64 {
        match seg {
            Register::FS => self.fs_base,
            Register::GS => self.gs_base,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_register_writes() {
        let mut s = CpuState::default();
        s.gpr[0] = 0x1122_3344_5566_7788;
        s.write_gpr(Register::AH, 0xaa);
        assert_eq!(s.gpr[0], 0x1122_3344_5566_aa88);
        s.write_gpr(Register::AX, 0xbbcc);
        assert_eq!(s.gpr[0], 0x1122_3344_5566_bbcc);
        s.write_gpr(Register::EAX, 0xdead_beef);
        assert_eq!(s.gpr[0], 0xdead_beef);
        s.write_gpr(Register::SIL, 0x7f);
        assert_eq!(s.gpr[RSI], 0x7f);
        assert_eq!(s.read_gpr(Register::R15D), 0);
        s.write_gpr(Register::R9W, 0x1234);
        assert_eq!(s.read_gpr(Register::R9), 0x1234);
        assert_eq!(s.read_gpr(Register::AH), 0xbe);
    }
}
