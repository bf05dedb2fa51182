//! Graceful shutdown: refuse new work, let in-flight work finish, close every pool.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::Cluster;
use crate::pool::{Closing, HostPool, retire};

/// What [`RdsConnection::shutdown`](crate::RdsConnection::shutdown) achieved.
///
/// ```no_run
/// # async fn demo(db: rds_balancer::RdsConnection) {
/// let report: rds_balancer::ShutdownReport = db.shutdown(std::time::Duration::from_secs(30)).await;
/// if !report.drained {
///     eprintln!("{} statements cut short after {:?}", report.abandoned, report.elapsed);
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// True when every in-flight statement, stream and transaction finished and every pool
    /// closed within the timeout.
    pub drained: bool,
    /// Statements (and streams, and transactions run through `transaction(..)`) still running
    /// when the timeout passed. They keep their connections until they end.
    pub abandoned: usize,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl Cluster {
    /// Refuses new work, stops the background tasks, lets the work in flight finish within
    /// `timeout`, then closes every pool (those handed over included). Never waits past
    /// `timeout`: a change to the hosts still opening pools (a host that does not answer) is
    /// not waited for; it finds the cluster closing, publishes nothing and closes what it
    /// opened.
    pub(crate) async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let start = Instant::now();
        let deadline = start + timeout;
        self.closing.store(true, Ordering::SeqCst);
        if let Some(budget) = &self.budget {
            // Statements waiting for a slot fail now instead of at their acquire timeout.
            budget.close();
        }
        self.lifecycle.stop();
        // Polling stops: a failover in progress will not complete.
        self.failover.stop_following();
        // A change publishing its hosts holds the record: once it is free, no change publishes
        // any more (each checks `closing` first), so the snapshot below is final.
        drop(self.record());
        let hosts = self.pools.load_full();
        let all: Vec<Arc<HostPool>> = std::iter::once(&hosts.writer)
            .chain(&hosts.readers)
            .cloned()
            .collect();
        tracing::info!(hosts = all.len(), ?timeout, "rds-balancer shutting down");

        let left = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
        let retired = join_all(
            all.into_iter()
                .map(|host| retire(host, left(deadline), Closing::All)),
        )
        .await;
        let abandoned: usize = retired.iter().map(|r| r.still_running).sum();
        // Hosts that left service earlier may still be draining.
        self.lifecycle.close();
        let retired_in_time = tokio::time::timeout(left(deadline), self.lifecycle.wait())
            .await
            .is_ok();
        let closed_in_time = retired_in_time && retired.iter().all(|r| r.closed);
        let report = ShutdownReport {
            drained: abandoned == 0 && closed_in_time,
            abandoned,
            elapsed: start.elapsed(),
        };
        if report.drained {
            tracing::info!(elapsed = ?report.elapsed, "rds-balancer shut down");
        } else {
            tracing::warn!(abandoned, elapsed = ?report.elapsed, "rds-balancer shut down before all work finished");
        }
        report
    }
}
