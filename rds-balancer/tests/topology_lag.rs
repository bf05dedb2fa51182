//! The replica lag a topology reports ([`Instance::replica_lag`], as `ClusterViewSource` reads it
//! from Aurora's views) feeds `max_replica_lag`, on PostgreSQL and on MariaDB: a reader reported
//! beyond it gets no reads, asked of the servers themselves, until a topology reports it within.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::collections::HashSet;
use std::time::Duration;

use rds_balancer::{HostHealthSnapshot, Instance, RdsConnection, ReadYourWrites, Topology};
use support::{Cluster, Kind, Node, backend_tests, served_by};

backend_tests!(a_reader_reported_beyond_max_replica_lag_gets_no_reads_until_reported_within);

const MAX: Duration = Duration::from_secs(2);

fn writer(node: Node<'_>) -> Instance {
    node.as_writer()
}

/// Reader `node`, reported `lag` behind (`None`: no lag reported).
fn reader(node: Node<'_>, lag: Option<Duration>) -> Instance {
    let instance = node.as_reader();
    match lag {
        Some(lag) => instance.with_replica_lag(lag),
        None => instance,
    }
}

fn health_of(db: &RdsConnection, node: Node<'_>) -> HostHealthSnapshot {
    db.health()
        .hosts
        .into_iter()
        .find(|host| host.name == node.name())
        .unwrap_or_else(|| panic!("{} is not among the hosts", node.name()))
}

/// The ports that served `n` plain reads.
async fn ports(db: &RdsConnection, n: usize) -> HashSet<u16> {
    let mut seen = HashSet::new();
    for _ in 0..n {
        seen.insert(served_by(db).await);
    }
    seen
}

async fn a_reader_reported_beyond_max_replica_lag_gets_no_reads_until_reported_within(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let replicas = cluster.replicas();
    let [r1, r2] = [replicas[0], replicas[1]];
    cluster.create_database("topology_lag");
    // Position mode off: the reported lag counts whatever the read-your-writes policy.
    let db = RdsConnection::builder()
        .writer(cluster.writer_url("topology_lag"))
        .read_your_writes(ReadYourWrites::off())
        .max_replica_lag(MAX)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let five = Some(Duration::from_secs(5));
    let zero = Some(Duration::ZERO);

    // A new reader reported 5 s behind never takes a read; the writer serves them.
    db.apply_topology(&Topology::new(vec![
        writer(cluster.primary()),
        reader(r1, five),
    ]))
    .await
    .unwrap();
    let r1_health = health_of(&db, r1);
    assert!(r1_health.lagging, "{r1_health:?}");
    assert_eq!(r1_health.reported_replica_lag_ms, Some(5000.0));
    assert_eq!(
        ports(&db, 20).await,
        HashSet::from([cluster.writer_port()]),
        "a read went to the reader reported lagging"
    );

    // The next topology reports it caught up, and a second reader 5 s behind: reads go to the
    // first only.
    let changes = db
        .apply_topology(&Topology::new(vec![
            writer(cluster.primary()),
            reader(r1, zero),
            reader(r2, five),
        ]))
        .await
        .unwrap();
    assert_eq!(changes.len(), 1, "only r2 joins: {changes:?}");
    assert!(!health_of(&db, r1).lagging, "{:?}", health_of(&db, r1));
    assert!(health_of(&db, r2).lagging, "{:?}", health_of(&db, r2));
    assert_eq!(ports(&db, 40).await, HashSet::from([r1.port()]));

    // A topology that reports no lag for r2 leaves the decision to the measured lag (r2 is
    // caught up): both readers take reads.
    db.apply_topology(&Topology::new(vec![
        writer(cluster.primary()),
        reader(r1, zero),
        reader(r2, None),
    ]))
    .await
    .unwrap();
    assert_eq!(health_of(&db, r2).reported_replica_lag_ms, None);
    assert!(!health_of(&db, r2).lagging, "{:?}", health_of(&db, r2));
    assert_eq!(ports(&db, 100).await, HashSet::from([r1.port(), r2.port()]));
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
