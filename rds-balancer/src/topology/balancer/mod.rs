//! The balancer controller: keeps an [`RdsConnection`] in line with a [`TopologySource`] by
//! polling it (design.md section 3).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Topology, TopologyChange, TopologySource};
use crate::connection::RdsConnection;
use crate::error::{Error, Result};
use crate::failover::Outcome;
use crate::options::RdsConnectionBuilder;

/// A callback told about every set of changes a sync applied.
type OnChange = Arc<dyn Fn(&[TopologyChange]) + Send + Sync>;

/// How [`attach_rds_replica_balancer`] follows the cluster.
///
/// ```
/// use std::time::Duration;
/// use rds_balancer::{BalancerOptions, Instance, Topology};
///
/// let source = || async { Ok(Topology::new(vec![Instance::writer("app-1").with_endpoint("10.0.0.1", 5432)])) };
/// let options = BalancerOptions::new(source)
///     .poll_interval(Duration::from_secs(10))
///     .auto_start(true)
///     .on_topology_change(|changes| tracing::info!(?changes, "cluster changed"));
/// # let _ = options;
/// ```
#[must_use = "options do nothing until passed to `attach_rds_replica_balancer`"]
pub struct BalancerOptions {
    source: Arc<dyn TopologySource>,
    poll_interval: Duration,
    auto_start: bool,
    on_change: Option<OnChange>,
    failover_poll_interval: Duration,
    failover_timeout: Duration,
}

impl std::fmt::Debug for BalancerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancerOptions")
            .field("poll_interval", &self.poll_interval)
            .field("auto_start", &self.auto_start)
            .field("on_topology_change", &self.on_change.is_some())
            .field("failover_poll_interval", &self.failover_poll_interval)
            .field("failover_timeout", &self.failover_timeout)
            .finish_non_exhaustive()
    }
}

impl BalancerOptions {
    /// Options that follow `source` (an [`RdsApiSource`](crate::RdsApiSource), or any
    /// [`TopologySource`], closures included).
    pub fn new(source: impl TopologySource) -> Self {
        BalancerOptions {
            source: Arc::new(source),
            poll_interval: Duration::from_secs(30),
            auto_start: false,
            on_change: None,
            failover_poll_interval: Duration::from_millis(100),
            failover_timeout: Duration::from_secs(60),
        }
    }

    /// How often the source is asked while the writer is failing over (a statement saw the
    /// writer fail, or its probes did), until a writer that accepts writes is confirmed. Use a
    /// source that is cheap to ask this often, such as a
    /// [`ClusterViewSource`](crate::ClusterViewSource). Default: 100 ms.
    pub fn failover_poll_interval(mut self, value: Duration) -> Self {
        self.failover_poll_interval = value;
        self
    }

    /// How long a failover may take before it is given up: statements waiting for it then fail
    /// with [`ErrorKind::FailoverFailed`](crate::ErrorKind::FailoverFailed) and polling returns to
    /// its usual pace. Default: 60 s.
    pub fn failover_timeout(mut self, value: Duration) -> Self {
        self.failover_timeout = value;
        self
    }

    /// How often the source is asked, on average: each wait is jittered by ±20% so that a
    /// fleet of instances does not call the API in lock-step. Default: 30 s.
    pub fn poll_interval(mut self, value: Duration) -> Self {
        self.poll_interval = value;
        self
    }

    /// Whether attaching also syncs once and starts polling. Default: `false` (call
    /// [`RdsReplicaBalancer::sync_now`] and [`RdsReplicaBalancer::start`] yourself).
    pub fn auto_start(mut self, value: bool) -> Self {
        self.auto_start = value;
        self
    }

    /// Called with the changes of every sync that changed something (readers added or removed,
    /// a new writer). Keep it quick: it runs on the polling task. Default: none.
    pub fn on_topology_change(
        mut self,
        callback: impl Fn(&[TopologyChange]) + Send + Sync + 'static,
    ) -> Self {
        self.on_change = Some(Arc::new(callback));
        self
    }
}

/// What a balancer can be attached to: an [`RdsConnection`], a builder for one (built first),
/// or a plain SeaORM [`DatabaseConnection`], which becomes the writer (it stays yours: a
/// topology that moves the writer elsewhere leaves it open, and
/// [`destroy`](RdsReplicaBalancer::destroy) puts it back).
///
/// Pools opened for the hosts a topology names copy the writer pool's settings (credentials,
/// database, TLS, pool sizes and timeouts) with the host's address. Settings about following a
/// topology (drain timeout, reader filters, endpoint resolver, keeping the writer, fallback to
/// the writer) are the [builder's](RdsConnectionBuilder): to change them for a
/// `DatabaseConnection`, attach `RdsConnection::builder().writer_connection(db)` with them set.
///
/// ```
/// fn attachable(_: impl rds_balancer::IntoRdsConnection) {}
/// attachable(rds_balancer::RdsConnection::builder().writer("postgres://app@db.example.com/app"));
/// attachable(sea_orm::DatabaseConnection::default()); // fails at attach time: not connected
/// ```
pub trait IntoRdsConnection: sealed::Sealed {
    /// The connection, built if need be.
    fn into_rds_connection(self) -> impl Future<Output = Result<RdsConnection>> + Send;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::RdsConnection {}
    impl Sealed for crate::RdsConnectionBuilder {}
    impl Sealed for sea_orm::DatabaseConnection {}
}

impl IntoRdsConnection for RdsConnection {
    async fn into_rds_connection(self) -> Result<RdsConnection> {
        Ok(self)
    }
}

impl IntoRdsConnection for RdsConnectionBuilder {
    async fn into_rds_connection(self) -> Result<RdsConnection> {
        self.build().await
    }
}

impl IntoRdsConnection for DatabaseConnection {
    async fn into_rds_connection(self) -> Result<RdsConnection> {
        RdsConnection::builder()
            .writer_connection(self)
            .build()
            .await
    }
}

/// Keeps an [`RdsConnection`]'s readers and writer in line with a [`TopologySource`].
///
/// A cheap handle (an `Arc` inside). Polling stops with [`stop`](Self::stop), with
/// [`destroy`](Self::destroy), or when the connection shuts down.
#[derive(Clone)]
pub struct RdsReplicaBalancer {
    inner: Arc<Inner>,
}

struct Inner {
    db: RdsConnection,
    options: BalancerOptions,
    /// The polling task, while one runs.
    polling: Mutex<Option<Polling>>,
    /// Set by [`RdsReplicaBalancer::destroy`]: no sync applies anything after it.
    destroyed: AtomicBool,
}

/// A running polling task and the token that stops it.
struct Polling {
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RdsReplicaBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsReplicaBalancer")
            .field("connection", &self.inner.db)
            .field("options", &self.inner.options)
            .field("polling", &self.is_polling())
            .finish()
    }
}

/// Makes `db` follow the cluster `options` describes, and returns the controller.
///
/// `db` is an [`RdsConnection`], a builder for one, or a plain SeaORM [`DatabaseConnection`]
/// (see [`IntoRdsConnection`]). With [`auto_start`](BalancerOptions::auto_start) it syncs once
/// (a failure is logged, not returned: polling goes on and retries) and starts polling;
/// [`connect`] instead fails when the first sync does.
///
/// ```no_run
/// use rds_balancer::{BalancerOptions, RdsApiSource, attach_rds_replica_balancer};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let db = sea_orm::Database::connect("postgres://app@app.cluster-abc.us-east-1.rds.amazonaws.com/app").await?;
/// let source = RdsApiSource::builder("app").region("us-east-1").build().await?;
/// let balancer = attach_rds_replica_balancer(db, BalancerOptions::new(source).auto_start(true)).await?;
/// let db = balancer.connection(); // use it as before: reads now reach the cluster's readers
/// # let _ = db; Ok(()) }
/// ```
pub async fn attach_rds_replica_balancer(
    db: impl IntoRdsConnection,
    options: BalancerOptions,
) -> Result<RdsReplicaBalancer> {
    let db = db.into_rds_connection().await?;
    db.host_factory()?;
    let auto_start = options.auto_start;
    let balancer = RdsReplicaBalancer {
        inner: Arc::new(Inner {
            db,
            options,
            polling: Mutex::new(None),
            destroyed: AtomicBool::new(false),
        }),
    };
    if auto_start {
        if let Err(error) = balancer.sync_now().await {
            tracing::warn!(%error, "initial topology sync failed; polling will retry");
        }
        balancer.start();
    }
    Ok(balancer)
}

/// Connects to a cluster and follows it: builds `db` if need be, syncs with the source once
/// (failing if that fails), starts polling, and returns the connection. Polling stops when the
/// connection [shuts down](RdsConnection::shutdown). Use [`attach_rds_replica_balancer`] to keep
/// the controller ([`sync_now`](RdsReplicaBalancer::sync_now),
/// [`destroy`](RdsReplicaBalancer::destroy), ...).
///
/// ```no_run
/// use std::time::Duration;
/// use rds_balancer::{BalancerOptions, RdsApiSource, RdsConnection};
///
/// # async fn demo() -> rds_balancer::Result<()> {
/// let source = RdsApiSource::builder("app").region("us-east-1").build().await?;
/// let db = rds_balancer::connect(
///     RdsConnection::builder()
///         .writer("postgres://app@app.cluster-abc.us-east-1.rds.amazonaws.com/app")
///         .drain_timeout(Duration::from_secs(10)),
///     BalancerOptions::new(source).poll_interval(Duration::from_secs(15)),
/// )
/// .await?; // the cluster's readers already take reads
/// # let _ = db; Ok(()) }
/// ```
pub async fn connect(
    db: impl IntoRdsConnection,
    options: BalancerOptions,
) -> Result<RdsConnection> {
    let balancer = attach_rds_replica_balancer(db, options.auto_start(false)).await?;
    balancer.sync_now().await?;
    balancer.start();
    Ok(balancer.connection())
}

impl RdsReplicaBalancer {
    /// The connection it keeps up to date.
    pub fn connection(&self) -> RdsConnection {
        self.inner.db.clone()
    }

    /// Asks the source now and applies what changed. On an error the last good topology stays
    /// in use. After [`destroy`](Self::destroy) it fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config).
    ///
    /// Hosts that could not be opened are in the result, not an error:
    /// [`TopologyChange::ReaderUnreachable`] (the reader joined as unhealthy and takes reads once
    /// it answers) and [`TopologyChange::WriterUnreachable`] (the current writer stays).
    pub async fn sync_now(&self) -> Result<Vec<TopologyChange>> {
        let destroyed = || self.inner.destroyed.load(Ordering::SeqCst);
        if destroyed() {
            return Err(Error::Config("the balancer was destroyed".into()));
        }
        let topology = self.inner.options.source.fetch().await?;
        let changes = self
            .inner
            .db
            .apply_topology_while(&topology, || !destroyed())
            .await?;
        if !changes.is_empty()
            && let Some(callback) = &self.inner.options.on_change
        {
            callback(&changes);
        }
        Ok(changes)
    }

    /// The instances in use, as of the last sync.
    pub async fn topology(&self) -> Topology {
        self.inner.db.topology().await
    }

    /// Starts polling (no-op when it already runs, or after [`destroy`](Self::destroy)). Must
    /// be called inside a tokio runtime.
    pub fn start(&self) {
        let mut polling = self.polling();
        if polling.as_ref().is_some_and(Polling::is_running)
            || self.inner.destroyed.load(Ordering::SeqCst)
        {
            return;
        }
        let token = self.inner.db.inner().stopping.child_token();
        self.inner
            .db
            .inner()
            .failover
            .start_following(self.inner.options.failover_timeout);
        let balancer = self.clone();
        let stopped = token.clone();
        let task = self
            .inner
            .db
            .inner()
            .tasks
            .spawn(async move { balancer.poll(stopped).await });
        *polling = Some(Polling { token, task });
    }

    /// Stops polling. The hosts in use stay as they are. A sync in progress is abandoned before
    /// it changes anything; a failover in progress fails (nothing follows the cluster any more).
    pub fn stop(&self) {
        if let Some(polling) = self.polling().take() {
            polling.token.cancel();
            self.inner.db.inner().failover.stop_following();
        }
    }

    /// True while the polling task runs.
    pub fn is_polling(&self) -> bool {
        self.polling().as_ref().is_some_and(Polling::is_running)
    }

    /// Detaches the balancer: stops polling for good, takes every reader a topology added out of
    /// scheduling, drains and closes its pool, and puts back the writer the connection was
    /// built with if a topology replaced it (a `DatabaseConnection` you attached is left open
    /// and used again). Readers given to the builder stay. The connection stays usable; it
    /// returns once the hosts that left are closed (or the drain timeout passed).
    ///
    /// ```no_run
    /// # async fn demo(balancer: rds_balancer::RdsReplicaBalancer) {
    /// let db = balancer.connection();
    /// balancer.destroy().await;
    /// assert!(db.topology().await.instances.is_empty()); // back to the hosts it was built with
    /// # }
    /// ```
    pub async fn destroy(&self) {
        self.inner.destroyed.store(true, Ordering::SeqCst);
        let polling = self.polling().take();
        if let Some(polling) = polling {
            polling.token.cancel();
            self.inner.db.inner().failover.stop_following();
            // The task ends at its next await; a panic in it has been logged by the runtime.
            let _ = polling.task.await;
        }
        self.inner.db.forget_topology().await;
    }

    fn polling(&self) -> std::sync::MutexGuard<'_, Option<Polling>> {
        self.inner
            .polling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn poll(&self, token: CancellationToken) {
        let interval = self.inner.options.poll_interval;
        let failover = &self.inner.db.inner().failover;
        let mut failures: u32 = 0;
        loop {
            let wait = jittered(backoff(interval, failures));
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = failover.asked() => {
                    self.follow_failover(&token).await;
                    failures = 0;
                    continue;
                }
            }
            // Cancel-safe: a sync changes the hosts in one step after its last await.
            let synced = tokio::select! {
                () = token.cancelled() => return,
                synced = self.sync_now() => synced,
            };
            match synced {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "topology sync failed; keeping the last topology");
                }
            }
        }
    }
}

impl Polling {
    fn is_running(&self) -> bool {
        !self.token.is_cancelled()
    }
}

impl RdsReplicaBalancer {
    /// Follows a writer failover: asks the source every `failover_poll_interval` and checks that
    /// the writer in use accepts writes, until it does (the failover completed: a new writer was
    /// applied, or the old one came back) or `failover_timeout` passes (it failed).
    async fn follow_failover(&self, token: &CancellationToken) {
        let (db, options) = (self.inner.db.inner(), &self.inner.options);
        let started = tokio::time::Instant::now();
        // A check of a writer that does not answer must not hold up the next refresh for long.
        let check_timeout = Duration::from_secs(1).max(options.failover_poll_interval);
        loop {
            let synced = tokio::select! {
                () = token.cancelled() => return,
                synced = self.sync_now() => synced,
            };
            if let Err(error) = synced {
                tracing::debug!(%error, "topology refresh during failover failed");
            }
            let writer = Arc::clone(&db.pools.load().writer);
            let writable = tokio::select! {
                () = token.cancelled() => return,
                writable = writer.writable(check_timeout) => writable,
            };
            if writable {
                tracing::info!(writer = %writer.name(), elapsed = ?started.elapsed(), "failover completed: the writer accepts writes");
                db.failover.finish(Outcome::Completed);
                return;
            }
            if started.elapsed() >= options.failover_timeout {
                tracing::error!(timeout = ?options.failover_timeout, "failover failed: no writer accepts writes");
                db.failover.finish(Outcome::Failed);
                return;
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(options.failover_poll_interval) => {}
            }
        }
    }
}

/// The wait before the next poll after `failures` failed syncs in a row: the interval, doubled
/// per failure, at most 32 times the interval or 5 minutes, whichever is larger.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let backed_off = interval.saturating_mul(1 << failures.min(5));
    backed_off.min(interval.max(Duration::from_secs(300)))
}

/// `wait` scaled by a factor in [0.8, 1.2).
fn jittered(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // A cheap spread from the clock's low bits; not for anything but de-synchronising polls.
    let fraction = f64::from(nanos.wrapping_mul(2_654_435_761) % 1000) / 1000.0;
    wait.mul_f64(0.8 + 0.4 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(30), 0), s(30));
        assert_eq!(backoff(s(30), 1), s(60));
        assert_eq!(backoff(s(30), 3), s(240));
        assert_eq!(backoff(s(30), 4), s(300));
        assert_eq!(backoff(s(30), 40), s(300));
        assert_eq!(
            backoff(Duration::from_millis(100), 40),
            Duration::from_millis(3200)
        );
        assert_eq!(
            backoff(s(600), 2),
            s(600),
            "never shorter than the interval"
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let wait = jittered(Duration::from_secs(10));
            assert!(
                wait >= Duration::from_secs(8) && wait < Duration::from_secs(12),
                "{wait:?}"
            );
        }
    }
}
