//! `ClusterViewSource` against a real PostgreSQL server: each test database gets a function
//! `aurora_replica_status()` with Aurora PostgreSQL's columns, whose rows (and delay) the test
//! controls through tables.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use rds_balancer::{AVAILABLE, ClusterViewSource, Error, ErrorKind, Topology, TopologySource};
use rds_balancer_testkit::AURORA_REPLICA_STATUS_STUB;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use support::cluster;

const PATTERN: &str = "?.cluster-xyz.us-east-1.rds.amazonaws.com";

/// A fresh database `name` with the stub, holding the rows `values` (a `VALUES` list of
/// `(server_id, session_id, replica_lag_in_msec, cpu, last_update_timestamp)`), and a
/// connection to it.
async fn stub(name: &str, values: &str) -> DatabaseConnection {
    let cluster = cluster();
    support::create_database(cluster, name);
    cluster.psql(name, AURORA_REPLICA_STATUS_STUB).unwrap();
    if !values.is_empty() {
        cluster
            .psql(
                name,
                &format!(
                    "INSERT INTO replica_status_rows \
                     (server_id, session_id, replica_lag_in_msec, cpu, last_update_timestamp) \
                     VALUES {values}"
                ),
            )
            .unwrap();
    }
    connect(&cluster.primary().url(name)).await
}

async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(2));
    Database::connect(options).await.unwrap()
}

/// A connection whose server is gone: nothing listens on its port.
async fn dead_connection() -> DatabaseConnection {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = ConnectOptions::new(format!("postgres://postgres@127.0.0.1:{port}/gone"));
    options
        .sqlx_logging(false)
        .connect_lazy(true)
        .connect_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(1));
    Database::connect(options).await.unwrap()
}

fn source(conn: DatabaseConnection) -> ClusterViewSource {
    ClusterViewSource::builder(conn)
        .host_pattern(PATTERN)
        .build()
        .unwrap()
}

fn ids(topology: &Topology) -> Vec<&str> {
    topology.instances.iter().map(|i| i.id.as_str()).collect()
}

fn host(id: &str) -> String {
    PATTERN.replace('?', id)
}

#[tokio::test]
async fn writer_and_readers_get_hosts_from_the_pattern_and_the_port() {
    let conn = stub(
        "cv_writer_and_readers",
        "('app-writer', 'MASTER_SESSION_ID', NULL, 5.5, now()),
         ('app-reader-1', 'c0ffee00-0000-0000-0000-000000000001', 12.5, 30, now()),
         ('app-reader-2', 'c0ffee00-0000-0000-0000-000000000002', NULL, NULL, NULL)",
    )
    .await;
    let source = ClusterViewSource::builder(conn)
        .host_pattern(PATTERN)
        .port(15432)
        .build()
        .unwrap();
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

#[tokio::test]
async fn the_port_defaults_to_the_backends() {
    let conn = stub(
        "cv_default_port",
        "('w', 'MASTER_SESSION_ID', 0, 1, now()), ('r', 'uuid-r', 3, 2, now())",
    )
    .await;
    let source = source(conn);
    assert_eq!(source.port(), 5432);
    let topology = source.fetch().await.unwrap();
    assert!(topology.instances.iter().all(|i| i.port == Some(5432)));
    assert_eq!(
        topology.readers().next().unwrap().replica_lag,
        Some(Duration::from_millis(3))
    );
}

#[tokio::test]
async fn stale_readers_are_ignored_but_the_writer_is_kept() {
    let conn = stub(
        "cv_stale_rows",
        "('writer', 'MASTER_SESSION_ID', 0, 1, now() - interval '10 minutes'),
         ('fresh', 'uuid-1', 1, 1, now() - interval '299 seconds'),
         ('stale', 'uuid-2', 1, 1, now() - interval '301 seconds'),
         ('ancient', 'uuid-3', 1, 1, now() - interval '2 days'),
         ('self', 'uuid-4', 1, 1, NULL)",
    )
    .await;
    let topology = source(conn).fetch().await.unwrap();
    assert_eq!(ids(&topology), ["writer", "fresh", "self"]);
    assert_eq!(topology.writer().unwrap().id, "writer");
}

#[tokio::test]
async fn no_writer_row_means_no_writer() {
    let conn = stub(
        "cv_no_writer",
        "('reader-1', 'uuid-1', 4, 10, now()), ('reader-2', 'uuid-2', 8, 20, now())",
    )
    .await;
    let topology = source(conn).fetch().await.unwrap();
    assert!(topology.writer().is_none());
    assert_eq!(ids(&topology), ["reader-1", "reader-2"]);
}

#[tokio::test]
async fn an_empty_view_is_an_empty_topology() {
    let conn = stub("cv_empty", "").await;
    let topology = source(conn).fetch().await.unwrap();
    assert!(topology.instances.is_empty());
}

#[tokio::test]
async fn rows_with_null_or_empty_server_ids_are_skipped() {
    let conn = stub(
        "cv_null_ids",
        "(NULL, 'MASTER_SESSION_ID', 0, 1, now()),
         ('', 'uuid-1', 1, 1, now()),
         (NULL, NULL, NULL, NULL, NULL),
         ('reader-1', NULL, NULL, NULL, now())",
    )
    .await;
    let topology = source(conn).fetch().await.unwrap();
    assert!(topology.writer().is_none());
    assert_eq!(ids(&topology), ["reader-1"]);
}

#[tokio::test]
async fn of_two_writer_rows_the_most_recently_updated_wins() {
    let conn = stub(
        "cv_two_writers",
        "('old-writer', 'MASTER_SESSION_ID', 0, 1, now() - interval '20 seconds'),
         ('new-writer', 'MASTER_SESSION_ID', 0, 1, now() - interval '1 second'),
         ('reader', 'uuid', 0, 1, now())",
    )
    .await;
    let topology = source(conn).fetch().await.unwrap();
    assert_eq!(ids(&topology), ["new-writer", "reader"]);
}

#[tokio::test]
async fn a_failed_first_connection_falls_back_to_the_second() {
    let good = stub("cv_fallback", "('w', 'MASTER_SESSION_ID', 0, 1, now())").await;
    // A connection whose server is gone, then one to a database without the view.
    let not_aurora = connect(&cluster().primary().url("postgres")).await;
    let source = ClusterViewSource::builder(dead_connection().await)
        .host_pattern(PATTERN)
        .fallback_connection(not_aurora)
        .fallback_connection(good)
        .build()
        .unwrap();
    let topology = source.fetch().await.unwrap();
    assert_eq!(topology.writer().unwrap().id, "w");
}

#[tokio::test]
async fn when_no_connection_answers_the_error_names_the_operation_and_sqlstate() {
    let not_aurora = connect(&cluster().primary().url("postgres")).await;
    let source = ClusterViewSource::builder(dead_connection().await)
        .host_pattern(PATTERN)
        .fallback_connection(not_aurora)
        .build()
        .unwrap();
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
    // undefined_function: the server is not Aurora PostgreSQL.
    assert_eq!(code.as_deref(), Some("42883"));
    assert!(message.contains("connection 1 of 2"), "{message}");
    assert!(message.contains("connection 2 of 2"), "{message}");
    assert!(message.contains("aurora_replica_status"), "{message}");
}

#[tokio::test]
async fn a_hung_query_times_out_with_a_typed_error_within_the_timeout() {
    let conn = stub("cv_hung", "('w', 'MASTER_SESSION_ID', 0, 1, now())").await;
    cluster()
        .psql("cv_hung", "UPDATE replica_status_delay SET seconds = 30")
        .unwrap();
    let timeout = Duration::from_millis(300);
    let source = ClusterViewSource::builder(conn)
        .host_pattern(PATTERN)
        .query_timeout(timeout)
        .build()
        .unwrap();
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

#[tokio::test]
async fn a_hung_first_connection_falls_back_after_the_timeout() {
    let hung = stub("cv_hung_first", "('old', 'MASTER_SESSION_ID', 0, 1, now())").await;
    cluster()
        .psql(
            "cv_hung_first",
            "UPDATE replica_status_delay SET seconds = 30",
        )
        .unwrap();
    let good = stub(
        "cv_hung_second",
        "('new', 'MASTER_SESSION_ID', 0, 1, now())",
    )
    .await;
    let source = ClusterViewSource::builder(hung)
        .host_pattern(PATTERN)
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

#[tokio::test]
async fn build_refuses_bad_patterns_timeouts_and_connections() {
    let config = |result: rds_balancer::Result<ClusterViewSource>| match result {
        Err(err) => assert_eq!(err.kind(), ErrorKind::Config, "{err}"),
        Ok(source) => panic!("built {source:?}"),
    };
    let conn = connect(&cluster().primary().url("postgres")).await;
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
    assert!(builder().host_pattern("db-?").build().is_ok());
}

#[tokio::test]
async fn debug_shows_the_pattern_but_no_connection_details() {
    let conn = connect(&cluster().primary().url("postgres")).await;
    let source = ClusterViewSource::builder(conn)
        .host_pattern(PATTERN)
        .fallback_connection(dead_connection().await)
        .build()
        .unwrap();
    let debug = format!("{source:?}");
    assert!(debug.contains(PATTERN), "{debug}");
    assert!(debug.contains("connections: 2"), "{debug}");
    assert!(!debug.contains("127.0.0.1"), "{debug}");
    assert!(!debug.contains("postgres://"), "{debug}");
    assert_eq!(source.host_pattern(), PATTERN);
}
