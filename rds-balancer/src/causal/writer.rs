//! The writer's position, fetched once for every task waiting at the time.
//!
//! Writes are numbered when acknowledged ([`Sticky`](crate::route::Sticky)). A fetch reads the
//! count of numbered writes *before* it asks the writer, so the position it gets is at least as
//! new as each of those writes: it *covers* them. A task's target is the *oldest* fetch that
//! covers its write (a newer one would make it wait for other tasks' later writes: under steady
//! writes, for ever behind a replica that lags more than `max_wait`). A task whose write no
//! fetch covers yet waits for the fetch in progress (one at a time) and, if that one started
//! before its write, the next one, which covers every task waiting behind it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::position::Position;

/// A writer position and the writes it covers.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    /// Every write numbered up to this one is in `position`.
    pub(crate) covers: u64,
    pub(crate) position: Position,
}

/// Fetches kept (the oldest are dropped first: a task whose write only they covered then gets
/// a newer target, still at least as new as its write).
const KEPT: usize = 256;

/// The shortest time between two fetches started after writes (not by a read).
const PREFETCH_GAP: Duration = Duration::from_millis(5);

/// The recent writer positions, oldest first, and the turn to fetch the next.
#[derive(Debug, Default)]
pub(crate) struct WriterPosition {
    fetched: Mutex<VecDeque<Fetched>>,
    turn: tokio::sync::Mutex<()>,
    /// When the last fetch after a write started.
    prefetched: Mutex<Option<Instant>>,
}

impl WriterPosition {
    /// A position covering write number `write`: the oldest fetched one that does, else one
    /// fetched with `fetch` (after reading the count of writes it covers with `written`),
    /// shared with every task waiting. `None` when the fetch failed.
    pub(crate) async fn covering<F, Fut>(
        &self,
        write: u64,
        written: impl Fn() -> u64,
        fetch: F,
    ) -> Option<Fetched>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Position>>,
    {
        if let Some(fetched) = self.oldest_covering(write) {
            return Some(fetched);
        }
        let _turn = self.turn.lock().await;
        // The fetch that held the turn may have covered it.
        if let Some(fetched) = self.oldest_covering(write) {
            return Some(fetched);
        }
        self.fetch(written, fetch).await
    }

    /// After a write: fetches a position now, so that the write's target is close to it (a
    /// read long after would otherwise fetch one with every later write in it, which a lagging
    /// replica may not reach within `max_wait`). Not when a fetch is in progress, nor twice
    /// within 5 ms: bursts of writes share one.
    /// [`claim_prefetch`](Self::claim_prefetch) says when.
    pub(crate) async fn prefetch<F, Fut>(&self, written: impl Fn() -> u64, fetch: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Position>>,
    {
        if let Ok(_turn) = self.turn.try_lock() {
            self.fetch(written, fetch).await;
        }
    }

    /// Whether a write now should start a [`prefetch`](Self::prefetch): no fetch in progress,
    /// and none started after a write in the last 5 ms (then it counts as started).
    pub(crate) fn claim_prefetch(&self) -> bool {
        if self.turn.try_lock().is_err() {
            return false;
        }
        let mut last = self
            .prefetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < PREFETCH_GAP) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Fetches a position and keeps it (the caller holds the turn).
    async fn fetch<F, Fut>(&self, written: impl Fn() -> u64, fetch: F) -> Option<Fetched>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Position>>,
    {
        let covers = written();
        let position = fetch().await?;
        let fetched = Fetched { covers, position };
        let mut kept = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
        // One fetch at a time: each covers at least as much as the one before.
        if kept.back().is_none_or(|newest| newest.covers < covers) {
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back(fetched.clone());
        }
        Some(fetched)
    }

    /// Forgets the fetches covering only writes up to `covered` (every reader has them).
    pub(crate) fn forget_covered(&self, covered: u64) {
        let mut kept = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
        while kept.front().is_some_and(|oldest| oldest.covers <= covered) {
            kept.pop_front();
        }
    }

    fn oldest_covering(&self, write: u64) -> Option<Fetched> {
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|fetched| fetched.covers >= write)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn lsn(n: u64) -> Position {
        Position::lsn_at(n)
    }

    #[tokio::test]
    async fn one_fetch_serves_every_write_before_it() {
        let writer = WriterPosition::default();
        let fetches = AtomicU64::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Some(lsn(100))
        };
        let got = writer.covering(3, || 5, fetch).await.expect("fetched");
        assert_eq!((got.covers, got.position), (5, lsn(100)));
        // Writes 1 to 5 are covered: no second fetch.
        for write in 1..=5 {
            let again = writer
                .covering(write, || 9, || async { unreachable!() })
                .await;
            assert_eq!(again.expect("latest").covers, 5);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Write 6 came after: a new fetch.
        let newer = writer.covering(6, || 9, || async { Some(lsn(200)) }).await;
        assert_eq!(newer.expect("fetched").position, lsn(200));
        // Write 3 keeps the oldest fetch that covers it, not the newest: a replica that has
        // lsn 100 has it, whatever was written since.
        let older = writer.covering(3, || 9, || async { unreachable!() }).await;
        assert_eq!(older.expect("kept").position, lsn(100));
        // Once every reader has writes up to 5, their fetch is forgotten.
        writer.forget_covered(5);
        let after = writer.covering(3, || 9, || async { unreachable!() }).await;
        assert_eq!(after.expect("kept").position, lsn(200));
    }

    #[tokio::test]
    async fn tasks_waiting_behind_a_fetch_share_the_next_one() {
        let writer = Arc::new(WriterPosition::default());
        let fetches = Arc::new(AtomicU64::new(0));
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        // The first fetch covers writes up to 1 and is held until released.
        let first = {
            let (writer, fetches) = (Arc::clone(&writer), Arc::clone(&fetches));
            tokio::spawn(async move {
                writer
                    .covering(
                        1,
                        || 1,
                        || async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            hold.await.ok();
                            Some(lsn(10))
                        },
                    )
                    .await
            })
        };
        while fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Writes 2 to 11, acknowledged while it runs: they need the next fetch, one for all.
        let waiting: Vec<_> = (2..12)
            .map(|write| {
                let (writer, fetches) = (Arc::clone(&writer), Arc::clone(&fetches));
                tokio::spawn(async move {
                    writer
                        .covering(
                            write,
                            || 11,
                            || async move {
                                fetches.fetch_add(1, Ordering::SeqCst);
                                Some(lsn(20))
                            },
                        )
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(()).ok();
        assert_eq!(
            first.await.expect("task").expect("fetched").position,
            lsn(10)
        );
        for task in waiting {
            assert_eq!(
                task.await.expect("task").expect("fetched").position,
                lsn(20)
            );
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "one fetch for all who waited"
        );
    }

    #[tokio::test]
    async fn a_burst_of_writes_starts_one_prefetch() {
        let writer = WriterPosition::default();
        assert!(writer.claim_prefetch());
        assert!(!writer.claim_prefetch(), "within 5 ms of the last one");
        writer.prefetch(|| 4, || async { Some(lsn(40)) }).await;
        let got = writer.covering(4, || 9, || async { unreachable!() }).await;
        assert_eq!(got.expect("prefetched").position, lsn(40));
    }

    #[tokio::test]
    async fn a_failed_fetch_gives_none_and_the_next_task_tries_again() {
        let writer = WriterPosition::default();
        assert!(writer.covering(1, || 1, || async { None }).await.is_none());
        let got = writer.covering(1, || 1, || async { Some(lsn(5)) }).await;
        assert_eq!(got.expect("fetched").position, lsn(5));
    }
}
