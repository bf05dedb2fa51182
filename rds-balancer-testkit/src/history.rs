//! Who is primary and who replicates from it, as promotions change it, readable by reference
//! (both kinds of cluster).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// A value that is replaced a bounded number of times, whose current version is handed out as a
/// plain reference for as long as the owner lives: how a cluster's `primary()` and `replicas()`
/// return `&` while `promote` changes them from another thread.
///
/// Each version is written once into a slot of its own and never moved or dropped before the
/// history, so references to older versions stay valid. Replacing takes a lock
/// ([`change`](Self::change)); reading does not.
#[derive(Debug)]
pub(crate) struct History<T> {
    initial: T,
    /// One slot per replacement, filled in order.
    later: Box<[OnceLock<T>]>,
    /// 0 for `initial`, k for `later[k - 1]`.
    current: AtomicUsize,
    change: Mutex<()>,
}

impl<T> History<T> {
    /// A history whose current version is `initial`, that can be replaced `capacity` times.
    pub(crate) fn new(initial: T, capacity: usize) -> Self {
        History {
            initial,
            later: (0..capacity).map(|_| OnceLock::new()).collect(),
            current: AtomicUsize::new(0),
            change: Mutex::new(()),
        }
    }

    /// The current version.
    pub(crate) fn current(&self) -> &T {
        match self.current.load(Ordering::Acquire) {
            0 => &self.initial,
            k => self
                .later
                .get(k - 1)
                .and_then(OnceLock::get)
                .unwrap_or(&self.initial),
        }
    }

    /// Locks out other changes until the returned [`Change`] is dropped, so that what it reads
    /// stays current while it works out the next version.
    pub(crate) fn change(&self) -> Change<'_, T> {
        Change {
            history: self,
            _lock: self
                .change
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }
}

/// The right to replace a [`History`]'s current version, from [`History::change`].
#[derive(Debug)]
pub(crate) struct Change<'a, T> {
    history: &'a History<T>,
    _lock: MutexGuard<'a, ()>,
}

impl<'a, T> Change<'a, T> {
    /// The current version.
    pub(crate) fn current(&self) -> &'a T {
        self.history.current()
    }

    /// Makes `next` the current version and returns it; gives `next` back when the history has
    /// been replaced as many times as it can be.
    pub(crate) fn replace(&mut self, next: T) -> Result<&'a T, T> {
        let history = self.history;
        let k = history.current.load(Ordering::Acquire);
        let Some(slot) = history.later.get(k) else {
            return Err(next);
        };
        // Only this lock holder fills slots, in order: `slot` is empty.
        slot.set(next)?;
        history.current.store(k + 1, Ordering::Release);
        Ok(history.current())
    }
}

#[cfg(test)]
mod test {
    use super::History;

    #[test]
    fn replaced_versions_stay_borrowed_and_the_capacity_is_kept() {
        let history = History::new(vec![1], 2);
        let first = history.current();
        let mut change = history.change();
        assert_eq!(change.current(), &vec![1]);
        assert_eq!(change.replace(vec![2]), Ok(&vec![2]));
        assert_eq!(change.replace(vec![3]), Ok(&vec![3]));
        assert_eq!(change.replace(vec![4]), Err(vec![4]));
        drop(change);
        assert_eq!(first, &vec![1]);
        assert_eq!(history.current(), &vec![3]);
    }
}
