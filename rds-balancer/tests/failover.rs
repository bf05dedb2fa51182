//! Writer failover against a real cluster and the RDS API emulator, on PostgreSQL and on MariaDB
//! (each test body runs on both): the writer is killed, a replica promoted and the emulator
//! failed over; the same `RdsConnection` follows, the write in flight gets a typed error, and
//! writes succeed again on the new writer. On MariaDB also a writer demoted to `read_only`
//! (what `SELECT (@@global.read_only OR @@global.innodb_read_only) + 0` detects): its error
//! 1290 is a writer failure, and the failover waits for a writer that accepts writes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    BalancerOptions, ErrorKind, HealthState, HostRole, Instance, RdsConnection, Topology,
};
use rds_balancer_testkit::RdsEmulator;
use sea_orm::sqlx::mysql::{MySqlConnection, MySqlDatabaseError};
use sea_orm::sqlx::{Connection, Row};
use sea_orm::{ConnectionTrait, DbErr, RuntimeErr, Statement, TransactionError, TransactionTrait};
use support::health::{DEADLINE, POLL, fast_builder};
use support::{
    Cluster, Kind, Node, backend_tests, from_another_task, node_admin, port_in, port_of, served_by,
    sleep_call, stmt, wait_running,
};

backend_tests!(
    writes_waiting_for_a_connection_when_the_writer_dies_run_on_the_new_writer,
    writes_follow_a_failover_with_a_typed_error_for_the_write_in_flight,
    a_transaction_cut_by_a_failover_has_an_unknown_resolution_and_reads_retry_transparently,
);

/// MySQL has no `INSERT .. RETURNING` (MariaDB's is an extension): a procedure inserts, then
/// returns the row's `served_by`. `SQL SECURITY INVOKER`: it writes with the caller's
/// privileges, so `read_only` refuses it as it refuses the caller.
const MYSQL_WRITE_PROCEDURE: &str = "DELIMITER //
CREATE PROCEDURE bake(cake_name varchar(255)) SQL SECURITY INVOKER
BEGIN
  INSERT INTO cake (name) VALUES (cake_name);
  SELECT served_by AS port FROM cake WHERE id = LAST_INSERT_ID();
END //
DELIMITER ;";

/// Creates database `name` with the test schema on `cluster` (and, on MySQL, the procedure
/// behind [`write`]).
fn create_database(cluster: &Cluster, name: &str) {
    cluster.create_database(name);
    if cluster.kind() == Kind::MySql {
        cluster.admin(name, MYSQL_WRITE_PROCEDURE);
        cluster.wait_replicated();
    }
}

/// Describes `cluster` to the emulator as cluster `id`; returns the instance ids: the primary
/// first, then the replicas in order.
fn describe(rds: &RdsEmulator, id: &str, cluster: &Cluster) -> Vec<String> {
    match cluster {
        Cluster::Postgres(c) => rds.describe_pg_cluster(id, c),
        Cluster::MySql(c) => rds.describe_mariadb_cluster(id, c),
    }
    .unwrap()
}

/// What one write through the balancer ended as.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// Served by the server on this port.
    On(u16),
    /// Failed with this rds-balancer kind (or `None`: a raw driver error, printed).
    Failed(Option<ErrorKind>),
}

/// Inserts a cake through `db`; the server that took it stamps its port on it.
async fn write(db: &RdsConnection) -> Write {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::MySql => "CALL bake('failover')",
        _ => "INSERT INTO cake (name) VALUES ('failover') RETURNING served_by AS port",
    };
    match db.query_one_raw(stmt(db, sql)).await {
        Ok(Some(row)) => Write::On(port_in(&row).unwrap()),
        Ok(None) => panic!("no row"),
        Err(err) => {
            let kind = ErrorKind::of(&err);
            if kind.is_none() {
                eprintln!("raw error during failover: {err}");
            }
            if kind == Some(ErrorKind::FailoverCompleted) {
                // The error the write got from the dying writer is named (by its code or kind).
                assert!(err.to_string().contains("(the writer's error: "), "{err}");
            }
            Write::Failed(kind)
        }
    }
}

/// The failed writes of a run whose writer died with at most one write in flight: that one may
/// fail, with the typed error (its outcome is unknown); none with a raw driver error, and no
/// write that was never sent.
fn assert_only_the_write_in_flight_failed(failures: &[&Write]) {
    assert!(
        failures
            .iter()
            .all(|w| **w == Write::Failed(Some(ErrorKind::FailoverCompleted))),
        "{failures:?}"
    );
    assert!(
        failures.len() <= 1,
        "writes never sent reported as failed: {failures:?}"
    );
}

/// After the primary died: the index of the replica that had received the most of its log.
/// The others can follow it; a replica cannot follow one that received less than itself (the
/// primary wrote until it died, and the replicas may have got its last writes unevenly).
async fn most_advanced_replica(cluster: &Cluster) -> usize {
    // What a replica had already been sent may still be on its way in: asked until two rounds
    // agree.
    let mut last = received_by_replicas(cluster).await;
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = received_by_replicas(cluster).await;
        if now == last {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "{now:?} still moving");
        last = now;
    }
    eprintln!("received from the dead primary, by replica: {last:?}");
    (0..last.len()).max_by_key(|&i| last[i]).unwrap()
}

/// How much of the primary's log each replica has received: the WAL position on PostgreSQL,
/// the sequence number of the last transaction on MariaDB.
async fn received_by_replicas(cluster: &Cluster) -> Vec<u64> {
    let mut received = Vec::new();
    for replica in cluster.replicas() {
        let position = match replica {
            Node::Postgres(_) => {
                let sql = "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::bigint";
                node_admin(replica, sql).trim().parse::<u64>().unwrap()
            }
            Node::MySql(node) => {
                // `Gtid_IO_Pos`, the last transaction received (`<domain>-<server>-<seq>`, one
                // domain here), is a column of SHOW SLAVE STATUS: asked by name, through sqlx.
                let mut root = MySqlConnection::connect(&node.url("")).await.unwrap();
                let status = sea_orm::sqlx::raw_sql("SHOW SLAVE STATUS")
                    .fetch_one(&mut root)
                    .await
                    .unwrap();
                let io_pos: String = status.try_get("Gtid_IO_Pos").unwrap();
                root.close().await.unwrap();
                io_pos
                    .rsplit('-')
                    .next()
                    .and_then(|seq| seq.parse::<u64>().ok())
                    .unwrap_or(0)
            }
        };
        received.push(position);
    }
    received
}

async fn writes_follow_a_failover_with_a_typed_error_for_the_write_in_flight(kind: Kind) {
    // This test kills and promotes nodes: it has a cluster of its own.
    let cluster = Cluster::start(kind, 2);
    create_database(&cluster, "failover_writes");
    let old = cluster.writer_port();
    let rds = RdsEmulator::start().unwrap();
    let ids = describe(&rds, "fo", &cluster);

    let source = support::rds::emulator_source_builder(&rds, "fo")
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let db = rds_balancer::connect(
        fast_builder(cluster.writer_url("failover_writes"))
            .endpoint_resolver(support::rds::dial_loopback),
        // Ordinary polling is slow: only the failover's own fast refresh can follow the writer.
        BalancerOptions::new(source)
            .poll_interval(Duration::from_secs(600))
            .failover_poll_interval(Duration::from_millis(100))
            .failover_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(write(&db).await, Write::On(old));

    // One writer task, writing without pause; every outcome recorded in order.
    let log: Arc<Mutex<Vec<(Instant, Write)>>> = Arc::default();
    let writer = {
        let (db, log) = (db.clone(), Arc::clone(&log));
        tokio::spawn(async move {
            loop {
                let outcome = write(&db).await;
                let done = matches!(outcome, Write::On(port) if port != old);
                log.lock().unwrap().push((Instant::now(), outcome));
                if done {
                    // A few more, to see the new writer keep taking them.
                    for _ in 0..20 {
                        let outcome = write(&db).await;
                        log.lock().unwrap().push((Instant::now(), outcome));
                    }
                    return;
                }
            }
        })
    };
    // The writer dies under load: once the task's writes are flowing.
    let deadline = Instant::now() + DEADLINE;
    while log.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "the writes never started");
        tokio::time::sleep(POLL).await;
    }

    cluster.wait_replicated();
    let killed = Instant::now();
    cluster.primary().kill();
    let target = most_advanced_replica(&cluster).await;
    let new = cluster.replicas()[target].port();
    cluster.promote(target);
    let promoted = Instant::now();
    rds.failover("fo", &ids[target + 1]).unwrap();
    let flipped = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("writes resumed within a minute")
        .unwrap();

    let log = log.lock().unwrap().clone();
    let failures: Vec<&Write> = log
        .iter()
        .map(|(_, w)| w)
        .filter(|w| matches!(w, Write::Failed(_)))
        .collect();
    let first_new = log
        .iter()
        .find(|(_, w)| *w == Write::On(new))
        .map(|(at, _)| *at)
        .unwrap();
    eprintln!(
        "writer killed -> first write on the new writer: {:?}; replica promoted -> first write: {:?}; \
         emulator failed over -> first write: {:?}; failed writes: {failures:?}",
        first_new - killed,
        first_new.saturating_duration_since(promoted),
        first_new.saturating_duration_since(flipped),
    );
    // One task writes: at most its one write was in flight (when the kill caught it between
    // writes, or while the pool was checking its connection, nothing was sent, and the write
    // ran on the new writer).
    assert_only_the_write_in_flight_failed(&failures);
    // Every write was taken by the old writer until the failover, then by the new one.
    let (before, after): (Vec<&Write>, Vec<&Write>) = {
        let split = log.iter().position(|(_, w)| *w == Write::On(new)).unwrap();
        (
            log[..split].iter().map(|(_, w)| w).collect(),
            log[split..].iter().map(|(_, w)| w).collect(),
        )
    };
    assert!(
        before
            .iter()
            .all(|w| matches!(w, Write::On(port) if *port == old) || matches!(w, Write::Failed(_))),
        "{before:?}"
    );
    // Once on the new writer, every write stays there.
    assert!(after.iter().all(|w| **w == Write::On(new)), "{after:?}");
    assert!(after.len() > 20);
    // The connection and the emulator agree on the writer; the new writer really took them.
    assert_eq!(
        db.topology().await.writer().map(|w| w.id.clone()),
        Some(ids[target + 1].clone())
    );
    let on_new: i64 = cluster
        .admin(
            "failover_writes",
            &format!("SELECT count(*) FROM cake WHERE served_by = {new}"),
        )
        .trim()
        .parse()
        .unwrap();
    assert!(on_new > 20);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

async fn a_transaction_cut_by_a_failover_has_an_unknown_resolution_and_reads_retry_transparently(
    kind: Kind,
) {
    // This test kills and promotes nodes: it has a cluster of its own.
    let cluster = Cluster::start(kind, 1);
    create_database(&cluster, "failover_txn");
    let new = cluster.replicas()[0].port();
    let rds = RdsEmulator::start().unwrap();
    let ids = describe(&rds, "fot", &cluster);
    let source = support::rds::emulator_source_builder(&rds, "fot")
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let db = rds_balancer::connect(
        RdsConnection::builder()
            .writer(cluster.writer_url("failover_txn"))
            .endpoint_resolver(support::rds::dial_loopback)
            .sqlx_logging(false)
            .acquire_timeout(Duration::from_secs(2))
            .health_check_interval(Some(Duration::from_millis(200)))
            .failure_detection_interval(Duration::from_millis(300))
            .failure_detection_count(2),
        BalancerOptions::new(source)
            .poll_interval(Duration::from_secs(600))
            .failover_poll_interval(Duration::from_millis(100)),
    )
    .await
    .unwrap();

    // A `begin()` transaction open, its insert done, when the writer dies.
    let open = db.begin().await.unwrap();
    open.execute_unprepared("INSERT INTO cake (name) VALUES ('open txn')")
        .await
        .unwrap();
    // A transaction that is in the middle of its work when the writer dies.
    let txn = {
        let db = db.clone();
        let sleep = format!("SELECT {}", sleep_call(kind, "2"));
        tokio::spawn(async move {
            db.transaction::<_, (), DbErr>(|txn| {
                Box::pin(async move {
                    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('in txn')")
                        .await?;
                    txn.execute_unprepared(&sleep).await?;
                    Ok(())
                })
            })
            .await
        })
    };
    // The writer dies in the middle of the transaction: once the writer says its sleep runs.
    wait_running(&cluster, "failover_txn", &sleep_call(kind, "2"), 1).await;
    cluster.primary().kill();
    cluster.promote(0);
    rds.failover("fot", &ids[1]).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), txn)
        .await
        .expect("the transaction ends")
        .unwrap();
    let err = match outcome {
        Err(TransactionError::Connection(err)) => err,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::TransactionResolutionUnknown),
        "{err}"
    );

    // The open transaction's commit: its outcome is unknown (typed, not the driver's error),
    // and the next transaction runs on the new writer.
    let err = open.commit().await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::TransactionResolutionUnknown),
        "{err}"
    );
    let next = db.begin().await.unwrap();
    assert_eq!(port_of(&next, cluster.port_sql()).await, new);
    next.commit().await.unwrap();

    // A read pinned to the writer, issued after the failover: it runs on the new writer.
    let port = port_of(&db, &format!("/*@writer*/ {}", cluster.port_sql())).await;
    assert_eq!(port, new);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

/// The MySQL / MariaDB error number inside `err`, if it is one.
fn mysql_error_number(err: &DbErr) -> Option<u16> {
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) =
        err
    else {
        return None;
    };
    let db = sqlx.as_database_error()?;
    db.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// MySQL only: a writer can be demoted in place there (`SET GLOBAL read_only = 1`, as a
/// switchover does to the old writer), and the writer check asks for exactly that. A PostgreSQL
/// primary cannot be demoted without a restart into recovery, which the test kit does not do;
/// its writer check is `pg_is_in_recovery()`, which the kill-and-promote tests above cover.
#[tokio::test]
async fn a_writer_demoted_to_read_only_fails_over_to_a_writer_that_accepts_writes() {
    // This test demotes and promotes nodes: it has a cluster of its own.
    let cluster = Cluster::start(Kind::MySql, 1);
    let db_name = "failover_demoted";
    create_database(&cluster, db_name);
    let (old_node, old, new) = (
        cluster.primary(),
        cluster.writer_port(),
        cluster.replicas()[0].port(),
    );
    let rds = RdsEmulator::start().unwrap();
    let ids = describe(&rds, "fod", &cluster);
    let source = support::rds::emulator_source_builder(&rds, "fod")
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let db = rds_balancer::connect(
        fast_builder(cluster.writer_url(db_name)).endpoint_resolver(support::rds::dial_loopback),
        BalancerOptions::new(source)
            .poll_interval(Duration::from_secs(600))
            .failover_poll_interval(Duration::from_millis(100))
            .failover_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(write(&db).await, Write::On(old));

    // The writer is demoted. What the server then answers the application's user, through sqlx
    // (not SUPER, so `read_only` applies): error 1290, ER_OPTION_PREVENTS_STATEMENT; and what
    // the library's writer check asks says read-only.
    cluster.admin("", "SET GLOBAL read_only = 1");
    let direct = sea_orm::Database::connect(cluster.writer_url(db_name))
        .await
        .unwrap();
    let err = direct
        .execute_unprepared("INSERT INTO cake (name) VALUES ('direct')")
        .await
        .unwrap_err();
    assert_eq!(mysql_error_number(&err), Some(1290), "{err}");
    let read_only: i64 = direct
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SELECT (@@global.read_only OR @@global.innodb_read_only) + 0 AS read_only",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "read_only")
        .unwrap();
    assert_eq!(read_only, 1);
    direct.close().await.unwrap();

    // Through the balancer, writes (a plain INSERT, and a CALL that returns a row) and a
    // transaction on the demoted writer.
    let insert_task = {
        let db = db.clone();
        tokio::spawn(async move {
            let outcome = db
                .execute_unprepared("INSERT INTO cake (name) VALUES ('plain')")
                .await;
            (outcome, Instant::now())
        })
    };
    let write_task = {
        let db = db.clone();
        tokio::spawn(async move {
            let outcome = write(&db).await;
            (outcome, Instant::now())
        })
    };
    let txn = {
        let db = db.clone();
        tokio::spawn(async move {
            let outcome = db
                .transaction::<_, (), DbErr>(|txn| {
                    Box::pin(async move {
                        txn.execute_unprepared("INSERT INTO cake (name) VALUES ('in txn')")
                            .await?;
                        Ok(())
                    })
                })
                .await;
            (outcome, Instant::now())
        })
    };
    // The demoted writer answers, but refuses writes: no failover completes while it is the
    // only writer there is. Both wait, rather than fail with the raw 1290 or "complete" on it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !insert_task.is_finished() && !write_task.is_finished() && !txn.is_finished(),
        "the failover completed on a read-only writer: {:#?}",
        db.health()
    );

    // A new writer takes over: the replica is promoted, and the RDS API says so.
    cluster.wait_replicated();
    let promoting = Instant::now();
    cluster.promote(0);
    rds.failover("fod", &ids[1]).unwrap();
    let (outcome, write_done) = tokio::time::timeout(Duration::from_secs(60), write_task)
        .await
        .expect("the write ends")
        .unwrap();
    // Its outcome is unknown to the caller (the typed error), not the raw 1290.
    assert_eq!(outcome, Write::Failed(Some(ErrorKind::FailoverCompleted)));
    assert!(write_done > promoting);
    let (outcome, insert_done) = tokio::time::timeout(Duration::from_secs(60), insert_task)
        .await
        .expect("the insert ends")
        .unwrap();
    let err = outcome.unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::FailoverCompleted),
        "{err}"
    );
    assert!(insert_done > promoting);
    let (outcome, txn_done) = tokio::time::timeout(Duration::from_secs(60), txn)
        .await
        .expect("the transaction ends")
        .unwrap();
    let err = match outcome {
        Err(TransactionError::Connection(err)) => err,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::TransactionResolutionUnknown),
        "{err}"
    );
    assert!(txn_done > promoting);

    // Writes go to the new writer; the connection and the emulator agree on it.
    for _ in 0..5 {
        assert_eq!(write(&db).await, Write::On(new));
    }
    assert_eq!(
        db.topology().await.writer().map(|w| w.id.clone()),
        Some(ids[1].clone())
    );
    // The demoted writer is a reader now, and healthy (read-only, not dead). It replicates
    // nothing of the new writer's, so position mode (the default) keeps reads off it: they go
    // to the new writer, which has every write.
    let start = Instant::now();
    while !db
        .health()
        .hosts
        .iter()
        .any(|h| h.role == HostRole::Reader && h.state == HealthState::Healthy)
    {
        assert!(start.elapsed() < DEADLINE, "{:#?}", db.health());
        tokio::time::sleep(POLL).await;
    }
    for _ in 0..5 {
        let port = from_another_task(&db, |db| async move { served_by(&db).await }).await;
        assert_eq!(
            port, new,
            "a read reached the demoted writer, which lacks new writes"
        );
    }
    // Nothing was written on the demoted writer: only the first cake, from before.
    let on_old = node_admin(
        old_node,
        &format!("SELECT count(*) FROM {db_name}.cake WHERE served_by = {old}"),
    );
    assert_eq!(on_old.trim(), "1");
    let on_new = cluster.admin(
        db_name,
        &format!("SELECT count(*) FROM cake WHERE served_by = {new}"),
    );
    assert_eq!(on_new.trim(), "5");
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

/// One write of a task: the task, when the write was issued, when it ended, and how.
type Logged = (usize, Instant, Instant, Write);

async fn writes_waiting_for_a_connection_when_the_writer_dies_run_on_the_new_writer(kind: Kind) {
    // This test kills and promotes nodes: it has a cluster of its own.
    let cluster = Cluster::start(kind, 1);
    create_database(&cluster, "failover_queued");
    let (old, new) = (cluster.writer_port(), cluster.replicas()[0].port());
    let named =
        |writer: u16, readers: &[u16]| {
            Topology::new(
                std::iter::once(
                    Instance::writer(format!("n{writer}")).with_endpoint("127.0.0.1", writer),
                )
                .chain(readers.iter().map(|&port| {
                    Instance::reader(format!("n{port}")).with_endpoint("127.0.0.1", port)
                }))
                .collect(),
            )
        };
    let topology = Arc::new(Mutex::new(named(old, &[new])));
    let source = {
        let topology = Arc::clone(&topology);
        move || {
            let now = topology.lock().unwrap().clone();
            async move { Ok(now) }
        }
    };
    // Default health and failover settings; one connection to the writer, so that writes queue
    // for it.
    let db = rds_balancer::connect(
        RdsConnection::builder()
            .writer(cluster.writer_url("failover_queued"))
            .max_connections(1)
            .sqlx_logging(false),
        BalancerOptions::new(source).poll_interval(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    assert_eq!(write(&db).await, Write::On(old));

    // Six tasks writing without pause through one connection: five wait for it at any time.
    const TASKS: usize = 6;
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (db, log) = (db.clone(), Arc::clone(&log));
            tokio::spawn(async move {
                let mut on_new = 0;
                while on_new < 5 {
                    let issued = Instant::now();
                    let outcome = write(&db).await;
                    if outcome == Write::On(new) {
                        on_new += 1;
                    }
                    log.lock()
                        .unwrap()
                        .push((task, issued, Instant::now(), outcome));
                }
            })
        })
        .collect();
    // Writes are queued for the connection (in flight beyond the one connection).
    let deadline = Instant::now() + DEADLINE;
    while db.health().hosts[0].in_flight < 4 {
        assert!(Instant::now() < deadline, "{:#?}", db.health());
        tokio::time::sleep(POLL).await;
    }

    let killed = Instant::now();
    cluster.primary().kill();
    cluster.promote(0);
    let promoted = Instant::now();
    *topology.lock().unwrap() = named(new, &[]);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("writes resumed within a minute")
            .unwrap();
    }

    let log = log.lock().unwrap().clone();
    let first_new = log
        .iter()
        .filter(|(_, _, _, w)| *w == Write::On(new))
        .map(|(_, _, ended, _)| *ended)
        .min()
        .unwrap();
    let failures: Vec<&Write> = log
        .iter()
        .map(|(_, _, _, w)| w)
        .filter(|w| matches!(w, Write::Failed(_)))
        .collect();
    eprintln!(
        "writer killed -> first write on the new writer: {:?}; promoted -> first write: {:?}; \
         failed writes: {failures:?} of {}",
        first_new - killed,
        first_new.saturating_duration_since(promoted),
        log.len()
    );
    // Only the write that held the one connection can have reached the dying writer. Every
    // write that waited for the connection ran on the new one.
    assert_only_the_write_in_flight_failed(&failures);
    // A write issued once the new writer took writes ran there. (The write that failed was
    // issued before the kill; it may end after the first write on the new writer, as both
    // wait for the failover.)
    for task in 0..TASKS {
        let after_kill: Vec<&Write> = log
            .iter()
            .filter(|(t, issued, _, _)| *t == task && *issued > first_new)
            .map(|(_, _, _, w)| w)
            .collect();
        assert!(
            after_kill.iter().all(|w| **w == Write::On(new)),
            "task {task}: {after_kill:?}"
        );
    }
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
