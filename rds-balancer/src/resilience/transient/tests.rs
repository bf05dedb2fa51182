//! The transient and host-failure tables, and how `DbErr`s reach them.

use super::*;
use crate::error::Error;
use crate::resilience::fake::{database, io, sqlx, wrapped};

#[test]
fn sqlstate_table_retries_connection_serialization_deadlock_and_shutdown_codes() {
    let transient = [
        "08000", "08001", "08003", "08004", "08006", "08007", "08P01", "40001", "40P01", "57P01",
        "57P02", "57P03", "53300",
    ];
    for code in transient {
        assert!(is_transient_sqlstate(code), "{code} should be transient");
    }
    let permanent = [
        "00000", // successful completion
        "23505", // unique violation
        "23503", // foreign key violation
        "23502", // not null violation
        "23514", // check violation
        "42601", // syntax error
        "42P01", // undefined table
        "42501", // insufficient privilege
        "22012", // division by zero
        "25006", // read-only transaction (failover's business, not a blind retry)
        "28P01", // invalid password
        "3D000", // invalid catalog name
        "40002", // transaction integrity constraint violation
        "40003", // statement completion unknown
        "53100", // disk full
        "53200", // out of memory
        "55P03", // lock not available (NOWAIT)
        "57014", // query canceled (statement_timeout, user cancel)
        "57P04", // database dropped
        "XX000", // internal error
        "", "08", "080000", "40P0", "08 01",
    ];
    for code in permanent {
        assert!(
            !is_transient_sqlstate(code),
            "{code:?} should not be transient"
        );
    }
}

#[test]
fn mysql_table_retries_deadlocks_lock_waits_and_connection_errors() {
    let transient = [
        1040, 1053, 1158, 1159, 1160, 1161, 1203, 1205, 1213, 1927, 2002, 2003, 2006, 2013,
    ];
    for number in transient {
        assert!(
            is_transient_mysql_error(number),
            "{number} should be transient"
        );
    }
    let permanent = [
        0,
        1022,
        1045, // access denied
        1046, // no database selected
        1048, // column cannot be null
        1054, // unknown column
        1062, // duplicate entry
        1064, // syntax error
        1146, // no such table
        1157,
        1162,
        1216,
        1217,
        1290, // read-only (failover's business)
        1317, // query interrupted (KILL QUERY)
        1451,
        1452,
        1792, // read-only transaction
        2000,
        2005, // unknown host: a configuration error
        3024, // max_execution_time exceeded
        u16::MAX,
    ];
    for number in permanent {
        assert!(
            !is_transient_mysql_error(number),
            "{number} should not be transient"
        );
    }
}

#[test]
fn database_errors_are_classified_by_sqlstate_however_seaorm_wraps_them() {
    for err in wrapped(|| database("40P01")) {
        assert!(is_transient(&err), "{err}");
    }
    for err in wrapped(|| database("08006")) {
        assert!(is_transient(&err), "{err}");
    }
    for err in wrapped(|| database("23505")) {
        assert!(!is_transient(&err), "{err}");
    }
    // A driver code that is no SQLSTATE (SQLite's numbers) is not guessed at.
    for err in wrapped(|| database("5")) {
        assert!(!is_transient(&err), "{err}");
    }
}

#[test]
fn io_errors_are_transient_unless_a_retry_cannot_help() {
    for kind in [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::NotConnected,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::TimedOut,
        io::ErrorKind::UnexpectedEof,
        io::ErrorKind::Interrupted,
        io::ErrorKind::AddrNotAvailable,
        io::ErrorKind::Other,
    ] {
        for err in wrapped(|| io(kind)) {
            assert!(is_transient(&err), "{kind:?} in {err}");
        }
    }
    for kind in [
        io::ErrorKind::InvalidData,
        io::ErrorKind::InvalidInput,
        io::ErrorKind::PermissionDenied,
        io::ErrorKind::Unsupported,
    ] {
        for err in wrapped(|| io(kind)) {
            assert!(!is_transient(&err), "{kind:?} in {err}");
        }
    }
}

#[test]
fn tls_errors_are_transient_only_when_io_cut_the_handshake() {
    let reset = || {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset during handshake");
        sqlx::Error::Tls(Box::new(io))
    };
    assert!(wrapped(reset).iter().all(is_transient));
    // An I/O error deeper in the chain counts too.
    #[derive(Debug)]
    struct Handshake(io::Error);
    impl fmt::Display for Handshake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("handshake failed")
        }
    }
    impl StdError for Handshake {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    let nested = || {
        let io = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        sqlx::Error::Tls(Box::new(Handshake(io)))
    };
    assert!(wrapped(nested).iter().all(is_transient));
    let untrusted = || {
        let io = io::Error::new(io::ErrorKind::InvalidData, "invalid peer certificate");
        sqlx::Error::Tls(Box::new(io))
    };
    assert!(!wrapped(untrusted).iter().any(is_transient));
    let unsupported = || sqlx::Error::Tls("server does not support TLS".into());
    assert!(!wrapped(unsupported).iter().any(is_transient));
}

#[test]
fn pool_timeouts_are_transient_and_closed_pools_are_not() {
    assert!(is_transient(&DbErr::ConnectionAcquire(
        ConnAcquireErr::Timeout
    )));
    assert!(
        wrapped(|| sqlx::Error::PoolTimedOut)
            .iter()
            .all(is_transient)
    );
    assert!(!is_transient(&DbErr::ConnectionAcquire(
        ConnAcquireErr::ConnectionClosed
    )));
    assert!(!wrapped(|| sqlx::Error::PoolClosed).iter().any(is_transient));
}

#[test]
fn other_driver_and_seaorm_errors_are_not_transient() {
    let driver: [fn() -> sqlx::Error; 6] = [
        || sqlx::Error::Protocol("unexpected message".into()),
        || sqlx::Error::RowNotFound,
        || sqlx::Error::WorkerCrashed,
        || sqlx::Error::ColumnNotFound("x".into()),
        || sqlx::Error::Configuration("bad url".into()),
        || sqlx::Error::BeginFailed,
    ];
    for make in driver {
        assert!(!wrapped(make).iter().any(is_transient), "{}", make());
    }
    let seaorm = [
        DbErr::RecordNotFound("cake".into()),
        DbErr::RecordNotInserted,
        DbErr::RecordNotUpdated,
        DbErr::Custom("something".into()),
        DbErr::Type("bad".into()),
        DbErr::Exec(RuntimeErr::Internal("connection reset".into())),
        DbErr::Conn(RuntimeErr::Internal("connection refused".into())),
        DbErr::MutexPoisonError,
    ];
    for err in seaorm {
        assert!(!is_transient(&err), "{err}");
    }
}

#[test]
fn rds_balancer_connect_errors_are_transient_and_the_other_kinds_are_not() {
    let connect: DbErr = Error::Connect {
        host: "127.0.0.1:1".into(),
        source: DbErr::Custom("refused".into()),
    }
    .into();
    assert!(is_transient(&connect));
    for err in [
        Error::NoActiveReaders,
        Error::ShuttingDown,
        Error::WriteRefused {
            why: "an INSERT".into(),
        },
        Error::Config("no writer".into()),
        Error::Topology {
            operation: "DescribeDBClusters".into(),
            code: Some("Throttling".into()),
            message: "Rate exceeded".into(),
        },
        Error::HostUnavailable {
            host: "reader-1".into(),
            why: "3 probes failed".into(),
        },
    ] {
        let db: DbErr = err.into();
        assert!(!is_transient(&db), "{db}");
    }
    // A database error passed through the crate keeps its own classification.
    let deadlock: DbErr = Error::Db(DbErr::Exec(sqlx(database("40P01")))).into();
    assert!(is_transient(&deadlock));
}

#[test]
fn connection_tables_are_the_host_failures_within_the_transient_tables() {
    for code in [
        "08000", "08001", "08003", "08006", "08P01", "57P01", "57P02", "57P03",
    ] {
        assert!(is_connection_sqlstate(code), "{code}");
        assert!(is_transient_sqlstate(code), "{code}");
    }
    for code in ["40001", "40P01", "53300", "23505", "57014"] {
        assert!(!is_connection_sqlstate(code), "{code}: the host is alive");
    }
    for number in [1053, 1158, 1161, 1927, 2002, 2003, 2006, 2013] {
        assert!(is_connection_mysql_error(number), "{number}");
        assert!(is_transient_mysql_error(number), "{number}");
    }
    for number in [1040, 1203, 1205, 1213, 1062] {
        assert!(
            !is_connection_mysql_error(number),
            "{number}: the host is alive"
        );
    }
}

#[test]
fn summaries_name_the_code_but_never_the_message() {
    let cases = [
        (
            DbErr::Exec(sqlx(database("40P01"))),
            "execution error: SQLSTATE 40P01",
        ),
        (
            DbErr::Conn(sqlx(io(io::ErrorKind::ConnectionRefused))),
            "connection error: I/O error (ConnectionRefused)",
        ),
        (
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            "pool timed out waiting for a connection",
        ),
        (
            DbErr::Query(sqlx(sqlx::Error::PoolTimedOut)),
            "query error: pool timed out",
        ),
        (DbErr::Custom("password=hunter2".into()), "custom error"),
        (
            DbErr::from(crate::resilience::BreakerError::<DbErr>::Open),
            "circuit breaker open",
        ),
        (DbErr::RecordNotFound("hunter2".into()), "record not found"),
        (
            Error::Connect {
                host: "db:5432".into(),
                source: DbErr::Custom("hunter2".into()),
            }
            .into(),
            "rds-balancer error `connect`",
        ),
    ];
    for (err, expected) in cases {
        let summary = Summary(&err).to_string();
        assert_eq!(summary, expected);
        assert!(!summary.contains("hunter2"));
    }
}
