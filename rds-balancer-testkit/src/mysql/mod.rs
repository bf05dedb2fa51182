//! MariaDB: a primary with binary-log (GTID) replicas ([`MariaDbCluster`]) and its servers
//! ([`MariaDbNode`]).
//!
//! The steps: `mariadb-install-db` per node, `mariadbd` on a loopback port with
//! `--read-only=ON` on the replicas, then `CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos` on each
//! replica. Every node writes a binary log, of what it applies too (`--log-bin --log-slave-updates`), so that a replica can be
//! promoted and the others re-pointed at it by GTID; and the servers run as the `mysql` OS user
//! when the test process is root, like the PostgreSQL servers run as `postgres`.

mod bin;
mod cluster;
mod lag;
mod node;
mod options;
mod replication;
mod server;
mod users;

use std::path::{Path, PathBuf};

use self::bin::MariaDbBin;
pub use self::cluster::MariaDbCluster;
pub use self::node::MariaDbNode;
pub use self::options::MariaDbClusterBuilder;
use crate::process::RunAs;

/// The command that installs the MariaDB server and client the test kit runs (Debian/Ubuntu).
pub const MARIADB_INSTALL_HINT: &str =
    "apt-get update && apt-get install -y mariadb-server mariadb-client";

/// What every node of a cluster shares: the binaries, the OS user, the cluster's directory and
/// the servers' settings.
#[derive(Debug)]
struct Ctx {
    bin: MariaDbBin,
    run_as: RunAs,
    root: PathBuf,
    /// Every server's `--max-connections`.
    max_connections: u32,
}

impl Ctx {
    fn root(&self) -> &Path {
        &self.root
    }
}
