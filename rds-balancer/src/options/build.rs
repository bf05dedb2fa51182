//! Building an [`RdsConnection`]: the settings checked, the pools opened, the cluster core
//! assembled and its monitors started. A build that fails halfway leaves nothing behind: the
//! pools it opened are dropped and the tasks it started stop.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use sea_orm::{DatabaseBackend, DatabaseConnection, DatabaseConnectionType};

use super::{HostSource, PoolOptions, RdsConnectionBuilder, Tls};
use crate::bluegreen::BlueGreen;
use crate::budget::Budget;
use crate::causal::{Causal, Flavour, Mode, ReadYourWrites, fetch};
use crate::cluster::{Cluster, Lifecycle, Parts};
use crate::connection::{RdsConnection, Router};
use crate::credentials::CredentialProvider;
use crate::error::{Error, Result};
use crate::pool::{HostFactory, Hosts, Opened, Role, Template, open_or_lazily};
use crate::route::{Picker, Sticky};
use crate::settings;

impl RdsConnectionBuilder {
    /// Opens the pools and returns the connection.
    ///
    /// The writer must be reachable, or this fails with
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect). A reader that cannot be reached does
    /// not stop the application from starting: it joins as unhealthy (in
    /// [`RdsConnection::health`]), is probed with back-off, and takes reads once it answers;
    /// meanwhile reads go to the other readers (or follow
    /// [`fallback_to_writer`](Self::fallback_to_writer)).
    pub async fn build(self) -> Result<RdsConnection> {
        self.validate()?;
        let writer = self.writer.ok_or(Error::Config(
            "no writer: call `writer(url)` or `writer_connection(db)`".into(),
        ))?;
        let budget = self.max_total_connections.map(|limit| {
            let wait = self.pool.acquire_timeout.or(self.pool.connect_timeout);
            Arc::new(Budget::new(limit, wait.unwrap_or(Duration::from_secs(30))))
        });
        let blue_green = self
            .blue_green
            .map(|options| Arc::new(BlueGreen::new(options, self.endpoint_resolver.clone())));
        // Dropped on an early return: the renewals started for the pools opened so far stop.
        let lifecycle = Lifecycle::new();
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
            &lifecycle,
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
            let (opened, down) = result?;
            if backend_of(opened.conn()) != Some(backend) {
                return Err(Error::Config(
                    format!("reader {name} is not the same kind of database as the writer").into(),
                ));
            }
            let reader = opened.into_host(name, Role::Reader, origin, &self.health, &lifecycle);
            if let Some(error) = down {
                reader.down_from_the_start(&error);
            }
            readers.push(reader);
        }
        // The engine flavour, when replication positions are needed.
        let flavour = match self.read_your_writes.mode() {
            Mode::Position { .. } => Some(fetch::flavour(writer.conn()).await?),
            _ if self.max_replica_lag.is_some() => Some(fetch::flavour(writer.conn()).await?),
            // Position queries would take connections outside the budget: a window.
            Mode::Auto if self.max_total_connections.is_some() => None,
            // The default must not fail a build the window never would have.
            Mode::Auto => fetch::flavour(writer.conn())
                .await
                .inspect_err(|error| {
                    tracing::warn!(%error, "engine flavour not read: read-your-writes uses a window")
                })
                .ok(),
            Mode::Off | Mode::Window(_) => None,
        };
        let (sticky, causal) =
            read_your_writes(self.read_your_writes, writer.conn(), flavour).await?;
        tracing::info!(writer = %writer.name(), readers = readers.len(), "rds-balancer connected");
        let cluster = Cluster::new(Parts {
            backend,
            hosts: Hosts { writer, readers },
            lifecycle,
            picker: Picker::new(self.reader_selection),
            fallback_to_writer: self.fallback_to_writer,
            factory,
            filter: self.filter,
            keep_existing_write_host: self.keep_existing_write_host,
            drain_timeout: self.drain_timeout,
            health: self.health,
            budget,
            blue_green,
            max_replica_lag: self.max_replica_lag,
            positions: causal.as_ref().map(|causal| causal.flavour),
        });
        crate::health::spawn_monitor(&cluster);
        crate::bluegreen::spawn_monitor(&cluster);
        // Lag is measured where the engine keeps positions; a topology's reported lag counts on
        // every engine (applied with the topology).
        if let (Some(max), Some(flavour)) = (self.max_replica_lag, flavour)
            && flavour.has_positions()
        {
            crate::causal::spawn_lag_monitor(&cluster, max, flavour);
        }
        Ok(RdsConnection::new(
            cluster,
            Router::new(self.classifier, sticky, causal),
        ))
    }

    /// Checks every duration and count (see [`crate::settings`]).
    fn validate(&self) -> Result<()> {
        self.pool.validate()?;
        let health = &self.health;
        if let Some(interval) = health.check_interval {
            settings::positive("health_check_interval", interval)?;
        }
        settings::positive(
            "failure_detection_interval",
            health.failure_detection_interval,
        )?;
        settings::positive("failure_detection_time", health.failure_detection_time)?;
        settings::bounded("degraded_latency", health.degraded_latency)?;
        settings::at_least_one("failure_detection_count", health.failure_detection_count)?;
        match self.read_your_writes.mode() {
            Mode::Window(window) => settings::bounded("read_your_writes", window)?,
            Mode::Position { max_wait } => settings::bounded("max_wait", max_wait)?,
            Mode::Off | Mode::Auto => {}
        }
        if let Some(max) = self.max_replica_lag {
            settings::positive("max_replica_lag", max)?;
        }
        settings::bounded("drain_timeout", self.drain_timeout)?;
        if let Some(limit) = self.max_total_connections {
            settings::at_least_one("max_total_connections", limit)?;
            if self.pool.min_connections.is_some_and(|min| min > 0) {
                return Err(Error::Config(
                    "max_total_connections needs min_connections(0): pools kept warm would hold \
                     connections outside the budget"
                        .into(),
                ));
            }
        }
        if let Some(options) = &self.blue_green {
            options.validate()?;
        }
        Ok(())
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
/// The read-your-writes table, and position mode's state when it is on: the writer is asked
/// for its position once, and one that keeps none falls back to a window. The engine default
/// is position mode on the engines it was tested against, a window elsewhere.
async fn read_your_writes(
    policy: ReadYourWrites,
    writer: &DatabaseConnection,
    flavour: Option<Flavour>,
) -> Result<(Sticky, Option<Causal>)> {
    let window = || Ok((Sticky::new(ReadYourWrites::FALLBACK_WINDOW), None));
    let (max_wait, flavour, chosen) = match (policy.mode(), flavour) {
        (Mode::Off, _) => return Ok((Sticky::new(Duration::ZERO), None)),
        (Mode::Window(window), _) => return Ok((Sticky::new(window), None)),
        (Mode::Position { max_wait }, Some(flavour)) => (max_wait, flavour, true),
        (Mode::Auto, Some(flavour @ (Flavour::Postgres | Flavour::MariaDb | Flavour::MySql))) => {
            let max_wait = ReadYourWrites::position().max_wait_time();
            (max_wait.unwrap_or_default(), flavour, false)
        }
        // Aurora (positions tested on stand-ins only), a flavour not read, or a connection
        // budget (position queries are not counted in it): a window.
        (Mode::Auto, _) => return window(),
        // The caller reads the flavour whenever positions are needed: not reached.
        (Mode::Position { .. }, None) => return window(),
    };
    let position = match fetch::writer_position(writer, flavour).await {
        Ok(position) => position,
        Err(error) if chosen => return Err(error.into()),
        // The default must not fail a build the window never would have.
        Err(error) => {
            tracing::warn!(%error, "replication position not read: read-your-writes uses a window");
            None
        }
    };
    if position.is_none() {
        let window = ReadYourWrites::FALLBACK_WINDOW;
        if chosen {
            tracing::warn!(
                ?flavour,
                ?window,
                "read-your-writes by position: the writer keeps no replication position to \
                 compare (binary logging or GTIDs off, or Aurora MySQL); a window is used instead"
            );
        }
        return Ok((Sticky::new(window), None));
    }
    Ok((Sticky::by_position(), Some(Causal::new(max_wait, flavour))))
}

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
    use crate::options::endpoint_of;
    use crate::topology::Topology;

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
    async fn position_mode_on_aurora_mysql_falls_back_to_the_window() {
        // Aurora MySQL reads no position (no statement: the placeholder would fail one).
        let writer = DatabaseConnection::default();
        let policy = ReadYourWrites::position();
        let (sticky, causal) = read_your_writes(policy, &writer, Some(Flavour::AuroraMySql))
            .await
            .expect("no error: a fallback");
        assert!(causal.is_none(), "no position mode without positions");
        assert!(sticky.write_count().is_none(), "a window, not positions");
        let window = ReadYourWrites::FALLBACK_WINDOW.as_millis();
        assert!(
            format!("{sticky:?}").contains(&format!("Window({window})")),
            "{sticky:?}"
        );
    }

    #[tokio::test]
    async fn the_engine_default_is_a_window_on_aurora_and_without_a_flavour() {
        // A disconnected placeholder (a statement on it would panic): none is sent.
        let writer = DatabaseConnection::default();
        let window = format!("Window({})", ReadYourWrites::FALLBACK_WINDOW.as_millis());
        for flavour in [
            Some(Flavour::AuroraPostgres),
            Some(Flavour::AuroraMySql),
            // The flavour could not be read.
            None,
        ] {
            let (sticky, causal) = read_your_writes(ReadYourWrites::default(), &writer, flavour)
                .await
                .expect("the default never fails the build");
            assert!(causal.is_none(), "{flavour:?}");
            assert!(
                format!("{sticky:?}").contains(&window),
                "{flavour:?}: {sticky:?}"
            );
        }
    }

    #[tokio::test]
    async fn building_without_a_writer_is_a_config_error() {
        let err = RdsConnection::builder()
            .build()
            .await
            .expect_err("no writer");
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }

    #[tokio::test]
    async fn bad_settings_are_config_errors_naming_the_setting() {
        use crate::BlueGreenOptions;
        // Checked before anything is dialled: nothing listens on port 1.
        let base = || RdsConnection::builder().writer("postgres://app@127.0.0.1:1/app");
        let zero = Duration::ZERO;
        let cases = [
            (
                "health_check_interval",
                base().health_check_interval(Some(zero)),
            ),
            (
                "failure_detection_interval",
                base().failure_detection_interval(zero),
            ),
            (
                "failure_detection_time",
                base().failure_detection_time(zero),
            ),
            ("failure_detection_count", base().failure_detection_count(0)),
            ("degraded_latency", base().degraded_latency(Duration::MAX)),
            ("max_connections", base().max_connections(0)),
            (
                "min_connections",
                base().min_connections(5).max_connections(2),
            ),
            ("connect_timeout", base().connect_timeout(zero)),
            ("acquire_timeout", base().acquire_timeout(Duration::MAX)),
            ("idle_timeout", base().idle_timeout(Duration::MAX)),
            ("max_lifetime", base().max_lifetime(Duration::MAX)),
            ("drain_timeout", base().drain_timeout(Duration::MAX)),
            ("read_your_writes", base().read_your_writes(Duration::MAX)),
            (
                "max_wait",
                base().read_your_writes(ReadYourWrites::position().max_wait(Duration::MAX)),
            ),
            ("max_total_connections", base().max_total_connections(0)),
            (
                "max_total_connections",
                base().max_total_connections(9).min_connections(1),
            ),
            (
                "blue_green.high_interval",
                base().blue_green(BlueGreenOptions::new().high_interval(zero)),
            ),
            (
                "blue_green.switchover_timeout",
                base().blue_green(BlueGreenOptions::new().switchover_timeout(Duration::MAX)),
            ),
        ];
        for (name, builder) in cases {
            let err = builder.build().await.expect_err(name);
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{name}: {err}");
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
