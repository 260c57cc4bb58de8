//! Every source file the documentation names exists: the README, docs/, the
//! other Markdown files of the tree and the comments and doc comments of every
//! Rust file. A name is a token ending in `.rs` (`expect.rs`, `insn/bit.rs`,
//! `emu/src/scenario/schema.rs`); it must be the tail of a file in the tree, so a
//! module that is renamed, moved or never written fails here instead of leaving
//! a promise in prose.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the emu crate sits in the workspace")
        .to_path_buf()
}

/// Every file under `dir`, as a path relative to the workspace with `/`
/// separators, skipping build output and version control.
fn files(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().expect("file type").is_dir() {
            files(&e.path(), &path, out);
        } else {
            out.push(path);
        }
    }
}

/// The `.rs` names in `text`, with the line each is on.
fn rs_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let tokens = line.split(|c: char| !(c.is_ascii_alphanumeric() || "_/.-".contains(c)));
        for t in tokens {
            let t = t.trim_start_matches("./").trim_end_matches('.');
            if t.len() > 3 && t.ends_with(".rs") && !t.starts_with('.') {
                out.push((i + 1, t.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_module_the_docs_name_exists() {
    let root = root();
    let mut all = Vec::new();
    files(&root, "", &mut all);
    let exists = |name: &str| {
        all.iter()
            .any(|f| f == name || f.ends_with(&format!("/{name}")))
    };
    let mut checked = 0;
    let mut missing = Vec::new();
    for f in &all {
        let text = match f.rsplit_once('.').map(|(_, ext)| ext) {
            Some("md") => std::fs::read_to_string(root.join(f)).expect("read a Markdown file"),
            // Only comments and doc comments: code may build file names on purpose.
            Some("rs") => std::fs::read_to_string(root.join(f))
                .expect("read a Rust file")
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with("//") {
                        l
                    } else {
                        ""
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
            _ => continue,
        };
        for (line, name) in rs_names(&text) {
            checked += 1;
            if !exists(&name) {
                missing.push(format!("{f}:{line}: `{name}`"));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} names found: is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "the docs name source files that do not exist:\n{}",
        missing.join("\n")
    );
}
