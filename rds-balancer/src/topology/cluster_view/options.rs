//! [`ClusterViewSourceBuilder`]: where a [`ClusterViewSource`] asks, and how it names hosts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DatabaseConnectionType, DbBackend};

use super::query::{HostPattern, default_port, topology_sql};
use super::{ClusterViewSource, Inner};
use crate::error::{Error, Result};

/// Default of [`ClusterViewSourceBuilder::query_timeout`].
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a [`ClusterViewSource`]; made by [`ClusterViewSource::builder`].
///
/// ```no_run
/// use std::time::Duration;
///
/// use rds_balancer::ClusterViewSource;
/// use sea_orm::Database;
///
/// # async fn run() -> rds_balancer::Result<()> {
/// let cluster = Database::connect("postgres://app@orders.cluster-xyz.eu-west-1.rds.amazonaws.com/app").await?;
/// let reader = Database::connect("postgres://app@orders.cluster-ro-xyz.eu-west-1.rds.amazonaws.com/app").await?;
/// let source = ClusterViewSource::builder(cluster)
///     .host_pattern("?.xyz.eu-west-1.rds.amazonaws.com")
///     .port(5432)
///     .query_timeout(Duration::from_millis(500))
///     .fallback_connection(reader)
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClusterViewSourceBuilder {
    connections: Vec<DatabaseConnection>,
    host_pattern: Option<String>,
    port: Option<u16>,
    query_timeout: Duration,
}

impl fmt::Debug for ClusterViewSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterViewSourceBuilder")
            .field("connections", &self.connections.len())
            .field("host_pattern", &self.host_pattern)
            .field("port", &self.port)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

impl ClusterViewSourceBuilder {
    pub(super) fn new(connection: DatabaseConnection) -> Self {
        ClusterViewSourceBuilder {
            connections: vec![connection],
            host_pattern: None,
            port: None,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// The host name of every instance: `pattern` with its one `?` replaced by the instance's
    /// server id, e.g. `?.cluster-xyz.us-east-1.rds.amazonaws.com` (the instance endpoints'
    /// common suffix, without `cluster-` for Aurora: `?.xyz.us-east-1.rds.amazonaws.com`).
    ///
    /// Required. [`build`](Self::build) fails with [`Error::Config`] unless it holds exactly one
    /// `?`.
    ///
    /// ```
    /// # let conn = sea_orm::DatabaseConnection::default();
    /// let builder = rds_balancer::ClusterViewSource::builder(conn)
    ///     .host_pattern("?.xyz.us-east-1.rds.amazonaws.com");
    /// # drop(builder);
    /// ```
    pub fn host_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.host_pattern = Some(pattern.into());
        self
    }

    /// The port of every instance.
    ///
    /// Default: the backend's default port, 5432 for PostgreSQL and 3306 for MySQL.
    ///
    /// ```
    /// # let conn = sea_orm::DatabaseConnection::default();
    /// let builder = rds_balancer::ClusterViewSource::builder(conn).port(6432);
    /// # drop(builder);
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How long one connection may take to answer the topology query (acquiring a pooled
    /// connection included) before the next connection is tried, so that a hung host cannot
    /// stall a poll. A fetch takes at most this long per connection.
    ///
    /// Default: 2 s. Zero is refused by [`build`](Self::build).
    ///
    /// ```
    /// # let conn = sea_orm::DatabaseConnection::default();
    /// use std::time::Duration;
    ///
    /// let builder =
    ///     rds_balancer::ClusterViewSource::builder(conn).query_timeout(Duration::from_millis(300));
    /// # drop(builder);
    /// ```
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// Another connection to ask when the ones before it fail or time out, e.g. one to the
    /// cluster's reader endpoint or to a known instance, so that the source keeps answering
    /// while the writer fails over. May be called several times: connections are tried in the
    /// order given, after the one passed to [`ClusterViewSource::builder`], and the first that
    /// answers wins. Every connection must use the same backend.
    ///
    /// Default: none.
    ///
    /// ```
    /// # let conn = sea_orm::DatabaseConnection::default();
    /// # let reader_endpoint = sea_orm::DatabaseConnection::default();
    /// let builder = rds_balancer::ClusterViewSource::builder(conn)
    ///     .fallback_connection(reader_endpoint);
    /// # drop(builder);
    /// ```
    pub fn fallback_connection(mut self, connection: DatabaseConnection) -> Self {
        self.connections.push(connection);
        self
    }

    /// The source.
    ///
    /// Fails with [`Error::Config`] when the host pattern is missing or does not hold exactly
    /// one `?`, when the query timeout is zero, or when a connection is not a PostgreSQL or
    /// MySQL one (a disconnected `DatabaseConnection::default()` included) or the connections
    /// mix backends. It sends nothing to the database.
    ///
    /// ```
    /// use rds_balancer::{ClusterViewSource, ErrorKind};
    ///
    /// let err = ClusterViewSource::builder(sea_orm::DatabaseConnection::default())
    ///     .host_pattern("no-placeholder.example")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// ```
    pub fn build(self) -> Result<ClusterViewSource> {
        let pattern = self.host_pattern.ok_or(Error::Config(
            "the cluster view source needs a host_pattern (such as `?.xyz.us-east-1.rds.amazonaws.com`)"
                .into(),
        ))?;
        let pattern = HostPattern::parse(&pattern).ok_or_else(|| {
            Error::Config(
                format!("host_pattern `{pattern}` must contain exactly one `?` (the server id)")
                    .into(),
            )
        })?;
        if self.query_timeout.is_zero() {
            return Err(Error::Config(
                "the cluster view query_timeout must be more than zero".into(),
            ));
        }
        let mut backend = None;
        for (index, connection) in self.connections.iter().enumerate() {
            let this = backend_of(connection).ok_or_else(|| {
                Error::Config(
                    format!(
                        "connection {} of the cluster view source is not a connected PostgreSQL or MySQL pool",
                        index + 1
                    )
                    .into(),
                )
            })?;
            match backend {
                Some(first) if first != this => {
                    return Err(Error::Config(
                        "the cluster view source's connections mix PostgreSQL and MySQL".into(),
                    ));
                }
                _ => backend = Some(this),
            }
        }
        let (Some(backend), Some(sql)) = (backend, backend.and_then(topology_sql)) else {
            return Err(Error::Config(
                "the cluster view source needs a connection".into(),
            ));
        };
        let port = match self.port {
            Some(port) => port,
            None => default_port(backend)
                .ok_or(Error::Config("the cluster view source needs a port".into()))?,
        };
        Ok(ClusterViewSource {
            inner: Arc::new(Inner {
                connections: self.connections,
                backend,
                sql,
                pattern,
                port,
                query_timeout: self.query_timeout,
                last_answered: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }
}

/// The backend of a connection the cluster view can query (never panics, unlike
/// `DatabaseConnection::get_database_backend` on a disconnected one).
fn backend_of(connection: &DatabaseConnection) -> Option<DbBackend> {
    match &connection.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => Some(DbBackend::Postgres),
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => Some(DbBackend::MySql),
        _ => None,
    }
}
