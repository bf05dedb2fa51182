//! Writer failover gap: the time from the new writer accepting writes (and the cluster view
//! reporting it) to the first successful write through an `RdsConnection`, with a
//! `ClusterViewSource` polled every 50 ms during the failover. Target: under 1 s.
//!
//! Each run starts a fresh local cluster (a primary and one replica: a promotion consumes a
//! node), stands in for Aurora's `aurora_replica_status()` with a PL/pgSQL function reading
//! rows from a table, connects through `rds_balancer::connect` and writes without pause from
//! one task. Then the primary is killed, the replica promoted, and right after the promotion
//! returns the rows are changed on the new primary so that the view names it as writer: the
//! return of that update is T0, the moment a real Aurora view would report the new writer. T1 is the end of
//! the first successful write on the new writer. Per run it prints T1 - T0 (the gap), kill ->
//! T1, and the writes that failed, by kind (only `FailoverCompleted` is expected, and few);
//! then the median and maximum gap and whether the target holds (informative only: a shared
//! machine is noisy). It exits non-zero when a run did not resume writes within 30 s of T0.
//!
//! Run with `cargo bench -p rds-balancer --bench failover`; the number of runs (default 5) is
//! the first argument (`cargo bench -p rds-balancer --bench failover -- 10`) or
//! `FAILOVER_BENCH_RUNS`; the view's query timeout (default 500 ms) is
//! `FAILOVER_BENCH_VIEW_TIMEOUT_MS`; `FAILOVER_BENCH_VERBOSE=1` also prints each run's timeline
//! (every write and view fetch around the failover).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    BalancerOptions, ClusterViewSource, ErrorKind, RdsConnection, TopologyChange, TopologySource,
};
use rds_balancer_testkit::{AURORA_REPLICA_STATUS_STUB, PgCluster};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

const DEFAULT_RUNS: usize = 5;
const TARGET: Duration = Duration::from_secs(1);
/// How long after T0 writes must have resumed for the run to count as a success.
const RESUME_LIMIT: Duration = Duration::from_secs(30);
/// Writes made after the first one on the new writer, to see that they stay there.
const WRITES_AFTER: usize = 20;
const DB: &str = "failover_bench";
const WRITE_SQL: &str = "INSERT INTO ticks DEFAULT VALUES RETURNING inet_server_port() AS port";

/// The table the writes go to (the cluster view's stand-in is the test kit's).
const SCHEMA: &str = "
CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
";

/// The server id of the node on `port`: the host pattern `?` makes it the host name, which
/// [`dial`] maps back to 127.0.0.1 and the port.
fn server_id(port: u16) -> String {
    format!("n{port}")
}

/// The endpoint resolver: `n<port>` is dialled at 127.0.0.1:<port>.
fn dial(host: &str, port: u16) -> (String, u16) {
    match host.strip_prefix('n').and_then(|p| p.parse().ok()) {
        Some(port) => ("127.0.0.1".to_owned(), port),
        None => (host.to_owned(), port),
    }
}

/// SQL that makes the view report `writer` as the writer and `readers` as its readers.
fn view_rows(writer: u16, readers: &[u16]) -> String {
    let mut rows = vec![format!(
        "('{}', 'MASTER_SESSION_ID', NULL, now())",
        server_id(writer)
    )];
    for (i, reader) in readers.iter().enumerate() {
        rows.push(format!(
            "('{}', 'c0ffee00-0000-0000-0000-{:012}', 1, now())",
            server_id(*reader),
            i + 1
        ));
    }
    format!(
        "BEGIN; DELETE FROM replica_status_rows; \
         INSERT INTO replica_status_rows \
         (server_id, session_id, replica_lag_in_msec, last_update_timestamp) VALUES {}; COMMIT;",
        rows.join(", ")
    )
}

/// What one write through the balancer ended as.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// Served by the server on this port.
    On(u16),
    /// Failed with this rds-balancer kind.
    Failed(ErrorKind),
    /// Failed with an error that is not rds-balancer's (a raw driver error): its text.
    Raw(String),
}

async fn write(db: &RdsConnection) -> Write {
    let stmt = Statement::from_string(db.get_database_backend(), WRITE_SQL);
    match db.query_one_raw(stmt).await {
        Ok(Some(row)) => match row.try_get::<i32>("", "port") {
            Ok(port) => Write::On(u16::try_from(port).unwrap_or(0)),
            Err(err) => Write::Raw(format!("bad row: {err}")),
        },
        Ok(None) => Write::Raw("no row returned".to_owned()),
        Err(err) => match ErrorKind::of(&err) {
            Some(kind) => Write::Failed(kind),
            None => Write::Raw(err.to_string()),
        },
    }
}

async fn plain_connection(url: String) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .max_connections(2)
        .connect_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(1));
    Database::connect(options).await.expect("connect")
}

/// One fetch of the cluster view by the balancer.
#[derive(Debug, Clone)]
struct Fetch {
    start: Instant,
    end: Instant,
    /// The writer it named, if it answered.
    writer: Option<String>,
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    /// T1 - T0.
    gap: Option<Duration>,
    /// Kill -> T1.
    kill_to_write: Option<Duration>,
    /// Kill -> promotion returned.
    promotion: Duration,
    /// T0 -> the balancer applied the new writer.
    applied: Option<Duration>,
    failed: Vec<Write>,
    /// The first write the old writer did not take; kill -> sent, kill -> returned.
    cut: Option<(Write, Duration, Duration)>,
    /// Fetches of the view that started between the kill and T1: how many, mean and longest.
    fetches: (usize, Duration, Duration),
    /// T0 -> the end of the first fetch that named the new writer.
    view_named: Option<Duration>,
    /// Writes after T1 that did not go to the new writer.
    strays: Vec<Write>,
}

async fn run(index: usize) -> Run {
    let cluster = Arc::new(PgCluster::start(1).expect("cluster"));
    cluster.create_database(DB).expect("create database");
    let (old, new) = (cluster.primary().port(), cluster.replicas()[0].port());
    cluster
        .psql(
            DB,
            &format!(
                "{AURORA_REPLICA_STATUS_STUB}{SCHEMA}{}",
                view_rows(old, &[new])
            ),
        )
        .expect("schema");
    cluster
        .wait_replicated(Duration::from_secs(30))
        .expect("replicated");

    // The view is asked on the primary first, then on the replica: it still answers once the
    // primary is dead, and after the promotion it is the new primary.
    let source = ClusterViewSource::builder(plain_connection(cluster.primary().url(DB)).await)
        .host_pattern("?")
        .query_timeout(view_timeout())
        .fallback_connection(plain_connection(cluster.replicas()[0].url(DB)).await)
        .build()
        .expect("source");
    // Every fetch of the view, timed, with the writer it named.
    let fetches: Arc<Mutex<Vec<Fetch>>> = Arc::default();
    let timed = {
        let fetches = Arc::clone(&fetches);
        move || {
            let (source, fetches) = (source.clone(), Arc::clone(&fetches));
            async move {
                let start = Instant::now();
                let topology = source.fetch().await;
                fetches.lock().unwrap().push(Fetch {
                    start,
                    end: Instant::now(),
                    writer: topology
                        .as_ref()
                        .ok()
                        .and_then(|t| t.writer().map(|w| w.id.clone())),
                });
                topology
            }
        }
    };
    let new_id = server_id(new);
    let writer_applied: Arc<Mutex<Option<Instant>>> = Arc::default();
    let on_change = {
        let writer_applied = Arc::clone(&writer_applied);
        move |changes: &[TopologyChange]| {
            if changes
                .iter()
                .any(|c| matches!(c, TopologyChange::WriterChanged(w) if w.id == new_id))
            {
                writer_applied
                    .lock()
                    .unwrap()
                    .get_or_insert_with(Instant::now);
            }
        }
    };
    let db = rds_balancer::connect(
        RdsConnection::builder()
            .writer(cluster.primary().url(DB))
            .endpoint_resolver(dial)
            .sqlx_logging(false)
            .acquire_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
            .health_check_interval(Some(Duration::from_millis(100)))
            .failure_detection_time(Duration::from_secs(1))
            .failure_detection_interval(Duration::from_millis(200))
            .failure_detection_count(2),
        BalancerOptions::new(timed)
            .failover_poll_interval(Duration::from_millis(50))
            .failover_timeout(Duration::from_secs(60))
            .on_topology_change(on_change),
    )
    .await
    .expect("connect");
    assert_eq!(write(&db).await, Write::On(old), "first write");

    // One task writing without pause; every outcome recorded with when it was sent and when it
    // returned.
    let log: Arc<Mutex<Vec<(Instant, Instant, Write)>>> = Arc::default();
    let mut writer = {
        let (db, log) = (db.clone(), Arc::clone(&log));
        tokio::spawn(async move {
            let mut after = None;
            while after.is_none_or(|n| n < WRITES_AFTER) {
                let sent = Instant::now();
                let outcome = write(&db).await;
                if outcome == Write::On(new) || after.is_some() {
                    after = Some(after.map_or(0, |n| n + 1));
                }
                log.lock().unwrap().push((sent, Instant::now(), outcome));
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Kill, promote, and have the view report the new writer, off the runtime's threads.
    let (killed, promoted, reported) = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            cluster
                .wait_replicated(Duration::from_secs(30))
                .expect("replicated");
            let killed = Instant::now();
            cluster.primary().kill().expect("kill");
            cluster.promote(0).expect("promote");
            let promoted = Instant::now();
            cluster.psql(DB, &view_rows(new, &[])).expect("view rows");
            (killed, promoted, Instant::now())
        })
        .await
        .expect("failover")
    };
    let resumed =
        tokio::time::timeout(RESUME_LIMIT.saturating_sub(reported.elapsed()), &mut writer).await;
    if resumed.is_err() {
        writer.abort();
        println!("run {index}: writes did not resume within {RESUME_LIMIT:?} of T0");
    }

    let log = log.lock().unwrap().clone();
    // The first write the old writer did not take (the kill takes effect a few ms after it
    // begins): how it ended, and when it was sent and returned.
    let cut = log
        .iter()
        .find(|(_, done, w)| *done >= killed && *w != Write::On(old))
        .map(|(sent, done, w)| {
            let since = |at: Instant| at.saturating_duration_since(killed);
            (w.clone(), since(*sent), since(*done))
        });
    if std::env::var_os("FAILOVER_BENCH_VERBOSE").is_some() {
        let moments = Moments {
            killed,
            promoted,
            reported,
        };
        print_timeline(index, &log, &fetches.lock().unwrap(), &moments, new);
    }
    let log: Vec<(Instant, Write)> = log.into_iter().map(|(_, done, w)| (done, w)).collect();
    let first_new = log
        .iter()
        .find(|(_, w)| *w == Write::On(new))
        .map(|(at, _)| *at);
    let failed: Vec<Write> = log
        .iter()
        .filter(|(_, w)| !matches!(w, Write::On(_)))
        .map(|(_, w)| w.clone())
        .collect();
    let strays = log
        .iter()
        .skip_while(|(_, w)| *w != Write::On(new))
        .filter(|(_, w)| *w != Write::On(new))
        .map(|(_, w)| w.clone())
        .collect();
    let applied = *writer_applied.lock().unwrap();
    let fetches = fetches.lock().unwrap().clone();
    let window: Vec<Duration> = fetches
        .iter()
        .filter(|f| f.start >= killed && first_new.is_none_or(|t1| f.start <= t1))
        .map(|f| f.end - f.start)
        .collect();
    let view_named = fetches
        .iter()
        .find(|f| f.writer.as_deref() == Some(server_id(new).as_str()))
        .map(|f| f.end.saturating_duration_since(reported));
    let report = db.shutdown(Duration::from_secs(5)).await;
    if !report.drained {
        println!("run {index}: shutdown did not drain: {report:?}");
    }
    Run {
        gap: first_new.map(|t1| t1.saturating_duration_since(reported)),
        kill_to_write: first_new.map(|t1| t1 - killed),
        promotion: promoted - killed,
        applied: applied.map(|at| at.saturating_duration_since(reported)),
        failed,
        cut,
        fetches: (
            window.len(),
            window
                .iter()
                .sum::<Duration>()
                .checked_div(u32::try_from(window.len()).unwrap_or(u32::MAX))
                .unwrap_or_default(),
            window.iter().max().copied().unwrap_or_default(),
        ),
        view_named,
        strays,
    }
}

/// When the failover's steps happened.
#[derive(Debug, Clone, Copy)]
struct Moments {
    /// The kill began.
    killed: Instant,
    /// The promotion returned.
    promoted: Instant,
    /// T0: the view names the new writer.
    reported: Instant,
}

/// Prints every write from the kill to the first on the new writer (port `new`) and every
/// fetch of the view since the kill, relative to the kill.
fn print_timeline(
    index: usize,
    log: &[(Instant, Instant, Write)],
    fetches: &[Fetch],
    m: &Moments,
    new: u16,
) {
    let ms = |at: Instant| {
        let (after, before) = (
            at.saturating_duration_since(m.killed),
            m.killed.saturating_duration_since(at),
        );
        after.as_secs_f64() * 1e3 - before.as_secs_f64() * 1e3
    };
    for (sent, done, w) in log.iter().filter(|(_, done, _)| {
        *done + Duration::from_millis(2) >= m.killed && *done <= m.reported + RESUME_LIMIT
    }) {
        println!(
            "run {index}:   write sent kill{:+.3}ms, returned kill{:+.3}ms: {w:?}",
            ms(*sent),
            ms(*done)
        );
        if matches!(w, Write::On(port) if *port == new) {
            break;
        }
    }
    for f in fetches.iter().filter(|f| f.end >= m.killed) {
        println!(
            "run {index}:   view fetch kill{:+.3}ms .. kill{:+.3}ms: writer {:?}",
            ms(f.start),
            ms(f.end),
            f.writer
        );
    }
    println!(
        "run {index}:   promoted kill{:+.3}ms, reported (T0) kill{:+.3}ms",
        ms(m.promoted),
        ms(m.reported)
    );
}

fn show(value: Option<Duration>) -> String {
    value.map_or_else(|| "-".to_owned(), |d| format!("{d:.3?}"))
}

fn describe(write: &Write) -> String {
    match write {
        Write::On(port) => format!("ok on port {port}"),
        Write::Failed(kind) => format!("{kind:?}"),
        Write::Raw(text) => format!("raw error: {text}"),
    }
}

fn describe_failures(failed: &[Write]) -> String {
    if failed.is_empty() {
        return "none".to_owned();
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for write in failed {
        *kinds.entry(describe(write)).or_default() += 1;
    }
    kinds
        .iter()
        .map(|(name, n)| format!("{name} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cluster view's query timeout: `FAILOVER_BENCH_VIEW_TIMEOUT_MS`, else 500 ms. While the
/// primary is dead, each fetch spends up to this long on its first connection (sqlx's pool
/// retries a refused connection until its acquire timeout, 1 s here) before the fallback.
fn view_timeout() -> Duration {
    std::env::var("FAILOVER_BENCH_VIEW_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_millis(500), Duration::from_millis)
}

fn runs() -> usize {
    let from_args = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok());
    let from_env = || {
        std::env::var("FAILOVER_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
    };
    from_args.or_else(from_env).unwrap_or(DEFAULT_RUNS).max(1)
}

#[tokio::main]
async fn main() {
    let runs = runs();
    println!(
        "writer failover gap: {runs} runs, cluster view polled every 50 ms during failover \
         (query timeout {:?}, source pools' acquire timeout 1s), target < {TARGET:?}",
        view_timeout()
    );
    let mut gaps = Vec::new();
    let mut stuck = 0;
    for index in 1..=runs {
        let run = run(index).await;
        println!(
            "run {index}: gap (T0 view reports new writer -> T1 first write on it) {} | \
             kill -> T1 {} | kill -> promoted {:.3?} | \
             view fetches kill -> T1: {} (mean {:.3?}, max {:.3?}) | \
             T0 -> a fetch names the new writer {} | T0 -> writer applied {} | \
             failed writes {} ({}) | first write the old writer did not take: {} | \
             after T1, writes elsewhere: {}",
            show(run.gap),
            show(run.kill_to_write),
            run.promotion,
            run.fetches.0,
            run.fetches.1,
            run.fetches.2,
            show(run.view_named),
            show(run.applied),
            run.failed.len(),
            describe_failures(&run.failed),
            run.cut.as_ref().map_or_else(
                || "none".to_owned(),
                |(w, sent, done)| format!(
                    "{} (sent kill + {sent:.1?}, returned kill + {done:.1?})",
                    describe(w)
                ),
            ),
            run.strays.len(),
        );
        match run.gap {
            Some(gap) if gap <= RESUME_LIMIT => gaps.push(gap),
            _ => stuck += 1,
        }
    }
    gaps.sort();
    if let (Some(median), Some(max)) = (gaps.get(gaps.len() / 2), gaps.last()) {
        println!(
            "summary: {} of {runs} runs resumed writes; gap median {median:.3?}, max {max:.3?}; \
             target < {TARGET:?}: {}",
            gaps.len(),
            if *max < TARGET { "met" } else { "NOT met" },
        );
    }
    if stuck > 0 {
        println!("FAILED: {stuck} of {runs} runs did not resume writes within {RESUME_LIMIT:?}");
        std::process::exit(1);
    }
}
