//! A statement's own errors blame no host, on PostgreSQL and on MariaDB (each body runs on
//! both), with and without a balancer following the cluster: a corpus of bad statements (a NUL
//! byte, syntax, constraint violations, division by zero, a statement timeout, read-only refusals
//! from a writer that accepts writes, a session killed under its own statement) runs five times
//! each. Every time the caller gets the database's own error (its SQLSTATE / error number, asked
//! of the error itself), every host stays in service with no failure counted, and no failover
//! starts (the balancer's source is asked for the topology once, at start-up, and never again).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rds_balancer::{
    BalancerOptions, BreakerState, ErrorKind, HealthState, Instance, RdsConnection, Route,
    Topology, with_route,
};
use sea_orm::{AccessMode, ConnectionTrait, DbErr, RuntimeErr, TransactionError, TransactionTrait};
use support::{Cluster, Kind, backend_tests, error_code, stmt};

backend_tests!(
    bad_statements_get_the_database_error_and_blame_no_host,
    bad_statements_get_the_database_error_and_start_no_failover,
);

/// Runs per statement of the corpus.
const RUNS: usize = 5;

async fn bad_statements_get_the_database_error_and_blame_no_host(kind: Kind) {
    run_corpus(kind, "blame_plain", false).await;
}

async fn bad_statements_get_the_database_error_and_start_no_failover(kind: Kind) {
    run_corpus(kind, "blame_balanced", true).await;
}

/// How a corpus entry is issued.
#[derive(Debug, Clone, Copy)]
enum Issue {
    /// A statement through `ConnectionTrait`, routed as the library decides.
    Statement,
    /// The statement in a read-only transaction opened on the writer
    /// (`with_route(Writer, transaction_with_config(.., ReadOnly))`).
    ReadOnlyTransactionOnTheWriter,
}

/// One bad statement and the database's error it must come back with.
struct Bad {
    what: &'static str,
    sql: String,
    issue: Issue,
    /// Acceptable codes: a SQLSTATE on PostgreSQL, an error number on MySQL, or `io` for a
    /// connection the server closed.
    expect: &'static [&'static str],
}

fn bad(what: &'static str, sql: impl Into<String>, expect: &'static [&'static str]) -> Bad {
    Bad {
        what,
        sql: sql.into(),
        issue: Issue::Statement,
        expect,
    }
}

fn corpus(kind: Kind) -> Vec<Bad> {
    let read_only_txn = |expect| Bad {
        what: "a write in a read-only transaction on the writer",
        sql: "INSERT INTO cake (name) VALUES ('read-only')".into(),
        issue: Issue::ReadOnlyTransactionOnTheWriter,
        expect,
    };
    match kind {
        Kind::Postgres => vec![
            bad(
                "a NUL byte in the text (a read)",
                "SELECT 'a\0b'",
                &["08P01"],
            ),
            bad(
                "a NUL byte in the text (a write)",
                "INSERT INTO cake (name) VALUES ('a\0b')",
                &["08P01"],
            ),
            bad("a syntax error", "SELEC 1", &["42601"]),
            bad(
                "a unique violation",
                "INSERT INTO cake (id, name) VALUES (1000, 'again')",
                &["23505"],
            ),
            bad(
                "a not-null violation",
                "INSERT INTO cake (name) VALUES (NULL)",
                &["23502"],
            ),
            bad("a division by zero (a read)", "SELECT 1/0", &["22012"]),
            bad(
                "a division by zero (a write)",
                "UPDATE cake SET served_by = 1/0 WHERE id = 1000",
                &["22012"],
            ),
            // Every connection of this test has `statement_timeout = 300ms` (its URL).
            bad(
                "a statement timeout (a read)",
                "SELECT pg_sleep(3)",
                &["57014"],
            ),
            bad(
                "a statement timeout (on the writer)",
                "/*@writer*/ SELECT pg_sleep(3)",
                &["57014"],
            ),
            bad(
                "its own session killed (on the writer)",
                "/*@writer*/ SELECT pg_terminate_backend(pg_backend_pid())",
                &["57P01"],
            ),
            read_only_txn(&["25006"]),
        ],
        Kind::MySql => vec![
            // MariaDB takes a NUL byte inside a string literal; outside one, a syntax error.
            bad("a NUL byte in the text", "SELECT 1 \0 FROM DUAL", &["1064"]),
            bad("a syntax error", "SELEC 1", &["1064"]),
            bad(
                "a unique violation",
                "INSERT INTO cake (id, name) VALUES (1000, 'again')",
                &["1062"],
            ),
            bad(
                "a not-null violation",
                "INSERT INTO cake (name) VALUES (NULL)",
                &["1048"],
            ),
            // Strict mode with ERROR_FOR_DIVISION_BY_ZERO (MariaDB's default): a write fails;
            // a read gets NULL and a warning.
            bad(
                "a division by zero",
                "UPDATE cake SET served_by = 1/0 WHERE id = 1000",
                &["1365"],
            ),
            bad(
                "a statement timeout",
                "SET STATEMENT max_statement_time=0.3 FOR SELECT COUNT(*) FROM seq_1_to_1000000000 WHERE seq % 7 = 3",
                &["1969"],
            ),
            // The kit's servers write files only in their own directory (`secure_file_priv`):
            // elsewhere, 1290, the number `read_only` refuses writes with, from a writer that
            // accepts writes.
            bad(
                "a read-only-like refusal (1290, secure_file_priv)",
                "SELECT 1 INTO OUTFILE '/nonexistent-dir/out.txt'",
                &["1290"],
            ),
            bad(
                "its own session killed",
                "KILL CONNECTION CONNECTION_ID()",
                &["1927", "io"],
            ),
            read_only_txn(&["1792"]),
        ],
    }
}

/// The database's code for `err` ([`error_code`]), or `io` for a connection the server closed;
/// `None` when it is not the database's error.
fn db_code(err: &DbErr) -> Option<String> {
    let closed = matches!(
        err,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
            if matches!(**e, sea_orm::sqlx::Error::Io(_))
    );
    error_code(err).or_else(|| closed.then(|| "io".to_owned()))
}

/// Issues `bad` once and returns its error (panics when it succeeds).
async fn issue(db: &RdsConnection, bad: &Bad) -> DbErr {
    match bad.issue {
        Issue::Statement => db
            .execute_raw(stmt(db, &bad.sql))
            .await
            .err()
            .unwrap_or_else(|| panic!("{} succeeded", bad.what)),
        Issue::ReadOnlyTransactionOnTheWriter => {
            let sql = bad.sql.clone();
            let outcome = with_route(
                Route::Writer,
                db.transaction_with_config::<_, (), DbErr>(
                    |txn| {
                        Box::pin(async move {
                            txn.execute_unprepared(&sql).await?;
                            Ok(())
                        })
                    },
                    None,
                    Some(AccessMode::ReadOnly),
                ),
            )
            .await;
            match outcome {
                Ok(()) => panic!("{} succeeded", bad.what),
                Err(TransactionError::Transaction(err) | TransactionError::Connection(err)) => err,
            }
        }
    }
}

/// Every host of `db` is in service, with no failure counted and its breaker closed.
fn assert_no_host_blamed(db: &RdsConnection, after: &str) {
    let health = db.health();
    for host in &health.hosts {
        assert!(
            host.state != HealthState::Unhealthy
                && host.breaker == BreakerState::Closed
                && host.consecutive_failures == 0,
            "after {after}: host {} blamed: {health:#?}",
            host.name
        );
    }
}

/// The connection for the corpus on database `name`: writer and readers from URLs (with a
/// 300 ms statement timeout on PostgreSQL), or, with `balanced`, the writer alone and a
/// balancer whose source names the replicas (and counts how often it is asked).
async fn connect(
    cluster: &Cluster,
    name: &str,
    balanced: bool,
) -> (RdsConnection, Arc<AtomicUsize>) {
    let with_timeout = |url: String| match cluster.kind() {
        Kind::Postgres => format!("{url}?options=-c%20statement_timeout%3D300"),
        Kind::MySql => url,
    };
    let mut builder = RdsConnection::builder()
        .writer(with_timeout(cluster.writer_url(name)))
        .sqlx_logging(false);
    let fetches = Arc::new(AtomicUsize::new(0));
    if !balanced {
        for url in cluster.reader_urls(name) {
            builder = builder.reader(with_timeout(url));
        }
        return (builder.build().await.unwrap(), fetches);
    }
    let instances: Vec<Instance> =
        std::iter::once(
            Instance::writer("primary").with_endpoint("127.0.0.1", cluster.writer_port()),
        )
        .chain(cluster.reader_ports().into_iter().map(|port| {
            Instance::reader(format!("replica-{port}")).with_endpoint("127.0.0.1", port)
        }))
        .collect();
    let counted = Arc::clone(&fetches);
    let source = move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let topology = Topology::new(instances.clone());
        async move { Ok(topology) }
    };
    // Polled every hour: any further fetch is a failover's refresh.
    let options = BalancerOptions::new(source).poll_interval(Duration::from_secs(3600));
    let db = rds_balancer::connect(builder, options).await.unwrap();
    assert_eq!(db.topology().await.readers().count(), 2);
    (db, fetches)
}

async fn run_corpus(kind: Kind, name: &str, balanced: bool) {
    let cluster = Cluster::shared(kind);
    cluster.create_database(name);
    cluster.admin(name, "INSERT INTO cake (id, name) VALUES (1000, 'first')");
    if kind == Kind::MySql {
        // `SELECT .. INTO OUTFILE` needs FILE to reach the secure_file_priv check.
        cluster.admin(
            "",
            &format!("GRANT FILE ON *.* TO '{}'@'%'", support::MYSQL_USER),
        );
    }
    cluster.wait_replicated();
    let (db, fetches) = connect(cluster, name, balanced).await;
    let fetched_at_start = fetches.load(Ordering::SeqCst);
    assert_no_host_blamed(&db, "start-up");

    for bad in corpus(kind) {
        for run in 1..=RUNS {
            let err = issue(&db, &bad).await;
            let what = format!("{} (run {run})", bad.what);
            assert_eq!(
                ErrorKind::of(&err),
                None,
                "{what}: an rds-balancer error instead of the database's: {err}"
            );
            let code =
                db_code(&err).unwrap_or_else(|| panic!("{what}: not a database error: {err:?}"));
            assert!(
                bad.expect.contains(&code.as_str()),
                "{what}: got {code} ({err}), expected one of {:?}",
                bad.expect
            );
            assert_no_host_blamed(&db, &what);
        }
    }
    if kind == Kind::Postgres {
        read_only_database_on_a_writable_writer(cluster, name, balanced).await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        fetched_at_start,
        "a failover refreshed the topology"
    );
    // The connection still works both ways.
    db.execute_raw(stmt(&db, "INSERT INTO cake (name) VALUES ('still fine')"))
        .await
        .unwrap();
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

/// PostgreSQL: a database whose sessions start read-only (`default_transaction_read_only`) on a
/// writer that accepts writes: a write gets 25006, the writer is asked and found writable, and
/// the caller gets the 25006 (no failover, no host blamed).
async fn read_only_database_on_a_writable_writer(cluster: &Cluster, name: &str, balanced: bool) {
    let ro = format!("{name}_ro");
    cluster.create_database(&ro);
    cluster.admin(
        "postgres",
        &format!("ALTER DATABASE {ro} SET default_transaction_read_only = on"),
    );
    let (db, fetches) = connect(cluster, &ro, balanced).await;
    let fetched_at_start = fetches.load(Ordering::SeqCst);
    for run in 1..=RUNS {
        let err = db
            .execute_raw(stmt(&db, "INSERT INTO cake (name) VALUES ('refused')"))
            .await
            .expect_err("a read-only session");
        assert_eq!(ErrorKind::of(&err), None, "run {run}: {err}");
        assert_eq!(db_code(&err).as_deref(), Some("25006"), "run {run}: {err}");
        assert_no_host_blamed(&db, "a write refused by default_transaction_read_only");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), fetched_at_start);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
