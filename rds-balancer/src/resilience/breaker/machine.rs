//! The breaker's decisions: a pure state machine driven by the `Instant` it is given.

use std::time::Instant;

use super::{BreakerOptions, BreakerState};

/// A call the breaker let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admission {
    /// For a half-open trial, the trial window it belongs to (to free its slot if it never
    /// reports); `None` for a call admitted while closed.
    pub(crate) trial: Option<u64>,
}

/// A state change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    Opened { failures: u32 },
    Reopened,
    Tripped,
    HalfOpened,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    Open {
        /// When a trial may be admitted; `None`: never (`open_for` beyond the clock's range).
        until: Option<Instant>,
    },
    HalfOpen {
        /// Trials admitted in this window and not yet reported or released.
        trials: u32,
        /// When the window began.
        since: Instant,
    },
}

/// The breaker's decisions: pure, every method given the time it should consider "now".
#[derive(Debug)]
pub(super) struct Machine {
    phase: Phase,
    /// Counts half-open windows, so that a dropped trial from an earlier window does not free a
    /// slot in the current one.
    window: u64,
}

impl Machine {
    pub(super) fn new() -> Self {
        Machine {
            phase: Phase::Closed { failures: 0 },
            window: 0,
        }
    }

    pub(super) fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if elapsed(until, now) => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub(super) fn admit(
        &mut self,
        now: Instant,
        options: &BreakerOptions,
    ) -> (Option<Admission>, Option<Transition>) {
        match self.phase {
            Phase::Closed { .. } => (Some(Admission { trial: None }), None),
            Phase::Open { until } if elapsed(until, now) => {
                (Some(self.new_window(now)), Some(Transition::HalfOpened))
            }
            Phase::Open { .. } => (None, None),
            Phase::HalfOpen { trials, since } => {
                if trials < options.half_open_trials {
                    self.phase = Phase::HalfOpen {
                        trials: trials + 1,
                        since,
                    };
                    (Some(self.trial()), None)
                } else if elapsed(since.checked_add(options.open_for), now) {
                    // The trials of this window never reported (their callers forgot to): give
                    // up on them and start a new window.
                    (Some(self.new_window(now)), None)
                } else {
                    (None, None)
                }
            }
        }
    }

    pub(super) fn success(&mut self) -> Option<Transition> {
        match self.phase {
            Phase::Closed { .. } => {
                self.phase = Phase::Closed { failures: 0 };
                None
            }
            Phase::HalfOpen { .. } => {
                self.phase = Phase::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            // A call admitted before the breaker opened, finishing late: the breaker stays open
            // until a trial proves the service healthy.
            Phase::Open { .. } => None,
        }
    }

    pub(super) fn failure(&mut self, now: Instant, options: &BreakerOptions) -> Option<Transition> {
        let until = now.checked_add(options.open_for);
        match self.phase {
            Phase::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= options.failure_threshold {
                    self.phase = Phase::Open { until };
                    Some(Transition::Opened { failures })
                } else {
                    self.phase = Phase::Closed { failures };
                    None
                }
            }
            Phase::HalfOpen { .. } => {
                self.phase = Phase::Open { until };
                Some(Transition::Reopened)
            }
            // A call admitted before the breaker opened, failing late: it does not extend the
            // open period.
            Phase::Open { .. } => None,
        }
    }

    pub(super) fn trip(&mut self, now: Instant, options: &BreakerOptions) -> Option<Transition> {
        let was_open = matches!(self.phase, Phase::Open { .. });
        self.phase = Phase::Open {
            until: now.checked_add(options.open_for),
        };
        (!was_open).then_some(Transition::Tripped)
    }

    pub(super) fn release(&mut self, window: u64) {
        if let Phase::HalfOpen { trials, since } = self.phase
            && window == self.window
        {
            self.phase = Phase::HalfOpen {
                trials: trials.saturating_sub(1),
                since,
            };
        }
    }

    /// Starts a half-open window at `now` and admits its first trial.
    fn new_window(&mut self, now: Instant) -> Admission {
        self.window = self.window.wrapping_add(1);
        self.phase = Phase::HalfOpen {
            trials: 1,
            since: now,
        };
        self.trial()
    }

    fn trial(&self) -> Admission {
        Admission {
            trial: Some(self.window),
        }
    }
}

/// Whether the `deadline` (`None`: never) has passed at `now`.
fn elapsed(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|deadline| now >= deadline)
}
