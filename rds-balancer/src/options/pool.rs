//! The settings every pool the builder opens shares: sizes, timeouts, statement logging, TLS.

use std::time::Duration;

use crate::error::Result;
use crate::settings;

/// Pool settings applied to every pool the builder opens (named as in SeaORM's
/// [`ConnectOptions`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolOptions {
    pub(crate) max_connections: Option<u32>,
    pub(crate) min_connections: Option<u32>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    /// Whether sqlx logs statements (their SQL text): off unless asked for.
    pub(crate) sqlx_logging: bool,
}

impl PoolOptions {
    /// Checks every size and timeout (see [`crate::settings`]).
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(max) = self.max_connections {
            settings::at_least_one("max_connections", max)?;
        }
        if let (Some(min), Some(max)) = (self.min_connections, self.max_connections)
            && min > max
        {
            return Err(crate::Error::Config(
                format!("min_connections ({min}) is above max_connections ({max})").into(),
            ));
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("acquire_timeout", self.acquire_timeout),
        ] {
            if let Some(value) = value {
                settings::positive(name, value)?;
            }
        }
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
        ] {
            if let Some(value) = value {
                settings::bounded(name, value)?;
            }
        }
        Ok(())
    }

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
