//! Transactions and streams through `RdsConnection` against a real PostgreSQL cluster.

mod support;

use futures_util::TryStreamExt;
use sea_orm::{
    AccessMode, ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait,
    StreamTrait, TransactionError, TransactionTrait,
};
use support::entities::{cake, cake_seen};
use support::{
    assert_reader, cluster, count_on_primary, port_of, served_by, setup, stmt, wait_replicated,
    writer_port,
};

#[tokio::test]
async fn a_transaction_runs_every_statement_on_the_writer_and_commits() {
    let cluster = cluster();
    let db = setup("txn_commit").await;
    let txn = db.begin().await.unwrap();
    // Even a plain read inside a transaction goes to the transaction's host: the writer.
    assert_eq!(served_by(&txn).await, writer_port(cluster));
    cake::ActiveModel {
        name: Set("in txn".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    assert_eq!(
        count_on_primary(cluster, "txn_commit"),
        0,
        "not visible before commit"
    );
    txn.commit().await.unwrap();
    assert_eq!(count_on_primary(cluster, "txn_commit"), 1);
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_nothing() {
    let cluster = cluster();
    let db = setup("txn_rollback").await;
    let txn = db.begin().await.unwrap();
    cake::ActiveModel {
        name: Set("gone".into()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(count_on_primary(cluster, "txn_rollback"), 0);

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
    assert_eq!(count_on_primary(cluster, "txn_rollback"), 0);

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
    assert_eq!(port, writer_port(cluster));
    assert_eq!(count_on_primary(cluster, "txn_rollback"), 1);
}

#[tokio::test]
async fn a_read_only_transaction_runs_on_a_reader() {
    let cluster = cluster();
    let db = setup("txn_read_only").await;
    db.execute_unprepared("INSERT INTO cake (name) VALUES ('a'), ('b')")
        .await
        .unwrap();
    wait_replicated(cluster);

    let txn = db
        .begin_with_config(None, Some(AccessMode::ReadOnly))
        .await
        .unwrap();
    let port = served_by(&txn).await;
    assert_reader(cluster, port);
    // Every statement of the transaction stays on that reader.
    assert_eq!(served_by(&txn).await, port);
    assert_eq!(
        port_of(&txn, "SELECT inet_server_port() AS port FROM cake LIMIT 1").await,
        port
    );
    assert_eq!(cake::Entity::find().all(&txn).await.unwrap().len(), 2);
    let write = txn
        .execute_unprepared("INSERT INTO cake (name) VALUES ('no')")
        .await;
    assert!(write.is_err(), "a write in a read-only transaction fails");
    txn.rollback().await.unwrap();

    let in_closure = db
        .transaction_with_config::<_, u16, DbErr>(
            |txn| Box::pin(async move { Ok(served_by(txn).await) }),
            None,
            Some(AccessMode::ReadOnly),
        )
        .await
        .unwrap();
    assert_reader(cluster, in_closure);
    // An explicit read-write transaction stays on the writer.
    let txn = db
        .begin_with_config(None, Some(AccessMode::ReadWrite))
        .await
        .unwrap();
    assert_eq!(served_by(&txn).await, writer_port(cluster));
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn streams_are_routed_like_statements() {
    let cluster = cluster();
    let db = setup("streams").await;
    db.execute_unprepared("INSERT INTO cake (name) SELECT 'c' || g FROM generate_series(1, 50) g")
        .await
        .unwrap();
    wait_replicated(cluster);

    let rows: Vec<_> = db
        .stream_raw(stmt(&db, "SELECT inet_server_port() AS port FROM cake"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    let port = u16::try_from(rows[0].try_get::<i32>("", "port").unwrap()).unwrap();
    assert_reader(cluster, port);

    // SeaORM's entity stream goes through StreamTrait too.
    let seen: Vec<cake_seen::Model> = cake_seen::Entity::find()
        .stream(&db)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seen.len(), 50);
    assert_reader(cluster, u16::try_from(seen[0].read_port).unwrap());

    // A streamed UPDATE .. RETURNING goes to the writer.
    let updated: Vec<_> = db
        .stream_raw(stmt(
            &db,
            "UPDATE cake SET name = name || '!' RETURNING served_by AS port",
        ))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(updated.len(), 50);
    assert!(
        updated
            .iter()
            .all(|r| r.try_get::<i32>("", "port").unwrap() == i32::from(writer_port(cluster)))
    );
}
