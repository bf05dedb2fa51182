//! The fault table: every class, for PostgreSQL codes, MySQL / MariaDB numbers, driver errors
//! and rds-balancer's own, in both phases.

use std::io::ErrorKind as Io;

use sea_orm::{ConnAcquireErr, DbErr};

use super::*;
use crate::error::Error;
use crate::resilience::fake::{database, io, sqlx, wrapped};

#[test]
fn postgres_codes_while_a_statement_runs() {
    use Fault::*;
    let table = [
        // The statement's own: the server answered, so it is alive.
        ("42601", Statement),      // syntax error
        ("23505", Statement),      // unique violation
        ("23503", Statement),      // foreign key violation
        ("23502", Statement),      // not null violation
        ("22012", Statement),      // division by zero
        ("22P02", Statement),      // invalid text representation
        ("08P01", Statement),      // protocol violation: a NUL byte in the statement's text
        ("57014", Statement),      // query_canceled: statement_timeout
        ("40001", Statement),      // serialization failure
        ("40P01", Statement),      // deadlock
        ("55P03", Statement),      // lock not available (lock_timeout, NOWAIT)
        ("42501", Statement),      // insufficient privilege
        ("28000", Statement),      // invalid authorization (SET ROLE): not a login
        ("53100", Statement),      // disk full: the host answered
        ("25006", ReadOnly),       // read-only transaction: confirmed by asking the host
        ("57P01", ConnectionLost), // admin shutdown: pg_terminate_backend, or a fast shutdown
        ("57P02", ConnectionLost), // crash shutdown
        ("57P03", ConnectionLost),
        ("08006", ConnectionLost), // connection failure
        ("08003", ConnectionLost),
        ("08000", ConnectionLost),
        ("53300", Overloaded), // too many connections
        ("", Statement),
        ("0800", Statement),
        ("08 006", Statement),
    ];
    for (code, fault) in table {
        assert_eq!(sqlstate(code, Phase::Running), fault, "{code:?}");
    }
}

#[test]
fn postgres_codes_while_connecting() {
    use Fault::*;
    let table = [
        ("28P01", Credentials),
        ("28000", Credentials),
        ("53300", Overloaded),
        ("57P03", Unreachable), // the database system is starting up / shutting down
        ("57P01", Unreachable),
        ("08004", Unreachable), // the server rejected the connection
        ("08P01", Unreachable), // a garbled handshake
        ("08006", Unreachable),
        ("3D000", Statement), // the database does not exist: configuration
        ("25006", Statement),
    ];
    for (code, fault) in table {
        assert_eq!(sqlstate(code, Phase::Connecting), fault, "{code:?}");
    }
}

#[test]
fn mysql_numbers_in_both_phases() {
    use Fault::*;
    // (number, connecting, running)
    let table = [
        (1045, Credentials, Statement),      // access denied
        (1040, Overloaded, Overloaded),      // too many connections
        (1203, Overloaded, Overloaded),      // too many connections for the user
        (1290, Statement, ReadOnly),         // --read-only (or another option) prevents it
        (1836, Statement, ReadOnly),         // read-only mode
        (1792, Statement, Statement),        // a write in a START TRANSACTION READ ONLY
        (1053, Unreachable, ConnectionLost), // server shutdown
        (1158, Unreachable, ConnectionLost), // network read error
        (1161, Unreachable, ConnectionLost), // network write interrupted
        (1927, Unreachable, ConnectionLost), // connection killed (KILL CONNECTION)
        (2002, Unreachable, ConnectionLost),
        (2003, Unreachable, ConnectionLost),
        (2006, Unreachable, ConnectionLost), // server gone away
        (2013, Unreachable, ConnectionLost), // lost connection during query
        (1205, Statement, Statement),        // lock wait timeout
        (1213, Statement, Statement),        // deadlock
        (1969, Statement, Statement),        // max_statement_time exceeded (MariaDB)
        (3024, Statement, Statement),        // max_execution_time exceeded (MySQL)
        (1062, Statement, Statement),        // duplicate entry
        (1064, Statement, Statement),        // syntax error
        (1365, Statement, Statement),        // division by zero (strict mode)
        (1049, Statement, Statement),        // unknown database: configuration
    ];
    for (number, connecting, running) in table {
        assert_eq!(
            mysql_number(number, Phase::Connecting),
            connecting,
            "{number}"
        );
        assert_eq!(mysql_number(number, Phase::Running), running, "{number}");
    }
}

#[test]
fn seaorm_wrappers_set_the_phase() {
    // `Exec` and `Query`: the statement ran; `Conn`: a connection was being opened.
    let [exec, query, conn] = wrapped(|| io(Io::ConnectionReset));
    assert_eq!(Fault::of(&exec), Fault::ConnectionLost);
    assert_eq!(Fault::of(&query), Fault::ConnectionLost);
    assert_eq!(Fault::of(&conn), Fault::Unreachable);
    let [exec, _, conn] = wrapped(|| database("57P01"));
    assert_eq!(Fault::of(&exec), Fault::ConnectionLost);
    assert_eq!(Fault::of(&conn), Fault::Unreachable);
    let [exec, query, conn] = wrapped(|| database("08P01"));
    assert_eq!(Fault::of(&exec), Fault::Statement);
    assert_eq!(Fault::of(&query), Fault::Statement);
    assert_eq!(Fault::of(&conn), Fault::Unreachable);
    let [exec, _, conn] = wrapped(|| database("28P01"));
    assert_eq!(Fault::of(&exec), Fault::Statement);
    assert_eq!(Fault::of(&conn), Fault::Credentials);
}

#[test]
fn io_and_tls_errors() {
    for kind in [
        Io::ConnectionRefused,
        Io::ConnectionReset,
        Io::ConnectionAborted,
        Io::TimedOut,
        Io::UnexpectedEof,
        Io::BrokenPipe,
        Io::NotConnected,
    ] {
        let [exec, _, conn] = wrapped(|| io(kind));
        assert_eq!(Fault::of(&conn), Fault::Unreachable, "{kind:?}");
        assert_eq!(Fault::of(&exec), Fault::ConnectionLost, "{kind:?}");
    }
    // Bad data (a refused certificate, as rustls reports it), bad input, no permission: the
    // configuration's fault, never the host's.
    for kind in [Io::InvalidData, Io::InvalidInput, Io::PermissionDenied] {
        for err in wrapped(|| io(kind)) {
            assert_eq!(Fault::of(&err), Fault::Statement, "{kind:?} {err}");
        }
    }
    let cut = || {
        sea_orm::sqlx::Error::Tls(Box::new(std::io::Error::new(
            Io::ConnectionReset,
            "handshake cut",
        )))
    };
    let [exec, _, conn] = wrapped(cut);
    assert_eq!(Fault::of(&conn), Fault::Unreachable);
    assert_eq!(Fault::of(&exec), Fault::ConnectionLost);
    let untrusted = || sea_orm::sqlx::Error::Tls("invalid peer certificate: UnknownIssuer".into());
    for err in wrapped(untrusted) {
        assert_eq!(Fault::of(&err), Fault::Statement, "{err}");
    }
}

#[test]
fn protocol_errors_pool_errors_and_the_rest() {
    // sqlx#4395: a connection closed during TLS negotiation is a protocol error.
    let cut = || sea_orm::sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
    let [exec, _, conn] = wrapped(cut);
    assert_eq!(Fault::of(&conn), Fault::Unreachable);
    assert_eq!(Fault::of(&exec), Fault::ConnectionLost);

    let timeout = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
    assert_eq!(Fault::of(&timeout), Fault::PoolTimeout);
    assert!(Fault::PoolTimeout.needs_probe() && Fault::ConnectionLost.needs_probe());
    let closed = DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed);
    assert_eq!(Fault::of(&closed), Fault::PoolClosed);
    for err in wrapped(|| sea_orm::sqlx::Error::PoolTimedOut) {
        assert_eq!(Fault::of(&err), Fault::PoolTimeout);
    }
    for err in wrapped(|| sea_orm::sqlx::Error::RowNotFound) {
        assert_eq!(Fault::of(&err), Fault::Statement);
    }
    for err in [
        DbErr::RecordNotFound("cake".into()),
        DbErr::Custom("user text".into()),
        DbErr::Type("bad".into()),
    ] {
        assert_eq!(Fault::of(&err), Fault::Statement, "{err}");
    }
    assert!(
        [
            Fault::Statement,
            Fault::ReadOnly,
            Fault::Unreachable,
            Fault::Credentials,
            Fault::Overloaded,
            Fault::PoolClosed
        ]
        .iter()
        .all(|f| !f.needs_probe())
    );
}

#[test]
fn rds_balancer_errors() {
    let unreachable = [
        Error::Connect {
            host: "127.0.0.1:1".into(),
            source: DbErr::Custom("refused".into()),
        },
        Error::HostUnavailable {
            host: "reader-1".into(),
            why: "3 probes failed".into(),
        },
    ];
    for err in unreachable {
        assert_eq!(Fault::of(&err.into()), Fault::Unreachable);
    }
    for err in [
        Error::ShuttingDown,
        Error::NoActiveReaders,
        Error::WriteRefused { why: "x".into() },
        Error::BudgetExhausted {
            limit: 1,
            waited: std::time::Duration::ZERO,
        },
    ] {
        assert_eq!(Fault::of(&err.into()), Fault::Statement);
    }
    // A database error passed through the crate keeps its own class.
    let passed: DbErr = Error::Db(DbErr::Exec(sqlx(database("57P01")))).into();
    assert_eq!(Fault::of(&passed), Fault::ConnectionLost);
}

#[test]
fn never_sent_is_a_failure_to_get_a_connection() {
    let [exec, query, conn] = wrapped(|| io(Io::ConnectionRefused));
    assert!(never_sent(&conn));
    assert!(!never_sent(&exec) && !never_sent(&query));
    assert!(never_sent(&DbErr::ConnectionAcquire(
        ConnAcquireErr::Timeout
    )));
    assert!(never_sent(&DbErr::ConnectionAcquire(
        ConnAcquireErr::ConnectionClosed
    )));
    let cut: DbErr = Error::HostUnavailable {
        host: "w".into(),
        why: "tripped".into(),
    }
    .into();
    assert!(!never_sent(&cut), "cut short while it may have run");
}
