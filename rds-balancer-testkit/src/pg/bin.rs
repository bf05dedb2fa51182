//! Finding the PostgreSQL server and client binaries.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// The programs the test kit runs; all must sit in one directory.
const TOOLS: [&str; 6] = [
    "initdb",
    "postgres",
    "pg_ctl",
    "pg_basebackup",
    "pg_isready",
    "psql",
];

/// The oldest major version supported: reloading `primary_conninfo` without a restart (used to
/// re-point replicas after a promotion) arrived in PostgreSQL 13.
const MIN_MAJOR: u32 = 13;

/// A directory holding PostgreSQL's binaries, and their major version.
#[derive(Debug, Clone)]
pub(crate) struct PgBin {
    dir: PathBuf,
    major: u32,
}

impl PgBin {
    /// Finds the newest `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`, else the
    /// directory on `PATH` that holds `initdb`. Fails loudly, with the command that installs
    /// PostgreSQL, when none holds every tool.
    pub(crate) fn find() -> Result<Self, Error> {
        PgBin::search(candidates())
    }

    /// The first of `dirs` that holds every tool.
    fn search(dirs: Vec<PathBuf>) -> Result<Self, Error> {
        let mut tried = Vec::new();
        for dir in dirs {
            let missing: Vec<&str> = TOOLS
                .iter()
                .copied()
                .filter(|t| !dir.join(t).is_file())
                .collect();
            if missing.is_empty() {
                return PgBin::at(dir);
            }
            tried.push(format!("{} lacks {}", dir.display(), missing.join(", ")));
        }
        let detail = if tried.is_empty() {
            "no /usr/lib/postgresql/*/bin, no pg_config, no initdb on PATH".to_owned()
        } else {
            tried.join("; ")
        };
        Err(Error::PostgresNotInstalled { detail })
    }

    fn at(dir: PathBuf) -> Result<Self, Error> {
        let postgres = dir.join("postgres");
        let out = Command::new(&postgres)
            .arg("--version")
            .output()
            .map_err(|e| Error::io(format!("could not run {} --version", postgres.display()), e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
        let major = text
            .split(')')
            .nth(1)
            .and_then(|v| v.trim().split(['.', ' ']).next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        if major < MIN_MAJOR {
            return Err(Error::PostgresNotInstalled {
                detail: format!(
                    "{} reports {:?}; PostgreSQL {MIN_MAJOR} or newer is needed",
                    postgres.display(),
                    text.trim()
                ),
            });
        }
        Ok(PgBin { dir, major })
    }

    /// The path of `tool` (`initdb`, `psql`, ...).
    pub(crate) fn tool(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }

    /// The major version, e.g. 15.
    pub(crate) fn major(&self) -> u32 {
        self.major
    }

    /// The directory holding the binaries.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Directories to try, best first.
fn candidates() -> Vec<PathBuf> {
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().to_str()?.to_owned();
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort();
    let mut dirs: Vec<PathBuf> = versioned.into_iter().rev().map(|(_, dir)| dir).collect();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|dir| dir.join("initdb").is_file()));
    }
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::error::INSTALL_HINT;

    #[test]
    fn missing_binaries_fail_with_the_install_command() {
        let err = PgBin::search(Vec::new()).unwrap_err();
        assert!(matches!(err, Error::PostgresNotInstalled { .. }));
        assert!(err.to_string().contains(INSTALL_HINT), "{err}");

        let err = PgBin::search(vec![PathBuf::from("/nonexistent/bin")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/bin lacks initdb, postgres"),
            "{msg}"
        );
        assert!(
            msg.contains("apt-get update && apt-get install -y postgresql"),
            "{msg}"
        );
    }

    #[test]
    fn the_installed_binaries_are_found() {
        let bin = PgBin::find().unwrap_or_else(|e| panic!("{e}"));
        assert!(bin.major() >= MIN_MAJOR);
        assert!(bin.tool("initdb").is_file());
    }
}
