//! Whose fault an error is: the statement's own, or its host's. One pure function, [`Fault::of`], decides it for every error a statement or a probe
//! can return, from PostgreSQL's SQLSTATE, MySQL / MariaDB's error number, the driver's I/O
//! error, and the moment it happened (while connecting, or while the statement ran).
//!
//! | class | examples | what the connection does |
//! | --- | --- | --- |
//! | [`Statement`](Fault::Statement) | syntax, constraint, data, `08P01` from a NUL byte, statement timeout, serialization failure, deadlock, lock wait | returns the error unchanged; no host blamed |
//! | [`ReadOnly`](Fault::ReadOnly) | `25006`, MySQL 1290 / 1836 | on the writer: asks it whether it still accepts writes; yes → the statement's own error, no → a failover |
//! | [`ConnectionLost`](Fault::ConnectionLost) | session killed (`57P01`, 1927), connection reset or closed mid-statement | probes the host before blaming it |
//! | [`PoolTimeout`](Fault::PoolTimeout) | no pooled connection within `acquire_timeout` | probes the host before blaming it; never sent |
//! | [`Unreachable`](Fault::Unreachable) | connection refused, reset or timed out while connecting, TLS cut, server starting or shutting down | blames the host at once |
//! | [`Credentials`](Fault::Credentials) | `28P01`, `28000`, 1045 while connecting | renews the credentials |
//! | [`Overloaded`](Fault::Overloaded) | `53300`, 1040, 1203 | backs off; not a failure |
//! | [`PoolClosed`](Fault::PoolClosed) | the host's pool closed (it left service, or shutdown) | never sent; may run on another host |

use std::io;

use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{ConnAcquireErr, DbErr, sqlx};

use super::transient::{
    io_in_chain, io_is_transient, is_connection_mysql_error, is_connection_sqlstate, sqlx_error,
};
use crate::error::ErrorKind;

/// Whose fault an error is, and so what the connection does about it. See the module table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fault {
    /// The statement's own (syntax, constraint, data, a protocol violation caused by its
    /// content, cancelled by a timeout, serialization failure, deadlock, lock wait), or an error
    /// that says nothing about the host (configuration, decoding, rds-balancer's own refusals).
    /// Returned unchanged; no host is blamed.
    Statement,
    /// The host refused a write because it is read-only: the statement's own when the host is
    /// still a writer that accepts writes (a read-only transaction, `default_transaction_read_only`,
    /// a reader), a demoted writer otherwise. Confirmed by asking the host.
    ReadOnly,
    /// The session ended under the statement (killed by an administrator, the connection reset
    /// or closed, the server shutting down): the host may be fine. Probed before it is blamed.
    ConnectionLost,
    /// No pooled connection within the pool's acquire timeout: a busy pool or a dead host.
    /// Probed before it is blamed. The statement was not sent.
    PoolTimeout,
    /// The host could not be reached: a connection refused, reset, timed out or cut during its
    /// TLS handshake, or a server that is starting up or shutting down (or rds-balancer already
    /// found the host dead). Blamed at once.
    Unreachable,
    /// The host refused the connection's credentials (a rotated password, an expired token):
    /// renewed. The statement was not sent.
    Credentials,
    /// The server has too many connections: it is alive, so back off; not a failure.
    Overloaded,
    /// The host's pool was closed (the host left service, or the connection shuts down). The
    /// statement was not sent.
    PoolClosed,
}

/// When an error happened: decides what a lost connection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Opening a connection (SeaORM's `DbErr::Conn`): nothing was sent.
    Connecting,
    /// Running a statement on a connection (SeaORM's `DbErr::Exec` / `DbErr::Query`).
    Running,
}

impl Fault {
    /// The class of an error a SeaORM call on a host's pool returned (or rds-balancer's own,
    /// carried as a `DbErr`).
    pub(crate) fn of(err: &DbErr) -> Fault {
        if let Some(kind) = ErrorKind::of(err) {
            return match kind {
                // A pool to a host could not be opened, or a statement was cut short because
                // its host was found dead: the host is already known to be at fault.
                ErrorKind::Connect | ErrorKind::HostUnavailable => Fault::Unreachable,
                _ => Fault::Statement,
            };
        }
        match err {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => Fault::PoolTimeout,
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => Fault::PoolClosed,
            DbErr::Conn(runtime) => sqlx_error(runtime)
                .map_or(Fault::Statement, |e| Fault::of_sqlx(e, Phase::Connecting)),
            DbErr::Exec(runtime) | DbErr::Query(runtime) => {
                sqlx_error(runtime).map_or(Fault::Statement, |e| Fault::of_sqlx(e, Phase::Running))
            }
            _ => Fault::Statement,
        }
    }

    /// The class of a driver error that happened in `phase`.
    pub(crate) fn of_sqlx(err: &sqlx::Error, phase: Phase) -> Fault {
        match err {
            sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
                Some(mysql) => mysql_number(mysql.number(), phase),
                None => db
                    .code()
                    .map_or(Fault::Statement, |code| sqlstate(&code, phase)),
            },
            sqlx::Error::Io(io) => io_fault(io, phase),
            // rustls reports a cut handshake as an I/O error inside the TLS error; a refused
            // certificate is the configuration's fault, not the host's.
            sqlx::Error::Tls(source) => {
                io_in_chain(source.as_ref()).map_or(Fault::Statement, |io| io_fault(io, phase))
            }
            // sqlx 0.9.0 reports a connection closed during TLS negotiation as "unexpected
            // response from SSLRequest: 0x00" (sqlx#4395); mid-statement, a protocol error or a
            // crashed worker leaves the connection in an unknown state.
            sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => match phase {
                Phase::Connecting => Fault::Unreachable,
                Phase::Running => Fault::ConnectionLost,
            },
            sqlx::Error::PoolTimedOut => Fault::PoolTimeout,
            sqlx::Error::PoolClosed => Fault::PoolClosed,
            _ => Fault::Statement,
        }
    }

    /// Whether the host must be probed before it is blamed.
    pub(crate) fn needs_probe(self) -> bool {
        matches!(self, Fault::ConnectionLost | Fault::PoolTimeout)
    }
}

/// Whether `err` says the statement never reached the server: SeaORM reports a failure to get a
/// connection (to open one, or to be given one by the pool) as `DbErr::Conn` or
/// `DbErr::ConnectionAcquire`. Such a statement may run elsewhere, whatever it is.
pub(crate) fn never_sent(err: &DbErr) -> bool {
    ErrorKind::of(err).is_none() && matches!(err, DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
}

/// The class of a PostgreSQL (or other standard) SQLSTATE returned in `phase`.
///
/// | SQLSTATE | connecting | running |
/// | --- | --- | --- |
/// | `28P01`, `28000` (invalid password, authorization) | Credentials | Statement |
/// | `53300` (too many connections) | Overloaded | Overloaded |
/// | the host failures of [`is_connection_sqlstate`] but `08P01`: class `08`, `57P01`, `57P02` (admin / crash shutdown), `57P03` (cannot connect now) | Unreachable | ConnectionLost |
/// | `08P01` (protocol violation: the message's content) | Unreachable | Statement |
/// | `25006` (read-only transaction) | Statement | ReadOnly |
/// | anything else (`40001`, `40P01`, `55P03`, `57014`, `23505`, `22012`, `42601`, ...) | Statement | Statement |
pub(crate) fn sqlstate(code: &str, phase: Phase) -> Fault {
    match (code, phase) {
        ("28P01" | "28000", Phase::Connecting) => Fault::Credentials,
        ("53300", _) => Fault::Overloaded,
        ("25006", Phase::Running) => Fault::ReadOnly,
        ("08P01", Phase::Running) => Fault::Statement,
        (code, Phase::Connecting) if is_connection_sqlstate(code) => Fault::Unreachable,
        (code, Phase::Running) if is_connection_sqlstate(code) => Fault::ConnectionLost,
        _ => Fault::Statement,
    }
}

/// The class of a MySQL / MariaDB error number returned in `phase`.
///
/// | number | name | connecting | running |
/// | --- | --- | --- | --- |
/// | 1045 | `ER_ACCESS_DENIED_ERROR` | Credentials | Statement |
/// | 1040, 1203 | `ER_CON_COUNT_ERROR`, `ER_TOO_MANY_USER_CONNECTIONS` | Overloaded | Overloaded |
/// | 1290, 1836 | `ER_OPTION_PREVENTS_STATEMENT` (`--read-only`), `ER_READ_ONLY_MODE` | Statement | ReadOnly |
/// | the host failures of [`is_connection_mysql_error`] (1053, 1158-1161, 1927, 2002, 2003, 2006, 2013) | | Unreachable | ConnectionLost |
/// | anything else (1205, 1213, 1792, 1969, 3024, 1062, 1064, 1365, ...) | | Statement | Statement |
///
/// 1792 (`ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION`) is always the statement's own: only a
/// transaction opened read-only raises it, never a demoted server. sqlx reports the client-side
/// `CR_*` conditions as I/O errors; they are listed for errors relayed by proxies.
pub(crate) fn mysql_number(number: u16, phase: Phase) -> Fault {
    match (number, phase) {
        (1045, Phase::Connecting) => Fault::Credentials,
        (1040 | 1203, _) => Fault::Overloaded,
        (1290 | 1836, Phase::Running) => Fault::ReadOnly,
        (number, Phase::Connecting) if is_connection_mysql_error(number) => Fault::Unreachable,
        (number, Phase::Running) if is_connection_mysql_error(number) => Fault::ConnectionLost,
        _ => Fault::Statement,
    }
}

/// The class of an I/O error talking to the server in `phase`: a network failure is the host's
/// (unreachable while connecting, a lost connection mid-statement); bad data (a refused TLS
/// certificate), bad input or a missing permission is the configuration's.
fn io_fault(err: &io::Error, phase: Phase) -> Fault {
    match (io_is_transient(err), phase) {
        (false, _) => Fault::Statement,
        (true, Phase::Connecting) => Fault::Unreachable,
        (true, Phase::Running) => Fault::ConnectionLost,
    }
}

#[cfg(test)]
mod tests;
