//! Read-your-writes by position on Aurora PostgreSQL, whose readers replay no WAL of their own:
//! the positions come from `aurora_replica_status()`. No Aurora runs here, so a real PostgreSQL
//! primary and replica get stand-ins for Aurora's functions ([`STAND_IN`]), computed live from
//! each server's own WAL positions: a replica whose replay is delayed or paused reports an
//! Aurora `current_read_lsn` that is just as far behind. Every read asks the server which host
//! served it and whether it has the task's row.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::time::Duration;

use rds_balancer::{Position, RdsConnection, RdsConnectionBuilder, ReadYourWrites, with_position};
use sea_orm::ConnectionTrait;
use support::health::until;
use support::{Cluster, Kind, Writes, port_in, served_by, stmt};

/// Aurora PostgreSQL's functions, as stand-ins (created on the primary, replicated):
///
/// - `aurora_version()`: its presence is what tells Aurora;
/// - `aurora_db_instance_identifier()`: `instance-<port>`, different on each server although
///   the catalog replicates;
/// - `aurora_replica_status()`: on the primary, the writer's row (`MASTER_SESSION_ID`), its
///   `durable_lsn` the primary's WAL insert position now (taken back to the end of the last
///   record when it points past a page header, as a durable LSN never does); on a replica, the
///   writer's row as far as it received, and its own row, its `current_read_lsn` the position
///   it has replayed now.
const STAND_IN: &str = "
CREATE FUNCTION aurora_version() RETURNS text LANGUAGE sql AS $$ SELECT '16.4.standin' $$;
CREATE FUNCTION aurora_db_instance_identifier() RETURNS text LANGUAGE sql VOLATILE
AS $$ SELECT 'instance-' || inet_server_port() $$;
CREATE FUNCTION aurora_replica_status()
RETURNS TABLE (server_id text, session_id text, durable_lsn bigint, highest_lsn_rcvd bigint,
               current_read_lsn bigint, replica_lag_in_msec real)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT pg_is_in_recovery() THEN
        n := pg_current_wal_insert_lsn() - '0/0'::pg_lsn;
        IF n % 8192 IN (24, 40) THEN
            n := n - n % 8192;
        END IF;
        RETURN QUERY SELECT aurora_db_instance_identifier(), 'MASTER_SESSION_ID'::text, n,
            NULL::bigint, NULL::bigint, NULL::real;
    ELSE
        RETURN QUERY SELECT 'writer'::text, 'MASTER_SESSION_ID'::text,
            (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint, NULL::bigint, NULL::bigint,
            NULL::real;
        RETURN QUERY SELECT aurora_db_instance_identifier(),
            '3a1f7c2e-0d5b-4c8e-9f60-2b7d1e4a9c35'::text,
            (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint,
            (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint,
            (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint,
            (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::real;
    END IF;
END $$;
";

/// Tasks writing a row, then reading it back, at once.
const TASKS: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn aurora_positions_serve_each_task_its_own_write_from_the_reader_once_replayed() {
    let cluster = aurora_cluster();
    let (writer, replica) = (cluster.writer_port(), cluster.reader_ports()[0]);
    let delay = Duration::from_millis(300);
    let exact = connect(
        &cluster,
        RdsConnection::builder().read_your_writes(ReadYourWrites::position().max_wait(delay * 5)),
    )
    .await;
    let off = connect(
        &cluster,
        RdsConnection::builder().read_your_writes(ReadYourWrites::off()),
    )
    .await;

    // The flavour was detected: the writer's position is Aurora's, not a WAL position.
    let position = exact.write_position().await.unwrap();
    assert!(
        position.to_string().starts_with("aurora-pg:"),
        "not read from aurora_replica_status(): {position}"
    );

    let lag = cluster.set_apply_delay(0, delay);
    let exact_seen = round(&exact, &cluster, "exact").await;
    let off_seen = round(&off, &cluster, "off").await;
    let on = |seen: &[(u16, bool)], port: u16| seen.iter().filter(|(p, _)| *p == port).count();
    let stale = |seen: &[(u16, bool)]| seen.iter().filter(|(_, found)| !found).count();
    eprintln!(
        "Aurora stand-in, replica {delay:?} behind: position mode {} on the replica, {} on the \
         writer, {} stale; off {} stale of {TASKS}",
        on(&exact_seen, replica),
        on(&exact_seen, writer),
        stale(&exact_seen),
        stale(&off_seen),
    );
    assert_eq!(
        stale(&exact_seen),
        0,
        "position mode read a reader whose current_read_lsn had not reached the write"
    );
    assert!(
        on(&exact_seen, replica) > TASKS / 2,
        "position mode sent the read-backs to the writer instead of waiting for the reader"
    );
    assert!(
        stale(&off_seen) > 0,
        "with read-your-writes off no read-back was stale: the replica does not lag, and the \
         test proves nothing"
    );
    drop(lag);

    // Replay paused: the reader's current_read_lsn stays behind; the read goes to the writer.
    // Once replay resumes, the same position is read on the reader.
    let paused = cluster.pause_replay(0);
    let handed = tokio::spawn({
        let db = exact.clone();
        async move {
            db.execute_unprepared("INSERT INTO cake (name) VALUES ('handed')")
                .await
                .unwrap();
            db.write_position().await.unwrap()
        }
    })
    .await
    .unwrap();
    let read = |position: Position| {
        let (db, sql) = (exact.clone(), read_sql(&cluster, "handed"));
        tokio::spawn(async move {
            let row = with_position(position, db.query_one_raw(stmt(&db, &sql)))
                .await
                .unwrap()
                .unwrap();
            (port_in(&row).unwrap(), found(&row))
        })
    };
    assert_eq!(
        read(handed.clone()).await.unwrap(),
        (writer, true),
        "while replay is paused, the writer serves the read"
    );
    assert_eq!(served_by(&off).await, replica, "the reader still answers");
    drop(paused);
    assert_eq!(
        read(handed).await.unwrap(),
        (replica, true),
        "once replay resumed, the reader has it"
    );
    for db in [exact, off] {
        assert!(db.shutdown(Duration::from_secs(10)).await.drained);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aurora_reader_beyond_max_replica_lag_gets_no_reads_until_it_catches_up() {
    let cluster = aurora_cluster();
    let (writer, replica) = (cluster.writer_port(), cluster.reader_ports()[0]);
    let max = Duration::from_millis(300);
    let db = connect(
        &cluster,
        RdsConnection::builder()
            .read_your_writes(ReadYourWrites::off())
            .max_replica_lag(max),
    )
    .await;
    let position = db.write_position().await.unwrap();
    assert!(position.to_string().starts_with("aurora-pg:"), "{position}");
    let reader = |db: &RdsConnection| db.health().hosts[1].clone();
    until(&db, "the reader's lag to be measured", || {
        reader(&db).replica_lag_ms.is_some()
    })
    .await;
    assert!(!reader(&db).lagging, "{:?}", reader(&db));

    let paused = cluster.pause_replay(0);
    // Writes from another task until stopped: the paused reader's current_read_lsn falls
    // behind.
    let writes = Writes::start(db.clone(), 10);
    until(
        &db,
        "the paused reader to lag beyond max_replica_lag",
        || reader(&db).lagging,
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            served_by(&db).await,
            writer,
            "a read went to the lagging reader"
        );
    }
    drop(paused);
    until(&db, "the reader to catch up", || !reader(&db).lagging).await;
    assert_eq!(served_by(&db).await, replica);
    writes.stop().await;
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

/// A PostgreSQL primary and one replica, database `aurora` with the test schema and
/// [`STAND_IN`], replicated.
fn aurora_cluster() -> Cluster {
    let cluster = Cluster::start(Kind::Postgres, 1);
    cluster.create_database("aurora");
    cluster.admin("aurora", STAND_IN);
    cluster.wait_replicated();
    // Each server is an instance of its own, although the catalog replicates.
    let pg = cluster.pg();
    let id = |node: &rds_balancer_testkit::PgNode| {
        node.psql("aurora", "SELECT aurora_db_instance_identifier()")
            .unwrap()
    };
    assert_ne!(id(pg.primary()).trim(), id(&pg.replicas()[0]).trim());
    cluster
}

/// A connection to database `aurora` with the settings of `builder`.
async fn connect(cluster: &Cluster, builder: RdsConnectionBuilder) -> RdsConnection {
    let mut builder = builder
        .max_connections(16)
        .writer(cluster.writer_url("aurora"))
        .sqlx_logging(false);
    for url in cluster.reader_urls("aurora") {
        builder = builder.reader(url);
    }
    builder.build().await.expect("connect")
}

/// The port of the server that runs it, and whether it has a row named `tag`.
fn read_sql(cluster: &Cluster, tag: &str) -> String {
    format!(
        "SELECT {} AS port, (SELECT count(*) FROM cake WHERE name = '{tag}') AS n",
        cluster.port_expr()
    )
}

fn found(row: &sea_orm::QueryResult) -> bool {
    row.try_get::<i64>("", "n").unwrap() > 0
}

/// [`TASKS`] tasks each writing a row and reading it back at once: where each read went, and
/// whether it had the row.
async fn round(db: &RdsConnection, cluster: &Cluster, label: &str) -> Vec<(u16, bool)> {
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (db, tag) = (db.clone(), format!("{label}-{i}"));
            let sql = read_sql(cluster, &tag);
            tokio::spawn(async move {
                db.execute_unprepared(&format!("INSERT INTO cake (name) VALUES ('{tag}')"))
                    .await
                    .unwrap();
                let row = db.query_one_raw(stmt(&db, &sql)).await.unwrap().unwrap();
                (port_in(&row).unwrap(), found(&row))
            })
        })
        .collect();
    let mut seen = Vec::with_capacity(TASKS);
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen
}
