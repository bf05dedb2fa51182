//! Lag-aware readers: each reader's replica lag, measured from replication positions, and the
//! readers beyond `max_replica_lag` taken out of read scheduling until they catch up.
//!
//! Lag is measured the same way on every engine, from positions only: the writer's position is
//! sampled every tick, with the time it was first seen; a reader's lag is the age of the oldest
//! sample it has not replayed (0 when it has the latest). An idle cluster's position does not
//! move, so a caught-up reader reads 0 however long nothing is written (PostgreSQL's
//! `now() - pg_last_xact_replay_timestamp()` grows while idle). The error is at most one tick.
//!
//! A topology may also report each reader's lag ([`Instance::replica_lag`], from
//! `aurora_replica_status()` / `replica_host_status` or the user), applied with the topology.
//! The two are kept apart and combine: a reader lags when either says it lags beyond
//! `max_replica_lag`. Where only one exists (no position to measure, or a source that reports
//! no lag), that one decides; where neither does, nothing takes the reader out. Each keeps its
//! last word until it speaks again: a measurement that fails leaves the measured verdict as it
//! was, and a topology that reports no lag for a reader clears the reported one.
//!
//! [`Instance::replica_lag`]: crate::Instance::replica_lag

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::fetch::{self, Flavour};
use crate::cluster::Cluster;
use crate::position::Position;

/// Samples kept at most (older ones are dropped, and a reader behind all of them reads as
/// lagging at least the oldest's age).
const MAX_SAMPLES: usize = 4096;
/// The longest pause between two measurements.
const MAX_TICK: Duration = Duration::from_secs(1);
/// The shortest.
const MIN_TICK: Duration = Duration::from_millis(50);

/// A reader's lag, measured and reported, shared with routing and `health()`.
#[derive(Debug, Default)]
pub(crate) struct ReplicaLag {
    measured: Verdict,
    reported: Verdict,
}

/// One source's last word on a reader's lag.
#[derive(Debug, Default)]
struct Verdict {
    /// Milliseconds, plus one (0: not known).
    ms: AtomicU64,
    lagging: AtomicBool,
}

impl Verdict {
    fn lag(&self) -> Option<Duration> {
        match self.ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms - 1)),
        }
    }

    fn store(&self, lag: Option<Duration>) {
        let ms = lag.map_or(0, |lag| {
            u64::try_from(lag.as_millis())
                .unwrap_or(u64::MAX - 1)
                .saturating_add(1)
        });
        self.ms.store(ms, Ordering::Relaxed);
    }
}

impl ReplicaLag {
    /// Whether it lags beyond `max_replica_lag` (kept out of read scheduling), measured or
    /// reported.
    pub(crate) fn is_lagging(&self) -> bool {
        self.measured.lagging.load(Ordering::Relaxed)
            || self.reported.lagging.load(Ordering::Relaxed)
    }

    /// The lag last measured, if any.
    pub(crate) fn measured(&self) -> Option<Duration> {
        self.measured.lag()
    }

    /// The lag the last topology applied reported, if any.
    pub(crate) fn reported(&self) -> Option<Duration> {
        self.reported.lag()
    }

    fn record(&self, lag: Option<Duration>, max: Duration) {
        self.measured.store(lag);
        // Not measured (its position could not be read): left as it was, the health monitor
        // judges whether it answers.
        if let Some(lag) = lag {
            self.measured.lagging.store(lag > max, Ordering::Relaxed);
        }
    }

    /// Records the lag a topology reports (`None`: it reports none, and takes the reader out
    /// no longer); lagging beyond `max`, when set. Returns whether the reader lags now (either
    /// way).
    pub(crate) fn report(&self, lag: Option<Duration>, max: Option<Duration>) -> bool {
        self.reported.store(lag);
        let beyond = lag.zip(max).is_some_and(|(lag, max)| lag > max);
        self.reported.lagging.store(beyond, Ordering::Relaxed);
        self.is_lagging()
    }
}

/// The writer's positions as sampled, each with when it was first seen.
#[derive(Debug, Default)]
pub(crate) struct Samples(VecDeque<(Instant, Position)>);

impl Samples {
    /// Records the writer's position seen at `at` (a position equal to the latest keeps the
    /// latest's time: it was there already).
    pub(crate) fn push(&mut self, at: Instant, position: Position) {
        if self.0.back().is_some_and(|(_, latest)| *latest == position) {
            return;
        }
        if self.0.len() == MAX_SAMPLES {
            self.0.pop_front();
        }
        self.0.push_back((at, position));
    }

    /// The lag at `now` of a reader that replayed `replayed`: the age of the oldest sample it
    /// has not replayed, 0 when it has them all. `None` before the first sample.
    pub(crate) fn lag(&self, replayed: &Position, now: Instant) -> Option<Duration> {
        self.0.back()?;
        Some(
            self.0
                .iter()
                .find(|(_, sampled)| !sampled.reached_by(replayed))
                .map_or(Duration::ZERO, |(seen, _)| {
                    now.saturating_duration_since(*seen)
                }),
        )
    }

    /// Drops the samples every reader has replayed, but the latest.
    pub(crate) fn forget_replayed<'a>(
        &mut self,
        replayed: impl Iterator<Item = &'a Position> + Clone,
    ) {
        while self.0.len() > 1
            && self.0.front().is_some_and(|(_, oldest)| {
                replayed.clone().all(|position| oldest.reached_by(position))
            })
        {
            self.0.pop_front();
        }
    }
}

/// The pause between two measurements for `max_lag`: a quarter of it, within 50 ms to 1 s.
pub(crate) fn tick(max_lag: Duration) -> Duration {
    (max_lag / 4).clamp(MIN_TICK, MAX_TICK)
}

/// Starts the lag monitor of `cluster`: every tick, the writer's position, then each reader's;
/// stops with the cluster.
pub(crate) fn spawn_monitor(cluster: &Arc<Cluster>, max_lag: Duration, flavour: Flavour) {
    let watched = Arc::clone(cluster);
    cluster.lifecycle().spawn_until_stopped(async move {
        let cluster = watched;
        let mut samples = Samples::default();
        let tick = tick(max_lag);
        loop {
            let hosts = cluster.hosts();
            let seen = Instant::now();
            match fetch::writer_position(hosts.writer.conn(), flavour).await {
                Ok(Some(position)) => samples.push(seen, position),
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, "writer position not read for the lag"),
            }
            let replayed = futures_util::future::join_all(hosts.readers.iter().map(|reader| {
                let conn = reader.conn();
                async move {
                    match tokio::time::timeout(MAX_TICK, fetch::replayed_position(conn, flavour))
                        .await
                    {
                        Ok(Ok(position)) => position,
                        _ => None,
                    }
                }
            }))
            .await;
            let now = Instant::now();
            for (reader, replayed) in hosts.readers.iter().zip(&replayed) {
                let lag = replayed.as_ref().and_then(|position| samples.lag(position, now));
                let was = reader.lag().is_lagging();
                reader.lag().record(lag, max_lag);
                if was != reader.lag().is_lagging() {
                    tracing::info!(reader = %reader.name(), ?lag, ?max_lag, lagging = !was, "replica lag crossed max_replica_lag");
                }
            }
            samples.forget_replayed(replayed.iter().flatten());
            tokio::time::sleep(tick).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(n: u64) -> Position {
        Position::lsn_at(n)
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_position_not_replayed() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut samples = Samples::default();
        assert_eq!(samples.lag(&lsn(0), at(0)), None, "nothing sampled yet");
        samples.push(at(0), lsn(100));
        samples.push(at(100), lsn(200));
        samples.push(at(200), lsn(300));
        assert_eq!(samples.lag(&lsn(300), at(250)), Some(Duration::ZERO));
        assert_eq!(
            samples.lag(&lsn(250), at(250)),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            samples.lag(&lsn(50), at(250)),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn an_idle_writer_does_not_make_a_caught_up_reader_lag() {
        let start = Instant::now();
        let mut samples = Samples::default();
        samples.push(start, lsn(100));
        // Nothing written for an hour: the same position, sampled again and again.
        for minute in 1..=60 {
            samples.push(start + Duration::from_secs(60 * minute), lsn(100));
        }
        let later = start + Duration::from_secs(3600);
        assert_eq!(samples.lag(&lsn(100), later), Some(Duration::ZERO));
        // A reader that really stayed behind all that time lags the hour.
        assert_eq!(
            samples.lag(&lsn(99), later),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn samples_every_reader_has_are_dropped_but_the_latest() {
        let start = Instant::now();
        let mut samples = Samples::default();
        for i in 0..10 {
            samples.push(start + Duration::from_millis(i * 10), lsn(i * 10));
        }
        let replayed = [lsn(45), lsn(70)];
        samples.forget_replayed(replayed.iter());
        // 0..=40 are everywhere; 50 is the oldest the slower reader lacks.
        assert_eq!(samples.0.front().map(|(_, p)| p.clone()), Some(lsn(50)));
        let all = [lsn(1000)];
        samples.forget_replayed(all.iter());
        assert_eq!(samples.0.len(), 1, "the latest stays");
    }

    #[test]
    fn a_reader_leaves_beyond_the_limit_and_returns_within_it() {
        let lag = ReplicaLag::default();
        assert_eq!(lag.measured(), None);
        let max = Duration::from_millis(300);
        lag.record(Some(Duration::from_millis(301)), max);
        assert!(lag.is_lagging());
        assert_eq!(lag.measured(), Some(Duration::from_millis(301)));
        // Unmeasured: left as it was.
        lag.record(None, max);
        assert!(lag.is_lagging());
        lag.record(Some(Duration::from_millis(300)), max);
        assert!(!lag.is_lagging());
        assert_eq!(lag.reported(), None);
        assert_eq!(tick(Duration::from_millis(100)), MIN_TICK);
        assert_eq!(tick(Duration::from_secs(60)), MAX_TICK);
        assert_eq!(tick(Duration::from_millis(800)), Duration::from_millis(200));
    }

    #[test]
    fn a_measured_and_a_reported_lag_combine_either_takes_the_reader_out() {
        let lag = ReplicaLag::default();
        let max = Duration::from_secs(2);
        // Reported only (no position measured): the report decides.
        assert!(lag.report(Some(Duration::from_secs(5)), Some(max)));
        assert_eq!(lag.reported(), Some(Duration::from_secs(5)));
        assert_eq!(lag.measured(), None);
        assert!(!lag.report(Some(Duration::ZERO), Some(max)));
        // Both: lagging when either says so.
        lag.record(Some(Duration::from_millis(100)), max);
        assert!(
            lag.report(Some(Duration::from_secs(3)), Some(max)),
            "reported beyond"
        );
        assert!(!lag.report(Some(Duration::from_secs(1)), Some(max)));
        lag.record(Some(Duration::from_secs(3)), max);
        assert!(lag.is_lagging(), "measured beyond, reported within");
        // A topology reporting no lag clears its verdict, not the measured one.
        assert!(lag.report(None, Some(max)));
        assert_eq!(lag.reported(), None);
        lag.record(Some(Duration::ZERO), max);
        assert!(!lag.is_lagging());
        // Without max_replica_lag a report is shown, never acted upon.
        assert!(!lag.report(Some(Duration::from_secs(3600)), None));
        assert_eq!(lag.reported(), Some(Duration::from_secs(3600)));
    }
}
