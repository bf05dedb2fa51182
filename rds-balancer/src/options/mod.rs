//! [`RdsConnectionBuilder`]: the hosts, pool options and routing options of an
//! [`RdsConnection`].

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures_util::future::join_all;
use sea_orm::{DatabaseBackend, DatabaseConnection, DatabaseConnectionType};

use crate::bluegreen::{BlueGreen, BlueGreenOptions};
use crate::budget::Budget;
use crate::classify::Classifier;
use crate::connection::{Inner, RdsConnection};
use crate::credentials::CredentialProvider;
use crate::error::{Error, Result};
use crate::failover::Failover;
use crate::health::{HealthOptions, spawn_monitor};
use crate::pool::{HostFactory, Hosts, Opened, Origin, PoolSet, Role, Template, open_or_lazily};
use crate::route::{Picker, ReaderSelection, Sticky};
use crate::topology::{EndpointResolver, ReaderFilter, Topology};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

/// Pool settings applied to every pool the builder opens (named as in SeaORM's
/// [`ConnectOptions`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolOptions {
    max_connections: Option<u32>,
    pub(crate) min_connections: Option<u32>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) acquire_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    pub(crate) sqlx_logging: Option<bool>,
}

impl PoolOptions {
    /// sqlx pool settings with these values (named as in SeaORM, which maps `connect_timeout`
    /// to the pool's acquire timeout too), marking when a statement gets its connection.
    pub(crate) fn sqlx<DB: sea_orm::sqlx::Database>(&self) -> sea_orm::sqlx::pool::PoolOptions<DB> {
        let mut options = sea_orm::sqlx::pool::PoolOptions::new();
        if let Some(v) = self.max_connections {
            options = options.max_connections(v);
        }
        if let Some(v) = self.min_connections {
            options = options.min_connections(v);
        }
        if let Some(v) = self.connect_timeout {
            options = options.acquire_timeout(v);
        }
        if let Some(v) = self.acquire_timeout {
            options = options.acquire_timeout(v);
        }
        if let Some(v) = self.idle_timeout {
            options = options.idle_timeout(v);
        }
        if let Some(v) = self.max_lifetime {
            options = options.max_lifetime(v);
        }
        crate::pool::marking(options)
    }
}

/// TLS to the database, as given to the builder (on top of the URL's `sslmode`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tls {
    pub(crate) mode: Option<SslMode>,
    pub(crate) root_cert: Option<std::path::PathBuf>,
}

/// Whether and how connections use TLS (PostgreSQL's `sslmode` names; MySQL's equivalents).
///
/// ```
/// use rds_balancer::{RdsConnection, SslMode};
///
/// let builder = RdsConnection::builder()
///     .writer("postgres://app@app.cluster-abc.us-east-1.rds.amazonaws.com/app")
///     .ssl_mode(SslMode::VerifyFull)
///     .ssl_root_cert("/etc/ssl/rds/global-bundle.pem");
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without verifying the certificate.
    Prefer,
    /// TLS always, without verifying the certificate.
    Require,
    /// TLS, with the certificate checked against the root certificate(s).
    VerifyCa,
    /// TLS, with the certificate checked and the host name matched: what RDS should use.
    VerifyFull,
}

impl SslMode {
    pub(crate) fn postgres(self) -> sea_orm::sqlx::postgres::PgSslMode {
        use sea_orm::sqlx::postgres::PgSslMode;
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }

    pub(crate) fn mysql(self) -> sea_orm::sqlx::mysql::MySqlSslMode {
        use sea_orm::sqlx::mysql::MySqlSslMode;
        match self {
            SslMode::Disable => MySqlSslMode::Disabled,
            SslMode::Prefer => MySqlSslMode::Preferred,
            SslMode::Require => MySqlSslMode::Required,
            SslMode::VerifyCa => MySqlSslMode::VerifyCa,
            SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
        }
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
    read_your_writes: Duration,
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
            read_your_writes: Duration::from_secs(1),
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

    /// Whether sqlx logs every statement. Default: SeaORM's (on).
    pub fn sqlx_logging(mut self, value: bool) -> Self {
        self.pool.sqlx_logging = Some(value);
        self
    }

    /// What a read does when no reader is active: `true` sends it to the writer, `false` fails it
    /// with [`ErrorKind::NoActiveReaders`](crate::ErrorKind::NoActiveReaders). Default: `true`.
    pub fn fallback_to_writer(mut self, value: bool) -> Self {
        self.fallback_to_writer = value;
        self
    }

    /// How long after a task writes its own reads go to the writer too, so that it reads what
    /// it wrote even before the replicas replayed it; `Duration::ZERO` turns this off. Default:
    /// 1 s.
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
    /// let db = rds_balancer::RdsConnection::builder()
    ///     .writer("mysql://app@writer.cluster-x.us-east-1.rds.amazonaws.com/app")
    ///     .reader("mysql://app@reader-1.x.us-east-1.rds.amazonaws.com/app")
    ///     .read_your_writes(Duration::from_secs(2))
    ///     .build()
    ///     .await?;
    /// # let _ = db; Ok(()) }
    /// ```
    pub fn read_your_writes(mut self, window: Duration) -> Self {
        self.read_your_writes = window;
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

    /// How often every host is probed (`SELECT 1` on a connection of its own, outside its pool)
    /// to keep its health current. `None` stops probing healthy hosts: failures are then found
    /// by statements' errors and enhanced failure monitoring only, and unhealthy hosts are still
    /// probed every [`failure_detection_interval`](Self::failure_detection_interval) so that
    /// they come back. Default: 5 s.
    pub fn health_check_interval(mut self, value: Option<Duration>) -> Self {
        self.health.check_interval = value;
        self
    }

    /// A probe round trip above this makes a host
    /// [`Degraded`](crate::HealthState::Degraded) (it still takes statements). Default: 500 ms.
    pub fn degraded_latency(mut self, value: Duration) -> Self {
        self.health.degraded_latency = value;
        self
    }

    /// Enhanced failure monitoring: while a statement runs longer than
    /// [`failure_detection_time`](Self::failure_detection_time), its host is probed every
    /// [`failure_detection_interval`](Self::failure_detection_interval) on a separate
    /// connection; after [`failure_detection_count`](Self::failure_detection_count) failures in
    /// a row the host is marked unhealthy and its statements fail with
    /// [`ErrorKind::HostUnavailable`](crate::ErrorKind::HostUnavailable) instead of hanging.
    /// Default: on.
    pub fn enhanced_failure_monitoring(mut self, value: bool) -> Self {
        self.health.failure_detection = value;
        self
    }

    /// How long a statement runs before its host is probed. Default: 30 s.
    pub fn failure_detection_time(mut self, value: Duration) -> Self {
        self.health.failure_detection_time = value;
        self
    }

    /// The time between two probes of a host; also each probe's time limit and how long an
    /// unhealthy host waits before the probe that may bring it back. Default: 5 s.
    pub fn failure_detection_interval(mut self, value: Duration) -> Self {
        self.health.failure_detection_interval = value;
        self
    }

    /// Failures in a row (probes, or statements failing with network errors) that make a host
    /// unhealthy. Default: 3.
    pub fn failure_detection_count(mut self, value: u32) -> Self {
        self.health.failure_detection_count = value.max(1);
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

    /// Opens the pools and returns the connection.
    ///
    /// The writer must be reachable, or this fails with
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect). A reader that cannot be reached does
    /// not stop the application from starting: it joins as unhealthy (in
    /// [`RdsConnection::health`]), is probed with back-off, and takes reads once it answers;
    /// meanwhile reads go to the other readers (or follow
    /// [`fallback_to_writer`](Self::fallback_to_writer)).
    pub async fn build(self) -> Result<RdsConnection> {
        let writer = self.writer.ok_or(Error::Config(
            "no writer: call `writer(url)` or `writer_connection(db)`".into(),
        ))?;
        if self.max_total_connections.is_some()
            && self.pool.min_connections.is_some_and(|min| min > 0)
        {
            return Err(Error::Config(
                "max_total_connections needs min_connections(0): pools kept warm would hold \
                 connections outside the budget"
                    .into(),
            ));
        }
        let budget = self.max_total_connections.map(|limit| {
            let wait = self.pool.acquire_timeout.or(self.pool.connect_timeout);
            Arc::new(Budget::new(limit, wait.unwrap_or(Duration::from_secs(30))))
        });
        let blue_green = self
            .blue_green
            .map(|options| Arc::new(BlueGreen::new(options, self.endpoint_resolver.clone())));
        let tasks = TaskTracker::new();
        let writer_name = writer.name("writer");
        let writer_origin = writer.origin();
        let (opened, factory) = match writer {
            HostSource::Url(url) => {
                let template = Template::from_url(&url, &self.pool)?.with_tls(&self.tls);
                let factory = HostFactory::new(
                    template,
                    self.endpoint_resolver.clone(),
                    self.credentials.clone(),
                )?
                .with_blue_green(blue_green.clone())
                .marked(true);
                (factory.open_template(self.lazy).await?, Some(factory))
            }
            HostSource::Connection(conn) => {
                let factory = match Template::from_connection(&conn) {
                    Some(template) => Some(
                        HostFactory::new(
                            template.with_tls(&self.tls),
                            self.endpoint_resolver.clone(),
                            self.credentials.clone(),
                        )?
                        .with_blue_green(blue_green.clone()),
                    ),
                    None => None,
                };
                (Opened::handed(conn), factory)
            }
        };
        let backend = backend_of(opened.conn()).ok_or(Error::Config(
            "the writer is not a PostgreSQL or MySQL connection (rds-balancer supports those two)"
                .into(),
        ))?;
        let writer = opened.into_host(
            writer_name,
            Role::Writer,
            writer_origin,
            &self.health,
            &tasks,
        );

        let opened = join_all(self.readers.into_iter().enumerate().map(|(i, source)| {
            let name = source.name(&format!("reader-{}", i + 1));
            let origin = source.origin();
            let (pool, tls, credentials, lazy) =
                (&self.pool, &self.tls, &self.credentials, self.lazy);
            async move {
                let opened = match source {
                    HostSource::Connection(conn) => Ok((Opened::handed(conn), None)),
                    HostSource::Url(url) => open_reader(&url, pool, tls, credentials, lazy).await,
                };
                (opened, name, origin)
            }
        }))
        .await;
        let mut readers = Vec::with_capacity(opened.len());
        for (result, name, origin) in opened {
            match result {
                Ok((opened, _)) if backend_of(opened.conn()) != Some(backend) => {
                    return Err(Error::Config(
                        format!("reader {name} is not the same kind of database as the writer")
                            .into(),
                    ));
                }
                Ok((opened, down)) => {
                    let reader = opened.into_host(name, Role::Reader, origin, &self.health, &tasks);
                    if let Some(error) = down {
                        reader.down_from_the_start(&error);
                    }
                    readers.push(reader);
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(writer = %writer.name(), readers = readers.len(), "rds-balancer connected");
        let db = RdsConnection::from_inner(Inner {
            backend,
            home_writer: arc_swap::ArcSwap::new(Arc::clone(&writer)),
            pools: PoolSet::new(Hosts { writer, readers }),
            picker: Picker::new(self.reader_selection),
            fallback_to_writer: self.fallback_to_writer,
            sticky: Sticky::new(self.read_your_writes),
            classifier: self.classifier,
            closing: AtomicBool::new(false),
            tasks,
            stopping: CancellationToken::new(),
            factory,
            applied: tokio::sync::Mutex::new(Topology::default()),
            filter: self.filter,
            keep_existing_write_host: self.keep_existing_write_host,
            drain_timeout: self.drain_timeout,
            health: self.health,
            failover: Failover::default(),
            budget,
            blue_green,
        });
        spawn_monitor(&db);
        crate::bluegreen::spawn_monitor(&db);
        Ok(db)
    }
}

/// Opens the pool of a reader given by URL (lazily when `lazy`); a reader that is down gets a
/// pool that connects on first use, returned with the error that says it is down.
async fn open_reader(
    url: &str,
    pool: &PoolOptions,
    tls: &Tls,
    credentials: &Option<Arc<dyn CredentialProvider>>,
    lazy: bool,
) -> Result<(Opened, Option<Error>)> {
    let template = Template::from_url(url, pool)?.with_tls(tls);
    let factory = HostFactory::new(template, None, credentials.clone())?.marked(true);
    open_or_lazily(|retry_lazily| factory.open_template(lazy || retry_lazily)).await
}

/// The backend of a pool, or `None` for one rds-balancer cannot route (SQLite, mock, or a
/// `Disconnected` placeholder, on which SeaORM's own `get_database_backend` would panic).
fn backend_of(conn: &DatabaseConnection) -> Option<DatabaseBackend> {
    match conn.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => Some(DatabaseBackend::Postgres),
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => Some(DatabaseBackend::MySql),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_never_show_credentials() {
        assert_eq!(
            endpoint_of("postgres://app:s3cret@db.example.com:5433/app"),
            "db.example.com:5433"
        );
        assert_eq!(endpoint_of("mysql://root:pw@127.0.0.1/test"), "127.0.0.1");
        assert_eq!(endpoint_of("not a url s3cret"), "<unparsable url>");
        let builder = RdsConnection::builder()
            .writer("postgres://app:s3cret@w.example.com:5432/app")
            .reader("postgres://app:s3cret@r.example.com:5432/app");
        let debug = format!("{builder:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("r.example.com:5432"), "{debug}");
    }

    #[tokio::test]
    async fn a_disconnected_writer_is_a_config_error_not_a_panic() {
        let err = RdsConnection::builder()
            .writer_connection(DatabaseConnection::default())
            .build()
            .await
            .expect_err("disconnected");
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }

    #[tokio::test]
    async fn a_writer_on_a_unix_socket_cannot_follow_a_topology() {
        use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let options = PgConnectOptions::new().socket("/nonexistent/socket/dir");
        let pool = PgPoolOptions::new().connect_lazy_with(options);
        let db = RdsConnection::builder()
            .writer_connection(sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(
                pool,
            ))
            .build()
            .await
            .expect("a lazy pool connects nothing");
        let err = db
            .apply_topology(&Topology::new(vec![
                crate::Instance::writer("w").with_endpoint("127.0.0.1", 5432),
            ]))
            .await
            .expect_err("no host to replace");
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }

    #[tokio::test]
    async fn building_without_a_writer_is_a_config_error() {
        let err = RdsConnection::builder()
            .build()
            .await
            .expect_err("no writer");
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }
}
