//! Instruction semantics, one file per family (as Bochs' cpu/ does), and the
//! operand layer every handler goes through.
//!
//! A handler reads its operands, computes, and writes back through [`Exec`]. The
//! rule that keeps faults precise: a handler translates every memory location it
//! will write *before* it changes any state ([`Exec::dest`] returns a pre-translated
//! [`Loc`]), so an instruction that faults leaves registers and memory as they were
//! (SDM Vol. 3A 6.5: faults are restartable).

pub(crate) mod arith;
pub(crate) mod bit;
pub(crate) mod cache;
pub(crate) mod ctrl_xfer;
pub(crate) mod data_xfer;
pub(crate) mod fast_flags;
pub(crate) mod flag_ctrl;
pub(crate) mod iret;
pub(crate) mod logical;
pub(crate) mod mult;
pub(crate) mod shift;
pub(crate) mod stack;
pub(crate) mod string;
pub(crate) mod syscall;
pub(crate) mod system;
pub(crate) mod tsc_aux;

use crate::bus::{AccessKind, Bus};
use crate::exception::{EmuError, Exception, Fault};
use crate::features::CpuFeatures;
use crate::flags;
use crate::state::control::{AC, CR0_AM};
use crate::state::CpuState;
use iced_x86::{Instruction, OpKind, Register};
use mmu::{PhysAddr, VirtAddr};

/// Result of executing one instruction's semantics.
pub(crate) type ExecResult = Result<(), Fault>;

/// Everything a handler may touch while executing one instruction.
pub(crate) struct Exec<'a, B: Bus> {
    /// The core's registers.
    pub cpu: &'a mut CpuState,
    /// The memory system.
    pub bus: &'a mut B,
    /// The decoded instruction.
    pub ins: &'a Instruction,
    /// RIP after this instruction; control transfers overwrite it.
    pub next_rip: u64,
    /// What CPUID reports and which instructions exist.
    pub features: &'a CpuFeatures,
    /// The core's number (CPUID's initial APIC ID, IA32_APIC_BASE.BSP).
    pub core_id: u32,
}

/// A pre-translated destination: a register, or memory whose pages were already
/// translated for writing (one or two pages when it crosses a page boundary).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Loc {
    /// A general-purpose register.
    Reg(Register),
    /// Memory: physical address of the first byte, and of the first byte on the
    /// second page with the number of bytes on the first page, if it crosses.
    Mem {
        pa: PhysAddr,
        split: Option<(usize, PhysAddr)>,
    },
}

impl<'a, B: Bus> Exec<'a, B> {
    /// Operand size in bytes of operand `i` (register size, or memory size).
    #[inline]
    pub fn op_size(&self, i: u32) -> u32 {
        match self.ins.op_kind(i) {
            OpKind::Register => self.ins.op_register(i).size() as u32,
            OpKind::Memory => self.ins.memory_size().size() as u32,
            OpKind::Immediate8 => 1,
            OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
            OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
            _ => 8,
        }
    }

    /// The effective address (offset) of the memory operand, before the segment base.
    /// RIP-relative operands were resolved by the decoder against this RIP.
    #[inline]
    pub fn effective_offset(&self) -> u64 {
        let ins = self.ins;
        let base = ins.memory_base();
        let mut a = ins.memory_displacement64();
        if base != Register::None && base != Register::RIP && base != Register::EIP {
            a = a.wrapping_add(self.cpu.read_gpr(base));
        }
        let index = ins.memory_index();
        if index != Register::None {
            a = a.wrapping_add(
                self.cpu.read_gpr(index) << ins.memory_index_scale().trailing_zeros(),
            );
        }
        // Address-size override (0x67): the effective address is 32 bits.
        if base.is_gpr32() || index.is_gpr32() || base == Register::EIP {
            a &= 0xffff_ffff;
        }
        a
    }

    /// The linear address of the memory operand, with the segment base added and the
    /// canonical check applied (#SS(0) for stack references, else #GP(0); SDM Vol. 3A
    /// 6.15 interrupts 12 and 13).
    #[inline]
    pub fn mem_la(&self) -> Result<VirtAddr, Fault> {
        let seg = self.ins.memory_segment();
        let la = self.cpu.seg_base(seg).wrapping_add(self.effective_offset());
        self.canonical(seg, la)
    }

    /// [`Exec::mem_la`] for a memory operand whose address parts were extracted at
    /// decode time ([`crate::dispatch::Op::mem_simple`]: 64-bit addressing, no FS/GS
    /// override, so the segment base is 0): the same sum and the same canonical
    /// check, without iced's register getters and `read_gpr`'s register decoding.
    #[inline(always)]
    pub fn mem_la_simple(&self, op: &crate::dispatch::Op) -> Result<VirtAddr, Fault> {
        let mut a = op.disp;
        if op.base < 16 {
            a = a.wrapping_add(self.cpu.gpr[op.base as usize]);
        }
        if op.index < 16 {
            a = a.wrapping_add(self.cpu.gpr[op.index as usize] << op.scale_shift);
        }
        let va = VirtAddr(a);
        if va.is_canonical() {
            Ok(va)
        } else if op.seg_ss {
            Err(Exception::StackFault(0).into())
        } else {
            Err(Exception::GeneralProtection(0).into())
        }
    }

    /// Applies the canonical-address check for an access through segment `seg`.
    #[inline]
    pub fn canonical(&self, seg: Register, la: u64) -> Result<VirtAddr, Fault> {
        let va = VirtAddr(la);
        if va.is_canonical() {
            Ok(va)
        } else if seg == Register::SS {
            Err(Exception::StackFault(0).into())
        } else {
            Err(Exception::GeneralProtection(0).into())
        }
    }

    /// #AC(0) when alignment checking is on: CPL 3, CR0.AM and RFLAGS.AC (SDM Vol. 3A 6.15, interrupt 17).
    #[inline]
    fn alignment_check(&self, la: VirtAddr, size: usize) -> Result<(), Fault> {
        if size > 1
            && self.cpu.cpl() == 3
            && self.cpu.cr0 & CR0_AM != 0
            && self.cpu.rflags & AC != 0
            && la.raw() & (size as u64 - 1) != 0
        {
            return Err(Exception::AlignmentCheck.into());
        }
        Ok(())
    }

    /// Translates every page of `[la, la+size)` for `kind`; nothing is accessed yet.
    #[inline]
    pub fn translate(&mut self, la: VirtAddr, size: usize, kind: AccessKind) -> Result<Loc, Fault> {
        self.alignment_check(la, size)?;
        let pa = self.bus.translate(self.cpu, la, kind, false)?;
        let first = (4096 - la.page_offset()) as usize;
        if first >= size {
            return Ok(Loc::Mem { pa, split: None });
        }
        let la2 = la.add(first as u64);
        let la2 = self.canonical(self.ins.memory_segment(), la2.raw())?;
        let pa2 = self.bus.translate(self.cpu, la2, kind, false)?;
        Ok(Loc::Mem {
            pa,
            split: Some((first, pa2)),
        })
    }

    /// Reads `buf.len()` bytes from a translated location.
    #[inline]
    pub fn load_bytes(&mut self, loc: Loc, buf: &mut [u8]) -> ExecResult {
        match loc {
            Loc::Mem { pa, split: None } => self.bus.read_phys(self.cpu, pa, buf),
            Loc::Mem {
                pa,
                split: Some((n, pa2)),
            } => {
                let (a, b) = buf.split_at_mut(n);
                self.bus.read_phys(self.cpu, pa, a)?;
                self.bus.read_phys(self.cpu, pa2, b)
            }
            Loc::Reg(_) => Ok(()),
        }
    }

    /// Writes bytes to a translated location.
    #[inline]
    pub fn store_bytes(&mut self, loc: Loc, data: &[u8]) -> ExecResult {
        match loc {
            Loc::Mem { pa, split: None } => self.bus.write_phys(self.cpu, pa, data),
            Loc::Mem {
                pa,
                split: Some((n, pa2)),
            } => {
                self.bus.write_phys(self.cpu, pa, &data[..n])?;
                self.bus.write_phys(self.cpu, pa2, &data[n..])
            }
            Loc::Reg(_) => Ok(()),
        }
    }

    /// Reads a value of `size` bytes (1/2/4/8) from a location.
    #[inline]
    pub fn load(&mut self, loc: Loc, size: u32) -> Result<u64, Fault> {
        match loc {
            Loc::Reg(r) => Ok(self.cpu.read_gpr(r)),
            _ => {
                let mut b = [0u8; 8];
                self.load_bytes(loc, &mut b[..size as usize])?;
                Ok(u64::from_le_bytes(b))
            }
        }
    }

    /// Writes a value of `size` bytes to a location (register writes follow x86's
    /// merge/zero-extend rules).
    #[inline]
    pub fn store(&mut self, loc: Loc, size: u32, v: u64) -> ExecResult {
        match loc {
            Loc::Reg(r) => {
                self.cpu.write_gpr(r, v);
                Ok(())
            }
            _ => {
                let b = v.to_le_bytes();
                self.store_bytes(loc, &b[..size as usize])
            }
        }
    }

    /// Reads `size` bytes at linear address `la` (data read).
    #[inline]
    pub fn read_la(&mut self, la: VirtAddr, size: u32) -> Result<u64, Fault> {
        let loc = self.translate(la, size as usize, AccessKind::Read)?;
        self.load(loc, size)
    }

    /// Writes `size` bytes at linear address `la`.
    #[inline]
    pub fn write_la(&mut self, la: VirtAddr, size: u32, v: u64) -> ExecResult {
        let loc = self.translate(la, size as usize, AccessKind::Write)?;
        self.store(loc, size, v)
    }

    /// [`Exec::write_la`] for the fast forms, with the one-page case inline: the
    /// same alignment check, translation for write and store, minus the `Loc`
    /// round trip and two out-of-line calls (~40 Ir per store in `cpu_loop`). A
    /// page-crossing access takes `write_la` itself.
    #[inline(always)]
    pub fn write_la_fast(&mut self, la: VirtAddr, size: u32, v: u64) -> ExecResult {
        if la.page_offset() + size as u64 > 4096 {
            return self.write_la(la, size, v);
        }
        self.alignment_check(la, size as usize)?;
        let pa = self.bus.translate(self.cpu, la, AccessKind::Write, false)?;
        let b = v.to_le_bytes();
        self.bus.write_phys(self.cpu, pa, &b[..size as usize])
    }

    /// [`Exec::read_la`] for the fast forms, with the one-page case inline (see
    /// [`Exec::write_la_fast`]).
    #[inline(always)]
    pub fn read_la_fast(&mut self, la: VirtAddr, size: u32) -> Result<u64, Fault> {
        if la.page_offset() + size as u64 > 4096 {
            return self.read_la(la, size);
        }
        self.alignment_check(la, size as usize)?;
        let pa = self.bus.translate(self.cpu, la, AccessKind::Read, false)?;
        let mut b = [0u8; 8];
        self.bus.read_phys(self.cpu, pa, &mut b[..size as usize])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Location of operand `i` for writing (or read-modify-write): a register, or
    /// memory translated for write now.
    #[inline]
    pub fn dest(&mut self, i: u32) -> Result<Loc, Fault> {
        match self.ins.op_kind(i) {
            OpKind::Register => Ok(Loc::Reg(self.ins.op_register(i))),
            OpKind::Memory => {
                let la = self.mem_la()?;
                let size = self.ins.memory_size().size();
                self.translate(la, size, AccessKind::Write)
            }
            k => Err(self.unsupported_operand(k)),
        }
    }

    /// Reads operand `i` (register, immediate or memory), zero-extended to 64 bits.
    /// Immediates come sign-extended to the operand size as iced decodes them.
    #[inline]
    pub fn read_op(&mut self, i: u32) -> Result<u64, Fault> {
        match self.ins.op_kind(i) {
            OpKind::Register => Ok(self.cpu.read_gpr(self.ins.op_register(i))),
            OpKind::Memory => {
                let la = self.mem_la()?;
                let size = self.ins.memory_size().size() as u32;
                self.read_la(la, size)
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
            | OpKind::Immediate8_2nd => Ok(self.ins.immediate(i)),
            k => Err(self.unsupported_operand(k)),
        }
    }

    /// An operand kind no handler expects: reported as unsupported, never a panic.
    #[cold]
    pub fn unsupported_operand(&self, _k: OpKind) -> Fault {
        unsupported(self.cpu.rip, self.ins).into()
    }

    /// The "not implemented" error for this instruction.
    #[cold]
    pub fn unsupported(&self) -> Fault {
        unsupported(self.cpu.rip, self.ins).into()
    }

    /// Sets the status flags in `which` from `f`.
    #[inline]
    pub fn set_flags(&mut self, which: u64, f: u64) {
        flags::set(&mut self.cpu.rflags, which, f);
    }

    /// Pushes a value of `size` bytes on the stack (SDM Vol. 1 6.2; RSP-relative,
    /// SS segment). RSP changes only once the write succeeded.
    #[inline]
    pub fn push(&mut self, size: u32, v: u64) -> ExecResult {
        let rsp = self.cpu.gpr[crate::state::RSP].wrapping_sub(size as u64);
        let la = self.canonical(Register::SS, rsp)?;
        self.write_la(la, size, v)?;
        self.cpu.gpr[crate::state::RSP] = rsp;
        Ok(())
    }

    /// Reads the value on top of the stack without popping it.
    #[inline]
    pub fn peek(&mut self, size: u32, offset: u64) -> Result<u64, Fault> {
        let rsp = self.cpu.gpr[crate::state::RSP].wrapping_add(offset);
        let la = self.canonical(Register::SS, rsp)?;
        self.read_la(la, size)
    }

    /// Privileged instruction check: #GP(0) unless CPL 0 (SDM Vol. 3A 5.9).
    #[inline]
    pub fn require_cpl0(&self) -> ExecResult {
        if self.cpu.cpl() != 0 {
            Err(Exception::GeneralProtection(0).into())
        } else {
            Ok(())
        }
    }
}

/// Builds the error for an instruction tlbemu does not implement.
pub(crate) fn unsupported(rip: u64, ins: &Instruction) -> EmuError {
    use iced_x86::{Formatter, GasFormatter};
    let mut text = String::new();
    GasFormatter::new().format(ins, &mut text);
    EmuError::Unsupported {
        rip,
        bytes: Vec::new(),
        mnemonic: format!("{:?}", ins.mnemonic()).to_lowercase(),
        text,
    }
}
