//! The topology queries, and the pure logic that turns their rows into a [`Topology`].
//!
//! The queries follow the AWS Advanced JDBC Wrapper's Aurora dialects (`AuroraPgDialect`,
//! `AuroraMysqlDialect`): same source, same columns, same five-minute staleness rule. They
//! differ in four ways: every column is cast to a type decoded the same way on every server
//! version (the writer test and the staleness test stay in SQL, on the server's clock), a NULL
//! lag stays unknown instead of becoming 0, the row's age is selected so that, when two rows
//! claim to be the writer, the most recently updated one wins (as the wrappers do), and on MySQL
//! ages are measured to the microsecond (`NOW(6)`; `NOW()` counts whole seconds, which kept rows
//! up to a second older than 300 s and made fresh rows look up to a second younger than new).
//!
//! Each query is its text up to `FROM`, the [relation](StatusRelation) it reads, and its filter:
//! [`Dialect::sql`] puts them together once, when the source is built.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::{DbBackend, QueryResult, TryGetable};

use super::super::{Instance, Topology};
use super::relation::StatusRelation;

/// The `session_id` of the writer's row.
pub(super) const WRITER_SESSION_ID: &str = "MASTER_SESSION_ID";

/// What the cluster view needs to know of a backend.
#[derive(Debug)]
pub(super) struct Dialect {
    /// The topology query up to and including its `FROM `.
    select: &'static str,
    /// The relation Aurora reports the topology in.
    pub(super) aurora_relation: StatusRelation,
    /// The rest of the query: the filter, starting with a space.
    filter: &'static str,
    /// Whether the backend can select from a function call (`name()`).
    pub(super) selects_from_functions: bool,
    /// The port the backend's servers listen on by default.
    pub(super) default_port: u16,
}

/// Aurora PostgreSQL: `aurora_replica_status()`. Rows not updated for more than 300 s are left
/// out, except the writer's and those whose `last_update_timestamp` is NULL (from Aurora
/// PostgreSQL 13.9, the row of the instance the session is connected to).
static POSTGRES: Dialect = Dialect {
    select: "\
SELECT server_id::text AS server_id, \
session_id::text AS session_id, \
cpu::float8 AS cpu, \
replica_lag_in_msec::float8 AS replica_lag_ms, \
(EXTRACT(EPOCH FROM (now() - last_update_timestamp)) * 1000)::float8 AS age_ms \
FROM ",
    aurora_relation: StatusRelation::known("aurora_replica_status()"),
    filter: " \
WHERE session_id = 'MASTER_SESSION_ID' \
OR last_update_timestamp IS NULL \
OR EXTRACT(EPOCH FROM (now() - last_update_timestamp)) <= 300",
    selects_from_functions: true,
    default_port: 5432,
};

/// Aurora MySQL: `information_schema.replica_host_status`, with the same rule. `+ 0e0` makes
/// every number a DOUBLE on Aurora MySQL 2 (5.7) and 3 (8.0) alike.
static MYSQL: Dialect = Dialect {
    select: "\
SELECT SERVER_ID AS server_id, \
SESSION_ID AS session_id, \
CPU + 0e0 AS cpu, \
REPLICA_LAG_IN_MILLISECONDS + 0e0 AS replica_lag_ms, \
TIMESTAMPDIFF(MICROSECOND, LAST_UPDATE_TIMESTAMP, NOW(6)) / 1000e0 AS age_ms \
FROM ",
    aurora_relation: StatusRelation::known("information_schema.replica_host_status"),
    filter: " \
WHERE SESSION_ID = 'MASTER_SESSION_ID' \
OR LAST_UPDATE_TIMESTAMP IS NULL \
OR TIMESTAMPDIFF(MICROSECOND, LAST_UPDATE_TIMESTAMP, NOW(6)) <= 300000000",
    selects_from_functions: false,
    default_port: 3306,
};

/// The dialect of `backend`, if the cluster view knows it.
pub(super) fn dialect(backend: DbBackend) -> Option<&'static Dialect> {
    match backend {
        DbBackend::Postgres => Some(&POSTGRES),
        DbBackend::MySql => Some(&MYSQL),
        _ => None,
    }
}

impl Dialect {
    /// The topology query reading `relation`.
    pub(super) fn sql(&self, relation: &StatusRelation) -> String {
        [self.select, relation.as_str(), self.filter].concat()
    }
}

/// An instance host name made from a pattern with one `?`, replaced by the server id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPattern {
    pattern: String,
    /// The byte offset of the `?`.
    at: usize,
}

impl HostPattern {
    /// The pattern, if it has exactly one `?`.
    pub(super) fn parse(pattern: &str) -> Option<Self> {
        let mut marks = pattern.match_indices('?');
        let (at, _) = marks.next()?;
        if marks.next().is_some() {
            return None;
        }
        Some(HostPattern {
            pattern: pattern.to_owned(),
            at,
        })
    }

    pub(super) fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The host of instance `id`.
    pub(super) fn host(&self, id: &str) -> String {
        let (before, after) = self.pattern.split_at(self.at);
        format!("{before}{id}{}", &after[1..])
    }
}

/// One row of the topology query, every column optional: NULLs and values of unexpected types
/// are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Row {
    pub(super) server_id: Option<String>,
    pub(super) session_id: Option<String>,
    pub(super) cpu: Option<f64>,
    pub(super) replica_lag_ms: Option<f64>,
    /// Milliseconds since the row was last updated, on the server's clock.
    pub(super) age_ms: Option<f64>,
}

impl Row {
    /// Decodes a row; never fails.
    pub(super) fn decode(row: &QueryResult) -> Self {
        Row {
            server_id: text(row, "server_id"),
            session_id: text(row, "session_id"),
            cpu: number(row, "cpu"),
            replica_lag_ms: number(row, "replica_lag_ms"),
            age_ms: number(row, "age_ms"),
        }
    }
}

fn get<T: TryGetable>(row: &QueryResult, column: &str) -> Option<T> {
    row.try_get::<Option<T>>("", column).ok().flatten()
}

fn text(row: &QueryResult, column: &str) -> Option<String> {
    get::<String>(row, column)
        .or_else(|| get::<Vec<u8>>(row, column).and_then(|bytes| String::from_utf8(bytes).ok()))
}

fn number(row: &QueryResult, column: &str) -> Option<f64> {
    get::<f64>(row, column)
        .or_else(|| get::<f32>(row, column).map(f64::from))
        .or_else(|| get::<i64>(row, column).map(|v| v as f64))
        .or_else(|| get::<i32>(row, column).map(f64::from))
        .or_else(|| get::<i16>(row, column).map(f64::from))
        .or_else(|| get::<String>(row, column).and_then(|s| s.trim().parse().ok()))
}

/// Whether `id` can stand in a host name: ASCII letters, digits, `-`, `_` and `.`.
fn is_host_safe(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The topology the rows describe: the writer first (when a row claims it), then the readers in
/// the order reported. Rows with a NULL, empty or non-host-safe server id are skipped; of
/// several writer rows the most recently updated wins (a NULL age counts as fresh) and the
/// others are dropped; of several rows of one reader the first wins.
pub(super) fn assemble(rows: Vec<Row>, pattern: &HostPattern, port: u16) -> Topology {
    let mut valid = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(id) = row.server_id.as_deref().map(str::trim) else {
            tracing::debug!("cluster view: skipped a row with a NULL server_id");
            continue;
        };
        if !is_host_safe(id) {
            tracing::warn!(
                server_id = id,
                "cluster view: skipped a row whose server_id cannot be a host name"
            );
            continue;
        }
        let is_writer = row
            .session_id
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case(WRITER_SESSION_ID));
        valid.push((id.to_owned(), is_writer, row));
    }

    let age = |row: &Row| {
        row.age_ms
            .filter(|a| !a.is_nan())
            .unwrap_or(f64::NEG_INFINITY)
    };
    let writer = valid
        .iter()
        .filter(|(_, is_writer, _)| *is_writer)
        .reduce(|best, next| {
            if age(&next.2) < age(&best.2) {
                next
            } else {
                best
            }
        })
        .map(|(id, _, row)| (id.clone(), row.clone()));

    let mut instances = Vec::with_capacity(valid.len());
    let mut seen = HashSet::new();
    if let Some((id, row)) = &writer {
        seen.insert(id.clone());
        instances.push(instance(
            Instance::writer(id.clone()),
            id,
            row,
            pattern,
            port,
        ));
    }
    for (id, is_writer, row) in &valid {
        if *is_writer {
            if seen.contains(id) {
                continue;
            }
            tracing::debug!(
                server_id = %id,
                "cluster view: dropped a second writer row (an older update)"
            );
            continue;
        }
        if seen.insert(id.clone()) {
            instances.push(instance(
                Instance::reader(id.clone()),
                id,
                row,
                pattern,
                port,
            ));
        }
    }
    Topology::new(instances)
}

fn instance(base: Instance, id: &str, row: &Row, pattern: &HostPattern, port: u16) -> Instance {
    let mut instance = base.with_endpoint(pattern.host(id), port);
    let lag = row
        .replica_lag_ms
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok());
    if let Some(lag) = lag {
        instance = instance.with_replica_lag(lag);
    }
    if let Some(cpu) = row.cpu.filter(|c| c.is_finite() && *c >= 0.0) {
        instance = instance.with_cpu_percent(cpu);
    }
    instance
}

#[cfg(test)]
mod tests;
