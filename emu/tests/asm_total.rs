//! `assemble` is total: whatever the input, it returns `Ok` or `Err`, never panics (the
//! scenario layer feeds it user text). Random strings plus "token soups" that look enough
//! like assembly to get past the lexer and into operand matching, layout and encoding.

use emu::asm::{assemble, AsmOptions, Syntax};
use proptest::prelude::*;
use std::collections::BTreeMap;

const WORDS: &[&str] = &[
    "mov",
    "movq",
    "movl",
    "movb",
    "movabs",
    "movzbl",
    "movslq",
    "lea",
    "add",
    "addq",
    "sub",
    "cmp",
    "test",
    "xchg",
    "xadd",
    "cmpxchg",
    "cmpxchg16b",
    "lock",
    "rep",
    "repne",
    "inc",
    "incq",
    "shl",
    "shld",
    "imul",
    "imulq",
    "div",
    "bt",
    "bts",
    "bswap",
    "sete",
    "cmovne",
    "jmp",
    "jne",
    "jz",
    "call",
    "ret",
    "push",
    "pushq",
    "pop",
    "pushfq",
    "leave",
    "cltq",
    "nop",
    "nopl",
    "movsb",
    "stosq",
    "cmpsb",
    "int",
    "int3",
    "invlpg",
    "invpcid",
    "lidt",
    "mov",
    "qword",
    "ptr",
    "byte",
    "dword",
    "offset",
    "rax",
    "eax",
    "al",
    "ah",
    "r8",
    "r8b",
    "rsp",
    "rip",
    "cr3",
    "gs",
    "fs",
    "%rax",
    "%eax",
    "%al",
    "%r12",
    "%rip",
    "%gs",
    "%cr0",
    "%cl",
    "%dx",
    ".byte",
    ".quad",
    ".long",
    ".align",
    ".p2align",
    ".set",
    ".zero",
    ".ascii",
    ".intel_syntax",
    "noprefix",
    ".att_syntax",
    ".globl",
    ".text",
    ".data",
    "lbl",
    "lbl:",
    "1:",
    "1b",
    "1f",
    "ksym",
    "$",
    "$1",
    "$-1",
    "$0x7fffffff",
    "$0xffffffffffffffff",
    "0",
    "8",
    "-8",
    "0x1000",
    "0x7fffffffffff",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "+",
    "-",
    "*",
    "/",
    "<<",
    ">>",
    "|",
    "&",
    "^",
    "~",
    "!",
    "=",
    ";",
    "#",
    "\n",
    "\"s\"",
    "'a",
    ".",
    "%",
    "2",
    "4",
    "16",
    "(%rax)",
    "8(%rsp,%rcx,8)",
    "[rax+rbx*4+8]",
    "/*",
    "*/",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..40).prop_map(|w| w.join(" "))
}

const MNEMONICS: &[&str] = &[
    "mov",
    "movq",
    "movabsq",
    "movzbl",
    "movsbq",
    "movslq",
    "lea",
    "addq",
    "adc",
    "sbbl",
    "and",
    "orb",
    "xor",
    "cmpw",
    "test",
    "xchg",
    "xadd",
    "lock cmpxchgq",
    "cmpxchg8b",
    "inc",
    "negq",
    "mul",
    "imul",
    "idivl",
    "shl",
    "sarq",
    "rcr",
    "shld",
    "shrd",
    "bt",
    "btsq",
    "bsf",
    "popcnt",
    "bswap",
    "setne",
    "cmovg",
    "jmp",
    "jae",
    "call",
    "ret",
    "push",
    "popq",
    "movsq",
    "rep stosb",
    "int",
    "invlpg",
    "invpcid",
    "lidt",
    "nopw",
    "mov",
    "out",
    "enter",
];
const OPERANDS: &[&str] = &[
    "%rax",
    "%eax",
    "%ax",
    "%al",
    "%ah",
    "%r9",
    "%r10d",
    "%r11w",
    "%r12b",
    "%cl",
    "%cr3",
    "%cr8",
    "%gs",
    "%ds",
    "%dr7",
    "$0",
    "$1",
    "$3",
    "$-129",
    "$0x80",
    "$0xffff",
    "$0x100000000",
    "$lbl",
    "$ksym",
    "$ksym+8",
    "lbl",
    "ksym",
    "1b",
    "1f",
    "(%rax)",
    "8(%rsp)",
    "-8(%rbp,%rcx,2)",
    "(,%rdx,8)",
    "%gs:0x10",
    "lbl(%rip)",
    "8(%rip)",
    "ksym(%rip)",
    "*%rax",
    "*(%rax)",
    "0x123456789",
    "(%eax)",
    "(%rip)",
];

fn line() -> impl Strategy<Value = (String, bool)> {
    (
        prop::sample::select(MNEMONICS),
        prop::collection::vec(prop::sample::select(OPERANDS), 0..4),
        prop::bool::ANY,
    )
        .prop_map(|(m, ops, label)| (format!("{m} {}", ops.join(", ")), label))
}

/// Joins generated lines; `lbl` is defined once (on the first line) so that most programs
/// get past label checks into layout and encoding.
fn program(lines: &[(String, bool)]) -> String {
    let mut out = String::from("lbl: ");
    for (text, local) in lines {
        if *local {
            out.push_str("1: ");
        }
        out.push_str(text);
        out.push('\n');
    }
    out
}

fn run(src: &str) {
    let mut syms = BTreeMap::new();
    syms.insert("ksym".to_string(), 0xffff_ffff_8000_1000u64);
    for syntax in [Syntax::Att, Syntax::Intel] {
        for base in [0, 0xffff_ffff_8000_0000, u64::MAX - 8] {
            let _ = assemble(
                src,
                &AsmOptions {
                    syntax,
                    base,
                    symbols: &syms,
                },
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(src in "\\PC{0,80}") {
        run(&src);
    }

    #[test]
    fn token_soup_never_panics(src in soup()) {
        run(&src);
    }

    #[test]
    fn instruction_shaped_lines_never_panic(lines in prop::collection::vec(line(), 1..8)) {
        run(&program(&lines));
    }

    #[test]
    fn soup_lines_never_panic(lines in prop::collection::vec(soup(), 1..6)) {
        run(&lines.join("\n"));
    }
}

/// Guards the generator above: some of its programs (about 4%) must assemble, or the
/// property test would only ever exercise the parser's error paths.
#[test]
fn instruction_shaped_lines_often_assemble() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(line(), 1..3);
    let mut ok = 0;
    for _ in 0..500 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let src = program(&tree.current());
        let syms: BTreeMap<String, u64> = [("ksym".to_string(), 0x1000u64)].into();
        let opts = AsmOptions {
            syntax: Syntax::Att,
            base: 0,
            symbols: &syms,
        };
        ok += usize::from(assemble(&src, &opts).is_ok());
    }
    assert!(ok >= 10, "only {ok} of 500 generated programs assembled");
}

/// Inputs that once broke (or could break) simple arithmetic in the assembler.
#[test]
fn edge_cases_never_panic() {
    for src in [
        ".align 0",
        ".p2align 64",
        ".zero 0xffffffffffffffff",
        ".skip -1",
        "movq $0x8000000000000000, %rax",
        "addq $-0x8000000000000000, %rax",
        ".quad 1 << 63, -(1 << 63)",
        ".byte -128, 255",
        "jmp .",
        "1: jmp 1b + 0xffffffffffffffff",
        "movq -0x8000000000000000(%rip), %rax",
        "x = x + 1\n.long x",
        ".set a, .\n.long a",
        "movq %gs:(,%rax,8), %rcx",
        "lbl: .p2align 4\n jmp lbl",
        &"(".repeat(10_000),
        &"-".repeat(10_000),
        &"nop\n".repeat(2_000),
    ] {
        run(src);
    }
}
