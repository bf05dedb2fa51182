//! Driver errors built by hand for the pure tests of the error tables (PostgreSQL's and
//! MySQL's own error types cannot be built outside sqlx).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io as stdio;
use std::sync::Arc;

use sea_orm::sqlx::error::{DatabaseError, ErrorKind as SqlxErrorKind};
use sea_orm::{DbErr, RuntimeErr, sqlx};

/// A driver error reporting a SQLSTATE, as PostgreSQL's does (whose type cannot be built
/// outside sqlx).
#[derive(Debug)]
pub(crate) struct FakeDbError(&'static str);

impl fmt::Display for FakeDbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fake error with a secret value 'hunter2' ({})", self.0)
    }
}

impl StdError for FakeDbError {}

impl DatabaseError for FakeDbError {
    fn message(&self) -> &str {
        "fake error with a secret value 'hunter2'"
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.0))
    }
    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> SqlxErrorKind {
        SqlxErrorKind::Other
    }
}

pub(crate) fn sqlx(err: sqlx::Error) -> RuntimeErr {
    RuntimeErr::SqlxError(Arc::new(err))
}

/// `err` wrapped every way SeaORM wraps a driver error.
pub(crate) fn wrapped(err: impl Fn() -> sqlx::Error) -> [DbErr; 3] {
    [
        DbErr::Exec(sqlx(err())),
        DbErr::Query(sqlx(err())),
        DbErr::Conn(sqlx(err())),
    ]
}

pub(crate) fn database(code: &'static str) -> sqlx::Error {
    sqlx::Error::Database(Box::new(FakeDbError(code)))
}

pub(crate) fn io(kind: stdio::ErrorKind) -> sqlx::Error {
    sqlx::Error::Io(stdio::Error::new(kind, "boom"))
}
