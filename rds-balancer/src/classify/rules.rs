//! The rules: what the first keyword of each statement says, and what makes a query a write.

mod keywords;
mod query;

use self::keywords::{Start, body_word, key, start_of};
use super::lexer::{Dialect, Kind, LexErrorKind, Lexer, Token};
use super::{Explanation, Reason, Target};

/// `Err` carries the final answer: a certain write or a lexing failure ends classification.
type Flow<'a, T> = Result<T, Explanation<'a>>;

/// How one statement ended: its own explanation and the `;` that ended it, if any.
type Statement<'a> = (Explanation<'a>, Option<Token>);

/// Classifies `sql` under `dialect`, with `extra` (lowercase) user write functions.
pub(crate) fn explain<'a>(sql: &'a str, dialect: Dialect, extra: &[Box<str>]) -> Explanation<'a> {
    if u32::try_from(sql.len()).is_err() {
        // Far beyond any server's packet limit; tokens keep 32-bit offsets.
        return unsure(Reason::Unrecognized, None);
    }
    if has_nul(sql.as_bytes()) {
        // The server may stop reading at a NUL byte, or reject the statement.
        let at = sql.find('\0').and_then(|i| sql.get(i..=i));
        return unsure(Reason::Ambiguous, at);
    }
    let mut rules = Rules {
        lexer: Lexer::new(sql, dialect),
        peeked: None,
        dialect,
        extra,
    };
    match rules.script() {
        Ok(explanation) | Err(explanation) => explanation,
    }
}

/// True when `bytes` holds a NUL byte (a fold without early exit vectorises; statements are
/// short).
fn has_nul(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |nul, &b| nul | (b == 0))
}

fn unsure(reason: Reason, detail: Option<&str>) -> Explanation<'_> {
    Explanation {
        target: Target::Writer,
        reason,
        detail,
    }
}

fn write(reason: Reason, detail: &str) -> Explanation<'_> {
    Explanation {
        target: Target::Writer,
        reason,
        detail: Some(detail),
    }
}

fn read(keyword: &str) -> Explanation<'_> {
    Explanation {
        target: Target::Reader,
        reason: Reason::ReadOnlyQuery,
        detail: Some(keyword),
    }
}

/// The lexer with one token of lookahead, and the rules applied to its tokens.
struct Rules<'a, 'x> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    dialect: Dialect,
    extra: &'x [Box<str>],
}

impl<'a> Rules<'a, '_> {
    fn next(&mut self) -> Token {
        match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token(),
        }
    }

    /// The next token a query's rules look at (see [`Lexer::next_significant`]).
    #[inline(always)]
    fn next_significant(&mut self) -> Token {
        match self.peeked.take() {
            Some(token) => token,
            None => {
                let dialect = self.dialect;
                self.lexer
                    .next_significant(|word| body_word(word, dialect).is_some())
            }
        }
    }

    fn peek(&mut self) -> Token {
        match self.peeked {
            Some(token) => token,
            None => *self.peeked.insert(self.lexer.next_token()),
        }
    }

    fn text(&self, token: Token) -> &'a str {
        self.lexer.text(token)
    }

    /// The name a word or quoted identifier stands for: a quoted identifier without its quotes.
    fn name(&self, token: Token) -> &'a str {
        let text = self.lexer.part(token);
        if token.kind != Kind::Quoted {
            return text;
        }
        let open = text.find(['"', '`']).map_or(0, |i| i + 1);
        text.get(open..text.len().saturating_sub(1))
            .unwrap_or_default()
    }

    /// True for a word among `words` (ASCII case-insensitively).
    fn is_word(&self, token: Token, words: &[&str]) -> bool {
        token.kind == Kind::Word && {
            let text = self.text(token);
            words.iter().any(|w| text.eq_ignore_ascii_case(w))
        }
    }

    /// The key (see [`key`]) of the next token when it is an unqualified word, else 0.
    fn peek_key(&mut self) -> u64 {
        let token = self.peek();
        if token.kind == Kind::Word && !token.is_qualified() {
            key(self.lexer.part_bytes(token))
        } else {
            0
        }
    }

    /// True when the next token is a word among `words`.
    fn peek_word(&mut self, words: &[&str]) -> bool {
        let token = self.peek();
        self.is_word(token, words)
    }

    fn peek_kind(&mut self, kind: Kind) -> bool {
        self.peek().kind == kind
    }

    /// The final answer for a lexing failure.
    fn lex_error(&self) -> Explanation<'a> {
        match self.lexer.error() {
            Some(error) => unsure(
                match error.kind {
                    LexErrorKind::Unterminated => Reason::Unterminated,
                    LexErrorKind::Ambiguous => Reason::Ambiguous,
                },
                Some(error.at),
            ),
            None => unsure(Reason::Unrecognized, None),
        }
    }

    /// Every statement in the input; several statements never go to a reader.
    fn script(&mut self) -> Flow<'a, Explanation<'a>> {
        let first = self.next();
        if first.kind == Kind::Eof {
            return Ok(unsure(Reason::Empty, None));
        }
        let (explanation, mut end) = self.statement(first)?;
        let mut separator = None;
        while let Some(semicolon) = end {
            let next = self.next();
            if next.kind == Kind::Eof {
                break;
            }
            separator.get_or_insert(semicolon);
            end = self.statement(next)?.1;
        }
        Ok(match separator {
            Some(semicolon) => unsure(Reason::MultipleStatements, Some(self.text(semicolon))),
            None => explanation,
        })
    }

    /// One statement starting at `first` (not the end of the input).
    fn statement(&mut self, first: Token) -> Flow<'a, Statement<'a>> {
        let text = self.text(first);
        match first.kind {
            Kind::Semi => Ok((unsure(Reason::Empty, None), Some(first))),
            Kind::LParen => self.parenthesized(first, 1),
            Kind::Word => match start_of(text, self.dialect) {
                Start::Query => self.body(first, 0),
                Start::Show => self.show(first),
                Start::Explain => self.explain(first),
                Start::Analyze => {
                    // MariaDB's `ANALYZE SELECT ...` runs the statement, like EXPLAIN ANALYZE.
                    let runs = self.dialect.mysql_like()
                        && !self.peek_word(&["table", "no_write_to_binlog", "local"]);
                    let reason = if runs {
                        Reason::ExplainAnalyze
                    } else {
                        Reason::Maintenance
                    };
                    Err(write(reason, text))
                }
                Start::Begin => {
                    let admin = self.peek_word(&["slave", "replica", "group_replication"]);
                    let reason = if admin {
                        Reason::Administration
                    } else {
                        Reason::TransactionControl
                    };
                    Err(write(reason, text))
                }
                Start::Prepare => {
                    let transaction = self.dialect.pg_like() && self.peek_word(&["transaction"]);
                    let reason = if transaction {
                        Reason::TransactionControl
                    } else {
                        Reason::SessionState
                    };
                    Err(write(reason, text))
                }
                Start::Write(reason) => Err(write(reason, text)),
                Start::Unknown => self.skip(first),
            },
            _ => self.skip(first),
        }
    }

    /// `(` already read `depth` times: a parenthesised query.
    fn parenthesized(&mut self, first: Token, mut depth: u32) -> Flow<'a, Statement<'a>> {
        loop {
            let token = self.next();
            match token.kind {
                Kind::LParen => depth += 1,
                Kind::Eof => {
                    return Ok((unsure(Reason::Unrecognized, Some(self.text(first))), None));
                }
                Kind::Word if matches!(start_of(self.text(token), self.dialect), Start::Query) => {
                    return self.body(token, depth);
                }
                _ => return self.skip(token),
            }
        }
    }

    /// A statement the rules do not recognise: skipped to its end, so that a certain write after
    /// it is still reported.
    fn skip(&mut self, first: Token) -> Flow<'a, Statement<'a>> {
        let mut token = first;
        let explanation = unsure(Reason::Unrecognized, Some(self.text(first)));
        loop {
            match token.kind {
                Kind::Semi => return Ok((explanation, Some(token))),
                Kind::Eof => return Ok((explanation, None)),
                Kind::Error => return Err(self.lex_error()),
                _ => token = self.next(),
            }
        }
    }
}
