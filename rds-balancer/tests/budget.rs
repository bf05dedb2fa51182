//! The connection budget against a real cluster started with a small `max_connections`, on
//! PostgreSQL and on MariaDB (each test body runs on both): a burst of many concurrent
//! statements over the writer and the readers waits for connections instead of meeting "too
//! many connections", and the servers, asked while it runs, never hold more of the
//! application's connections than the budget; a write that needs a connection when the budget
//! is full gets it by closing an idle one of a reader first.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rds_balancer::{ErrorKind, HostRole, RdsConnection, RdsConnectionBuilder};
use rds_balancer_testkit::{MariaDbCluster, PgCluster};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use support::{
    Cluster, Kind, MYSQL_PASSWORD, MYSQL_USER, Node, backend_tests, sleep_call, stmt, wait_running,
};

backend_tests!(
    #[multi_thread]
    a_burst_over_writer_and_readers_never_opens_more_than_the_budget,
    a_write_with_no_room_closes_an_idle_connection_of_a_reader_first,
    a_full_budget_fails_a_statement_with_a_typed_timeout_after_the_wait,
);

/// The PostgreSQL application name of the connections under test.
const APP: &str = "rdsb_budget";

/// A cluster of its own (a primary and `replicas` replicas) whose servers have room for only
/// `max_connections` connections each.
fn small_cluster(kind: Kind, replicas: usize, max_connections: u32) -> Cluster {
    match kind {
        Kind::Postgres => Cluster::Postgres(
            PgCluster::builder()
                .replicas(replicas)
                .max_connections(max_connections)
                .start()
                .unwrap_or_else(|e| panic!("could not start the PostgreSQL test cluster: {e}")),
        ),
        Kind::MySql => {
            let cluster = MariaDbCluster::builder()
                .replicas(replicas)
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

/// A connection to database `db` of `cluster` (writer and every replica) under a budget of
/// `budget`, each pool allowed 20 connections, with no health probe (a probe's connection is
/// outside the budget): every application connection a server shows is a pool's.
fn builder(cluster: &Cluster, db: &str, budget: u32) -> RdsConnectionBuilder {
    let mut builder = RdsConnection::builder()
        .writer(app_url(cluster.primary(), db))
        .max_connections(20)
        .max_total_connections(budget)
        .acquire_timeout(Duration::from_secs(60))
        .health_check_interval(None)
        .enhanced_failure_monitoring(false)
        .sqlx_logging(false);
    for replica in cluster.replicas() {
        builder = builder.reader(app_url(replica, db));
    }
    builder
}

/// The ids of the application's connections on the server behind `direct` (a connection of
/// the test's own), as the server lists them: `pg_stat_activity` / `PROCESSLIST`.
async fn app_connections(direct: &DatabaseConnection) -> BTreeSet<i64> {
    let backend = direct.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::MySql => format!(
            "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST \
             WHERE USER = '{MYSQL_USER}'"
        ),
        _ => {
            format!("SELECT pid::int8 AS id FROM pg_stat_activity WHERE application_name = '{APP}'")
        }
    };
    let rows = direct
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get("", "id").unwrap())
        .collect()
}

/// Administrators' connections to every node of `cluster`, to ask the servers.
async fn admin_connections(cluster: &Cluster) -> Vec<DatabaseConnection> {
    let mut direct = Vec::new();
    for node in std::iter::once(cluster.primary()).chain(cluster.replicas()) {
        direct.push(sea_orm::Database::connect(admin_url(node)).await.unwrap());
    }
    direct
}

/// The application's connections on each server of `direct`, asked of all of them at once (a
/// connection closed on one server and opened on another between two questions asked one
/// after the other would be counted twice).
async fn app_connections_everywhere(direct: &[DatabaseConnection]) -> Vec<BTreeSet<i64>> {
    futures_util::future::join_all(direct.iter().map(app_connections)).await
}

/// The connections in each of `db`'s pools, as the pools count them.
fn in_pools(db: &RdsConnection) -> Vec<u32> {
    db.health().hosts.iter().map(|h| h.pool_size).collect()
}

/// The connections both `before` and `now` count in each pool, together. The pools are read
/// one after the other: a connection closed in the first after it was read, and one opened in
/// its place in the second before that was read, would otherwise be counted at once.
fn held_twice(before: &[u32], now: &[u32]) -> u32 {
    before.iter().zip(now).map(|(b, n)| *b.min(n)).sum()
}

/// How many connections both `before` and `now` list.
fn listed_twice(before: &[BTreeSet<i64>], now: &[BTreeSet<i64>]) -> usize {
    before
        .iter()
        .zip(now)
        .map(|(before, now)| before.intersection(now).count())
        .sum()
}

/// The application's connections the servers of `direct` list twice in a row (see
/// [`sample_until`]).
async fn steady_app_connections(direct: &[DatabaseConnection]) -> usize {
    let before = app_connections_everywhere(direct).await;
    listed_twice(&before, &app_connections_everywhere(direct).await)
}

/// The highest counts seen by [`sample_until`]: the servers' and the pools'.
#[derive(Debug, Default)]
struct Highest {
    server: usize,
    /// The highest count of a single sample, connections being torn down included.
    single_sample: usize,
    pools: u32,
    samples: usize,
}

/// Asks the servers of `direct` (and `db`'s pools) for the application's connections, over and
/// over, until `done` is set. A server lists a connection the application closed for a moment
/// after, while it tears it down (under load, long enough for the next connection, opened on
/// another server in its place, to be listed too): the servers' count is of the connections
/// listed by two samples in a row, and so is the pools' (read one pool after the other). A
/// connection over the budget stays open (pools keep their connections) and is counted.
async fn sample_until(
    direct: &[DatabaseConnection],
    db: &RdsConnection,
    done: &AtomicBool,
) -> Highest {
    let mut highest = Highest::default();
    let mut before = app_connections_everywhere(direct).await;
    let mut pools_before = in_pools(db);
    while !done.load(Ordering::Relaxed) {
        let now = app_connections_everywhere(direct).await;
        let pools_now = in_pools(db);
        highest.server = highest.server.max(listed_twice(&before, &now));
        highest.single_sample = highest
            .single_sample
            .max(now.iter().map(BTreeSet::len).sum());
        highest.pools = highest.pools.max(held_twice(&pools_before, &pools_now));
        highest.samples += 1;
        (before, pools_before) = (now, pools_now);
    }
    highest
}

async fn a_burst_over_writer_and_readers_never_opens_more_than_the_budget(kind: Kind) {
    // Servers of their own, with room for only 30 connections each.
    let cluster = small_cluster(kind, 2, 30);
    cluster.create_database("budget");
    const BUDGET: u32 = 8;
    const STATEMENTS: usize = 300;
    // Each pool alone could take 20: 60 together, more than the servers have room for.
    let db = builder(&cluster, "budget", BUDGET).build().await.unwrap();
    let direct = admin_connections(&cluster).await;

    let (write, read) = match kind {
        Kind::Postgres => (
            "INSERT INTO cake (name) SELECT 'burst' FROM pg_sleep(0.02)",
            "SELECT 1 AS one FROM pg_sleep(0.02)",
        ),
        Kind::MySql => (
            "INSERT INTO cake (name) SELECT IF(SLEEP(0.02) = 0, 'burst', '')",
            "SELECT SLEEP(0.02) AS one",
        ),
    };
    let done = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..STATEMENTS)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let sql = if i % 3 == 0 { write } else { read };
                db.execute_raw(stmt(&db, sql)).await
            })
        })
        .collect();
    let burst = {
        let done = Arc::clone(&done);
        async move {
            let mut failed = Vec::new();
            for task in tasks {
                if let Err(err) = task.await.unwrap() {
                    failed.push(err.to_string());
                }
            }
            done.store(true, Ordering::Relaxed);
            failed
        }
    };
    let (failed, highest) = tokio::join!(burst, sample_until(&direct, &db, &done));
    eprintln!(
        "{kind:?}: burst of {STATEMENTS} over a writer and 2 readers: highest server-side \
         connection count {} (a single sample: {}), in the pools {}, over {} samples (budget \
         {BUDGET})",
        highest.server, highest.single_sample, highest.pools, highest.samples
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(highest.samples > 0 && highest.server > 0, "{highest:?}");
    assert!(
        highest.server <= usize::try_from(BUDGET).unwrap(),
        "the servers held {} connections",
        highest.server
    );
    assert!(highest.pools <= BUDGET, "the pools held {}", highest.pools);
    // Every write of the burst landed, once.
    assert_eq!(cluster.count_on_primary("budget"), 100);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_write_with_no_room_closes_an_idle_connection_of_a_reader_first(kind: Kind) {
    let cluster = small_cluster(kind, 1, 20);
    cluster.create_database("budget_idle");
    const BUDGET: u32 = 2;
    let db = builder(&cluster, "budget_idle", BUDGET)
        .build()
        .await
        .unwrap();
    let direct = admin_connections(&cluster).await;
    // Each pool keeps the connection it opened to start: the budget is full, with one idle
    // connection on the writer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while db.health().hosts.iter().any(|h| h.pool_idle != 1) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", db.health());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(steady_app_connections(&direct).await, 2);

    // Two writes at once: one may count on the writer's idle connection, the other needs room,
    // made by closing the reader's idle connection before the writer opens a second one.
    let sleep = sleep_call(kind, "1");
    let write = match kind {
        Kind::Postgres => format!("INSERT INTO cake (name) SELECT 'slow' FROM {sleep}"),
        Kind::MySql => format!("INSERT INTO cake (name) SELECT IF({sleep} = 0, 'slow', '')"),
    };
    let writes: Vec<_> = (0..2)
        .map(|_| {
            let (db, write) = (db.clone(), write.clone());
            tokio::spawn(async move { db.execute_raw(stmt(&db, &write)).await })
        })
        .collect();
    wait_running(&cluster, "budget_idle", &sleep, 2).await;
    let on_servers = steady_app_connections(&direct).await;
    let pools: Vec<(HostRole, u32)> = db
        .health()
        .hosts
        .iter()
        .map(|h| (h.role, h.pool_size))
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    eprintln!(
        "{kind:?}: two writes running: {on_servers} connections on the servers, pools {pools:?}"
    );
    assert_eq!(on_servers, 2, "pools {pools:?}");
    assert_eq!(
        pools,
        [(HostRole::Writer, 2), (HostRole::Reader, 0)],
        "the reader's idle connection made room"
    );
    assert_eq!(cluster.count_on_primary("budget_idle"), 2);
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
