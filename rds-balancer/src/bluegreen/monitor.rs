//! The blue/green monitor: polls the metadata on a connection of its own, at the interval the
//! phase calls for, and records the endpoints' addresses before a switchover.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use super::metadata::{self, Flavour};
use super::{BlueGreen, BlueGreenEndpoint, BlueGreenPhase, BlueGreenRole, reroute};
use crate::cluster::Cluster;
use crate::health::ProbeConn;
use crate::pool::close_one_idle;

/// Starts the monitor of `cluster`'s blue/green deployment, if blue/green support is on. It
/// stops with the cluster (shutdown, or the last handle to the connection dropped).
pub(crate) fn spawn_monitor(cluster: &Arc<Cluster>) {
    let Some(bg) = cluster.blue_green().cloned() else {
        return;
    };
    let watched = Arc::clone(cluster);
    // Stopped between two steps only: a move to green or back, once begun, is completed.
    let stopping = cluster.lifecycle().child_token();
    cluster.lifecycle().spawn(async move {
        let mut reader = Reader::default();
        // Hosts moved to green, to move back on a rollback.
        let mut moved: Option<Vec<reroute::Moved>> = None;
        loop {
            let read = tokio::select! {
                () = stopping.cancelled() => return,
                read = reader.read(&watched, &bg) => read,
            };
            match read {
                Ok(status) => {
                    let phase = status.as_ref().map_or(BlueGreenPhase::NotCreated, |s| s.phase);
                    // Hosts move before the statements held back are let go. The phase is
                    // published first: pools being opened for a topology meanwhile stop
                    // waiting for it (they hold the topology lock the move needs).
                    let to_green = phase >= BlueGreenPhase::Post && moved.is_none();
                    let back = phase <= BlueGreenPhase::Created && moved.is_some();
                    if to_green || back {
                        bg.hold(true);
                    }
                    let entering = phase == BlueGreenPhase::InProgress && !bg.is_in(phase);
                    bg.observe(status, Instant::now());
                    if entering {
                        close_idle(&watched).await;
                    }
                    if to_green {
                        match reroute::to_green(&watched, &bg).await {
                            Ok(done) => moved = Some(done),
                            Err(error) => tracing::warn!(%error, "blue/green: could not move hosts to green"),
                        }
                    } else if back
                        && let Some(done) = moved.take()
                        && let Err(error) = reroute::back(&watched, &done).await
                    {
                        tracing::warn!(%error, "blue/green: could not move hosts back to blue");
                    }
                    if to_green || back {
                        bg.hold(false);
                    }
                }
                Err(error) => {
                    // The last status stands (and with it the switchover timeout's clock).
                    tracing::debug!(bgd_id = %bg.options.bgd_id, %error, "could not read the blue/green metadata");
                    bg.observe_unreadable(Instant::now());
                }
            }
            if let Some(endpoints) = bg.wants_recording() {
                bg.record(resolve_all(&bg, endpoints).await);
            } else if let Some(endpoints) = bg.wants_dns() {
                bg.observe_dns(&resolve_all(&bg, endpoints).await, Instant::now());
            }
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(bg.interval()) => {}
            }
        }
    });
}

/// The monitor's own connection to the metadata, and which relation the server has.
#[derive(Default)]
struct Reader {
    conn: Option<ProbeConn>,
    flavour: Option<Flavour>,
}

impl Reader {
    /// One read: through the connection kept from the last one, else a new one to the writer,
    /// else (blue being cut off during a switchover) to a green node recorded before it.
    /// `Ok(None)`: the server has no blue/green metadata.
    async fn read(
        &mut self,
        cluster: &Cluster,
        bg: &BlueGreen,
    ) -> Result<Option<metadata::Status>, String> {
        let timeout = bg.options.query_timeout;
        if let Some(conn) = self.conn.as_mut() {
            match read_with(conn, &mut self.flavour, timeout).await {
                Ok(status) => return Ok(status),
                Err(_) => self.conn = None,
            }
        }
        let writer = Arc::clone(&cluster.hosts().writer);
        let greens = bg.recorded_addresses(BlueGreenRole::Target);
        let mut last = String::new();
        for at in std::iter::once(None).chain(greens.iter().map(|a| Some(*a))) {
            let host = at.map(|a| a.ip().to_string());
            let target = host.as_deref().zip(at.map(|a| a.port()));
            let opened =
                tokio::time::timeout(timeout, ProbeConn::open_at(writer.conn(), target)).await;
            let mut conn = match opened {
                Ok(Ok(conn)) => conn,
                Ok(Err(error)) => {
                    last = error.to_string();
                    continue;
                }
                Err(_) => {
                    last = format!("could not connect within {timeout:?}");
                    continue;
                }
            };
            // A new connection may reach another server: look for the metadata again.
            self.flavour = None;
            match read_with(&mut conn, &mut self.flavour, timeout).await {
                Ok(status) => {
                    self.conn = Some(conn);
                    return Ok(status);
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

/// Finds out which metadata the server has (once per connection), then reads it.
async fn read_with(
    conn: &mut ProbeConn,
    flavour: &mut Option<Flavour>,
    timeout: Duration,
) -> Result<Option<metadata::Status>, String> {
    if flavour.is_none() {
        match metadata::detect(conn, timeout).await? {
            Some(found) => *flavour = Some(found),
            None => return Ok(None),
        }
    }
    match *flavour {
        Some(flavour) => metadata::read(conn, flavour, timeout).await.map(Some),
        None => Ok(None),
    }
}

/// Closes the idle connections of every pool: AWS cuts the connections to blue when the
/// switchover is in progress; what statements held back run on afterwards is opened afresh.
async fn close_idle(cluster: &Cluster) {
    let hosts = cluster.hosts();
    for host in std::iter::once(&hosts.writer).chain(&hosts.readers) {
        while close_one_idle(host.conn()).await {}
    }
}

/// Each endpoint with the address it resolves to now: through the connection's endpoint
/// resolver (if any), then the system's resolver.
async fn resolve_all(
    bg: &BlueGreen,
    endpoints: Vec<BlueGreenEndpoint>,
) -> Vec<(BlueGreenEndpoint, Option<SocketAddr>)> {
    let mut recorded = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let (host, port) = bg.dialled(&endpoint);
        let address = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(mut found) => found.next(),
            Err(_) => None,
        };
        recorded.push((endpoint, address));
    }
    recorded
}
