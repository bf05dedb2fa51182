//! The connection budget against a real cluster started with a small `max_connections`, on
//! PostgreSQL and on MariaDB (each test body runs on both): a burst of many concurrent tasks
//! waits for connections instead of meeting "too many connections", and the servers never see
//! more than the budget (plus one probe per host).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use rds_balancer::{ErrorKind, RdsConnection};
use rds_balancer_testkit::{MariaDbCluster, PgCluster};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use support::{
    Cluster, Kind, MYSQL_PASSWORD, MYSQL_USER, Node, backend_tests, sleep_call, stmt, wait_running,
};

backend_tests!(
    a_burst_stays_within_the_budget_and_every_statement_succeeds,
    a_full_budget_fails_a_statement_with_a_typed_timeout_after_the_wait,
);

/// The PostgreSQL application name of the connections under test.
const APP: &str = "rdsb_budget";

/// A cluster of its own (a primary and one replica) whose servers have room for only
/// `max_connections` connections each.
fn small_cluster(kind: Kind, max_connections: u32) -> Cluster {
    match kind {
        Kind::Postgres => Cluster::Postgres(
            PgCluster::builder()
                .replicas(1)
                .max_connections(max_connections)
                .start()
                .unwrap_or_else(|e| panic!("could not start the PostgreSQL test cluster: {e}")),
        ),
        Kind::MySql => {
            let cluster = MariaDbCluster::builder()
                .replicas(1)
                .max_connections(max_connections)
                .start()
                .unwrap_or_else(|e| panic!("could not start the MariaDB test cluster: {e}"));
            cluster.create_user(MYSQL_USER, MYSQL_PASSWORD).unwrap();
            Cluster::MySql(cluster)
        }
    }
}

/// The URL the application under test uses for database `db` on `node`: PostgreSQL tags its
/// connections with [`APP`]; on MariaDB they are the only ones of the tests' user.
fn app_url(node: Node<'_>, db: &str) -> String {
    match node {
        Node::Postgres(_) => format!("{}?application_name={APP}", node.url(db)),
        Node::MySql(_) => node.url(db),
    }
}

/// An administrator's URL on `node` that the count of [`app_connections`] leaves out.
fn admin_url(node: Node<'_>) -> String {
    match node {
        Node::Postgres(n) => n.url("postgres"),
        Node::MySql(n) => n.url("mysql"),
    }
}

/// The application's connections on the server behind `direct` (a connection of the test's own),
/// as the server counts them: `pg_stat_activity` / `information_schema.PROCESSLIST`.
async fn app_connections(direct: &DatabaseConnection) -> i64 {
    let backend = direct.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::MySql => format!(
            "SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE USER = '{MYSQL_USER}'"
        ),
        _ => format!("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '{APP}'"),
    };
    let row = direct
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn a_burst_stays_within_the_budget_and_every_statement_succeeds(kind: Kind) {
    // Servers of their own, with room for only 25 connections each.
    let cluster = small_cluster(kind, 25);
    cluster.create_database("budget");
    const BUDGET: i64 = 8;
    let db = RdsConnection::builder()
        .writer(app_url(cluster.primary(), "budget"))
        .reader(app_url(cluster.replicas()[0], "budget"))
        // Each pool alone could take 20: more than the servers have room for, together.
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
            admin_url(cluster.primary()),
            admin_url(cluster.replicas()[0]),
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

    let (write, read) = match kind {
        Kind::Postgres => (
            "INSERT INTO cake (name) SELECT 'burst' FROM pg_sleep(0.03)",
            "SELECT 1 AS one FROM pg_sleep(0.03)",
        ),
        Kind::MySql => (
            "INSERT INTO cake (name) SELECT IF(SLEEP(0.03) = 0, 'burst', '')",
            "SELECT SLEEP(0.03) AS one",
        ),
    };
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let sql = if i % 3 == 0 { write } else { read };
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
        "{kind:?}: burst of 120: highest server-side connection count {highest}, in the pools \
         {in_pools} (budget {BUDGET}, plus one probe per host)"
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(highest > 0);
    assert!(highest <= BUDGET + 2, "{highest} connections");
    assert!(in_pools <= BUDGET, "{in_pools} connections in the pools");
    // Every write of the burst landed, once.
    assert_eq!(cluster.count_on_primary("budget"), 40);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_full_budget_fails_a_statement_with_a_typed_timeout_after_the_wait(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("budget_full");
    let db = RdsConnection::builder()
        .writer(cluster.writer_url("budget_full"))
        .max_total_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let holder = {
        let db = db.clone();
        let sql = format!("SELECT {}", sleep_call(kind, "2"));
        tokio::spawn(async move { db.execute_raw(stmt(&db, &sql)).await })
    };
    // The budget's only connection is busy on the server.
    wait_running(cluster, "budget_full", &sleep_call(kind, "2"), 1).await;
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
    db.execute_raw(stmt(&db, "INSERT INTO cake (name) VALUES ('after')"))
        .await
        .unwrap();
    assert_eq!(cluster.count_on_primary("budget_full"), 1);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
