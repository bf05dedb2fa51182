//! [`ClusterViewSourceBuilder`]: where a [`ClusterViewSource`] asks, and how it names hosts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DatabaseConnectionType, DbBackend};

use super::query::{HostPattern, dialect};
use super::relation::{Refusal, StatusRelation};
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
    status_relation: Option<String>,
}

impl fmt::Debug for ClusterViewSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterViewSourceBuilder")
            .field("connections", &self.connections.len())
            .field("host_pattern", &self.host_pattern)
            .field("port", &self.port)
            .field("query_timeout", &self.query_timeout)
            .field("status_relation", &self.status_relation)
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
            status_relation: None,
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

    /// Reads the topology from `relation`, a table, view or (PostgreSQL) set-returning function
    /// of the same shape as Aurora's, instead of Aurora's own: `aurora_replica_status()` on
    /// PostgreSQL, `information_schema.replica_host_status` on MySQL.
    ///
    /// For a server that reports the topology under another name: a database proxy or a
    /// monitoring schema that exposes Aurora's view elsewhere, or a test server that is not
    /// Aurora, where the view is a stand-in that the test fills (MySQL cannot create a table in
    /// `information_schema`). The relation needs at least the columns the query reads, with
    /// Aurora's names and meaning: `server_id`, `session_id`, `cpu`, `replica_lag_in_msec` and
    /// `last_update_timestamp` on PostgreSQL; `SERVER_ID`, `SESSION_ID`, `CPU`,
    /// `REPLICA_LAG_IN_MILLISECONDS` and `LAST_UPDATE_TIMESTAMP` on MySQL. The rules of
    /// [`ClusterViewSource`] (writer row, staleness) apply to its rows unchanged.
    ///
    /// `relation` is a name, not SQL: `name` or `schema.name` (on MySQL the schema is the
    /// database), or on PostgreSQL a call without arguments, `name()` or `schema.name()`. Each
    /// part is an unquoted identifier of ASCII letters, digits and `_` that does not start with
    /// a digit, at most 63 bytes; the server's rules for unquoted names apply (PostgreSQL folds
    /// them to lower case, an unqualified name is looked up in the connection's search path or
    /// database). [`build`](Self::build) refuses anything else, including an empty name and a
    /// function call on MySQL, with [`Error::Config`]; a name that is well formed but names
    /// nothing fails each fetch with the server's error.
    ///
    /// Default: Aurora's relation for the connections' backend.
    ///
    /// ```
    /// use rds_balancer::{ClusterViewSource, ErrorKind};
    /// use sea_orm::{ConnectOptions, Database};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // A lazy pool dials nothing until the first fetch.
    /// let mut options = ConnectOptions::new("mysql://app@proxy.internal/app");
    /// options.connect_lazy(true);
    /// let cluster = Database::connect(options).await?;
    ///
    /// let source = ClusterViewSource::builder(cluster.clone())
    ///     .host_pattern("?.xyz.us-east-1.rds.amazonaws.com")
    ///     .status_relation("monitoring.replica_host_status")
    ///     .build()?;
    /// assert_eq!(source.status_relation(), "monitoring.replica_host_status");
    ///
    /// // SQL is not a name.
    /// let err = ClusterViewSource::builder(cluster)
    ///     .host_pattern("?.xyz.us-east-1.rds.amazonaws.com")
    ///     .status_relation("replica_host_status; DROP TABLE orders")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// # Ok::<(), rds_balancer::Error>(()) }).unwrap();
    /// ```
    pub fn status_relation(mut self, relation: impl Into<String>) -> Self {
        self.status_relation = Some(relation.into());
        self
    }

    /// Builds the source. It sends nothing to the database; the topology query is put together
    /// here, once.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the host pattern is missing or does not hold exactly one `?`,
    /// when the query timeout is zero, when a connection is not a PostgreSQL or
    /// MySQL one (a disconnected `DatabaseConnection::default()` included) or the connections
    /// mix backends, or when the [status relation](Self::status_relation) is not a name the
    /// backend can select from.
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
        let (Some(backend), Some(dialect)) = (backend, backend.and_then(dialect)) else {
            return Err(Error::Config(
                "the cluster view source needs a connection".into(),
            ));
        };
        let relation = match &self.status_relation {
            None => dialect.aurora_relation.clone(),
            Some(name) => StatusRelation::parse(name, dialect.selects_from_functions)
                .map_err(|refusal| refused(name, refusal))?,
        };
        let port = self.port.unwrap_or(dialect.default_port);
        Ok(ClusterViewSource {
            inner: Arc::new(Inner {
                connections: self.connections,
                backend,
                sql: dialect.sql(&relation),
                relation,
                pattern,
                port,
                query_timeout: self.query_timeout,
                last_answered: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }
}

/// The [`Error::Config`] for a refused status relation.
fn refused(name: &str, refusal: Refusal) -> Error {
    let message = match refusal {
        Refusal::Empty => "the cluster view status_relation is empty".to_owned(),
        Refusal::NotAName => format!(
            "the cluster view status_relation {name:?} is not a plain name: give `name` or \
             `schema.name` (or on PostgreSQL `name()` or `schema.name()`), each part ASCII \
             letters, digits and `_`, not starting with a digit, at most 63 bytes"
        ),
        Refusal::FunctionCall => format!(
            "the cluster view status_relation {name:?} is a function call, which MySQL cannot \
             select from: name a table or view"
        ),
    };
    Error::Config(message.into())
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
