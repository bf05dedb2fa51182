//! The cluster core: the hosts in service, the topology applied, the background tasks and the
//! lifecycle behind one [`RdsConnection`](crate::RdsConnection), independent of SeaORM's
//! traits.
//!
//! Its state is private. The rest of the crate uses a small API: [`Cluster::admit`] a
//! statement to a host, change the hosts in one step ([`Cluster::changing`], then
//! its `commit`), read the hosts and the topology, spawn background work tied to the
//! lifecycle, and [`Cluster::shutdown`].

mod lifecycle;
mod shutdown;
mod swap;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::DatabaseBackend;

pub(crate) use self::lifecycle::Lifecycle;
pub use self::shutdown::ShutdownReport;
use crate::bluegreen::BlueGreen;
use crate::budget::Budget;
use crate::causal::Flavour;
use crate::error::{Error, Result};
use crate::failover::Failover;
use crate::health::HealthOptions;
use crate::pool::{HostFactory, HostPool, Hosts, InFlight, Opened, Origin, PoolSet, Role};
use crate::route::{Picker, Route};
use crate::topology::{ReaderFilter, Topology};

/// What a cluster is made of, as the builder assembled it.
pub(crate) struct Parts {
    pub(crate) backend: DatabaseBackend,
    pub(crate) hosts: Hosts,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) picker: Picker,
    pub(crate) fallback_to_writer: bool,
    pub(crate) factory: Option<HostFactory>,
    pub(crate) filter: ReaderFilter,
    pub(crate) keep_existing_write_host: bool,
    pub(crate) drain_timeout: Duration,
    pub(crate) health: HealthOptions,
    pub(crate) budget: Option<Arc<Budget>>,
    pub(crate) blue_green: Option<Arc<BlueGreen>>,
    pub(crate) max_replica_lag: Option<Duration>,
    /// Position mode's engine flavour, when it is on: readers that join are held out until
    /// they catch up with their joining.
    pub(crate) positions: Option<Flavour>,
}

/// The hosts of one connection and everything that keeps them in line.
pub(crate) struct Cluster {
    backend: DatabaseBackend,
    pools: PoolSet,
    picker: Picker,
    fallback_to_writer: bool,
    /// Set once shutdown begins; checked after a statement is counted in flight, and by every
    /// change to the hosts before it publishes.
    closing: AtomicBool,
    lifecycle: Lifecycle,
    /// Opens pools for hosts a topology names, with the writer's settings; `None` when the
    /// writer is dialled through a Unix socket (no host to replace).
    factory: Option<HostFactory>,
    filter: ReaderFilter,
    keep_existing_write_host: bool,
    drain_timeout: Duration,
    health: HealthOptions,
    failover: Failover,
    budget: Option<Arc<Budget>>,
    blue_green: Option<Arc<BlueGreen>>,
    /// Readers lagging beyond it (measured or reported by a topology) get no reads.
    max_replica_lag: Option<Duration>,
    positions: Option<Flavour>,
    /// Serialises changes to the hosts: held across the I/O that opens a change's pools, and
    /// waited for by other changes only (never by routing or shutdown).
    turn: tokio::sync::Mutex<()>,
    /// The topology applied and the writer to put back; held for in-memory steps only.
    record: Mutex<Record>,
}

struct Record {
    /// The instances in use, as of the last topology applied.
    applied: Topology,
    /// The writer the connection was built with, put back when a balancer is destroyed.
    home_writer: Arc<HostPool>,
}

impl Cluster {
    pub(crate) fn new(parts: Parts) -> Arc<Self> {
        let home_writer = Arc::clone(&parts.hosts.writer);
        Arc::new(Cluster {
            backend: parts.backend,
            pools: PoolSet::new(parts.hosts),
            picker: parts.picker,
            fallback_to_writer: parts.fallback_to_writer,
            closing: AtomicBool::new(false),
            lifecycle: parts.lifecycle,
            factory: parts.factory,
            filter: parts.filter,
            keep_existing_write_host: parts.keep_existing_write_host,
            drain_timeout: parts.drain_timeout,
            health: parts.health,
            failover: Failover::default(),
            budget: parts.budget,
            blue_green: parts.blue_green,
            max_replica_lag: parts.max_replica_lag,
            positions: parts.positions,
            turn: tokio::sync::Mutex::new(()),
            record: Mutex::new(Record {
                applied: Topology::default(),
                home_writer,
            }),
        })
    }

    pub(crate) fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    /// The hosts in service now (an owned snapshot, to hold across awaits).
    pub(crate) fn hosts(&self) -> Arc<Hosts> {
        self.pools.load_full()
    }

    /// The instances in use as of the last topology applied.
    pub(crate) fn topology(&self) -> Topology {
        self.record().applied.clone()
    }

    /// True once shutdown has begun.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// How hosts are watched.
    pub(crate) fn health_options(&self) -> &HealthOptions {
        &self.health
    }

    /// Writer failovers asked for by statements, followed by a balancer.
    pub(crate) fn failover(&self) -> &Failover {
        &self.failover
    }

    /// The connection budget across every pool, if any.
    pub(crate) fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.as_ref()
    }

    /// Blue/green switchover support, when on.
    pub(crate) fn blue_green(&self) -> Option<&Arc<BlueGreen>> {
        self.blue_green.as_ref()
    }

    /// The replica lag beyond which a reader gets no reads, if set.
    pub(crate) fn max_replica_lag(&self) -> Option<Duration> {
        self.max_replica_lag
    }

    /// Position mode's engine flavour, when it is on.
    pub(crate) fn positions(&self) -> Option<Flavour> {
        self.positions
    }

    /// The background tasks and the token that stops them.
    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Which readers of a topology may take reads, and whether its writer is ignored.
    pub(crate) fn following(&self) -> (&ReaderFilter, bool) {
        (&self.filter, self.keep_existing_write_host)
    }

    /// The factory that opens pools for the hosts a topology names; fails when the writer is
    /// dialled through a Unix socket (new pools copy its settings with another host and port).
    pub(crate) fn factory(&self) -> Result<&HostFactory> {
        self.factory.as_ref().ok_or(Error::Config(
            "following a cluster's topology needs a writer dialled over TCP, not a Unix socket"
                .into(),
        ))
    }

    /// `opened` as a host in service under `name`: watched with the cluster's health options,
    /// its credentials renewed until it leaves service or the cluster stops.
    pub(crate) fn host(
        &self,
        opened: Opened,
        name: impl Into<Arc<str>>,
        role: Role,
        origin: Origin,
    ) -> Arc<HostPool> {
        opened.into_host(name, role, origin, &self.health, &self.lifecycle)
    }

    /// Picks the host for a statement routed to `route` (never `avoid`, a host that just
    /// failed, among readers) and counts it in flight there.
    pub(crate) fn admit(&self, route: Route, avoid: Option<&Arc<HostPool>>) -> Result<InFlight> {
        let hosts = self.pools.load();
        let usable = |reader: &Arc<HostPool>| {
            is_readable(reader) && avoid.is_none_or(|a| !Arc::ptr_eq(a, reader))
        };
        let host = match route {
            Route::Writer => &hosts.writer,
            Route::Reader => match self.picker.pick(&hosts.readers, usable) {
                Some(reader) => reader,
                None if self.fallback_to_writer => &hosts.writer,
                None => return Err(Error::NoActiveReaders),
            },
        };
        self.enter(host)
    }

    /// Picks a schedulable reader that passes `fit` and counts a statement in flight there;
    /// `Ok(None)` when none does.
    pub(crate) fn admit_reader_if(
        &self,
        fit: impl Fn(&HostPool) -> bool,
    ) -> Result<Option<InFlight>> {
        let hosts = self.pools.load();
        let usable = |reader: &Arc<HostPool>| is_readable(reader) && fit(reader);
        match self.picker.pick(&hosts.readers, usable) {
            Some(reader) => self.enter(reader).map(Some),
            None => Ok(None),
        }
    }

    fn enter(&self, host: &Arc<HostPool>) -> Result<InFlight> {
        let guard = host.enter();
        // Counted first, checked second: shutdown sets `closing` and then waits for the counts,
        // so a statement is either refused here or seen (and awaited) by shutdown.
        if self.is_closing() {
            return Err(Error::ShuttingDown);
        }
        Ok(guard)
    }

    /// Whether `host` is the writer in service.
    pub(crate) fn is_current_writer(&self, host: &Arc<HostPool>) -> bool {
        Arc::ptr_eq(&self.pools.load().writer, host)
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `reader` takes reads: healthy enough to schedule, and not lagging beyond
/// `max_replica_lag` (measured or reported by a topology), and not catching up with its
/// joining (position mode).
fn is_readable(reader: &HostPool) -> bool {
    reader.health().is_schedulable()
        && !reader.lag().is_lagging()
        && !reader.join_gate().is_closed()
}
