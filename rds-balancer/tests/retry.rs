//! `retry` and `CircuitBreaker` against a real server, on PostgreSQL and on MariaDB (each test
//! body runs on both): real deadlocks, lock conflicts and killed connections are retried until
//! the work commits, a unique violation is not retried, and a breaker opens on real failed
//! connects and then fails fast.
#![allow(clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rds_balancer::{
    BreakerError, BreakerOptions, BreakerState, CircuitBreaker, RetryPolicy, is_circuit_open,
    is_transient, retry,
};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    IsolationLevel, SqlErr, TransactionError, TransactionTrait,
};
use support::{Cluster, Kind, MYSQL_PASSWORD, MYSQL_USER, backend_tests, error_code, sleep_call};
use tokio::sync::{Barrier, Mutex};

backend_tests!(
    a_deadlocked_transaction_is_retried_until_it_commits,
    a_transaction_that_loses_a_conflict_is_retried_until_it_commits,
    a_statement_on_a_killed_connection_is_retried_on_a_new_one,
    a_unique_violation_is_returned_at_once_without_a_retry,
    a_persistent_connect_failure_is_returned_after_max_attempts,
    a_breaker_opens_after_failed_connects_and_then_fails_fast,
    a_successful_trial_closes_an_open_breaker,
);

/// Generous: only reached when something is broken, never waited out on success.
const DEADLINE: Duration = Duration::from_secs(30);

/// A plain SeaORM connection to database `db` on the shared cluster's primary, as the tests'
/// user.
async fn connect(cluster: &Cluster, db: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(cluster.writer_url(db));
    options.sqlx_logging(false).max_connections(4);
    Database::connect(options).await.expect("connect")
}

/// Creates database `name` on the primary (with the common test schema) and runs `schema` in it.
fn database(cluster: &Cluster, name: &str, schema: &str) {
    cluster.create_database(name);
    cluster.admin(name, schema);
}

/// A URL of the cluster's kind for a loopback port nothing listens on (bound, then released).
fn closed_port_url(kind: Kind) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    match kind {
        Kind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        Kind::MySql => format!("mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@127.0.0.1:{port}/mysql"),
    }
}

/// Connects to `url` giving up quickly: against a closed port this fails (sqlx retries a
/// refused connect until its acquire timeout, then reports `PoolTimedOut`).
async fn connect_quickly(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .max_connections(1)
        .connect_timeout(Duration::from_millis(300))
        .acquire_timeout(Duration::from_millis(300));
    Database::connect(options).await
}

/// Moves `amount` from account `from` to account `to` in one transaction, locking `from` first,
/// and logs the move. On its first attempt it waits at `barrier` while holding that lock, so
/// that two opposite transfers deadlock for certain. Counts its attempts and the deadlocks it
/// lost (`deadlock`: the server's code for one).
async fn transfer(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    (from, to, amount): (i32, i32, i32),
    barrier: &Arc<Barrier>,
    attempts: &AtomicU32,
    deadlock: &str,
    deadlocks: &AtomicU32,
) -> Result<(), TransactionError<DbErr>> {
    let kind = match db.get_database_backend() {
        sea_orm::DbBackend::MySql => Kind::MySql,
        _ => Kind::Postgres,
    };
    policy
        .run(|| {
            let first_attempt = attempts.fetch_add(1, Ordering::SeqCst) == 0;
            let barrier = Arc::clone(barrier);
            async move {
                let result = db
                    .transaction::<_, (), DbErr>(move |txn| {
                        Box::pin(async move {
                            // Never hang on a lock if something else goes wrong (PostgreSQL's
                            // 55P03 is not transient: the test would fail). PostgreSQL looks for
                            // deadlocks after `deadlock_timeout`: make that quick; InnoDB
                            // detects them at once.
                            let settings: &[&str] = match kind {
                                Kind::Postgres => &[
                                    "SET LOCAL deadlock_timeout = '100ms'",
                                    "SET LOCAL lock_timeout = '30s'",
                                ],
                                Kind::MySql => &["SET SESSION innodb_lock_wait_timeout = 30"],
                            };
                            for setting in settings {
                                txn.execute_unprepared(setting).await?;
                            }
                            txn.execute_unprepared(&format!(
                                "UPDATE account SET balance = balance - {amount} WHERE id = {from}"
                            ))
                            .await?;
                            if first_attempt {
                                tokio::time::timeout(DEADLINE, barrier.wait())
                                    .await
                                    .map_err(|_| {
                                        DbErr::Custom("the other side never came".into())
                                    })?;
                            }
                            txn.execute_unprepared(&format!(
                                "UPDATE account SET balance = balance + {amount} WHERE id = {to}"
                            ))
                            .await?;
                            txn.execute_unprepared(&format!(
                                "INSERT INTO transfer_log VALUES ({from}, {to}, {amount})"
                            ))
                            .await?;
                            Ok(())
                        })
                    })
                    .await;
                if let Err(TransactionError::Transaction(err)) = &result
                    && error_code(err).as_deref() == Some(deadlock)
                {
                    assert!(is_transient(err), "{err}");
                    deadlocks.fetch_add(1, Ordering::SeqCst);
                }
                result
            }
        })
        .await
}

const ACCOUNTS: &str = "CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL);
     INSERT INTO account VALUES (1, 100), (2, 100);
     CREATE TABLE transfer_log (from_id int, to_id int, amount int);";

async fn a_deadlocked_transaction_is_retried_until_it_commits(kind: Kind) {
    let cluster = Cluster::shared(kind);
    database(cluster, "retry_deadlock", ACCOUNTS);
    let db = connect(cluster, "retry_deadlock").await;
    let policy = RetryPolicy::new()
        .max_attempts(5)
        .initial_delay(Duration::from_millis(20));
    let barrier = Arc::new(Barrier::new(2));
    let (attempts_a, attempts_b) = (AtomicU32::new(0), AtomicU32::new(0));
    let deadlocks = AtomicU32::new(0);
    // `40P01 deadlock_detected`; MySQL `1213 ER_LOCK_DEADLOCK`.
    let deadlock = match kind {
        Kind::Postgres => "40P01",
        Kind::MySql => "1213",
    };

    // Both transfers are wrapped: the server picks the victim, the test does not.
    let (a, b) = tokio::join!(
        transfer(
            &db,
            &policy,
            (1, 2, 10),
            &barrier,
            &attempts_a,
            deadlock,
            &deadlocks
        ),
        transfer(
            &db,
            &policy,
            (2, 1, 3),
            &barrier,
            &attempts_b,
            deadlock,
            &deadlocks
        ),
    );
    a.expect("transfer 1 -> 2 committed");
    b.expect("transfer 2 -> 1 committed");

    let deadlocks = deadlocks.load(Ordering::SeqCst);
    let attempts = attempts_a.load(Ordering::SeqCst) + attempts_b.load(Ordering::SeqCst);
    assert!(deadlocks >= 1, "the server reported no deadlock");
    assert_eq!(attempts, 2 + deadlocks, "one retry per lost deadlock");
    // Each transfer took effect exactly once: the victim's first attempt was rolled back.
    let balances = cluster.admin("retry_deadlock", "SELECT balance FROM account ORDER BY id");
    assert_eq!(balances.trim(), "93\n107");
    let moves = cluster.admin(
        "retry_deadlock",
        "SELECT from_id, to_id FROM transfer_log ORDER BY from_id",
    );
    // psql separates columns with `|`, the mariadb client with a tab.
    assert_eq!(moves.trim().replace('\t', "|"), "1|2\n2|1");
}

/// A transaction that loses a conflict to a concurrent one, in each backend's own way, fails
/// with that backend's transient error and commits on its second attempt:
/// - PostgreSQL: under `REPEATABLE READ`, a row another transaction changed since the snapshot
///   cannot be updated: `40001 serialization_failure`.
/// - MySQL: InnoDB has no such error (an `UPDATE` reads the latest row); a row lock held longer
///   than `innodb_lock_wait_timeout` fails the statement with `1205 ER_LOCK_WAIT_TIMEOUT`.
async fn a_transaction_that_loses_a_conflict_is_retried_until_it_commits(kind: Kind) {
    let cluster = Cluster::shared(kind);
    database(cluster, "retry_conflict", ACCOUNTS);
    let db = connect(cluster, "retry_conflict").await;
    let other = connect(cluster, "retry_conflict").await;
    let policy = RetryPolicy::new()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(20));
    let conflict = match kind {
        Kind::Postgres => "40001",
        Kind::MySql => "1205",
    };
    // MySQL: the other transaction holds the row's lock until our first attempt has failed.
    let holder: Mutex<Option<DatabaseTransaction>> = Mutex::new(None);
    if kind == Kind::MySql {
        let txn = other.begin().await.expect("begin");
        txn.execute_unprepared("UPDATE account SET balance = balance + 1 WHERE id = 1")
            .await
            .expect("lock the row");
        *holder.lock().await = Some(txn);
    }
    let attempts = AtomicU32::new(0);
    let codes = std::sync::Mutex::new(Vec::new());

    let result = policy
        .run(|| {
            let first_attempt = attempts.fetch_add(1, Ordering::SeqCst) == 0;
            let (db, other, holder, codes) = (&db, other.clone(), &holder, &codes);
            async move {
                let isolation = (kind == Kind::Postgres).then_some(IsolationLevel::RepeatableRead);
                let result = db
                    .transaction_with_config::<_, (), DbErr>(
                        move |txn| {
                            Box::pin(async move {
                                if kind == Kind::MySql {
                                    txn.execute_unprepared(
                                        "SET SESSION innodb_lock_wait_timeout = 1",
                                    )
                                    .await?;
                                }
                                // The snapshot (PostgreSQL) is taken here.
                                txn.execute_unprepared("SELECT balance FROM account WHERE id = 1")
                                    .await?;
                                if first_attempt && kind == Kind::Postgres {
                                    // Another transaction changes the row and commits.
                                    other
                                        .execute_unprepared(
                                            "UPDATE account SET balance = balance + 1 WHERE id = 1",
                                        )
                                        .await?;
                                }
                                txn.execute_unprepared(
                                    "UPDATE account SET balance = balance - 10 WHERE id = 1",
                                )
                                .await?;
                                Ok(())
                            })
                        },
                        isolation,
                        None,
                    )
                    .await;
                if let Err(TransactionError::Transaction(err)) = &result {
                    codes.lock().expect("codes").push(error_code(err));
                    assert!(is_transient(err), "{err}");
                }
                if let Some(txn) = holder.lock().await.take() {
                    // The other transaction commits once ours has lost.
                    txn.commit().await.expect("commit the other transaction");
                }
                result
            }
        })
        .await;
    result.expect("committed on a later attempt");
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "one retry");
    assert_eq!(
        codes.into_inner().expect("codes"),
        [Some(conflict.to_owned())],
        "the first attempt lost the conflict"
    );
    // Both changes took effect exactly once.
    assert_eq!(
        cluster
            .admin("retry_conflict", "SELECT balance FROM account WHERE id = 1")
            .trim(),
        "91"
    );
}

/// The connection under a running statement is killed from the server's side (PostgreSQL
/// `pg_terminate_backend`: `57P01 admin_shutdown`; MariaDB `KILL CONNECTION`): the statement
/// fails with a transient error, and its retry runs on a new connection.
async fn a_statement_on_a_killed_connection_is_retried_on_a_new_one(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("retry_killed");
    let db = connect(cluster, "retry_killed").await;
    let session_id = match kind {
        Kind::Postgres => "pg_backend_pid()::bigint",
        Kind::MySql => "CAST(CONNECTION_ID() AS SIGNED)",
    };
    let id_after = |secs: &str| format!("SELECT {session_id} AS id, {}", sleep_call(kind, secs));
    let first = id_after("30");
    // The killed session, as the server named it.
    let killer = tokio::task::spawn_blocking(move || {
        let needle = sleep_call(kind, "30");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let sql = match kind {
                Kind::Postgres => format!(
                    "SELECT pid FROM pg_stat_activity WHERE datname = 'retry_killed' \
                         AND state = 'active' AND query LIKE '%{needle}%' \
                         AND pid <> pg_backend_pid()"
                ),
                Kind::MySql => format!(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                         WHERE DB = 'retry_killed' AND INFO LIKE '%{needle}%' \
                         AND ID <> CONNECTION_ID()"
                ),
            };
            let id = cluster.admin("retry_killed", &sql);
            if let Ok(id) = id.trim().parse::<i64>() {
                let kill = match kind {
                    Kind::Postgres => format!("SELECT pg_terminate_backend({id})"),
                    Kind::MySql => format!("KILL CONNECTION {id}"),
                };
                cluster.admin("retry_killed", &kill);
                return id;
            }
            assert!(Instant::now() < deadline, "the statement never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let attempts = AtomicU32::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    let policy = RetryPolicy::new()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(20));
    let started = Instant::now();
    let result = policy
        .run(|| {
            let sql = if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                first.clone()
            } else {
                id_after("0")
            };
            let (db, errors) = (&db, &errors);
            async move {
                let result = db.query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ));
                let result = result.await;
                if let Err(err) = &result {
                    errors.lock().expect("errors").push(err.to_string());
                    assert!(is_transient(err), "{err}");
                }
                result
            }
        })
        .await;
    let row = result.expect("the retry succeeded").expect("one row");
    let killed = killer.await.expect("the killer");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the first attempt was cut short, not waited out"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "one retry");
    let errors = errors.into_inner().expect("errors");
    eprintln!("{kind:?}: the statement on the killed connection failed with {errors:?}");
    assert_eq!(errors.len(), 1);
    let retried_on = row.try_get::<i64>("", "id").expect("an id");
    assert_ne!(retried_on, killed, "the retry ran on a new connection");
}

async fn a_unique_violation_is_returned_at_once_without_a_retry(kind: Kind) {
    let cluster = Cluster::shared(kind);
    database(
        cluster,
        "retry_unique",
        "CREATE TABLE member (email varchar(255) PRIMARY KEY);
         INSERT INTO member VALUES ('ann@example.com');",
    );
    let db = connect(cluster, "retry_unique").await;
    let attempts = AtomicU32::new(0);
    let result = retry(&RetryPolicy::new(), || {
        attempts.fetch_add(1, Ordering::SeqCst);
        db.execute_unprepared("INSERT INTO member VALUES ('ann@example.com')")
    })
    .await;
    let err = result.expect_err("a duplicate key");
    assert!(
        matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
        "{err}"
    );
    assert!(!is_transient(&err));
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

async fn a_persistent_connect_failure_is_returned_after_max_attempts(kind: Kind) {
    let url = closed_port_url(kind);
    let attempts = AtomicU32::new(0);
    let policy = RetryPolicy::new()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(10));
    let result = retry(&policy, || {
        attempts.fetch_add(1, Ordering::SeqCst);
        connect_quickly(&url)
    })
    .await;
    let err = result.expect_err("nothing listens there");
    assert!(is_transient(&err), "{err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

async fn a_breaker_opens_after_failed_connects_and_then_fails_fast(kind: Kind) {
    let url = closed_port_url(kind);
    let breaker = CircuitBreaker::new(
        BreakerOptions::new()
            .name("closed-port")
            .failure_threshold(3)
            .open_for(Duration::from_secs(3600)),
    );
    let calls = AtomicU32::new(0);
    let connect = || {
        calls.fetch_add(1, Ordering::SeqCst);
        connect_quickly(&url)
    };
    for _ in 0..3 {
        assert_eq!(breaker.state(), BreakerState::Closed);
        match breaker.call(connect).await {
            Err(BreakerError::Inner(err)) => assert!(is_transient(&err), "{err}"),
            Err(BreakerError::Open) => panic!("opened too early"),
            Ok(_) => panic!("connected to a closed port"),
        }
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    let refused = breaker.call(connect).await;
    assert!(matches!(refused, Err(BreakerError::Open)));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the refused call did not run"
    );

    // At the SeaORM boundary it is a recognisable `DbErr` that is not retried.
    let err = DbErr::from(breaker.call(connect).await.expect_err("still open"));
    assert!(is_circuit_open(&err) && !is_transient(&err), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

async fn a_successful_trial_closes_an_open_breaker(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("retry_breaker");
    let failing = closed_port_url(kind);
    let working = cluster.writer_url("retry_breaker");
    let breaker = CircuitBreaker::new(
        BreakerOptions::new()
            .failure_threshold(1)
            .open_for(Duration::from_millis(200)),
    );
    let failed = breaker.call(|| connect_quickly(&failing)).await;
    assert!(matches!(failed, Err(BreakerError::Inner(_))));
    assert_eq!(breaker.state(), BreakerState::Open);

    // Wait, with a deadline, for the open period to end.
    let deadline = Instant::now() + DEADLINE;
    while breaker.state() == BreakerState::Open {
        assert!(
            Instant::now() < deadline,
            "the breaker never turned half-open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(breaker.state(), BreakerState::HalfOpen);

    // One trial at a time: while the trial runs, other calls are refused.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let calls = AtomicU32::new(0);
    let (trial, concurrent) = tokio::join!(
        breaker.call(|| async {
            let _ = released.await;
            connect_quickly(&working).await
        }),
        async {
            // The trial was admitted when `join!` first polled it, before this runs.
            let refused = breaker
                .call(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, DbErr>(())
                })
                .await;
            let _ = release.send(());
            refused
        },
    );
    assert!(matches!(concurrent, Err(BreakerError::Open)));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let db = trial.expect("the trial connects to the primary");
    db.execute_unprepared("SELECT 1")
        .await
        .expect("a working connection");
    assert_eq!(breaker.state(), BreakerState::Closed);
}
