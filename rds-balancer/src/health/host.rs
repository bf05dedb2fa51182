//! One host's health: its circuit breaker, the failures and probe latency behind it, and the
//! signal that cuts its in-flight statements short when it trips.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use super::HealthOptions;
use super::probe::{self, Check, ProbeConn, ProbeError};
use super::snapshot::HealthState;
use crate::resilience::{BreakerOptions, BreakerState, CircuitBreaker, Fault};

/// A latency no probe has measured yet.
const UNKNOWN: u64 = u64::MAX;

/// The longest a statement waits for the probe that decides whether its error was its host's.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(1);

/// The health of one host, shared by everything that uses it.
pub(crate) struct HostHealth {
    breaker: CircuitBreaker,
    /// Mirrors "the breaker is not closed", read without a lock on every pick.
    out: AtomicBool,
    failures: AtomicU32,
    latency_micros: AtomicU64,
    degraded_latency: Duration,
    probe_timeout: Duration,
    /// Woken when the breaker opens: statements in flight on the host stop waiting.
    tripped: Notify,
    last_error: Mutex<Option<String>>,
    /// The probe connection; also serialises probes of this host.
    probe: tokio::sync::Mutex<Option<ProbeConn>>,
    last_probe: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for HostHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostHealth")
            .field("state", &self.state())
            .field("failures", &self.consecutive_failures())
            .finish_non_exhaustive()
    }
}

impl HostHealth {
    pub(crate) fn new(options: &HealthOptions) -> Self {
        let breaker = CircuitBreaker::new(
            BreakerOptions::default()
                .failure_threshold(options.failure_detection_count.max(1))
                .open_for(options.failure_detection_interval)
                .half_open_trials(1),
        );
        HostHealth {
            breaker,
            out: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            latency_micros: AtomicU64::new(UNKNOWN),
            degraded_latency: options.degraded_latency,
            probe_timeout: options.failure_detection_interval,
            tripped: Notify::new(),
            last_error: Mutex::new(None),
            probe: tokio::sync::Mutex::new(None),
            last_probe: Mutex::new(None),
        }
    }

    /// Whether a reader may be given new statements: its breaker is closed.
    pub(crate) fn is_schedulable(&self) -> bool {
        !self.out.load(Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> HealthState {
        if !self.is_schedulable() {
            HealthState::Unhealthy
        } else if self.consecutive_failures() > 0
            || self
                .latency()
                .is_some_and(|latency| latency > self.degraded_latency)
        {
            HealthState::Degraded
        } else {
            HealthState::Healthy
        }
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The round trip of the last successful probe.
    pub(crate) fn latency(&self) -> Option<Duration> {
        match self.latency_micros.load(Ordering::Relaxed) {
            UNKNOWN => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A future that completes when the host trips (its breaker opens). Created before a
    /// statement starts so that a trip while it runs is not missed.
    pub(crate) fn tripped(&self) -> Notified<'_> {
        self.tripped.notified()
    }

    /// A statement on this host succeeded.
    pub(crate) fn succeeded(&self) {
        // The common case costs one atomic load.
        if self.failures.load(Ordering::Relaxed) != 0 && self.is_schedulable() {
            self.failures.store(0, Ordering::Relaxed);
            self.breaker.record_success();
            self.clear_error();
        }
    }

    /// A statement or probe on this host failed the way a dead or unreachable host may fail (no
    /// answer in time, a lost connection the probe could not rule out): one more failure in a
    /// row; the host leaves scheduling after `failure_detection_count` of them.
    pub(crate) fn failed(&self, host: &str, error: &str) {
        let failures = self.count_failure(error);
        self.breaker.record_failure();
        self.sync(host, failures);
    }

    /// The host could not be reached (connection refused, reset or cut while connecting): it
    /// leaves scheduling at once, until a probe succeeds.
    pub(crate) fn unreachable(&self, host: &str, error: &str) {
        let failures = self.count_failure(error);
        self.breaker.trip();
        self.sync(host, failures);
    }

    fn count_failure(&self, error: &str) -> u32 {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_owned());
        self.failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// Updates the lock-free mirror after the breaker may have changed, and wakes the host's
    /// in-flight statements when it just opened.
    fn sync(&self, host: &str, failures: u32) {
        let out = self.breaker.state() != BreakerState::Closed;
        let was_out = self.out.swap(out, Ordering::SeqCst);
        if out && !was_out {
            tracing::warn!(host, failures, error = ?self.last_error(), "host unhealthy: out of scheduling until a probe succeeds");
            self.tripped.notify_waiters();
        } else if !out && was_out {
            tracing::info!(host, "host healthy again: back in scheduling");
        }
    }

    fn clear_error(&self) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Probes the host now, unless its breaker is open and not yet due for a half-open trial,
    /// or it was probed less than `min_gap` ago (several slow statements share one probe).
    /// Records the outcome; returns it, or `None` when no probe was made.
    pub(crate) async fn probe(
        &self,
        host: &str,
        pool: &DatabaseConnection,
        min_gap: Duration,
    ) -> Option<Result<Duration, ProbeError>> {
        self.check(host, pool, min_gap, Check::Alive, self.probe_timeout)
            .await
            .map(|outcome| outcome.map(|(latency, _)| latency))
    }

    /// Probes the host now (never skipped for a recent probe), within the confirmation time
    /// limit: the statement that asks saw an error that may or may not be the host's (a lost
    /// connection, a pool timeout), and waits for the verdict.
    pub(crate) async fn confirm(
        &self,
        host: &str,
        pool: &DatabaseConnection,
    ) -> Option<Result<Duration, ProbeError>> {
        let timeout = self.probe_timeout.min(CONFIRM_TIMEOUT);
        self.check(host, pool, Duration::ZERO, Check::Alive, timeout)
            .await
            .map(|outcome| outcome.map(|(latency, _)| latency))
    }

    /// Whether the host accepts writes now, asked within `timeout` (a probe that is never
    /// skipped); a failure to answer counts against its health like any probe's.
    pub(crate) async fn writable(
        &self,
        host: &str,
        pool: &DatabaseConnection,
        timeout: Duration,
    ) -> Result<bool, ProbeError> {
        match self
            .check(host, pool, Duration::ZERO, Check::Writable, timeout)
            .await
        {
            Some(outcome) => outcome.map(|(_, writable)| writable),
            None => Ok(false),
        }
    }

    async fn check(
        &self,
        host: &str,
        pool: &DatabaseConnection,
        min_gap: Duration,
        check: Check,
        timeout: Duration,
    ) -> Option<Result<(Duration, bool), ProbeError>> {
        let mut slot = self.probe.lock().await;
        {
            let mut last = self
                .last_probe
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // A host out of service is probed with back-off: the longer it has failed, the
            // longer between its probes (up to 8 breaker periods).
            let gap = if check == Check::Alive && !self.is_schedulable() {
                min_gap.max(self.retry_gap())
            } else {
                min_gap
            };
            if last.is_some_and(|at| at.elapsed() < gap) {
                return None;
            }
            if check == Check::Alive && !self.breaker.allow() {
                return None;
            }
            *last = Some(Instant::now());
        }
        let outcome = probe::probe(&mut slot, pool, timeout, check).await;
        drop(slot);
        match &outcome {
            Ok((latency, _)) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(UNKNOWN - 1);
                self.latency_micros.store(micros, Ordering::Relaxed);
                self.failures.store(0, Ordering::Relaxed);
                self.clear_error();
                self.breaker.record_success();
                self.sync(host, 0);
            }
            Err(error) => match error.fault {
                // A refused login is the credentials' fault, not the host's: the caller renews
                // them. Too many connections: the server is alive and busy.
                Some(Fault::Credentials | Fault::Overloaded) => {}
                Some(Fault::Unreachable) => {
                    self.unreachable(host, &format!("probe failed: {error}"))
                }
                _ => self.failed(host, &format!("probe failed: {error}")),
            },
        }
        Some(outcome)
    }

    /// How long a host out of service waits between probes: one breaker period
    /// (`failure_detection_interval`) after its first failure, doubling with each further one
    /// up to eight periods.
    fn retry_gap(&self) -> Duration {
        let doublings = self.consecutive_failures().saturating_sub(1).min(3);
        self.probe_timeout * (1u32 << doublings)
    }

    /// Closes the probe connection (the host leaves service).
    pub(crate) async fn close(&self) {
        probe::close(&mut *self.probe.lock().await).await;
    }
}
