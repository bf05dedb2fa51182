//! Read-your-writes: which tasks wrote and still need the writer (or a replica that caught up)
//! for their reads.
//!
//! Two ways to tell when a task's write no longer matters: a time window (its reads go to the
//! writer for the window after it wrote), or replication positions (each write is numbered; a
//! write is *covered* once every reader has replayed a writer position fetched after it, see
//! [`crate::causal`]). Either way the table holds one number per writer: the end of its
//! window, or its write's number; the writer needs the writer while that number is above the
//! threshold (the time now, or the covered write number).
//!
//! SeaORM relies on this on MySQL: with no `RETURNING`, `ActiveModel::insert` and `update` run
//! the write and then read the row back by its key through the same connection. Sent to a
//! replica, that read can miss the row ("Failed to find inserted item").
//!
//! The writer of a statement is the current tokio task, or the current thread outside one. Each
//! connection keeps an exact table from writer to the end of its window: sharded maps, each
//! behind its own lock, keyed by the task or thread id itself (never by a hash of it), so no two
//! writers share an entry and no window is ever lost, however many tasks write at once.
//!
//! Memory follows the live windows: an expired entry is removed when its writer next reads or
//! writes, and once per window the first statement past the due time sweeps every shard (and
//! gives back the room of a shard that emptied). A count of live entries lets the read path
//! skip all of this when no window is open: one atomic load.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Shards of a table (a power of two): writers on different shards never wait for each other.
const SHARDS: usize = 64;
/// A shard whose map holds more than this many slots and is three quarters empty gives the
/// room back when swept.
const SHRINK_ABOVE: usize = 64;

/// One shard: writer to the end of its window, in milliseconds since the table's epoch.
type Shard = HashMap<Key, u64, BuildHasherDefault<KeyHasher>>;

/// Who wrote: the task or thread, by its id (unique for the life of the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
    /// A writer made up by the unit tests.
    #[cfg(test)]
    Test(u64),
}

/// How entries end.
#[derive(Debug)]
enum Ends {
    /// At the end of a window of this many milliseconds.
    Window(u64),
    /// Once covered: writes are numbered from 1 (`written`), and every write numbered up to
    /// `covered` has been replayed by every reader.
    Covered {
        written: Arc<AtomicU64>,
        covered: AtomicU64,
    },
}

/// How often covered entries are swept, in milliseconds.
const COVERED_SWEEP_MS: u64 = 1000;

/// The read-your-writes table of one connection.
pub(crate) struct Sticky {
    ends: Ends,
    /// The sweep period in milliseconds; 0 is off (nothing is ever held).
    sweep_ms: u64,
    epoch: Instant,
    /// Entries across every shard, expired ones not yet removed included. Changed only under
    /// the lock of the shard concerned, so it is never 0 while a window is open.
    live: AtomicUsize,
    /// When the next sweep is due, in milliseconds since the epoch.
    next_sweep: AtomicU64,
    /// Empty when the window is zero.
    shards: Box<[Mutex<Shard>]>,
}

impl std::fmt::Debug for Sticky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sticky")
            .field("ends", &self.ends)
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Sticky {
    /// A table for `window` (zero: off), counted in whole milliseconds, rounded up.
    pub(crate) fn new(window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        Self::with(Ends::Window(window_ms), window_ms)
    }

    /// A table whose entries end once covered ([`Self::cover`]).
    pub(crate) fn by_position() -> Self {
        let ends = Ends::Covered {
            written: Arc::default(),
            covered: AtomicU64::new(0),
        };
        Self::with(ends, COVERED_SWEEP_MS)
    }

    fn with(ends: Ends, sweep_ms: u64) -> Self {
        let shards = if sweep_ms == 0 {
            Box::default()
        } else {
            (0..SHARDS).map(|_| Mutex::default()).collect()
        };
        Sticky {
            ends,
            sweep_ms,
            epoch: Instant::now(),
            live: AtomicUsize::new(0),
            next_sweep: AtomicU64::new(0),
            shards,
        }
    }

    /// Records that the current task (or thread) just wrote.
    pub(crate) fn mark(&self) {
        if self.shards.is_empty() {
            return;
        }
        self.mark_at(current_key(), self.now_ms());
    }

    /// Whether the current task (or thread) wrote less than the window ago (or wrote what is
    /// not covered yet).
    pub(crate) fn is_sticky(&self) -> bool {
        self.pending().is_some()
    }

    /// The number of the current task's (or thread's) last write while it is not covered yet
    /// (in window mode: the end of its window).
    pub(crate) fn pending(&self) -> Option<u64> {
        // No window open anywhere (the common case): no clock, no lock.
        if self.shards.is_empty() || self.live.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.pending_at(current_key(), self.now_ms())
    }

    /// How many writes were numbered so far (position mode; 0 in window mode). A writer
    /// position fetched after reading this is at least as new as each of those writes.
    pub(crate) fn written(&self) -> u64 {
        match &self.ends {
            Ends::Covered { written, .. } => written.load(Ordering::SeqCst),
            Ends::Window(_) => 0,
        }
    }

    /// The count of numbered writes, shared (position mode).
    pub(crate) fn write_count(&self) -> Option<Arc<AtomicU64>> {
        match &self.ends {
            Ends::Covered { written, .. } => Some(Arc::clone(written)),
            Ends::Window(_) => None,
        }
    }

    /// Every write numbered up to `write` has been replayed by every reader: those writers
    /// read anywhere again.
    pub(crate) fn cover(&self, write: u64) {
        if let Ends::Covered { covered, .. } = &self.ends {
            covered.fetch_max(write, Ordering::SeqCst);
        }
    }

    /// Milliseconds since the epoch.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_at(&self, key: Key, now: u64) {
        let end = match &self.ends {
            Ends::Window(window_ms) => now.saturating_add(*window_ms),
            // Numbered after the write was acknowledged (the caller marks it then).
            Ends::Covered { written, .. } => written.fetch_add(1, Ordering::SeqCst) + 1,
        };
        {
            let mut shard = self.shard(key);
            if shard.insert(key, end).is_none() {
                self.live.fetch_add(1, Ordering::Release);
            }
        }
        self.sweep_if_due(now);
    }

    #[cfg(test)]
    fn is_sticky_at(&self, key: Key, now: u64) -> bool {
        self.pending_at(key, now).is_some()
    }

    /// What entries must stay above to hold: the time now, or the covered write number.
    fn threshold(&self, now: u64) -> u64 {
        match &self.ends {
            Ends::Window(_) => now,
            Ends::Covered { covered, .. } => covered.load(Ordering::SeqCst),
        }
    }

    fn pending_at(&self, key: Key, now: u64) -> Option<u64> {
        if self.live.load(Ordering::Acquire) == 0 {
            return None;
        }
        let threshold = self.threshold(now);
        let pending = {
            let mut shard = self.shard(key);
            match shard.get(&key) {
                Some(&end) if end > threshold => Some(end),
                Some(_) => {
                    shard.remove(&key);
                    self.live.fetch_sub(1, Ordering::Release);
                    None
                }
                None => None,
            }
        };
        self.sweep_if_due(now);
        pending
    }

    /// The locked shard of `key`.
    fn shard(&self, key: Key) -> MutexGuard<'_, Shard> {
        let mut hasher = KeyHasher::default();
        key.hash(&mut hasher);
        // The map places keys by the low bits of the same hash: shard by high ones.
        let index = usize::try_from(hasher.finish() >> 58).unwrap_or(0) % self.shards.len();
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Once per window (a second in position mode), removes every expired (covered) entry
    /// (the caller that finds the sweep due does it; the others go on).
    fn sweep_if_due(&self, now: u64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(
                    due,
                    now.saturating_add(self.sweep_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let threshold = self.threshold(now);
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, end| *end > threshold);
            let removed = before - shard.len();
            if removed > 0 {
                self.live.fetch_sub(removed, Ordering::Release);
            }
            if shard.capacity() > SHRINK_ABOVE && shard.len() * 4 < shard.capacity() {
                let keep = shard.len() * 2;
                shard.shrink_to(keep);
            }
        }
    }

    /// Entries held, expired ones not yet removed included.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Slots allocated across the shards.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).capacity())
            .sum()
    }
}

/// The current tokio task, else the current thread.
fn current_key() -> Key {
    match tokio::task::try_id() {
        Some(id) => Key::Task(id),
        None => Key::Thread(std::thread::current().id()),
    }
}

/// Hashes the integers a [`Key`] is made of (an FxHash-style fold, finished with splitmix64's
/// mixer so that every bit depends on every input bit). Ids are not chosen by clients, so no
/// keyed hash is needed.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517C_C1B7_2722_0A95);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_makes_its_writer_sticky_for_the_window_only() {
        let sticky = Sticky::new(Duration::from_millis(1000));
        assert!(!sticky.is_sticky_at(Key::Test(1), 10));
        sticky.mark_at(Key::Test(1), 10);
        assert!(sticky.is_sticky_at(Key::Test(1), 10));
        assert!(sticky.is_sticky_at(Key::Test(1), 1009));
        assert!(
            !sticky.is_sticky_at(Key::Test(2), 10),
            "another writer is not sticky"
        );
        assert!(!sticky.is_sticky_at(Key::Test(1), 1010));
        assert_eq!(sticky.entries(), 0, "the expired entry was removed");
    }

    #[test]
    fn a_second_write_extends_the_window() {
        let sticky = Sticky::new(Duration::from_millis(100));
        sticky.mark_at(Key::Test(7), 10);
        sticky.mark_at(Key::Test(7), 90);
        assert_eq!(sticky.entries(), 1);
        assert!(sticky.is_sticky_at(Key::Test(7), 150));
        assert!(!sticky.is_sticky_at(Key::Test(7), 190));
    }

    #[test]
    fn by_position_a_write_holds_until_it_is_covered() {
        let sticky = Sticky::by_position();
        assert_eq!(sticky.written(), 0);
        sticky.mark_at(Key::Test(1), 10);
        sticky.mark_at(Key::Test(2), 10);
        assert_eq!(sticky.written(), 2);
        assert_eq!(sticky.pending_at(Key::Test(1), 10), Some(1));
        assert_eq!(sticky.pending_at(Key::Test(2), 10), Some(2));
        assert_eq!(sticky.pending_at(Key::Test(3), 10), None);
        // Time alone ends nothing.
        assert!(sticky.is_sticky_at(Key::Test(1), u64::MAX / 2));
        sticky.cover(1);
        assert!(!sticky.is_sticky_at(Key::Test(1), 20), "covered");
        assert!(sticky.is_sticky_at(Key::Test(2), 20), "not covered yet");
        // A later write of the covered writer holds again, with its new number.
        sticky.mark_at(Key::Test(1), 30);
        assert_eq!(sticky.pending_at(Key::Test(1), 30), Some(3));
        // Covering is monotonic.
        sticky.cover(3);
        sticky.cover(2);
        assert!(!sticky.is_sticky_at(Key::Test(1), 40));
        assert!(!sticky.is_sticky_at(Key::Test(2), 40));
    }

    #[test]
    fn by_position_covered_writers_that_never_come_back_are_swept() {
        let sticky = Sticky::by_position();
        for i in 0..1000 {
            sticky.mark_at(Key::Test(i), 10);
        }
        sticky.cover(1000);
        // A second later, anyone's statement sweeps them.
        assert!(!sticky.is_sticky_at(Key::Test(5000), 10 + COVERED_SWEEP_MS));
        assert_eq!(sticky.entries(), 0);
    }

    #[test]
    fn zero_window_is_off() {
        let sticky = Sticky::new(Duration::ZERO);
        sticky.mark();
        assert!(!sticky.is_sticky());
        assert_eq!(sticky.entries(), 0);
        assert_eq!(sticky.capacity(), 0);
        // Under a millisecond is not off: rounded up.
        let short = Sticky::new(Duration::from_micros(10));
        short.mark();
        assert!(short.is_sticky());
    }

    #[test]
    fn no_window_is_lost_among_a_hundred_thousand_writers() {
        const WRITERS: u64 = 100_000;
        let sticky = Sticky::new(Duration::from_millis(1000));
        for i in 0..WRITERS {
            sticky.mark_at(Key::Test(i), 10);
            assert!(sticky.is_sticky_at(Key::Test(i), 10), "writer {i}");
        }
        assert_eq!(sticky.entries(), 100_000);
        let lost: Vec<u64> = (0..WRITERS)
            .filter(|&i| !sticky.is_sticky_at(Key::Test(i), 1009))
            .collect();
        assert!(lost.is_empty(), "{} windows lost", lost.len());
        // Past the window, one statement of anyone sweeps them all and gives the room back.
        assert!(!sticky.is_sticky_at(Key::Test(WRITERS), 1010));
        assert_eq!(sticky.entries(), 0);
        assert_eq!(sticky.capacity(), 0);
    }

    #[test]
    fn writers_that_never_come_back_are_swept_by_the_others() {
        let sticky = Sticky::new(Duration::from_millis(100));
        for i in 0..1000 {
            sticky.mark_at(Key::Test(i), 10);
        }
        // Another writer, later: the sweep that is due removes the expired entries.
        sticky.mark_at(Key::Test(5000), 500);
        assert_eq!(sticky.entries(), 1);
        assert!(sticky.is_sticky_at(Key::Test(5000), 550));
    }

    #[test]
    fn twenty_thousand_concurrent_tasks_each_read_their_own_writes() {
        const TASKS: usize = 20_000;
        let sticky = Arc::new(Sticky::new(Duration::from_secs(600)));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .expect("runtime");
        let sticky_in_tasks = Arc::clone(&sticky);
        let held = rt.block_on(async move {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let sticky = Arc::clone(&sticky_in_tasks);
                    tokio::spawn(async move {
                        let before = sticky.is_sticky();
                        sticky.mark();
                        // Let the other tasks write in between.
                        tokio::task::yield_now().await;
                        !before && sticky.is_sticky()
                    })
                })
                .collect();
            let mut held = 0;
            for task in tasks {
                held += usize::from(task.await.expect("task"));
            }
            held
        });
        assert_eq!(held, TASKS, "every task, and only it, was sticky");
        assert_eq!(sticky.entries(), TASKS);
    }

    #[test]
    fn tasks_are_told_apart() {
        let sticky = Arc::new(Sticky::new(Duration::from_secs(60)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let writer = Arc::clone(&sticky);
            let wrote = tokio::spawn(async move {
                writer.mark();
                writer.is_sticky()
            });
            assert!(
                wrote.await.expect("task"),
                "the writing task reads its writes"
            );
            let reader = Arc::clone(&sticky);
            let other = tokio::spawn(async move { reader.is_sticky() });
            assert!(!other.await.expect("task"), "another task is not held back");
        });
        // Outside any task: by thread.
        assert!(!sticky.is_sticky());
        sticky.mark();
        assert!(sticky.is_sticky());
        let other_thread = Arc::clone(&sticky);
        let seen = std::thread::spawn(move || other_thread.is_sticky())
            .join()
            .expect("thread");
        assert!(!seen, "another thread is not held back");
    }
}
