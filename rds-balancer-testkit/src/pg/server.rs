//! A node's server process: starting it and waiting until it is ready, and the faults (fast
//! stop, crash, pause) that the tests put it through.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use super::PgNode;
use super::node::State;
use crate::error::Error;
use crate::process::{self, children_of, signal, wait_deadline, wait_gone};
use crate::text::log_tail;

/// How long a server may take to accept connections, and to shut down.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl PgNode {
    /// Starts the server (again, after [`stop`](Self::stop) or [`kill`](Self::kill)) and waits
    /// until it accepts connections; a replica may still be catching up then
    /// ([`PgCluster::wait_replicated`](crate::PgCluster::wait_replicated) waits for that).
    /// Does nothing when it is already running.
    pub fn start(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if Self::alive(&mut state) {
            return Ok(());
        }
        *state = State::default();
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(format!("open {}", log_path.display()), e))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err_log = log.try_clone().map_err(|e| Error::io("dup log file", e))?;
        let ctx = self.ctx();
        let mut cmd = ctx.run_as.command(ctx.bin.tool("postgres"), self.dir());
        cmd.arg("-D").arg(self.data_dir());
        cmd.arg("-p")
            .arg(self.port().to_string())
            .arg("-k")
            .arg(self.sock_dir());
        // Its own process group: signals aimed at the test's group (Ctrl-C) do not reach it; the
        // supervisor and Drop stop it.
        cmd.stdout(log).stderr(err_log).process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("could not start postgres for {}", self.name()), e))?;
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
        let ctx = self.ctx();
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
            let mut cmd = ctx.run_as.command(ctx.bin.tool("pg_isready"), self.dir());
            cmd.args([
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-t",
                "5",
                "-p",
            ]);
            cmd.arg(self.port().to_string());
            let out = process::run(cmd, "pg_isready", Duration::from_secs(10))?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "not accepting connections after {START_TIMEOUT:?}"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with a fast shutdown (`SIGINT`: sessions are ended, a shutdown
    /// checkpoint written) and waits for it to exit. Resumes it first if paused. Does nothing when
    /// it is not running.
    ///
    /// A primary waits for its connected replicas to confirm the shutdown checkpoint: with a
    /// replica paused, that takes up to `wal_sender_timeout` (set to 10 s here).
    pub fn stop(&self) -> Result<(), Error> {
        let mut state = self.lock();
        self.request_stop(&mut state)?;
        self.finish_stop(&mut state)
    }

    /// Sends the fast-shutdown signal without waiting (see [`finish_stop`](Self::finish_stop)).
    fn request_stop(&self, state: &mut State) -> Result<(), Error> {
        if !Self::alive(state) {
            return Ok(());
        }
        let Some(pid) = state.server.as_ref().map(Child::id) else {
            return Ok(());
        };
        signal("INT", &[pid])?;
        Self::resume_pid(state, pid)
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

    /// Stops all `nodes` at once (fast shutdown), for the cluster's teardown.
    pub(crate) fn stop_all(nodes: &[PgNode]) {
        let mut states: Vec<_> = nodes.iter().map(|n| (n, n.lock())).collect();
        for (node, state) in &mut states {
            let _ = node.request_stop(state);
        }
        for (node, state) in &mut states {
            let _ = node.finish_stop(state);
        }
    }

    /// Crashes the server: `SIGKILL` to the postmaster and every child (frozen first so none
    /// forks meanwhile), as when a host dies. Clients see their connections drop without a
    /// message; the next [`start`](Self::start) runs crash recovery. Does nothing when it is not
    /// running.
    pub fn kill(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if Self::crash(&mut state) {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: format!("{}'s processes to die after SIGKILL", self.name()),
                after: STOP_TIMEOUT,
            })
        }
    }

    /// SIGKILLs the server tree and reaps it; returns whether every process went.
    fn crash(state: &mut State) -> bool {
        state.paused = false;
        let Some(mut child) = state.server.take() else {
            return true;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        let pid = child.id();
        let _ = signal("STOP", &[pid]);
        let mut pids = children_of(pid);
        pids.push(pid);
        let _ = signal("KILL", &pids);
        let _ = child.wait();
        // Children are re-parented and reaped elsewhere; a new postmaster must not start while
        // one of them still holds the old shared memory.
        wait_gone(&pids, STOP_TIMEOUT)
    }

    /// Pauses the server like a network black hole: `SIGSTOP` to the postmaster, then to all its
    /// children. Connections stay open but nothing answers, so clients hang until their own
    /// timeouts. Errors with [`Error::NotRunning`] when the server is not running.
    pub fn pause(&self) -> Result<(), Error> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        if !state.paused {
            // Postmaster first, so that it forks nothing after the children are listed.
            signal("STOP", &[pid])?;
            signal("STOP", &children_of(pid))?;
            state.paused = true;
        }
        Ok(())
    }

    /// Resumes a paused server (`SIGCONT` to the postmaster and its children).
    pub fn resume(&self) -> Result<(), Error> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        Self::resume_pid(&mut state, pid)
    }

    /// `SIGCONT` to the postmaster `pid` and its children, when paused.
    fn resume_pid(state: &mut State, pid: u32) -> Result<(), Error> {
        if state.paused {
            let mut pids = children_of(pid);
            pids.push(pid);
            signal("CONT", &pids)?;
            state.paused = false;
        }
        Ok(())
    }

    /// Sends `SIGHUP` (reload the configuration) to a running server, paused or not; a paused
    /// one reloads when resumed.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        signal("HUP", &[pid])
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
