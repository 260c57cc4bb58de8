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
