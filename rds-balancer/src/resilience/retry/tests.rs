//! Retrying on a paused tokio clock: attempts, delays, predicates and error types.

use std::sync::Mutex;

use backon::BackoffBuilder;
use sea_orm::{ConnAcquireErr, RuntimeErr};

use super::*;
use crate::error::ErrorKind;

fn transient() -> DbErr {
    DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)
}

fn fast() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(4))
}

/// Runs `policy` over an operation that fails with the errors of `script` in turn, then
/// succeeds; returns the result and the number of attempts.
async fn scripted(policy: &RetryPolicy, script: Vec<DbErr>) -> (Result<u32, DbErr>, u32) {
    let attempts = AtomicU32::new(0);
    let script = Mutex::new(script.into_iter());
    let result = retry(policy, || {
        let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        let next = script.lock().map(|mut s| s.next()).unwrap_or(None);
        async move {
            match next {
                Some(err) => Err(err),
                None => Ok(attempt),
            }
        }
    })
    .await;
    (result, attempts.load(Ordering::Relaxed))
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_until_success() {
    let (result, attempts) = scripted(&fast(), vec![transient(), transient()]).await;
    assert_eq!(result, Ok(3));
    assert_eq!(attempts, 3);
}

#[tokio::test(start_paused = true)]
async fn the_last_error_is_returned_after_max_attempts() {
    let policy = fast().max_attempts(4);
    let script = vec![transient(); 10];
    let (result, attempts) = scripted(&policy, script).await;
    assert_eq!(result, Err(transient()));
    assert_eq!(attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_returned_at_once() {
    let not_found = DbErr::RecordNotFound("cake".into());
    let (result, attempts) = scripted(&fast(), vec![not_found.clone()]).await;
    assert_eq!(result, Err(not_found.clone()));
    assert_eq!(attempts, 1);
    // ... also after a retry.
    let (result, attempts) = scripted(&fast(), vec![transient(), not_found.clone()]).await;
    assert_eq!(result, Err(not_found));
    assert_eq!(attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn zero_max_attempts_still_runs_once() {
    let (result, attempts) = scripted(&fast().max_attempts(0), vec![transient()]).await;
    assert_eq!(result, Err(transient()));
    assert_eq!(attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn the_predicate_can_be_replaced() {
    fn everything(_: &DbErr) -> bool {
        true
    }
    fn nothing(_: &DbErr) -> bool {
        false
    }
    let script = vec![DbErr::RecordNotFound("cake".into())];
    let (result, attempts) = scripted(&fast().retry_if(everything), script.clone()).await;
    assert_eq!((result, attempts), (Ok(2), 2));
    let (result, attempts) = scripted(&fast().retry_if(nothing), vec![transient()]).await;
    assert_eq!((result, attempts), (Err(transient()), 1));
}

#[tokio::test(start_paused = true)]
async fn delays_grow_exponentially_up_to_the_cap_without_jitter() {
    let policy = RetryPolicy::new()
        .max_attempts(6)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(500))
        .jitter(false);
    let starts = Mutex::new(Vec::new());
    let result: Result<(), DbErr> = retry(&policy, || {
        if let Ok(mut starts) = starts.lock() {
            starts.push(tokio::time::Instant::now());
        }
        async { Err(transient()) }
    })
    .await;
    assert!(result.is_err());
    let starts = starts.into_inner().unwrap_or_default();
    let gaps: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    // backon computes in f32 seconds and tokio's timer ticks in whole milliseconds.
    let expected = [100, 200, 400, 500, 500];
    assert_eq!(gaps.len(), expected.len());
    for (gap, want) in gaps.iter().zip(expected) {
        assert!((want..=want + 1).contains(gap), "{gaps:?} != {expected:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_stretches_each_delay_by_at_most_itself() {
    let policy = RetryPolicy::new()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(200));
    let starts = Mutex::new(Vec::new());
    let _: Result<(), DbErr> = retry(&policy, || {
        if let Ok(mut starts) = starts.lock() {
            starts.push(tokio::time::Instant::now());
        }
        async { Err(transient()) }
    })
    .await;
    let starts = starts.into_inner().unwrap_or_default();
    let gaps: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    let bases = [100, 200, 200];
    assert_eq!(gaps.len(), bases.len());
    for (gap, base) in gaps.into_iter().zip(bases) {
        assert!(
            (base..=2 * base + 1).contains(&gap),
            "{gap} ms for a {base} ms delay"
        );
    }
}

#[test]
fn settings_are_sanitised() {
    let policy = RetryPolicy::new()
        .factor(0.5)
        .initial_delay(Duration::from_secs(10))
        .max_delay(Duration::from_secs(1));
    assert_eq!(policy.factor, 1.0);
    assert_eq!(RetryPolicy::new().factor(f32::NAN).factor, 1.0);
    let mut delays = BackoffBuilder::build(policy.jitter(false).backoff());
    assert_eq!(delays.next(), Some(Duration::from_secs(1)));
    assert_eq!(delays.next(), Some(Duration::from_secs(1)));
    assert_eq!(delays.next(), None, "3 attempts: 2 retries");
}

#[tokio::test(start_paused = true)]
async fn transaction_errors_are_classified_by_the_error_inside() {
    let policy = fast();
    let attempts = AtomicU32::new(0);
    let result: Result<(), TransactionError<DbErr>> = policy
        .run(|| {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed);
            async move {
                match attempt {
                    0 => Err(TransactionError::Connection(transient())),
                    1 => Err(TransactionError::Transaction(transient())),
                    _ => Err(TransactionError::Transaction(DbErr::RecordNotUpdated)),
                }
            }
        })
        .await;
    assert!(matches!(
        result,
        Err(TransactionError::Transaction(DbErr::RecordNotUpdated))
    ));
    assert_eq!(attempts.load(Ordering::Relaxed), 3);
}

#[test]
fn crate_errors_show_the_predicate_the_db_err_they_become() {
    let connect = || Error::Connect {
        host: "127.0.0.1:1".into(),
        source: DbErr::Custom("refused".into()),
    };
    let errors = [
        Error::NoActiveReaders,
        Error::ShuttingDown,
        Error::WriteRefused {
            why: "an INSERT".into(),
        },
        Error::Config("no writer".into()),
        connect(),
        Error::Topology {
            operation: "DescribeDBClusters".into(),
            code: None,
            message: "timed out".into(),
        },
        Error::HostUnavailable {
            host: "reader-1".into(),
            why: "3 probes failed".into(),
        },
    ];
    for err in errors {
        let seen = err.as_db_err().map(Cow::into_owned);
        let kind = err.kind();
        let converted = DbErr::from(err);
        assert_eq!(seen.as_ref().and_then(ErrorKind::of), Some(kind));
        assert_eq!(seen.map(|e| e.to_string()), Some(converted.to_string()));
    }
    let db = Error::Db(DbErr::Exec(RuntimeErr::Internal("x".into())));
    assert!(matches!(db.as_db_err(), Some(Cow::Borrowed(_))));
    assert!(RetryPolicy::new().retries(&connect()));
    assert!(!RetryPolicy::new().retries(&Error::ShuttingDown));
}

#[test]
fn the_retry_future_is_send_when_the_operation_is() {
    fn assert_send<T: Send>(_: &T) {}
    let policy = RetryPolicy::new();
    let future = retry(&policy, || async { Ok::<_, DbErr>(1) });
    assert_send(&future);
}
