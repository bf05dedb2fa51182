//! Replica lag on purpose: pausing and delaying replay on a replica, and the positions (LSNs)
//! that show what it has applied.

use std::time::Duration;

use super::{PgCluster, PgNode};
use crate::error::Error;
use crate::lag::{ApplyDelay, CONFIRM_TIMEOUT, ReplayPaused, Replica, wait_for_state};

impl PgCluster {
    /// Pauses WAL replay on `replicas()[replica]` (`SELECT pg_wal_replay_pause()`) and returns
    /// once the server reports it paused (`pg_get_wal_replay_pause_state()` = `paused`): from
    /// then on it keeps receiving the primary's WAL (`pg_last_wal_receive_lsn()` advances) but
    /// applies none of it, so a row written meanwhile exists on the primary only.
    ///
    /// Replay resumes when the returned guard is dropped or [resumed](ReplayPaused::resume),
    /// which leaves a shared cluster as it was even when the test fails. While replay is
    /// paused, [`wait_replicated`](Self::wait_replicated) (and so
    /// [`create_database`](Self::create_database)) times out waiting for this replica. A
    /// commit being held back by an [apply delay](Self::set_apply_delay) is applied first: the
    /// pause starts after it (the server says `pause requested` until then). A pause does not
    /// survive a restart of the replica, and ends when it is promoted.
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`,
    /// [`Error::NotRunning`] when it is stopped or paused ([`PgNode::pause`]), and
    /// [`Error::Timeout`] when the pause is not confirmed within 60 s.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::PgCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::start(1)?;
    /// cluster.create_database("app")?;
    /// cluster.psql("app", "CREATE TABLE t (id int)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// let replica = &cluster.replicas()[0];
    /// let paused = cluster.pause_replay(0)?;
    /// cluster.psql("app", "INSERT INTO t VALUES (1)")?;
    /// assert_eq!(replica.psql("app", "SELECT count(*) FROM t")?, "0");
    /// paused.resume()?; // or drop it
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// assert_eq!(replica.psql("app", "SELECT count(*) FROM t")?, "1");
    /// # Ok(()) }
    /// ```
    pub fn pause_replay(&self, replica: usize) -> Result<ReplayPaused<'_>, Error> {
        ReplayPaused::pause(Replica::Postgres(self.replica(replica)?))
    }

    /// Resumes WAL replay on `replicas()[replica]` (`SELECT pg_wal_replay_resume()`) and
    /// returns once the server reports it (`pg_get_wal_replay_pause_state()` = `not paused`):
    /// what a [`ReplayPaused`] guard does when it ends, for a pause made another way. Does
    /// nothing when replay is not paused, or when the replica is stopped (a pause ends with the
    /// server process) or no longer in recovery (promoted).
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`,
    /// [`Error::NotRunning`] when it is paused ([`PgNode::pause`]), and [`Error::Timeout`] when
    /// the resume is not confirmed within 60 s.
    pub fn resume_replay(&self, replica: usize) -> Result<(), Error> {
        self.replica(replica)?.set_replay_paused(false)
    }

    /// Delays replay on `replicas()[replica]`: `ALTER SYSTEM SET recovery_min_apply_delay =
    /// '<ms>ms'` and `SELECT pg_reload_conf()` there, returning once a new session on the
    /// replica shows the new value (`pg_settings`, which `SHOW recovery_min_apply_delay`
    /// reads). A `delay` of zero turns the delay off; a fraction of a millisecond counts as a
    /// whole one.
    ///
    /// The replica holds each commit back until `delay` after the commit's time stamp on the
    /// primary (the same clock here: one machine), and everything after it in the WAL with it;
    /// it keeps receiving meanwhile. A row committed on the primary is therefore visible on the
    /// replica no sooner than `delay` after its commit, and usually a few milliseconds later.
    /// Changing the delay applies at once, to a commit already being held back too.
    ///
    /// The delay lasts until the returned guard is dropped or [reset](ApplyDelay::reset),
    /// which sets it back to zero and so leaves a shared cluster as it was even when the test
    /// fails. It is written to the replica's `postgresql.auto.conf`, so it survives a restart
    /// of the replica. [`wait_replicated`](Self::wait_replicated) waits for delayed replicas
    /// too, so it takes at least `delay`.
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`,
    /// [`Error::NotRunning`] when it is stopped or paused ([`PgNode::pause`]), with the server's
    /// refusal ([`Error::Command`]) for a delay past its range (about 24 days), and with
    /// [`Error::Timeout`] when the setting is not confirmed within 60 s.
    ///
    /// ```no_run
    /// use std::time::{Duration, Instant};
    ///
    /// use rds_balancer_testkit::PgCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::start(1)?;
    /// cluster.create_database("app")?;
    /// cluster.psql("app", "CREATE TABLE t (id int)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// let delay = cluster.set_apply_delay(0, Duration::from_millis(300))?;
    /// let written = Instant::now();
    /// cluster.psql("app", "INSERT INTO t VALUES (1)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// assert!(written.elapsed() >= Duration::from_millis(300));
    /// delay.reset()?; // or drop it
    /// # Ok(()) }
    /// ```
    pub fn set_apply_delay(
        &self,
        replica: usize,
        delay: Duration,
    ) -> Result<ApplyDelay<'_>, Error> {
        ApplyDelay::set(Replica::Postgres(self.replica(replica)?), delay)
    }

    /// Where the primary's WAL ends, as the server writes it: `SELECT
    /// pg_current_wal_insert_lsn()` on the primary (`0/3000148`). Read it after a write, and
    /// compare it with a replica's [`replayed_position`](Self::replayed_position) as `pg_lsn`s
    /// (`'<replayed>'::pg_lsn >= '<writer>'::pg_lsn`, or the two hexadecimal halves), not as
    /// text.
    ///
    /// The insert position counts WAL not yet flushed, so it is never behind a commit that
    /// returned. When the last record ended exactly at a WAL page boundary, it points past the
    /// next page's header, while a replica that replayed everything reports the boundary: that
    /// replica reaches it only with the next record (the primary writes one at least every 15 s
    /// after activity). A fresh idle cluster is in that state: `0/3000028` on the primary,
    /// `0/3000000` replayed.
    pub fn writer_position(&self) -> Result<String, Error> {
        self.psql("postgres", "SELECT pg_current_wal_insert_lsn()")
    }

    /// How far `replicas()[replica]` has applied the primary's WAL: `SELECT
    /// pg_last_wal_replay_lsn()` there (empty once it is no longer in recovery). It stays put
    /// while replay is [paused](Self::pause_replay), and reaches a
    /// [`writer_position`](Self::writer_position) read after a write once the replica shows
    /// that write.
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`.
    pub fn replayed_position(&self, replica: usize) -> Result<String, Error> {
        self.replica(replica)?
            .psql("postgres", "SELECT pg_last_wal_replay_lsn()")
    }

    /// How far `replicas()[replica]` has received (and flushed) the primary's WAL: `SELECT
    /// pg_last_wal_receive_lsn()` there (empty once it is no longer in recovery). It advances
    /// while replay is [paused](Self::pause_replay) or [delayed](Self::set_apply_delay).
    ///
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`.
    pub fn received_position(&self, replica: usize) -> Result<String, Error> {
        self.replica(replica)?
            .psql("postgres", "SELECT pg_last_wal_receive_lsn()")
    }

    /// `replicas()[index]`, or [`Error::NoSuchReplica`].
    fn replica(&self, index: usize) -> Result<&PgNode, Error> {
        let replicas = self.replicas();
        replicas.get(index).ok_or(Error::NoSuchReplica {
            index,
            count: replicas.len(),
        })
    }
}

impl PgNode {
    /// Pauses or resumes WAL replay and waits until `pg_get_wal_replay_pause_state()` says so.
    /// Resuming a stopped server or one out of recovery does nothing.
    pub(crate) fn set_replay_paused(&self, paused: bool) -> Result<(), Error> {
        if !paused && !self.is_running() {
            return Ok(());
        }
        self.check_answering()?;
        if !self.in_recovery()? {
            if paused {
                return Err(Error::Unexpected {
                    what: format!("{} is not a replica (not in recovery)", self.name()),
                });
            }
            return Ok(());
        }
        let (call, want) = if paused {
            ("pg_wal_replay_pause()", "paused")
        } else {
            ("pg_wal_replay_resume()", "not paused")
        };
        self.psql("postgres", &format!("SELECT {call}"))?;
        wait_for_state(
            || format!("{} to report replay {want}", self.name()),
            CONFIRM_TIMEOUT,
            || {
                let state = self.psql("postgres", "SELECT pg_get_wal_replay_pause_state()")?;
                Ok((state == want, state))
            },
        )
    }

    /// Sets `recovery_min_apply_delay` (whole milliseconds, rounded up), reloads, and waits until
    /// a new session sees it.
    pub(crate) fn set_apply_delay(&self, delay: Duration) -> Result<(), Error> {
        self.check_answering()?;
        let ms = delay.as_nanos().div_ceil(1_000_000);
        self.psql(
            "postgres",
            &format!("ALTER SYSTEM SET recovery_min_apply_delay = '{ms}ms'"),
        )?;
        // Not in the same string: ALTER SYSTEM refuses to run in the implicit transaction of
        // several statements.
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        let want = ms.to_string();
        wait_for_state(
            || {
                format!(
                    "{} to report recovery_min_apply_delay = {want} ms",
                    self.name()
                )
            },
            CONFIRM_TIMEOUT,
            || {
                let setting = self.psql(
                    "postgres",
                    "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'",
                )?;
                Ok((setting == want, format!("{setting} ms")))
            },
        )
    }

    fn in_recovery(&self) -> Result<bool, Error> {
        Ok(self.psql("postgres", "SELECT pg_is_in_recovery()")? == "t")
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
