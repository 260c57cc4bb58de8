//! Watched words: accesses recorded with old and new values, listed between a
//! stale entry's fill and its use, the mask read that left the using core out,
//! `watch` events, and located errors for words that cannot be resolved.

use emu::scenario::schema::{Value, Watch};
use emu::scenario::{build, load, prepare, run, validate, Plan, RunReport, Scenario};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scenario(rel: &str) -> (Scenario, PathBuf) {
    let p = root().join(rel);
    let s = load(&p)
        .unwrap_or_else(|d| panic!("{}: {d:?}", p.display()))
        .0;
    (s, p.parent().expect("dir").to_path_buf())
}

fn compile(s: &Scenario, dir: &Path) -> Result<Plan, emu::scenario::Problem> {
    let b = build(s, dir).unwrap_or_else(|p| panic!("{}: build: {p:?}", s.name));
    validate(s, &b)?;
    Plan::compile(s, b)
}

fn go(s: &Scenario, dir: &Path, record: bool) -> RunReport {
    let plan = compile(s, dir).unwrap_or_else(|p| panic!("{}: {p:?}", s.name));
    run(&Arc::new(plan), record)
}

#[test]
fn dragonfly_names_the_pm_active_read_that_missed_core_0() {
    let (s, dir) = scenario("scenarios/dragonfly-2017-swtch-pmactive-buggy.ron");
    let r = go(&s, &dir, false);
    assert!(r.passed(true), "{}", r.to_text(true));
    let u = &r.stale_uses[0];
    assert_eq!(u.detail.ctx.core, 0);
    let m = u.missed.first().expect("a read of pm_active missed core 0");
    assert_eq!((m.read.core, m.read.new, m.core), (1, 0b110, 0));
    assert!(m.cleared_by.core == 0 && m.cleared_by.step < m.read.step);
    assert_eq!(m.cleared_by.cleared(), 1);
    let again = m.set_again_by.as_ref().expect("core 0 sets its bit again");
    assert!(again.step > m.read.step && again.step < u.detail.ctx.step);
    assert_eq!(again.set(), 1);
    let text = r.to_text(true);
    let want = format!(
        "missed: core 1 read pm_active = {{1,2}} at step {} <excl_taken+0x5> while core 0's bit was clear (cleared at step {} <cpu_heavy_switch+0x46>, set again at step {} <cpu_heavy_restore+0x10>)",
        m.read.step, m.cleared_by.step, again.step
    );
    assert!(text.contains(&want), "{text}");
}

#[test]
fn every_access_between_fill_and_use_is_listed_with_its_values() {
    let (s, dir) = scenario("scenarios/features/watch.ron");
    let r = go(&s, &dir, true);
    assert!(r.passed(true), "{}", r.to_text(true));
    let w = &r.stale_uses[0].watched;
    let seen: Vec<(u32, bool, u64, u64)> =
        w.iter().map(|a| (a.core, a.write, a.old, a.new)).collect();
    assert_eq!(
        seen,
        vec![
            (0, false, 3, 3),
            (0, true, 3, 2),
            (1, false, 2, 2),
            (0, false, 2, 2),
            (0, true, 2, 3),
        ]
    );
    let events = r.events.iter().filter(|e| e.kind.name() == "watch").count();
    assert_eq!(events, 5, "each access is a `watch` event in a recording");
}

#[test]
fn without_watched_words_nothing_is_recorded() {
    let (mut s, dir) = scenario("scenarios/features/watch.ron");
    s.watch.clear();
    s.expect.truncate(2);
    let r = go(&s, &dir, true);
    assert!(r.stale_uses[0].watched.is_empty() && r.stale_uses[0].missed.is_empty());
    assert!(r.events.iter().all(|e| e.kind.name() != "watch"));
}

#[test]
fn watched_event_text_shows_the_changed_bits() {
    assert_eq!(
        emu::trace::text::watched("pm_active", true, 7, 6),
        "write pm_active 0x7 {0,1,2} -> 0x6 {1,2} (cleared {0})"
    );
    assert_eq!(
        emu::trace::text::watched("pm_active", false, 6, 6),
        "read pm_active = 0x6 {1,2}"
    );
}

#[test]
fn unresolvable_words_are_located_errors() {
    let (base, dir) = scenario("scenarios/features/watch.ron");
    let cases: [(Watch, &str, &str); 4] = [
        (
            Watch {
                at: Value::Sym("mask".into()),
                space: Some("kk".into()),
                size: None,
            },
            "watch.active.space",
            "unknown address space `kk`",
        ),
        (
            Watch {
                at: Value::Num(0x7000_0000),
                space: Some("k".into()),
                size: None,
            },
            "watch.active.at",
            "is not mapped in address space `k`",
        ),
        (
            Watch {
                at: Value::Sym("mask".into()),
                space: Some("k".into()),
                size: Some(3),
            },
            "watch.active.size",
            "size must be 1, 2, 4 or 8",
        ),
        (
            Watch {
                at: Value::Sym("mask+0xffc".into()),
                space: Some("k".into()),
                size: None,
            },
            "watch.active.at",
            "crosses a page",
        ),
    ];
    for (w, path, msg) in cases {
        let mut s = base.clone();
        s.watch.insert("active".into(), w);
        let p = compile(&s, &dir).expect_err("must not compile");
        assert_eq!(p.path, path);
        assert!(p.message.contains(msg), "{}", p.message);
    }
    // Through the file: the error points at the value.
    let text = std::fs::read_to_string(root().join("scenarios/features/watch.ron")).expect("read");
    let bad = text.replace("space: \"k\") }", "space: \"kk\") }");
    assert_ne!(bad, text);
    let tmp = std::env::temp_dir().join(format!("tlbemu-watch-{}.ron", std::process::id()));
    std::fs::write(&tmp, bad).expect("write");
    let d = match prepare(&tmp) {
        Ok(_) => panic!("an unknown space must not compile"),
        Err(d) => d,
    };
    let _ = std::fs::remove_file(&tmp);
    let line = text
        .lines()
        .position(|l| l.contains("watch: {"))
        .expect("line")
        + 1;
    assert_eq!(d.pos.line as usize, line, "{d}");
    assert!(d.message.contains("did you mean `k`"), "{d}");
}
