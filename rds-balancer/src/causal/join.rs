//! Readers that join in position mode: held out of reads until they have replayed the writer's
//! position as of their joining.
//!
//! Once every reader has replayed a task's write, the task's reads go anywhere again without
//! a check (its write is *covered*). A reader that joins later may be behind those writes: it
//! takes no read at all until it has replayed what the writer had when it joined, which is at
//! least every covered write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::fetch::{self, Flavour};
use crate::pool::HostPool;
use crate::position::Position;

/// How long one position query may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between two checks of a joining reader: doubling from the first, up to the last.
const PACE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(1));
/// How long applying a topology waits for a joining reader to catch up before it leaves the
/// checks to the background.
const AT_ONCE: Duration = Duration::from_millis(250);

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

/// Holds `reader`, about to join, out of reads until [`let_in`] lets it in.
pub(crate) fn hold(reader: &HostPool) {
    reader.join_gate().set(true);
}

/// Lets `reader` (held, and now published) in once it has replayed the position `writer` has
/// now. Waits up to [`AT_ONCE`] for it: a reader that has it by then takes reads when this
/// returns; otherwise returns the work that checks again until it has (to run in the
/// background; it ends early when the reader is gone).
pub(crate) async fn let_in(
    reader: &Arc<HostPool>,
    writer: Arc<HostPool>,
    flavour: Flavour,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    // Read after the reader was published: at least every write covered without it.
    let target = read(fetch::writer_position(writer.conn(), flavour)).await;
    if let Some(target) = &target {
        // A healthy replica is a few milliseconds behind a busy writer: give it a moment.
        let deadline = Instant::now() + AT_ONCE;
        let mut pause = PACE.0;
        loop {
            if caught_up(reader, target, flavour).await {
                reader.join_gate().set(false);
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(PACE.1);
        }
    }
    let reader = Arc::downgrade(reader);
    Some(async move { check_until_caught_up(reader, writer, target, flavour).await })
}

async fn check_until_caught_up(
    reader: Weak<HostPool>,
    writer: Arc<HostPool>,
    mut target: Option<Position>,
    flavour: Flavour,
) {
    let mut pause = PACE.0;
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(PACE.1);
        let Some(host) = reader.upgrade() else {
            return;
        };
        if target.is_none() {
            target = read(fetch::writer_position(writer.conn(), flavour)).await;
        }
        if let Some(target) = &target
            && caught_up(&host, target, flavour).await
        {
            host.join_gate().set(false);
            tracing::info!(reader = %host.name(), "joining reader caught up: it takes reads");
            return;
        }
    }
}

/// Whether `reader` has replayed `target`.
async fn caught_up(reader: &HostPool, target: &Position, flavour: Flavour) -> bool {
    read(fetch::replayed_position(reader.conn(), flavour))
        .await
        .is_some_and(|replayed| target.reached_by(&replayed))
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
