//! Making a node's data directory (initdb or pg_basebackup) and pointing a replica at a primary.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::PgNode;
use super::options::PgClusterBuilder;
use super::tls::Tls;
use crate::error::Error;
use crate::process::run_ok;

/// Settings of every node (copied from the primary to the replicas by pg_basebackup), tuned for
/// throw-away clusters on a small shared machine: no durability, small memory, fast WAL hand-off.
/// [`settings`] adds `max_connections` and TLS.
const SETTINGS: &str = "
# rds-balancer-testkit
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
password_encryption = 'scram-sha-256'
wal_level = replica
max_wal_senders = 10
wal_sender_timeout = 10s
wal_keep_size = 256MB
wal_writer_delay = 10ms
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 200ms
";

/// `pg_hba.conf` (the whole file: the first matching line wins): the kit's `postgres` superuser
/// is trusted, replication included, so that the kit needs no password; every other role must
/// give its password (SCRAM). `{host}` is `host` (TLS or not) or `hostssl` (TLS only).
const HBA: &str = "
# rds-balancer-testkit
local all postgres trust
local replication postgres trust
local all all scram-sha-256
local replication all scram-sha-256
{host} all postgres 127.0.0.1/32 trust
{host} replication postgres 127.0.0.1/32 trust
{host} all all 127.0.0.1/32 scram-sha-256
{host} replication all 127.0.0.1/32 scram-sha-256
";

/// The `postgresql.conf` lines of a cluster started with `options`.
pub(super) fn settings(options: &PgClusterBuilder, tls: Option<&Tls>) -> String {
    let mut text = format!("{SETTINGS}max_connections = {}\n", options.max_connections);
    if let Some(tls) = tls {
        text.push_str(&tls.settings());
    }
    text
}

/// The `pg_hba.conf` of a cluster started with `options`.
pub(super) fn hba(options: &PgClusterBuilder) -> String {
    let host = if options.require_tls {
        "hostssl"
    } else {
        "host"
    };
    HBA.replace("{host}", host)
}

const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

impl PgNode {
    /// Creates the node's directories, owned by the server user.
    pub(crate) fn make_dirs(&self) -> Result<(), Error> {
        let run_as = &self.ctx().run_as;
        run_as.create_dir(self.dir())?;
        run_as.create_dir(&self.dir().join("sock"))
    }

    /// `initdb` a fresh primary and configure it with `settings` (appended to
    /// `postgresql.conf`) and `hba` (the whole `pg_hba.conf`).
    pub(crate) fn init_primary(&self, settings: &str, hba: &str) -> Result<(), Error> {
        self.make_dirs()?;
        let ctx = self.ctx();
        let mut cmd = ctx.run_as.command(ctx.bin.tool("initdb"), self.dir());
        cmd.args([
            "-N",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "-D",
        ]);
        cmd.arg(self.data_dir());
        run_ok(cmd, &format!("initdb for {}", self.name()), SETUP_TIMEOUT)?;
        append(&self.data_dir().join("postgresql.conf"), settings)?;
        // Truncates and writes the existing file, which keeps its owner.
        let path = self.data_dir().join("pg_hba.conf");
        fs::write(&path, hba).map_err(|e| Error::io(format!("write {}", path.display()), e))
    }

    /// Makes this node a streaming replica of `primary` with `pg_basebackup -R -X stream`.
    pub(crate) fn base_backup(&self, primary: &PgNode) -> Result<(), Error> {
        self.make_dirs()?;
        let ctx = self.ctx();
        let mut cmd = ctx
            .run_as
            .command(ctx.bin.tool("pg_basebackup"), self.dir());
        cmd.args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-N",
            "--no-manifest",
            "-w",
        ]);
        cmd.arg("-p")
            .arg(primary.port().to_string())
            .arg("-D")
            .arg(self.data_dir());
        run_ok(
            cmd,
            &format!("pg_basebackup of {} from {}", self.name(), primary.name()),
            SETUP_TIMEOUT,
        )?;
        // Replace -R's connection string by one that names the replica in pg_stat_replication.
        append(
            &self.data_dir().join("postgresql.auto.conf"),
            &format!("primary_conninfo = '{}'\n", self.conninfo(primary)),
        )
    }

    fn conninfo(&self, primary: &PgNode) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres application_name={}",
            primary.port(),
            self.name()
        )
    }

    /// Points this replica at `primary` (after a promotion). A running replica gets `ALTER
    /// SYSTEM SET primary_conninfo` and a reload, as an operator would do; a stopped or paused one
    /// gets the same line written into `postgresql.auto.conf`, read when it starts or resumes.
    pub(crate) fn follow(&self, primary: &PgNode) -> Result<(), Error> {
        let conninfo = self.conninfo(primary);
        if self.is_answering() {
            self.psql(
                "postgres",
                &format!("ALTER SYSTEM SET primary_conninfo = '{conninfo}'"),
            )?;
            self.psql("postgres", "SELECT pg_reload_conf()").map(drop)
        } else {
            let path = self.data_dir().join("postgresql.auto.conf");
            let old = fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
            let mut new: String = old
                .lines()
                .filter(|line| !line.trim_start().starts_with("primary_conninfo"))
                .map(|line| format!("{line}\n"))
                .collect();
            new.push_str(&format!("primary_conninfo = '{conninfo}'\n"));
            fs::write(&path, new).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
            if self.is_running() {
                self.reload()
            } else {
                Ok(())
            }
        }
    }
}

/// Appends `text` to the file at `path` (which keeps its owner).
fn append(path: &Path, text: &str) -> Result<(), Error> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| Error::io(format!("append to {}", path.display()), e))
}
