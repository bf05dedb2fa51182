//! Replication: pointing a replica at a primary, waiting for replicas to catch up, and
//! promoting one.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use super::cluster::{Layout, REPLICATION_TIMEOUT};
use super::node::{Role, SQL_TIMEOUT, State, quote_string};
use super::{MariaDbCluster, MariaDbNode};
use crate::error::Error;

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
    pub(super) fn apply_repoint(&self, state: &mut State) -> Result<(), Error> {
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
}

impl MariaDbCluster {
    /// Promotes `replicas()[replica]` to primary, as a failover does, and re-points the other
    /// replicas at it, then waits until the answering ones replicate from it.
    ///
    /// The promoted node first applies every transaction it had received, then becomes writable:
    /// `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`, and stays so when restarted
    /// ([`MariaDbNode::start`] no longer gives it `--read-only=ON`). The others get `STOP SLAVE;
    /// CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=<its port>, ...,
    /// MASTER_USE_GTID=slave_pos; START SLAVE`: they go on from the GTID position they had
    /// applied, which the new primary has in its binary log (`--log-slave-updates`).
    ///
    /// Afterwards [`primary`](Self::primary) is the promoted node and [`replicas`](Self::replicas)
    /// the others; the former primary is in neither list (it is left as it is: stop or kill it
    /// first to simulate a failover, or it goes on as a diverged second primary). It is not made
    /// to rejoin as a replica. A cluster can be promoted again, until it has no replica left.
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`, and with
    /// [`Error::NotRunning`] when it is stopped or paused (nothing changes then).
    ///
    /// Replicas that are stopped or paused at the time are re-pointed too, once started or
    /// resumed (a stopped one is started with `--skip-slave-start`, so it never reconnects to the
    /// old primary); they are not waited for. A replica that had applied more than the promoted
    /// one cannot follow it (MariaDB refuses a GTID position past the end of the new primary's
    /// binary log and stops its replication with an error), and then this, or the next
    /// [`wait_replicated`](Self::wait_replicated), times out naming it: call `wait_replicated`
    /// before killing the primary, as a test of a clean failover should.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::MariaDbCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::start(2)?;
    /// cluster.create_database("app")?;
    /// cluster.sql("app", "CREATE TABLE t (id int primary key)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// cluster.primary().kill()?; // the writer crashes ...
    /// cluster.promote(0)?; // ... and replica-1 takes over; replica-2 follows it
    /// assert_eq!(cluster.primary().name(), "replica-1");
    /// assert_eq!(cluster.primary().sql("", "SELECT @@read_only")?, "0");
    /// cluster.sql("app", "INSERT INTO t VALUES (1)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// assert_eq!(cluster.replicas()[0].sql("app", "SELECT count(*) FROM t")?, "1");
    /// # Ok(()) }
    /// ```
    pub fn promote(&self, replica: usize) -> Result<(), Error> {
        let mut change = self.layout.change();
        let layout = change.current();
        let no_such = || Error::NoSuchReplica {
            index: replica,
            count: layout.replicas.len(),
        };
        let target = layout.replicas.get(replica).ok_or_else(no_such)?;
        target.promote(REPLICATION_TIMEOUT)?;
        // The promotion happened: record the new roles before anything else can fail.
        let others: Vec<MariaDbNode> = layout
            .replicas
            .iter()
            .filter(|r| r.port() != target.port())
            .map(MariaDbNode::handle)
            .collect();
        let next = Layout {
            primary: target.handle(),
            replicas: others.into(),
        };
        let next = change.replace(next).map_err(|_| no_such())?;
        for other in &next.replicas {
            other.follow(next.primary.port())?;
        }
        wait_connected(&next.primary, &next.replicas, REPLICATION_TIMEOUT)
    }

    /// Waits until every answering (running, not paused) replica has applied everything the
    /// primary has logged so far: `MASTER_GTID_WAIT(<primary's @@gtid_binlog_pos>)` on each.
    /// Stopped, killed and paused replicas are skipped.
    pub fn wait_replicated(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let pos = self.primary().sql("", "SELECT @@gtid_binlog_pos")?;
        if pos.is_empty() {
            return Ok(());
        }
        for replica in self.replicas().iter().filter(|r| r.is_answering()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if !replica.gtid_wait(&pos, left)? {
                let at = replica
                    .sql("", "SELECT @@gtid_slave_pos")
                    .unwrap_or_default();
                return Err(Error::Timeout {
                    what: format!(
                        "{} to reach the primary's GTID position {pos} (it is at {at:?})",
                        replica.name()
                    ),
                    after: timeout,
                });
            }
        }
        Ok(())
    }
}

/// Waits until every answering replica replicates from `primary`: `SHOW SLAVE STATUS` says
/// `Master_Port` is the primary's, `Slave_IO_Running: Yes` (connected) and `Slave_SQL_Running:
/// Yes`.
pub(super) fn wait_connected(
    primary: &MariaDbNode,
    replicas: &[MariaDbNode],
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let connected = |status: &SlaveStatus| {
        status_field(status, "Master_Port") == primary.port().to_string()
            && status_field(status, "Slave_IO_Running") == "Yes"
            && status_field(status, "Slave_SQL_Running") == "Yes"
    };
    for replica in replicas.iter().filter(|r| r.is_answering()) {
        loop {
            let status = replica.slave_status()?;
            if connected(&status) {
                break;
            }
            if Instant::now() >= deadline {
                let field = |column| status_field(&status, column);
                return Err(Error::Timeout {
                    what: format!(
                        "{} to replicate from {} on port {} (it replicates from port {:?}, \
                         I/O thread {:?}: {:?}, SQL thread {:?}: {:?})",
                        replica.name(),
                        primary.name(),
                        primary.port(),
                        field("Master_Port"),
                        field("Slave_IO_Running"),
                        field("Last_IO_Error"),
                        field("Slave_SQL_Running"),
                        field("Last_SQL_Error"),
                    ),
                    after: timeout,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}
