//! Guest faults (architectural exceptions, which are values) and emulator errors.
//!
//! An [`Exception`] is something the guest caused and the architecture defines: it
//! goes to the guest's IDT (or stops the core when there is none). An [`EmuError`]
//! is the emulator declining to go on: an instruction it does not implement, or
//! physical memory that does not exist. Neither is ever a panic.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// An architectural exception or software interrupt (SDM Vol. 3A 6.3.1, table 6-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exception {
    /// #DE, divide error (fault).
    DivideError,
    /// #DB, debug (trap here: only INT1).
    Debug,
    /// #BP, breakpoint from INT3 (trap).
    Breakpoint,
    /// #OF, overflow (trap).
    Overflow,
    /// #UD, invalid opcode (fault).
    InvalidOpcode,
    /// #NM, device not available (fault).
    DeviceNotAvailable,
    /// #DF, double fault (abort, error code 0).
    DoubleFault,
    /// #TS(selector), invalid TSS.
    InvalidTss(u16),
    /// #NP(selector), segment not present.
    SegmentNotPresent(u16),
    /// #SS(code), stack-segment fault (non-canonical stack address).
    StackFault(u16),
    /// #GP(code), general protection.
    GeneralProtection(u16),
    /// #PF, page fault: the faulting linear address (becomes CR2) and the error code.
    PageFault {
        /// Linear address that faulted.
        addr: u64,
        /// Error code: P(0) W(1) U(2) RSVD(3) I(4) PK(5).
        code: u32,
    },
    /// #AC(0), alignment check.
    AlignmentCheck,
    /// A software interrupt from INT n (trap; delivered through gate `n` with a DPL check).
    SoftwareInterrupt(u8),
}

impl Exception {
    /// IDT vector.
    pub fn vector(&self) -> u8 {
        match self {
            Exception::DivideError => 0,
            Exception::Debug => 1,
            Exception::Breakpoint => 3,
            Exception::Overflow => 4,
            Exception::InvalidOpcode => 6,
            Exception::DeviceNotAvailable => 7,
            Exception::DoubleFault => 8,
            Exception::InvalidTss(_) => 10,
            Exception::SegmentNotPresent(_) => 11,
            Exception::StackFault(_) => 12,
            Exception::GeneralProtection(_) => 13,
            Exception::PageFault { .. } => 14,
            Exception::AlignmentCheck => 17,
            Exception::SoftwareInterrupt(n) => *n,
        }
    }

    /// The error code pushed on delivery, for exceptions that have one.
    pub fn error_code(&self) -> Option<u32> {
        match self {
            Exception::DoubleFault | Exception::AlignmentCheck => Some(0),
            Exception::InvalidTss(c)
            | Exception::SegmentNotPresent(c)
            | Exception::StackFault(c)
            | Exception::GeneralProtection(c) => Some(*c as u32),
            Exception::PageFault { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Traps report the RIP after the instruction; faults the RIP of the instruction,
    /// so it restarts (SDM Vol. 3A 6.5).
    pub fn is_trap(&self) -> bool {
        matches!(
            self,
            Exception::Breakpoint
                | Exception::Overflow
                | Exception::Debug
                | Exception::SoftwareInterrupt(_)
        )
    }

    /// Mnemonic such as "#PF" or "INT 0x80".
    pub fn mnemonic(&self) -> String {
        match self {
            Exception::DivideError => "#DE".into(),
            Exception::Debug => "#DB".into(),
            Exception::Breakpoint => "#BP".into(),
            Exception::Overflow => "#OF".into(),
            Exception::InvalidOpcode => "#UD".into(),
            Exception::DeviceNotAvailable => "#NM".into(),
            Exception::DoubleFault => "#DF".into(),
            Exception::InvalidTss(_) => "#TS".into(),
            Exception::SegmentNotPresent(_) => "#NP".into(),
            Exception::StackFault(_) => "#SS".into(),
            Exception::GeneralProtection(_) => "#GP".into(),
            Exception::PageFault { .. } => "#PF".into(),
            Exception::AlignmentCheck => "#AC".into(),
            Exception::SoftwareInterrupt(n) => format!("INT {n:#x}"),
        }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exception::PageFault { addr, code } => {
                write!(f, "#PF(error code {code:#x}) at {addr:#x}")
            }
            e => match e.error_code() {
                Some(c) => write!(f, "{}({c:#x})", e.mnemonic()),
                None => write!(f, "{}", e.mnemonic()),
            },
        }
    }
}

/// The emulator cannot go on with this core.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum EmuError {
    /// A valid instruction that tlbemu does not implement.
    #[error("unsupported instruction `{text}` ({mnemonic}) at rip {rip:#x}, bytes [{}]", hex_bytes(.bytes))]
    Unsupported {
        /// RIP of the instruction.
        rip: u64,
        /// Its bytes.
        bytes: Vec<u8>,
        /// iced-x86's mnemonic.
        mnemonic: String,
        /// Formatted instruction text.
        text: String,
    },
    /// The paging mode is one the MMU does not model (only 4-level paging is).
    #[error("at rip {rip:#x}: {message}")]
    Paging {
        /// RIP of the instruction.
        rip: u64,
        /// What the MMU said.
        message: String,
    },
    /// Guest physical memory does not exist at this address.
    #[error(
        "physical access of {len} bytes at {addr:#x} is outside guest memory (at rip {rip:#x})"
    )]
    PhysicalOutOfRange {
        /// RIP of the instruction.
        rip: u64,
        /// Physical address.
        addr: u64,
        /// Access length.
        len: u64,
    },
    /// The guest wrote to so many distinct pages that the host-side cap on
    /// allocated guest memory ([`mmu::MAX_RESIDENT_BYTES`]) was reached.
    #[error(
        "physical write of {len} bytes at {addr:#x} needs a new page, but the guest has already touched the host-side cap of {cap_mib} MiB of memory (at rip {rip:#x})"
    )]
    HostMemoryCap {
        /// RIP of the instruction.
        rip: u64,
        /// Physical address.
        addr: u64,
        /// Access length.
        len: u64,
        /// The cap in MiB.
        cap_mib: u64,
    },
}

impl EmuError {
    /// The emulator error for a physical access that guest memory refused.
    pub fn physical(rip: u64, e: &mmu::MemError) -> Self {
        if e.host_cap {
            EmuError::HostMemoryCap {
                rip,
                addr: e.addr.raw(),
                len: e.len,
                cap_mib: mmu::MAX_RESIDENT_BYTES >> 20,
            }
        } else {
            EmuError::PhysicalOutOfRange {
                rip,
                addr: e.addr.raw(),
                len: e.len,
            }
        }
    }
}

/// Formats bytes as "0f 01 f8".
pub fn hex_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why an instruction did not complete: a guest exception or an emulator error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Architectural exception; see [`Exception::is_trap`] for where RIP points.
    Exception(Exception),
    /// The emulator cannot continue. Boxed: an emulator error is rare and large
    /// (80 bytes), and unboxed it made every handler's `Result<(), Fault>` 80 bytes
    /// returned through memory; boxed, the result fits in two registers.
    Emu(Box<EmuError>),
}

impl From<Exception> for Fault {
    fn from(e: Exception) -> Self {
        Fault::Exception(e)
    }
}

impl From<EmuError> for Fault {
    fn from(e: EmuError) -> Self {
        Fault::Emu(Box::new(e))
    }
}

/// #GP(0), the most common fault.
pub const GP0: Fault = Fault::Exception(Exception::GeneralProtection(0));
/// #UD.
pub const UD: Fault = Fault::Exception(Exception::InvalidOpcode);
