//! A circuit breaker: [`CircuitBreaker`], its [`BreakerOptions`] and [`BreakerError`].
//!
//! The decisions live in [`Machine`], pure and driven by the `Instant` it is given; the handle
//! around it only locks, reads the clock and logs.

mod error;
mod machine;
mod options;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

pub use self::error::{BreakerError, is_circuit_open};
pub(crate) use self::machine::Admission;
use self::machine::{Machine, Transition};
pub use self::options::BreakerOptions;

/// The state of a [`CircuitBreaker`].
///
/// ```
/// use rds_balancer::{BreakerState, CircuitBreaker};
///
/// assert_eq!(CircuitBreaker::default().state(), BreakerState::Closed);
/// assert_eq!(BreakerState::HalfOpen.to_string(), "half-open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls are refused until `open_for` has elapsed.
    Open,
    /// `open_for` has elapsed: up to `half_open_trials` trial calls go through, and the first
    /// outcome decides (a success closes the breaker, a failure opens it again).
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// A circuit breaker: after `failure_threshold` consecutive failures it refuses calls for
/// `open_for`, then lets a trial call through, and closes again when a trial succeeds.
///
/// A cheap handle: clones share one breaker (an `Arc` around a mutex that is never held across
/// an `.await`); it is `Send + Sync`. Wrap calls with [`call`](Self::call) (every error counts as
/// a failure) or [`call_with`](Self::call_with) (you say which errors do), or drive it by hand
/// with [`allow`](Self::allow), [`record_success`](Self::record_success) and
/// [`record_failure`](Self::record_failure).
///
/// ```
/// use std::time::Duration;
///
/// use rds_balancer::{BreakerError, BreakerOptions, BreakerState, CircuitBreaker};
/// use sea_orm::{ConnAcquireErr, DbErr};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let breaker = CircuitBreaker::new(
///     BreakerOptions::new()
///         .failure_threshold(2)
///         .open_for(Duration::from_secs(30)),
/// );
/// for _ in 0..2 {
///     let failed = breaker
///         .call(|| async { Err::<(), _>(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) })
///         .await;
///     assert!(matches!(failed, Err(BreakerError::Inner(_))));
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// // Now calls fail fast, without running the operation.
/// let refused = breaker.call(|| async { Ok::<_, DbErr>("never run") }).await;
/// assert!(matches!(refused, Err(BreakerError::Open)));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: BreakerOptions,
    machine: Mutex<Machine>,
}

impl Default for CircuitBreaker {
    /// A breaker with the default [`BreakerOptions`].
    fn default() -> Self {
        CircuitBreaker::new(BreakerOptions::default())
    }
}

impl CircuitBreaker {
    /// A closed breaker with these options.
    ///
    /// ```
    /// use rds_balancer::{BreakerOptions, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerOptions::new().failure_threshold(3));
    /// let shared = breaker.clone(); // the same breaker
    /// # let _ = shared;
    /// ```
    pub fn new(options: BreakerOptions) -> Self {
        CircuitBreaker {
            inner: Arc::new(Inner {
                options,
                machine: Mutex::new(Machine::new()),
            }),
        }
    }

    /// The breaker's state now. An open breaker whose `open_for` has elapsed reports
    /// [`HalfOpen`](BreakerState::HalfOpen): the next call is admitted as a trial.
    ///
    /// ```
    /// use rds_balancer::{BreakerState, CircuitBreaker};
    ///
    /// assert_eq!(CircuitBreaker::default().state(), BreakerState::Closed);
    /// ```
    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    /// Asks to make a call: `true` admits it, and then you must report its outcome with
    /// [`record_success`](Self::record_success) or [`record_failure`](Self::record_failure).
    ///
    /// Closed: always admits. Open: refuses until `open_for` has elapsed, then turns half-open
    /// and admits the call as a trial. Half-open: admits up to `half_open_trials` trials at once
    /// (a trial that never reports frees its slot after another `open_for`).
    ///
    /// ```
    /// use rds_balancer::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::default();
    /// if breaker.allow() {
    ///     let outcome: Result<(), ()> = Ok(()); // ... make the call ...
    ///     match outcome {
    ///         Ok(()) => breaker.record_success(),
    ///         Err(()) => breaker.record_failure(),
    ///     }
    /// }
    /// ```
    pub fn allow(&self) -> bool {
        self.admit_at(Instant::now()).is_some()
    }

    /// Reports a successful call: resets the failure count, and closes a half-open breaker.
    ///
    /// ```
    /// let breaker = rds_balancer::CircuitBreaker::default();
    /// breaker.record_success();
    /// ```
    pub fn record_success(&self) {
        let transition = self.machine().success();
        self.log(transition);
    }

    /// Reports a failed call: opens a closed breaker at the threshold, and re-opens a half-open
    /// one for another `open_for`.
    ///
    /// ```
    /// use rds_balancer::{BreakerOptions, BreakerState, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerOptions::new().failure_threshold(1));
    /// breaker.record_failure();
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// ```
    pub fn record_failure(&self) {
        self.record_failure_at(Instant::now());
    }

    /// Opens the breaker now, whatever its state and failure count, for `open_for` from now
    /// (for example when a separate health check found the service dead).
    ///
    /// ```
    /// use rds_balancer::{BreakerState, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::default();
    /// breaker.trip();
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// assert!(!breaker.allow());
    /// ```
    pub fn trip(&self) {
        self.trip_at(Instant::now());
    }

    /// Runs `op` if the breaker admits it, and records its outcome: any error counts as a
    /// failure. A refused call returns [`BreakerError::Open`] without running `op`.
    ///
    /// If the returned future is dropped before `op` finishes, no outcome is recorded (and a
    /// half-open trial slot is freed).
    ///
    /// ```
    /// use rds_balancer::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::default();
    /// let answer = breaker.call(|| async { Ok::<_, std::io::Error>(42) }).await;
    /// assert_eq!(answer.ok(), Some(42));
    /// # }
    /// ```
    pub async fn call<T, E, F, Fut>(&self, op: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(|_: &E| true, op).await
    }

    /// Like [`call`](Self::call), but only errors for which `is_failure` returns `true` count
    /// as failures; other errors are returned all the same, and count as a success (the service
    /// answered). For database calls, [`is_transient`](crate::is_transient) is a good choice:
    /// a unique violation says nothing about the server's health.
    ///
    /// ```no_run
    /// use rds_balancer::{BreakerError, CircuitBreaker, RdsConnection, is_transient};
    /// use sea_orm::{ConnectionTrait, DbErr};
    ///
    /// async fn ping(db: &RdsConnection, breaker: &CircuitBreaker) -> Result<(), DbErr> {
    ///     breaker
    ///         .call_with(is_transient, || async {
    ///             db.execute_unprepared("SELECT 1").await.map(|_| ())
    ///         })
    ///         .await?; // a refused call becomes a `DbErr` (see `BreakerError`)
    ///     Ok(())
    /// }
    /// ```
    pub async fn call_with<T, E, P, F, Fut>(
        &self,
        is_failure: P,
        op: F,
    ) -> Result<T, BreakerError<E>>
    where
        P: FnOnce(&E) -> bool,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(admission) = self.admit_at(Instant::now()) else {
            return Err(BreakerError::Open);
        };
        let mut pending = Pending {
            breaker: self,
            trial: admission.trial,
        };
        let result = op().await;
        let failed = match &result {
            Ok(_) => false,
            Err(err) => is_failure(err),
        };
        pending.settle(failed);
        result.map_err(BreakerError::Inner)
    }

    pub(crate) fn state_at(&self, now: Instant) -> BreakerState {
        self.machine().state(now)
    }

    /// Admits a call at `now`, or not (`None`).
    pub(crate) fn admit_at(&self, now: Instant) -> Option<Admission> {
        let (admission, transition) = self.machine().admit(now, &self.inner.options);
        self.log(transition);
        admission
    }

    pub(crate) fn record_failure_at(&self, now: Instant) {
        let transition = self.machine().failure(now, &self.inner.options);
        self.log(transition);
    }

    pub(crate) fn trip_at(&self, now: Instant) {
        let transition = self.machine().trip(now, &self.inner.options);
        self.log(transition);
    }

    /// Frees the trial slot of a call that will never report (its future was dropped).
    fn release(&self, trial: u64) {
        self.machine().release(trial);
    }

    fn machine(&self) -> MutexGuard<'_, Machine> {
        // The machine is left consistent by every method: a panic elsewhere cannot break it.
        self.inner
            .machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self, transition: Option<Transition>) {
        let Some(transition) = transition else {
            return;
        };
        let breaker = self.inner.options.name.as_deref().unwrap_or("unnamed");
        let open_for = self.inner.options.open_for;
        match transition {
            Transition::Opened { failures } => tracing::warn!(
                breaker,
                failures,
                ?open_for,
                "circuit breaker opened after consecutive failures"
            ),
            Transition::Tripped => tracing::warn!(breaker, ?open_for, "circuit breaker tripped"),
            // The outage goes on: these repeat every `open_for` while it does, so not above debug.
            Transition::Reopened => tracing::debug!(
                breaker,
                ?open_for,
                "circuit breaker trial call failed; open again"
            ),
            Transition::HalfOpened => {
                tracing::debug!(breaker, "circuit breaker half-open; admitting a trial call")
            }
            Transition::Closed => tracing::info!(breaker, "circuit breaker closed"),
        }
    }
}

/// An admitted call whose outcome is not recorded yet; dropping it frees its trial slot.
struct Pending<'a> {
    breaker: &'a CircuitBreaker,
    trial: Option<u64>,
}

impl Pending<'_> {
    fn settle(&mut self, failed: bool) {
        self.trial = None;
        if failed {
            self.breaker.record_failure();
        } else {
            self.breaker.record_success();
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(trial) = self.trial.take() {
            self.breaker.release(trial);
        }
    }
}

/// Compile-time check: the handle can be shared across tasks and threads.
const _: fn() = || {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<CircuitBreaker>();
};
