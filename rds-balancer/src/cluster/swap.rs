//! Changing the hosts in service, in one step: topology changes, a blue/green switchover's
//! move to green and back, and a balancer's detachment all go through [`Changing::commit`].
//!
//! A change takes its turn ([`Cluster::changing`]), reads the hosts and the topology applied,
//! opens the pools it needs (network I/O: only other changes wait for the turn, never routing
//! or shutdown), then commits: unless the cluster is shutting down, the new hosts are published
//! at once, the hosts that left are drained and closed in the background, and the pools it
//! opened but did not use are closed. Shutting down, nothing is published and every pool the
//! change opened is closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinHandle;

use super::Cluster;
use crate::error::{Error, Result};
use crate::pool::{Closing, HostPool, Hosts, Retired, retire};
use crate::topology::Topology;

/// A change's turn to change the hosts in service.
pub(crate) struct Changing<'c> {
    cluster: &'c Cluster,
    _turn: tokio::sync::MutexGuard<'c, ()>,
}

impl Cluster {
    /// Waits for the changes before this one, then gives its turn; fails with
    /// [`Error::ShuttingDown`] once shutdown began.
    pub(crate) async fn changing(&self) -> Result<Changing<'_>> {
        let turn = self.turn.lock().await;
        if self.is_closing() {
            return Err(Error::ShuttingDown);
        }
        Ok(Changing {
            cluster: self,
            _turn: turn,
        })
    }
}

impl Changing<'_> {
    /// The hosts in service; they change only through this turn's commit.
    pub(crate) fn hosts(&self) -> Arc<Hosts> {
        self.cluster.hosts()
    }

    /// The topology applied; it changes only through this turn's commit.
    pub(crate) fn applied(&self) -> Topology {
        self.cluster.topology()
    }

    /// The writer the connection was built with.
    pub(crate) fn home_writer(&self) -> Arc<HostPool> {
        Arc::clone(&self.cluster.record().home_writer)
    }

    /// Publishes `next` as the hosts in service and updates the topology applied with
    /// `record` (and the writer to put back with `home`), in one step. Hosts that left (in the
    /// current hosts, not in `next`) stop taking statements at once and are drained and closed
    /// in the background (a pool the application handed over stays open); pools in `opened`
    /// (those this change opened) that are not in `next` are closed. Once shutdown began,
    /// publishes nothing, closes every pool in `opened` and fails with
    /// [`Error::ShuttingDown`]. Returns the retirements started, to wait for them if need be.
    pub(crate) fn commit(
        self,
        next: Hosts,
        opened: Vec<Arc<HostPool>>,
        home: Option<Arc<HostPool>>,
        record: impl FnOnce(&mut Topology),
    ) -> Result<Vec<JoinHandle<Retired>>> {
        let cluster = self.cluster;
        let mut kept = cluster.record();
        if cluster.closing.load(Ordering::SeqCst) {
            drop(kept);
            for host in opened {
                cluster.retire(host, Closing::All);
            }
            return Err(Error::ShuttingDown);
        }
        let current = cluster.pools.load_full();
        let in_next = |host: &Arc<HostPool>| {
            Arc::ptr_eq(&next.writer, host) || next.readers.iter().any(|r| Arc::ptr_eq(r, host))
        };
        let leaving: Vec<_> = std::iter::once(&current.writer)
            .chain(&current.readers)
            .chain(&opened)
            .filter(|host| !in_next(host))
            .cloned()
            .collect();
        cluster.pools.publish(next);
        record(&mut kept.applied);
        if let Some(home) = home {
            kept.home_writer = home;
        }
        drop(kept);
        Ok(leaving
            .into_iter()
            .map(|host| cluster.retire(host, Closing::Opened))
            .collect())
    }
}

impl Cluster {
    /// Drains and closes `host` in the background (see [`retire`]); shutdown waits for it.
    fn retire(&self, host: Arc<HostPool>, closing: Closing) -> JoinHandle<Retired> {
        self.lifecycle
            .spawn(retire(host, self.drain_timeout, closing))
    }
}
