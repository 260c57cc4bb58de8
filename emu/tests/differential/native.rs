//! Running one instruction on the host CPU, risu style.
//!
//! Two fixed mappings: a scratch data buffer at [`BUF_ADDR`] (memory operands
//! point into it, and the emulator's identity-mapped `FlatBus` uses the same
//! addresses) and a code page at [`CODE_ADDR`] holding a trampoline:
//!
//! ```text
//! prologue: save callee-saved registers, push the state pointer,
//!           load RFLAGS (push [state+128]; popfq), load all GPRs but RSP
//! the instruction under test
//! epilogue: pushfq; push rax; fetch the state pointer from the stack,
//!           store all GPRs and RFLAGS, cld, restore, ret
//! ```
//!
//! The instruction must not touch RSP, fault, or access memory outside the
//! scratch buffer; the generator guarantees that (division inputs that would
//! raise #DE never reach the host).

use iced_x86::code_asm::*;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Where the scratch data buffer lives (same address on the host and in the emulator).
pub const BUF_ADDR: u64 = 0x1000_0000;
/// Size of the scratch buffer: two pages, so page-crossing accesses happen.
pub const BUF_LEN: usize = 0x2000;
/// Where the trampoline's code page lives.
pub const CODE_ADDR: u64 = 0x1010_0000;
const CODE_LEN: usize = 0x1000;

/// Register state exchanged with the trampoline. RSP (`gpr[4]`) is ignored on the
/// way in and not written back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    /// RFLAGS.
    pub rflags: u64,
}

const RFLAGS_OFFSET: i32 = 128;

/// The two mappings and the trampoline's fixed parts.
pub struct Native {
    prologue: Vec<u8>,
    epilogue: Vec<u8>,
}

/// The GPRs the trampoline loads and stores, with their slot in [`Regs::gpr`]
/// (RDI and RAX are handled separately: RDI holds the state pointer, RAX is the
/// epilogue's scratch register).
fn slots() -> [(AsmRegister64, i32); 13] {
    [
        (rcx, 1),
        (rdx, 2),
        (rbx, 3),
        (rbp, 5),
        (rsi, 6),
        (r8, 8),
        (r9, 9),
        (r10, 10),
        (r11, 11),
        (r12, 12),
        (r13, 13),
        (r14, 14),
        (r15, 15),
    ]
}

const CALLEE_SAVED: [AsmRegister64; 6] = [rbx, rbp, r12, r13, r14, r15];

fn assemble_prologue() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    for r in CALLEE_SAVED {
        a.push(r)?;
    }
    a.push(rdi)?;
    a.push(qword_ptr(rdi + RFLAGS_OFFSET))?;
    a.popfq()?;
    a.mov(rax, qword_ptr(rdi))?;
    for (r, i) in slots() {
        a.mov(r, qword_ptr(rdi + 8 * i))?;
    }
    a.mov(rdi, qword_ptr(rdi + 8 * 7))?;
    a.assemble(0)
}

fn assemble_epilogue() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.pushfq()?;
    a.push(rax)?;
    a.mov(rax, qword_ptr(rsp + 16))?;
    for (r, i) in slots() {
        a.mov(qword_ptr(rax + 8 * i), r)?;
    }
    a.mov(qword_ptr(rax + 8 * 7), rdi)?;
    a.pop(rcx)?;
    a.mov(qword_ptr(rax), rcx)?;
    a.pop(rcx)?;
    a.mov(qword_ptr(rax + RFLAGS_OFFSET), rcx)?;
    a.cld()?;
    a.pop(rdi)?;
    for r in CALLEE_SAVED.iter().rev() {
        a.pop(*r)?;
    }
    a.ret()?;
    a.assemble(0)
}

/// Maps `len` bytes at exactly `addr`, or says why it could not.
fn map_fixed(addr: u64, len: usize, prot: libc::c_int) -> Result<(), String> {
    // SAFETY: an anonymous private mapping at a fixed address with
    // MAP_FIXED_NOREPLACE never replaces an existing mapping (the kernel fails with
    // EEXIST instead), so no memory Rust knows about is affected.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "mmap of {len:#x} bytes at {addr:#x} failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    if p as u64 != addr {
        // A kernel older than 4.17 ignores MAP_FIXED_NOREPLACE and picks another
        // address: give it back and fail.
        // SAFETY: `p` is the mapping just created, of `len` bytes, used by nobody.
        unsafe { libc::munmap(p, len) };
        return Err(format!("mmap placed {addr:#x} at {p:p} instead"));
    }
    Ok(())
}

impl Native {
    fn new() -> Result<Self, String> {
        map_fixed(BUF_ADDR, BUF_LEN, libc::PROT_READ | libc::PROT_WRITE)?;
        map_fixed(
            CODE_ADDR,
            CODE_LEN,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        )?;
        let prologue = assemble_prologue().map_err(|e| e.to_string())?;
        let epilogue = assemble_epilogue().map_err(|e| e.to_string())?;
        Ok(Native { prologue, epilogue })
    }

    /// The address the instruction under test is placed at (after the prologue);
    /// the emulator runs it at the same address so RIP-relative operands agree.
    pub fn insn_addr(&self) -> u64 {
        CODE_ADDR + self.prologue.len() as u64
    }

    /// Runs `insn` on the host with `regs` and the scratch buffer holding `mem`;
    /// returns with both updated.
    pub fn run(&mut self, insn: &[u8], regs: &mut Regs, mem: &mut [u8]) {
        assert_eq!(mem.len(), BUF_LEN);
        assert!(self.prologue.len() + insn.len() + self.epilogue.len() <= CODE_LEN);
        let mut code = Vec::with_capacity(CODE_LEN);
        code.extend_from_slice(&self.prologue);
        code.extend_from_slice(insn);
        code.extend_from_slice(&self.epilogue);
        // SAFETY: both ranges lie inside mappings this module created (code page
        // RWX, buffer RW) and that live for the rest of the process; the source
        // slices do not overlap them. x86 keeps instruction fetch coherent with
        // these stores, so no cache flush is needed.
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), CODE_ADDR as *mut u8, code.len());
            std::ptr::copy_nonoverlapping(mem.as_ptr(), BUF_ADDR as *mut u8, BUF_LEN);
        }
        // SAFETY: the code page holds a complete function following the SysV ABI:
        // it saves and restores every callee-saved register, leaves RSP balanced,
        // clears DF before returning, and the instruction in the middle was
        // generated not to touch RSP, not to fault and to access memory only inside
        // the scratch buffer. `regs` is a valid, exclusive `#[repr(C)]` block.
        unsafe {
            let f: extern "sysv64" fn(*mut Regs) = std::mem::transmute(CODE_ADDR as usize);
            f(regs as *mut Regs);
        }
        // SAFETY: the buffer mapping is BUF_LEN bytes, readable, and no longer
        // written by anything.
        unsafe {
            std::ptr::copy_nonoverlapping(BUF_ADDR as *const u8, mem.as_mut_ptr(), BUF_LEN);
        }
    }
}

static NATIVE: OnceLock<Result<Mutex<Native>, String>> = OnceLock::new();

/// The process-wide native runner (the mappings exist once per process), locked.
/// Panics with the reason when the host cannot run instructions natively: the
/// differential test must fail, never skip, when its oracle is missing.
pub fn native() -> MutexGuard<'static, Native> {
    let n = NATIVE.get_or_init(|| Native::new().map(Mutex::new));
    match n {
        Ok(m) => m.lock().unwrap_or_else(|e| e.into_inner()),
        Err(e) => panic!("cannot execute instructions natively on this host: {e}"),
    }
}
