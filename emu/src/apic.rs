//! Local APIC in x2APIC mode, reached only through MSRs (SDM Vol. 3A 10.12).
//!
//! What shootdown code needs: the APIC ID (0x802), EOI (0x80B), the interrupt
//! command register (0x830) for fixed IPIs to one core, self, all including self
//! and all excluding self, and the self-IPI register (0x83F). An IPI sets the
//! vector's bit in the target's IRR at once; the target accepts it at an
//! instruction boundary with IF=1 and no interrupt shadow, highest priority first
//! (SDM 10.8.3.1: priority class = vector bits 7:4; a vector is deliverable when
//! its class is above both the processor priority derived from the highest
//! in-service vector and the TPR). Accepting moves IRR to ISR; EOI clears the
//! highest ISR bit, which unmasks lower-priority vectors again (nesting).

use crate::exception::{Exception, Fault};
use bitvec::prelude::*;

/// x2APIC MSR numbers (SDM Vol. 3A table 10-6).
pub mod reg {
    /// Local APIC ID (read-only).
    pub const ID: u32 = 0x802;
    /// Local APIC version (read-only).
    pub const VERSION: u32 = 0x803;
    /// Task priority register.
    pub const TPR: u32 = 0x808;
    /// Processor priority register (read-only).
    pub const PPR: u32 = 0x80a;
    /// End of interrupt (write-only).
    pub const EOI: u32 = 0x80b;
    /// Logical destination register (read-only in x2APIC mode).
    pub const LDR: u32 = 0x80d;
    /// Spurious interrupt vector register.
    pub const SVR: u32 = 0x80f;
    /// In-service register, 8 MSRs of 32 bits each.
    pub const ISR0: u32 = 0x810;
    /// Trigger-mode register, 8 MSRs.
    pub const TMR0: u32 = 0x818;
    /// Interrupt request register, 8 MSRs.
    pub const IRR0: u32 = 0x820;
    /// Error status register.
    pub const ESR: u32 = 0x828;
    /// Interrupt command register (64 bits in x2APIC mode).
    pub const ICR: u32 = 0x830;
    /// Self-IPI (write-only).
    pub const SELF_IPI: u32 = 0x83f;
}

/// Who an IPI goes to (ICR destination shorthand, bits 19:18, and destination
/// mode, bit 11; SDM Vol. 3A 10.12.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IpiDest {
    /// No shorthand, physical mode: the x2APIC ID in ICR bits 63:32; FFFF_FFFFH is
    /// a broadcast to every core, the sender included (SDM Vol. 3A 10.12.9).
    Physical(u32),
    /// No shorthand, logical mode: a cluster (bits 31:16) and a bit mask of logical
    /// IDs within it (bits 15:0), matched against each core's LDR (SDM Vol. 3A
    /// 10.12.10.2); FFFF_FFFFH is a broadcast.
    Logical(u32),
    /// The sending core only.
    SelfOnly,
    /// Every core, the sender included.
    AllIncludingSelf,
    /// Every core but the sender.
    AllExcludingSelf,
}

/// Destination value that broadcasts in both destination modes (SDM Vol. 3A 10.12.9).
pub const X2APIC_BROADCAST: u32 = 0xffff_ffff;

/// The logical x2APIC ID of x2APIC ID `id`: cluster `id >> 4` in bits 31:16, one
/// bit `1 << (id & 0xf)` in bits 15:0 (SDM Vol. 3A 10.12.10.2).
pub fn logical_id(id: u32) -> u32 {
    ((id >> 4) << 16) | (1 << (id & 0xf))
}

impl IpiDest {
    /// True when an IPI sent by x2APIC ID `sender` with this destination reaches
    /// the local APIC with x2APIC ID `id`.
    pub fn reaches(&self, sender: u32, id: u32) -> bool {
        match *self {
            IpiDest::Physical(d) => d == X2APIC_BROADCAST || d == id,
            IpiDest::Logical(d) => {
                let l = logical_id(id);
                d == X2APIC_BROADCAST || (d >> 16 == l >> 16 && d & l & 0xffff != 0)
            }
            IpiDest::SelfOnly => id == sender,
            IpiDest::AllIncludingSelf => true,
            IpiDest::AllExcludingSelf => id != sender,
        }
    }
}

/// An IPI the ICR write asked for; the machine sets the IRR bits of the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpiRequest {
    /// Vector (fixed delivery mode).
    pub vector: u8,
    /// Destination.
    pub dest: IpiDest,
}

/// What a WRMSR to the APIC did, beyond its own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicWrite {
    /// Nothing else to do.
    None,
    /// Send this IPI.
    Ipi(IpiRequest),
    /// An EOI retired this in-service vector.
    Eoi(Option<u8>),
}

/// One core's local APIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apic {
    /// x2APIC ID (equal to the core number).
    pub id: u32,
    irr: BitArr!(for 256, in u64),
    /// Number of bits set in `irr`, so the every-step "anything pending?" check is
    /// one compare instead of a 256-bit scan.
    irr_count: u16,
    isr: BitArr!(for 256, in u64),
    /// Task priority (bits 7:4 matter).
    pub tpr: u8,
    /// Spurious-vector register; bit 8 enables the APIC.
    pub svr: u32,
    /// Last ICR value written.
    pub icr: u64,
}

/// Hashes the registers word by word (the bit vectors' own `Hash` goes bit by
/// bit, too slow for exploration's state hash at every scheduling point).
impl std::hash::Hash for Apic {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.id.hash(h);
        self.irr.as_raw_slice().hash(h);
        self.isr.as_raw_slice().hash(h);
        self.tpr.hash(h);
        self.svr.hash(h);
        self.icr.hash(h);
    }
}

impl Apic {
    /// A reset APIC with ID `id`, software-enabled (kernels enable it first thing;
    /// scenarios start past that point).
    pub fn new(id: u32) -> Self {
        Apic {
            id,
            irr: BitArray::ZERO,
            irr_count: 0,
            isr: BitArray::ZERO,
            tpr: 0,
            svr: 0x1ff,
            icr: 0,
        }
    }

    /// Marks `vector` requested (an IPI arrived). Vectors 0..=15 are illegal for
    /// fixed delivery (SDM 10.5.2: "illegal vector" error) and are dropped.
    pub fn request(&mut self, vector: u8) -> bool {
        if vector < 16 {
            return false;
        }
        if !self.irr.replace(vector as usize, true) {
            self.irr_count += 1;
        }
        true
    }

    fn highest(bits: &BitArr!(for 256, in u64)) -> Option<u8> {
        bits.last_one().map(|v| v as u8)
    }

    /// Processor priority: the larger of TPR and the class of the highest ISR vector.
    pub fn ppr(&self) -> u8 {
        let isr = Self::highest(&self.isr).unwrap_or(0) & 0xf0;
        if (self.tpr & 0xf0) >= isr {
            self.tpr
        } else {
            isr
        }
    }

    /// The vector that would be accepted now, if any (SDM 10.8.3.1).
    pub fn deliverable(&self) -> Option<u8> {
        if self.irr_count == 0 {
            return None;
        }
        let v = Self::highest(&self.irr)?;
        if (v & 0xf0) > (self.ppr() & 0xf0) {
            Some(v)
        } else {
            None
        }
    }

    /// True when some vector is requested, deliverable or not (wakes HLT only when
    /// deliverable; this is for display).
    pub fn has_requests(&self) -> bool {
        self.irr_count != 0
    }

    /// Accepts `vector`: IRR to ISR.
    pub fn accept(&mut self, vector: u8) {
        if self.irr.replace(vector as usize, false) {
            self.irr_count -= 1;
        }
        self.isr.set(vector as usize, true);
    }

    /// Vectors requested, ascending.
    pub fn irr_vectors(&self) -> Vec<u8> {
        self.irr.iter_ones().map(|v| v as u8).collect()
    }

    /// Vectors in service, ascending.
    pub fn isr_vectors(&self) -> Vec<u8> {
        self.isr.iter_ones().map(|v| v as u8).collect()
    }

    fn word(bits: &BitArr!(for 256, in u64), i: u32) -> u64 {
        let lo = (i * 32) as usize;
        bits[lo..lo + 32].load_le::<u32>() as u64
    }

    /// RDMSR of an x2APIC register. Write-only and reserved registers raise #GP(0)
    /// (SDM 10.12.1.2).
    pub fn read(&self, msr: u32) -> Result<u64, Fault> {
        Ok(match msr {
            reg::ID => self.id as u64,
            // Version 0x15, max LVT entry 6 (SDM 10.4.8).
            reg::VERSION => 0x0006_0015,
            reg::TPR => self.tpr as u64,
            reg::PPR => self.ppr() as u64,
            // Logical x2APIC ID: cluster in 31:16, one bit of 16 in 15:0 (SDM 10.12.10.2).
            reg::LDR => logical_id(self.id) as u64,
            reg::SVR => self.svr as u64,
            m if (reg::ISR0..reg::ISR0 + 8).contains(&m) => Self::word(&self.isr, m - reg::ISR0),
            m if (reg::TMR0..reg::TMR0 + 8).contains(&m) => 0,
            m if (reg::IRR0..reg::IRR0 + 8).contains(&m) => Self::word(&self.irr, m - reg::IRR0),
            reg::ESR => 0,
            reg::ICR => self.icr,
            _ => return Err(Exception::GeneralProtection(0).into()),
        })
    }

    /// WRMSR of an x2APIC register.
    pub fn write(&mut self, msr: u32, v: u64) -> Result<ApicWrite, Fault> {
        match msr {
            reg::TPR => {
                if v > 0xff {
                    return Err(Exception::GeneralProtection(0).into());
                }
                self.tpr = v as u8;
            }
            reg::EOI => {
                // A non-zero write to EOI is #GP in x2APIC mode (SDM 10.12.1.2).
                if v != 0 {
                    return Err(Exception::GeneralProtection(0).into());
                }
                let v = Self::highest(&self.isr);
                if let Some(v) = v {
                    self.isr.set(v as usize, false);
                }
                return Ok(ApicWrite::Eoi(v));
            }
            reg::SVR => self.svr = v as u32,
            reg::ESR => {}
            reg::ICR => {
                self.icr = v;
                let vector = (v & 0xff) as u8;
                let mode = (v >> 8) & 7;
                // Only fixed delivery is modelled; INIT/SIPI/NMI/SMI would need a
                // model of their own and are refused loudly rather than ignored.
                if mode != 0 {
                    return Err(Exception::GeneralProtection(0).into());
                }
                let logical = v & (1 << 11) != 0;
                let dest = match (v >> 18) & 3 {
                    0 if logical => IpiDest::Logical((v >> 32) as u32),
                    0 => IpiDest::Physical((v >> 32) as u32),
                    1 => IpiDest::SelfOnly,
                    2 => IpiDest::AllIncludingSelf,
                    _ => IpiDest::AllExcludingSelf,
                };
                return Ok(ApicWrite::Ipi(IpiRequest { vector, dest }));
            }
            reg::SELF_IPI => {
                return Ok(ApicWrite::Ipi(IpiRequest {
                    vector: (v & 0xff) as u8,
                    dest: IpiDest::SelfOnly,
                }))
            }
            _ => return Err(Exception::GeneralProtection(0).into()),
        }
        Ok(ApicWrite::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_and_nesting() {
        let mut a = Apic::new(0);
        a.request(0x41);
        a.request(0x81);
        assert_eq!(a.deliverable(), Some(0x81));
        a.accept(0x81);
        // 0x41's class (4) is below the in-service class (8): masked.
        assert_eq!(a.deliverable(), None);
        a.request(0x91);
        assert_eq!(a.deliverable(), Some(0x91));
        a.accept(0x91);
        assert_eq!(a.write(reg::EOI, 0).unwrap(), ApicWrite::Eoi(Some(0x91)));
        assert_eq!(a.write(reg::EOI, 0).unwrap(), ApicWrite::Eoi(Some(0x81)));
        assert_eq!(a.deliverable(), Some(0x41));
    }

    #[test]
    fn icr_shorthands() {
        let mut a = Apic::new(2);
        let w = a.write(reg::ICR, (3u64 << 32) | 0xf0).unwrap();
        assert_eq!(
            w,
            ApicWrite::Ipi(IpiRequest {
                vector: 0xf0,
                dest: IpiDest::Physical(3)
            })
        );
        let w = a.write(reg::ICR, (3 << 18) | 0xf1).unwrap();
        assert!(matches!(
            w,
            ApicWrite::Ipi(IpiRequest {
                dest: IpiDest::AllExcludingSelf,
                ..
            })
        ));
        assert!(
            a.write(reg::ICR, (5 << 8) | 0xf1).is_err(),
            "INIT is refused"
        );
        assert!(a.read(reg::EOI).is_err());
        assert_eq!(a.read(reg::ID).unwrap(), 2);
    }

    #[test]
    fn irr_words() {
        let mut a = Apic::new(0);
        a.request(0x21);
        assert_eq!(a.read(reg::IRR0 + 1).unwrap(), 1 << 1);
        assert!(!a.request(3));
    }
}
