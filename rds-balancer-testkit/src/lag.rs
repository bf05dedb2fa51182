//! Replica lag on purpose, for both kinds of cluster: the guards that
//! [`PgCluster::pause_replay`](crate::PgCluster::pause_replay) and
//! [`PgCluster::set_apply_delay`](crate::PgCluster::set_apply_delay) (and their
//! [`MariaDbCluster`](crate::MariaDbCluster) twins) return, which put the replica back when
//! dropped, and the polling every change waits on.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::{MariaDbNode, PgNode};

/// How long a change of replay may take to show in the server's state. A pause waits for a
/// commit that is being held back by an apply delay, so this is long.
pub(crate) const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// One replica, of either kind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Replica<'a> {
    Postgres(&'a PgNode),
    MariaDb(&'a MariaDbNode),
}

impl Replica<'_> {
    fn name(&self) -> &str {
        match self {
            Replica::Postgres(node) => node.name(),
            Replica::MariaDb(node) => node.name(),
        }
    }

    fn set_replay_paused(&self, paused: bool) -> Result<(), Error> {
        match self {
            Replica::Postgres(node) => node.set_replay_paused(paused),
            Replica::MariaDb(node) => node.set_replay_paused(paused),
        }
    }

    fn set_apply_delay(&self, delay: Duration) -> Result<(), Error> {
        match self {
            Replica::Postgres(node) => node.set_apply_delay(delay),
            Replica::MariaDb(node) => node.set_apply_delay(delay),
        }
    }
}

/// Replay paused on one replica, from
/// [`PgCluster::pause_replay`](crate::PgCluster::pause_replay) or
/// [`MariaDbCluster::pause_replay`](crate::MariaDbCluster::pause_replay): the replica keeps
/// receiving the primary's changes but applies none until the guard is dropped or
/// [`resume`](Self::resume)d.
///
/// Dropping it resumes replay and waits until the server confirms it, also when the test is
/// unwinding from a failed assertion, so that a cluster shared by several tests is left
/// replaying. A resume that fails when dropped panics, unless the thread is already panicking
/// (then the failure is ignored): call [`resume`](Self::resume) to get the error instead.
///
/// Guards do not nest: the first one to end resumes replay, whatever other guards of the same
/// replica are still alive.
#[must_use = "replay resumes as soon as the guard is dropped"]
pub struct ReplayPaused<'a> {
    replica: Replica<'a>,
    ended: bool,
}

impl<'a> ReplayPaused<'a> {
    /// Pauses replay on `replica` (confirmed) and returns the guard that resumes it.
    pub(crate) fn pause(replica: Replica<'a>) -> Result<Self, Error> {
        replica.set_replay_paused(true)?;
        Ok(ReplayPaused {
            replica,
            ended: false,
        })
    }

    /// Resumes replay now and waits until the server confirms it, reporting a failure (which
    /// dropping the guard can only panic with).
    pub fn resume(mut self) -> Result<(), Error> {
        self.ended = true;
        self.replica.set_replay_paused(false)
    }
}

impl Drop for ReplayPaused<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Err(err) = self.replica.set_replay_paused(false)
            && !thread::panicking()
        {
            panic!(
                "could not resume replay on {} when its pause guard was dropped: {err}",
                self.replica.name()
            );
        }
    }
}

impl fmt::Debug for ReplayPaused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayPaused")
            .field("replica", &self.replica.name())
            .field("ended", &self.ended)
            .finish()
    }
}

/// An apply delay on one replica, from
/// [`PgCluster::set_apply_delay`](crate::PgCluster::set_apply_delay) or
/// [`MariaDbCluster::set_apply_delay`](crate::MariaDbCluster::set_apply_delay): the replica
/// applies each transaction only once it is that old.
///
/// Dropping it sets the delay back to zero (the setting a cluster starts with) and waits until
/// the server confirms it, also when the test is unwinding from a failed assertion, so that a
/// cluster shared by several tests is left without delay. A reset that fails when dropped
/// panics, unless the thread is already panicking (then the failure is ignored): call
/// [`reset`](Self::reset) to get the error instead.
///
/// Guards do not nest: the first one to end sets the delay to zero, whatever other guards of
/// the same replica are still alive. A guard of a zero delay has nothing to undo, but is reset
/// all the same.
#[must_use = "the delay is set back to zero as soon as the guard is dropped"]
pub struct ApplyDelay<'a> {
    replica: Replica<'a>,
    delay: Duration,
    ended: bool,
}

impl<'a> ApplyDelay<'a> {
    /// Sets `delay` on `replica` (confirmed) and returns the guard that sets it back to zero.
    pub(crate) fn set(replica: Replica<'a>, delay: Duration) -> Result<Self, Error> {
        replica.set_apply_delay(delay)?;
        Ok(ApplyDelay {
            replica,
            delay,
            ended: false,
        })
    }

    /// The delay that was asked for (MariaDB rounds it up to whole seconds).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Sets the delay back to zero now and waits until the server confirms it, reporting a
    /// failure (which dropping the guard can only panic with).
    pub fn reset(mut self) -> Result<(), Error> {
        self.ended = true;
        self.replica.set_apply_delay(Duration::ZERO)
    }
}

impl Drop for ApplyDelay<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Err(err) = self.replica.set_apply_delay(Duration::ZERO)
            && !thread::panicking()
        {
            panic!(
                "could not set the apply delay of {} back to zero when its guard was dropped: \
                 {err}",
                self.replica.name()
            );
        }
    }
}

impl fmt::Debug for ApplyDelay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplyDelay")
            .field("replica", &self.replica.name())
            .field("delay", &self.delay)
            .field("ended", &self.ended)
            .finish()
    }
}

/// Asks `state` every 10 ms, until `timeout`, for what the server reports and whether that is
/// the awaited state; the timeout error says what was awaited (`what`) and what was seen last.
pub(crate) fn wait_for_state(
    what: impl FnOnce() -> String,
    timeout: Duration,
    mut state: impl FnMut() -> Result<(bool, String), Error>,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let (reached, seen) = state()?;
        if reached {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("{} (last seen: {seen})", what()),
                after: timeout,
            });
        }
        thread::sleep(Duration::from_millis(10));
    }
}
