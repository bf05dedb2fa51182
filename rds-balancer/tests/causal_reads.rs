//! Read-your-writes by replication position ([`ReadYourWrites::position`]), against a real
//! primary and a replica made to lag on purpose, on PostgreSQL and on MariaDB. Every read asks
//! the server which host served it and whether it has the task's row.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::time::{Duration, Instant};

use rds_balancer::{Position, RdsConnection, RdsConnectionBuilder, ReadYourWrites, with_position};
use sea_orm::ConnectionTrait;
use support::health::until;
use support::{Cluster, Kind, Writes, backend_tests, port_in, served_by, stmt};

backend_tests!(
    #[multi_thread]
    a_lagging_replica_serves_each_task_its_own_write_only_once_replayed,
    #[multi_thread]
    a_replica_beyond_max_replica_lag_gets_no_reads_until_it_catches_up,
    #[multi_thread]
    a_read_long_after_a_write_goes_to_the_replica_that_has_it_while_others_write
);

/// Tasks writing a row, then reading it back, at once.
const TASKS: usize = 40;

/// What one task's read-back saw: the port of the server that ran it, and whether it had the
/// row.
async fn write_then_read(
    db: RdsConnection,
    cluster_port_expr: &'static str,
    tag: String,
) -> (u16, bool, Duration) {
    db.execute_unprepared(&format!("INSERT INTO cake (name) VALUES ('{tag}')"))
        .await
        .expect("insert");
    let read = format!(
        "SELECT {cluster_port_expr} AS port, (SELECT count(*) FROM cake WHERE name = '{tag}') AS n"
    );
    let asked = Instant::now();
    let row = db
        .query_one_raw(stmt(&db, &read))
        .await
        .expect("read")
        .expect("row");
    (
        port_in(&row).unwrap(),
        row.try_get::<i64>("", "n").unwrap() > 0,
        asked.elapsed(),
    )
}

/// Runs [`TASKS`] tasks of [`write_then_read`] through `db`; their outcomes.
async fn round(db: &RdsConnection, cluster: &Cluster, label: &str) -> Vec<(u16, bool, Duration)> {
    let expr = cluster.port_expr();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| tokio::spawn(write_then_read(db.clone(), expr, format!("{label}-{i}"))))
        .collect();
    let mut outcomes = Vec::with_capacity(TASKS);
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

async fn a_lagging_replica_serves_each_task_its_own_write_only_once_replayed(kind: Kind) {
    // Its own cluster: a lagging replica would hold back other tests' schema changes.
    let cluster = Cluster::start(kind, 1);
    let (writer, replica) = (cluster.writer_port(), cluster.reader_ports()[0]);
    let delay = match kind {
        Kind::Postgres => Duration::from_millis(300),
        // MariaDB's delay is whole seconds.
        Kind::MySql => Duration::from_secs(1),
    };
    cluster.create_database("causal");
    // Waiting up to five times the delay.
    let exact = connect(&cluster, ReadYourWrites::position().max_wait(delay * 5)).await;
    let off = connect(&cluster, ReadYourWrites::off()).await;

    let lag = cluster.set_apply_delay(0, delay);
    // Position mode: every read-back has its row; they wait for the replica to replay it
    // rather than going to the writer (max_wait is five times the delay).
    let exact_seen = round(&exact, &cluster, "exact").await;
    // Off: read-backs go to the replica at once, before it replayed the row.
    let off_seen = round(&off, &cluster, "off").await;
    let tally = |seen: &[(u16, bool, Duration)], port: u16, found: bool| {
        seen.iter()
            .filter(|(p, f, _)| *p == port && *f == found)
            .count()
    };
    eprintln!(
        "{kind:?}, replica {delay:?} behind: position mode {} on the replica with the row, {} \
         on the writer, {} stale; off {} stale of {TASKS}",
        tally(&exact_seen, replica, true),
        tally(&exact_seen, writer, true),
        exact_seen.iter().filter(|(_, f, _)| !f).count(),
        off_seen.iter().filter(|(_, f, _)| !f).count(),
    );
    assert!(
        exact_seen.iter().all(|(_, found, _)| *found),
        "position mode read a replica that had not replayed the task's write"
    );
    assert!(
        tally(&exact_seen, replica, true) > TASKS / 2,
        "position mode sent the read-backs to the writer instead of waiting for the replica"
    );
    assert!(
        tally(&off_seen, replica, false) > 0,
        "with read-your-writes off no read-back was stale: the replica does not lag, and the \
         test proves nothing"
    );

    // Replay paused: a read-back waits max_wait, then goes to the writer and has its row.
    drop(lag);
    let paused = cluster.pause_replay(0);
    let max_wait = Duration::from_millis(200);
    let waiting = connect(&cluster, ReadYourWrites::position().max_wait(max_wait)).await;
    let seen = round(&waiting, &cluster, "paused").await;
    for (port, found, took) in &seen {
        assert_eq!(
            *port, writer,
            "read-back sent to a replica that replays nothing"
        );
        assert!(found);
        assert!(
            *took >= max_wait,
            "went to the writer after {took:?}, before max_wait"
        );
    }
    // A task that did not write is not held back.
    let bystander = tokio::spawn({
        let db = waiting.clone();
        let sql = format!("SELECT {} AS port", cluster.port_expr());
        async move {
            let row = db.query_one_raw(stmt(&db, &sql)).await.unwrap().unwrap();
            port_in(&row).unwrap()
        }
    });
    assert_eq!(bystander.await.unwrap(), replica);

    // Across requests: one task writes through one connection and hands its position on as
    // text; another task, on another connection, reads inside `with_position`.
    let handed = tokio::spawn({
        let db = exact.clone();
        async move {
            db.execute_unprepared("INSERT INTO cake (name) VALUES ('handed')")
                .await
                .unwrap();
            db.write_position().await.unwrap().to_string()
        }
    })
    .await
    .unwrap();
    let read_handed = |db: RdsConnection, position: Option<Position>| {
        let sql = format!(
            "SELECT {} AS port, (SELECT count(*) FROM cake WHERE name = 'handed') AS n",
            cluster.port_expr()
        );
        tokio::spawn(async move {
            let read = db.query_one_raw(stmt(&db, &sql));
            let row = match position {
                Some(position) => with_position(position, read).await,
                None => read.await,
            };
            let row = row.unwrap().unwrap();
            (
                port_in(&row).unwrap(),
                row.try_get::<i64>("", "n").unwrap() > 0,
            )
        })
    };
    let position: Position = handed.parse().unwrap();
    assert_eq!(
        read_handed(waiting.clone(), None).await.unwrap(),
        (replica, false),
        "without the position, the replica that replays nothing serves the read"
    );
    assert_eq!(
        read_handed(waiting.clone(), Some(position.clone()))
            .await
            .unwrap(),
        (writer, true),
        "with it, the writer does (the replica cannot catch up while paused)"
    );
    drop(paused);
    assert_eq!(
        read_handed(exact.clone(), Some(position)).await.unwrap(),
        (replica, true),
        "once replay resumed, the replica has it (waited for within max_wait)"
    );
    for db in [exact, off, waiting] {
        assert!(db.shutdown(Duration::from_secs(10)).await.drained);
    }
}

/// A connection to the `causal` database with `policy`.
async fn connect(cluster: &Cluster, policy: ReadYourWrites) -> RdsConnection {
    connect_with(cluster, RdsConnection::builder().read_your_writes(policy)).await
}

/// A connection to the `causal` database with the settings of `builder`.
async fn connect_with(cluster: &Cluster, builder: RdsConnectionBuilder) -> RdsConnection {
    let mut builder = builder
        .max_connections(16)
        .writer(cluster.writer_url("causal"))
        .sqlx_logging(false);
    for url in cluster.reader_urls("causal") {
        builder = builder.reader(url);
    }
    builder.build().await.expect("connect")
}

async fn a_replica_beyond_max_replica_lag_gets_no_reads_until_it_catches_up(kind: Kind) {
    let cluster = Cluster::start(kind, 1);
    let (writer, replica) = (cluster.writer_port(), cluster.reader_ports()[0]);
    cluster.create_database("causal");
    let max = Duration::from_millis(300);
    let db = connect_with(
        &cluster,
        RdsConnection::builder()
            .read_your_writes(ReadYourWrites::off())
            .max_replica_lag(max),
    )
    .await;
    let reader = |db: &RdsConnection| db.health().hosts[1].clone();
    // Writes all along, from another connection: a replica that replays nothing falls behind.
    let writes = Writes::start(connect(&cluster, ReadYourWrites::off()).await, 10);
    until(&db, "the replica's lag to be measured", || {
        reader(&db).replica_lag_ms.is_some()
    })
    .await;
    assert!(!reader(&db).lagging, "{:?}", reader(&db));
    assert_eq!(served_by(&db).await, replica);

    let paused = cluster.pause_replay(0);
    let paused_at = Instant::now();
    until(
        &db,
        "the paused replica to lag beyond max_replica_lag",
        || reader(&db).lagging,
    )
    .await;
    // Measured to within a tick (a quarter of max): the replica may already have been a
    // sample behind when replay paused.
    assert!(
        paused_at.elapsed() >= max * 3 / 4,
        "taken out {:?} after replay paused, before it could lag {max:?}",
        paused_at.elapsed()
    );
    let lag = reader(&db).replica_lag_ms.unwrap();
    assert!(lag > 300.0, "lagging at {lag} ms");
    for _ in 0..20 {
        assert_eq!(
            served_by(&db).await,
            writer,
            "a read went to the lagging replica"
        );
    }

    drop(paused);
    until(&db, "the replica to catch up", || !reader(&db).lagging).await;
    assert_eq!(
        served_by(&db).await,
        replica,
        "the caught-up replica gets reads again"
    );
    writes.stop().await;
    // Idle: nothing written, and the caught-up replica does not read as lagging.
    tokio::time::sleep(max * 2).await;
    assert!(
        !reader(&db).lagging,
        "an idle cluster made the replica lag: {:?}",
        reader(&db)
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

/// The position a task waits for is the writer's as of its write, not as of its read: while
/// other tasks keep writing, a replica that lags more than `max_wait` but has the task's write
/// serves its read.
async fn a_read_long_after_a_write_goes_to_the_replica_that_has_it_while_others_write(kind: Kind) {
    let cluster = Cluster::start(kind, 1);
    let replica = cluster.reader_ports()[0];
    cluster.create_database("causal");
    let delay = match kind {
        Kind::Postgres => Duration::from_millis(300),
        Kind::MySql => Duration::from_secs(1),
    };
    // Far shorter than the delay: a position newer than the write is not reached in time.
    let db = connect(&cluster, ReadYourWrites::position().max_wait(delay / 4)).await;
    let lag = cluster.set_apply_delay(0, delay);
    let others = Writes::start(db.clone(), 5);
    let observer = connect(&cluster, ReadYourWrites::off()).await;
    let (port, found) = tokio::spawn({
        let (db, expr) = (db.clone(), cluster.port_expr());
        async move {
            db.execute_unprepared("INSERT INTO cake (name) VALUES ('mine')")
                .await
                .unwrap();
            // Until the replica has the row (read by a task that did not write).
            let sql = format!(
                "SELECT {expr} AS port, (SELECT count(*) FROM cake WHERE name = 'mine') AS n"
            );
            loop {
                let row = observer
                    .query_one_raw(stmt(&observer, &sql))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(port_in(&row), Some(replica));
                if row.try_get::<i64>("", "n").unwrap() > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let row = db.query_one_raw(stmt(&db, &sql)).await.unwrap().unwrap();
            (
                port_in(&row).unwrap(),
                row.try_get::<i64>("", "n").unwrap() > 0,
            )
        }
    })
    .await
    .unwrap();
    others.stop().await;
    drop(lag);
    assert!(found, "read its own write");
    assert_eq!(
        port, replica,
        "the replica had the write, but the read waited for later writes of other tasks"
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
