//! The out-of-line part of the lexer: comments, strings, dollar quotes, variables and the
//! dialect-dependent corners.

use super::{
    CONT, DIGIT, Dialect, Kind, LexError, LexErrorKind, Lexer, SPACE, START, Token, class,
};

/// How backslashes behave inside a quoted run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// Only doubling escapes the quote (PostgreSQL identifiers, backticks).
    Doubled,
    /// Doubling only, but another session setting would make backslashes escapes
    /// (PostgreSQL `'...'` under `standard_conforming_strings = off`).
    DoubledOrBackslash,
    /// Backslash escapes the next byte, always (PostgreSQL `E'...'`).
    Backslash,
    /// Backslash escapes, unless a session setting turns that off (MySQL `NO_BACKSLASH_ESCAPES`).
    BackslashOrDoubled,
}

impl<'a> Lexer<'a> {
    #[inline(never)]
    pub(super) fn slow_token(&mut self) -> Token {
        match self.slow() {
            Ok((kind, start)) => Token::new(kind, start, self.pos),
            Err(error) => {
                self.error = Some(error);
                self.pos = self.sql.len();
                Token::new(Kind::Error, self.pos, self.pos)
            }
        }
    }

    fn slow(&mut self) -> Result<(Kind, usize), LexError<'a>> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(b) = self.at(start) else {
            let kind = if self.error.is_some() {
                Kind::Error
            } else {
                Kind::Eof
            };
            return Ok((kind, start));
        };
        self.pos = start + 1;
        let kind = match b {
            b'\'' => self.quoted(start, b'\'', self.string_quoting())?,
            b'"' if self.dialect == Dialect::Postgres => {
                self.quoted(start, b'"', Quoting::Doubled)?;
                Kind::Quoted
            }
            b'"' => {
                self.quoted(start, b'"', Quoting::BackslashOrDoubled)?;
                Kind::Quoted
            }
            b'`' if self.dialect.mysql_like() => {
                self.quoted(start, b'`', Quoting::Doubled)?;
                Kind::Quoted
            }
            b'$' => self.dollar(start)?,
            b'@' if self.dialect.mysql_like() => self.variable(start)?,
            b'(' => Kind::LParen,
            b')' => Kind::RParen,
            b';' => Kind::Semi,
            b'.' => Kind::Dot,
            b':' if self.dialect.mysql_like() && self.at(start + 1) == Some(b'=') => {
                self.pos = start + 2;
                Kind::ColonEq
            }
            b'[' if self.dialect == Dialect::Strict => self.bracket(start)?,
            _ if class(b) & DIGIT != 0 => {
                let (kind, end) = self.number_at(start).unwrap_or((Kind::Number, start + 1));
                self.pos = end;
                kind
            }
            _ if class(b) & START != 0 => self.word(start)?,
            _ => Kind::Other,
        };
        Ok((kind, start))
    }

    fn string_quoting(&self) -> Quoting {
        match self.dialect {
            Dialect::Postgres => Quoting::DoubledOrBackslash,
            Dialect::MySql | Dialect::Strict => Quoting::BackslashOrDoubled,
        }
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), LexError<'a>> {
        let bytes = self.bytes();
        loop {
            while self.pos < bytes.len() && class(bytes[self.pos]) & SPACE != 0 {
                self.pos += 1;
            }
            let start = self.pos;
            match (self.at(start), self.at(start + 1)) {
                (Some(b'-'), Some(b'-')) => {
                    let spaced = self.at(start + 2).is_none_or(|c| c <= b' ' || c == 0x7f);
                    match self.dialect {
                        Dialect::Postgres => {}
                        Dialect::MySql if !spaced => return Ok(()),
                        Dialect::Strict if !spaced => {
                            return Err(self.fail(LexErrorKind::Ambiguous, start, start + 2));
                        }
                        Dialect::MySql | Dialect::Strict => {}
                    }
                    self.line_comment(start)?;
                }
                (Some(b'#'), _) if self.dialect == Dialect::MySql => self.line_comment(start)?,
                (Some(b'#'), _) if self.dialect == Dialect::Strict => {
                    return Err(self.fail(LexErrorKind::Ambiguous, start, start + 1));
                }
                (Some(b'/'), Some(b'*')) => self.block_comment(start)?,
                _ => return Ok(()),
            }
        }
    }

    /// A `--` or `#` comment. PostgreSQL ends it at `\n` or `\r`, MySQL at `\n` only.
    fn line_comment(&mut self, start: usize) -> Result<(), LexError<'a>> {
        let bytes = self.bytes();
        let mut i = start + 1;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\n' => break,
                b'\r' if self.dialect == Dialect::Postgres => break,
                b'\r' if self.dialect == Dialect::Strict && bytes.get(i + 1) != Some(&b'\n') => {
                    return Err(self.fail(LexErrorKind::Ambiguous, i, i + 1));
                }
                _ => i += 1,
            }
        }
        self.pos = i;
        Ok(())
    }

    /// A `/* */` comment: nested in PostgreSQL, not in MySQL, where `/*!` and `/*M!` hold code.
    fn block_comment(&mut self, start: usize) -> Result<(), LexError<'a>> {
        let bytes = self.bytes();
        let mut i = start + 2;
        if self.dialect.mysql_like() {
            let executable = match self.at(i) {
                Some(b'!') => Some(i + 1),
                Some(b'M' | b'm') if self.at(i + 1) == Some(b'!') => Some(i + 2),
                _ => None,
            };
            if let Some(end) = executable {
                return Err(self.fail(LexErrorKind::Ambiguous, start, end));
            }
        }
        let mut depth = 1usize;
        while i + 1 < bytes.len() {
            match (bytes[i], bytes[i + 1]) {
                (b'*', b'/') => {
                    i += 2;
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i;
                        return Ok(());
                    }
                }
                (b'/', b'*') => match self.dialect {
                    Dialect::Postgres => {
                        depth += 1;
                        i += 2;
                    }
                    Dialect::MySql => i += 1,
                    Dialect::Strict => return Err(self.fail(LexErrorKind::Ambiguous, i, i + 2)),
                },
                _ => i += 1,
            }
        }
        Err(self.fail(LexErrorKind::Unterminated, start, start + 2))
    }

    /// Scans a quoted run whose opening quote `quote` is at `open`; leaves `pos` after it.
    fn quoted(&mut self, open: usize, quote: u8, quoting: Quoting) -> Result<Kind, LexError<'a>> {
        let bytes = self.bytes();
        let mut i = open + 1;
        let mut backslashes = 0usize;
        loop {
            let Some(&b) = bytes.get(i) else {
                return Err(self.fail(LexErrorKind::Unterminated, open, open + 1));
            };
            if b == quote {
                if quoting == Quoting::DoubledOrBackslash && backslashes % 2 == 1 {
                    // `\'`: ends the string here, or is an escaped quote when
                    // standard_conforming_strings is off.
                    return Err(self.fail(LexErrorKind::Ambiguous, i - 1, i + 1));
                }
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    backslashes = 0;
                    continue;
                }
                self.pos = i + 1;
                return Ok(Kind::Str);
            }
            if b == b'\\' {
                match quoting {
                    Quoting::Backslash => {
                        i += 2;
                        continue;
                    }
                    Quoting::BackslashOrDoubled => {
                        if bytes.get(i + 1) == Some(&quote) {
                            // An escaped quote, or the end under NO_BACKSLASH_ESCAPES/ANSI_QUOTES.
                            return Err(self.fail(LexErrorKind::Ambiguous, i, i + 2));
                        }
                        i += 2;
                        continue;
                    }
                    Quoting::DoubledOrBackslash => {
                        backslashes += 1;
                        i += 1;
                        continue;
                    }
                    Quoting::Doubled => {}
                }
            }
            backslashes = 0;
            i += 1;
        }
    }

    /// `$1` parameters and PostgreSQL dollar quotes (`$$..$$`, `$tag$..$tag$`).
    fn dollar(&mut self, start: usize) -> Result<Kind, LexError<'a>> {
        let bytes = self.bytes();
        let mut i = start + 1;
        if bytes.get(i).is_some_and(|&c| class(c) & DIGIT != 0) {
            while bytes.get(i).is_some_and(|&c| class(c) & DIGIT != 0) {
                i += 1;
            }
            self.pos = i;
            return Ok(Kind::Param);
        }
        if self.dialect == Dialect::MySql {
            // `$` starts an identifier in MySQL.
            return Ok(self.word_end(start));
        }
        // The tag is an identifier without `$` (its first byte is not a digit: see above).
        while bytes
            .get(i)
            .is_some_and(|&c| c != b'$' && class(c) & CONT != 0)
        {
            i += 1;
        }
        if bytes.get(i) != Some(&b'$') {
            // PostgreSQL rejects a lone `$`; the strict dialect reads the word after it.
            return Ok(Kind::Other);
        }
        let tag_end = i + 1;
        if self.dialect == Dialect::Strict {
            return Err(self.fail(LexErrorKind::Ambiguous, start, tag_end));
        }
        let tag = &bytes[start..tag_end];
        match bytes[tag_end..].windows(tag.len()).position(|w| w == tag) {
            Some(at) => {
                self.pos = tag_end + at + tag.len();
                Ok(Kind::Str)
            }
            None => Err(self.fail(LexErrorKind::Unterminated, start, tag_end)),
        }
    }

    /// MySQL `@user` and `@@system` variables.
    fn variable(&mut self, start: usize) -> Result<Kind, LexError<'a>> {
        let bytes = self.bytes();
        let (kind, mut i) = match self.at(start + 1) {
            Some(b'@') => (Kind::SysVar, start + 2),
            Some(q @ (b'\'' | b'"' | b'`')) => {
                let quoting = if q == b'`' {
                    Quoting::Doubled
                } else {
                    Quoting::BackslashOrDoubled
                };
                self.quoted(start + 1, q, quoting)?;
                return Ok(Kind::UserVar);
            }
            _ => (Kind::UserVar, start + 1),
        };
        while bytes
            .get(i)
            .is_some_and(|&c| c == b'.' || class(c) & CONT != 0)
        {
            i += 1;
        }
        self.pos = i;
        Ok(kind)
    }

    /// SQLite's `[identifier]` under the strict dialect: harmless unless its content would be
    /// lexed differently by PostgreSQL or MySQL (quotes, comments, dollars, `;`).
    fn bracket(&mut self, start: usize) -> Result<Kind, LexError<'a>> {
        let bytes = self.bytes();
        let Some(len) = bytes[start..].iter().position(|&b| b == b']') else {
            return Ok(Kind::Other);
        };
        let content = &bytes[start..start + len];
        let risky = content
            .iter()
            .any(|b| matches!(b, b'\'' | b'"' | b'`' | b'#' | b'$' | b';'))
            || content.windows(2).any(|w| w == b"--" || w == b"/*");
        if risky {
            return Err(self.fail(LexErrorKind::Ambiguous, start, start + 1));
        }
        Ok(Kind::Other)
    }

    /// Consumes identifier characters from `start` on.
    fn word_end(&mut self, start: usize) -> Kind {
        let bytes = self.bytes();
        let mut i = start + 1;
        while bytes.get(i).is_some_and(|&c| class(c) & CONT != 0) {
            i += 1;
        }
        self.pos = i;
        Kind::Word
    }

    /// A word, or PostgreSQL's `E'...'`, `U&'...'` and `U&"..."` forms.
    fn word(&mut self, start: usize) -> Result<Kind, LexError<'a>> {
        let kind = self.word_end(start);
        let i = self.pos;
        if self.dialect == Dialect::Postgres && i == start + 1 {
            match (self.bytes()[start] | 0x20, self.at(i), self.at(i + 1)) {
                (b'e', Some(b'\''), _) => return self.quoted(i, b'\'', Quoting::Backslash),
                (b'u', Some(b'&'), Some(b'\'')) => {
                    return self.quoted(i + 1, b'\'', Quoting::DoubledOrBackslash);
                }
                (b'u', Some(b'&'), Some(b'"')) => {
                    self.quoted(i + 1, b'"', Quoting::Doubled)?;
                    return Ok(Kind::Quoted);
                }
                _ => {}
            }
        }
        Ok(kind)
    }
}
