//! [`ClusterViewSource`]: the cluster's topology as the database itself reports it (Aurora
//! PostgreSQL's `aurora_replica_status()`, Aurora MySQL's
//! `information_schema.replica_host_status`, or another relation of the same shape), as the AWS
//! Advanced JDBC and Python wrappers read it.

mod options;
mod query;
mod relation;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement};

pub use self::options::ClusterViewSourceBuilder;
use self::query::{HostPattern, Row, assemble};
use self::relation::StatusRelation;
use super::{Topology, TopologySource};
use crate::error::{Error, Result};

/// The `operation` of the [`Error::Topology`] a failed fetch returns.
const OPERATION: &str = "cluster view";

/// A [`TopologySource`] that asks the database for the cluster's members: no IAM permission,
/// no AWS API call, one cheap query, so it can be polled every 100 ms during a failover.
///
/// Each [`fetch`](TopologySource::fetch) runs the backend's topology query on the connection
/// given to [`builder`](Self::builder) (typically one to the cluster endpoint), and, when it
/// fails or does not answer within the [query timeout](ClusterViewSourceBuilder::query_timeout),
/// on each [fallback connection](ClusterViewSourceBuilder::fallback_connection) in turn: the
/// first that answers wins, and is asked first next time (during a failover, a dead writer
/// does not cost every fetch a timeout).
///
/// - Aurora PostgreSQL: `aurora_replica_status()`; Aurora MySQL:
///   `information_schema.replica_host_status`; or the
///   [status relation](ClusterViewSourceBuilder::status_relation) given instead, which the
///   query is built around once, in [`build`](ClusterViewSourceBuilder::build).
/// - The row whose `session_id` is `MASTER_SESSION_ID` is the writer; the others are readers.
///   Readers' rows not updated for more than 300 s are left out (the writer's never is), as the
///   AWS wrappers do. With no writer row the topology has no writer, and the library keeps the
///   current one. Of two writer rows (mid-failover) the most recently updated wins.
/// - Each instance's host is the [host pattern](ClusterViewSourceBuilder::host_pattern) with
///   its `?` replaced by the server id; every instance has the same
///   [port](ClusterViewSourceBuilder::port) and the status [`AVAILABLE`](crate::AVAILABLE); the
///   replica lag and CPU are carried when reported (a NULL or negative lag stays unknown).
///   With [`max_replica_lag`](crate::RdsConnectionBuilder::max_replica_lag) set, a reader
///   reported beyond it gets no reads until a later fetch reports it within.
/// - Rows with a NULL or empty server id, or one that cannot be part of a host name, are
///   skipped; NULLs and values of unexpected types in the other columns are ignored.
///
/// When no connection answers, the error is an [`Error::Topology`] whose operation is
/// `cluster view`, whose message names what each connection said, and whose code is the
/// SQLSTATE of the last connection's database error (where the relation does not exist, i.e.
/// not Aurora: `42883` on PostgreSQL, `42S02` on MySQL), or `None` after a timeout or a
/// connection failure.
///
/// Cloning is cheap: clones share the connections. `Debug` shows the host pattern, port,
/// timeout, status relation and number of connections, never a connection's details.
///
/// ```no_run
/// use rds_balancer::{ClusterViewSource, TopologySource};
/// use sea_orm::Database;
///
/// # async fn run() -> rds_balancer::Result<()> {
/// let cluster =
///     Database::connect("postgres://app@orders.cluster-xyz.eu-west-1.rds.amazonaws.com/app")
///         .await?;
/// let source = ClusterViewSource::builder(cluster)
///     .host_pattern("?.xyz.eu-west-1.rds.amazonaws.com")
///     .build()?;
/// let topology = source.fetch().await?;
/// for instance in &topology.instances {
///     println!(
///         "{} {} at {:?}, lag {:?}",
///         if instance.is_writer { "writer" } else { "reader" },
///         instance.id,
///         instance.address(),
///         instance.replica_lag,
///     );
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClusterViewSource {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Vec<DatabaseConnection>,
    backend: DbBackend,
    /// The topology query, built once.
    sql: String,
    relation: StatusRelation,
    pattern: HostPattern,
    port: u16,
    query_timeout: Duration,
    /// The connection that answered last: asked first.
    last_answered: AtomicUsize,
}

impl fmt::Debug for ClusterViewSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterViewSource")
            .field("backend", &self.inner.backend)
            .field("host_pattern", &self.host_pattern())
            .field("port", &self.inner.port)
            .field("query_timeout", &self.inner.query_timeout)
            .field("status_relation", &self.status_relation())
            .field("connections", &self.inner.connections.len())
            .finish()
    }
}

/// Why one connection did not answer.
struct Failure {
    code: Option<String>,
    message: String,
}

impl ClusterViewSource {
    /// A builder for the source that queries `connection` (typically a connection to the
    /// cluster endpoint, or any instance of the cluster).
    ///
    /// ```
    /// use rds_balancer::ClusterViewSource;
    ///
    /// # let connection = sea_orm::DatabaseConnection::default();
    /// let builder =
    ///     ClusterViewSource::builder(connection).host_pattern("?.xyz.us-east-1.rds.amazonaws.com");
    /// # drop(builder);
    /// ```
    pub fn builder(connection: DatabaseConnection) -> ClusterViewSourceBuilder {
        ClusterViewSourceBuilder::new(connection)
    }

    /// The host pattern instance hosts are made from.
    ///
    /// ```
    /// use rds_balancer::ClusterViewSource;
    /// use sea_orm::{ConnectOptions, Database};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // A lazy pool dials nothing until the first fetch.
    /// let mut options = ConnectOptions::new("postgres://app@orders.cluster-xyz.us-east-1.rds.amazonaws.com/app");
    /// options.connect_lazy(true);
    /// let source = ClusterViewSource::builder(Database::connect(options).await?)
    ///     .host_pattern("?.xyz.us-east-1.rds.amazonaws.com")
    ///     .build()?;
    /// assert_eq!(source.host_pattern(), "?.xyz.us-east-1.rds.amazonaws.com");
    /// # Ok::<(), rds_balancer::Error>(()) }).unwrap();
    /// ```
    pub fn host_pattern(&self) -> &str {
        self.inner.pattern.as_str()
    }

    /// The port every instance is given.
    ///
    /// ```
    /// use rds_balancer::ClusterViewSource;
    /// use sea_orm::{ConnectOptions, Database};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // A lazy pool dials nothing until the first fetch.
    /// let mut options = ConnectOptions::new("postgres://app@orders.cluster-xyz.us-east-1.rds.amazonaws.com/app");
    /// options.connect_lazy(true);
    /// let source = ClusterViewSource::builder(Database::connect(options).await?)
    ///     .host_pattern("?.xyz.us-east-1.rds.amazonaws.com")
    ///     .build()?;
    /// assert_eq!(source.port(), 5432);
    /// # Ok::<(), rds_balancer::Error>(()) }).unwrap();
    /// ```
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The backend of its connections, which decides the query.
    ///
    /// ```
    /// use rds_balancer::ClusterViewSource;
    /// use sea_orm::{ConnectOptions, Database};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // A lazy pool dials nothing until the first fetch.
    /// let mut options = ConnectOptions::new("postgres://app@orders.cluster-xyz.us-east-1.rds.amazonaws.com/app");
    /// options.connect_lazy(true);
    /// let source = ClusterViewSource::builder(Database::connect(options).await?)
    ///     .host_pattern("?.xyz.us-east-1.rds.amazonaws.com")
    ///     .build()?;
    /// assert_eq!(source.backend(), sea_orm::DbBackend::Postgres);
    /// # Ok::<(), rds_balancer::Error>(()) }).unwrap();
    /// ```
    pub fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// The relation the topology is read from: the
    /// [status relation](ClusterViewSourceBuilder::status_relation) given, else Aurora's
    /// (`aurora_replica_status()` on PostgreSQL, `information_schema.replica_host_status` on
    /// MySQL).
    ///
    /// ```
    /// use rds_balancer::ClusterViewSource;
    /// use sea_orm::{ConnectOptions, Database};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // A lazy pool dials nothing until the first fetch.
    /// let mut options = ConnectOptions::new("mysql://app@orders.cluster-xyz.us-east-1.rds.amazonaws.com/app");
    /// options.connect_lazy(true);
    /// let source = ClusterViewSource::builder(Database::connect(options).await?)
    ///     .host_pattern("?.xyz.us-east-1.rds.amazonaws.com")
    ///     .build()?;
    /// assert_eq!(source.status_relation(), "information_schema.replica_host_status");
    /// # Ok::<(), rds_balancer::Error>(()) }).unwrap();
    /// ```
    pub fn status_relation(&self) -> &str {
        self.inner.relation.as_str()
    }

    async fn query(&self, connection: &DatabaseConnection) -> Result<Vec<Row>, Failure> {
        let statement = Statement::from_string(self.inner.backend, self.inner.sql.as_str());
        let timeout = self.inner.query_timeout;
        match tokio::time::timeout(timeout, connection.query_all_raw(statement)).await {
            Ok(Ok(rows)) => Ok(rows.iter().map(Row::decode).collect()),
            Ok(Err(err)) => Err(Failure {
                code: sqlstate(&err),
                message: err.to_string(),
            }),
            Err(_) => Err(Failure {
                code: None,
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }
}

#[async_trait::async_trait]
impl TopologySource for ClusterViewSource {
    async fn fetch(&self) -> Result<Topology> {
        let total = self.inner.connections.len();
        let first = self.inner.last_answered.load(Ordering::Relaxed) % total.max(1);
        let mut messages = Vec::new();
        let mut code = None;
        let order = (first..total).chain(0..first);
        for (index, connection) in order.map(|i| (i, &self.inner.connections[i])) {
            match self.query(connection).await {
                Ok(rows) => {
                    self.inner.last_answered.store(index, Ordering::Relaxed);
                    if index > 0 {
                        tracing::debug!(
                            connection = index + 1,
                            "cluster view answered by a fallback connection"
                        );
                    }
                    return Ok(assemble(rows, &self.inner.pattern, self.inner.port));
                }
                Err(failure) => {
                    tracing::debug!(
                        connection = index + 1,
                        error = %failure.message,
                        "cluster view query failed"
                    );
                    code = failure.code;
                    messages.push(format!(
                        "connection {} of {total}: {}",
                        index + 1,
                        failure.message
                    ));
                }
            }
        }
        Err(Error::Topology {
            operation: OPERATION.into(),
            code,
            message: messages.join("; "),
        })
    }
}

/// The SQLSTATE of a database error, when the server sent one.
fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Query(RuntimeErr::SqlxError(sqlx))
        | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
        | DbErr::Conn(RuntimeErr::SqlxError(sqlx)) => sqlx
            .as_database_error()
            .and_then(|db| db.code())
            .map(|code| code.into_owned()),
        _ => None,
    }
}
