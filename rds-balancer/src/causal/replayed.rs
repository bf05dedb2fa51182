//! What a reader has replayed, as last read, and the turn to read it again.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::position::Position;

/// A reader's replayed position as last read (`None`: not read yet).
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    latest: Mutex<Option<Read>>,
    turn: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Read {
    /// When the query that read it was sent.
    sent: Instant,
    replay: Replay,
}

/// What one read of a reader's replayed position gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replay {
    /// It had replayed up to here.
    At(Position),
    /// It replays nothing of the writer's anymore (a promoted replica, a primary): it will
    /// not catch up, however long a read waits.
    Stopped,
    /// Not read: the query failed or took too long.
    Unknown,
}

impl Replayed {
    /// Whether the reader had replayed `target` when last read.
    pub(crate) fn has(&self, target: &Position) -> bool {
        self.last(
            |replay| matches!(replay, Some(Replay::At(replayed)) if target.reached_by(replayed)),
        )
    }

    /// Whether the reader may still catch up: unless its last read said it replays nothing
    /// anymore (a reader not read yet, or whose read failed, may).
    pub(crate) fn may_catch_up(&self) -> bool {
        self.last(|replay| replay != Some(&Replay::Stopped))
    }

    /// `judge` of the last read (`None`: not read yet), without copying it.
    fn last<T>(&self, judge: impl FnOnce(Option<&Replay>) -> T) -> T {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        judge(latest.as_ref().map(|read| &read.replay))
    }

    /// Reads the position again with `fetch`, unless a read sent at or after `since` is
    /// already known or in progress (then shares it): one query at a time per reader, however
    /// many tasks wait on it.
    pub(crate) async fn refresh<F, Fut>(&self, since: Instant, fetch: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Replay>,
    {
        if self.fresh_since(since) {
            return;
        }
        let _turn = self.turn.lock().await;
        if self.fresh_since(since) {
            return;
        }
        let sent = Instant::now();
        let replay = fetch().await;
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if latest.as_ref().is_none_or(|held| held.sent < sent) {
            *latest = Some(Read { sent, replay });
        }
    }

    fn fresh_since(&self, since: Instant) -> bool {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|read| read.sent >= since)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_read_sent_after_the_caller_asked_is_shared() {
        let replayed = Replayed::default();
        let target = Position::lsn_at(100);
        assert!(!replayed.has(&target), "unknown is not caught up");
        assert!(replayed.may_catch_up(), "not read yet: it may");
        let reads = AtomicU32::new(0);
        let fetch = |at: u64| {
            let reads = &reads;
            move || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                Replay::At(Position::lsn_at(at))
            }
        };
        let asked = Instant::now();
        replayed.refresh(asked, fetch(50)).await;
        assert!(!replayed.has(&target));
        // Sent after `asked`: fresh enough, not read again.
        replayed.refresh(asked, fetch(150)).await;
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        replayed.refresh(Instant::now(), fetch(150)).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert!(replayed.has(&target));
        assert!(replayed.may_catch_up());
        // A read that failed: nothing to compare, but it may still catch up.
        replayed
            .refresh(Instant::now(), || async { Replay::Unknown })
            .await;
        assert!(!replayed.has(&target) && replayed.may_catch_up());
        // A reader that stopped replaying (promoted) has nothing to compare, and never will.
        replayed
            .refresh(Instant::now(), || async { Replay::Stopped })
            .await;
        assert!(!replayed.has(&target) && !replayed.may_catch_up());
    }
}
