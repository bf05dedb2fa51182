//! Replication: waiting for replicas to catch up, and promoting one.

use std::thread;
use std::time::{Duration, Instant};

use super::cluster::{Layout, REPLICATION_TIMEOUT};
use super::{PgCluster, PgNode};
use crate::error::Error;
use crate::process::run_ok;

impl PgCluster {
    /// Waits until every replica that is running and not paused has replayed all the WAL the
    /// primary has written so far (commits made with `synchronous_commit = off` included).
    pub fn wait_replicated(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100))
        };
        let primary = self.primary();
        // A commit that wrote WAL, made synchronously, flushes the WAL of every earlier commit
        // too, so the flush position then covers all of it, and it ends a record. (A
        // transaction that wrote nothing before its commit record, such as `SELECT
        // txid_current()`, commits asynchronously even under `synchronous_commit = on`.)
        primary.psql_with_timeout(
            "postgres",
            "SET synchronous_commit = on; \
             SELECT pg_logical_emit_message(true, 'rds-balancer-testkit', 'replicated?')",
            left(),
        )?;
        let lsn =
            primary.psql_with_timeout("postgres", "SELECT pg_current_wal_flush_lsn()", left())?;
        let sql =
            format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn, pg_last_wal_replay_lsn()");
        for replica in self.replicas().iter().filter(|r| r.is_answering()) {
            loop {
                let out = replica.psql_with_timeout("postgres", &sql, left())?;
                if out.starts_with("t|") {
                    break;
                }
                if Instant::now() >= deadline {
                    let at = out.split('|').nth(1).unwrap_or("?");
                    let what = format!(
                        "{} to replay up to {lsn} of {} (it is at {at})",
                        replica.name(),
                        primary.name()
                    );
                    return Err(Error::Timeout {
                        what,
                        after: timeout,
                    });
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Promotes `replicas()[replica]` to primary (`pg_ctl promote`, waiting until it accepts
    /// writes) and re-points the other replicas at it (`ALTER SYSTEM SET primary_conninfo` +
    /// reload; they follow the new timeline), then waits until the answering ones stream from it.
    ///
    /// Afterwards [`primary`](Self::primary) is the promoted node and [`replicas`](Self::replicas)
    /// the others; the former primary is in neither list (it is left as it is: stop or kill it
    /// first to simulate a failover, or it goes on as a diverged second primary). It cannot
    /// rejoin as a replica: that would take `pg_rewind` or a new base backup, which the kit does
    /// not do. A cluster can be promoted again, until it has no replica left.
    ///
    /// Replicas that are stopped or paused at the time are re-pointed too (their
    /// `postgresql.auto.conf` is rewritten) and follow the new primary once started or resumed;
    /// they are not waited for. A replica that had replayed more WAL than the promoted one cannot
    /// follow it (PostgreSQL refuses a timeline that forked off before its position), and then
    /// this times out naming it: call [`wait_replicated`](Self::wait_replicated) before killing
    /// the primary, as a test of a clean failover should.
    pub fn promote(&self, replica: usize) -> Result<(), Error> {
        let mut change = self.layout.change();
        let layout = change.current();
        let no_such = Error::NoSuchReplica {
            index: replica,
            count: layout.replicas.len(),
        };
        let Some(target) = layout.replicas.get(replica) else {
            return Err(no_such);
        };
        let ctx = &self.ctx;
        let mut cmd = ctx.run_as.command(ctx.bin.tool("pg_ctl"), &ctx.root);
        cmd.args(["promote", "-w", "-t", "60", "-D"])
            .arg(target.data_dir());
        run_ok(
            cmd,
            &format!("pg_ctl promote of {}", target.name()),
            REPLICATION_TIMEOUT,
        )?;
        // The promotion happened: record the new roles before anything else can fail.
        let others: Vec<PgNode> = layout
            .replicas
            .iter()
            .filter(|r| r.port() != target.port())
            .map(PgNode::handle)
            .collect();
        let next = Layout {
            primary: target.handle(),
            replicas: others.into(),
        };
        if change.replace(next).is_err() {
            return Err(no_such);
        }
        for other in self.replicas() {
            other.follow(target)?;
        }
        wait_streaming(self.primary(), self.replicas(), REPLICATION_TIMEOUT)
    }
}

/// Waits until `primary` lists every answering replica as streaming and each is in recovery.
pub(super) fn wait_streaming(
    primary: &PgNode,
    replicas: &[PgNode],
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let expected: Vec<&PgNode> = replicas.iter().filter(|r| r.is_answering()).collect();
    let sql = "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'";
    loop {
        let out = primary.psql("postgres", sql)?;
        let streaming: Vec<&str> = out.lines().collect();
        if expected.iter().all(|r| streaming.contains(&r.name())) {
            break;
        }
        if Instant::now() >= deadline {
            let names: Vec<&str> = expected.iter().map(|r| r.name()).collect();
            let what = format!(
                "{names:?} to stream from {} (streaming: {streaming:?})",
                primary.name()
            );
            return Err(Error::Timeout {
                what,
                after: timeout,
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
    for replica in expected {
        let in_recovery = replica.psql("postgres", "SELECT pg_is_in_recovery()")?;
        if in_recovery != "t" {
            return Err(Error::Unexpected {
                what: format!("{} streams but is not in recovery", replica.name()),
            });
        }
    }
    Ok(())
}
