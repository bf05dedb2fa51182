//! Failure recovery: what happens when a statement's host fails under it. Whose fault an error
//! is decides ([`Fault`]); a statement's own error is returned unchanged, a read runs again
//! elsewhere, a statement for a failed writer waits for the failover, and a write whose outcome
//! is unknown is never replayed.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    AccessMode, DatabaseConnection, DbErr, Statement, TransactionOptions, TransactionTrait,
};

use super::router::Routed;
use super::{RdsConnection, RdsTransaction};
use crate::error::Error;
use crate::failover::Outcome;
use crate::pool::{HostPool, Role};
use crate::resilience::{Fault, Summary, never_sent};
use crate::route::{Decision, Route, Why};

/// How long a writer suspected of failing has to show it still accepts writes.
pub(super) const WRITER_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

impl RdsConnection {
    /// Holds the caller back while a blue/green switchover is in progress.
    pub(super) async fn before_statement(&self) -> Result<(), Error> {
        match self.cluster().blue_green() {
            Some(bg) => bg.wait_if_switching().await,
            None => Ok(()),
        }
    }

    /// Runs one statement, and hides what it safely can of a failing host. Whose fault an
    /// error is decides ([`Fault`]): a statement's own error returns unchanged, whatever host
    /// it ran on. Otherwise:
    /// - a statement whose connection was refused its credentials (a rotated password) runs
    ///   once more after the credential provider gave new ones (it was never sent);
    /// - a read whose reader could not be reached, lost its connection, was cut short because
    ///   the reader was found dead, or could not get a connection in time, runs once more on
    ///   another healthy host (reads have no side effects);
    /// - a statement that never got a connection because the writer was replaced meanwhile runs
    ///   on the writer in service;
    /// - while a balancer follows the cluster, a statement for a writer known to be down waits
    ///   for the failover and then runs on the new writer; one that was sent when the writer
    ///   really failed (unreachable, a lost connection its probe confirmed, or a read-only
    ///   refusal from a writer that no longer accepts writes) waits for it too, then a read runs
    ///   once more, a write fails with [`Error::FailoverCompleted`] (never replayed: its outcome
    ///   is unknown), and one that never reached the writer runs; a failover that gives up fails
    ///   them with [`Error::FailoverFailed`].
    pub(super) async fn statement<T>(
        &self,
        stmt: Statement,
        op: impl AsyncFn(&DatabaseConnection, Statement) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        self.before_statement().await?;
        let routed = self.caught_up(self.route(&stmt.sql)?).await?;
        let routed = self.before_writer(routed).await?;
        let read = self.is_read(routed.decision, &stmt.sql);
        let result = self.attempt(routed, read, stmt, op).await;
        if !read {
            // Sent or not, succeeded or not: the task's next reads go to the writer.
            self.wrote();
        }
        result
    }

    /// [`statement`](Self::statement) once routed: runs it, and again where that is safe.
    async fn attempt<T>(
        &self,
        routed: Routed,
        read: bool,
        stmt: Statement,
        op: impl AsyncFn(&DatabaseConnection, Statement) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        let decision = match routed.decision.why {
            // Run again, it goes to the writer: another reader may not have the task's write.
            Why::CaughtUp => Decision {
                route: Route::Writer,
                why: Why::ReadYourWrites,
            },
            _ => routed.decision,
        };
        let failover = self.cluster().failover();
        // The first attempt consumes the statement: keep a copy when it may run again (a read,
        // or anything for a writer that may fail over).
        let again = (read
            || (routed.host().role() == Role::Writer && failover.is_followed())
            || routed.host().renewal().is_some())
        .then(|| stmt.clone());
        let error = match routed.run(|conn| op(conn, stmt)).await {
            Err(error) => error,
            done => return done,
        };
        let failed = Arc::clone(routed.host());
        let never_sent = never_sent(&error) || routed.unsent();
        drop(routed);
        let Some(again) = again else {
            return Err(error);
        };
        // Boxed: the statement's future stays small (and cheap to set up) for the statements
        // that succeed.
        let failure = Failure {
            error,
            failed,
            never_sent,
            decision,
            read,
        };
        Box::pin(self.recover(failure, again, &op)).await
    }

    /// After [`attempt`](Self::attempt)'s first run failed: runs `again` (the statement's copy)
    /// where that is safe, or returns the error as it should be seen.
    async fn recover<T>(
        &self,
        failure: Failure,
        again: Statement,
        op: &impl AsyncFn(&DatabaseConnection, Statement) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        let Failure {
            error,
            failed,
            never_sent,
            decision,
            read,
        } = failure;
        let failover = self.cluster().failover();
        let fault = Fault::of(&error);
        match failed.role() {
            // The credentials were refused (rotated): new ones, then the statement, never sent,
            // runs with them.
            _ if fault == Fault::Credentials => match failed.renewal() {
                Some(renewal) if renewal.rejected().await => {
                    let retry = self.admit(decision, "statement", None)?;
                    retry.run(|conn| op(conn, again)).await
                }
                _ => Err(error),
            },
            // A read may run anywhere: on another host when this one failed, was cut short, could
            // not give a connection in time (it may only be busy) or left service.
            Role::Reader
                if never_sent
                    || matches!(
                        fault,
                        Fault::Unreachable | Fault::ConnectionLost | Fault::PoolTimeout
                    ) =>
            {
                match self.admit(decision, "statement", Some(&failed)) {
                    Ok(retry) if !Arc::ptr_eq(retry.host(), &failed) => {
                        tracing::info!(failed = %failed.name(), host = %retry.host().name(), error = %Summary(&error), "read failed on its host; retried on another");
                        retry.run(|conn| op(conn, again)).await
                    }
                    _ => Err(error),
                }
            }
            Role::Reader => Err(error),
            Role::Writer if never_sent && !self.cluster().is_current_writer(&failed) => {
                // The writer was replaced (its pool closed) while the statement waited for a
                // connection: never sent, it runs on the writer in service.
                let retry = self.admit(decision, "statement", None)?;
                retry.run(|conn| op(conn, again)).await
            }
            Role::Writer => {
                if !self.writer_failed(&failed, fault, never_sent).await {
                    // The writer still takes writes: the error is the statement's own.
                    return Err(error);
                }
                match failover.request_and_wait().await {
                    None => Err(error),
                    Some((Outcome::Completed, _)) if read || never_sent => {
                        let retry = self.admit(decision, "statement", Some(&failed))?;
                        tracing::info!(host = %retry.host().name(), error = %Summary(&error), "statement failed with the writer; run again after the failover");
                        retry.run(|conn| op(conn, again)).await
                    }
                    Some((Outcome::Completed, _)) => {
                        tracing::warn!(error = %Summary(&error), "write failed with the writer; not replayed");
                        Err(Error::FailoverCompleted { source: error }.into())
                    }
                    Some((Outcome::Failed, timeout)) => Err(Error::FailoverFailed(timeout).into()),
                }
            }
        }
    }

    /// Whether `host`, a writer, failed under a statement whose error was `fault`: confirmed,
    /// never guessed. Unreachable: yes (the statement's guard already took it out). A lost
    /// connection or a pool timeout: the guard probed the host before the error came back; yes
    /// if the probe failed. A read-only refusal: the host is asked whether it accepts writes; a
    /// writer that does (a read-only transaction, `default_transaction_read_only`, MySQL's 1290
    /// for another option) refused the statement itself. A statement that never got a
    /// connection while a failover runs or the writer is out: yes. Anything else is the
    /// statement's own.
    async fn writer_failed(&self, host: &HostPool, fault: Fault, never_sent: bool) -> bool {
        let failed = match fault {
            Fault::Unreachable => true,
            Fault::ConnectionLost | Fault::PoolTimeout => !host.health().is_schedulable(),
            Fault::ReadOnly => !host.writable(WRITER_CHECK_TIMEOUT).await,
            Fault::Statement | Fault::Credentials | Fault::Overloaded | Fault::PoolClosed => false,
        };
        failed
            || (never_sent
                && (self.cluster().failover().is_running() || !host.health().is_schedulable()))
    }

    /// When `routed` is for a writer known to be down and a balancer follows the cluster, waits
    /// for the failover and routes again, to the new writer; otherwise returns `routed` as is.
    pub(super) async fn before_writer(&self, routed: Routed) -> Result<Routed, Error> {
        let host = routed.host();
        let failover = self.cluster().failover();
        if host.role() != Role::Writer || host.health().is_schedulable() || !failover.is_followed()
        {
            return Ok(routed);
        }
        let (decision, operation) = (routed.decision, routed.operation);
        drop(routed);
        // Boxed: the statement's future stays small (and cheap to set up) in the common case.
        match Box::pin(failover.request_and_wait()).await {
            Some((Outcome::Failed, timeout)) => Err(Error::FailoverFailed(timeout)),
            _ => self.admit(decision, operation, None),
        }
    }

    /// Routes a transaction and admits it to its host, once a blue/green switchover or a
    /// failover of its writer let it; returns the options to open it with.
    pub(super) async fn admit_transaction(
        &self,
        options: TransactionOptions,
    ) -> Result<(Routed, TransactionOptions), Error> {
        self.before_statement().await?;
        let (routed, options) = self.route_transaction(options)?;
        Ok((self.before_writer(routed).await?, options))
    }

    /// Opens a transaction, kept with its host's in-flight guard and budget slot until it ends
    /// (`BEGIN` changes nothing: when the writer fails under it, it runs again after the
    /// failover).
    pub(super) async fn open_transaction(
        &self,
        options: TransactionOptions,
    ) -> Result<RdsTransaction, DbErr> {
        let (routed, options) = self.admit_transaction(options).await?;
        let read_write = routed.decision.route == Route::Writer
            && options.access_mode != Some(AccessMode::ReadOnly);
        let error = match routed.run(|conn| conn.begin_with_options(options)).await {
            Ok(inner) => return Ok(RdsTransaction::new(self, routed, inner, read_write)),
            Err(error) if routed.host().role() == Role::Writer => error,
            Err(error) => return Err(error),
        };
        let (decision, failed) = (routed.decision, Arc::clone(routed.host()));
        let never_sent = never_sent(&error) || routed.unsent();
        drop(routed);
        let replaced = never_sent && !self.cluster().is_current_writer(&failed);
        if !replaced {
            // The writer was not replaced while `BEGIN` waited for a connection: did it fail?
            if !self
                .writer_failed(&failed, Fault::of(&error), never_sent)
                .await
            {
                return Err(error);
            }
            match self.cluster().failover().request_and_wait().await {
                None => return Err(error),
                Some((Outcome::Failed, timeout)) => {
                    return Err(Error::FailoverFailed(timeout).into());
                }
                Some((Outcome::Completed, _)) => {}
            }
        }
        let retry = self.admit(decision, "transaction", None)?;
        let inner = retry.run(|conn| conn.begin_with_options(options)).await?;
        Ok(RdsTransaction::new(self, retry, inner, read_write))
    }
}

/// How a statement's first run failed, handed to [`RdsConnection::recover`].
struct Failure {
    error: DbErr,
    /// The host it failed on.
    failed: Arc<HostPool>,
    /// Whether it is known never to have been sent.
    never_sent: bool,
    /// Where it runs again.
    decision: Decision,
    /// Whether it is certainly read-only.
    read: bool,
}
