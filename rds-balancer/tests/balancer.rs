//! The balancer controller polling the RDS API emulator, against a real PostgreSQL cluster.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    BalancerOptions, ErrorKind, Instance, RdsApiSource, RdsConnection, Topology, TopologyChange,
    attach_rds_replica_balancer,
};
use rds_balancer_testkit::RdsEmulator;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use support::{cluster, served_by};

async fn source(rds: &RdsEmulator, cluster_id: &str) -> RdsApiSource {
    support::rds::emulator_source_builder(rds, cluster_id)
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap()
}

async fn connection(db: &str) -> RdsConnection {
    let cluster = cluster();
    support::create_database(cluster, db);
    RdsConnection::builder()
        .writer(cluster.primary().url(db))
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

#[tokio::test]
async fn polling_follows_readers_added_and_removed_without_a_restart() {
    let cluster = cluster();
    let [r1, r2] = [&cluster.replicas()[0], &cluster.replicas()[1]];
    let rds = RdsEmulator::start().unwrap();
    rds.create_cluster("poll", "aurora-postgresql").unwrap();
    rds.add_instance("poll", "poll-writer", cluster.primary().port(), Some(0))
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
    let balancer = attach_rds_replica_balancer(connection("balancer_poll").await, options)
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
    eprintln!("reader added in the API -> first read served (polling every 100 ms): {elapsed:?}");
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

#[tokio::test]
async fn an_unreachable_api_keeps_the_last_topology() {
    let cluster = cluster();
    let r1 = &cluster.replicas()[0];
    let rds = RdsEmulator::start().unwrap();
    rds.create_cluster("gone", "aurora-postgresql").unwrap();
    rds.add_instance("gone", "gone-writer", cluster.primary().port(), Some(0))
        .unwrap();
    rds.add_instance("gone", "gone-reader-1", r1.port(), Some(1))
        .unwrap();
    let options = BalancerOptions::new(source(&rds, "gone").await)
        .poll_interval(Duration::from_millis(100))
        .auto_start(true);
    let balancer = attach_rds_replica_balancer(connection("balancer_gone").await, options)
        .await
        .unwrap();
    let db = balancer.connection();
    assert_eq!(served_by(&db).await, r1.port());

    drop(rds); // the API goes away
    let err = balancer.sync_now().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Topology, "{err}");
    // Polls keep failing; reads keep going to the last known reader.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        assert_eq!(served_by(&db).await, r1.port());
    }
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

/// Connections from `application_name` on the server at `port` (asked directly).
async fn sessions_on(port: u16, db: &str, application_name: &str) -> i64 {
    let url = format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let direct = sea_orm::Database::connect(url).await.unwrap();
    let row = direct
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '{application_name}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    direct.close().await.unwrap();
    row.try_get("", "n").unwrap()
}

/// Reads on the writer: the port of the server a writer-routed statement reached.
async fn writer_of(db: &RdsConnection) -> u16 {
    support::port_of(db, "/*@writer*/ SELECT inet_server_port() AS port").await
}

#[tokio::test]
async fn a_plain_database_connection_follows_the_cluster_and_destroy_gives_it_back() {
    let cluster = cluster();
    let (primary, [r1, r2]) = (
        cluster.primary().port(),
        [cluster.replicas()[0].port(), cluster.replicas()[1].port()],
    );
    support::create_database(cluster, "balancer_plain");
    let app = "rdsb_plain";
    let url = format!(
        "{}?application_name={app}",
        cluster.primary().url("balancer_plain")
    );
    let mine = sea_orm::Database::connect(url).await.unwrap();

    let source = Scripted::default();
    source.set(primary, &[r1]);
    let balancer = attach_rds_replica_balancer(mine.clone(), source.options().auto_start(true))
        .await
        .unwrap();
    let db = balancer.connection();
    for _ in 0..5 {
        assert_eq!(served_by(&db).await, r1, "reads follow the topology");
    }
    assert_eq!(
        writer_of(&db).await,
        primary,
        "the first writer is my pool, adopted"
    );
    assert!(
        sessions_on(r1, "balancer_plain", app).await > 0,
        "the reader pool copies my settings"
    );

    // The writer moves (a failover the source reports): my pool leaves service but stays open.
    source.set(r2, &[r1]);
    balancer.sync_now().await.unwrap();
    assert_eq!(writer_of(&db).await, r2);
    assert_eq!(served_by(&mine).await, primary, "my own pool still works");

    balancer.destroy().await;
    assert!(!balancer.is_polling());
    assert!(db.topology().await.instances.is_empty());
    assert_eq!(writer_of(&db).await, primary, "my writer is back");
    assert_eq!(
        served_by(&db).await,
        primary,
        "no readers left: reads go to the writer"
    );
    assert_eq!(served_by(&mine).await, primary);
    for port in [r1, r2] {
        // The server ends a session just after the client closes it: allow it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while sessions_on(port, "balancer_plain", app).await > 0 {
            assert!(
                Instant::now() < deadline,
                "the pools the balancer opened on {port} are closed"
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

#[tokio::test]
async fn destroy_reopens_a_configured_writer_that_a_topology_replaced() {
    let cluster = cluster();
    let (primary, r1) = (cluster.primary().port(), cluster.replicas()[0].port());
    support::create_database(cluster, "balancer_reopen");
    let source = Scripted::default();
    source.set(r1, &[]);
    let balancer = attach_rds_replica_balancer(
        RdsConnection::builder()
            .writer(cluster.primary().url("balancer_reopen"))
            .sqlx_logging(false),
        source.options(),
    )
    .await
    .unwrap();
    let db = balancer.connection();
    balancer.sync_now().await.unwrap();
    assert_eq!(writer_of(&db).await, r1);
    balancer.destroy().await;
    assert_eq!(writer_of(&db).await, primary);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

#[tokio::test]
async fn connect_syncs_before_it_returns_and_then_follows_the_cluster() {
    let cluster = cluster();
    let [r1, r2] = [&cluster.replicas()[0], &cluster.replicas()[1]];
    let rds = RdsEmulator::start().unwrap();
    rds.create_cluster("conn", "aurora-postgresql").unwrap();
    rds.add_instance("conn", "conn-writer", cluster.primary().port(), Some(0))
        .unwrap();
    rds.add_instance("conn", "conn-reader-1", r1.port(), Some(1))
        .unwrap();
    support::create_database(cluster, "balancer_connect");
    let builder = || {
        RdsConnection::builder()
            .writer(cluster.primary().url("balancer_connect"))
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
        "connect(): reader added in the API -> first read served (polling every 100 ms): {took:?}"
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);

    // A source that cannot answer: connect fails with the typed error instead of starting blind.
    let options = BalancerOptions::new(source(&rds, "no-such-cluster").await);
    let err = rds_balancer::connect(builder(), options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Topology, "{err}");
}
