//! `tlbemu exec`: raw machine code on one core of the default machine.

use crate::{EXIT_BAD_INPUT, EXIT_OK};
use clap::Args;
use emu::exec::{run as run_code, ExecRequest, DEFAULT_BASE, DEFAULT_MAX_STEPS};

/// Arguments of `tlbemu exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The code as hex bytes ("4801d8f4"; spaces, commas and a 0x prefix are allowed).
    #[arg(long, value_name = "HEX")]
    code_hex: String,
    /// Address where the code is loaded and execution starts.
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_BASE, value_parser = parse_u64)]
    base: u64,
    /// Set a register before running (any GPR, rip, rflags, cr0..cr8, efer, fs_base, gs_base).
    #[arg(long = "set", value_name = "REG=VALUE", value_parser = parse_set)]
    set: Vec<(String, u64)>,
    /// Stop after this many instructions.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_STEPS, value_parser = parse_u64)]
    max_steps: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Parses a decimal or 0x-prefixed hexadecimal number (underscores allowed).
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        t.parse::<u64>()
    };
    r.map_err(|_| format!("`{s}` is not a number (expected decimal or 0x-prefixed hex)"))
}

fn parse_set(s: &str) -> Result<(String, u64), String> {
    let (reg, val) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not REG=VALUE (for example rax=0x10)"))?;
    Ok((reg.trim().to_ascii_lowercase(), parse_u64(val)?))
}

/// Parses hex bytes, tolerating whitespace, commas and `0x` prefixes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let bytes = emu::scenario::parse_hex(s).map_err(|e| format!("--code-hex: {e}"))?;
    if bytes.is_empty() {
        return Err("--code-hex: no bytes given".into());
    }
    Ok(bytes)
}

/// Runs the command and returns the exit code.
pub fn run(a: ExecArgs) -> u8 {
    let code = match parse_hex(&a.code_hex) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let req = ExecRequest {
        code,
        base: a.base,
        set: a.set,
        max_steps: a.max_steps,
    };
    match run_code(&req) {
        Ok(rep) => {
            if a.json {
                println!("{}", rep.to_json());
            } else {
                print!("{}", rep.to_text());
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}
