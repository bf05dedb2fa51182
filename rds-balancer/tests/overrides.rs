//! Route overrides (`with_route`, `#[writer]`, `#[read_replica]`) and hint comments against a
//! real primary and two replicas, on PostgreSQL and on MariaDB (each test body runs on both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies and helpers outside #[test] fns

mod support;

use std::time::Duration;

use rds_balancer::{
    ErrorKind, RdsConnection, ReadYourWrites, Reason, Route, read_replica, with_route, writer,
};
use sea_orm::{
    AccessMode, ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, TransactionTrait,
};
use support::entities::cake;
use support::{Cluster, Kind, backend_tests, port_of, served_by, setup_in, setup_with, stmt};

backend_tests!(
    hint_comments_route_a_single_statement,
    with_route_overrides_the_classifier_and_nests,
    a_reader_override_refuses_writes_before_sending_them,
    overrides_and_hints_win_over_read_your_writes,
    route_macros_override_and_nest,
    route_macros_on_methods_and_trait_impls_route_real_statements,
);

async fn hint_comments_route_a_single_statement(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "hints").await;
    let writer = cluster.writer_port();
    let port_sql = cluster.port_sql();
    // Without a hint, the classifier sends this read to a replica.
    cluster.assert_reader(port_of(&db, port_sql).await);
    assert_eq!(
        port_of(&db, &format!("/*@writer*/ {port_sql}")).await,
        writer
    );
    cluster.assert_reader(port_of(&db, &format!("/*@reader*/ {port_sql}")).await);
    // A hint after leading whitespace still counts.
    assert_eq!(
        port_of(&db, &format!("  /*@writer*/ {port_sql}")).await,
        writer
    );
    // A reader hint does not make a side effect safe for a replica: the classifier finds
    // `nextval` / `GET_LOCK` certainly a write...
    let side_effect = format!("/*@reader*/ {}", cluster.side_effect_port_sql());
    assert!(
        rds_balancer::explain(&side_effect, cluster.backend())
            .reason
            .is_write()
    );
    // ...so it is refused before anything is sent.
    let err = db.query_one_raw(stmt(&db, &side_effect)).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");
    // A reader hint on a certain write is refused before anything is sent.
    let err = db
        .execute_unprepared("/*@reader*/ INSERT INTO cake (name) VALUES ('x')")
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");
    assert_eq!(cluster.count_on_primary("hints"), 0);
    // A writer hint on a write is just a write.
    db.execute_unprepared("/*@writer*/ INSERT INTO cake (name) VALUES ('y')")
        .await
        .unwrap();
    assert_eq!(cluster.count_on_primary("hints"), 1);
}

async fn with_route_overrides_the_classifier_and_nests(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "with_route").await;
    let writer = cluster.writer_port();
    let port_sql = cluster.port_sql();
    let (outer, inner, after) = with_route(Route::Writer, async {
        let outer = served_by(&db).await;
        let inner = with_route(Route::Reader, served_by(&db)).await;
        (outer, inner, served_by(&db).await)
    })
    .await;
    assert_eq!(outer, writer);
    cluster.assert_reader(inner);
    assert_eq!(
        after, writer,
        "the outer scope is back after the inner one ends"
    );
    cluster.assert_reader(served_by(&db).await);

    // A writer override beats a reader hint; a reader override beats a writer hint.
    let reader_hinted = format!("/*@reader*/ {port_sql}");
    let port = with_route(Route::Writer, port_of(&db, &reader_hinted)).await;
    assert_eq!(port, writer);
    let writer_hinted = format!("/*@writer*/ {port_sql}");
    let port = with_route(Route::Reader, port_of(&db, &writer_hinted)).await;
    cluster.assert_reader(port);

    // A statement the classifier cannot prove read-only stays on the writer even under a
    // reader scope. Where `\'` ends a string depends on a session setting on both backends
    // (PostgreSQL's `standard_conforming_strings`, MySQL's `NO_BACKSLASH_ESCAPES`); each
    // statement is valid SQL under the server's default.
    let unsure = match kind {
        Kind::Postgres => r"SELECT inet_server_port() AS port WHERE 'a\' <> 'b'",
        Kind::MySql => r"SELECT @@port AS port FROM DUAL WHERE 'it\'s' <> 'b'",
    };
    assert_eq!(
        rds_balancer::explain(unsure, cluster.backend()).reason,
        Reason::Ambiguous
    );
    assert_eq!(
        with_route(Route::Reader, port_of(&db, unsure)).await,
        writer
    );
    // Without a scope too.
    assert_eq!(port_of(&db, unsure).await, writer);

    // Transactions follow the scope: a writer scope opens them on the writer (even a
    // read-only one), a reader scope on a replica (read-only).
    let txn = with_route(
        Route::Writer,
        db.begin_with_config(None, Some(AccessMode::ReadOnly)),
    )
    .await
    .unwrap();
    assert_eq!(served_by(&txn).await, writer);
    txn.commit().await.unwrap();
    let txn = with_route(Route::Reader, db.begin()).await.unwrap();
    cluster.assert_reader(served_by(&txn).await);
    txn.commit().await.unwrap();

    // A spawned task does not inherit the scope.
    let spawned = with_route(Route::Writer, async {
        let db = db.clone();
        tokio::spawn(async move { served_by(&db).await })
            .await
            .unwrap()
    })
    .await;
    cluster.assert_reader(spawned);
}

async fn a_reader_override_refuses_writes_before_sending_them(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "reader_refuses").await;

    // Each refused before anything is sent: a `WriteRefused` from the library, not the
    // replica's own read-only error.
    for sql in [
        "INSERT INTO cake (name) VALUES ('x')",
        "UPDATE cake SET name = 'y'",
        "DELETE FROM cake",
        "CREATE TABLE extra (id int)",
    ] {
        let err = with_route(Route::Reader, db.execute_unprepared(sql))
            .await
            .unwrap_err();
        assert_eq!(
            ErrorKind::of(&err),
            Some(ErrorKind::WriteRefused),
            "{sql}: {err}"
        );
    }
    let side_effect = stmt(&db, cluster.side_effect_port_sql());
    let err = with_route(Route::Reader, db.query_one_raw(side_effect))
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");
    // SeaORM's insert (RETURNING on PostgreSQL, insert + read back on MySQL).
    let err = with_route(
        Route::Reader,
        cake::ActiveModel {
            name: Set("refused".into()),
            ..Default::default()
        }
        .insert(&db),
    )
    .await
    .unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");
    // An explicitly read-write transaction cannot open under a reader scope.
    let err = with_route(
        Route::Reader,
        db.begin_with_config(None, Some(AccessMode::ReadWrite)),
    )
    .await
    .unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");

    assert_eq!(cluster.count_on_primary("reader_refuses"), 0);
    assert_eq!(
        cluster
            .admin(
                "reader_refuses",
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'extra'",
            )
            .trim(),
        "0",
        "the DDL never ran"
    );
    // Outside the scope the same connection writes as usual.
    db.execute_unprepared("INSERT INTO cake (name) VALUES ('x')")
        .await
        .unwrap();
    assert_eq!(cluster.count_on_primary("reader_refuses"), 1);
}

async fn overrides_and_hints_win_over_read_your_writes(kind: Kind) {
    let cluster = Cluster::shared(kind);
    // A window: plain reads stay on the writer after the write whatever the replicas have
    // replayed (position mode, the default, would send them to a replica that has the write).
    let window = ReadYourWrites::window(Duration::from_secs(60));
    let builder = RdsConnection::builder().read_your_writes(window);
    let db = setup_with(cluster, "overrides_vs_ryw", builder).await;
    let writer = cluster.writer_port();
    db.execute_unprepared("INSERT INTO cake (name) VALUES ('x')")
        .await
        .unwrap();
    // This task just wrote: its plain reads go to the writer...
    assert_eq!(served_by(&db).await, writer);
    // ...but a reader override, `#[read_replica]` and a `/*@reader*/` hint still reach a
    // replica (the caller accepts replication lag there).
    cluster.assert_reader(with_route(Route::Reader, served_by(&db)).await);
    cluster.assert_reader(read_on_replica(&db).await);
    let hinted = format!("/*@reader*/ {}", cluster.port_sql());
    cluster.assert_reader(port_of(&db, &hinted).await);
    // A read-only transaction asks for a reader too.
    let txn = db
        .begin_with_config(None, Some(AccessMode::ReadOnly))
        .await
        .unwrap();
    cluster.assert_reader(served_by(&txn).await);
    txn.commit().await.unwrap();
    // And the plain reads are still on the writer.
    assert_eq!(served_by(&db).await, writer);
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

#[writer]
async fn insert_under_writer(db: &RdsConnection) -> Result<cake::Model, DbErr> {
    cake::ActiveModel {
        name: Set("written".into()),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// A transaction opened under `#[read_replica]`: where it ran, and the server's answer to a
/// write in it.
#[read_replica]
async fn transaction_under_read_replica(db: &RdsConnection) -> Result<(u16, DbErr), DbErr> {
    let txn = db.begin().await?;
    let port = served_by(&txn).await;
    let write = txn
        .execute_unprepared("INSERT INTO cake (name) VALUES ('no')")
        .await;
    txn.rollback().await?;
    match write {
        Ok(_) => panic!("a write in a reader's transaction succeeded"),
        Err(err) => Ok((port, err)),
    }
}

async fn route_macros_override_and_nest(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "macros").await;
    let writer = cluster.writer_port();

    assert_eq!(read_on_writer(&db).await, writer);
    cluster.assert_reader(read_on_replica(&db).await);
    let (before, inner, after) = writer_calling_replica(&db).await;
    assert_eq!(before, writer);
    cluster.assert_reader(inner);
    assert_eq!(after, writer);
    // Inside a reader override from outside, the writer macro still wins (innermost).
    assert_eq!(with_route(Route::Reader, read_on_writer(&db)).await, writer);
    // And inside a writer override, the reader macro.
    cluster.assert_reader(with_route(Route::Writer, read_on_replica(&db)).await);

    let err = insert_under_read_replica(&db).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), Some(ErrorKind::WriteRefused), "{err}");
    assert_eq!(cluster.count_on_primary("macros"), 0, "nothing was sent");

    // The transaction opens on a replica, read-only, and the replica itself refuses the write
    // (the library does not look into a transaction's statements): PostgreSQL's 25006
    // read_only_sql_transaction, MariaDB's 1290 (the replica's `--read-only`).
    let (port, err) = transaction_under_read_replica(&db).await.unwrap();
    cluster.assert_reader(port);
    assert_eq!(ErrorKind::of(&err), None, "the server's own error: {err}");
    let refusal = match kind {
        Kind::Postgres => "cannot execute INSERT in a read-only transaction",
        Kind::MySql => "1290",
    };
    assert!(err.to_string().contains(refusal), "{err}");
    assert_eq!(cluster.count_on_primary("macros"), 0);

    // `#[writer]` writes, and SeaORM's insert works through it (MySQL reads the row back).
    let written = insert_under_writer(&db).await.unwrap();
    assert_eq!(written.served_by, Some(i32::from(writer)));
    assert_eq!(cluster.count_on_primary("macros"), 1);
}

/// A repository as applications write them: the connection in a struct, routed methods.
struct Cakes {
    db: RdsConnection,
}

impl Cakes {
    #[read_replica]
    async fn count(&self) -> Result<(u64, u16), DbErr> {
        let count = cake::Entity::find().count(&self.db).await?;
        Ok((count, served_by(&self.db).await))
    }

    #[writer]
    async fn add(&mut self, name: &str) -> Result<cake::Model, DbErr> {
        cake::ActiveModel {
            name: Set(name.to_owned()),
            ..Default::default()
        }
        .insert(&self.db)
        .await
    }
}

#[async_trait::async_trait]
trait Report {
    fn db(&self) -> &RdsConnection;

    async fn port(&self) -> u16;

    /// A default body, routed to the writer, calling a method routed to a reader.
    #[writer]
    async fn fresh_port(&self) -> (u16, u16) {
        (served_by(self.db()).await, self.port().await)
    }
}

#[async_trait::async_trait]
impl Report for Cakes {
    fn db(&self) -> &RdsConnection {
        &self.db
    }

    #[read_replica]
    async fn port(&self) -> u16 {
        served_by(&self.db).await
    }
}

/// `#[writer]` on a fn returning a future: the scope covers the future it returns.
#[writer]
fn port_later(db: RdsConnection) -> impl Future<Output = u16> + Send {
    async move { served_by(&db).await }
}

async fn route_macros_on_methods_and_trait_impls_route_real_statements(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "macro_shapes").await;
    let writer = cluster.writer_port();
    let mut cakes = Cakes { db: db.clone() };

    let added = cakes.add("one").await.unwrap();
    assert_eq!(added.served_by, Some(i32::from(writer)));
    assert_eq!(cluster.count_on_primary("macro_shapes"), 1);
    cluster.wait_replicated();
    // Right after this task's write, yet on a replica: the method's scope wins.
    let (count, port) = cakes.count().await.unwrap();
    assert_eq!(count, 1);
    cluster.assert_reader(port);

    cluster.assert_reader(cakes.port().await);
    // The default body runs under its writer scope, the reader method it calls under its own.
    let (outer, inner) = cakes.fresh_port().await;
    assert_eq!(outer, writer);
    cluster.assert_reader(inner);
    let dyn_report: &dyn Report = &cakes;
    cluster.assert_reader(dyn_report.port().await);

    assert_eq!(port_later(db.clone()).await, writer);
    // A reader scope around it does not reach inside.
    assert_eq!(with_route(Route::Reader, port_later(db)).await, writer);
}
