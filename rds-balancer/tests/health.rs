//! Host health against real PostgreSQL servers: a killed reader is invisible to the callers, a
//! paused reader's long statement is cut short by enhanced failure monitoring, both come back
//! when the server does, and the health snapshot describes every host.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rds_balancer::{ErrorKind, HealthState, RdsConnection, RdsConnectionBuilder};
use rds_balancer_testkit::PgCluster;
use sea_orm::{ConnectionTrait, DbErr};
use support::{served_by, stmt};

/// A connection to `cluster` (writer = primary, readers = every replica) that notices failures
/// within a second or two.
fn fast_builder(cluster: &PgCluster, db: &str) -> RdsConnectionBuilder {
    let mut builder = RdsConnection::builder()
        .writer(cluster.primary().url(db))
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .health_check_interval(Some(Duration::from_millis(200)))
        .failure_detection_time(Duration::from_secs(1))
        .failure_detection_interval(Duration::from_millis(300))
        .failure_detection_count(2);
    for replica in cluster.replicas() {
        builder = builder.reader(replica.url(db));
    }
    builder
}

/// The state of host `name` in `db`'s health snapshot.
fn state_of(db: &RdsConnection, name: &str) -> HealthState {
    db.health()
        .hosts
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no host {name} in {:?}", db.health()))
        .state
}

/// Waits until host `name` is in `state`; returns how long that took.
async fn until_state(db: &RdsConnection, name: &str, state: HealthState) -> Duration {
    let start = Instant::now();
    while state_of(db, name) != state {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} never became {state:?}: {:#?}",
            db.health()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// `host:port` of a node, as the builder names a reader given by URL.
fn name_of(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[tokio::test]
async fn a_killed_reader_is_invisible_to_callers_and_comes_back_when_restarted() {
    // This test kills a node: it has a cluster of its own.
    let cluster = PgCluster::start(2).unwrap();
    support::create_database(&cluster, "health_kill");
    let db = fast_builder(&cluster, "health_kill").build().await.unwrap();
    let (victim, survivor) = (&cluster.replicas()[0], &cluster.replicas()[1]);

    // Steady reads from four workers, counting what callers see.
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (db, served, failed, stop) = (
                db.clone(),
                Arc::clone(&served),
                Arc::clone(&failed),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match db
                        .query_one_raw(stmt(&db, "SELECT inet_server_port() AS port"))
                        .await
                    {
                        Ok(Some(_)) => served.fetch_add(1, Ordering::Relaxed),
                        other => {
                            eprintln!("a read failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killed = Instant::now();
    victim.kill().unwrap();
    let detected = until_state(&db, &name_of(victim.port()), HealthState::Unhealthy).await;
    eprintln!("killed reader marked unhealthy after {detected:?}");
    let health = db.health();
    let host = health
        .hosts
        .iter()
        .find(|h| h.name == name_of(victim.port()))
        .unwrap();
    assert_eq!(host.breaker, "open", "{host:?}");
    assert!(host.last_error.is_some(), "{host:?}");
    // Once it is out, every read goes to the survivor.
    for _ in 0..20 {
        assert_eq!(served_by(&db).await, survivor.port());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = killed.elapsed();

    victim.start().unwrap();
    let back = until_state(&db, &name_of(victim.port()), HealthState::Healthy).await;
    eprintln!("restarted reader healthy again after {back:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_by(&db).await != victim.port() {
        assert!(
            Instant::now() < deadline,
            "the restarted reader got no reads"
        );
    }

    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "reads while a reader was killed ({during:?}) and restarted: {served} served, {failed} failed"
    );
    assert_eq!(failed, 0, "callers saw read errors");
    assert!(served > 0);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

#[tokio::test]
async fn a_paused_reader_mid_query_is_cut_short_then_rejoins_when_resumed() {
    // This test pauses a node: it has a cluster of its own.
    let cluster = PgCluster::start(1).unwrap();
    support::create_database(&cluster, "health_pause");
    // No fallback to the writer: a read cut short has nowhere else to go, so the caller sees the
    // cut itself (with a fallback, the read would run again on the writer and succeed).
    // No periodic probes of healthy hosts either: enhanced failure monitoring alone finds it.
    let db = fast_builder(&cluster, "health_pause")
        .fallback_to_writer(false)
        .health_check_interval(None)
        .build()
        .await
        .unwrap();
    let reader = &cluster.replicas()[0];
    assert_eq!(served_by(&db).await, reader.port());

    let long_read = {
        let db = db.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let outcome = db
                .query_one_raw(stmt(
                    &db,
                    "SELECT inet_server_port() AS port FROM pg_sleep(6)",
                ))
                .await;
            (outcome, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    reader.pause().unwrap();
    let (outcome, took): (Result<_, DbErr>, Duration) = long_read.await.unwrap();
    let err = match outcome {
        Ok(row) => panic!(
            "the read was not cut short: served by {:?} after {took:?}; {:#?}",
            row.map(|r| r.try_get::<i32>("", "port")),
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

    reader.resume().unwrap();
    until_state(&db, &name_of(reader.port()), HealthState::Healthy).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_by(&db).await != reader.port() {
        assert!(Instant::now() < deadline, "the resumed reader got no reads");
    }
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

#[tokio::test]
async fn the_health_snapshot_describes_every_host() {
    let cluster = support::cluster();
    support::create_database(cluster, "health_snapshot");
    // Probes may be slow on a loaded machine: generous limits keep every host healthy here.
    let db = fast_builder(cluster, "health_snapshot")
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
    let mut expected = vec![name_of(cluster.primary().port())];
    expected.extend(cluster.replicas().iter().map(|r| name_of(r.port())));
    assert_eq!(names, expected, "the writer first, then the readers");
    assert_eq!(health.hosts[0].role, "writer");
    for host in &health.hosts {
        assert_eq!(host.state, HealthState::Healthy, "{host:?}");
        assert_eq!(host.breaker, "closed");
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
