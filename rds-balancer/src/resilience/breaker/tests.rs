//! Every transition of the breaker, driven by an injected clock (no sleeping).

use std::error::Error as _;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use sea_orm::{ConnAcquireErr, DbErr};

use super::*;
use crate::error::ErrorKind;
use crate::resilience::retry::AsDbErr;
use crate::resilience::transient::is_transient;

const OPEN_FOR: Duration = Duration::from_secs(10);

fn breaker(threshold: u32, trials: u32) -> CircuitBreaker {
    CircuitBreaker::new(
        BreakerOptions::new()
            .failure_threshold(threshold)
            .half_open_trials(trials)
            .open_for(OPEN_FOR),
    )
}

fn admitted(breaker: &CircuitBreaker, now: Instant) -> bool {
    breaker.admit_at(now).is_some()
}

/// A breaker opened at `t0` after `threshold` failures.
fn opened(threshold: u32, trials: u32, t0: Instant) -> CircuitBreaker {
    let b = breaker(threshold, trials);
    for _ in 0..threshold {
        assert!(admitted(&b, t0));
        b.record_failure_at(t0);
    }
    assert_eq!(b.state_at(t0), BreakerState::Open);
    b
}

#[test]
fn a_new_breaker_is_closed_and_admits_every_call() {
    let t0 = Instant::now();
    let b = breaker(5, 1);
    assert_eq!(b.state_at(t0), BreakerState::Closed);
    for _ in 0..100 {
        assert_eq!(b.admit_at(t0), Some(Admission { trial: None }));
    }
}

#[test]
fn consecutive_failures_open_it_at_the_threshold() {
    let t0 = Instant::now();
    let b = breaker(3, 1);
    b.record_failure_at(t0);
    b.record_failure_at(t0);
    assert_eq!(b.state_at(t0), BreakerState::Closed);
    assert!(admitted(&b, t0));
    b.record_failure_at(t0);
    assert_eq!(b.state_at(t0), BreakerState::Open);
    assert!(!admitted(&b, t0));
}

#[test]
fn a_success_resets_the_failure_count() {
    let t0 = Instant::now();
    let b = breaker(3, 1);
    b.record_failure_at(t0);
    b.record_failure_at(t0);
    b.record_success();
    b.record_failure_at(t0);
    b.record_failure_at(t0);
    assert_eq!(b.state_at(t0), BreakerState::Closed, "2 consecutive, not 4");
    b.record_failure_at(t0);
    assert_eq!(b.state_at(t0), BreakerState::Open);
}

#[test]
fn an_open_breaker_refuses_until_open_for_has_elapsed_then_admits_one_trial() {
    let t0 = Instant::now();
    let b = opened(2, 1, t0);
    let almost = t0 + OPEN_FOR - Duration::from_millis(1);
    assert!(!admitted(&b, almost));
    assert_eq!(b.state_at(almost), BreakerState::Open);
    let due = t0 + OPEN_FOR;
    assert_eq!(b.state_at(due), BreakerState::HalfOpen);
    let trial = b.admit_at(due);
    assert!(matches!(trial, Some(Admission { trial: Some(_) })));
    assert_eq!(b.state_at(due), BreakerState::HalfOpen);
    // One trial at a time: the next call is refused while the trial runs.
    assert!(!admitted(&b, due));
    assert!(!admitted(&b, due + Duration::from_secs(1)));
}

#[test]
fn half_open_admits_up_to_the_configured_number_of_trials() {
    let t0 = Instant::now();
    let b = opened(1, 3, t0);
    let due = t0 + OPEN_FOR;
    assert!(admitted(&b, due));
    assert!(admitted(&b, due));
    assert!(admitted(&b, due));
    assert!(!admitted(&b, due));
}

#[test]
fn a_successful_trial_closes_the_breaker() {
    let t0 = Instant::now();
    let b = opened(2, 1, t0);
    let due = t0 + OPEN_FOR;
    assert!(admitted(&b, due));
    b.record_success();
    assert_eq!(b.state_at(due), BreakerState::Closed);
    assert!(admitted(&b, due));
    // Closed afresh: the count starts from zero.
    b.record_failure_at(due);
    assert_eq!(b.state_at(due), BreakerState::Closed);
}

#[test]
fn a_failed_trial_opens_it_for_another_open_for() {
    let t0 = Instant::now();
    let b = opened(2, 1, t0);
    let due = t0 + OPEN_FOR;
    let failed_at = due + Duration::from_secs(3);
    assert!(admitted(&b, due));
    b.record_failure_at(failed_at);
    assert_eq!(b.state_at(failed_at), BreakerState::Open);
    // Measured from the failure, not from the first opening.
    let almost = failed_at + OPEN_FOR - Duration::from_millis(1);
    assert!(!admitted(&b, almost));
    assert!(admitted(&b, failed_at + OPEN_FOR));
}

#[test]
fn late_outcomes_of_calls_admitted_before_opening_are_ignored() {
    let t0 = Instant::now();
    let b = opened(1, 1, t0);
    // A success does not close an open breaker: only a trial can.
    b.record_success();
    assert_eq!(b.state_at(t0), BreakerState::Open);
    // A failure does not extend the open period.
    b.record_failure_at(t0 + Duration::from_secs(5));
    assert!(admitted(&b, t0 + OPEN_FOR));
}

#[test]
fn a_released_trial_frees_its_slot_but_only_in_its_own_window() {
    let t0 = Instant::now();
    let b = opened(1, 1, t0);
    let due = t0 + OPEN_FOR;
    let first = b.admit_at(due).and_then(|a| a.trial);
    assert!(first.is_some());
    assert!(!admitted(&b, due));
    if let Some(window) = first {
        b.release(window);
    }
    let second = b.admit_at(due).and_then(|a| a.trial);
    assert_eq!(second, first, "same window, freed slot");
    // The trial fails: open again, then a new window.
    b.record_failure_at(due);
    let later = due + OPEN_FOR;
    let third = b.admit_at(later).and_then(|a| a.trial);
    assert!(third.is_some() && third != first);
    // A stale release from the earlier window frees nothing.
    if let Some(window) = first {
        b.release(window);
    }
    assert!(!admitted(&b, later));
}

#[test]
fn trials_that_never_report_are_given_up_after_open_for() {
    let t0 = Instant::now();
    let b = opened(1, 1, t0);
    let due = t0 + OPEN_FOR;
    assert!(admitted(&b, due));
    assert!(!admitted(&b, due + OPEN_FOR - Duration::from_millis(1)));
    assert!(admitted(&b, due + OPEN_FOR));
    assert_eq!(b.state_at(due + OPEN_FOR), BreakerState::HalfOpen);
}

#[test]
fn tripping_opens_it_at_once_from_any_state() {
    let t0 = Instant::now();
    let b = breaker(5, 1);
    b.trip_at(t0);
    assert_eq!(b.state_at(t0), BreakerState::Open);
    assert!(!admitted(&b, t0));
    // From half-open (a trial in flight): open again for a full `open_for` from the trip.
    let due = t0 + OPEN_FOR;
    assert!(admitted(&b, due));
    let tripped_at = due + Duration::from_secs(2);
    b.trip_at(tripped_at);
    assert!(!admitted(
        &b,
        tripped_at + OPEN_FOR - Duration::from_millis(1)
    ));
    // From open: the open period restarts at the trip.
    let reopened = tripped_at + Duration::from_secs(5);
    b.trip_at(reopened);
    assert!(!admitted(&b, tripped_at + OPEN_FOR));
    assert!(admitted(&b, reopened + OPEN_FOR));
    // A trial success closes a tripped breaker like any other.
    b.record_success();
    assert_eq!(b.state_at(reopened + OPEN_FOR), BreakerState::Closed);
}

#[test]
fn zero_settings_count_as_one() {
    let t0 = Instant::now();
    let b = breaker(0, 0);
    b.record_failure_at(t0);
    assert_eq!(b.state_at(t0), BreakerState::Open, "one failure opens it");
    assert!(admitted(&b, t0 + OPEN_FOR), "one trial is admitted");
    assert!(!admitted(&b, t0 + OPEN_FOR));
}

#[test]
fn an_open_for_beyond_the_clock_keeps_it_open() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(
        BreakerOptions::new()
            .failure_threshold(1)
            .open_for(Duration::MAX),
    );
    b.record_failure_at(t0);
    assert_eq!(
        b.state_at(t0 + Duration::from_secs(86_400)),
        BreakerState::Open
    );
    assert!(!admitted(&b, t0 + Duration::from_secs(86_400)));
}

#[test]
fn clones_share_one_breaker() {
    let t0 = Instant::now();
    let b = breaker(1, 1);
    let clone = b.clone();
    clone.record_failure_at(t0);
    assert_eq!(b.state_at(t0), BreakerState::Open);
}

#[test]
fn the_public_methods_use_the_clock() {
    let b = CircuitBreaker::new(
        BreakerOptions::new()
            .failure_threshold(1)
            .open_for(Duration::from_secs(3600)),
    );
    assert!(b.allow());
    b.record_failure();
    assert_eq!(b.state(), BreakerState::Open);
    assert!(!b.allow());
}

/// A breaker whose `open_for` elapsed a second ago: the next call is a half-open trial.
fn due_for_a_trial() -> CircuitBreaker {
    let open_for = Duration::from_secs(60);
    let b = CircuitBreaker::new(
        BreakerOptions::new()
            .failure_threshold(1)
            .open_for(open_for),
    );
    let now = Instant::now();
    let past = now
        .checked_sub(open_for + Duration::from_secs(1))
        .unwrap_or(now);
    b.record_failure_at(past);
    b
}

#[tokio::test]
async fn call_runs_the_operation_only_when_admitted_and_records_its_outcome() {
    let runs = AtomicU32::new(0);
    let failing = || async {
        runs.fetch_add(1, Ordering::Relaxed);
        Err::<(), _>(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
    };
    let b = CircuitBreaker::new(
        BreakerOptions::new()
            .failure_threshold(2)
            .open_for(Duration::from_secs(3600)),
    );
    assert!(matches!(b.call(failing).await, Err(BreakerError::Inner(_))));
    assert!(matches!(b.call(failing).await, Err(BreakerError::Inner(_))));
    assert_eq!(b.state(), BreakerState::Open);
    assert!(matches!(b.call(failing).await, Err(BreakerError::Open)));
    assert_eq!(
        runs.load(Ordering::Relaxed),
        2,
        "the refused call did not run"
    );

    let b = due_for_a_trial();
    assert_eq!(b.call(|| async { Ok::<_, DbErr>(7) }).await.ok(), Some(7));
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test]
async fn call_with_counts_only_the_errors_it_is_told_to() {
    let b = CircuitBreaker::new(BreakerOptions::new().failure_threshold(1));
    let unique = || async { Err::<(), _>(DbErr::RecordNotInserted) };
    let result = b.call_with(is_transient, unique).await;
    assert!(matches!(
        result,
        Err(BreakerError::Inner(DbErr::RecordNotInserted))
    ));
    assert_eq!(b.state(), BreakerState::Closed);
    let timeout = || async { Err::<(), _>(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) };
    let _ = b.call_with(is_transient, timeout).await;
    assert_eq!(b.state(), BreakerState::Open);

    // In half-open, a non-failure error is a sign of life: it closes the breaker.
    let b = due_for_a_trial();
    let _ = b.call_with(is_transient, unique).await;
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_dropped_trial_call_frees_its_slot() {
    let b = due_for_a_trial();
    let pending = b.call(std::future::pending::<Result<(), DbErr>>);
    assert!(
        pending.now_or_never().is_none(),
        "polled once, then dropped"
    );
    assert_eq!(b.state(), BreakerState::HalfOpen);
    // Without the release, this call would be refused until another `open_for` passed.
    assert_eq!(b.call(|| async { Ok::<_, DbErr>(()) }).await.ok(), Some(()));
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn breaker_errors_display_convert_and_classify() {
    let open: BreakerError<DbErr> = BreakerError::Open;
    assert_eq!(
        open.to_string(),
        "the circuit breaker is open; the call was not attempted"
    );
    assert!(open.source().is_none());
    let seen = open.as_db_err().map(|e| e.into_owned());
    let db = DbErr::from(open);
    assert_eq!(seen.as_ref(), Some(&db));
    assert_eq!(
        db.to_string(),
        "Custom Error: [rds-balancer:circuit_open] the circuit breaker is open; the call was not \
         attempted"
    );
    assert!(is_circuit_open(&db));
    assert!(!is_transient(&db), "a refused call is not retried");
    // Same shape as the crate's other errors, though no `ErrorKind` names it yet.
    assert_eq!(ErrorKind::of(&db), None);

    let inner = BreakerError::Inner(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
    assert!(inner.as_db_err().is_some_and(|e| is_transient(&e)));
    assert!(is_transient(&DbErr::from(inner)));

    let io_err = BreakerError::Inner(io::Error::other("boom"));
    assert_eq!(io_err.to_string(), "boom");
    assert!(!is_circuit_open(&DbErr::Custom(
        "[rds-balancer:circuit_opened] x".into()
    )));
    assert!(!is_circuit_open(&DbErr::RecordNotUpdated));
}

#[test]
fn states_display_in_kebab_case() {
    let names: Vec<String> = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names, ["closed", "open", "half-open"]);
}
