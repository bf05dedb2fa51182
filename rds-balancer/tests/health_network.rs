//! Host health under network faults, with real servers behind a [`FaultProxy`], on PostgreSQL
//! and on MariaDB (each test body runs on both; the proxy is plain TCP): a reader cut off
//! mid-query (a partition) has its statement cut short by enhanced failure monitoring, dropped
//! connections and refused connections stay invisible to callers (reads go to the other
//! reader), a slow link makes a reader `Degraded`, and every reader comes back when the network
//! does. The shared clusters' nodes are never stopped or paused here.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_balancer::{BreakerState, ErrorKind, HealthState, RdsConnectionBuilder};
use rds_balancer_testkit::FaultProxy;
use sea_orm::{ConnectionTrait, DbErr};
use support::health::{
    POLL, Readers, ReadsSeen, blocking, fast_builder, host_of, name_of, until, until_served_by,
    until_state,
};
use support::{
    Cluster, Kind, Node, backend_tests, port_in, running_on, served_by, sleep_call, slow_port_sql,
    stmt,
};

backend_tests!(
    #[multi_thread]
    a_partitioned_reader_mid_query_is_cut_short_then_rejoins_when_restored,
    #[multi_thread]
    reset_connections_of_a_reader_are_invisible_to_callers,
    #[multi_thread]
    a_slow_link_makes_a_reader_degraded_until_it_is_fast_again,
    #[multi_thread]
    a_reader_refusing_connections_is_invisible_to_callers_and_comes_back,
);

/// A proxy in front of `node`, and the URL of database `db` through it (as the tests' user).
fn proxy_in_front_of(node: Node<'_>, db: &str) -> (Arc<FaultProxy>, String) {
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], node.port()))).unwrap();
    let direct = node.url(db);
    let (at, proxied) = (
        format!("127.0.0.1:{}/", node.port()),
        format!("127.0.0.1:{}/", proxy.port()),
    );
    assert!(direct.contains(&at), "{direct}");
    (Arc::new(proxy), direct.replacen(&at, &proxied, 1))
}

/// A connection to database `db` of `cluster` (writer = primary, no readers yet) that notices
/// failures within a second or two.
fn fast_network_builder(cluster: &Cluster, db: &str) -> RdsConnectionBuilder {
    fast_builder(cluster.writer_url(db)).failure_detection_interval(Duration::from_secs(1))
}

/// A read that lasts long enough (20 ms on the server) for a fault to catch some in flight.
fn slow_read(kind: Kind) -> String {
    slow_port_sql(kind, "0.02")
}

async fn a_partitioned_reader_mid_query_is_cut_short_then_rejoins_when_restored(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db_name = "hn_partition";
    cluster.create_database(db_name);
    let replica = cluster.replicas()[0];
    let (proxy, url) = proxy_in_front_of(replica, db_name);
    let name = name_of(proxy.port());
    let detection_time = Duration::from_secs(1);
    // One reader, no fallback to the writer: a read cut short has nowhere else to go, so the
    // caller sees the cut itself. No periodic probes of healthy hosts: enhanced failure
    // monitoring alone finds the partition (unhealthy hosts are still probed, to come back).
    let db = fast_network_builder(cluster, db_name)
        .reader(url)
        .fallback_to_writer(false)
        .health_check_interval(None)
        .failure_detection_time(detection_time)
        .failure_detection_interval(Duration::from_millis(300))
        .failure_detection_count(2)
        .build()
        .await
        .unwrap();
    assert_eq!(served_by(&db).await, replica.port());

    let long_read = {
        let db = db.clone();
        let sql = slow_port_sql(kind, "4");
        tokio::spawn(async move {
            let start = Instant::now();
            let outcome = db.query_one_raw(stmt(&db, &sql)).await;
            (outcome, start.elapsed())
        })
    };
    let started = Instant::now();
    // Mid-query: the replica itself says the statement is running.
    let needle = sleep_call(kind, "4");
    loop {
        let seen = {
            let needle = needle.clone();
            blocking(move || running_on(replica, db_name, &needle)).await
        };
        if seen == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the long read never ran on the replica: {seen} running; {:#?}",
            db.health()
        );
        tokio::time::sleep(POLL).await;
    }
    proxy.blackhole();
    let blackholed_at = started.elapsed();
    assert!(
        blackholed_at < detection_time,
        "the partition came too late ({blackholed_at:?}) to test the detection"
    );

    let (outcome, took): (Result<_, DbErr>, Duration) = long_read.await.unwrap();
    let err = match outcome {
        Ok(row) => panic!(
            "the read was not cut short: served by {:?} after {took:?}; {:#?}",
            row.as_ref().and_then(port_in),
            db.health()
        ),
        Err(err) => err,
    };
    eprintln!(
        "partitioned reader (blackholed {blackholed_at:?} into the statement): statement cut \
         short after {took:?}: {err}"
    );
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::HostUnavailable),
        "{err}"
    );
    // Detection time 1 s + 2 probes of at most 300 ms, 300 ms apart (about 2.2 s), plus slack
    // for a shared machine; well below the 4 s the statement would have run (and forever, had
    // the partition lasted).
    assert!(took >= detection_time, "{took:?}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
    let host = host_of(&db, &name);
    assert_eq!(host.state, HealthState::Unhealthy, "{host:?}");
    assert_ne!(host.breaker, BreakerState::Closed, "{host:?}");
    assert!(host.consecutive_failures >= 2, "{host:?}");
    assert!(host.last_error.is_some(), "{host:?}");
    // Out of scheduling, and no fallback: reads are refused at once, not sent into the partition.
    let err = db
        .query_one_raw(stmt(&db, "SELECT 1 AS one"))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::NoActiveReaders),
        "{err}"
    );

    proxy.restore();
    let back = until_state(&db, &name, HealthState::Healthy).await;
    let host = host_of(&db, &name);
    assert_eq!(host.breaker, BreakerState::Closed, "{host:?}");
    assert_eq!(host.consecutive_failures, 0, "{host:?}");
    let reads = until_served_by(&db, replica.port()).await;
    eprintln!("restored reader healthy again after {back:?}, took a read {reads:?} later");

    // The abandoned `pg_sleep(4)` / `SLEEP(4)` ends by itself on the server; shutdown waits for its
    // connection and closes the pools.
    let report = db.shutdown(Duration::from_secs(10)).await;
    eprintln!("partition test: shutdown {report:?}");
    assert!(report.drained, "{report:?}");
    assert_eq!(report.abandoned, 0, "{report:?}");
}

async fn reset_connections_of_a_reader_are_invisible_to_callers(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db_name = "hn_reset";
    cluster.create_database(db_name);
    let replicas = cluster.replicas();
    let (proxied, direct) = (replicas[0], replicas[1]);
    let (proxy, url) = proxy_in_front_of(proxied, db_name);
    // No fallback to the writer: a broken read can only be answered by the other reader.
    let db = fast_network_builder(cluster, db_name)
        .reader(url)
        .reader(direct.url(db_name))
        .fallback_to_writer(false)
        .build()
        .await
        .unwrap();

    let readers = Readers::start(&db, slow_read(kind));
    let name = name_of(proxy.port());
    let started = Instant::now();
    let mut caught = 0;
    for round in 0..3 {
        // The proxied reader takes reads on connections through the proxy, some in flight...
        let before = readers.served_by(proxied.port());
        until(&db, "the proxied reader to take reads", || {
            readers.served_by(proxied.port()) >= before + 10
                && proxy.connections() > 0
                && host_of(&db, &name).in_flight > 0
        })
        .await;
        // ...and every connection drops at once, under the reads in flight.
        let in_flight = host_of(&db, &name).in_flight;
        let dropped = proxy.connections();
        eprintln!("reset round {round} at {:?}", readers.origin.elapsed());
        {
            let proxy = Arc::clone(&proxy);
            blocking(move || proxy.reset_all()).await;
        }
        let reset_at = Instant::now();
        caught += in_flight;
        let after = host_of(&db, &name);
        let before = readers.served_by(proxied.port());
        let back = until(&db, "the proxied reader to take reads again", || {
            readers.served_by(proxied.port()) > before
        })
        .await;
        eprintln!(
            "reset round {round}: {dropped} connections dropped under {in_flight} reads in \
             flight; host then {:?} (failures {}, breaker {}); reads back on it after {:?} \
             (polled {back:?})",
            after.state,
            after.consecutive_failures,
            after.breaker,
            reset_at.elapsed()
        );
    }
    let during = started.elapsed();
    let ReadsSeen {
        served,
        failed,
        errors,
        ..
    } = readers.stop().await;
    let total: usize = served.values().sum();
    eprintln!(
        "3 resets over {during:?}, {caught} reads in flight on the reset connections: {total} \
         reads served {served:?}, {failed} failed"
    );
    assert!(caught >= 3, "every reset caught reads in flight");
    assert_eq!(failed, 0, "callers saw read errors: {errors:#?}");
    assert!(total > 0);
    assert!(
        served.get(&direct.port()).is_some_and(|&n| n > 0),
        "{served:?}"
    );
    assert!(
        served.get(&proxied.port()).is_some_and(|&n| n > 0),
        "{served:?}"
    );
    assert_eq!(
        served.get(&cluster.primary().port()),
        None,
        "no read may reach the writer: {served:?}"
    );
    let report = db.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
}

async fn a_slow_link_makes_a_reader_degraded_until_it_is_fast_again(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db_name = "hn_latency";
    cluster.create_database(db_name);
    let replicas = cluster.replicas();
    let (proxied, direct) = (replicas[0], replicas[1]);
    let (proxy, url) = proxy_in_front_of(proxied, db_name);
    let name = name_of(proxy.port());
    let degraded_latency = Duration::from_millis(100);
    // Probes may take 2 s (the probe timeout is the failure detection interval): a slow probe
    // is slow, not failed.
    let db = fast_network_builder(cluster, db_name)
        .reader(url)
        .reader(direct.url(db_name))
        .health_check_interval(Some(Duration::from_millis(100)))
        .degraded_latency(degraded_latency)
        .failure_detection_interval(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    until(&db, "a first fast probe of the proxied reader", || {
        let host = host_of(&db, &name);
        host.state == HealthState::Healthy && host.latency_ms.is_some()
    })
    .await;

    // Each chunk is held 150 ms each way: a probe's round trip takes 300 ms or more.
    proxy.set_latency(Duration::from_millis(150));
    let degraded = until_state(&db, &name, HealthState::Degraded).await;
    let host = host_of(&db, &name);
    eprintln!("slow reader degraded after {degraded:?}: {host:?}");
    assert_eq!(host.breaker, BreakerState::Closed, "{host:?}");
    assert_eq!(host.consecutive_failures, 0, "{host:?}");
    let slow = host.latency_ms.unwrap();
    assert!(slow > degraded_latency.as_secs_f64() * 1000.0, "{host:?}");
    // The fast reader is untouched.
    assert_eq!(
        host_of(&db, &name_of(direct.port())).state,
        HealthState::Healthy
    );

    proxy.set_latency(Duration::ZERO);
    let healthy = until_state(&db, &name, HealthState::Healthy).await;
    let host = host_of(&db, &name);
    eprintln!("reader healthy again {healthy:?} after its link was fast again: {host:?}");
    assert_eq!(host.breaker, BreakerState::Closed, "{host:?}");
    assert!(
        host.latency_ms
            .is_some_and(|ms| ms <= degraded_latency.as_secs_f64() * 1000.0),
        "{host:?}"
    );
    let report = db.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
}

async fn a_reader_refusing_connections_is_invisible_to_callers_and_comes_back(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db_name = "hn_refuse";
    cluster.create_database(db_name);
    let replicas = cluster.replicas();
    let (proxied, direct) = (replicas[0], replicas[1]);
    let (proxy, url) = proxy_in_front_of(proxied, db_name);
    let name = name_of(proxy.port());
    let db = fast_network_builder(cluster, db_name)
        .reader(url)
        .reader(direct.url(db_name))
        .fallback_to_writer(false)
        .build()
        .await
        .unwrap();

    let readers = Readers::start(&db, slow_read(kind));
    until(
        &db,
        "the proxied reader to take reads, some in flight",
        || readers.served_by(proxied.port()) >= 20 && host_of(&db, &name).in_flight > 0,
    )
    .await;

    // The host goes down as seen from here: its connections die, new ones are turned away.
    let down = Instant::now();
    eprintln!("refusing and resetting at {:?}", readers.origin.elapsed());
    proxy.refuse_new(true);
    {
        let proxy = Arc::clone(&proxy);
        blocking(move || proxy.reset_all()).await;
    }
    let unhealthy = until_state(&db, &name, HealthState::Unhealthy).await;
    let host = host_of(&db, &name);
    eprintln!(
        "refusing reader unhealthy {unhealthy:?} after the reset ({:?} after refusing): {host:?}",
        down.elapsed()
    );
    assert_ne!(host.breaker, BreakerState::Closed, "{host:?}");
    assert!(host.last_error.is_some(), "{host:?}");
    // Reads go on, on the other reader.
    let before = readers.served_by(direct.port());
    until(&db, "reads on the other reader while one refuses", || {
        readers.served_by(direct.port()) >= before + 50
    })
    .await;
    assert_eq!(host_of(&db, &name).state, HealthState::Unhealthy);

    proxy.refuse_new(false);
    eprintln!("accepting again at {:?}", readers.origin.elapsed());
    let up = Instant::now();
    let healthy = until_state(&db, &name, HealthState::Healthy).await;
    let before = readers.served_by(proxied.port());
    let reads = until(&db, "the proxied reader to take reads again", || {
        readers.served_by(proxied.port()) > before
    })
    .await;
    eprintln!(
        "reader accepting again: healthy after {healthy:?}, reads after {:?} (+{reads:?})",
        up.elapsed()
    );

    let ReadsSeen {
        served,
        failed,
        errors,
        ..
    } = readers.stop().await;
    let total: usize = served.values().sum();
    eprintln!(
        "reads while a reader refused connections ({:?} in all): {total} served {served:?}, \
         {failed} failed",
        down.elapsed()
    );
    assert_eq!(failed, 0, "callers saw read errors: {errors:#?}");
    assert!(total > 0);
    assert_eq!(
        served.get(&cluster.primary().port()),
        None,
        "no read may reach the writer: {served:?}"
    );
    let report = db.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
}
