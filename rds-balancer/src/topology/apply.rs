//! Applying a topology to a cluster: new readers get a pool and traffic at once; removed
//! readers and a replaced writer leave scheduling at once and are drained, then closed. Also
//! the reverse, when a balancer is destroyed: the hosts topologies added leave.

use std::sync::Arc;

use futures_util::future::join_all;

use super::{Instance, Topology, TopologyChange, diff};
use crate::causal;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::pool::{HostFactory, Hosts, Opened, Origin, Role, is_host_down, open_or_lazily};

/// Makes the hosts of `cluster` match `next` (see
/// [`RdsConnection::apply_topology`](crate::RdsConnection::apply_topology)), unless `wanted`
/// says no once it is this change's turn (a balancer destroyed meanwhile): then nothing
/// changes.
pub(crate) async fn apply(
    cluster: &Cluster,
    next: &Topology,
    wanted: impl Fn() -> bool,
) -> Result<Vec<TopologyChange>> {
    let factory = cluster.factory()?;
    let turn = cluster.changing().await?;
    if !wanted() {
        return Ok(Vec::new());
    }
    let applied = turn.applied();
    let (filter, keep_existing_write_host) = cluster.following();
    let mut changes = diff(&applied, next, filter);
    if keep_existing_write_host {
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
        report_lag(cluster, &turn.hosts(), next);
        return Ok(changes);
    }
    // Network I/O: only other changes wait for this turn meanwhile.
    let mut opened = join_all(changes.iter().map(|change| async move {
        match change {
            TopologyChange::ReaderAdded(instance) => Some(open(factory, instance, true).await),
            TopologyChange::WriterChanged(instance) => Some(open(factory, instance, false).await),
            _ => None,
        }
    }))
    .await;

    let hosts = turn.hosts();
    let (mut writer, mut readers) = (Arc::clone(&hosts.writer), hosts.readers.clone());
    let mut new = Vec::new();
    let mut done = Vec::with_capacity(changes.len());
    for (change, pool) in changes.into_iter().zip(opened.drain(..)) {
        let change = match (change, pool) {
            (TopologyChange::ReaderRemoved(id), _) => {
                readers.retain(|r| r.name() != id);
                TopologyChange::ReaderRemoved(id)
            }
            (TopologyChange::ReaderAdded(instance), Some(Ok((opened, down)))) => {
                let reader = cluster.host(
                    opened,
                    instance.id.as_str(),
                    Role::Reader,
                    Origin::Discovered,
                );
                if let Some(error) = &down {
                    reader.down_from_the_start(error);
                }
                readers.push(Arc::clone(&reader));
                new.push(reader);
                match down {
                    None => TopologyChange::ReaderAdded(instance),
                    Some(_) => TopologyChange::ReaderUnreachable(instance),
                }
            }
            (TopologyChange::WriterChanged(instance), Some(Ok((opened, _)))) => {
                writer = cluster.host(
                    opened,
                    instance.id.as_str(),
                    Role::Writer,
                    Origin::Discovered,
                );
                new.push(Arc::clone(&writer));
                TopologyChange::WriterChanged(instance)
            }
            (TopologyChange::WriterChanged(instance), Some(Err(error))) if is_host_down(&error) => {
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
    // Before the readers are published: in position mode, a new reader takes no read until it
    // has caught up with its joining (tasks whose writes every reader had read anywhere), and
    // one reported lagging takes no read first.
    let positions = cluster.positions();
    let joining: Vec<_> = new
        .iter()
        .filter(|host| positions.is_some() && host.role() == Role::Reader)
        .inspect(|reader| causal::hold_joining(reader))
        .cloned()
        .collect();
    let writer_now = Arc::clone(&writer);
    let hosts = Hosts { writer, readers };
    report_lag(cluster, &hosts, next);
    turn.commit(hosts, new, None, |applied| {
        for change in &done {
            record(applied, change);
        }
    })?;
    // Published: the readers that have caught up take reads when this returns, the others
    // once they have.
    if let Some(flavour) = positions {
        let checks = joining
            .iter()
            .map(|reader| causal::let_joining_in(reader, Arc::clone(&writer_now), flavour));
        for rest in join_all(checks).await.into_iter().flatten() {
            cluster.lifecycle().spawn_until_stopped(rest);
        }
    }
    for change in &done {
        tracing::info!(?change, "topology change applied");
    }
    Ok(done)
}

/// Records the replica lag `next` reports for each reader of `hosts` it names (by instance
/// identifier; `None` when it reports none): beyond `max_replica_lag`, the reader gets no reads
/// until a topology reports it within (see the lag module of `causal`).
fn report_lag(cluster: &Cluster, hosts: &Hosts, next: &Topology) {
    let max = cluster.max_replica_lag();
    for reader in &hosts.readers {
        let Some(instance) = next.readers().find(|i| i.id == reader.name()) else {
            continue;
        };
        let was = reader.lag().is_lagging();
        let lagging = reader.lag().report(instance.replica_lag, max);
        if was != lagging {
            tracing::info!(reader = %reader.name(), lag = ?instance.replica_lag, ?max, lagging, "reported replica lag crossed max_replica_lag");
        }
    }
}

/// Undoes what topologies did: readers they added leave scheduling, are drained and closed;
/// the writer the connection was built with is put back if a topology replaced it (a pool the
/// application handed over was left open for this; one the builder opened is opened again, and
/// if that fails the current writer stays). Readers given to the builder stay. Returns once the
/// hosts that left are drained and closed (or the drain timeout passed).
pub(crate) async fn forget(cluster: &Cluster) {
    let Ok(turn) = cluster.changing().await else {
        return;
    };
    let hosts = turn.hosts();
    let readers: Vec<_> = hosts
        .readers
        .iter()
        .filter(|r| r.origin() != Origin::Discovered)
        .cloned()
        .collect();
    let home = turn.home_writer();
    // The home writer serves again as it is when still in service or handed over (its pool was
    // left open); one the builder opened was closed when it left, and is opened again.
    let home_open = Arc::ptr_eq(&hosts.writer, &home) || home.origin() == Origin::Handed;
    let reopened = if home_open {
        None
    } else {
        match reopen(cluster, home.name()).await {
            Ok(reopened) => Some(reopened),
            Err(error) => {
                tracing::warn!(%error, "could not reopen the configured writer; keeping the topology's writer");
                None
            }
        }
    };
    let writer = match &reopened {
        Some(reopened) => Arc::clone(reopened),
        None if home_open => home,
        None => Arc::clone(&hosts.writer),
    };
    let opened: Vec<_> = reopened.iter().cloned().collect();
    let Ok(retiring) = turn.commit(Hosts { writer, readers }, opened, reopened, |applied| {
        applied.instances.clear();
    }) else {
        return;
    };
    tracing::info!(
        hosts = retiring.len(),
        "topology forgotten; hosts it added are leaving"
    );
    join_all(retiring).await;
}

/// A new pool to the writer the connection was configured with (its old pool was closed when a
/// topology replaced it).
async fn reopen(cluster: &Cluster, name: &str) -> Result<Arc<crate::pool::HostPool>> {
    let opened = cluster.factory()?.open_template(false).await?;
    Ok(cluster.host(opened, name, Role::Writer, Origin::Configured))
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
