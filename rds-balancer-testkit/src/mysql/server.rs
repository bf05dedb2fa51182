//! A node's server process: installing its data directory, starting it and waiting until it is
//! ready, and the faults (stop, crash, pause) that the tests put it through.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use super::MariaDbNode;
use super::node::{Role, State};
use crate::error::Error;
use crate::process::{self, signal, wait_deadline, wait_gone};
use crate::text::log_tail;

/// How long a server may take to accept connections, and to shut down.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl MariaDbNode {
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
}
