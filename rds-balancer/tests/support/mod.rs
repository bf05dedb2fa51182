//! Shared set-up for the integration tests: one real PostgreSQL cluster (a primary and two
//! streaming replicas) per test binary, a database per test, and ways to ask the server which
//! host served a statement.
#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)]

pub mod entities;
#[cfg(feature = "rds-api")]
pub mod rds;

use std::sync::OnceLock;
use std::time::Duration;

use rds_balancer::RdsConnection;
use rds_balancer_testkit::{PgCluster, SERVER_PORT_SQL};
use sea_orm::{ConnectionTrait, Statement};

/// The cluster shared by the tests of this binary. Tests that stop, pause or promote nodes
/// start their own.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match PgCluster::start(2) {
        Ok(cluster) => cluster,
        Err(err) => panic!("could not start the PostgreSQL test cluster: {err}"),
    })
}

/// Schema every test database gets. `served_by` is stamped by a trigger with the port of the
/// server that wrote the row; the `cake_seen` view reports the port of the server reading it.
const SCHEMA: &str = "
CREATE TABLE cake (id serial PRIMARY KEY, name text NOT NULL, served_by int);
CREATE FUNCTION stamp_port() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.served_by := inet_server_port(); RETURN NEW; END $$;
CREATE TRIGGER cake_stamp BEFORE INSERT OR UPDATE ON cake FOR EACH ROW EXECUTE FUNCTION stamp_port();
CREATE VIEW cake_seen AS SELECT id, name, inet_server_port() AS read_port FROM cake;
CREATE SEQUENCE ticket;
";

/// Creates database `name` with [`SCHEMA`] on `cluster`, replicated to every running replica.
pub fn create_database(cluster: &PgCluster, name: &str) {
    cluster.create_database(name).expect("create database");
    cluster.psql(name, SCHEMA).expect("create schema");
    cluster
        .wait_replicated(Duration::from_secs(30))
        .expect("schema replicated");
}

/// A fresh database `name` on the shared cluster and an `RdsConnection` to it (writer = primary,
/// readers = both replicas).
pub async fn setup(name: &str) -> RdsConnection {
    setup_on(cluster(), name).await
}

/// Like [`setup`], on a given cluster.
pub async fn setup_on(cluster: &PgCluster, name: &str) -> RdsConnection {
    create_database(cluster, name);
    let mut builder = RdsConnection::builder()
        .writer(cluster.primary().url(name))
        .sqlx_logging(false);
    for replica in cluster.replicas() {
        builder = builder.reader(replica.url(name));
    }
    builder.build().await.expect("connect")
}

/// A raw statement for `db`'s backend.
pub fn stmt(db: &RdsConnection, sql: &str) -> Statement {
    Statement::from_string(db.get_database_backend(), sql)
}

/// The port of the server that answered `sql` (which must return an int `port` column) through
/// `db`.
pub async fn port_of(db: &impl ConnectionTrait, sql: &str) -> u16 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    let port: i32 = row.try_get("", "port").expect("a port column");
    u16::try_from(port).expect("a port")
}

/// The port of the server `db` sends a plain read to.
pub async fn served_by(db: &impl ConnectionTrait) -> u16 {
    port_of(db, SERVER_PORT_SQL).await
}

/// The primary's port.
pub fn writer_port(cluster: &PgCluster) -> u16 {
    cluster.primary().port()
}

/// The replicas' ports.
pub fn reader_ports(cluster: &PgCluster) -> Vec<u16> {
    cluster.replicas().iter().map(|r| r.port()).collect()
}

/// Asserts that `port` is one of `cluster`'s replicas.
#[track_caller]
pub fn assert_reader(cluster: &PgCluster, port: u16) {
    assert!(
        reader_ports(cluster).contains(&port),
        "expected a replica, got port {port} (writer is {})",
        writer_port(cluster)
    );
}

/// Waits until every replica of `cluster` has replayed the primary's writes.
pub fn wait_replicated(cluster: &PgCluster) {
    cluster
        .wait_replicated(Duration::from_secs(30))
        .expect("replicated");
}

/// Counts the rows of `cake` on the primary, bypassing rds-balancer.
pub fn count_on_primary(cluster: &PgCluster, db: &str) -> i64 {
    cluster
        .psql(db, "SELECT count(*) FROM cake")
        .expect("count")
        .trim()
        .parse()
        .expect("a number")
}
