//! The lifecycle of a connection against a real cluster, on PostgreSQL and on MariaDB: dropping
//! every handle stops every background task and closes every connection; a build that fails
//! halfway leaves nothing behind; shutdown keeps its deadline while a new host hangs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::time::{Duration, Instant, SystemTime};

use rds_balancer::{
    BalancerOptions, BlueGreenOptions, Credentials, Endpoint, ErrorKind, Instance, RdsConnection,
    RdsConnectionBuilder, Topology, attach_rds_replica_balancer,
};
use rds_balancer_testkit::FaultProxy;
use support::{
    Cluster, Kind, MYSQL_PASSWORD, MYSQL_USER, Node, backend_tests, connections_on, served_by,
};

backend_tests!(
    dropping_every_handle_stops_every_task_and_closes_every_connection,
    a_build_that_fails_after_the_writer_opened_leaves_nothing_behind,
    shutdown_keeps_its_deadline_while_a_new_host_hangs,
);

/// Tasks alive on the test's runtime now.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// The user and password the test servers let in.
fn login(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Postgres => ("postgres", ""),
        Kind::MySql => (MYSQL_USER, MYSQL_PASSWORD),
    }
}

/// A URL of database `db` on `node` without credentials (a provider gives them).
fn bare_url(kind: Kind, node: Node<'_>, db: &str) -> String {
    let scheme = match kind {
        Kind::Postgres => "postgres",
        Kind::MySql => "mysql",
    };
    format!("{scheme}://127.0.0.1:{}/{db}", node.port())
}

/// A builder for database `db` on `cluster`'s primary whose pools get their credentials from a
/// provider (each pool's renewal runs as a task: the credentials expire in an hour).
fn with_provider(cluster: &Cluster, kind: Kind, db: &str) -> RdsConnectionBuilder {
    let (user, password) = login(kind);
    RdsConnection::builder()
        .writer(bare_url(kind, cluster.primary(), db))
        .credentials(move |_: &Endpoint| async move {
            Ok(Credentials::new(user, password)
                .expiring_at(SystemTime::now() + Duration::from_secs(3600)))
        })
        .sqlx_logging(false)
}

/// Every node's connections to `db`, as the servers count them.
fn open_connections(cluster: &Cluster, db: &str) -> usize {
    std::iter::once(cluster.primary())
        .chain(cluster.replicas())
        .map(|node| connections_on(node, db))
        .sum()
}

/// Waits (up to 10 s) until the servers show no connection to `db` and the runtime has no more
/// tasks alive than `tasks`.
async fn wait_all_gone(cluster: &Cluster, db: &str, tasks: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (open, alive) = (open_connections(cluster, db), alive_tasks());
        if open == 0 && alive <= tasks {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections to {db} still open, {alive} tasks alive (before: {tasks})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dropping_every_handle_stops_every_task_and_closes_every_connection(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db_name = "lifecycle_drop";
    cluster.create_database(db_name);
    let tasks_before = alive_tasks();

    let db = with_provider(cluster, kind, db_name)
        .health_check_interval(Some(Duration::from_millis(100)))
        .blue_green(BlueGreenOptions::new().baseline_interval(Duration::from_millis(100)))
        .build()
        .await
        .unwrap();
    let (writer_port, reader_port) = (cluster.writer_port(), cluster.reader_ports()[0]);
    let source = move || async move {
        Ok(Topology::new(vec![
            Instance::writer("w").with_endpoint("127.0.0.1", writer_port),
            Instance::reader("r").with_endpoint("127.0.0.1", reader_port),
        ]))
    };
    let balancer = attach_rds_replica_balancer(
        db,
        BalancerOptions::new(source)
            .poll_interval(Duration::from_millis(100))
            .auto_start(true),
    )
    .await
    .unwrap();
    let db = balancer.connection();
    assert_eq!(served_by(&db).await, reader_port, "the topology's reader");
    assert!(balancer.is_polling());
    assert!(
        open_connections(cluster, db_name) >= 2,
        "the writer's and the reader's pools (and probes) are connected"
    );
    assert!(
        alive_tasks() > tasks_before + 3,
        "polling, two monitors and renewals run"
    );

    drop(db);
    drop(balancer);
    wait_all_gone(cluster, db_name, tasks_before).await;
}

async fn a_build_that_fails_after_the_writer_opened_leaves_nothing_behind(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db_name = "lifecycle_failed_build";
    cluster.create_database(db_name);
    let tasks_before = alive_tasks();

    // The writer opens (a connection, and its credentials' renewal task), then the second
    // reader's URL is refused.
    let err = with_provider(cluster, kind, db_name)
        .reader(bare_url(kind, cluster.replicas()[0], db_name))
        .reader("oracle://127.0.0.1/nothing")
        .build()
        .await
        .expect_err("an unsupported reader URL");
    assert_eq!(err.kind(), ErrorKind::Config);
    wait_all_gone(cluster, db_name, tasks_before).await;
}

async fn shutdown_keeps_its_deadline_while_a_new_host_hangs(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db_name = "lifecycle_hung_host";
    cluster.create_database(db_name);
    let reader = cluster.replicas()[0];
    let proxy = FaultProxy::start(([127, 0, 0, 1], reader.port()).into()).unwrap();
    proxy.blackhole();

    let db = RdsConnection::builder()
        .writer(cluster.writer_url(db_name))
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let applying = {
        let db = db.clone();
        let topology = Topology::new(vec![
            Instance::writer("w").with_endpoint("127.0.0.1", cluster.writer_port()),
            Instance::reader("r").with_endpoint("127.0.0.1", proxy.port()),
        ]);
        tokio::spawn(async move { db.apply_topology(&topology).await })
    };
    // The new reader's pool is connecting: the proxy took its connection and forwards nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.connections() == 0 {
        assert!(
            Instant::now() < deadline,
            "the new reader was never dialled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let report = db.shutdown(timeout).await;
    let took = started.elapsed();
    assert!(
        took < timeout + Duration::from_millis(500),
        "shutdown took {took:?}, past its {timeout:?} timeout"
    );
    assert!(report.drained, "{report:?}");

    // The change gives up once its connect times out: nothing published, its pool closed.
    let applied = applying.await.unwrap();
    assert_eq!(
        applied.expect_err("shut down meanwhile").kind(),
        ErrorKind::ShuttingDown
    );
    assert!(db.topology().await.instances.is_empty());
    proxy.restore();
    support::wait_no_connections(reader, db_name).await;
    support::wait_no_connections(cluster.primary(), db_name).await;
}
