//! [`BalancerOptions`]: how a balancer follows the cluster, and what it can be attached to.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use super::super::{TopologyChange, TopologySource};
use crate::connection::RdsConnection;
use crate::error::Result;
use crate::options::RdsConnectionBuilder;
#[cfg(doc)]
use crate::topology::{RdsReplicaBalancer, attach_rds_replica_balancer};

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
    pub(super) source: Arc<dyn TopologySource>,
    pub(super) poll_interval: Duration,
    pub(super) auto_start: bool,
    pub(super) on_change: Option<OnChange>,
    pub(super) failover_poll_interval: Duration,
    pub(super) failover_timeout: Duration,
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

impl BalancerOptions {
    /// Checks every interval and timeout (see [`crate::settings`]).
    pub(super) fn validate(&self) -> Result<()> {
        crate::settings::positive("poll_interval", self.poll_interval)?;
        crate::settings::positive("failover_poll_interval", self.failover_poll_interval)?;
        crate::settings::positive("failover_timeout", self.failover_timeout)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn bad_intervals_are_config_errors_naming_the_setting() {
        let source = || async { Ok(Topology::default()) };
        let zero = Duration::ZERO;
        let cases = [
            (
                "poll_interval",
                BalancerOptions::new(source).poll_interval(zero),
            ),
            (
                "poll_interval",
                BalancerOptions::new(source).poll_interval(Duration::MAX),
            ),
            (
                "failover_poll_interval",
                BalancerOptions::new(source).failover_poll_interval(zero),
            ),
            (
                "failover_timeout",
                BalancerOptions::new(source).failover_timeout(Duration::MAX),
            ),
        ];
        for (name, options) in cases {
            let err = options.validate().expect_err(name);
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{name}: {err}");
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
        assert!(BalancerOptions::new(source).validate().is_ok());
    }
}
