//! The statement classifier: rule 4 of the routing contract (see the crate documentation).
//!
//! [`classify`] returns [`Target::Reader`] only when a statement is certainly read-only and free
//! of session side effects on every supported engine version (PostgreSQL 12+, MySQL 5.7/8,
//! MariaDB 10.x, Aurora). Anything else goes to the writer: writes, anything it cannot lex,
//! anything whose meaning depends on a session setting, the empty string.
//!
//! It is a hand-written lexer over bytes, not a SQL parser: it knows each dialect's strings,
//! quoted identifiers and comments (PostgreSQL's dollar quotes, `E''` strings and nested
//! comments; MySQL's backticks, backslash escapes, `#` comments and executable `/*! */`
//! comments), reads the first keyword of every statement and then looks, at any depth, for what
//! turns a query into a write: locking clauses, `INTO`, data-modifying CTEs, side-effect or
//! session-bound functions, MySQL variable assignments, and a second statement. It allocates
//! nothing and keeps no state between calls; generated SQL of about 100 bytes takes about
//! 100 ns (`benches/classify.rs`).
//!
//! Where a statement's extent depends on a session setting it is not guessed: a `\'` in a
//! PostgreSQL `'...'` string (`standard_conforming_strings`) or in a MySQL string
//! (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`), a MySQL executable comment, a NUL byte: all go to
//! the writer as [`Reason::Ambiguous`]. The SQLite backend, or any other, gets the strictest
//! combination of both dialects: whatever it sends to a reader, PostgreSQL's and MySQL's rules
//! do too.
//!
//! A function it does not know can still write (a user-defined function, a view over one):
//! add such names with [`Classifier::with_write_function`], or route those statements
//! explicitly. Temporary tables live in the writer's session only: route statements reading
//! them to the writer explicitly too.

mod functions;
mod lexer;
mod rules;
#[cfg(test)]
mod tests;

use std::fmt;

use sea_orm::DatabaseBackend;

use self::lexer::Dialect;

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Certainly read-only and free of session side effects: any healthy reader may serve it.
    Reader,
    /// A write, or anything the classifier is not sure about: the writer.
    Writer,
}

/// Why a statement was classified as it was.
///
/// [`Reason::is_write`] tells a certain write (refused under a forced-reader scope) from a
/// statement the classifier is merely unsure about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A read-only query: SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN or DESCRIBE.
    ReadOnlyQuery,
    /// INSERT, UPDATE, DELETE, MERGE, REPLACE, UPSERT, COPY or LOAD.
    DataModification,
    /// A schema or privilege change: CREATE, ALTER, DROP, TRUNCATE, GRANT, REVOKE, COMMENT, ...
    Ddl,
    /// VACUUM, ANALYZE, REINDEX, CLUSTER, REFRESH MATERIALIZED VIEW, OPTIMIZE, REPAIR, ...
    Maintenance,
    /// Server administration: CHECKPOINT, KILL, FLUSH, PURGE, CHANGE/START/STOP REPLICA, ...
    Administration,
    /// CALL, DO or EXECUTE: runs code the classifier cannot see.
    RoutineCall,
    /// BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, SAVEPOINT, RELEASE, XA.
    TransactionControl,
    /// Changes session state: SET, RESET, USE, DISCARD, PREPARE, DEALLOCATE, DECLARE/FETCH/CLOSE
    /// (cursors), HANDLER, MySQL's `SQL_CALC_FOUND_ROWS`.
    SessionState,
    /// LISTEN, UNLISTEN or NOTIFY.
    Notification,
    /// LOCK TABLE(S) or UNLOCK TABLES.
    TableLock,
    /// A locking read: `FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`,
    /// `LOCK IN SHARE MODE`.
    LockingRead,
    /// `SELECT ... INTO`: a new table (PostgreSQL), variables or a file (MySQL).
    SelectInto,
    /// A WITH clause holding INSERT, UPDATE, DELETE or MERGE.
    DataModifyingCte,
    /// A built-in function with side effects or session binding (`nextval`, advisory locks,
    /// `pg_notify`, `LAST_INSERT_ID`, `GET_LOCK`, `NEXT VALUE FOR`, ...).
    WriteFunction,
    /// A function added with [`Classifier::with_write_function`].
    UserWriteFunction,
    /// Reads state that only exists on the connection that ran earlier statements: MySQL user
    /// variables, `@@identity`-like or session-scoped system variables, `SHOW WARNINGS`.
    SessionBound,
    /// Assigns a MySQL user variable (`@v := ...`).
    VariableAssignment,
    /// EXPLAIN ANALYZE (or MariaDB's ANALYZE statement) runs the statement it explains.
    ExplainAnalyze,
    /// Several statements in one string, none of them a certain write.
    MultipleStatements,
    /// Not recognised as a read-only statement.
    Unrecognized,
    /// An unterminated string, quoted identifier, dollar quote or block comment.
    Unterminated,
    /// Lexes differently depending on the dialect or a session setting
    /// (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`, a MySQL
    /// executable comment, a NUL byte, ...).
    Ambiguous,
    /// Nothing but whitespace and comments.
    Empty,
}

impl Reason {
    /// True when the statement certainly writes or has session side effects (or reads state
    /// bound to the session); false for read-only statements and for those the classifier is
    /// unsure about ([`Unrecognized`](Reason::Unrecognized), [`Unterminated`](Reason::Unterminated),
    /// [`Ambiguous`](Reason::Ambiguous), [`Empty`](Reason::Empty),
    /// [`MultipleStatements`](Reason::MultipleStatements)).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Reason::ReadOnlyQuery
                | Reason::MultipleStatements
                | Reason::Unrecognized
                | Reason::Unterminated
                | Reason::Ambiguous
                | Reason::Empty
        )
    }

    fn sentence(self) -> &'static str {
        match self {
            Reason::ReadOnlyQuery => "a read-only query",
            Reason::DataModification => "a data-modifying statement",
            Reason::Ddl => "a schema or privilege change",
            Reason::Maintenance => "a maintenance command",
            Reason::Administration => "a server administration command",
            Reason::RoutineCall => "a procedure call or code block",
            Reason::TransactionControl => "a transaction control statement",
            Reason::SessionState => "a statement that changes session state",
            Reason::Notification => "a LISTEN/NOTIFY statement",
            Reason::TableLock => "an explicit table lock",
            Reason::LockingRead => "a locking read (FOR UPDATE/SHARE, LOCK IN SHARE MODE)",
            Reason::SelectInto => "SELECT ... INTO, which writes a table, a file or variables",
            Reason::DataModifyingCte => "a WITH clause containing a data-modifying statement",
            Reason::WriteFunction => "a call to a function with side effects or session binding",
            Reason::UserWriteFunction => "a call to a function registered as a write",
            Reason::SessionBound => "a read of state bound to the session",
            Reason::VariableAssignment => "a user variable assignment",
            Reason::ExplainAnalyze => "EXPLAIN ANALYZE, which runs the statement",
            Reason::MultipleStatements => "several statements in one string",
            Reason::Unrecognized => "not recognised as a read-only statement",
            Reason::Unterminated => "an unterminated string, identifier or comment",
            Reason::Ambiguous => "SQL that reads differently depending on dialect or settings",
            Reason::Empty => "an empty statement",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sentence())
    }
}

/// A classification with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation<'a> {
    /// Where the statement may run.
    pub target: Target,
    /// Why.
    pub reason: Reason,
    /// The piece of the statement that decided it, when there is one: a keyword (`FOR`,
    /// `INSERT`), a function name (`nextval`), a delimiter that never closes (`'`, `$tag$`).
    pub detail: Option<&'a str>,
}

/// A statement classifier, with the user's own write functions.
///
/// Cheap to clone; classifying allocates nothing.
///
/// ```
/// use rds_balancer::{Classifier, Reason, Target};
/// use sea_orm::DatabaseBackend;
///
/// let classifier = Classifier::new().with_write_function("audit.record_access");
/// let sql = r#"SELECT "doc"."id", record_access("doc"."id") FROM "doc""#;
/// assert_eq!(classifier.classify(sql, DatabaseBackend::Postgres), Target::Writer);
/// let why = classifier.explain(sql, DatabaseBackend::Postgres);
/// assert_eq!((why.reason, why.detail), (Reason::UserWriteFunction, Some("record_access")));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    extra: Vec<Box<str>>,
}

impl Classifier {
    /// The default classifier: the built-in rules only.
    pub const fn new() -> Self {
        Self { extra: Vec::new() }
    }

    /// Adds a function whose call makes a statement a write (an audit or queue function, say).
    ///
    /// Names match case-insensitively, whatever schema the call names; a schema given here is
    /// ignored (`"audit.record"` matches `record(...)` and `other.record(...)`). Default: none.
    #[must_use]
    pub fn with_write_function(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        let name = name
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !name.is_empty() {
            self.extra.push(name.into_boxed_str());
        }
        self
    }

    /// Where `sql` may run: [`Target::Reader`] only when it is certainly read-only.
    ///
    /// ```
    /// use rds_balancer::{Classifier, Target};
    /// use sea_orm::DatabaseBackend;
    ///
    /// let classifier = Classifier::new();
    /// let read = "SELECT `cake`.`id` FROM `cake` WHERE `cake`.`id` = ?";
    /// assert_eq!(classifier.classify(read, DatabaseBackend::MySql), Target::Reader);
    /// let locking = "SELECT `cake`.`id` FROM `cake` LOCK IN SHARE MODE";
    /// assert_eq!(classifier.classify(locking, DatabaseBackend::MySql), Target::Writer);
    /// ```
    pub fn classify(&self, sql: &str, backend: DatabaseBackend) -> Target {
        self.explain(sql, backend).target
    }

    /// Classifies `sql` and says why.
    ///
    /// ```
    /// use rds_balancer::{Classifier, Reason, Target};
    /// use sea_orm::DatabaseBackend;
    ///
    /// let why = Classifier::new().explain("SELECT nextval('order_seq')", DatabaseBackend::Postgres);
    /// assert_eq!(why.target, Target::Writer);
    /// assert_eq!(why.reason, Reason::WriteFunction);
    /// assert_eq!(why.detail, Some("nextval"));
    /// ```
    pub fn explain<'a>(&self, sql: &'a str, backend: DatabaseBackend) -> Explanation<'a> {
        rules::explain(sql, dialect(backend), &self.extra)
    }
}

fn dialect(backend: DatabaseBackend) -> Dialect {
    match backend {
        DatabaseBackend::Postgres => Dialect::Postgres,
        DatabaseBackend::MySql => Dialect::MySql,
        _ => Dialect::Strict,
    }
}

/// Where `sql` may run, by the default rules: [`Target::Reader`] only when it is certainly
/// read-only and free of session side effects.
///
/// ```
/// use rds_balancer::{classify, Target};
/// use sea_orm::DatabaseBackend;
///
/// let pg = DatabaseBackend::Postgres;
/// assert_eq!(classify(r#"SELECT "cake"."id" FROM "cake" WHERE "cake"."id" = $1"#, pg), Target::Reader);
/// assert_eq!(classify(r#"INSERT INTO "cake" ("name") VALUES ($1) RETURNING "id""#, pg), Target::Writer);
/// assert_eq!(classify(r#"SELECT "cake"."id" FROM "cake" FOR UPDATE"#, pg), Target::Writer);
/// assert_eq!(classify("SELECT 'FOR UPDATE' -- FOR UPDATE", pg), Target::Reader);
/// ```
pub fn classify(sql: &str, backend: DatabaseBackend) -> Target {
    explain(sql, backend).target
}

/// Classifies `sql` by the default rules and says why.
///
/// ```
/// use rds_balancer::{explain, Reason, Target};
/// use sea_orm::DatabaseBackend;
///
/// let why = explain("SELECT * FROM t; DELETE FROM t", DatabaseBackend::MySql);
/// assert_eq!(why.target, Target::Writer);
/// assert_eq!(why.reason, Reason::DataModification);
/// assert_eq!(why.detail, Some("DELETE"));
/// assert!(why.reason.is_write());
/// assert_eq!(why.reason.to_string(), "a data-modifying statement");
/// ```
pub fn explain(sql: &str, backend: DatabaseBackend) -> Explanation<'_> {
    rules::explain(sql, dialect(backend), &[])
}
