//! One PostgreSQL server of a cluster: its identity and how to query it (its process
//! lifecycle and faults are in `server.rs`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Ctx;
use crate::error::Error;
use crate::process;

/// The default deadline of [`PgNode::psql`].
pub(crate) const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// One PostgreSQL server of a [`PgCluster`](crate::PgCluster): its name, port and data, and the
/// faults it can be put through (stop, crash, pause, restart).
///
/// Obtained from the cluster (`primary()`, `replicas()`, `nodes()`); it stays valid, with the
/// same name and port, across restarts and promotions.
pub struct PgNode {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Ctx>,
    name: String,
    port: u16,
    /// `<cluster dir>/<name>`: holds `data/`, `sock/` and `postgres.log`.
    dir: PathBuf,
    state: Mutex<State>,
}

/// The server process, guarded by the node's lock.
#[derive(Default)]
pub(super) struct State {
    /// The postmaster, a child of this process (never daemonized).
    pub(super) server: Option<Child>,
    /// Stopped with `SIGSTOP` by `pause`.
    pub(super) paused: bool,
}

impl PgNode {
    pub(crate) fn new(ctx: Arc<Ctx>, name: &str, port: u16) -> Self {
        let dir = ctx.root.join(name);
        PgNode {
            inner: Arc::new(Inner {
                ctx,
                name: name.to_owned(),
                port,
                dir,
                state: Mutex::default(),
            }),
        }
    }

    /// Another handle to the same node.
    pub(crate) fn handle(&self) -> PgNode {
        PgNode {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The node's name: `primary`, `replica-1`, `replica-2`, ... (fixed at creation: after a
    /// promotion `replica-1` may be the primary).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The loopback port it listens on (on 127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// A connection URL for database `db` as the `postgres` superuser (trust authentication):
    /// `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.inner.port)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.inner.dir.join("data")
    }

    /// The server's log file (all starts of this node append to it).
    pub fn log_path(&self) -> PathBuf {
        self.inner.dir.join("postgres.log")
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(super) fn sock_dir(&self) -> PathBuf {
        self.inner.dir.join("sock")
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the server process is alive (a paused server counts as running).
    pub fn is_running(&self) -> bool {
        Self::alive(&mut self.lock())
    }

    /// Whether the server is paused by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        let mut state = self.lock();
        Self::alive(&mut state) && state.paused
    }

    /// Running and not paused: it will answer.
    pub(crate) fn is_answering(&self) -> bool {
        let mut state = self.lock();
        Self::alive(&mut state) && !state.paused
    }

    pub(super) fn alive(state: &mut State) -> bool {
        matches!(state.server.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Runs `sql` (one or more statements) on this server in database `db` with `psql -X -q -At
    /// -v ON_ERROR_STOP=1` as `postgres`, and returns what it printed, without the final newline:
    /// one line per row, columns separated by `|`, no headers and no command tags. A failing
    /// statement is an [`Error::Command`] carrying psql's standard error. Gives up after 60 s.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        self.psql_with_timeout(db, sql, PSQL_TIMEOUT)
    }

    /// Like [`psql`](Self::psql) with a deadline of `timeout` for connecting and running (psql is
    /// killed then, and an [`Error::Timeout`] returned): the way to observe a paused server.
    pub fn psql_with_timeout(
        &self,
        db: &str,
        sql: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        run_psql(&self.inner.ctx, self.name(), self.port(), db, sql, timeout)
    }
}

/// Runs `sql` with psql on `127.0.0.1:port` (see [`PgNode::psql`]); `who` names what listens
/// there in errors.
pub(crate) fn run_psql(
    ctx: &Ctx,
    who: &str,
    port: u16,
    db: &str,
    sql: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let mut cmd = ctx.run_as.command(ctx.bin.tool("psql"), &ctx.root);
    cmd.args([
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
    ]);
    cmd.arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(db)
        .arg("-c")
        .arg(sql);
    // libpq treats values under 2 as 2.
    cmd.env(
        "PGCONNECT_TIMEOUT",
        timeout.as_secs().clamp(2, 10).to_string(),
    );
    let what = format!(
        "psql on {who} (port {port}, db {db}) running `{}`",
        sql.trim()
    );
    let out = process::run_ok(cmd, &what, timeout)?;
    Ok(out.strip_suffix('\n').unwrap_or(&out).to_owned())
}

impl fmt::Debug for PgNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgNode")
            .field("name", &self.inner.name)
            .field("port", &self.inner.port)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}
