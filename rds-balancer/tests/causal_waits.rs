//! Read-your-writes by replication position, while a read waits for the replica: the replica
//! leaves the topology, or is promoted, and the read goes to the writer at once rather than
//! waiting out a long `max_wait` for a replica that will never catch up; a reader that joins
//! with the task's row serves it at once, and one that joins without it serves no read until
//! it has caught up. On PostgreSQL and on MariaDB (each test body runs on
//! both), each test on a cluster of its own. Every read asks the server which host served it
//! and whether it has the task's row.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::time::{Duration, Instant};

use rds_balancer::{RdsConnection, ReadYourWrites, Topology};
use sea_orm::ConnectionTrait;
use support::health::until_served_by;
use support::{Cluster, Kind, Node, backend_tests, node_admin, port_in, served_by, stmt};
use tokio::task::JoinHandle;

backend_tests!(
    #[multi_thread]
    a_read_waiting_on_a_replica_removed_from_the_topology_goes_to_the_writer,
    #[multi_thread]
    a_read_waiting_on_a_replica_that_is_promoted_goes_to_the_writer,
    #[multi_thread]
    a_read_waiting_on_a_replica_goes_to_a_reader_that_joins_with_its_row,
    #[multi_thread]
    a_reader_that_joins_behind_a_covered_write_takes_reads_only_once_caught_up
);

/// Far longer than any test should take: a read still waiting for it has hung.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How soon a read must end once its replica cannot catch up anymore.
const PROMPTLY: Duration = Duration::from_secs(5);
/// Long enough for a read that is not held back to have finished many times over.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// Applies a topology of the primary of `cluster` as writer and `readers`.
async fn apply(db: &RdsConnection, cluster: &Cluster, readers: &[Node<'_>]) {
    let writer = cluster.primary().as_writer();
    let readers = readers.iter().map(Node::as_reader);
    db.apply_topology(&Topology::new(
        std::iter::once(writer).chain(readers).collect(),
    ))
    .await
    .expect("apply the topology");
}

/// Database `waits` on `cluster` and a position-mode connection to it with [`MAX_WAIT`]: the
/// primary as writer, the replica as its one reader (from a topology, so that it can leave).
async fn connect(cluster: &Cluster) -> RdsConnection {
    cluster.create_database("waits");
    let db = RdsConnection::builder()
        .writer(cluster.writer_url("waits"))
        .read_your_writes(ReadYourWrites::position().max_wait(MAX_WAIT))
        .sqlx_logging(false)
        .build()
        .await
        .expect("connect");
    let replica = cluster.replicas()[0];
    apply(&db, cluster, &[replica]).await;
    // A task that did not write reads on the replica: it is the connection's reader, caught
    // up with its joining when the topology was applied.
    let port = tokio::spawn({
        let db = db.clone();
        async move { served_by(&db).await }
    });
    assert_eq!(port.await.unwrap(), replica.port());
    db
}

/// A task that writes row `tag`, then reads it back: the port that served the read-back and
/// whether it had the row. Returns once the write is acknowledged, with the task reading.
async fn write_then_read(
    db: &RdsConnection,
    cluster: &Cluster,
    tag: &'static str,
) -> JoinHandle<Result<(u16, bool), sea_orm::DbErr>> {
    let (written, wrote) = tokio::sync::oneshot::channel();
    let (db, expr) = (db.clone(), cluster.port_expr());
    let task = tokio::spawn(async move {
        db.execute_unprepared(&format!("INSERT INTO cake (name) VALUES ('{tag}')"))
            .await
            .expect("insert");
        written.send(()).unwrap();
        let sql =
            format!("SELECT {expr} AS port, (SELECT count(*) FROM cake WHERE name = '{tag}') AS n");
        let row = db.query_one_raw(stmt(&db, &sql)).await?.expect("a row");
        Ok((
            port_in(&row).unwrap(),
            row.try_get::<i64>("", "n").unwrap() > 0,
        ))
    });
    wrote.await.expect("the write");
    task
}

/// Asserts that the read-back of `task` is still waiting: the replica cannot have the row.
async fn assert_waiting(task: &mut JoinHandle<Result<(u16, bool), sea_orm::DbErr>>) {
    assert!(
        tokio::time::timeout(STILL_WAITING, &mut *task)
            .await
            .is_err(),
        "the read-back did not wait for the replica that lacks its row"
    );
}

/// The outcome of the read-back of `task`, which must end within [`PROMPTLY`] of `since`.
async fn promptly(
    task: JoinHandle<Result<(u16, bool), sea_orm::DbErr>>,
    since: Instant,
) -> (u16, bool) {
    let outcome = tokio::time::timeout(PROMPTLY * 2, task)
        .await
        .unwrap_or_else(|_| panic!("the read-back still waits {:?} later", PROMPTLY * 2))
        .unwrap()
        .expect("the read-back failed");
    let took = since.elapsed();
    assert!(took < PROMPTLY, "the read-back ended {took:?} later");
    outcome
}

async fn a_read_waiting_on_a_replica_removed_from_the_topology_goes_to_the_writer(kind: Kind) {
    let cluster = Cluster::start(kind, 1);
    let db = connect(&cluster).await;
    let writer_port = cluster.writer_port();
    let paused = cluster.pause_replay(0);
    let mut task = write_then_read(&db, &cluster, "removed").await;
    assert_waiting(&mut task).await;

    apply(&db, &cluster, &[]).await;
    let removed = Instant::now();
    let (port, found) = promptly(task, removed).await;
    assert_eq!(port, writer_port, "not served by the writer");
    assert!(found, "the read-back missed its own row");
    drop(paused);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_read_waiting_on_a_replica_that_is_promoted_goes_to_the_writer(kind: Kind) {
    let cluster = Cluster::start(kind, 1);
    let db = connect(&cluster).await;
    let writer_port = cluster.writer_port();
    // The replica stays behind by receiving nothing more (rather than by a paused replay: a
    // promotion first applies what was received, and the kit's MariaDB promotion waits for
    // it), so that once promoted it lacks the row for good.
    cut_replication(&cluster).await;
    let mut task = write_then_read(&db, &cluster, "promoted").await;
    assert_waiting(&mut task).await;

    cluster.promote(0);
    let promoted = Instant::now();
    let (port, found) = promptly(task, promoted).await;
    assert!(found, "the read-back missed its own row");
    assert_eq!(port, writer_port, "not served by the writer");
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_read_waiting_on_a_replica_goes_to_a_reader_that_joins_with_its_row(kind: Kind) {
    let cluster = Cluster::start(kind, 2);
    let db = connect(&cluster).await;
    let paused = cluster.pause_replay(0);
    let mut task = write_then_read(&db, &cluster, "joined").await;
    assert_waiting(&mut task).await;

    // The second replica replays on: it joins the topology once it has the row.
    let joining = cluster.replicas()[1];
    let sql = "SELECT count(*) FROM cake WHERE name = 'joined'";
    let replayed = |node: Node<'_>| match node {
        Node::Postgres(n) => n.psql("waits", sql).unwrap(),
        Node::MySql(n) => n.sql("waits", sql).unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while replayed(joining).trim() != "1" {
        assert!(
            Instant::now() < deadline,
            "{} never had the row",
            joining.name()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    apply(&db, &cluster, &[cluster.replicas()[0], joining]).await;
    let joined = Instant::now();
    let (port, found) = promptly(task, joined).await;
    assert!(found, "the read-back missed its own row");
    assert_eq!(port, joining.port(), "not served by the reader that joined");
    drop(paused);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

/// Once every reader has a task's write, the task's reads go anywhere again without a check.
/// A reader that joins after that, behind the write, must not serve them: it takes no read
/// until it has replayed the writer's position as of its joining.
async fn a_reader_that_joins_behind_a_covered_write_takes_reads_only_once_caught_up(kind: Kind) {
    let cluster = Cluster::start(kind, 2);
    let db = connect(&cluster).await;
    let (first, late) = (cluster.replicas()[0].port(), cluster.replicas()[1]);
    // The replica that joins later replays nothing of the write.
    let paused = cluster.pause_replay(1);
    let (covered, was_covered) = tokio::sync::oneshot::channel();
    let (joined, has_joined) = tokio::sync::oneshot::channel::<()>();
    // One task (read-your-writes is per task): writes, reads its row back from the one reader
    // once it has it (then every reader has it), then reads again after the other joins.
    let task = tokio::spawn({
        let (db, expr) = (db.clone(), cluster.port_expr());
        async move {
            db.execute_unprepared("INSERT INTO cake (name) VALUES ('covered')")
                .await
                .unwrap();
            let sql = format!(
                "SELECT {expr} AS port, (SELECT count(*) FROM cake WHERE name = 'covered') AS n"
            );
            let read = async || {
                let row = db.query_one_raw(stmt(&db, &sql)).await.unwrap().unwrap();
                let found = row.try_get::<i64>("", "n").unwrap() > 0;
                (port_in(&row).unwrap(), found)
            };
            let back = read().await;
            covered.send(back).unwrap();
            has_joined.await.unwrap();
            let mut after = Vec::new();
            for _ in 0..20 {
                after.push(read().await);
            }
            after
        }
    });
    assert_eq!(
        was_covered.await.unwrap(),
        (first, true),
        "read back from the reader"
    );
    apply(&db, &cluster, &[cluster.replicas()[0], late]).await;
    joined.send(()).unwrap();
    for (port, found) in task.await.unwrap() {
        assert!(found, "read from {port}, which lacks the task's row");
        assert_ne!(port, late.port());
    }

    // Caught up, it takes reads.
    drop(paused);
    until_served_by(&db, late.port()).await;
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

/// Stops replica 0 of `cluster` from receiving the primary's changes; it stays a replica
/// (PostgreSQL: in recovery, without a WAL receiver; MariaDB: the I/O thread stopped, the SQL
/// thread running).
async fn cut_replication(cluster: &Cluster) {
    let replica = cluster.replicas()[0];
    match cluster.kind() {
        Kind::Postgres => {
            node_admin(replica, "ALTER SYSTEM SET primary_conninfo = ''");
            node_admin(replica, "SELECT pg_reload_conf()");
            // Reloading ends the WAL receiver: wait until the replica reports none.
            let deadline = Instant::now() + Duration::from_secs(30);
            while node_admin(replica, "SELECT count(*) FROM pg_stat_wal_receiver").trim() != "0" {
                assert!(Instant::now() < deadline, "the WAL receiver did not stop");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Kind::MySql => {
            node_admin(replica, "STOP SLAVE IO_THREAD");
        }
    }
}
