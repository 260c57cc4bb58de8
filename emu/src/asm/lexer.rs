//! Turns source text into statements of tokens.
//!
//! GNU `as` rules for x86 apply to both syntaxes: `#` starts a comment anywhere outside a
//! string, `/` starts a comment only as the first non-blank character of a line (so `//`
//! comments work at line start, while `/` mid-line is division), `/* … */` may span lines,
//! and `;` separates statements on one line. The lexer does not know the syntax: `%` is a
//! token of its own and the AT&T parser glues it to the following register name.

use super::error::{AsmError, AsmErrorKind, Pos};

/// Punctuation and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Punct {
    Dollar,
    Percent,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Colon,
    Plus,
    Minus,
    Star,
    Slash,
    Pipe,
    Amp,
    Caret,
    Tilde,
    Bang,
    Eq,
    Shl,
    Shr,
}

impl Punct {
    fn text(self) -> &'static str {
        match self {
            Punct::Dollar => "$",
            Punct::Percent => "%",
            Punct::Comma => ",",
            Punct::LParen => "(",
            Punct::RParen => ")",
            Punct::LBracket => "[",
            Punct::RBracket => "]",
            Punct::Colon => ":",
            Punct::Plus => "+",
            Punct::Minus => "-",
            Punct::Star => "*",
            Punct::Slash => "/",
            Punct::Pipe => "|",
            Punct::Amp => "&",
            Punct::Caret => "^",
            Punct::Tilde => "~",
            Punct::Bang => "!",
            Punct::Eq => "=",
            Punct::Shl => "<<",
            Punct::Shr => ">>",
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// A name: mnemonic, directive (with its dot), label, symbol or register name.
    Ident(String),
    /// An integer literal (decimal, `0x` hex, `0b` binary, leading-zero octal, `'c` char).
    Num(u64),
    /// A numeric local label reference such as `1f` or `2b`.
    LocalRef {
        /// The label number.
        n: u64,
        /// `true` for `f` (next definition), `false` for `b` (previous definition).
        forward: bool,
    },
    /// A string literal with escapes already processed.
    Str(Vec<u8>),
    /// Punctuation or an operator.
    Punct(Punct),
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokKind,
    pub(crate) pos: Pos,
}

impl Token {
    /// Describes the token for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            TokKind::Ident(s) => format!("`{s}`"),
            TokKind::Num(n) => format!("number `{n}`"),
            TokKind::LocalRef { n, forward } => {
                format!("`{n}{}`", if *forward { 'f' } else { 'b' })
            }
            TokKind::Str(_) => "a string".to_string(),
            TokKind::Punct(p) => format!("`{}`", p.text()),
        }
    }

    /// True if the token is the given punctuation.
    pub(crate) fn is(&self, p: Punct) -> bool {
        self.kind == TokKind::Punct(p)
    }
}

/// One statement: the tokens between separators, plus where the statement ends (for
/// "found end of line" errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub(crate) tokens: Vec<Token>,
    pub(crate) end: Pos,
}

/// Blanks out `/* … */` comments (keeping newlines and columns) so later stages see plain
/// lines. Strings are respected so that `"/*"` is not a comment.
fn strip_block_comments(src: &str) -> Result<Vec<char>, AsmError> {
    let mut out: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut in_str = false;
    let mut in_line_comment = false;
    while i < out.len() {
        let c = out[i];
        if c == '\n' {
            in_str = false;
            in_line_comment = false;
        } else if in_line_comment {
        } else if in_str {
            if c == '\\' {
                i += 1;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '#' {
            in_line_comment = true;
        } else if c == '/' && out.get(i + 1) == Some(&'*') {
            let Some(len) = out[i + 2..].windows(2).position(|w| w == ['*', '/']) else {
                return Err(AsmError::at(
                    pos_of(&out, i),
                    AsmErrorKind::UnterminatedComment,
                ));
            };
            for ch in &mut out[i..i + len + 4] {
                if *ch != '\n' {
                    *ch = ' ';
                }
            }
            i += len + 4;
            continue;
        }
        i += 1;
    }
    Ok(out)
}

/// Line and column of a character index.
fn pos_of(chars: &[char], idx: usize) -> Pos {
    let before = &chars[..idx];
    let line = before.iter().filter(|&&c| c == '\n').count() + 1;
    let col = before.iter().rev().take_while(|&&c| c != '\n').count() + 1;
    Pos::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// Splits source text into statements, each a list of tokens with exact positions.
pub(crate) fn lex(src: &str) -> Result<Vec<Stmt>, AsmError> {
    let chars = strip_block_comments(src)?;
    let mut stmts = Vec::new();
    for (idx, line) in chars.split(|&c| c == '\n').enumerate() {
        let line_no = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        lex_line(line, line_no, &mut stmts)?;
    }
    Ok(stmts)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '.' || c == '@'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$' || c == '@'
}

fn lex_line(line: &[char], line_no: u32, stmts: &mut Vec<Stmt>) -> Result<(), AsmError> {
    let pos = |i: usize| Pos::new(line_no, u32::try_from(i + 1).unwrap_or(u32::MAX));
    let first_non_blank = line.iter().position(|c| !c.is_whitespace());
    if let Some(f) = first_non_blank {
        if line[f] == '/' {
            return Ok(());
        }
    }
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            break;
        }
        if c == ';' {
            stmts.push(Stmt {
                tokens: std::mem::take(&mut tokens),
                end: pos(i),
            });
            i += 1;
            continue;
        }
        if is_ident_start(c) {
            i += 1;
            while i < line.len() && is_ident_char(line[i]) {
                i += 1;
            }
            let text: String = line[start..i].iter().collect();
            tokens.push(Token {
                kind: TokKind::Ident(text),
                pos: pos(start),
            });
            continue;
        }
        if c.is_ascii_digit() {
            while i < line.len() && line[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let text: String = line[start..i].iter().collect();
            let kind = number(&text)
                .ok_or_else(|| AsmError::at(pos(start), AsmErrorKind::BadNumber(text.clone())))?;
            tokens.push(Token {
                kind,
                pos: pos(start),
            });
            continue;
        }
        if c == '\'' {
            // GNU `as` character constant: `'a` (an optional closing quote is accepted).
            let (value, used) = match line.get(i + 1) {
                Some('\\') => match line.get(i + 2) {
                    Some(&e) => (escape_char(e).unwrap_or(e as u32), 3),
                    None => return Err(AsmError::at(pos(start), AsmErrorKind::BadChar('\''))),
                },
                Some(&ch) => (ch as u32, 2),
                None => return Err(AsmError::at(pos(start), AsmErrorKind::BadChar('\''))),
            };
            i += used;
            if line.get(i) == Some(&'\'') {
                i += 1;
            }
            tokens.push(Token {
                kind: TokKind::Num(u64::from(value)),
                pos: pos(start),
            });
            continue;
        }
        if c == '"' {
            let (bytes, next) = string(line, i)
                .ok_or_else(|| AsmError::at(pos(start), AsmErrorKind::UnterminatedString))?;
            i = next;
            tokens.push(Token {
                kind: TokKind::Str(bytes),
                pos: pos(start),
            });
            continue;
        }
        let two = (c, line.get(i + 1).copied());
        let (p, len) = match two {
            ('<', Some('<')) => (Punct::Shl, 2),
            ('>', Some('>')) => (Punct::Shr, 2),
            ('$', _) => (Punct::Dollar, 1),
            ('%', _) => (Punct::Percent, 1),
            (',', _) => (Punct::Comma, 1),
            ('(', _) => (Punct::LParen, 1),
            (')', _) => (Punct::RParen, 1),
            ('[', _) => (Punct::LBracket, 1),
            (']', _) => (Punct::RBracket, 1),
            (':', _) => (Punct::Colon, 1),
            ('+', _) => (Punct::Plus, 1),
            ('-', _) => (Punct::Minus, 1),
            ('*', _) => (Punct::Star, 1),
            ('/', _) => (Punct::Slash, 1),
            ('|', _) => (Punct::Pipe, 1),
            ('&', _) => (Punct::Amp, 1),
            ('^', _) => (Punct::Caret, 1),
            ('~', _) => (Punct::Tilde, 1),
            ('!', _) => (Punct::Bang, 1),
            ('=', _) => (Punct::Eq, 1),
            _ => return Err(AsmError::at(pos(start), AsmErrorKind::BadChar(c))),
        };
        i += len;
        tokens.push(Token {
            kind: TokKind::Punct(p),
            pos: pos(start),
        });
    }
    stmts.push(Stmt {
        tokens,
        end: pos(line.len()),
    });
    Ok(())
}

fn escape_char(e: char) -> Option<u32> {
    Some(match e {
        'n' => 10,
        't' => 9,
        'r' => 13,
        'b' => 8,
        'f' => 12,
        'v' => 11,
        'a' => 7,
        '\\' => 92,
        '"' => 34,
        '\'' => 39,
        _ => return None,
    })
}

/// Reads a string literal starting at the opening quote; returns its bytes and the index
/// after the closing quote, or `None` if the line ends first.
fn string(line: &[char], open: usize) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut i = open + 1;
    loop {
        let c = *line.get(i)?;
        i += 1;
        match c {
            '"' => return Some((out, i)),
            '\\' => {
                let e = *line.get(i)?;
                i += 1;
                if let Some(v) = escape_char(e) {
                    out.push(v as u8);
                } else if e.is_digit(8) {
                    // Up to three octal digits.
                    let mut v = e.to_digit(8)?;
                    for _ in 0..2 {
                        match line.get(i).and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                i += 1;
                            }
                            None => break,
                        }
                    }
                    out.push((v & 0xff) as u8);
                } else if e == 'x' {
                    let mut v = 0u32;
                    while let Some(d) = line.get(i).and_then(|d| d.to_digit(16)) {
                        v = (v << 4 | d) & 0xff;
                        i += 1;
                    }
                    out.push(v as u8);
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                }
            }
            _ => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Parses a numeric literal or a local label reference (`1f`, `3b`).
fn number(text: &str) -> Option<TokKind> {
    let lower = text.to_ascii_lowercase();
    let parse = |digits: &str, radix: u32| -> Option<u64> {
        if digits.is_empty() {
            return None;
        }
        u64::from_str_radix(digits, radix).ok()
    };
    if let Some(h) = lower.strip_prefix("0x") {
        return parse(h, 16).map(TokKind::Num);
    }
    if let Some(b) = lower.strip_prefix("0b") {
        if !b.is_empty() {
            return parse(b, 2).map(TokKind::Num);
        }
    }
    if let Some(stem) = lower.strip_suffix('f').or_else(|| lower.strip_suffix('b')) {
        if !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()) {
            let n = parse(stem, 10)?;
            return Some(TokKind::LocalRef {
                n,
                forward: lower.ends_with('f'),
            });
        }
    }
    if lower.len() > 1 && lower.starts_with('0') {
        return parse(&lower[1..], 8).map(TokKind::Num);
    }
    parse(&lower, 10).map(TokKind::Num)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Vec<TokKind>> {
        lex(src)
            .unwrap()
            .into_iter()
            .map(|s| s.tokens.into_iter().map(|t| t.kind).collect())
            .collect()
    }

    #[test]
    fn numbers_in_all_radices() {
        assert_eq!(number("0x1F"), Some(TokKind::Num(31)));
        assert_eq!(number("0b101"), Some(TokKind::Num(5)));
        assert_eq!(number("010"), Some(TokKind::Num(8)));
        assert_eq!(number("0"), Some(TokKind::Num(0)));
        assert_eq!(number("42"), Some(TokKind::Num(42)));
        // GNU as has no `0ffh` hex in Intel syntax either (it reads `0f` + `fh`).
        assert_eq!(number("0ffh"), None);
        assert_eq!(
            number("1f"),
            Some(TokKind::LocalRef {
                n: 1,
                forward: true
            })
        );
        assert_eq!(
            number("12b"),
            Some(TokKind::LocalRef {
                n: 12,
                forward: false
            })
        );
        assert_eq!(
            number("0b"),
            Some(TokKind::LocalRef {
                n: 0,
                forward: false
            })
        );
        assert_eq!(number("09"), None);
        assert_eq!(number("0x"), None);
        assert_eq!(number("99999999999999999999999"), None);
    }

    #[test]
    fn comments_and_separators() {
        let k = kinds("nop # x ; y\n  // whole line\nnop ; ret /* a\n b */ hlt");
        assert_eq!(k.len(), 4);
        assert_eq!(k[0], vec![TokKind::Ident("nop".into())]);
        assert_eq!(k[1], vec![TokKind::Ident("nop".into())]);
        assert_eq!(k[2], vec![TokKind::Ident("ret".into())]);
        assert_eq!(k[3], vec![TokKind::Ident("hlt".into())]);
    }

    #[test]
    fn positions_survive_block_comments() {
        let s = lex("/* c */ movq %rax, 8(%rsp)").unwrap();
        let t = &s[0].tokens;
        assert_eq!(t[0].pos, Pos::new(1, 9));
        assert_eq!(t[1].pos, Pos::new(1, 14));
        assert_eq!(t[2].kind, TokKind::Ident("rax".into()));
        assert_eq!(t[5].pos, Pos::new(1, 21));
    }

    #[test]
    fn strings_and_chars() {
        let k = kinds(r#".ascii "a\n\x41\101;#" 'z"#);
        assert_eq!(k[0][1], TokKind::Str(b"a\nAA;#".to_vec()));
        assert_eq!(k[0][2], TokKind::Num(b'z' as u64));
    }

    #[test]
    fn errors_have_positions() {
        let e = lex("nop\n  mov ?").unwrap_err();
        assert_eq!((e.line, e.col), (2, 7));
        let e = lex("nop /* never").unwrap_err();
        assert_eq!(
            (e.line, e.col, e.kind),
            (1, 5, AsmErrorKind::UnterminatedComment)
        );
        let e = lex(".ascii \"abc").unwrap_err();
        assert_eq!((e.line, e.col), (1, 8));
    }

    #[test]
    fn shifts_and_ops() {
        let k = kinds("1<<2>>3");
        assert_eq!(
            k[0],
            vec![
                TokKind::Num(1),
                TokKind::Punct(Punct::Shl),
                TokKind::Num(2),
                TokKind::Punct(Punct::Shr),
                TokKind::Num(3)
            ]
        );
    }
}
