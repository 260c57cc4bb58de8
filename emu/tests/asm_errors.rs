//! Malformed inputs, one per line of `tests/asm/errors.txt`; each error's position and
//! message is an insta snapshot (rendered with a caret under the column, so a wrong column
//! is visible in review).

use emu::asm::{assemble, AsmOptions, NoSymbols, Syntax};
use std::path::Path;

fn render(src: &str, syntax: Syntax) -> String {
    match assemble(
        src,
        &AsmOptions {
            syntax,
            base: 0,
            symbols: &NoSymbols,
        },
    ) {
        Ok(a) => format!("unexpectedly assembled to {} bytes", a.bytes.len()),
        Err(e) => {
            let line = src.lines().nth(e.line as usize - 1).unwrap_or("");
            let caret = " ".repeat(e.col as usize - 1) + "^";
            format!("{}:{}: {}\n{line}\n{caret}", e.line, e.col, e.kind)
        }
    }
}

#[test]
fn error_cases() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asm/errors.txt");
    let text = std::fs::read_to_string(&path).expect("read errors.txt");
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(3, " | ").collect();
        let [name, syntax, src] = parts[..] else {
            panic!("errors.txt:{}: expected `name | syntax | source`", i + 1)
        };
        let syntax = match syntax {
            "att" => Syntax::Att,
            "intel" => Syntax::Intel,
            other => panic!("errors.txt:{}: unknown syntax {other}", i + 1),
        };
        let src = src.replace("\\n", "\n");
        let rendered = render(&src, syntax);
        insta::with_settings!({
            snapshot_path => "asm/snapshots",
            description => format!("errors.txt:{}: {src}", i + 1),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, rendered);
        });
        n += 1;
    }
    assert!(n >= 25, "only {n} error cases");
}
