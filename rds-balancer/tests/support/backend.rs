//! One test body, two backends: a [`Cluster`] is a real PostgreSQL or MariaDB primary with
//! replicas, with the same schema, controls and questions ("which host served this?") on both.
//! [`backend_tests!`](crate::support::backend_tests) runs a body once per backend.
//!
//! MySQL tests connect as `app`, a user without `SUPER`: the replicas' `read_only` refuses its
//! writes, as Aurora readers refuse everyone's (root would be let through).

use std::sync::OnceLock;
use std::time::Duration;

use rds_balancer_testkit::{
    ApplyDelay, MariaDbCluster, MariaDbNode, PgCluster, PgNode, ReplayPaused,
};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};

/// Which database a test body runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
}

/// The MySQL application user the tests connect as (no `SUPER`).
pub const MYSQL_USER: &str = "app";
pub const MYSQL_PASSWORD: &str = "app-secret";

/// How long the kit's replication waits may take.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// PostgreSQL schema. `served_by` is stamped by a trigger with the port of the server that wrote
/// the row; the `cake_seen` view reports the port of the server reading it.
pub(super) const PG_SCHEMA: &str = "
CREATE TABLE cake (id serial PRIMARY KEY, name text NOT NULL, served_by int);
CREATE FUNCTION stamp_port() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.served_by := inet_server_port(); RETURN NEW; END $$;
CREATE TRIGGER cake_stamp BEFORE INSERT OR UPDATE ON cake FOR EACH ROW EXECUTE FUNCTION stamp_port();
CREATE VIEW cake_seen AS SELECT id, name, inet_server_port() AS read_port FROM cake;
CREATE SEQUENCE ticket;
";

/// The same schema on MariaDB. A view may not read a system variable, so `cake_seen` calls a
/// function that does. Row-based replication applies the rows as the primary stamped them.
const MYSQL_SCHEMA: &str = "
CREATE TABLE cake (id int AUTO_INCREMENT PRIMARY KEY, name varchar(255) NOT NULL, served_by int);
CREATE TRIGGER cake_stamp_insert BEFORE INSERT ON cake FOR EACH ROW SET NEW.served_by = @@port;
CREATE TRIGGER cake_stamp_update BEFORE UPDATE ON cake FOR EACH ROW SET NEW.served_by = @@port;
CREATE FUNCTION server_port() RETURNS int NOT DETERMINISTIC NO SQL RETURN @@port;
CREATE VIEW cake_seen AS SELECT id, name, server_port() AS read_port FROM cake;
";

/// A real primary with replicas, PostgreSQL or MariaDB.
#[derive(Debug)]
pub enum Cluster {
    Postgres(PgCluster),
    MySql(MariaDbCluster),
}

/// One server of a [`Cluster`].
#[derive(Debug, Clone, Copy)]
pub enum Node<'a> {
    Postgres(&'a PgNode),
    MySql(&'a MariaDbNode),
}

impl Cluster {
    /// The cluster of `kind` shared by the tests of this binary (a primary and two replicas).
    /// Tests that stop, pause or promote nodes start their own.
    pub fn shared(kind: Kind) -> &'static Cluster {
        static PG: OnceLock<Cluster> = OnceLock::new();
        static MY: OnceLock<Cluster> = OnceLock::new();
        let cell = match kind {
            Kind::Postgres => &PG,
            Kind::MySql => &MY,
        };
        cell.get_or_init(|| Cluster::start(kind, 2))
    }

    /// A cluster of its own: a primary and `replicas` replicas. Panics (the test fails) when
    /// the servers cannot start.
    pub fn start(kind: Kind, replicas: usize) -> Cluster {
        match kind {
            Kind::Postgres => match PgCluster::start(replicas) {
                Ok(cluster) => Cluster::Postgres(cluster),
                Err(err) => panic!("could not start the PostgreSQL test cluster: {err}"),
            },
            Kind::MySql => {
                let cluster = MariaDbCluster::start(replicas).unwrap_or_else(|err| {
                    panic!("could not start the MariaDB test cluster: {err}")
                });
                cluster
                    .create_user(MYSQL_USER, MYSQL_PASSWORD)
                    .expect("create the application user");
                Cluster::MySql(cluster)
            }
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Cluster::Postgres(_) => Kind::Postgres,
            Cluster::MySql(_) => Kind::MySql,
        }
    }

    /// SeaORM's backend for this cluster.
    pub fn backend(&self) -> DbBackend {
        match self {
            Cluster::Postgres(_) => DbBackend::Postgres,
            Cluster::MySql(_) => DbBackend::MySql,
        }
    }

    /// The PostgreSQL cluster; panics on MySQL (for PostgreSQL-only steps).
    pub fn pg(&self) -> &PgCluster {
        match self {
            Cluster::Postgres(cluster) => cluster,
            Cluster::MySql(_) => panic!("a PostgreSQL-only step on a MySQL cluster"),
        }
    }

    /// The MariaDB cluster; panics on PostgreSQL (for MySQL-only steps).
    pub fn mysql(&self) -> &MariaDbCluster {
        match self {
            Cluster::MySql(cluster) => cluster,
            Cluster::Postgres(_) => panic!("a MySQL-only step on a PostgreSQL cluster"),
        }
    }

    /// The current primary.
    pub fn primary(&self) -> Node<'_> {
        match self {
            Cluster::Postgres(c) => Node::Postgres(c.primary()),
            Cluster::MySql(c) => Node::MySql(c.primary()),
        }
    }

    /// The current replicas, in creation order.
    pub fn replicas(&self) -> Vec<Node<'_>> {
        match self {
            Cluster::Postgres(c) => c.replicas().iter().map(Node::Postgres).collect(),
            Cluster::MySql(c) => c.replicas().iter().map(Node::MySql).collect(),
        }
    }

    /// Promotes replica `index` (the primary should be stopped or killed first); the others
    /// follow it.
    pub fn promote(&self, index: usize) {
        match self {
            Cluster::Postgres(c) => c.promote(index),
            Cluster::MySql(c) => c.promote(index),
        }
        .expect("promote");
    }

    /// Pauses replay on replica `index` (it keeps receiving, applies nothing) until the guard
    /// is dropped, a failed assertion included: a test may do this on the shared cluster. While
    /// it lasts, [`wait_replicated`](Self::wait_replicated) and
    /// [`create_database`](Self::create_database) time out.
    pub fn pause_replay(&self, index: usize) -> ReplayPaused<'_> {
        match self {
            Cluster::Postgres(c) => c.pause_replay(index),
            Cluster::MySql(c) => c.pause_replay(index),
        }
        .expect("pause replay")
    }

    /// Resumes replay on replica `index`, for a pause made without a guard.
    pub fn resume_replay(&self, index: usize) {
        match self {
            Cluster::Postgres(c) => c.resume_replay(index),
            Cluster::MySql(c) => c.resume_replay(index),
        }
        .expect("resume replay");
    }

    /// Delays replay on replica `index` by `delay` (MariaDB: rounded up to whole seconds) until
    /// the guard is dropped, a failed assertion included: a test may do this on the shared
    /// cluster.
    pub fn set_apply_delay(&self, index: usize, delay: Duration) -> ApplyDelay<'_> {
        match self {
            Cluster::Postgres(c) => c.set_apply_delay(index, delay),
            Cluster::MySql(c) => c.set_apply_delay(index, delay),
        }
        .expect("set the apply delay")
    }

    /// The primary's position after its writes so far: an LSN (`0/3000148`) or a GTID position
    /// (`0-1-6`).
    pub fn writer_position(&self) -> String {
        match self {
            Cluster::Postgres(c) => c.writer_position(),
            Cluster::MySql(c) => c.writer_position(),
        }
        .expect("the writer's position")
    }

    /// How far replica `index` has applied the primary's writes, in the format of
    /// [`writer_position`](Self::writer_position).
    pub fn replayed_position(&self, index: usize) -> String {
        match self {
            Cluster::Postgres(c) => c.replayed_position(index),
            Cluster::MySql(c) => c.replayed_position(index),
        }
        .expect("a replica's replayed position")
    }

    /// How far replica `index` has received the primary's writes, in the format of
    /// [`writer_position`](Self::writer_position).
    pub fn received_position(&self, index: usize) -> String {
        match self {
            Cluster::Postgres(c) => c.received_position(index),
            Cluster::MySql(c) => c.received_position(index),
        }
        .expect("a replica's received position")
    }

    /// Creates database `name` with the test schema, replicated to every running replica.
    pub fn create_database(&self, name: &str) {
        match self {
            Cluster::Postgres(c) => {
                c.create_database(name).expect("create database");
                c.psql(name, PG_SCHEMA).expect("create schema");
            }
            Cluster::MySql(c) => {
                c.create_database(name).expect("create database");
                c.sql(name, MYSQL_SCHEMA).expect("create schema");
            }
        }
        self.wait_replicated();
    }

    /// Waits until every running replica has replayed the primary's writes.
    pub fn wait_replicated(&self) {
        match self {
            Cluster::Postgres(c) => c.wait_replicated(REPLICATION_TIMEOUT),
            Cluster::MySql(c) => c.wait_replicated(REPLICATION_TIMEOUT),
        }
        .expect("replicated");
    }

    /// Runs admin SQL on the primary in database `db`, bypassing rds-balancer; returns the
    /// client's output (one line per row, tab-separated columns).
    pub fn admin(&self, db: &str, sql: &str) -> String {
        match self {
            Cluster::Postgres(c) => c.psql(db, sql),
            Cluster::MySql(c) => c.sql(db, sql),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Counts the rows of `cake` on the primary, bypassing rds-balancer.
    pub fn count_on_primary(&self, db: &str) -> i64 {
        self.admin(db, "SELECT count(*) FROM cake")
            .trim()
            .parse()
            .expect("a number")
    }

    /// The URL of the primary's database `db`, as the tests' user.
    pub fn writer_url(&self, db: &str) -> String {
        self.primary().url(db)
    }

    /// The URLs of the replicas' database `db`, as the tests' user.
    pub fn reader_urls(&self, db: &str) -> Vec<String> {
        self.replicas().iter().map(|r| r.url(db)).collect()
    }

    /// The primary's port.
    pub fn writer_port(&self) -> u16 {
        self.primary().port()
    }

    /// The replicas' ports.
    pub fn reader_ports(&self) -> Vec<u16> {
        self.replicas().iter().map(Node::port).collect()
    }

    /// Asserts that `port` is one of the replicas'.
    #[track_caller]
    pub fn assert_reader(&self, port: u16) {
        assert!(
            self.reader_ports().contains(&port),
            "expected a replica, got port {port} (writer is {})",
            self.writer_port()
        );
    }

    /// A URL of database `db` on a loopback port where nothing listens.
    pub fn dead_url(&self, db: &str) -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        match self {
            Cluster::Postgres(_) => format!("postgres://postgres@127.0.0.1:{port}/{db}"),
            Cluster::MySql(_) => {
                format!("mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@127.0.0.1:{port}/{db}")
            }
        }
    }

    /// `SELECT <the serving server's port> AS port`.
    pub fn port_sql(&self) -> &'static str {
        match self {
            Cluster::Postgres(_) => "SELECT inet_server_port() AS port",
            Cluster::MySql(_) => "SELECT @@port AS port",
        }
    }

    /// The expression for the serving server's port.
    pub fn port_expr(&self) -> &'static str {
        match self {
            Cluster::Postgres(_) => "inet_server_port()",
            Cluster::MySql(_) => "@@port",
        }
    }

    /// A read that has a side effect on the writer (it must never reach a replica) and returns
    /// the serving port: `nextval` on PostgreSQL, `GET_LOCK` on MySQL.
    pub fn side_effect_port_sql(&self) -> &'static str {
        match self {
            Cluster::Postgres(_) => "SELECT inet_server_port() AS port, nextval('ticket')",
            Cluster::MySql(_) => "SELECT @@port AS port, GET_LOCK('ticket', 0)",
        }
    }
}

impl Node<'_> {
    pub fn name(&self) -> &str {
        match self {
            Node::Postgres(n) => n.name(),
            Node::MySql(n) => n.name(),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Node::Postgres(n) => n.port(),
            Node::MySql(n) => n.port(),
        }
    }

    /// This node as a topology's writer instance (named as the node, on loopback).
    pub fn as_writer(&self) -> rds_balancer::Instance {
        rds_balancer::Instance::writer(self.name()).with_endpoint("127.0.0.1", self.port())
    }

    /// This node as a topology's reader instance (named as the node, on loopback).
    pub fn as_reader(&self) -> rds_balancer::Instance {
        rds_balancer::Instance::reader(self.name()).with_endpoint("127.0.0.1", self.port())
    }

    /// The URL of database `db` on this node, as the tests' user.
    pub fn url(&self, db: &str) -> String {
        match self {
            Node::Postgres(n) => n.url(db),
            Node::MySql(n) => n.url_as(db, MYSQL_USER, MYSQL_PASSWORD),
        }
    }

    /// Crashes the server (`SIGKILL`).
    pub fn kill(&self) {
        match self {
            Node::Postgres(n) => n.kill(),
            Node::MySql(n) => n.kill(),
        }
        .expect("kill");
    }

    /// Stops the server cleanly.
    pub fn stop(&self) {
        match self {
            Node::Postgres(n) => n.stop(),
            Node::MySql(n) => n.stop(),
        }
        .expect("stop");
    }

    /// Starts the server again.
    pub fn start(&self) {
        match self {
            Node::Postgres(n) => n.start(),
            Node::MySql(n) => n.start(),
        }
        .expect("start");
    }

    /// Freezes the server (`SIGSTOP`): a network black hole.
    pub fn pause(&self) {
        match self {
            Node::Postgres(n) => n.pause(),
            Node::MySql(n) => n.pause(),
        }
        .expect("pause");
    }

    /// Thaws a paused server.
    pub fn resume(&self) {
        match self {
            Node::Postgres(n) => n.resume(),
            Node::MySql(n) => n.resume(),
        }
        .expect("resume");
    }
}

/// The port of the server that answered `sql` (which must return an integer `port` column)
/// through `db`.
pub async fn port_of(db: &impl ConnectionTrait, sql: &str) -> u16 {
    try_port_of(db, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Like [`port_of`], with the error (the statement's, or a missing row or port) as text.
pub async fn try_port_of(db: &impl ConnectionTrait, sql: &str) -> Result<u16, String> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no row")?;
    port_in(&row).ok_or_else(|| "no integer port column".to_owned())
}

/// The integer column `port` of `row` (`int4` on PostgreSQL, `BIGINT` or `BIGINT UNSIGNED` on
/// MySQL).
pub fn port_in(row: &QueryResult) -> Option<u16> {
    let port = row
        .try_get::<i32>("", "port")
        .map(i64::from)
        .or_else(|_| row.try_get::<i64>("", "port"))
        .or_else(|_| {
            row.try_get::<u64>("", "port")
                .map(|p| i64::try_from(p).unwrap_or(-1))
        })
        .ok()?;
    u16::try_from(port).ok()
}

/// Runs a test body once per backend: `backend_tests!(a, b, #[multi_thread] c)` makes modules
/// `a`, `b`, `c`, each with tests `postgres` and `mysql` calling `a(Kind::Postgres)` /
/// `a(Kind::MySql)`. `#[multi_thread]` runs that body on tokio's multi-threaded runtime.
#[allow(unused_macros)]
macro_rules! backend_tests {
    () => {};
    (#[multi_thread] $name:ident $(, $($rest:tt)*)?) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$name($crate::support::Kind::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn mysql() {
                super::$name($crate::support::Kind::MySql).await
            }
        }
        $crate::support::backend_tests!($($($rest)*)?);
    };
    ($name:ident $(, $($rest:tt)*)?) => {
        mod $name {
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::support::Kind::Postgres).await
            }
            #[tokio::test]
            async fn mysql() {
                super::$name($crate::support::Kind::MySql).await
            }
        }
        $crate::support::backend_tests!($($($rest)*)?);
    };
}
pub(crate) use backend_tests;
