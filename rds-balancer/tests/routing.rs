//! Statement routing through `RdsConnection` against a real PostgreSQL primary and two streaming
//! replicas. Every test asks the server which host served what.

mod support;

use std::collections::HashMap;

use rds_balancer::{ErrorKind, RdsConnection, ReaderSelection};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait, ModelTrait};
use support::entities::{cake, cake_seen};
use support::{
    assert_reader, cluster, count_on_primary, port_of, served_by, setup, stmt, wait_replicated,
    writer_port,
};

#[tokio::test]
async fn entity_insert_update_delete_run_on_the_writer_and_find_on_a_reader() {
    let cluster = cluster();
    let db = setup("entity_crud").await;

    // INSERT .. RETURNING arrives through query_one: it must still go to the writer.
    let cake = cake::ActiveModel {
        name: Set("sponge".into()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    assert_eq!(
        cake.served_by,
        Some(i32::from(writer_port(cluster))),
        "insert served by the writer"
    );
    assert_eq!(count_on_primary(cluster, "entity_crud"), 1);

    let mut active: cake::ActiveModel = cake.into();
    active.name = Set("lemon".into());
    let updated = active.update(&db).await.unwrap();
    assert_eq!(updated.name, "lemon");
    assert_eq!(
        updated.served_by,
        Some(i32::from(writer_port(cluster))),
        "update served by the writer"
    );

    wait_replicated(cluster);
    let seen = cake_seen::Entity::find().all(&db).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name, "lemon");
    assert_reader(cluster, u16::try_from(seen[0].read_port).unwrap());
    let found = cake_seen::Entity::find_by_id(updated.id)
        .one(&db)
        .await
        .unwrap()
        .expect("found");
    assert_reader(cluster, u16::try_from(found.read_port).unwrap());

    let result = updated.delete(&db).await.unwrap();
    assert_eq!(result.rows_affected, 1);
    assert_eq!(
        count_on_primary(cluster, "entity_crud"),
        0,
        "the delete reached the writer"
    );
}

#[tokio::test]
async fn raw_statements_are_routed_by_what_they_do() {
    let cluster = cluster();
    let db = setup("raw_statements").await;
    let writer = writer_port(cluster);

    assert_reader(cluster, served_by(&db).await);
    assert_reader(
        cluster,
        port_of(&db, "  -- a comment\n SELECT inet_server_port() AS port").await,
    );
    assert_reader(
        cluster,
        port_of(
            &db,
            "WITH x AS (SELECT 1) SELECT inet_server_port() AS port FROM x",
        )
        .await,
    );
    // Side effects, locking and session state go to the writer.
    assert_eq!(
        port_of(&db, "SELECT inet_server_port() AS port, nextval('ticket')").await,
        writer
    );
    assert_eq!(
        port_of(
            &db,
            "SELECT inet_server_port() AS port, pg_advisory_xact_lock(1)"
        )
        .await,
        writer
    );
    assert_eq!(
        port_of(&db, "SELECT inet_server_port() AS port, txid_current()").await,
        writer
    );
    db.execute_unprepared("INSERT INTO cake (name) VALUES ('a')")
        .await
        .unwrap();
    assert_eq!(
        port_of(
            &db,
            "SELECT inet_server_port() AS port FROM cake LIMIT 1 FOR UPDATE"
        )
        .await,
        writer
    );
    assert_eq!(
        port_of(
            &db,
            "UPDATE cake SET name = 'b' RETURNING served_by AS port"
        )
        .await,
        writer
    );
    // Unsure (here: not even SQL) goes to the writer, which reports the error.
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
            .psql("raw_statements", "SELECT count(*) FROM extra")
            .unwrap()
            .trim(),
        "0"
    );
}

#[tokio::test]
async fn reads_spread_over_both_replicas() {
    let cluster = cluster();
    for selection in [
        ReaderSelection::PowerOfTwoChoices,
        ReaderSelection::RoundRobin,
        ReaderSelection::Random,
    ] {
        let name = format!("spread_{selection:?}").to_lowercase();
        support::create_database(cluster, &name);
        let mut builder = RdsConnection::builder()
            .writer(cluster.primary().url(&name))
            .reader_selection(selection)
            .sqlx_logging(false);
        for replica in cluster.replicas() {
            builder = builder.reader(replica.url(&name));
        }
        let db = builder.build().await.unwrap();
        let mut per_port: HashMap<u16, usize> = HashMap::new();
        for _ in 0..200 {
            *per_port.entry(served_by(&db).await).or_default() += 1;
        }
        assert!(
            !per_port.contains_key(&writer_port(cluster)),
            "{selection:?}: a read reached the writer: {per_port:?}"
        );
        for replica in cluster.replicas() {
            let n = per_port.get(&replica.port()).copied().unwrap_or(0);
            assert!(
                n >= 40,
                "{selection:?}: replica {} served {n} of 200 reads: {per_port:?}",
                replica.port()
            );
        }
    }
}

#[tokio::test]
async fn reads_fall_back_to_the_writer_when_no_reader_is_reachable() {
    let cluster = cluster();
    support::create_database(cluster, "fallback");
    let url = cluster.primary().url("fallback");
    // A reader URL where nothing listens: left out at start-up.
    let dead = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("postgres://postgres@127.0.0.1:{port}/fallback")
    };

    let no_readers = RdsConnection::builder()
        .writer(url.clone())
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    assert_eq!(served_by(&no_readers).await, writer_port(cluster));

    let dead_reader = RdsConnection::builder()
        .writer(url.clone())
        .reader(dead.clone())
        .connect_timeout(std::time::Duration::from_secs(2))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    assert_eq!(served_by(&dead_reader).await, writer_port(cluster));

    // One dead, one live reader: every read goes to the live one.
    let one_alive = RdsConnection::builder()
        .writer(url.clone())
        .reader(dead.clone())
        .reader(cluster.replicas()[1].url("fallback"))
        .connect_timeout(std::time::Duration::from_secs(2))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(served_by(&one_alive).await, cluster.replicas()[1].port());
    }

    let strict = RdsConnection::builder()
        .writer(url)
        .reader(dead)
        .fallback_to_writer(false)
        .connect_timeout(std::time::Duration::from_secs(2))
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
        port_of(
            &strict,
            "SELECT inet_server_port() AS port, nextval('ticket')"
        )
        .await,
        writer_port(cluster)
    );
}

#[tokio::test]
async fn existing_database_connections_can_be_used_as_hosts() {
    let cluster = cluster();
    support::create_database(cluster, "handed_over");
    let writer = sea_orm::Database::connect(cluster.primary().url("handed_over"))
        .await
        .unwrap();
    let reader = sea_orm::Database::connect(cluster.replicas()[0].url("handed_over"))
        .await
        .unwrap();
    let db = RdsConnection::builder()
        .writer_connection(writer)
        .reader_connection(reader)
        .build()
        .await
        .unwrap();
    assert_eq!(served_by(&db).await, cluster.replicas()[0].port());
    assert_eq!(
        port_of(&db, "SELECT inet_server_port() AS port, nextval('ticket')").await,
        writer_port(cluster)
    );
}

#[tokio::test]
async fn a_reader_of_another_database_kind_is_a_config_error() {
    let cluster = cluster();
    let err = RdsConnection::builder()
        .writer(cluster.primary().url("postgres"))
        .reader_connection(sea_orm::DatabaseConnection::default())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}
