//! End to end: the RDS API emulator describes a real local PostgreSQL cluster; `RdsApiSource`
//! reads it and `apply_topology` follows it while reads keep flowing, none failing.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test helpers outside #[test] fns

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rds_balancer::{RdsConnection, TopologySource};
use rds_balancer_testkit::{PgCluster, RdsEmulator};
use support::{served_by, writer_port};

/// Reads in a loop until told to stop; counts successes and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(db: &RdsConnection, workers: usize) -> Load {
        let (stop, ok, failed) = (Arc::default(), Arc::default(), Arc::default());
        let tasks = (0..workers)
            .map(|_| {
                let (db, stop, ok, failed): (
                    RdsConnection,
                    Arc<AtomicBool>,
                    Arc<AtomicUsize>,
                    Arc<AtomicUsize>,
                ) = (
                    db.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&ok),
                    Arc::clone(&failed),
                );
                tokio::spawn(async move {
                    let sql = "SELECT inet_server_port() AS port FROM pg_sleep(0.01)";
                    let stmt =
                        || sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql);
                    while !stop.load(Ordering::Relaxed) {
                        match sea_orm::ConnectionTrait::query_one_raw(&db, stmt()).await {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_added_and_removed_in_the_rds_api_are_followed_with_no_failed_read() {
    // This test needs three replicas, one of them added later: a cluster of its own.
    let cluster = PgCluster::start(3).unwrap();
    support::create_database(&cluster, "app");
    let rds = RdsEmulator::start().unwrap();
    rds.create_cluster("app", "aurora-postgresql").unwrap();
    let [r1, r2, r3] = [
        &cluster.replicas()[0],
        &cluster.replicas()[1],
        &cluster.replicas()[2],
    ];
    rds.add_instance("app", "app-writer", cluster.primary().port(), Some(0))
        .unwrap();
    rds.add_instance("app", "app-reader-1", r1.port(), Some(1))
        .unwrap();
    rds.add_instance("app", "app-reader-2", r2.port(), Some(1))
        .unwrap();

    let source = support::rds::emulator_source(&rds, "app").await;
    let db = RdsConnection::builder()
        .writer(cluster.primary().url("app"))
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

    let load = Load::start(&db, 4);
    load.progress(50).await;
    // A reader appears in the RDS API: it serves reads after the next sync.
    rds.add_instance("app", "app-reader-3", r3.port(), Some(1))
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
        "reader appeared in the API -> first read served: {:?}",
        appeared.elapsed()
    );

    load.progress(50).await;
    // A reader is removed while reads run on it: none fails, and it gets no more reads.
    rds.remove_instance("app-reader-1").unwrap();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    for _ in 0..50 {
        assert_ne!(served_by(&db).await, r1.port());
    }
    load.progress(50).await;
    // A reader that stops being available leaves too, and comes back when it is.
    rds.stop_instance("app-reader-2").unwrap();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    for _ in 0..50 {
        assert_eq!(served_by(&db).await, r3.port());
    }
    rds.start_instance("app-reader-2").unwrap();
    db.apply_topology(&source.fetch().await.unwrap())
        .await
        .unwrap();
    let (ok, failed) = load.finish().await;
    eprintln!("steady load during the changes: {ok} reads, {failed} failed");
    assert_eq!(failed, 0);
    assert!(ok >= 200, "the load ran: {ok}");
    assert_ne!(served_by(&db).await, writer_port(&cluster));
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
