//! Where each value of a RON document sits in the file.
//!
//! `ron` reports the position of syntax and type errors, but the checks that come
//! after deserialising (an unknown label, overlapping mappings, a core number out
//! of range) need the position of a value too. This module walks the same text with
//! a small RON scanner and records, for every value, its path (`cores[1].rip`,
//! `address_spaces.proc.mappings[0].va`) and where it starts and ends. It never
//! decides validity: whatever it cannot follow it skips, and lookups fall back to
//! the nearest recorded ancestor.

use std::collections::BTreeMap;

/// A position in the source: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

/// The span of one value, and for strings where their text starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First character of the value.
    pub start: Pos,
    /// Byte offset of the first character.
    pub offset: usize,
    /// Byte offset just past the value's last character.
    pub end: usize,
    /// For a string value: byte offset of the first character of its contents, and
    /// whether it is a raw string (no escapes, so offsets map one to one).
    pub string: Option<(usize, bool)>,
}

/// Paths to spans.
#[derive(Clone, Debug, Default)]
pub struct Locations {
    spans: BTreeMap<String, Span>,
    line_starts: Vec<usize>,
    /// Map keys written twice: the key's path and where each copy starts. The
    /// deserialiser keeps the last one silently, so the scan is what notices.
    duplicates: Vec<(String, Pos, Pos)>,
}

impl Locations {
    /// Scans `src`.
    pub fn scan(src: &str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in src.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        let mut s = Scanner {
            src,
            b: src.as_bytes(),
            i: 0,
            out: BTreeMap::new(),
            line_starts: &line_starts,
            depth: 0,
            duplicates: Vec::new(),
        };
        s.skip_ws();
        s.value(String::new());
        let duplicates = std::mem::take(&mut s.duplicates);
        let spans = s.out;
        Locations {
            spans,
            line_starts,
            duplicates,
        }
    }

    /// Map keys that appear twice in one map, in file order: the path of the
    /// key's value (`address_spaces.k`) and where the first and second copies
    /// start.
    pub fn duplicate_keys(&self) -> &[(String, Pos, Pos)] {
        &self.duplicates
    }

    /// The span recorded for `path`, or for its nearest ancestor.
    pub fn find(&self, path: &str) -> Option<Span> {
        let mut p = path.to_string();
        loop {
            if let Some(s) = self.spans.get(&p) {
                return Some(*s);
            }
            // Strip the last component: `.name` or `[i]`.
            let cut = p.rfind(['.', '[']);
            match cut {
                Some(i) => p.truncate(i),
                None if !p.is_empty() => p.clear(),
                None => return None,
            }
        }
    }

    /// Line and column of a byte offset.
    pub fn pos_of(&self, offset: usize, src: &str) -> Pos {
        pos_at(&self.line_starts, src, offset)
    }

    /// Byte offset of a 1-based line and a 1-based column counted in bytes (how
    /// `ron` reports positions), clamped to the text.
    pub fn offset_of_byte_col(&self, line: usize, col: usize, src: &str) -> usize {
        let Some(start) = line.checked_sub(1).and_then(|l| self.line_starts.get(l)) else {
            return src.len();
        };
        let mut off = (start + col.saturating_sub(1)).min(src.len());
        while !src.is_char_boundary(off) {
            off -= 1;
        }
        off
    }

    /// The path of the innermost value whose text contains `offset`; with
    /// `end_inclusive`, an offset just past a value's last character counts as
    /// inside it (parsers report a bad token where it ends). `None` outside every
    /// value.
    pub fn path_at(&self, offset: usize, end_inclusive: bool) -> Option<&str> {
        let mut best: Option<(&String, &Span)> = None;
        for (p, sp) in &self.spans {
            let inside =
                sp.offset <= offset && (offset < sp.end || (end_inclusive && offset == sp.end));
            if p.ends_with("#key") || !inside {
                continue;
            }
            let better = match best {
                None => true,
                Some((bp, bs)) => {
                    sp.offset > bs.offset || (sp.offset == bs.offset && p.len() > bp.len())
                }
            };
            if better {
                best = Some((p, sp));
            }
        }
        best.map(|(p, _)| p.as_str())
    }

    /// Every recorded path (for tests and debugging).
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.spans.keys()
    }
}

fn pos_at(line_starts: &[usize], src: &str, offset: usize) -> Pos {
    let line = match line_starts.binary_search(&offset) {
        Ok(i) => i,
        Err(i) => i - 1,
    };
    let start = line_starts[line];
    let col = src
        .get(start..offset.min(src.len()))
        .map_or(0, |s| s.chars().count());
    Pos {
        line: line as u32 + 1,
        col: col as u32 + 1,
    }
}

struct Scanner<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    out: BTreeMap<String, Span>,
    line_starts: &'a [usize],
    depth: u32,
    duplicates: Vec<(String, Pos, Pos)>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_whitespace() => self.i += 1,
                Some(b'/') if self.b.get(self.i + 1) == Some(&b'/') => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                Some(b'/') if self.b.get(self.i + 1) == Some(&b'*') => {
                    self.i += 2;
                    while self.i < self.b.len()
                        && !(self.b[self.i] == b'*' && self.b.get(self.i + 1) == Some(&b'/'))
                    {
                        self.i += 1;
                    }
                    self.i = (self.i + 2).min(self.b.len());
                }
                _ => return,
            }
        }
    }

    fn record(&mut self, path: &str, offset: usize, string: Option<(usize, bool)>) {
        let start = pos_at(self.line_starts, self.src, offset);
        self.out.entry(path.to_string()).or_insert(Span {
            start,
            offset,
            end: offset,
            string,
        });
    }

    /// Records where the value recorded at `offset` under `path` ends.
    fn finish(&mut self, path: &str, offset: usize) {
        let end = self.i.min(self.b.len());
        if let Some(sp) = self.out.get_mut(path) {
            if sp.offset == offset {
                sp.end = end;
            }
        }
    }

    fn ident(&mut self) -> Option<&str> {
        let st = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i > st {
            self.src.get(st..self.i)
        } else {
            None
        }
    }

    /// Scans one value at the cursor and records it under `path`.
    fn value(&mut self, path: String) {
        self.depth += 1;
        if self.depth > 200 {
            self.i = self.b.len();
            return;
        }
        self.skip_ws();
        let start = self.i;
        match self.peek() {
            None => {}
            Some(b'"') => {
                self.record(&path, start, Some((start + 1, false)));
                self.string();
            }
            Some(b'r') if matches!(self.b.get(self.i + 1), Some(b'"') | Some(b'#')) => {
                let mut j = self.i + 1;
                let mut hashes = 0;
                while self.b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if self.b.get(j) == Some(&b'"') {
                    self.record(&path, start, Some((j + 1, true)));
                    self.i = j + 1;
                    loop {
                        match self.peek() {
                            None => break,
                            Some(b'"') => {
                                let close =
                                    (1..=hashes).all(|k| self.b.get(self.i + k) == Some(&b'#'));
                                self.i += 1;
                                if close {
                                    self.i += hashes;
                                    break;
                                }
                            }
                            Some(_) => self.i += 1,
                        }
                    }
                } else {
                    self.record(&path, start, None);
                    self.ident();
                    self.after_ident(&path);
                }
            }
            Some(b'\'') => {
                self.record(&path, start, None);
                self.i += 1;
                while let Some(c) = self.peek() {
                    self.i += 1;
                    if c == b'\\' {
                        self.i += 1;
                    } else if c == b'\'' {
                        break;
                    }
                }
            }
            Some(b'(') => {
                self.record(&path, start, None);
                self.parens(&path);
            }
            Some(b'[') => {
                self.record(&path, start, None);
                self.i += 1;
                let mut n = 0;
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => break,
                        Some(b']') => {
                            self.i += 1;
                            break;
                        }
                        Some(b',') => self.i += 1,
                        Some(_) => {
                            let before = self.i;
                            self.value(format!("{path}[{n}]"));
                            n += 1;
                            if self.i == before {
                                self.i += 1;
                            }
                        }
                    }
                }
            }
            Some(b'{') => {
                self.record(&path, start, None);
                self.i += 1;
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => break,
                        Some(b'}') => {
                            self.i += 1;
                            break;
                        }
                        Some(b',') => self.i += 1,
                        Some(_) => {
                            let before = self.i;
                            let key = self.key_text();
                            let kp = join(&path, &key);
                            let kk = format!("{kp}#key");
                            if let Some(first) = self.out.get(&kk).map(|sp| sp.start) {
                                let again = pos_at(self.line_starts, self.src, before);
                                self.duplicates.push((kp.clone(), first, again));
                            }
                            self.record(&kk, before, None);
                            self.skip_ws();
                            if self.peek() == Some(b':') {
                                self.i += 1;
                            }
                            self.value(kp);
                            if self.i == before {
                                self.i += 1;
                            }
                        }
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                self.record(&path, start, None);
                self.ident();
                self.after_ident(&path);
            }
            Some(_) => {
                // Number or anything else: up to a delimiter.
                self.record(&path, start, None);
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b')' | b']' | b'}') || c.is_ascii_whitespace() {
                        break;
                    }
                    self.i += 1;
                }
            }
        }
        self.finish(&path, start);
        self.depth -= 1;
    }

    fn after_ident(&mut self, path: &str) {
        let save = self.i;
        self.skip_ws();
        if self.peek() == Some(b'(') {
            self.parens(path);
        } else {
            self.i = save;
        }
    }

    fn string(&mut self) {
        self.i += 1;
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == b'\\' {
                self.i += 1;
            } else if c == b'"' {
                break;
            }
        }
    }

    /// Text of a map key (a string's contents, or the raw token).
    fn key_text(&mut self) -> String {
        if self.peek() == Some(b'"') {
            let st = self.i + 1;
            self.string();
            return self
                .src
                .get(st..self.i.saturating_sub(1))
                .unwrap_or("")
                .to_string();
        }
        let st = self.i;
        while let Some(c) = self.peek() {
            if c == b':' || c.is_ascii_whitespace() {
                break;
            }
            self.i += 1;
        }
        self.src.get(st..self.i).unwrap_or("").to_string()
    }

    /// `( ... )`: named fields (`name: value`) or positional elements.
    fn parens(&mut self, path: &str) {
        self.i += 1;
        let mut n = 0;
        loop {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(b')') => {
                    self.i += 1;
                    break;
                }
                Some(b',') => self.i += 1,
                Some(_) => {
                    let before = self.i;
                    // `name:` (not `name::`) introduces a field.
                    let save = self.i;
                    let field = self.ident().map(|s| s.to_string());
                    self.skip_ws();
                    let is_field = field.is_some()
                        && self.peek() == Some(b':')
                        && self.b.get(self.i + 1) != Some(&b':');
                    if let (true, Some(f)) = (is_field, field) {
                        self.i += 1;
                        let fp = join(path, &f);
                        self.record(&format!("{fp}#key"), save, None);
                        self.value(fp);
                    } else {
                        self.i = save;
                        self.value(format!("{path}[{n}]"));
                        n += 1;
                    }
                    if self.i == before {
                        self.i += 1;
                    }
                }
            }
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_positions() {
        let src = "Scenario(\n  name: \"x\",\n  cores: [ (rip: \"a\"), (rip: 0x10) ],\n  m: { \"k\": (v: 1) },\n  s: [ Run(core: 1, until: Label(\"l\")) ],\n  code: r#\"mov\"#,\n)";
        let l = Locations::scan(src);
        let p = |s: &str| l.find(s).unwrap().start;
        assert_eq!(p("name"), Pos { line: 2, col: 9 });
        assert_eq!(p("cores[1].rip"), Pos { line: 3, col: 30 });
        assert_eq!(p("m.k.v"), Pos { line: 4, col: 17 });
        assert_eq!(p("s[0].until[0]"), Pos { line: 5, col: 34 });
        assert_eq!(p("s[0].core"), Pos { line: 5, col: 18 });
        assert_eq!(p("cores[1].nothing"), Pos { line: 3, col: 24 });
        let code = l.find("code").unwrap();
        assert_eq!(code.string, Some((src.find("mov").unwrap(), true)));
    }

    #[test]
    fn innermost_path_at_an_offset() {
        let src = "Scenario(\n  machine: (cores: \"two\"),\n  flags: [P, Rw],\n)";
        let l = Locations::scan(src);
        let at = |needle: &str| src.find(needle).unwrap();
        assert_eq!(l.path_at(at("\"two"), false), Some("machine.cores"));
        assert_eq!(l.path_at(at("(cores"), false), Some("machine"));
        // Just past `Rw`: only an end-inclusive lookup blames the token.
        let end_rw = at("Rw") + 2;
        assert_eq!(l.path_at(end_rw, true), Some("flags[1]"));
        assert_eq!(l.path_at(end_rw, false), Some("flags"));
        assert_eq!(l.path_at(src.len() + 10, false), None);
        assert_eq!(l.offset_of_byte_col(2, 3, src), at("machine"));
        assert_eq!(l.offset_of_byte_col(99, 1, src), src.len());
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "",
            "(",
            "[[[",
            "{\"a\":",
            "r#\"",
            "'",
            "/*",
            "(a: b: c)",
            "Scenario(x: [1,2,",
        ] {
            let _ = Locations::scan(s);
        }
    }
}
