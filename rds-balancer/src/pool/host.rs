//! One host's pool and the RAII guard that counts the statements running on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::causal::{JoinGate, Replayed, ReplicaLag};
use crate::credentials::Renewal;
use crate::health::{HealthOptions, HostHealth, ProbeError};

/// Whether a host is the cluster's writer or one of its readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// The host that takes writes.
    Writer,
    /// A read replica.
    Reader,
}

impl Role {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

/// Who opened a host's pool, which decides who closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The application opened it and handed it over: closed only by shutdown, never when the
    /// host leaves service (the application may still use it).
    Handed,
    /// Opened by the builder from a URL the application gave.
    Configured,
    /// Opened because a topology named the host.
    Discovered,
}

/// A host's SeaORM pool, with the count of statements in flight on it.
pub(crate) struct HostPool {
    name: Arc<str>,
    role: Role,
    origin: Origin,
    conn: DatabaseConnection,
    health: HostHealth,
    renewal: Option<Arc<Renewal>>,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Whether its pool marks when a statement gets a connection ([`super::track`]).
    marked: bool,
    /// What it has replayed of the writer's changes, as last read (causal reads).
    replayed: Replayed,
    /// Its replica lag, as last measured (lag-aware readers).
    lag: ReplicaLag,
    /// Closed while it catches up with its joining (causal reads).
    join_gate: JoinGate,
}

impl std::fmt::Debug for HostPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection is left out on purpose: its options may hold a password.
        f.debug_struct("HostPool")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("origin", &self.origin)
            .field("health", &self.health)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl HostPool {
    pub(crate) fn new(
        name: impl Into<Arc<str>>,
        role: Role,
        origin: Origin,
        conn: DatabaseConnection,
        health: &HealthOptions,
        renewal: Option<Arc<Renewal>>,
        marked: bool,
    ) -> Arc<Self> {
        Arc::new(HostPool {
            name: name.into(),
            role,
            origin,
            conn,
            health: HostHealth::new(health),
            renewal,
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            marked,
            replayed: Replayed::default(),
            lag: ReplicaLag::default(),
            join_gate: JoinGate::default(),
        })
    }

    /// The host's name: its `host:port` endpoint, or `writer` / `reader-N` for a pool the user
    /// handed over.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn role(&self) -> Role {
        self.role
    }

    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    /// The address its pool dials (`None` for a Unix socket or a pool rds-balancer cannot
    /// read).
    pub(crate) fn dial_address(&self) -> Option<(String, u16)> {
        super::Template::from_connection(&self.conn)
            .map(|t| (t.address().0.to_owned(), t.address().1))
    }

    /// Whether its pool marks when a statement gets a connection, so that a statement cut short
    /// before that is known never sent.
    pub(crate) fn is_marked(&self) -> bool {
        self.marked
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// What it has replayed, as last read (causal reads).
    pub(crate) fn replayed(&self) -> &Replayed {
        &self.replayed
    }

    /// Its replica lag, as last measured (lag-aware readers).
    pub(crate) fn lag(&self) -> &ReplicaLag {
        &self.lag
    }

    /// Whether it is held out of reads until it catches up with its joining (causal reads).
    pub(crate) fn join_gate(&self) -> &JoinGate {
        &self.join_gate
    }

    pub(crate) fn health(&self) -> &HostHealth {
        &self.health
    }

    /// Probes the host (see [`HostHealth::probe`]); a probe whose login was refused (a rotated
    /// password) renews the credentials instead of counting against the host.
    pub(crate) async fn probe(&self, min_gap: Duration) {
        let outcome = self.health.probe(self.name(), self.conn(), min_gap).await;
        self.after_probe(outcome.as_ref().and_then(|o| o.as_ref().err()))
            .await;
    }

    /// Probes the host now to learn whether an error a statement saw was the host's (see
    /// [`HostHealth::confirm`]).
    pub(crate) async fn confirm(&self) {
        let outcome = self.health.confirm(self.name(), self.conn()).await;
        self.after_probe(outcome.as_ref().and_then(|o| o.as_ref().err()))
            .await;
    }

    /// Whether the host accepts writes now, asked within `timeout` (see
    /// [`HostHealth::writable`]).
    pub(crate) async fn writable(&self, timeout: Duration) -> bool {
        match self
            .health
            .writable(self.name(), self.conn(), timeout)
            .await
        {
            Ok(writable) => writable,
            Err(error) => {
                self.after_probe(Some(&error)).await;
                false
            }
        }
    }

    async fn after_probe(&self, error: Option<&ProbeError>) {
        if let (Some(error), Some(renewal)) = (error, &self.renewal)
            && error.login_refused()
        {
            renewal.rejected().await;
        }
    }

    /// Its pool could not connect when it was opened (`error`): it is out of scheduling until a
    /// probe succeeds.
    pub(crate) fn down_from_the_start(&self, error: &crate::error::Error) {
        self.health.unreachable(self.name(), &error.to_string());
    }

    /// The renewal of its credentials, when a provider gave them.
    pub(crate) fn renewal(&self) -> Option<&Renewal> {
        self.renewal.as_deref()
    }

    /// Stops renewing its credentials (it leaves service).
    pub(crate) fn stop_renewal(&self) {
        if let Some(renewal) = &self.renewal {
            renewal.stop();
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts one statement as running on this host until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            host: Arc::clone(self),
        }
    }

    /// Waits until no statement is in flight here, or `timeout` passes. Returns how many are
    /// still running (0 when drained).
    pub(crate) async fn drained(&self, timeout: Duration) -> usize {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.in_flight() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.in_flight()
    }
}

/// Proof that a statement is running on a host; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct InFlight {
    host: Arc<HostPool>,
}

impl InFlight {
    pub(crate) fn host(&self) -> &Arc<HostPool> {
        &self.host
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.host.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.host.idle.notify_waiters();
        }
    }
}
