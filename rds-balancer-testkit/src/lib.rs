//! Real local database clusters for rds-balancer's tests and examples (not published).
//!
//! [`PgCluster::start`] runs a PostgreSQL primary and N streaming replicas on loopback ports in
//! a temporary directory, in a few seconds, with no Docker: `initdb`, `pg_basebackup -R -X
//! stream` and `postgres` from the local installation (the newest `/usr/lib/postgresql/*/bin`,
//! else `pg_config --bindir`, else `PATH`). When those are missing it fails, never skips, with an
//! error naming the fix: `apt-get update && apt-get install -y postgresql` ([`INSTALL_HINT`]).
//!
//! The API is blocking; call it from synchronous tests, or from async code where a short block
//! is acceptable (set-up, fault injection), or wrap it in `spawn_blocking`.
//!
//! # Sharing a cluster
//!
//! Tests that leave the cluster as they found it share one per test binary, each in its own
//! database; a `static` is never dropped, so the servers are stopped and the directory removed by
//! the cluster's supervisor process when the test process exits (however it exits).
//!
//! ```no_run
//! use std::sync::OnceLock;
//! use std::time::Duration;
//!
//! use rds_balancer_testkit::{PgCluster, SERVER_PORT_SQL};
//!
//! fn cluster() -> &'static PgCluster {
//!     static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
//!     CLUSTER.get_or_init(|| match PgCluster::start(2) {
//!         Ok(cluster) => cluster,
//!         Err(err) => panic!("could not start the PostgreSQL test cluster: {err}"),
//!     })
//! }
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let cluster = cluster();
//! cluster.create_database("reads_go_to_replicas")?;
//! cluster.psql("reads_go_to_replicas", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")?;
//! cluster.wait_replicated(Duration::from_secs(30))?;
//! for replica in cluster.replicas() {
//!     // Connect your code under test to `replica.url(db)` / `cluster.primary().url(db)`, and ask
//!     // the server who answered:
//!     let port = replica.psql("reads_go_to_replicas", SERVER_PORT_SQL)?;
//!     assert_eq!(port, replica.port().to_string());
//!     assert_eq!(replica.psql("reads_go_to_replicas", "SELECT count(*) FROM t")?, "1");
//! }
//! # Ok(()) }
//! ```
//!
//! # Faults
//!
//! A test that changes the cluster starts its own, and drops it at the end:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use rds_balancer_testkit::PgCluster;
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let cluster = PgCluster::start(2)?;
//! cluster.replicas()[1].pause()?; // a black hole: connections hang
//! cluster.replicas()[1].resume()?;
//! cluster.primary().kill()?; // the writer crashes ...
//! cluster.promote(0)?; // ... and replica-1 takes over; replica-2 follows it
//! assert_eq!(cluster.primary().name(), "replica-1");
//! cluster.psql("postgres", "CREATE TABLE after_failover (id int)")?;
//! cluster.wait_replicated(Duration::from_secs(30))?;
//! # Ok(()) }
//! ```
//!
//! Network faults without touching the server: a [`FaultProxy`] in front of a node forwards
//! connections until told to hold every byte (`blackhole`), add latency, refuse new connections
//! or reset the open ones.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use rds_balancer_testkit::{FaultProxy, PgCluster};
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let cluster = PgCluster::start(1)?;
//! let proxy = FaultProxy::start(([127, 0, 0, 1], cluster.replicas()[0].port()).into())?;
//! // Point a client at `proxy.port()`, then:
//! proxy.set_latency(Duration::from_millis(50));
//! proxy.blackhole();
//! proxy.restore();
//! proxy.reset_all();
//! # Ok(()) }
//! ```
//!
//! # Replica lag
//!
//! A replica can be made to lag on purpose, deterministically, on both kinds of cluster: replay
//! paused ([`PgCluster::pause_replay`]: it keeps receiving but applies nothing) or delayed
//! ([`PgCluster::set_apply_delay`]: it applies each transaction once it is that old). Each call
//! returns once the server reports the new state, and returns a guard ([`ReplayPaused`],
//! [`ApplyDelay`]) that puts the replica back when dropped, also when a test fails, so a shared
//! cluster can be made to lag. [`PgCluster::writer_position`] and
//! [`PgCluster::replayed_position`] show what the replica has applied (LSNs; GTID positions on
//! MariaDB).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use rds_balancer_testkit::PgCluster;
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let cluster = PgCluster::start(1)?;
//! cluster.create_database("app")?;
//! cluster.psql("app", "CREATE TABLE t (id int)")?;
//! cluster.wait_replicated(Duration::from_secs(30))?;
//! {
//!     let _paused = cluster.pause_replay(0)?;
//!     cluster.psql("app", "INSERT INTO t VALUES (1)")?;
//!     let written = cluster.writer_position()?; // e.g. 0/3000148
//!     let replica = &cluster.replicas()[0];
//!     assert_eq!(replica.psql("app", "SELECT count(*) FROM t")?, "0");
//!     let behind = format!("SELECT pg_last_wal_replay_lsn() < '{written}'::pg_lsn");
//!     assert_eq!(replica.psql("app", &behind)?, "t");
//! } // replay resumes here
//! let _delay = cluster.set_apply_delay(0, Duration::from_millis(300))?;
//! # Ok(()) }
//! ```
//!
//! # Processes and clean-up
//!
//! When the test process is root (as in CI), every server and tool runs as the `postgres` OS
//! user, since `initdb` refuses root. Each server is a direct child of the test process, started
//! as `postgres -D <dir>/<node>/data` (not daemonized), listening on 127.0.0.1 only, with its unix
//! socket in `<dir>/<node>/sock` and its log in `<dir>/<node>/postgres.log`. Beside the servers,
//! each cluster runs a small `sh` supervisor that stops them and removes the directory as soon as
//! the test process is gone, even when it was killed with `SIGKILL`.
//!
//! # TLS, roles and connection limits
//!
//! [`PgCluster::builder`] starts a cluster whose servers accept TLS with a certificate signed by
//! a CA the kit generates ([`PgCluster::ca_path`]; valid for `localhost`, `127.0.0.1` and the
//! emulator's instance host names, so `sslmode=verify-full` works), optionally refusing plain
//! connections, and with another `max_connections`. The `postgres` superuser is trusted (no
//! password); every other role must give its password, so [`PgCluster::create_role`] and
//! [`PgCluster::set_password`] make credentials that can be rotated under the code under test.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use rds_balancer_testkit::PgCluster;
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let cluster = PgCluster::builder()
//!     .replicas(1)
//!     .tls(true)
//!     .max_connections(20)
//!     .start()?;
//! cluster.create_role("app", "first")?;
//! let ca = cluster.ca_path().expect("started with tls(true)");
//! let url = format!(
//!     "{}?sslmode=verify-full&sslrootcert={}",
//!     cluster.primary().url_as("postgres", "app", "first"),
//!     ca.display()
//! );
//! let sql = "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
//! assert_eq!(cluster.psql_conninfo(&url, sql, Duration::from_secs(10))?, "app|t");
//! cluster.set_password("app", "second")?; // `first` is refused from now on
//! # Ok(()) }
//! ```
//!
//! # The RDS API
//!
//! [`RdsEmulator::start`] runs moto's RDS emulator (`python3` with `moto[server]` and boto3;
//! else it fails with the fix, [`MOTO_INSTALL_HINT`]) on a loopback port, and
//! [`RdsEmulator::describe_pg_cluster`] describes a [`PgCluster`] there as an Aurora cluster
//! whose instances have the nodes' ports ([`RdsEmulator::describe_mariadb_cluster`] a
//! [`MariaDbCluster`], as Aurora MySQL). Its endpoint host names are fake
//! (`<id>.aaaaaaaaaa.us-east-1.rds.amazonaws.com`): [`resolve_to_loopback`] maps them to
//! 127.0.0.1. Topology changes are one call each (`add_instance`, `remove_instance`,
//! `stop_instance`, `set_instance_status`, `failover`), a few milliseconds.
//!
//! ```no_run
//! use rds_balancer_testkit::{PgCluster, RdsEmulator};
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let cluster = PgCluster::start(1)?;
//! let rds = RdsEmulator::start()?;
//! let ids = rds.describe_pg_cluster("app", &cluster)?;
//! // Give the code under test: endpoint_url(), region(), RdsEmulator::ACCESS_KEY_ID and
//! // RdsEmulator::SECRET_ACCESS_KEY, cluster id "app", and resolve_to_loopback as its
//! // endpoint resolver. Then change the topology under it:
//! rds.failover("app", &ids[1])?;
//! let writer = rds.describe("app")?.writer().and_then(|w| w.port);
//! assert_eq!(writer, Some(cluster.replicas()[0].port()));
//! # Ok(()) }
//! ```
//!
//! moto serves Secrets Manager on the same endpoint: [`RdsEmulator::create_secret`],
//! [`RdsEmulator::put_secret_value`] (a new `AWSCURRENT` version, as a rotation makes) and
//! [`RdsEmulator::call_service`] for any other call.
//!
//! ```no_run
//! use rds_balancer_testkit::RdsEmulator;
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let aws = RdsEmulator::start()?;
//! let secret = aws.create_secret("app-db", r#"{"username":"app","password":"first"}"#)?;
//! // Give the code under test endpoint_url(), region(), the dummy keys and secret.arn; then:
//! aws.put_secret_value(&secret.arn, r#"{"username":"app","password":"second"}"#)?;
//! # Ok(()) }
//! ```
//!
//! # Blue/green deployments
//!
//! [`BlueGreenDeployment`] makes two clusters the test started (PostgreSQL or MariaDB) the blue
//! (source) and green (target) sides of an RDS blue/green deployment: it installs AWS's metadata
//! relation ([`MetadataRelation`]: Aurora PostgreSQL's
//! `pg_catalog.get_blue_green_fast_switchover_metadata`, RDS PostgreSQL's
//! `rds_tools.show_topology`, or `mysql.rds_topology`) on both primaries, gives every node an
//! AWS-style host name in a [`Dns`] the code under test dials through, and lets the test drive
//! the switchover: the rows' status phase by phase, and the names moving from blue to green.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use rds_balancer_testkit::{BlueGreenDeployment, BlueGreenRole, BlueGreenStatus, PgCluster};
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let (blue, green) = (PgCluster::start(0)?, PgCluster::start(0)?);
//! let deployment = BlueGreenDeployment::postgres("app", &blue, &green)?;
//! let resolver = deployment.dns().resolver(); // the code under test's endpoint resolver
//! let writer = deployment.cluster_endpoint(BlueGreenRole::Source);
//! assert_eq!(resolver(writer, 5432), ("127.0.0.1".to_owned(), blue.primary().port()));
//! deployment.set_status(BlueGreenStatus::Available)?;
//! deployment.switchover(Duration::from_millis(200))?; // phase by phase; the names move
//! assert_eq!(resolver(writer, 5432), ("127.0.0.1".to_owned(), green.primary().port()));
//! # Ok(()) }
//! ```
//!
//! # MariaDB
//!
//! [`MariaDbCluster::start`] runs a MariaDB primary and N binary-log replicas (GTID,
//! `read_only=1`) the same way: `mariadb-install-db` and `mariadbd` from the local installation,
//! loopback ports, a temporary directory, the `mysql` OS user when the process is root, a
//! supervisor that stops them if the test process dies. Every node takes `root` with no password
//! over TCP; `read_only` does not stop `root`, so give the code under test its own user
//! ([`MariaDbCluster::create_user`], [`MariaDbCluster::set_password`]). Ask `SELECT @@port`
//! who served a statement. Nodes can be stopped, killed, paused and restarted like PostgreSQL's;
//! [`MariaDbCluster::promote`] makes a replica the primary and re-points the others;
//! [`MariaDbCluster::builder`] sets the replicas and `max_connections`. Without MariaDB it fails
//! with the fix, [`MARIADB_INSTALL_HINT`].
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use rds_balancer_testkit::{Error, MariaDbCluster};
//!
//! # fn main() -> Result<(), rds_balancer_testkit::Error> {
//! let cluster = MariaDbCluster::start(1)?;
//! cluster.create_database("app")?;
//! cluster.create_user("app", "pw")?;
//! cluster.sql("app", "CREATE TABLE t (id int primary key)")?;
//! cluster.wait_replicated(Duration::from_secs(30))?;
//! let replica = &cluster.replicas()[0];
//! // Connect the code under test to `replica.url_as("app", "app", "pw")`; the replica refuses
//! // its writes:
//! let write = replica.sql_as("app", "app", "pw", "INSERT INTO t VALUES (1)");
//! assert!(matches!(write, Err(Error::Command { stderr, .. }) if stderr.contains("read-only")));
//! # Ok(()) }
//! ```

mod bluegreen;
mod error;
mod history;
mod lag;
mod mysql;
mod net;
mod pg;
mod process;
mod proxy;
mod rds;
mod supervisor;
mod text;

/// SQL that gives a PostgreSQL database a stand-in for Aurora PostgreSQL's
/// `aurora_replica_status()`: the function with Aurora's columns, in order, returning the rows
/// of table `replica_status_rows` after sleeping `replica_status_delay.seconds` (0 at first).
/// Tests drive a `ClusterViewSource` by writing those rows (the writer's `session_id` is
/// `MASTER_SESSION_ID`).
///
/// ```no_run
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = rds_balancer_testkit::PgCluster::start(1)?;
/// cluster.create_database("app")?;
/// cluster.psql("app", rds_balancer_testkit::AURORA_REPLICA_STATUS_STUB)?;
/// # Ok(()) }
/// ```
pub const AURORA_REPLICA_STATUS_STUB: &str = "
CREATE TABLE replica_status_rows (
    server_id text,
    session_id text,
    durable_lsn bigint,
    highest_lsn_rcvd bigint,
    current_read_lsn bigint,
    cur_replay_latency_in_usec bigint,
    active_txns integer,
    is_current boolean,
    last_transport_error integer,
    last_error_timestamp timestamptz,
    last_update_timestamp timestamptz,
    feedback_xmin bigint,
    feedback_epoch integer,
    replica_lag_in_msec real,
    log_stream_speed_in_kib_per_second real,
    log_buffer_sequence_number bigint,
    oldest_read_view_trx_id bigint,
    oldest_read_view_lsn bigint,
    pending_read_ios integer,
    read_ios bigint,
    iops integer,
    cpu real
);
CREATE TABLE replica_status_delay (seconds float8 NOT NULL);
INSERT INTO replica_status_delay VALUES (0);
CREATE FUNCTION aurora_replica_status() RETURNS SETOF replica_status_rows
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((SELECT seconds FROM replica_status_delay));
    RETURN QUERY SELECT * FROM replica_status_rows;
END $$;
";

/// SQL that gives a MariaDB (or MySQL) database a stand-in for Aurora MySQL's
/// `information_schema.replica_host_status`, which no other server has and which cannot be
/// created in `information_schema`:
///
/// - table `replica_host_status`, with Aurora's columns in order (`SERVER_ID`, `SESSION_ID`,
///   `IOPS`, ..., `CPU`, ..., `LAST_UPDATE_TIMESTAMP`, ..., `REPLICA_LAG_IN_MILLISECONDS`, ...,
///   `MAX_REPLAY_LATENCY_IN_MICROSECONDS`) and, for the columns AWS documents, Aurora's types
///   (the others are Aurora-internal: integers, doubles and timestamps of the same meaning).
///   Every column accepts NULL, so tests can write the odd rows a server might report;
/// - view `replica_host_status_delayed`: the same rows, answered after sleeping
///   `replica_host_status_delay.seconds` (0 at first), for tests of hung queries.
///
/// Point `ClusterViewSourceBuilder::status_relation` at either (unqualified, it is looked up in
/// the connection's database) and write the table's rows: the writer's `SESSION_ID` is
/// `MASTER_SESSION_ID`, and `LAST_UPDATE_TIMESTAMP` is compared with `NOW(6)` of the reading
/// session, which sqlx sets to UTC: write `UTC_TIMESTAMP(6) - INTERVAL n SECOND`.
///
/// ```no_run
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = rds_balancer_testkit::MariaDbCluster::start(0)?;
/// cluster.create_database("app")?;
/// cluster.sql("app", rds_balancer_testkit::REPLICA_HOST_STATUS_STUB)?;
/// cluster.sql(
///     "app",
///     "INSERT INTO replica_host_status (SERVER_ID, SESSION_ID, CPU, LAST_UPDATE_TIMESTAMP) \
///      VALUES ('app-writer', 'MASTER_SESSION_ID', 5, UTC_TIMESTAMP(6)), \
///             ('app-reader', 'c0ffee00-0000-0000-0000-000000000001', 3, UTC_TIMESTAMP(6))",
/// )?;
/// // Make every read of the view hang for 30 s:
/// cluster.sql("app", "UPDATE replica_host_status_delay SET seconds = 30")?;
/// # Ok(()) }
/// ```
pub const REPLICA_HOST_STATUS_STUB: &str = "
CREATE TABLE replica_host_status (
    SERVER_ID varchar(100),
    SESSION_ID varchar(100),
    IOPS int unsigned,
    READ_IOS bigint unsigned,
    PENDING_READ_IOS int unsigned,
    CPU double,
    DURABLE_LSN bigint unsigned,
    ACTIVE_LSN bigint unsigned,
    LAST_TRANSPORT_ERROR int,
    LAST_ERROR_TIMESTAMP datetime(6),
    LAST_UPDATE_TIMESTAMP datetime(6),
    MASTER_SLAVE_LATENCY_IN_MICROSECONDS bigint unsigned,
    REPLICA_LAG_IN_MILLISECONDS double,
    LOG_STREAM_SPEED_IN_KiB_PER_SECOND double,
    LOG_BUFFER_SEQUENCE_NUMBER bigint unsigned,
    IS_CURRENT tinyint,
    OLDEST_READ_VIEW_TRX_ID bigint unsigned,
    OLDEST_READ_VIEW_LSN bigint unsigned,
    HIGHEST_LSN_RECEIVED bigint unsigned,
    CURRENT_READ_POINT bigint unsigned,
    CURRENT_REPLAY_LATENCY_IN_MICROSECONDS bigint unsigned,
    AVERAGE_REPLAY_LATENCY_IN_MICROSECONDS bigint unsigned,
    MAX_REPLAY_LATENCY_IN_MICROSECONDS bigint unsigned
);
CREATE TABLE replica_host_status_delay (seconds double NOT NULL);
INSERT INTO replica_host_status_delay VALUES (0);
CREATE VIEW replica_host_status_delayed AS
SELECT s.* FROM replica_host_status s
WHERE (SELECT SLEEP(seconds) FROM replica_host_status_delay) = 0;
";

pub use self::bluegreen::{
    AURORA_PG_BLUE_GREEN_STUB, BlueGreenChange, BlueGreenDeployment, BlueGreenDeploymentBuilder,
    BlueGreenEndpoint, BlueGreenEvent, BlueGreenRole, BlueGreenStatus, Dns, EndpointKind,
    METADATA_VERSION, MYSQL_RDS_TOPOLOGY_STUB, MetadataRelation, MetadataRow,
    RDS_PG_BLUE_GREEN_STUB,
};
pub use self::error::{Error, INSTALL_HINT, MOTO_INSTALL_HINT};
pub use self::lag::{ApplyDelay, ReplayPaused};
pub use self::mysql::{MARIADB_INSTALL_HINT, MariaDbCluster, MariaDbClusterBuilder, MariaDbNode};
pub use self::pg::{PgCluster, PgClusterBuilder, PgNode};
pub use self::proxy::FaultProxy;
pub use self::rds::{
    EmulatedCluster, EmulatedInstance, RdsEmulator, SecretVersion, resolve_to_loopback,
};

/// A query whose one row's `port` column is the port of the server that ran it: how tests ask
/// "who served this" (compare with [`PgNode::port`] or look it up with
/// [`PgCluster::node_by_port`]).
pub const SERVER_PORT_SQL: &str = "SELECT inet_server_port() AS port";
