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

    /// One of the `readers` that are `usable`, or `None` when there is none.
    pub(crate) fn pick<'a>(
        &self,
        readers: &'a [Arc<HostPool>],
        usable: impl Fn(&Arc<HostPool>) -> bool,
    ) -> Option<&'a Arc<HostPool>> {
        let n = readers.iter().filter(|r| usable(r)).count();
        if n < readers.len() {
            // Rare (a reader is unhealthy or just failed): choose among the usable ones by
            // position, without allocating.
            let nth = self.choose(n, |i| {
                readers
                    .iter()
                    .filter(|r| usable(r))
                    .nth(i)
                    .map_or(0, |r| r.in_flight())
            })?;
            return readers.iter().filter(|r| usable(r)).nth(nth);
        }
        readers.get(self.choose(n, |i| readers[i].in_flight())?)
    }

    /// The index of one of `n` candidates, given each one's in-flight count; `None` when `n` is
    /// 0.
    fn choose(&self, n: usize, in_flight: impl Fn(usize) -> usize) -> Option<usize> {
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let index = match self.selection {
                    ReaderSelection::RoundRobin => self.turn.fetch_add(1, Ordering::Relaxed) % n,
                    ReaderSelection::Random => self.below(n),
                    ReaderSelection::PowerOfTwoChoices => {
                        let a = self.below(n);
                        // A second, different reader: an offset in 1..n from the first.
                        let b = (a + 1 + self.below(n - 1)) % n;
                        if in_flight(b) < in_flight(a) { b } else { a }
                    }
                };
                Some(index)
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
                    &crate::health::HealthOptions::default(),
                    None,
                    false,
                )
            })
            .collect()
    }

    fn counts(picker: &Picker, readers: &[Arc<HostPool>], rounds: usize) -> Vec<usize> {
        let mut seen = vec![0; readers.len()];
        for _ in 0..rounds {
            let chosen = picker.pick(readers, |_| true).expect("a reader");
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
            assert!(picker.pick(&[], |_| true).is_none());
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

    #[test]
    fn only_usable_readers_are_chosen() {
        for selection in [
            ReaderSelection::PowerOfTwoChoices,
            ReaderSelection::RoundRobin,
            ReaderSelection::Random,
        ] {
            let picker = Picker::new(selection);
            let hosts = readers(4);
            let usable = |r: &Arc<HostPool>| r.name() != "reader-1" && r.name() != "reader-3";
            let mut seen = [0; 4];
            for _ in 0..400 {
                let chosen = picker.pick(&hosts, usable).expect("a usable reader");
                seen[hosts
                    .iter()
                    .position(|r| Arc::ptr_eq(r, chosen))
                    .expect("known")] += 1;
            }
            assert_eq!((seen[1], seen[3]), (0, 0), "{selection:?}: {seen:?}");
            assert!(seen[0] > 100 && seen[2] > 100, "{selection:?}: {seen:?}");
            assert!(picker.pick(&hosts, |_| false).is_none());
        }
    }
}
