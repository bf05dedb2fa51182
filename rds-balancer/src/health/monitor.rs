//! Watching hosts: the periodic health monitor, and the guard around every statement that
//! records how it ended, cuts it short when its host trips, and (enhanced failure monitoring)
//! probes its host while it runs too long.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use sea_orm::{DbErr, TransactionError};

use super::HealthOptions;
use crate::cluster::Cluster;
use crate::error::{Error, ErrorKind};
use crate::pool::{HostPool, got_connection, track};
use crate::resilience::{Fault, Summary};

/// An error type a guarded operation can return: made from the crate's error, and able to say
/// whose fault it is.
pub(crate) trait GuardedError: Sized {
    fn from_error(error: Error) -> Self;
    /// Whose fault the driver's error is; `None` for an error that is not the driver's (the
    /// crate's own, or a transaction callback's).
    fn fault(&self) -> Option<Fault>;
    /// A description safe to keep and show in the health snapshot (codes, never messages).
    fn describe(&self) -> String;
}

impl GuardedError for DbErr {
    fn from_error(error: Error) -> Self {
        error.into()
    }

    fn fault(&self) -> Option<Fault> {
        ErrorKind::of(self).is_none().then(|| Fault::of(self))
    }

    fn describe(&self) -> String {
        Summary(self).to_string()
    }
}

impl<E> GuardedError for TransactionError<E> {
    fn from_error(error: Error) -> Self {
        TransactionError::Connection(error.into())
    }

    fn fault(&self) -> Option<Fault> {
        match self {
            TransactionError::Connection(db) => db.fault(),
            TransactionError::Transaction(_) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            TransactionError::Connection(db) => db.describe(),
            TransactionError::Transaction(_) => "the transaction's own error".to_owned(),
        }
    }
}

/// How long a statement runs before its host is probed once, in case it waits for a connection
/// its pool cannot open: sqlx retries refused connections silently until the acquire timeout.
/// Also the least time between two such probes of one host (statements share them).
const EARLY_PROBE: Duration = Duration::from_millis(250);

/// Runs `work` (a statement, stream start or transaction on `host`) and:
/// - records its outcome in the host's health by whose fault an error is ([`Fault`]): the
///   statement's own errors blame nobody (the host answered); an unreachable host leaves
///   scheduling at once; a lost connection or a pool timeout has the host probed before the
///   error is returned, and only a failed probe counts against it;
/// - cuts it short with [`Error::HostUnavailable`] if the host trips while it runs;
/// - with enhanced failure monitoring on: when it has not finished after [`EARLY_PROBE`], probes
///   the host once (a host that refuses connections trips, which cuts it short); when it
///   outlives `failure_detection_time`, probes the host every `failure_detection_interval` on a
///   separate connection, and cuts it short once the host is found unhealthy (after
///   `failure_detection_count` failures in a row).
///
/// Returns the outcome, and whether it was cut short before the pool gave it a connection
/// (known never sent: only on pools that mark it, see [`crate::pool::track`]).
pub(crate) async fn guard_statement<T, E: GuardedError>(
    host: &Arc<HostPool>,
    options: &HealthOptions,
    work: impl Future<Output = Result<T, E>>,
) -> (Result<T, E>, bool) {
    let health = host.health();
    let tripped = health.tripped();
    tokio::pin!(tripped);
    tripped.as_mut().enable();
    let work = track(work);
    tokio::pin!(work);
    let watch = async {
        if !options.failure_detection {
            return std::future::pending().await;
        }
        let early = EARLY_PROBE.min(options.failure_detection_time);
        tokio::time::sleep(early).await;
        // The probes are boxed: the statement's future stays small (and cheap to set up).
        Box::pin(host.probe(EARLY_PROBE)).await;
        if !health.is_schedulable() {
            return;
        }
        tokio::time::sleep(options.failure_detection_time.saturating_sub(early)).await;
        loop {
            // Several slow statements on one host share a probe.
            Box::pin(host.probe(options.failure_detection_interval / 2)).await;
            if !health.is_schedulable() {
                return;
            }
            tokio::time::sleep(options.failure_detection_interval).await;
        }
    };
    let cut = tokio::select! {
        biased;
        outcome = &mut work => Ok(outcome),
        () = &mut tripped => Err("it tripped while the statement ran"),
        () = watch => Err("probes failed while the statement ran"),
    };
    let outcome = match cut {
        Ok(outcome) => outcome,
        Err(why) => {
            let unsent = host.is_marked() && !got_connection(work.as_mut());
            return (Err(unavailable(host, why)), unsent);
        }
    };
    // `None`: it succeeded; `Some(None)`: not the driver's error (nothing to learn).
    let fault = outcome.as_ref().err().map(GuardedError::fault);
    match fault {
        None | Some(Some(Fault::Statement | Fault::ReadOnly)) => health.succeeded(),
        Some(Some(Fault::Unreachable)) => {
            if let Err(error) = &outcome {
                health.unreachable(host.name(), &error.describe());
            }
        }
        Some(Some(fault)) if fault.needs_probe() => Box::pin(host.confirm()).await,
        Some(_) => {}
    }
    (outcome, false)
}

fn unavailable<E: GuardedError>(host: &HostPool, why: &'static str) -> E {
    E::from_error(Error::HostUnavailable {
        host: host.name().to_owned(),
        why: why.into(),
    })
}

/// Starts the health monitor of `cluster`: every `check_interval`, each host in service is
/// probed, concurrently. With the periodic probes off (`check_interval` `None`), it still probes
/// the unhealthy hosts every `failure_detection_interval`, which is how they come back. It stops
/// with the cluster (shutdown, or the last handle to the connection dropped).
pub(crate) fn spawn_monitor(cluster: &Arc<Cluster>) {
    let options = *cluster.health_options();
    let interval = options
        .check_interval
        .unwrap_or(options.failure_detection_interval);
    let everyone = options.check_interval.is_some();
    let watched = Arc::clone(cluster);
    cluster.lifecycle().spawn_until_stopped(async move {
        let cluster = watched;
        loop {
            tokio::time::sleep(interval).await;
            let hosts = cluster.hosts();
            let probes = std::iter::once(&hosts.writer)
                .chain(&hosts.readers)
                .filter(|host| everyone || !host.health().is_schedulable())
                .map(|host| host.probe(interval / 2));
            join_all(probes).await;
            // A writer found dead is a failover to follow, even with no statement failing on it.
            if !hosts.writer.health().is_schedulable() {
                cluster.failover().request();
            }
        }
    });
}
