//! Loading, building and compiling the scenarios under scenarios/features for
//! the oracle and hang tests, with every failure a panic that names the file.
#![allow(dead_code)]

use emu::scenario::{build, load, validate, Plan, Scenario};
use std::path::PathBuf;
use std::sync::Arc;

/// scenarios/features.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/features")
}

/// A features scenario, parsed.
pub fn scenario(name: &str) -> Scenario {
    let p = dir().join(name);
    load(&p)
        .unwrap_or_else(|d| panic!("{}: {d:?}", p.display()))
        .0
}

/// `s` built (relative to scenarios/features), checked and compiled.
pub fn plan(s: &Scenario) -> Arc<Plan> {
    let b = build(s, &dir()).unwrap_or_else(|p| panic!("{}: build: {p:?}", s.name));
    validate(s, &b).unwrap_or_else(|p| panic!("{}: validate: {p:?}", s.name));
    Arc::new(Plan::compile(s, b).unwrap_or_else(|p| panic!("{}: compile: {p:?}", s.name)))
}
