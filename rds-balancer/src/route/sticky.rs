//! Read-your-writes: for a short window after a task wrote through the writer, its reads go to
//! the writer too, so that it never reads a replica that has not replayed its own write yet.
//!
//! SeaORM relies on this on MySQL: with no `RETURNING`, `ActiveModel::insert` and `update` run
//! the write and then read the row back by its key through the same connection. Sent to a
//! replica, that read can miss the row ("Failed to find inserted item").
//!
//! The writer of a statement is the current tokio task, or the current thread outside one. Each
//! connection keeps a fixed table of slots (no allocation, no lock): a key hashes to two slots;
//! a write stores `tag | expiry` in the one that holds its tag, else in an empty or expired one,
//! else over the one closest to expiry. A read is sticky when either slot holds its tag with an
//! expiry still ahead. Two keys with equal tags and slots make a read go to the writer in vain
//! (harmless); more live writers than the table holds evict the oldest windows first, so a
//! read right after a write stays on the writer.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Slots per connection (a power of two): 32 KiB.
const SLOTS: usize = 4096;
/// Bits of a slot holding the expiry, in milliseconds since the table's epoch (35 years).
const EXPIRY_BITS: u32 = 40;
const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;

/// The read-your-writes table of one connection.
pub(crate) struct Sticky {
    window_ms: u64,
    epoch: Instant,
    /// `tag << EXPIRY_BITS | expiry_ms`; 0 is empty. Empty when the window is zero.
    slots: Box<[AtomicU64]>,
}

impl std::fmt::Debug for Sticky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sticky")
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

impl Sticky {
    /// A table for `window` (zero: off).
    pub(crate) fn new(window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(EXPIRY_MASK);
        let slots = if window_ms == 0 {
            Box::default()
        } else {
            (0..SLOTS).map(|_| AtomicU64::new(0)).collect()
        };
        Sticky {
            window_ms,
            epoch: Instant::now(),
            slots,
        }
    }

    /// Records that the current task (or thread) just wrote.
    pub(crate) fn mark(&self) {
        if self.slots.is_empty() {
            return;
        }
        self.mark_key(current_key(), self.now_ms());
    }

    /// Whether the current task (or thread) wrote less than the window ago.
    pub(crate) fn is_sticky(&self) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        self.is_sticky_key(current_key(), self.now_ms())
    }

    /// Milliseconds since the epoch, at least 1 (so no live expiry is 0).
    fn now_ms(&self) -> u64 {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(EXPIRY_MASK);
        ms.clamp(1, EXPIRY_MASK)
    }

    fn mark_key(&self, key: u64, now: u64) {
        let (tag, a, b) = self.place(key);
        let value = tag << EXPIRY_BITS | (now + self.window_ms).min(EXPIRY_MASK);
        let [slot_a, slot_b] = [&self.slots[a], &self.slots[b]];
        let (old_a, old_b) = (
            slot_a.load(Ordering::Relaxed),
            slot_b.load(Ordering::Relaxed),
        );
        let expiry = |v: u64| v & EXPIRY_MASK;
        let target = if old_a >> EXPIRY_BITS == tag {
            slot_a
        } else if old_b >> EXPIRY_BITS == tag {
            slot_b
        } else if expiry(old_a) <= now {
            slot_a
        } else if expiry(old_b) <= now || expiry(old_b) < expiry(old_a) {
            slot_b
        } else {
            slot_a
        };
        // A race with another writer of the same slot loses one of the two windows: that
        // task's next read goes to a reader, as without read-your-writes. Rare (two keys
        // sharing a slot, writing in the same instant), and never a write sent anywhere else.
        target.store(value, Ordering::Relaxed);
    }

    fn is_sticky_key(&self, key: u64, now: u64) -> bool {
        let (tag, a, b) = self.place(key);
        [a, b].into_iter().any(|i| {
            let v = self.slots[i].load(Ordering::Relaxed);
            v >> EXPIRY_BITS == tag && v & EXPIRY_MASK > now
        })
    }

    /// The key's tag (never 0) and its two slots.
    fn place(&self, key: u64) -> (u64, usize, usize) {
        let mask = self.slots.len() - 1;
        let tag = (key >> EXPIRY_BITS).max(1);
        // Both indices come from bits below the tag's.
        let a = usize::try_from(key & 0xFFFF_FFFF).unwrap_or(0) & mask;
        let b = usize::try_from((key >> 16) & 0xFFFF_FFFF)
            .unwrap_or(0)
            .rotate_left(7)
            & mask;
        (tag, a, if b == a { (a + 1) & mask } else { b })
    }
}

/// The current tokio task's id, else the current thread's, hashed to 64 well-mixed bits.
fn current_key() -> u64 {
    let mut hasher = KeyHasher(0);
    match tokio::task::try_id() {
        Some(id) => id.hash(&mut hasher),
        None => {
            hasher.0 = 0x9E37_79B9_7F4A_7C15;
            std::thread::current().id().hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// Folds the integers a task or thread id hashes to; finished with a 64-bit mixer.
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser.
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> u64 {
        let mut hasher = KeyHasher(0);
        hasher.write_u64(n);
        hasher.finish()
    }

    #[test]
    fn a_write_makes_its_key_sticky_for_the_window_only() {
        let sticky = Sticky::new(Duration::from_millis(1000));
        assert!(!sticky.is_sticky_key(key(1), 10));
        sticky.mark_key(key(1), 10);
        assert!(sticky.is_sticky_key(key(1), 10));
        assert!(sticky.is_sticky_key(key(1), 1009));
        assert!(!sticky.is_sticky_key(key(1), 1010));
        assert!(
            !sticky.is_sticky_key(key(2), 10),
            "another key is not sticky"
        );
    }

    #[test]
    fn a_second_write_extends_the_window() {
        let sticky = Sticky::new(Duration::from_millis(100));
        sticky.mark_key(key(7), 10);
        sticky.mark_key(key(7), 90);
        assert!(sticky.is_sticky_key(key(7), 150));
        assert!(!sticky.is_sticky_key(key(7), 190));
    }

    #[test]
    fn zero_window_is_off() {
        let sticky = Sticky::new(Duration::ZERO);
        sticky.mark();
        assert!(!sticky.is_sticky());
    }

    #[test]
    fn the_latest_writers_keep_their_window_when_the_table_overflows() {
        let sticky = Sticky::new(Duration::from_secs(10));
        // Four times as many live writers as slots, one millisecond apart.
        let n = u64::try_from(SLOTS * 4).unwrap();
        for i in 0..n {
            sticky.mark_key(key(i), 1 + i);
        }
        let now = n;
        // Each of the latest writers is still sticky right after its write...
        let recent = (n - 64..n).filter(|&i| sticky.is_sticky_key(key(i), now));
        assert_eq!(recent.count(), 64);
        // ...and a writer checked at once after writing always is.
        for i in n..n + 1000 {
            sticky.mark_key(key(i), i + 1);
            assert!(sticky.is_sticky_key(key(i), i + 1), "key {i}");
        }
    }

    #[test]
    fn tasks_are_told_apart() {
        let sticky = std::sync::Arc::new(Sticky::new(Duration::from_secs(60)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let writer = std::sync::Arc::clone(&sticky);
            let wrote = tokio::spawn(async move {
                writer.mark();
                writer.is_sticky()
            });
            assert!(
                wrote.await.expect("task"),
                "the writing task reads its writes"
            );
            let reader = std::sync::Arc::clone(&sticky);
            let other = tokio::spawn(async move { reader.is_sticky() });
            assert!(!other.await.expect("task"), "another task is not held back");
        });
        // Outside any task: by thread.
        assert!(!sticky.is_sticky());
        sticky.mark();
        assert!(sticky.is_sticky());
    }
}
