//! The set of host pools behind one [`RdsConnection`](crate::RdsConnection).
//!
//! The set is an immutable snapshot behind an atomic pointer: routing a statement takes the
//! current snapshot without locking, and a topology change publishes a new one.

mod host;

use std::sync::Arc;

use arc_swap::ArcSwap;

pub(crate) use self::host::Role;
pub(crate) use self::host::{HostPool, InFlight};

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
}
