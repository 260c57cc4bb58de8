//! Event delivery through the 64-bit IDT (SDM Vol. 3A 6.12, 6.14).
//!
//! An exception raised by an instruction, or an external interrupt the local APIC
//! presents, is delivered here: the gate is read from the IDT, checked, the stack
//! chosen (the same stack, the TSS RSPn when entering an inner privilege level, or
//! an IST stack), aligned to 16 bytes, and the frame SS, RSP, RFLAGS, CS, RIP and the
//! error code pushed. All of these are implicit supervisor accesses (SDM 4.6). The
//! whole frame is translated before any byte is written, so a fault while pushing
//! leaves memory untouched.
//!
//! A fault during delivery combines with the first event as SDM table 6-5 says:
//! benign events are followed by the new one; contributory-on-contributory and
//! page-fault-on-(page fault or contributory) become #DF; a fault while delivering
//! #DF shuts the core down (triple fault).
//!
//! Simplification, documented: code-segment descriptors are not modelled, so the
//! privilege level entered is the RPL of the gate's selector (0x08 → CPL 0), and
//! segment-descriptor checks are limited to a null selector.

use crate::bus::{AccessKind, Bus};
use crate::exception::{EmuError, Exception, Fault};
use crate::state::control::{IF, NT, RF, TF, VM};
use crate::state::{CpuState, Seg, RSP};
use mmu::VirtAddr;

/// What is being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vectoring {
    /// An exception (or INT n / INT3) raised by the instruction just stepped.
    Exception(Exception),
    /// An external interrupt accepted from the local APIC.
    External(u8),
}

impl Vectoring {
    /// IDT vector.
    pub fn vector(&self) -> u8 {
        match self {
            Vectoring::Exception(e) => e.vector(),
            Vectoring::External(v) => *v,
        }
    }
}

/// How delivery ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The handler is about to run; `what` is what was finally delivered (a #DF
    /// when the first event's delivery faulted).
    Delivered {
        /// The event delivered.
        what: Vectoring,
    },
    /// There is no IDT (IDTR base and limit both 0): the core stops.
    NoIdt {
        /// The event that found no IDT.
        what: Vectoring,
    },
    /// A fault while delivering #DF: the core shuts down.
    TripleFault {
        /// The fault that happened while delivering #DF.
        last: Exception,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

fn class(e: &Vectoring) -> Class {
    match e {
        Vectoring::External(_) => Class::Benign,
        Vectoring::Exception(e) => match e {
            Exception::DivideError
            | Exception::InvalidTss(_)
            | Exception::SegmentNotPresent(_)
            | Exception::StackFault(_)
            | Exception::GeneralProtection(_) => Class::Contributory,
            Exception::PageFault { .. } => Class::PageFault,
            Exception::DoubleFault => Class::DoubleFault,
            _ => Class::Benign,
        },
    }
}

/// Delivers `first`, combining faults during delivery per SDM table 6-5.
pub fn deliver<B: Bus>(
    cpu: &mut CpuState,
    bus: &mut B,
    first: Vectoring,
) -> Result<Delivery, EmuError> {
    if cpu.idtr.base == 0 && cpu.idtr.limit == 0 {
        return Ok(Delivery::NoIdt { what: first });
    }
    let mut cur = first;
    // At most: event → second fault → #DF → shutdown.
    for _ in 0..4 {
        match deliver_once(cpu, bus, cur) {
            Ok(()) => return Ok(Delivery::Delivered { what: cur }),
            Err(Fault::Emu(e)) => return Err(*e),
            Err(Fault::Exception(second)) => {
                let c1 = class(&cur);
                let c2 = class(&Vectoring::Exception(second));
                cur = match (c1, c2) {
                    (Class::DoubleFault, _) => return Ok(Delivery::TripleFault { last: second }),
                    (Class::Contributory, Class::Contributory)
                    | (Class::PageFault, Class::Contributory)
                    | (Class::PageFault, Class::PageFault) => {
                        Vectoring::Exception(Exception::DoubleFault)
                    }
                    _ => Vectoring::Exception(second),
                };
            }
        }
    }
    Ok(Delivery::TripleFault {
        last: Exception::DoubleFault,
    })
}

fn read_u64<B: Bus>(cpu: &CpuState, bus: &mut B, la: u64) -> Result<u64, Fault> {
    let mut b = [0u8; 8];
    for (i, byte) in b.iter_mut().enumerate() {
        // Byte-wise only when the quadword crosses a page; otherwise one access.
        if i == 0 && (la & 0xfff) <= 0xff8 {
            let pa = bus.translate(cpu, VirtAddr(la), AccessKind::Read, true)?;
            bus.read_phys(cpu, pa, &mut b)?;
            return Ok(u64::from_le_bytes(b));
        }
        let pa = bus.translate(
            cpu,
            VirtAddr(la.wrapping_add(i as u64)),
            AccessKind::Read,
            true,
        )?;
        let mut x = [0u8];
        bus.read_phys(cpu, pa, &mut x)?;
        *byte = x[0];
    }
    Ok(u64::from_le_bytes(b))
}

fn deliver_once<B: Bus>(cpu: &mut CpuState, bus: &mut B, ev: Vectoring) -> Result<(), Fault> {
    let vector = ev.vector();
    let software = matches!(
        ev,
        Vectoring::Exception(Exception::SoftwareInterrupt(_) | Exception::Breakpoint)
    );
    // Error codes of faults during delivery: EXT (bit 0) unless the event is a
    // software interrupt, IDT (bit 1) set with the vector as index (SDM 6.13).
    let ext: u16 = if software { 0 } else { 1 };
    let idt_code = ((vector as u16) << 3) | 2 | ext;
    if let Vectoring::Exception(Exception::PageFault { addr, .. }) = ev {
        cpu.cr2 = addr;
    }
    if (vector as u64) * 16 + 15 > cpu.idtr.limit as u64 {
        return Err(Exception::GeneralProtection(idt_code).into());
    }
    let gate_la = cpu.idtr.base.wrapping_add(vector as u64 * 16);
    if !VirtAddr(gate_la).is_canonical() {
        return Err(Exception::GeneralProtection(0).into());
    }
    let lo = read_u64(cpu, bus, gate_la)?;
    let hi = read_u64(cpu, bus, gate_la.wrapping_add(8))?;
    let offset = (lo & 0xffff) | ((lo >> 32) & 0xffff_0000) | ((hi & 0xffff_ffff) << 32);
    let selector = ((lo >> 16) & 0xffff) as u16;
    let ist = (lo >> 32) & 7;
    let gate_type = (lo >> 40) & 0xf;
    let dpl = ((lo >> 45) & 3) as u8;
    let present = (lo >> 47) & 1 == 1;
    let cpl = cpu.cpl();
    // SDM 6.14.1: only 64-bit interrupt (0xE) and trap (0xF) gates.
    if gate_type != 0xe && gate_type != 0xf {
        return Err(Exception::GeneralProtection(idt_code).into());
    }
    // SDM 6.12.1.1: INT n / INT3 check the gate's DPL against the CPL.
    if software && dpl < cpl {
        return Err(Exception::GeneralProtection(idt_code).into());
    }
    if !present {
        return Err(Exception::SegmentNotPresent(idt_code).into());
    }
    if selector & !3 == 0 {
        return Err(Exception::GeneralProtection(ext).into());
    }
    let new_cpl = (selector & 3) as u8;
    if new_cpl > cpl {
        return Err(Exception::GeneralProtection((selector & !3) | ext).into());
    }
    if !VirtAddr(offset).is_canonical() {
        return Err(Exception::GeneralProtection(ext).into());
    }
    // Stack selection (SDM 6.14.4, 6.14.5).
    let mut rsp = if ist != 0 {
        read_u64(cpu, bus, cpu.tss_base.wrapping_add(0x24 + (ist - 1) * 8))?
    } else if new_cpl < cpl {
        read_u64(cpu, bus, cpu.tss_base.wrapping_add(4 + new_cpl as u64 * 8))?
    } else {
        cpu.gpr[RSP]
    };
    rsp &= !0xf;
    let error = match ev {
        Vectoring::Exception(e) => e.error_code(),
        Vectoring::External(_) => None,
    };
    let new_ss = if new_cpl < cpl {
        new_cpl as u16
    } else {
        cpu.sel[Seg::Ss as usize]
    };
    let mut frame = [0u64; 6];
    frame[0] = error.unwrap_or(0) as u64;
    frame[1] = cpu.rip;
    frame[2] = cpu.sel[Seg::Cs as usize] as u64;
    frame[3] = cpu.rflags;
    frame[4] = cpu.gpr[RSP];
    frame[5] = cpu.sel[Seg::Ss as usize] as u64;
    let words: &[u64] = if error.is_some() { &frame } else { &frame[1..] };
    let size = words.len() as u64 * 8;
    let top = rsp.wrapping_sub(size);
    if !VirtAddr(top).is_canonical() || !VirtAddr(rsp.wrapping_sub(1)).is_canonical() {
        return Err(Exception::StackFault(ext).into());
    }
    // Translate every page of the frame before writing (precise).
    let mut bytes = [0u8; 48];
    for (i, w) in words.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let first_page = (4096 - (top & 0xfff)).min(size);
    let pa1 = bus.translate(cpu, VirtAddr(top), AccessKind::Write, true)?;
    let pa2 = if first_page < size {
        Some(bus.translate(cpu, VirtAddr(top + first_page), AccessKind::Write, true)?)
    } else {
        None
    };
    let n = first_page as usize;
    bus.write_phys(cpu, pa1, &bytes[..n])?;
    if let Some(pa2) = pa2 {
        bus.write_phys(cpu, pa2, &bytes[n..size as usize])?;
    }
    cpu.gpr[RSP] = top;
    cpu.sel[Seg::Cs as usize] = selector;
    cpu.sel[Seg::Ss as usize] = new_ss;
    cpu.rip = offset;
    cpu.rflags &= !(TF | NT | RF | VM);
    if gate_type == 0xe {
        cpu.rflags &= !IF;
    }
    cpu.halted = false;
    cpu.interrupt_shadow = false;
    Ok(())
}
