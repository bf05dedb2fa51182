//! What a dead host costs the callers, with default settings (probes every 5 s, 3 failures, a
//! 30 s acquire timeout), on PostgreSQL and on MariaDB:
//!
//! - **read stall**: four tasks read without pause through a connection with two readers; one
//!   reader's server is killed. Per run: the slowest read from the kill until 300 more reads were
//!   served, and the reads that failed. Also the same kill while nothing runs (the reader's pool
//!   holds idle connections to a dead server): the slowest of the next 20 reads.
//! - **write gap**: six tasks write without pause through one writer connection (five wait for
//!   it), a balancer follows a topology the bench flips; the writer is killed (the kill returns
//!   once the server is gone) and the replica promoted. Per run: kill -> first successful write
//!   sent after it (necessarily on the new writer; the promotion is part of the gap), promoted
//!   -> that write, and the writes reported `FailoverCompleted` (only a write that held the
//!   connection may be).
//!
//! Each run starts its own servers. Prints every run, then the median and maximum per figure,
//! against the 1 s goal (informative: a shared machine is noisy). Run with
//! `cargo bench -p rds-balancer --bench host_kill`; the number of runs (default 10) is the first
//! argument or `HOST_KILL_RUNS`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{BalancerOptions, ErrorKind, Instance, RdsConnection, Topology};
use rds_balancer_testkit::{MariaDbCluster, PgCluster};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

const DEFAULT_RUNS: usize = 10;
const GOAL: Duration = Duration::from_secs(1);
const DB: &str = "host_kill";
const REPLICATION: Duration = Duration::from_secs(30);

/// A cluster of either backend, with what the bench needs of it.
enum Cluster {
    Pg(PgCluster),
    My(MariaDbCluster),
}

impl Cluster {
    fn start(backend: DbBackend, replicas: usize) -> Cluster {
        let cluster = match backend {
            DbBackend::Postgres => Cluster::Pg(PgCluster::start(replicas).unwrap()),
            _ => Cluster::My(MariaDbCluster::start(replicas).unwrap()),
        };
        let schema = match &cluster {
            Cluster::Pg(_) => "CREATE TABLE ticks (id bigserial PRIMARY KEY, port int)",
            Cluster::My(_) => "CREATE TABLE ticks (id bigint AUTO_INCREMENT PRIMARY KEY, port int)",
        };
        match &cluster {
            Cluster::Pg(c) => {
                c.create_database(DB).unwrap();
                c.psql(DB, schema).unwrap();
                c.wait_replicated(REPLICATION).unwrap();
            }
            Cluster::My(c) => {
                c.create_database(DB).unwrap();
                c.sql(DB, schema).unwrap();
                c.wait_replicated(REPLICATION).unwrap();
            }
        }
        cluster
    }

    fn ports(&self) -> Vec<u16> {
        match self {
            Cluster::Pg(c) => c.nodes().map(|n| n.port()).collect(),
            Cluster::My(c) => c.nodes().map(|n| n.port()).collect(),
        }
    }

    fn url(&self, index: usize) -> String {
        match self {
            Cluster::Pg(c) => c.nodes().nth(index).unwrap().url(DB),
            Cluster::My(c) => c.nodes().nth(index).unwrap().url(DB),
        }
    }

    fn kill(&self, index: usize) {
        match self {
            Cluster::Pg(c) => c.nodes().nth(index).unwrap().kill().unwrap(),
            Cluster::My(c) => c.nodes().nth(index).unwrap().kill().unwrap(),
        }
    }

    fn promote(&self, replica: usize) {
        match self {
            Cluster::Pg(c) => c.promote(replica).unwrap(),
            Cluster::My(c) => c.promote(replica).unwrap(),
        }
    }

    fn port_sql(&self) -> &'static str {
        match self {
            Cluster::Pg(_) => "SELECT inet_server_port() AS port",
            Cluster::My(_) => "SELECT @@port AS port",
        }
    }

    fn write_sql(&self) -> &'static str {
        match self {
            Cluster::Pg(_) => "INSERT INTO ticks (port) VALUES (inet_server_port())",
            Cluster::My(_) => "INSERT INTO ticks (port) VALUES (@@port)",
        }
    }
}

async fn port_of(db: &RdsConnection, sql: &str) -> Option<u16> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .ok()??;
    // PostgreSQL: int; MariaDB's @@port: an unsigned or signed bigint, depending on version.
    let port = row
        .try_get::<i32>("", "port")
        .map(i64::from)
        .or_else(|_| row.try_get::<i64>("", "port"))
        .or_else(|_| row.try_get::<u64>("", "port").map(|p| p as i64))
        .or_else(|_| row.try_get::<u32>("", "port").map(i64::from))
        .ok()?;
    u16::try_from(port).ok()
}

/// Builds a connection with default settings: writer node 0, readers the others.
async fn default_connection(cluster: &Cluster) -> RdsConnection {
    let mut builder = RdsConnection::builder()
        .writer(cluster.url(0))
        .sqlx_logging(false);
    for index in 1..cluster.ports().len() {
        builder = builder.reader(cluster.url(index));
    }
    builder.build().await.unwrap()
}

/// One steady-reads run: (slowest read after the kill, failed reads).
async fn read_stall(backend: DbBackend) -> (Duration, usize) {
    let cluster = Cluster::start(backend, 2);
    let db = default_connection(&cluster).await;
    let ports = cluster.ports();
    let (victim, survivor) = (ports[1], ports[2]);
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let failed = Arc::new(AtomicUsize::new(0));
    let served: Arc<Mutex<std::collections::HashMap<u16, usize>>> = Arc::default();
    let sql = cluster.port_sql();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (db, stop, slowest, failed, served) = (
                db.clone(),
                Arc::clone(&stop),
                Arc::clone(&slowest),
                Arc::clone(&failed),
                Arc::clone(&served),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let port = port_of(&db, sql).await;
                    let took = start.elapsed();
                    let mut slowest = slowest.lock().unwrap();
                    *slowest = (*slowest).max(took);
                    drop(slowest);
                    match port {
                        Some(port) => *served.lock().unwrap().entry(port).or_default() += 1,
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let count = |port| served.lock().unwrap().get(&port).copied().unwrap_or(0);
    while count(victim) < 20 || count(survivor) < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    *slowest.lock().unwrap() = Duration::ZERO;
    let failed_before = failed.load(Ordering::Relaxed);
    cluster.kill(1);
    let before = count(survivor);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(survivor) < before + 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let stall = *slowest.lock().unwrap();
    db.shutdown(Duration::from_secs(10)).await;
    (stall, failed.load(Ordering::Relaxed) - failed_before)
}

/// One idle-kill run: the slowest of the 20 reads after a reader was killed while idle.
async fn idle_stall(backend: DbBackend) -> Duration {
    let cluster = Cluster::start(backend, 2);
    let db = default_connection(&cluster).await;
    let ports = cluster.ports();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        seen.insert(port_of(&db, cluster.port_sql()).await.unwrap());
    }
    cluster.kill(1);
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        let port = port_of(&db, cluster.port_sql()).await;
        assert_eq!(port, Some(ports[2]));
        slowest = slowest.max(start.elapsed());
    }
    db.shutdown(Duration::from_secs(10)).await;
    slowest
}

/// One writer-kill run: (kill -> first write on the new writer, promoted -> first write,
/// writes reported `FailoverCompleted`, other failures).
async fn write_gap(backend: DbBackend) -> (Duration, Duration, usize, usize) {
    let cluster = Cluster::start(backend, 1);
    let ports = cluster.ports();
    let (old, new) = (ports[0], ports[1]);
    let named = move |writer: u16, readers: Vec<u16>| {
        Topology::new(
            std::iter::once(
                Instance::writer(format!("n{writer}")).with_endpoint("127.0.0.1", writer),
            )
            .chain(
                readers
                    .into_iter()
                    .map(|p| Instance::reader(format!("n{p}")).with_endpoint("127.0.0.1", p)),
            )
            .collect(),
        )
    };
    let topology = Arc::new(Mutex::new(named(old, vec![new])));
    let source = {
        let topology = Arc::clone(&topology);
        move || {
            let now = topology.lock().unwrap().clone();
            async move { Ok(now) }
        }
    };
    let db = rds_balancer::connect(
        RdsConnection::builder()
            .writer(cluster.url(0))
            .max_connections(1)
            .sqlx_logging(false),
        BalancerOptions::new(source).poll_interval(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let first_after: Arc<Mutex<Option<Instant>>> = Arc::default();
    let failover_completed = Arc::new(AtomicUsize::new(0));
    let other_failures = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sql = cluster.write_sql();
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let (db, killed_at, first_after, completed, others, stop) = (
                db.clone(),
                Arc::clone(&killed_at),
                Arc::clone(&first_after),
                Arc::clone(&failover_completed),
                Arc::clone(&other_failures),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let outcome = db
                        .execute_raw(Statement::from_string(db.get_database_backend(), sql))
                        .await;
                    match outcome {
                        Ok(_) => {
                            let killed = *killed_at.lock().unwrap();
                            if killed.is_some_and(|k| sent > k) {
                                first_after.lock().unwrap().get_or_insert_with(Instant::now);
                            }
                        }
                        Err(err) if ErrorKind::of(&err) == Some(ErrorKind::FailoverCompleted) => {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            others.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(0);
    // From here on a write can only succeed on the new writer.
    let killed = Instant::now();
    *killed_at.lock().unwrap() = Some(killed);
    cluster.promote(0);
    let promoted = Instant::now();
    *topology.lock().unwrap() = named(new, vec![]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while first_after.lock().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let first = first_after
        .lock()
        .unwrap()
        .expect("writes resumed within a minute");
    db.shutdown(Duration::from_secs(10)).await;
    (
        first - killed,
        first.saturating_duration_since(promoted),
        failover_completed.load(Ordering::Relaxed),
        other_failures.load(Ordering::Relaxed),
    )
}

fn summary(name: &str, mut values: Vec<Duration>) {
    values.sort();
    let median = values[values.len() / 2];
    let max = *values.last().unwrap();
    println!(
        "{name}: median {median:?}, max {max:?} over {} runs; under {GOAL:?} in {} of {}",
        values.len(),
        values.iter().filter(|v| **v < GOAL).count(),
        values.len()
    );
}

fn main() {
    let runs = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("HOST_KILL_RUNS").ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_RUNS);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for (backend, name) in [(DbBackend::Postgres, "PostgreSQL"), (DbBackend::MySql, "MariaDB")] {
            let (mut stalls, mut idles, mut gaps, mut after_promote) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for run in 1..=runs {
                let (stall, failed) = read_stall(backend).await;
                let idle = idle_stall(backend).await;
                let (gap, promoted, completed, others) = write_gap(backend).await;
                println!(
                    "{name} run {run}: read stall {stall:?} ({failed} failed), idle kill {idle:?}, \
                     write gap {gap:?} (promoted -> write {promoted:?}; FailoverCompleted {completed}, \
                     other errors {others})"
                );
                stalls.push(stall);
                idles.push(idle);
                gaps.push(gap);
                after_promote.push(promoted);
            }
            summary(&format!("{name} read stall after a reader kill"), stalls);
            summary(&format!("{name} next read after an idle reader kill"), idles);
            summary(&format!("{name} write gap after a writer kill"), gaps);
            summary(&format!("{name} promoted -> first write"), after_promote);
        }
    });
}
