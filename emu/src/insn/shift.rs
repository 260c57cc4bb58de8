//! Shift and rotate family: SHL/SAL SHR SAR ROL ROR RCL RCR SHLD SHRD (SDM Vol. 2B).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        _ => Err(x.unsupported()),
    }
}
