//! Layout: give every item an address, encode everything with iced's `BlockEncoder`, and
//! repeat until addresses stop moving.
//!
//! Branches and RIP-relative operands that name a label are handed to the block encoder as
//! references to the label's instruction (by a synthetic, non-canonical instruction
//! pointer), so the block encoder picks short or near forms and fixes displacements itself.
//! Everything else that depends on an address — `movq $label, %rax`, `.quad label`, `.`,
//! `.align` padding, `8(%rip)` — is computed from the previous pass's addresses; the passes
//! repeat until a pass reproduces its input addresses (a fixed point), or fail after
//! `MAX_PASSES`.

use super::build::{self, Resolve};
use super::error::{AsmError, AsmErrorKind, Pos};
use super::expr::{self, Env, Expr, Value};
use super::program::{ItemKind, Program};
use super::{Assembly, SymbolLookup};
use iced_x86::{BlockEncoder, BlockEncoderOptions, Encoder, Instruction, InstructionBlock};

/// Synthetic instruction pointers start here: non-canonical, so no real target collides.
const SYN_BASE: u64 = 0x8000_0000_0000_0000;
/// Give up if sizes still change after this many passes.
const MAX_PASSES: u32 = 32;
/// Deepest chain of `.set` symbols referring to each other.
const MAX_SET_DEPTH: u32 = 32;
/// Bytes per declare-data instruction (iced's limit).
const CHUNK: usize = 16;

/// Recommended multi-byte NOPs (Intel SDM Vol. 2B, NOP: "Recommended Multi-Byte Sequence
/// of NOP Instruction"), used to pad code for `.align`.
const NOPS: [&[u8]; 9] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// Evaluation context for one item in one pass.
struct PassEnv<'a> {
    prog: &'a Program,
    symbols: &'a dyn SymbolLookup,
    addrs: &'a [u64],
    syn: &'a [u64],
    cur: usize,
    depth: u32,
}

impl Env for PassEnv<'_> {
    fn lookup(&self, name: &str, pos: Pos) -> Result<Option<Value>, AsmError> {
        if let Some(&i) = self.prog.labels.get(name) {
            return Ok(Some(Value {
                value: self.addrs[i],
                relocatable: true,
            }));
        }
        if let Some((e, i)) = self.prog.sets.get(name) {
            if self.depth >= MAX_SET_DEPTH {
                return Err(AsmError::at(
                    pos,
                    AsmErrorKind::RecursiveSymbol(name.to_string()),
                ));
            }
            let inner = PassEnv {
                cur: *i,
                depth: self.depth + 1,
                ..*self
            };
            return expr::eval(e, &inner).map(Some);
        }
        Ok(self.symbols.lookup(name).map(|value| Value {
            value,
            relocatable: false,
        }))
    }

    fn dot(&self) -> Option<u64> {
        self.addrs.get(self.cur).copied()
    }
}

impl Resolve for PassEnv<'_> {
    fn value(&self, e: &Expr) -> Result<Value, AsmError> {
        expr::eval(e, self)
    }

    fn target(&self, e: &Expr) -> Result<u64, AsmError> {
        if let Expr::Sym(name, _) = e {
            if let Some(&i) = self.prog.labels.get(name) {
                return Ok(self.syn[i]);
            }
        }
        Ok(self.value(e)?.value)
    }

    fn is_address(&self, e: &Expr) -> bool {
        fn walk(env: &PassEnv<'_>, e: &Expr, depth: u32) -> bool {
            let mut found = false;
            e.for_each_sym(&mut |name, _| {
                found |= if env.prog.labels.contains_key(name) {
                    true
                } else if let Some((inner, _)) = env.prog.sets.get(name) {
                    depth < MAX_SET_DEPTH && walk(env, inner, depth + 1)
                } else {
                    env.symbols.lookup(name).is_some()
                };
            });
            found
        }
        walk(self, e, 0)
    }
}

/// Padding needed at `addr`.
fn pad_len(addr: u64, align: u64, max: Option<u64>) -> u64 {
    let pad = (align - addr % align) % align;
    if max.is_some_and(|m| pad > m) {
        0
    } else {
        pad
    }
}

/// The byte pieces of padding, one declare-data instruction each.
fn pad_pieces(pad: u64, fill: Option<u8>) -> Vec<Vec<u8>> {
    let pad = pad as usize;
    match fill {
        Some(b) => vec![b; pad].chunks(CHUNK).map(<[u8]>::to_vec).collect(),
        None => {
            let mut out = Vec::new();
            let mut left = pad;
            while left > 0 {
                let n = left.min(NOPS.len());
                out.push(NOPS[n - 1].to_vec());
                left -= n;
            }
            out
        }
    }
}

/// How many block-encoder instructions an item emits at `addr`.
fn piece_count(kind: &ItemKind, addr: u64) -> usize {
    match kind {
        ItemKind::Label => 0,
        ItemKind::Insn(_) | ItemKind::Fixed(_) => 1,
        ItemKind::Data { width, exprs } => (*width as usize * exprs.len()).div_ceil(CHUNK),
        ItemKind::Bytes(b) => b.len().div_ceil(CHUNK),
        ItemKind::Align { align, fill, max } => {
            pad_pieces(pad_len(addr, *align, *max), *fill).len()
        }
    }
}

/// Recomputes addresses front to back with each item's size from the last pass, except
/// alignment padding, which is recomputed from the address it now lands on. Without this,
/// a chain of `.align`s would settle one per pass.
fn restack(prog: &Program, base: u64, old: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(old.len());
    let mut a = base;
    for (i, item) in prog.items.iter().enumerate() {
        out.push(a);
        let size = match &item.kind {
            ItemKind::Align { align, max, .. } => pad_len(a, *align, *max),
            _ => old[i + 1].wrapping_sub(old[i]),
        };
        a = a.wrapping_add(size);
    }
    out.push(a);
    out
}

/// A first guess at item addresses; any guess works, a close one saves passes.
fn estimate(prog: &Program, base: u64) -> Vec<u64> {
    let mut addrs = Vec::with_capacity(prog.items.len() + 1);
    let mut a = base;
    for item in &prog.items {
        addrs.push(a);
        let size = match &item.kind {
            ItemKind::Label | ItemKind::Align { .. } => 0,
            ItemKind::Insn(_) => 5,
            ItemKind::Fixed(_) => 2,
            ItemKind::Data { width, exprs } => u64::from(*width) * exprs.len() as u64,
            ItemKind::Bytes(b) => b.len() as u64,
        };
        a = a.wrapping_add(size);
    }
    addrs.push(a);
    addrs
}

fn data_bytes(width: u32, v: Value, pos: Pos, out: &mut Vec<u8>) -> Result<(), AsmError> {
    let s = i128::from(v.value as i64);
    let bits = width * 8;
    let ok = bits == 64 || (s >= -(1i128 << (bits - 1)) && s < (1i128 << bits));
    if !ok {
        let what = match width {
            1 => "a .byte",
            2 => "a .word",
            _ => "a .long",
        };
        return Err(AsmError::at(
            pos,
            AsmErrorKind::OutOfRange {
                value: v.value,
                what: what.into(),
            },
        ));
    }
    out.extend_from_slice(&v.value.to_le_bytes()[..width as usize]);
    Ok(())
}

fn declare(bytes: &[u8], pos: Pos) -> Result<Instruction, AsmError> {
    Instruction::with_declare_byte(bytes)
        .map_err(|e| AsmError::at(pos, AsmErrorKind::Encode(e.to_string())))
}

/// Passes in which the block encoder chooses branch sizes freely. Alignment padding that
/// depends on a branch's size, which depends on the padding, can oscillate; after these
/// passes branch sizes are pinned and may only grow (as GNU as relaxes), which terminates.
const FREE_PASSES: u32 = 12;

/// Per-item branch size decisions once pinned: `true` = near (rel32), `false` = short.
type Pins = Vec<bool>;

/// Lays out and encodes the program at `base`.
pub(crate) fn layout(
    prog: &Program,
    base: u64,
    symbols: &dyn SymbolLookup,
) -> Result<Assembly, AsmError> {
    let mut addrs = estimate(prog, base);
    let mut pins: Option<Pins> = None;
    for pass in 0..MAX_PASSES {
        addrs = restack(prog, base, &addrs);
        if pass == FREE_PASSES {
            // Pin each branch at the size the last pass gave it.
            pins = Some(
                (0..prog.items.len())
                    .map(|i| addrs[i + 1].wrapping_sub(addrs[i]) >= 5)
                    .collect(),
            );
        }
        let out = match run_pass(prog, base, symbols, &addrs, pins.as_mut()) {
            Ok(out) => out,
            Err(e) => match pins.as_mut() {
                // A pinned short branch that no longer reaches: grow every branch (rel32
                // always reaches within the block) and try again.
                Some(p) if matches!(e.kind, AsmErrorKind::Encode(_)) && !p.iter().all(|&n| n) => {
                    p.iter_mut().for_each(|near| *near = true);
                    continue;
                }
                _ => return Err(e),
            },
        };
        if out.addrs == addrs {
            return Ok(finish(prog, out.bytes, &addrs, &out.first));
        }
        addrs = out.addrs;
    }
    let pos = prog.items.first().map_or(Pos::new(1, 1), |i| i.pos);
    Err(AsmError::at(pos, AsmErrorKind::NoConvergence(MAX_PASSES)))
}

/// The result of one layout pass.
struct PassOut {
    bytes: Vec<u8>,
    /// Item addresses as encoded.
    addrs: Vec<u64>,
    /// Index of each item's first block-encoder instruction.
    first: Vec<usize>,
}

/// True if the item is a direct near branch (jmp, jcc, call) the block encoder may resize.
fn is_branch(kind: &ItemKind) -> bool {
    matches!(kind, ItemKind::Insn(sel) if sel.candidates.iter().any(|c| c.form.kinds.contains(&iced_x86::OpCodeOperandKind::br64_4)))
}

/// Pins a branch: short if it is pinned short and still reaches, near otherwise (and then
/// for good).
fn pin_branch(ins: &mut Instruction, near: &mut bool, real_target: u64, addr: u64) {
    if !*near {
        let mut short = *ins;
        short.set_code(ins.code().as_short_branch());
        short.set_near_branch64(real_target);
        if short.code() != ins.code() && Encoder::new(64).encode(&short, addr).is_ok() {
            ins.set_code(short.code());
            return;
        }
        *near = true;
    }
    ins.set_code(ins.code().as_near_branch());
}

fn run_pass(
    prog: &Program,
    base: u64,
    symbols: &dyn SymbolLookup,
    addrs: &[u64],
    mut pins: Option<&mut Pins>,
) -> Result<PassOut, AsmError> {
    let n = prog.items.len();
    // Phase A: instruction numbering, so labels can be referenced before they are built.
    let mut first = Vec::with_capacity(n + 1);
    let mut count = 0usize;
    for (i, item) in prog.items.iter().enumerate() {
        first.push(count);
        count += piece_count(&item.kind, addrs[i]);
    }
    first.push(count);
    let syn: Vec<u64> = first.iter().map(|&k| SYN_BASE + k as u64).collect();

    // Phase B: build every instruction.
    let mut instrs: Vec<Instruction> = Vec::with_capacity(count + 1);
    let mut owner: Vec<usize> = Vec::with_capacity(count + 1);
    for (i, item) in prog.items.iter().enumerate() {
        let env = PassEnv {
            prog,
            symbols,
            addrs,
            syn: &syn,
            cur: i,
            depth: 0,
        };
        let mut pieces: Vec<Instruction> = Vec::new();
        match &item.kind {
            ItemKind::Label => {}
            ItemKind::Insn(sel) => {
                let mut ins = build::build(sel, &env, addrs[i], item.pos)?;
                if let Some(p) = pins.as_deref_mut() {
                    if is_branch(&item.kind) {
                        let real = build::branch_target(sel, &env)?.unwrap_or(0);
                        pin_branch(&mut ins, &mut p[i], real, addrs[i]);
                    }
                }
                pieces.push(ins);
            }
            ItemKind::Fixed(ins) => pieces.push(*ins),
            ItemKind::Data { width, exprs } => {
                let mut bytes = Vec::new();
                for e in exprs {
                    let v = expr::eval(e, &env)?;
                    data_bytes(*width, v, e.pos(), &mut bytes)?;
                }
                for chunk in bytes.chunks(CHUNK) {
                    pieces.push(declare(chunk, item.pos)?);
                }
            }
            ItemKind::Bytes(b) => {
                for chunk in b.chunks(CHUNK) {
                    pieces.push(declare(chunk, item.pos)?);
                }
            }
            ItemKind::Align { align, fill, max } => {
                for p in pad_pieces(pad_len(addrs[i], *align, *max), *fill) {
                    pieces.push(declare(&p, item.pos)?);
                }
            }
        }
        for mut ins in pieces {
            ins.set_ip(SYN_BASE + instrs.len() as u64);
            instrs.push(ins);
            owner.push(i);
        }
    }
    debug_assert_eq!(instrs.len(), count);
    // A one-byte sentinel gives labels at the very end an instruction to point at.
    let mut sentinel = Instruction::with_declare_byte_1(0);
    sentinel.set_ip(SYN_BASE + count as u64);
    instrs.push(sentinel);

    let mut options = BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS;
    if pins.is_some() {
        options |= BlockEncoderOptions::DONT_FIX_BRANCHES;
    }
    let result = BlockEncoder::encode(64, InstructionBlock::new(&instrs, base), options)
        .map_err(|e| blame(prog, &instrs, &owner, addrs, e.to_string()))?;
    let offsets = &result.new_instruction_offsets;
    let new_addrs = first
        .iter()
        .map(|&k| base.wrapping_add(u64::from(offsets.get(k).copied().unwrap_or(0))))
        .collect();
    let mut bytes = result.code_buffer;
    bytes.pop();
    Ok(PassOut {
        bytes,
        addrs: new_addrs,
        first,
    })
}

/// Finds the statement whose instruction the block encoder rejected.
fn blame(
    prog: &Program,
    instrs: &[Instruction],
    owner: &[usize],
    addrs: &[u64],
    msg: String,
) -> AsmError {
    let mut enc = Encoder::new(64);
    for (ins, &i) in instrs.iter().zip(owner) {
        if ins.code().op_code().is_instruction() && enc.encode(ins, addrs[i]).is_err() {
            return AsmError::at(prog.items[i].pos, AsmErrorKind::Encode(msg));
        }
    }
    let pos = prog.items.first().map_or(Pos::new(1, 1), |i| i.pos);
    AsmError::at(pos, AsmErrorKind::Encode(msg))
}

fn finish(prog: &Program, bytes: Vec<u8>, addrs: &[u64], first: &[usize]) -> Assembly {
    let labels = prog
        .labels
        .iter()
        .filter(|(name, _)| !name.contains('\u{2}'))
        .map(|(name, &i)| (name.clone(), addrs[i]))
        .collect();
    let line_addrs = prog
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| first[i + 1] > first[*i])
        .map(|(i, item)| (addrs[i], item.pos.line))
        .collect();
    Assembly {
        bytes,
        labels,
        line_addrs,
        globals: prog.globals.clone(),
    }
}
