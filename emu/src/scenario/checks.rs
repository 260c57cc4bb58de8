//! Checks that catch scenarios which would otherwise run and pass while saying
//! something other than what their author meant: a map key written twice (the
//! last one silently wins), an expected value too wide for the bytes compared
//! (its high bits silently ignored), two IDT gates for one vector (the last one
//! silently wins). Also the translation a `Mem` expectation reads through, page
//! by page, so a value that crosses into the next page is read where that page is
//! mapped (or reported unmapped) rather than from the next physical frame.

use super::build::{resolve, Built};
use super::diag::{Diagnostic, Problem, Source};
use super::schema::{Expect, Scenario};
use crate::machine::Machine;
use mmu::{PhysAddr, VirtAddr, WalkResult};
use std::collections::BTreeMap;

/// Map keys must be unique: the deserialiser keeps the last of two silently.
/// Reported at the second copy, naming where the first is.
pub(crate) fn parsed(src: &Source) -> Result<(), Diagnostic> {
    if let Some((path, first, again)) = src.locations.duplicate_keys().first() {
        let (map, key) = match path.rsplit_once('.') {
            Some((m, k)) => (m, k),
            None => ("the document", path.as_str()),
        };
        return Err(Diagnostic {
            file: src.path.display().to_string(),
            pos: *again,
            message: format!(
                "duplicate key `{key}` in `{map}` (first at line {}, column {}); expected each key once",
                first.line, first.col
            ),
        });
    }
    Ok(())
}

/// Checks run after the build, with symbols resolved.
pub(crate) fn built(s: &Scenario, b: &Built) -> Result<(), Problem> {
    if let Some(idt) = &s.idt {
        let mut seen: BTreeMap<u8, usize> = BTreeMap::new();
        for (i, g) in idt.gates.iter().enumerate() {
            if let Some(first) = seen.insert(g.vector, i) {
                return Err(Problem::at(
                    format!("idt.gates[{i}].vector"),
                    format!(
                        "vector {:#x} already has a gate (idt.gates[{first}]); expected one gate per vector",
                        g.vector
                    ),
                ));
            }
        }
    }
    let lists = [("expect", &s.expect), ("invariants", &s.invariants)];
    for (i, e, list) in lists
        .iter()
        .flat_map(|(list, v)| v.iter().enumerate().map(move |(i, e)| (i, e, *list)))
    {
        if let Expect::Mem { size, value, .. } = e {
            let size = size.unwrap_or(8);
            let Ok(v) = resolve(value, &b.symbols) else {
                continue; // `validate` reports an unresolvable value
            };
            if size < 8 && v >> (size * 8) != 0 {
                return Err(Problem::at(
                    format!("{list}[{i}].value"),
                    format!(
                        "{v:#x} does not fit in {size} byte(s) (expected at most {:#x}, or a larger `size`)",
                        (1u64 << (size * 8)) - 1
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Reads `size` bytes at `at` for a `Mem` expectation: physical memory when
/// `root` is `None`, else linear through the page tables at `root`, each page
/// translated on its own. Errors say which byte is unmapped or unreadable.
pub(crate) fn read_expected(
    m: &Machine,
    root: Option<u64>,
    at: u64,
    size: usize,
) -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    let size = size.clamp(1, 8);
    let Some(root) = root else {
        m.mem
            .read(PhysAddr(at), &mut bytes[..size])
            .map_err(|e| e.to_string())?;
        return Ok(u64::from_le_bytes(bytes));
    };
    let mut done = 0;
    while done < size {
        let va = at.wrapping_add(done as u64);
        let walked = mmu::walk(
            &m.mem,
            VirtAddr(va),
            mmu::WalkStart::root(PhysAddr(root)),
            mmu::WalkParams {
                maxphyaddr: m.config.mmu.maxphyaddr,
                huge_1g: m.config.mmu.huge_1g,
                nxe: true,
            },
            0,
            &mut mmu::Path::new(),
        );
        let (pa, left) = match walked {
            Ok(WalkResult::Leaf {
                frame, size: ps, ..
            }) => {
                let off = va & ps.offset_mask();
                (frame.raw() + off, ps.offset_mask() - off + 1)
            }
            _ => return Err(format!("{va:#x} is not mapped")),
        };
        let n = (left.min((size - done) as u64)) as usize;
        m.mem
            .read(PhysAddr(pa), &mut bytes[done..done + n])
            .map_err(|e| e.to_string())?;
        done += n;
    }
    Ok(u64::from_le_bytes(bytes))
}
