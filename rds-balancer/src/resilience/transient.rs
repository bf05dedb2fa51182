//! Which database errors are worth retrying: [`is_transient`] and its pure code tables.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sqlx};

use super::breaker::is_circuit_open;
use crate::error::ErrorKind;

/// True when `err` is worth retrying: the same operation may well succeed if it is tried again
/// a little later, on a fresh connection or in a fresh transaction.
///
/// This is [`RetryPolicy`](crate::RetryPolicy)'s default predicate. It recognises errors however
/// SeaORM wraps them (`DbErr::Exec`, `DbErr::Query`, `DbErr::Conn`, `DbErr::ConnectionAcquire`)
/// and rds-balancer's own errors (recovered with [`ErrorKind::of`]).
///
/// Transient:
///
/// - PostgreSQL SQLSTATE class `08` (connection exceptions), `40001` (serialization failure),
///   `40P01` (deadlock), `57P01` / `57P02` / `57P03` (admin shutdown, crash shutdown, cannot
///   connect now) and `53300` (too many connections);
/// - MySQL / MariaDB error numbers 1213 (deadlock), 1205 (lock wait timeout), 1040 and 1203 (too
///   many connections, for the server or the user), 1053 (server shutdown), 1158-1161 (network
///   read / write errors), 1927 (connection killed, MariaDB) and the client-side connection
///   errors 2002, 2003, 2006 and 2013;
/// - I/O errors talking to the server (refused, reset, aborted, timed out, end of stream, ...),
///   including those that cut a TLS handshake short, but not TLS failures such as an untrusted
///   certificate;
/// - a pool that timed out waiting for a connection (`PoolTimedOut`,
///   `DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)`);
/// - rds-balancer's [`ErrorKind::Connect`] (a pool to a host could not be opened).
///
/// Not transient: a closed pool (the application is shutting down), constraint violations,
/// syntax and permission errors, `RecordNotFound`, type and decoding errors, protocol errors,
/// configuration errors, and anything else this function does not recognise.
///
/// Transient is not the same as safe to retry: a write whose connection dropped before the
/// answer arrived may have been committed. See [`RetryPolicy`](crate::RetryPolicy).
///
/// ```
/// use rds_balancer::is_transient;
/// use sea_orm::{ConnAcquireErr, DbErr};
///
/// assert!(is_transient(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
/// assert!(!is_transient(&DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)));
/// assert!(!is_transient(&DbErr::RecordNotFound("cake".into())));
/// ```
pub fn is_transient(err: &DbErr) -> bool {
    if let Some(kind) = ErrorKind::of(err) {
        return kind_is_transient(kind);
    }
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => true,
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => false,
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => {
            sqlx_error(runtime).is_some_and(sqlx_is_transient)
        }
        _ => false,
    }
}

/// Whether an rds-balancer error kind, carried through SeaORM as a `DbErr`, is worth retrying.
///
/// The match is exhaustive on purpose: a new kind does not compile until it is decided here.
const fn kind_is_transient(kind: ErrorKind) -> bool {
    match kind {
        // A pool to a host could not be opened: the host may be restarting or failing over.
        ErrorKind::Connect => true,
        // The credential service (STS, Secrets Manager) failed or throttled: worth another try.
        ErrorKind::Credentials => true,
        // Every connection of the budget was busy: nothing was sent, a burst passes.
        ErrorKind::BudgetExhausted => true,
        // A blue/green switchover held the statement back: nothing was sent, and it passes.
        ErrorKind::BlueGreenSwitchover => true,
        // A statement was cut short because its host stopped answering. The balancer already
        // re-runs a read once on another host; what reaches the caller may be a write whose
        // outcome is unknown, so replaying it is the caller's decision (retry_if), not ours.
        ErrorKind::HostUnavailable => false,
        // The writer failed over under a write or a transaction: its outcome is unknown, so
        // replaying it is the caller's decision (retry_if), never the default predicate's. A
        // failover that gave up is not retried either: the cluster had the failover timeout.
        ErrorKind::FailoverCompleted
        | ErrorKind::TransactionResolutionUnknown
        | ErrorKind::FailoverFailed => false,
        ErrorKind::NoActiveReaders
        | ErrorKind::ShuttingDown
        | ErrorKind::WriteRefused
        | ErrorKind::Config
        | ErrorKind::Database
        | ErrorKind::Topology => false,
    }
}

/// The sqlx error inside a SeaORM runtime error, if it is one.
pub(super) fn sqlx_error(runtime: &RuntimeErr) -> Option<&sqlx::Error> {
    match runtime {
        RuntimeErr::SqlxError(err) => Some(err),
        RuntimeErr::Internal(_) => None,
    }
}

fn sqlx_is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
            Some(mysql) => is_transient_mysql_error(mysql.number()),
            // PostgreSQL, and any other driver that reports a five-character SQLSTATE.
            None => db.code().is_some_and(|code| is_transient_sqlstate(&code)),
        },
        sqlx::Error::Io(io) => io_is_transient(io),
        // rustls reports handshake failures as I/O errors (`Error::Io`); other TLS set-ups may
        // wrap one here. Only an I/O failure is transient, not a refused certificate.
        sqlx::Error::Tls(source) => io_in_chain(source.as_ref()).is_some_and(io_is_transient),
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

/// True for a PostgreSQL (or other standard) SQLSTATE worth retrying.
///
/// The table: the connection errors of [`is_connection_sqlstate`], `40001` serialization
/// failure, `40P01` deadlock detected, and `53300` too many connections (the server is
/// saturated, as with MySQL's 1040: backing off is the cure).
pub(crate) fn is_transient_sqlstate(code: &str) -> bool {
    is_connection_sqlstate(code) || matches!(code, "40001" | "40P01" | "53300")
}

/// True for a SQLSTATE that says the host failed: class `08` (connection exceptions: `08000`,
/// `08001`, `08003`, `08004`, `08006`, `08007`, `08P01`), `57P01` admin shutdown, `57P02` crash
/// shutdown, `57P03` cannot connect now.
pub(crate) fn is_connection_sqlstate(code: &str) -> bool {
    let is_sqlstate = code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric());
    is_sqlstate && (code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03"))
}

/// True for a MySQL / MariaDB error number worth retrying: the connection errors of
/// [`is_connection_mysql_error`], and
///
/// | number | name | why |
/// | --- | --- | --- |
/// | 1213 | `ER_LOCK_DEADLOCK` | the transaction was rolled back; retry it whole |
/// | 1205 | `ER_LOCK_WAIT_TIMEOUT` | only the statement is rolled back by default |
/// | 1040 | `ER_CON_COUNT_ERROR` | too many connections: the server is saturated |
/// | 1203 | `ER_TOO_MANY_USER_CONNECTIONS` | the same, for one user |
pub(crate) fn is_transient_mysql_error(number: u16) -> bool {
    is_connection_mysql_error(number) || matches!(number, 1040 | 1203 | 1205 | 1213)
}

/// True for a MySQL / MariaDB error number that says the host failed.
///
/// | number | name | why |
/// | --- | --- | --- |
/// | 1053 | `ER_SERVER_SHUTDOWN` | the server is going away (restart, failover) |
/// | 1158-1161 | `ER_NET_READ_ERROR` ... `ER_NET_WRITE_INTERRUPTED` | network errors |
/// | 1927 | `ER_CONNECTION_KILLED` (MariaDB) | the connection was killed |
/// | 2002, 2003 | `CR_CONNECTION_ERROR`, `CR_CONN_HOST_ERROR` | cannot connect |
/// | 2006, 2013 | `CR_SERVER_GONE_ERROR`, `CR_SERVER_LOST` | connection lost |
///
/// sqlx reports the client-side `CR_*` conditions as I/O errors rather than these numbers; they
/// are listed for errors relayed by proxies and other clients.
pub(crate) fn is_connection_mysql_error(number: u16) -> bool {
    matches!(
        number,
        1053 | 1158..=1161 | 1927 | 2002 | 2003 | 2006 | 2013
    )
}

/// True unless the I/O error says something a retry cannot fix: bad data (a TLS certificate or
/// protocol failure, as rustls reports it), bad input, missing permission, no support.
pub(super) fn io_is_transient(err: &io::Error) -> bool {
    !matches!(
        err.kind(),
        io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::Unsupported
            | io::ErrorKind::OutOfMemory
    )
}

/// The first `io::Error` in `err`'s source chain, `err` included.
pub(super) fn io_in_chain<'a>(
    err: &'a (dyn StdError + Send + Sync + 'static),
) -> Option<&'a io::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// A description of a `DbErr` that is safe to log: the variant, and the SQLSTATE, MySQL error
/// number, I/O error kind or rds-balancer kind when there is one. Never the message, which may
/// quote values (MySQL's "Duplicate entry '...'") or a connection string.
#[derive(Debug)]
pub(crate) struct Summary<'a>(pub(crate) &'a DbErr);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(kind) = ErrorKind::of(self.0) {
            return write!(f, "rds-balancer error `{kind}`");
        }
        let (what, runtime) = match self.0 {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => {
                return f.write_str("pool timed out waiting for a connection");
            }
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => {
                return f.write_str("pool closed");
            }
            DbErr::Conn(runtime) => ("connection error", runtime),
            DbErr::Exec(runtime) => ("execution error", runtime),
            DbErr::Query(runtime) => ("query error", runtime),
            DbErr::Custom(_) if is_circuit_open(self.0) => {
                return f.write_str("circuit breaker open");
            }
            DbErr::Custom(_) => return f.write_str("custom error"),
            other => return write!(f, "{}", variant_name(other)),
        };
        f.write_str(what)?;
        match sqlx_error(runtime) {
            Some(sqlx::Error::Database(db)) => match db.try_downcast_ref::<MySqlDatabaseError>() {
                Some(mysql) => write!(f, ": MySQL error {}", mysql.number()),
                None => match db.code() {
                    Some(code) => write!(f, ": SQLSTATE {code}"),
                    None => f.write_str(": database error"),
                },
            },
            Some(sqlx::Error::Io(io)) => write!(f, ": I/O error ({:?})", io.kind()),
            Some(sqlx::Error::Tls(source)) => match io_in_chain(source.as_ref()) {
                Some(io) => write!(f, ": TLS I/O error ({:?})", io.kind()),
                None => f.write_str(": TLS error"),
            },
            Some(sqlx::Error::PoolTimedOut) => f.write_str(": pool timed out"),
            Some(sqlx::Error::PoolClosed) => f.write_str(": pool closed"),
            Some(sqlx::Error::Protocol(_)) => f.write_str(": protocol error"),
            Some(_) => f.write_str(": driver error"),
            None => Ok(()),
        }
    }
}

/// The name of a `DbErr` variant without its payload.
fn variant_name(err: &DbErr) -> &'static str {
    match err {
        DbErr::RecordNotFound(_) => "record not found",
        DbErr::RecordNotInserted => "record not inserted",
        DbErr::RecordNotUpdated => "record not updated",
        DbErr::Type(_) | DbErr::TryIntoErr { .. } | DbErr::ConvertFromU64(_) => "type error",
        DbErr::Json(_) => "JSON error",
        _ => "SeaORM error",
    }
}

#[cfg(test)]
mod tests;
