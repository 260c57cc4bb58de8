//! ELF64 x86-64 relocatable objects (`gcc -c`, `as`) in a scenario: their
//! allocated sections are laid out at linear addresses, their symbols become
//! scenario symbols and labels, and their relocations are applied, with nothing
//! else of a linker. docs/objects.md documents the compiler flags, placement,
//! stubs and limits.
//!
//! The work is split in the phases the builder needs: [`layout`] reads the files
//! and places the sections before the page tables are built (so the builder can
//! map the pages it lays out), [`Layout::define`] adds the objects' symbols
//! before the scenario's assembly is assembled (so assembly can call C), and
//! [`Layout::link`] applies the relocations once every symbol is known and writes
//! the bytes. Relocation semantics follow the System V AMD64 psABI (4.4
//! Relocation), with S the symbol's address, A the addend and P the address of
//! the place relocated.

use super::build::{resolve, suggest};
use super::diag::Problem;
use super::schema::{Code, Mapping, PteFlag, Scenario, SizeSpec, SyntaxSpec, Value};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{
    Object as _, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
    SymbolSection,
};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Largest object file read (the kernel's biggest objects are a few MiB).
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;

/// The label stubs and `call` entries return to when no label is given: it
/// halts the core.
pub const RETURN_LABEL: &str = "tlbemu.return";

const PAGE: u64 = 4096;

/// What is wrong with an object, with the context to find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectError {
    /// The file is not ELF at all, or is truncated or malformed.
    Malformed(String),
    /// ELF, but not the kind that can be loaded.
    WrongKind(String),
    /// A relocation type this loader does not apply.
    UnsupportedReloc {
        /// Section holding the place.
        section: String,
        /// Offset of the place in it.
        offset: u64,
        /// psABI name of the type.
        kind: String,
        /// Target symbol.
        symbol: String,
    },
    /// A 32-bit field cannot hold the relocated value.
    Overflow {
        /// Section holding the place.
        section: String,
        /// Offset of the place in it.
        offset: u64,
        /// psABI name of the type.
        kind: &'static str,
        /// Target symbol.
        symbol: String,
        /// The value that does not fit.
        value: i128,
    },
    /// A symbol the loader cannot place (COMMON, or in a section not loaded).
    Symbol(String),
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::Malformed(m) => write!(f, "not a readable ELF object: {m}"),
            ObjectError::WrongKind(m) => write!(f, "{m}"),
            ObjectError::UnsupportedReloc {
                section,
                offset,
                kind,
                symbol,
            } => write!(
                f,
                "unsupported relocation {kind} at {section}+{offset:#x} against `{symbol}` (supported: R_X86_64_64, 32, 32S, PC32, PLT32, PC64, GOTPCRELX and REX_GOTPCRELX on mov/call/jmp)"
            ),
            ObjectError::Overflow {
                section,
                offset,
                kind,
                symbol,
                value,
            } => {
                let v = if *value < 0 {
                    format!("-{:#x}", value.unsigned_abs())
                } else {
                    format!("{value:#x}")
                };
                write!(
                    f,
                    "relocation {kind} at {section}+{offset:#x} against `{symbol}` overflows: {v} does not fit in 32 bits{}",
                    if kind.contains("PC") || kind.contains("PLT") || kind.contains("GOT") {
                        " (the target is more than 2 GiB from the code: place them closer)"
                    } else {
                        " (-mcmodel=kernel code must be placed in the top 2 GiB, at or above 0xffffffff80000000)"
                    }
                )
            }
            ObjectError::Symbol(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ObjectError {}

/// How a section's pages are mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Executable, read-only.
    Text,
    /// Read-only data.
    Rodata,
    /// Writable data and bss.
    Data,
}

/// One allocated section, placed.
#[derive(Clone, Debug)]
struct Placed {
    index: SectionIndex,
    name: String,
    size: u64,
    va: u64,
}

/// One object, read and placed.
#[derive(Clone, Debug)]
struct Loaded {
    /// The `file:` as written, for messages.
    file: String,
    data: Vec<u8>,
    sections: Vec<Placed>,
}

/// The objects of a scenario, laid out; empty when it has none.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    objects: Vec<Loaded>,
    /// (space, mapping) pairs the builder adds.
    mappings: Vec<(String, Mapping)>,
    /// Linear address of the page after the objects, for stubs.
    stub_at: Option<u64>,
}

fn parse(data: &[u8]) -> Result<ElfFile64<'_>, ObjectError> {
    if !data.starts_with(b"\x7fELF") {
        return Err(ObjectError::WrongKind(
            "not an ELF file (it does not start with the ELF magic 7f 45 4c 46): pass the object `gcc -c` writes".into(),
        ));
    }
    match data.get(4) {
        Some(2) => {}
        Some(1) => {
            return Err(ObjectError::WrongKind(
                "an ELF32 object: compile for x86-64 (ELF64), not with -m32".into(),
            ))
        }
        _ => return Err(ObjectError::Malformed("bad ELF class byte".into())),
    }
    let f = ElfFile64::<object::Endianness>::parse(data)
        .map_err(|e| ObjectError::Malformed(e.to_string()))?;
    let h = f.elf_header();
    let e = f.endian();
    let machine = h.e_machine(e);
    if machine != elf::EM_X86_64 {
        return Err(ObjectError::WrongKind(format!(
            "ELF machine {machine} is not x86-64 (EM_X86_64, 62): compile for x86-64"
        )));
    }
    let ty = h.e_type(e);
    if ty != elf::ET_REL {
        let what = match ty {
            elf::ET_EXEC => "an executable",
            elf::ET_DYN => "a shared object or PIE",
            elf::ET_CORE => "a core dump",
            _ => "not relocatable",
        };
        return Err(ObjectError::WrongKind(format!(
            "ELF type {ty} is {what}, not a relocatable object (ET_REL): pass the `gcc -c` output, not a linked file"
        )));
    }
    Ok(f)
}

/// Loadable sections: allocated, not notes or unwind tables (which nothing in
/// a scenario reads; compile with -fno-asynchronous-unwind-tables to drop them).
fn loadable(f: &ElfFile64<'_>, idx: SectionIndex) -> Option<Kind> {
    let e = f.endian();
    let sh = f.elf_section_table().section(idx).ok()?;
    let flags = sh.sh_flags(e);
    let ty = sh.sh_type(e);
    if flags & u64::from(elf::SHF_ALLOC) == 0
        || ty == elf::SHT_NOTE
        || ty == elf::SHT_X86_64_UNWIND
        || ty == elf::SHT_GROUP
    {
        return None;
    }
    Some(if flags & u64::from(elf::SHF_EXECINSTR) != 0 {
        Kind::Text
    } else if flags & u64::from(elf::SHF_WRITE) != 0 {
        Kind::Data
    } else {
        Kind::Rodata
    })
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    let a = a.max(1);
    v.checked_add(a - 1).map(|x| x / a * a)
}

fn val(v: &Value, s: &Scenario, path: String) -> Result<u64, Problem> {
    resolve(v, &s.symbols).map_err(|e| {
        Problem::at(
            path,
            format!("{e} (object placement is resolved before the page tables, so it may use only `symbols`)"),
        )
    })
}

/// Reads every object and lays out its sections: explicitly placed ones where
/// `sections` says, the others from `at` (or the previous object's end) in
/// page-aligned groups, text, then rodata, then data and bss, so each group can
/// be mapped with its own permissions.
pub fn layout(s: &Scenario, base_dir: &Path, nx: bool) -> Result<Layout, Problem> {
    let mut out = Layout::default();
    let mut cursor: Option<u64> = None;
    let mut phys: Option<(String, u64, u64)> = None; // (space, va, pa) of the current run
    for (i, o) in s.objects.iter().enumerate() {
        let p = format!("objects[{i}]");
        let path = base_dir.join(&o.file);
        let data = crate::files::read_regular(&path, MAX_OBJECT_BYTES).map_err(|e| {
            Problem::at(
                format!("{p}.file"),
                format!("cannot read object `{}`: {e}", o.file),
            )
        })?;
        let f = parse(&data)
            .map_err(|e| Problem::at(format!("{p}.file"), format!("`{}`: {e}", o.file)))?;
        if let Some(at) = &o.at {
            let a = val(at, s, format!("{p}.at"))?;
            if !a.is_multiple_of(PAGE) {
                return Err(Problem::at(
                    format!("{p}.at"),
                    format!("{a:#x} is not page aligned (expected a multiple of 0x1000)"),
                ));
            }
            cursor = Some(a);
            phys = None;
        }
        if let Some(pa) = &o.pa {
            let pa = val(pa, s, format!("{p}.pa"))?;
            let Some(va) = cursor else {
                return Err(Problem::at(
                    format!("{p}.pa"),
                    "`pa` needs `at` (the linear address it backs)",
                ));
            };
            if !pa.is_multiple_of(PAGE) {
                return Err(Problem::at(
                    format!("{p}.pa"),
                    format!("{pa:#x} is not page aligned (expected a multiple of 0x1000)"),
                ));
            }
            let space = match &o.space {
                Some(sp) if s.address_spaces.contains_key(sp) => sp.clone(),
                Some(sp) => {
                    return Err(Problem::at(
                        format!("{p}.space"),
                        format!(
                            "unknown address space `{sp}`{}",
                            suggest(sp, s.address_spaces.keys())
                        ),
                    ))
                }
                None if s.address_spaces.len() == 1 => {
                    s.address_spaces.keys().next().cloned().unwrap_or_default()
                }
                None if s.address_spaces.contains_key("k") => "k".to_string(),
                None => return Err(Problem::at(
                    &p,
                    "`pa` needs `space`: the scenario has several address spaces and none is `k`",
                )),
            };
            phys = Some((space, va, pa));
        }
        for name in o.sections.keys() {
            let found = f.sections().any(|sec| {
                sec.name().ok() == Some(name.as_str()) && loadable(&f, sec.index()).is_some()
            });
            if !found {
                let names: Vec<String> = f
                    .sections()
                    .filter(|sec| loadable(&f, sec.index()).is_some())
                    .filter_map(|sec| sec.name().ok().map(str::to_string))
                    .collect();
                return Err(Problem::at(
                    format!("{p}.sections.{name}#key"),
                    format!(
                        "`{}` has no loadable section `{name}`{} (it has {})",
                        o.file,
                        suggest(name, names.iter()),
                        names.join(", ")
                    ),
                ));
            }
        }
        let mut placed = Vec::new();
        for kind in [Kind::Text, Kind::Rodata, Kind::Data] {
            let group_start = cursor;
            let mut any = false;
            for sec in f.sections() {
                if loadable(&f, sec.index()) != Some(kind) {
                    continue;
                }
                let name = sec.name().unwrap_or("?").to_string();
                let size = sec.size();
                let va = if let Some(v) = o.sections.get(&name) {
                    let a = val(v, s, format!("{p}.sections.{name}"))?;
                    if !a.is_multiple_of(sec.align().max(1)) {
                        return Err(Problem::at(
                            format!("{p}.sections.{name}"),
                            format!(
                                "{a:#x} is not aligned to the section's {} bytes",
                                sec.align()
                            ),
                        ));
                    }
                    a
                } else {
                    let Some(c) = cursor else {
                        return Err(Problem::at(
                            &p,
                            format!(
                                "`{}` section `{name}` has no address: give the object `at` or place the section in `sections`",
                                o.file
                            ),
                        ));
                    };
                    let a = align_up(c, sec.align()).ok_or_else(|| {
                        Problem::at(&p, "layout runs past the top of the address space")
                    })?;
                    cursor = a.checked_add(size);
                    any = true;
                    a
                };
                placed.push(Placed {
                    index: sec.index(),
                    name,
                    size,
                    va,
                });
            }
            if any {
                let (Some(start), Some(end)) = (group_start, cursor) else {
                    continue;
                };
                let end = align_up(end, PAGE).ok_or_else(|| {
                    Problem::at(&p, "layout runs past the top of the address space")
                })?;
                if let (Some((space, va0, pa0)), true) = (&phys, end > start) {
                    out.mappings.push((
                        space.clone(),
                        mapping(start, pa0 + (start - va0), end - start, kind, nx),
                    ));
                }
                cursor = Some(end);
            }
        }
        out.objects.push(Loaded {
            file: o.file.clone(),
            data: data.clone(),
            sections: placed,
        });
    }
    // Overlapping sections (inclusive ends; empty sections overlap nothing).
    let mut all: Vec<(u64, u64, usize, &str)> = Vec::new();
    for (i, o) in out.objects.iter().enumerate() {
        for sec in &o.sections {
            if sec.size > 0 {
                let last = sec.va.checked_add(sec.size - 1).ok_or_else(|| {
                    Problem::at(
                        format!("objects[{i}]"),
                        format!(
                            "section `{}` runs past the top of the address space",
                            sec.name
                        ),
                    )
                })?;
                all.push((sec.va, last, i, &sec.name));
            }
        }
    }
    for (k, a) in all.iter().enumerate() {
        if let Some(b) = all[..k].iter().find(|b| a.0 <= b.1 && b.0 <= a.1) {
            return Err(Problem::at(
                format!("objects[{}]", a.2),
                format!(
                    "section `{}` of `{}` ({:#x}..={:#x}) overlaps section `{}` of `{}` ({:#x}..={:#x})",
                    a.3, out.objects[a.2].file, a.0, a.1, b.3, out.objects[b.2].file, b.0, b.1
                ),
            ));
        }
    }
    let needs_stubs = !s.stubs.is_empty()
        || s.cores
            .iter()
            .any(|c| c.call.as_ref().is_some_and(|c| c.ret.is_none()));
    if needs_stubs {
        let Some(c) = cursor else {
            return Err(Problem::at(
                if s.stubs.is_empty() { "cores" } else { "stubs" },
                "stubs and the return of `call` are placed after the objects: give an object `at`",
            ));
        };
        if let Some((space, va0, pa0)) = &phys {
            out.mappings.push((
                space.clone(),
                mapping(c, pa0 + (c - va0), PAGE, Kind::Text, nx),
            ));
        }
        out.stub_at = Some(c);
    }
    Ok(out)
}

fn mapping(va: u64, pa: u64, len: u64, kind: Kind, nx: bool) -> Mapping {
    let mut flags = vec![PteFlag::P];
    match kind {
        Kind::Text => {}
        Kind::Rodata => flags.extend(nx.then_some(PteFlag::NX)),
        Kind::Data => {
            flags.push(PteFlag::RW);
            flags.extend(nx.then_some(PteFlag::NX));
        }
    }
    Mapping {
        va: Value::Num(va),
        pa: Value::Num(pa),
        len: Some(len),
        flags,
        size: SizeSpec::Size4K,
    }
}

/// The text of the stubs (and the return label), as one AT&T code section.
fn stub_text(s: &Scenario) -> Result<String, Problem> {
    let mut t = String::new();
    for (i, st) in s.stubs.iter().enumerate() {
        let p = format!("stubs[{i}]");
        let given = [st.ret.is_some(), st.stop.is_some(), st.asm.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(Problem::at(
                &p,
                "a stub takes at most one of `ret`, `stop` and `asm`",
            ));
        }
        let ident = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        };
        if !ident(&st.name) {
            return Err(Problem::at(
                format!("{p}.name"),
                format!("`{}` is not a symbol name", st.name),
            ));
        }
        t.push_str(&format!("{}:\n", st.name));
        if let Some(v) = &st.ret {
            let v = match v {
                Value::Num(n) => format!("{n:#x}"),
                Value::Sym(x) => x.clone(),
            };
            t.push_str(&format!("    movabs ${v}, %rax\n    ret\n"));
        } else if let Some(r) = &st.stop {
            if !ident(r) {
                return Err(Problem::at(
                    format!("{p}.stop"),
                    format!("`{r}` is not a name (letters, digits, `_` and `.`)"),
                ));
            }
            t.push_str(&format!("stop.{r}:\n    ud2\n"));
        } else if let Some(a) = &st.asm {
            t.push_str(a);
            t.push('\n');
        } else {
            t.push_str("    ret\n");
        }
    }
    t.push_str(&format!(
        "{RETURN_LABEL}:\n    hlt\n    jmp {RETURN_LABEL}\n"
    ));
    Ok(t)
}

impl Layout {
    /// Whether the scenario has no objects and no stubs.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.stub_at.is_none()
    }

    /// The scenario with the layout's mappings added to their address spaces and
    /// the stubs as one more code section.
    pub fn extend(&self, s: &Scenario) -> Result<Scenario, Problem> {
        let mut s = s.clone();
        for (space, m) in &self.mappings {
            if let Some(sp) = s.address_spaces.get_mut(space) {
                sp.mappings.push(m.clone());
            }
        }
        if let Some(at) = self.stub_at {
            s.code.push(Code {
                at: Value::Num(at),
                syntax: SyntaxSpec::Att,
                asm: Some(stub_text(&s)?),
                hex: None,
                file: None,
            });
        }
        Ok(s)
    }

    /// Adds the objects' defined symbols: globals to `symbols` (each defined
    /// once across objects and the scenario), and globals and named locals (of
    /// functions and data) to `labels` by address. A local whose name nothing
    /// else uses is a symbol too, so `watch` and `expect` can name a `static`.
    pub fn define(
        &self,
        symbols: &mut BTreeMap<String, u64>,
        labels: &mut BTreeMap<u64, String>,
    ) -> Result<(), Problem> {
        let mut locals: BTreeMap<String, Option<u64>> = BTreeMap::new();
        let mut owner: BTreeMap<String, usize> = BTreeMap::new();
        for (i, o) in self.objects.iter().enumerate() {
            let p = format!("objects[{i}]");
            let f = parse(&o.data).map_err(|e| Problem::at(&p, e.to_string()))?;
            for sym in f.symbols() {
                let name = match sym.name() {
                    Ok(n) if !n.is_empty() && !n.starts_with(".L") => n,
                    _ => continue,
                };
                if sym.kind() == object::SymbolKind::Section
                    || sym.kind() == object::SymbolKind::File
                {
                    continue;
                }
                if let SymbolSection::Common = sym.section() {
                    return Err(Problem::at(
                        &p,
                        format!("`{}`: `{name}` is a COMMON symbol, which needs a linker to allocate: compile with -fno-common", o.file),
                    ));
                }
                let Some(addr) = self.symbol_addr(i, &f, &sym) else {
                    continue;
                };
                if sym.is_global() {
                    if let Some(j) = owner.get(name) {
                        return Err(Problem::at(
                            &p,
                            format!(
                                "`{name}` is defined in `{}` and again in `{}`",
                                self.objects[*j].file, o.file
                            ),
                        ));
                    }
                    if symbols.contains_key(name) {
                        return Err(Problem::at(
                            &p,
                            format!("`{name}`, defined in `{}`, clashes with a scenario symbol, data name or address-space value of the same name; rename one", o.file),
                        ));
                    }
                    owner.insert(name.to_string(), i);
                    symbols.insert(name.to_string(), addr);
                    labels.insert(addr, name.to_string());
                } else {
                    labels.entry(addr).or_insert_with(|| name.to_string());
                    locals
                        .entry(name.to_string())
                        .and_modify(|a| {
                            if *a != Some(addr) {
                                *a = None
                            }
                        })
                        .or_insert(Some(addr));
                }
            }
        }
        for (name, addr) in locals {
            if let Some(a) = addr {
                symbols.entry(name).or_insert(a);
            }
        }
        Ok(())
    }

    /// The address of a symbol defined in a loaded section of object `i`.
    fn symbol_addr(
        &self,
        i: usize,
        _f: &ElfFile64<'_>,
        sym: &object::read::elf::ElfSymbol64<'_, '_>,
    ) -> Option<u64> {
        match sym.section() {
            SymbolSection::Section(idx) => self.objects[i]
                .sections
                .iter()
                .find(|p| p.index == idx)
                .map(|p| p.va.wrapping_add(sym.address())),
            SymbolSection::Absolute => Some(sym.address()),
            _ => None,
        }
    }

    /// Applies every relocation of the loaded sections against the objects'
    /// and the scenario's symbols, and writes the sections' bytes through
    /// `write` (linear address, bytes). Undefined symbols left over are one
    /// error naming each.
    pub fn link(
        &self,
        symbols: &BTreeMap<String, u64>,
        mut write: impl FnMut(u64, &[u8]) -> Result<(), String>,
    ) -> Result<(), Problem> {
        let mut unresolved: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut images: Vec<Vec<(u64, Vec<u8>)>> = Vec::new();
        for (i, o) in self.objects.iter().enumerate() {
            let p = format!("objects[{i}]");
            let f = parse(&o.data).map_err(|e| Problem::at(&p, e.to_string()))?;
            let mut image = Vec::new();
            for sec in &o.sections {
                let s = f
                    .section_by_index(sec.index)
                    .map_err(|e| Problem::at(&p, e.to_string()))?;
                let mut bytes = s
                    .data()
                    .map_err(|e| Problem::at(&p, format!("`{}`: {}: {e}", o.file, sec.name)))?
                    .to_vec();
                // NOBITS (.bss) has no file data: zeros.
                bytes.resize(sec.size as usize, 0);
                for (off, r) in s.relocations() {
                    let RelocationFlags::Elf { r_type } = r.flags() else {
                        continue;
                    };
                    let (sname, target) = match r.target() {
                        RelocationTarget::Symbol(si) => {
                            let sym = f
                                .symbol_by_index(si)
                                .map_err(|e| Problem::at(&p, format!("`{}`: {e}", o.file)))?;
                            let name = if sym.kind() == object::SymbolKind::Section {
                                sym.section_index()
                                    .and_then(|x| f.section_by_index(x).ok())
                                    .and_then(|x| x.name().ok().map(str::to_string))
                                    .unwrap_or_default()
                            } else {
                                sym.name().unwrap_or("?").to_string()
                            };
                            let t = if sym.is_undefined() {
                                symbols.get(&name).copied()
                            } else {
                                let a = self.symbol_addr(i, &f, &sym);
                                if a.is_none() {
                                    return Err(Problem::at(
                                        &p,
                                        ObjectError::Symbol(format!(
                                            "`{}`: {}+{off:#x} refers to `{name}` in a section that is not loaded (notes and unwind tables are not)",
                                            o.file, sec.name
                                        ))
                                        .to_string(),
                                    ));
                                }
                                a
                            };
                            (name, t)
                        }
                        RelocationTarget::Absolute => (String::from("*ABS*"), Some(0)),
                        _ => (String::from("?"), Some(0)),
                    };
                    let Some(sv) = target else {
                        unresolved
                            .entry(sname.clone())
                            .or_default()
                            .push(format!("{} {}+{off:#x}", o.file, sec.name));
                        continue;
                    };
                    apply(&mut bytes, sec, off, r_type, sv, r.addend(), &sname).map_err(|e| {
                        Problem::at(format!("{p}.file"), format!("`{}`: {e}", o.file))
                    })?;
                }
                image.push((sec.va, bytes));
            }
            images.push(image);
        }
        if !unresolved.is_empty() {
            let list: Vec<String> = unresolved
                .iter()
                .map(|(n, at)| {
                    format!(
                        "`{n}`{} (used at {})",
                        suggest(n, symbols.keys()),
                        at.join(", ")
                    )
                })
                .collect();
            return Err(Problem::at(
                "objects",
                format!(
                    "{} undefined symbol{}: {}; define {} in the scenario (a label, data name, symbol or stub) or load the object that defines {}",
                    list.len(),
                    if list.len() == 1 { "" } else { "s" },
                    list.join("; "),
                    if list.len() == 1 { "it" } else { "them" },
                    if list.len() == 1 { "it" } else { "them" },
                ),
            ));
        }
        for (i, image) in images.iter().enumerate() {
            for (va, bytes) in image {
                write(*va, bytes).map_err(|e| {
                    Problem::at(
                        format!("objects[{i}]"),
                        format!("`{}`: {e}", self.objects[i].file),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// The psABI name of a relocation type (`R_X86_64_PC32`).
pub fn reloc_name(t: u32) -> String {
    let n = match t {
        elf::R_X86_64_NONE => "R_X86_64_NONE",
        elf::R_X86_64_64 => "R_X86_64_64",
        elf::R_X86_64_PC32 => "R_X86_64_PC32",
        elf::R_X86_64_GOT32 => "R_X86_64_GOT32",
        elf::R_X86_64_PLT32 => "R_X86_64_PLT32",
        elf::R_X86_64_GOTPCREL => "R_X86_64_GOTPCREL",
        elf::R_X86_64_32 => "R_X86_64_32",
        elf::R_X86_64_32S => "R_X86_64_32S",
        elf::R_X86_64_16 => "R_X86_64_16",
        elf::R_X86_64_PC16 => "R_X86_64_PC16",
        elf::R_X86_64_8 => "R_X86_64_8",
        elf::R_X86_64_PC8 => "R_X86_64_PC8",
        elf::R_X86_64_DTPMOD64 => "R_X86_64_DTPMOD64",
        elf::R_X86_64_DTPOFF64 => "R_X86_64_DTPOFF64",
        elf::R_X86_64_TPOFF64 => "R_X86_64_TPOFF64",
        elf::R_X86_64_TLSGD => "R_X86_64_TLSGD",
        elf::R_X86_64_TLSLD => "R_X86_64_TLSLD",
        elf::R_X86_64_DTPOFF32 => "R_X86_64_DTPOFF32",
        elf::R_X86_64_GOTTPOFF => "R_X86_64_GOTTPOFF",
        elf::R_X86_64_TPOFF32 => "R_X86_64_TPOFF32",
        elf::R_X86_64_PC64 => "R_X86_64_PC64",
        elf::R_X86_64_GOTOFF64 => "R_X86_64_GOTOFF64",
        elf::R_X86_64_GOTPC32 => "R_X86_64_GOTPC32",
        elf::R_X86_64_SIZE32 => "R_X86_64_SIZE32",
        elf::R_X86_64_SIZE64 => "R_X86_64_SIZE64",
        elf::R_X86_64_GOTPCRELX => "R_X86_64_GOTPCRELX",
        elf::R_X86_64_REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
        _ => return format!("type {t}"),
    };
    n.to_string()
}

/// Applies one relocation to `bytes` (the section's image at `sec.va`).
fn apply(
    bytes: &mut [u8],
    sec: &Placed,
    off: u64,
    r_type: u32,
    s: u64,
    a: i64,
    sym: &str,
) -> Result<(), ObjectError> {
    let width = match r_type {
        elf::R_X86_64_64 | elf::R_X86_64_PC64 => 8,
        _ => 4,
    };
    let unsupported = || ObjectError::UnsupportedReloc {
        section: sec.name.clone(),
        offset: off,
        kind: reloc_name(r_type),
        symbol: sym.to_string(),
    };
    let o = usize::try_from(off).map_err(|_| unsupported())?;
    if o.checked_add(width).is_none_or(|e| e > bytes.len()) {
        return Err(ObjectError::Malformed(format!(
            "relocation at {}+{off:#x} lies outside the section ({} bytes)",
            sec.name,
            bytes.len()
        )));
    }
    let p = sec.va.wrapping_add(off);
    let sa = i128::from(s) + i128::from(a);
    let pcrel = sa - i128::from(p);
    let overflow = |kind: &'static str, value: i128| ObjectError::Overflow {
        section: sec.name.clone(),
        offset: off,
        kind,
        symbol: sym.to_string(),
        value,
    };
    // Kernel addresses are u64 values but sign-extended in 32-bit fields.
    let signed = |v: i128| -> i128 {
        let v = (v as u128 as u64) as i64;
        i128::from(v)
    };
    let fits_s32 = |v: i128| v >= i128::from(i32::MIN) && v <= i128::from(i32::MAX);
    match r_type {
        elf::R_X86_64_64 => bytes[o..o + 8].copy_from_slice(&(sa as u64).to_le_bytes()),
        elf::R_X86_64_PC64 => bytes[o..o + 8].copy_from_slice(&(pcrel as u64).to_le_bytes()),
        elf::R_X86_64_32 => {
            let v = sa as u128 as u64;
            if v > u64::from(u32::MAX) {
                return Err(overflow("R_X86_64_32", i128::from(v)));
            }
            bytes[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes());
        }
        elf::R_X86_64_32S => {
            let v = signed(sa);
            if !fits_s32(v) {
                return Err(overflow("R_X86_64_32S", sa));
            }
            bytes[o..o + 4].copy_from_slice(&(v as i32).to_le_bytes());
        }
        elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 => {
            let v = signed(pcrel);
            if !fits_s32(v) {
                let k = if r_type == elf::R_X86_64_PC32 {
                    "R_X86_64_PC32"
                } else {
                    "R_X86_64_PLT32"
                };
                return Err(overflow(k, v));
            }
            bytes[o..o + 4].copy_from_slice(&(v as i32).to_le_bytes());
        }
        elf::R_X86_64_GOTPCRELX | elf::R_X86_64_REX_GOTPCRELX => {
            // No GOT: relax the instruction to address the symbol directly
            // (psABI B.2): `mov foo@GOTPCREL(%rip), %reg` becomes `lea foo(%rip),
            // %reg`, `call *foo@GOTPCREL(%rip)` becomes `addr32 call foo` and
            // `jmp *foo@GOTPCREL(%rip)` becomes `jmp foo; nop`.
            if o < 2 {
                return Err(unsupported());
            }
            let v = signed(pcrel);
            match (bytes[o - 2], bytes[o - 1]) {
                (0x8b, modrm) if modrm & 0xc7 == 0x05 => {
                    bytes[o - 2] = 0x8d;
                    if !fits_s32(v) {
                        return Err(overflow("R_X86_64_GOTPCRELX", v));
                    }
                    bytes[o..o + 4].copy_from_slice(&(v as i32).to_le_bytes());
                }
                (0xff, 0x15) => {
                    // The call is one byte shorter than the indirect one: the
                    // displacement is relative to the same end, so A stays.
                    bytes[o - 2] = 0x67;
                    bytes[o - 1] = 0xe8;
                    if !fits_s32(v) {
                        return Err(overflow("R_X86_64_GOTPCRELX", v));
                    }
                    bytes[o..o + 4].copy_from_slice(&(v as i32).to_le_bytes());
                }
                (0xff, 0x25) => {
                    // jmp rel32 is at o-1; its displacement ends one byte
                    // earlier than the original's, where the nop goes.
                    let v = v + 1;
                    if !fits_s32(v) {
                        return Err(overflow("R_X86_64_GOTPCRELX", v));
                    }
                    bytes[o - 2] = 0xe9;
                    bytes[o - 1..o + 3].copy_from_slice(&(v as i32).to_le_bytes());
                    bytes[o + 3] = 0x90;
                }
                _ => return Err(unsupported()),
            }
        }
        _ => return Err(unsupported()),
    }
    Ok(())
}

/// Source lines of loaded code: start address → (end address, `file:line`).
pub type LineMap = BTreeMap<u64, (u64, String)>;

impl Layout {
    /// The C (or assembler) source line of every loaded instruction whose
    /// object carries DWARF line information (`-g`), from its `.debug_line`
    /// program (DWARF 5 section 6.2, DWARF 4 too). The debug sections of a
    /// relocatable object still hold relocations (the sequences' start
    /// addresses, the file-name string offsets), so they are applied to a copy
    /// first: a loaded section's symbol is its address, any other section's
    /// is 0 (offsets into debug sections are section-relative). An object
    /// without line information, or with one this reader cannot parse,
    /// contributes nothing: reports then name code by symbol and offset.
    pub fn lines(&self) -> LineMap {
        let mut out = LineMap::new();
        for (i, o) in self.objects.iter().enumerate() {
            if let Some(m) = self.object_lines(i, o) {
                out.extend(m);
            }
        }
        out
    }

    fn object_lines(&self, i: usize, o: &Loaded) -> Option<LineMap> {
        let f = parse(&o.data).ok()?;
        let section = |name: &str| -> Option<Vec<u8>> {
            let sec = f.section_by_name(name)?;
            let mut bytes = sec.data().ok()?.to_vec();
            for (off, r) in sec.relocations() {
                let RelocationFlags::Elf { r_type } = r.flags() else {
                    continue;
                };
                let RelocationTarget::Symbol(si) = r.target() else {
                    continue;
                };
                let sym = f.symbol_by_index(si).ok()?;
                let s = self.symbol_addr(i, &f, &sym).unwrap_or(0);
                let v = s.wrapping_add(r.addend() as u64);
                let at = usize::try_from(off).ok()?;
                match r_type {
                    elf::R_X86_64_64 => {
                        bytes.get_mut(at..at + 8)?.copy_from_slice(&v.to_le_bytes())
                    }
                    elf::R_X86_64_32 => bytes
                        .get_mut(at..at + 4)?
                        .copy_from_slice(&(v as u32).to_le_bytes()),
                    _ => {}
                }
            }
            Some(bytes)
        };
        let line = section(".debug_line")?;
        let line_str = section(".debug_line_str").unwrap_or_default();
        let strs = section(".debug_str").unwrap_or_default();
        let le = gimli::LittleEndian;
        let debug_line = gimli::DebugLine::new(&line, le);
        let debug_line_str = gimli::DebugLineStr::new(&line_str, le);
        let debug_str = gimli::DebugStr::new(&strs, le);
        let name_of = |v: gimli::AttributeValue<gimli::EndianSlice<'_, gimli::LittleEndian>>| {
            let s = match v {
                gimli::AttributeValue::String(s) => Some(s),
                gimli::AttributeValue::DebugLineStrRef(o) => debug_line_str.get_str(o).ok(),
                gimli::AttributeValue::DebugStrRef(o) => debug_str.get_str(o).ok(),
                _ => None,
            }?;
            Some(s.to_string_lossy().into_owned())
        };
        let mut out = LineMap::new();
        let mut offset = 0usize;
        while offset < line.len() {
            let program = debug_line
                .program(gimli::DebugLineOffset(offset), 8, None, None)
                .ok()?;
            let h = program.header();
            let next = offset
                .checked_add(h.encoding().format.initial_length_size() as usize)?
                .checked_add(h.unit_length())?;
            let mut rows = program.rows();
            let mut prev: Option<(u64, String)> = None;
            while let Ok(Some((header, row))) = rows.next_row() {
                let addr = row.address();
                if let Some((a, text)) = prev.take() {
                    if addr > a {
                        out.insert(a, (addr, text));
                    } else if !row.end_sequence() {
                        // Several rows at one address: the last one describes it.
                    }
                }
                if row.end_sequence() {
                    continue;
                }
                let file = row
                    .file(header)
                    .and_then(|fe| name_of(fe.path_name()))
                    .unwrap_or_else(|| "?".into());
                let file = file.rsplit('/').next().unwrap_or(&file).to_string();
                let l = row.line().map_or(0, |l| l.get());
                prev = Some((addr, format!("{file}:{l}")));
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Some(out)
    }
}

/// The `file:line` of `addr` in `lines`, if it lies in a described range.
pub fn line_of(lines: &LineMap, addr: u64) -> Option<&str> {
    let (_, (end, text)) = lines.range(..=addr).next_back()?;
    (addr < *end).then_some(text.as_str())
}
