//! PostgreSQL: a primary with streaming replicas ([`PgCluster`]) and its servers ([`PgNode`]).

mod bin;
mod cluster;
mod node;
mod replication;
mod server;
mod setup;

use std::path::PathBuf;

use self::bin::PgBin;
pub use self::cluster::PgCluster;
pub use self::node::PgNode;
use crate::process::RunAs;

/// What every node of a cluster shares: the binaries, the OS user and the cluster's directory.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) bin: PgBin,
    pub(crate) run_as: RunAs,
    pub(crate) root: PathBuf,
}
