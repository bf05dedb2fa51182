//! [`Writes`]: a stream of writes from another task, to move the writer's position on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rds_balancer::RdsConnection;
use sea_orm::ConnectionTrait;

/// A task inserting a row into `cake` through `db` every few milliseconds until stopped.
pub struct Writes {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writes {
    /// Starts inserting, one row every `every_ms`.
    pub fn start(db: RdsConnection, every_ms: u64) -> Writes {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            while !stopped.load(Ordering::SeqCst) {
                db.execute_unprepared("INSERT INTO cake (name) VALUES ('other')")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(every_ms)).await;
            }
        });
        Writes { stop, task }
    }

    /// Stops it; fails the test if one of its writes failed.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
    }
}
