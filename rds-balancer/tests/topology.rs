//! Following a topology (`RdsConnection::apply_topology`) against a real cluster, on PostgreSQL
//! and on MariaDB (each test body runs on both): readers join and leave while statements run,
//! and none is lost.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::collections::HashSet;
use std::time::Duration;

use rds_balancer::{Instance, RdsConnection, Topology, TopologyChange};
use sea_orm::ConnectionTrait;
use support::{
    Cluster, Kind, Node, backend_tests, connections_on, port_of, running_on, served_by, sleep_call,
    slow_port_sql, stmt,
};

backend_tests!(
    readers_added_to_the_topology_take_reads_at_once,
    a_removed_reader_finishes_its_in_flight_query_and_then_closes,
    unavailable_and_unreachable_readers_get_no_traffic,
    writes_follow_a_new_writer,
    excluded_instances_and_other_tiers_get_no_reads,
    keep_existing_write_host_ignores_the_topologys_writer,
    the_builders_writer_is_adopted_when_the_topology_names_it,
);

fn writer(node: Node<'_>) -> Instance {
    node.as_writer()
}

fn reader(node: Node<'_>) -> Instance {
    node.as_reader()
}

/// A fresh database `db` and a connection to it that knows only the writer. Read-your-writes is
/// off: these tests are about where the topology sends reads, also right after a write.
async fn writer_only(cluster: &Cluster, db: &str) -> RdsConnection {
    cluster.create_database(db);
    RdsConnection::builder()
        .writer(cluster.writer_url(db))
        .connect_timeout(Duration::from_secs(2))
        .read_your_writes(Duration::ZERO)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap()
}

async fn readers_added_to_the_topology_take_reads_at_once(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let replicas = cluster.replicas();
    let [r1, r2] = [replicas[0], replicas[1]];
    let db = writer_only(cluster, "topology_add").await;
    assert_eq!(served_by(&db).await, cluster.writer_port(), "no reader yet");

    let changes = db
        .apply_topology(&Topology::new(vec![writer(cluster.primary()), reader(r1)]))
        .await
        .unwrap();
    assert!(
        changes.contains(&TopologyChange::ReaderAdded(reader(r1))),
        "{changes:?}"
    );
    assert_eq!(served_by(&db).await, r1.port(), "the very next read");

    let changes = db
        .apply_topology(&Topology::new(vec![
            writer(cluster.primary()),
            reader(r1),
            reader(r2),
        ]))
        .await
        .unwrap();
    assert_eq!(changes, [TopologyChange::ReaderAdded(reader(r2))]);
    let mut seen = HashSet::new();
    for _ in 0..100 {
        seen.insert(served_by(&db).await);
    }
    assert_eq!(seen, HashSet::from([r1.port(), r2.port()]));
    // Writes still go to the writer; applying the same topology again changes nothing.
    let write = cluster.side_effect_port_sql();
    assert_eq!(port_of(&db, write).await, cluster.writer_port());
    let again = Topology::new(vec![writer(cluster.primary()), reader(r1), reader(r2)]);
    assert!(db.apply_topology(&again).await.unwrap().is_empty());
}

async fn a_removed_reader_finishes_its_in_flight_query_and_then_closes(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let replicas = cluster.replicas();
    let [r1, r2] = [replicas[0], replicas[1]];
    let db = writer_only(cluster, "topology_remove").await;
    db.apply_topology(&Topology::new(vec![writer(cluster.primary()), reader(r1)]))
        .await
        .unwrap();

    let slow = {
        let db = db.clone();
        tokio::spawn(async move { port_of(&db, &slow_port_sql(kind, "2.5")).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while running_on(r1, "topology_remove", &sleep_call(kind, "2.5")) != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow query never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // replica-1 leaves the cluster, replica-2 joins.
    let changes = db
        .apply_topology(&Topology::new(vec![writer(cluster.primary()), reader(r2)]))
        .await
        .unwrap();
    assert!(changes.contains(&TopologyChange::ReaderRemoved(r1.name().to_owned())));
    assert!(changes.contains(&TopologyChange::ReaderAdded(reader(r2))));
    // New reads go to replica-2 at once, while replica-1 still runs the slow query.
    for _ in 0..10 {
        assert_eq!(served_by(&db).await, r2.port());
    }
    assert_eq!(
        running_on(r1, "topology_remove", &sleep_call(kind, "2.5")),
        1,
        "the slow query still runs on the removed reader"
    );
    assert!(connections_on(r1, "topology_remove") >= 1);
    // The in-flight query on the removed reader completes, successfully, where it started...
    assert_eq!(slow.await.unwrap(), r1.port());
    // ...and then replica-1's pool is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while connections_on(r1, "topology_remove") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica-1's pool was not closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(db.shutdown(Duration::from_secs(5)).await.drained);
}

async fn unavailable_and_unreachable_readers_get_no_traffic(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let replicas = cluster.replicas();
    let [r1, r2] = [replicas[0], replicas[1]];
    let db = writer_only(cluster, "topology_filter").await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ghost = Instance::reader("ghost").with_endpoint("127.0.0.1", closed_port);
    let topology = Topology::new(vec![
        writer(cluster.primary()),
        reader(r1).with_status("stopped"),
        reader(r2),
        Instance::reader("creating").with_status("creating"),
        ghost.clone(),
    ]);
    let changes = db.apply_topology(&topology).await.unwrap();
    assert!(
        changes.contains(&TopologyChange::ReaderAdded(reader(r2))),
        "{changes:?}"
    );
    // Unreachable: reported, and in the health as unhealthy, so that it takes no reads.
    assert!(
        changes.contains(&TopologyChange::ReaderUnreachable(ghost)),
        "{changes:?}"
    );
    let ghost_health = db.health().hosts.into_iter().find(|h| h.name == "ghost");
    assert!(
        ghost_health.is_some_and(|h| h.state == rds_balancer::HealthState::Unhealthy),
        "{:#?}",
        db.health()
    );
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, TopologyChange::ReaderAdded(i) if i.id == r1.name()))
    );
    for _ in 0..20 {
        assert_eq!(served_by(&db).await, r2.port());
    }
    // replica-1 becomes available: it joins; the ghost is gone from the topology: it leaves.
    let topology = Topology::new(vec![writer(cluster.primary()), reader(r1), reader(r2)]);
    assert_eq!(
        db.apply_topology(&topology).await.unwrap(),
        [
            TopologyChange::ReaderRemoved("ghost".into()),
            TopologyChange::ReaderAdded(reader(r1))
        ]
    );
}

async fn writes_follow_a_new_writer(kind: Kind) {
    // This test kills and promotes nodes: it has a cluster of its own.
    let cluster = Cluster::start(kind, 2);
    let db = writer_only(&cluster, "topology_failover").await;
    let (old, new) = (cluster.writer_port(), cluster.replicas()[0].port());
    let write = cluster.side_effect_port_sql();
    let replicas = cluster.replicas();
    db.apply_topology(&Topology::new(vec![
        writer(cluster.primary()),
        reader(replicas[0]),
        reader(replicas[1]),
    ]))
    .await
    .unwrap();
    assert_eq!(port_of(&db, write).await, old);

    // A clean failover: the replicas have everything the old writer had.
    cluster.wait_replicated();
    cluster.primary().kill();
    cluster.promote(0);
    // The cluster now reports replica-1 as its writer and replica-2 as its only reader.
    let changes = db
        .apply_topology(&Topology::new(vec![
            writer(cluster.primary()),
            reader(cluster.replicas()[0]),
        ]))
        .await
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, TopologyChange::WriterChanged(w) if w.port == Some(new))),
        "{changes:?}"
    );
    assert!(
        changes.contains(&TopologyChange::ReaderRemoved("replica-1".into())),
        "{changes:?}"
    );
    assert_eq!(
        port_of(&db, write).await,
        new,
        "writes reach the promoted writer"
    );
    // A real write lands on the promoted writer, stamped with its port.
    db.execute_raw(stmt(
        &db,
        "INSERT INTO cake (name) VALUES ('after failover')",
    ))
    .await
    .unwrap();
    assert_eq!(
        cluster
            .admin("topology_failover", "SELECT served_by FROM cake")
            .trim(),
        new.to_string()
    );
    for _ in 0..10 {
        assert_eq!(served_by(&db).await, cluster.replicas()[0].port());
    }
    let report = db.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
}

async fn excluded_instances_and_other_tiers_get_no_reads(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let replicas = cluster.replicas();
    let [r1, r2] = [replicas[0], replicas[1]];
    cluster.create_database("topology_filters");
    let url = cluster.writer_url("topology_filters");
    let topology = Topology::new(vec![
        writer(cluster.primary()),
        reader(r1).with_promotion_tier(0),
        reader(r2).with_promotion_tier(1),
    ]);

    let by_tier = RdsConnection::builder()
        .writer(url.clone())
        .include_promotion_tiers(1..=15)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    by_tier.apply_topology(&topology).await.unwrap();
    for _ in 0..20 {
        assert_eq!(
            served_by(&by_tier).await,
            r2.port(),
            "tier 0 takes no reads"
        );
    }

    let excluding = RdsConnection::builder()
        .writer(url)
        .exclude_instance_identifiers([r2.name()])
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    excluding.apply_topology(&topology).await.unwrap();
    for _ in 0..20 {
        assert_eq!(served_by(&excluding).await, r1.port(), "excluded: no reads");
    }
    let in_use = excluding.topology().await;
    let readers: Vec<&str> = in_use.readers().map(|r| r.id.as_str()).collect();
    assert_eq!(readers, [r1.name()]);
    assert_eq!(
        in_use.writer().map(|w| w.id.as_str()),
        Some(cluster.primary().name())
    );
}

async fn keep_existing_write_host_ignores_the_topologys_writer(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let replicas = cluster.replicas();
    let [r1, r2] = [replicas[0], replicas[1]];
    cluster.create_database("topology_keep_writer");
    let db = RdsConnection::builder()
        .writer(cluster.writer_url("topology_keep_writer"))
        .keep_existing_write_host(true)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    // A topology naming replica-1 as the writer (as an RDS Proxy user would see after a
    // failover the proxy handles itself): the builder's writer stays.
    let changes = db
        .apply_topology(&Topology::new(vec![writer(r1), reader(r2)]))
        .await
        .unwrap();
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, TopologyChange::WriterChanged(_))),
        "{changes:?}"
    );
    // Read first: after its write, this task's reads would go to the writer for a while.
    assert_eq!(served_by(&db).await, r2.port());
    let write = cluster.side_effect_port_sql();
    assert_eq!(port_of(&db, write).await, cluster.writer_port());
    db.execute_raw(stmt(&db, "INSERT INTO cake (name) VALUES ('kept')"))
        .await
        .unwrap();
    assert_eq!(cluster.count_on_primary("topology_keep_writer"), 1);
}

async fn the_builders_writer_is_adopted_when_the_topology_names_it(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("topology_adopt");
    let db = RdsConnection::builder()
        .writer(cluster.writer_url("topology_adopt"))
        .max_connections(1)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    // One pooled connection: its server-side id identifies the writer pool. The statement has a
    // side effect, so it goes to the writer.
    let sql = match kind {
        Kind::Postgres => "SELECT pg_backend_pid()::bigint AS pid, nextval('ticket')",
        Kind::MySql => "SELECT CAST(CONNECTION_ID() AS SIGNED) AS pid, GET_LOCK('adopt', 0)",
    };
    let pid = || async {
        let row = db.query_one_raw(stmt(&db, sql)).await;
        row.unwrap().unwrap().try_get::<i64>("", "pid").unwrap()
    };
    let before = pid().await;
    let changes = db
        .apply_topology(&Topology::new(vec![
            writer(cluster.primary()),
            reader(cluster.replicas()[0]),
        ]))
        .await
        .unwrap();
    assert!(
        changes.contains(&TopologyChange::WriterChanged(writer(cluster.primary()))),
        "{changes:?}"
    );
    assert_eq!(pid().await, before, "the same pool, not a new one");
    assert_eq!(
        db.topology().await.writer().map(|w| w.id.as_str()),
        Some(cluster.primary().name())
    );
}
