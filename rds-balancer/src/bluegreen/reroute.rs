//! Moving the hosts that dial blue to the matching green node once the switchover is past
//! `IN_PROGRESS` (and back on a rollback): new pools to the addresses recorded before the
//! switchover, so that neither stale DNS nor pooled connections reach blue any more.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{BlueGreen, BlueGreenEndpoint, BlueGreenRole};
use crate::cluster::Cluster;
use crate::credentials::Endpoint;
use crate::error::Result;
use crate::pool::{Hosts, Origin};

/// A host moved to green: where it dialled before, to go back on a rollback.
#[derive(Debug, Clone)]
pub(crate) struct Moved {
    name: Arc<str>,
    back_to: (String, u16),
    endpoint: Endpoint,
}

/// The green endpoint that takes over `blue`: the same name with `-green-<suffix>` after its
/// first label, in the same domain (how RDS names a deployment's green instances and cluster
/// endpoints).
pub(crate) fn green_for<'a>(
    blue: &BlueGreenEndpoint,
    mut candidates: impl Iterator<Item = &'a BlueGreenEndpoint>,
) -> Option<&'a BlueGreenEndpoint> {
    let (blue_first, blue_rest) = blue.host.split_once('.').unwrap_or((&blue.host, ""));
    candidates.find(|green| {
        let (first, rest) = green.host.split_once('.').unwrap_or((&green.host, ""));
        green.role == BlueGreenRole::Target
            && rest.eq_ignore_ascii_case(blue_rest)
            && first
                .strip_prefix(blue_first)
                .and_then(|suffix| suffix.strip_prefix("-green-"))
                .is_some_and(|suffix| !suffix.is_empty())
    })
}

/// Where a host that dials `dial` goes once green took over, if it dials a blue endpoint: the
/// blue endpoint (for credentials) and the green node's recorded address.
fn green_target(
    bg: &BlueGreen,
    recorded: &[(BlueGreenEndpoint, Option<SocketAddr>)],
    dial: &(String, u16),
) -> Option<(BlueGreenEndpoint, SocketAddr)> {
    let dials = |endpoint: &BlueGreenEndpoint, address: Option<SocketAddr>| {
        let (host, port) = bg.dialled(endpoint);
        let same = |h: &str, p: u16| h.eq_ignore_ascii_case(&dial.0) && p == dial.1;
        same(&host, port)
            || same(&endpoint.host, endpoint.port)
            || address.is_some_and(|a| same(&a.ip().to_string(), a.port()))
    };
    let (blue, _) = recorded
        .iter()
        .find(|(e, address)| e.role == BlueGreenRole::Source && dials(e, *address))?;
    let green = green_for(blue, recorded.iter().map(|(e, _)| e))?;
    let (_, address) = recorded.iter().find(|(e, _)| e == green)?;
    Some((blue.clone(), (*address)?))
}

/// Moves every host that dials a blue endpoint to its green node; returns the hosts moved.
pub(crate) async fn to_green(cluster: &Cluster, bg: &BlueGreen) -> Result<Vec<Moved>> {
    let recorded = bg.recorded();
    let plan = |dial: &(String, u16)| {
        green_target(bg, &recorded, dial).map(|(blue, green)| {
            (
                Endpoint::new(blue.host, blue.port),
                (green.ip().to_string(), green.port()),
            )
        })
    };
    swap(cluster, plan).await
}

/// Moves the hosts `moved` back to the addresses they dialled before (a rollback).
pub(crate) async fn back(cluster: &Cluster, moved: &[Moved]) -> Result<Vec<Moved>> {
    let hosts = cluster.hosts();
    // Each moved host by the address it dials now (a pool of its own, under its name).
    let now: Vec<((String, u16), &Moved)> = moved
        .iter()
        .filter_map(|m| {
            std::iter::once(&hosts.writer)
                .chain(&hosts.readers)
                .find(|h| h.name() == &*m.name)
                .and_then(|h| h.dial_address())
                .map(|dial| (dial, m))
        })
        .collect();
    swap(cluster, |dial| {
        now.iter()
            .find(|(d, _)| d == dial)
            .map(|(_, m)| (m.endpoint.clone(), m.back_to.clone()))
    })
    .await
}

/// Replaces each host for which `plan` (given its dialled address) names an endpoint and a new
/// address by a pool to that address, under the same name and role, in one step; the old pools
/// are drained and closed (a pool the application handed over is left open).
async fn swap(
    cluster: &Cluster,
    plan: impl Fn(&(String, u16)) -> Option<(Endpoint, (String, u16))>,
) -> Result<Vec<Moved>> {
    let factory = cluster.factory()?;
    let turn = cluster.changing().await?;
    let hosts = turn.hosts();
    let mut moved = Vec::new();
    let mut opened = Vec::new();
    let mut next = Vec::with_capacity(hosts.readers.len() + 1);
    for host in std::iter::once(&hosts.writer).chain(&hosts.readers) {
        let target = host
            .dial_address()
            .and_then(|dial| plan(&dial).map(|p| (dial, p)));
        let Some((dial, (endpoint, to))) = target else {
            next.push(Arc::clone(host));
            continue;
        };
        match factory.open_at(endpoint.clone(), (&to.0, to.1)).await {
            Ok(pool) => {
                tracing::info!(host = %host.name(), from = ?dial, to = ?to, "blue/green: host moved to green");
                let new = cluster.host(pool, host.name(), host.role(), Origin::Discovered);
                next.push(Arc::clone(&new));
                opened.push(new);
                moved.push(Moved {
                    name: host.name().into(),
                    back_to: dial,
                    endpoint,
                });
            }
            Err(error) => {
                tracing::warn!(host = %host.name(), to = ?to, %error, "blue/green: could not open the green node; host kept");
                next.push(Arc::clone(host));
            }
        }
    }
    let writer = next.remove(0);
    turn.commit(
        Hosts {
            writer,
            readers: next,
        },
        opened,
        None,
        |_| {},
    )?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str, role: BlueGreenRole) -> BlueGreenEndpoint {
        BlueGreenEndpoint {
            host: host.to_owned(),
            port: 5432,
            role,
        }
    }

    #[test]
    fn green_nodes_are_matched_by_name() {
        use BlueGreenRole::{Source, Target};
        let greens = [
            endpoint("app-2-green-abc123.xyz.us-east-1.rds.amazonaws.com", Target),
            endpoint("app-1-green-abc123.xyz.us-east-1.rds.amazonaws.com", Target),
            endpoint(
                "app-green-abc123.cluster-xyz.us-east-1.rds.amazonaws.com",
                Target,
            ),
            endpoint(
                "app-1-green-abc123.other.us-east-1.rds.amazonaws.com",
                Target,
            ),
        ];
        let blue = endpoint("app-1.xyz.us-east-1.rds.amazonaws.com", Source);
        assert_eq!(green_for(&blue, greens.iter()), Some(&greens[1]));
        let cluster = endpoint("app.cluster-xyz.us-east-1.rds.amazonaws.com", Source);
        assert_eq!(green_for(&cluster, greens.iter()), Some(&greens[2]));
        let none = endpoint("app-3.xyz.us-east-1.rds.amazonaws.com", Source);
        assert_eq!(green_for(&none, greens.iter()), None);
        // A blue row is never its own green, nor is a name without a suffix.
        let bare = [endpoint(
            "app-1-green-.xyz.us-east-1.rds.amazonaws.com",
            Target,
        )];
        assert_eq!(green_for(&blue, bare.iter()), None);
    }
}
