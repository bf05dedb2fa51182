//! Readers that join in position mode: held out of reads until they have replayed the writer's
//! position as of their joining.
//!
//! Once every reader has replayed a task's write, the task's reads go anywhere again without
//! a check (its write is *covered*). A reader that joins later may be behind those writes: it
//! takes no read at all until it has replayed what the writer had when it joined, which is at
//! least every covered write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::fetch::{self, Flavour};
use crate::pool::HostPool;
use crate::position::Position;

/// How long one position query may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between two checks of a joining reader: doubling from the first, up to the last.
const PACE: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// Whether a reader is held out of reads until it catches up with its joining.
#[derive(Debug, Default)]
pub(crate) struct JoinGate {
    closed: AtomicBool,
}

impl JoinGate {
    /// Whether it is held out.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn set(&self, closed: bool) {
        self.closed.store(closed, Ordering::Release);
    }
}

/// Holds `reader`, about to join, out of reads, and returns the work that lets it in once it
/// has replayed the position `writer` has after it joined (to run once it has). The work ends
/// early when the reader is gone (left and drained).
pub(crate) fn hold(
    reader: &Arc<HostPool>,
    writer: Arc<HostPool>,
    flavour: Flavour,
) -> impl Future<Output = ()> + Send + 'static {
    reader.join_gate().set(true);
    let reader = Arc::downgrade(reader);
    async move { let_in(reader, writer, flavour).await }
}

async fn let_in(reader: Weak<HostPool>, writer: Arc<HostPool>, flavour: Flavour) {
    let mut pause = PACE.0;
    let mut target: Option<Position> = None;
    loop {
        let Some(host) = reader.upgrade() else {
            return;
        };
        if target.is_none() {
            target = read(fetch::writer_position(writer.conn(), flavour)).await;
        }
        if let Some(target) = &target
            && let Some(replayed) = read(fetch::replayed_position(host.conn(), flavour)).await
            && target.reached_by(&replayed)
        {
            host.join_gate().set(false);
            tracing::info!(reader = %host.name(), "joining reader caught up: it takes reads");
            return;
        }
        drop(host);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(PACE.1);
    }
}

/// The position `query` gives within [`FETCH_TIMEOUT`], or `None`.
async fn read(
    query: impl Future<Output = Result<Option<Position>, sea_orm::DbErr>>,
) -> Option<Position> {
    match tokio::time::timeout(FETCH_TIMEOUT, query).await {
        Ok(Ok(position)) => position,
        _ => None,
    }
}
