//! The set of host pools behind one [`RdsConnection`](crate::RdsConnection).
//!
//! The set is an immutable snapshot behind an atomic pointer: routing a statement takes the
//! current snapshot without locking, and a topology change publishes a new one.

mod acquired;
mod factory;
mod host;
mod template;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sea_orm::{DatabaseConnection, DatabaseConnectionType};

pub(crate) use self::acquired::{got_connection, marking, track};
pub(crate) use self::factory::{HostFactory, Opened, is_host_down, open_or_lazily};
pub(crate) use self::host::Role;
pub(crate) use self::host::{HostPool, InFlight, Origin};
pub(crate) use self::template::{Template, set_credentials};

/// The writer and the readers that may be scheduled, at one moment.
#[derive(Debug)]
pub(crate) struct Hosts {
    pub(crate) writer: Arc<HostPool>,
    pub(crate) readers: Vec<Arc<HostPool>>,
}

/// The current [`Hosts`], swapped atomically.
#[derive(Debug)]
pub(crate) struct PoolSet {
    current: ArcSwap<Hosts>,
}

impl PoolSet {
    pub(crate) fn new(hosts: Hosts) -> Self {
        PoolSet {
            current: ArcSwap::from_pointee(hosts),
        }
    }

    /// The current snapshot.
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Hosts>> {
        self.current.load()
    }

    /// The current snapshot, as an owned `Arc` (for holding across awaits).
    pub(crate) fn load_full(&self) -> Arc<Hosts> {
        self.current.load_full()
    }

    /// Publishes `hosts` as the current snapshot. Statements already routed keep the host they
    /// were given.
    pub(crate) fn publish(&self, hosts: Hosts) {
        self.current.store(Arc::new(hosts));
    }
}

/// How a host's retirement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retired {
    /// Statements still in flight when the time was up.
    pub(crate) still_running: usize,
    /// Whether its pool closed in time.
    pub(crate) closed: bool,
}

impl Retired {
    /// Every statement finished and the pool closed in time.
    pub(crate) fn is_clean(self) -> bool {
        self.still_running == 0 && self.closed
    }
}

/// Which pools [`retire`] closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Every pool: the connection is shutting down.
    All,
    /// Only pools rds-balancer opened: a host left service, and a pool the application handed
    /// over stays open for it.
    Opened,
}

/// Takes a host out of service once it has left every snapshot. A pool rds-balancer opened
/// that leaves service (not at shutdown) is closed at once: it hands out no connection from
/// then on, so statements still waiting for one fail with `PoolClosed`, never sent, and run on
/// the hosts in service. Then waits for the statements in flight on it (up to `timeout`), and
/// closes its pool (unless `closing` spares it), which also waits for connections still checked
/// out (open transactions, streams) within what is left of `timeout`.
pub(crate) async fn retire(host: Arc<HostPool>, timeout: Duration, closing: Closing) -> Retired {
    let deadline = tokio::time::Instant::now() + timeout;
    let spared = closing == Closing::Opened && host.origin() == Origin::Handed;
    let closed_early = (closing == Closing::Opened && !spared).then(|| close_now(host.conn()));
    let still_running = host.drained(timeout).await;
    if spared {
        tracing::info!(host = %host.name(), role = host.role().as_str(), still_running, "host left service; its pool stays open for the application that handed it over");
        return Retired {
            still_running,
            closed: false,
        };
    }
    host.stop_renewal();
    host.health().close().await;
    let close = closed_early.unwrap_or_else(|| close_now(host.conn()));
    let closed = tokio::time::timeout_at(deadline, close).await.is_ok();
    let retired = Retired {
        still_running,
        closed,
    };
    if retired.is_clean() {
        tracing::info!(host = %host.name(), role = host.role().as_str(), "host drained and closed");
    } else {
        tracing::warn!(
            host = %host.name(),
            role = host.role().as_str(),
            still_running,
            ?timeout,
            "timeout passed; pool closed with work still running"
        );
    }
    retired
}

/// Marks `conn`'s pool closed now (it hands out no connection any more; waiters get
/// `PoolClosed`) and returns what waits for its connections to come back and closes them.
fn close_now(conn: &DatabaseConnection) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    match &conn.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            Box::pin(conn.get_postgres_connection_pool().close())
        }
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
            Box::pin(conn.get_mysql_connection_pool().close())
        }
        _ => Box::pin(std::future::ready(())),
    }
}

/// A pool's open and idle connections.
pub(crate) fn occupancy(conn: &DatabaseConnection) -> (u32, usize) {
    match &conn.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = conn.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
            let pool = conn.get_mysql_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    }
}

/// Closes one idle connection of `conn`'s pool, if it has one; returns whether it did.
pub(crate) async fn close_one_idle(conn: &DatabaseConnection) -> bool {
    match &conn.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            match conn.get_postgres_connection_pool().try_acquire() {
                Some(idle) => idle.close().await.is_ok(),
                None => false,
            }
        }
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
            match conn.get_mysql_connection_pool().try_acquire() {
                Some(idle) => idle.close().await.is_ok(),
                None => false,
            }
        }
        _ => false,
    }
}
