//! One MariaDB server of a cluster: its identity, its process (start, stop, crash, pause) and
//! how to query it with the `mariadb` client.

use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::Ctx;
use crate::error::Error;
use crate::process::{self, signal, wait_deadline, wait_gone};
use crate::text::log_tail;
use crate::text::percent_encode;

/// How long a server may take to accept connections, and to shut down.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The default deadline of [`MariaDbNode::sql`].
const SQL_TIMEOUT: Duration = Duration::from_secs(60);

/// One MariaDB server of a [`MariaDbCluster`](crate::MariaDbCluster): its name, port and data,
/// and the faults it can be put through (stop, crash, pause, restart).
///
/// Obtained from the cluster (`primary()`, `replicas()`, `nodes()`); it keeps its name and port
/// across restarts.
pub struct MariaDbNode {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Ctx>,
    name: String,
    port: u16,
    /// `@@server_id`: 1 for the primary, 2, 3, ... for the replicas.
    server_id: u32,
    /// `<cluster dir>/<name>`: holds `data/`, `tmp/`, `mariadb.sock` and `mariadb.log`.
    dir: PathBuf,
    state: Mutex<State>,
}

/// The server process, guarded by the node's lock.
#[derive(Default)]
struct State {
    /// `mariadbd`, a child of this process (never daemonized).
    server: Option<Child>,
    /// Stopped with `SIGSTOP` by `pause`.
    paused: bool,
}

impl MariaDbNode {
    pub(super) fn new(ctx: Arc<Ctx>, name: &str, server_id: u32, port: u16) -> Self {
        let dir = ctx.root().join(name);
        MariaDbNode {
            inner: Arc::new(Inner {
                ctx,
                name: name.to_owned(),
                port,
                server_id,
                dir,
                state: Mutex::default(),
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

    /// Its `@@server_id`: 1 for the primary, then 2, 3, ... for `replica-1`, `replica-2`, ...
    pub fn server_id(&self) -> u32 {
        self.inner.server_id
    }

    /// Whether it was started as a replica (`--read-only=ON`, replicating from the primary).
    pub fn is_replica(&self) -> bool {
        self.inner.server_id != 1
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
    fn tmp_dir(&self) -> PathBuf {
        self.inner.dir.join("tmp")
    }

    fn socket_path(&self) -> PathBuf {
        self.inner.dir.join("mariadb.sock")
    }

    fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn alive(state: &mut State) -> bool {
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

    /// Creates the node's directory and its data directory with `mariadb-install-db`, `root`
    /// having no password (`--auth-root-authentication-method=normal`).
    pub(super) fn install(&self) -> Result<(), Error> {
        let ctx = self.ctx();
        ctx.run_as.create_dir(self.dir())?;
        ctx.run_as.create_dir(&self.tmp_dir())?;
        let mut cmd = ctx.run_as.command(&ctx.bin.install_db, self.dir());
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--tmpdir={}", self.tmp_dir().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        process::run_ok(
            cmd,
            &format!("mariadb-install-db for {}", self.name()),
            Duration::from_secs(120),
        )
        .map(drop)
    }

    /// Starts the server (again, after [`stop`](Self::stop) or [`kill`](Self::kill)) and waits
    /// until it accepts connections; a replica resumes replicating by itself (it may still be
    /// catching up: [`MariaDbCluster::wait_replicated`](crate::MariaDbCluster::wait_replicated)
    /// waits for that). Does nothing when it is already running.
    pub fn start(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if Self::alive(&mut state) {
            return Ok(());
        }
        *state = State::default();
        let log_path = self.log_path();
        let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let ctx = self.ctx();
        let mut cmd = ctx.run_as.command(&ctx.bin.server, self.dir());
        let path_arg = |flag: &str, path: PathBuf| format!("--{flag}={}", path.display());
        cmd.arg("--no-defaults")
            .arg(path_arg("datadir", self.data_dir()))
            .arg(path_arg("tmpdir", self.tmp_dir()))
            .arg(path_arg("socket", self.socket_path()))
            .arg(path_arg("pid-file", self.dir().join("mariadb.pid")))
            .arg(path_arg("log-error", log_path.clone()))
            .arg(format!("--port={}", self.port()))
            .arg(format!("--server-id={}", self.server_id()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                // Throw-away servers on a small shared machine: small memory, no durability.
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=0",
                "--sync-binlog=0",
                "--max-connections=200",
            ]);
        if self.is_replica() {
            cmd.args([
                "--read-only=ON",
                "--relay-log=relay-bin",
                "--slave-net-timeout=5",
            ]);
        } else {
            cmd.args(["--log-bin=mysql-bin", "--binlog-format=ROW"]);
        }
        // Its own process group: signals aimed at the test's group (Ctrl-C) do not reach it; the
        // supervisor and Drop stop it.
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("could not start mariadbd for {}", self.name()), e))?;
        state.server = Some(child);
        match self.wait_ready(&mut state, log_start) {
            Ok(()) => Ok(()),
            Err(err) => {
                Self::crash(&mut state);
                Err(err)
            }
        }
    }

    fn wait_ready(&self, state: &mut State, log_start: u64) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        let fail = |reason: String| Error::ServerStart {
            node: self.name().to_owned(),
            port: self.port(),
            reason,
            log: self.log_path().display().to_string(),
            log_tail: log_tail(&self.log_path(), log_start),
        };
        loop {
            if let Some(Ok(Some(status))) = state.server.as_mut().map(Child::try_wait) {
                return Err(fail(format!("the server exited ({status})")));
            }
            if self
                .sql_with_timeout("", "SELECT 1", Duration::from_secs(10))
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "not accepting connections after {START_TIMEOUT:?}"
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server cleanly (`SIGTERM`) and waits for it to exit. Resumes it first if
    /// paused. Does nothing when it is not running.
    pub fn stop(&self) -> Result<(), Error> {
        let mut state = self.lock();
        Self::request_stop(&mut state)?;
        self.finish_stop(&mut state)
    }

    fn request_stop(state: &mut State) -> Result<(), Error> {
        if !Self::alive(state) {
            return Ok(());
        }
        let Some(pid) = state.server.as_ref().map(Child::id) else {
            return Ok(());
        };
        signal("TERM", &[pid])?;
        if state.paused {
            signal("CONT", &[pid])?;
            state.paused = false;
        }
        Ok(())
    }

    fn finish_stop(&self, state: &mut State) -> Result<(), Error> {
        let Some(mut child) = state.server.take() else {
            return Ok(());
        };
        match wait_deadline(&mut child, STOP_TIMEOUT) {
            Ok(Some(_)) => Ok(()),
            _ => {
                state.server = Some(child);
                Self::crash(state);
                Err(Error::Timeout {
                    what: format!("{} to shut down (it was killed)", self.name()),
                    after: STOP_TIMEOUT,
                })
            }
        }
    }

    /// Stops all `nodes` at once (`SIGTERM` to each, then waits), for the cluster's teardown.
    pub(super) fn stop_all(nodes: &[MariaDbNode]) {
        let mut states: Vec<_> = nodes.iter().map(|n| (n, n.lock())).collect();
        for (_, state) in &mut states {
            let _ = Self::request_stop(state);
        }
        for (node, state) in &mut states {
            let _ = node.finish_stop(state);
        }
    }

    /// Crashes the server with `SIGKILL`, as when a host dies: clients see their connections
    /// drop; the next [`start`](Self::start) runs crash recovery. Does nothing when it is not
    /// running.
    pub fn kill(&self) -> Result<(), Error> {
        if Self::crash(&mut self.lock()) {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: format!("{}'s process to die after SIGKILL", self.name()),
                after: STOP_TIMEOUT,
            })
        }
    }

    /// SIGKILLs the server (one process: MariaDB uses threads) and reaps it; returns whether
    /// it went.
    fn crash(state: &mut State) -> bool {
        state.paused = false;
        let Some(mut child) = state.server.take() else {
            return true;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        let pid = child.id();
        let _ = signal("KILL", &[pid]);
        let _ = child.wait();
        wait_gone(&[pid], STOP_TIMEOUT)
    }

    /// Pauses the server like a network black hole (`SIGSTOP`): connections stay open but
    /// nothing answers, so clients hang until their own timeouts. Errors with
    /// [`Error::NotRunning`] when the server is not running.
    pub fn pause(&self) -> Result<(), Error> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        if !state.paused {
            signal("STOP", &[pid])?;
            state.paused = true;
        }
        Ok(())
    }

    /// Resumes a paused server (`SIGCONT`).
    pub fn resume(&self) -> Result<(), Error> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        if state.paused {
            signal("CONT", &[pid])?;
            state.paused = false;
        }
        Ok(())
    }

    fn running_pid(&self, state: &mut State) -> Result<u32, Error> {
        match state.server.as_ref().map(Child::id) {
            Some(pid) if Self::alive(state) => Ok(pid),
            _ => Err(Error::NotRunning {
                node: self.name().to_owned(),
            }),
        }
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
        self.run_client(db, "root", None, sql, timeout)
    }

    /// Like [`sql`](Self::sql), connecting as `user` with `password`: a user without `SUPER` is
    /// refused writes on a replica ([`Error::Command`] whose `stderr` says `--read-only`).
    pub fn sql_as(&self, db: &str, user: &str, password: &str, sql: &str) -> Result<String, Error> {
        self.run_client(db, user, Some(password), sql, SQL_TIMEOUT)
    }

    fn run_client(
        &self,
        db: &str,
        user: &str,
        password: Option<&str>,
        sql: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        let ctx = self.ctx();
        let mut cmd = ctx.run_as.command(&ctx.bin.client, ctx.root());
        cmd.args([
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-N",
            "-B",
        ])
        .arg(format!("--port={}", self.port()))
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

impl fmt::Debug for MariaDbNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaDbNode")
            .field("name", &self.inner.name)
            .field("port", &self.inner.port)
            .field("server_id", &self.inner.server_id)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}
