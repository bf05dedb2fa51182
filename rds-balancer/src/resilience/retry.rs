//! Retrying transient errors with exponential backoff and jitter ([`retry`], [`RetryPolicy`]).

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _, TokioSleeper};
use sea_orm::{DbErr, TransactionError};

use super::transient::{Summary, is_transient};
use crate::error::Error;

/// How [`retry`] and [`RetryPolicy::run`] retry a failing operation: how often, how long to wait
/// in between, and which errors are worth another attempt.
///
/// The delay before retry `n` (1-based) is `initial_delay * factor^(n-1)`, capped at
/// `max_delay`; with jitter each delay is then stretched by a random amount of up to itself, so
/// that clients that failed together do not retry together. The default policy makes at most 3
/// attempts, waiting about 50-100 ms and then 100-200 ms, and retries only errors for which
/// [`is_transient`] holds. The backoff mechanics are [`backon`]'s, on tokio's timer.
///
/// # Retrying writes is your decision
///
/// A retry replays the operation. Only wrap operations that are safe to run twice: reads,
/// idempotent writes, or a whole transaction (a deadlock or serialization failure rolled it back,
/// so it is replayed from the start). A write whose connection was lost before the answer
/// arrived may have been committed: retrying it outside a transaction can apply it twice. Wrap
/// the transaction, never a single statement inside a transaction whose earlier statements the
/// server has already rolled back.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// use rds_balancer::{RetryPolicy, retry};
/// use sea_orm::{ConnAcquireErr, DbErr};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let policy = RetryPolicy::new()
///     .max_attempts(5)
///     .initial_delay(Duration::from_millis(1))
///     .max_delay(Duration::from_millis(10));
/// let attempts = AtomicU32::new(0);
/// let answer = retry(&policy, || async {
///     // Fails twice with a transient error (the pool timed out), then succeeds.
///     if attempts.fetch_add(1, Ordering::Relaxed) < 2 {
///         Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
///     } else {
///         Ok(42)
///     }
/// })
/// .await;
/// assert_eq!(answer, Ok(42));
/// assert_eq!(attempts.load(Ordering::Relaxed), 3);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    factor: f32,
    jitter: bool,
    retry_if: fn(&DbErr) -> bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            factor: 2.0,
            jitter: true,
            retry_if: is_transient,
        }
    }
}

impl RetryPolicy {
    /// The default policy: 3 attempts, 50 ms doubling up to 2 s, jitter, [`is_transient`].
    ///
    /// ```
    /// let policy = rds_balancer::RetryPolicy::new();
    /// # let _ = policy;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times the operation runs at most, the first attempt included.
    ///
    /// Default: `3`. `0` counts as `1` (no retry).
    ///
    /// ```
    /// let no_retries = rds_balancer::RetryPolicy::new().max_attempts(1);
    /// # let _ = no_retries;
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay before the first retry.
    ///
    /// Default: 50 ms. A value above [`max_delay`](Self::max_delay) is capped to it.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = rds_balancer::RetryPolicy::new().initial_delay(Duration::from_millis(10));
    /// # let _ = policy;
    /// ```
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest delay between two attempts, before jitter (with jitter on, a delay can reach
    /// up to twice this).
    ///
    /// Default: 2 s.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = rds_balancer::RetryPolicy::new().max_delay(Duration::from_millis(500));
    /// # let _ = policy;
    /// ```
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How much each delay grows over the one before.
    ///
    /// Default: `2.0`. A factor below `1.0` (or NaN) counts as `1.0`: a constant delay.
    ///
    /// ```
    /// let policy = rds_balancer::RetryPolicy::new().factor(1.5);
    /// # let _ = policy;
    /// ```
    pub fn factor(mut self, factor: f32) -> Self {
        self.factor = if factor >= 1.0 { factor } else { 1.0 };
        self
    }

    /// Whether to add a random amount, up to the delay itself, to every delay.
    ///
    /// Default: `true`. Turn it off only where determinism matters more than spreading load.
    ///
    /// ```
    /// let policy = rds_balancer::RetryPolicy::new().jitter(false);
    /// # let _ = policy;
    /// ```
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Replaces the predicate that decides whether an error is worth another attempt.
    ///
    /// Default: [`is_transient`]. The predicate sees the [`DbErr`] the operation failed with (for
    /// other error types, the one [`AsDbErr`] finds in it).
    ///
    /// ```
    /// use rds_balancer::{RetryPolicy, is_transient};
    /// use sea_orm::DbErr;
    ///
    /// // Also retry an application-level "not yet" signal.
    /// fn transient_or_not_yet(err: &DbErr) -> bool {
    ///     is_transient(err) || matches!(err, DbErr::RecordNotFound(_))
    /// }
    /// let policy = RetryPolicy::new().retry_if(transient_or_not_yet);
    /// # let _ = policy;
    /// ```
    pub fn retry_if(mut self, predicate: fn(&DbErr) -> bool) -> Self {
        self.retry_if = predicate;
        self
    }

    /// Whether this policy would retry `err` (whether another attempt is left aside).
    ///
    /// ```
    /// use rds_balancer::RetryPolicy;
    /// use sea_orm::{ConnAcquireErr, DbErr};
    ///
    /// let policy = RetryPolicy::new();
    /// assert!(policy.retries(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
    /// assert!(!policy.retries(&DbErr::RecordNotFound("cake".into())));
    /// ```
    pub fn retries<E: AsDbErr + ?Sized>(&self, err: &E) -> bool {
        err.as_db_err().is_some_and(|db| (self.retry_if)(&db))
    }

    /// Runs `op` until it succeeds, fails with an error the policy does not retry, or has run
    /// [`max_attempts`](Self::max_attempts) times; returns its last result.
    ///
    /// Unlike [`retry`], the error type is generic: anything that implements [`AsDbErr`], such
    /// as the [`TransactionError`] of SeaORM's `TransactionTrait::transaction` (retry the whole
    /// transaction, see [`RetryPolicy`]). Each retry is logged at `debug`, giving up after the
    /// last attempt at `warn`, with the attempt number, the delay and a summary of the error
    /// (its SQLSTATE or error number, never its message or any SQL).
    ///
    /// ```no_run
    /// use rds_balancer::{RdsConnection, RetryPolicy};
    /// use sea_orm::{ConnectionTrait, DbErr, TransactionError, TransactionTrait};
    ///
    /// async fn transfer(db: &RdsConnection) -> Result<(), TransactionError<DbErr>> {
    ///     RetryPolicy::new()
    ///         .run(|| {
    ///             db.transaction::<_, (), DbErr>(|txn| {
    ///                 Box::pin(async move {
    ///                     txn.execute_unprepared("UPDATE account SET balance = balance - 10 WHERE id = 1")
    ///                         .await?;
    ///                     txn.execute_unprepared("UPDATE account SET balance = balance + 10 WHERE id = 2")
    ///                         .await?;
    ///                     Ok(())
    ///                 })
    ///             })
    ///         })
    ///         .await
    /// }
    /// ```
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: AsDbErr,
    {
        let policy = *self;
        // Attempts that have failed so far; shared by the callbacks below (atomic so that the
        // future stays `Send`).
        let failed = AtomicU32::new(0);
        op.retry(policy.backoff())
            .sleep(TokioSleeper)
            .when(|err: &E| {
                let attempt = failed.fetch_add(1, Ordering::Relaxed) + 1;
                let retry = policy.retries(err);
                if !retry
                    && attempt > 1
                    && let Some(db) = err.as_db_err()
                {
                    tracing::debug!(
                        attempt,
                        error = %Summary(&db),
                        "error is not retried; giving up"
                    );
                }
                retry
            })
            .notify(|err: &E, delay: Duration| {
                if let Some(db) = err.as_db_err() {
                    tracing::debug!(
                        attempt = failed.load(Ordering::Relaxed),
                        max_attempts = policy.max_attempts,
                        ?delay,
                        error = %Summary(&db),
                        "transient database error; retrying"
                    );
                }
            })
            .adjust(|err: &E, delay: Option<Duration>| {
                if delay.is_none()
                    && let Some(db) = err.as_db_err()
                {
                    tracing::warn!(
                        attempts = failed.load(Ordering::Relaxed),
                        error = %Summary(&db),
                        "transient database error persisted; giving up"
                    );
                }
                delay
            })
            .await
    }

    fn backoff(&self) -> ExponentialBuilder {
        let retries = usize::try_from(self.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay.min(self.max_delay))
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(retries);
        if self.jitter {
            backoff.with_jitter()
        } else {
            backoff
        }
    }
}

/// Runs `op` until it succeeds, fails with an error `policy` does not retry (by default, one
/// that is not [`is_transient`]), or has run `policy`'s `max_attempts` times.
///
/// Only wrap operations that are safe to run twice (reads, idempotent writes, whole
/// transactions): see [`RetryPolicy`]. This is [`RetryPolicy::run`] for operations that fail
/// with a plain [`DbErr`], which lets `?` in the closure infer the error type.
///
/// ```no_run
/// use rds_balancer::{RdsConnection, RetryPolicy, retry};
/// use sea_orm::{ConnectionTrait, DbErr, Statement};
///
/// async fn order_count(db: &RdsConnection) -> Result<Option<i64>, DbErr> {
///     retry(&RetryPolicy::new(), || async {
///         let backend = db.get_database_backend();
///         let stmt = Statement::from_string(backend, "SELECT count(*) AS n FROM orders");
///         match db.query_one_raw(stmt).await? {
///             Some(row) => Ok(Some(row.try_get("", "n")?)),
///             None => Ok(None),
///         }
///     })
///     .await
/// }
/// ```
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, op: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    policy.run(op).await
}

/// An error that is, or carries, a SeaORM [`DbErr`]: what lets [`RetryPolicy::run`] (and
/// [`RetryPolicy::retries`]) classify errors other than a plain `DbErr`.
///
/// Implemented for [`DbErr`], SeaORM's [`TransactionError`], rds-balancer's [`Error`] and
/// [`BreakerError`](crate::BreakerError). Implement it for your own error type to retry
/// operations that return it; an error that carries no `DbErr` is never retried.
///
/// ```
/// use std::borrow::Cow;
///
/// use rds_balancer::{AsDbErr, RetryPolicy};
/// use sea_orm::{ConnAcquireErr, DbErr};
///
/// #[derive(Debug)]
/// enum AppError {
///     Db(DbErr),
///     OutOfStock,
/// }
///
/// impl AsDbErr for AppError {
///     fn as_db_err(&self) -> Option<Cow<'_, DbErr>> {
///         match self {
///             AppError::Db(err) => Some(Cow::Borrowed(err)),
///             AppError::OutOfStock => None,
///         }
///     }
/// }
///
/// let policy = RetryPolicy::new();
/// assert!(policy.retries(&AppError::Db(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))));
/// assert!(!policy.retries(&AppError::OutOfStock));
/// ```
pub trait AsDbErr {
    /// The database error this error is or carries, if any (borrowed when it can be).
    fn as_db_err(&self) -> Option<Cow<'_, DbErr>>;
}

impl AsDbErr for DbErr {
    fn as_db_err(&self) -> Option<Cow<'_, DbErr>> {
        Some(Cow::Borrowed(self))
    }
}

impl<E: AsDbErr> AsDbErr for TransactionError<E> {
    /// `BEGIN` / `COMMIT` / `ROLLBACK` failures, or the closure's own error.
    fn as_db_err(&self) -> Option<Cow<'_, DbErr>> {
        match self {
            TransactionError::Connection(err) => Some(Cow::Borrowed(err)),
            TransactionError::Transaction(err) => err.as_db_err(),
        }
    }
}

impl AsDbErr for Error {
    /// The `DbErr` this error becomes at the SeaORM boundary (`DbErr::from(err)`).
    fn as_db_err(&self) -> Option<Cow<'_, DbErr>> {
        Some(match self {
            Error::Db(err) => Cow::Borrowed(err),
            // The same message `From<Error> for DbErr` builds (error.rs documents the format;
            // a test below keeps the two in step), without consuming `self`.
            other => Cow::Owned(DbErr::Custom(format!(
                "[rds-balancer:{}] {other}",
                other.kind().code()
            ))),
        })
    }
}

#[cfg(test)]
mod tests;
