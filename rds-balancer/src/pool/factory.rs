//! Opening pools for hosts a topology names, with the writer's pool as the template.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::mysql::{MySql, MySqlConnectOptions};
use sea_orm::sqlx::pool::PoolOptions;
use sea_orm::sqlx::postgres::{PgConnectOptions, Postgres};
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use sea_orm::{
    DatabaseConnection, DatabaseConnectionType, SqlxMySqlConnector, SqlxPostgresConnector,
};

use crate::error::{Error, Result};
use crate::topology::EndpointResolver;

/// The writer pool's connection and pool settings, per backend.
enum Template {
    Postgres(PgConnectOptions, PoolOptions<Postgres>),
    MySql(MySqlConnectOptions, PoolOptions<MySql>),
}

/// Opens a pool to any `host:port` with the writer pool's credentials, database, TLS and
/// session settings and its pool sizes and timeouts. Holds a password: its `Debug` shows none
/// of the connection settings.
pub(crate) struct HostFactory {
    template: Template,
    resolver: Option<Arc<dyn EndpointResolver>>,
}

impl std::fmt::Debug for HostFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.template {
            Template::Postgres(..) => "postgres",
            Template::MySql(..) => "mysql",
        };
        f.debug_struct("HostFactory")
            .field("backend", &backend)
            .field("resolver", &self.resolver.is_some())
            .finish_non_exhaustive()
    }
}

impl HostFactory {
    /// A factory copying `writer`'s settings, or `None` when `writer` is not a PostgreSQL or
    /// MySQL pool dialled over TCP (a Unix socket names no host to replace).
    pub(crate) fn from_writer(
        writer: &DatabaseConnection,
        resolver: Option<Arc<dyn EndpointResolver>>,
    ) -> Option<Self> {
        let template = match &writer.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                let pool = writer.get_postgres_connection_pool();
                let connect = pool.connect_options();
                connect.get_socket().is_none().then(|| {
                    Template::Postgres(PgConnectOptions::clone(&connect), pool.options().clone())
                })?
            }
            DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
                let pool = writer.get_mysql_connection_pool();
                let connect = pool.connect_options();
                connect.get_socket().is_none().then(|| {
                    Template::MySql(MySqlConnectOptions::clone(&connect), pool.options().clone())
                })?
            }
            _ => return None,
        };
        Some(HostFactory { template, resolver })
    }

    /// The address dialled for the instance endpoint `host:port`: the resolver's answer, or the
    /// endpoint itself.
    fn dialled(&self, host: &str, port: u16) -> (String, u16) {
        match &self.resolver {
            Some(resolver) => resolver.resolve(host, port),
            None => (host.to_owned(), port),
        }
    }

    /// The address the writer pool itself dials.
    fn template_address(&self) -> (&str, u16) {
        match &self.template {
            Template::Postgres(connect, _) => (connect.get_host(), connect.get_port()),
            Template::MySql(connect, _) => (connect.get_host(), connect.get_port()),
        }
    }

    /// Whether the instance endpoint `host:port` (through the resolver, if any) is the host the
    /// template itself dials: the writer the connection was built with.
    pub(crate) fn dials_template(&self, host: &str, port: u16) -> bool {
        let (host, port) = self.dialled(host, port);
        let (template_host, template_port) = self.template_address();
        template_host.eq_ignore_ascii_case(&host) && template_port == port
    }

    /// Opens a pool to the instance endpoint `host:port` (through the resolver, if any).
    pub(crate) async fn open(&self, host: &str, port: u16) -> Result<DatabaseConnection> {
        let (host, port) = self.dialled(host, port);
        self.connect(&host, port).await
    }

    /// Opens a new pool to the host the writer pool dials (its endpoint as configured, with no
    /// resolver in between).
    pub(crate) async fn open_template(&self) -> Result<DatabaseConnection> {
        let (host, port) = self.template_address();
        let host = host.to_owned();
        self.connect(&host, port).await
    }

    /// Opens the pool. One connection is tried first, once: a host that refuses connections
    /// (down, or not yet up) fails at once, where the pool itself would keep retrying until its
    /// acquire timeout and hold up every other change of a topology meanwhile.
    async fn connect(&self, host: &str, port: u16) -> Result<DatabaseConnection> {
        let opened = match &self.template {
            Template::Postgres(connect, pool) => {
                let connect = connect.clone().host(host).port(port);
                match try_once(&connect, pool.get_acquire_timeout()).await {
                    Err(error) => Err(error),
                    Ok(()) => pool
                        .clone()
                        .connect_with(connect)
                        .await
                        .map(SqlxPostgresConnector::from_sqlx_postgres_pool),
                }
            }
            Template::MySql(connect, pool) => {
                let connect = connect.clone().host(host).port(port);
                match try_once(&connect, pool.get_acquire_timeout()).await {
                    Err(error) => Err(error),
                    Ok(()) => pool
                        .clone()
                        .connect_with(connect)
                        .await
                        .map(SqlxMySqlConnector::from_sqlx_mysql_pool),
                }
            }
        };
        opened.map_err(|error| Error::Connect {
            host: format!("{host}:{port}"),
            source: sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error.into())),
        })
    }
}

/// Opens one connection with `options` (a single attempt, within `timeout`) and closes it.
async fn try_once<O>(options: &O, timeout: Duration) -> Result<(), sqlx::Error>
where
    O: ConnectOptions,
    O::Connection: Sized,
{
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_template_keeps_credentials_database_and_parameters() {
        let options: PgConnectOptions =
            "postgres://app:s3cret@writer.example.com:5432/shop?sslmode=require&application_name=x"
                .parse()
                .expect("options");
        let pool = PoolOptions::<Postgres>::new()
            .max_connections(7)
            .connect_lazy_with(options);
        let writer = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
        let factory = HostFactory::from_writer(&writer, None).expect("a template");
        let Template::Postgres(connect, pool) = &factory.template else {
            panic!("a postgres template");
        };
        let derived = connect.clone().host("reader-1.example.com").port(5433);
        assert_eq!(derived.get_host(), "reader-1.example.com");
        assert_eq!(derived.get_port(), 5433);
        assert_eq!(derived.get_username(), "app");
        assert_eq!(derived.get_database(), Some("shop"));
        assert_eq!(derived.get_application_name(), Some("x"));
        assert_eq!(pool.get_max_connections(), 7);
        assert!(!format!("{factory:?}").contains("s3cret"));
        assert!(factory.dials_template("WRITER.example.com", 5432));
        assert!(!factory.dials_template("writer.example.com", 5433));
        assert!(!factory.dials_template("reader-1.example.com", 5432));
        assert!(HostFactory::from_writer(&DatabaseConnection::default(), None).is_none());
    }
}
