//! A cursor over one statement's tokens, shared by the expression, operand and directive
//! parsers so that all of them report "expected X, found Y" the same way.

use super::error::{AsmError, AsmErrorKind, Pos};
use super::lexer::{Punct, Stmt, TokKind, Token};

/// Position-tracking reader over a token slice.
pub(crate) struct Cursor<'a> {
    toks: &'a [Token],
    i: usize,
    end: Pos,
}

impl<'a> Cursor<'a> {
    /// Starts reading a statement from its first token.
    pub(crate) fn new(stmt: &'a Stmt) -> Self {
        Cursor {
            toks: &stmt.tokens,
            i: 0,
            end: stmt.end,
        }
    }

    /// The next token without consuming it.
    pub(crate) fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.i)
    }

    /// The token after the next one.
    pub(crate) fn peek2(&self) -> Option<&'a Token> {
        self.toks.get(self.i + 1)
    }

    /// The token `k` places after the next one (`peek_at(0)` is `peek()`).
    pub(crate) fn peek_at(&self, k: usize) -> Option<&'a Token> {
        self.toks.get(self.i + k)
    }

    /// Consumes and returns the next token.
    pub(crate) fn next(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.i);
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    /// True once every token is consumed.
    pub(crate) fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    /// Position of the next token, or of the end of the statement.
    pub(crate) fn pos(&self) -> Pos {
        self.peek().map_or(self.end, |t| t.pos)
    }

    /// Consumes the next token if it is the given punctuation.
    pub(crate) fn eat(&mut self, p: Punct) -> bool {
        if self.peek().is_some_and(|t| t.is(p)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// True if the next token is the given punctuation.
    pub(crate) fn peek_is(&self, p: Punct) -> bool {
        self.peek().is_some_and(|t| t.is(p))
    }

    /// The next token if it is an identifier (case preserved), without consuming it.
    pub(crate) fn peek_ident(&self) -> Option<&'a str> {
        match self.peek().map(|t| &t.kind) {
            Some(TokKind::Ident(s)) => Some(s),
            _ => None,
        }
    }

    /// An error saying what was expected at the current token.
    pub(crate) fn expected(&self, what: &str) -> AsmError {
        let found = self
            .peek()
            .map_or_else(|| "end of line".to_string(), Token::describe);
        AsmError::at(
            self.pos(),
            AsmErrorKind::Expected {
                expected: what.to_string(),
                found,
            },
        )
    }

    /// Consumes the given punctuation or fails naming it.
    pub(crate) fn expect(&mut self, p: Punct, what: &str) -> Result<(), AsmError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// Fails unless every token has been consumed.
    pub(crate) fn expect_end(&self, what: &str) -> Result<(), AsmError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// Saves the read position for backtracking.
    pub(crate) fn mark(&self) -> usize {
        self.i
    }

    /// Returns to a saved read position.
    pub(crate) fn reset(&mut self, mark: usize) {
        self.i = mark;
    }
}
