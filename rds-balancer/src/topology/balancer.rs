//! The balancer controller: keeps an [`RdsConnection`] in line with a [`TopologySource`] by
//! polling it (design.md section 3).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Topology, TopologyChange, TopologySource};
use crate::connection::RdsConnection;
use crate::error::Result;

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
}

impl std::fmt::Debug for BalancerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancerOptions")
            .field("poll_interval", &self.poll_interval)
            .field("auto_start", &self.auto_start)
            .field("on_topology_change", &self.on_change.is_some())
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
        }
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

/// Keeps an [`RdsConnection`]'s readers and writer in line with a [`TopologySource`].
///
/// A cheap handle (an `Arc` inside). Polling stops with [`stop`](Self::stop), or when the
/// connection shuts down.
#[derive(Clone)]
pub struct RdsReplicaBalancer {
    inner: Arc<Inner>,
}

struct Inner {
    db: RdsConnection,
    options: BalancerOptions,
    /// Cancels the polling task, while one runs.
    polling: Mutex<Option<CancellationToken>>,
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
/// With [`auto_start`](BalancerOptions::auto_start) it syncs once (a failure is logged, not
/// returned: polling goes on and retries) and starts polling. The writer must have been given to
/// the builder as a URL (new pools take its credentials).
///
/// ```no_run
/// use rds_balancer::{BalancerOptions, RdsApiSource, RdsConnection, attach_rds_replica_balancer};
///
/// # async fn demo() -> rds_balancer::Result<()> {
/// let db = RdsConnection::builder()
///     .writer("postgres://app@app.cluster-abc.us-east-1.rds.amazonaws.com/app")
///     .build()
///     .await?;
/// let source = RdsApiSource::builder("app").region("us-east-1").build().await?;
/// let balancer = attach_rds_replica_balancer(db, BalancerOptions::new(source).auto_start(true)).await?;
/// let db = balancer.connection(); // use it as before: reads now reach the cluster's readers
/// # let _ = db; Ok(()) }
/// ```
pub async fn attach_rds_replica_balancer(
    db: RdsConnection,
    options: BalancerOptions,
) -> Result<RdsReplicaBalancer> {
    db.host_factory()?;
    let balancer = RdsReplicaBalancer {
        inner: Arc::new(Inner {
            db,
            options,
            polling: Mutex::new(None),
        }),
    };
    if balancer.inner.options.auto_start {
        if let Err(error) = balancer.sync_now().await {
            tracing::warn!(%error, "initial topology sync failed; polling will retry");
        }
        balancer.start();
    }
    Ok(balancer)
}

impl RdsReplicaBalancer {
    /// The connection it keeps up to date.
    pub fn connection(&self) -> RdsConnection {
        self.inner.db.clone()
    }

    /// Asks the source now and applies what changed. On an error the last good topology stays
    /// in use.
    pub async fn sync_now(&self) -> Result<Vec<TopologyChange>> {
        let topology = self.inner.options.source.fetch().await?;
        let changes = self.inner.db.apply_topology(&topology).await?;
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

    /// Starts polling (no-op when it already runs). Must be called inside a tokio runtime.
    pub fn start(&self) {
        let mut polling = self
            .inner
            .polling
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if polling.as_ref().is_some_and(|token| !token.is_cancelled()) {
            return;
        }
        let token = self.inner.db.inner().stopping.child_token();
        *polling = Some(token.clone());
        let balancer = self.clone();
        self.inner
            .db
            .inner()
            .tasks
            .spawn(async move { balancer.poll(token).await });
    }

    /// Stops polling. The hosts in use stay as they are.
    pub fn stop(&self) {
        if let Some(token) = self
            .inner
            .polling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            token.cancel();
        }
    }

    /// True while the polling task runs.
    pub fn is_polling(&self) -> bool {
        self.inner
            .polling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|token| !token.is_cancelled())
    }

    async fn poll(&self, token: CancellationToken) {
        let interval = self.inner.options.poll_interval;
        let mut failures: u32 = 0;
        loop {
            let wait = jittered(backoff(interval, failures));
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.sync_now().await {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "topology sync failed; keeping the last topology");
                }
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
