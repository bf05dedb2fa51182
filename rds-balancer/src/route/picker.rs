//! Choosing one reader among the active ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::pool::HostPool;

/// How a reader is chosen for a statement among the active readers.
///
/// ```
/// use rds_balancer::{RdsConnection, ReaderSelection};
///
/// let builder = RdsConnection::builder().reader_selection(ReaderSelection::RoundRobin);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReaderSelection {
    /// Pick two readers at random and use the one with fewer statements in flight. Spreads load
    /// evenly and steers away from a slow reader. The default.
    #[default]
    PowerOfTwoChoices,
    /// Take the readers in turn.
    RoundRobin,
    /// Pick a reader uniformly at random.
    Random,
}

/// The state a [`ReaderSelection`] needs: a turn counter and a cheap random source.
#[derive(Debug)]
pub(crate) struct Picker {
    selection: ReaderSelection,
    turn: AtomicUsize,
    seed: AtomicU64,
}

impl Picker {
    pub(crate) fn new(selection: ReaderSelection) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Picker {
            selection,
            turn: AtomicUsize::new(0),
            seed: AtomicU64::new(seed),
        }
    }

    /// One of `readers`, or `None` when there is none.
    pub(crate) fn pick<'a>(&self, readers: &'a [Arc<HostPool>]) -> Option<&'a Arc<HostPool>> {
        let n = readers.len();
        match n {
            0 => None,
            1 => readers.first(),
            _ => {
                let index = match self.selection {
                    ReaderSelection::RoundRobin => self.turn.fetch_add(1, Ordering::Relaxed) % n,
                    ReaderSelection::Random => self.below(n),
                    ReaderSelection::PowerOfTwoChoices => {
                        let a = self.below(n);
                        // A second, different reader: an offset in 1..n from the first.
                        let b = (a + 1 + self.below(n - 1)) % n;
                        if readers[b].in_flight() < readers[a].in_flight() {
                            b
                        } else {
                            a
                        }
                    }
                };
                readers.get(index)
            }
        }
    }

    /// A pseudo-random number below `n` (splitmix64 over an atomic counter; not for secrets).
    fn below(&self, n: usize) -> usize {
        let mut z = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Origin, Role};
    use sea_orm::DatabaseConnection;

    fn readers(n: usize) -> Vec<Arc<HostPool>> {
        (0..n)
            .map(|i| {
                HostPool::new(
                    format!("reader-{i}"),
                    Role::Reader,
                    Origin::Discovered,
                    DatabaseConnection::default(),
                )
            })
            .collect()
    }

    fn counts(picker: &Picker, readers: &[Arc<HostPool>], rounds: usize) -> Vec<usize> {
        let mut seen = vec![0; readers.len()];
        for _ in 0..rounds {
            let chosen = picker.pick(readers).expect("a reader");
            let index = readers
                .iter()
                .position(|r| Arc::ptr_eq(r, chosen))
                .expect("known");
            seen[index] += 1;
        }
        seen
    }

    #[test]
    fn no_reader_gives_none_and_one_reader_is_always_chosen() {
        for selection in [
            ReaderSelection::PowerOfTwoChoices,
            ReaderSelection::RoundRobin,
            ReaderSelection::Random,
        ] {
            let picker = Picker::new(selection);
            assert!(picker.pick(&[]).is_none());
            let one = readers(1);
            assert_eq!(counts(&picker, &one, 10), vec![10]);
        }
    }

    #[test]
    fn round_robin_takes_turns() {
        let picker = Picker::new(ReaderSelection::RoundRobin);
        assert_eq!(counts(&picker, &readers(3), 300), vec![100, 100, 100]);
    }

    #[test]
    fn random_choices_spread_over_every_reader() {
        for selection in [ReaderSelection::PowerOfTwoChoices, ReaderSelection::Random] {
            let picker = Picker::new(selection);
            let seen = counts(&picker, &readers(3), 3000);
            assert!(seen.iter().all(|&c| c > 700), "{selection:?}: {seen:?}");
        }
    }

    #[test]
    fn power_of_two_choices_avoids_the_busier_reader() {
        let picker = Picker::new(ReaderSelection::PowerOfTwoChoices);
        let hosts = readers(2);
        let _busy: Vec<_> = (0..5).map(|_| hosts[0].enter()).collect();
        // With two readers both are always compared: the idle one wins every time.
        assert_eq!(counts(&picker, &hosts, 200), vec![0, 200]);
    }
}
