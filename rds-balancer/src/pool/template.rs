//! A pool [`Template`]: sqlx connection and pool settings for one backend, from which a pool to
//! any host opens. Every pool rds-balancer opens goes through [`Template::open`].

use std::time::Duration;

use sea_orm::sqlx::mysql::{MySql, MySqlConnectOptions, MySqlSslMode};
use sea_orm::sqlx::pool::PoolOptions as SqlxPoolOptions;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode, Postgres};
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use sea_orm::{
    DatabaseConnection, DatabaseConnectionType, SqlxMySqlConnector, SqlxPostgresConnector,
};

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::options::{PoolOptions, Tls};

/// Connection and pool settings for one backend. Holds a password: never printed.
#[derive(Clone)]
pub(crate) enum Template {
    Postgres(PgConnectOptions, SqlxPoolOptions<Postgres>),
    MySql(MySqlConnectOptions, SqlxPoolOptions<MySql>),
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Template::Postgres(..) => "Template::Postgres",
            Template::MySql(..) => "Template::MySql",
        })
    }
}

impl Template {
    /// The settings of a database URL (`postgres://` or `mysql://`) with `pool`'s sizes and
    /// timeouts.
    pub(crate) fn from_url(url: &str, pool: &PoolOptions) -> Result<Template> {
        let invalid = |error: sqlx::Error| {
            // The URL may hold a password: only the driver's verdict is kept, never the URL.
            let reason = match error {
                sqlx::Error::Configuration(e) => e.to_string(),
                _ => "unsupported".to_owned(),
            };
            Error::Config(format!("invalid database URL: {reason}").into())
        };
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        let template = match scheme {
            "postgres" | "postgresql" => {
                let mut connect: PgConnectOptions = url.parse().map_err(invalid)?;
                if !pool.sqlx_logging {
                    connect = connect.disable_statement_logging();
                }
                Template::Postgres(connect, pool.sqlx())
            }
            "mysql" | "mariadb" => {
                let mut connect: MySqlConnectOptions = url.parse().map_err(invalid)?;
                if !pool.sqlx_logging {
                    connect = connect.disable_statement_logging();
                }
                Template::MySql(connect, pool.sqlx())
            }
            _ => {
                return Err(Error::Config(
                    "the database URL must start with postgres:// or mysql:// (rds-balancer supports those two)"
                        .into(),
                ));
            }
        };
        Ok(template)
    }

    /// The settings of an open pool, or `None` when it is not a PostgreSQL or MySQL pool
    /// dialled over TCP (a Unix socket names no host to replace).
    pub(crate) fn from_connection(conn: &DatabaseConnection) -> Option<Template> {
        match &conn.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                let pool = conn.get_postgres_connection_pool();
                let connect = pool.connect_options();
                connect.get_socket().is_none().then(|| {
                    Template::Postgres(PgConnectOptions::clone(&connect), pool.options().clone())
                })
            }
            DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
                let pool = conn.get_mysql_connection_pool();
                let connect = pool.connect_options();
                connect.get_socket().is_none().then(|| {
                    Template::MySql(MySqlConnectOptions::clone(&connect), pool.options().clone())
                })
            }
            _ => None,
        }
    }

    /// Applies the TLS settings given to the builder.
    pub(crate) fn with_tls(self, tls: &Tls) -> Template {
        match self {
            Template::Postgres(mut connect, pool) => {
                if let Some(mode) = tls.mode {
                    connect = connect.ssl_mode(mode.postgres());
                }
                if let Some(path) = &tls.root_cert {
                    connect = connect.ssl_root_cert(path);
                }
                Template::Postgres(connect, pool)
            }
            Template::MySql(mut connect, pool) => {
                if let Some(mode) = tls.mode {
                    connect = connect.ssl_mode(mode.mysql());
                }
                if let Some(path) = &tls.root_cert {
                    connect = connect.ssl_ca(path);
                }
                Template::MySql(connect, pool)
            }
        }
    }

    /// Whether connections use TLS and verify the server's certificate.
    pub(crate) fn verifies_server(&self) -> bool {
        match self {
            Template::Postgres(connect, _) => matches!(
                connect.get_ssl_mode(),
                PgSslMode::VerifyCa | PgSslMode::VerifyFull
            ),
            Template::MySql(connect, _) => matches!(
                connect.get_ssl_mode(),
                MySqlSslMode::VerifyCa | MySqlSslMode::VerifyIdentity
            ),
        }
    }

    /// The host and port these settings dial.
    pub(crate) fn address(&self) -> (&str, u16) {
        match self {
            Template::Postgres(connect, _) => (connect.get_host(), connect.get_port()),
            Template::MySql(connect, _) => (connect.get_host(), connect.get_port()),
        }
    }

    /// Opens a pool to `host:port` with these settings (and `credentials`, if given).
    ///
    /// One connection is tried first, once: a host that refuses connections (down, or not yet
    /// up) fails at once, where the pool itself would keep retrying until its acquire timeout
    /// and hold up every other change of a topology meanwhile.
    pub(crate) async fn open(
        &self,
        host: &str,
        port: u16,
        credentials: Option<&Credentials>,
    ) -> Result<DatabaseConnection> {
        let opened = match self {
            Template::Postgres(connect, pool) => {
                let connect =
                    with_credentials_pg(connect.clone().host(host).port(port), credentials);
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
                let connect =
                    with_credentials_mysql(connect.clone().host(host).port(port), credentials);
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

impl Template {
    /// A pool to `host:port` that connects on first use.
    pub(crate) fn open_lazy(
        &self,
        host: &str,
        port: u16,
        credentials: Option<&Credentials>,
    ) -> DatabaseConnection {
        match self {
            Template::Postgres(connect, pool) => {
                let connect =
                    with_credentials_pg(connect.clone().host(host).port(port), credentials);
                SqlxPostgresConnector::from_sqlx_postgres_pool(
                    pool.clone().connect_lazy_with(connect),
                )
            }
            Template::MySql(connect, pool) => {
                let connect =
                    with_credentials_mysql(connect.clone().host(host).port(port), credentials);
                SqlxMySqlConnector::from_sqlx_mysql_pool(pool.clone().connect_lazy_with(connect))
            }
        }
    }
}

/// Makes `pool` use `credentials` for the connections it opens from now on; open ones are left
/// as they are.
pub(crate) fn set_credentials(pool: &DatabaseConnection, credentials: &Credentials) {
    match &pool.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = pool.get_postgres_connection_pool();
            let connect = PgConnectOptions::clone(&pool.connect_options());
            pool.set_connect_options(with_credentials_pg(connect, Some(credentials)));
        }
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
            let pool = pool.get_mysql_connection_pool();
            let connect = MySqlConnectOptions::clone(&pool.connect_options());
            pool.set_connect_options(with_credentials_mysql(connect, Some(credentials)));
        }
        _ => {}
    }
}

fn with_credentials_pg(
    mut connect: PgConnectOptions,
    credentials: Option<&Credentials>,
) -> PgConnectOptions {
    if let Some(credentials) = credentials {
        if let Some(user) = &credentials.username {
            connect = connect.username(user);
        }
        connect = connect.password(credentials.password.expose());
    }
    connect
}

fn with_credentials_mysql(
    mut connect: MySqlConnectOptions,
    credentials: Option<&Credentials>,
) -> MySqlConnectOptions {
    if let Some(credentials) = credentials {
        if let Some(user) = &credentials.username {
            connect = connect.username(user);
        }
        connect = connect.password(credentials.password.expose());
    }
    connect
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
