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

impl Diagnostic {
    /// The diagnostic as a compiler shows one: the one-line
    /// `file:line:col: error: message` form first (what scripts and editors
    /// parse), then the source line with a caret under the value at fault, then
    /// a `help:` line for each fix the message knows (a suggested name, the
    /// integer to write for a float). The source line is read again from `file`
    /// (a scenario, or the assembly file the error is in); when it cannot be,
    /// only the first line and the help lines are shown.
    pub fn rendered(&self) -> String {
        use annotate_snippets::{Level, Renderer, Snippet};
        let (message, helps) = split_help(&self.message);
        let head = Diagnostic {
            message: message.clone(),
            ..self.clone()
        }
        .to_string();
        let text = if self.pos.line == 0 {
            None
        } else {
            crate::files::read_regular(Path::new(&self.file), super::MAX_SCENARIO_BYTES)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        };
        let line = text.as_deref().and_then(|t| {
            let t = t.strip_prefix('\u{feff}').unwrap_or(t);
            t.lines().nth(self.pos.line as usize - 1)
        });
        let Some(line) = line else {
            let mut out = head;
            for h in &helps {
                out += &format!("\nhelp: {h}");
            }
            return out;
        };
        let span = token_span(line, self.pos.col as usize);
        let (line, span) = window(line, span);
        let mut msg = Level::Error.title(&message).snippet(
            Snippet::source(&line)
                .line_start(self.pos.line as usize)
                .annotation(Level::Error.span(span)),
        );
        for h in &helps {
            msg = msg.footer(Level::Help.title(h));
        }
        let shown = Renderer::plain().render(msg).to_string();
        // The renderer's own title line repeats the message without its
        // location; the located one-line form replaces it.
        let body: Vec<&str> = shown.lines().skip(1).collect();
        format!("{head}\n{}", body.join("\n"))
    }
}

/// At most this many bytes of context on each side of the span are shown.
const CONTEXT: usize = 60;

/// Cuts a long source line (a generated expression can be megabytes) down to
/// the span and some context, marking cuts with `...`, and moves the span to
/// match. Rendering cost then does not grow with the line.
fn window(line: &str, span: std::ops::Range<usize>) -> (String, std::ops::Range<usize>) {
    let span_end = span.end.min(span.start + CONTEXT);
    let mut from = span.start.saturating_sub(CONTEXT);
    while !line.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (span_end + CONTEXT).min(line.len());
    while !line.is_char_boundary(to) {
        to += 1;
    }
    let (pre, post) = (
        if from > 0 { "..." } else { "" },
        if to < line.len() { "..." } else { "" },
    );
    let shown = format!("{pre}{}{post}", &line[from..to]);
    let start = span.start - from + pre.len();
    (shown, start..start + (span_end - span.start))
}

/// Splits the fixes a message suggests out of it: ` (did you mean `x`?)` and
/// `; write it as N or 0xN` become help lines, the rest stays the message.
fn split_help(message: &str) -> (String, Vec<String>) {
    let mut m = message.to_string();
    let mut helps = Vec::new();
    if let Some(i) = m.find(" (did you mean ") {
        if let Some(j) = m[i..].find("?)") {
            let inner = m[i + 2..i + j + 1].to_string();
            m.replace_range(i..i + j + 2, "");
            helps.push(inner);
        }
    }
    if let Some(i) = m.find("; write it as ") {
        helps.push(m[i + 2..].to_string());
        m.truncate(i);
    }
    (m, helps)
}

/// Byte range in `line` of the token starting at 1-based character column
/// `col`: a quoted string whole, else up to the next delimiter; at least one
/// character where the line has one.
fn token_span(line: &str, col: usize) -> std::ops::Range<usize> {
    let start = line
        .char_indices()
        .nth(col.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    let rest = &line[start..];
    let len = if let Some(body) = rest.strip_prefix('"') {
        body.find('"').map_or(rest.len(), |k| k + 2)
    } else {
        rest.find(|c: char| c.is_whitespace() || ",()[]{}:;".contains(c))
            .unwrap_or(rest.len())
    };
    let len = if len == 0 {
        rest.chars().next().map_or(0, char::len_utf8)
    } else {
        len
    };
    start..start + len
}

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

/// What a scenario type is called in messages (`PteFlag` → "page-table flag").
fn type_desc(name: &str) -> String {
    let d = match name {
        "Scenario" => "the scenario",
        "MachineSpec" => "`machine`",
        "TlbSpec" => "`machine.tlb`",
        "PscSpec" => "`machine.psc`",
        "Range" => "`page_tables`",
        "AddressSpace" => "an address space",
        "Mapping" => "a mapping",
        "Data" => "a data item",
        "Code" => "a code section",
        "IdtSpec" => "`idt`",
        "Gate" => "an IDT gate",
        "CoreInit" => "a core entry",
        "Feature" => "CPU feature",
        "Policy" => "TLB policy",
        "ErratumSpec" => "erratum",
        "PteFlag" => "page-table flag",
        "SizeSpec" => "page size",
        "SyntaxSpec" => "assembly syntax",
        "Cr4Bit" => "CR4 bit",
        "Until" => "stop condition",
        "Sched" => "schedule step",
        "Coherence" => "coherence rule",
        "KindSpec" => "access kind",
        "Expect" => "expectation",
        other => return format!("`{other}`"),
    };
    d.to_string()
}

fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// Closest name, comparing without regard to case (so `Rw` suggests `RW`); only
/// names a third of whose letters at most differ, so `Sse` suggests nothing.
fn closest(found: &str, names: &[&str]) -> String {
    let f = found.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for n in names {
        let d = super::build::edit_distance(&f, &n.to_ascii_lowercase());
        if d <= 1.max(found.chars().count() / 3) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, n));
        }
    }
    best.map_or(String::new(), |(_, n)| format!(" (did you mean `{n}`?)"))
}

/// When the last string before `offset` runs over several lines, a hint that it
/// may be missing its closing quote (then everything after it was read as string
/// text, and the error shows up far from the real mistake).
fn open_string_hint(text: &str, offset: usize, locations: &Locations) -> String {
    let b = text.as_bytes();
    let mut i = 0;
    let mut last: Option<(usize, usize)> = None;
    while i < offset.min(b.len()) {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i;
                j += 1;
                while j < b.len() {
                    if b[j] == b'"' && (1..=hashes).all(|k| b.get(j + k) == Some(&b'#')) {
                        j += hashes;
                        break;
                    }
                    j += 1;
                }
                i = j + 1;
                if i <= offset {
                    last = Some((start, j.min(b.len())));
                }
                continue;
            }
            b'"' => {
                let start = i;
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                i = j + 1;
                if i <= offset {
                    last = Some((start, j.min(b.len())));
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    match last {
        Some((start, end)) => {
            let a = locations.pos_of(start, text);
            let z = locations.pos_of(end, text);
            if a.line != z.line {
                format!(
                    "; the string that starts at line {}, column {} runs to line {}: is its closing quote missing?",
                    a.line, a.col, z.line
                )
            } else {
                String::new()
            }
        }
        None => String::new(),
    }
}

/// The range of values an integer field takes, for "out of range" messages.
fn int_range(path: &str) -> &'static str {
    let last = path.rsplit(['.', '[']).next().unwrap_or("");
    match last {
        "vector" => "0 to 255",
        "dpl" => "0 to 3",
        "ist" => "0 to 7",
        "cpl" => "0 or 3",
        "maxphyaddr" => "32 to 52",
        "size" => "1, 2, 4 or 8",
        "pcid" => "0 to 4095",
        "levels" | "index_bits" => "0 to 255",
        "bytes" | "0]" => "0 to 255",
        _ if path.contains(".bytes[") => "0 to 255",
        _ => "0 to 0xffffffffffffffff",
    }
}

/// The floating-point literal (`1.5e8`, `2.0`) that a RON error at byte `off`
/// sits in or just after, and where it starts. RON reads the integer part and
/// then stumbles on the `.` or `e`, so without this the user is told a comma was
/// expected.
fn float_at(text: &str, off: usize) -> Option<(String, usize)> {
    let b = text.as_bytes();
    let is_tok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-');
    let off = off.min(b.len());
    let mut start = off;
    while start > 0 && is_tok(b[start - 1]) {
        start -= 1;
    }
    let mut end = off;
    while end < b.len() && is_tok(b[end]) {
        end += 1;
    }
    // A leading sign belongs to the number; a `+`/`-` elsewhere is an operator.
    let tok = text.get(start..end)?;
    let tok = tok.trim_start_matches(['+', '-']);
    let start = end - tok.len();
    let first = tok.bytes().next()?;
    let hex = tok.starts_with("0x") || tok.starts_with("0X") || tok.starts_with("0b");
    let looks_float = first.is_ascii_digit()
        && !hex
        && (tok.contains('.') || tok.contains(['e', 'E']))
        && tok.replace('_', "").parse::<f64>().is_ok();
    looks_float.then(|| (tok.to_string(), start))
}

/// Turns a `ron` syntax or type error into a located message that names the
/// value at fault (`machine.cores`) and what was expected there.
pub(crate) fn ron_diagnostic(e: &ron::error::SpannedError, src: &Source) -> Diagnostic {
    use ron::error::Error as E;
    let file = src.path.display().to_string();
    let off = src
        .locations
        .offset_of_byte_col(e.position.line, e.position.col, &src.text);
    let pos = if e.position.line == 0 {
        Pos::default()
    } else {
        src.locations.pos_of(off, &src.text)
    };
    // A bad token is reported where it ends; a missing piece where the enclosing
    // value goes on or closes.
    let token_error = matches!(
        e.code,
        E::NoSuchEnumVariant { .. }
            | E::IntegerOutOfBounds
            | E::InvalidValueForType { .. }
            | E::Message(_)
    );
    let path = src
        .locations
        .path_at(off, token_error)
        .filter(|p| !p.starts_with('['))
        .unwrap_or("")
        .to_string();
    // Point at the start of a bad token rather than just past it.
    let pos = match src.locations.find(&path) {
        Some(sp) if token_error && !path.is_empty() && sp.end == off => sp.start,
        _ => pos,
    };
    // RON reports an unknown field or variant just past its name; point at
    // the name.
    let pos = match &e.code {
        E::NoSuchStructField { found, .. } | E::NoSuchEnumVariant { found, .. } => {
            let before = src
                .text
                .get(..off)
                .unwrap_or("")
                .trim_end_matches([' ', '\t', ':']);
            match before.strip_suffix(found.as_str()) {
                Some(b) => src.locations.pos_of(b.len(), &src.text),
                None => pos,
            }
        }
        _ => pos,
    };
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" for `{path}`")
    };
    let inside = if path.is_empty() {
        String::new()
    } else {
        format!(" (in `{path}`)")
    };
    let blank = src
        .text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("//"));
    let float = float_at(&src.text, off);
    let message = match &e.code {
        _ if blank => {
            "the file holds no scenario (expected `Scenario( name: ..., schedule: [...] )`)".into()
        }
        _ if float.is_some() => {
            let (tok, start) = float.unwrap_or_default();
            let fpath = src.locations.path_at(start, false).unwrap_or("");
            let fat = if fpath.is_empty() {
                String::new()
            } else {
                format!(" for `{fpath}`")
            };
            let hint = match tok.replace('_', "").parse::<f64>() {
                Ok(v) if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 => {
                    format!("; write it as {} or {:#x}", v as u64, v as u64)
                }
                _ => String::new(),
            };
            return Diagnostic {
                file,
                pos: src.locations.pos_of(start, &src.text),
                message: format!(
                    "expected an unsigned integer{fat}, found the floating-point number `{tok}` (numbers in scenarios are integers: decimal, 0x hex or 0b binary){hint}"
                ),
            };
        }
        E::ExpectedInteger => format!(
            "expected an unsigned integer{at} (decimal, 0x hex or 0b binary; no sign)"
        ),
        E::IntegerOutOfBounds => format!(
            "integer out of range{at} (expected {})",
            int_range(&path)
        ),
        E::ExpectedString => format!("expected a string in double quotes{at}"),
        E::ExpectedStringEnd => "unterminated string: expected the closing `\"` (or `\"#` for a raw string `r#\"...\"#`)".into(),
        E::ExpectedBoolean => format!("expected `true` or `false`{at}"),
        E::ExpectedArray => format!("expected a list `[ ... ]`{at}"),
        E::ExpectedArrayEnd => format!("expected `,` or the closing `]`{inside}"),
        E::ExpectedMap => format!("expected a map `{{ \"name\": value, ... }}`{at}"),
        E::ExpectedMapColon => format!("expected `:` after the map key{inside}"),
        E::ExpectedMapEnd => format!("expected `,` or the closing `}}`{inside}"),
        E::ExpectedStructLike => format!("expected `( ... )`{at}"),
        E::ExpectedNamedStructLike(name) => {
            format!("expected `(` to open {}{at}", type_desc(name))
        }
        E::ExpectedStructLikeEnd => format!("expected `,` or the closing `)`{inside}"),
        E::ExpectedDifferentStructName { expected, found } => {
            format!("expected `{expected}( ... )`, found `{found}`")
        }
        E::ExpectedComma => format!(
            "expected `,` here: fields and list items are separated by commas{inside}{}",
            open_string_hint(&src.text, off, &src.locations)
        ),
        E::ExpectedIdentifier => format!("expected a field or variant name{inside}"),
        E::ExpectedOption => format!("expected a value{at}"),
        E::Eof => "unexpected end of file: a `(`, `[`, `{` or string is not closed".into(),
        E::TrailingCharacters => {
            "unexpected text after the end of the scenario (its closing `)` is above)".into()
        }
        E::UnclosedBlockComment => "unterminated `/*` comment".into(),
        E::UnexpectedByte(c) => format!("unexpected character `{c}`{inside}"),
        E::InvalidEscape(what) => format!("invalid escape in a string: {what}"),
        E::ExceededRecursionLimit => "values are nested too deeply".into(),
        E::NoSuchEnumVariant {
            expected,
            found,
            outer,
        } => format!(
            "unknown {} `{found}`{at}: expected one of {}{}",
            outer.as_deref().map_or("variant".to_string(), type_desc),
            one_of(expected),
            closest(found, expected)
        ),
        E::NoSuchStructField {
            expected,
            found,
            outer,
        } => format!(
            "unknown field `{found}` in {}{inside}: expected one of {}{}",
            outer.as_deref().map_or("this value".to_string(), type_desc),
            one_of(expected),
            closest(found, expected)
        ),
        E::MissingStructField { field, outer } => format!(
            "missing field `{field}` in {}{inside} (it is required)",
            outer.as_deref().map_or("this value".to_string(), type_desc),
        ),
        E::DuplicateStructField { field, outer } => format!(
            "field `{field}` appears twice in {}{inside}",
            outer.as_deref().map_or("this value".to_string(), type_desc),
        ),
        E::InvalidValueForType { expected, found } => {
            format!("expected {expected}{at}, found {found}")
        }
        E::Message(m) if m.contains("untagged enum Value") => format!(
            "expected a number or a symbol expression in quotes (\"name\", \"name+0x10\", \"space.cr3\"){at}"
        ),
        other => format!("{other}{at}"),
    };
    Diagnostic { file, pos, message }
}

#[cfg(test)]
mod tests {
    use super::int_range;

    /// Every small-integer field of the schema quotes its own range when a
    /// value overflows it, not the range of u64: the schema is walked, so a new
    /// `u8`/`u16`/`u32` field without an entry in `int_range` fails here.
    #[test]
    fn every_small_integer_field_has_its_range() {
        let schema = include_str!("schema.rs");
        let mut missing = Vec::new();
        let mut seen = 0;
        for line in schema.lines() {
            let t = line.trim().trim_start_matches("pub ");
            let Some((name, ty)) = t.split_once(": ") else {
                continue;
            };
            let ty = ty.trim_end_matches(',');
            let small = ["u8", "u16", "u32"]
                .iter()
                .any(|s| ty == *s || ty == format!("Option<{s}>") || ty == format!("Vec<{s}>"));
            if !small || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            seen += 1;
            let path = if ty.starts_with("Vec<") {
                format!("x.{name}[0]")
            } else {
                format!("x.{name}")
            };
            if int_range(&path) == "0 to 0xffffffffffffffff" {
                missing.push(name.to_string());
            }
        }
        assert!(seen >= 8, "found only {seen} small-integer fields");
        assert!(missing.is_empty(), "no range for: {missing:?}");
    }
}
