//! One MariaDB server of a cluster: its identity and how to query it with the `mariadb` client
//! (its process lifecycle and faults are in `server.rs`, its replication in `replication.rs`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Ctx;
use crate::error::Error;
use crate::process;
use crate::text::percent_encode;

/// The default deadline of [`MariaDbNode::sql`].
pub(super) const SQL_TIMEOUT: Duration = Duration::from_secs(60);

/// One MariaDB server of a [`MariaDbCluster`](crate::MariaDbCluster): its name, port and data,
/// and the faults it can be put through (stop, crash, pause, restart).
///
/// Obtained from the cluster (`primary()`, `replicas()`, `nodes()`); it keeps its name, port and
/// role (primary or replica, changed by
/// [`MariaDbCluster::promote`](crate::MariaDbCluster::promote)) across restarts.
pub struct MariaDbNode {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Ctx>,
    name: String,
    port: u16,
    /// `@@server_id`: 1 for the first primary, 2, 3, ... for the first replicas. It never
    /// changes (a promotion changes the role, not the id), so every node's GTIDs stay apart.
    server_id: u32,
    /// `<cluster dir>/<name>`: holds `data/`, `tmp/`, `mariadb.sock` and `mariadb.log`.
    dir: PathBuf,
    state: Mutex<State>,
}

/// The server process and the node's role, guarded by the node's lock.
pub(super) struct State {
    /// `mariadbd`, a child of this process (never daemonized).
    pub(super) server: Option<Child>,
    /// Stopped with `SIGSTOP` by `pause`.
    pub(super) paused: bool,
    /// What the node is now; the next `start` runs it as such (a promoted node comes back
    /// writable, a replica read-only).
    pub(super) role: Role,
    /// The port of the primary a replica must be (re-)pointed at, when that could not be done
    /// yet: the node was stopped or paused when told to follow. Applied by the next `start` (which
    /// then keeps the old replication connection from starting) or `resume`.
    pub(super) repoint: Option<u16>,
}

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Writable (`read_only=0`), replicating from no one.
    Primary,
    /// `--read-only=ON`, replicating (binary log, GTID) from the primary it was pointed at.
    Replica,
}

impl MariaDbNode {
    pub(super) fn new(ctx: Arc<Ctx>, name: &str, server_id: u32, port: u16, role: Role) -> Self {
        let dir = ctx.root().join(name);
        MariaDbNode {
            inner: Arc::new(Inner {
                ctx,
                name: name.to_owned(),
                port,
                server_id,
                dir,
                state: Mutex::new(State {
                    server: None,
                    paused: false,
                    role,
                    repoint: None,
                }),
            }),
        }
    }

    /// Another handle to the same node.
    pub(super) fn handle(&self) -> MariaDbNode {
        MariaDbNode {
            inner: Arc::clone(&self.inner),
        }
    }

    /// The node's name: `primary`, `replica-1`, `replica-2`, ...
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The loopback port it listens on (on 127.0.0.1 only); what `SELECT @@port` answers.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Its `@@server_id`: 1 for `primary`, then 2, 3, ... for `replica-1`, `replica-2`, ...
    /// It stays the same when the node is promoted.
    pub fn server_id(&self) -> u32 {
        self.inner.server_id
    }

    /// Whether it is a replica (`read_only=1`, replicating from the cluster's primary): true for
    /// the replicas until one is promoted with
    /// [`MariaDbCluster::promote`](crate::MariaDbCluster::promote), which makes it false for that
    /// one. Kept across restarts.
    pub fn is_replica(&self) -> bool {
        self.lock().role == Role::Replica
    }

    /// A connection URL for database `db` as `root` with no password (over TCP):
    /// `mysql://root@127.0.0.1:PORT/db`. Root has `SUPER`, so `read_only` does not stop it:
    /// give the code under test a user of its own
    /// ([`MariaDbCluster::create_user`](crate::MariaDbCluster::create_user)).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.inner.port)
    }

    /// A connection URL for database `db` as `user` with `password` (both percent-encoded):
    /// `mysql://user:password@127.0.0.1:PORT/db`.
    pub fn url_as(&self, db: &str, user: &str, password: &str) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{db}",
            percent_encode(user),
            percent_encode(password),
            self.inner.port
        )
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.inner.dir.join("data")
    }

    /// The server's error log (all starts of this node append to it).
    pub fn log_path(&self) -> PathBuf {
        self.inner.dir.join("mariadb.log")
    }

    pub(super) fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Its own temporary directory: concurrent `mariadb-install-db` runs sharing `/tmp` were
    /// seen to lose each other's temporary tables.
    pub(super) fn tmp_dir(&self) -> PathBuf {
        self.inner.dir.join("tmp")
    }

    pub(super) fn socket_path(&self) -> PathBuf {
        self.inner.dir.join("mariadb.sock")
    }

    pub(super) fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn alive(state: &mut State) -> bool {
        matches!(state.server.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The server's process id, while it runs (paused or not).
    pub fn pid(&self) -> Option<u32> {
        let mut state = self.lock();
        if Self::alive(&mut state) {
            state.server.as_ref().map(Child::id)
        } else {
            None
        }
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
    pub(super) fn is_answering(&self) -> bool {
        let mut state = self.lock();
        Self::alive(&mut state) && !state.paused
    }

    /// Runs `sql` (one or more `;`-separated statements) on this server as `root`, in
    /// database `db` (none when empty), with the `mariadb` client over TCP in batch mode, and
    /// returns what it printed without the final newline: one line per row, columns separated
    /// by tabs, no headers. A failing statement is an [`Error::Command`] carrying the client's
    /// standard error. Gives up after 60 s.
    ///
    /// Ask `SELECT @@read_only` alone: read alongside a table it has been seen to show 0.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String, Error> {
        self.sql_with_timeout(db, sql, SQL_TIMEOUT)
    }

    /// Like [`sql`](Self::sql) with a deadline of `timeout` for connecting and running (the
    /// client is killed then, and an [`Error::Timeout`] returned): the way to observe a paused
    /// server. The client's own connect timeout is 10 s, so with a longer `timeout` a paused
    /// server is reported after 10 s as an [`Error::Command`].
    pub fn sql_with_timeout(
        &self,
        db: &str,
        sql: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        self.run_client(db, "root", None, sql, timeout, false)
    }

    /// Like [`sql`](Self::sql), connecting as `user` with `password`: a user without `SUPER` is
    /// refused writes on a replica ([`Error::Command`] whose `stderr` says `--read-only`).
    pub fn sql_as(&self, db: &str, user: &str, password: &str, sql: &str) -> Result<String, Error> {
        self.run_client(db, user, Some(password), sql, SQL_TIMEOUT, false)
    }

    /// Runs the client; the output has a first line of column names when `column_names`.
    pub(super) fn run_client(
        &self,
        db: &str,
        user: &str,
        password: Option<&str>,
        sql: &str,
        timeout: Duration,
        column_names: bool,
    ) -> Result<String, Error> {
        let ctx = self.ctx();
        let mut cmd = ctx.run_as.command(&ctx.bin.client, ctx.root());
        cmd.args(["--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-B"]);
        if !column_names {
            cmd.arg("-N");
        }
        cmd.arg(format!("--port={}", self.port()))
            .arg(format!("--user={user}"))
            // Past `timeout` when that is short, so that a paused server (which accepts the TCP
            // connection but never greets) is reported as an `Error::Timeout`.
            .arg(format!(
                "--connect-timeout={}",
                (timeout.as_secs() + 1).clamp(2, 10)
            ));
        if let Some(password) = password {
            // Not on the command line, where `ps` would show it.
            cmd.env("MYSQL_PWD", password);
        }
        if !db.is_empty() {
            cmd.arg(format!("--database={db}"));
        }
        cmd.arg("-e").arg(sql);
        let what = format!(
            "mariadb on {} (port {}, db {db:?}, user {user}) running `{}`",
            self.name(),
            self.port(),
            sql.trim()
        );
        let out = process::run_ok(cmd, &what, timeout)?;
        Ok(out.strip_suffix('\n').unwrap_or(&out).to_owned())
    }
}

/// `name` as a backquoted identifier.
pub(super) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as a single-quoted string literal.
pub(super) fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

impl fmt::Debug for MariaDbNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaDbNode")
            .field("name", &self.inner.name)
            .field("port", &self.inner.port)
            .field("server_id", &self.inner.server_id)
            // Not waiting for the lock: a start may hold it for seconds.
            .field("role", &self.inner.state.try_lock().map(|s| s.role).ok())
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod test {
    use super::{quote_ident, quote_string};

    #[test]
    fn names_and_strings_are_quoted() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_string("it's \\"), "'it''s \\\\'");
    }
}
