//! Graceful shutdown against a real cluster, on PostgreSQL and on MariaDB (each test body runs on
//! both): in-flight work finishes, new work is refused with a typed error, every pool closes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::time::Duration;

use rds_balancer::ErrorKind;
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use support::{
    Cluster, Kind, backend_tests, port_of, served_by, setup_in, sleep_call, slow_port_sql, stmt,
    wait_no_connections, wait_running,
};

backend_tests!(
    shutdown_lets_in_flight_work_finish_and_refuses_new_work,
    shutdown_reports_work_that_outlives_the_timeout,
    sigterm_triggers_a_graceful_shutdown,
);

/// An `INSERT` of one `cake` named `name` that first sleeps `secs` seconds on the server.
fn slow_insert(kind: Kind, name: &str, secs: &str) -> String {
    match kind {
        Kind::Postgres => format!("INSERT INTO cake (name) SELECT '{name}' FROM pg_sleep({secs})"),
        Kind::MySql => {
            format!("INSERT INTO cake (name) SELECT IF(SLEEP({secs}) = 0, '{name}', '')")
        }
    }
}

async fn shutdown_lets_in_flight_work_finish_and_refuses_new_work(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "shutdown_drain").await;

    // Reads on the replicas, a write on the writer, and a transaction, all in flight.
    let mut reads = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        reads.push(tokio::spawn(async move {
            port_of(&db, &slow_port_sql(kind, "2")).await
        }));
    }
    let write = {
        let db = db.clone();
        let sql = slow_insert(kind, "slow write", "2");
        tokio::spawn(async move { db.execute_raw(stmt(&db, &sql)).await })
    };
    let txn = {
        let db = db.clone();
        let sleep = format!("SELECT {}", sleep_call(kind, "2"));
        tokio::spawn(async move {
            db.transaction::<_, (), DbErr>(|txn| {
                Box::pin(async move {
                    txn.execute_unprepared(&sleep).await?;
                    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('during shutdown')")
                        .await?;
                    Ok(())
                })
            })
            .await
        })
    };
    wait_running(cluster, "shutdown_drain", &sleep_call(kind, "2"), 6).await;

    let shutdown = {
        let db = db.clone();
        tokio::spawn(async move { db.shutdown(Duration::from_secs(20)).await })
    };
    // New work is refused as soon as shutdown begins.
    while !db.is_shutting_down() {
        tokio::task::yield_now().await;
    }
    let refused = db.query_one_raw(stmt(&db, "SELECT 1")).await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&refused),
        Some(ErrorKind::ShuttingDown),
        "{refused}"
    );
    let refused = db
        .execute_raw(stmt(&db, "INSERT INTO cake (name) VALUES ('refused')"))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorKind::of(&refused),
        Some(ErrorKind::ShuttingDown),
        "{refused}"
    );
    let refused = db.begin().await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&refused),
        Some(ErrorKind::ShuttingDown),
        "{refused}"
    );

    // Nothing in flight was lost.
    for read in reads {
        cluster.assert_reader(read.await.unwrap());
    }
    assert_eq!(write.await.unwrap().unwrap().rows_affected(), 1);
    txn.await.unwrap().unwrap();
    let report = shutdown.await.unwrap();
    assert!(report.drained, "{report:?}");
    assert_eq!(report.abandoned, 0);
    // The write and the transaction's insert ran once each, on the writer; the refused insert
    // never ran.
    assert_eq!(cluster.count_on_primary("shutdown_drain"), 2);
    assert_eq!(
        cluster
            .admin(
                "shutdown_drain",
                "SELECT served_by FROM cake WHERE name = 'slow write'"
            )
            .trim(),
        cluster.writer_port().to_string()
    );

    // Every pool is closed: the servers see no connection to this database any more (a server
    // may take a moment to notice that its client hung up).
    wait_no_connections(cluster.primary(), "shutdown_drain").await;
    for replica in cluster.replicas() {
        wait_no_connections(replica, "shutdown_drain").await;
    }
    // A second shutdown is harmless.
    assert!(db.shutdown(Duration::from_secs(1)).await.drained);
}

async fn shutdown_reports_work_that_outlives_the_timeout(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "shutdown_timeout").await;
    let slow = {
        let db = db.clone();
        tokio::spawn(async move { port_of(&db, &slow_port_sql(kind, "3")).await })
    };
    wait_running(cluster, "shutdown_timeout", &sleep_call(kind, "3"), 1).await;
    let report = db.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained);
    assert_eq!(report.abandoned, 1);
    assert!(report.elapsed < Duration::from_secs(2), "{report:?}");
    // The abandoned statement is not killed: it still completes.
    cluster.assert_reader(slow.await.unwrap());
}

/// SIGTERM reaches every handler in the process: the two backends' signal tests take turns.
static SIGNAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn sigterm_triggers_a_graceful_shutdown(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "shutdown_signal").await;
    let _turn = SIGNAL.lock().await;
    let on_signal = db.shutdown_on_signal(Duration::from_secs(10)).unwrap();
    let handler = tokio::spawn(on_signal);
    assert!(!db.is_shutting_down());
    cluster.assert_reader(served_by(&db).await);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let report = tokio::time::timeout(Duration::from_secs(10), handler)
        .await
        .unwrap()
        .unwrap();
    assert!(report.drained, "{report:?}");
    assert!(db.is_shutting_down());
    let err = db.query_one_raw(stmt(&db, "SELECT 1")).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::ShuttingDown));
    // Every pool is closed.
    wait_no_connections(cluster.primary(), "shutdown_signal").await;
    for replica in cluster.replicas() {
        wait_no_connections(replica, "shutdown_signal").await;
    }
}
