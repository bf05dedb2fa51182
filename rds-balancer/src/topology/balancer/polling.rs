//! The polling task of a balancer: a sync every poll interval (jittered, backed off after
//! failures), and a writer failover followed at a high rate when one is asked for.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Polling, Shared};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::failover::Outcome;
use crate::topology::TopologyChange;

impl Polling {
    pub(super) fn is_running(&self) -> bool {
        !self.token.is_cancelled()
    }
}

impl Shared {
    /// One sync of `cluster` with the source.
    pub(super) async fn sync(&self, cluster: &Cluster) -> Result<Vec<TopologyChange>> {
        let destroyed = || self.destroyed.load(Ordering::SeqCst);
        if destroyed() {
            return Err(Error::Config("the balancer was destroyed".into()));
        }
        let topology = self.options.source.fetch().await?;
        let changes = crate::topology::apply(cluster, &topology, || !destroyed()).await?;
        if !changes.is_empty()
            && let Some(callback) = &self.options.on_change
        {
            callback(&changes);
        }
        Ok(changes)
    }

    pub(super) async fn poll(&self, cluster: &Cluster, token: CancellationToken) {
        let interval = self.options.poll_interval;
        let failover = cluster.failover();
        let mut failures: u32 = 0;
        loop {
            let wait = jittered(backoff(interval, failures));
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = failover.asked() => {
                    self.follow_failover(cluster, &token).await;
                    failures = 0;
                    continue;
                }
            }
            // Cancel-safe: a sync changes the hosts in one step after its last await.
            let synced = tokio::select! {
                () = token.cancelled() => return,
                synced = self.sync(cluster) => synced,
            };
            match synced {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "topology sync failed; keeping the last topology");
                }
            }
        }
    }

    /// Follows a writer failover: asks the source every `failover_poll_interval` and checks that
    /// the writer in use accepts writes, until it does (the failover completed: a new writer was
    /// applied, or the old one came back) or `failover_timeout` passes (it failed).
    async fn follow_failover(&self, cluster: &Cluster, token: &CancellationToken) {
        let options = &self.options;
        let started = tokio::time::Instant::now();
        // A check of a writer that does not answer must not hold up the next refresh for long.
        let check_timeout = Duration::from_secs(1).max(options.failover_poll_interval);
        loop {
            let synced = tokio::select! {
                () = token.cancelled() => return,
                synced = self.sync(cluster) => synced,
            };
            if let Err(error) = synced {
                tracing::debug!(%error, "topology refresh during failover failed");
            }
            let writer = Arc::clone(&cluster.hosts().writer);
            let writable = tokio::select! {
                () = token.cancelled() => return,
                writable = writer.writable(check_timeout) => writable,
            };
            if writable {
                tracing::info!(writer = %writer.name(), elapsed = ?started.elapsed(), "failover completed: the writer accepts writes");
                cluster.failover().finish(Outcome::Completed);
                return;
            }
            if started.elapsed() >= options.failover_timeout {
                tracing::error!(timeout = ?options.failover_timeout, "failover failed: no writer accepts writes");
                cluster.failover().finish(Outcome::Failed);
                return;
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(options.failover_poll_interval) => {}
            }
        }
    }
}

/// The wait before the next poll after `failures` failed syncs in a row: the interval, doubled
/// per failure, at most 32 times the interval or 5 minutes, whichever is larger.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let backed_off = interval.saturating_mul(1 << failures.min(5));
    backed_off.min(interval.max(Duration::from_secs(300)))
}

/// `wait` scaled by a factor in [0.8, 1.2).
fn jittered(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // A cheap spread from the clock's low bits; not for anything but de-synchronising polls.
    let fraction = f64::from(nanos.wrapping_mul(2_654_435_761) % 1000) / 1000.0;
    wait.mul_f64(0.8 + 0.4 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(30), 0), s(30));
        assert_eq!(backoff(s(30), 1), s(60));
        assert_eq!(backoff(s(30), 3), s(240));
        assert_eq!(backoff(s(30), 4), s(300));
        assert_eq!(backoff(s(30), 40), s(300));
        assert_eq!(
            backoff(Duration::from_millis(100), 40),
            Duration::from_millis(3200)
        );
        assert_eq!(
            backoff(s(600), 2),
            s(600),
            "never shorter than the interval"
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let wait = jittered(Duration::from_secs(10));
            assert!(
                wait >= Duration::from_secs(8) && wait < Duration::from_secs(12),
                "{wait:?}"
            );
        }
    }
}
