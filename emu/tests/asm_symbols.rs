//! What GNU as cannot check for us because it would leave relocations: absolute label
//! references, scenario symbols, `.set`, `.`, the line map and convergence of layout.

use emu::asm::{assemble, AsmOptions, Assembly, Syntax};
use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind};
use std::collections::BTreeMap;

const BASE: u64 = 0xffff_ffff_8000_0000;

fn syms() -> BTreeMap<String, u64> {
    [
        ("percpu_base".to_string(), 0xffff_ffff_8000_4000u64),
        ("far_func".to_string(), 0xffff_ffff_8010_0000),
        ("user_page".to_string(), 0x40_0000),
    ]
    .into()
}

fn asm(src: &str) -> Assembly {
    let s = syms();
    assemble(
        src,
        &AsmOptions {
            syntax: Syntax::Att,
            base: BASE,
            symbols: &s,
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{src}"))
}

fn decode(a: &Assembly) -> Vec<Instruction> {
    Decoder::with_ip(64, &a.bytes, BASE, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

#[test]
fn absolute_label_references_get_final_addresses() {
    let a = asm("start: movq $end, %rax\n movabsq $end, %rbx\n movq end, %rcx\n jmp start\n .p2align 4\nend: .quad end, start\n");
    let end = a.labels["end"];
    assert_eq!(a.labels["start"], BASE);
    assert_eq!(end % 16, 0);
    let ins = decode(&a);
    assert_eq!(
        ins[0].immediate(1),
        end,
        "movq $end sign-extends to the label"
    );
    assert_eq!(ins[0].op1_kind(), OpKind::Immediate32to64);
    assert_eq!(ins[1].immediate(1), end);
    assert_eq!(ins[2].memory_displacement64(), end, "absolute disp32");
    assert_eq!(ins[3].near_branch_target(), BASE);
    let off = (end - BASE) as usize;
    let q0 = u64::from_le_bytes(a.bytes[off..off + 8].try_into().unwrap());
    let q1 = u64::from_le_bytes(a.bytes[off + 8..off + 16].try_into().unwrap());
    assert_eq!((q0, q1), (end, BASE));
}

#[test]
fn scenario_symbols_are_targets_and_constants() {
    let a = asm("call far_func\n movq percpu_base(%rip), %rax\n movq $user_page, %rdi\n addq $user_page >> 12, %rdi\n leaq 8(%rip), %rsi\n");
    let ins = decode(&a);
    assert_eq!(ins[0].near_branch_target(), 0xffff_ffff_8010_0000);
    assert!(ins[1].is_ip_rel_memory_operand());
    assert_eq!(ins[1].ip_rel_memory_address(), 0xffff_ffff_8000_4000);
    assert_eq!(ins[2].immediate(1), 0x40_0000);
    assert_eq!(
        ins[3].op1_kind(),
        OpKind::Immediate32to64,
        "0x400 needs imm32"
    );
    assert_eq!(
        ins[4].ip_rel_memory_address(),
        ins[4].next_ip() + 8,
        "8(%rip) is a displacement"
    );
}

#[test]
fn set_dot_and_line_map() {
    let src = "\
        .globl entry\n\
entry:  nop\n\
        .set size, end - entry\n\
        movl $size, %eax\n\
        here = .\n\
        movq $here, %rbx\n\
end:\n";
    let a = asm(src);
    let ins = decode(&a);
    assert_eq!(ins[1].immediate(1), a.labels["end"] - BASE);
    assert_eq!(ins[2].immediate(1), BASE + 6, "`.` at the movq");
    assert_eq!(a.globals, vec!["entry".to_string()]);
    assert_eq!(a.line_addrs, vec![(BASE, 2), (BASE + 1, 4), (BASE + 6, 6)]);
    assert!(!a.labels.contains_key("here"), ".set names are not labels");
}

#[test]
fn layout_converges_when_branches_and_labels_depend_on_each_other() {
    // Forward jumps over data whose size depends on label values, alignment after them,
    // and absolute references to labels behind them.
    let mut src = String::new();
    for i in 0..40 {
        src.push_str(&format!(
            "jmp l{i}\n .zero {}\n .p2align 3\nl{i}: movq $l{i}, %rax\n",
            i * 5
        ));
    }
    let a = asm(&src);
    for i in 0..40 {
        let l = a.labels[&format!("l{i}")];
        assert_eq!(l % 8, 0);
    }
    let ins = decode(&a);
    assert_eq!(ins[0].near_branch_target(), a.labels["l0"]);
}

#[test]
fn intel_option_and_numeric_labels() {
    let s = syms();
    let a = assemble(
        "1: mov rax, offset far_func\n jmp 1b\n jmp 1f\n1: lea rdi, [rip + 1b]\n",
        &AsmOptions {
            syntax: Syntax::Intel,
            base: 0x1000,
            symbols: &s,
        },
    )
    .unwrap();
    let ins: Vec<Instruction> = Decoder::with_ip(64, &a.bytes, 0x1000, DecoderOptions::NONE)
        .into_iter()
        .collect();
    assert_eq!(ins[0].immediate(1), 0xffff_ffff_8010_0000);
    assert_eq!(ins[1].near_branch_target(), 0x1000);
    assert_eq!(ins[2].near_branch_target(), ins[3].ip());
    assert_eq!(ins[3].ip_rel_memory_address(), ins[3].ip());
    assert!(a.labels.is_empty(), "numeric labels are not exported");
}

#[test]
fn att_labels_may_be_named_like_registers() {
    let a = asm("rax: nop\n jmp rax\n");
    assert_eq!(a.labels["rax"], BASE);
    assert_eq!(decode(&a)[1].near_branch_target(), BASE);
}
