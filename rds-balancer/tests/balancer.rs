//! The balancer controller polling the RDS API emulator, against a real PostgreSQL cluster.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    BalancerOptions, ErrorKind, RdsApiSource, RdsConnection, TopologyChange,
    attach_rds_replica_balancer,
};
use rds_balancer_testkit::RdsEmulator;
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

#[tokio::test]
async fn attaching_needs_a_writer_url() {
    let cluster = cluster();
    support::create_database(cluster, "balancer_conn");
    let conn = sea_orm::Database::connect(cluster.primary().url("balancer_conn"))
        .await
        .unwrap();
    let db = RdsConnection::builder()
        .writer_connection(conn)
        .build()
        .await
        .unwrap();
    let source = || async { Ok(rds_balancer::Topology::default()) };
    let err = attach_rds_replica_balancer(db, BalancerOptions::new(source))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
