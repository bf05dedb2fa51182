//! Causal reads: what each read-your-writes policy gives a mixed workload against a real local
//! cluster (a primary and two replicas) whose replicas lag on purpose.
//!
//! [`TASKS`] tokio tasks run at once, each for a fixed number of operations on its own row of
//! `t (id, version)`: a write (one in ten, `UPDATE .. SET version = version + 1 .. RETURNING
//! version`: the task knows the version it last wrote) or a read of its row with the port of the
//! server that ran it. A read is *stale* when it returns a version lower than the task last
//! wrote. The grid: replica lag 0 / 50 / 500 ms (`recovery_min_apply_delay` on both replicas)
//! × `ReadYourWrites::off()`, `window(1 s)` and `position()` (its default `max_wait`). Per cell:
//! the reads, the share of the reads after the task's first write that replicas served, the
//! stale reads, the *late* reads (asked lag + `max_wait` or more after the task's last write:
//! every replica has that write by then) and the share of them replicas served, the median and
//! 99th percentile read latency (waiting for a replica included), the writes and the cell's wall
//! time. Each cell has its own connection and starts from reset rows, replicated.
//!
//! Then the cost of position mode to a read-only workload: two connections to the same cluster,
//! position and off, run single reads in pairs back to back (a task that has not written pays
//! nothing in position mode); it prints the medians and the throughput ratio position/off
//! (= 1 / the median of the paired latency ratios) against the acceptance line 0.97.
//!
//! Run with `cargo bench -p rds-balancer --bench causal`. Environment:
//! - `CAUSAL_OPS`: operations per task and cell (default 800; e.g. 50 for a quick check);
//! - `CAUSAL_TASKS`: tasks running at once (default 32);
//! - `CAUSAL_ROUNDS`: paired reads of the read-only comparison (default 5000).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::env::{self, VarError};
use std::time::{Duration, Instant};

use rds_balancer::{RdsConnection, ReadYourWrites};
use rds_balancer_testkit::PgCluster;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

const TASKS: usize = 32;
const REPLICAS: usize = 2;
const OPS: usize = 800;
const ROUNDS: usize = 5_000;
/// The share of operations that write.
const WRITE_SHARE: f64 = 0.1;
const LAGS_MS: [u64; 3] = [0, 50, 500];
const DB: &str = "causal";
const WRITE: &str = "UPDATE t SET version = version + 1 WHERE id = $1 RETURNING version";
const READ: &str = "SELECT version, inet_server_port() AS port FROM t WHERE id = $1";
const HEADER: &str = "lag|policy|reads|replica %|stale|late rep.|late|p50|p99|writes|time";
const REPLICATION: Duration = Duration::from_secs(60);
/// The acceptance line of the read-only comparison: position throughput at least 97 % of off.
const MIN_THROUGHPUT: f64 = 0.97;

/// `$name` when set, else `default`.
fn setting(name: &str, default: usize) -> usize {
    match env::var(name) {
        Err(VarError::NotPresent) => default,
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={value:?}: expected a positive number"),
        },
        Err(error) => panic!("{name}: {error}"),
    }
}

/// A small deterministic generator (SplitMix64): each task draws the same sequence of reads
/// and writes in every cell.
struct SplitMix(u64);

impl SplitMix {
    fn chance(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the tasks of one cell observed.
#[derive(Default)]
struct Tally {
    /// Every read's latency.
    latencies: Vec<Duration>,
    /// Reads after the task's first write, and those a replica served.
    after_write: usize,
    on_replica: usize,
    stale: usize,
    writes: usize,
    /// Reads at least `late` after the task's last write (the replica has it by then), and
    /// those a replica served.
    late: usize,
    late_on_replica: usize,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.after_write += other.after_write;
        self.on_replica += other.on_replica;
        self.stale += other.stale;
        self.writes += other.writes;
        self.late += other.late;
        self.late_on_replica += other.late_on_replica;
    }
}

fn stmt(sql: &str, id: i32) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, [id.into()])
}

/// One read of row `id`: its version, the port of the server that ran it, and the latency.
async fn read(db: &RdsConnection, id: i32) -> (i32, u16, Duration) {
    let start = Instant::now();
    let row = db
        .query_one_raw(stmt(READ, id))
        .await
        .expect("read")
        .expect("row");
    let took = start.elapsed();
    let port: i32 = row.try_get("", "port").unwrap();
    (
        row.try_get("", "version").unwrap(),
        u16::try_from(port).unwrap(),
        took,
    )
}

/// One task's `ops` operations on row `id`; a read `late` or more after its last write counts
/// as late.
async fn task(db: RdsConnection, id: i32, ops: usize, primary: u16, late: Duration) -> Tally {
    let mut draw = SplitMix(u64::try_from(id).unwrap() + 1);
    let mut tally = Tally::default();
    let (mut written, mut wrote_at) = (None, Instant::now());
    for _ in 0..ops {
        if draw.chance() < WRITE_SHARE {
            let row = db
                .query_one_raw(stmt(WRITE, id))
                .await
                .expect("write")
                .expect("row");
            written = Some(row.try_get::<i32>("", "version").unwrap());
            wrote_at = Instant::now();
            tally.writes += 1;
            continue;
        }
        let asked = wrote_at.elapsed();
        let (version, port, took) = read(&db, id).await;
        tally.latencies.push(took);
        if let Some(written) = written {
            tally.after_write += 1;
            tally.on_replica += usize::from(port != primary);
            tally.stale += usize::from(version < written);
            if asked >= late {
                tally.late += 1;
                tally.late_on_replica += usize::from(port != primary);
            }
        }
    }
    tally
}

/// Runs `tasks` tasks of `ops` operations each through `db`, at once.
async fn workload(
    db: &RdsConnection,
    tasks: usize,
    ops: usize,
    primary: u16,
    late: Duration,
) -> Tally {
    let handles: Vec<_> = (0..tasks)
        .map(|id| {
            let id = i32::try_from(id).unwrap();
            tokio::spawn(task(db.clone(), id, ops, primary, late))
        })
        .collect();
    let mut tally = Tally::default();
    for handle in handles {
        tally.merge(handle.await.expect("task"));
    }
    tally
}

/// A connection to [`DB`] on `cluster` with `policy`, a pool per server of `pool` connections.
async fn connect(cluster: &PgCluster, policy: ReadYourWrites, pool: usize) -> RdsConnection {
    let mut builder = RdsConnection::builder()
        .writer(cluster.primary().url(DB))
        .read_your_writes(policy)
        .max_connections(u32::try_from(pool).unwrap())
        .sqlx_logging(false);
    for replica in cluster.replicas() {
        builder = builder.reader(replica.url(DB));
    }
    builder.build().await.expect("connect")
}

/// Resets every row to version 0 and waits until both replicas have it.
fn reset(cluster: &PgCluster) {
    cluster.psql(DB, "UPDATE t SET version = 0").expect("reset");
    cluster.wait_replicated(REPLICATION).expect("replicated");
}

/// The sample at quantile `q` of sorted `samples`.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let at = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[at]
}

/// `d` in µs below a millisecond, else in ms.
fn human(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// One line of the table: the lag and policy left-aligned, the figures right-aligned.
fn row(cells: &[String]) {
    const WIDTHS: [usize; 11] = [6, 10, 6, 9, 6, 9, 6, 9, 9, 6, 7];
    let line: Vec<String> = cells
        .iter()
        .zip(WIDTHS)
        .enumerate()
        .map(|(i, (cell, width))| match i {
            1 => format!("{cell:<width$}"),
            _ => format!("{cell:>width$}"),
        })
        .collect();
    println!("{}", line.join(" | "));
}

fn policy_name(policy: ReadYourWrites) -> &'static str {
    if policy == ReadYourWrites::off() {
        "off"
    } else if policy.max_wait_time().is_some() {
        "position"
    } else {
        "window(1s)"
    }
}

/// One cell: replicas `lag` behind, `policy`; prints its row of the table.
async fn cell(
    cluster: &PgCluster,
    lag: Duration,
    policy: ReadYourWrites,
    tasks: usize,
    ops: usize,
) {
    reset(cluster);
    let delays: Vec<_> = if lag.is_zero() {
        Vec::new()
    } else {
        (0..cluster.replicas().len())
            .map(|i| cluster.set_apply_delay(i, lag).expect("apply delay"))
            .collect()
    };
    let primary = cluster.primary().port();
    let late = lag + ReadYourWrites::position().max_wait_time().unwrap();
    let db = connect(cluster, policy, tasks).await;
    // Opens the pools' connections and warms the servers' caches; its tallies are dropped.
    workload(&db, tasks, 20, primary, late).await;
    let start = Instant::now();
    let mut tally = workload(&db, tasks, ops, primary, late).await;
    let wall = start.elapsed();
    db.shutdown(Duration::from_secs(10)).await;
    drop(delays);

    tally.latencies.sort();
    let percent = |part: usize, of: usize| {
        if of == 0 {
            "-".to_owned()
        } else {
            format!("{:.1} %", 100.0 * part as f64 / of as f64)
        }
    };
    row(&[
        format!("{} ms", lag.as_millis()),
        policy_name(policy).to_owned(),
        tally.latencies.len().to_string(),
        percent(tally.on_replica, tally.after_write),
        tally.stale.to_string(),
        percent(tally.late_on_replica, tally.late),
        tally.late.to_string(),
        human(quantile(&tally.latencies, 0.5)),
        human(quantile(&tally.latencies, 0.99)),
        tally.writes.to_string(),
        format!("{:.1} s", wall.as_secs_f64()),
    ]);
}

/// Paired single reads through `position` and `off` (alternating which goes first) by a task
/// that never writes; prints the medians and the throughput ratio.
async fn read_only(position: &RdsConnection, off: &RdsConnection, rounds: usize) {
    for _ in 0..500 {
        read(position, 0).await;
        read(off, 0).await;
    }
    let (mut with, mut without) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        if round % 2 == 0 {
            with.push(read(position, 0).await.2);
            without.push(read(off, 0).await.2);
        } else {
            without.push(read(off, 0).await.2);
            with.push(read(position, 0).await.2);
        }
    }
    // Each pair ran back to back: its ratio is free of the machine's drift over the run.
    let mut paired: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(w, o)| w.as_secs_f64() / o.as_secs_f64())
        .collect();
    paired.sort_by(f64::total_cmp);
    let throughput = 1.0 / paired[paired.len() / 2];
    let verdict = if throughput >= MIN_THROUGHPUT {
        "met"
    } else {
        "NOT met"
    };
    with.sort();
    without.sort();
    println!("read-only, {rounds} paired single reads by a task that never writes:");
    println!("  off:      median {:?}", quantile(&without, 0.5));
    println!("  position: median {:?}", quantile(&with, 0.5));
    println!(
        "  throughput position/off: {throughput:.3} (= 1 / median of paired latency ratios; \
         criterion >= {MIN_THROUGHPUT}: {verdict})"
    );
}

#[tokio::main]
async fn main() {
    let (tasks, ops, rounds) = (
        setting("CAUSAL_TASKS", TASKS),
        setting("CAUSAL_OPS", OPS),
        setting("CAUSAL_ROUNDS", ROUNDS),
    );
    let began = Instant::now();
    let cluster = PgCluster::start(REPLICAS).expect("cluster");
    cluster.create_database(DB).expect("database");
    cluster
        .psql(
            DB,
            &format!(
                "CREATE TABLE t (id int PRIMARY KEY, version int NOT NULL); \
                 INSERT INTO t SELECT g, 0 FROM generate_series(0, {}) g",
                tasks - 1
            ),
        )
        .expect("schema");
    reset(&cluster);

    let position = ReadYourWrites::position();
    let max_wait = position.max_wait_time().expect("position mode");
    println!(
        "{tasks} tasks x {ops} operations ({:.0} % writes) per cell, {REPLICAS} replicas; \
         position max_wait {max_wait:?}",
        WRITE_SHARE * 100.0
    );
    println!(
        "replica %: share of the reads after the task's first write that a replica served \
         (criterion for position at lag 0: >= 95 %)"
    );
    println!(
        "late: reads asked lag + max_wait or more after the task's last write (every replica \
         has the write by then); late rep.: their replica %"
    );
    row(&HEADER.split('|').map(str::to_owned).collect::<Vec<_>>());
    for lag in LAGS_MS.map(Duration::from_millis) {
        for policy in [
            ReadYourWrites::off(),
            ReadYourWrites::window(Duration::from_secs(1)),
            position,
        ] {
            cell(&cluster, lag, policy, tasks, ops).await;
        }
    }

    println!();
    reset(&cluster);
    let (with, without) = (
        connect(&cluster, position, 4).await,
        connect(&cluster, ReadYourWrites::off(), 4).await,
    );
    read_only(&with, &without, rounds).await;
    for db in [with, without] {
        db.shutdown(Duration::from_secs(10)).await;
    }
    println!();
    println!("total {:.0} s", began.elapsed().as_secs_f64());
}
