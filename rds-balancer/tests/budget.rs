//! The connection budget against a real PostgreSQL started with a small `max_connections`: a
//! burst of many concurrent tasks waits for connections instead of meeting "too many
//! connections", and the server never sees more than the budget (plus one probe per host).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use rds_balancer::{ErrorKind, RdsConnection};
use rds_balancer_testkit::PgCluster;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use support::stmt;

const APP: &str = "rdsb_budget";

/// Connections of the application on `port` (asked on a connection of the test's own).
async fn app_connections(direct: &sea_orm::DatabaseConnection) -> i64 {
    let row = direct
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '{APP}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test]
async fn a_burst_stays_within_the_budget_and_every_statement_succeeds() {
    // A server of its own, with room for only 25 connections.
    let cluster = PgCluster::builder()
        .replicas(1)
        .max_connections(25)
        .start()
        .unwrap();
    support::create_database(&cluster, "budget");
    let url = |node: &rds_balancer_testkit::PgNode| {
        format!("{}?application_name={APP}", node.url("budget"))
    };
    const BUDGET: i64 = 8;
    let db = RdsConnection::builder()
        .writer(url(cluster.primary()))
        .reader(url(&cluster.replicas()[0]))
        // Each pool alone could take 20: more than the server has room for, together.
        .max_connections(20)
        .max_total_connections(8)
        .acquire_timeout(Duration::from_secs(60))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();

    // Count the application's connections on both servers while the burst runs.
    let seen = Arc::new(AtomicI64::new(0));
    let pooled = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (seen, done, pooled, db) = (
            Arc::clone(&seen),
            Arc::clone(&done),
            Arc::clone(&pooled),
            db.clone(),
        );
        let urls = [
            cluster.primary().url("postgres"),
            cluster.replicas()[0].url("postgres"),
        ];
        tokio::spawn(async move {
            let mut direct = Vec::new();
            for url in urls {
                direct.push(sea_orm::Database::connect(url).await.unwrap());
            }
            while !done.load(Ordering::Relaxed) {
                let mut total = 0;
                for conn in &direct {
                    total += app_connections(conn).await;
                }
                seen.fetch_max(total, Ordering::Relaxed);
                let in_pools: u32 = db.health().hosts.iter().map(|h| h.pool_size).sum();
                pooled.fetch_max(i64::from(in_pools), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let sql = if i % 3 == 0 {
                    "INSERT INTO cake (name) SELECT 'burst' FROM pg_sleep(0.03)"
                } else {
                    "SELECT 1 AS one FROM pg_sleep(0.03)"
                };
                db.execute_raw(stmt(&db, sql)).await
            })
        })
        .collect();
    let mut failed = Vec::new();
    for task in tasks {
        if let Err(err) = task.await.unwrap() {
            failed.push(err.to_string());
        }
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let highest = seen.load(Ordering::Relaxed);
    let in_pools = pooled.load(Ordering::Relaxed);
    eprintln!(
        "burst of 120: highest server-side connection count {highest}, in the pools {in_pools} (budget {BUDGET}, plus one probe per host)"
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(highest > 0);
    assert!(highest <= BUDGET + 2, "{highest} connections");
    assert!(in_pools <= BUDGET, "{in_pools} connections in the pools");
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

#[tokio::test]
async fn a_full_budget_fails_a_statement_with_a_typed_timeout_after_the_wait() {
    let cluster = support::cluster();
    support::create_database(cluster, "budget_full");
    let db = RdsConnection::builder()
        .writer(cluster.primary().url("budget_full"))
        .max_total_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let holder = {
        let db = db.clone();
        tokio::spawn(async move { db.execute_raw(stmt(&db, "SELECT pg_sleep(2)")).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = db
        .execute_raw(stmt(&db, "UPDATE cake SET name = name"))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::BudgetExhausted),
        "{err}"
    );
    holder.await.unwrap().unwrap();
    // The slot is free again.
    db.execute_raw(stmt(&db, "UPDATE cake SET name = name"))
        .await
        .unwrap();
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
