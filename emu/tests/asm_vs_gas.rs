//! Differential test against GNU as: every corpus line, and a few whole programs, must
//! assemble to the same bytes as `as --64`, or to bytes that decode to the same
//! instructions where `as` picked another valid encoding. GNU as and objcopy are required:
//! if they are missing the test fails rather than skipping, so CI cannot silently lose it.

use emu::asm::{assemble, AsmOptions, Syntax};
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, OpKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Scenario symbols the corpus uses; GNU as gets them as `.set` lines.
fn symbols() -> BTreeMap<String, u64> {
    [
        ("ksym", 0x1000u64),
        ("big", 0x1_2345_6789),
        ("percpu_off", 0x18),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asm")
}

fn tool(name: &str) -> PathBuf {
    let p = PathBuf::from("/usr/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: the assembler differential test needs GNU binutils (as, objcopy)",
        p.display()
    );
    p
}

/// Runs GNU as on `src` and returns the named section's bytes.
fn gas(tag: &str, src: &str, sections: &[&str]) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("asm_vs_gas");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let s = dir.join(format!("{tag}.s"));
    let o = dir.join(format!("{tag}.o"));
    std::fs::write(&s, src).expect("write .s");
    let out = Command::new(tool("as"))
        .arg("--64")
        .arg("-o")
        .arg(&o)
        .arg(&s)
        .output();
    let out = out.unwrap_or_else(|e| panic!("cannot run GNU as: {e}"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "GNU as rejected or warned about {tag}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sections
        .iter()
        .map(|sec| {
            let bin = dir.join(format!("{tag}{sec}.bin"));
            let st = Command::new(tool("objcopy"))
                .args(["-O", "binary", &format!("--only-section={sec}")])
                .arg(&o)
                .arg(&bin)
                .status()
                .unwrap_or_else(|e| panic!("cannot run objcopy: {e}"));
            assert!(st.success(), "objcopy failed for {tag}");
            std::fs::read(&bin).unwrap_or_default()
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn decode(bytes: &[u8], ip: u64) -> Vec<Instruction> {
    Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

fn text(ins: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    f.options_mut().set_show_branch_size(false);
    f.options_mut().set_rip_relative_addresses(false);
    let mut s = String::new();
    f.format(ins, &mut s);
    s
}

fn is_branch(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::NearBranch64)
}

/// Same instruction: same `Code` (short and near branches count as the same) and the same
/// operands as formatted text.
fn same_instruction(a: &Instruction, b: &Instruction) -> bool {
    if is_branch(a) && is_branch(b) {
        return a.code().as_near_branch() == b.code().as_near_branch()
            && a.near_branch_target() == b.near_branch_target();
    }
    a.code() == b.code() && text(a) == text(b) && a.len() > 0 && !a.is_invalid()
}

fn equivalent(ours: &[u8], theirs: &[u8], ip: u64) -> Result<(), String> {
    let a = decode(ours, ip);
    let b = decode(theirs, ip);
    let show = |v: &[Instruction]| v.iter().map(text).collect::<Vec<_>>().join("; ");
    if a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| same_instruction(x, y)) {
        Ok(())
    } else {
        Err(format!(
            "ours decodes to `{}`, as's to `{}`",
            show(&a),
            show(&b)
        ))
    }
}

/// Assembles a corpus file line by line against GNU as. Each line gets a label in front so
/// both assemblers report where it starts; GNU as writes the line sizes into a side section.
fn corpus(file: &str, syntax: Syntax) -> (usize, usize) {
    let path = data_dir().join(file);
    let src = std::fs::read_to_string(&path).expect("read corpus");
    let lines: Vec<&str> = src.lines().collect();
    let mut wrapped = String::new();
    for (i, l) in lines.iter().enumerate() {
        wrapped.push_str(&format!(".Lline_{i}:\n{l}\n"));
    }
    wrapped.push_str(&format!(".Lline_{}:\n", lines.len()));
    let mut gas_src = String::new();
    if syntax == Syntax::Intel {
        gas_src.push_str(".intel_syntax noprefix\n");
    }
    for (k, v) in symbols() {
        gas_src.push_str(&format!(".set {k}, {v:#x}\n"));
    }
    gas_src.push_str(&wrapped);
    gas_src.push_str(".section .lines,\"a\"\n");
    for i in 0..lines.len() {
        gas_src.push_str(&format!(".long .Lline_{} - .Lline_{i}\n", i + 1));
    }
    let out = gas(file, &gas_src, &[".text", ".lines"]);
    let (text_bytes, sizes) = (&out[0], &out[1]);

    let syms = symbols();
    let ours = assemble(
        &wrapped,
        &AsmOptions {
            syntax,
            base: 0,
            symbols: &syms,
        },
    )
    .unwrap_or_else(|e| {
        let line = (e.line as usize).div_ceil(2);
        panic!(
            "{file}:{line}: emu::asm failed: {e} in `{}`",
            lines.get(line - 1).unwrap_or(&"")
        )
    });
    let (mut equal, mut equiv, mut failures) = (0, 0, Vec::new());
    let mut gas_off = 0usize;
    for (i, line) in lines.iter().enumerate() {
        let len = u32::from_le_bytes(sizes[i * 4..i * 4 + 4].try_into().expect("4 bytes")) as usize;
        let theirs = &text_bytes[gas_off..gas_off + len];
        let start = ours.labels[&format!(".Lline_{i}")] as usize;
        let end = ours.labels[&format!(".Lline_{}", i + 1)] as usize;
        let mine = &ours.bytes[start..end];
        if mine == theirs {
            if !mine.is_empty() {
                equal += 1;
            }
        } else if start != gas_off {
            failures.push(format!(
                "{file}:{}: `{line}` starts at {start:#x} in ours but {gas_off:#x} in as",
                i + 1
            ));
        } else {
            match equivalent(mine, theirs, start as u64) {
                Ok(()) => {
                    equiv += 1;
                    println!(
                        "{file}:{}: equivalent: `{line}`: ours [{}] vs as [{}]",
                        i + 1,
                        hex(mine),
                        hex(theirs)
                    );
                }
                Err(why) => failures.push(format!(
                    "{file}:{}: `{line}`: ours [{}] vs as [{}]: {why}",
                    i + 1,
                    hex(mine),
                    hex(theirs)
                )),
            }
        }
        gas_off += len;
    }
    println!("{file}: {equal} lines byte-identical to GNU as, {equiv} equivalent");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (equal, equiv)
}

#[test]
fn att_corpus_matches_gas() {
    let (equal, equiv) = corpus("att.s", Syntax::Att);
    assert!(equal + equiv >= 300);
}

#[test]
fn intel_corpus_matches_gas() {
    let (equal, equiv) = corpus("intel.s", Syntax::Intel);
    assert!(equal + equiv >= 150);
}

/// Whole programs with labels: branch sizes may differ, so instructions are compared by
/// decoding and branch targets by which instruction they land on.
fn program(file: &str) {
    let path = data_dir().join("programs").join(file);
    let src = std::fs::read_to_string(&path).expect("read program");
    let syms = symbols();
    let ours = assemble(
        &src,
        &AsmOptions {
            syntax: Syntax::Att,
            base: 0,
            symbols: &syms,
        },
    )
    .unwrap_or_else(|e| panic!("{file}:{e}"));
    let mut gas_src = String::new();
    for (k, v) in &syms {
        gas_src.push_str(&format!(".set {k}, {v:#x}\n"));
    }
    gas_src.push_str(&src);
    let theirs = gas(file, &gas_src, &[".text"]).remove(0);
    if ours.bytes == theirs {
        println!("{file}: byte-identical ({} bytes)", theirs.len());
        return;
    }
    let a = decode(&ours.bytes, 0);
    let b = decode(&theirs, 0);
    assert_eq!(a.len(), b.len(), "{file}: instruction counts differ");
    let index = |v: &[Instruction]| -> BTreeMap<u64, usize> {
        v.iter().enumerate().map(|(i, x)| (x.ip(), i)).collect()
    };
    let (ia, ib) = (index(&a), index(&b));
    for (n, (x, y)) in a.iter().zip(&b).enumerate() {
        let ok = if is_branch(x) && is_branch(y) {
            x.code().as_near_branch() == y.code().as_near_branch()
                && ia.get(&x.near_branch_target()) == ib.get(&y.near_branch_target())
        } else if x.is_ip_rel_memory_operand() && y.is_ip_rel_memory_operand() {
            x.code() == y.code()
                && ia.get(&x.ip_rel_memory_address()) == ib.get(&y.ip_rel_memory_address())
        } else {
            x.code() == y.code() && text(x) == text(y)
        };
        assert!(
            ok,
            "{file}: instruction {n} differs: ours `{}`, as `{}`",
            text(x),
            text(y)
        );
    }
    println!(
        "{file}: equivalent ({} instructions, branch sizes differ)",
        a.len()
    );
}

#[test]
fn programs_match_gas() {
    let dir = data_dir().join("programs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("programs dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".s"))
        .collect();
    files.sort();
    assert!(files.len() >= 3);
    for f in &files {
        program(f);
    }
}
