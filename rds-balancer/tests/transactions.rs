//! Transactions, read-only transactions and streams through `RdsConnection` against a real
//! primary and two replicas, on PostgreSQL and on MariaDB (each test body runs on both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies and helpers outside #[test] fns

mod support;

use futures_util::TryStreamExt;
use rds_balancer::{ErrorKind, RdsConnection, RdsTransaction, Route, with_route};
use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{
    AccessMode, ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    RuntimeErr, Statement, StreamTrait, TransactionError, TransactionTrait,
};
use support::entities::{cake, cake_seen};
use support::{
    Cluster, Kind, backend_tests, from_another_task, port_in, port_of, served_by, setup_in,
    setup_with, stmt,
};

backend_tests!(
    a_transaction_runs_every_statement_on_the_writer_and_commits,
    a_rolled_back_transaction_leaves_nothing,
    a_read_only_transaction_runs_on_a_reader,
    a_read_only_transaction_is_read_only_on_the_server_too,
    a_task_reads_its_own_writes_after_a_committed_transaction,
    streams_are_routed_like_statements,
);

/// The server's own error code behind `err`: the SQLSTATE on PostgreSQL, the error number on
/// MySQL. Panics when `err` is not an error the server returned (e.g. one of the library's).
fn server_error_code(err: &DbErr) -> String {
    assert_eq!(ErrorKind::of(err), None, "not the library's error: {err}");
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) =
        err
    else {
        panic!("not a statement's error: {err:?}");
    };
    let db = sqlx
        .as_database_error()
        .unwrap_or_else(|| panic!("not the server's error: {err}"));
    match db.try_downcast_ref::<MySqlDatabaseError>() {
        Some(mysql) => mysql.number().to_string(),
        None => db.code().expect("a SQLSTATE").into_owned(),
    }
}

/// The server's id of the session (connection) running a transaction.
async fn connection_id(txn: &RdsTransaction) -> i64 {
    let backend = ConnectionTrait::get_database_backend(txn);
    let sql = match backend {
        DbBackend::MySql => "SELECT CAST(CONNECTION_ID() AS SIGNED) AS id",
        _ => "SELECT pg_backend_pid()::bigint AS id",
    };
    let row = txn
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .expect("one row");
    row.try_get::<i64>("", "id").expect("an id")
}

async fn a_transaction_runs_every_statement_on_the_writer_and_commits(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "txn_commit").await;
    let writer = cluster.writer_port();
    let txn = db.begin().await.unwrap();
    // Even a plain read inside a transaction goes to the transaction's host: the writer.
    assert_eq!(served_by(&txn).await, writer);
    let inserted = cake::ActiveModel {
        name: Set("in txn".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    assert_eq!(inserted.served_by, Some(i32::from(writer)));
    // The transaction sees its own uncommitted row (on MySQL, SeaORM's read-back above did
    // too); nobody else does yet.
    let seen = cake_seen::Entity::find().all(&txn).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].read_port, i32::from(writer));
    assert_eq!(
        cluster.count_on_primary("txn_commit"),
        0,
        "not visible before commit"
    );
    txn.commit().await.unwrap();
    assert_eq!(cluster.count_on_primary("txn_commit"), 1);
}

async fn a_rolled_back_transaction_leaves_nothing(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "txn_rollback").await;
    let txn = db.begin().await.unwrap();
    cake::ActiveModel {
        name: Set("gone".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(cluster.count_on_primary("txn_rollback"), 0);

    // The closure form: an error rolls back, Ok commits; both on the writer.
    let result = db
        .transaction::<_, (), DbErr>(|txn| {
            Box::pin(async move {
                cake::ActiveModel {
                    name: Set("gone too".into()),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                Err(DbErr::Custom("changed my mind".into()))
            })
        })
        .await;
    assert!(
        matches!(result, Err(TransactionError::Transaction(_))),
        "{result:?}"
    );
    assert_eq!(cluster.count_on_primary("txn_rollback"), 0);

    let port = db
        .transaction::<_, u16, DbErr>(|txn| {
            Box::pin(async move {
                cake::ActiveModel {
                    name: Set("kept".into()),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                Ok(served_by(txn).await)
            })
        })
        .await
        .unwrap();
    assert_eq!(port, cluster.writer_port());
    assert_eq!(cluster.count_on_primary("txn_rollback"), 1);
    assert_eq!(
        cluster
            .admin("txn_rollback", "SELECT name FROM cake")
            .trim(),
        "kept"
    );
}

async fn a_read_only_transaction_runs_on_a_reader(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "txn_read_only").await;
    db.execute_unprepared("INSERT INTO cake (name) VALUES ('a'), ('b')")
        .await
        .unwrap();
    cluster.wait_replicated();

    // PostgreSQL opens it with `BEGIN; SET TRANSACTION READ ONLY`, MySQL with
    // `SET TRANSACTION READ ONLY; BEGIN` (SeaORM's): either way on a replica, even right after
    // this task wrote (the access mode asks for a reader; read-your-writes governs plain
    // reads only).
    let txn = db
        .begin_with_config(None, Some(AccessMode::ReadOnly))
        .await
        .unwrap();
    let port = served_by(&txn).await;
    cluster.assert_reader(port);
    // Every statement of the transaction stays on that reader.
    assert_eq!(served_by(&txn).await, port);
    let from_cake = format!("SELECT {} AS port FROM cake LIMIT 1", cluster.port_expr());
    assert_eq!(port_of(&txn, &from_cake).await, port);
    assert_eq!(cake::Entity::find().all(&txn).await.unwrap().len(), 2);
    let seen = cake_seen::Entity::find().all(&txn).await.unwrap();
    assert!(
        seen.iter().all(|c| c.read_port == i32::from(port)),
        "{seen:?}"
    );
    // A write in it reaches the replica (the library does not second-guess a transaction's
    // statements) and the server refuses it: PostgreSQL's 25006 read_only_sql_transaction
    // (a hot standby runs read-only transactions only); MariaDB's 1290, the `--read-only`
    // of a replica, which it checks before the transaction's access mode.
    let err = txn
        .execute_unprepared("INSERT INTO cake (name) VALUES ('no')")
        .await
        .unwrap_err();
    let expected = match kind {
        Kind::Postgres => "25006",
        Kind::MySql => "1290",
    };
    assert_eq!(server_error_code(&err), expected, "{err}");
    txn.rollback().await.unwrap();
    assert_eq!(cluster.count_on_primary("txn_read_only"), 2);

    let in_closure = db
        .transaction_with_config::<_, (u16, usize), DbErr>(
            |txn| {
                Box::pin(async move {
                    let rows = cake::Entity::find().all(txn).await?.len();
                    Ok((served_by(txn).await, rows))
                })
            },
            None,
            Some(AccessMode::ReadOnly),
        )
        .await
        .unwrap();
    cluster.assert_reader(in_closure.0);
    assert_eq!(in_closure.1, 2);

    // Read-only transactions are spread over the replicas like plain reads.
    let mut ports = std::collections::HashSet::new();
    for _ in 0..40 {
        let txn = db
            .begin_with_config(None, Some(AccessMode::ReadOnly))
            .await
            .unwrap();
        ports.insert(served_by(&txn).await);
        txn.commit().await.unwrap();
    }
    let mut replicas = cluster.reader_ports();
    replicas.sort_unstable();
    let mut ports: Vec<u16> = ports.into_iter().collect();
    ports.sort_unstable();
    assert_eq!(
        ports, replicas,
        "both replicas serve read-only transactions"
    );

    // An explicit read-write transaction stays on the writer.
    let txn = db
        .begin_with_config(None, Some(AccessMode::ReadWrite))
        .await
        .unwrap();
    assert_eq!(served_by(&txn).await, cluster.writer_port());
    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('c')")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(cluster.count_on_primary("txn_read_only"), 3);
}

async fn a_read_only_transaction_is_read_only_on_the_server_too(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "txn_read_only_writer").await;
    let writer = cluster.writer_port();

    // A writer override sends a read-only transaction to the writer, which accepts writes:
    // only the transaction's own access mode, set on the server, can refuse this one.
    // PostgreSQL: 25006 read_only_sql_transaction; MariaDB: 1792
    // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
    let txn = with_route(
        Route::Writer,
        db.begin_with_config(None, Some(AccessMode::ReadOnly)),
    )
    .await
    .unwrap();
    assert_eq!(served_by(&txn).await, writer);
    let session = connection_id(&txn).await;
    let err = txn
        .execute_unprepared("INSERT INTO cake (name) VALUES ('no')")
        .await
        .unwrap_err();
    let expected = match kind {
        Kind::Postgres => "25006",
        Kind::MySql => "1792",
    };
    assert_eq!(server_error_code(&err), expected, "{err}");
    txn.rollback().await.unwrap();
    assert_eq!(cluster.count_on_primary("txn_read_only_writer"), 0);

    // The access mode is the transaction's only: a later transaction on the same pooled
    // server connection writes again (MySQL's `SET TRANSACTION` without `SESSION` covers the
    // next transaction only).
    let mut reused = false;
    for attempt in 1..=50 {
        let txn = db.begin().await.unwrap();
        assert_eq!(served_by(&txn).await, writer);
        reused = connection_id(&txn).await == session;
        txn.execute_unprepared(&format!("INSERT INTO cake (name) VALUES ('yes {attempt}')"))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        if reused {
            break;
        }
    }
    assert!(reused, "the pool never handed the connection out again");
    assert!(cluster.count_on_primary("txn_read_only_writer") >= 1);
}

async fn a_task_reads_its_own_writes_after_a_committed_transaction(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = with_window(cluster, "txn_read_your_writes").await;
    let writer = cluster.writer_port();
    cluster.assert_reader(served_by(&db).await);

    // A read-only transaction on a reader writes nothing: the task's reads stay on the
    // replicas.
    let port = db
        .transaction_with_config::<_, u16, DbErr>(
            |txn| Box::pin(async move { Ok(served_by(txn).await) }),
            None,
            Some(AccessMode::ReadOnly),
        )
        .await
        .unwrap();
    cluster.assert_reader(port);
    cluster.assert_reader(served_by(&db).await);

    let id = db
        .transaction::<_, i32, DbErr>(|txn| {
            Box::pin(async move {
                let cake = cake::ActiveModel {
                    name: Set("committed".into()),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                Ok(cake.id)
            })
        })
        .await
        .unwrap();

    // Right after the commit, this task's plain reads go to the writer, which has the row
    // (no waiting for replication).
    assert_eq!(served_by(&db).await, writer);
    let found = cake_seen::Entity::find_by_id(id)
        .one(&db)
        .await
        .unwrap()
        .expect("the committed row, read back at once");
    assert_eq!(found.name, "committed");
    assert_eq!(found.read_port, i32::from(writer));

    // Another task has not written: its reads go to a replica.
    let other = from_another_task(&db, |db| async move { served_by(&db).await }).await;
    cluster.assert_reader(other);
    cluster.wait_replicated();
    let seen = from_another_task(&db, move |db| async move {
        cake_seen::Entity::find_by_id(id).one(&db).await.unwrap()
    })
    .await
    .expect("the committed row, replicated");
    cluster.assert_reader(u16::try_from(seen.read_port).unwrap());
}

async fn streams_are_routed_like_statements(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = with_window(cluster, "streams").await;
    let writer = cluster.writer_port();
    let values: Vec<String> = (1..=50).map(|i| format!("('c{i}')")).collect();
    db.execute_unprepared(&format!(
        "INSERT INTO cake (name) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();

    // This task just wrote: its streamed reads go to the writer (read-your-writes), and see
    // the rows without waiting for replication.
    let port_from_cake = format!("SELECT {} AS port FROM cake", cluster.port_expr());
    let rows: Vec<_> = db
        .stream_raw(stmt(&db, &port_from_cake))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| port_in(r).unwrap() == writer));

    // Another task's streams go to a replica.
    cluster.wait_replicated();
    let (rows, seen) = from_another_task(&db, move |db| async move {
        let rows: Vec<_> = db
            .stream_raw(stmt(&db, &port_from_cake))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        // SeaORM's entity stream goes through StreamTrait too.
        let seen: Vec<cake_seen::Model> = cake_seen::Entity::find()
            .stream(&db)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        (rows, seen)
    })
    .await;
    assert_eq!(rows.len(), 50);
    let port = port_in(&rows[0]).unwrap();
    cluster.assert_reader(port);
    assert!(
        rows.iter().all(|r| port_in(r).unwrap() == port),
        "one host per stream"
    );
    assert_eq!(seen.len(), 50);
    cluster.assert_reader(u16::try_from(seen[0].read_port).unwrap());

    // A streamed write that returns rows goes to the writer. PostgreSQL: UPDATE .. RETURNING,
    // the rows stamped by the server that ran it. MariaDB has no UPDATE .. RETURNING: its
    // DELETE .. RETURNING reports the port of the server that ran it.
    let sql = match kind {
        Kind::Postgres => "UPDATE cake SET name = name || '!' RETURNING served_by AS port",
        Kind::MySql => "DELETE FROM cake RETURNING id, @@port AS port",
    };
    let written = from_another_task(&db, move |db| async move {
        let rows: Vec<_> = db
            .stream_raw(stmt(&db, sql))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        rows
    })
    .await;
    assert_eq!(written.len(), 50);
    assert!(written.iter().all(|r| port_in(r).unwrap() == writer));
    match kind {
        Kind::Postgres => assert_eq!(
            cluster
                .admin("streams", "SELECT count(*) FROM cake WHERE name LIKE '%!'")
                .trim(),
            "50"
        ),
        Kind::MySql => assert_eq!(cluster.count_on_primary("streams"), 0),
    }
}

/// A connection whose read-your-writes is a window (plain reads stay on the writer after a
/// write, whatever the replicas have replayed; the default, position mode, is tested in
/// `causal_reads.rs`).
async fn with_window(cluster: &Cluster, name: &str) -> RdsConnection {
    let window = rds_balancer::ReadYourWrites::window(std::time::Duration::from_secs(60));
    setup_with(
        cluster,
        name,
        RdsConnection::builder().read_your_writes(window),
    )
    .await
}
