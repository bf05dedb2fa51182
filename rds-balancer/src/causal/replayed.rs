//! What a reader has replayed, as last read, and the turn to read it again.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::position::Position;

/// A reader's replayed position as last read (`None`: not read yet, or it gave none).
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    latest: Mutex<Option<Read>>,
    turn: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct Read {
    /// When the query that read it was sent.
    sent: Instant,
    position: Option<Position>,
}

impl Replayed {
    /// Whether the reader had replayed `target` when last read.
    pub(crate) fn has(&self, target: &Position) -> bool {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|read| read.position.as_ref())
            .is_some_and(|replayed| target.reached_by(replayed))
    }

    /// Reads the position again with `fetch`, unless a read sent at or after `since` is
    /// already known or in progress (then shares it): one query at a time per reader, however
    /// many tasks wait on it.
    pub(crate) async fn refresh<F, Fut>(&self, since: Instant, fetch: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Position>>,
    {
        if self.fresh_since(since) {
            return;
        }
        let _turn = self.turn.lock().await;
        if self.fresh_since(since) {
            return;
        }
        let sent = Instant::now();
        let position = fetch().await;
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if latest.as_ref().is_none_or(|held| held.sent < sent) {
            *latest = Some(Read { sent, position });
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
        let reads = AtomicU32::new(0);
        let fetch = |at: u64| {
            let reads = &reads;
            move || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                Some(Position::lsn_at(at))
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
        // A reader that stopped replaying (promoted) has nothing to compare.
        replayed.refresh(Instant::now(), || async { None }).await;
        assert!(!replayed.has(&target));
    }
}
