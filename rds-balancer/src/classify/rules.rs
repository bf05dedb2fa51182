//! The rules: what the first keyword of each statement says, and what makes a query a write.

use super::functions::{is_session_bound_sysvar, is_write_function};
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

/// What a statement's first word makes it.
#[derive(Clone, Copy)]
enum Start {
    /// SELECT, WITH, VALUES, TABLE: read-only unless the body says otherwise.
    Query,
    Show,
    Explain,
    Analyze,
    /// START TRANSACTION, or MySQL's START REPLICA/SLAVE.
    Begin,
    /// PREPARE, or PostgreSQL's PREPARE TRANSACTION.
    Prepare,
    Write(Reason),
    Unknown,
}

/// The first 8 bytes of a word, ASCII-lowercased, packed into an integer so that keywords
/// compare as numbers (`| 0x20` maps only the two cases of a letter to the same byte). Words of
/// more than 8 bytes pack their length into the top byte instead of their eighth byte, so a
/// long word never equals a short keyword; the few longer keywords are checked in full.
const fn key(word: &[u8]) -> u64 {
    let mut key = 0u64;
    let mut i = 0;
    while i < word.len() && i < 8 {
        key |= ((word[i] | 0x20) as u64) << (8 * i);
        i += 1;
    }
    if word.len() > 8 {
        key = (key & 0x00ff_ffff_ffff_ffff) | ((word.len() as u64 & 0x7f) << 56) | (1 << 63);
    }
    key
}

macro_rules! keywords {
    ($($name:ident)*) => {
        $(pub(super) const $name: u64 = key(stringify!($name).as_bytes());)*
    };
}

/// The statement keywords, each a constant named as the keyword itself.
mod kw {
    use super::key;
    keywords! {
        SELECT WITH VALUES TABLE SHOW EXPLAIN DESCRIBE DESC ANALYZE ANALYSE START PREPARE
        INSERT UPDATE DELETE MERGE REPLACE UPSERT COPY LOAD CREATE ALTER DROP TRUNCATE GRANT
        REVOKE COMMENT RENAME SECURITY REASSIGN IMPORT VACUUM REINDEX CLUSTER REFRESH OPTIMIZE
        REPAIR CACHE CHECKPOINT KILL FLUSH PURGE SHUTDOWN RESTART CHANGE STOP INSTALL UNINSTALL
        BINLOG CLONE CALL DO EXECUTE BEGIN COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE XA SET
        RESET USE DISCARD DEALLOCATE HANDLER DECLARE FETCH MOVE CLOSE GET LISTEN UNLISTEN
        NOTIFY LOCK UNLOCK SHARE NO KEY IN VALUE
    }
}

fn start_of(word: &str, dialect: Dialect) -> Start {
    use Reason::*;
    use kw::*;
    let bytes = word.as_bytes();
    let key = key(bytes);
    if key >> 63 == 1 {
        // Longer than 8 bytes: the prefix and length matched; compare the rest.
        let long = ["checkpoint", "savepoint", "uninstall", "deallocate"];
        if !long
            .iter()
            .any(|k| bytes.eq_ignore_ascii_case(k.as_bytes()))
        {
            return Start::Unknown;
        }
    }
    match key {
        SELECT | WITH | VALUES | TABLE => Start::Query,
        SHOW => Start::Show,
        EXPLAIN => Start::Explain,
        DESCRIBE | DESC if dialect == Dialect::MySql => Start::Explain,
        ANALYZE | ANALYSE => Start::Analyze,
        START => Start::Begin,
        PREPARE => Start::Prepare,
        INSERT | UPDATE | DELETE | MERGE | REPLACE | UPSERT | COPY => {
            Start::Write(DataModification)
        }
        LOAD if dialect == Dialect::Postgres => Start::Write(SessionState),
        LOAD => Start::Write(DataModification),
        CREATE | ALTER | DROP | TRUNCATE | GRANT | REVOKE | COMMENT | RENAME | SECURITY
        | REASSIGN | IMPORT => Start::Write(Ddl),
        VACUUM | REINDEX | CLUSTER | REFRESH | OPTIMIZE | REPAIR | CACHE => {
            Start::Write(Maintenance)
        }
        CHECKPOINT | KILL | FLUSH | PURGE | SHUTDOWN | RESTART | CHANGE | STOP | INSTALL
        | UNINSTALL | BINLOG | CLONE => Start::Write(Administration),
        CALL | DO | EXECUTE => Start::Write(RoutineCall),
        BEGIN | COMMIT | END | ROLLBACK | ABORT | SAVEPOINT | RELEASE | XA => {
            Start::Write(TransactionControl)
        }
        SET | RESET | USE | DISCARD | DEALLOCATE | HANDLER | DECLARE | FETCH | MOVE | CLOSE => {
            Start::Write(SessionState)
        }
        GET => Start::Write(SessionBound),
        LISTEN | UNLISTEN | NOTIFY => Start::Write(Notification),
        LOCK | UNLOCK => Start::Write(TableLock),
        _ => Start::Unknown,
    }
}

/// Words that matter inside a query.
#[derive(Clone, Copy)]
enum BodyWord {
    For,
    Lock,
    Into,
    /// INSERT/UPDATE/DELETE (MERGE in PostgreSQL, REPLACE in MySQL).
    Dml,
    /// NEXT/PREVIOUS VALUE FOR (MariaDB sequences).
    SequenceValue,
    /// `seq.nextval` / `seq.currval` (MariaDB's Oracle mode).
    SequenceAttribute,
    CalcFoundRows,
}

#[inline(always)]
fn body_word(bytes: &[u8], dialect: Dialect) -> Option<BodyWord> {
    let is = |keyword: &str| bytes.eq_ignore_ascii_case(keyword.as_bytes());
    let first = bytes.first()? | 0x20;
    match (bytes.len(), first) {
        (3, b'f') if is("for") => Some(BodyWord::For),
        (4, b'l') if is("lock") => Some(BodyWord::Lock),
        (4, b'i') if is("into") => Some(BodyWord::Into),
        (4, b'n') if is("next") => Some(BodyWord::SequenceValue),
        (6, b'i') if is("insert") => Some(BodyWord::Dml),
        (6, b'u') if is("update") => Some(BodyWord::Dml),
        (6, b'd') if is("delete") => Some(BodyWord::Dml),
        (5, b'm') if dialect.pg_like() && is("merge") => Some(BodyWord::Dml),
        (7, b'r') if dialect.mysql_like() && is("replace") => Some(BodyWord::Dml),
        (8, b'p') if is("previous") => Some(BodyWord::SequenceValue),
        (7, b'n') if is("nextval") => Some(BodyWord::SequenceAttribute),
        (7, b'c') if is("currval") => Some(BodyWord::SequenceAttribute),
        (19, b's') if dialect.mysql_like() && is("sql_calc_found_rows") => {
            Some(BodyWord::CalcFoundRows)
        }
        _ => None,
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

    /// The body of a query started by `keyword`, up to its `;` or the end.
    fn body(&mut self, keyword: Token, mut depth: u32) -> Flow<'a, Statement<'a>> {
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
    fn show(&mut self, keyword: Token) -> Flow<'a, Statement<'a>> {
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
    fn explain(&mut self, keyword: Token) -> Flow<'a, Statement<'a>> {
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
