//! The serialisable picture of every host's health, returned by
//! [`RdsConnection::health`](crate::RdsConnection::health).

use std::time::SystemTime;

use serde::Serialize;

use crate::pool::{HostPool, Hosts, Role, occupancy};
use crate::resilience::BreakerState;

/// How a host is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthState {
    /// Answers probes quickly; its statements succeed.
    Healthy,
    /// Still scheduled, but its last probe was slow or its last statements hit network errors.
    Degraded,
    /// Failed too many probes or statements in a row: its circuit breaker is open and, for a
    /// reader, it gets no statements until a probe succeeds.
    Unhealthy,
}

/// A host's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostRole {
    /// The host that takes writes.
    Writer,
    /// A read replica.
    Reader,
}

impl From<Role> for HostRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Writer => HostRole::Writer,
            Role::Reader => HostRole::Reader,
        }
    }
}

/// Serialised as `"closed"`, `"open"` or `"half_open"`.
impl Serialize for BreakerState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        })
    }
}

/// One host's health, as of the moment [`RdsConnection::health`](crate::RdsConnection::health)
/// was called.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HostHealthSnapshot {
    /// The host's name: its instance identifier, `host:port`, or `writer` / `reader-N` for a
    /// pool handed over to the builder.
    pub name: String,
    /// Writer or reader.
    pub role: HostRole,
    /// Its state.
    pub state: HealthState,
    /// Its circuit breaker.
    pub breaker: BreakerState,
    /// The round trip of its last successful probe, in milliseconds (`None` before the first).
    pub latency_ms: Option<f64>,
    /// Failed probes and statement network errors in a row.
    pub consecutive_failures: u32,
    /// The last failure seen (probe or statement), if any since the last success.
    pub last_error: Option<String>,
    /// Statements, streams and transactions running on it through this connection.
    pub in_flight: usize,
    /// Connections its pool holds open.
    pub pool_size: u32,
    /// Of those, connections idle in the pool.
    pub pool_idle: usize,
    /// Statements waiting for one of its pool's connections (in flight beyond the connections
    /// in use; an estimate, as the pool does not count its waiters).
    pub pool_waiting: usize,
    /// Its replica lag as last measured, in milliseconds (with
    /// [`max_replica_lag`](crate::RdsConnectionBuilder::max_replica_lag) set; `None` for the
    /// writer, before the first measurement, or when its position could not be read).
    pub replica_lag_ms: Option<f64>,
    /// Its replica lag as the last topology applied reported it ([`Instance::replica_lag`]),
    /// in milliseconds (`None` when it reported none, or no topology named this host).
    ///
    /// [`Instance::replica_lag`]: crate::Instance::replica_lag
    pub reported_replica_lag_ms: Option<f64>,
    /// Whether it lags beyond `max_replica_lag`, measured or reported: it gets no reads until
    /// both say it is within.
    pub lagging: bool,
}

/// Every host's health: the writer first, then the readers in scheduling order.
///
/// ```no_run
/// # async fn demo(db: rds_balancer::RdsConnection) {
/// let health = db.health();
/// for host in &health.hosts {
///     println!("{} ({:?}) is {:?}, {} in flight", host.name, host.role, host.state, host.in_flight);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthSnapshot {
    /// When it was taken.
    pub taken_at: SystemTime,
    /// The hosts in service.
    pub hosts: Vec<HostHealthSnapshot>,
}

impl HealthSnapshot {
    /// The health of `hosts` now (no I/O).
    pub(crate) fn of(hosts: &Hosts) -> Self {
        HealthSnapshot {
            taken_at: SystemTime::now(),
            hosts: std::iter::once(&hosts.writer)
                .chain(&hosts.readers)
                .map(|host| host_snapshot(host))
                .collect(),
        }
    }
}

fn host_snapshot(host: &HostPool) -> HostHealthSnapshot {
    let health = host.health();
    let (pool_size, pool_idle) = occupancy(host.conn());
    let in_use = usize::try_from(pool_size)
        .unwrap_or(usize::MAX)
        .saturating_sub(pool_idle);
    HostHealthSnapshot {
        name: host.name().to_owned(),
        role: host.role().into(),
        state: health.state(),
        breaker: health.breaker_state(),
        latency_ms: health.latency().map(|l| l.as_secs_f64() * 1000.0),
        consecutive_failures: health.consecutive_failures(),
        last_error: health.last_error(),
        in_flight: host.in_flight(),
        pool_size,
        pool_idle,
        pool_waiting: host.in_flight().saturating_sub(in_use),
        replica_lag_ms: host.lag().measured().map(|lag| lag.as_secs_f64() * 1000.0),
        reported_replica_lag_ms: host.lag().reported().map(|lag| lag.as_secs_f64() * 1000.0),
        lagging: host.lag().is_lagging(),
    }
}
