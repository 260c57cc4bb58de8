//! Saving a session as a scenario: the same machine, spaces and code, with the
//! schedule replaced by the decisions the session took (so `tlbemu run` replays
//! it exactly) and the expectations replaced by what the session observed.

use crate::scenario::schema::{Expect, KindSpec, Sched, Value};
use crate::scenario::{Decision, Scenario, StaleRecord};
use mmu::WalkResult;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a save failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The file exists and overwriting was not confirmed.
    #[error("{} exists; overwrite it with `save! {}` (or `save {} --force`)", .0.display(), .0.display(), .0.display())]
    Exists(PathBuf),
    /// Nothing to save yet.
    #[error("nothing to save: no steps have been taken (the schedule would be empty)")]
    Empty,
    /// Serialising failed.
    #[error("cannot write the scenario as RON: {0}")]
    Ron(String),
    /// The file system said no.
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn kind_of(r: &StaleRecord) -> KindSpec {
    match (&r.detail.access, &r.detail.cached) {
        (Some(a), WalkResult::Leaf { .. }) => match a.kind {
            mmu::AccessKind::Read => KindSpec::Read,
            mmu::AccessKind::Write => KindSpec::Write,
            mmu::AccessKind::Execute => KindSpec::Execute,
        },
        _ => KindSpec::Walk,
    }
}

/// The scenario that replays `decisions` on `orig`'s machine. Relative `file`
/// paths of code sections are rewritten for the new location (`from_dir` is the
/// original scenario's directory, `to_dir` the saved file's).
pub fn saved_scenario(
    orig: &Scenario,
    decisions: &[Decision],
    stale: &[StaleRecord],
    violations: usize,
    from_dir: &Path,
    to_dir: &Path,
) -> Result<Scenario, SaveError> {
    if decisions.is_empty() {
        return Err(SaveError::Empty);
    }
    let mut s = orig.clone();
    s.name = format!("{}-session", orig.name);
    let steps: u64 = decisions
        .iter()
        .map(|d| match d {
            Decision::Step { n, .. } => *n,
            _ => 0,
        })
        .sum();
    s.description = format!(
        "Saved by `tlbemu debug` from `{}` after {steps} machine step(s): the schedule replays the session exactly; the expectations are what it observed.",
        orig.name
    );
    s.schedule = decisions
        .iter()
        .map(|d| match d {
            Decision::Step { core, n } => Sched::Step {
                core: *core as usize,
                n: *n,
            },
            Decision::Evict { core, va } => Sched::Evict {
                core: *core as usize,
                va: Value::Num(*va),
            },
            Decision::Fill { core, va } => Sched::Fill {
                core: *core as usize,
                va: Value::Num(*va),
            },
        })
        .collect();
    let mut expect: Vec<Expect> = Vec::new();
    for r in stale {
        let e = Expect::StaleUse {
            core: Some(r.detail.ctx.core as usize),
            va: Some(Value::Num(r.detail.va.raw() & !0xfff)),
            kind: Some(kind_of(r)),
        };
        if !expect.contains(&e) {
            expect.push(e);
        }
    }
    expect.push(Expect::Violations(violations));
    s.expect = expect;
    rebase_code_paths(&mut s, from_dir, to_dir);
    Ok(s)
}

/// Rewrites the relative `file` paths of `s`'s code sections, written relative
/// to `from_dir`, for a scenario saved in `to_dir`: relative to `to_dir` when
/// one directory lies inside the other, else absolute.
pub fn rebase_code_paths(s: &mut Scenario, from_dir: &Path, to_dir: &Path) {
    if from_dir == to_dir {
        return;
    }
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let to = canon(to_dir);
    for c in &mut s.code {
        if let Some(f) = &c.file {
            let p = Path::new(f);
            if p.is_relative() {
                let abs = canon(&from_dir.join(p));
                c.file = Some(relative_to(&abs, &to).display().to_string());
            }
        }
    }
}

/// `path` relative to `dir` (both absolute): through `..` components when they
/// share a prefix, else `path` itself.
fn relative_to(path: &Path, dir: &Path) -> PathBuf {
    let (p, d): (Vec<_>, Vec<_>) = (path.components().collect(), dir.components().collect());
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return path.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out
}

/// The scenario as RON text, in the style scenario files are written in.
pub fn to_ron(s: &Scenario) -> Result<String, SaveError> {
    let cfg = ron::ser::PrettyConfig::new()
        .depth_limit(4)
        .struct_names(true)
        .extensions(ron::extensions::Extensions::IMPLICIT_SOME);
    ron::ser::to_string_pretty(s, cfg).map_err(|e| SaveError::Ron(e.to_string()))
}

/// Writes `text` to `path`; an existing file is replaced only with `force`
/// (without it the file is created exclusively, so a race cannot clobber one).
pub fn write_new(path: &Path, text: &str, force: bool) -> Result<(), SaveError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            SaveError::Exists(path.to_path_buf())
        } else {
            SaveError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    f.write_all(text.as_bytes()).map_err(|e| SaveError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}
