//! PostgreSQL: a primary with streaming replicas ([`PgCluster`]) and its servers ([`PgNode`]).

mod bin;
mod cluster;
mod lag;
mod node;
mod options;
mod replication;
mod roles;
mod server;
mod setup;
mod tls;

use std::path::PathBuf;

use self::bin::PgBin;
pub use self::cluster::PgCluster;
pub use self::node::PgNode;
pub use self::options::PgClusterBuilder;
use crate::process::RunAs;

/// What every node of a cluster shares: the binaries, the OS user and the cluster's directory.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) bin: PgBin,
    pub(crate) run_as: RunAs,
    pub(crate) root: PathBuf,
}
