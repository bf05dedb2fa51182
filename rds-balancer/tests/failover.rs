//! Writer failover against a real PostgreSQL cluster and the RDS API emulator: the writer is
//! killed, a replica promoted and the emulator failed over; the same `RdsConnection` follows,
//! the write in flight gets a typed error, and writes succeed again on the new writer.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{BalancerOptions, ErrorKind, RdsConnection};
use rds_balancer_testkit::{PgCluster, RdsEmulator};
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use support::{port_of, stmt};

/// What one write through the balancer ended as.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// Served by the server on this port.
    On(u16),
    /// Failed with this rds-balancer kind (or `None`: a raw driver error, printed).
    Failed(Option<ErrorKind>),
}

async fn write(db: &RdsConnection) -> Write {
    let sql = "INSERT INTO cake (name) VALUES ('failover') RETURNING served_by AS port";
    match db.query_one_raw(stmt(db, sql)).await {
        Ok(Some(row)) => Write::On(u16::try_from(row.try_get::<i32>("", "port").unwrap()).unwrap()),
        Ok(None) => panic!("no row"),
        Err(err) => {
            let kind = ErrorKind::of(&err);
            if kind.is_none() {
                eprintln!("raw error during failover: {err}");
            }
            Write::Failed(kind)
        }
    }
}

#[tokio::test]
async fn writes_follow_a_failover_with_a_typed_error_for_the_write_in_flight() {
    // This test kills and promotes nodes: it has a cluster of its own.
    let cluster = PgCluster::start(2).unwrap();
    support::create_database(&cluster, "failover_writes");
    let (old, new) = (cluster.primary().port(), cluster.replicas()[0].port());
    let rds = RdsEmulator::start().unwrap();
    let ids = rds.describe_pg_cluster("fo", &cluster).unwrap();

    let source = support::rds::emulator_source_builder(&rds, "fo")
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let db = rds_balancer::connect(
        RdsConnection::builder()
            .writer(cluster.primary().url("failover_writes"))
            .endpoint_resolver(support::rds::dial_loopback)
            .sqlx_logging(false)
            .acquire_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
            .health_check_interval(Some(Duration::from_millis(200)))
            .failure_detection_time(Duration::from_secs(1))
            .failure_detection_interval(Duration::from_millis(300))
            .failure_detection_count(2),
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
                let done = outcome == Write::On(new);
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
    tokio::time::sleep(Duration::from_millis(300)).await;

    cluster.wait_replicated(Duration::from_secs(30)).unwrap();
    let killed = Instant::now();
    cluster.primary().kill().unwrap();
    cluster.promote(0).unwrap();
    let promoted = Instant::now();
    rds.failover("fo", &ids[1]).unwrap();
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
    // The write in flight when the writer died, and any sent to it before it was known dead,
    // failed with the typed error; none with a raw driver error, none lost silently.
    assert!(
        failures
            .iter()
            .all(|w| **w == Write::Failed(Some(ErrorKind::FailoverCompleted))),
        "{failures:?}"
    );
    assert!(
        !failures.is_empty(),
        "the write in flight reports the failover"
    );
    assert!(
        failures.len() <= 3,
        "only writes in flight fail: {failures:?}"
    );
    // Once on the new writer, every write stays there.
    let after: Vec<&Write> = log
        .iter()
        .skip_while(|(_, w)| *w != Write::On(new))
        .map(|(_, w)| w)
        .collect();
    assert!(after.iter().all(|w| **w == Write::On(new)), "{after:?}");
    assert!(after.len() > 20);
    // The connection and the emulator agree on the writer; the new writer really took them.
    assert_eq!(
        db.topology().await.writer().map(|w| w.id.clone()),
        Some(ids[1].clone())
    );
    let on_new: i64 = cluster
        .psql(
            "failover_writes",
            &format!("SELECT count(*) FROM cake WHERE served_by = {new}"),
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(on_new > 20);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}

#[tokio::test]
async fn a_transaction_cut_by_a_failover_has_an_unknown_resolution_and_reads_retry_transparently() {
    // This test kills and promotes nodes: it has a cluster of its own.
    let cluster = PgCluster::start(1).unwrap();
    support::create_database(&cluster, "failover_txn");
    let new = cluster.replicas()[0].port();
    let rds = RdsEmulator::start().unwrap();
    let ids = rds.describe_pg_cluster("fot", &cluster).unwrap();
    let source = support::rds::emulator_source_builder(&rds, "fot")
        .operation_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let db = rds_balancer::connect(
        RdsConnection::builder()
            .writer(cluster.primary().url("failover_txn"))
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

    // A transaction that is in the middle of its work when the writer dies.
    let txn = {
        let db = db.clone();
        tokio::spawn(async move {
            db.transaction::<_, (), DbErr>(|txn| {
                Box::pin(async move {
                    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('in txn')")
                        .await?;
                    txn.execute_unprepared("SELECT pg_sleep(2)").await?;
                    Ok(())
                })
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.primary().kill().unwrap();
    cluster.promote(0).unwrap();
    rds.failover("fot", &ids[1]).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), txn)
        .await
        .expect("the transaction ends")
        .unwrap();
    let err = match outcome {
        Err(sea_orm::TransactionError::Connection(err)) => err,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::TransactionResolutionUnknown),
        "{err}"
    );

    // A read pinned to the writer, issued after the failover: it runs on the new writer.
    let port = port_of(&db, "/*@writer*/ SELECT inet_server_port() AS port").await;
    assert_eq!(port, new);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
