//! Host health against real servers, on PostgreSQL and on MariaDB (each test body runs on
//! both): a killed reader is invisible to the callers, a paused reader's long statement is cut
//! short by enhanced failure monitoring, both come back when the server does, and the health
//! snapshot describes every host.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::time::{Duration, Instant};

use rds_balancer::{
    BalancerOptions, BreakerState, ErrorKind, HealthState, HostRole, Instance,
    RdsConnectionBuilder, Topology, TopologyChange,
};
use sea_orm::{ConnectionTrait, DbErr};
use support::health::{
    Readers, fast_builder, host_of, name_of, state_of, until, until_served_by, until_state,
};
use support::{
    Cluster, Kind, backend_tests, port_in, served_by, setup_in, sleep_call, slow_port_sql, stmt,
    wait_running,
};

backend_tests!(
    a_killed_reader_is_invisible_to_callers_and_comes_back_when_restarted,
    a_paused_reader_mid_query_is_cut_short_then_rejoins_when_resumed,
    the_health_snapshot_describes_every_host,
    a_reader_down_at_start_is_known_and_takes_reads_once_it_answers,
    a_reader_killed_under_steady_reads_costs_no_read_over_a_second,
    a_reader_killed_while_idle_costs_its_next_read_under_a_second,
);

/// [`fast_builder`] for `cluster`'s database `db`: writer = primary, readers = every replica.
fn fast_cluster_builder(cluster: &Cluster, db: &str) -> RdsConnectionBuilder {
    let mut builder = fast_builder(cluster.writer_url(db));
    for url in cluster.reader_urls(db) {
        builder = builder.reader(url);
    }
    builder
}

async fn a_killed_reader_is_invisible_to_callers_and_comes_back_when_restarted(kind: Kind) {
    // This test kills a node: it has a cluster of its own.
    let cluster = Cluster::start(kind, 2);
    cluster.create_database("health_kill");
    let db = fast_cluster_builder(&cluster, "health_kill")
        .build()
        .await
        .unwrap();
    let replicas = cluster.replicas();
    let (victim, survivor) = (replicas[0], replicas[1]);
    let victim_name = name_of(victim.port());

    // Steady reads from four workers, counting what callers see.
    let readers = Readers::start(&db, cluster.port_sql());
    until(&db, "the steady reads to reach both replicas", || {
        readers.served_by(victim.port()) > 0 && readers.served_by(survivor.port()) > 0
    })
    .await;

    let killed = Instant::now();
    victim.kill();
    // Unhealthy, with its breaker open. Looked at in one snapshot: the breaker reads
    // `half_open` once it has been open for `failure_detection_interval` (300 ms) until the next
    // probe (every 200 ms) fails, and a loaded machine may look that late.
    let mut host = None;
    let detected = until(
        &db,
        "the killed reader to be unhealthy, its breaker open",
        || {
            let now = host_of(&db, &victim_name);
            let out = now.state == HealthState::Unhealthy && now.breaker == BreakerState::Open;
            host = Some(now);
            out
        },
    )
    .await;
    let host = host.unwrap();
    eprintln!("killed reader marked unhealthy after {detected:?}: {host:?}");
    assert!(host.last_error.is_some(), "{host:?}");
    // Once it is out, every read goes to the survivor.
    for _ in 0..20 {
        assert_eq!(served_by(&db).await, survivor.port());
    }
    // The steady readers go on meanwhile, served by the survivor.
    let served = readers.served_by(survivor.port());
    until(&db, "the steady reads to go on on the survivor", || {
        readers.served_by(survivor.port()) >= served + 40
    })
    .await;
    let during = killed.elapsed();

    victim.start();
    let back = until_state(&db, &victim_name, HealthState::Healthy).await;
    eprintln!("restarted reader healthy again after {back:?}");
    until_served_by(&db, victim.port()).await;

    let seen = readers.stop().await;
    eprintln!(
        "reads while a reader was killed ({during:?}) and restarted: {} served {:?}, {} failed",
        seen.total(),
        seen.served,
        seen.failed
    );
    assert_eq!(
        seen.failed, 0,
        "callers saw read errors: {:#?}",
        seen.errors
    );
    assert!(seen.total() > 0);
    assert!(seen.by(survivor.port()) > 0, "{:?}", seen.served);
    assert_eq!(
        seen.by(cluster.writer_port()),
        0,
        "a reader was always healthy: no read may reach the writer: {:?}",
        seen.served
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_paused_reader_mid_query_is_cut_short_then_rejoins_when_resumed(kind: Kind) {
    // This test pauses a node: it has a cluster of its own.
    let cluster = Cluster::start(kind, 1);
    cluster.create_database("health_pause");
    // No fallback to the writer: a read cut short has nowhere else to go, so the caller sees the
    // cut itself (with a fallback, the read would run again on the writer and succeed).
    // No periodic probes of healthy hosts either: enhanced failure monitoring alone finds it.
    let db = fast_cluster_builder(&cluster, "health_pause")
        .fallback_to_writer(false)
        .health_check_interval(None)
        .build()
        .await
        .unwrap();
    let reader = cluster.replicas()[0];
    assert_eq!(served_by(&db).await, reader.port());

    let long_read = {
        let db = db.clone();
        let sql = slow_port_sql(kind, "6");
        tokio::spawn(async move {
            let start = Instant::now();
            let outcome = db.query_one_raw(stmt(&db, &sql)).await;
            (outcome, start.elapsed())
        })
    };
    // Paused mid-query: once the replica itself says the statement runs.
    wait_running(&cluster, "health_pause", &sleep_call(kind, "6"), 1).await;
    reader.pause();
    let (outcome, took): (Result<_, DbErr>, Duration) = long_read.await.unwrap();
    let err = match outcome {
        Ok(row) => panic!(
            "the read was not cut short: served by {:?} after {took:?}; {:#?}",
            row.as_ref().and_then(port_in),
            db.health()
        ),
        Err(err) => err,
    };
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::HostUnavailable),
        "{err}"
    );
    // Detection time 1 s + 2 probes of at most 300 ms, 300 ms apart (2.2 s), plus slack for a
    // shared machine; below the 6 s the statement would have run (and forever, paused). The
    // server finishes the abandoned statement once resumed, which shutdown then waits for.
    eprintln!("paused reader: statement cut short after {took:?}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        state_of(&db, &name_of(reader.port())),
        HealthState::Unhealthy
    );
    // No healthy reader, and no fallback: reads are refused at once, not sent to the paused host.
    let err = db
        .query_one_raw(stmt(&db, "SELECT 1 AS one"))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::NoActiveReaders),
        "{err}"
    );

    reader.resume();
    until_state(&db, &name_of(reader.port()), HealthState::Healthy).await;
    until_served_by(&db, reader.port()).await;
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn the_health_snapshot_describes_every_host(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("health_snapshot");
    // Probes may be slow on a loaded machine: generous limits keep every host healthy here.
    let db = fast_cluster_builder(cluster, "health_snapshot")
        .failure_detection_interval(Duration::from_secs(5))
        .degraded_latency(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    for _ in 0..10 {
        served_by(&db).await;
    }
    // Wait for the monitor's first probes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.health().hosts.iter().any(|h| h.latency_ms.is_none()) {
        assert!(Instant::now() < deadline, "{:#?}", db.health());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = db.health();
    let names: Vec<&str> = health.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut expected = vec![name_of(cluster.writer_port())];
    expected.extend(cluster.reader_ports().into_iter().map(name_of));
    assert_eq!(names, expected, "the writer first, then the readers");
    assert_eq!(health.hosts[0].role, HostRole::Writer);
    for host in &health.hosts[1..] {
        assert_eq!(host.role, HostRole::Reader, "{host:?}");
    }
    for host in &health.hosts {
        assert_eq!(host.state, HealthState::Healthy, "{host:?}");
        assert_eq!(host.breaker, BreakerState::Closed);
        assert_eq!(host.consecutive_failures, 0);
        assert_eq!(host.in_flight, 0);
        assert!(host.pool_size >= 1, "{host:?}");
        assert!(host.latency_ms.is_some_and(|ms| ms > 0.0));
    }
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["hosts"][1]["state"], "healthy");
    assert_eq!(json["hosts"][0]["role"], "writer");
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_reader_down_at_start_is_known_and_takes_reads_once_it_answers(kind: Kind) {
    // This test stops a node: it has a cluster of its own.
    let cluster = Cluster::start(kind, 1);
    cluster.create_database("health_down");
    let replica = cluster.replicas()[0];
    replica.stop();

    // Given to the builder: the connection starts, and the reader is in its health, unhealthy.
    let given = fast_cluster_builder(&cluster, "health_down")
        .build()
        .await
        .unwrap();
    let given_name = name_of(replica.port());
    let host = host_of(&given, &given_name);
    assert_eq!(host.state, HealthState::Unhealthy, "{host:?}");
    assert!(host.last_error.is_some(), "{host:?}");

    // Named by a topology: reported as unreachable, in the health, unhealthy; the next sync
    // changes nothing (it is not opened and logged again on every poll).
    let topology = Topology::new(vec![
        Instance::writer("primary").with_endpoint("127.0.0.1", cluster.writer_port()),
        Instance::reader("replica").with_endpoint("127.0.0.1", replica.port()),
    ]);
    let balancer = rds_balancer::attach_rds_replica_balancer(
        fast_builder(cluster.writer_url("health_down")),
        BalancerOptions::new(move || {
            let topology = topology.clone();
            async move { Ok(topology) }
        }),
    )
    .await
    .unwrap();
    let changes = balancer.sync_now().await.unwrap();
    // (The writer it names is the one the connection was built with: adopted.)
    let unreachable: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            TopologyChange::ReaderUnreachable(i) => Some(i.id.as_str()),
            TopologyChange::ReaderAdded(i) => panic!("{} added as reachable: {changes:?}", i.id),
            _ => None,
        })
        .collect();
    assert_eq!(unreachable, ["replica"], "{changes:?}");
    let followed = balancer.connection();
    assert_eq!(state_of(&followed, "replica"), HealthState::Unhealthy);
    assert_eq!(balancer.sync_now().await.unwrap(), vec![]);

    // Meanwhile reads go to the writer; nothing fails.
    for db in [&given, &followed] {
        assert_eq!(served_by(db).await, cluster.writer_port());
    }

    replica.start();
    for (db, name) in [(&given, given_name.as_str()), (&followed, "replica")] {
        let back = until_state(db, name, HealthState::Healthy).await;
        eprintln!("{name}: healthy {back:?} after its server started");
        until_served_by(db, replica.port()).await;
    }
    assert_eq!(balancer.sync_now().await.unwrap(), vec![]);
    balancer.destroy().await;
    for db in [given, followed] {
        assert!(db.shutdown(Duration::from_secs(10)).await.drained);
    }
}

async fn a_reader_killed_under_steady_reads_costs_no_read_over_a_second(kind: Kind) {
    // This test kills a node: it has a cluster of its own.
    let cluster = Cluster::start(kind, 2);
    // Default health settings (probes every 5 s, 3 failures, 30 s to get a connection).
    let db = setup_in(&cluster, "health_stall").await;
    let replicas = cluster.replicas();
    let (victim, survivor) = (replicas[0], replicas[1]);

    let readers = Readers::start(&db, cluster.port_sql());
    until(&db, "both readers to serve reads", || {
        readers.served_by(victim.port()) > 20 && readers.served_by(survivor.port()) > 20
    })
    .await;
    readers.reset_slowest();
    victim.kill();
    let before = readers.served_by(survivor.port());
    until(
        &db,
        "200 more reads on the survivor and the victim out",
        || {
            readers.served_by(survivor.port()) > before + 200
                && state_of(&db, &name_of(victim.port())) == HealthState::Unhealthy
        },
    )
    .await;
    let seen = readers.stop().await;
    eprintln!(
        "a reader killed under steady reads: slowest read {:?}; {} failed of {}",
        seen.slowest,
        seen.failed,
        seen.total()
    );
    assert_eq!(seen.failed, 0, "{:#?}", seen.errors);
    assert!(
        seen.slowest < Duration::from_secs(1),
        "a read stalled {:?}",
        seen.slowest
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_reader_killed_while_idle_costs_its_next_read_under_a_second(kind: Kind) {
    // This test kills a node: it has a cluster of its own.
    let cluster = Cluster::start(kind, 2);
    // Default health settings: the next probe of the monitor is up to 5 s away, and the pool
    // would retry the refused connection silently for its 30 s acquire timeout.
    let db = setup_in(&cluster, "health_idle").await;
    let replicas = cluster.replicas();
    let (victim, survivor) = (replicas[0], replicas[1]);
    // Both readers have served (their pools hold idle connections), then nothing runs.
    until_served_by(&db, victim.port()).await;
    until_served_by(&db, survivor.port()).await;
    victim.kill();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        assert_eq!(served_by(&db).await, survivor.port());
        slowest = slowest.max(start.elapsed());
    }
    eprintln!("a reader killed while idle: slowest of the next 20 reads {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a read stalled {slowest:?}"
    );
    assert_eq!(
        state_of(&db, &name_of(victim.port())),
        HealthState::Unhealthy
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
