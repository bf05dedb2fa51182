//! Where a statement goes: the route decided from the statement (override scope, hints,
//! classifier, read-your-writes), then the host the cluster admits it to, with the span it runs
//! in and its share of the connection budget.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::{AccessMode, DatabaseBackend, DatabaseConnection, TransactionOptions};
use tracing::Instrument;

use super::RdsConnection;
use crate::budget::{Budget, Slot};
use crate::causal::Causal;
use crate::classify::{Classifier, Target};
use crate::error::Error;
use crate::health::{GuardedError, HealthOptions, guard_statement};
use crate::pool::{HostPool, Hosts, InFlight};
use crate::route::{Decision, Route, Sticky, Why, current_route, decide, decide_transaction};

/// The routing state of a connection: how statements are classified, and which tasks wrote
/// recently.
#[derive(Debug)]
pub(crate) struct Router {
    classifier: Classifier,
    /// Read-your-writes: which tasks wrote recently.
    pub(super) sticky: Sticky,
    /// Position mode's state (read-your-writes by replication position), when on.
    pub(super) causal: Option<Causal>,
}

impl Router {
    pub(crate) fn new(classifier: Classifier, sticky: Sticky, causal: Option<Causal>) -> Self {
        Router {
            classifier,
            sticky,
            causal,
        }
    }

    /// Records that the current task wrote (or ran a transaction on the writer): its next reads
    /// go to the writer for the read-your-writes window.
    pub(super) fn wrote(&self) {
        self.sticky.mark();
    }
}

/// A statement admitted to a host: the in-flight guard, the span it runs in, and what decided
/// its host.
pub(super) struct Routed {
    pub(super) guard: InFlight,
    span: tracing::Span,
    pub(super) decision: Decision,
    pub(super) operation: &'static str,
    health: HealthOptions,
    /// The connection budget and the hosts it spans, when there is one.
    budget: Option<(Arc<Budget>, Arc<Hosts>)>,
    /// The budget's slot, once taken; a stream keeps it.
    slot: Mutex<Option<Slot>>,
    /// Set when the guard cut it short before its pool gave it a connection: never sent.
    unsent: AtomicBool,
}

impl Routed {
    /// Runs `f` on the chosen host's pool, with a slot of the connection budget, inside the
    /// statement's span, under the host's health guard (outcome recorded; cut short if the host
    /// is found dead).
    pub(super) async fn run<'r, T, E: GuardedError, Fut: Future<Output = Result<T, E>>>(
        &'r self,
        f: impl FnOnce(&'r DatabaseConnection) -> Fut,
    ) -> Result<T, E> {
        let host = self.guard.host();
        if let Some((budget, hosts)) = &self.budget {
            let slot = budget.reserve(host, hosts).await.map_err(E::from_error)?;
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(slot);
        }
        self.guarded(f(host.conn())).await
    }

    /// Runs `work` (on the connection it already holds: a transaction's statement) inside the
    /// span, under the host's health guard.
    pub(super) async fn guarded<T, E: GuardedError>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let (outcome, unsent) = guard_statement(self.guard.host(), &self.health, work)
            .instrument(self.span.clone())
            .await;
        self.unsent.store(unsent, Ordering::Relaxed);
        outcome
    }

    /// Whether its last run was cut short before it got a connection (never sent).
    pub(super) fn unsent(&self) -> bool {
        self.unsent.load(Ordering::Relaxed)
    }

    pub(super) fn host(&self) -> &Arc<HostPool> {
        self.guard.host()
    }

    /// The budget's slot it holds, if any (a stream keeps it until dropped).
    pub(super) fn take_slot(&self) -> Option<Slot> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl RdsConnection {
    /// Routes one statement and admits it to its host.
    pub(super) fn route(&self, sql: &str) -> Result<Routed, Error> {
        let router = self.router();
        let decision = decide(
            current_route(),
            sql,
            self.cluster().backend(),
            &router.classifier,
            || router.sticky.is_sticky() || crate::causal::is_required(),
        )?;
        self.admit(decision, "statement", None)
    }

    /// Routes a transaction and admits its `BEGIN`; returns the options to open it with.
    pub(super) fn route_transaction(
        &self,
        mut options: TransactionOptions,
    ) -> Result<(Routed, TransactionOptions), Error> {
        let decision = decide_transaction(current_route(), options.access_mode)?;
        if decision.route == Route::Reader {
            options.access_mode = Some(AccessMode::ReadOnly);
        }
        Ok((self.admit(decision, "transaction", None)?, options))
    }

    /// Whether a statement routed by `decision` is certainly read-only: routed to a reader, or
    /// sent to the writer only by an override, a hint or read-your-writes while the classifier
    /// finds it read-only.
    pub(super) fn is_read(&self, decision: Decision, sql: &str) -> bool {
        match (decision.route, decision.why) {
            (Route::Reader, _) | (Route::Writer, Why::ReadYourWrites) => true,
            (Route::Writer, Why::Override | Why::Hint) => {
                self.router()
                    .classifier
                    .classify(sql, self.cluster().backend())
                    == Target::Reader
            }
            (Route::Writer, _) => false,
        }
    }

    /// Admits a statement routed by `decision` to a host (never `avoid`, a host that just
    /// failed, among readers): counted in flight there, with its span and budget.
    pub(super) fn admit(
        &self,
        decision: Decision,
        operation: &'static str,
        avoid: Option<&Arc<HostPool>>,
    ) -> Result<Routed, Error> {
        let guard = self.cluster().admit(decision.route, avoid)?;
        Ok(self.routed(guard, decision, operation))
    }

    /// A statement counted in flight by `guard`, with its span and budget.
    pub(super) fn routed(
        &self,
        guard: InFlight,
        decision: Decision,
        operation: &'static str,
    ) -> Routed {
        let cluster = self.cluster();
        let host = guard.host();
        let span = tracing::debug_span!(
            "rds_balancer.route",
            db.operation = operation,
            db.system = system_name(cluster.backend()),
            server.host = %host.name(),
            rds.role = host.role().as_str(),
            rds.route = decision.route.as_str(),
            rds.reason = decision.why.as_str(),
        );
        let budget = cluster
            .budget()
            .map(|budget| (Arc::clone(budget), cluster.hosts()));
        Routed {
            guard,
            span,
            decision,
            operation,
            health: *cluster.health_options(),
            budget,
            slot: Mutex::new(None),
            unsent: AtomicBool::new(false),
        }
    }
}

/// The OpenTelemetry `db.system` name of a backend.
fn system_name(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "postgresql",
        DatabaseBackend::MySql => "mysql",
        _ => "other_sql",
    }
}
