//! Reading a deployment's status from the database's blue/green metadata, as the AWS wrappers
//! do: which relation the server has, the query, and the rows turned into a [`Status`].

use std::time::Duration;

use sea_orm::sqlx::{query_as, query_scalar};
use serde::Serialize;

use super::phase::{BlueGreenPhase, BlueGreenRole};
use crate::health::ProbeConn;

/// Identifies this library to the metadata functions (they take a driver id).
macro_rules! driver_id {
    () => {
        concat!("rds_balancer-", env!("CARGO_PKG_VERSION"))
    };
}

/// The columns read, every one as text (decoded the same way on every server version).
macro_rules! pg_status_sql {
    ($relation:literal) => {
        concat!(
            "SELECT version::text, endpoint::text, port::text, role::text, status::text FROM ",
            $relation,
            "('",
            driver_id!(),
            "')"
        )
    };
}

/// Which metadata relation a server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Aurora PostgreSQL: `pg_catalog.get_blue_green_fast_switchover_metadata(driver id)`.
    AuroraPostgres,
    /// RDS PostgreSQL with `rds_tools`: `rds_tools.show_topology(driver id)`.
    RdsPostgres,
    /// Aurora and RDS MySQL: table `mysql.rds_topology`.
    MySql,
}

/// Which relation the server has, without failing when it has none: `'aurora'`, `'rds'` or `''`
/// (schema first, so that a missing `rds_tools` is not an error).
const POSTGRES_DETECT: &str = "SELECT CASE \
WHEN to_regprocedure('pg_catalog.get_blue_green_fast_switchover_metadata(text)') IS NOT NULL \
THEN 'aurora' \
WHEN to_regnamespace('rds_tools') IS NULL THEN '' \
WHEN to_regprocedure('rds_tools.show_topology(text)') IS NOT NULL THEN 'rds' \
ELSE '' END";

/// `'mysql'` when `mysql.rds_topology` exists and this user may read it, else `''`.
const MYSQL_DETECT: &str = "SELECT CASE WHEN EXISTS (SELECT 1 FROM information_schema.tables \
WHERE table_schema = 'mysql' AND table_name = 'rds_topology') THEN 'mysql' ELSE '' END";

impl Flavour {
    /// The query for this relation: `version, endpoint, port, role, status`, every column as
    /// text (decoded the same way on every server version).
    fn status_sql(self) -> &'static str {
        match self {
            Flavour::AuroraPostgres => {
                pg_status_sql!("pg_catalog.get_blue_green_fast_switchover_metadata")
            }
            Flavour::RdsPostgres => pg_status_sql!("rds_tools.show_topology"),
            Flavour::MySql => {
                "SELECT CAST(version AS CHAR), CAST(endpoint AS CHAR), CAST(port AS CHAR), \
                 CAST(role AS CHAR), CAST(status AS CHAR) FROM mysql.rds_topology"
            }
        }
    }
}

/// One endpoint the deployment's metadata names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct BlueGreenEndpoint {
    /// Its host name (an instance or cluster endpoint).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Blue (source) or green (target).
    pub role: BlueGreenRole,
}

/// A deployment's status as one read of the metadata saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Status {
    /// The most advanced phase any row reports; `NotCreated` for no rows.
    pub(crate) phase: BlueGreenPhase,
    /// Every endpoint a row names, in the order read, without duplicates.
    pub(crate) endpoints: Vec<BlueGreenEndpoint>,
}

/// One row: `version, endpoint, port, role, status`.
pub(crate) type Row = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Status {
    /// The status the rows describe. Rows of a metadata version other than 1.x, and rows with
    /// a status, role, endpoint or port this version cannot read, are left out.
    pub(crate) fn from_rows(rows: &[Row]) -> Status {
        let mut status = Status::default();
        for (version, endpoint, port, role, row_status) in rows {
            if !version
                .as_deref()
                .is_some_and(|v| v.trim().starts_with("1."))
            {
                continue;
            }
            let Some(phase) = row_status.as_deref().and_then(BlueGreenPhase::from_status) else {
                continue;
            };
            let endpoint = (|| {
                Some(BlueGreenEndpoint {
                    host: endpoint.as_deref()?.trim().to_ascii_lowercase(),
                    port: port.as_deref()?.trim().parse().ok()?,
                    role: BlueGreenRole::from_metadata(role.as_deref()?)?,
                })
            })();
            let Some(endpoint) = endpoint.filter(|e| !e.host.is_empty()) else {
                continue;
            };
            status.phase = status.phase.max(phase);
            if !status.endpoints.contains(&endpoint) {
                status.endpoints.push(endpoint);
            }
        }
        status
    }
}

/// Which metadata relation the server behind `conn` has, if any.
pub(crate) async fn detect(
    conn: &mut ProbeConn,
    timeout: Duration,
) -> Result<Option<Flavour>, String> {
    let found = tokio::time::timeout(timeout, async {
        match conn {
            ProbeConn::Postgres(c) => {
                query_scalar::<_, String>(POSTGRES_DETECT)
                    .fetch_one(c)
                    .await
            }
            ProbeConn::MySql(c) => query_scalar::<_, String>(MYSQL_DETECT).fetch_one(c).await,
        }
    })
    .await
    .map_err(|_| format!("no answer within {timeout:?}"))?
    .map_err(|e| e.to_string())?;
    Ok(match (found.as_str(), &*conn) {
        ("aurora", ProbeConn::Postgres(_)) => Some(Flavour::AuroraPostgres),
        ("rds", ProbeConn::Postgres(_)) => Some(Flavour::RdsPostgres),
        ("mysql", ProbeConn::MySql(_)) => Some(Flavour::MySql),
        _ => None,
    })
}

/// Reads the deployment's status through `conn` from `flavour`'s relation.
pub(crate) async fn read(
    conn: &mut ProbeConn,
    flavour: Flavour,
    timeout: Duration,
) -> Result<Status, String> {
    let sql = flavour.status_sql();
    let rows = tokio::time::timeout(timeout, async {
        match conn {
            ProbeConn::Postgres(c) => query_as::<_, Row>(sql).fetch_all(c).await,
            ProbeConn::MySql(c) => query_as::<_, Row>(sql).fetch_all(c).await,
        }
    })
    .await
    .map_err(|_| format!("no answer within {timeout:?}"))?
    .map_err(|e| e.to_string())?;
    Ok(Status::from_rows(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: &str, endpoint: &str, port: &str, role: &str, status: &str) -> Row {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        (s(version), s(endpoint), s(port), s(role), s(status))
    }

    const SOURCE: &str = "BLUE_GREEN_DEPLOYMENT_SOURCE";
    const TARGET: &str = "BLUE_GREEN_DEPLOYMENT_TARGET";

    #[test]
    fn no_rows_is_no_deployment() {
        assert_eq!(Status::from_rows(&[]), Status::default());
        assert_eq!(Status::default().phase, BlueGreenPhase::NotCreated);
    }

    #[test]
    fn the_most_advanced_row_gives_the_phase_and_every_endpoint_is_kept() {
        let rows = [
            row(
                "1.0",
                "App-1.xyz.rds.amazonaws.com",
                "5432",
                SOURCE,
                "SWITCHOVER_INITIATED",
            ),
            row(
                "1.0",
                "app-1-green-abc.xyz.rds.amazonaws.com",
                "5432",
                TARGET,
                "SWITCHOVER_IN_PROGRESS",
            ),
            row(
                "1.0",
                "app-1.xyz.rds.amazonaws.com",
                "5432",
                SOURCE,
                "SWITCHOVER_INITIATED",
            ),
        ];
        let status = Status::from_rows(&rows);
        assert_eq!(status.phase, BlueGreenPhase::InProgress);
        assert_eq!(
            status.endpoints,
            [
                BlueGreenEndpoint {
                    host: "app-1.xyz.rds.amazonaws.com".into(),
                    port: 5432,
                    role: BlueGreenRole::Source
                },
                BlueGreenEndpoint {
                    host: "app-1-green-abc.xyz.rds.amazonaws.com".into(),
                    port: 5432,
                    role: BlueGreenRole::Target
                },
            ]
        );
    }

    #[test]
    fn rows_this_version_cannot_read_are_left_out() {
        let rows = [
            row("2.0", "a.xyz", "5432", SOURCE, "SWITCHOVER_COMPLETED"),
            row("1.0", "b.xyz", "5432", SOURCE, "SOMETHING_NEW"),
            row("1.0", "c.xyz", "port", SOURCE, "SWITCHOVER_COMPLETED"),
            row("1.0", "d.xyz", "5432", "OTHER", "SWITCHOVER_COMPLETED"),
            row("1.0", "", "5432", SOURCE, "SWITCHOVER_COMPLETED"),
            row("", "e.xyz", "5432", SOURCE, "SWITCHOVER_COMPLETED"),
            row("1.0", "f.xyz", "3306", TARGET, "AVAILABLE"),
        ];
        let status = Status::from_rows(&rows);
        assert_eq!(status.phase, BlueGreenPhase::Created);
        assert_eq!(status.endpoints.len(), 1);
        assert_eq!(status.endpoints[0].host, "f.xyz");
    }

    #[test]
    fn queries_name_the_relation_and_the_driver() {
        let aurora = Flavour::AuroraPostgres.status_sql();
        assert!(
            aurora.contains("pg_catalog.get_blue_green_fast_switchover_metadata('rds_balancer-")
        );
        assert!(
            Flavour::RdsPostgres
                .status_sql()
                .contains("rds_tools.show_topology('rds_balancer-")
        );
        assert!(
            Flavour::MySql
                .status_sql()
                .ends_with("FROM mysql.rds_topology")
        );
    }
}
