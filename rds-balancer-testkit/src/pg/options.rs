//! How to start a [`PgCluster`]: the number of replicas, TLS, `max_connections`.

use super::PgCluster;
use crate::error::Error;

/// The `max_connections` of a cluster unless [`PgClusterBuilder::max_connections`] says
/// otherwise.
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 200;

/// Options for starting a [`PgCluster`], from [`PgCluster::builder`]; a consuming builder.
///
/// [`PgCluster::start(n)`](PgCluster::start) is `PgCluster::builder().replicas(n).start()`.
///
/// ```no_run
/// use rds_balancer_testkit::PgCluster;
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = PgCluster::builder()
///     .replicas(2)
///     .tls(true)
///     .max_connections(20)
///     .start()?;
/// let ca = cluster.ca_path().expect("a TLS cluster has a CA");
/// let conninfo = format!(
///     "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
///     cluster.primary().port(),
///     ca.display(),
/// );
/// let ssl = cluster.psql_conninfo(
///     &conninfo,
///     "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
///     std::time::Duration::from_secs(10),
/// )?;
/// assert_eq!(ssl, "t");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct PgClusterBuilder {
    pub(super) replicas: usize,
    pub(super) tls: bool,
    pub(super) require_tls: bool,
    pub(super) max_connections: u32,
}

impl Default for PgClusterBuilder {
    fn default() -> Self {
        PgClusterBuilder {
            replicas: 0,
            tls: false,
            require_tls: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl PgClusterBuilder {
    /// The number of streaming replicas beside the primary.
    ///
    /// Default: 0 (a lone primary).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::PgCluster::builder().replicas(2).start()?;
    /// assert_eq!(cluster.replicas().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Whether the servers accept TLS (`ssl = on`), with a certificate signed by a CA that the
    /// kit generates for this cluster (with the `openssl` command-line tool, which must be on
    /// `PATH`). Clients verify it with [`PgCluster::ca_path`] as root certificate, `sslmode=
    /// verify-full` included: the certificate is valid for `localhost`, `127.0.0.1` and
    /// `*.aaaaaaaaaa.us-east-1.rds.amazonaws.com` (the instance host names of
    /// [`RdsEmulator`](crate::RdsEmulator), dialled through
    /// [`resolve_to_loopback`](crate::resolve_to_loopback)). Every node, replicas included,
    /// serves the same certificate. Plain connections stay allowed unless
    /// [`require_tls`](Self::require_tls) is set.
    ///
    /// Default: `false` (no TLS; [`PgCluster::ca_path`] is `None`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::PgCluster::builder().tls(true).start()?;
    /// assert!(cluster.ca_path().is_some());
    /// assert_eq!(cluster.psql("postgres", "SHOW ssl")?, "on");
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Whether TCP connections must use TLS: `pg_hba.conf` then has `hostssl` lines only, so a
    /// client with `sslmode=disable` is refused (`no pg_hba.conf entry ... no encryption`).
    /// `true` implies [`tls(true)`](Self::tls). The kit's own connections (psql, replication)
    /// use `sslmode=prefer`, so they use TLS then.
    ///
    /// Default: `false`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::PgCluster::builder().require_tls(true).start()?;
    /// let plain = format!(
    ///     "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
    ///     cluster.primary().port()
    /// );
    /// let timeout = std::time::Duration::from_secs(10);
    /// assert!(cluster.psql_conninfo(&plain, "SELECT 1", timeout).is_err());
    /// # Ok(()) }
    /// ```
    pub fn require_tls(mut self, require_tls: bool) -> Self {
        self.require_tls = require_tls;
        self
    }

    /// The servers' `max_connections` (the same on every node: a replica needs at least its
    /// primary's). PostgreSQL keeps `superuser_reserved_connections` (3) of them for superusers,
    /// so other roles get `max_connections - 3` connections, and the kit's own `postgres`
    /// connections go on working when a test has used those up. PostgreSQL refuses to start
    /// with 3 or fewer ([`Error::ServerStart`] with its log).
    ///
    /// Default: 200.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::PgCluster::builder().max_connections(20).start()?;
    /// assert_eq!(cluster.psql("postgres", "SHOW max_connections")?, "20");
    /// assert_eq!(cluster.max_connections(), 20);
    /// # Ok(()) }
    /// ```
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Starts the cluster; see [`PgCluster::start`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::PgCluster::builder().replicas(1).start()?;
    /// assert_eq!(cluster.replicas()[0].psql("postgres", "SELECT pg_is_in_recovery()")?, "t");
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Result<PgCluster, Error> {
        PgCluster::start_with(self)
    }

    /// Whether the servers serve TLS.
    pub(super) fn serves_tls(&self) -> bool {
        self.tls || self.require_tls
    }
}
