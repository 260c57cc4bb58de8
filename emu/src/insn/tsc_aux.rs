//! RDPID, the user-level reader of IA32_TSC_AUX (SDM Vol. 2B RDPID).
//!
//! Kernels store the CPU number in IA32_TSC_AUX (MSR 0xC0000103, WRMSR in
//! `system.rs`) so user and kernel code can learn where they run without a
//! system call. RDTSCP also loads it, into ECX, and stays with RDTSC in
//! `system.rs`, whose clock it shares. CPUID.(EAX=07H,ECX=0):ECX.RDPID[bit 22]
//! is always reported, so RDPID has no #UD of its own (a LOCK prefix is rejected by
//! the decoder).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Rdpid => rdpid(x),
        _ => Err(x.unsupported()),
    }
}

/// RDPID r64 (SDM Vol. 2B RDPID): in 64-bit mode DEST[63:0] ← IA32_TSC_AUX, at any
/// CPL and whatever CR4.TSD says (unlike RDTSCP). IA32_TSC_AUX's bits 63:32 are
/// reserved and always 0 here, so the register gets the 32-bit value zero-extended.
fn rdpid<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let r = x.ins.op0_register();
    if !r.is_gpr64() {
        // Rdpid_r32 exists only outside 64-bit mode.
        return Err(x.unsupported());
    }
    x.cpu.write_gpr(r, x.cpu.tsc_aux & 0xffff_ffff);
    Ok(())
}
