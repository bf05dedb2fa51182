//! How to start a [`MariaDbCluster`]: the number of replicas, `max_connections`.

use super::MariaDbCluster;
use crate::error::Error;

/// The `max_connections` of a cluster unless [`MariaDbClusterBuilder::max_connections`] says
/// otherwise.
const DEFAULT_MAX_CONNECTIONS: u32 = 200;

/// Options for starting a [`MariaDbCluster`], from [`MariaDbCluster::builder`]; a consuming
/// builder.
///
/// [`MariaDbCluster::start(n)`](MariaDbCluster::start) is
/// `MariaDbCluster::builder().replicas(n).start()`.
///
/// ```no_run
/// use rds_balancer_testkit::MariaDbCluster;
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = MariaDbCluster::builder()
///     .replicas(2)
///     .max_connections(20)
///     .start()?;
/// assert_eq!(cluster.replicas().len(), 2);
/// assert_eq!(cluster.replicas()[1].sql("", "SELECT @@max_connections")?, "20");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct MariaDbClusterBuilder {
    pub(super) replicas: usize,
    pub(super) max_connections: u32,
}

impl Default for MariaDbClusterBuilder {
    fn default() -> Self {
        MariaDbClusterBuilder {
            replicas: 0,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl MariaDbClusterBuilder {
    /// The number of binary-log replicas beside the primary.
    ///
    /// Default: 0 (a lone primary).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::MariaDbCluster::builder().replicas(2).start()?;
    /// assert_eq!(cluster.replicas().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// The servers' `max_connections` (the same on every node). MariaDB lets one connection
    /// more in for a user with `SUPER` (`CONNECTION ADMIN`), such as the kit's `root`, so the kit
    /// can still connect when a test has used the others up; each replica's replication
    /// connection takes one of its primary's. MariaDB raises values below 10 to 10
    /// ([`MariaDbCluster::max_connections`] still says what was asked).
    ///
    /// Default: 200.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::MariaDbCluster::builder()
    ///     .max_connections(20)
    ///     .start()?;
    /// assert_eq!(cluster.sql("", "SELECT @@max_connections")?, "20");
    /// assert_eq!(cluster.max_connections(), 20);
    /// # Ok(()) }
    /// ```
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Starts the cluster; see [`MariaDbCluster::start`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::MariaDbCluster::builder().replicas(1).start()?;
    /// assert_eq!(cluster.replicas()[0].sql("", "SELECT @@read_only")?, "1");
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Result<MariaDbCluster, Error> {
        MariaDbCluster::start_with(self)
    }
}
