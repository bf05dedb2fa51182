//! Host health under network faults, with real PostgreSQL servers behind a [`FaultProxy`]: a
//! reader cut off mid-query (a partition) has its statement cut short by enhanced failure
//! monitoring, dropped connections and refused connections stay invisible to callers (reads go
//! to the other reader), a slow link makes a reader `Degraded`, and every reader comes back when
//! the network does. The shared cluster's nodes are never stopped or paused here.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    ErrorKind, HealthState, HostHealthSnapshot, RdsConnection, RdsConnectionBuilder,
};
use rds_balancer_testkit::{FaultProxy, PgNode};
use sea_orm::{ConnectionTrait, DbErr};
use support::{served_by, stmt};
use tokio::task::JoinHandle;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// How often a condition is looked at.
const POLL: Duration = Duration::from_millis(20);

/// A proxy in front of `node`, and the URL of database `db` through it.
fn proxy_in_front_of(node: &PgNode, db: &str) -> (Arc<FaultProxy>, String) {
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], node.port()))).unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port());
    (Arc::new(proxy), url)
}

/// `host:port` of a reader given by URL, as the builder names it.
fn name_of(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// A connection to database `db` of the shared cluster (writer = primary, no readers yet) that
/// notices failures within a second or two.
fn fast_builder(db: &str) -> RdsConnectionBuilder {
    RdsConnection::builder()
        .writer(support::cluster().primary().url(db))
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .health_check_interval(Some(Duration::from_millis(200)))
        .failure_detection_time(Duration::from_secs(1))
        .failure_detection_interval(Duration::from_secs(1))
        .failure_detection_count(2)
}

/// Host `name` in `db`'s health snapshot.
fn host_of(db: &RdsConnection, name: &str) -> HostHealthSnapshot {
    let health = db.health();
    health
        .hosts
        .iter()
        .find(|h| h.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no host {name} in {health:#?}"))
}

/// Waits until `done` holds, failing with `what` and `db`'s health after [`DEADLINE`]; returns
/// how long that took.
async fn until(db: &RdsConnection, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}; {:#?}",
            db.health()
        );
        tokio::time::sleep(POLL).await;
    }
    start.elapsed()
}

/// Waits until host `name` is in `state`; returns how long that took.
async fn until_state(db: &RdsConnection, name: &str, state: HealthState) -> Duration {
    until(db, &format!("{name} to become {state:?}"), || {
        host_of(db, name).state == state
    })
    .await
}

/// Waits until a plain read through `db` is served by `port`; returns how long that took.
async fn until_served_by(db: &RdsConnection, port: u16) -> Duration {
    let start = Instant::now();
    while served_by(db).await != port {
        assert!(
            start.elapsed() < DEADLINE,
            "no read reached port {port} within {DEADLINE:?}; {:#?}",
            db.health()
        );
    }
    start.elapsed()
}

/// Runs a blocking call of the test kit (psql, `reset_all`) off the runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A read that lasts long enough (20 ms on the server) for a fault to catch some in flight.
const SLOW_READ: &str = "SELECT inet_server_port() AS port FROM pg_sleep(0.02)";

/// Four workers reading continuously through one connection, counting what callers see.
struct Readers {
    stop: Arc<AtomicBool>,
    /// Reads served, by the port of the server that answered.
    served: Arc<Mutex<HashMap<u16, usize>>>,
    failed: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    /// When the workers started: the errors say when they happened since.
    origin: Instant,
    workers: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Starts the workers, each running [`SLOW_READ`] in a loop.
    fn start(db: &RdsConnection) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(HashMap::new()));
        let failed = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let workers = (0..4)
            .map(|_| {
                let (db, stop, served, failed, errors) = (
                    db.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&served),
                    Arc::clone(&failed),
                    Arc::clone(&errors),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let outcome = db.query_one_raw(stmt(&db, SLOW_READ)).await;
                        let port = match &outcome {
                            Ok(Some(row)) => row
                                .try_get::<i32>("", "port")
                                .ok()
                                .and_then(|p| u16::try_from(p).ok()),
                            _ => None,
                        };
                        match port {
                            Some(port) => *served.lock().unwrap().entry(port).or_default() += 1,
                            None => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let hosts: Vec<_> = db
                                    .health()
                                    .hosts
                                    .into_iter()
                                    .map(|h| (h.name, h.state, h.breaker, h.consecutive_failures))
                                    .collect();
                                let text = format!(
                                    "{outcome:?} (kind {:?}) at {:?}, after {:?}; hosts then {hosts:?}",
                                    outcome.as_ref().err().and_then(ErrorKind::of),
                                    origin.elapsed(),
                                    sent.elapsed(),
                                );
                                eprintln!("a read failed: {text}");
                                errors.lock().unwrap().push(text);
                            }
                        }
                    }
                })
            })
            .collect();
        Readers {
            stop,
            served,
            failed,
            errors,
            origin,
            workers,
        }
    }

    /// Reads served so far by `port`.
    fn served_by(&self, port: u16) -> usize {
        self.served.lock().unwrap().get(&port).copied().unwrap_or(0)
    }

    /// Stops the workers; returns the reads served by port, and the errors callers saw.
    async fn stop(self) -> (HashMap<u16, usize>, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let served = self.served.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().clone();
        (served, self.failed.load(Ordering::Relaxed), errors)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_reader_mid_query_is_cut_short_then_rejoins_when_restored() {
    let cluster = support::cluster();
    let db_name = "hn_partition";
    support::create_database(cluster, db_name);
    let replica = &cluster.replicas()[0];
    let (proxy, url) = proxy_in_front_of(replica, db_name);
    let name = name_of(proxy.port());
    let detection_time = Duration::from_secs(1);
    // One reader, no fallback to the writer: a read cut short has nowhere else to go, so the
    // caller sees the cut itself. No periodic probes of healthy hosts: enhanced failure
    // monitoring alone finds the partition (unhealthy hosts are still probed, to come back).
    let db = fast_builder(db_name)
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
        tokio::spawn(async move {
            let start = Instant::now();
            let outcome = db
                .query_one_raw(stmt(
                    &db,
                    "SELECT inet_server_port() AS port FROM pg_sleep(4)",
                ))
                .await;
            (outcome, start.elapsed())
        })
    };
    let started = Instant::now();
    // Mid-query: the replica itself says the statement is running.
    let running = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'hn_partition' \
                   AND state = 'active' AND query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()";
    loop {
        let seen =
            blocking(move || replica.psql_with_timeout(db_name, running, Duration::from_secs(5)))
                .await
                .unwrap();
        if seen.trim() == "1" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the long read never ran on the replica: {seen:?}; {:#?}",
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
            row.map(|r| r.try_get::<i32>("", "port")),
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
    assert_ne!(host.breaker, "closed", "{host:?}");
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
    assert_eq!(host.breaker, "closed", "{host:?}");
    assert_eq!(host.consecutive_failures, 0, "{host:?}");
    let reads = until_served_by(&db, replica.port()).await;
    eprintln!("restored reader healthy again after {back:?}, took a read {reads:?} later");

    // The abandoned `pg_sleep(4)` ends by itself on the server; shutdown waits for its
    // connection and closes the pools.
    let report = db.shutdown(Duration::from_secs(10)).await;
    eprintln!("partition test: shutdown {report:?}");
    assert!(report.drained, "{report:?}");
    assert_eq!(report.abandoned, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connections_of_a_reader_are_invisible_to_callers() {
    let cluster = support::cluster();
    let db_name = "hn_reset";
    support::create_database(cluster, db_name);
    let (proxied, direct) = (&cluster.replicas()[0], &cluster.replicas()[1]);
    let (proxy, url) = proxy_in_front_of(proxied, db_name);
    // No fallback to the writer: a broken read can only be answered by the other reader.
    let db = fast_builder(db_name)
        .reader(url)
        .reader(direct.url(db_name))
        .fallback_to_writer(false)
        .build()
        .await
        .unwrap();

    let readers = Readers::start(&db);
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
    let (served, failed, errors) = readers.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_makes_a_reader_degraded_until_it_is_fast_again() {
    let cluster = support::cluster();
    let db_name = "hn_latency";
    support::create_database(cluster, db_name);
    let (proxied, direct) = (&cluster.replicas()[0], &cluster.replicas()[1]);
    let (proxy, url) = proxy_in_front_of(proxied, db_name);
    let name = name_of(proxy.port());
    let degraded_latency = Duration::from_millis(100);
    // Probes may take 2 s (the probe timeout is the failure detection interval): a slow probe
    // is slow, not failed.
    let db = fast_builder(db_name)
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
    assert_eq!(host.breaker, "closed", "{host:?}");
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
    assert_eq!(host.breaker, "closed", "{host:?}");
    assert!(
        host.latency_ms
            .is_some_and(|ms| ms <= degraded_latency.as_secs_f64() * 1000.0),
        "{host:?}"
    );
    let report = db.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_refusing_connections_is_invisible_to_callers_and_comes_back() {
    let cluster = support::cluster();
    let db_name = "hn_refuse";
    support::create_database(cluster, db_name);
    let (proxied, direct) = (&cluster.replicas()[0], &cluster.replicas()[1]);
    let (proxy, url) = proxy_in_front_of(proxied, db_name);
    let name = name_of(proxy.port());
    let db = fast_builder(db_name)
        .reader(url)
        .reader(direct.url(db_name))
        .fallback_to_writer(false)
        .build()
        .await
        .unwrap();

    let readers = Readers::start(&db);
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
    assert_ne!(host.breaker, "closed", "{host:?}");
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

    let (served, failed, errors) = readers.stop().await;
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
