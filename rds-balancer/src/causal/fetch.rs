//! The engines' own replication positions, read with one short query.
//!
//! - PostgreSQL: the writer's `pg_current_wal_insert_lsn()` (at least the end of every
//!   acknowledged commit, synchronous or not), a replica's `pg_last_wal_replay_lsn()`.
//! - MariaDB: the writer's `@@gtid_binlog_pos` (`NULL` here when binary logging is off: no
//!   position to wait for), a replica's `@@gtid_slave_pos`.
//! - MySQL: `@@global.gtid_executed` on both (`NULL` here unless `gtid_mode` is `ON`).
//! - Aurora PostgreSQL: readers replay no WAL of their own (they share the writer's storage);
//!   `aurora_replica_status()`, readable on every instance, has a row per instance. The
//!   writer's position is its row's `durable_lsn` (`session_id = 'MASTER_SESSION_ID'`): an
//!   acknowledged commit is durable, so its record is at or below it. A reader's is its own
//!   row's `current_read_lsn` (`server_id = aurora_db_instance_identifier()`), the LSN of the
//!   snapshot its reads see.
//! - Aurora MySQL: none. Its readers keep no GTID position that follows the writer's (they
//!   read the shared storage, not a binary log), and no column of
//!   `information_schema.replica_host_status` is known to compare with the writer's: position
//!   mode falls back to a window, as on a writer without binary logging.
//!
//! A query that fails or returns `NULL` gives `None`: the caller then reads from the writer,
//! never from a replica it cannot prove has the write.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};

use crate::pool::HostPool;
use crate::position::Position;

/// How long one position query may take before it counts as not read.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Which engine answers: MySQL and MariaDB share SeaORM's backend but not their positions, and
/// Aurora's are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    Postgres,
    /// Aurora PostgreSQL: positions from `aurora_replica_status()`.
    AuroraPostgres,
    MariaDb,
    MySql,
    /// Aurora MySQL: no position to compare.
    AuroraMySql,
}

impl Flavour {
    /// Whether the engine keeps positions rds-balancer can compare at all.
    pub(crate) fn has_positions(self) -> bool {
        self != Flavour::AuroraMySql
    }
}

/// Tells Aurora PostgreSQL from PostgreSQL: `aurora_version()` exists (`to_regproc` gives
/// `NULL`, never an error, for a function that does not).
const AURORA_PG_SQL: &str =
    "SELECT CASE WHEN to_regproc('aurora_version') IS NULL THEN 'no' ELSE 'yes' END";

/// The flavour of the server behind `conn`.
pub(crate) async fn flavour(conn: &DatabaseConnection) -> Result<Flavour, sea_orm::DbErr> {
    match conn.get_database_backend() {
        DatabaseBackend::MySql => {
            let version = text(conn, "SELECT @@version").await?.unwrap_or_default();
            // Only Aurora MySQL knows `@@aurora_version`; elsewhere the query fails.
            let aurora = match version.contains("MariaDB") {
                true => None,
                false => text(conn, "SELECT @@aurora_version").await.ok().flatten(),
            };
            Ok(mysql_flavour(&version, aurora.as_deref()))
        }
        _ => Ok(match text(conn, AURORA_PG_SQL).await?.as_deref() {
            Some("yes") => Flavour::AuroraPostgres,
            _ => Flavour::Postgres,
        }),
    }
}

/// The flavour of a MySQL-protocol server from its `@@version` and, when the server has one,
/// its `@@aurora_version`.
fn mysql_flavour(version: &str, aurora_version: Option<&str>) -> Flavour {
    if version.contains("MariaDB") {
        Flavour::MariaDb
    } else if aurora_version.is_some() {
        Flavour::AuroraMySql
    } else {
        Flavour::MySql
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
        Flavour::AuroraPostgres => {
            "SELECT durable_lsn::text FROM aurora_replica_status() \
             WHERE session_id = 'MASTER_SESSION_ID'"
        }
        Flavour::MariaDb => "SELECT IF(@@log_bin, @@gtid_binlog_pos, NULL)",
        Flavour::MySql => "SELECT IF(@@global.gtid_mode = 'ON', @@global.gtid_executed, NULL)",
        Flavour::AuroraMySql => return Ok(None),
    };
    let Some(found) = text(conn, sql).await? else {
        return Ok(None);
    };
    Ok(parse(&found, flavour).map(|position| match flavour {
        Flavour::Postgres => record_end(position),
        _ => position,
    }))
}

/// What a replica has replayed. `Ok(None)`: it is not replaying (a primary). A promoted
/// replica keeps the position it had replayed (PostgreSQL's `pg_last_wal_replay_lsn()` stays
/// where recovery ended, MariaDB's `@@gtid_slave_pos` where the applier stopped): for the lag
/// monitor, it falls behind like a replica that stopped.
pub(crate) async fn replayed_position(
    conn: &DatabaseConnection,
    flavour: Flavour,
) -> Result<Option<Position>, sea_orm::DbErr> {
    let sql = match flavour {
        Flavour::Postgres => "SELECT pg_last_wal_replay_lsn()::text",
        Flavour::MariaDb => "SELECT @@gtid_slave_pos",
        _ => return replayed_while_replicating(conn, flavour).await,
    };
    replayed(conn, sql, flavour).await
}

/// [`replayed_position`], but `Ok(None)` as well for a replica that replicates no more (a
/// promoted one): for a read waiting for it to catch up, which it never will. PostgreSQL: in
/// recovery; MariaDB: read-only or running an applier (`Slaves_running`: a replica whose
/// applier is paused stays read-only, a promoted one is made writable with its replication
/// stopped). A replica that only lags, or has stopped receiving, keeps a position.
pub(crate) async fn replayed_while_replicating(
    conn: &DatabaseConnection,
    flavour: Flavour,
) -> Result<Option<Position>, sea_orm::DbErr> {
    let sql = match flavour {
        Flavour::Postgres => {
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END"
        }
        Flavour::AuroraPostgres => {
            "SELECT current_read_lsn::text FROM aurora_replica_status() \
             WHERE server_id = aurora_db_instance_identifier()"
        }
        // `OR` stops at a read-only server: the status table is read only for a writable one.
        Flavour::MariaDb => {
            "SELECT IF(@@read_only OR (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'SLAVES_RUNNING') > 0, @@gtid_slave_pos, NULL)"
        }
        Flavour::MySql => "SELECT @@global.gtid_executed",
        Flavour::AuroraMySql => return Ok(None),
    };
    replayed(conn, sql, flavour).await
}

async fn replayed(
    conn: &DatabaseConnection,
    sql: &str,
    flavour: Flavour,
) -> Result<Option<Position>, sea_orm::DbErr> {
    Ok(text(conn, sql)
        .await?
        .and_then(|found| parse(&found, flavour)))
}

/// What `read` (one of the queries above, on `host`) gives within [`FETCH_TIMEOUT`]
/// (`Some(None)`: the server keeps no position), or `None` (logged) when it failed or took
/// longer.
pub(crate) async fn in_time(
    host: &HostPool,
    read: impl Future<Output = Result<Option<Position>, sea_orm::DbErr>>,
) -> Option<Option<Position>> {
    match tokio::time::timeout(FETCH_TIMEOUT, read).await {
        Ok(Ok(position)) => Some(position),
        Ok(Err(error)) => {
            tracing::debug!(host = %host.name(), %error, "replication position not read");
            None
        }
        Err(_) => None,
    }
}

fn parse(text: &str, flavour: Flavour) -> Option<Position> {
    let parsed = match flavour {
        Flavour::Postgres => Position::from_pg_lsn(text),
        Flavour::AuroraPostgres => Position::from_aurora_lsn(text),
        Flavour::MariaDb => Position::from_mariadb_gtid(text),
        Flavour::MySql => Position::from_mysql_gtid_set(text),
        Flavour::AuroraMySql => return None,
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

    #[test]
    fn aurora_mysql_is_told_by_its_aurora_version() {
        assert_eq!(mysql_flavour("10.11.6-MariaDB-log", None), Flavour::MariaDb);
        assert_eq!(mysql_flavour("8.0.36", None), Flavour::MySql);
        assert_eq!(
            mysql_flavour("8.0.32", Some("3.05.2")),
            Flavour::AuroraMySql
        );
        assert!(!Flavour::AuroraMySql.has_positions());
        assert!(Flavour::AuroraPostgres.has_positions() && Flavour::MariaDb.has_positions());
    }

    #[test]
    fn aurora_values_read_as_aurora_positions_and_aurora_mysql_gives_none() {
        let read = parse("88492069", Flavour::AuroraPostgres).expect("an Aurora LSN");
        assert_eq!(read.to_string(), "aurora-pg:88492069");
        assert_eq!(parse("0/3000060", Flavour::AuroraPostgres), None);
        assert_eq!(parse("88492069", Flavour::Postgres), None);
        assert_eq!(parse("0-1-1", Flavour::AuroraMySql), None);
    }

    #[tokio::test]
    async fn aurora_mysql_reads_no_position_and_sends_nothing() {
        // A disconnected placeholder: any statement would fail.
        let conn = DatabaseConnection::default();
        let written = writer_position(&conn, Flavour::AuroraMySql).await;
        assert!(matches!(written, Ok(None)), "{written:?}");
        let replayed = replayed_position(&conn, Flavour::AuroraMySql).await;
        assert!(matches!(replayed, Ok(None)), "{replayed:?}");
        let replayed = replayed_while_replicating(&conn, Flavour::AuroraMySql).await;
        assert!(matches!(replayed, Ok(None)), "{replayed:?}");
    }
}
