//! The metadata relations a blue/green deployment is read from, their SQL, and the rows the kit
//! writes into them.

use std::fmt;

/// The table behind both PostgreSQL functions.
macro_rules! pg_backing_table {
    () => {
        "
CREATE SCHEMA IF NOT EXISTS rds_testkit;
CREATE TABLE IF NOT EXISTS rds_testkit.blue_green_metadata (
    id bigint,
    endpoint text,
    port integer,
    role text,
    status text,
    version text,
    update_stamp timestamp DEFAULT timezone('UTC', now())
);
"
    };
}

/// The result and body shared by both PostgreSQL functions.
macro_rules! pg_function_body {
    () => {
        "RETURNS TABLE (
    id bigint,
    endpoint text,
    port integer,
    role text,
    status text,
    version text,
    update_stamp timestamp
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.id, m.endpoint, m.port, m.role, m.status, m.version, m.update_stamp
    FROM rds_testkit.blue_green_metadata m
$$;
"
    };
}

/// The `version` every row carries: the only version of the metadata the AWS wrappers know.
pub const METADATA_VERSION: &str = "1.0";

/// SQL that gives a PostgreSQL database (run it as a superuser) Aurora PostgreSQL's
/// `pg_catalog.get_blue_green_fast_switchover_metadata(text)`: a function in `pg_catalog` that
/// takes the driver's id and returns AWS's columns, `id bigint, endpoint text, port integer, role
/// text, status text, version text, update_stamp timestamp`, read from the plain table
/// `rds_testkit.blue_green_metadata` (same columns, every one nullable, so tests can write odd
/// rows). The function is `SECURITY DEFINER`: every role may call it, as on Aurora, without any
/// privilege on the table. Re-running it is harmless (nothing is dropped, rows are kept).
///
/// [`BlueGreenDeployment`](crate::BlueGreenDeployment) runs it for you
/// ([`MetadataRelation::AuroraPostgres`]).
///
/// ```no_run
/// use rds_balancer_testkit::{AURORA_PG_BLUE_GREEN_STUB, PgCluster};
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = PgCluster::start(0)?;
/// cluster.psql("postgres", AURORA_PG_BLUE_GREEN_STUB)?;
/// let check = "SELECT 'pg_catalog.get_blue_green_fast_switchover_metadata'::regproc";
/// assert_eq!(
///     cluster.psql("postgres", check)?,
///     "get_blue_green_fast_switchover_metadata"
/// );
/// # Ok(()) }
/// ```
pub const AURORA_PG_BLUE_GREEN_STUB: &str = concat!(
    pg_backing_table!(),
    "
CREATE OR REPLACE FUNCTION pg_catalog.get_blue_green_fast_switchover_metadata(
    driver_id text DEFAULT NULL
)
",
    pg_function_body!()
);

/// SQL that gives a PostgreSQL database (run it as a superuser) RDS PostgreSQL's
/// `rds_tools.show_topology(text)`: schema `rds_tools` (usable by every role) and in it a
/// function of the same shape as [`AURORA_PG_BLUE_GREEN_STUB`]'s, reading the same table
/// `rds_testkit.blue_green_metadata`. Its argument defaults to `NULL`, so the Multi-AZ
/// topology query (`rds_tools.show_topology()`) works too.
///
/// ```no_run
/// use rds_balancer_testkit::{PgCluster, RDS_PG_BLUE_GREEN_STUB};
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = PgCluster::start(0)?;
/// cluster.psql("postgres", RDS_PG_BLUE_GREEN_STUB)?;
/// let check = "SELECT 'rds_tools.show_topology'::regproc";
/// assert_eq!(cluster.psql("postgres", check)?, "rds_tools.show_topology");
/// # Ok(()) }
/// ```
pub const RDS_PG_BLUE_GREEN_STUB: &str = concat!(
    pg_backing_table!(),
    "
CREATE SCHEMA IF NOT EXISTS rds_tools;
GRANT USAGE ON SCHEMA rds_tools TO PUBLIC;
CREATE OR REPLACE FUNCTION rds_tools.show_topology(driver_id text DEFAULT NULL)
",
    pg_function_body!()
);

/// SQL that gives a MariaDB (or MySQL) server (run it as `root`) RDS MySQL's and Aurora
/// MySQL's `mysql.rds_topology`: an InnoDB table with AWS's columns, `id bigint, endpoint text,
/// port int, role text, status text, version text, update_stamp timestamp(6)` (every one
/// nullable but `update_stamp`, which defaults to the time of the write). Only `root` can read
/// it until it is granted, as AWS asks: `GRANT SELECT ON mysql.rds_topology TO user`
/// ([`BlueGreenDeployment::grant_read`](crate::BlueGreenDeployment::grant_read)). Re-running it
/// is harmless.
///
/// ```no_run
/// use rds_balancer_testkit::{MYSQL_RDS_TOPOLOGY_STUB, MariaDbCluster};
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = MariaDbCluster::start(0)?;
/// cluster.sql("", MYSQL_RDS_TOPOLOGY_STUB)?;
/// let check = "SELECT 1 AS tmp FROM information_schema.tables \
///              WHERE table_schema = 'mysql' AND table_name = 'rds_topology'";
/// assert_eq!(cluster.sql("", check)?, "1");
/// # Ok(()) }
/// ```
pub const MYSQL_RDS_TOPOLOGY_STUB: &str = "
CREATE TABLE IF NOT EXISTS mysql.rds_topology (
    id bigint,
    endpoint text,
    port int,
    role text,
    status text,
    version text,
    update_stamp timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
";

/// Which of AWS's blue/green metadata relations a server has: the one the library's dialect
/// detection finds and polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataRelation {
    /// Aurora PostgreSQL: `pg_catalog.get_blue_green_fast_switchover_metadata(text)`
    /// ([`AURORA_PG_BLUE_GREEN_STUB`]).
    AuroraPostgres,
    /// RDS PostgreSQL: `rds_tools.show_topology(text)` ([`RDS_PG_BLUE_GREEN_STUB`]).
    RdsPostgres,
    /// Aurora MySQL and RDS MySQL: table `mysql.rds_topology` ([`MYSQL_RDS_TOPOLOGY_STUB`]).
    MySql,
}

impl MetadataRelation {
    /// Whether it lives on PostgreSQL (else MySQL / MariaDB).
    pub const fn is_postgres(self) -> bool {
        matches!(
            self,
            MetadataRelation::AuroraPostgres | MetadataRelation::RdsPostgres
        )
    }

    /// The SQL that installs it: [`AURORA_PG_BLUE_GREEN_STUB`], [`RDS_PG_BLUE_GREEN_STUB`] or
    /// [`MYSQL_RDS_TOPOLOGY_STUB`].
    pub const fn install_sql(self) -> &'static str {
        match self {
            MetadataRelation::AuroraPostgres => AURORA_PG_BLUE_GREEN_STUB,
            MetadataRelation::RdsPostgres => RDS_PG_BLUE_GREEN_STUB,
            MetadataRelation::MySql => MYSQL_RDS_TOPOLOGY_STUB,
        }
    }

    /// The query the AWS wrappers (and rds-balancer) run to learn whether the relation exists:
    /// it succeeds with one row when it does, and fails (PostgreSQL) or returns no row (MySQL)
    /// when it does not.
    ///
    /// ```
    /// use rds_balancer_testkit::MetadataRelation;
    ///
    /// assert_eq!(
    ///     MetadataRelation::RdsPostgres.existence_query(),
    ///     "SELECT 'rds_tools.show_topology'::regproc"
    /// );
    /// ```
    pub const fn existence_query(self) -> &'static str {
        match self {
            MetadataRelation::AuroraPostgres => {
                "SELECT 'pg_catalog.get_blue_green_fast_switchover_metadata'::regproc"
            }
            MetadataRelation::RdsPostgres => "SELECT 'rds_tools.show_topology'::regproc",
            MetadataRelation::MySql => {
                "SELECT 1 AS tmp FROM information_schema.tables \
                 WHERE table_schema = 'mysql' AND table_name = 'rds_topology'"
            }
        }
    }

    /// The relation as it is named in a `FROM` clause, called with `driver_id` (quoted) for the
    /// PostgreSQL functions; `driver_id` is not used for `mysql.rds_topology`.
    ///
    /// ```
    /// use rds_balancer_testkit::MetadataRelation;
    ///
    /// assert_eq!(
    ///     MetadataRelation::AuroraPostgres.from_clause("rds-balancer"),
    ///     "pg_catalog.get_blue_green_fast_switchover_metadata('rds-balancer')"
    /// );
    /// assert_eq!(MetadataRelation::MySql.from_clause("ignored"), "mysql.rds_topology");
    /// ```
    pub fn from_clause(self, driver_id: &str) -> String {
        let id = driver_id.replace('\'', "''");
        match self {
            MetadataRelation::AuroraPostgres => {
                format!("pg_catalog.get_blue_green_fast_switchover_metadata('{id}')")
            }
            MetadataRelation::RdsPostgres => format!("rds_tools.show_topology('{id}')"),
            MetadataRelation::MySql => "mysql.rds_topology".to_owned(),
        }
    }

    /// The status query the AWS wrappers run, for driver `driver_id`: `SELECT version, endpoint,
    /// port, role, status FROM <relation>`.
    ///
    /// ```
    /// use rds_balancer_testkit::MetadataRelation;
    ///
    /// assert_eq!(
    ///     MetadataRelation::RdsPostgres.status_query("my-driver"),
    ///     "SELECT version, endpoint, port, role, status \
    ///      FROM rds_tools.show_topology('my-driver')"
    /// );
    /// ```
    pub fn status_query(self, driver_id: &str) -> String {
        format!(
            "SELECT version, endpoint, port, role, status FROM {}",
            self.from_clause(driver_id)
        )
    }

    /// The plain table whose rows the relation returns, for tests that write rows by hand (the
    /// PostgreSQL functions' `rds_testkit.blue_green_metadata`; `mysql.rds_topology` itself).
    pub const fn backing_table(self) -> &'static str {
        match self {
            MetadataRelation::AuroraPostgres | MetadataRelation::RdsPostgres => {
                "rds_testkit.blue_green_metadata"
            }
            MetadataRelation::MySql => "mysql.rds_topology",
        }
    }

    /// SQL that removes what [`install_sql`](Self::install_sql) created (the rows with it).
    pub(crate) const fn uninstall_sql(self) -> &'static str {
        match self {
            MetadataRelation::AuroraPostgres => {
                "DROP FUNCTION IF EXISTS pg_catalog.get_blue_green_fast_switchover_metadata(text); \
                 DROP SCHEMA IF EXISTS rds_testkit CASCADE"
            }
            MetadataRelation::RdsPostgres => {
                "DROP SCHEMA IF EXISTS rds_tools CASCADE; \
                 DROP SCHEMA IF EXISTS rds_testkit CASCADE"
            }
            MetadataRelation::MySql => "DROP TABLE IF EXISTS mysql.rds_topology",
        }
    }

    /// SQL that replaces every row of the backing table with `rows`, in one transaction (a
    /// reader sees the old rows or the new ones, never none), stamping them with the time of the
    /// write (UTC).
    pub(crate) fn replace_rows_sql(self, rows: &[MetadataRow]) -> String {
        let table = self.backing_table();
        let (begin, now) = if self.is_postgres() {
            ("BEGIN", "timezone('UTC', now())")
        } else {
            ("START TRANSACTION", "CURRENT_TIMESTAMP(6)")
        };
        let mut sql = format!("{begin}; DELETE FROM {table};");
        if !rows.is_empty() {
            let values: Vec<String> = rows
                .iter()
                .map(|row| {
                    format!(
                        "({}, {}, {}, {}, {}, {}, {now})",
                        row.id,
                        self.quote(&row.endpoint),
                        row.port,
                        self.quote(&row.role),
                        self.quote(&row.status),
                        self.quote(&row.version),
                    )
                })
                .collect();
            sql.push_str(&format!(
                " INSERT INTO {table} (id, endpoint, port, role, status, version, update_stamp) \
                 VALUES {};",
                values.join(", ")
            ));
        }
        sql.push_str(" COMMIT");
        sql
    }

    /// `text` as a string literal of this relation's server: quotes doubled, and on MySQL
    /// backslashes escaped too.
    fn quote(self, text: &str) -> String {
        let text = if self.is_postgres() {
            text.replace('\'', "''")
        } else {
            text.replace('\\', "\\\\").replace('\'', "''")
        };
        format!("'{text}'")
    }
}

impl fmt::Display for MetadataRelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetadataRelation::AuroraPostgres => {
                "pg_catalog.get_blue_green_fast_switchover_metadata"
            }
            MetadataRelation::RdsPostgres => "rds_tools.show_topology",
            MetadataRelation::MySql => "mysql.rds_topology",
        })
    }
}

/// A row's `status`: the phase of the switchover the endpoint is in, as AWS writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlueGreenStatus {
    /// `AVAILABLE`: the deployment exists, no switchover yet.
    Available,
    /// `SWITCHOVER_INITIATED`: the switchover started; nothing has changed for clients yet.
    SwitchoverInitiated,
    /// `SWITCHOVER_IN_PROGRESS`: both sides refuse writes; DNS is being switched.
    SwitchoverInProgress,
    /// `SWITCHOVER_IN_POST_PROCESSING`: the green side has taken the blue names.
    SwitchoverInPostProcessing,
    /// `SWITCHOVER_COMPLETED`: done.
    SwitchoverCompleted,
}

impl BlueGreenStatus {
    /// Every status, in the order a switchover goes through them.
    pub const ALL: [BlueGreenStatus; 5] = [
        BlueGreenStatus::Available,
        BlueGreenStatus::SwitchoverInitiated,
        BlueGreenStatus::SwitchoverInProgress,
        BlueGreenStatus::SwitchoverInPostProcessing,
        BlueGreenStatus::SwitchoverCompleted,
    ];

    /// The text in the `status` column: `AVAILABLE`, `SWITCHOVER_INITIATED`, ...
    ///
    /// ```
    /// use rds_balancer_testkit::BlueGreenStatus;
    ///
    /// assert_eq!(BlueGreenStatus::SwitchoverInPostProcessing.as_str(), "SWITCHOVER_IN_POST_PROCESSING");
    /// assert_eq!(BlueGreenStatus::parse("AVAILABLE"), Some(BlueGreenStatus::Available));
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            BlueGreenStatus::Available => "AVAILABLE",
            BlueGreenStatus::SwitchoverInitiated => "SWITCHOVER_INITIATED",
            BlueGreenStatus::SwitchoverInProgress => "SWITCHOVER_IN_PROGRESS",
            BlueGreenStatus::SwitchoverInPostProcessing => "SWITCHOVER_IN_POST_PROCESSING",
            BlueGreenStatus::SwitchoverCompleted => "SWITCHOVER_COMPLETED",
        }
    }

    /// The status whose [`as_str`](Self::as_str) is `text` (exactly), if any.
    pub fn parse(text: &str) -> Option<BlueGreenStatus> {
        BlueGreenStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for BlueGreenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row's `role`: which side of the deployment the endpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlueGreenRole {
    /// `BLUE_GREEN_DEPLOYMENT_SOURCE`: the blue side, serving the application today.
    Source,
    /// `BLUE_GREEN_DEPLOYMENT_TARGET`: the green side, taking over at switchover.
    Target,
}

impl BlueGreenRole {
    /// The text in the `role` column.
    ///
    /// ```
    /// use rds_balancer_testkit::BlueGreenRole;
    ///
    /// assert_eq!(BlueGreenRole::Target.as_str(), "BLUE_GREEN_DEPLOYMENT_TARGET");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            BlueGreenRole::Source => "BLUE_GREEN_DEPLOYMENT_SOURCE",
            BlueGreenRole::Target => "BLUE_GREEN_DEPLOYMENT_TARGET",
        }
    }

    /// The role whose [`as_str`](Self::as_str) is `text` (exactly), if any.
    pub fn parse(text: &str) -> Option<BlueGreenRole> {
        [BlueGreenRole::Source, BlueGreenRole::Target]
            .into_iter()
            .find(|role| role.as_str() == text)
    }

    /// `blue` or `green`.
    pub const fn color(self) -> &'static str {
        match self {
            BlueGreenRole::Source => "blue",
            BlueGreenRole::Target => "green",
        }
    }
}

impl fmt::Display for BlueGreenRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the metadata relation (`update_stamp` aside, which the kit sets to the time of the
/// write). `role` and `status` are text, so that tests can write values AWS does not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetadataRow {
    /// `id`: an identifier of the endpoint (the kit derives a stable positive number from it).
    pub id: i64,
    /// `endpoint`: a host name.
    pub endpoint: String,
    /// `port`.
    pub port: u16,
    /// `role`: [`BlueGreenRole::as_str`].
    pub role: String,
    /// `status`: [`BlueGreenStatus::as_str`].
    pub status: String,
    /// `version`: [`METADATA_VERSION`].
    pub version: String,
}

impl MetadataRow {
    /// A row as AWS writes it: `endpoint:port` in `role` at `status`, version
    /// [`METADATA_VERSION`], id [`endpoint_id`](Self::endpoint_id)`(endpoint)`.
    pub fn new(endpoint: &str, port: u16, role: BlueGreenRole, status: BlueGreenStatus) -> Self {
        MetadataRow {
            id: Self::endpoint_id(endpoint),
            endpoint: endpoint.to_owned(),
            port,
            role: role.as_str().to_owned(),
            status: status.as_str().to_owned(),
            version: METADATA_VERSION.to_owned(),
        }
    }

    /// The id the kit gives `endpoint`: a positive number below 2^31 derived from the lower-cased
    /// name (FNV-1a), like the large ids AWS shows, and the same for the same name every time.
    ///
    /// ```
    /// use rds_balancer_testkit::MetadataRow;
    ///
    /// let id = MetadataRow::endpoint_id("app.cluster-xyz.us-east-1.rds.amazonaws.com");
    /// assert!(id > 0 && id < 1 << 31);
    /// assert_eq!(id, MetadataRow::endpoint_id("APP.cluster-xyz.us-east-1.rds.amazonaws.com"));
    /// ```
    pub fn endpoint_id(endpoint: &str) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in endpoint.bytes().map(|b| b.to_ascii_lowercase()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Never 0, and fits in 31 bits.
        i64::try_from(hash % 0x7fff_ffff).unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn statuses_and_roles_round_trip_through_their_text() {
        for status in BlueGreenStatus::ALL {
            assert_eq!(BlueGreenStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(BlueGreenStatus::parse("available"), None);
        for role in [BlueGreenRole::Source, BlueGreenRole::Target] {
            assert_eq!(BlueGreenRole::parse(role.as_str()), Some(role));
        }
        assert!(BlueGreenStatus::ALL.is_sorted());
    }

    #[test]
    fn rows_are_replaced_in_one_transaction_with_quoted_text() {
        let row = MetadataRow {
            id: 7,
            endpoint: "it's\\".to_owned(),
            port: 5432,
            role: "R".to_owned(),
            status: "S".to_owned(),
            version: "1.0".to_owned(),
        };
        let pg = MetadataRelation::AuroraPostgres.replace_rows_sql(std::slice::from_ref(&row));
        assert_eq!(
            pg,
            "BEGIN; DELETE FROM rds_testkit.blue_green_metadata; INSERT INTO \
             rds_testkit.blue_green_metadata (id, endpoint, port, role, status, version, \
             update_stamp) VALUES (7, 'it''s\\', 5432, 'R', 'S', '1.0', \
             timezone('UTC', now())); COMMIT"
        );
        let mysql = MetadataRelation::MySql.replace_rows_sql(&[row]);
        assert!(mysql.starts_with("START TRANSACTION; DELETE FROM mysql.rds_topology;"));
        assert!(mysql.contains("(7, 'it''s\\\\', 5432,"), "{mysql}");
        assert_eq!(
            MetadataRelation::MySql.replace_rows_sql(&[]),
            "START TRANSACTION; DELETE FROM mysql.rds_topology; COMMIT"
        );
    }

    #[test]
    fn driver_ids_are_quoted_in_the_status_query() {
        assert_eq!(
            MetadataRelation::AuroraPostgres.status_query("a'b"),
            "SELECT version, endpoint, port, role, status \
             FROM pg_catalog.get_blue_green_fast_switchover_metadata('a''b')"
        );
        assert_eq!(
            MetadataRelation::MySql.status_query("x"),
            "SELECT version, endpoint, port, role, status FROM mysql.rds_topology"
        );
    }
}
