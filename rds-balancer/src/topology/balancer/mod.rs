//! The balancer controller: keeps an [`RdsConnection`] in line with a [`TopologySource`] by
//! polling it.

mod options;
mod polling;

pub use self::options::{BalancerOptions, IntoRdsConnection};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[cfg(doc)]
use super::TopologySource;
use super::{Topology, TopologyChange};
use crate::connection::RdsConnection;
use crate::error::Result;

/// Keeps an [`RdsConnection`]'s readers and writer in line with a [`TopologySource`].
///
/// A cheap handle (an `Arc` inside). Polling stops with [`stop`](Self::stop), with
/// [`destroy`](Self::destroy), or when the connection shuts down or its last handle (this
/// one included) is dropped.
#[derive(Clone)]
pub struct RdsReplicaBalancer {
    db: RdsConnection,
    shared: Arc<Shared>,
}

/// The balancer's own state, shared with its polling task (which holds the cluster, not a
/// handle to the connection: the application's handles alone keep it alive).
struct Shared {
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
            .field("connection", &self.db)
            .field("options", &self.shared.options)
            .field("polling", &self.is_polling())
            .finish()
    }
}

/// Makes `db` follow the cluster `options` describes, and returns the controller.
///
/// `db` is an [`RdsConnection`], a builder for one, or a plain SeaORM [`DatabaseConnection`](sea_orm::DatabaseConnection)
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
    options.validate()?;
    let db = db.into_rds_connection().await?;
    db.cluster().factory()?;
    let auto_start = options.auto_start;
    let balancer = RdsReplicaBalancer {
        db,
        shared: Arc::new(Shared {
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
    ///
    /// ```no_run
    /// # fn demo(balancer: rds_balancer::RdsReplicaBalancer) {
    /// let db: rds_balancer::RdsConnection = balancer.connection();
    /// # let _ = db; }
    /// ```
    pub fn connection(&self) -> RdsConnection {
        self.db.clone()
    }

    /// Asks the source now and applies what changed. On an error the last good topology stays
    /// in use. After [`destroy`](Self::destroy) it fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config).
    ///
    /// Hosts that could not be opened are in the result, not an error:
    /// [`TopologyChange::ReaderUnreachable`] (the reader joined as unhealthy and takes reads once
    /// it answers) and [`TopologyChange::WriterUnreachable`] (the current writer stays).
    ///
    /// ```no_run
    /// # async fn demo(balancer: rds_balancer::RdsReplicaBalancer) -> rds_balancer::Result<()> {
    /// let changes = balancer.sync_now().await?;
    /// println!("{} change(s)", changes.len());
    /// # Ok(()) }
    /// ```
    pub async fn sync_now(&self) -> Result<Vec<TopologyChange>> {
        self.shared.sync(self.db.cluster()).await
    }

    /// The instances in use, as of the last sync.
    ///
    /// ```no_run
    /// # async fn demo(balancer: rds_balancer::RdsReplicaBalancer) {
    /// println!("{} reader(s)", balancer.topology().await.readers().count());
    /// # }
    /// ```
    pub async fn topology(&self) -> Topology {
        self.db.cluster().topology()
    }

    /// Starts polling (no-op when it already runs, or after [`destroy`](Self::destroy)). Must
    /// be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # fn demo(balancer: rds_balancer::RdsReplicaBalancer) {
    /// balancer.start();
    /// assert!(balancer.is_polling());
    /// # }
    /// ```
    pub fn start(&self) {
        let mut polling = self.polling();
        if polling.as_ref().is_some_and(Polling::is_running)
            || self.shared.destroyed.load(Ordering::SeqCst)
        {
            return;
        }
        let cluster = Arc::clone(self.db.cluster());
        let token = cluster.lifecycle().child_token();
        cluster
            .failover()
            .start_following(self.shared.options.failover_timeout);
        let (shared, stopped, polled) = (
            Arc::clone(&self.shared),
            token.clone(),
            Arc::clone(&cluster),
        );
        let task = cluster
            .lifecycle()
            .spawn(async move { shared.poll(&polled, stopped).await });
        *polling = Some(Polling { token, task });
    }

    /// Stops polling. The hosts in use stay as they are. A sync in progress is abandoned before
    /// it changes anything; a failover in progress fails (nothing follows the cluster any more).
    ///
    /// ```no_run
    /// # fn demo(balancer: rds_balancer::RdsReplicaBalancer) {
    /// balancer.stop();
    /// assert!(!balancer.is_polling());
    /// # }
    /// ```
    pub fn stop(&self) {
        if let Some(polling) = self.polling().take() {
            polling.token.cancel();
            self.db.cluster().failover().stop_following();
        }
    }

    /// True while the polling task runs.
    ///
    /// ```no_run
    /// # fn demo(balancer: rds_balancer::RdsReplicaBalancer) {
    /// if !balancer.is_polling() {
    ///     balancer.start();
    /// }
    /// # }
    /// ```
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
        self.shared.destroyed.store(true, Ordering::SeqCst);
        let polling = self.polling().take();
        if let Some(polling) = polling {
            polling.token.cancel();
            self.db.cluster().failover().stop_following();
            // The task ends at its next await; a panic in it has been logged by the runtime.
            let _ = polling.task.await;
        }
        crate::topology::forget(self.db.cluster()).await;
    }

    fn polling(&self) -> std::sync::MutexGuard<'_, Option<Polling>> {
        self.shared
            .polling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
