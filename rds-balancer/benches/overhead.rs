//! Routing overhead: the same work through an `RdsConnection` and through a plain SeaORM
//! `DatabaseConnection` holding the very pool the `RdsConnection` routes it to, interleaved in one
//! process against a real local cluster (a primary and one replica). Two variants, one after the
//! other:
//!
//! - select: one read-only SELECT, routed to the replica;
//! - transaction: `begin()`, one UPDATE (unprepared), `commit()`, routed to the writer.
//!
//! For each it prints the median latency of each side, the ratio of the medians and the median
//! of the paired ratios (routed latency / plain latency of two runs back to back), and the
//! throughput ratio the acceptance criterion "routed/plain >= 0.97" reads: routed throughput /
//! plain throughput = plain latency / routed latency, as 1 / the median of the paired ratios.
//!
//! Run with `cargo bench -p rds-balancer --bench overhead`. `OVERHEAD_ROUNDS=N` runs N rounds of
//! each variant instead of the defaults (5000 selects, 3000 transactions), e.g. `N=200` for a
//! quick check; the warm-ups stay as they are.
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
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement, TransactionSession,
    TransactionTrait,
};

const ROUNDS: usize = 5_000;
const TRANSACTION_ROUNDS: usize = 3_000;
const ROUNDS_VAR: &str = "OVERHEAD_ROUNDS";
const SQL: &str = r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."id" = 1 LIMIT 1"#;
const UPDATE: &str = "UPDATE cake SET name = 'b' WHERE id = 1";
/// The acceptance criterion: routed throughput at least 97 % of plain.
const MIN_THROUGHPUT: f64 = 0.97;

/// What one round runs on each side.
#[derive(Clone, Copy)]
enum Work {
    /// [`SQL`], one statement.
    Select,
    /// `BEGIN`, [`UPDATE`], `COMMIT`.
    Transaction,
}

/// Rounds to run: `$OVERHEAD_ROUNDS` when set, else `default`.
fn rounds(default: usize) -> usize {
    match env::var(ROUNDS_VAR) {
        Err(VarError::NotPresent) => default,
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("{ROUNDS_VAR}={value:?}: expected a positive number of rounds"),
        },
        Err(error) => panic!("{ROUNDS_VAR}: {error}"),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times one round of `work` on `db`. Written against SeaORM's traits only (`begin()` hands out
/// whatever `TransactionTrait::Transaction` the connection has), so it holds for any transaction
/// type `RdsConnection` may return.
async fn once<C>(db: &C, work: Work) -> Duration
where
    C: ConnectionTrait + TransactionTrait,
{
    match work {
        Work::Select => {
            let stmt = Statement::from_string(db.get_database_backend(), SQL);
            let start = Instant::now();
            db.query_one_raw(stmt).await.expect("query");
            start.elapsed()
        }
        Work::Transaction => {
            let start = Instant::now();
            let txn = db.begin().await.expect("begin");
            txn.execute_unprepared(UPDATE).await.expect("update");
            txn.commit().await.expect("commit");
            start.elapsed()
        }
    }
}

/// Warms both sides up with `warm_up` rounds, then runs `rounds` pairs; returns the plain and
/// the routed latencies, pair by pair.
async fn compare(
    plain: &DatabaseConnection,
    routed: &RdsConnection,
    work: Work,
    warm_up: usize,
    rounds: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    // Warm both pools and the servers' plan caches.
    for _ in 0..warm_up {
        once(plain, work).await;
        once(routed, work).await;
    }
    let (mut direct, mut through) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        if round % 2 == 0 {
            direct.push(once(plain, work).await);
            through.push(once(routed, work).await);
        } else {
            through.push(once(routed, work).await);
            direct.push(once(plain, work).await);
        }
    }
    (direct, through)
}

/// Prints the medians (per `unit`), the latency ratios and the throughput ratio.
fn report(direct: Vec<Duration>, through: Vec<Duration>, unit: &str) {
    // Each pair ran back to back: its ratio is free of the machine's drift over the run.
    let mut paired: Vec<f64> = direct
        .iter()
        .zip(&through)
        .map(|(d, t)| t.as_secs_f64() / d.as_secs_f64())
        .collect();
    paired.sort_by(f64::total_cmp);
    let paired = paired[paired.len() / 2];
    let throughput = 1.0 / paired;
    let verdict = if throughput >= MIN_THROUGHPUT {
        "met"
    } else {
        "NOT met"
    };
    let (direct, through) = (median(direct), median(through));
    println!("plain DatabaseConnection: median {direct:?} per {unit}");
    println!("RdsConnection (routed):   median {through:?} per {unit}");
    println!(
        "ratio routed/plain:       {:.3}",
        through.as_secs_f64() / direct.as_secs_f64()
    );
    println!("median of paired ratios:  {paired:.3}");
    println!(
        "throughput routed/plain:  {throughput:.3} (plain latency / routed latency, \
         = 1 / median of paired latency ratios; criterion >= {MIN_THROUGHPUT}: {verdict})"
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (select_rounds, transaction_rounds) = (rounds(ROUNDS), rounds(TRANSACTION_ROUNDS));
    let cluster = PgCluster::start(1).expect("cluster");
    cluster
        .psql(
            "postgres",
            "CREATE TABLE cake (id int PRIMARY KEY, name text); INSERT INTO cake VALUES (1, 'a')",
        )
        .expect("schema");
    cluster
        .wait_replicated(Duration::from_secs(30))
        .expect("replicated");

    let connect = |url: String| {
        let mut options = ConnectOptions::new(url);
        // One connection per pool: both sides use the very same server session, so which
        // backend process (and CPU) a side happens to get does not tilt the ratio from run to
        // run.
        options
            .sqlx_logging(false)
            .max_connections(1)
            .min_connections(1);
        Database::connect(options)
    };
    let plain = connect(cluster.replicas()[0].url("postgres"))
        .await
        .expect("connect");
    let plain_writer = connect(cluster.primary().url("postgres"))
        .await
        .expect("connect");
    let routed = RdsConnection::builder()
        // The very pools `plain` and `plain_writer` use: each pair differs only by the routing
        // layer, not by which server connections they happen to hold.
        .writer_connection(plain_writer.clone())
        .reader_connection(plain.clone())
        .sqlx_logging(false)
        // The routing layer's own cost: a window, as before position mode became the default
        // (which adds a background query for the writer's position after writes, at most one
        // per 5 ms, on the very connection the plain side uses).
        .read_your_writes(ReadYourWrites::window(Duration::from_secs(1)))
        .build()
        .await
        .expect("connect");

    // The selects first: after a write, read-your-writes would send them to the writer.
    let (direct, through) = compare(&plain, &routed, Work::Select, 500, select_rounds).await;
    report(direct, through, "statement");

    println!();
    println!("transaction (begin, UPDATE, commit) on the writer, {transaction_rounds} rounds:");
    let (direct, through) = compare(
        &plain_writer,
        &routed,
        Work::Transaction,
        200,
        transaction_rounds,
    )
    .await;
    report(direct, through, "transaction");
}
