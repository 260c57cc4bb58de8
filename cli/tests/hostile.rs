//! Hostile inputs that cannot live as files in `tests/bad_input/`: closed pipes,
//! FIFOs, devices, symbolic-link loops, signals, generated megabyte-long lines,
//! traces and command lines. Each case builds what it needs in a scratch
//! directory, runs the real `tlbemu` there (so paths in the output are relative
//! and snapshots do not depend on the checkout), and snapshots how the process
//! ended with its stdout and stderr. No case may panic or hang: every child gets
//! a deadline and is killed, and the case failed, if it passes it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A small valid scenario: one core writes, reads and halts.
const GOOD: &str = r#"Scenario(
    name: "good",
    machine: (cores: 2),
    address_spaces: {
        "k": (mappings: [
            (va: 0xffffffff80000000, pa: 0x100000, len: 0x10000, flags: [P, RW]),
            (va: 0x400000, pa: 0x200000, flags: [P, RW]),
        ]),
    },
    code: [ (at: 0xffffffff80000000, asm: r"
start:
    movq $7, 0x400000
    movq 0x400000, %rax
done:
    hlt
") ],
    cores: [ (rip: "start", rsp: 0xffffffff80008000, cr3: "k"), (rip: "done", rsp: 0xffffffff80009000, cr3: "k") ],
    schedule: [ Run(core: 0, until: Halt) ],
)
"#;

/// `jmp .` forever, with a step budget that would take centuries.
const SPIN: &str = r#"Scenario(
    name: "spin",
    machine: (cores: 1),
    address_spaces: { "k": (mappings: [ (va: 0xffffffff80000000, pa: 0x100000, len: 0x10000, flags: [P, RW]) ]) },
    code: [ (at: 0xffffffff80000000, asm: "start: jmp start") ],
    cores: [ (rip: "start", rsp: 0xffffffff80008000, cr3: "k") ],
    schedule: [ Run(core: 0, until: Halt) ],
    max_steps: 0xfffffffffffffff0,
)
"#;

/// A fresh scratch directory for one case.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("hostile")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
    // SAFETY: `c` is a valid NUL-terminated path that lives across the call.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo {}", p.display());
}

fn tlbemu(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tlbemu"));
    c.current_dir(dir).args(args).stdin(Stdio::null());
    c
}

/// Waits for `child` at most `secs` seconds; kills it and fails after that.
fn finish(mut child: Child, secs: u64, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: did not finish within {secs} s (a hang)");
            }
        }
    }
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().map(|s| describe(&s)).unwrap_or_default();
    assert!(
        !err.contains("panicked") && !out.contains("panicked"),
        "{what}: panicked:\n{err}"
    );
    format!("{status}\n--- stdout\n{out}--- stderr\n{err}")
}

fn describe(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit: {c}"),
        (None, Some(sig)) => format!("signal: {sig}"),
        _ => "unknown".into(),
    }
}

/// Runs to completion with piped output.
fn run(dir: &Path, args: &[&str], what: &str) -> String {
    let child = tlbemu(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
    finish(child, 120, what)
}

fn snap(name: &str, text: String) {
    insta::with_settings!({ snapshot_path => "bad_input/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}

/// Asserts a bad-input outcome: exit 2, nothing on stdout, one located error.
fn bad_input(text: &str, what: &str) {
    assert!(text.starts_with("exit: 2\n"), "{what}: {text}");
    assert!(
        text.contains("--- stdout\n--- stderr"),
        "{what} printed a report: {text}"
    );
    assert!(
        text.contains(": error: "),
        "{what}: not a located error: {text}"
    );
}

// ---- class 1: a reader that goes away ------------------------------------

/// Runs with stdout a pipe whose read end is already closed, so the first
/// write fails with EPIPE. The process must end quietly: no panic, nothing on
/// stderr (killed by SIGPIPE, as `head` expects of a writer).
fn closed_pipe(dir: &Path, args: &[&str], what: &str) -> String {
    let (reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
    drop(reader);
    let child = tlbemu(dir, args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
    let t = finish(child, 120, what);
    assert!(t.ends_with("--- stderr\n"), "{what}: wrote to stderr: {t}");
    t
}

#[test]
fn class1_closed_stdout_ends_quietly() {
    let d = scratch("epipe");
    write(&d, "good.ron", GOOD);
    let r = run(&d, &["run", "good.ron", "--trace", "good.trace"], "record");
    assert!(r.starts_with("exit: 0"), "{r}");
    let cases: [(&str, &[&str]); 6] = [
        ("run", &["run", "good.ron"]),
        ("run-json", &["run", "--json", "good.ron"]),
        ("exec", &["exec", "--code-hex", "90f4"]),
        ("trace-show", &["trace", "show", "good.trace"]),
        ("check", &["check", "good.ron", "--traces", "."]),
        ("replay", &["replay", "good.trace"]),
    ];
    let mut all = String::new();
    for (name, args) in cases {
        all += &format!("== {name}\n{}", closed_pipe(&d, args, name));
    }
    snap("hostile-1-closed-stdout", all);
}

// ---- class 2: deep expressions -------------------------------------------

#[test]
fn class2_megabyte_expression_is_an_error_not_a_crash() {
    let d = scratch("deep");
    let ones = vec!["1"; 100_000].join("+");
    write(
        &d,
        "deep.ron",
        &GOOD.replace("movq $7, 0x400000", &format!("movq ${ones}, %rax")),
    );
    let t = run(&d, &["run", "deep.ron"], "deep expression");
    bad_input(&t, "deep expression");
    snap("hostile-2-200k-expression", t);
}

// ---- class 3: unbounded reads and allocations ----------------------------

#[test]
fn class3_devices_fifos_and_huge_headers_are_refused() {
    let d = scratch("alloc");
    mkfifo(&d.join("fifo.ron"));
    mkfifo(&d.join("code.s"));
    write(
        &d,
        "fifo-code.ron",
        &GOOD.replace(
            "asm: r\"\nstart:\n    movq $7, 0x400000\n    movq 0x400000, %rax\ndone:\n    hlt\n\"",
            "file: \"code.s\"",
        ),
    );
    write(&d, "good.ron", GOOD);
    let r = run(&d, &["run", "good.ron", "--trace", "good.trace"], "record");
    assert!(r.starts_with("exit: 0"), "{r}");
    let trace = std::fs::read_to_string(d.join("good.trace")).unwrap_or_default();
    write(
        &d,
        "cores.trace",
        &trace.replacen("\"cores\":2", "\"cores\":4294967295", 1),
    );
    write(
        &d,
        "events.trace",
        &trace.replacen("\"events\":", "\"events\":18446744073709551615,\"x\":", 1),
    );
    let cases: [(&str, &[&str]); 6] = [
        ("scenario-dev-zero", &["run", "/dev/zero"]),
        ("scenario-fifo", &["run", "fifo.ron"]),
        ("code-file-fifo", &["run", "fifo-code.ron"]),
        ("trace-dev-zero", &["trace", "show", "/dev/zero"]),
        ("trace-4g-cores", &["trace", "show", "cores.trace"]),
        ("replay-4g-cores", &["replay", "cores.trace"]),
    ];
    let mut all = String::new();
    for (name, args) in cases {
        let t = run(&d, args, name);
        bad_input(&t, name);
        all += &format!("== {name}\n{t}");
    }
    snap("hostile-3-devices-fifos-headers", all);
}

// ---- class 4: hangs --------------------------------------------------------

#[test]
fn class4_check_walks_symlink_loops_once() {
    let d = scratch("loops");
    let suite = d.join("suite");
    std::fs::create_dir_all(suite.join("sub")).unwrap_or_else(|e| panic!("{e}"));
    write(&suite, "good.ron", GOOD);
    std::os::unix::fs::symlink("..", suite.join("sub/up")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(".", suite.join("self")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("sub", suite.join("again")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(d.join("empty")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(d.join("loop-only")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(".", d.join("loop-only/me")).unwrap_or_else(|e| panic!("{e}"));
    mkfifo(&d.join("fifo-suite.ron"));
    let mut all = String::new();
    // The suite runs its one scenario once, however many links lead to it.
    let t = run(&d, &["check", "suite", "--traces", "traces"], "loop");
    assert!(t.starts_with("exit: 0"), "{t}");
    all += &format!("== suite-with-loops\n{t}");
    for (name, args) in [
        ("empty-dir", vec!["check", "empty"]),
        ("only-a-loop", vec!["check", "loop-only"]),
        ("fifo-scenario", vec!["check", "fifo-suite.ron"]),
    ] {
        let t = run(&d, &args, name);
        assert!(t.starts_with("exit: 2"), "{name}: {t}");
        all += &format!("== {name}\n{t}");
    }
    snap("hostile-4-check-walks", all);
}

/// Starts the endless run, waits until it is surely stepping, signals it.
fn interrupted(sig: i32, json: bool) -> String {
    let d = scratch(&format!("signal-{sig}-{json}"));
    write(&d, "spin.ron", SPIN);
    let mut args = vec!["run", "spin.ron"];
    if json {
        args.push("--json");
    }
    let child = tlbemu(&d, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    let r = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(r, 0);
    let t = finish(child, 60, "interrupted run");
    // The step count depends on the host's speed; everything else must not.
    let steps = regex_free_steps(&t);
    assert!(t.starts_with("exit: 130"), "{t}");
    assert!(t.contains("the report above is partial"), "{t}");
    steps
}

/// The output with every decimal number of four or more digits replaced by N
/// (how far the run got varies with the host); digits inside a hex literal or a
/// word are kept.
fn regex_free_steps(t: &str) -> String {
    let mut out = String::new();
    for line in t.lines() {
        let b: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < b.len() {
            let word_before = i > 0 && b[i - 1].is_ascii_alphanumeric();
            if b[i].is_ascii_digit() && !word_before {
                let st = i;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let tok: String = b[st..i].iter().collect();
                let decimal = tok.chars().all(|c| c.is_ascii_digit());
                out += if decimal && tok.len() >= 4 { "N" } else { &tok };
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn class4_sigint_and_sigterm_print_the_partial_report() {
    let mut all = String::new();
    all += &format!("== SIGINT\n{}", interrupted(libc::SIGINT, false));
    all += &format!("== SIGTERM\n{}", interrupted(libc::SIGTERM, false));
    all += &format!("== SIGINT --json\n{}", interrupted(libc::SIGINT, true));
    snap("hostile-4-signals", all);
}

/// About six million steps that end on their own: past the point where a run
/// on a terminal starts showing progress.
const LONG: &str = r#"Scenario(
    name: "long",
    machine: (cores: 1),
    address_spaces: { "k": (mappings: [ (va: 0xffffffff80000000, pa: 0x100000, len: 0x10000, flags: [P, RW]) ]) },
    code: [ (at: 0xffffffff80000000, asm: "start: movq $3000000, %rcx\nagain: decq %rcx\njnz again\nhlt") ],
    cores: [ (rip: "start", rsp: 0xffffffff80008000, cr3: "k") ],
    schedule: [ Run(core: 0, until: Halt) ],
    max_steps: 100000000,
)
"#;

/// Runs the long scenario with stderr on the slave side of a fresh pseudo
/// terminal and returns what the master side read.
fn stderr_on_a_terminal(dir: &Path) -> String {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the locals; the name,
    // termios and window-size pointers may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    use std::os::fd::FromRawFd;
    // SAFETY: both descriptors were just opened by openpty and are owned here.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    };
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut got = Vec::new();
        // Ends with EIO once the child, the last holder of the slave, exits.
        let _ = master.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    });
    let child = tlbemu(dir, &["run", "long.ron"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tlbemu: {e}"));
    let t = finish(child, 120, "long run on a terminal");
    assert!(t.starts_with("exit: 0\n"), "{t}");
    reader.join().unwrap_or_default()
}

#[test]
fn class4_progress_is_shown_on_a_terminal_only() {
    let d = scratch("progress");
    write(&d, "long.ron", LONG);
    let t = run(&d, &["run", "long.ron"], "long run");
    assert!(t.starts_with("exit: 0\n"), "{t}");
    assert!(t.ends_with("--- stderr\n"), "stderr is not a terminal: {t}");
    let tty = stderr_on_a_terminal(&d);
    assert!(
        tty.contains(" steps, "),
        "no progress on a terminal: {tty:?}"
    );
}

// ---- class 5 and 6: nonsense accepted, wrong locations --------------------

#[test]
fn class5_exec_refuses_inconsistent_control_registers() {
    let d = scratch("exec");
    let mut all = String::new();
    for set in [
        vec!["--set", "cr0=0"],
        vec!["--set", "cr0=0x80000000"],
        vec!["--set", "cr4=0"],
        vec!["--set", "efer=0"],
        vec!["--set", "efer=0x400"],
    ] {
        let mut args = vec!["exec", "--code-hex", "90f4"];
        args.extend(&set);
        let t = run(&d, &args, "exec");
        assert!(t.starts_with("exit: 2"), "{set:?}: {t}");
        all += &format!("== {}\n{t}", set.join(" "));
    }
    // The consistent default still runs.
    let t = run(
        &d,
        &["exec", "--code-hex", "90f4", "--set", "cr0=0x80000011"],
        "exec",
    );
    assert!(t.starts_with("exit: 0"), "{t}");
    snap("hostile-5-exec-control-registers", all);
}

#[test]
fn class6_locations_in_traces_replays_boms_and_outputs() {
    let d = scratch("locations");
    write(&d, "good.ron", GOOD);
    let one = GOOD
        .replace("machine: (cores: 2)", "machine: (cores: 1)")
        .replace(", (rip: \"done\", rsp: 0xffffffff80009000, cr3: \"k\")", "");
    write(&d, "one-core.ron", &one);
    let after = one.replace(
        "schedule: [",
        "coherence: AfterLabel(\"done\"),\n    schedule: [",
    );
    write(&d, "one-core-after.ron", &after);
    let r = run(&d, &["run", "good.ron", "--trace", "good.trace"], "record");
    assert!(r.starts_with("exit: 0"), "{r}");
    let trace = std::fs::read_to_string(d.join("good.trace")).unwrap_or_default();
    // A decision naming core 1 on a trace that claims 1 core.
    write(
        &d,
        "bad-decision.trace",
        &trace.replacen("\"cores\":2", "\"cores\":1", 1).replacen(
            "[\"step\",0,",
            "[\"step\",1,",
            1,
        ),
    );
    write(
        &d,
        "core1.trace",
        &trace.replacen("[\"step\",0,", "[\"step\",1,", 1),
    );
    write(&d, "bom.ron", &format!("\u{feff}{GOOD}"));
    write(
        &d,
        "bom-error.ron",
        &format!("\u{feff}{}", GOOD.replace("cores: 2", "cores: 2.5")),
    );
    std::fs::create_dir_all(d.join("out-dir")).unwrap_or_else(|e| panic!("{e}"));
    let cases: [(&str, &[&str], i32); 7] = [
        (
            "decision-core-beyond-header",
            &["trace", "show", "bad-decision.trace"],
            2,
        ),
        (
            "replay-core-scenario-lacks",
            &["replay", "core1.trace", "--scenario", "one-core.ron"],
            2,
        ),
        (
            "replay-core-afterlabel",
            &["replay", "core1.trace", "--scenario", "one-core-after.ron"],
            2,
        ),
        ("bom-is-accepted", &["run", "bom.ron"], 0),
        ("bom-error-located", &["run", "bom-error.ron"], 2),
        (
            "trace-into-directory",
            &["run", "good.ron", "--trace", "out-dir"],
            2,
        ),
        (
            "export-into-directory",
            &["trace", "export", "--chrome", "good.trace", "out-dir"],
            2,
        ),
    ];
    let mut all = String::new();
    for (name, args, code) in cases {
        let t = run(&d, args, name);
        assert!(t.starts_with(&format!("exit: {code}\n")), "{name}: {t}");
        if code == 2 {
            bad_input(&t, name);
        }
        all += &format!("== {name}\n{t}");
    }
    snap("hostile-6-locations", all);
}

// ---- class 8: instructions of kernel entry, exit and flush paths ------------

/// Each instruction the issue found `Unsupported`, run by `exec` at CPL 0 on the
/// default CPU (SMAP, SYSCALL enabled): the final state shows what it did (AC
/// set and cleared, TSC_AUX in RCX/RAX, RSP moved by 2 for a 16-bit flags
/// image, IRETQ to a same-level frame), and SYSCALL with EFER.SCE clear raises
/// #UD (SDM Vol. 2B, SYSCALL). No case may stop as unsupported.
#[test]
fn class8_kernel_path_instructions_run_under_exec() {
    let d = scratch("insns");
    let cases: [(&str, &str, &[&str]); 10] = [
        ("stac", "0f01cbf4", &[]),
        ("stac-clac", "0f01cb0f01caf4", &[]),
        ("wbinvd", "0f09f4", &[]),
        ("clflush", "48c7c0000010000fae38f4", &[]),
        ("clflushopt", "48c7c000001000660fae38f4", &[]),
        ("rdtscp", "0f01f9f4", &[]),
        ("rdpid", "f30fc7f8f4", &[]),
        (
            "pushf16-popf16",
            "669c4889e3669df4",
            &["--set", "rsp=0x108000", "--set", "rflags=0x40046"],
        ),
        ("syscall-without-sce", "0f05f4", &["--set", "efer=0xd00"]),
        (
            "iretq-same-level",
            "4889e06a10509c6a08488d0d030000005148cff4",
            &["--set", "rsp=0x108000"],
        ),
    ];
    let mut all = String::new();
    for (name, hex, extra) in cases {
        let mut args = vec!["exec", "--code-hex", hex];
        args.extend(extra);
        let t = run(&d, &args, name);
        assert!(t.starts_with("exit: 0\n"), "{name}: {t}");
        assert!(!t.contains("nsupported"), "{name}: {t}");
        all += &format!("== {name}\n{t}");
    }
    snap("hostile-8-kernel-path-instructions", all);
}
