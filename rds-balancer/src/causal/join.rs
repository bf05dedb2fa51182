//! Readers that join in position mode: held out of reads until they have replayed the writer's
//! position as of their joining.
//!
//! Once every reader has replayed a task's write, the task's reads go anywhere again without
//! a check (its write is *covered*). A reader that joins later may be behind those writes: it
//! takes no read at all until it has replayed what the writer had when it joined, which is at
//! least every covered write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::fetch::{self, Flavour};
use crate::pool::HostPool;
use crate::position::Position;

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
    let mut target = None;
    // A healthy replica is a few milliseconds behind a busy writer: give it a moment.
    let deadline = Instant::now() + AT_ONCE;
    let mut pause = PACE.0;
    loop {
        if opened(reader, &writer, &mut target, flavour).await {
            return None;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(PACE.1);
    }
    let reader = Arc::downgrade(reader);
    Some(async move {
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(PACE.1);
            let Some(host) = reader.upgrade() else {
                return;
            };
            if opened(&host, &writer, &mut target, flavour).await {
                tracing::info!(reader = %host.name(), "joining reader caught up: it takes reads");
                return;
            }
        }
    })
}

/// One check of a joining `reader`: reads the writer's position into `target` unless read
/// already, then opens the reader's gate if it has replayed it. Whether it did.
async fn opened(
    reader: &HostPool,
    writer: &HostPool,
    target: &mut Option<Position>,
    flavour: Flavour,
) -> bool {
    if target.is_none() {
        *target = position(writer, fetch::writer_position(writer.conn(), flavour)).await;
    }
    let Some(target) = target.as_ref() else {
        return false;
    };
    let replayed = position(reader, fetch::replayed_position(reader.conn(), flavour)).await;
    let caught_up = replayed.is_some_and(|replayed| target.reached_by(&replayed));
    if caught_up {
        reader.join_gate().set(false);
    }
    caught_up
}

/// The position `query` on `host` gives in time, or `None`.
async fn position(
    host: &HostPool,
    query: impl Future<Output = Result<Option<Position>, sea_orm::DbErr>>,
) -> Option<Position> {
    fetch::in_time(host, query).await.flatten()
}
