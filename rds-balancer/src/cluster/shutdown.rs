//! Graceful shutdown: refuse new work, let in-flight work finish, close every pool.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::connection::RdsConnection;
use crate::pool::{Closing, HostPool, retire};

/// What [`RdsConnection::shutdown`] achieved.
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

impl RdsConnection {
    /// Shuts down gracefully: from now on every new statement or transaction on this connection
    /// (and all its clones) fails with [`ErrorKind::ShuttingDown`](crate::ErrorKind::ShuttingDown);
    /// statements, streams and transactions already running may finish within `timeout`; then
    /// every pool is closed, including pools you handed to the builder.
    ///
    /// Calling it again is harmless.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) {
    /// let report = db.shutdown(std::time::Duration::from_secs(30)).await;
    /// assert!(report.drained, "{} statements were cut short", report.abandoned);
    /// # }
    /// ```
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let start = Instant::now();
        let deadline = start + timeout;
        self.inner().closing.store(true, Ordering::SeqCst);
        self.inner().stopping.cancel();
        // Polling stops: a failover in progress will not complete.
        self.inner().failover.stop_following();
        // Wait for a topology change being applied: it publishes its hosts before releasing the
        // lock, and the next one sees `closing` and stops, so the snapshot below is final.
        drop(self.inner().applied.lock().await);
        let hosts = self.inner().pools.load_full();
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
        self.inner().tasks.close();
        let retired_in_time = tokio::time::timeout(left(deadline), self.inner().tasks.wait())
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

    /// Installs SIGTERM and SIGINT (Ctrl-C) handlers now, and returns a future that, once either
    /// signal arrives, runs [`shutdown`](Self::shutdown) with `timeout`.
    ///
    /// Call it inside a tokio runtime (the handlers need its I/O driver); spawn or await the
    /// future. The handlers replace the default action of those signals for the whole process
    /// (the process no longer exits on them by itself): exit once the future completes.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) -> std::io::Result<()> {
    /// let on_signal = db.shutdown_on_signal(std::time::Duration::from_secs(30))?;
    /// let report = on_signal.await;
    /// # let _ = report; Ok(()) }
    /// ```
    #[cfg(unix)]
    pub fn shutdown_on_signal(
        &self,
        timeout: Duration,
    ) -> std::io::Result<impl Future<Output = ShutdownReport> + Send + 'static> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let db = self.clone();
        Ok(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "signal received");
            db.shutdown(timeout).await
        })
    }
}
