//! Writer failover: statements that see the writer fail ask for a
//! failover and wait for its outcome; the balancer, told so, refreshes the topology at a high
//! rate until a writer that accepts writes is confirmed, or gives up after the failover timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// How a failover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A writer that accepts writes is in use.
    Completed,
    /// None was confirmed within the failover timeout.
    Failed,
}

/// Where failovers stand: how many were asked for, and the outcome of the last one finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Round {
    /// Failovers asked for so far.
    asked: u64,
    /// Failovers finished so far (`asked` when none is running).
    finished: u64,
    /// The outcome of the last finished one.
    last: Outcome,
}

/// The failover state shared by a connection and the balancer that follows its cluster.
#[derive(Debug)]
pub(crate) struct Failover {
    round: watch::Sender<Round>,
    /// Wakes the balancer's polling task.
    asked: Notify,
    /// Whether a balancer is polling (without one, nothing could complete a failover).
    followed: AtomicBool,
    timeout: std::sync::Mutex<Duration>,
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            round: watch::Sender::new(Round {
                asked: 0,
                finished: 0,
                last: Outcome::Completed,
            }),
            asked: Notify::new(),
            followed: AtomicBool::new(false),
            timeout: std::sync::Mutex::new(Duration::from_secs(60)),
        }
    }
}

impl Failover {
    /// A balancer now follows the cluster; a failover gives up after `timeout`.
    pub(crate) fn start_following(&self, timeout: Duration) {
        *self
            .timeout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = timeout;
        self.followed.store(true, Ordering::SeqCst);
    }

    /// No balancer follows the cluster any more: a failover in progress fails now (nobody would
    /// finish it), and writer failures are returned as they are.
    pub(crate) fn stop_following(&self) {
        self.followed.store(false, Ordering::SeqCst);
        self.finish(Outcome::Failed);
    }

    fn timeout(&self) -> Duration {
        *self
            .timeout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a failover can happen at all (a balancer is polling).
    pub(crate) fn is_followed(&self) -> bool {
        self.followed.load(Ordering::SeqCst)
    }

    /// Asks for a failover (joins the one in progress, if any) and waits for its outcome, up to
    /// the failover timeout. `None` when no balancer follows the cluster.
    pub(crate) async fn request_and_wait(&self) -> Option<(Outcome, Duration)> {
        let joined = self.request()?;
        let timeout = self.timeout();
        let mut rx = self.round.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|r| r.finished >= joined)).await;
        let outcome = match waited {
            Ok(Ok(round)) => round.last,
            _ => Outcome::Failed,
        };
        Some((outcome, timeout))
    }

    /// Asks for a failover (joins the one in progress, if any) without waiting; returns its
    /// number, or `None` when no balancer follows the cluster.
    pub(crate) fn request(&self) -> Option<u64> {
        if !self.is_followed() {
            return None;
        }
        let mut joined = 0;
        self.round.send_modify(|round| {
            if round.asked == round.finished {
                round.asked += 1;
                tracing::warn!("the writer failed: failover started");
            }
            joined = round.asked;
        });
        self.asked.notify_one();
        Some(joined)
    }

    /// Whether a failover is in progress.
    pub(crate) fn is_running(&self) -> bool {
        let round = self.round.borrow();
        round.asked > round.finished
    }

    /// Completes when a failover is asked for (or one is already in progress).
    pub(crate) async fn asked(&self) {
        loop {
            let notified = self.asked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_running() {
                return;
            }
            notified.await;
        }
    }

    /// Ends the failover in progress, if any, with `outcome`.
    pub(crate) fn finish(&self, outcome: Outcome) {
        self.round.send_if_modified(|round| {
            if round.asked == round.finished {
                return false;
            }
            round.finished = round.asked;
            round.last = outcome;
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_balancer_nothing_waits() {
        let failover = Failover::default();
        assert_eq!(failover.request_and_wait().await, None);
        assert!(!failover.is_running());
    }

    #[tokio::test]
    async fn waiters_join_one_failover_and_see_its_outcome() {
        let failover = std::sync::Arc::new(Failover::default());
        failover.start_following(Duration::from_secs(10));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let failover = std::sync::Arc::clone(&failover);
                tokio::spawn(async move { failover.request_and_wait().await })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(5), failover.asked())
            .await
            .expect("asked");
        assert!(failover.is_running());
        // Let every waiter join before finishing.
        while failover.round.receiver_count() < 3 {
            tokio::task::yield_now().await;
        }
        failover.finish(Outcome::Completed);
        for waiter in waiters {
            let (outcome, _) = waiter.await.expect("joined").expect("followed");
            assert_eq!(outcome, Outcome::Completed);
        }
        assert!(!failover.is_running());
        assert_eq!(failover.round.borrow().asked, 1, "one failover for all");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failover_nobody_finishes_fails_at_the_timeout() {
        let failover = Failover::default();
        failover.start_following(Duration::from_secs(3));
        let (outcome, timeout) = failover.request_and_wait().await.expect("followed");
        assert_eq!(
            (outcome, timeout),
            (Outcome::Failed, Duration::from_secs(3))
        );
    }

    #[tokio::test]
    async fn a_balancer_that_stops_fails_the_failover_in_progress() {
        let failover = std::sync::Arc::new(Failover::default());
        failover.start_following(Duration::from_secs(60));
        let waiter = {
            let failover = std::sync::Arc::clone(&failover);
            tokio::spawn(async move { failover.request_and_wait().await })
        };
        failover.asked().await;
        while failover.round.receiver_count() < 1 {
            tokio::task::yield_now().await;
        }
        failover.stop_following();
        let (outcome, _) = waiter.await.expect("joined").expect("followed");
        assert_eq!(outcome, Outcome::Failed);
    }
}
