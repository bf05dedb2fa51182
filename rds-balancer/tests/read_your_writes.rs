//! Read-your-writes at scale, against a real primary and two replicas, on PostgreSQL and on
//! MariaDB (each test body runs on both): thousands of tasks write at once and read their row
//! straight back while the replicas apply nothing, and the servers show that no read-back ran
//! on a replica.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::time::Duration;

use rds_balancer::RdsConnection;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use support::entities::cake;
use support::{Cluster, Kind, backend_tests, port_in, setup_with, stmt};

/// The expression for the serving server's port.
fn port_expr(backend: sea_orm::DbBackend) -> &'static str {
    match backend {
        sea_orm::DbBackend::MySql => "@@port",
        _ => "inet_server_port()",
    }
}

backend_tests!(
    #[multi_thread]
    thousands_of_concurrent_writers_each_read_their_row_back_from_the_writer
);

/// Tasks writing, then reading back, all at once.
const WRITERS: usize = 3000;
/// Tasks that did not write, reading the same rows.
const BYSTANDERS: usize = 200;

/// What one writing task saw.
#[derive(Debug)]
enum ReadBack {
    /// The write (or SeaORM's read-back inside `insert`), or the read after it, failed.
    Failed(String),
    /// The read ran on the server listening on `port`, and found the row or not.
    Read { port: u16, found: bool },
}

/// Writes row `ryw-{i}` and reads it back at once through `db`. Every other task uses SeaORM's
/// `insert`, which on MySQL reads the row back by its key inside the call.
async fn write_then_read(db: RdsConnection, i: usize) -> ReadBack {
    let name = format!("ryw-{i}");
    let written = if i.is_multiple_of(2) {
        cake::ActiveModel {
            name: Set(name.clone()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .map(drop)
    } else {
        db.execute_unprepared(&format!("INSERT INTO cake (name) VALUES ('{name}')"))
            .await
            .map(drop)
    };
    if let Err(err) = written {
        return ReadBack::Failed(format!("task {i}, write: {err}"));
    }
    // One read that answers both questions: which server ran it, and whether it has the row.
    let read = format!(
        "SELECT {port} AS port, (SELECT count(*) FROM cake WHERE name = '{name}') AS n",
        port = port_expr(db.get_database_backend())
    );
    match db.query_one_raw(stmt(&db, &read)).await {
        Err(err) => ReadBack::Failed(format!("task {i}, read: {err}")),
        Ok(None) => ReadBack::Failed(format!("task {i}, read: no row")),
        Ok(Some(row)) => ReadBack::Read {
            port: port_in(&row).unwrap(),
            found: row.try_get::<i64>("", "n").unwrap() > 0,
        },
    }
}

async fn thousands_of_concurrent_writers_each_read_their_row_back_from_the_writer(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let name = "ryw_many";
    let builder = RdsConnection::builder()
        // Far longer than the test: every read-back is inside its window.
        .read_your_writes(Duration::from_secs(600))
        .max_connections(32)
        .acquire_timeout(Duration::from_secs(120));
    let db = setup_with(cluster, name, builder).await;
    let writer = cluster.writer_port();

    let (outcomes, bystanders) = {
        // Replay stopped on every replica: they keep receiving the primary's changes but apply
        // none, so a row written meanwhile exists on the primary only. It resumes when the
        // guards drop, a failed assertion included.
        let _paused: Vec<_> = (0..cluster.replicas().len())
            .map(|replica| cluster.pause_replay(replica))
            .collect();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|i| tokio::spawn(write_then_read(db.clone(), i)))
            .collect();
        let mut outcomes = Vec::with_capacity(WRITERS);
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        // Control: tasks that did not write are served by the replicas, which have none of
        // the rows (so a read-back sent there could not have found its row).
        let count = format!(
            "SELECT {} AS port, (SELECT count(*) FROM cake WHERE name LIKE 'ryw-%') AS n",
            cluster.port_expr()
        );
        let tasks: Vec<_> = (0..BYSTANDERS)
            .map(|_| {
                let (db, count) = (db.clone(), count.clone());
                tokio::spawn(async move {
                    let row = db.query_one_raw(stmt(&db, &count)).await.unwrap().unwrap();
                    (port_in(&row).unwrap(), row.try_get::<i64>("", "n").unwrap())
                })
            })
            .collect();
        let mut bystanders = Vec::with_capacity(BYSTANDERS);
        for task in tasks {
            bystanders.push(task.await.unwrap());
        }
        (outcomes, bystanders)
    };

    let mut failed = Vec::new();
    // (on the writer, found the row) -> read-backs.
    let mut tally = std::collections::BTreeMap::<(bool, bool), usize>::new();
    for outcome in outcomes {
        match outcome {
            ReadBack::Failed(err) => failed.push(err),
            ReadBack::Read { port, found } => {
                *tally.entry((port == writer, found)).or_default() += 1
            }
        }
    }
    let count = |on_writer, found| tally.get(&(on_writer, found)).copied().unwrap_or(0);
    eprintln!(
        "{kind:?}: {WRITERS} writers read back: {} on the writer with their row, {} on the \
         writer without it, {} on a replica with it, {} on a replica without it, {} failed; \
         {BYSTANDERS} bystanders on replicas saw at most {} of the rows",
        count(true, true),
        count(true, false),
        count(false, true),
        count(false, false),
        failed.len(),
        bystanders.iter().map(|b| b.1).max().unwrap_or(0),
    );
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(
        count(true, true),
        WRITERS,
        "every read-back on the writer, finding its row"
    );
    for (port, rows) in bystanders {
        cluster.assert_reader(port);
        assert_eq!(rows, 0, "a replica applied writes while paused");
    }
    cluster.wait_replicated();
    assert_eq!(
        cluster.count_on_primary(name),
        i64::try_from(WRITERS).unwrap()
    );
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
