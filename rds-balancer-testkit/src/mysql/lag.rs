//! Replica lag on purpose: pausing and delaying the applier (SQL thread) of a replica, and the
//! GTID positions that show what it has applied.

use std::time::Duration;

use super::replication::{SlaveStatus, status_field};
use super::{MariaDbCluster, MariaDbNode};
use crate::error::Error;
use crate::lag::{ApplyDelay, CONFIRM_TIMEOUT, ReplayPaused, Replica, wait_for_state};

impl MariaDbCluster {
    /// Pauses applying on `replicas()[replica]` (`STOP SLAVE SQL_THREAD`) and returns once
    /// `SHOW SLAVE STATUS` says `Slave_SQL_Running: No`: from then on its I/O thread keeps
    /// receiving the primary's binary log (`Gtid_IO_Pos`, see
    /// [`received_position`](Self::received_position), advances) but it applies none of it, so
    /// a row written meanwhile exists on the primary only.
    ///
    /// Replay resumes when the returned guard is dropped or [resumed](ReplayPaused::resume),
    /// which leaves a shared cluster as it was even when the test fails. While replay is
    /// paused, [`wait_replicated`](Self::wait_replicated) (and so
    /// [`create_database`](Self::create_database)) times out waiting for this replica. A pause
    /// does not survive a restart of the replica (replication starts again with the server),
    /// nor a [`promote`](Self::promote) that re-points it.
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`,
    /// [`Error::NotRunning`] when it is stopped or paused ([`MariaDbNode::pause`]), and
    /// [`Error::Timeout`] when the pause is not confirmed within 60 s.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::MariaDbCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::start(1)?;
    /// cluster.create_database("app")?;
    /// cluster.sql("app", "CREATE TABLE t (id int primary key)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// let replica = &cluster.replicas()[0];
    /// let paused = cluster.pause_replay(0)?;
    /// cluster.sql("app", "INSERT INTO t VALUES (1)")?;
    /// assert_eq!(replica.sql("app", "SELECT count(*) FROM t")?, "0");
    /// paused.resume()?; // or drop it
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// assert_eq!(replica.sql("app", "SELECT count(*) FROM t")?, "1");
    /// # Ok(()) }
    /// ```
    pub fn pause_replay(&self, replica: usize) -> Result<ReplayPaused<'_>, Error> {
        ReplayPaused::pause(Replica::MariaDb(self.replica(replica)?))
    }

    /// Resumes applying on `replicas()[replica]` (`START SLAVE SQL_THREAD`) and returns once
    /// `SHOW SLAVE STATUS` says `Slave_SQL_Running: Yes`: what a [`ReplayPaused`] guard does
    /// when it ends, for a pause made another way. Does nothing when it is applying already, or
    /// when the replica is stopped (replication starts again with the server) or replicates
    /// from no one (promoted).
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`,
    /// [`Error::NotRunning`] when it is paused ([`MariaDbNode::pause`]), and [`Error::Timeout`]
    /// when the resume is not confirmed within 60 s (the SQL thread stopped again on an
    /// error, say: the message holds `Last_SQL_Error`).
    pub fn resume_replay(&self, replica: usize) -> Result<(), Error> {
        self.replica(replica)?.set_replay_paused(false)
    }

    /// Delays applying on `replicas()[replica]`: `STOP SLAVE; CHANGE MASTER TO MASTER_DELAY =
    /// <seconds>; START SLAVE` there (MariaDB refuses to change the delay while the I/O thread
    /// runs, so both threads stop for a moment; a paused replay stays paused), returning once
    /// `SHOW SLAVE STATUS` shows the new `SQL_Delay` and the threads running as before. A
    /// `delay` of zero turns the delay off.
    ///
    /// MariaDB's delay is a whole number of seconds: `delay` is rounded up (300 ms delays by
    /// 1 s). The replica applies each transaction no sooner than the delay after it was run on
    /// the primary (the same clock here: one machine); it keeps receiving meanwhile. Restarting
    /// the threads makes the replica fetch again what it had received but not applied, with no
    /// loss.
    ///
    /// The delay lasts until the returned guard is dropped or [reset](ApplyDelay::reset),
    /// which sets it back to zero and so leaves a shared cluster as it was even when the test
    /// fails. It survives a restart of the replica; a [`promote`](Self::promote) keeps it on
    /// the re-pointed replicas and clears it on the promoted one.
    /// [`wait_replicated`](Self::wait_replicated) waits for delayed replicas too, so it takes at
    /// least the delay.
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`,
    /// [`Error::NotRunning`] when it is stopped or paused ([`MariaDbNode::pause`]),
    /// [`Error::Unexpected`] when it replicates from no one, and [`Error::Timeout`] when the
    /// setting is not confirmed within 60 s.
    ///
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// use rds_balancer_testkit::MariaDbCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::start(1)?;
    /// cluster.create_database("app")?;
    /// cluster.sql("app", "CREATE TABLE t (id int primary key)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// let delay = cluster.set_apply_delay(0, Duration::from_secs(1))?;
    /// let written = Instant::now();
    /// cluster.sql("app", "INSERT INTO t VALUES (1)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// assert!(written.elapsed() >= Duration::from_secs(1));
    /// delay.reset()?; // or drop it
    /// # Ok(()) }
    /// ```
    pub fn set_apply_delay(
        &self,
        replica: usize,
        delay: Duration,
    ) -> Result<ApplyDelay<'_>, Error> {
        ApplyDelay::set(Replica::MariaDb(self.replica(replica)?), delay)
    }

    /// The primary's GTID position: `SELECT @@gtid_binlog_pos` there (`0-1-6`: domain 0,
    /// server 1, sequence number 6; one such triple per domain, comma-separated; empty before
    /// the first transaction). Read it after a write, and compare it with a replica's
    /// [`replayed_position`](Self::replayed_position) domain by domain (the sequence numbers),
    /// or wait for it on the replica with `SELECT MASTER_GTID_WAIT('<position>', <seconds>)`.
    pub fn writer_position(&self) -> Result<String, Error> {
        self.sql("", "SELECT @@gtid_binlog_pos")
    }

    /// How far `replicas()[replica]` has applied the primary's binary log: `SELECT
    /// @@gtid_slave_pos` there, in the format of [`writer_position`](Self::writer_position). It
    /// stays put while replay is [paused](Self::pause_replay), and reaches a
    /// `writer_position` read after a write once the replica shows that write.
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`.
    pub fn replayed_position(&self, replica: usize) -> Result<String, Error> {
        self.replica(replica)?.sql("", "SELECT @@gtid_slave_pos")
    }

    /// How far `replicas()[replica]` has received the primary's binary log: `Gtid_IO_Pos` of
    /// its `SHOW SLAVE STATUS`, in the format of [`writer_position`](Self::writer_position)
    /// (empty when it replicates from no one). It advances while replay is
    /// [paused](Self::pause_replay) or [delayed](Self::set_apply_delay).
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`.
    pub fn received_position(&self, replica: usize) -> Result<String, Error> {
        let status = self.replica(replica)?.slave_status()?;
        Ok(status_field(&status, "Gtid_IO_Pos").to_owned())
    }

    /// `replicas()[index]`, or [`Error::NoSuchReplica`].
    fn replica(&self, index: usize) -> Result<&MariaDbNode, Error> {
        let replicas = self.replicas();
        replicas.get(index).ok_or(Error::NoSuchReplica {
            index,
            count: replicas.len(),
        })
    }
}

impl MariaDbNode {
    /// Stops or starts the SQL thread and waits until `SHOW SLAVE STATUS` says so. Resuming a
    /// stopped server or one that replicates from no one does nothing.
    pub(crate) fn set_replay_paused(&self, paused: bool) -> Result<(), Error> {
        if !paused && !self.is_running() {
            return Ok(());
        }
        self.check_answering()?;
        let status = self.slave_status()?;
        if status.is_empty() {
            if paused {
                return Err(self.not_a_replica());
            }
            return Ok(());
        }
        let (statement, want) = if paused {
            ("STOP SLAVE SQL_THREAD", "No")
        } else {
            ("START SLAVE SQL_THREAD", "Yes")
        };
        self.sql("", statement)?;
        wait_for_state(
            || format!("{} to report Slave_SQL_Running: {want}", self.name()),
            CONFIRM_TIMEOUT,
            || {
                let status = self.slave_status()?;
                let running = status_field(&status, "Slave_SQL_Running");
                Ok((running == want, threads(&status)))
            },
        )
    }

    /// `CHANGE MASTER TO MASTER_DELAY` (whole seconds, rounded up) with both threads stopped,
    /// then starts again the threads that ran, and waits until `SHOW SLAVE STATUS` shows the
    /// delay and the threads as they were.
    pub(crate) fn set_apply_delay(&self, delay: Duration) -> Result<(), Error> {
        self.check_answering()?;
        let seconds = delay.as_nanos().div_ceil(1_000_000_000);
        let before = self.slave_status()?;
        if before.is_empty() {
            return Err(self.not_a_replica());
        }
        let applying = status_field(&before, "Slave_SQL_Running") == "Yes";
        // `Yes`, `No`, or `Connecting` (started, retrying): the I/O thread is to be as it was.
        let io_before = status_field(&before, "Slave_IO_Running").to_owned();
        let receiving = io_before != "No";
        self.sql("", "STOP SLAVE")?;
        let changed = self.sql("", &format!("CHANGE MASTER TO MASTER_DELAY = {seconds}"));
        // Started again even when the change failed, as they were.
        let restart = match (receiving, applying) {
            (true, true) => Some("START SLAVE"),
            (true, false) => Some("START SLAVE IO_THREAD"),
            (false, true) => Some("START SLAVE SQL_THREAD"),
            (false, false) => None,
        };
        if let Some(restart) = restart {
            self.sql("", restart)?;
        }
        changed?;
        let want_sql = if applying { "Yes" } else { "No" };
        let io_as_before = |io: &str| match io_before.as_str() {
            "Yes" | "No" => io == io_before,
            _ => io != "No",
        };
        let want = seconds.to_string();
        wait_for_state(
            || {
                format!(
                    "{} to report SQL_Delay: {want}, Slave_IO_Running: {io_before}, \
                     Slave_SQL_Running: {want_sql}",
                    self.name(),
                )
            },
            CONFIRM_TIMEOUT,
            || {
                let status = self.slave_status()?;
                let delay = status_field(&status, "SQL_Delay");
                let reached = delay == want
                    && io_as_before(status_field(&status, "Slave_IO_Running"))
                    && status_field(&status, "Slave_SQL_Running") == want_sql;
                Ok((reached, format!("SQL_Delay: {delay}, {}", threads(&status))))
            },
        )
    }

    fn not_a_replica(&self) -> Error {
        Error::Unexpected {
            what: format!("{} replicates from no one", self.name()),
        }
    }

    /// [`Error::NotRunning`] unless the server is running and not paused.
    fn check_answering(&self) -> Result<(), Error> {
        if self.is_answering() {
            Ok(())
        } else {
            Err(Error::NotRunning {
                node: self.name().to_owned(),
            })
        }
    }
}

/// The replication threads' state in `status`, with their last errors, for messages.
fn threads(status: &SlaveStatus) -> String {
    let field = |column| status_field(status, column);
    format!(
        "Slave_IO_Running: {} {:?}, Slave_SQL_Running: {} {:?}",
        field("Slave_IO_Running"),
        field("Last_IO_Error"),
        field("Slave_SQL_Running"),
        field("Last_SQL_Error"),
    )
}
