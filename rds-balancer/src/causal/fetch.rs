//! The engines' own replication positions, read with one short query.
//!
//! - PostgreSQL: the writer's `pg_current_wal_insert_lsn()` (at least the end of every
//!   acknowledged commit, synchronous or not), a replica's `pg_last_wal_replay_lsn()`.
//! - MariaDB: the writer's `@@gtid_binlog_pos` (`NULL` here when binary logging is off: no
//!   position to wait for), a replica's `@@gtid_slave_pos`.
//! - MySQL: `@@global.gtid_executed` on both (`NULL` here unless `gtid_mode` is `ON`).
//!
//! A query that fails or returns `NULL` gives `None`: the caller then reads from the writer,
//! never from a replica it cannot prove has the write.

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};

use crate::position::Position;

/// Which engine answers: MySQL and MariaDB share SeaORM's backend but not their positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    Postgres,
    MariaDb,
    MySql,
}

/// The flavour of the server behind `conn`.
pub(crate) async fn flavour(conn: &DatabaseConnection) -> Result<Flavour, sea_orm::DbErr> {
    match conn.get_database_backend() {
        DatabaseBackend::MySql => {
            let version = text(conn, "SELECT @@version").await?.unwrap_or_default();
            Ok(if version.contains("MariaDB") {
                Flavour::MariaDb
            } else {
                Flavour::MySql
            })
        }
        _ => Ok(Flavour::Postgres),
    }
}

/// The writer's position now: at least as new as every write it acknowledged before.
/// `Ok(None)`: the writer keeps no comparable position (binary logging or GTIDs off).
pub(crate) async fn writer_position(
    conn: &DatabaseConnection,
    flavour: Flavour,
) -> Result<Option<Position>, sea_orm::DbErr> {
    let sql = match flavour {
        Flavour::Postgres => "SELECT pg_current_wal_insert_lsn()::text",
        Flavour::MariaDb => "SELECT IF(@@log_bin, @@gtid_binlog_pos, NULL)",
        Flavour::MySql => "SELECT IF(@@global.gtid_mode = 'ON', @@global.gtid_executed, NULL)",
    };
    let Some(found) = text(conn, sql).await? else {
        return Ok(None);
    };
    Ok(parse(&found, flavour).map(|position| match flavour {
        Flavour::Postgres => record_end(position),
        _ => position,
    }))
}

/// What a replica has replayed. `Ok(None)`: it is not replaying (a primary, or a promoted
/// replica: it has nothing of the writer's to compare).
pub(crate) async fn replayed_position(
    conn: &DatabaseConnection,
    flavour: Flavour,
) -> Result<Option<Position>, sea_orm::DbErr> {
    let sql = match flavour {
        Flavour::Postgres => "SELECT pg_last_wal_replay_lsn()::text",
        Flavour::MariaDb => "SELECT @@gtid_slave_pos",
        Flavour::MySql => "SELECT @@global.gtid_executed",
    };
    Ok(text(conn, sql)
        .await?
        .and_then(|found| parse(&found, flavour)))
}

fn parse(text: &str, flavour: Flavour) -> Option<Position> {
    let parsed = match flavour {
        Flavour::Postgres => Position::from_pg_lsn(text),
        Flavour::MariaDb => Position::from_mariadb_gtid(text),
        Flavour::MySql => Position::from_mysql_gtid_set(text),
    };
    parsed
        .inspect_err(|error| tracing::warn!(%error, "unreadable replication position"))
        .ok()
}

/// The WAL insert position, taken back to the end of the last record: right after a page
/// header (24 bytes, 40 at a segment's start) it points past a header a replica has not
/// replayed (it reports the page boundary until the next record). No record ends there (a
/// record is at least 24 bytes), so the boundary is where the last one ended.
fn record_end(position: Position) -> Position {
    const PAGE: u64 = 8192;
    match position.lsn() {
        Some(lsn) if matches!(lsn % PAGE, 24 | 40) => Position::lsn_at(lsn - lsn % PAGE),
        _ => position,
    }
}

/// The first column of the first row, as text (`None`: no row, or `NULL`).
async fn text(conn: &DatabaseConnection, sql: &str) -> Result<Option<String>, sea_orm::DbErr> {
    let stmt = Statement::from_string(conn.get_database_backend(), sql);
    match conn.query_one_raw(stmt).await? {
        Some(row) => row.try_get_by_index::<Option<String>>(0),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_position_past_a_page_header_is_the_page_boundary() {
        let at = |text: &str| record_end(Position::from_pg_lsn(text).expect("lsn")).to_string();
        // A segment's first page (long header) and any other page (short header).
        assert_eq!(at("0/3000028"), "0/3000000");
        assert_eq!(at("0/3002018"), "0/3002000");
        // Record ends stay.
        assert_eq!(at("0/3000060"), "0/3000060");
        assert_eq!(at("0/3002000"), "0/3002000");
    }
}
