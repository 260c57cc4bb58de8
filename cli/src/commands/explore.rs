//! `tlbemu explore SCENARIO`: search the interleavings for stale uses, dead
//! cores, hangs and broken invariants, and write each minimised finding as a
//! scenario (with its trace and a Chrome/Perfetto export); `tlbemu explore merge`
//! unions the reports of shards.

use super::{check_output, write_output};
use crate::interrupt::Cancel;
use crate::{EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK};
use clap::{Args, Subcommand, ValueEnum};
use emu::explore::{self, Config, Found, Report, Strategy};
use emu::scenario::{prepare, prepare_for, Mode};
use emu::trace::{self, Inputs};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The strategies, as the command line names them.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StrategyArg {
    /// Probabilistic concurrency testing (priority change points).
    Pct,
    /// Every schedule within a bound on deviations, deepening.
    Bounded,
    /// A random runnable core at each point.
    Random,
}

/// Arguments of `tlbemu explore`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ExploreArgs {
    #[command(subcommand)]
    merge: Option<MergeCmd>,
    /// The scenario file (.ron); its `schedule` and `expect` are ignored.
    #[arg(required = true)]
    scenario: Option<PathBuf>,
    /// Search strategy.
    #[arg(long, value_enum, default_value = "pct")]
    strategy: StrategyArg,
    /// PCT: the bug depth searched for (≥ 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    depth: u32,
    /// Bounded: the largest number of preemptions (deviations from the default
    /// scheduler, fills included).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=16))]
    preemptions: u32,
    /// PCT and random: schedules to run; bounded: a cap on schedules.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Stop after this many seconds (the findings then depend on the host's
    /// speed; use --runs for reproducible searches).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    time: Option<f64>,
    /// Seed of the search's random choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Host threads (the report is the same for every value).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// This process's part of the search, I/N (0 ≤ I < N).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Also choose speculative fills and evictions at scheduling points.
    #[arg(long)]
    fills: bool,
    /// Bounded: do not prune states already searched.
    #[arg(long)]
    no_prune: bool,
    /// Write each finding's scenario to FILE (the second as FILE-2.ron, …), with
    /// its trace (.trace) and a Chrome/Perfetto export (.chrome.json) beside it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
    /// Print the `tlbemu-explore/1` report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum MergeCmd {
    /// Union the JSON reports of shards of one search; prints the merged report.
    Merge {
        /// The reports (`tlbemu explore --json` output of each shard).
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e7 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a number of seconds (expected a positive number, like 30 or 0.5)"
        )),
    }
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("`{s}` is not a shard (expected I/N with 0 <= I < N, like 0/4)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<u64>().map_err(|_| bad())?,
        n.trim().parse::<u64>().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Runs the command and returns the exit code.
pub fn run(a: ExploreArgs) -> u8 {
    if let Some(MergeCmd::Merge { reports }) = &a.merge {
        return merge(reports);
    }
    let Some(path) = a.scenario.clone() else {
        eprintln!("error: expected a scenario file");
        return EXIT_BAD_INPUT;
    };
    let (s, _src, plan) = match prepare_for(&path, Mode::Unscripted) {
        Ok(x) => x,
        Err(d) => {
            eprintln!("{}", d.rendered());
            return EXIT_BAD_INPUT;
        }
    };
    let cfg = Config {
        strategy: match a.strategy {
            StrategyArg::Pct => Strategy::Pct,
            StrategyArg::Bounded => Strategy::Bounded,
            StrategyArg::Random => Strategy::Random,
        },
        depth: a.depth,
        preemptions: a.preemptions,
        runs: a.runs,
        seed: a.seed,
        shard: a.shard.unwrap_or((0, 1)),
        fills: a.fills,
        prune: !a.no_prune,
        max_findings: 0,
    };
    let jobs = a.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| j as usize,
    );
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot start {jobs} threads: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let cancel = Cancel::install();
    // The deadline and the bar read the wall clock; neither reaches the report.
    let deadline = a.time.map(|t| Instant::now() + Duration::from_secs_f64(t));
    let stop = move || cancel.requested() || deadline.is_some_and(|d| Instant::now() >= d);
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg} {human_pos} schedules, {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    });
    let strategy = cfg.strategy;
    let progress = |p: explore::Progress| {
        if let Some(b) = &bar {
            b.set_position(p.schedules);
            b.set_message(match strategy {
                Strategy::Bounded => format!("K={} findings={}", p.bound, p.findings),
                _ => format!("findings={}", p.findings),
            });
        }
    };
    let mut report = pool.install(|| explore::explore(&plan, &cfg, &stop, &progress));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(out) = &a.out {
        for (i, f) in report.findings.iter_mut().enumerate() {
            match write_finding(&path, &s, &plan, f, out, i, a.force) {
                Ok(files) => f.files = files,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_BAD_INPUT;
                }
            }
        }
    }
    if a.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: cannot write the report as JSON: {e}");
                return EXIT_BAD_INPUT;
            }
        }
    } else {
        print!("{}", text(&report));
    }
    if report.findings.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// `out` for finding `i`: `out` itself for the first, `stem-N.ext` after.
fn finding_path(out: &Path, i: usize) -> PathBuf {
    if i == 0 {
        return out.to_path_buf();
    }
    let stem = out.file_stem().map_or_else(
        || "finding".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let ext = out
        .extension()
        .map_or_else(|| "ron".to_string(), |e| e.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}-{}.{ext}", i + 1))
}

/// Writes finding `i` as a scenario, checks that `run` reproduces it, and writes
/// its trace and Chrome export. Returns the files written.
fn write_finding(
    scenario: &Path,
    s: &emu::scenario::Scenario,
    plan: &Arc<emu::scenario::Plan>,
    f: &Found,
    out: &Path,
    i: usize,
    force: bool,
) -> Result<Vec<String>, String> {
    let file = finding_path(out, i);
    let tr = file.with_extension("trace");
    let chrome = file.with_extension("chrome.json");
    for p in [&file, &tr, &chrome] {
        check_output(p, force)?;
    }
    let mut sc = explore::finding_scenario(s, plan, f).map_err(|e| format!("error: {e}"))?;
    let from = scenario.parent().unwrap_or(Path::new("."));
    let to = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    emu::debug::rebase_code_paths(&mut sc, from, to);
    let text = emu::debug::to_ron(&sc).map_err(|e| format!("error: {e}"))?;
    write_output(&file, &text, force)?;
    let (s2, src2, plan2) = prepare(&file).map_err(|d| d.rendered())?;
    if !explore::reproduces(&plan2, &f.signature) {
        return Err(format!(
            "{}: error: the written scenario does not reproduce the finding (a bug of tlbemu; please report it)",
            file.display()
        ));
    }
    let inputs = Inputs::of(&file, &src2, &s2)?;
    let rec = trace::record(&file.display().to_string(), inputs, &plan2);
    write_output(&tr, &rec.trace.to_text(), force)?;
    write_output(&chrome, &trace::chrome::export(&rec.trace), force)?;
    Ok([file, tr, chrome]
        .iter()
        .map(|p| p.display().to_string())
        .collect())
}

/// The report for a terminal.
fn text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "explore {}: {:?}, seed {}, shard {}/{}: {} schedules ({} distinct, {} pruned), {} scheduling points in the default schedule",
        r.scenario, r.strategy, r.seed, r.shard.0, r.shard.1, r.schedules, r.distinct, r.pruned, r.points
    );
    if r.strategy == Strategy::Bounded {
        let _ = writeln!(
            o,
            "bounded search to {} deviation(s): {}",
            r.bound,
            if r.exhaustive {
                "exhaustive"
            } else {
                "NOT exhaustive (a cap or the time ran out)"
            }
        );
    }
    for (i, f) in r.findings.iter().enumerate() {
        let s = &f.signature;
        let _ = writeln!(
            o,
            "\nfinding {}: {:?} on core {} (page {:#x}, pcid {}, write at {:#x}, use at {:#x}); first in schedule {}; minimised to {} preemption(s), {} fill(s), {} steps",
            i + 1,
            s.kind,
            s.core,
            s.page,
            s.pcid,
            s.write_rip,
            s.use_rip,
            f.schedule_index,
            f.preemptions,
            f.fills,
            f.steps
        );
        for l in f.explanation.lines() {
            let _ = writeln!(o, "  {l}");
        }
        for file in &f.files {
            let _ = writeln!(o, "  wrote {file}");
        }
    }
    match (&r.guarantee, r.findings.len()) {
        (Some(g), _) => {
            let _ = writeln!(o, "\nresult: nothing found; {g}");
        }
        (None, 0) => {
            let _ = writeln!(o, "\nresult: nothing found");
        }
        (None, n) => {
            let _ = writeln!(o, "\nresult: {n} finding(s)");
        }
    }
    o
}

fn merge(paths: &[PathBuf]) -> u8 {
    let mut reports = Vec::new();
    for p in paths {
        let bytes = match emu::files::read_regular(p, 64 << 20) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: error: cannot read the report: {e}", p.display());
                return EXIT_BAD_INPUT;
            }
        };
        match serde_json::from_slice::<Report>(&bytes) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!(
                    "{}:{}:{}: error: not a {} report: {e}",
                    p.display(),
                    e.line(),
                    e.column(),
                    explore::FORMAT
                );
                return EXIT_BAD_INPUT;
            }
        }
    }
    match explore::merge(&reports) {
        Ok(m) => {
            match serde_json::to_string_pretty(&m) {
                Ok(j) => println!("{j}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_BAD_INPUT;
                }
            }
            if m.findings.is_empty() {
                EXIT_OK
            } else {
                EXIT_FAIL
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}
