//! Failure handling for applications (and, later, for the balancer's own per-host breakers):
//! which errors are transient ([`is_transient`]), retrying them with exponential backoff and
//! jitter ([`retry`], [`RetryPolicy`]), and a [`CircuitBreaker`] that stops calling a failing
//! service for a while.
//!
//! The two compose: put the breaker inside the retry to count every attempt, or outside it to
//! count whole retried operations.
//!
//! ```no_run
//! use rds_balancer::{CircuitBreaker, RdsConnection, RetryPolicy, is_transient, retry};
//! use sea_orm::{ConnectionTrait, DbErr};
//!
//! async fn ping(db: &RdsConnection, breaker: &CircuitBreaker) -> Result<(), DbErr> {
//!     retry(&RetryPolicy::new(), || async {
//!         breaker
//!             .call_with(is_transient, || db.execute_unprepared("SELECT 1"))
//!             .await?;
//!         Ok(())
//!     })
//!     .await
//! }
//! ```

mod breaker;
#[cfg(test)]
mod fake;
mod fault;
mod retry;
mod transient;

pub use self::breaker::{
    BreakerError, BreakerOptions, BreakerState, CircuitBreaker, is_circuit_open,
};
pub(crate) use self::fault::{Fault, Phase, never_sent};
pub use self::retry::{AsDbErr, RetryPolicy, retry};
pub(crate) use self::transient::Summary;
pub use self::transient::is_transient;
