//! Traces end to end through the real binary: determinism, replay of the golden
//! traces, divergence reports for edited scenarios, output-file safety, bad trace
//! files, the Chrome export of a multi-core run, and `check` verdicts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn tlbemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlbemu"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run tlbemu")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tlbemu-traces-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn ron_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // Unscripted twins have no schedule to run; explore's tests hold them.
            if p.file_name().is_some_and(|n| n == "unscripted") {
                continue;
            }
            ron_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ron") {
            out.push(p);
        }
    }
}

fn scenarios() -> Vec<PathBuf> {
    let mut v = Vec::new();
    ron_files(&root().join("scenarios"), &mut v);
    assert!(!v.is_empty(), "no scenarios found");
    v
}

fn golden_traces() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("traces"))
        .expect("traces/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_scenario_records_byte_identical_traces_twice() {
    let dir = scratch("determinism");
    for (i, sc) in scenarios().iter().enumerate() {
        let a = dir.join(format!("{i}-a.trace"));
        let b = dir.join(format!("{i}-b.trace"));
        for t in [&a, &b] {
            let out = tlbemu(&["run", s(sc), "--trace", s(t)]);
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{}: {}",
                sc.display(),
                text(&out.stderr)
            );
        }
        let (x, y) = (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
        assert!(!x.is_empty());
        assert!(x == y, "{}: two runs gave different traces", sc.display());
    }
}

#[test]
fn every_golden_trace_has_a_scenario() {
    let stems: Vec<String> = scenarios()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    for t in golden_traces() {
        let stem = t.file_stem().map(|s| s.to_string_lossy().into_owned());
        assert!(
            stem.as_ref().is_some_and(|x| stems.contains(x)),
            "{} has no scenario in scenarios/ (delete it or restore the scenario)",
            t.display()
        );
    }
}

#[test]
fn every_golden_trace_replays_identical() {
    let traces = golden_traces();
    assert!(!traces.is_empty(), "no golden traces in traces/");
    for t in traces {
        let out = tlbemu(&["replay", s(&t)]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stdout}{}",
            t.display(),
            text(&out.stderr)
        );
        assert!(stdout.starts_with("identical ("), "{stdout}");
        // A golden trace is only ever replayed against an unchanged scenario.
        assert!(!text(&out.stderr).contains("changed"), "{}", t.display());
    }
}

#[test]
fn edited_instruction_is_the_first_divergence() {
    let dir = scratch("edit-insn");
    let sc = dir.join("missing-invlpg.ron");
    let orig = std::fs::read_to_string(root().join("scenarios/missing-invlpg.ron")).expect("read");
    std::fs::write(&sc, &orig).expect("copy");
    let tr = dir.join("t.trace");
    assert_eq!(
        tlbemu(&["run", s(&sc), "--trace", s(&tr)]).status.code(),
        Some(0)
    );
    // The trace names the copy; edit it in place.
    let edited = orig.replace("movq 0x400000, %rdx", "movq 0x400008, %rdx");
    assert_ne!(edited, orig);
    std::fs::write(&sc, edited).expect("edit");
    let out = tlbemu(&["replay", s(&tr)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("warning: the scenario changed"));
    insta::assert_snapshot!("replay_edited_instruction", text(&out.stdout));
}

const IPI: &str = r##"Scenario(
    name: "ipi-pair",
    description: "Core 0 sends a fixed IPI to core 1, which is halted and takes it.",
    machine: (cores: 2, memory: 0x4000000),
    address_spaces: {
        "k": (mappings: [
            (va: 0xffffffff80000000, pa: 0x100000, len: 0x10000, flags: [P, RW, G]),
        ]),
    },
    code: [
        (at: 0xffffffff80000000, asm: r#"
sender:
    movl $0xf0, %eax
    movl $1, %edx
    movl $0x830, %ecx
    wrmsr
sent:
    hlt
receiver:
    hlt
done:
    hlt
handler:
    xorl %eax, %eax
    xorl %edx, %edx
    movl $0x80b, %ecx
    wrmsr
    iretq
"#),
    ],
    idt: (at: 0xffffffff80008000, gates: [(vector: 0xf0, handler: "handler")]),
    cores: [
        (rip: "sender", rsp: 0xffffffff8000c000, cr3: "k", rflags: 0x202),
        (rip: "receiver", rsp: 0xffffffff8000e000, cr3: "k", rflags: 0x202),
    ],
    schedule: [
        Run(core: 1, until: Halt),
        Run(core: 0, until: Halt),
        Run(core: 1, until: Label("done")),
    ],
    expect: [
        Events(kind: "ipi-sent", core: 0, count: 1),
        Events(kind: "interrupt", core: 1, count: 1),
    ],
)
"##;

#[test]
fn edited_schedule_is_the_first_divergence() {
    let dir = scratch("edit-sched");
    let sc = dir.join("ipi.ron");
    std::fs::write(&sc, IPI).expect("write");
    let tr = dir.join("t.trace");
    assert_eq!(
        tlbemu(&["run", s(&sc), "--trace", s(&tr)]).status.code(),
        Some(0)
    );
    // Core 0 now runs first: the very first event differs.
    let edited = IPI.replace(
        "Run(core: 1, until: Halt),\n        Run(core: 0, until: Halt),",
        "Run(core: 0, until: Halt),\n        Run(core: 1, until: Halt),",
    );
    assert_ne!(edited, IPI);
    let ed = dir.join("ipi-edited.ron");
    std::fs::write(&ed, edited).expect("write");
    // Replay applies the recorded decisions, so an edited schedule changes
    // nothing there; `check` runs the schedule and sees the difference.
    let out = tlbemu(&["replay", s(&tr), "--scenario", s(&ed)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let traces = dir.join("golden");
    std::fs::create_dir_all(&traces).expect("mkdir");
    std::fs::copy(&tr, traces.join("ipi-edited.trace")).expect("copy");
    let out = tlbemu(&["check", s(&ed), "--traces", s(&traces)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("FAIL  ipi-pair: event stream differs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("first divergence at event #0 (step 1, core 0)"),
        "{stdout}"
    );
}

#[test]
fn run_trace_and_export_refuse_to_overwrite_without_force() {
    let dir = scratch("force");
    let tr = dir.join("t.trace");
    std::fs::write(&tr, "keep me").expect("write");
    let out = tlbemu(&["run", "scenarios/missing-invlpg.ron", "--trace", s(&tr)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pass --force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&tr).expect("read"), "keep me");
    let out = tlbemu(&[
        "run",
        "scenarios/missing-invlpg.ron",
        "--trace",
        s(&tr),
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(std::fs::read_to_string(&tr)
        .expect("read")
        .starts_with("{\"format\":\"tlbemu-trace/1\""));
    let json = dir.join("t.json");
    std::fs::write(&json, "keep me").expect("write");
    let out = tlbemu(&["trace", "export", "--chrome", s(&tr), s(&json)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&json).expect("read"), "keep me");
    let out = tlbemu(&["trace", "export", "--chrome", s(&tr), s(&json), "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn bad_trace_files_exit_2_with_file_and_line() {
    let dir = scratch("bad");
    let good = std::fs::read_to_string(root().join("traces/missing-invlpg.trace")).expect("golden");
    let lines: Vec<&str> = good.lines().collect();
    let truncated = lines[..lines.len() - 2].join("\n") + "\n";
    let mut bad_event = lines.clone();
    let last = bad_event.len() - 1;
    bad_event[last] = "[6,0,\"halt\"]";
    let bad_event = bad_event.join("\n") + "\n";
    let cases: &[(&str, &str)] = &[
        ("empty", ""),
        ("not-json", "hello\n"),
        ("other-format", "{\"format\":\"tlbemu-trace/9\"}\n"),
        (
            "missing-field",
            "{\"format\":\"tlbemu-trace/1\",\"scenario\":\"x.ron\"}\n",
        ),
        ("truncated", &truncated),
        ("bad-event", &bad_event),
        (
            "bad-decision",
            &good.replacen("[\"step\",0,6]", "[\"step\",0]", 1),
        ),
    ];
    let mut report = String::new();
    for (name, body) in cases {
        let p = dir.join(format!("{name}.trace"));
        std::fs::write(&p, body).expect("write");
        for cmd in [&["replay"][..], &["trace", "show"][..]] {
            let mut args = cmd.to_vec();
            args.push(s(&p));
            let out = tlbemu(&args);
            assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stdout));
        }
        let out = tlbemu(&["replay", s(&p)]);
        let err = text(&out.stderr).replace(s(&dir), "DIR");
        report += &format!("{name}: {err}");
    }
    insta::assert_snapshot!("bad_trace_files", report);
}

#[test]
fn chrome_export_of_a_multi_core_run_has_tracks_slices_and_ipi_flows() {
    let dir = scratch("chrome");
    let sc = dir.join("ipi.ron");
    std::fs::write(&sc, IPI).expect("write");
    let tr = dir.join("t.trace");
    assert_eq!(
        tlbemu(&["run", s(&sc), "--trace", s(&tr)]).status.code(),
        Some(0)
    );
    let out_json = dir.join("t.json");
    let out = tlbemu(&["trace", "export", "--chrome", s(&tr), s(&out_json)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_json).expect("read")).expect("JSON");
    let evs = v["traceEvents"].as_array().expect("traceEvents");
    let of =
        |ph: &str| -> Vec<&serde_json::Value> { evs.iter().filter(|e| e["ph"] == ph).collect() };
    let threads: Vec<(u64, String)> = of("M")
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap_or(99),
                e["args"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(threads, vec![(0, "core 0".into()), (1, "core 1".into())]);
    let slices: Vec<(u64, String, u64, u64)> = of("X")
        .iter()
        .map(|e| {
            (
                e["tid"].as_u64().unwrap_or(99),
                e["name"].as_str().unwrap_or("").to_string(),
                e["ts"].as_u64().unwrap_or(0),
                e["dur"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        slices,
        vec![(0, "sender".into(), 2, 4), (1, "handler".into(), 7, 6)]
    );
    let (starts, ends) = (of("s"), of("f"));
    assert_eq!((starts.len(), ends.len()), (1, 1));
    let (st, fi) = (starts[0], ends[0]);
    assert_eq!(st["id"], fi["id"]);
    assert_eq!((st["tid"].as_u64(), fi["tid"].as_u64()), (Some(0), Some(1)));
    assert_eq!((st["ts"].as_u64(), fi["ts"].as_u64()), (Some(5), Some(7)));
    assert_eq!(st["args"]["vector"].as_u64(), Some(0xf0));
    assert_eq!(fi["bp"], "e");
    assert!(of("i")
        .iter()
        .any(|e| e["name"] == "tlb-fill" && e["tid"] == 1));
    // Byte-identical on a second export.
    let again = dir.join("t2.json");
    assert_eq!(
        tlbemu(&["trace", "export", "--chrome", s(&tr), s(&again)])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(std::fs::read(&out_json).ok(), std::fs::read(&again).ok());
}

#[test]
fn trace_show_filters_and_explains_stale_uses() {
    let out = tlbemu(&[
        "trace",
        "show",
        "traces/missing-invlpg.trace",
        "--kind",
        "stale-use",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("show_stale_use", text(&out.stdout));
    let out = tlbemu(&[
        "trace",
        "show",
        "traces/missing-invlpg.trace",
        "--core",
        "0",
        "--from",
        "2",
        "--to",
        "3",
        "--kind",
        "retired",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("step ")).count(),
        2,
        "{stdout}"
    );
    let out = tlbemu(&[
        "trace",
        "show",
        "traces/missing-invlpg.trace",
        "--kind",
        "nonsense",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_reports_bad_input_and_failures() {
    let dir = scratch("check");
    std::fs::write(dir.join("broken.ron"), "Scenario(name: \"broken\",").expect("write");
    let out = tlbemu(&["check", s(&dir), "--traces", s(&dir.join("none"))]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("ERROR"), "{stdout}");
    // A scenario whose expectation does not hold fails with the reason.
    let sc = std::fs::read_to_string(root().join("scenarios/missing-invlpg.ron")).expect("read");
    let failing = sc.replace(
        "Reg(core: 0, reg: \"rdx\", value: 0x1111)",
        "Reg(core: 0, reg: \"rdx\", value: 0x2222)",
    );
    assert_ne!(failing, sc);
    let d2 = scratch("check-fail");
    std::fs::write(d2.join("f.ron"), failing).expect("write");
    let out = tlbemu(&["check", s(&d2), "--traces", s(&d2.join("none"))]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  missing-invlpg: expect[1]"),
        "{stdout}"
    );
    // --bless writes golden traces only when asked.
    let golden = d2.join("golden");
    std::fs::create_dir_all(&golden).expect("mkdir");
    let _ = tlbemu(&["check", s(&d2), "--traces", s(&golden)]);
    assert!(!golden.join("f.trace").exists());
    let _ = tlbemu(&["check", s(&d2), "--traces", s(&golden), "--bless"]);
    assert!(golden.join("f.trace").exists());
}

/// Names in a directory, sorted (temporary files included: they start with `.`).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn streamed_traces_are_the_golden_bytes_and_leave_no_temporary_files() {
    let dir = scratch("streamed");
    let mut want = Vec::new();
    for sc in scenarios() {
        let stem = sc.file_stem().and_then(|x| x.to_str()).unwrap_or("");
        let golden = root().join("traces").join(format!("{stem}.trace"));
        if !golden.is_file() {
            continue;
        }
        let t = dir.join(format!("{stem}.trace"));
        let out = tlbemu(&["run", s(&sc), "--trace", s(&t)]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{stem}");
        // Recorded from a path relative to the checkout, as the golden ones are.
        let rel = sc.strip_prefix(root()).unwrap_or(&sc);
        let mine = std::fs::read_to_string(&t).expect("trace").replacen(
            &format!("\"scenario\":\"{}\"", s(&sc)),
            &format!("\"scenario\":\"{}\"", s(rel)),
            1,
        );
        let gold = std::fs::read_to_string(&golden).expect("golden");
        assert!(
            mine == gold,
            "{stem}: the streamed trace differs from the golden one"
        );
        want.push(format!("{stem}.trace"));
    }
    want.sort();
    assert!(want.len() > 10);
    assert_eq!(listing(&dir), want);
}

#[test]
fn a_failed_export_leaves_the_existing_output_and_nothing_else() {
    let dir = scratch("failed-export");
    let good = std::fs::read_to_string(root().join("traces/shootdown-ipi.trace")).expect("golden");
    let mut lines: Vec<&str> = good.lines().collect();
    let last = lines.len() - 1;
    lines[last] = "[6,0,\"halt\"]";
    let bad = dir.join("bad.trace");
    std::fs::write(&bad, lines.join("\n") + "\n").expect("write");
    let json = dir.join("out.json");
    std::fs::write(&json, "keep me").expect("write");
    let out = tlbemu(&["trace", "export", "--chrome", s(&bad), s(&json), "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bad.trace:"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&json).expect("read"), "keep me");
    assert_eq!(
        listing(&dir),
        vec!["bad.trace".to_string(), "out.json".into()]
    );
}
