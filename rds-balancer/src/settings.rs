//! Checking settings when they are built: every duration and count a builder takes goes
//! through these, so that a bad one is a typed [`Error::Config`] naming the setting instead of
//! a task that spins (a zero interval) or panics (a duration too large to add to an instant).

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest duration any setting takes: 100 years, far from the limits of `Instant`
/// arithmetic even after back-off multiplies it.
pub(crate) const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `value` (the setting `name`) is at most [`LONGEST`].
pub(crate) fn bounded(name: &str, value: Duration) -> Result<()> {
    if value > LONGEST {
        return Err(Error::Config(
            format!("{name} is too long: {value:?} (at most 100 years)").into(),
        ));
    }
    Ok(())
}

/// `value` (the setting `name`) is above zero and at most [`LONGEST`].
pub(crate) fn positive(name: &str, value: Duration) -> Result<()> {
    if value.is_zero() {
        return Err(Error::Config(format!("{name} must be above zero").into()));
    }
    bounded(name, value)
}

/// `value` (the setting `name`) is at least 1.
pub(crate) fn at_least_one(name: &str, value: u32) -> Result<()> {
    if value == 0 {
        return Err(Error::Config(format!("{name} must be at least 1").into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_too_long_and_fine_durations() {
        let message = |r: Result<()>| r.expect_err("refused").to_string();
        assert!(message(positive("poll_interval", Duration::ZERO)).contains("poll_interval"));
        assert!(message(positive("drain_timeout", Duration::MAX)).contains("drain_timeout"));
        assert!(message(bounded("idle_timeout", Duration::MAX)).contains("idle_timeout"));
        assert!(positive("x", Duration::from_millis(1)).is_ok());
        assert!(positive("x", LONGEST).is_ok());
        assert!(bounded("x", Duration::ZERO).is_ok());
        assert!(
            message(at_least_one("failure_detection_count", 0)).contains("failure_detection_count")
        );
        assert!(at_least_one("x", 1).is_ok());
    }
}
