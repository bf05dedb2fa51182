//! Shared set-up for the integration tests: real clusters (a primary and two replicas,
//! PostgreSQL or MariaDB: [`Cluster`]) shared per test binary, a database per test, and ways to
//! ask the server which host served a statement.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used
)]

mod backend;
pub mod entities;
pub mod health;
#[cfg(feature = "rds-api")]
pub mod rds;
mod writes;

pub(crate) use self::backend::backend_tests;
pub use self::backend::{
    Cluster, Kind, MYSQL_PASSWORD, MYSQL_USER, Node, port_in, port_of, try_port_of,
};
pub use self::writes::Writes;

use rds_balancer::RdsConnection;
use rds_balancer_testkit::PgCluster;
use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, RuntimeErr, Statement};

/// The PostgreSQL cluster shared by the tests of this binary. Tests that stop, pause or promote
/// nodes start their own.
pub fn cluster() -> &'static PgCluster {
    Cluster::shared(Kind::Postgres).pg()
}

/// Creates database `name` with the test schema on PostgreSQL cluster `cluster`, replicated to
/// every running replica.
pub fn create_database(cluster: &PgCluster, name: &str) {
    cluster.create_database(name).expect("create database");
    cluster
        .psql(name, backend::PG_SCHEMA)
        .expect("create schema");
    cluster
        .wait_replicated(std::time::Duration::from_secs(30))
        .expect("schema replicated");
}

/// A fresh database `name` on the shared PostgreSQL cluster and an `RdsConnection` to it
/// (writer = primary, readers = both replicas).
pub async fn setup(name: &str) -> RdsConnection {
    setup_in(Cluster::shared(Kind::Postgres), name).await
}

/// A fresh database `name` with the test schema on `cluster` and an `RdsConnection` to it
/// (writer = primary, readers = every replica).
pub async fn setup_in(cluster: &Cluster, name: &str) -> RdsConnection {
    setup_with(cluster, name, RdsConnection::builder()).await
}

/// [`setup_in`] with the settings of `builder` (the writer, the readers and quiet sqlx logging
/// are added to it).
pub async fn setup_with(
    cluster: &Cluster,
    name: &str,
    builder: rds_balancer::RdsConnectionBuilder,
) -> RdsConnection {
    cluster.create_database(name);
    let mut builder = builder.writer(cluster.writer_url(name)).sqlx_logging(false);
    for url in cluster.reader_urls(name) {
        builder = builder.reader(url);
    }
    builder.build().await.expect("connect")
}

/// The code of a database error, however SeaORM wrapped it: the SQLSTATE on PostgreSQL, the
/// error number on MySQL (whose SQLSTATEs are too coarse: 1205 is `HY000`).
pub fn error_code(err: &DbErr) -> Option<String> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    let db = e.as_database_error()?;
    match db.try_downcast_ref::<MySqlDatabaseError>() {
        Some(mysql) => Some(mysql.number().to_string()),
        None => Some(db.code()?.into_owned()),
    }
}

/// A raw statement for `db`'s backend.
pub fn stmt(db: &RdsConnection, sql: &str) -> Statement {
    Statement::from_string(db.get_database_backend(), sql)
}

/// The port of the server `db` sends a plain read to.
pub async fn served_by(db: &impl ConnectionTrait) -> u16 {
    let sql = match db.get_database_backend() {
        DbBackend::MySql => "SELECT @@port AS port",
        _ => rds_balancer_testkit::SERVER_PORT_SQL,
    };
    port_of(db, sql).await
}

/// Runs `read` in a task that has not written: its reads go where the classifier sends them
/// (read-your-writes keeps only the writing task's reads on the writer).
pub async fn from_another_task<T, F>(db: &RdsConnection, read: impl FnOnce(RdsConnection) -> F) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    tokio::spawn(read(db.clone()))
        .await
        .expect("the reading task")
}

/// Runs admin SQL on `node` (PostgreSQL: `psql` as `postgres` in database `postgres`; MariaDB:
/// the `mariadb` client as `root`, no database), bypassing rds-balancer; returns the client's
/// output.
pub fn node_admin(node: Node<'_>, sql: &str) -> String {
    match node {
        Node::Postgres(n) => n.psql("postgres", sql),
        Node::MySql(n) => n.sql("", sql),
    }
    .unwrap_or_else(|e| panic!("{} on {}: {e}", sql, node.name()))
}

/// How many statements containing `needle` are running on `node` in database `db` right now
/// (the asking connection aside), as the server reports them.
pub fn running_on(node: Node<'_>, db: &str, needle: &str) -> usize {
    let sql = match node {
        Node::Postgres(_) => format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active' \
             AND query LIKE '%{needle}%' AND pid <> pg_backend_pid()"
        ),
        Node::MySql(_) => format!(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}' \
             AND INFO LIKE '%{needle}%' AND ID <> CONNECTION_ID()"
        ),
    };
    node_admin(node, &sql).trim().parse().expect("a count")
}

/// Waits (at most 20 s, else the test fails) until the nodes of `cluster` together run at least
/// `n` statements containing `needle` in database `db`.
pub async fn wait_running(cluster: &Cluster, db: &str, needle: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let nodes = std::iter::once(cluster.primary()).chain(cluster.replicas());
        let running: usize = nodes.map(|node| running_on(node, db, needle)).sum();
        if running >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {running} of {n} statements containing {needle:?} started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The client connections the tests' user has open to database `db` on `node`, as the server
/// reports them (PostgreSQL: `pg_stat_activity`; MariaDB: `information_schema.PROCESSLIST`).
pub fn connections_on(node: Node<'_>, db: &str) -> usize {
    let sql = match node {
        Node::Postgres(_) => format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ),
        Node::MySql(_) => format!(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}' \
             AND USER = '{MYSQL_USER}'"
        ),
    };
    node_admin(node, &sql).trim().parse().expect("a count")
}

/// Waits (at most 10 s, else the test fails) until the tests' user has no connection left to
/// database `db` on `node` (a server may take a moment to notice a client hung up).
pub async fn wait_no_connections(node: Node<'_>, db: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let open = connections_on(node, db);
        if open == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still has {open} connections to {db}",
            node.name()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A call that makes the server sleep `secs` seconds: `pg_sleep(secs)` or `SLEEP(secs)`. Also
/// the needle that finds the statement with [`running_on`].
pub fn sleep_call(kind: Kind, secs: &str) -> String {
    match kind {
        Kind::Postgres => format!("pg_sleep({secs})"),
        Kind::MySql => format!("SLEEP({secs})"),
    }
}

/// A read that sleeps `secs` seconds, then returns the serving server's port as `port`.
pub fn slow_port_sql(kind: Kind, secs: &str) -> String {
    match kind {
        Kind::Postgres => format!("SELECT inet_server_port() AS port FROM pg_sleep({secs})"),
        Kind::MySql => format!("SELECT @@port AS port, SLEEP({secs}) AS slept"),
    }
}
