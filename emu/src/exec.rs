//! Running a flat piece of machine code on one core: the engine behind
//! `tlbemu exec`, used by people poking at an instruction and by external
//! differential testers.

use crate::bus::{Bus, FlatBus};
use crate::cpu::{Cpu, StepOutcome};
use crate::decode_cache::DecodeCache;
use crate::exception::{EmuError, Exception};
use crate::features::CpuFeatures;
use crate::state::GPR_NAMES;
use mmu::PhysAddr;
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
    /// The code does not fit in memory at the base.
    #[error("code of {len} bytes at {base:#x} does not fit in the 4 GiB identity-mapped memory")]
    DoesNotFit {
        /// Base address.
        base: u64,
        /// Code length.
        len: usize,
    },
}

/// Size of the flat memory `exec` runs in: the low 4 GiB, allocated on first touch.
pub const EXEC_MEMORY: u64 = 4 << 30;

/// Loads the code, sets the registers and runs until HLT, an exception, an
/// unsupported instruction or the step budget.
pub fn run(req: &ExecRequest) -> Result<ExecReport, ExecError> {
    let mut bus = FlatBus::new(EXEC_MEMORY);
    let end = req.base.checked_add(req.code.len() as u64);
    if end.is_none_or(|e| e > EXEC_MEMORY) {
        return Err(ExecError::DoesNotFit {
            base: req.base,
            len: req.code.len(),
        });
    }
    bus.phys_mem()
        .write(PhysAddr(req.base), &req.code)
        .map_err(|_| ExecError::DoesNotFit {
            base: req.base,
            len: req.code.len(),
        })?;
    let mut cpu = Cpu::new(0, CpuFeatures::default());
    cpu.state.rip = req.base;
    for (name, v) in &req.set {
        if !cpu.state.set_by_name(name, *v) {
            return Err(ExecError::UnknownRegister(name.clone()));
        }
    }
    let mut cache = DecodeCache::new();
    let mut steps = 0;
    while steps < req.max_steps {
        steps += 1;
        bus.clock = steps;
        match cpu.step(&mut cache, &mut bus) {
            Ok(StepOutcome::Retired) => {}
            Ok(StepOutcome::Halted) => return Ok(report(ExecStop::Hlt, steps, cpu, None, None)),
            Ok(StepOutcome::Exception(e)) => {
                return Ok(report(ExecStop::Exception, steps, cpu, Some(e), None))
            }
            Err(e) => return Ok(report(ExecStop::Unsupported, steps, cpu, None, Some(e))),
        }
    }
    Ok(report(ExecStop::MaxSteps, steps, cpu, None, None))
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
                    e.error_code().map_or(serde_json::Value::Null, |c| hex(c as u64)),
                );
                if let Exception::PageFault { addr, .. } = e {
                    m.insert("address".into(), hex(*addr));
                }
                serde_json::Value::Object(m)
            }
        };
        let mut o = serde_json::Map::new();
        o.insert("stop".into(), serde_json::to_value(self.stop).unwrap_or_default());
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
