//! [`RdsTransaction`]: a transaction on one host that keeps the library's guarantees for its
//! whole life: counted in flight, one slot of the connection budget, its statements under the
//! host's health guard, read-your-writes marked when it commits, a writer failure under it
//! typed, a blue/green switchover honoured.

mod traits;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sea_orm::{DatabaseTransaction, DbErr, TransactionError, TransactionSession};

use super::RdsConnection;
use super::router::Routed;
use crate::bluegreen::BlueGreen;
use crate::error::{Error, ErrorKind};
use crate::failover::Outcome;
use crate::pool::Role;
use crate::resilience::Fault;

/// A transaction opened through an [`RdsConnection`] (`begin()`, or the one a
/// `transaction(..)` callback receives), on the host its route chose: the writer, or a reader
/// for a read-only one.
///
/// It implements SeaORM's `ConnectionTrait`, `TransactionTrait` (a nested `begin()` is a
/// savepoint), `TransactionSession` (`commit`, `rollback`) and `StreamTrait`, like SeaORM's
/// `DatabaseTransaction`, so code generic over those traits (entities, `ActiveModel::save`,
/// `transaction(..)` callbacks) runs unchanged. Until it commits, rolls back or is dropped:
///
/// - it counts as in flight on its host: [`shutdown`](RdsConnection::shutdown) waits for it
///   (and reports it as abandoned if its timeout passes first), and a topology change that
///   takes its host out of service lets it finish;
/// - it holds one slot of [`max_total_connections`](crate::RdsConnectionBuilder::max_total_connections);
/// - each of its statements runs under its host's health guard: enhanced failure monitoring
///   cuts one hung on a dead host short with [`ErrorKind::HostUnavailable`];
/// - when the writer fails under it, `commit` returns
///   [`ErrorKind::TransactionResolutionUnknown`] (after the failover, when a balancer follows
///   the cluster), never the driver's error, and nothing is replayed;
/// - a read-write transaction that commits makes the task's next reads go to the writer for
///   the read-your-writes window, counted from the commit; one that rolled back, or a
///   read-only one, does not;
/// - a blue/green switchover that starts while it is open lets it run on (on blue) for the
///   switchover's `connect_timeout`, then cuts it: its next statement and its `commit` fail with
///   [`ErrorKind::BlueGreenSwitchover`] and nothing of it is committed. (AWS's own JDBC
///   wrapper holds every statement during the switchover, open transactions included; that
///   would hold the transaction's locks on blue while AWS is about to drop blue's
///   connections, so this lets it try to finish first.)
///
/// Dropped without `commit`, it rolls back as SeaORM's does, and its slot and in-flight count
/// are released at once.
///
/// ```no_run
/// use rds_balancer::RdsConnection;
/// use sea_orm::{ConnectionTrait, TransactionSession, TransactionTrait};
///
/// # async fn demo(db: RdsConnection) -> Result<(), sea_orm::DbErr> {
/// let txn = db.begin().await?; // an RdsTransaction, on the writer
/// txn.execute_unprepared("UPDATE stock SET n = n - 1 WHERE id = 7").await?;
/// txn.commit().await?; // this task's reads now go to the writer for a while
/// # Ok(()) }
/// ```
pub struct RdsTransaction {
    // Dropped first: the connection goes back to its pool before the slot is released.
    inner: DatabaseTransaction,
    open: Arc<Open>,
    /// A savepoint inside another transaction: committing it commits nothing yet.
    savepoint: bool,
}

/// What a transaction and its savepoints share, released when the last of them is gone.
struct Open {
    db: RdsConnection,
    /// Its host's in-flight guard, its span and its budget slot.
    routed: Routed,
    /// Routed to the writer and not read-only: its commit is a write.
    read_write: bool,
    /// Set once something ended it from outside: later ones do not replace it.
    broken: OnceLock<Broken>,
}

/// What ended a transaction from outside.
#[derive(Debug, Clone, Copy)]
enum Broken {
    /// Its connection was lost or cut short; `host_failed` when its host failed (or, for the
    /// writer, stopped accepting writes) rather than this connection alone.
    Lost { host_failed: bool },
    /// A blue/green switchover held statements back for this long while it was open.
    Switchover(Duration),
}

impl std::fmt::Debug for RdsTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsTransaction")
            .field("host", &self.open.routed.host().name())
            .field("route", &self.open.routed.decision.route)
            .field("read_write", &self.open.read_write)
            .field("savepoint", &self.savepoint)
            .field("broken", &self.open.broken.get())
            .finish_non_exhaustive()
    }
}

impl RdsTransaction {
    /// A transaction opened on `routed`'s host, which it keeps until it ends.
    pub(super) fn new(
        db: &RdsConnection,
        routed: Routed,
        inner: DatabaseTransaction,
        read_write: bool,
    ) -> Self {
        RdsTransaction {
            inner,
            open: Arc::new(Open {
                db: db.clone(),
                routed,
                read_write,
                broken: OnceLock::new(),
            }),
            savepoint: false,
        }
    }

    /// The database backend of its host.
    ///
    /// Inherent so that `txn.get_database_backend()` needs no trait in scope and is not
    /// ambiguous between `ConnectionTrait` and `StreamTrait`.
    ///
    /// ```no_run
    /// # use sea_orm::TransactionTrait;
    /// # async fn demo(db: rds_balancer::RdsConnection) -> Result<(), sea_orm::DbErr> {
    /// let txn = db.begin().await?;
    /// assert_eq!(txn.get_database_backend(), sea_orm::DatabaseBackend::Postgres);
    /// # Ok(()) }
    /// ```
    pub fn get_database_backend(&self) -> sea_orm::DatabaseBackend {
        sea_orm::ConnectionTrait::get_database_backend(&self.inner)
    }

    /// A savepoint in this transaction.
    fn nested(&self, inner: DatabaseTransaction) -> Self {
        RdsTransaction {
            inner,
            open: Arc::clone(&self.open),
            savepoint: true,
        }
    }

    /// Runs `callback` in this transaction, then commits it, or rolls it back if the callback
    /// failed (SeaORM's `transaction(..)`). A callback that failed as the writer did (its
    /// statements found the writer gone or refusing writes) ends in
    /// [`Error::TransactionResolutionUnknown`], after the failover.
    pub(super) async fn run<F, T, E>(self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c RdsTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let error = match callback(&self).await {
            Ok(value) => {
                return self
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(TransactionError::Connection);
            }
            Err(error) => error,
        };
        if let (false, true, Some(Broken::Lost { host_failed: true })) = (
            self.savepoint,
            self.open.read_write,
            self.open.broken.get().copied(),
        ) {
            let open = Arc::clone(&self.open);
            drop(self);
            tracing::warn!("the transaction's callback failed as the writer did");
            return Err(TransactionError::Connection(open.unknown(None, true).await));
        }
        self.rollback()
            .await
            .map_err(TransactionError::Connection)?;
        Err(TransactionError::Transaction(error))
    }

    /// Commits the transaction (a savepoint: releases it). See [`RdsTransaction`] for what a
    /// failure under it returns. (Inherent, as on SeaORM's `DatabaseTransaction`, and through
    /// `TransactionSession`.)
    ///
    /// ```no_run
    /// # use sea_orm::{ConnectionTrait, TransactionTrait};
    /// # async fn demo(db: rds_balancer::RdsConnection) -> Result<(), sea_orm::DbErr> {
    /// let txn = db.begin().await?;
    /// txn.execute_unprepared("DELETE FROM sessions WHERE expired").await?;
    /// txn.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn commit(self) -> Result<(), DbErr> {
        let RdsTransaction {
            inner,
            open,
            savepoint,
        } = self;
        if savepoint {
            return open.guarded(inner.commit()).await;
        }
        match open.broken.get().copied() {
            Some(Broken::Switchover(waited)) => {
                // Never sent: dropping it rolls it back.
                drop(inner);
                return Err(Error::BlueGreenSwitchover { waited }.into());
            }
            Some(Broken::Lost { host_failed }) => {
                drop(inner);
                return Err(open.unknown(None, host_failed).await);
            }
            None => {}
        }
        match open.guarded(inner.commit()).await {
            Ok(()) => {
                if open.read_write {
                    open.db.wrote();
                }
                Ok(())
            }
            Err(error) => match open.broken.get().copied() {
                // The database refused it (a serialization failure, a deferred constraint):
                // rolled back, its answer stands.
                None => Err(error),
                Some(Broken::Lost { host_failed }) => {
                    Err(open.unknown(Some(error), host_failed).await)
                }
                Some(Broken::Switchover(_)) => Err(open.unknown(None, false).await),
            },
        }
    }

    /// Rolls the transaction back (a savepoint: back to it). After its connection was lost or
    /// cut, nothing is sent and it succeeds: the host discards an uncommitted transaction with
    /// its connection.
    ///
    /// ```no_run
    /// # use sea_orm::TransactionTrait;
    /// # async fn demo(db: rds_balancer::RdsConnection) -> Result<(), sea_orm::DbErr> {
    /// let txn = db.begin().await?;
    /// txn.rollback().await?;
    /// # Ok(()) }
    /// ```
    pub async fn rollback(self) -> Result<(), DbErr> {
        let RdsTransaction { inner, open, .. } = self;
        if open.broken.get().is_some() {
            return Ok(());
        }
        match open.guarded(inner.rollback()).await {
            Err(_) if open.broken.get().is_some() => Ok(()),
            done => done,
        }
    }
}

#[async_trait::async_trait]
impl TransactionSession for RdsTransaction {
    async fn commit(self) -> Result<(), DbErr> {
        RdsTransaction::commit(self).await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        RdsTransaction::rollback(self).await
    }
}

impl Open {
    /// Runs one of its statements (or its commit) on its connection, under the host's health
    /// guard and, during a blue/green switchover, until the switchover's `connect_timeout`.
    async fn guarded<T>(&self, work: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
        if let Some(Broken::Switchover(waited)) = self.broken.get() {
            return Err(Error::BlueGreenSwitchover { waited: *waited }.into());
        }
        let run = self.routed.guarded(work);
        let outcome = match self.db.cluster().blue_green() {
            None => run.await,
            // Boxed, as are the other rare paths below: the statement's future stays small
            // (and cheap to set up) without a blue/green deployment to watch.
            Some(bg) => Box::pin(self.until_overdue(bg, run)).await?,
        };
        if let Err(error) = &outcome
            && let Some(host_failed) = Box::pin(self.lost(error)).await
        {
            let _ = self.broken.set(Broken::Lost { host_failed });
        }
        outcome
    }

    /// Runs `run` (one of its statements) unless the blue/green switchover's deadline passes
    /// first: a statement issued past it is never sent.
    async fn until_overdue<T>(
        &self,
        bg: &BlueGreen,
        run: impl Future<Output = Result<T, DbErr>>,
    ) -> Result<Result<T, DbErr>, DbErr> {
        tokio::select! {
            biased;
            waited = bg.overdue() => {
                let _ = self.broken.set(Broken::Switchover(waited));
                tracing::warn!(?waited, "a transaction open on blue was cut by the blue/green switchover");
                Err(Error::BlueGreenSwitchover { waited }.into())
            }
            outcome = run => Ok(outcome),
        }
    }

    /// Whether `error`, from one of its statements, ended its connection: `Some(host_failed)`.
    /// A statement's own error (the host answered) leaves it open, as the database does.
    async fn lost(&self, error: &DbErr) -> Option<bool> {
        let host = self.routed.host();
        match ErrorKind::of(error) {
            Some(ErrorKind::HostUnavailable) => return Some(true),
            Some(_) => return None,
            None => {}
        }
        match Fault::of(error) {
            Fault::Unreachable => Some(true),
            // The guard probed the host before the error came back.
            Fault::ConnectionLost => Some(!host.health().is_schedulable()),
            Fault::ReadOnly if self.read_write && host.role() == Role::Writer => {
                (!host.writable(super::recovery::WRITER_CHECK_TIMEOUT).await).then_some(true)
            }
            _ => None,
        }
    }

    /// The error of a transaction whose end is unknown: it may have committed. When its writer
    /// failed, is still in service and a balancer follows the cluster, the failover is waited
    /// for first, so that the next transaction runs on the new writer.
    async fn unknown(&self, source: Option<DbErr>, host_failed: bool) -> DbErr {
        if self.read_write {
            // It may have committed: the task's reads go to the writer.
            self.db.wrote();
        }
        let failover = self.db.cluster().failover();
        let host = self.routed.host();
        // A writer already replaced: the failover is over.
        if host_failed
            && host.role() == Role::Writer
            && self.db.cluster().is_current_writer(host)
            && failover.is_followed()
            && let Some((Outcome::Failed, timeout)) = Box::pin(failover.request_and_wait()).await
        {
            return Error::FailoverFailed(timeout).into();
        }
        Error::TransactionResolutionUnknown { source }.into()
    }
}
