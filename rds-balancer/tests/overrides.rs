//! Route overrides (`with_route`, `#[writer]`, `#[read_replica]`) and hint comments against a
//! real PostgreSQL cluster.

mod support;

use rds_balancer::{ErrorKind, RdsConnection, Route, read_replica, with_route, writer};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, TransactionTrait};
use support::entities::cake;
use support::{assert_reader, cluster, count_on_primary, port_of, served_by, setup, writer_port};

#[tokio::test]
async fn hint_comments_route_a_single_statement() {
    let cluster = cluster();
    let db = setup("hints").await;
    assert_eq!(
        port_of(&db, "/*@writer*/ SELECT inet_server_port() AS port").await,
        writer_port(cluster)
    );
    assert_reader(
        cluster,
        port_of(&db, "/*@reader*/ SELECT inet_server_port() AS port").await,
    );
    // A reader hint on a certain write is refused before anything is sent.
    let err = db
        .execute_unprepared("/*@reader*/ INSERT INTO cake (name) VALUES ('x')")
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");
    assert_eq!(count_on_primary(cluster, "hints"), 0);
}

#[tokio::test]
async fn with_route_overrides_the_classifier_and_nests() {
    let cluster = cluster();
    let db = setup("with_route").await;
    let writer = writer_port(cluster);
    let (outer, inner, after) = with_route(Route::Writer, async {
        let outer = served_by(&db).await;
        let inner = with_route(Route::Reader, served_by(&db)).await;
        (outer, inner, served_by(&db).await)
    })
    .await;
    assert_eq!(outer, writer);
    assert_reader(cluster, inner);
    assert_eq!(
        after, writer,
        "the outer scope is back after the inner one ends"
    );
    assert_reader(cluster, served_by(&db).await);

    // A writer override beats a reader hint; a reader override beats a writer hint.
    let port = with_route(
        Route::Writer,
        port_of(&db, "/*@reader*/ SELECT inet_server_port() AS port"),
    )
    .await;
    assert_eq!(port, writer);
    let port = with_route(
        Route::Reader,
        port_of(&db, "/*@writer*/ SELECT inet_server_port() AS port"),
    )
    .await;
    assert_reader(cluster, port);

    // A statement the classifier cannot prove read-only (whether `\'` ends this string depends
    // on `standard_conforming_strings`) stays on the writer even under a reader scope.
    let unsure = r"SELECT inet_server_port() AS port WHERE 'a\' <> 'b'";
    assert_eq!(
        rds_balancer::explain(unsure, sea_orm::DatabaseBackend::Postgres).reason,
        rds_balancer::Reason::Ambiguous
    );
    assert_eq!(
        with_route(Route::Reader, port_of(&db, unsure)).await,
        writer
    );

    // A spawned task does not inherit the scope.
    let spawned = with_route(Route::Writer, async {
        let db = db.clone();
        tokio::spawn(async move { served_by(&db).await })
            .await
            .unwrap()
    })
    .await;
    assert_reader(cluster, spawned);
}

#[writer]
async fn read_on_writer(db: &RdsConnection) -> u16 {
    served_by(db).await
}

#[read_replica]
async fn read_on_replica(db: &RdsConnection) -> u16 {
    served_by(db).await
}

#[writer]
async fn writer_calling_replica(db: &RdsConnection) -> (u16, u16, u16) {
    let before = served_by(db).await;
    let inner = read_on_replica(db).await;
    (before, inner, served_by(db).await)
}

#[read_replica]
async fn insert_under_read_replica(db: &RdsConnection) -> Result<cake::Model, DbErr> {
    cake::ActiveModel {
        name: Set("refused".into()),
        ..Default::default()
    }
    .insert(db)
    .await
}

#[read_replica]
async fn transaction_under_read_replica(db: &RdsConnection) -> Result<(u16, bool), DbErr> {
    let txn = db.begin().await?;
    let port = served_by(&txn).await;
    let write_failed = txn
        .execute_unprepared("INSERT INTO cake (name) VALUES ('no')")
        .await
        .is_err();
    txn.rollback().await?;
    Ok((port, write_failed))
}

#[tokio::test]
async fn route_macros_override_and_nest() {
    let cluster = cluster();
    let db = setup("macros").await;
    let writer = writer_port(cluster);

    assert_eq!(read_on_writer(&db).await, writer);
    assert_reader(cluster, read_on_replica(&db).await);
    let (before, inner, after) = writer_calling_replica(&db).await;
    assert_eq!(before, writer);
    assert_reader(cluster, inner);
    assert_eq!(after, writer);
    // Inside a reader override from outside, the writer macro still wins (innermost).
    assert_eq!(with_route(Route::Reader, read_on_writer(&db)).await, writer);

    let err = insert_under_read_replica(&db).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");
    assert_eq!(count_on_primary(cluster, "macros"), 0, "nothing was sent");

    let (port, write_failed) = transaction_under_read_replica(&db).await.unwrap();
    assert_reader(cluster, port);
    assert!(write_failed, "the reader's transaction is read-only");
}
