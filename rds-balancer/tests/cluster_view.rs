//! `ClusterViewSource` against real servers, PostgreSQL and MariaDB, with one body per test run
//! on each (`<test>::postgres`, `<test>::mysql`) on the binary's shared cluster of that backend.
//!
//! Each test database gets a stand-in for the backend's topology relation, whose rows (and
//! delay) the test controls through tables: on PostgreSQL a function `aurora_replica_status()`
//! with Aurora PostgreSQL's columns (the test kit's `AURORA_REPLICA_STATUS_STUB`), read as
//! Aurora's own; on MariaDB a table with the columns of Aurora MySQL's
//! `information_schema.replica_host_status` and a view over it that can be made to hang
//! (`REPLICA_HOST_STATUS_STUB`), read through `status_relation`, since nothing can be created in
//! `information_schema`. The MySQL tests connect as the test kit's application user, without
//! `SUPER`, as an application would (root ignores the replicas' `read_only`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::sync::Once;
use std::time::{Duration, Instant};

use rds_balancer::{
    AVAILABLE, ClusterViewSource, ClusterViewSourceBuilder, Error, ErrorKind, Topology,
    TopologySource,
};
use rds_balancer_testkit::{AURORA_REPLICA_STATUS_STUB, REPLICA_HOST_STATUS_STUB};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use support::{Cluster, Kind, MYSQL_PASSWORD, backend_tests};

const PATTERN: &str = "?.cluster-xyz.us-east-1.rds.amazonaws.com";

/// The writer's `session_id`.
const WRITER: &str = "MASTER_SESSION_ID";

/// A database without the stub, created once per cluster.
const NOT_AURORA_DB: &str = "cv_not_aurora";

backend_tests!(
    writer_and_readers_get_hosts_from_the_pattern_and_the_port,
    the_port_defaults_to_the_backends,
    stale_readers_are_ignored_but_the_writer_is_kept,
    no_writer_row_means_no_writer,
    an_empty_view_is_an_empty_topology,
    rows_with_null_or_empty_server_ids_are_skipped,
    of_two_writer_rows_the_most_recently_updated_wins,
    a_relation_of_the_same_shape_stands_in_by_plain_or_qualified_name,
    a_failed_first_connection_falls_back_to_the_second,
    a_replica_answers_when_the_writer_is_gone,
    when_no_connection_answers_the_error_names_the_operation_and_sqlstate,
    a_hung_query_times_out_with_a_typed_error_within_the_timeout,
    a_hung_first_connection_falls_back_after_the_timeout,
    build_refuses_bad_patterns_timeouts_relations_and_connections,
    debug_shows_the_pattern_but_no_connection_details,
);

// ---------------------------------------------------------------------------------------------
// The backends.

/// What a test body needs of a backend's shared cluster: its stand-in for Aurora's topology
/// relation, how to write that relation's rows, and connections to its servers. On PostgreSQL
/// `aurora_replica_status()` is a function, read as Aurora's own relation; on MariaDB
/// `replica_host_status` is a table, read through the view `replica_host_status_delayed`
/// named by `status_relation`.
#[derive(Debug, Clone, Copy)]
struct View(Kind);

impl View {
    fn cluster(self) -> &'static Cluster {
        Cluster::shared(self.0)
    }

    /// The URL scheme.
    fn scheme(self) -> &'static str {
        match self.0 {
            Kind::Postgres => "postgres",
            Kind::MySql => "mysql",
        }
    }

    /// The port instances get when none is given.
    fn default_port(self) -> u16 {
        match self.0 {
            Kind::Postgres => 5432,
            Kind::MySql => 3306,
        }
    }

    /// The relation a source reads by default: Aurora's.
    fn aurora_relation(self) -> &'static str {
        match self.0 {
            Kind::Postgres => "aurora_replica_status()",
            Kind::MySql => "information_schema.replica_host_status",
        }
    }

    /// The SQLSTATE of reading Aurora's relation on a server that is not Aurora.
    fn not_aurora_code(self) -> &'static str {
        match self.0 {
            // undefined_function
            Kind::Postgres => "42883",
            // ER_UNKNOWN_TABLE: "Unknown table 'replica_host_status' in information_schema".
            Kind::MySql => "42S02",
        }
    }

    /// A table of the stub with exactly the shape of Aurora's relation.
    fn same_shape_table(self) -> &'static str {
        match self.0 {
            Kind::Postgres => "replica_status_rows",
            Kind::MySql => "replica_host_status",
        }
    }

    /// The name of `db`'s schema, which qualifies its relations.
    fn schema(self, db: &str) -> String {
        match self.0 {
            Kind::Postgres => "public".to_owned(),
            Kind::MySql => db.to_owned(),
        }
    }

    /// A fresh database `db` with the stub holding `rows`, and a connection to its writer as
    /// the application.
    async fn stub(self, db: &str, rows: &[StatusRow]) -> DatabaseConnection {
        let cluster = self.cluster();
        cluster.create_database(db);
        let (stub, insert) = match self.0 {
            Kind::Postgres => (
                AURORA_REPLICA_STATUS_STUB,
                "INSERT INTO replica_status_rows \
                 (server_id, session_id, replica_lag_in_msec, cpu, last_update_timestamp)",
            ),
            Kind::MySql => (
                REPLICA_HOST_STATUS_STUB,
                "INSERT INTO replica_host_status \
                 (SERVER_ID, SESSION_ID, REPLICA_LAG_IN_MILLISECONDS, CPU, LAST_UPDATE_TIMESTAMP)",
            ),
        };
        cluster.admin(db, stub);
        if !rows.is_empty() {
            let values: Vec<String> = rows.iter().map(|row| row.values(self.0)).collect();
            cluster.admin(db, &format!("{insert} VALUES {}", values.join(", ")));
        }
        connect(&cluster.writer_url(db)).await
    }

    /// A connection to a replica's copy of database `db`, once it has every write so far.
    async fn replica(self, db: &str) -> DatabaseConnection {
        let cluster = self.cluster();
        cluster.wait_replicated();
        connect(&cluster.replicas()[0].url(db)).await
    }

    /// A connection to a database without the stub.
    async fn not_aurora(self) -> DatabaseConnection {
        static POSTGRES: Once = Once::new();
        static MYSQL: Once = Once::new();
        let created = match self.0 {
            Kind::Postgres => &POSTGRES,
            Kind::MySql => &MYSQL,
        };
        let cluster = self.cluster();
        created.call_once(|| cluster.create_database(NOT_AURORA_DB));
        connect(&cluster.writer_url(NOT_AURORA_DB)).await
    }

    /// A connection whose server is gone: nothing listens on its port.
    async fn dead_connection(self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.cluster().dead_url("gone"));
        options
            .sqlx_logging(false)
            .connect_lazy(true)
            .connect_timeout(Duration::from_secs(1))
            .acquire_timeout(Duration::from_secs(1));
        Database::connect(options).await.unwrap()
    }

    /// Makes every read of the stub in database `db` hang for 30 s.
    fn hang(self, db: &str) {
        let delay = match self.0 {
            Kind::Postgres => "replica_status_delay",
            Kind::MySql => "replica_host_status_delay",
        };
        self.cluster()
            .admin(db, &format!("UPDATE {delay} SET seconds = 30"));
    }

    /// A builder for a source reading the stub through `conn`.
    fn builder(self, conn: DatabaseConnection) -> ClusterViewSourceBuilder {
        let builder = ClusterViewSource::builder(conn).host_pattern(PATTERN);
        match self.0 {
            Kind::Postgres => builder,
            // The stub's view, which can be made to hang.
            Kind::MySql => builder.status_relation("replica_host_status_delayed"),
        }
    }
}

/// One row of the topology relation, written the same way on both backends.
#[derive(Debug, Clone, Copy)]
struct StatusRow {
    server_id: Option<&'static str>,
    session_id: Option<&'static str>,
    lag_ms: Option<f64>,
    cpu: Option<f64>,
    /// Milliseconds since the row was last updated; `None` writes a NULL timestamp.
    age_ms: Option<u64>,
}

/// A row updated just now, without lag or CPU.
fn row(
    server_id: impl Into<Option<&'static str>>,
    session_id: impl Into<Option<&'static str>>,
) -> StatusRow {
    StatusRow {
        server_id: server_id.into(),
        session_id: session_id.into(),
        lag_ms: None,
        cpu: None,
        age_ms: Some(0),
    }
}

impl StatusRow {
    fn lag(self, ms: f64) -> Self {
        StatusRow {
            lag_ms: Some(ms),
            ..self
        }
    }

    fn cpu(self, percent: f64) -> Self {
        StatusRow {
            cpu: Some(percent),
            ..self
        }
    }

    fn updated_secs_ago(self, secs: u64) -> Self {
        self.updated_ms_ago(secs * 1000)
    }

    fn updated_ms_ago(self, ms: u64) -> Self {
        StatusRow {
            age_ms: Some(ms),
            ..self
        }
    }

    fn never_updated(self) -> Self {
        StatusRow {
            age_ms: None,
            ..self
        }
    }

    /// `(server_id, session_id, lag, cpu, updated)` as values of `kind`. On MySQL the source's
    /// session runs in UTC (sqlx sets `time_zone = '+00:00'`) and compares with `NOW(6)`, so
    /// the timestamps are UTC.
    fn values(&self, kind: Kind) -> String {
        let updated = self.age_ms.map_or("NULL".to_owned(), |ms| match kind {
            Kind::Postgres => format!("now() - make_interval(secs => {ms} / 1000.0)"),
            Kind::MySql => format!("UTC_TIMESTAMP(6) - INTERVAL {} MICROSECOND", ms * 1000),
        });
        let text = |value: Option<&str>| {
            value.map_or("NULL".to_owned(), |v| {
                assert!(!v.contains(['\'', '\\']), "{v:?} needs no quoting");
                format!("'{v}'")
            })
        };
        let number = |value: Option<f64>| value.map_or("NULL".to_owned(), |v| format!("{v:?}"));
        format!(
            "({}, {}, {}, {}, {updated})",
            text(self.server_id),
            text(self.session_id),
            number(self.lag_ms),
            number(self.cpu),
        )
    }
}

async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(2));
    Database::connect(options).await.unwrap()
}

fn ids(topology: &Topology) -> Vec<&str> {
    topology.instances.iter().map(|i| i.id.as_str()).collect()
}

fn host(id: &str) -> String {
    PATTERN.replace('?', id)
}

// ---------------------------------------------------------------------------------------------
// The test bodies.

async fn writer_and_readers_get_hosts_from_the_pattern_and_the_port(kind: Kind) {
    let view = View(kind);
    let conn = view
        .stub(
            "cv_writer_and_readers",
            &[
                row("app-writer", WRITER).cpu(5.5),
                row("app-reader-1", "c0ffee00-0000-0000-0000-000000000001")
                    .lag(12.5)
                    .cpu(30.0),
                row("app-reader-2", "c0ffee00-0000-0000-0000-000000000002").never_updated(),
            ],
        )
        .await;
    let source = view.builder(conn).port(15432).build().unwrap();
    let topology = source.fetch().await.unwrap();

    assert_eq!(
        ids(&topology),
        ["app-writer", "app-reader-1", "app-reader-2"]
    );
    let writer = topology.writer().unwrap();
    assert_eq!(writer.id, "app-writer");
    assert_eq!(writer.host.as_deref(), Some(host("app-writer").as_str()));
    assert_eq!(writer.cpu_percent, Some(5.5));
    assert_eq!(writer.replica_lag, None);
    let readers: Vec<_> = topology.readers().collect();
    assert_eq!(readers.len(), 2);
    for instance in &topology.instances {
        assert_eq!(instance.port, Some(15432));
        assert_eq!(instance.status, AVAILABLE);
        assert_eq!(instance.host, Some(host(&instance.id)));
    }
    assert_eq!(readers[0].replica_lag, Some(Duration::from_micros(12_500)));
    assert_eq!(readers[0].cpu_percent, Some(30.0));
    assert_eq!(readers[1].replica_lag, None);
    assert_eq!(readers[1].cpu_percent, None);
}

async fn the_port_defaults_to_the_backends(kind: Kind) {
    let view = View(kind);
    let conn = view
        .stub(
            "cv_default_port",
            &[
                row("w", WRITER).lag(0.0).cpu(1.0),
                row("r", "uuid-r").lag(3.0).cpu(2.0),
            ],
        )
        .await;
    let source = view.builder(conn).build().unwrap();
    assert_eq!(source.port(), view.default_port());
    let topology = source.fetch().await.unwrap();
    assert!(
        topology
            .instances
            .iter()
            .all(|i| i.port == Some(view.default_port()))
    );
    assert_eq!(
        topology.readers().next().unwrap().replica_lag,
        Some(Duration::from_millis(3))
    );
}

async fn stale_readers_are_ignored_but_the_writer_is_kept(kind: Kind) {
    let view = View(kind);
    let conn = view
        .stub(
            "cv_stale_rows",
            &[
                row("writer", WRITER).updated_secs_ago(600),
                row("fresh", "uuid-1").updated_secs_ago(299),
                // Stale by half a second: a query on MySQL's `NOW()` (whole seconds) kept it.
                row("stale", "uuid-2").updated_ms_ago(300_500),
                row("ancient", "uuid-3").updated_secs_ago(2 * 24 * 3600),
                row("self", "uuid-4").never_updated(),
            ],
        )
        .await;
    let topology = view.builder(conn).build().unwrap().fetch().await.unwrap();
    assert_eq!(ids(&topology), ["writer", "fresh", "self"]);
    assert_eq!(topology.writer().unwrap().id, "writer");
}

async fn no_writer_row_means_no_writer(kind: Kind) {
    let view = View(kind);
    let conn = view
        .stub(
            "cv_no_writer",
            &[
                row("reader-1", "uuid-1").lag(4.0).cpu(10.0),
                row("reader-2", "uuid-2").lag(8.0).cpu(20.0),
            ],
        )
        .await;
    let topology = view.builder(conn).build().unwrap().fetch().await.unwrap();
    assert!(topology.writer().is_none());
    assert_eq!(ids(&topology), ["reader-1", "reader-2"]);
}

async fn an_empty_view_is_an_empty_topology(kind: Kind) {
    let view = View(kind);
    let conn = view.stub("cv_empty", &[]).await;
    let topology = view.builder(conn).build().unwrap().fetch().await.unwrap();
    assert!(topology.instances.is_empty());
}

async fn rows_with_null_or_empty_server_ids_are_skipped(kind: Kind) {
    let view = View(kind);
    let conn = view
        .stub(
            "cv_null_ids",
            &[
                row(None, WRITER),
                row("", "uuid-1"),
                row(None, None).never_updated(),
                row("reader-1", None),
            ],
        )
        .await;
    let topology = view.builder(conn).build().unwrap().fetch().await.unwrap();
    assert!(topology.writer().is_none());
    assert_eq!(ids(&topology), ["reader-1"]);
}

async fn of_two_writer_rows_the_most_recently_updated_wins(kind: Kind) {
    let view = View(kind);
    let conn = view
        .stub(
            "cv_two_writers",
            &[
                row("old-writer", WRITER).updated_secs_ago(20),
                row("new-writer", WRITER).updated_secs_ago(1),
                row("reader", "uuid"),
            ],
        )
        .await;
    let topology = view.builder(conn).build().unwrap().fetch().await.unwrap();
    assert_eq!(ids(&topology), ["new-writer", "reader"]);
}

/// `status_relation` names a table of Aurora's shape, unqualified (the connection's schema or
/// database) or qualified, and the source reads it as it reads Aurora's.
async fn a_relation_of_the_same_shape_stands_in_by_plain_or_qualified_name(kind: Kind) {
    let view = View(kind);
    let db = "cv_status_relation";
    let conn = view
        .stub(db, &[row("w", WRITER), row("r", "uuid").lag(7.0)])
        .await;
    let qualified = format!("{}.{}", view.schema(db), view.same_shape_table());
    for relation in [view.same_shape_table(), qualified.as_str()] {
        let source = ClusterViewSource::builder(conn.clone())
            .host_pattern(PATTERN)
            .status_relation(relation)
            .build()
            .unwrap();
        assert_eq!(source.status_relation(), relation);
        let topology = source.fetch().await.unwrap();
        assert_eq!(ids(&topology), ["w", "r"], "{relation}");
        assert_eq!(
            topology.readers().next().unwrap().replica_lag,
            Some(Duration::from_millis(7))
        );
    }
}

async fn a_failed_first_connection_falls_back_to_the_second(kind: Kind) {
    let view = View(kind);
    let good = view
        .stub("cv_fallback", &[row("w", WRITER).lag(0.0).cpu(1.0)])
        .await;
    // A connection whose server is gone, then one to a database without the relation.
    let source = view
        .builder(view.dead_connection().await)
        .fallback_connection(view.not_aurora().await)
        .fallback_connection(good)
        .build()
        .unwrap();
    let topology = source.fetch().await.unwrap();
    assert_eq!(topology.writer().unwrap().id, "w");
}

/// A replica (Aurora reader) answers the topology query too, read-only, as the application's
/// user: the source keeps working on a fallback to the reader endpoint.
async fn a_replica_answers_when_the_writer_is_gone(kind: Kind) {
    let view = View(kind);
    let db = "cv_replica_answers";
    drop(
        view.stub(db, &[row("w", WRITER), row("r", "uuid").lag(2.0)])
            .await,
    );
    let source = view
        .builder(view.dead_connection().await)
        .fallback_connection(view.replica(db).await)
        .build()
        .unwrap();
    let topology = source.fetch().await.unwrap();
    assert_eq!(ids(&topology), ["w", "r"]);
}

/// Aurora's own relation (the default) on a server that is not Aurora.
async fn when_no_connection_answers_the_error_names_the_operation_and_sqlstate(kind: Kind) {
    let view = View(kind);
    let source = ClusterViewSource::builder(view.dead_connection().await)
        .host_pattern(PATTERN)
        .fallback_connection(view.not_aurora().await)
        .build()
        .unwrap();
    assert_eq!(source.status_relation(), view.aurora_relation());
    let err = source.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Topology);
    let Error::Topology {
        operation,
        code,
        message,
    } = &err
    else {
        panic!("expected a topology error, got {err:?}");
    };
    assert_eq!(operation, "cluster view");
    assert_eq!(code.as_deref(), Some(view.not_aurora_code()), "{message}");
    assert!(message.contains("connection 1 of 2"), "{message}");
    assert!(message.contains("connection 2 of 2"), "{message}");
    let name = view.aurora_relation().rsplit('.').next().unwrap();
    let name = name.trim_end_matches("()");
    assert!(message.contains(name), "{message}");
}

async fn a_hung_query_times_out_with_a_typed_error_within_the_timeout(kind: Kind) {
    let view = View(kind);
    let conn = view
        .stub("cv_hung", &[row("w", WRITER).lag(0.0).cpu(1.0)])
        .await;
    view.hang("cv_hung");
    let timeout = Duration::from_millis(300);
    let source = view.builder(conn).query_timeout(timeout).build().unwrap();
    let started = Instant::now();
    let err = source.fetch().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_millis(700),
        "{elapsed:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Topology);
    assert!(
        matches!(&err, Error::Topology { operation, code: None, message }
            if operation == "cluster view" && message.contains("no answer within 300ms")),
        "{err:?}"
    );
}

async fn a_hung_first_connection_falls_back_after_the_timeout(kind: Kind) {
    let view = View(kind);
    let hung = view
        .stub("cv_hung_first", &[row("old", WRITER).lag(0.0).cpu(1.0)])
        .await;
    view.hang("cv_hung_first");
    let good = view
        .stub("cv_hung_second", &[row("new", WRITER).lag(0.0).cpu(1.0)])
        .await;
    let source = view
        .builder(hung)
        .query_timeout(Duration::from_millis(300))
        .fallback_connection(good)
        .build()
        .unwrap();
    let started = Instant::now();
    let topology = source.fetch().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(topology.writer().unwrap().id, "new");
}

async fn build_refuses_bad_patterns_timeouts_relations_and_connections(kind: Kind) {
    let view = View(kind);
    let config = |result: rds_balancer::Result<ClusterViewSource>| match result {
        Err(err) => assert_eq!(err.kind(), ErrorKind::Config, "{err}"),
        Ok(source) => panic!("built {source:?}"),
    };
    let conn = view.not_aurora().await;
    let builder = || ClusterViewSource::builder(conn.clone());
    config(builder().build());
    config(builder().host_pattern("instance.example.com").build());
    config(builder().host_pattern("?.?.example.com").build());
    config(
        builder()
            .host_pattern(PATTERN)
            .query_timeout(Duration::ZERO)
            .build(),
    );
    config(
        ClusterViewSource::builder(DatabaseConnection::default())
            .host_pattern(PATTERN)
            .build(),
    );
    config(
        builder()
            .host_pattern(PATTERN)
            .fallback_connection(DatabaseConnection::default())
            .build(),
    );
    for relation in [
        "",
        " replica_host_status",
        "replica_host_status; DROP TABLE cake",
        "replica_host_status WHERE 1 = 0 --",
        "(SELECT 1)",
        "a.b.c",
        "\"quoted\"",
        "f(1)",
    ] {
        config(
            builder()
                .host_pattern(PATTERN)
                .status_relation(relation)
                .build(),
        );
    }
    // PostgreSQL selects from a set-returning function; MySQL has none to select from.
    let call = builder()
        .host_pattern(PATTERN)
        .status_relation("monitoring.replica_status()")
        .build();
    match kind {
        Kind::Postgres => assert!(call.is_ok(), "{call:?}"),
        Kind::MySql => config(call),
    }
    assert!(builder().host_pattern("db-?").build().is_ok());
}

async fn debug_shows_the_pattern_but_no_connection_details(kind: Kind) {
    let view = View(kind);
    let source = view
        .builder(view.not_aurora().await)
        .fallback_connection(view.dead_connection().await)
        .build()
        .unwrap();
    let debug = format!("{source:?}");
    assert!(debug.contains(PATTERN), "{debug}");
    assert!(debug.contains("connections: 2"), "{debug}");
    assert!(debug.contains(source.status_relation()), "{debug}");
    assert!(!debug.contains("127.0.0.1"), "{debug}");
    assert!(!debug.contains(&format!("{}://", view.scheme())), "{debug}");
    assert!(!debug.contains(MYSQL_PASSWORD), "{debug}");
    assert_eq!(source.host_pattern(), PATTERN);
}
