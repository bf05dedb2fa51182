//! Statement routing through `RdsConnection` against a real primary and two replicas, on
//! PostgreSQL and on MariaDB (each test body runs on both). Every test asks the server which
//! host served what.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rds_balancer::{ErrorKind, RdsConnection, ReaderSelection, Reason, Target};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait, ModelTrait};
use support::entities::{cake, cake_seen};
use support::{
    Cluster, Kind, backend_tests, from_another_task, port_of, served_by, setup_in, setup_with, stmt,
};

backend_tests!(
    entity_insert_update_delete_run_on_the_writer_and_find_on_a_reader,
    a_task_reads_its_own_writes_from_the_writer,
    raw_statements_are_routed_by_what_they_do,
    reads_spread_over_both_replicas,
    reads_fall_back_to_the_writer_when_no_reader_is_reachable,
    existing_database_connections_can_be_used_as_hosts,
    a_reader_of_another_database_kind_is_a_config_error,
    statements_set_up_small_futures,
);

async fn entity_insert_update_delete_run_on_the_writer_and_find_on_a_reader(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "entity_crud").await;
    let writer = i32::from(cluster.writer_port());

    // PostgreSQL: INSERT .. RETURNING arrives through query_one, and must go to the writer.
    // MySQL has no RETURNING: SeaORM inserts, then reads the row back by the writer's last
    // insert id, and that read must find it (read-your-writes keeps it on the writer).
    let cake = cake::ActiveModel {
        name: Set("sponge".into()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    assert_eq!(cake.served_by, Some(writer), "insert served by the writer");
    assert_eq!(cluster.count_on_primary("entity_crud"), 1);
    let second = cake::ActiveModel {
        name: Set("second".into()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    assert_eq!(second.id, cake.id + 1, "the writer's insert id");

    let mut active: cake::ActiveModel = cake.into();
    active.name = Set("lemon".into());
    let updated = active.update(&db).await.unwrap();
    assert_eq!(updated.name, "lemon");
    assert_eq!(
        updated.served_by,
        Some(writer),
        "update served by the writer"
    );

    cluster.wait_replicated();
    let id = updated.id;
    let (seen, found) = from_another_task(&db, |db| async move {
        let seen = cake_seen::Entity::find().all(&db).await.unwrap();
        let found = cake_seen::Entity::find_by_id(id).one(&db).await.unwrap();
        (seen, found.expect("found"))
    })
    .await;
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().any(|c| c.name == "lemon"), "{seen:?}");
    for row in seen.iter().chain([&found]) {
        cluster.assert_reader(u16::try_from(row.read_port).unwrap());
    }

    let result = updated.delete(&db).await.unwrap();
    assert_eq!(result.rows_affected, 1);
    assert_eq!(
        cluster.count_on_primary("entity_crud"),
        1,
        "the delete reached the writer"
    );
}

async fn a_task_reads_its_own_writes_from_the_writer(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("read_your_writes");
    let connect = async |window| {
        let mut builder = RdsConnection::builder()
            .writer(cluster.writer_url("read_your_writes"))
            .read_your_writes(window)
            .sqlx_logging(false);
        for url in cluster.reader_urls("read_your_writes") {
            builder = builder.reader(url);
        }
        builder.build().await.unwrap()
    };
    let insert = "INSERT INTO cake (name) VALUES ('x')";

    // Default window (1 s): right after its write, the task's reads go to the writer; another
    // task's reads do not.
    let db = connect(Duration::from_secs(1)).await;
    cluster.assert_reader(served_by(&db).await);
    db.execute_unprepared(insert).await.unwrap();
    assert_eq!(served_by(&db).await, cluster.writer_port());
    let other = from_another_task(&db, |db| async move { served_by(&db).await }).await;
    cluster.assert_reader(other);
    // A `/*@reader*/` hint wins.
    let hinted = format!("/*@reader*/ {}", cluster.port_sql());
    cluster.assert_reader(port_of(&db, &hinted).await);
    // Once the window has passed, reads go to the replicas again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cluster.assert_reader(served_by(&db).await);

    // Off: reads go to the replicas straight after a write.
    let off = connect(Duration::ZERO).await;
    off.execute_unprepared(insert).await.unwrap();
    cluster.assert_reader(served_by(&off).await);
}

async fn raw_statements_are_routed_by_what_they_do(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "raw_statements").await;
    let writer = cluster.writer_port();
    let port = cluster.port_expr();

    cluster.assert_reader(served_by(&db).await);
    let commented = format!("  -- a comment\n SELECT {port} AS port");
    cluster.assert_reader(port_of(&db, &commented).await);
    let cte = format!("WITH x AS (SELECT 1 AS one) SELECT {port} AS port FROM x");
    cluster.assert_reader(port_of(&db, &cte).await);
    // Side effects, locking and session state go to the writer.
    assert_eq!(port_of(&db, cluster.side_effect_port_sql()).await, writer);
    let session_bound: &[&str] = match kind {
        Kind::Postgres => &[
            "SELECT inet_server_port() AS port, pg_advisory_xact_lock(1)",
            "SELECT inet_server_port() AS port, txid_current()",
        ],
        Kind::MySql => &[
            "SELECT @@port AS port, LAST_INSERT_ID()",
            "SELECT @@port AS port, FOUND_ROWS()",
            "SELECT @@port AS port, @ticket := 1",
        ],
    };
    for sql in session_bound {
        assert_eq!(port_of(&db, sql).await, writer, "{sql}");
    }
    db.execute_unprepared("INSERT INTO cake (name) VALUES ('a')")
        .await
        .unwrap();
    let for_update = format!("SELECT {port} AS port FROM cake LIMIT 1 FOR UPDATE");
    assert_eq!(port_of(&db, &for_update).await, writer);
    if kind == Kind::Postgres {
        let returning = "UPDATE cake SET name = 'b' RETURNING served_by AS port";
        assert_eq!(port_of(&db, returning).await, writer);
    }
    // A statement the classifier cannot read goes to the writer, even hinted to a reader: here
    // one whose extent depends on what the server makes of it (PostgreSQL's
    // `standard_conforming_strings` decides where `'a\'` ends; MariaDB runs the code of an
    // executable comment). Each is valid SQL to the server, which says who answered. Asked from
    // a task that has not written, so that read-your-writes cannot send it to the writer.
    let unsure = match kind {
        Kind::Postgres => r"SELECT inet_server_port() AS port WHERE 'a\' <> 'b'",
        Kind::MySql => "SELECT @@port AS port /*!, 1 AS hidden */",
    };
    for sql in [unsure.to_owned(), format!("/*@reader*/ {unsure}")] {
        let why = rds_balancer::explain(&sql, cluster.backend());
        assert_eq!(
            (why.target, why.reason),
            (Target::Writer, Reason::Ambiguous),
            "{sql}"
        );
        let read = sql.clone();
        let port = from_another_task(&db, |db| async move { port_of(&db, &read).await }).await;
        assert_eq!(port, writer, "{sql}");
    }
    // A statement no server accepts fails with the server's own error, not one of ours.
    let err = db.execute_raw(stmt(&db, "SELEKT 1")).await.unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        None,
        "the database's own error passes through: {err}"
    );
    // DDL through execute_unprepared reaches the writer.
    db.execute_unprepared("CREATE TABLE extra (id int)")
        .await
        .unwrap();
    assert_eq!(
        cluster
            .admin("raw_statements", "SELECT count(*) FROM extra")
            .trim(),
        "0"
    );
}

async fn reads_spread_over_both_replicas(kind: Kind) {
    let cluster = Cluster::shared(kind);
    for selection in [
        ReaderSelection::PowerOfTwoChoices,
        ReaderSelection::RoundRobin,
        ReaderSelection::Random,
    ] {
        let name = format!("spread_{selection:?}").to_lowercase();
        let builder = RdsConnection::builder().reader_selection(selection);
        let db = setup_with(cluster, &name, builder).await;
        let mut per_port: HashMap<u16, usize> = HashMap::new();
        for _ in 0..200 {
            *per_port.entry(served_by(&db).await).or_default() += 1;
        }
        assert!(
            !per_port.contains_key(&cluster.writer_port()),
            "{selection:?}: a read reached the writer: {per_port:?}"
        );
        for port in cluster.reader_ports() {
            let n = per_port.get(&port).copied().unwrap_or(0);
            assert!(
                n >= 40,
                "{selection:?}: replica {port} served {n} of 200 reads: {per_port:?}"
            );
        }
    }
}

async fn reads_fall_back_to_the_writer_when_no_reader_is_reachable(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("fallback");
    let url = cluster.writer_url("fallback");
    // A reader URL where nothing listens: it joins unhealthy and takes no reads.
    let dead = cluster.dead_url("fallback");
    let live = cluster.replicas()[1];

    let no_readers = RdsConnection::builder()
        .writer(url.clone())
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    assert_eq!(served_by(&no_readers).await, cluster.writer_port());

    let dead_reader = RdsConnection::builder()
        .writer(url.clone())
        .reader(dead.clone())
        .connect_timeout(Duration::from_secs(2))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    assert_eq!(served_by(&dead_reader).await, cluster.writer_port());

    // One dead, one live reader: every read goes to the live one.
    let one_alive = RdsConnection::builder()
        .writer(url.clone())
        .reader(dead.clone())
        .reader(live.url("fallback"))
        .connect_timeout(Duration::from_secs(2))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(served_by(&one_alive).await, live.port());
    }

    let strict = RdsConnection::builder()
        .writer(url)
        .reader(dead)
        .fallback_to_writer(false)
        .connect_timeout(Duration::from_secs(2))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let err = strict
        .query_one_raw(stmt(&strict, "SELECT 1"))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::NoActiveReaders),
        "{err}"
    );
    // Writes are unaffected.
    assert_eq!(
        port_of(&strict, cluster.side_effect_port_sql()).await,
        cluster.writer_port()
    );
}

async fn existing_database_connections_can_be_used_as_hosts(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("handed_over");
    let writer = sea_orm::Database::connect(cluster.writer_url("handed_over"))
        .await
        .unwrap();
    let reader_node = cluster.replicas()[0];
    let reader = sea_orm::Database::connect(reader_node.url("handed_over"))
        .await
        .unwrap();
    let db = RdsConnection::builder()
        .writer_connection(writer)
        .reader_connection(reader)
        .build()
        .await
        .unwrap();
    assert_eq!(served_by(&db).await, reader_node.port());
    assert_eq!(
        port_of(&db, cluster.side_effect_port_sql()).await,
        cluster.writer_port()
    );
}

async fn a_reader_of_another_database_kind_is_a_config_error(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let other = Cluster::shared(match kind {
        Kind::Postgres => Kind::MySql,
        Kind::MySql => Kind::Postgres,
    });
    // Both clusters serve this body once per backend: one database name per direction.
    let name = format!("other_kind_{kind:?}").to_lowercase();
    cluster.create_database(&name);
    other.create_database(&name);
    let reader = sea_orm::Database::connect(other.writer_url(&name))
        .await
        .unwrap();
    let err = RdsConnection::builder()
        .writer(cluster.writer_url(&name))
        .reader_connection(reader)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let err = RdsConnection::builder()
        .writer(cluster.writer_url(&name))
        .reader_connection(sea_orm::DatabaseConnection::default())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

/// Every statement boxes its future (SeaORM's traits are `async_trait`), so the size of that
/// future is paid on every call: allocated, copied in, and touched. The rare paths (a
/// failover to wait for, a read to retry, a replica to wait for, a blue/green switchover) are
/// boxed apart so that it stays small; before they were, a routed SELECT's future took 7 KB
/// and a transaction's statement's 6 KB, and the routing overhead bench measured 2-4 % more.
async fn statements_set_up_small_futures(kind: Kind) {
    use sea_orm::TransactionTrait;
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, "small_futures").await;
    let select = db.query_one_raw(stmt(&db, "SELECT 1"));
    let statement = std::mem::size_of_val(&*select);
    drop(select);
    let txn = db.begin().await.unwrap();
    let update = txn.execute_unprepared("UPDATE cake SET name = name WHERE id = 0");
    let in_transaction = std::mem::size_of_val(&*update);
    drop(update);
    txn.rollback().await.unwrap();
    assert!(statement <= LIMIT, "a statement's future is {statement} B");
    assert!(
        in_transaction <= LIMIT,
        "a transaction's statement's future is {in_transaction} B"
    );
}

/// The most a statement's future may take.
const LIMIT: usize = 2048;
