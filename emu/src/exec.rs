//! Running a flat piece of machine code on one core: the engine behind
//! `tlbemu exec`, used by people poking at an instruction and by external
//! differential testers.

use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::events::{NullSink, StopReason};
use crate::exception::{EmuError, Exception};
use crate::machine::{Machine, MachineConfig, StepResult};
use crate::state::GPR_NAMES;
use mmu::pagetable::Builder;
use mmu::{pte, PageSize, PhysAddr, VirtAddr};
use serde::Serialize;

/// Where code goes when no base is given.
pub const DEFAULT_BASE: u64 = 0x10_0000;
/// Step budget when none is given.
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;

/// What to run.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// Machine code.
    pub code: Vec<u8>,
    /// Linear (and physical) address of the first byte; execution starts there.
    pub base: u64,
    /// Registers to set before running, by lower-case name, in order.
    pub set: Vec<(String, u64)>,
    /// Stop after this many steps.
    pub max_steps: u64,
}

/// Why the run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecStop {
    /// HLT retired.
    Hlt,
    /// An exception was raised (there is no IDT to deliver it through).
    Exception,
    /// The step budget ran out.
    MaxSteps,
    /// An instruction tlbemu does not implement.
    Unsupported,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct ExecReport {
    /// Why it stopped.
    pub stop: ExecStop,
    /// Instructions stepped (including the one that stopped it).
    pub steps: u64,
    /// Final core state.
    pub cpu: Cpu,
    /// The exception, when `stop` is `Exception`.
    pub exception: Option<Exception>,
    /// The error, when `stop` is `Unsupported` (or physical memory ran out).
    pub error: Option<EmuError>,
}

/// A request that cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// `--set` named a register that does not exist.
    #[error("unknown register `{0}` (expected one of rax..r15, rip, rflags, cr0, cr2, cr3, cr4, cr8, efer, fs_base, gs_base, kernel_gs_base)")]
    UnknownRegister(String),
    /// `--set` left the control registers in a combination no processor can be
    /// in while running 64-bit code.
    #[error("inconsistent control registers: {0}")]
    InconsistentControl(String),
    /// The machine could not be built (a bug, reported rather than hidden).
    #[error("cannot build the exec machine: {0}")]
    Setup(String),
    /// The code does not fit in memory at the base.
    #[error("code of {len} bytes at {base:#x} does not fit in the 4 GiB identity-mapped memory")]
    DoesNotFit {
        /// Base address.
        base: u64,
        /// Code length.
        len: usize,
    },
}

/// Size of the identity-mapped memory `exec` runs in: the low 4 GiB, allocated
/// on first touch.
pub const EXEC_MEMORY: u64 = 4 << 30;
/// Where `exec`'s page tables live: just above the identity-mapped 4 GiB, so code
/// under test cannot overwrite them by accident.
pub const EXEC_TABLES: u64 = 4 << 30;

/// The default one-core machine with the low 4 GiB identity-mapped, writable and
/// executable through real 4-level page tables (1 GiB pages; tables above 4 GiB).
/// Returns the machine with core 0's CR3 set.
pub fn identity_machine() -> Result<Machine, String> {
    let cfg = MachineConfig {
        cores: 1,
        memory: EXEC_MEMORY + (2 << 20),
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).map_err(|e| e.to_string())?;
    let mut b = Builder::new(
        &mut m.mem,
        PhysAddr(EXEC_TABLES),
        PhysAddr(EXEC_TABLES + (2 << 20)),
    )
    .map_err(|e| e.to_string())?;
    for gib in 0..4u64 {
        b.map(
            &mut m.mem,
            VirtAddr(gib << 30),
            PhysAddr(gib << 30),
            PageSize::Size1G,
            pte::P | pte::RW,
        )
        .map_err(|e| e.to_string())?;
    }
    m.cores[0].cpu.state.cr3 = b.cr3(0);
    Ok(m)
}

/// Loads the code, sets the registers and runs until HLT, an exception, an
/// unsupported instruction or the step budget.
pub fn run(req: &ExecRequest) -> Result<ExecReport, ExecError> {
    let end = req.base.checked_add(req.code.len() as u64);
    if end.is_none_or(|e| e > EXEC_MEMORY) {
        return Err(ExecError::DoesNotFit {
            base: req.base,
            len: req.code.len(),
        });
    }
    let mut m = identity_machine().map_err(ExecError::Setup)?;
    m.mem
        .write(PhysAddr(req.base), &req.code)
        .map_err(|_| ExecError::DoesNotFit {
            base: req.base,
            len: req.code.len(),
        })?;
    let cpu = &mut m.cores[0].cpu;
    cpu.state.rip = req.base;
    for (name, v) in &req.set {
        if !cpu.state.set_by_name(name, *v) {
            return Err(ExecError::UnknownRegister(name.clone()));
        }
    }
    check_control(&m.cores[0].cpu.state)?;
    // CR8 is the APIC's TPR[7:4] (SDM Vol. 3A 10.8.6.1): `--set cr8=N` sets both,
    // the way MOV CR8 does.
    let cr8 = m.cores[0].cpu.state.cr8;
    m.bus(0, &mut NullSink).set_task_priority(cr8 as u8);
    let mut steps = 0;
    let mut sink = NullSink;
    while steps < req.max_steps {
        steps += 1;
        let r = m
            .step(0, &mut sink)
            .map_err(|e| ExecError::Setup(e.to_string()))?;
        let cpu = || m.cores[0].cpu.clone();
        match r {
            StepResult::Retired | StepResult::Interrupt(_) | StepResult::Exception(_) => {}
            StepResult::Halted | StepResult::NoProgress => {
                return Ok(report(ExecStop::Hlt, steps, cpu(), None, None))
            }
            StepResult::Stopped(StopReason::UnhandledException { exception, .. })
            | StepResult::Stopped(StopReason::TripleFault {
                last: exception, ..
            }) => {
                return Ok(report(
                    ExecStop::Exception,
                    steps,
                    cpu(),
                    Some(exception),
                    None,
                ))
            }
            StepResult::Stopped(StopReason::Error(e)) => {
                return Ok(report(ExecStop::Unsupported, steps, cpu(), None, Some(e)))
            }
        }
    }
    Ok(report(
        ExecStop::MaxSteps,
        steps,
        m.cores[0].cpu.clone(),
        None,
        None,
    ))
}

/// Refuses control-register states that the architecture does not allow, or
/// that are not 64-bit mode (the only mode the emulator executes). The MOV to CR0
/// and WRMSR rules would fault before reaching such a state, so running from one
/// would report behaviour no processor shows.
fn check_control(st: &crate::state::CpuState) -> Result<(), ExecError> {
    use crate::state::control::{CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME};
    let bad = |m: String| Err(ExecError::InconsistentControl(m));
    let (cr0, cr4, efer) = (st.cr0, st.cr4, st.efer);
    // SDM Vol. 3A 2.5: setting CR0.PG while CR0.PE is clear raises #GP; paging
    // needs protected mode.
    if cr0 & CR0_PG != 0 && cr0 & CR0_PE == 0 {
        return bad(format!(
            "cr0={cr0:#x} sets PG (bit 31) without PE (bit 0); paging requires protection (SDM Vol. 3A 2.5)"
        ));
    }
    // SDM Vol. 3A 9.8.5: IA-32e mode is active (EFER.LMA) only with EFER.LME,
    // CR4.PAE and CR0.PG all set; exec runs 64-bit code, so LMA must be set too.
    if efer & EFER_LMA == 0 {
        return bad(format!(
            "efer={efer:#x} has LMA (bit 10) clear, but exec runs 64-bit code, which needs IA-32e mode (SDM Vol. 3A 9.8.5)"
        ));
    }
    if cr0 & CR0_PG == 0 {
        return bad(format!(
            "cr0={cr0:#x} has PG (bit 31) clear while EFER.LMA is set; IA-32e mode is active only with paging on (SDM Vol. 3A 9.8.5); expected cr0 with bits 31 and 0 set, e.g. 0x80000011"
        ));
    }
    if efer & EFER_LME == 0 {
        return bad(format!(
            "efer={efer:#x} has LMA set but LME (bit 8) clear; LMA is set only by enabling paging with LME set (SDM Vol. 3A 9.8.5)"
        ));
    }
    if cr4 & CR4_PAE == 0 {
        return bad(format!(
            "cr4={cr4:#x} has PAE (bit 5) clear in IA-32e mode; long mode requires PAE paging (SDM Vol. 3A 9.8.5), and clearing it there raises #GP"
        ));
    }
    Ok(())
}

fn report(
    stop: ExecStop,
    steps: u64,
    cpu: Cpu,
    exception: Option<Exception>,
    error: Option<EmuError>,
) -> ExecReport {
    ExecReport {
        stop,
        steps,
        cpu,
        exception,
        error,
    }
}

impl ExecReport {
    /// The stable JSON form documented in the README.
    pub fn to_json(&self) -> serde_json::Value {
        let hex = |v: u64| serde_json::Value::String(format!("{v:#x}"));
        let mut regs = serde_json::Map::new();
        for (i, n) in GPR_NAMES.iter().enumerate() {
            regs.insert((*n).to_string(), hex(self.cpu.state.gpr[i]));
        }
        let exception = match &self.exception {
            None => serde_json::Value::Null,
            Some(e) => {
                let mut m = serde_json::Map::new();
                m.insert("vector".into(), hex(e.vector() as u64));
                m.insert("name".into(), e.mnemonic().into());
                m.insert(
                    "error_code".into(),
                    e.error_code()
                        .map_or(serde_json::Value::Null, |c| hex(c as u64)),
                );
                if let Exception::PageFault { addr, .. } = e {
                    m.insert("address".into(), hex(*addr));
                }
                serde_json::Value::Object(m)
            }
        };
        let mut o = serde_json::Map::new();
        o.insert(
            "stop".into(),
            serde_json::to_value(self.stop).unwrap_or_default(),
        );
        o.insert("steps".into(), self.steps.into());
        o.insert("rip".into(), hex(self.cpu.state.rip));
        o.insert("rflags".into(), hex(self.cpu.state.rflags));
        o.insert("regs".into(), serde_json::Value::Object(regs));
        o.insert("exception".into(), exception);
        o.insert(
            "error".into(),
            self.error
                .as_ref()
                .map_or(serde_json::Value::Null, |e| e.to_string().into()),
        );
        serde_json::Value::Object(o)
    }

    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let stop = match self.stop {
            ExecStop::Hlt => "hlt".to_string(),
            ExecStop::MaxSteps => "max-steps".to_string(),
            ExecStop::Exception => match &self.exception {
                Some(e) => format!("exception {e}"),
                None => "exception".to_string(),
            },
            ExecStop::Unsupported => match &self.error {
                Some(e) => format!("error: {e}"),
                None => "unsupported".to_string(),
            },
        };
        let _ = writeln!(s, "stop: {stop}");
        let _ = writeln!(s, "steps: {}", self.steps);
        let st = &self.cpu.state;
        let _ = writeln!(s, "rip:    {:#018x}  rflags: {:#018x}", st.rip, st.rflags);
        for (i, n) in GPR_NAMES.iter().enumerate() {
            let _ = write!(s, "{n:<4}{:#018x}", st.gpr[i]);
            s.push_str(if i % 4 == 3 { "\n" } else { "  " });
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--set cr8=N` reaches the local APIC: RDMSR of the x2APIC TPR reads N << 4
    /// (CR8 is TPR[7:4], SDM Vol. 3A 10.8.6.1).
    #[test]
    fn set_cr8_sets_the_task_priority() {
        let req = ExecRequest {
            // mov ecx, 0x808; rdmsr; hlt
            code: vec![0xb9, 0x08, 0x08, 0, 0, 0x0f, 0x32, 0xf4],
            base: 0x10_0000,
            set: vec![("cr8".to_string(), 5)],
            max_steps: 10,
        };
        let r = run(&req).expect("runs");
        assert_eq!(r.stop, ExecStop::Hlt);
        assert_eq!(r.cpu.state.gpr[0], 0x50);
    }
}
