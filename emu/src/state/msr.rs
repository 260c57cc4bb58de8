//! Model-specific registers the core implements, as a table (SDM Vol. 4).
//!
//! RDMSR/WRMSR of any MSR not listed here raises #GP(0) (SDM Vol. 2B RDMSR), which is
//! what kernels probing for an MSR expect. The x2APIC range (0x800..=0x8ff) is owned
//! by the local APIC, reached through [`crate::Bus::apic_msr`].

/// One implemented MSR.
#[derive(Clone, Copy, Debug)]
pub struct MsrInfo {
    /// MSR index (ECX).
    pub index: u32,
    /// Architectural name.
    pub name: &'static str,
}

/// IA32_TIME_STAMP_COUNTER
pub const IA32_TSC: u32 = 0x10;
/// IA32_APIC_BASE
pub const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_PAT
pub const IA32_PAT: u32 = 0x277;
/// IA32_EFER
pub const IA32_EFER: u32 = 0xc000_0080;
/// IA32_STAR (SYSCALL/SYSRET selectors)
pub const IA32_STAR: u32 = 0xc000_0081;
/// IA32_LSTAR (SYSCALL's 64-bit entry point)
pub const IA32_LSTAR: u32 = 0xc000_0082;
/// IA32_FMASK (RFLAGS bits SYSCALL clears)
pub const IA32_FMASK: u32 = 0xc000_0084;
/// IA32_FS_BASE
pub const IA32_FS_BASE: u32 = 0xc000_0100;
/// IA32_GS_BASE
pub const IA32_GS_BASE: u32 = 0xc000_0101;
/// IA32_KERNEL_GS_BASE
pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// IA32_TSC_AUX
pub const IA32_TSC_AUX: u32 = 0xc000_0103;
/// First x2APIC MSR.
pub const X2APIC_FIRST: u32 = 0x800;
/// Last x2APIC MSR.
pub const X2APIC_LAST: u32 = 0x8ff;
/// The x2APIC task-priority register (CR8 is its bits 7:4).
pub const X2APIC_TPR: u32 = 0x808;

/// The MSRs the core itself holds.
pub const CORE_MSRS: &[MsrInfo] = &[
    MsrInfo {
        index: IA32_TSC,
        name: "IA32_TIME_STAMP_COUNTER",
    },
    MsrInfo {
        index: IA32_APIC_BASE,
        name: "IA32_APIC_BASE",
    },
    MsrInfo {
        index: IA32_PAT,
        name: "IA32_PAT",
    },
    MsrInfo {
        index: IA32_EFER,
        name: "IA32_EFER",
    },
    MsrInfo {
        index: IA32_STAR,
        name: "IA32_STAR",
    },
    MsrInfo {
        index: IA32_LSTAR,
        name: "IA32_LSTAR",
    },
    MsrInfo {
        index: IA32_FMASK,
        name: "IA32_FMASK",
    },
    MsrInfo {
        index: IA32_FS_BASE,
        name: "IA32_FS_BASE",
    },
    MsrInfo {
        index: IA32_GS_BASE,
        name: "IA32_GS_BASE",
    },
    MsrInfo {
        index: IA32_KERNEL_GS_BASE,
        name: "IA32_KERNEL_GS_BASE",
    },
    MsrInfo {
        index: IA32_TSC_AUX,
        name: "IA32_TSC_AUX",
    },
];

/// Looks up an MSR the core holds.
pub fn core_msr(index: u32) -> Option<&'static MsrInfo> {
    CORE_MSRS.iter().find(|m| m.index == index)
}

/// Value of IA32_APIC_BASE: base 0xfee00000, x2APIC mode and global enable, and the
/// BSP flag on core 0 (SDM Vol. 3A 10.4.4, 10.12.1).
pub fn apic_base_value(is_bsp: bool) -> u64 {
    0xfee0_0000 | (1 << 11) | (1 << 10) | if is_bsp { 1 << 8 } else { 0 }
}
