//! Applying a topology to an [`RdsConnection`]: new readers get a pool and traffic at once;
//! removed readers and a replaced writer leave scheduling at once and are drained, then closed.

use std::sync::Arc;

use futures_util::future::join_all;

use super::{Instance, Topology, TopologyChange, diff};
use crate::connection::RdsConnection;
use crate::error::{Error, Result};
use crate::pool::{
    Closing, HostFactory, HostPool, Hosts, Opened, Origin, Role, is_host_down, open_or_lazily,
    retire,
};

impl RdsConnection {
    /// Makes the hosts in use match `next` and returns the changes made.
    ///
    /// Readers are the available members other than the writer that have an endpoint. A new
    /// reader gets a pool and takes reads at once; a reader that is gone or no longer
    /// available leaves scheduling at once, and its pool closes once its in-flight statements
    /// finish or the [drain timeout](crate::RdsConnectionBuilder::drain_timeout) passes. A new
    /// writer is swapped in the same way; a topology without a usable writer (mid-failover)
    /// keeps the current one. Concurrent calls apply one after the other.
    ///
    /// A new host that cannot be reached is reported, never silently dropped: a reader joins as
    /// unhealthy ([`TopologyChange::ReaderUnreachable`]; in [`health`](Self::health), probed
    /// with back-off, it takes reads once it answers); a writer is not swapped in
    /// ([`TopologyChange::WriterUnreachable`]) and the next call tries it again.
    ///
    /// This is how a discovery mechanism of your own feeds the connection; the built-in sources
    /// call it too. New pools copy the writer pool's settings (credentials, database, TLS, pool
    /// sizes and timeouts) with the instance's host and port. A writer dialled through a Unix
    /// socket cannot follow a topology: this then fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config).
    ///
    /// ```no_run
    /// use rds_balancer::{Instance, RdsConnection, Topology, TopologyChange};
    ///
    /// # async fn demo(db: RdsConnection) -> rds_balancer::Result<()> {
    /// let changes = db
    ///     .apply_topology(&Topology::new(vec![
    ///         Instance::writer("app-1").with_endpoint("10.0.0.1", 5432),
    ///         Instance::reader("app-2").with_endpoint("10.0.0.2", 5432),
    ///     ]))
    ///     .await?;
    /// for change in changes {
    ///     if let TopologyChange::ReaderAdded(reader) = change {
    ///         println!("reads now also go to {}", reader.id);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn apply_topology(&self, next: &Topology) -> Result<Vec<TopologyChange>> {
        self.apply_topology_while(next, || true).await
    }

    /// [`apply_topology`](Self::apply_topology), unless `wanted` says no once the changes are
    /// serialised (a balancer destroyed meanwhile): then nothing changes.
    pub(crate) async fn apply_topology_while(
        &self,
        next: &Topology,
        wanted: impl Fn() -> bool,
    ) -> Result<Vec<TopologyChange>> {
        let factory = self.host_factory()?;
        let inner = self.inner();
        let mut applied = inner.applied.lock().await;
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        if !wanted() {
            return Ok(Vec::new());
        }
        let mut changes = diff(&applied, next, &inner.filter);
        if inner.keep_existing_write_host {
            changes.retain(|c| !matches!(c, TopologyChange::WriterChanged(_)));
        }
        // The first writer a topology names may be the very host the builder's writer URL points
        // at: adopt the pool already open instead of opening and draining one for nothing.
        let adopted = if applied.writer().is_none() {
            changes
                .iter()
                .position(|c| {
                    matches!(c, TopologyChange::WriterChanged(w)
                        if w.address().is_some_and(|(host, port)| factory.dials_template(host, port)))
                })
                .map(|at| changes.remove(at))
        } else {
            None
        };
        if changes.is_empty() && adopted.is_none() {
            return Ok(changes);
        }
        let mut opened = join_all(changes.iter().map(|change| async move {
            match change {
                TopologyChange::ReaderAdded(instance) => Some(open(factory, instance, true).await),
                TopologyChange::WriterChanged(instance) => {
                    Some(open(factory, instance, false).await)
                }
                _ => None,
            }
        }))
        .await;

        let hosts = inner.pools.load_full();
        let (mut writer, mut readers) = (hosts.writer.clone(), hosts.readers.clone());
        let mut leaving = Vec::new();
        let mut done = Vec::with_capacity(changes.len());
        for (change, pool) in changes.into_iter().zip(opened.drain(..)) {
            let change = match (change, pool) {
                (TopologyChange::ReaderRemoved(id), _) => {
                    if let Some(at) = readers.iter().position(|r| r.name() == id) {
                        leaving.push(readers.remove(at));
                    }
                    TopologyChange::ReaderRemoved(id)
                }
                (TopologyChange::ReaderAdded(instance), Some(Ok((opened, down)))) => {
                    let reader = opened.into_host(
                        instance.id.as_str(),
                        Role::Reader,
                        Origin::Discovered,
                        &inner.health,
                        &inner.tasks,
                    );
                    readers.push(Arc::clone(&reader));
                    match down {
                        None => TopologyChange::ReaderAdded(instance),
                        Some(error) => {
                            reader.down_from_the_start(&error);
                            TopologyChange::ReaderUnreachable(instance)
                        }
                    }
                }
                (TopologyChange::WriterChanged(instance), Some(Ok((opened, _)))) => {
                    let new = opened.into_host(
                        instance.id.as_str(),
                        Role::Writer,
                        Origin::Discovered,
                        &inner.health,
                        &inner.tasks,
                    );
                    leaving.push(std::mem::replace(&mut writer, new));
                    TopologyChange::WriterChanged(instance)
                }
                (TopologyChange::WriterChanged(instance), Some(Err(error)))
                    if is_host_down(&error) =>
                {
                    // Kept out of the record: the next topology tries it again (at a high rate
                    // during a failover, so at debug level; the change reports it).
                    tracing::debug!(instance = %instance.id, %error, "new writer unreachable; the current one stays");
                    TopologyChange::WriterUnreachable(instance)
                }
                (change, Some(Err(error))) => {
                    tracing::warn!(?change, %error, "new host could not be opened; not used");
                    continue;
                }
                (change, _) => change,
            };
            done.push(change);
        }
        done.extend(adopted);
        inner.pools.publish(Hosts { writer, readers });
        for host in leaving {
            inner
                .tasks
                .spawn(retire(host, inner.drain_timeout, Closing::Opened));
        }
        for change in &done {
            record(&mut applied, change);
            tracing::info!(?change, "topology change applied");
        }
        Ok(done)
    }

    /// The instances in use as of the last [`apply_topology`](Self::apply_topology): the
    /// writer (once a topology named one) and the readers taking reads. Empty before the first.
    ///
    /// ```no_run
    /// # async fn demo(db: rds_balancer::RdsConnection) {
    /// for reader in db.topology().await.readers() {
    ///     println!("{} at {:?}", reader.id, reader.address());
    /// }
    /// # }
    /// ```
    pub async fn topology(&self) -> Topology {
        self.inner().applied.lock().await.clone()
    }
}

impl RdsConnection {
    /// Undoes what topologies did: readers they added leave scheduling, are drained and closed;
    /// the writer the connection was built with is put back if a topology replaced it (a pool
    /// the application handed over was left open for this; one the builder opened is opened
    /// again, and if that fails the current writer stays). Readers given to the builder stay.
    /// Returns once the hosts that left are drained and closed (or the drain timeout passed).
    pub(crate) async fn forget_topology(&self) {
        let inner = self.inner();
        let mut applied = inner.applied.lock().await;
        if self.is_shutting_down() {
            return;
        }
        let hosts = inner.pools.load_full();
        let (discovered, readers): (Vec<_>, Vec<_>) = hosts
            .readers
            .iter()
            .cloned()
            .partition(|r| r.origin() == Origin::Discovered);
        let mut leaving = discovered;
        let home = inner.home_writer.load_full();
        let writer = if Arc::ptr_eq(&hosts.writer, &home) {
            home
        } else {
            let restored = match home.origin() {
                Origin::Handed => Ok(home),
                Origin::Configured | Origin::Discovered => self.reopen(&home).await,
            };
            match restored {
                Ok(home) => {
                    inner.home_writer.store(Arc::clone(&home));
                    leaving.push(Arc::clone(&hosts.writer));
                    home
                }
                Err(error) => {
                    tracing::warn!(%error, "could not reopen the configured writer; keeping the topology's writer");
                    Arc::clone(&hosts.writer)
                }
            }
        };
        inner.pools.publish(Hosts { writer, readers });
        applied.instances.clear();
        drop(applied);
        tracing::info!(
            hosts = leaving.len(),
            "topology forgotten; hosts it added are leaving"
        );
        let retiring: Vec<_> = leaving
            .into_iter()
            .map(|host| {
                inner
                    .tasks
                    .spawn(retire(host, inner.drain_timeout, Closing::Opened))
            })
            .collect();
        join_all(retiring).await;
    }

    /// A new pool to the writer the connection was configured with (its old pool was closed
    /// when a topology replaced it).
    async fn reopen(&self, home: &HostPool) -> Result<Arc<HostPool>> {
        let opened = self.host_factory()?.open_template(false).await?;
        let inner = self.inner();
        Ok(opened.into_host(
            home.name(),
            Role::Writer,
            Origin::Configured,
            &inner.health,
            &inner.tasks,
        ))
    }

    /// The factory that opens pools for the hosts a topology names; fails when the writer is
    /// dialled through a Unix socket (new pools copy its settings with another host and port).
    pub(crate) fn host_factory(&self) -> Result<&HostFactory> {
        self.inner().factory.as_ref().ok_or(Error::Config(
            "following a cluster's topology needs a writer dialled over TCP, not a Unix socket"
                .into(),
        ))
    }
}

/// Opens a pool to `instance` (which the filter or the diff made sure has an address). With
/// `or_lazily`, a host that is down gets a pool that connects on first use ([`open_or_lazily`]),
/// returned with the error that says it is down.
async fn open(
    factory: &HostFactory,
    instance: &Instance,
    or_lazily: bool,
) -> Result<(Opened, Option<Error>)> {
    let (host, port) = instance.address().ok_or(Error::Config(
        "an instance without an endpoint cannot be used".into(),
    ))?;
    if or_lazily {
        open_or_lazily(|lazy| factory.open(host, port, lazy)).await
    } else {
        factory
            .open(host, port, false)
            .await
            .map(|opened| (opened, None))
    }
}

/// Updates the record of instances in use with one applied change.
fn record(applied: &mut Topology, change: &TopologyChange) {
    match change {
        TopologyChange::ReaderRemoved(id) => {
            applied.instances.retain(|i| i.is_writer || i.id != *id)
        }
        TopologyChange::ReaderAdded(instance) | TopologyChange::ReaderUnreachable(instance) => {
            applied.instances.push(instance.clone())
        }
        TopologyChange::WriterUnreachable(_) => {}
        TopologyChange::WriterChanged(instance) => {
            applied.instances.retain(|i| !i.is_writer);
            applied.instances.push(instance.clone());
        }
    }
}
