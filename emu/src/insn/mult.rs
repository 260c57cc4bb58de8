//! Multiply and divide family: MUL IMUL (1/2/3 operands) DIV IDIV (SDM Vol. 2A/2B).

use super::{Exec, ExecResult};
use crate::bus::Bus;
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        _ => Err(x.unsupported()),
    }
}
