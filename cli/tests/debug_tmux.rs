//! End to end: the real `tlbemu debug` TUI in a tmux pane, driven by keys. Step
//! the DragonFly 2017 scenario to its stale use, step back, step forward, save
//! the schedule; `tlbemu run` on the saved file reproduces the same stale use,
//! and the terminal is back in canonical mode after quitting.
//!
//! Fails (does not skip) when tmux is missing. Every wait polls `capture-pane`
//! a bounded number of times; a private tmux socket keeps other servers alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(50);
const TRIES: u32 = 400; // 20 s per wait at most

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"))
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "dbg"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "dbg"];
        args.extend_from_slice(keys);
        let o = self.cmd(&args);
        assert!(o.status.success(), "send-keys {keys:?} failed");
    }

    /// Types a literal string (no key-name interpretation).
    fn type_text(&self, text: &str) {
        let o = self.cmd(&["send-keys", "-t", "dbg", "-l", text]);
        assert!(o.status.success(), "send-keys -l {text:?} failed");
    }

    fn wait_for(&self, what: &str) -> String {
        let mut last = String::new();
        for _ in 0..TRIES {
            last = self.screen();
            if last.contains(what) {
                return last;
            }
            std::thread::sleep(POLL);
        }
        panic!("timed out waiting for {what:?}; the screen was:\n{last}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stale_line(run_stdout: &str) -> String {
    run_stdout
        .lines()
        .find(|l| l.trim_start().starts_with("stale use on core"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| panic!("no stale use in:\n{run_stdout}"))
}

fn run_scenario(p: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_tlbemu"))
        .arg("run")
        .arg(p)
        .output()
        .unwrap_or_else(|e| panic!("tlbemu run: {e}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn tui_steps_to_the_stale_use_steps_back_and_saves_a_replayable_schedule() {
    let version = Command::new("tmux").arg("-V").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "tmux is required for this test and was not found: {version:?}"
    );
    let dir = std::env::temp_dir().join(format!("tlbemu-tmux-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let saved = dir.join("saved.ron");
    let scenario = root().join("scenarios/dragonfly-2017-swtch-pmactive-buggy.ron");
    let bin = env!("CARGO_BIN_EXE_tlbemu");
    // After the UI exits, report its exit code and whether the tty is canonical
    // again, then wait so the pane can still be read.
    let shell = format!(
        "'{bin}' debug '{}'; echo \"EXITED $?\"; stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon'; sleep 30",
        scenario.display()
    );
    let t = Tmux {
        socket: format!("tlbemu-e2e-{}", std::process::id()),
    };
    let o = t.cmd(&[
        "new-session",
        "-d",
        "-x",
        "200",
        "-y",
        "50",
        "-s",
        "dbg",
        "sh",
        "-c",
        &shell,
    ]);
    assert!(
        o.status.success(),
        "tmux new-session failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    t.wait_for("? help");
    t.wait_for("step 0/0");

    // The investigation: who clears pm_active, then who reads it on core 1
    // (two commands each, where stepping by hand took 34).
    t.keys(&[":"]);
    t.type_text("watch pmap_p w");
    t.keys(&["Enter"]);
    t.wait_for("breakpoint 1: watch write of pmap_p");
    t.keys(&["c"]);
    t.wait_for("core 0 write pmap_p 0x7 {0,1,2} -> 0x6 {1,2} (cleared {0})");
    t.keys(&[":"]);
    t.type_text("delete");
    t.keys(&["Enter"]);
    t.keys(&[":"]);
    t.type_text("watch pmap_p+PM_ACTIVE r core 1");
    t.keys(&["Enter"]);
    t.wait_for("core 1");
    t.keys(&["c"]);
    t.wait_for("core 1 read pmap_p+PM_ACTIVE = 0x6 {1,2}");
    t.keys(&[":"]);
    t.type_text("delete");
    t.keys(&["Enter"]);
    t.wait_for("deleted 1 breakpoint(s)");

    // Break on the stale use and follow the schedule to it.
    t.keys(&[":"]);
    t.type_text("break stale");
    t.keys(&["Enter"]);
    t.wait_for("breakpoint 3: stale use");
    t.keys(&["c"]);
    let at_stale = t.wait_for("stale 1 | violations 1");
    assert!(at_stale.contains("STALE"), "{at_stale}");

    // Which core still holds 0x400000: the overlay, and the walk pane after it.
    t.keys(&[":"]);
    t.type_text("who 0x400000");
    t.keys(&["Enter"]);
    let who = t.wait_for("who caches va 0x400000");
    assert!(
        who.contains("core 2 (current pcid 0x0): 4 entries"),
        "{who}"
    );
    t.keys(&["x"]);
    t.wait_for("who caches it");

    // One step back: the stale use has not happened there.
    t.keys(&["b"]);
    let back = t.wait_for("back 1 step(s)");
    assert!(back.contains("stale 0 | violations 0"), "{back}");
    // Forward again by stepping the focused core (core 0 is the reader).
    t.keys(&["s"]);
    t.wait_for("stale 1 | violations 1");

    // Save the schedule; saving again asks before overwriting.
    t.keys(&[":"]);
    t.type_text(&format!("save {}", saved.display()));
    t.keys(&["Enter"]);
    t.wait_for("decision(s) to");
    t.keys(&[":"]);
    t.type_text(&format!("save {}", saved.display()));
    t.keys(&["Enter"]);
    t.wait_for("overwrite it? (y/n)");
    t.keys(&["n"]);
    t.wait_for("not saved");

    t.keys(&["q"]);
    let after = t.wait_for("EXITED");
    assert!(after.contains("EXITED 0"), "{after}");
    let after = t.wait_for("icanon");
    assert!(
        after.lines().any(|l| l.trim() == "icanon"),
        "the terminal was left in raw mode:\n{after}"
    );

    let original = run_scenario(&scenario);
    let replayed = run_scenario(&saved);
    assert_eq!(stale_line(&replayed), stale_line(&original));
    assert!(replayed.contains("result: PASS"), "{replayed}");
    let _ = std::fs::remove_dir_all(&dir);
}
