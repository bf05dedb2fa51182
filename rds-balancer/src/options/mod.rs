//! [`RdsConnectionBuilder`]: the hosts, pool options and routing options of an
//! [`RdsConnection`](crate::RdsConnection).

mod build;
mod health;
mod pool;

pub use self::pool::SslMode;
pub(crate) use self::pool::{PoolOptions, Tls};

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::bluegreen::BlueGreenOptions;
use crate::causal::ReadYourWrites;
use crate::classify::Classifier;
#[cfg(doc)]
use crate::connection::RdsConnection;
use crate::credentials::CredentialProvider;
use crate::health::HealthOptions;
use crate::pool::Origin;
use crate::route::ReaderSelection;
use crate::topology::{EndpointResolver, ReaderFilter};

/// Where a host's pool comes from.
enum HostSource {
    /// A database URL; it may hold a password, so it is never printed.
    Url(String),
    /// A pool the caller opened.
    Connection(DatabaseConnection),
}

impl HostSource {
    /// How the host is named in logs and errors: `host:port`, never credentials.
    fn name(&self, fallback: &str) -> String {
        match self {
            HostSource::Url(url) => endpoint_of(url),
            HostSource::Connection(_) => fallback.to_owned(),
        }
    }

    /// Who opens (and so closes) the host's pool.
    fn origin(&self) -> Origin {
        match self {
            HostSource::Url(_) => Origin::Configured,
            HostSource::Connection(_) => Origin::Handed,
        }
    }
}

/// The `host:port` of a database URL, without user name or password.
pub(crate) fn endpoint_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => "<no host>".to_owned(),
        },
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// Builds an [`RdsConnection`] from a writer and any number of readers.
///
/// Hosts are given as database URLs (the builder opens a pool for each) or as
/// [`DatabaseConnection`]s you opened yourself. Created by [`RdsConnection::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use rds_balancer::{RdsConnection, ReaderSelection};
///
/// # async fn demo() -> rds_balancer::Result<()> {
/// let db = RdsConnection::builder()
///     .writer("postgres://app@writer.cluster-x.us-east-1.rds.amazonaws.com/app")
///     .reader("postgres://app@reader-1.x.us-east-1.rds.amazonaws.com/app")
///     .reader("postgres://app@reader-2.x.us-east-1.rds.amazonaws.com/app")
///     .max_connections(20)
///     .acquire_timeout(Duration::from_secs(5))
///     .reader_selection(ReaderSelection::PowerOfTwoChoices)
///     .build()
///     .await?;
/// # let _ = db; Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RdsConnectionBuilder {
    writer: Option<HostSource>,
    readers: Vec<HostSource>,
    pool: PoolOptions,
    fallback_to_writer: bool,
    read_your_writes: ReadYourWrites,
    max_replica_lag: Option<Duration>,
    drain_timeout: Duration,
    endpoint_resolver: Option<Arc<dyn EndpointResolver>>,
    filter: ReaderFilter,
    keep_existing_write_host: bool,
    reader_selection: ReaderSelection,
    classifier: Classifier,
    health: HealthOptions,
    tls: Tls,
    credentials: Option<Arc<dyn CredentialProvider>>,
    max_total_connections: Option<u32>,
    lazy: bool,
    blue_green: Option<BlueGreenOptions>,
}

impl std::fmt::Debug for RdsConnectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let readers: Vec<String> = self
            .readers
            .iter()
            .map(|r| r.name("<connection>"))
            .collect();
        f.debug_struct("RdsConnectionBuilder")
            .field(
                "writer",
                &self.writer.as_ref().map(|w| w.name("<connection>")),
            )
            .field("readers", &readers)
            .field("pool", &self.pool)
            .field("fallback_to_writer", &self.fallback_to_writer)
            .field("read_your_writes", &self.read_your_writes)
            .field("max_replica_lag", &self.max_replica_lag)
            .field("reader_selection", &self.reader_selection)
            .field("classifier", &self.classifier)
            .field("endpoint_resolver", &self.endpoint_resolver.is_some())
            .field("filter", &self.filter)
            .field("keep_existing_write_host", &self.keep_existing_write_host)
            .field("health", &self.health)
            .field("tls", &self.tls)
            .field("credentials", &self.credentials.is_some())
            .field("max_total_connections", &self.max_total_connections)
            .field("connect_lazy", &self.lazy)
            .field("blue_green", &self.blue_green)
            .finish()
    }
}

impl Default for RdsConnectionBuilder {
    fn default() -> Self {
        RdsConnectionBuilder {
            writer: None,
            readers: Vec::new(),
            pool: PoolOptions::default(),
            fallback_to_writer: true,
            read_your_writes: ReadYourWrites::default(),
            max_replica_lag: None,
            drain_timeout: Duration::from_secs(30),
            endpoint_resolver: None,
            filter: ReaderFilter::default(),
            keep_existing_write_host: false,
            reader_selection: ReaderSelection::default(),
            classifier: Classifier::default(),
            health: HealthOptions::default(),
            tls: Tls::default(),
            credentials: None,
            max_total_connections: None,
            lazy: false,
            blue_green: None,
        }
    }
}

impl RdsConnectionBuilder {
    /// The writer's database URL. Required (this or [`writer_connection`](Self::writer_connection)).
    pub fn writer(mut self, url: impl Into<String>) -> Self {
        self.writer = Some(HostSource::Url(url.into()));
        self
    }

    /// Uses a pool you opened as the writer.
    pub fn writer_connection(mut self, conn: DatabaseConnection) -> Self {
        self.writer = Some(HostSource::Connection(conn));
        self
    }

    /// Adds a reader by database URL. Default: no readers (every statement goes to the writer).
    pub fn reader(mut self, url: impl Into<String>) -> Self {
        self.readers.push(HostSource::Url(url.into()));
        self
    }

    /// Adds a pool you opened as a reader.
    pub fn reader_connection(mut self, conn: DatabaseConnection) -> Self {
        self.readers.push(HostSource::Connection(conn));
        self
    }

    /// Maximum connections of each pool the builder opens. Default: SeaORM's (sqlx's 10).
    pub fn max_connections(mut self, value: u32) -> Self {
        self.pool.max_connections = Some(value);
        self
    }

    /// Minimum idle connections of each pool the builder opens. Default: SeaORM's (0).
    pub fn min_connections(mut self, value: u32) -> Self {
        self.pool.min_connections = Some(value);
        self
    }

    /// Timeout for opening one connection. Default: SeaORM's.
    pub fn connect_timeout(mut self, value: Duration) -> Self {
        self.pool.connect_timeout = Some(value);
        self
    }

    /// How long a statement waits for a pooled connection. Default: SeaORM's (sqlx's 30 s).
    pub fn acquire_timeout(mut self, value: Duration) -> Self {
        self.pool.acquire_timeout = Some(value);
        self
    }

    /// How long a connection may sit idle before it is closed. Default: SeaORM's.
    pub fn idle_timeout(mut self, value: Duration) -> Self {
        self.pool.idle_timeout = Some(value);
        self
    }

    /// The longest a connection is kept open. Default: SeaORM's.
    pub fn max_lifetime(mut self, value: Duration) -> Self {
        self.pool.max_lifetime = Some(value);
        self
    }

    /// Whether sqlx logs every statement it runs, with its SQL text (at `INFO`, slow ones at
    /// `WARN`). Statements carry user data: leave it off in production. Default: off (SeaORM's
    /// default is on).
    pub fn sqlx_logging(mut self, value: bool) -> Self {
        self.pool.sqlx_logging = value;
        self
    }

    /// What a read does when no reader is active: `true` sends it to the writer, `false` fails it
    /// with [`ErrorKind::NoActiveReaders`](crate::ErrorKind::NoActiveReaders). Default: `true`.
    pub fn fallback_to_writer(mut self, value: bool) -> Self {
        self.fallback_to_writer = value;
        self
    }

    /// How a task's reads see its own writes ([`ReadYourWrites`]): for a window after it wrote
    /// they go to the writer (a `Duration`; `Duration::ZERO` is off), or, with
    /// [`ReadYourWrites::position`], to a replica that has replayed the write. The default,
    /// [`ReadYourWrites::engine_default`], is position mode where the engine gives an exact
    /// position (PostgreSQL, MariaDB with binary logging, MySQL with GTIDs) and a 1 s window
    /// elsewhere.
    ///
    /// Position mode asks the writer for its position when `build` runs: a writer that keeps
    /// none (MariaDB without binary logging, MySQL without GTIDs) falls back to a window of
    /// [`ReadYourWrites::FALLBACK_WINDOW`] (logged as a warning); a writer that cannot be asked
    /// fails the build (the default falls back to the window instead).
    ///
    /// "A task" is the tokio task that ran the write (a request handler, typically), or the
    /// thread outside a task. Reads of other tasks are not affected; route overrides
    /// ([`with_route`](crate::with_route), `#[read_replica]`) and `/*@reader*/` hints win over
    /// it. SeaORM needs it on MySQL, which has no `RETURNING`: `ActiveModel::insert` and
    /// `update` write, then read the row back by its key, and a replica may not have it yet.
    ///
    /// ```no_run
    /// # async fn f() -> rds_balancer::Result<()> {
    /// use std::time::Duration;
    ///
    /// use rds_balancer::ReadYourWrites;
    ///
    /// let db = rds_balancer::RdsConnection::builder()
    ///     .writer("mysql://app@writer.cluster-x.us-east-1.rds.amazonaws.com/app")
    ///     .reader("mysql://app@reader-1.x.us-east-1.rds.amazonaws.com/app")
    ///     .read_your_writes(Duration::from_secs(2))
    ///     .build()
    ///     .await?;
    ///
    /// // Exact: a replica that has the write, waiting up to 50 ms for one.
    /// let exact = rds_balancer::RdsConnection::builder()
    ///     .writer("mysql://app@writer.cluster-x.us-east-1.rds.amazonaws.com/app")
    ///     .reader("mysql://app@reader-1.x.us-east-1.rds.amazonaws.com/app")
    ///     .read_your_writes(ReadYourWrites::position().max_wait(Duration::from_millis(50)))
    ///     .build()
    ///     .await?;
    /// # let _ = (db, exact); Ok(()) }
    /// ```
    pub fn read_your_writes(mut self, policy: impl Into<ReadYourWrites>) -> Self {
        self.read_your_writes = policy.into();
        self
    }

    /// Takes a reader out of read scheduling while its replica lag exceeds `max`, until it
    /// catches up (when every reader lags, reads go to the writer, or fail with
    /// `NoActiveReaders` under `fallback_to_writer(false)`). Default: off.
    ///
    /// The lag is measured from replication positions, the same way on every engine: the
    /// writer's position is sampled every `max / 4` (within 50 ms to 1 s), and a reader lags by
    /// the age of the oldest sample it has not replayed; an idle cluster reads as 0. It is
    /// shown in [`health()`](crate::RdsConnection::health) (`replica_lag_ms`, `lagging`). A
    /// writer that keeps no position (binary logging or GTIDs off, Aurora MySQL) gives nothing
    /// to measure. On Aurora PostgreSQL the positions are `aurora_replica_status()`'s LSNs.
    /// A topology's reported lag ([`Instance::replica_lag`](crate::Instance::replica_lag))
    /// counts too, on every engine: a reader lags when the measured or the reported lag says
    /// so (`reported_replica_lag_ms` in `health()`); a topology reporting none for it leaves
    /// the decision to the measured one.
    ///
    /// ```no_run
    /// # async fn f() -> rds_balancer::Result<()> {
    /// use std::time::Duration;
    ///
    /// let db = rds_balancer::RdsConnection::builder()
    ///     .writer("postgres://app@writer.cluster-x.us-east-1.rds.amazonaws.com/app")
    ///     .reader("postgres://app@reader-1.x.us-east-1.rds.amazonaws.com/app")
    ///     .max_replica_lag(Duration::from_secs(2))
    ///     .build()
    ///     .await?;
    /// # let _ = db; Ok(()) }
    /// ```
    pub fn max_replica_lag(mut self, max: Duration) -> Self {
        self.max_replica_lag = Some(max);
        self
    }

    /// Rides through blue/green deployment switchovers: a monitor reads the deployment's
    /// status from the database's own metadata, and while the switchover is in progress
    /// statements wait (up to [`BlueGreenOptions::connect_timeout`]) instead of failing. Inert
    /// on a server without blue/green metadata. Default: off.
    ///
    /// ```no_run
    /// # async fn f() -> rds_balancer::Result<()> {
    /// use rds_balancer::{BlueGreenOptions, RdsConnection};
    ///
    /// let db = RdsConnection::builder()
    ///     .writer("postgres://app@app.cluster-abc.us-east-1.rds.amazonaws.com/app")
    ///     .blue_green(BlueGreenOptions::new().bgd_id("app"))
    ///     .build()
    ///     .await?;
    /// if let Some(status) = db.blue_green() {
    ///     tracing::info!(phase = %status.phase, "blue/green");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn blue_green(mut self, options: BlueGreenOptions) -> Self {
        self.blue_green = Some(options);
        self
    }

    /// How long a host that leaves service (a reader removed from the topology, a replaced
    /// writer) may take to finish the statements in flight on it before its pool is closed.
    /// It gets no new statements meanwhile. Default: 30 s.
    pub fn drain_timeout(mut self, value: Duration) -> Self {
        self.drain_timeout = value;
        self
    }

    /// Maps the endpoints a topology reports to the addresses dialled (tunnels, local test
    /// clusters). Default: none, the endpoints are dialled as reported.
    pub fn endpoint_resolver(mut self, resolver: impl EndpointResolver) -> Self {
        self.endpoint_resolver = Some(Arc::new(resolver));
        self
    }

    /// Only readers in these failover promotion tiers take reads when following a topology
    /// (for example keep tier 0, the failover target, free of read load with `1..=15`).
    /// Default: every tier.
    pub fn include_promotion_tiers(mut self, tiers: impl IntoIterator<Item = i32>) -> Self {
        self.filter.include_promotion_tiers = Some(tiers.into_iter().collect());
        self
    }

    /// Instances (by identifier) that never take reads when following a topology, such as an
    /// analytics replica. Default: none.
    pub fn exclude_instance_identifiers<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.filter.exclude_instance_identifiers = ids.into_iter().map(Into::into).collect();
        self
    }

    /// When following a topology, keep the writer given to the builder (an RDS Proxy or the
    /// cluster endpoint, say) instead of switching to the writer instance the topology names.
    /// Default: `false`, the writer follows the cluster's writer.
    pub fn keep_existing_write_host(mut self, value: bool) -> Self {
        self.keep_existing_write_host = value;
        self
    }

    /// How a reader is chosen. Default: [`ReaderSelection::PowerOfTwoChoices`].
    pub fn reader_selection(mut self, value: ReaderSelection) -> Self {
        self.reader_selection = value;
        self
    }

    /// The statement classifier, e.g. one that knows your own side-effect functions.
    /// Default: [`Classifier::new()`].
    pub fn classifier(mut self, value: Classifier) -> Self {
        self.classifier = value;
        self
    }

    /// TLS for every pool the builder (or a topology) opens, over the URL's `sslmode`.
    /// Default: the URL's (PostgreSQL's default is `prefer`: use `VerifyFull` with RDS).
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.tls.mode = Some(mode);
        self
    }

    /// The root certificate(s) TLS verifies servers against, such as RDS's
    /// `global-bundle.pem`. Default: the URL's `sslrootcert`, else the system's roots.
    pub fn ssl_root_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.root_cert = Some(path.into());
        self
    }

    /// Where the user name and password of new connections come from for every pool the
    /// builder (or a topology) opens: asked before each pool opens, renewed before they expire
    /// and when the database rejects them (a rotated password), without touching open
    /// connections. Pools handed over as connections keep their own. Default: the URL's.
    ///
    /// ```no_run
    /// use rds_balancer::{Credentials, Endpoint, RdsConnection};
    ///
    /// # async fn demo() -> rds_balancer::Result<()> {
    /// let db = RdsConnection::builder()
    ///     .writer("postgres://app@db.example.com/app?sslmode=verify-full")
    ///     .credentials(|_: &Endpoint| async { Ok(Credentials::new("app", std::env::var("DB_PASSWORD").unwrap_or_default())) })
    ///     .build()
    ///     .await?;
    /// # let _ = db; Ok(()) }
    /// ```
    pub fn credentials(mut self, provider: impl CredentialProvider) -> Self {
        self.credentials = Some(Arc::new(provider));
        self
    }

    /// At most this many connections across the writer's and every reader's pool (discovered
    /// ones included): a burst beyond it waits for a connection to come free, up to the acquire
    /// timeout, then fails with [`ErrorKind::BudgetExhausted`](crate::ErrorKind::BudgetExhausted)
    /// (nothing sent) instead of the server's "too many connections". Needs
    /// `min_connections(0)` (the default). Health probes use one more connection per host,
    /// outside the budget. Work inside a transaction opened with `begin()` is not counted; use
    /// `transaction(..)` for that. Default: no budget (each pool has its own maximum).
    pub fn max_total_connections(mut self, value: u32) -> Self {
        self.max_total_connections = Some(value);
        self
    }

    /// Opens the pools of the hosts given here without connecting: the first statement on each
    /// connects (for short-lived processes that may not use every host, such as a Lambda).
    /// Unreachable hosts then show up on first use rather than in `build`. Hosts a topology
    /// adds are still connected at once (so that one that cannot be reached is not used).
    /// Default: `false`.
    pub fn connect_lazy(mut self, value: bool) -> Self {
        self.lazy = value;
        self
    }
}
