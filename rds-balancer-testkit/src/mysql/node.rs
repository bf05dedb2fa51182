//! One MariaDB server of a cluster: its identity, its process (start, stop, crash, pause) and
//! how to query it with the `mariadb` client.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::Ctx;
use super::cluster::quote_string;
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
struct State {
    /// `mariadbd`, a child of this process (never daemonized).
    server: Option<Child>,
    /// Stopped with `SIGSTOP` by `pause`.
    paused: bool,
    /// What the node is now; the next `start` runs it as such (a promoted node comes back
    /// writable, a replica read-only).
    role: Role,
    /// The port of the primary a replica must be (re-)pointed at, when that could not be done
    /// yet: the node was stopped or paused when told to follow. Applied by the next `start` (which
    /// then keeps the old replication connection from starting) or `resume`.
    repoint: Option<u16>,
}

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Writable (`read_only=0`), replicating from no one.
    Primary,
    /// `--read-only=ON`, replicating (binary log, GTID) from the primary it was pointed at.
    Replica,
}

/// `SHOW SLAVE STATUS` of a replica, by column name (`Slave_IO_Running`, `Master_Port`,
/// `Gtid_IO_Pos`, ...); empty when it replicates from no one.
pub(super) type SlaveStatus = BTreeMap<String, String>;

/// The value of `column` in `status`, or "" when missing.
pub(super) fn status_field<'a>(status: &'a SlaveStatus, column: &str) -> &'a str {
    status.get(column).map_or("", String::as_str)
}

/// Points a (stopped) replication connection at the primary on `port`, from the GTID position the
/// node has applied (`MASTER_USE_GTID=slave_pos`): no binary log file or position is needed, so
/// any node that logged the same transactions (`--log-slave-updates`) can serve it.
fn change_master(port: u16) -> String {
    format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='root', \
         MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
    )
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
    /// until it accepts connections. It starts as what it is now: a replica read-only, resuming
    /// replication by itself (it may still be catching up:
    /// [`MariaDbCluster::wait_replicated`](crate::MariaDbCluster::wait_replicated) waits for
    /// that), first re-pointed at the new primary when
    /// [`MariaDbCluster::promote`](crate::MariaDbCluster::promote) ran while it was down; a
    /// primary, a promoted replica included, writable. Does nothing when it is already running.
    pub fn start(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if Self::alive(&mut state) {
            return Ok(());
        }
        state.server = None;
        state.paused = false;
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
            // Files are read and written in the temporary directory only, as on RDS:
            // `SELECT .. INTO OUTFILE` elsewhere is refused with 1290, the number `read_only`
            // refuses writes with, from a server that does accept writes.
            .arg(path_arg("secure-file-priv", self.tmp_dir()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                // Throw-away servers on a small shared machine: small memory, no durability.
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=0",
                "--sync-binlog=0",
                // Every node logs what it applies too, so that any replica can become the
                // primary the others replicate from (GTIDs: domain 0, each node its server id).
                "--log-bin=mysql-bin",
                "--log-slave-updates",
                "--binlog-format=ROW",
                "--relay-log=relay-bin",
                "--slave-net-timeout=5",
            ])
            .arg(format!("--max-connections={}", ctx.max_connections));
        if state.role == Role::Replica {
            cmd.arg("--read-only=ON");
            if state.repoint.is_some() {
                // Not to the old primary: `apply_repoint` starts it once pointed at the new one.
                cmd.arg("--skip-slave-start");
            }
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
        if let Err(err) = self.wait_ready(&mut state, log_start) {
            Self::crash(&mut state);
            return Err(err);
        }
        self.apply_repoint(&mut state)
    }

    /// Makes this node a replica of the primary listening on `source_port` (`STOP SLAVE; CHANGE
    /// MASTER TO ... MASTER_USE_GTID=slave_pos; START SLAVE`, with `read_only=1`) and records
    /// the role. A stopped or paused node is re-pointed when started or resumed.
    pub(super) fn follow(&self, source_port: u16) -> Result<(), Error> {
        let mut state = self.lock();
        state.role = Role::Replica;
        state.repoint = Some(source_port);
        if Self::alive(&mut state) && !state.paused {
            self.apply_repoint(&mut state)?;
        }
        Ok(())
    }

    /// Carries out a pending [`follow`](Self::follow) on the running server.
    fn apply_repoint(&self, state: &mut State) -> Result<(), Error> {
        let Some(port) = state.repoint else {
            return Ok(());
        };
        self.sql(
            "",
            &format!(
                "SET GLOBAL read_only = 1; STOP SLAVE; {}; START SLAVE",
                change_master(port)
            ),
        )?;
        state.repoint = None;
        Ok(())
    }

    /// Makes this replica a primary, as a failover does: stops fetching from the old primary,
    /// waits (up to `timeout`) until it has applied every transaction it had received, then
    /// `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`, and records the role, so that it
    /// stays writable across restarts. Fails with [`Error::NotRunning`] when the server is not
    /// running or is paused.
    pub(super) fn promote(&self, timeout: Duration) -> Result<(), Error> {
        let mut state = self.lock();
        if !Self::alive(&mut state) || state.paused {
            return Err(Error::NotRunning {
                node: self.name().to_owned(),
            });
        }
        self.sql("", "STOP SLAVE IO_THREAD")?;
        let received = self.slave_status()?;
        let received = status_field(&received, "Gtid_IO_Pos");
        if !received.is_empty() && !self.gtid_wait(received, timeout)? {
            let applied = self.sql("", "SELECT @@gtid_slave_pos").unwrap_or_default();
            // Leave it replicating as it was.
            let _ = self.sql("", "START SLAVE IO_THREAD");
            return Err(Error::Timeout {
                what: format!(
                    "{} to apply the transactions it received ({received}) before its \
                     promotion (it applied {applied:?})",
                    self.name()
                ),
                after: timeout,
            });
        }
        self.sql("", "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0")?;
        state.role = Role::Primary;
        state.repoint = None;
        Ok(())
    }

    /// `SELECT MASTER_GTID_WAIT(pos, timeout)`: whether the node applied (as a replica)
    /// everything up to GTID position `pos` within `timeout`.
    pub(super) fn gtid_wait(&self, pos: &str, timeout: Duration) -> Result<bool, Error> {
        let waited = self.sql_with_timeout(
            "",
            &format!(
                "SELECT MASTER_GTID_WAIT({}, {})",
                quote_string(pos),
                timeout.as_secs_f64()
            ),
            timeout + Duration::from_secs(10),
        )?;
        Ok(waited == "0")
    }

    /// Its `SHOW SLAVE STATUS`, by column name; empty when it replicates from no one.
    pub(super) fn slave_status(&self) -> Result<SlaveStatus, Error> {
        let out = self.run_client("", "root", None, "SHOW SLAVE STATUS", SQL_TIMEOUT, true)?;
        let mut lines = out.lines();
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Ok(SlaveStatus::new());
        };
        Ok(names
            .split('\t')
            .zip(values.split('\t'))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
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

    /// Resumes a paused server (`SIGCONT`). A replica re-pointed at a new primary while paused
    /// ([`MariaDbCluster::promote`](crate::MariaDbCluster::promote)) is re-pointed now.
    pub fn resume(&self) -> Result<(), Error> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        if state.paused {
            signal("CONT", &[pid])?;
            state.paused = false;
        }
        self.apply_repoint(&mut state)
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
        self.run_client(db, "root", None, sql, timeout, false)
    }

    /// Like [`sql`](Self::sql), connecting as `user` with `password`: a user without `SUPER` is
    /// refused writes on a replica ([`Error::Command`] whose `stderr` says `--read-only`).
    pub fn sql_as(&self, db: &str, user: &str, password: &str, sql: &str) -> Result<String, Error> {
        self.run_client(db, user, Some(password), sql, SQL_TIMEOUT, false)
    }

    /// Runs the client; the output has a first line of column names when `column_names`.
    fn run_client(
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
