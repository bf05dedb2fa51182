//! What a connection knows of its blue/green deployment, and the switchover summary: each
//! phase's start relative to `IN_PROGRESS`, like the AWS wrappers' summary table.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::{BlueGreenEndpoint, BlueGreenPhase};

/// A connection's blue/green deployment as its monitor last saw it
/// ([`RdsConnection::blue_green`](crate::RdsConnection::blue_green)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BlueGreenStatus {
    /// The deployment's name ([`BlueGreenOptions::bgd_id`](crate::BlueGreenOptions::bgd_id)).
    pub bgd_id: String,
    /// Whether the server has blue/green metadata at all (when not, the feature is inert).
    pub available: bool,
    /// The current phase.
    pub phase: BlueGreenPhase,
    /// The endpoints the metadata names now.
    pub endpoints: Vec<BlueGreenEndpoint>,
    /// The endpoints as recorded before the switchover, with the address each resolved to
    /// (`None`: it did not resolve).
    pub recorded: Vec<(BlueGreenEndpoint, Option<SocketAddr>)>,
    /// Every phase change (and `ROLLBACK` / `TIMEOUT`), oldest first.
    pub timeline: Vec<BlueGreenEvent>,
}

/// One entry of a [`BlueGreenStatus`]'s timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BlueGreenEvent {
    /// When it was seen.
    pub at: SystemTime,
    /// Milliseconds after (or, negative, before) the switchover's `IN_PROGRESS` began; `None`
    /// when no switchover was in progress yet.
    pub offset_ms: Option<i64>,
    /// A phase name (`CREATED`, `IN_PROGRESS`, ...), `ROLLBACK` or `TIMEOUT`.
    pub event: String,
}

impl BlueGreenStatus {
    pub(super) fn new(
        bgd_id: &str,
        available: bool,
        phase: BlueGreenPhase,
        endpoints: &[BlueGreenEndpoint],
        recorded: &[(BlueGreenEndpoint, Option<SocketAddr>)],
        timeline: &[(SystemTime, Instant, String)],
    ) -> Self {
        // Time zero: the last time IN_PROGRESS began.
        let zero = timeline
            .iter()
            .rev()
            .find(|(_, _, event)| event == BlueGreenPhase::InProgress.as_str())
            .map(|(_, at, _)| *at);
        let offset = |at: Instant| {
            zero.map(|zero| {
                let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                if at >= zero {
                    ms(at - zero)
                } else {
                    -ms(zero - at)
                }
            })
        };
        BlueGreenStatus {
            bgd_id: bgd_id.to_owned(),
            available,
            phase,
            endpoints: endpoints.to_vec(),
            recorded: recorded.to_vec(),
            timeline: timeline
                .iter()
                .map(|(at, instant, event)| BlueGreenEvent {
                    at: *at,
                    offset_ms: offset(*instant),
                    event: event.clone(),
                })
                .collect(),
        }
    }

    /// The timeline as a table: each event's time, its offset from `IN_PROGRESS`, its name.
    ///
    /// ```text
    /// ----------------------------------------------------------
    ///       seconds since epoch   time offset (ms)        event
    /// ----------------------------------------------------------
    ///          1764091162.012          -2585 ms      PREPARATION
    ///          1764091164.597              0 ms      IN_PROGRESS
    /// ...
    /// ```
    pub fn summary(&self) -> String {
        let rule = "-".repeat(62);
        let mut out = format!(
            "{rule}\n{:>24} {:>18} {:>17}\n{rule}\n",
            "seconds since epoch", "time offset (ms)", "event"
        );
        for event in &self.timeline {
            let secs = event
                .at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| format!("{}.{:03}", d.as_secs(), d.subsec_millis()))
                .unwrap_or_default();
            let offset = event
                .offset_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
            let _ = writeln!(out, "{secs:>24} {offset:>18} {:>17}", event.event);
        }
        out.push_str(&rule);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn offsets_count_from_in_progress_and_the_summary_lists_every_event() {
        let t0 = Instant::now();
        let s0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let at = |ms: u64| {
            (
                s0 + Duration::from_millis(ms),
                t0 + Duration::from_millis(ms),
            )
        };
        let events = [
            "NOT_CREATED",
            "CREATED",
            "PREPARATION",
            "IN_PROGRESS",
            "POST",
            "COMPLETED",
        ];
        let times = [0, 10, 1000, 3500, 7000, 9000];
        let timeline: Vec<_> = events
            .iter()
            .zip(times)
            .map(|(e, ms)| {
                let (s, i) = at(ms);
                (s, i, (*e).to_owned())
            })
            .collect();
        let status =
            BlueGreenStatus::new("1", true, BlueGreenPhase::Completed, &[], &[], &timeline);
        let offsets: Vec<Option<i64>> = status.timeline.iter().map(|e| e.offset_ms).collect();
        assert_eq!(
            offsets,
            [
                Some(-3500),
                Some(-3490),
                Some(-2500),
                Some(0),
                Some(3500),
                Some(5500)
            ]
        );
        let summary = status.summary();
        for event in events {
            assert!(summary.contains(event), "{summary}");
        }
        assert!(
            summary.contains("-2500 ms") && summary.contains("5500 ms"),
            "{summary}"
        );
        assert!(summary.contains("1764000003.500"), "{summary}");
    }

    #[test]
    fn without_a_switchover_there_are_no_offsets() {
        let now = (SystemTime::now(), Instant::now(), "CREATED".to_owned());
        let status = BlueGreenStatus::new("1", true, BlueGreenPhase::Created, &[], &[], &[now]);
        assert_eq!(status.timeline[0].offset_ms, None);
        assert!(status.summary().contains(" - "), "{}", status.summary());
    }
}
