//! What the lexer yields: [`Token`]s of a [`Kind`], and the [`LexError`] it stops at.

/// The kind of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An unquoted identifier or keyword.
    Word,
    /// A quoted identifier (`"x"`, `` `x` ``, `U&"x"`; MySQL's `"x"` too, since `ANSI_QUOTES`
    /// makes it one).
    Quoted,
    /// A string literal of any form, dollar-quoted strings included.
    Str,
    /// A number.
    Number,
    /// A positional parameter (`$1`).
    Param,
    /// A MySQL user variable (`@name`, `@'name'`).
    UserVar,
    /// A MySQL system variable (`@@name`, `@@session.name`).
    SysVar,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `;`
    Semi,
    /// `.`
    Dot,
    /// MySQL's `:=` assignment.
    ColonEq,
    /// Any other single byte (operators, `,`, `?`, ...).
    Other,
    /// The end of the input.
    Eof,
    /// The lexer gave up; [`Lexer::error`](super::Lexer::error) says why. Every later token is
    /// an error too.
    Error,
}

/// One token: its kind and the byte range of the input it covers (small enough to travel in
/// registers; [`Lexer::text`](super::Lexer::text) gives the slice). A qualified name
/// (`"cake"."id"`, `pg_catalog.nextval`) is one token whose kind is that of its last part,
/// which starts at `part`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    /// The token right before this one was a `.` (`t . update` is a column, not a statement).
    pub(crate) after_dot: bool,
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) part: u32,
}

impl Token {
    pub(super) fn new(kind: Kind, start: usize, end: usize) -> Self {
        // The classifier refuses inputs longer than `u32::MAX` before lexing.
        Self {
            kind,
            after_dot: false,
            start: start as u32,
            end: end as u32,
            part: start as u32,
        }
    }

    pub(super) fn name(kind: Kind, after_dot: bool, start: usize, part: usize, end: usize) -> Self {
        Self {
            kind,
            after_dot,
            start: start as u32,
            end: end as u32,
            part: part as u32,
        }
    }

    /// True for a qualified name (`a.b`).
    pub(crate) fn is_qualified(&self) -> bool {
        self.part != self.start
    }
}

/// Why the lexer gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LexErrorKind {
    /// A string, quoted identifier, dollar quote or block comment never ends.
    Unterminated,
    /// The extent of a construct depends on the dialect or on session settings.
    Ambiguous,
}

/// A lexing failure and the piece of input where it happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LexError<'a> {
    pub(crate) kind: LexErrorKind,
    pub(crate) at: &'a str,
}
