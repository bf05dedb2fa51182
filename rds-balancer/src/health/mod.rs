//! Host health: every host's state from probes and from the errors its
//! statements return, a circuit breaker per host that keeps an unhealthy reader out of
//! scheduling until a probe succeeds, the periodic health monitor, enhanced failure monitoring
//! of long statements, and the serialisable [`HealthSnapshot`].

mod host;
mod monitor;
mod probe;
mod snapshot;

use std::time::Duration;

pub(crate) use self::host::HostHealth;
pub(crate) use self::monitor::{GuardedError, guard_statement, spawn_monitor};
pub(crate) use self::probe::{ProbeConn, ProbeError};
pub use self::snapshot::{HealthSnapshot, HealthState, HostHealthSnapshot, HostRole};

/// How hosts are watched. Set through the [builder](crate::RdsConnectionBuilder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthOptions {
    /// How often every host is probed; `None` turns the periodic monitor off.
    pub(crate) check_interval: Option<Duration>,
    /// A probe slower than this makes the host `Degraded`.
    pub(crate) degraded_latency: Duration,
    /// Whether long statements get their host probed (enhanced failure monitoring).
    pub(crate) failure_detection: bool,
    /// How long a statement runs before its host is probed.
    pub(crate) failure_detection_time: Duration,
    /// Time between probes of a host (also each probe's time limit, and how long an open
    /// breaker waits before a half-open probe).
    pub(crate) failure_detection_interval: Duration,
    /// Failed probes (or network errors of statements) in a row that make a host unhealthy.
    pub(crate) failure_detection_count: u32,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            check_interval: Some(Duration::from_secs(5)),
            degraded_latency: Duration::from_millis(500),
            failure_detection: true,
            failure_detection_time: Duration::from_secs(30),
            failure_detection_interval: Duration::from_secs(5),
            failure_detection_count: 3,
        }
    }
}
