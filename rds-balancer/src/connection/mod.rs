//! [`RdsConnection`] and SeaORM's connection traits on it: routing, then delegation to the
//! chosen host's pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use futures_util::Stream;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    ExecResult, IsolationLevel, QueryResult, QueryStream, Statement, StreamTrait, TransactionError,
    TransactionOptions, TransactionTrait,
};
use tracing::Instrument;

use crate::bluegreen::{BlueGreen, BlueGreenStatus};
use crate::budget::{Budget, Slot};
use crate::classify::Classifier;
use crate::classify::Target;
use crate::error::Error;
use crate::failover::{Failover, Outcome};
use crate::health::{GuardedError, HealthOptions, guard_statement};
use crate::options::RdsConnectionBuilder;
use crate::pool::Role;
use crate::pool::{HostFactory, HostPool, Hosts, InFlight, PoolSet};
use crate::resilience::{Fault, Summary, never_sent};
use crate::route::{
    Decision, Picker, Route, Sticky, Why, current_route, decide, decide_transaction,
};
use crate::topology::{ReaderFilter, Topology};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A SeaORM connection to a cluster: a writer and its readers, each with its own pool.
///
/// Use it wherever SeaORM takes `&impl ConnectionTrait`: every statement is routed by the rules
/// of the crate documentation (read-only statements to a reader, everything else and every
/// transaction to the writer). It is a cheap handle (an `Arc` inside): clone it into tasks.
///
/// ```no_run
/// use rds_balancer::RdsConnection;
/// use sea_orm::{ConnectionTrait, Statement};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let db = RdsConnection::builder()
///     .writer("postgres://app@127.0.0.1:5432/app")
///     .reader("postgres://app@127.0.0.1:5433/app")
///     .build()
///     .await?;
/// let backend = db.get_database_backend();
/// db.execute_raw(Statement::from_string(backend, "UPDATE stock SET n = n - 1")).await?; // writer
/// db.query_all_raw(Statement::from_string(backend, "SELECT * FROM stock")).await?; // a reader
/// db.shutdown(std::time::Duration::from_secs(30)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RdsConnection {
    inner: Arc<Inner>,
}

const _: () = {
    const fn assert_handle<T: Send + Sync + Clone + 'static>() {}
    assert_handle::<RdsConnection>();
};

/// The state shared by every clone of an [`RdsConnection`].
pub(crate) struct Inner {
    pub(crate) backend: DatabaseBackend,
    pub(crate) pools: PoolSet,
    pub(crate) picker: Picker,
    pub(crate) fallback_to_writer: bool,
    /// Read-your-writes: which tasks wrote recently.
    pub(crate) sticky: Sticky,
    pub(crate) classifier: Classifier,
    /// Set once shutdown begins; checked after a statement is counted in flight.
    pub(crate) closing: AtomicBool,
    /// Background work (hosts draining, topology polling), awaited by shutdown.
    pub(crate) tasks: TaskTracker,
    /// Cancelled when shutdown begins: stops polling.
    pub(crate) stopping: CancellationToken,
    /// Opens pools for hosts a topology names, with the writer's settings; `None` when the
    /// writer is dialled through a Unix socket (no host to replace).
    pub(crate) factory: Option<HostFactory>,
    /// The writer the connection was built with, put back when a balancer is destroyed.
    pub(crate) home_writer: arc_swap::ArcSwap<HostPool>,
    /// The instances in use, as of the last topology applied.
    pub(crate) applied: tokio::sync::Mutex<Topology>,
    /// Which readers of a topology may take reads.
    pub(crate) filter: ReaderFilter,
    /// Whether a topology's writer is ignored (the builder's writer is kept).
    pub(crate) keep_existing_write_host: bool,
    /// How long a host leaving service may take to finish its in-flight work.
    pub(crate) drain_timeout: Duration,
    /// How hosts are watched.
    pub(crate) health: HealthOptions,
    /// Writer failovers asked for by statements, followed by the balancer.
    pub(crate) failover: Failover,
    /// The connection budget across every pool, if any.
    pub(crate) budget: Option<Arc<Budget>>,
    /// Blue/green switchover support, when on.
    pub(crate) blue_green: Option<Arc<BlueGreen>>,
}

impl std::fmt::Debug for RdsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts = self.inner.pools.load();
        let readers: Vec<&str> = hosts.readers.iter().map(|r| r.name()).collect();
        f.debug_struct("RdsConnection")
            .field("backend", &self.inner.backend)
            .field("writer", &hosts.writer.name())
            .field("readers", &readers)
            .field("closing", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

/// How long a writer suspected of failing has to show it still accepts writes.
const WRITER_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A statement admitted to a host: the in-flight guard, the span it runs in, and what decided
/// its host.
struct Routed {
    guard: InFlight,
    span: tracing::Span,
    decision: Decision,
    operation: &'static str,
    health: HealthOptions,
    /// The connection budget and the hosts it spans, when there is one.
    budget: Option<(Arc<Budget>, Arc<Hosts>)>,
    /// The budget's slot, once taken; a stream keeps it.
    slot: std::sync::Mutex<Option<Slot>>,
    /// Set when the guard cut it short before its pool gave it a connection: never sent.
    unsent: AtomicBool,
}

impl Routed {
    /// Runs `f` on the chosen host's pool, inside the statement's span, under the host's health
    /// guard (outcome recorded; cut short if the host is found dead).
    async fn run<'r, T, E: GuardedError, Fut: Future<Output = Result<T, E>>>(
        &'r self,
        f: impl FnOnce(&'r DatabaseConnection) -> Fut,
    ) -> Result<T, E> {
        let host = self.guard.host();
        if let Some((budget, hosts)) = &self.budget {
            let slot = budget.reserve(host, hosts).await.map_err(E::from_error)?;
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(slot);
        }
        let (outcome, unsent) = guard_statement(host, &self.health, f(host.conn()))
            .instrument(self.span.clone())
            .await;
        self.unsent.store(unsent, Ordering::Relaxed);
        outcome
    }

    /// Whether its last run was cut short before it got a connection (never sent).
    fn unsent(&self) -> bool {
        self.unsent.load(Ordering::Relaxed)
    }

    fn host(&self) -> &Arc<HostPool> {
        self.guard.host()
    }
}

impl RdsConnection {
    /// Starts building a connection. See [`RdsConnectionBuilder`].
    ///
    /// ```
    /// let builder = rds_balancer::RdsConnection::builder()
    ///     .writer("postgres://app@127.0.0.1:5432/app")
    ///     .reader("postgres://app@127.0.0.1:5433/app");
    /// # let _ = builder;
    /// ```
    pub fn builder() -> RdsConnectionBuilder {
        RdsConnectionBuilder::default()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        RdsConnection {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A handle that does not keep the connection alive (for background tasks).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The connection behind `weak`, unless every handle to it was dropped.
    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<RdsConnection> {
        weak.upgrade().map(|inner| RdsConnection { inner })
    }

    /// The database backend of the cluster (the writer's).
    ///
    /// Inherent so that `db.get_database_backend()` needs no trait in scope and is not ambiguous
    /// between `ConnectionTrait` and `StreamTrait`.
    pub fn get_database_backend(&self) -> DatabaseBackend {
        self.inner.backend
    }

    /// The blue/green deployment as the connection's monitor last saw it, or `None` when
    /// blue/green support is off ([`RdsConnectionBuilder::blue_green`]).
    pub fn blue_green(&self) -> Option<BlueGreenStatus> {
        self.inner.blue_green.as_ref().map(|bg| bg.status())
    }

    /// Holds the caller back while a blue/green switchover is in progress.
    async fn before_statement(&self) -> Result<(), Error> {
        match &self.inner.blue_green {
            Some(bg) => bg.wait_if_switching().await,
            None => Ok(()),
        }
    }

    /// True once [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst)
    }

    /// Routes one statement and admits it to its host.
    fn route(&self, sql: &str) -> Result<Routed, Error> {
        let decision = decide(
            current_route(),
            sql,
            self.inner.backend,
            &self.inner.classifier,
            || self.inner.sticky.is_sticky(),
        )?;
        self.admit(decision, "statement", None)
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
    async fn statement<T>(
        &self,
        stmt: Statement,
        op: impl AsyncFn(&DatabaseConnection, Statement) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        self.before_statement().await?;
        let routed = self.before_writer(self.route(&stmt.sql)?).await?;
        let read = self.is_read(routed.decision, &stmt.sql);
        let result = self.attempt(routed, read, stmt, op).await;
        if !read {
            // Sent or not, succeeded or not: the task's next reads go to the writer.
            self.inner.sticky.mark();
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
        let decision = routed.decision;
        // The first attempt consumes the statement: keep a copy when it may run again (a read,
        // or anything for a writer that may fail over).
        let again = (read
            || (routed.host().role() == Role::Writer && self.inner.failover.is_followed())
            || routed.host().renewal().is_some())
        .then(|| stmt.clone());
        let error = match routed.run(|conn| op(conn, stmt)).await {
            Err(error) => error,
            done => return done,
        };
        let failed = Arc::clone(routed.host());
        let never_sent = never_sent(&error) || routed.unsent();
        drop(routed);
        let fault = Fault::of(&error);
        let Some(again) = again else {
            return Err(error);
        };
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
            Role::Writer if never_sent && !self.is_current_writer(&failed) => {
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
                match self.inner.failover.request_and_wait().await {
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
            || (never_sent && (self.inner.failover.is_running() || !host.health().is_schedulable()))
    }

    /// Whether `host` is the writer in service.
    fn is_current_writer(&self, host: &Arc<HostPool>) -> bool {
        Arc::ptr_eq(&self.inner.pools.load().writer, host)
    }

    /// When `routed` is for a writer known to be down and a balancer follows the cluster, waits
    /// for the failover and routes again, to the new writer; otherwise returns `routed` as is.
    async fn before_writer(&self, routed: Routed) -> Result<Routed, Error> {
        let host = routed.host();
        if host.role() != Role::Writer
            || host.health().is_schedulable()
            || !self.inner.failover.is_followed()
        {
            return Ok(routed);
        }
        let (decision, operation) = (routed.decision, routed.operation);
        drop(routed);
        match self.inner.failover.request_and_wait().await {
            Some((Outcome::Failed, timeout)) => Err(Error::FailoverFailed(timeout)),
            _ => self.admit(decision, operation, None),
        }
    }

    /// Whether a statement routed by `decision` is certainly read-only: routed to a reader, or
    /// sent to the writer only by an override or hint while the classifier finds it read-only.
    fn is_read(&self, decision: Decision, sql: &str) -> bool {
        match (decision.route, decision.why) {
            (Route::Reader, _) | (Route::Writer, Why::ReadYourWrites) => true,
            (Route::Writer, Why::Override | Why::Hint) => {
                self.inner.classifier.classify(sql, self.inner.backend) == Target::Reader
            }
            (Route::Writer, _) => false,
        }
    }

    /// Picks the host for `decision` (never `avoid`, a host that just failed, among readers) and
    /// counts the work in flight there.
    fn admit(
        &self,
        decision: Decision,
        operation: &'static str,
        avoid: Option<&Arc<HostPool>>,
    ) -> Result<Routed, Error> {
        let hosts = self.inner.pools.load();
        let usable = |reader: &Arc<HostPool>| {
            reader.health().is_schedulable() && avoid.is_none_or(|a| !Arc::ptr_eq(a, reader))
        };
        let host = match decision.route {
            Route::Writer => &hosts.writer,
            Route::Reader => match self.inner.picker.pick(&hosts.readers, usable) {
                Some(reader) => reader,
                None if self.inner.fallback_to_writer => &hosts.writer,
                None => return Err(Error::NoActiveReaders),
            },
        };
        let guard = host.enter();
        // Counted first, checked second: shutdown sets `closing` and then waits for the counts,
        // so a statement is either refused here or seen (and awaited) by shutdown.
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let span = tracing::debug_span!(
            "rds_balancer.route",
            db.operation = operation,
            db.system = system_name(self.inner.backend),
            server.host = %host.name(),
            rds.role = host.role().as_str(),
            rds.route = decision.route.as_str(),
            rds.reason = decision.why.as_str(),
        );
        let budget = self
            .inner
            .budget
            .as_ref()
            .map(|budget| (Arc::clone(budget), self.inner.pools.load_full()));
        Ok(Routed {
            guard,
            span,
            decision,
            operation,
            health: self.inner.health,
            budget,
            slot: std::sync::Mutex::new(None),
            unsent: AtomicBool::new(false),
        })
    }

    /// Routes a transaction and admits its `BEGIN`; returns the options to open it with.
    fn route_transaction(
        &self,
        mut options: TransactionOptions,
    ) -> Result<(Routed, TransactionOptions), Error> {
        let decision = decide_transaction(current_route(), options.access_mode)?;
        if decision.route == Route::Reader {
            options.access_mode = Some(AccessMode::ReadOnly);
        }
        Ok((self.admit(decision, "transaction", None)?, options))
    }
}

/// The OpenTelemetry `db.system` name of a backend.
fn system_name(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "postgresql",
        DatabaseBackend::MySql => "mysql",
        _ => "other_sql",
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for RdsConnection {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.inner.backend
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.statement(stmt, async |conn, stmt| conn.execute_raw(stmt).await)
            .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let stmt = Statement::from_string(self.inner.backend, sql);
        self.statement(stmt, async |conn, stmt| {
            conn.execute_unprepared(&stmt.sql).await
        })
        .await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.statement(stmt, async |conn, stmt| conn.query_one_raw(stmt).await)
            .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.statement(stmt, async |conn, stmt| conn.query_all_raw(stmt).await)
            .await
    }
}

#[async_trait::async_trait]
impl TransactionTrait for RdsConnection {
    type Transaction = DatabaseTransaction;

    /// Opens a transaction on the writer (on a reader, read-only, under `Route::Reader`).
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_options(TransactionOptions::default()).await
    }

    /// Opens a transaction; `Some(AccessMode::ReadOnly)` opens it on a reader.
    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            isolation_level,
            access_mode,
            ..Default::default()
        };
        self.begin_with_options(options).await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        // `BEGIN` changes nothing: when the writer fails under it, it runs again after the
        // failover.
        self.before_statement().await?;
        let (routed, options) = self.route_transaction(options)?;
        let routed = self.before_writer(routed).await?;
        if routed.decision.route == Route::Writer {
            // Its commit is out of sight (SeaORM's own transaction): from its start.
            self.inner.sticky.mark();
        }
        let error = match routed.run(|conn| conn.begin_with_options(options)).await {
            Err(error) if routed.host().role() == Role::Writer => error,
            done => return done,
        };
        let (decision, failed) = (routed.decision, Arc::clone(routed.host()));
        let never_sent = never_sent(&error) || routed.unsent();
        drop(routed);
        if never_sent && !self.is_current_writer(&failed) {
            // The writer was replaced while `BEGIN` waited for a connection.
            let retry = self.admit(decision, "transaction", None)?;
            return retry.run(|conn| conn.begin_with_options(options)).await;
        }
        if !self
            .writer_failed(&failed, Fault::of(&error), never_sent)
            .await
        {
            return Err(error);
        }
        match self.inner.failover.request_and_wait().await {
            None => Err(error),
            Some((Outcome::Completed, _)) => {
                let retry = self.admit(decision, "transaction", None)?;
                retry.run(|conn| conn.begin_with_options(options)).await
            }
            Some((Outcome::Failed, timeout)) => Err(Error::FailoverFailed(timeout).into()),
        }
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let options = TransactionOptions {
            isolation_level,
            access_mode,
            ..Default::default()
        };
        self.before_statement()
            .await
            .map_err(|e| TransactionError::Connection(e.into()))?;
        let (routed, options) = self
            .route_transaction(options)
            .map_err(|e| TransactionError::Connection(e.into()))?;
        let routed = self
            .before_writer(routed)
            .await
            .map_err(|e| TransactionError::Connection(e.into()))?;
        // The guard is held for the whole transaction, so shutdown waits for it.
        let outcome = routed
            .run(|conn| {
                conn.transaction_with_config(callback, options.isolation_level, options.access_mode)
            })
            .await;
        // The driver's own failures (BEGIN, COMMIT, a connection lost) are visible here. An error
        // the callback returned is its own type: when the writer no longer accepts writes (it
        // died or was demoted under the transaction), it was caused by that and is replaced.
        let host = Arc::clone(routed.host());
        if routed.decision.route == Route::Writer {
            self.inner.sticky.mark();
        }
        drop(routed);
        if host.role() != Role::Writer || !self.inner.failover.is_followed() {
            return outcome;
        }
        let writer_failed = match &outcome {
            Ok(_) => false,
            Err(TransactionError::Connection(error)) => {
                self.writer_failed(&host, Fault::of(error), never_sent(error))
                    .await
            }
            Err(TransactionError::Transaction(_)) => !host.writable(WRITER_CHECK_TIMEOUT).await,
        };
        if !writer_failed {
            return outcome;
        }
        let source = match &outcome {
            Err(TransactionError::Connection(error)) => Some(error.clone()),
            _ => {
                tracing::warn!("the transaction's callback failed as the writer did");
                None
            }
        };
        let error = match self.inner.failover.request_and_wait().await {
            None => return outcome,
            Some((Outcome::Completed, _)) => Error::TransactionResolutionUnknown { source },
            Some((Outcome::Failed, timeout)) => Error::FailoverFailed(timeout),
        };
        Err(TransactionError::Connection(error.into()))
    }
}

impl StreamTrait for RdsConnection {
    type Stream<'a> = RdsStream;

    fn get_database_backend(&self) -> DatabaseBackend {
        self.inner.backend
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<RdsStream, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            self.before_statement().await?;
            let routed = self.route(&stmt.sql)?;
            if !self.is_read(routed.decision, &stmt.sql) {
                self.inner.sticky.mark();
            }
            let inner = routed.run(|conn| conn.stream_raw(stmt)).await?;
            let slot = routed
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            Ok(RdsStream {
                inner,
                _guard: routed.guard,
                _slot: slot,
            })
        })
    }
}

/// The rows of a streamed query ([`StreamTrait::stream_raw`] on an [`RdsConnection`]).
///
/// It holds its host's connection, and counts as in flight there, until it is dropped.
pub struct RdsStream {
    inner: QueryStream,
    _guard: InFlight,
    _slot: Option<Slot>,
}

impl std::fmt::Debug for RdsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsStream")
            .field("host", &self._guard.host().name())
            .finish_non_exhaustive()
    }
}

impl Stream for RdsStream {
    type Item = Result<QueryResult, DbErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}
