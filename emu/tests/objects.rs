//! ELF relocatable objects in scenarios: C compiled by the system gcc during the
//! test (with the kernel flags of docs/objects.md), loaded, relocated, linked
//! with scenario assembly and stubs, entered with System V arguments and run.
//! gcc is required: without it these tests fail, they never skip.

use emu::scenario::{prepare, run, RunReport};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flags docs/objects.md lists as supported.
const KERNEL_FLAGS: &[&str] = &[
    "-mcmodel=kernel",
    "-fno-pic",
    "-mno-red-zone",
    "-fno-stack-protector",
    "-mgeneral-regs-only",
    "-fno-asynchronous-unwind-tables",
    "-ffreestanding",
    "-fno-common",
];

fn src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// A fresh directory under the target directory, named for the test.
fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("objects-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
    d
}

/// `gcc -c` of `source` into `out` with the kernel flags and `extra`.
fn gcc(source: &Path, out: &Path, extra: &[&str]) {
    let o = Command::new("gcc")
        .args(KERNEL_FLAGS)
        .args(extra)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run gcc ({e}): these tests need the system C compiler (apt-get install gcc)")
        });
    assert!(
        o.status.success(),
        "gcc failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn run_file(path: &Path) -> RunReport {
    let (s, _, plan) = prepare(path).unwrap_or_else(|d| panic!("{d}"));
    let r = run(&plan, false);
    let ok = r.passed(emu::scenario::expects_violations(&s));
    assert!(ok, "{}", r.to_text(false));
    r
}

/// The proof program's scenario: two cores enter `proof_main(10, 20)` with
/// their own per-CPU area in %gs and run one after the other.
fn proof_scenario(object: &str) -> String {
    format!(
        r#"Scenario(
    name: "c-proof",
    machine: (cores: 2, features: [Pge, Nx]),
    address_spaces: {{
        "k": (mappings: [
            (va: 0xffffffff80400000, pa: 0x400000, flags: [P, RW, NX]),
            (va: 0xffffffff80500000, pa: 0x500000, len: 0x4000, flags: [P, RW, NX]),
        ]),
    }},
    objects: [
        (file: "{object}", at: 0xffffffff80200000, pa: 0x200000,
         sections: {{ ".data.percpu": 0xffffffff80400000 }}),
    ],
    stubs: [ (name: "cpu_pause_count", ret: 2) ],
    data: [ (name: "scenario_value", at: 0xffffffff80400800, quad: [40]) ],
    cores: [
        (call: (func: "proof_main", args: [10, 20]), rsp: 0xffffffff80502000, cr3: "k", gs_base: "pcpu_area"),
        (call: (func: "proof_main", args: [10, 20]), rsp: 0xffffffff80504000, cr3: "k", gs_base: "pcpu_area+24"),
    ],
    schedule: [ Run(core: 0, until: Halt), Run(core: 1, until: Halt) ],
    expect: [
        Halted(0), Halted(1),
        Reg(core: 0, reg: "rax", value: 30),
        Reg(core: 1, reg: "rax", value: 31),
        Mem(at: "pm_active", space: "k", value: 0xe3),
        Mem(at: "counter", space: "k", value: 110),
        Mem(at: "lockword", space: "k", value: 1),
        Mem(at: "owner", space: "k", value: 0),
        Mem(at: "results+0x00", space: "k", value: 0),
        Mem(at: "results+0x08", space: "k", value: 100),
        Mem(at: "results+0x10", space: "k", value: 0),
        Mem(at: "results+0x18", space: "k", value: 283),
        Mem(at: "results+0x20", space: "k", value: 2934),
        Mem(at: "results+0x28", space: "k", value: 0xffff800012340000),
        Mem(at: "results+0x30", space: "k", value: 42),
        Mem(at: "results+0x38", space: "k", value: 1),
        Mem(at: "results+0x40", space: "k", value: 1),
        Mem(at: "results+0x48", space: "k", value: 105),
        Mem(at: "results+0x50", space: "k", value: 1),
        Mem(at: "results+0x58", space: "k", value: 283),
        Mem(at: "results+0x60", space: "k", value: 2934),
        Mem(at: "results+0x68", space: "k", value: 0xffff800012340001),
        Mem(at: "results+0x70", space: "k", value: 42),
        Mem(at: "results+0x78", space: "k", value: 1),
        Mem(at: "pcpu_area+0x10", space: "k", value: 1),
        Mem(at: "pcpu_area+0x28", space: "k", value: 1),
    ],
)
"#
    )
}

/// `objdump -d` of an object.
fn disassembly(obj: &Path) -> String {
    let o = Command::new("objdump")
        .arg("-d")
        .arg(obj)
        .output()
        .unwrap_or_else(|e| panic!("cannot run objdump ({e}): install binutils"));
    assert!(o.status.success(), "objdump failed");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn proof_at(opt: &str) {
    let d = temp_dir(&format!("proof{opt}"));
    gcc(&src("proof.c"), &d.join("proof.o"), &[opt]);
    // The program proves what it claims only if gcc emitted these.
    let dis = disassembly(&d.join("proof.o"));
    for insn in [
        "lock cmpxchg",
        "lock xadd",
        "lock or",
        "lock and",
        "invlpg",
        "%cr3",
        "wrmsr",
        "call   *",
        "jmp    *",
        "%gs:",
    ] {
        assert!(dis.contains(insn), "{opt}: gcc emitted no `{insn}`");
    }
    std::fs::write(d.join("proof.ron"), proof_scenario("proof.o")).unwrap();
    run_file(&d.join("proof.ron"));
}

#[test]
fn proof_program_runs_at_o0() {
    proof_at("-O0");
}

#[test]
fn proof_program_runs_at_o2() {
    proof_at("-O2");
}

/// One line of `readelf -r -W`: section, offset, type, symbol, addend.
#[derive(Debug)]
struct Rela {
    section: String,
    offset: u64,
    kind: String,
    symbol: String,
    addend: i64,
}

fn readelf_relocs(obj: &Path) -> Vec<Rela> {
    let o = Command::new("readelf")
        .args(["-r", "-W"])
        .arg(obj)
        .output()
        .unwrap_or_else(|e| panic!("cannot run readelf ({e}): install binutils"));
    assert!(o.status.success(), "readelf failed");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut out = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Relocation section '.rela") {
            section = rest.split('\'').next().unwrap_or("").to_string();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 || !f[2].starts_with("R_X86_64_") {
            continue;
        }
        let addend = i64::from_str_radix(f[6], 16).expect("addend");
        out.push(Rela {
            section: section.clone(),
            offset: u64::from_str_radix(f[0], 16).expect("offset"),
            kind: f[2].to_string(),
            symbol: f[4].to_string(),
            addend: if f[5] == "-" { -addend } else { addend },
        });
    }
    out
}

const RELOC_BASE: u64 = 0xffffffff80200000;
const RELOC_PA: u64 = 0x200000;

fn reloc_scenario(object: &str) -> String {
    format!(
        r#"Scenario(
    name: "relocs",
    machine: (cores: 1),
    symbols: {{ "ext_sym": 0xffffffff80345678, "low_sym": 0x12345 }},
    address_spaces: {{
        "k": (mappings: [ (va: 0xffffffff80500000, pa: 0x500000, flags: [P, RW, NX]) ]),
    }},
    objects: [ (file: "{object}", at: {RELOC_BASE:#x}, pa: {RELOC_PA:#x}) ],
    cores: [ (rip: "reloc_text", rsp: 0xffffffff80501000, cr3: "k") ],
    schedule: [ Run(core: 0, until: Halt) ],
    expect: [
        Halted(0),
        Reg(core: 0, reg: "rax", value: "far_data"),
        Reg(core: 0, reg: "rbx", value: "far_data+8"),
        Reg(core: 0, reg: "rcx", value: "ext_sym"),
        Reg(core: 0, reg: "rdx", value: "low_sym"),
        Reg(core: 0, reg: "rsi", value: 0x5a5a),
        Reg(core: 0, reg: "r8", value: 2),
    ],
)
"#
    )
}

/// Every relocation `readelf -r` lists, checked in the loaded image against
/// the psABI formula computed here from readelf's own numbers (S from the
/// scenario's symbols, or the section's first label for section symbols), and
/// the relaxed GOTPCRELX instructions checked byte by byte; then the code runs.
#[test]
fn relocations_match_readelf() {
    let d = temp_dir("relocs");
    let obj = d.join("relocs.o");
    gcc(&src("relocs.S"), &obj, &[]);
    let path = d.join("relocs.ron");
    std::fs::write(&path, reloc_scenario("relocs.o")).unwrap();
    let (s, _) = emu::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let b = emu::scenario::build(&s, &d).unwrap_or_else(|e| panic!("{e:?}"));
    let sym = |n: &str| -> u64 {
        let n = match n {
            ".text" => "reloc_text",
            ".data" => "far_data",
            n => n,
        };
        *b.symbols
            .get(n)
            .unwrap_or_else(|| panic!("no symbol `{n}`"))
    };
    let mem = &b.machine.mem;
    let read = |va: u64, n: usize| -> Vec<u8> {
        let mut buf = vec![0u8; n];
        mem.read(mmu::PhysAddr(va - RELOC_BASE + RELOC_PA), &mut buf)
            .expect("read");
        buf
    };
    let le = |b: &[u8]| -> u64 {
        let mut x = [0u8; 8];
        x[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(x)
    };
    let relocs = readelf_relocs(&obj);
    let mut kinds: Vec<&str> = relocs.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "R_X86_64_32",
            "R_X86_64_32S",
            "R_X86_64_64",
            "R_X86_64_GOTPCRELX",
            "R_X86_64_PC32",
            "R_X86_64_PC64",
            "R_X86_64_PLT32",
            "R_X86_64_REX_GOTPCRELX"
        ]
    );
    for r in &relocs {
        let p = sym(&r.section) + r.offset;
        let sa = sym(&r.symbol).wrapping_add(r.addend as u64);
        let pc = sa.wrapping_sub(p);
        let what = format!("{r:?} at {p:#x}");
        match r.kind.as_str() {
            "R_X86_64_64" => assert_eq!(le(&read(p, 8)), sa, "{what}"),
            "R_X86_64_PC64" => assert_eq!(le(&read(p, 8)), pc, "{what}"),
            "R_X86_64_32" => assert_eq!(le(&read(p, 4)), sa, "{what}"),
            "R_X86_64_32S" => assert_eq!(le(&read(p, 4)) as u32 as i32 as i64 as u64, sa, "{what}"),
            "R_X86_64_PC32" | "R_X86_64_PLT32" => {
                assert_eq!(le(&read(p, 4)) as u32 as i32 as i64 as u64, pc, "{what}")
            }
            "R_X86_64_REX_GOTPCRELX" => {
                // mov disp(%rip), %reg -> lea disp(%rip), %reg
                assert_eq!(read(p - 2, 1), [0x8d], "{what}");
                assert_eq!(le(&read(p, 4)) as u32 as i32 as i64 as u64, pc, "{what}");
            }
            "R_X86_64_GOTPCRELX" => {
                let op = read(p - 2, 2);
                if op == [0x67, 0xe8] {
                    assert_eq!(le(&read(p, 4)) as u32 as i32 as i64 as u64, pc, "{what}");
                } else {
                    assert_eq!(op[0], 0xe9, "{what}: neither relaxed call nor jmp");
                    let rel = le(&read(p - 1, 4)) as u32 as i32 as i64 as u64;
                    assert_eq!(rel, pc.wrapping_add(1), "{what}");
                    assert_eq!(read(p + 3, 1), [0x90], "{what}");
                }
            }
            k => panic!("unexpected relocation type {k}"),
        }
    }
    run_file(&path);
}

const STUBS_C: &str = r#"
extern void cpu_pause(void);
extern long asm_double(long);
extern void panic(const char *);
long spins;
long waiter(long n)
{
	for (long i = 0; i < n; i++) {
		cpu_pause();
		spins++;
	}
	long v = asm_double(n);
	if (v != 2 * n)
		panic("asm_double");
	return v;
}
void crash(void) { panic("boom"); }
"#;

const STUBS_RON: &str = r#"Scenario(
    name: "stubs",
    machine: (cores: 2),
    address_spaces: {
        "k": (mappings: [
            (va: 0xffffffff80000000, pa: 0x100000, flags: [P]),
            (va: 0xffffffff80500000, pa: 0x500000, len: 0x2000, flags: [P, RW, NX]),
        ]),
    },
    code: [ (at: 0xffffffff80000000, asm: "asm_double:\n lea (%rdi,%rdi), %rax\n ret\ndone:\n hlt\n") ],
    objects: [ (file: "stubs.o", at: 0xffffffff80200000, pa: 0x200000) ],
    stubs: [
        (name: "cpu_pause", asm: "pause\n ret"),
        (name: "panic", stop: "panic"),
    ],
    cores: [
        (call: (func: "waiter", args: [3], ret: "done"), rsp: 0xffffffff80501000, cr3: "k"),
        (call: (func: "crash"), rsp: 0xffffffff80502000, cr3: "k"),
    ],
    schedule: [ Run(core: 0, until: Halt), Run(core: 1, until: Halt) ],
    expect: [
        Halted(0),
        Reg(core: 0, reg: "rax", value: 6),
        Reg(core: 0, reg: "rip", value: "done+1"),
        Mem(at: "spins", space: "k", value: 3),
        Stopped(core: 1, reason: Exception),
        Reg(core: 1, reg: "rip", value: "stop.panic"),
    ],
)
"#;

/// C calls scenario assembly and stubs; a stub that stops names its reason,
/// a core returns from C to a scenario label, and every call into a stub shows
/// in the recorded events under the stub's name.
#[test]
fn stubs_link_with_c_and_show_in_traces() {
    let d = temp_dir("stubs");
    std::fs::write(d.join("stubs.c"), STUBS_C).unwrap();
    for opt in ["-O0", "-O2"] {
        gcc(&d.join("stubs.c"), &d.join("stubs.o"), &[opt]);
        std::fs::write(d.join("stubs.ron"), STUBS_RON).unwrap();
        let (s, _, plan) = prepare(&d.join("stubs.ron")).unwrap_or_else(|e| panic!("{e}"));
        let r = run(&plan, true);
        assert!(
            r.passed(emu::scenario::expects_violations(&s)),
            "{opt}: {}",
            r.to_text(false)
        );
        let pause = plan.built().symbols["cpu_pause"];
        assert_eq!(r.name_of(pause).as_deref(), Some("stub:cpu_pause"));
        let calls = r
            .events
            .iter()
            .filter(
                |e| matches!(e.kind, emu::events::EventKind::Retired { rip, .. } if rip == pause),
            )
            .count();
        assert_eq!(calls, 3, "{opt}: calls into the cpu_pause stub");
    }
}

/// With `-g`, reports name object code by C `file:line`, and the line of every
/// instruction of a function agrees with binutils' addr2line on the object.
#[test]
fn c_source_lines_agree_with_addr2line() {
    let d = temp_dir("lines");
    std::fs::write(d.join("stubs.c"), STUBS_C).unwrap();
    for opt in ["-O0", "-O2"] {
        gcc(&d.join("stubs.c"), &d.join("stubs.o"), &[opt, "-g"]);
        std::fs::write(d.join("stubs.ron"), STUBS_RON).unwrap();
        let (s, _, plan) = prepare(&d.join("stubs.ron")).unwrap_or_else(|e| panic!("{e}"));
        let r = run(&plan, false);
        assert!(r.passed(emu::scenario::expects_violations(&s)));
        let b = plan.built();
        let text = b.symbols["waiter"];
        // .text is the object's first section, at `at`.
        assert_eq!(
            text, 0xffffffff80200000,
            "{opt}: waiter is not first in .text"
        );
        let offsets: Vec<u64> = (0..0x40).collect();
        let o = Command::new("addr2line")
            .arg("-e")
            .arg(d.join("stubs.o"))
            .args(offsets.iter().map(|o| format!("{o:#x}")))
            .output()
            .unwrap_or_else(|e| panic!("cannot run addr2line ({e}): install binutils"));
        let theirs = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut compared = 0;
        for (off, line) in offsets.iter().zip(theirs.lines()) {
            // addr2line prints `/path/stubs.c:12` or `... (discriminator N)`.
            let want = line.split_whitespace().next().unwrap_or("");
            let want = want.rsplit('/').next().unwrap_or(want);
            if want.ends_with(":?") || want.starts_with("??") {
                continue;
            }
            let ours = emu::scenario::object::line_of(&b.lines, text + off);
            assert_eq!(ours, Some(want), "{opt}: waiter+{off:#x}");
            compared += 1;
        }
        assert!(compared > 16, "{opt}: only {compared} addresses compared");
        let name = r.name_of(text + 4).unwrap_or_default();
        assert!(name.starts_with("waiter+0x4 stubs.c:"), "{opt}: {name}");
    }
}
