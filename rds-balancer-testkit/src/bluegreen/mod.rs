//! Blue/green deployments ([`BlueGreenDeployment`]): two real local clusters, AWS's blue/green
//! metadata relation on both primaries, rows the test drives through the switchover phases, and
//! a [`Dns`] the test flips the way AWS moves the host names at switchover.
//!
//! AWS publishes a deployment's state in a relation every user can read, which drivers poll on
//! a dedicated connection:
//!
//! - Aurora PostgreSQL: `pg_catalog.get_blue_green_fast_switchover_metadata(<driver id>)`
//!   ([`AURORA_PG_BLUE_GREEN_STUB`]);
//! - RDS PostgreSQL: `rds_tools.show_topology(<driver id>)` ([`RDS_PG_BLUE_GREEN_STUB`]);
//! - Aurora MySQL and RDS MySQL: table `mysql.rds_topology` ([`MYSQL_RDS_TOPOLOGY_STUB`]).
//!
//! All three have the columns `id bigint, endpoint text, port int, role text, status text,
//! version text, update_stamp timestamp`; no rows means no deployment. The kit installs the
//! chosen one for real (functions in `pg_catalog` / `rds_tools` created as superuser, over a plain
//! table; `mysql.rds_topology` created as `root`), so the code under test finds it with the
//! drivers' own existence checks ([`MetadataRelation::existence_query`]) and reads it with their
//! own query ([`MetadataRelation::status_query`]).

mod deployment;
mod dns;
mod endpoints;
mod options;
mod relation;

pub use self::deployment::{BlueGreenChange, BlueGreenDeployment, BlueGreenEvent};
pub use self::dns::Dns;
pub use self::endpoints::{BlueGreenEndpoint, EndpointKind};
pub use self::options::BlueGreenDeploymentBuilder;
pub use self::relation::{
    AURORA_PG_BLUE_GREEN_STUB, BlueGreenRole, BlueGreenStatus, METADATA_VERSION,
    MYSQL_RDS_TOPOLOGY_STUB, MetadataRelation, MetadataRow, RDS_PG_BLUE_GREEN_STUB,
};
