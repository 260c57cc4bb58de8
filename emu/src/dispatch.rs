//! The one place that picks a handler for a decoded instruction.
//!
//! Mnemonics are routed to their family (one file per family under `insn/`); the
//! family's `exec` picks the form. A mnemonic no family claims is an explicit
//! [`crate::EmuError::Unsupported`], never a panic and never a silent no-op.

use crate::bus::Bus;
use crate::insn::{
    arith, bit, ctrl_xfer, data_xfer, flag_ctrl, logical, mult, shift, stack, string, system, Exec,
    ExecResult,
};
use iced_x86::Mnemonic as M;

/// Executes the instruction in `x`.
#[inline]
pub(crate) fn dispatch<B: Bus>(x: &mut Exec<'_, B>) -> ExecResult {
    let m = x.ins.mnemonic();
    match m {
        M::Add
        | M::Adc
        | M::Sub
        | M::Sbb
        | M::Cmp
        | M::Inc
        | M::Dec
        | M::Neg
        | M::Xadd
        | M::Cmpxchg
        | M::Cmpxchg8b
        | M::Cmpxchg16b => arith::exec(x, m),
        M::Mul | M::Imul | M::Div | M::Idiv => mult::exec(x, m),
        M::And | M::Or | M::Xor | M::Test | M::Not => logical::exec(x, m),
        M::Shl
        | M::Sal
        | M::Shr
        | M::Sar
        | M::Rol
        | M::Ror
        | M::Rcl
        | M::Rcr
        | M::Shld
        | M::Shrd => shift::exec(x, m),
        M::Bt
        | M::Bts
        | M::Btr
        | M::Btc
        | M::Bsf
        | M::Bsr
        | M::Tzcnt
        | M::Lzcnt
        | M::Popcnt
        | M::Bswap => bit::exec(x, m),
        M::Push | M::Pop | M::Pushfq | M::Popfq | M::Leave => stack::exec(x, m),
        M::Jmp
        | M::Call
        | M::Ret
        | M::Jo
        | M::Jno
        | M::Jb
        | M::Jae
        | M::Je
        | M::Jne
        | M::Jbe
        | M::Ja
        | M::Js
        | M::Jns
        | M::Jp
        | M::Jnp
        | M::Jl
        | M::Jge
        | M::Jle
        | M::Jg => ctrl_xfer::exec(x, m),
        M::Movsb
        | M::Movsw
        | M::Movsd
        | M::Movsq
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Stosq
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Lodsq
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Cmpsq
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Scasq => string::exec(x, m),
        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std | M::Cli | M::Sti => flag_ctrl::exec(x, m),
        M::Nop
        | M::Pause
        | M::Lfence
        | M::Sfence
        | M::Mfence
        | M::Rdtsc
        | M::Rdtscp
        | M::Cpuid
        | M::Rdmsr
        | M::Wrmsr
        | M::Invlpg
        | M::Invpcid
        | M::Hlt
        | M::Int3
        | M::Int
        | M::Iretq
        | M::Swapgs
        | M::Ud2
        | M::Lidt
        | M::Lgdt
        | M::Sidt
        | M::Sgdt => system::exec(x, m),
        // MOV to or from a control register is a system instruction; every other
        // MOV form is a data transfer.
        M::Mov if x.ins.op0_register().is_cr() || x.ins.op1_register().is_cr() => {
            system::exec(x, m)
        }
        M::Mov
        | M::Movzx
        | M::Movsx
        | M::Movsxd
        | M::Lea
        | M::Xchg
        | M::Cbw
        | M::Cwde
        | M::Cdqe
        | M::Cwd
        | M::Cdq
        | M::Cqo
        | M::Seto
        | M::Setno
        | M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg
        | M::Cmovo
        | M::Cmovno
        | M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg => data_xfer::exec(x, m),
        _ => Err(x.unsupported()),
    }
}
