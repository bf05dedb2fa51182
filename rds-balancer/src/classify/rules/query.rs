//! The rules inside a statement: a query's body, function calls, SHOW and EXPLAIN.

use super::keywords::{BodyWord, Start, body_word, kw, start_of};
use super::{Flow, Rules, Statement, read, unsure, write};
use crate::classify::Reason;
use crate::classify::functions::{is_session_bound_sysvar, is_write_function};
use crate::classify::lexer::{Dialect, Kind, Token};

impl<'a> Rules<'a, '_> {
    /// The body of a query started by `keyword`, up to its `;` or the end.
    pub(super) fn body(&mut self, keyword: Token, mut depth: u32) -> Flow<'a, Statement<'a>> {
        loop {
            let token = self.next_significant();
            match token.kind {
                Kind::Word => self.word(token, depth)?,
                Kind::Quoted if self.peek_kind(Kind::LParen) => self.call(token)?,
                Kind::LParen => depth += 1,
                Kind::RParen => depth = depth.saturating_sub(1),
                Kind::Semi => return Ok((read(self.text(keyword)), Some(token))),
                Kind::Eof => return Ok((read(self.text(keyword)), None)),
                Kind::Error => return Err(self.lex_error()),
                Kind::UserVar if self.peek_kind(Kind::ColonEq) => {
                    return Err(write(Reason::VariableAssignment, self.text(token)));
                }
                Kind::UserVar => return Err(write(Reason::SessionBound, self.text(token))),
                // The strict dialect cannot tell a system variable from `@ @ words`.
                Kind::SysVar
                    if self.dialect == Dialect::Strict
                        || is_session_bound_sysvar(self.text(token)) =>
                {
                    return Err(write(Reason::SessionBound, self.text(token)));
                }
                Kind::ColonEq => return Err(write(Reason::VariableAssignment, self.text(token))),
                _ => {}
            }
        }
    }

    /// A word inside a query.
    fn word(&mut self, token: Token, depth: u32) -> Flow<'a, ()> {
        let after_dot = token.after_dot || token.is_qualified();
        match body_word(self.lexer.part_bytes(token), self.dialect) {
            Some(BodyWord::For)
                if matches!(self.peek_key(), kw::UPDATE | kw::SHARE | kw::NO | kw::KEY) =>
            {
                return Err(write(Reason::LockingRead, self.name(token)));
            }
            Some(BodyWord::Lock) if self.peek_key() == kw::IN => {
                return Err(write(Reason::LockingRead, self.name(token)));
            }
            Some(BodyWord::Into) => return Err(write(Reason::SelectInto, self.name(token))),
            Some(BodyWord::Dml) if !after_dot && !self.peek_kind(Kind::LParen) => {
                let reason = if depth > 0 {
                    Reason::DataModifyingCte
                } else {
                    Reason::DataModification
                };
                return Err(write(reason, self.name(token)));
            }
            Some(BodyWord::SequenceValue) if self.peek_key() == kw::VALUE => {
                return Err(write(Reason::WriteFunction, self.name(token)));
            }
            Some(BodyWord::SequenceAttribute) if after_dot && self.dialect.mysql_like() => {
                return Err(write(Reason::WriteFunction, self.name(token)));
            }
            Some(BodyWord::CalcFoundRows) => {
                return Err(write(Reason::SessionState, self.name(token)));
            }
            _ => {}
        }
        if self.peek_kind(Kind::LParen) {
            self.call(token)?;
        }
        Ok(())
    }

    /// A function call: `token` is followed by `(`.
    fn call(&mut self, token: Token) -> Flow<'a, ()> {
        let name = self.name(token);
        if is_write_function(name, self.dialect) {
            return Err(write(Reason::WriteFunction, name));
        }
        if self.extra.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            return Err(write(Reason::UserWriteFunction, name));
        }
        Ok(())
    }

    /// SHOW: read-only, except MySQL's views of the session's own last statement.
    pub(super) fn show(&mut self, keyword: Token) -> Flow<'a, Statement<'a>> {
        if self.dialect.mysql_like()
            && self.peek_word(&["warnings", "errors", "count", "profile", "profiles"])
        {
            return Err(write(Reason::SessionBound, self.text(keyword)));
        }
        self.body(keyword, 0)
    }

    /// EXPLAIN (and MySQL's DESCRIBE/DESC): read-only unless it runs the statement (ANALYZE) or
    /// explains something other than a query. The strict dialect takes neither MySQL's
    /// `FORMAT=`/table forms nor PostgreSQL's option list.
    pub(super) fn explain(&mut self, keyword: Token) -> Flow<'a, Statement<'a>> {
        let mysql = self.dialect == Dialect::MySql;
        loop {
            let token = self.next();
            match token.kind {
                Kind::Word => {
                    let text = self.text(token);
                    let is = |w: &str| text.eq_ignore_ascii_case(w);
                    if is("analyze") || is("analyse") {
                        return Err(write(Reason::ExplainAnalyze, text));
                    }
                    if is("verbose") || is("extended") || is("partitions") {
                        continue;
                    }
                    if mysql && is("format") {
                        // `FORMAT = JSON`: the lexer skips the `=`; skip the value.
                        self.next();
                        continue;
                    }
                    return match start_of(text, self.dialect) {
                        Start::Query => self.body(keyword, 0),
                        // MySQL's `DESCRIBE t`, `EXPLAIN t`, `DESC t col`.
                        Start::Unknown if mysql && !is("for") => self.body(keyword, 0),
                        _ => self.skip(token),
                    };
                }
                Kind::Quoted if mysql => return self.body(keyword, 0),
                Kind::LParen => {
                    let next = self.peek();
                    let query = next.kind == Kind::LParen
                        || (next.kind == Kind::Word
                            && matches!(start_of(self.text(next), self.dialect), Start::Query));
                    if query || self.dialect != Dialect::Postgres {
                        return self.parenthesized(token, 1);
                    }
                    self.explain_options(keyword)?;
                }
                Kind::Eof => {
                    return Ok((unsure(Reason::Unrecognized, Some(self.text(keyword))), None));
                }
                _ => return self.skip(token),
            }
        }
    }

    /// PostgreSQL's `(option [value], ...)` after EXPLAIN; `(` already read. ANALYZE counts
    /// unless its value is plainly false.
    fn explain_options(&mut self, keyword: Token) -> Flow<'a, ()> {
        let mut depth = 1u32;
        loop {
            let token = self.next();
            match token.kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Kind::Word if self.is_word(token, &["analyze", "analyse"]) => {
                    let value = self.peek();
                    let off = self.is_word(value, &["false", "off"])
                        || (value.kind == Kind::Number && self.text(value) == "0");
                    if !off {
                        return Err(write(Reason::ExplainAnalyze, self.text(token)));
                    }
                }
                Kind::Error => return Err(self.lex_error()),
                Kind::Semi | Kind::Eof => {
                    return Err(unsure(Reason::Unrecognized, Some(self.text(keyword))));
                }
                _ => {}
            }
        }
    }
}
