//! sea-orm-migration through `RdsConnection::writer_connection()`: a real migrator (two
//! migrations: create a table with an index, then add a column) runs `up` and `down` against a
//! real primary and two replicas, on PostgreSQL and on MariaDB (each test body runs on both),
//! and every server is asked directly what schema it has.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies and helpers outside #[test] fns

mod support;

use sea_orm::TransactionTrait;
use sea_orm_migration::prelude::*;
use support::{Cluster, Kind, Node, backend_tests, served_by, setup_in};

backend_tests!(a_migrator_runs_up_and_down_on_the_writer_and_the_schema_reaches_every_replica);

/// The database of this test file, on the shared clusters.
const DB: &str = "migrations_shelf";

const CREATE_SHELF: &str = "m20260101_000001_create_shelf";
const ADD_SHELF_LABEL: &str = "m20260101_000002_add_shelf_label";

#[derive(DeriveIden)]
enum Shelf {
    Table,
    Id,
    Name,
    Label,
}

/// Creates `shelf (id, name)` with an index on `name`.
struct CreateShelf;

impl MigrationName for CreateShelf {
    fn name(&self) -> &str {
        CREATE_SHELF
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateShelf {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Shelf::Table)
                    .col(
                        ColumnDef::new(Shelf::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Shelf::Name).string().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_shelf_name")
                    .table(Shelf::Table)
                    .col(Shelf::Name)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Shelf::Table).to_owned())
            .await
    }
}

/// Adds the column `shelf.label`.
struct AddShelfLabel;

impl MigrationName for AddShelfLabel {
    fn name(&self) -> &str {
        ADD_SHELF_LABEL
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddShelfLabel {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Shelf::Table)
                    .add_column(ColumnDef::new(Shelf::Label).string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Shelf::Table)
                    .drop_column(Shelf::Label)
                    .to_owned(),
            )
            .await
    }
}

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateShelf), Box::new(AddShelfLabel)]
    }
}

/// Runs `sql` on `node` in database `db` as the admin user, bypassing rds-balancer; one line
/// per row (every query here reads one column).
fn rows_on(node: Node<'_>, db: &str, sql: &str) -> Vec<String> {
    match node {
        Node::Postgres(n) => n.psql(db, sql),
        Node::MySql(n) => n.sql(db, sql),
    }
    .unwrap_or_else(|e| panic!("{sql} on {}: {e}", node.name()))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// The current schema (PostgreSQL) or database (MySQL), for `information_schema` queries.
fn schema_expr(node: Node<'_>) -> &'static str {
    match node {
        Node::Postgres(_) => "current_schema()",
        Node::MySql(_) => "DATABASE()",
    }
}

/// The columns of `shelf` on `node`, in order; none when the table does not exist.
fn shelf_columns(node: Node<'_>) -> Vec<String> {
    let sql = format!(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = {} \
         AND table_name = 'shelf' ORDER BY ordinal_position",
        schema_expr(node)
    );
    rows_on(node, DB, &sql)
}

/// The indexes of `shelf` on `node`, by name.
fn shelf_indexes(node: Node<'_>) -> Vec<String> {
    let sql = match node {
        Node::Postgres(_) => {
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() \
                              AND tablename = 'shelf' ORDER BY indexname"
                .to_owned()
        }
        Node::MySql(_) => format!(
            "SELECT DISTINCT index_name FROM information_schema.statistics \
             WHERE table_schema = {} AND table_name = 'shelf' ORDER BY index_name",
            schema_expr(node)
        ),
    };
    rows_on(node, DB, &sql)
}

/// The migrations `seaql_migrations` records as applied on `node`, in order.
fn applied(node: Node<'_>) -> Vec<String> {
    rows_on(
        node,
        DB,
        "SELECT version FROM seaql_migrations ORDER BY version",
    )
}

/// Waits until every replica has replayed the primary's writes (the kit asks each replica for
/// its replay position; no fixed sleep), then returns the primary and the replicas.
fn every_node_replicated(cluster: &Cluster) -> Vec<Node<'_>> {
    cluster.wait_replicated();
    std::iter::once(cluster.primary())
        .chain(cluster.replicas())
        .collect()
}

async fn a_migrator_runs_up_and_down_on_the_writer_and_the_schema_reaches_every_replica(
    kind: Kind,
) {
    let cluster = Cluster::shared(kind);
    let db = setup_in(cluster, DB).await;
    let writer = db.writer_connection();

    // A replica refuses DDL (PostgreSQL: recovery is read-only; MariaDB: `read_only`, and the
    // tests' user has no SUPER), so `up` succeeding is itself the proof that the migrator ran
    // on the writer: were `writer_connection` to hand out a reader's pool, this would fail.
    Migrator::up(&writer, None).await.expect("up");
    assert_eq!(served_by(&writer).await, cluster.writer_port());

    for node in every_node_replicated(cluster) {
        let on = node.name();
        assert_eq!(shelf_columns(node), ["id", "name", "label"], "on {on}");
        assert!(
            shelf_indexes(node).iter().any(|i| i == "idx_shelf_name"),
            "no idx_shelf_name on {on}: {:?}",
            shelf_indexes(node)
        );
        assert_eq!(applied(node), [CREATE_SHELF, ADD_SHELF_LABEL], "on {on}");
    }

    // One step back: the column added last goes, the table stays.
    Migrator::down(&writer, Some(1)).await.expect("down one");
    for node in every_node_replicated(cluster) {
        let on = node.name();
        assert_eq!(shelf_columns(node), ["id", "name"], "on {on}");
        assert_eq!(applied(node), [CREATE_SHELF], "on {on}");
    }

    // All the way back: no table, no migration recorded.
    Migrator::down(&writer, None).await.expect("down");
    for node in every_node_replicated(cluster) {
        let on = node.name();
        assert_eq!(shelf_columns(node), Vec::<String>::new(), "on {on}");
        assert_eq!(shelf_indexes(node), Vec::<String>::new(), "on {on}");
        assert_eq!(applied(node), Vec::<String>::new(), "on {on}");
    }

    // PostgreSQL's DDL is transactional: the migrator also runs in one `RdsTransaction`, which
    // stays counted in flight on the writer until it commits. (MySQL commits each DDL
    // statement implicitly: no transaction there.)
    if kind == Kind::Postgres {
        let txn = db.begin().await.expect("begin");
        Migrator::up(&txn, None).await.expect("up in a transaction");
        let in_flight = db.health().hosts.iter().map(|h| h.in_flight).sum::<usize>();
        assert_eq!(in_flight, 1, "the migrating transaction counts in flight");
        txn.commit().await.expect("commit");
        for node in every_node_replicated(cluster) {
            let on = node.name();
            assert_eq!(shelf_columns(node), ["id", "name", "label"], "on {on}");
            assert_eq!(applied(node), [CREATE_SHELF, ADD_SHELF_LABEL], "on {on}");
        }
        let txn = db.begin().await.expect("begin");
        Migrator::down(&txn, None)
            .await
            .expect("down in a transaction");
        txn.commit().await.expect("commit");
        for node in every_node_replicated(cluster) {
            assert_eq!(
                shelf_columns(node),
                Vec::<String>::new(),
                "on {}",
                node.name()
            );
        }
    }
}
