//! Finding the MariaDB server, installer and client binaries.

use std::path::PathBuf;

use super::MARIADB_INSTALL_HINT;
use crate::error::Error;

/// The MariaDB programs the kit runs.
#[derive(Debug, Clone)]
pub(super) struct MariaDbBin {
    /// `mariadbd` (or `mysqld`).
    pub(super) server: PathBuf,
    /// `mariadb-install-db` (or `mysql_install_db`).
    pub(super) install_db: PathBuf,
    /// `mariadb` (or `mysql`), the command-line client.
    pub(super) client: PathBuf,
}

impl MariaDbBin {
    /// Looks on `PATH`, then in `/usr/sbin`, `/usr/local/sbin`, `/usr/bin` and `/usr/local/bin`.
    /// Fails loudly, with the command that installs MariaDB, when a program is missing.
    pub(super) fn find() -> Result<Self, Error> {
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
