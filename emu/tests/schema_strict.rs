//! The scenario schema refuses what it does not know, everywhere.
//!
//! The format promises that an unknown field is an error in every struct and in
//! every struct-like enum variant (`StaleUse(core: 0, vaa: 0x999000)` must not
//! silently mean `StaleUse(core: 0)`). serde ignores unknown fields unless a type
//! says `#[serde(deny_unknown_fields)]`, and for an enum that attribute sits on
//! the enum, not on its variants, so it is easy to forget when a type is added.
//! `every_schema_type_denies_unknown_fields` walks the schema's source and fails
//! for any deserialisable type without it; the other tests show that the
//! attribute does what the walk assumes, in structs and in enum variants.

use emu::scenario::parse;
use std::path::Path;

const SCHEMA: &str = include_str!("../src/scenario/schema.rs");

#[test]
fn every_schema_type_denies_unknown_fields() {
    let lines: Vec<&str> = SCHEMA.lines().collect();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (i, l) in lines.iter().enumerate() {
        if !(l.starts_with("#[derive(") && l.contains("Deserialize")) {
            continue;
        }
        // The attributes between the derive and the item.
        let mut j = i + 1;
        let mut attrs = Vec::new();
        while j < lines.len() && !lines[j].starts_with("pub ") {
            attrs.push(lines[j]);
            j += 1;
        }
        let Some(item) = lines.get(j) else { break };
        seen += 1;
        // An untagged enum chooses a variant by shape; its variants are newtypes
        // (a number or a string), which have no fields to deny.
        let untagged = attrs.iter().any(|a| a.contains("untagged"));
        if !untagged && !attrs.iter().any(|a| a.contains("deny_unknown_fields")) {
            missing.push(format!("schema.rs:{}: {}", j + 1, item.trim()));
        }
    }
    assert!(
        seen >= 20,
        "found only {seen} schema types; did the walk break?"
    );
    assert!(
        missing.is_empty(),
        "these schema types accept unknown fields; add #[serde(deny_unknown_fields)]:\n{}",
        missing.join("\n")
    );
}

/// A scenario with `extra` inside its schedule and expectations.
fn scenario(schedule: &str, expect: &str) -> String {
    format!(
        r#"Scenario(
    name: "strict",
    machine: (cores: 1),
    address_spaces: {{ "k": (mappings: [(va: 0x400000, pa: 0x200000, len: 0x1000, flags: [P, RW])]) }},
    code: [ (at: 0x400000, asm: "start: hlt") ],
    cores: [ (rip: "start", cr3: "k") ],
    schedule: [ {schedule} ],
    expect: [ {expect} ],
)"#
    )
}

fn parse_err(text: String) -> String {
    match parse(Path::new("strict.ron"), text) {
        Ok(_) => panic!("accepted a scenario with an unknown field"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn unknown_fields_in_enum_variants_are_errors() {
    let cases = [
        (
            "Run(core: 0, until: Halt)",
            "StaleUse(core: 0, vaa: 0x999000)",
            "vaa",
        ),
        ("Run(core: 0, until: Halt)", "NoStaleUse(cores: 0)", "cores"),
        (
            "Run(core: 0, until: Halt)",
            "Mem(at: 0x400000, value: 0, sise: 4)",
            "sise",
        ),
        ("Run(core: 0, untill: Halt)", "Halted(0)", "untill"),
        ("Step(core: 0, n: 1, m: 2)", "Halted(0)", "`m`"),
        (
            "RoundRobin(cores: [0], quantum: 1, until: Halt, fair: true)",
            "Halted(0)",
            "fair",
        ),
    ];
    for (sched, expect, field) in cases {
        let e = parse_err(scenario(sched, expect));
        assert!(e.contains(field), "{sched} / {expect}: {e}");
        assert!(e.starts_with("strict.ron:"), "not located: {e}");
    }
}

#[test]
fn the_same_scenario_without_the_unknown_field_parses() {
    let text = scenario(
        "Run(core: 0, until: Halt)",
        "StaleUse(core: 0, va: 0x999000)",
    );
    assert!(parse(Path::new("strict.ron"), text).is_ok());
}
