//! Blue/green deployments: riding through a switchover.
//!
//! A monitor reads the deployment's status from the database's own metadata (Aurora
//! PostgreSQL `get_blue_green_fast_switchover_metadata`, RDS PostgreSQL
//! `rds_tools.show_topology`, MySQL `mysql.rds_topology`) on a connection of its own: every
//! `baseline_interval` while there is no deployment, every `increased_interval` once one
//! exists, every `high_interval` from the switchover's request until it completes. Before the
//! switchover it records every blue and green endpoint with the address it resolves to.
//!
//! While the switchover is in progress (`IN_PROGRESS`, when AWS cuts the connections to blue),
//! statements and transactions wait instead of failing, up to `connect_timeout`, then run; a
//! switchover that never ends is given up on after `switchover_timeout`. A rollback returns to
//! normal routing. Where the server has no such metadata the feature stays inert.
//!
//! [`RdsConnection::blue_green`](crate::RdsConnection::blue_green) reports the phase, the
//! endpoints and the timeline; the timeline is logged as a summary table when the switchover
//! completes, rolls back or times out.

mod metadata;
mod monitor;
mod observe;
mod options;
mod phase;
mod reroute;
mod summary;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

pub use self::metadata::BlueGreenEndpoint;
pub(crate) use self::monitor::spawn_monitor;
pub use self::options::BlueGreenOptions;

pub use self::phase::{BlueGreenPhase, BlueGreenRole};
pub use self::summary::{BlueGreenEvent, BlueGreenStatus};
use crate::error::Error;
use crate::topology::EndpointResolver;

/// One connection's view of its deployment, shared by the monitor (which writes it) and the
/// statements (which wait on it).
pub(crate) struct BlueGreen {
    options: BlueGreenOptions,
    resolver: Option<Arc<dyn EndpointResolver>>,
    /// True while statements must wait: the switchover is in progress. Read by every statement.
    suspended: AtomicBool,
    state: watch::Sender<State>,
}

impl std::fmt::Debug for BlueGreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlueGreen")
            .field("options", &self.options)
            .field("suspended", &self.suspended.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the monitor knows.
#[derive(Debug, Clone, Default)]
struct State {
    /// Whether the server has blue/green metadata; `None` before the first answer.
    available: Option<bool>,
    phase: BlueGreenPhase,
    endpoints: Vec<BlueGreenEndpoint>,
    /// The endpoints with the address each resolved to before the switchover.
    recorded: Vec<(BlueGreenEndpoint, Option<SocketAddr>)>,
    timeline: Vec<(SystemTime, Instant, String)>,
    /// When `IN_PROGRESS` was first seen, for the switchover timeout.
    in_progress_at: Option<Instant>,
    /// The switchover timed out: treated as over until the deployment leaves its phases.
    gave_up: bool,
    /// After the switchover, blue names resolve to the green nodes and green names are gone:
    /// routing is back to normal.
    settled: bool,
    /// Statements stay held while hosts move to green (or back), past `IN_PROGRESS`.
    holding: bool,
    /// Blue names seen resolving to the green nodes (after the switchover).
    blue_dns_updated: bool,
    /// Green names seen no longer resolving (after the switchover).
    green_dns_removed: bool,
}

impl State {
    /// Whether the switchover's routing rules apply: from its request until DNS settled after
    /// it (or it timed out).
    fn switching(&self) -> bool {
        !self.gave_up
            && !self.settled
            && (self.phase.is_switching() || self.phase == BlueGreenPhase::Completed)
    }

    /// The address recorded for `endpoint`.
    fn recorded_address(&self, endpoint: &BlueGreenEndpoint) -> Option<SocketAddr> {
        self.recorded
            .iter()
            .find(|(e, _)| e == endpoint)
            .and_then(|(_, address)| *address)
    }
}

/// Where a new pool for an endpoint dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dial {
    /// Through the endpoint resolver, as always.
    AsUsual,
    /// At this address (an IP recorded before the switchover).
    At(String, u16),
    /// Nowhere: a green name about to disappear.
    Refuse,
    /// Nowhere: the switchover stayed in progress for this long (`connect_timeout`).
    TimedOut(Duration),
}

impl BlueGreen {
    pub(crate) fn new(
        options: BlueGreenOptions,
        resolver: Option<Arc<dyn EndpointResolver>>,
    ) -> Self {
        BlueGreen {
            options,
            resolver,
            suspended: AtomicBool::new(false),
            state: watch::Sender::new(State::default()),
        }
    }

    /// Holds a statement back while a switchover is in progress; returns at once otherwise.
    /// Fails with [`Error::BlueGreenSwitchover`] when it lasts longer than `connect_timeout`.
    pub(crate) async fn wait_if_switching(&self) -> Result<(), Error> {
        if !self.suspended.load(Ordering::Acquire) {
            return Ok(());
        }
        // Boxed: the statement's future stays small (and cheap to set up) in the common case.
        Box::pin(self.wait_switched()).await
    }

    /// [`wait_if_switching`](Self::wait_if_switching) once a switchover is in progress.
    async fn wait_switched(&self) -> Result<(), Error> {
        let start = Instant::now();
        let mut rx = self.state.subscribe();
        let waited = tokio::time::timeout(
            self.options.connect_timeout,
            rx.wait_for(|state| !suspends(state)),
        )
        .await;
        match waited {
            Ok(_) => {
                tracing::debug!(waited = ?start.elapsed(), "statement held back by a blue/green switchover, released");
                Ok(())
            }
            Err(_) => Err(Error::BlueGreenSwitchover {
                waited: start.elapsed(),
            }),
        }
    }

    /// Resolves once a switchover has held statements back for `connect_timeout`, with how long
    /// it has; never while none is in progress. A transaction already open on blue when the
    /// switchover began runs on until then, and is cut at that point.
    pub(crate) async fn overdue(&self) -> Duration {
        let mut rx = self.state.subscribe();
        // When this future first saw statements held, for a hold without an `IN_PROGRESS` time.
        let mut seen_held: Option<Instant> = None;
        loop {
            let since = {
                let state = rx.borrow_and_update();
                if suspends(&state) {
                    let seen = *seen_held.get_or_insert_with(Instant::now);
                    Some(state.in_progress_at.map_or(seen, |at| at.min(seen)))
                } else {
                    seen_held = None;
                    None
                }
            };
            let changed = async {
                if rx.changed().await.is_err() {
                    // The monitor is gone: nothing changes any more.
                    std::future::pending::<()>().await;
                }
            };
            match since {
                Some(since) => {
                    let deadline =
                        tokio::time::Instant::from_std(since + self.options.connect_timeout);
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => return since.elapsed(),
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Where a new pool for the endpoint `host:port` dials while a switchover runs: a blue name
    /// at the address it had before (stale DNS cannot send it elsewhere), then, once green
    /// took over, at its green node's; a green name waits while the switchover is in progress
    /// (a blue name too with `suspend_new_blue_connections`), and is refused once green took
    /// over (it is about to be renamed).
    pub(crate) async fn dial_for(&self, host: &str, port: u16) -> Dial {
        // While the switchover is in progress, green names wait, and blue names too with
        // `suspend_new_blue_connections`.
        let waits = |state: &State| {
            state.phase == BlueGreenPhase::InProgress
                && state.switching()
                && state.recorded.iter().any(|(e, _)| {
                    e.host.eq_ignore_ascii_case(host)
                        && (e.role == BlueGreenRole::Target
                            || self.options.suspend_new_blue_connections)
                })
        };
        if waits(&self.state.borrow()) {
            let start = Instant::now();
            let mut rx = self.state.subscribe();
            let waited = tokio::time::timeout(
                self.options.connect_timeout,
                rx.wait_for(|state| !waits(state)),
            )
            .await;
            if waited.is_err() {
                return Dial::TimedOut(start.elapsed());
            }
        }
        let state = self.state.borrow();
        if !state.switching() {
            return Dial::AsUsual;
        }
        let Some((endpoint, address)) = state
            .recorded
            .iter()
            .find(|(e, _)| e.host.eq_ignore_ascii_case(host) && e.port == port)
            .or_else(|| {
                state
                    .recorded
                    .iter()
                    .find(|(e, _)| e.host.eq_ignore_ascii_case(host))
            })
        else {
            return Dial::AsUsual;
        };
        let at = |address: SocketAddr| Dial::At(address.ip().to_string(), address.port());
        let green_took_over = state.phase >= BlueGreenPhase::Post;
        match (endpoint.role, green_took_over) {
            (BlueGreenRole::Source, false) => address.map_or(Dial::AsUsual, at),
            (BlueGreenRole::Source, true) => {
                reroute::green_for(endpoint, state.recorded.iter().map(|(e, _)| e))
                    .and_then(|green| state.recorded_address(green))
                    .map_or(Dial::AsUsual, at)
            }
            (BlueGreenRole::Target, true) => Dial::Refuse,
            (BlueGreenRole::Target, false) => Dial::AsUsual,
        }
    }

    /// The status as the last read of the metadata saw it.
    pub(crate) fn status(&self) -> BlueGreenStatus {
        self.snapshot(&self.state.borrow())
    }

    /// `state` as the public status.
    fn snapshot(&self, state: &State) -> BlueGreenStatus {
        BlueGreenStatus::new(
            &self.options.bgd_id,
            state.available.unwrap_or(false),
            state.phase,
            &state.endpoints,
            &state.recorded,
            &state.timeline,
        )
    }

    /// Whether the last read found the deployment in `phase`.
    fn is_in(&self, phase: BlueGreenPhase) -> bool {
        self.state.borrow().phase == phase
    }

    /// The addresses recorded before the switchover for the endpoints of `role`.
    fn recorded_addresses(&self, role: BlueGreenRole) -> Vec<SocketAddr> {
        self.state
            .borrow()
            .recorded
            .iter()
            .filter(|(e, _)| e.role == role)
            .filter_map(|(_, address)| *address)
            .collect()
    }

    /// The endpoints with the addresses recorded before the switchover.
    fn recorded(&self) -> Vec<(BlueGreenEndpoint, Option<SocketAddr>)> {
        self.state.borrow().recorded.clone()
    }

    /// The address dialled for `endpoint`: the connection's endpoint resolver's answer, or the
    /// endpoint itself.
    fn dialled(&self, endpoint: &BlueGreenEndpoint) -> (String, u16) {
        match &self.resolver {
            Some(resolver) => resolver.resolve(&endpoint.host, endpoint.port),
            None => (endpoint.host.clone(), endpoint.port),
        }
    }

    /// The next poll's interval.
    fn interval(&self) -> Duration {
        let state = self.state.borrow();
        self.options
            .interval(state.phase, state.available.unwrap_or(false))
    }
}

/// Whether statements wait in `state`.
fn suspends(state: &State) -> bool {
    (state.phase == BlueGreenPhase::InProgress || state.holding) && !state.gave_up
}

#[cfg(test)]
mod tests;
