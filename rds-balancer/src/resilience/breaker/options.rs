//! [`BreakerOptions`]: when a circuit breaker opens, and for how long.

use std::borrow::Cow;
use std::time::Duration;

/// When a [`CircuitBreaker`](crate::CircuitBreaker) opens, how long it stays open, and how many
/// trial calls it lets through when half-open.
///
/// ```
/// use std::time::Duration;
///
/// use rds_balancer::{BreakerOptions, CircuitBreaker};
///
/// let breaker = CircuitBreaker::new(
///     BreakerOptions::new()
///         .name("reports-db")
///         .failure_threshold(3)
///         .open_for(Duration::from_secs(30)),
/// );
/// # let _ = breaker;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BreakerOptions {
    pub(super) failure_threshold: u32,
    pub(super) open_for: Duration,
    pub(super) half_open_trials: u32,
    pub(super) name: Option<Cow<'static, str>>,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            half_open_trials: 1,
            name: None,
        }
    }
}

impl BreakerOptions {
    /// The defaults: open after 5 consecutive failures, for 10 s, then 1 trial call.
    ///
    /// ```
    /// let options = rds_balancer::BreakerOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How many consecutive failures open the breaker. A success resets the count.
    ///
    /// Default: `5`. `0` counts as `1`.
    ///
    /// ```
    /// let options = rds_balancer::BreakerOptions::new().failure_threshold(3);
    /// # let _ = options;
    /// ```
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures.max(1);
        self
    }

    /// How long the breaker stays open (refusing every call) before it turns half-open and lets
    /// a trial call through; a failed trial opens it for this long again.
    ///
    /// Default: 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = rds_balancer::BreakerOptions::new().open_for(Duration::from_secs(30));
    /// # let _ = options;
    /// ```
    pub fn open_for(mut self, duration: Duration) -> Self {
        self.open_for = duration;
        self
    }

    /// How many trial calls may run at once while the breaker is half-open. The first trial to
    /// succeed closes the breaker; the first to fail opens it again.
    ///
    /// Default: `1`. `0` counts as `1`.
    ///
    /// ```
    /// let options = rds_balancer::BreakerOptions::new().half_open_trials(2);
    /// # let _ = options;
    /// ```
    pub fn half_open_trials(mut self, trials: u32) -> Self {
        self.half_open_trials = trials.max(1);
        self
    }

    /// A name for the breaker's log lines (`breaker = <name>`), such as the host or service it
    /// guards. Never put credentials in it.
    ///
    /// Default: none (logged as `unnamed`).
    ///
    /// ```
    /// let options = rds_balancer::BreakerOptions::new().name("orders-db");
    /// # let _ = options;
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }
}
