//! Cache control: WBINVD, INVD, CLFLUSH, CLFLUSHOPT (SDM Vol. 2A CLFLUSH,
//! CLFLUSHOPT, INVD; Vol. 2B WBINVD).
//!
//! tlbemu models no data or instruction caches: every store reaches guest physical
//! memory at once and every load reads it. So none of these changes architectural
//! state here; what remains are their faults, which a kernel can hit:
//! - WBINVD and INVD are privileged: #GP(0) above CPL 0. INVD on hardware drops
//!   dirty lines without writing them back; with no caches there is nothing to lose,
//!   so INVD behaves as WBINVD. Neither touches the TLBs or paging-structure caches
//!   (SDM Vol. 3A 4.10.4 lists no cache-control instruction among the operations
//!   that invalidate them), so neither is handed to the bus as an invalidation.
//! - CLFLUSH and CLFLUSHOPT run at any CPL and are "subject to all permission
//!   checking and faults associated with a byte load": the line's address is
//!   translated as a one-byte read (non-canonical → #GP(0)/#SS(0), not present or
//!   SMAP → #PF), and then nothing is read or written.

use super::{Exec, ExecResult};
use crate::bus::{AccessKind, Bus};
use iced_x86::Mnemonic;

/// Executes one instruction of the family.
pub(crate) fn exec<B: Bus>(x: &mut Exec<'_, B>, m: Mnemonic) -> ExecResult {
    match m {
        Mnemonic::Wbinvd => wbinvd(x),
        Mnemonic::Invd => invd(x),
        Mnemonic::Clflush | Mnemonic::Clflushopt => clflush(x),
        _ => Err(x.unsupported()),
    }
}

/// WBINVD (SDM Vol. 2B WBINVD): #GP(0) unless CPL 0; writes back and invalidates
/// the caches, of which this model has none.
fn wbinvd<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()
}

/// INVD (SDM Vol. 2A INVD): #GP(0) unless CPL 0; invalidates the caches without
/// writing them back. With no caches modelled it has WBINVD's effect (none).
fn invd<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    x.require_cpl0()
}

/// CLFLUSH m8 / CLFLUSHOPT m8 (SDM Vol. 2A CLFLUSH, CLFLUSHOPT): the byte's linear
/// address is checked and translated as a read (the translation may set the
/// accessed bits and fill the TLB, as the access would); no memory is accessed.
fn clflush<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let la = x.mem_la()?;
    x.translate(la, 1, AccessKind::Read)?;
    Ok(())
}
