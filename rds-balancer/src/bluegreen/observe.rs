//! What the monitor learns, recorded in the deployment's shared state: each read of the
//! metadata, the addresses recorded before the switchover, DNS after it, and the timeout.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::{
    BlueGreen, BlueGreenEndpoint, BlueGreenPhase, BlueGreenRole, State, metadata, reroute, suspends,
};

impl BlueGreen {
    /// After the switchover, looks whether DNS has caught up: blue names resolving to their
    /// green nodes, green names gone. Once both, routing is back to normal.
    pub(super) fn observe_dns(
        &self,
        resolved: &[(BlueGreenEndpoint, Option<SocketAddr>)],
        now: Instant,
    ) {
        self.state.send_modify(|state| {
            if !state.switching() || state.phase < BlueGreenPhase::Post {
                return;
            }
            let now_at = |e: &BlueGreenEndpoint| {
                resolved
                    .iter()
                    .find(|(r, _)| r == e)
                    .and_then(|(_, a)| *a)
                    .filter(|a| a.port() != 0)
            };
            let recorded: Vec<&BlueGreenEndpoint> = state.recorded.iter().map(|(e, _)| e).collect();
            let blue_updated = recorded
                .iter()
                .filter(|e| e.role == BlueGreenRole::Source)
                .filter_map(|e| reroute::green_for(e, recorded.iter().copied()).map(|g| (*e, g)))
                .all(|(blue, green)| {
                    now_at(blue).is_some() && now_at(blue) == state.recorded_address(green)
                });
            let green_removed = recorded
                .iter()
                .filter(|e| e.role == BlueGreenRole::Target)
                .all(|e| now_at(e).is_none());
            if blue_updated && !state.blue_dns_updated {
                state.blue_dns_updated = true;
                push(state, now, "BLUE_DNS_UPDATED".to_owned());
            }
            if green_removed && !state.green_dns_removed {
                state.green_dns_removed = true;
                push(state, now, "GREEN_DNS_REMOVED".to_owned());
            }
            if state.blue_dns_updated
                && state.green_dns_removed
                && state.phase == BlueGreenPhase::Completed
            {
                state.settled = true;
                tracing::info!(bgd_id = %self.options.bgd_id, "blue/green switchover over and DNS settled: routing as usual");
                self.log_summary(state);
            }
        });
    }

    /// Whether the monitor should look at DNS: after the switchover, until it settled.
    pub(super) fn wants_dns(&self) -> Option<Vec<BlueGreenEndpoint>> {
        let state = self.state.borrow();
        (state.switching() && state.phase >= BlueGreenPhase::Post)
            .then(|| state.recorded.iter().map(|(e, _)| e.clone()).collect())
    }

    /// Records what one read found (or that the server has no metadata: `None`).
    pub(super) fn observe(&self, read: Option<metadata::Status>, now: Instant) {
        self.state.send_modify(|state| {
            let available = read.is_some();
            if state.available != Some(available) {
                state.available = Some(available);
                if !available {
                    tracing::debug!(bgd_id = %self.options.bgd_id, "no blue/green metadata on this server: blue/green support is inert");
                }
            }
            let status = read.unwrap_or_default();
            let previous = state.phase;
            if status.phase != previous || state.timeline.is_empty() {
                let rollback = previous.is_switching() && status.phase < previous && status.phase <= BlueGreenPhase::Created;
                state.phase = status.phase;
                // Statements are held from here on: the event is timed after that, so that
                // nothing issued after it reaches blue.
                self.suspended.store(suspends(state), Ordering::Release);
                if rollback {
                    push(state, now, "ROLLBACK".to_owned());
                }
                push(state, now, status.phase.as_str().to_owned());
                tracing::info!(bgd_id = %self.options.bgd_id, from = %previous, to = %status.phase, "blue/green deployment phase changed");
                if status.phase == BlueGreenPhase::InProgress {
                    state.in_progress_at.get_or_insert(now);
                }
                if !status.phase.is_switching() && status.phase != BlueGreenPhase::Completed {
                    state.in_progress_at = None;
                    state.gave_up = false;
                    state.settled = false;
                    state.blue_dns_updated = false;
                    state.green_dns_removed = false;
                }
                if rollback {
                    self.log_summary(state);
                }
            }
            state.endpoints = status.endpoints;
            self.check_timeout(state, now);
        });
    }

    /// The metadata could not be read: the last status stands, but the switchover timeout
    /// still runs.
    pub(super) fn observe_unreadable(&self, now: Instant) {
        self.state
            .send_modify(|state| self.check_timeout(state, now));
    }

    /// Gives up on a switchover in progress for longer than `switchover_timeout`, and
    /// publishes whether statements wait.
    pub(super) fn check_timeout(&self, state: &mut State, now: Instant) {
        if let Some(since) = state.in_progress_at
            && state.switching()
            && now.saturating_duration_since(since) >= self.options.switchover_timeout
        {
            state.gave_up = true;
            push(state, now, "TIMEOUT".to_owned());
            tracing::warn!(bgd_id = %self.options.bgd_id, timeout = ?self.options.switchover_timeout, "blue/green switchover did not complete in time; routing as usual");
            self.log_summary(state);
        }
        self.suspended.store(suspends(state), Ordering::Release);
    }

    /// Holds statements back (`true`) while hosts move, whatever the phase; `false` lets them
    /// go (unless the switchover is in progress).
    pub(super) fn hold(&self, holding: bool) {
        self.state.send_modify(|state| {
            state.holding = holding;
            self.suspended.store(suspends(state), Ordering::Release);
        });
    }

    /// Records the endpoints with their addresses (before a switchover).
    pub(super) fn record(&self, recorded: Vec<(BlueGreenEndpoint, Option<SocketAddr>)>) {
        self.state.send_modify(|state| state.recorded = recorded);
    }

    /// Whether the endpoints should be (re)recorded: a deployment exists, no switchover has
    /// started, and the endpoints differ from those recorded.
    pub(super) fn wants_recording(&self) -> Option<Vec<BlueGreenEndpoint>> {
        let state = self.state.borrow();
        let recorded_same = state.recorded.len() == state.endpoints.len()
            && state
                .recorded
                .iter()
                .zip(&state.endpoints)
                .all(|((r, _), e)| r == e);
        (state.phase == BlueGreenPhase::Created && !recorded_same).then(|| state.endpoints.clone())
    }

    pub(super) fn log_summary(&self, state: &State) {
        let status = self.snapshot(state);
        tracing::info!(bgd_id = %self.options.bgd_id, "blue/green switchover summary:\n{}", status.summary());
    }
}

fn push(state: &mut State, now: Instant, event: String) {
    state.timeline.push((SystemTime::now(), now, event));
}
