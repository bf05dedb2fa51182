//! The background work of one cluster: every task is tracked (shutdown waits for it) and stops
//! when the cluster stops, at shutdown or when the last handle to the connection is dropped.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tracker of a cluster's tasks and the token that stops them. Dropped (a build that
/// failed halfway), it stops every task started on it.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    tasks: TaskTracker,
    stopping: CancellationToken,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Lifecycle::default()
    }

    /// Runs `work` to its end, tracked: shutdown waits for it (hosts draining).
    pub(crate) fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(work)
    }

    /// Runs `work` until it ends or the cluster stops, tracked.
    pub(crate) fn spawn_until_stopped<F>(&self, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stopping = self.stopping.clone();
        self.tasks.spawn(async move {
            stopping.run_until_cancelled(work).await;
        })
    }

    /// A token cancelled when the cluster stops (or earlier, when cancelled itself).
    pub(crate) fn child_token(&self) -> CancellationToken {
        self.stopping.child_token()
    }

    /// Stops every background task: polling, monitors and credential renewals.
    pub(crate) fn stop(&self) {
        self.stopping.cancel();
    }

    /// Lets [`wait`](Self::wait) end once the tasks running now have.
    pub(crate) fn close(&self) {
        self.tasks.close();
    }

    /// Waits for every tracked task, once [`close`](Self::close)d.
    pub(crate) async fn wait(&self) {
        self.tasks.wait().await;
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.stopping.cancel();
    }
}
