//! A host's probe: its own connection, outside the host's pool, so that a pool that is full or
//! stuck does not hide whether the server answers.

use std::time::{Duration, Instant};

use sea_orm::sqlx::mysql::MySqlConnection;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{ConnectOptions, Connection, Executor, query_scalar};
use sea_orm::{DatabaseConnection, DatabaseConnectionType};

use crate::resilience::{Fault, Phase};

/// The probe's connection to one host.
pub(crate) enum ProbeConn {
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

impl std::fmt::Debug for ProbeConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProbeConn::Postgres(_) => "ProbeConn::Postgres",
            ProbeConn::MySql(_) => "ProbeConn::MySql",
        })
    }
}

/// Why a probe failed (never carries credentials: sqlx errors name hosts, not passwords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeError {
    pub(crate) message: String,
    /// Whose fault it was; `None` when the host gave no answer in time.
    pub(crate) fault: Option<Fault>,
}

impl ProbeError {
    fn new(message: impl Into<String>, fault: Option<Fault>) -> Self {
        ProbeError {
            message: message.into(),
            fault,
        }
    }

    fn sqlx(error: &sea_orm::sqlx::Error, phase: Phase) -> Self {
        ProbeError::new(error.to_string(), Some(Fault::of_sqlx(error, phase)))
    }

    /// The server refused the probe's credentials (a rotated password): says nothing about the
    /// host's health.
    pub(crate) fn login_refused(&self) -> bool {
        self.fault == Some(Fault::Credentials)
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Does the server answer (`SELECT 1`)?
    Alive,
    /// Does it accept writes (not a replica, not read-only)?
    Writable,
}

impl ProbeConn {
    /// Opens a probe connection with the settings of `pool` (the host's own pool).
    pub(crate) async fn open(pool: &DatabaseConnection) -> Result<ProbeConn, ProbeError> {
        Self::open_at(pool, None).await
    }

    /// Opens a connection with the settings of `pool`, to `at` (host, port) instead of the
    /// pool's own address when given.
    pub(crate) async fn open_at(
        pool: &DatabaseConnection,
        at: Option<(&str, u16)>,
    ) -> Result<ProbeConn, ProbeError> {
        match &pool.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                let options = pool.get_postgres_connection_pool().connect_options();
                let mut options = options.as_ref().clone().disable_statement_logging();
                if let Some((host, port)) = at {
                    options = options.host(host).port(port);
                }
                options
                    .connect()
                    .await
                    .map(ProbeConn::Postgres)
                    .map_err(|e| ProbeError::sqlx(&e, Phase::Connecting))
            }
            DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
                let options = pool.get_mysql_connection_pool().connect_options();
                let mut options = options.as_ref().clone().disable_statement_logging();
                if let Some((host, port)) = at {
                    options = options.host(host).port(port);
                }
                options
                    .connect()
                    .await
                    .map(ProbeConn::MySql)
                    .map_err(|e| ProbeError::sqlx(&e, Phase::Connecting))
            }
            _ => Err(ProbeError::new(
                "not a PostgreSQL or MySQL pool",
                Some(Fault::Statement),
            )),
        }
    }

    /// Runs `check`; `Ok(true)` when the host answered (and, for [`Check::Writable`], accepts
    /// writes).
    async fn run(&mut self, check: Check) -> Result<bool, ProbeError> {
        let done = match (self, check) {
            (ProbeConn::Postgres(conn), Check::Alive) => {
                conn.execute("SELECT 1").await.map(|_| true)
            }
            (ProbeConn::MySql(conn), Check::Alive) => conn.execute("SELECT 1").await.map(|_| true),
            (ProbeConn::Postgres(conn), Check::Writable) => {
                query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                    .fetch_one(conn)
                    .await
                    .map(|in_recovery| !in_recovery)
            }
            (ProbeConn::MySql(conn), Check::Writable) => query_scalar::<_, i64>(
                "SELECT (@@global.read_only OR @@global.innodb_read_only) + 0",
            )
            .fetch_one(conn)
            .await
            .map(|read_only| read_only == 0),
        };
        done.map_err(|e| ProbeError::sqlx(&e, Phase::Running))
    }

    async fn close(self) {
        let _ = match self {
            ProbeConn::Postgres(conn) => conn.close().await,
            ProbeConn::MySql(conn) => conn.close().await,
        };
    }
}

/// Probes a host: `check` on the kept probe connection, within `timeout`, connecting included.
/// A kept connection that fails (a killed session, a restarted server) says little about the
/// host, so the check is asked again at once on a fresh connection, whose answer (or failure to
/// connect) decides. Returns the round trip and the check's answer. On failure no connection
/// is kept, so the next probe connects afresh.
pub(crate) async fn probe(
    slot: &mut Option<ProbeConn>,
    pool: &DatabaseConnection,
    timeout: Duration,
    check: Check,
) -> Result<(Duration, bool), ProbeError> {
    let start = Instant::now();
    let attempt = async {
        if let Some(conn) = slot.as_mut() {
            match conn.run(check).await {
                Ok(answer) => return Ok(answer),
                Err(_) => *slot = None,
            }
        }
        let mut conn = ProbeConn::open(pool).await?;
        let answer = conn.run(check).await?;
        *slot = Some(conn);
        Ok(answer)
    };
    let outcome = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(answer)) => return Ok((start.elapsed(), answer)),
        Ok(Err(error)) => error,
        Err(_) => ProbeError::new(format!("no answer within {timeout:?}"), None),
    };
    // A connection that failed or timed out mid-exchange is in an unknown state.
    *slot = None;
    Err(outcome)
}

/// Closes a probe connection politely, if there is one.
pub(crate) async fn close(slot: &mut Option<ProbeConn>) {
    if let Some(conn) = slot.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
    }
}
