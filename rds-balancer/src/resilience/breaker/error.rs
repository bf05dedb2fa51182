//! [`BreakerError`]: what a call through a circuit breaker fails with.

use std::borrow::Cow;
use std::fmt;

use sea_orm::DbErr;

use crate::resilience::retry::AsDbErr;

/// The code in the `DbErr` a refused call becomes: `[rds-balancer:circuit_open] ...`, the shape
/// of the crate's other errors at the SeaORM boundary (see `crate::error`).
const OPEN_CODE: &str = "circuit_open";

/// What [`BreakerError::Open`] says.
const OPEN_MESSAGE: &str = "the circuit breaker is open; the call was not attempted";

/// What a call through [`CircuitBreaker::call`](crate::CircuitBreaker::call) fails with: the
/// breaker refused it, or the operation itself failed.
///
/// For `E = DbErr` it converts into a [`DbErr`] with `?`: the operation's own error unchanged,
/// and [`Open`](BreakerError::Open) as `DbErr::Custom("[rds-balancer:circuit_open] the circuit
/// breaker is open; the call was not attempted")`, a stable message that [`is_circuit_open`]
/// recognises (and that [`is_transient`](crate::is_transient) does not retry).
///
/// ```
/// use rds_balancer::{BreakerError, is_circuit_open};
/// use sea_orm::DbErr;
///
/// let refused: BreakerError<DbErr> = BreakerError::Open;
/// assert!(refused.is_open());
/// assert_eq!(refused.to_string(), "the circuit breaker is open; the call was not attempted");
/// let db_err = DbErr::from(refused);
/// assert!(is_circuit_open(&db_err));
///
/// let failed = BreakerError::Inner(DbErr::RecordNotUpdated);
/// assert!(matches!(DbErr::from(failed), DbErr::RecordNotUpdated));
/// ```
#[derive(Debug)]
pub enum BreakerError<E> {
    /// The breaker is open (or half-open with every trial slot taken): the operation was not
    /// run.
    Open,
    /// The operation ran and failed with this error.
    Inner(E),
}

impl<E> BreakerError<E> {
    /// True when the breaker refused the call.
    ///
    /// ```
    /// assert!(rds_balancer::BreakerError::<std::io::Error>::Open.is_open());
    /// ```
    pub fn is_open(&self) -> bool {
        matches!(self, BreakerError::Open)
    }

    /// The operation's error, or `None` if the breaker refused the call.
    ///
    /// ```
    /// use rds_balancer::BreakerError;
    ///
    /// assert_eq!(BreakerError::Inner("boom").into_inner(), Some("boom"));
    /// assert_eq!(BreakerError::<&str>::Open.into_inner(), None);
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Open => None,
            BreakerError::Inner(err) => Some(err),
        }
    }
}

impl<E: fmt::Display> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerError::Open => f.write_str(OPEN_MESSAGE),
            BreakerError::Inner(err) => err.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BreakerError<E> {
    /// Transparent: the operation's error stands for itself, so its source is the source.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BreakerError::Open => None,
            BreakerError::Inner(err) => err.source(),
        }
    }
}

impl From<BreakerError<DbErr>> for DbErr {
    /// The operation's error unchanged; [`BreakerError::Open`] as a `DbErr::Custom` that
    /// [`is_circuit_open`] recognises.
    fn from(err: BreakerError<DbErr>) -> DbErr {
        match err {
            BreakerError::Open => open_db_err(),
            BreakerError::Inner(err) => err,
        }
    }
}

impl<E: AsDbErr> AsDbErr for BreakerError<E> {
    /// The operation's error, or for a refused call the `DbErr` it converts into (which
    /// [`is_transient`](crate::is_transient) does not retry).
    fn as_db_err(&self) -> Option<Cow<'_, DbErr>> {
        match self {
            BreakerError::Open => Some(Cow::Owned(open_db_err())),
            BreakerError::Inner(err) => err.as_db_err(),
        }
    }
}

fn open_db_err() -> DbErr {
    DbErr::Custom(format!("[rds-balancer:{OPEN_CODE}] {OPEN_MESSAGE}"))
}

/// True when `err` is a call a [`CircuitBreaker`](crate::CircuitBreaker) refused, converted into
/// a [`DbErr`] (from a [`BreakerError::Open`]).
///
/// ```
/// use rds_balancer::{BreakerError, is_circuit_open};
/// use sea_orm::DbErr;
///
/// assert!(is_circuit_open(&BreakerError::<DbErr>::Open.into()));
/// assert!(!is_circuit_open(&DbErr::Custom("circuit_open".into())));
/// ```
pub fn is_circuit_open(err: &DbErr) -> bool {
    let DbErr::Custom(message) = err else {
        return false;
    };
    message
        .strip_prefix("[rds-balancer:")
        .and_then(|rest| rest.strip_prefix(OPEN_CODE))
        .is_some_and(|rest| rest.starts_with(']'))
}
