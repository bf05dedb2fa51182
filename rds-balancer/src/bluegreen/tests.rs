//! The deployment's state machine, without a server.

use super::*;

#[test]
fn the_metadata_is_read_faster_as_the_switchover_nears() {
    let options = BlueGreenOptions::new();
    let at = |phase| options.interval(phase, true);
    assert_eq!(at(BlueGreenPhase::NotCreated), Duration::from_secs(60));
    assert_eq!(at(BlueGreenPhase::Created), Duration::from_secs(1));
    for phase in [
        BlueGreenPhase::Preparation,
        BlueGreenPhase::InProgress,
        BlueGreenPhase::Post,
    ] {
        assert_eq!(at(phase), Duration::from_millis(100), "{phase}");
    }
    assert_eq!(at(BlueGreenPhase::Completed), Duration::from_secs(1));
    // No metadata at all: the baseline, whatever was seen before.
    assert_eq!(
        options.interval(BlueGreenPhase::InProgress, false),
        Duration::from_secs(60)
    );
}

#[test]
fn statements_wait_from_in_progress_until_the_hosts_moved_or_it_timed_out() {
    let bg = BlueGreen::new(BlueGreenOptions::new(), None);
    let status = |phase| metadata::Status {
        phase,
        endpoints: Vec::new(),
    };
    let t0 = Instant::now();
    bg.observe(Some(status(BlueGreenPhase::Preparation)), t0);
    assert!(!bg.suspended.load(Ordering::Acquire));
    bg.observe(Some(status(BlueGreenPhase::InProgress)), t0);
    assert!(bg.suspended.load(Ordering::Acquire));
    // Hosts moving past IN_PROGRESS: still held.
    bg.hold(true);
    bg.observe(Some(status(BlueGreenPhase::Post)), t0);
    assert!(bg.suspended.load(Ordering::Acquire));
    bg.hold(false);
    assert!(!bg.suspended.load(Ordering::Acquire));
    // Back to CREATED (a rollback); then a switchover stuck in IN_PROGRESS is given up on
    // after switchover_timeout.
    bg.observe(Some(status(BlueGreenPhase::Created)), t0);
    bg.observe(Some(status(BlueGreenPhase::InProgress)), t0);
    assert!(bg.suspended.load(Ordering::Acquire));
    bg.observe_unreadable(t0 + Duration::from_secs(179));
    assert!(bg.suspended.load(Ordering::Acquire));
    bg.observe_unreadable(t0 + Duration::from_secs(180));
    assert!(!bg.suspended.load(Ordering::Acquire));
    let events: Vec<String> = bg.status().timeline.into_iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        [
            "PREPARATION",
            "IN_PROGRESS",
            "POST",
            "ROLLBACK",
            "CREATED",
            "IN_PROGRESS",
            "TIMEOUT"
        ]
    );
}

#[tokio::test]
async fn an_open_transaction_is_overdue_once_the_switchover_held_statements_for_connect_timeout() {
    let timeout = Duration::from_millis(200);
    let bg = BlueGreen::new(BlueGreenOptions::new().connect_timeout(timeout), None);
    let status = |phase| metadata::Status {
        phase,
        endpoints: Vec::new(),
    };
    // No switchover: never overdue.
    assert!(
        tokio::time::timeout(timeout * 2, bg.overdue())
            .await
            .is_err()
    );
    // A switchover that ends before connect_timeout: not overdue either.
    let overdue = bg.overdue();
    tokio::pin!(overdue);
    bg.observe(Some(status(BlueGreenPhase::InProgress)), Instant::now());
    assert!(
        tokio::time::timeout(timeout / 4, overdue.as_mut())
            .await
            .is_err()
    );
    bg.observe(Some(status(BlueGreenPhase::Post)), Instant::now());
    assert!(tokio::time::timeout(timeout * 2, overdue).await.is_err());
    // One that holds statements for connect_timeout: overdue then, counted from IN_PROGRESS.
    bg.observe(Some(status(BlueGreenPhase::Created)), Instant::now());
    let started = Instant::now();
    bg.observe(Some(status(BlueGreenPhase::InProgress)), started);
    let waited = tokio::time::timeout(timeout * 10, bg.overdue())
        .await
        .expect("overdue");
    assert!(waited >= timeout, "{waited:?}");
    assert!(started.elapsed() >= timeout);
}
