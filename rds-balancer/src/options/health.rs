//! The builder's settings for watching hosts: periodic probes and enhanced failure monitoring.

use std::time::Duration;

use super::RdsConnectionBuilder;

impl RdsConnectionBuilder {
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
    /// unhealthy; at least 1. Default: 3.
    pub fn failure_detection_count(mut self, value: u32) -> Self {
        self.health.failure_detection_count = value;
        self
    }
}
