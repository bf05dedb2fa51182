//! An allocation-free byte lexer for the SQL dialects the classifier knows.
//!
//! It yields only what the rules need: words, quoted identifiers, strings (content skipped),
//! numbers, parameters, MySQL variables and a few punctuation marks. Whitespace and comments
//! are skipped. Anything whose extent depends on a session setting or on the dialect
//! (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`, MySQL executable
//! comments, nested comments under the strict dialect, ...) is reported as
//! [`LexErrorKind::Ambiguous`] rather than guessed.
//!
//! The common tokens of generated SQL are lexed inline here; comments, strings and every
//! other construct out of line, in [`slow`].

mod slow;
mod token;

pub(crate) use self::token::{Kind, LexError, LexErrorKind, Token};

/// Which lexical rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL 12+ (and Aurora PostgreSQL).
    Postgres,
    /// MySQL 5.7/8, MariaDB 10.x (and Aurora MySQL).
    MySql,
    /// Any other backend: a construct that PostgreSQL and MySQL read differently is ambiguous.
    Strict,
}

impl Dialect {
    /// MySQL rules apply (MySQL itself and the strict combination).
    pub(crate) fn mysql_like(self) -> bool {
        !matches!(self, Dialect::Postgres)
    }

    /// PostgreSQL rules apply (PostgreSQL itself and the strict combination).
    pub(crate) fn pg_like(self) -> bool {
        !matches!(self, Dialect::MySql)
    }
}

const SPACE: u8 = 1;
const START: u8 = 2;
const CONT: u8 = 4;
const DIGIT: u8 = 8;
/// Whitespace, and punctuation that no rule looks at.
const BLANK: u8 = 16;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            class |= SPACE | BLANK;
        }
        if matches!(
            b,
            b',' | b'=' | b'*' | b'?' | b'<' | b'>' | b'+' | b'%' | b'|'
        ) {
            class |= BLANK;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            class |= START | CONT;
        }
        if b.is_ascii_digit() {
            class |= DIGIT | CONT;
        }
        if b == b'$' {
            class |= CONT;
        }
        table[i] = class;
        i += 1;
    }
    table
}

fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// The lexer: a position in the input and the dialect's rules.
#[derive(Debug, Clone)]
pub(crate) struct Lexer<'a> {
    sql: &'a str,
    pos: usize,
    dialect: Dialect,
    error: Option<LexError<'a>>,
    /// The last token was a `.`.
    after_dot: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(sql: &'a str, dialect: Dialect) -> Self {
        Self {
            sql,
            pos: 0,
            dialect,
            error: None,
            after_dot: false,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.sql.as_bytes()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    /// The input between two byte offsets; every offset the lexer produces sits on an ASCII
    /// byte or an end, so this never fails in practice, but it must not panic either.
    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.sql
            .get(from..to.min(self.sql.len()))
            .unwrap_or_default()
    }

    fn fail(&self, kind: LexErrorKind, from: usize, to: usize) -> LexError<'a> {
        LexError {
            kind,
            at: self.slice(from, to),
        }
    }

    /// Why the lexer gave up, once it has returned a [`Kind::Error`] token.
    pub(crate) fn error(&self) -> Option<LexError<'a>> {
        self.error
    }

    /// The text of a token.
    pub(crate) fn text(&self, token: Token) -> &'a str {
        self.slice(token.start as usize, token.end as usize)
    }

    /// The text of the last part of a token (all of it unless it is a qualified name).
    pub(crate) fn part(&self, token: Token) -> &'a str {
        self.slice(token.part as usize, token.end as usize)
    }

    /// The bytes of the last part of a token.
    pub(crate) fn part_bytes(&self, token: Token) -> &'a [u8] {
        self.bytes()
            .get(token.part as usize..token.end as usize)
            .unwrap_or_default()
    }

    /// The next token. The common tokens of generated SQL (words, quoted identifiers, qualified
    /// names, punctuation, numbers, `$n`) are lexed here; comments, strings and the rest out of
    /// line. Punctuation that no rule looks at (`,`, `=`, `*`, `?`, `<`, `>`, `+`, `%`, `|`) is
    /// skipped.
    #[inline(never)]
    pub(crate) fn next_token(&mut self) -> Token {
        let mut token = self.lex();
        token.after_dot = self.after_dot;
        self.after_dot = token.kind == Kind::Dot;
        token
    }

    /// The next token that a query's rules look at: a word for which `keyword` holds, a word
    /// or quoted identifier that may be followed by `(` (a call), and every token other than
    /// words, quoted identifiers, numbers and parameters. Skipping the others here, without
    /// building tokens, is what keeps the classifier fast on generated SQL.
    #[inline]
    pub(crate) fn next_significant(&mut self, keyword: impl Fn(&[u8]) -> bool) -> Token {
        let bytes = self.bytes();
        let mut i = self.pos;
        loop {
            i = self.skip_blanks(i);
            let Some(&b) = bytes.get(i) else {
                break;
            };
            let name_end = if class(b) & START != 0 {
                self.word_at(i)
            } else if b == self.ident_quote() {
                self.quoted_at(i).unwrap_or(i)
            } else {
                match self.number_at(i) {
                    Some((_, end)) => {
                        self.after_dot = false;
                        i = end;
                        continue;
                    }
                    None => break,
                }
            };
            if name_end == i {
                break;
            }
            let (kind, part, end) = self.qualified(i, name_end);
            let last = bytes.get(part..end).unwrap_or_default();
            let mut after = end;
            while bytes.get(after).is_some_and(|&b| class(b) & SPACE != 0) {
                after += 1;
            }
            // A call, or maybe one: a comment may hide the `(`.
            let call = matches!(bytes.get(after), Some(b'(' | b'-' | b'/' | b'#'));
            if call || (kind == Kind::Word && keyword(last)) {
                self.pos = end;
                let after_dot = std::mem::take(&mut self.after_dot);
                return Token::name(kind, after_dot, i, part, end);
            }
            self.after_dot = false;
            i = after;
        }
        self.pos = i;
        self.next_token()
    }

    /// The quote of identifiers that the fast paths lex (PostgreSQL's `"`, MySQL's `` ` ``;
    /// MySQL's `"` and the strict dialect's `"` take the slow path).
    #[inline(always)]
    fn ident_quote(&self) -> u8 {
        if self.dialect == Dialect::Postgres {
            b'"'
        } else {
            b'`'
        }
    }

    /// Skips whitespace and the punctuation no rule looks at.
    #[inline(always)]
    fn skip_blanks(&self, mut i: usize) -> usize {
        let bytes = self.bytes();
        while bytes.get(i).is_some_and(|&b| class(b) & BLANK != 0) {
            i += 1;
        }
        i
    }

    /// The common tokens inline, the rest out of line.
    #[inline(always)]
    fn lex(&mut self) -> Token {
        let bytes = self.bytes();
        let start = self.skip_blanks(self.pos);
        self.pos = start;
        let Some(&b) = bytes.get(start) else {
            let kind = if self.error.is_some() {
                Kind::Error
            } else {
                Kind::Eof
            };
            return Token::new(kind, start, start);
        };
        let name_end = if class(b) & START != 0 {
            self.word_at(start)
        } else if b == self.ident_quote() {
            self.quoted_at(start).unwrap_or(start)
        } else {
            start
        };
        if name_end != start {
            let (kind, part, end) = self.qualified(start, name_end);
            self.pos = end;
            return Token::name(kind, false, start, part, end);
        }
        if let Some((kind, end)) = self.number_at(start) {
            self.pos = end;
            return Token::new(kind, start, end);
        }
        let kind = match b {
            b'(' => Kind::LParen,
            b')' => Kind::RParen,
            b'.' => Kind::Dot,
            b';' => Kind::Semi,
            _ => return self.slow_token(),
        };
        self.pos = start + 1;
        Token::new(kind, start, start + 1)
    }

    /// A number, or a `$1` parameter outside MySQL (where `$` starts identifiers).
    #[inline(always)]
    fn number_at(&self, start: usize) -> Option<(Kind, usize)> {
        let bytes = self.bytes();
        let (kind, mut end) = match bytes.get(start)? {
            b'0'..=b'9' => (Kind::Number, start + 1),
            b'$' if self.dialect != Dialect::MySql
                && bytes.get(start + 1).is_some_and(|&c| class(c) & DIGIT != 0) =>
            {
                (Kind::Param, start + 2)
            }
            _ => return None,
        };
        while bytes.get(end).is_some_and(|&c| class(c) & DIGIT != 0) {
            end += 1;
        }
        if kind == Kind::Number && bytes.get(end).is_some_and(|&c| class(c) & CONT != 0) {
            end = self.number_suffix(start, end);
        }
        Some((kind, end))
    }

    /// The end of the number whose digits `start..end` an identifier byte follows.
    ///
    /// An exponent belongs to the number in every dialect, and the servers start a new token
    /// right after it: `1e5FOR UPDATE` is `1e5 FOR UPDATE` (MySQL, MariaDB, PostgreSQL before
    /// 15). Otherwise PostgreSQL ends the number at the digits (`1for` is `1 for`), and MySQL
    /// reads the whole run as an identifier (`1abc`, `0x41`), except for the digits after a `.`,
    /// which are a fraction: `1.5FOR UPDATE` is `1.5 FOR UPDATE` to MySQL and MariaDB. (`t.5for`
    /// names a column there, read here as `5 for`: harmless, it can only send a statement to the
    /// writer.)
    #[inline(never)]
    fn number_suffix(&self, start: usize, end: usize) -> usize {
        let bytes = self.bytes();
        let digit = |i: usize| bytes.get(i).is_some_and(|&c| class(c) & DIGIT != 0);
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            let mut i = end + 1 + sign;
            if digit(i) {
                while digit(i) {
                    i += 1;
                }
                return i;
            }
        }
        let fraction = start
            .checked_sub(1)
            .is_some_and(|before| bytes.get(before) == Some(&b'.'));
        if self.dialect != Dialect::MySql || fraction {
            return end;
        }
        let mut i = end;
        while bytes.get(i).is_some_and(|&c| class(c) & CONT != 0) {
            i += 1;
        }
        i
    }

    /// The end of the word at `start`, or `start` when PostgreSQL would read a string prefix
    /// there (`E'..'`, `U&'..'`, `U&".."`), which the slow path lexes.
    #[inline(always)]
    fn word_at(&self, start: usize) -> usize {
        let bytes = self.bytes();
        let mut end = start + 1;
        while bytes.get(end).is_some_and(|&c| class(c) & CONT != 0) {
            end += 1;
        }
        let prefix = end == start + 1 && matches!(bytes.get(end), Some(b'\'' | b'&'));
        if prefix && self.dialect == Dialect::Postgres {
            start
        } else {
            end
        }
    }

    /// The end of the quoted identifier at `start`, unless it is unterminated or holds a
    /// doubled quote, which the slow path lexes.
    #[inline(always)]
    fn quoted_at(&self, start: usize) -> Option<usize> {
        let bytes = self.bytes();
        let quote = *bytes.get(start)?;
        let len = bytes.get(start + 1..)?.iter().position(|&c| c == quote)?;
        let end = start + len + 2;
        (bytes.get(end) != Some(&quote)).then_some(end)
    }

    /// Extends a name (word or quoted identifier) from `start` to `end` over `.part.part`
    /// without spaces: the kind and start of its last part, and its end.
    #[inline(always)]
    fn qualified(&self, start: usize, mut end: usize) -> (Kind, usize, usize) {
        let bytes = self.bytes();
        let quote = self.ident_quote();
        let (mut part, mut kind) = (start, Kind::Word);
        if bytes.get(start) == Some(&quote) {
            kind = Kind::Quoted;
        }
        while bytes.get(end) == Some(&b'.') {
            let next = end + 1;
            let (next_kind, next_end) = match bytes.get(next) {
                Some(&c) if class(c) & START != 0 => (Kind::Word, self.word_at(next)),
                Some(&c) if c == quote => (Kind::Quoted, self.quoted_at(next).unwrap_or(next)),
                _ => break,
            };
            if next_end == next {
                break;
            }
            (kind, part, end) = (next_kind, next, next_end);
        }
        (kind, part, end)
    }
}
