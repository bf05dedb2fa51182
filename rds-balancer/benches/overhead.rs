//! Routing overhead: the same read-only statement through an `RdsConnection` and through a plain
//! SeaORM `DatabaseConnection` to the same replica, interleaved in one process against a real
//! local cluster. Prints the median latency of each and their ratio.
//!
//! Run with `cargo bench -p rds-balancer --bench overhead`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::{Duration, Instant};

use rds_balancer::RdsConnection;
use rds_balancer_testkit::PgCluster;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

const ROUNDS: usize = 5_000;
const SQL: &str = r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."id" = 1 LIMIT 1"#;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn once(db: &impl ConnectionTrait) -> Duration {
    let stmt = Statement::from_string(db.get_database_backend(), SQL);
    let start = Instant::now();
    db.query_one_raw(stmt).await.expect("query");
    start.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
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
    let replica = cluster.replicas()[0].url("postgres");

    let mut options = ConnectOptions::new(replica);
    options.sqlx_logging(false);
    let plain: DatabaseConnection = Database::connect(options).await.expect("connect");
    let routed = RdsConnection::builder()
        .writer(cluster.primary().url("postgres"))
        // The very pool `plain` uses: the two differ only by the routing layer, not by which
        // server connections they happen to hold.
        .reader_connection(plain.clone())
        .sqlx_logging(false)
        .build()
        .await
        .expect("connect");
    // Warm both pools and the servers' plan caches.
    for _ in 0..500 {
        once(&plain).await;
        once(&routed).await;
    }
    let (mut direct, mut through) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always runs on a warmer machine.
        if round % 2 == 0 {
            direct.push(once(&plain).await);
            through.push(once(&routed).await);
        } else {
            through.push(once(&routed).await);
            direct.push(once(&plain).await);
        }
    }
    // Each pair ran back to back: its ratio is free of the machine's drift over the run.
    let mut paired: Vec<f64> = direct
        .iter()
        .zip(&through)
        .map(|(d, t)| t.as_secs_f64() / d.as_secs_f64())
        .collect();
    paired.sort_by(f64::total_cmp);
    let paired = paired[paired.len() / 2];
    let (direct, through) = (median(direct), median(through));
    println!("plain DatabaseConnection: median {direct:?} per statement");
    println!("RdsConnection (routed):   median {through:?} per statement");
    println!(
        "ratio routed/plain:       {:.3}",
        through.as_secs_f64() / direct.as_secs_f64()
    );
    println!("median of paired ratios:  {paired:.3}");
}
