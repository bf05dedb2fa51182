//! What an `RdsTransaction` from `begin()` keeps for its whole life, against a real primary and
//! two replicas, on PostgreSQL and on MariaDB (each test body runs on both): shutdown waits for
//! it, it holds a slot of the connection budget, read-your-writes counts from its commit, a
//! future dropped while it is open leaks nothing, and enhanced failure monitoring cuts its
//! statement hung on a dead writer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies and helpers outside #[test] fns

mod support;

use std::time::Duration;

use rds_balancer::{ErrorKind, RdsConnection, RdsTransaction};
use sea_orm::{AccessMode, ConnectionTrait, DbErr, TransactionTrait};
use support::health::{fast_builder, until};
use support::{
    Cluster, Kind, backend_tests, served_by, setup_with, sleep_call, stmt, wait_running,
};

backend_tests!(
    shutdown_waits_for_an_open_transaction_and_it_commits,
    shutdown_reports_a_transaction_that_outlives_the_timeout,
    open_transactions_hold_their_budget_slots,
    read_your_writes_counts_from_the_commit,
    a_dropped_future_holding_a_transaction_leaks_nothing,
    a_hung_statement_in_a_transaction_is_cut_and_its_commit_is_unknown,
);

/// How many `cake` rows named `name` the primary holds, asked of the server directly.
fn cakes_on_primary(cluster: &Cluster, db: &str, name: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM cake WHERE name = '{name}'");
    cluster.admin(db, &sql).trim().parse().expect("a count")
}

/// The writer's in-flight count in the health snapshot.
fn writer_in_flight(db: &RdsConnection) -> usize {
    let health = db.health();
    let writer = health
        .hosts
        .iter()
        .find(|h| h.role == rds_balancer::HostRole::Writer)
        .expect("a writer");
    writer.in_flight
}

async fn shutdown_waits_for_an_open_transaction_and_it_commits(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let name = "txg_shutdown";
    let db = setup_with(Cluster::shared(kind), name, RdsConnection::builder()).await;
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('before shutdown')")
        .await
        .unwrap();
    assert_eq!(
        writer_in_flight(&db),
        1,
        "the open transaction counts in flight"
    );

    let shutdown = {
        let db = db.clone();
        tokio::spawn(async move { db.shutdown(Duration::from_secs(30)).await })
    };
    until(&db, "shutdown to begin", || db.is_shutting_down()).await;
    // New work is refused; the open transaction is not.
    let refused = db.begin().await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&refused),
        Some(ErrorKind::ShuttingDown),
        "{refused}"
    );
    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('during shutdown')")
        .await
        .unwrap();
    // Shutdown cannot be over while the transaction is counted in flight.
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the transaction"
    );
    txn.commit().await.unwrap();
    let report = shutdown.await.unwrap();
    assert!(report.drained, "{report:?}");
    assert_eq!(report.abandoned, 0);
    assert_eq!(cakes_on_primary(cluster, name, "during shutdown"), 1);
}

async fn shutdown_reports_a_transaction_that_outlives_the_timeout(kind: Kind) {
    let db = setup_with(
        Cluster::shared(kind),
        "txg_shutdown_cut",
        RdsConnection::builder(),
    )
    .await;
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('never committed')")
        .await
        .unwrap();
    let report = db.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained, "{report:?}");
    assert_eq!(report.abandoned, 1, "{report:?}");
    drop(txn);
}

async fn open_transactions_hold_their_budget_slots(kind: Kind) {
    let builder = RdsConnection::builder()
        .max_total_connections(2)
        .acquire_timeout(Duration::from_millis(800));
    let db = setup_with(Cluster::shared(kind), "txg_budget", builder).await;
    let first = db.begin().await.unwrap();
    let second = db.begin().await.unwrap();
    // Both hold their connections: a third statement waits for a slot, and gets none.
    let waited = tokio::time::Instant::now();
    let err = db
        .query_one_raw(stmt(&db, "SELECT 1 AS one"))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::BudgetExhausted),
        "{err}"
    );
    assert!(
        waited.elapsed() >= Duration::from_millis(700),
        "it did not wait"
    );
    // So does a third transaction.
    let err = db.begin().await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::BudgetExhausted),
        "{err}"
    );
    // A commit frees a slot: statements run again.
    first.commit().await.unwrap();
    db.query_one_raw(stmt(&db, "SELECT 1 AS one"))
        .await
        .unwrap();
    second.rollback().await.unwrap();
    db.query_one_raw(stmt(&db, "SELECT 1 AS one"))
        .await
        .unwrap();
}

async fn read_your_writes_counts_from_the_commit(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let window = Duration::from_millis(500);
    let builder = RdsConnection::builder().read_your_writes(window);
    let db = setup_with(Cluster::shared(kind), "txg_ryw", builder).await;
    let writer = cluster.writer_port();

    // A transaction that outlives the window, then commits: the task's next read is on the
    // writer.
    let long = {
        let db = db.clone();
        tokio::spawn(async move {
            let txn = db.begin().await.unwrap();
            txn.execute_unprepared("INSERT INTO cake (name) VALUES ('long')")
                .await
                .unwrap();
            // The window has to pass while the transaction is open: this is the time under
            // test, not a wait for an event.
            tokio::time::sleep(window * 2).await;
            txn.commit().await.unwrap();
            served_by(&db).await
        })
    };
    assert_eq!(
        long.await.unwrap(),
        writer,
        "the read after the commit left the writer"
    );

    // A rolled-back transaction and a read-only one mark nothing: the next read is on a
    // reader.
    let rolled_back = {
        let db = db.clone();
        tokio::spawn(async move {
            let txn = db.begin().await.unwrap();
            txn.execute_unprepared("INSERT INTO cake (name) VALUES ('rolled back')")
                .await
                .unwrap();
            txn.rollback().await.unwrap();
            served_by(&db).await
        })
    };
    cluster.assert_reader(rolled_back.await.unwrap());
    let read_only = {
        let db = db.clone();
        tokio::spawn(async move {
            let txn = db
                .begin_with_config(None, Some(AccessMode::ReadOnly))
                .await
                .unwrap();
            served_by(&txn).await;
            txn.commit().await.unwrap();
            served_by(&db).await
        })
    };
    cluster.assert_reader(read_only.await.unwrap());
}

async fn a_dropped_future_holding_a_transaction_leaks_nothing(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let name = "txg_cancel";
    let builder = RdsConnection::builder()
        .max_total_connections(4)
        .acquire_timeout(Duration::from_secs(2));
    let db = setup_with(Cluster::shared(kind), name, builder).await;
    let idle_in_flight = writer_in_flight(&db);
    let needle = sleep_call(kind, "2");
    let work = {
        let db = db.clone();
        let sleep = format!("SELECT {needle}");
        tokio::spawn(async move {
            let txn: RdsTransaction = db.begin().await?;
            txn.execute_unprepared("INSERT INTO cake (name) VALUES ('cancelled')")
                .await?;
            txn.execute_unprepared(&sleep).await?;
            txn.commit().await?;
            Ok::<_, DbErr>(())
        })
    };
    wait_running(cluster, name, &needle, 1).await;
    assert_eq!(writer_in_flight(&db), idle_in_flight + 1);
    // The future is dropped in the middle of the transaction's statement.
    work.abort();
    assert!(work.await.unwrap_err().is_cancelled());
    // Its in-flight count and budget slot are released at once.
    assert_eq!(writer_in_flight(&db), idle_in_flight);
    // The connection comes back to its pool (once the server ends the sleep), and the budget
    // has all its slots: four transactions open at once.
    until(&db, "the connection back in its pool", || {
        db.health()
            .hosts
            .iter()
            .all(|h| h.pool_idle == h.pool_size as usize)
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(db.begin().await.unwrap());
    }
    drop(open);
    // Nothing of it was committed.
    assert_eq!(cakes_on_primary(cluster, name, "cancelled"), 0);
}

async fn a_hung_statement_in_a_transaction_is_cut_and_its_commit_is_unknown(kind: Kind) {
    // This test pauses its writer: it has a cluster of its own.
    let cluster = Cluster::start(kind, 0);
    let name = "txg_hung";
    cluster.create_database(name);
    let db = fast_builder(cluster.writer_url(name))
        .build()
        .await
        .unwrap();
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('hung')")
        .await
        .unwrap();
    let needle = sleep_call(kind, "6");
    let sleep = format!("SELECT {needle}");
    let started = tokio::time::Instant::now();
    let paused = async {
        // Paused mid-statement: once the writer itself says the statement runs.
        wait_running(&cluster, name, &needle, 1).await;
        cluster.primary().pause();
    };
    let (outcome, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), txn.execute_unprepared(&sleep)),
        paused
    );
    let outcome = outcome.expect("the hung statement was not cut short");
    let err = outcome.unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::HostUnavailable),
        "{err}"
    );
    // Cut by the probes (detection 1 s, two probes 300 ms apart), well before the 6 s sleep.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let err = txn.commit().await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::TransactionResolutionUnknown),
        "{err}"
    );
    cluster.primary().resume();
    db.shutdown(Duration::from_secs(10)).await;
}
