//! The CPU model: which optional features CPUID reports and the core honours.

use serde::{Deserialize, Serialize};

/// Optional features of the emulated CPU. The default is a modern x86-64 part
/// with every feature the shootdown and context-switch paths care about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuFeatures {
    /// Process-context identifiers (CPUID.01H:ECX.PCID[bit 17]); CR4.PCIDE may be set.
    pub pcid: bool,
    /// INVPCID (CPUID.(EAX=07H,ECX=0):EBX.INVPCID[bit 10]); else INVPCID is #UD.
    pub invpcid: bool,
    /// Global pages (CPUID.01H:EDX.PGE[bit 13]); CR4.PGE may be set.
    pub pge: bool,
    /// Supervisor-mode execution prevention (CPUID.(EAX=07H,ECX=0):EBX.SMEP[bit 7]).
    pub smep: bool,
    /// Supervisor-mode access prevention (CPUID.(EAX=07H,ECX=0):EBX.SMAP[bit 20]).
    pub smap: bool,
    /// Execute-disable (CPUID.80000001H:EDX.NX[bit 20]); EFER.NXE may be set.
    pub nx: bool,
    /// 1-GByte pages (CPUID.80000001H:EDX.Page1GB[bit 26]).
    pub huge_1g: bool,
    /// Physical-address width reported by CPUID.80000008H:EAX[7:0].
    pub maxphyaddr: u8,
}

impl Default for CpuFeatures {
    fn default() -> Self {
        CpuFeatures {
            pcid: true,
            invpcid: true,
            pge: true,
            smep: true,
            smap: true,
            nx: true,
            huge_1g: true,
            maxphyaddr: 46,
        }
    }
}
