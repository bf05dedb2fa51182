//! Graceful shutdown against a real PostgreSQL cluster: in-flight work finishes, new work is
//! refused with a typed error, every pool closes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::time::Duration;

use rds_balancer::ErrorKind;
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use support::{cluster, port_of, served_by, setup, stmt, writer_port};

/// Waits until the server reports `n` backends running `pg_sleep` in database `db`.
async fn wait_for_sleepers(db: &str, n: usize) {
    let cluster = cluster();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut running = 0;
        for node in cluster.nodes() {
            let sql = format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
            );
            running += node
                .psql("postgres", &sql)
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap();
        }
        if running >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {running} of {n} statements started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_work_finish_and_refuses_new_work() {
    let cluster = cluster();
    let db = setup("shutdown_drain").await;
    let writer = writer_port(cluster);

    // Reads on the replicas, a write on the writer, and a transaction, all in flight.
    let mut reads = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        reads.push(tokio::spawn(async move {
            port_of(&db, "SELECT inet_server_port() AS port FROM pg_sleep(2)").await
        }));
    }
    let write = {
        let db = db.clone();
        tokio::spawn(async move {
            port_of(
                &db,
                "SELECT inet_server_port() AS port, nextval('ticket') FROM pg_sleep(2)",
            )
            .await
        })
    };
    let txn = {
        let db = db.clone();
        tokio::spawn(async move {
            db.transaction::<_, (), DbErr>(|txn| {
                Box::pin(async move {
                    txn.execute_unprepared("SELECT pg_sleep(2)").await?;
                    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('during shutdown')")
                        .await?;
                    Ok(())
                })
            })
            .await
        })
    };
    wait_for_sleepers("shutdown_drain", 6).await;

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
    let refused = db.begin().await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&refused),
        Some(ErrorKind::ShuttingDown),
        "{refused}"
    );

    // Nothing in flight was lost.
    for read in reads {
        support::assert_reader(cluster, read.await.unwrap());
    }
    assert_eq!(write.await.unwrap(), writer);
    txn.await.unwrap().unwrap();
    let report = shutdown.await.unwrap();
    assert!(report.drained, "{report:?}");
    assert_eq!(report.abandoned, 0);
    assert_eq!(
        cluster
            .psql("shutdown_drain", "SELECT count(*) FROM cake")
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(
        cluster
            .psql("shutdown_drain", "SELECT last_value FROM ticket")
            .unwrap()
            .trim(),
        "1"
    );

    // Every pool is closed: the servers see no connection to this database any more (a backend
    // may take a moment to exit after its client hung up).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for node in cluster.nodes() {
        loop {
            let open = node
                .psql(
                    "postgres",
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shutdown_drain'",
                )
                .unwrap();
            if open.trim() == "0" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still has {open} connections",
                node.name()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A second shutdown is harmless.
    assert!(db.shutdown(Duration::from_secs(1)).await.drained);
}

#[tokio::test]
async fn shutdown_reports_work_that_outlives_the_timeout() {
    let db = setup("shutdown_timeout").await;
    let slow = {
        let db = db.clone();
        tokio::spawn(async move {
            port_of(&db, "SELECT inet_server_port() AS port FROM pg_sleep(3)").await
        })
    };
    wait_for_sleepers("shutdown_timeout", 1).await;
    let report = db.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained);
    assert_eq!(report.abandoned, 1);
    assert!(report.elapsed < Duration::from_secs(2), "{report:?}");
    // The abandoned statement is not killed: it still completes.
    support::assert_reader(cluster(), slow.await.unwrap());
}

#[tokio::test]
async fn sigterm_triggers_a_graceful_shutdown() {
    let db = setup("shutdown_signal").await;
    let on_signal = db.shutdown_on_signal(Duration::from_secs(10)).unwrap();
    let handler = tokio::spawn(on_signal);
    assert!(!db.is_shutting_down());
    support::assert_reader(cluster(), served_by(&db).await);
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
}
