//! End to end: the RDS API emulator describes a real local cluster, PostgreSQL
//! (`aurora-postgresql`) or MariaDB (`aurora-mysql`): each test body runs on both.
//! `RdsApiSource` reads it and `apply_topology` follows it while reads keep flowing, none
//! failing.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test bodies and helpers outside #[test] fns

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rds_balancer::{RdsConnection, TopologySource};
use rds_balancer_testkit::RdsEmulator;
use sea_orm::ConnectionTrait;
use support::{Cluster, Kind, backend_tests, served_by, slow_port_sql, stmt, wait_no_connections};

backend_tests!(
    #[multi_thread]
    readers_added_and_removed_in_the_rds_api_are_followed_with_no_failed_read,
);

/// Reads in a loop until told to stop; counts successes and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` tasks, each reading `sql` in a loop.
    fn start(db: &RdsConnection, sql: &str, workers: usize) -> Load {
        let (stop, ok, failed) = (Arc::default(), Arc::default(), Arc::default());
        let tasks = (0..workers)
            .map(|_| {
                let (db, sql, stop, ok, failed): (
                    RdsConnection,
                    String,
                    Arc<AtomicBool>,
                    Arc<AtomicUsize>,
                    Arc<AtomicUsize>,
                ) = (
                    db.clone(),
                    sql.to_owned(),
                    Arc::clone(&stop),
                    Arc::clone(&ok),
                    Arc::clone(&failed),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match db.query_one_raw(stmt(&db, &sql)).await {
                            Ok(Some(_)) => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Waits until `n` more reads have succeeded, so that each change happens under load.
    async fn progress(&self, n: usize) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ok.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

async fn readers_added_and_removed_in_the_rds_api_are_followed_with_no_failed_read(kind: Kind) {
    // This test needs three replicas, one of them added later: a cluster of its own.
    let cluster = Cluster::start(kind, 3);
    cluster.create_database("app");
    let rds = RdsEmulator::start().unwrap();
    // The emulator describes the whole cluster, then the third replica leaves the API: it
    // appears again later, as a new member.
    let ids = support::rds::describe_cluster(&rds, "app", &cluster);
    let described = rds.describe("app").unwrap();
    assert_eq!(described.engine, support::rds::engine(kind));
    let replicas = cluster.replicas();
    let [r1, r2, r3] = [replicas[0], replicas[1], replicas[2]];
    let [reader_1, reader_2, reader_3] = [&ids[1], &ids[2], &ids[3]];
    rds.remove_instance(reader_3).unwrap();

    let source = support::rds::emulator_source(&rds, "app").await;
    let db = RdsConnection::builder()
        .writer(cluster.writer_url("app"))
        .endpoint_resolver(support::rds::dial_loopback)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        seen.insert(served_by(&db).await);
    }
    assert_eq!(
        seen,
        [r1.port(), r2.port()].into(),
        "the described readers serve reads"
    );

    let load = Load::start(&db, &slow_port_sql(kind, "0.01"), 4);
    load.progress(50).await;
    // A reader appears in the RDS API: it serves reads after the next sync.
    rds.add_instance("app", reader_3, r3.port(), Some(1))
        .unwrap();
    let appeared = Instant::now();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    while served_by(&db).await != r3.port() {
        assert!(
            appeared.elapsed() < Duration::from_secs(10),
            "the new reader got no read"
        );
    }
    eprintln!(
        "{kind:?}: reader appeared in the API -> first read served: {:?}",
        appeared.elapsed()
    );

    load.progress(50).await;
    // A reader is removed while reads run on it: none fails, and it gets no more reads.
    rds.remove_instance(reader_1).unwrap();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    for _ in 0..50 {
        assert_ne!(served_by(&db).await, r1.port());
    }
    // Its pool is closed once its in-flight reads are done: the server sees no session left.
    wait_no_connections(r1, "app").await;
    load.progress(50).await;
    // A reader that stops being available leaves too, and comes back when it is.
    rds.stop_instance(reader_2).unwrap();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    for _ in 0..50 {
        assert_eq!(served_by(&db).await, r3.port());
    }
    rds.start_instance(reader_2).unwrap();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    let (ok, failed) = load.finish().await;
    eprintln!("{kind:?}: steady load during the changes: {ok} reads, {failed} failed");
    assert_eq!(failed, 0);
    assert!(ok >= 200, "the load ran: {ok}");
    cluster.assert_reader(served_by(&db).await);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
