//! The line-mode debugger driven from stdin, as a script would drive it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

/// Runs `tlbemu debug SCENARIO` with `script` on stdin; returns (exit code, stdout).
fn repl(name: &str, script: &str, extra: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlbemu"))
        .arg("debug")
        .arg(scenario(name))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
    child
        .stdin
        .take()
        .map(|mut i| i.write_all(script.as_bytes()))
        .transpose()
        .unwrap_or_else(|e| panic!("cannot write the script: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("tlbemu did not finish: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn scripted_session_steps_to_the_stale_use_and_back() {
    let (code, out) = repl(
        "missing-invlpg.ron",
        "step 3\ntlb\nbreak stale\ncontinue\nstale\nrstep\nregs\nwalk 0x400000\nquit\n",
        &[],
    );
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!("repl_missing_invlpg", out);
}

#[test]
fn errors_are_reported_and_fail_the_script() {
    let (code, out) = repl(
        "missing-invlpg.ron",
        "step lots\nfocus 3\nbreak label nowhere\nsyntax intel\ndisas 3\n",
        &["--repl"],
    );
    assert_eq!(code, 1, "{out}");
    insta::assert_snapshot!("repl_errors", out);
}

#[test]
fn a_bad_scenario_is_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_tlbemu"))
        .args(["debug", "/nonexistent/scenario.ron"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read scenario"));
}

#[test]
fn disas_addr_n_memory_at_the_top_and_events_of_a_missing_core() {
    // `disas ADDR N` with a decimal or symbolic ADDR; `xp`/`x` ranges that would
    // wrap past the top of the address space are errors (one that ends exactly at
    // the top is fine); `events core C` needs a core the machine has.
    let (code, out) = repl(
        "missing-invlpg.ron",
        "disas 18446744071562067976 2\ndisas start 1\nxp 0xfffffffffffffff0 17\n\
         xp 0xfffffffffffffff0 16\nx 0xffffffffffffffff 2\nevents core 99\nevents core 0\n",
        &["--repl"],
    );
    assert_eq!(code, 1, "{out}");
    insta::assert_snapshot!("repl_disas_xp_events", out);
}

#[test]
fn an_empty_line_repeats_the_last_stepping_command_and_quit_asks_once() {
    // Blank lines after `step` step again (not after `regs`, which does not
    // step); the first `quit` with an unsaved interleaving warns, the second
    // leaves. Neither the warning nor the quit is a failure: exit code 0.
    let (code, out) = repl(
        "missing-invlpg.ron",
        "\nstep\n\n\nregs\n\nquit\nquit\nstep\n",
        &["--repl"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("1 step(s); now at").count(), 4, "{out}");
    insta::assert_snapshot!("repl_repeat_and_quit", out);
}

#[test]
fn print_evaluates_registers_symbols_arithmetic_and_typed_loads() {
    // GNU `as` precedence (`|` before `+`), loads of 1 and 8 bytes through the
    // focused core's tables, the three formats, and errors that name the token.
    let (code, out) = repl(
        "missing-invlpg.ron",
        "step\nprint rsp\nprint start + 2*3\nprint/x *(u64*)start\nprint *(u8*)start\n\
         print/x *start + 1\nprint/d -1\nprint/cpumask 5\nprint 1 | 2 + 4\nprint %rip - start\n\
         print nowhere\nprint *(u64*)0x7000000000\nprint/q 1\nprint rax +\n",
        &["--repl"],
    );
    assert_eq!(code, 1, "{out}");
    insta::assert_snapshot!("repl_print", out);
}

#[test]
fn examine_with_gdb_formats_units_and_instructions() {
    // Units of 8, 1, 4 and 2 bytes (the last as signed decimal), instructions
    // from RIP and from a label, an unmapped unit shown as `?`, bad forms, and
    // a range that would run past the top of the address space (refused).
    let (code, out) = repl(
        "missing-invlpg.ron",
        "x/4gx start\nx/8bx start\nx/2wx start\nx/3hd start\nx/2i\nx/2i changed\n\
         x/5gx 0x3ffff0\nx/0x start\nx/4q start\nx/4g\nx/2gx 0xfffffffffffffff8\nx/2gx 0xfffffffffffffff9\n",
        &["--repl"],
    );
    assert_eq!(code, 1, "{out}");
    insta::assert_snapshot!("repl_examine", out);
}

#[test]
fn info_decodes_control_registers_apic_and_gs_bases() {
    // Core 1 runs with CR4.PCIDE, so its CR3 splits into table base and PCID.
    let (code, out) = repl(
        "freebsd-d16618-pcid-nogen-buggy.ron",
        "next 40\ninfo cr core 1\ninfo apic core 1\ninfo gs\ninfo idt\ninfo cr core 9\n",
        &["--repl"],
    );
    assert_eq!(code, 1, "{out}");
    insta::assert_snapshot!("repl_info", out);
}
