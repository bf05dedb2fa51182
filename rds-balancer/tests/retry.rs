//! `retry` and `CircuitBreaker` against a real PostgreSQL server: a real deadlock is retried
//! until both transactions commit, a unique violation is not retried, and a breaker opens on
//! real failed connects and then fails fast.
#![allow(clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::net::TcpListener;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rds_balancer::{
    BreakerError, BreakerOptions, BreakerState, CircuitBreaker, RetryPolicy, is_circuit_open,
    is_transient, retry,
};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, RuntimeErr, SqlErr,
    TransactionError, TransactionTrait,
};
use tokio::sync::Barrier;

/// Generous: only reached when something is broken, never waited out on success.
const DEADLINE: Duration = Duration::from_secs(30);

/// A plain SeaORM connection to database `db` on the shared cluster's primary.
async fn connect(db: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(support::cluster().primary().url(db));
    options.sqlx_logging(false).max_connections(4);
    Database::connect(options).await.expect("connect")
}

/// Creates database `name` on the primary and runs `schema` in it.
fn database(name: &str, schema: &str) {
    let cluster = support::cluster();
    cluster.create_database(name).expect("create database");
    cluster.psql(name, schema).expect("schema");
}

/// The SQLSTATE of a database error, however SeaORM wrapped it.
fn sqlstate(err: &DbErr) -> Option<String> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    Some(e.deref().as_database_error()?.code()?.into_owned())
}

/// A URL for a loopback port nothing listens on (bound, then released).
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
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
/// and logs the move. On
/// its first attempt it waits at `barrier` while holding that lock, so that two opposite
/// transfers deadlock for certain. Counts its attempts and the deadlocks it lost.
async fn transfer(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    (from, to, amount): (i32, i32, i32),
    barrier: &Arc<Barrier>,
    attempts: &AtomicU32,
    deadlocks: &AtomicU32,
) -> Result<(), TransactionError<DbErr>> {
    policy
        .run(|| {
            let first_attempt = attempts.fetch_add(1, Ordering::SeqCst) == 0;
            let barrier = Arc::clone(barrier);
            async move {
                let result = db
                    .transaction::<_, (), DbErr>(move |txn| {
                        Box::pin(async move {
                            // Detect the deadlock quickly; never hang on a lock if something
                            // else goes wrong (55P03 is not transient: the test would fail).
                            txn.execute_unprepared("SET LOCAL deadlock_timeout = '100ms'")
                                .await?;
                            txn.execute_unprepared("SET LOCAL lock_timeout = '30s'")
                                .await?;
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
                                "INSERT INTO move VALUES ({from}, {to}, {amount})"
                            ))
                            .await?;
                            Ok(())
                        })
                    })
                    .await;
                if let Err(TransactionError::Transaction(err)) = &result
                    && sqlstate(err).as_deref() == Some("40P01")
                {
                    deadlocks.fetch_add(1, Ordering::SeqCst);
                }
                result
            }
        })
        .await
}

#[tokio::test]
async fn a_deadlocked_transaction_is_retried_until_it_commits() {
    database(
        "retry_deadlock",
        "CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL);
         INSERT INTO account VALUES (1, 100), (2, 100);
         CREATE TABLE move (from_id int, to_id int, amount int);",
    );
    let db = connect("retry_deadlock").await;
    let policy = RetryPolicy::new()
        .max_attempts(5)
        .initial_delay(Duration::from_millis(20));
    let barrier = Arc::new(Barrier::new(2));
    let (attempts_a, attempts_b) = (AtomicU32::new(0), AtomicU32::new(0));
    let deadlocks = AtomicU32::new(0);

    // Both transfers are wrapped: PostgreSQL picks the victim, the test does not.
    let (a, b) = tokio::join!(
        transfer(&db, &policy, (1, 2, 10), &barrier, &attempts_a, &deadlocks),
        transfer(&db, &policy, (2, 1, 3), &barrier, &attempts_b, &deadlocks),
    );
    a.expect("transfer 1 -> 2 committed");
    b.expect("transfer 2 -> 1 committed");

    let deadlocks = deadlocks.load(Ordering::SeqCst);
    let attempts = attempts_a.load(Ordering::SeqCst) + attempts_b.load(Ordering::SeqCst);
    assert!(deadlocks >= 1, "the server reported no deadlock");
    assert_eq!(attempts, 2 + deadlocks, "one retry per lost deadlock");
    // Each transfer took effect exactly once: the victim's first attempt was rolled back.
    let cluster = support::cluster();
    let balances = cluster
        .psql("retry_deadlock", "SELECT balance FROM account ORDER BY id")
        .expect("balances");
    assert_eq!(balances, "93\n107");
    let moves = cluster
        .psql(
            "retry_deadlock",
            "SELECT from_id, to_id FROM move ORDER BY from_id",
        )
        .expect("moves");
    assert_eq!(moves, "1|2\n2|1");
}

#[tokio::test]
async fn a_unique_violation_is_returned_at_once_without_a_retry() {
    database(
        "retry_unique",
        "CREATE TABLE member (email text PRIMARY KEY);
         INSERT INTO member VALUES ('ann@example.com');",
    );
    let db = connect("retry_unique").await;
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

#[tokio::test]
async fn a_persistent_connect_failure_is_returned_after_max_attempts() {
    let url = closed_port_url();
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

#[tokio::test]
async fn a_breaker_opens_after_failed_connects_and_then_fails_fast() {
    let url = closed_port_url();
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

#[tokio::test]
async fn a_successful_trial_closes_an_open_breaker() {
    let cluster = support::cluster();
    let failing = closed_port_url();
    let working = cluster.primary().url("postgres");
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
