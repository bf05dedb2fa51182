//! [`RdsConnection`]: the SeaORM adapter over the cluster core. It routes each statement
//! ([`router`]), recovers from its host's failures ([`recovery`]), implements SeaORM's traits
//! ([`traits`], [`stream`]) and forwards the rest to the [`Cluster`].

mod causal;
mod recovery;
mod router;
mod stream;
mod traits;
mod transaction;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseBackend;

pub(crate) use self::router::Router;
pub use self::stream::RdsStream;
pub use self::transaction::RdsTransaction;
use crate::bluegreen::BlueGreenStatus;
use crate::cluster::{Cluster, ShutdownReport};
use crate::error::Result;
use crate::health::HealthSnapshot;
use crate::options::RdsConnectionBuilder;
use crate::topology::{Topology, TopologyChange};

/// A SeaORM connection to a cluster: a writer and its readers, each with its own pool.
///
/// Use it wherever SeaORM takes `&impl ConnectionTrait`: every statement is routed by the rules
/// of the crate documentation (read-only statements to a reader, everything else and every
/// transaction to the writer). It is a cheap handle (an `Arc` inside): clone it into tasks.
/// When the last handle is dropped, its background tasks (health and blue/green monitors,
/// topology polling, credential renewal) stop and its pools close; call
/// [`shutdown`](Self::shutdown) to let the work in flight finish first.
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
    handle: Arc<Handle>,
}

const _: () = {
    const fn assert_handle<T: Send + Sync + Clone + 'static>() {}
    assert_handle::<RdsConnection>();
};

/// What the application's handles share; background tasks hold the cluster, never this, so
/// that dropping the last handle stops them.
struct Handle {
    cluster: Arc<Cluster>,
    router: Router,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The tasks end, dropping the cluster and with it every pool.
        self.cluster.lifecycle().stop();
    }
}

impl std::fmt::Debug for RdsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts = self.cluster().hosts();
        let readers: Vec<&str> = hosts.readers.iter().map(|r| r.name()).collect();
        f.debug_struct("RdsConnection")
            .field("backend", &self.cluster().backend())
            .field("writer", &hosts.writer.name())
            .field("readers", &readers)
            .field("closing", &self.is_shutting_down())
            .finish_non_exhaustive()
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

    /// The first handle to `cluster`.
    pub(crate) fn new(cluster: Arc<Cluster>, router: Router) -> Self {
        RdsConnection {
            handle: Arc::new(Handle { cluster, router }),
        }
    }

    /// The cluster core behind this connection.
    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.handle.cluster
    }

    fn router(&self) -> &Router {
        &self.handle.router
    }

    /// The database backend of the cluster (the writer's).
    ///
    /// Inherent so that `db.get_database_backend()` needs no trait in scope and is not ambiguous
    /// between `ConnectionTrait` and `StreamTrait`.
    ///
    /// ```no_run
    /// # fn demo(db: rds_balancer::RdsConnection) {
    /// assert_eq!(db.get_database_backend(), sea_orm::DatabaseBackend::Postgres);
    /// # }
    /// ```
    pub fn get_database_backend(&self) -> DatabaseBackend {
        self.cluster().backend()
    }

    /// The plain SeaORM connection (a handle to the pool) of the writer in service now, for
    /// tools that take a SeaORM connection rather than any `ConnectionTrait`: above all
    /// sea-orm-migration, whose `Migrator::up` / `down` take `impl IntoDatabaseExecutor`.
    ///
    /// Migrations must run on the writer, and on a connection rather than in a transaction: on
    /// MySQL every DDL statement commits implicitly, so they cannot run in one (on PostgreSQL
    /// the migrator wraps each migration in a transaction of its own). Hence this connection.
    ///
    /// It is the writer *in service now* and does not follow a failover: after one, call this
    /// again. Statements on it go straight to that host's pool and bypass everything the
    /// connection adds: routing, the connection budget
    /// ([`max_total_connections`](crate::RdsConnectionBuilder::max_total_connections)), the
    /// in-flight count that [`shutdown`](Self::shutdown) waits for, the blue/green switchover
    /// hold, and failover handling (its errors are returned as they are). Once the host leaves service (a pool rds-balancer
    /// opened) or the connection shuts down (any pool), its pool is closed and statements on it
    /// fail.
    ///
    /// ```no_run
    /// use rds_balancer::RdsConnection;
    /// use sea_orm_migration::prelude::*;
    ///
    /// struct Migrator;
    ///
    /// #[async_trait::async_trait]
    /// impl MigratorTrait for Migrator {
    ///     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    ///         vec![] // your migrations
    ///     }
    /// }
    ///
    /// # async fn demo(db: RdsConnection) -> Result<(), DbErr> {
    /// Migrator::up(&db.writer_connection(), None).await?;
    /// # Ok(()) }
    /// ```
    pub fn writer_connection(&self) -> sea_orm::DatabaseConnection {
        self.cluster().hosts().writer.conn().clone()
    }

    /// The blue/green deployment as the connection's monitor last saw it, or `None` when
    /// blue/green support is off ([`RdsConnectionBuilder::blue_green`]).
    ///
    /// ```no_run
    /// # fn demo(db: rds_balancer::RdsConnection) {
    /// if let Some(status) = db.blue_green() {
    ///     println!("blue/green phase: {}", status.phase);
    /// }
    /// # }
    /// ```
    pub fn blue_green(&self) -> Option<BlueGreenStatus> {
        self.cluster().blue_green().map(|bg| bg.status())
    }

    /// True once [`shutdown`](Self::shutdown) has begun.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) {
    /// db.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert!(db.is_shutting_down());
    /// # }
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.cluster().is_closing()
    }

    /// Every host's health now: state, breaker, probe latency, failures, in-flight work and
    /// pool occupancy. Cheap (no I/O); serialisable for a health endpoint.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) {
    /// let health = db.health();
    /// let unhealthy = health.hosts.iter().filter(|h| h.state == rds_balancer::HealthState::Unhealthy);
    /// println!("{} unhealthy host(s)", unhealthy.count());
    /// # }
    /// ```
    pub fn health(&self) -> HealthSnapshot {
        HealthSnapshot::of(&self.cluster().hosts())
    }

    /// Makes the hosts in use match `next` and returns the changes made.
    ///
    /// Readers are the available members other than the writer that have an endpoint. A new
    /// reader gets a pool and takes reads at once; a reader that is gone or no longer
    /// available leaves scheduling at once, and its pool closes once its in-flight statements
    /// finish or the [drain timeout](crate::RdsConnectionBuilder::drain_timeout) passes. A new
    /// writer is swapped in the same way; a topology without a usable writer (mid-failover)
    /// keeps the current one. Concurrent calls apply one after the other; none holds up
    /// statements or [`shutdown`](Self::shutdown) while it opens pools.
    ///
    /// A new host that cannot be reached is reported, never silently dropped: a reader joins as
    /// unhealthy ([`TopologyChange::ReaderUnreachable`]; in [`health`](Self::health), probed
    /// with back-off, it takes reads once it answers); a writer is not swapped in
    /// ([`TopologyChange::WriterUnreachable`]) and the next call tries it again.
    ///
    /// This is how a discovery mechanism of your own feeds the connection; the built-in sources
    /// call it too. New pools copy the writer pool's settings (credentials, database, TLS, pool
    /// sizes and timeouts) with the instance's host and port. A writer dialled through a Unix
    /// socket cannot follow a topology: this then fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config).
    ///
    /// ```no_run
    /// use rds_balancer::{Instance, RdsConnection, Topology, TopologyChange};
    ///
    /// # async fn demo(db: RdsConnection) -> rds_balancer::Result<()> {
    /// let changes = db
    ///     .apply_topology(&Topology::new(vec![
    ///         Instance::writer("app-1").with_endpoint("10.0.0.1", 5432),
    ///         Instance::reader("app-2").with_endpoint("10.0.0.2", 5432),
    ///     ]))
    ///     .await?;
    /// for change in changes {
    ///     if let TopologyChange::ReaderAdded(reader) = change {
    ///         println!("reads now also go to {}", reader.id);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn apply_topology(&self, next: &Topology) -> Result<Vec<TopologyChange>> {
        crate::topology::apply(self.cluster(), next, || true).await
    }

    /// The instances in use as of the last [`apply_topology`](Self::apply_topology): the
    /// writer (once a topology named one) and the readers taking reads. Empty before the first.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) {
    /// for reader in db.topology().await.readers() {
    ///     println!("{} at {:?}", reader.id, reader.address());
    /// }
    /// # }
    /// ```
    pub async fn topology(&self) -> Topology {
        self.cluster().topology()
    }

    /// Shuts down gracefully: from now on every new statement or transaction on this connection
    /// (and all its clones) fails with [`ErrorKind::ShuttingDown`](crate::ErrorKind::ShuttingDown);
    /// statements, streams and transactions already running may finish within `timeout`; then
    /// every pool is closed, including pools you handed to the builder. It returns within
    /// `timeout` (plus a few milliseconds), whatever the hosts do.
    ///
    /// Calling it again is harmless.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) {
    /// let report = db.shutdown(std::time::Duration::from_secs(30)).await;
    /// assert!(report.drained, "{} statements were cut short", report.abandoned);
    /// # }
    /// ```
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.cluster().shutdown(timeout).await
    }

    /// Installs SIGTERM and SIGINT (Ctrl-C) handlers now, and returns a future that, once either
    /// signal arrives, runs [`shutdown`](Self::shutdown) with `timeout`.
    ///
    /// Call it inside a tokio runtime (the handlers need its I/O driver); spawn or await the
    /// future. The handlers replace the default action of those signals for the whole process
    /// (the process no longer exits on them by itself): exit once the future completes.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) -> std::io::Result<()> {
    /// let on_signal = db.shutdown_on_signal(std::time::Duration::from_secs(30))?;
    /// let report = on_signal.await;
    /// # let _ = report; Ok(()) }
    /// ```
    #[cfg(unix)]
    pub fn shutdown_on_signal(
        &self,
        timeout: Duration,
    ) -> std::io::Result<impl Future<Output = ShutdownReport> + Send + 'static> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let db = self.clone();
        Ok(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "signal received");
            db.shutdown(timeout).await
        })
    }
}
