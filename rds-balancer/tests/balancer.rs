//! The balancer controller polling the RDS API emulator, against a real cluster, on PostgreSQL
//! and on MariaDB (each test body runs on both; the emulator describes an `aurora-postgresql`
//! or an `aurora-mysql` cluster).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies and helpers outside #[test] fns

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    BalancerOptions, ErrorKind, Instance, RdsApiSource, RdsConnection, Topology, TopologyChange,
    attach_rds_replica_balancer,
};
use rds_balancer_testkit::RdsEmulator;
use sea_orm::ConnectionTrait;
use support::{
    Cluster, Kind, MYSQL_USER, Node, backend_tests, node_admin, port_in, served_by, stmt,
};

backend_tests!(
    polling_follows_readers_added_and_removed_without_a_restart,
    an_unreachable_api_keeps_the_last_topology,
    a_plain_database_connection_follows_the_cluster_and_destroy_gives_it_back,
    destroy_reopens_a_configured_writer_that_a_topology_replaced,
    connect_syncs_before_it_returns_and_then_follows_the_cluster,
);

async fn source(rds: &RdsEmulator, cluster_id: &str) -> RdsApiSource {
    support::rds::emulator_source_builder(rds, cluster_id)
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap()
}

/// A fresh database `db` on `cluster` and a connection to it that knows only the writer.
async fn connection(cluster: &Cluster, db: &str) -> RdsConnection {
    cluster.create_database(db);
    RdsConnection::builder()
        .writer(cluster.writer_url(db))
        .endpoint_resolver(support::rds::dial_loopback)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap()
}

/// Waits until a read is served by `port`; returns how long that took.
async fn until_read_on(db: &RdsConnection, port: u16) -> Duration {
    let start = Instant::now();
    while served_by(db).await != port {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no read reached port {port}"
        );
    }
    start.elapsed()
}

async fn polling_follows_readers_added_and_removed_without_a_restart(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let [r1, r2] = [cluster.replicas()[0], cluster.replicas()[1]];
    let rds = RdsEmulator::start().unwrap();
    rds.create_cluster("poll", support::rds::engine(kind))
        .unwrap();
    rds.add_instance("poll", "poll-writer", cluster.writer_port(), Some(0))
        .unwrap();
    rds.add_instance("poll", "poll-reader-1", r1.port(), Some(1))
        .unwrap();

    let seen: Arc<Mutex<Vec<TopologyChange>>> = Arc::default();
    let options = {
        let seen = Arc::clone(&seen);
        BalancerOptions::new(source(&rds, "poll").await)
            .poll_interval(Duration::from_millis(100))
            .auto_start(true)
            .on_topology_change(move |changes| seen.lock().unwrap().extend_from_slice(changes))
    };
    let balancer = attach_rds_replica_balancer(connection(cluster, "balancer_poll").await, options)
        .await
        .unwrap();
    let db = balancer.connection();
    assert!(balancer.is_polling());
    // The initial sync happened before attach returned.
    for _ in 0..10 {
        assert_eq!(served_by(&db).await, r1.port());
    }

    rds.add_instance("poll", "poll-reader-2", r2.port(), Some(1))
        .unwrap();
    let appeared = Instant::now();
    until_read_on(&db, r2.port()).await;
    let elapsed = appeared.elapsed();
    eprintln!(
        "{kind:?}: reader added in the API -> first read served (polling every 100 ms): {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5));

    rds.remove_instance("poll-reader-1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while balancer
        .topology()
        .await
        .readers()
        .any(|r| r.id == "poll-reader-1")
    {
        assert!(Instant::now() < deadline, "the removed reader stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..20 {
        assert_eq!(served_by(&db).await, r2.port());
    }
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&TopologyChange::ReaderRemoved("poll-reader-1".into())),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| matches!(c, TopologyChange::ReaderAdded(i) if i.id == "poll-reader-2"))
    );

    balancer.stop();
    assert!(!balancer.is_polling());
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn an_unreachable_api_keeps_the_last_topology(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let rds = RdsEmulator::start().unwrap();
    // The whole cluster, as the emulator describes it: the primary writes, both replicas read.
    let ids = support::rds::describe_cluster(&rds, "gone", cluster);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let options = BalancerOptions::new(source(&rds, "gone").await)
        .poll_interval(Duration::from_millis(100))
        .auto_start(true);
    let balancer = attach_rds_replica_balancer(connection(cluster, "balancer_gone").await, options)
        .await
        .unwrap();
    let db = balancer.connection();
    let readers: HashSet<String> = balancer
        .topology()
        .await
        .readers()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        readers,
        ids[1..].iter().cloned().collect(),
        "the described readers"
    );
    cluster.assert_reader(served_by(&db).await);

    drop(rds); // the API goes away
    let err = balancer.sync_now().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Topology, "{err}");
    // Polls keep failing; reads keep going to the last known readers, both of them.
    let until = Instant::now() + Duration::from_millis(600);
    let (mut reads, mut ports) = (0, HashSet::new());
    while Instant::now() < until || reads < 50 {
        let port = served_by(&db).await;
        cluster.assert_reader(port);
        ports.insert(port);
        reads += 1;
    }
    assert_eq!(
        ports,
        cluster.reader_ports().into_iter().collect(),
        "{reads} reads"
    );
    assert!(balancer.is_polling(), "a failing API is never fatal");
    // Shutdown stops the polling.
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
    assert!(!balancer.is_polling());
}

/// A source whose answer the test sets: the writer and readers on loopback ports.
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<Topology>>);

impl Scripted {
    fn set(&self, writer: u16, readers: &[u16]) {
        let instances =
            std::iter::once(
                Instance::writer(format!("node-{writer}")).with_endpoint("127.0.0.1", writer),
            )
            .chain(readers.iter().map(|&port| {
                Instance::reader(format!("node-{port}")).with_endpoint("127.0.0.1", port)
            }))
            .collect();
        *self.0.lock().unwrap() = Topology::new(instances);
    }

    fn options(&self) -> BalancerOptions {
        let topology = Arc::clone(&self.0);
        BalancerOptions::new(move || {
            let topology = topology.lock().unwrap().clone();
            async move { Ok(topology) }
        })
    }
}

/// A connection setting that only the application's own pool sets (in its URL's query), which
/// every pool the balancer opens must copy: PostgreSQL `application_name`, MySQL `time_zone`
/// (sqlx sets it at connect).
struct Marker {
    /// The URL query that sets it.
    query: &'static str,
    /// What the server reports for it.
    value: &'static str,
    /// `SELECT <port> AS port, <the session's value> AS setting`.
    sql: &'static str,
}

fn marker(kind: Kind) -> Marker {
    match kind {
        Kind::Postgres => Marker {
            query: "application_name=rdsb_plain",
            value: "rdsb_plain",
            sql: "SELECT inet_server_port() AS port, current_setting('application_name') AS setting",
        },
        Kind::MySql => Marker {
            query: "time-zone=%2B08:00",
            value: "+08:00",
            // Unscoped: the session's value, and a plain read (`@@session.time_zone` names the
            // session, and the classifier sends it to the writer).
            sql: "SELECT @@port AS port, @@time_zone AS setting",
        },
    }
}

/// The application's sessions on `node` in database `db`, as the server reports them
/// (PostgreSQL: `pg_stat_activity` by `application_name`; MySQL: `information_schema.PROCESSLIST`
/// by the application's user, the only client of `db` on a replica).
fn app_sessions(node: Node<'_>, db: &str) -> usize {
    let sql = match node {
        Node::Postgres(_) => format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
             AND application_name = 'rdsb_plain'"
        ),
        Node::MySql(_) => format!(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}' \
             AND USER = '{MYSQL_USER}'"
        ),
    };
    node_admin(node, &sql).trim().parse().expect("a count")
}

/// The port of the server a writer-routed statement reached.
async fn writer_of(db: &RdsConnection, cluster: &Cluster) -> u16 {
    support::port_of(db, &format!("/*@writer*/ {}", cluster.port_sql())).await
}

async fn a_plain_database_connection_follows_the_cluster_and_destroy_gives_it_back(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let (primary, [r1, r2]) = (
        cluster.writer_port(),
        [cluster.replicas()[0], cluster.replicas()[1]],
    );
    cluster.create_database("balancer_plain");
    let marker = marker(kind);
    let url = format!("{}?{}", cluster.writer_url("balancer_plain"), marker.query);
    let mine = sea_orm::Database::connect(url).await.unwrap();

    let source = Scripted::default();
    source.set(primary, &[r1.port()]);
    let balancer = attach_rds_replica_balancer(mine.clone(), source.options().auto_start(true))
        .await
        .unwrap();
    let db = balancer.connection();
    for _ in 0..5 {
        assert_eq!(served_by(&db).await, r1.port(), "reads follow the topology");
    }
    assert_eq!(
        writer_of(&db, cluster).await,
        primary,
        "the first writer is my pool, adopted"
    );
    // The reader pool copies my settings: the reader's session has my marker, and the server
    // counts sessions of mine on the reader.
    let row = db
        .query_one_raw(stmt(&db, marker.sql))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(port_in(&row), Some(r1.port()), "{}", marker.sql);
    assert_eq!(row.try_get::<String>("", "setting").unwrap(), marker.value);
    assert!(
        app_sessions(r1, "balancer_plain") > 0,
        "the reader pool copies my settings"
    );

    // The writer moves (a failover the source reports): my pool leaves service but stays open.
    source.set(r2.port(), &[r1.port()]);
    balancer.sync_now().await.unwrap();
    assert_eq!(writer_of(&db, cluster).await, r2.port());
    assert_eq!(served_by(&mine).await, primary, "my own pool still works");

    balancer.destroy().await;
    assert!(!balancer.is_polling());
    assert!(db.topology().await.instances.is_empty());
    assert_eq!(writer_of(&db, cluster).await, primary, "my writer is back");
    assert_eq!(
        served_by(&db).await,
        primary,
        "no readers left: reads go to the writer"
    );
    assert_eq!(served_by(&mine).await, primary);
    for node in [r1, r2] {
        // The server ends a session just after the client closes it: allow it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while app_sessions(node, "balancer_plain") > 0 {
            assert!(
                Instant::now() < deadline,
                "the pools the balancer opened on {} are closed",
                node.port()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let err = balancer.sync_now().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    balancer.start();
    assert!(
        !balancer.is_polling(),
        "a destroyed balancer does not poll again"
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn destroy_reopens_a_configured_writer_that_a_topology_replaced(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let (primary, r1) = (cluster.writer_port(), cluster.replicas()[0].port());
    cluster.create_database("balancer_reopen");
    let source = Scripted::default();
    source.set(r1, &[]);
    let balancer = attach_rds_replica_balancer(
        RdsConnection::builder()
            .writer(cluster.writer_url("balancer_reopen"))
            .sqlx_logging(false),
        source.options(),
    )
    .await
    .unwrap();
    let db = balancer.connection();
    balancer.sync_now().await.unwrap();
    assert_eq!(writer_of(&db, cluster).await, r1);
    balancer.destroy().await;
    assert_eq!(writer_of(&db, cluster).await, primary);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn connect_syncs_before_it_returns_and_then_follows_the_cluster(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let [r1, r2] = [cluster.replicas()[0], cluster.replicas()[1]];
    let rds = RdsEmulator::start().unwrap();
    rds.create_cluster("conn", support::rds::engine(kind))
        .unwrap();
    rds.add_instance("conn", "conn-writer", cluster.writer_port(), Some(0))
        .unwrap();
    rds.add_instance("conn", "conn-reader-1", r1.port(), Some(1))
        .unwrap();
    cluster.create_database("balancer_connect");
    let builder = || {
        RdsConnection::builder()
            .writer(cluster.writer_url("balancer_connect"))
            .endpoint_resolver(support::rds::dial_loopback)
            .sqlx_logging(false)
    };
    let options =
        BalancerOptions::new(source(&rds, "conn").await).poll_interval(Duration::from_millis(100));
    let db = rds_balancer::connect(builder(), options).await.unwrap();
    assert_eq!(db.topology().await.readers().count(), 1);
    for _ in 0..5 {
        assert_eq!(served_by(&db).await, r1.port(), "the first sync is done");
    }
    rds.add_instance("conn", "conn-reader-2", r2.port(), Some(1))
        .unwrap();
    let took = until_read_on(&db, r2.port()).await;
    eprintln!(
        "{kind:?}: connect(): reader added in the API -> first read served (polling every 100 ms): {took:?}"
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);

    // A source that cannot answer: connect fails with the typed error instead of starting blind.
    let options = BalancerOptions::new(source(&rds, "no-such-cluster").await);
    let err = rds_balancer::connect(builder(), options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Topology, "{err}");
}
