//! Scenario problems and how they are shown: `file:line:col: error: message`.

use super::locate::{Locations, Pos};
use super::schema::Code;
use crate::asm::AsmError;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where inside the scenario an assembler error is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AsmAt {
    /// Inside the `asm` string of `code[section]`.
    Inline(usize),
    /// Inside a `.s` file named by `code[section].file`.
    File(usize, String),
}

/// Something wrong with a scenario, located by the path of the value at fault
/// (`cores[1].rip`) or, for assembly, by line and column inside the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending value.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    asm: Option<(AsmAt, u32, u32)>,
}

impl Problem {
    /// A problem with the value at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
            asm: None,
        }
    }

    /// An assembler error in `code[section]`.
    pub fn asm(section: usize, code: &Code, e: AsmError) -> Self {
        let at = match &code.file {
            Some(f) => AsmAt::File(section, f.clone()),
            None => AsmAt::Inline(section),
        };
        Problem {
            path: format!("code[{section}].asm"),
            message: e.kind.to_string(),
            asm: Some((at, e.line, e.col)),
        }
    }
}

/// A scenario file's text with its value locations.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path as given.
    pub path: PathBuf,
    /// Contents.
    pub text: String,
    /// Value locations.
    pub locations: Locations,
}

impl Source {
    /// Wraps file contents.
    pub fn new(path: &Path, text: String) -> Self {
        let locations = Locations::scan(&text);
        Source {
            path: path.to_path_buf(),
            text,
            locations,
        }
    }
}

/// A located, printable error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// File.
    pub file: String,
    /// Line and column (1-based; 0 when not known).
    pub pos: Pos,
    /// Message.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.pos.line, self.pos.col, self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// Byte offset in the file of (line, col) of a string value's contents, decoding
/// escapes when the string is not raw.
fn offset_in_string(src: &str, content_start: usize, raw: bool, line: u32, col: u32) -> usize {
    let (mut l, mut c) = (1u32, 1u32);
    let bytes = src.as_bytes();
    let mut i = content_start;
    while i < bytes.len() {
        if l == line && c == col {
            return i;
        }
        let ch = src[i..].chars().next().unwrap_or('\0');
        let mut len = ch.len_utf8();
        let mut decoded = ch;
        if !raw && ch == '\\' {
            let next = src[i + 1..].chars().next().unwrap_or('\0');
            len += next.len_utf8();
            decoded = match next {
                'n' => '\n',
                other => other,
            };
        } else if !raw && ch == '"' {
            break;
        }
        if decoded == '\n' {
            if l == line {
                return i;
            }
            l += 1;
            c = 1;
        } else {
            c += 1;
        }
        i += len;
    }
    i.min(bytes.len())
}

impl Problem {
    /// Locates the problem in `src` (the scenario) for printing.
    pub fn locate(&self, src: &Source) -> Diagnostic {
        let file = src.path.display().to_string();
        if let Some((at, line, col)) = &self.asm {
            match at {
                AsmAt::File(_, f) => {
                    let p = src.path.parent().unwrap_or(Path::new(".")).join(f);
                    return Diagnostic {
                        file: p.display().to_string(),
                        pos: Pos {
                            line: *line,
                            col: *col,
                        },
                        message: self.message.clone(),
                    };
                }
                AsmAt::Inline(i) => {
                    if let Some(span) = src.locations.find(&format!("code[{i}].asm")) {
                        if let Some((start, raw)) = span.string {
                            let off = offset_in_string(&src.text, start, raw, *line, *col);
                            return Diagnostic {
                                file,
                                pos: src.locations.pos_of(off, &src.text),
                                message: self.message.clone(),
                            };
                        }
                    }
                }
            }
        }
        let pos = src
            .locations
            .find(&self.path)
            .map(|s| s.start)
            .unwrap_or_default();
        Diagnostic {
            file,
            pos,
            message: self.message.clone(),
        }
    }
}
