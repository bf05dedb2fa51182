//! MariaDB: a primary with binary-log (GTID) replicas ([`MariaDbCluster`]) and its servers
//! ([`MariaDbNode`]).
//!
//! The steps are those of `shared/recipes/mariadb-replica.sh`: `mariadb-install-db` per node,
//! `mariadbd` on a loopback port with `--read-only=ON` on the replicas, then `CHANGE MASTER TO
//! ... MASTER_USE_GTID=slave_pos` on each replica. Unlike the recipe, every node writes a binary
//! log, of what it applies too (`--log-bin --log-slave-updates`), so that a replica can be
//! promoted and the others re-pointed at it by GTID; and the servers run as the `mysql` OS user
//! when the test process is root, like the PostgreSQL servers run as `postgres`.

mod cluster;
mod node;
mod options;

use std::path::{Path, PathBuf};

pub use self::cluster::MariaDbCluster;
pub use self::node::MariaDbNode;
pub use self::options::MariaDbClusterBuilder;
use crate::error::Error;
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

/// The MariaDB programs the kit runs.
#[derive(Debug, Clone)]
struct MariaDbBin {
    /// `mariadbd` (or `mysqld`).
    server: PathBuf,
    /// `mariadb-install-db` (or `mysql_install_db`).
    install_db: PathBuf,
    /// `mariadb` (or `mysql`), the command-line client.
    client: PathBuf,
}

impl MariaDbBin {
    /// Looks on `PATH`, then in `/usr/sbin`, `/usr/local/sbin`, `/usr/bin` and `/usr/local/bin`.
    /// Fails loudly, with the command that installs MariaDB, when a program is missing.
    fn find() -> Result<Self, Error> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"] {
            dirs.push(PathBuf::from(dir));
        }
        Self::search(&dirs)
    }

    fn search(dirs: &[PathBuf]) -> Result<Self, Error> {
        let find = |names: &[&str]| -> Result<PathBuf, Error> {
            names
                .iter()
                .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
                .find(|path| path.is_file())
                .ok_or_else(|| not_installed(names, dirs))
        };
        Ok(MariaDbBin {
            server: find(&["mariadbd", "mysqld"])?,
            install_db: find(&["mariadb-install-db", "mysql_install_db"])?,
            client: find(&["mariadb", "mysql"])?,
        })
    }
}

/// The error for a missing program: an [`Error::Io`] (`NotFound`) whose message names the
/// install command.
fn not_installed(names: &[&str], dirs: &[PathBuf]) -> Error {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Error::io(
        format!(
            "MariaDB is not installed: none of {} in {}; install it with `{MARIADB_INSTALL_HINT}`",
            names.join(", "),
            dirs.join(":")
        ),
        std::io::ErrorKind::NotFound.into(),
    )
}

impl Ctx {
    fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn missing_binaries_fail_with_the_install_command() {
        let err = MariaDbBin::search(&[PathBuf::from("/nonexistent/bin")]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mariadbd, mysqld"), "{msg}");
        assert!(msg.contains(MARIADB_INSTALL_HINT), "{msg}");
    }

    #[test]
    fn the_installed_binaries_are_found() {
        let bin = MariaDbBin::find().unwrap_or_else(|e| panic!("{e}"));
        assert!(bin.server.is_file() && bin.install_db.is_file() && bin.client.is_file());
    }
}
