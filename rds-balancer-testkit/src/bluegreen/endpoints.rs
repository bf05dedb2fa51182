//! The AWS-style host names of a deployment's endpoints, and where DNS sends them before and
//! after a switchover.

use std::net::{IpAddr, Ipv4Addr};

use super::relation::BlueGreenRole;

/// The domain under which every instance endpoint lives (cluster endpoints live under
/// `cluster-<DOMAIN>` and `cluster-ro-<DOMAIN>`).
pub(crate) const DOMAIN: &str = "xyz.us-east-1.rds.amazonaws.com";

/// What AWS appends to the first label of the green side's names.
pub(crate) const GREEN_SUFFIX: &str = "-green-abcdef";

/// What AWS appends to the first label of the blue side's names once the green side has taken
/// them over.
pub(crate) const OLD_SUFFIX: &str = "-old1";

/// What an endpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// The cluster (writer) endpoint, `<id>.cluster-xyz...`: the primary.
    Cluster,
    /// The cluster's reader endpoint, `<id>.cluster-ro-xyz...`: the first replica (the
    /// primary when there is none). AWS does not list it in the metadata.
    Reader,
    /// An instance endpoint, `<id>-<node>.xyz...`: one server.
    Instance,
}

/// One host name of a blue/green deployment and the server it names before any switchover.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlueGreenEndpoint {
    /// The host name, e.g. `app-primary.xyz.us-east-1.rds.amazonaws.com` (blue) or
    /// `app-primary-green-abcdef.xyz.us-east-1.rds.amazonaws.com` (green).
    pub host: String,
    /// Its side: [`BlueGreenRole::Source`] (blue) or [`BlueGreenRole::Target`] (green).
    pub role: BlueGreenRole,
    /// What it names.
    pub kind: EndpointKind,
    /// The name of the node it reaches in its own cluster (`primary`, `replica-1`, ...).
    pub node: String,
    /// That node's loopback port, which the metadata rows carry as the endpoint's `port`.
    pub port: u16,
}

/// A cluster's nodes as the deployment saw them: (name, port), the primary first.
pub(crate) type Nodes = Vec<(String, u16)>;

/// The endpoints of one side of deployment `id`: cluster, reader, then one per node, in the
/// order of `nodes`.
pub(crate) fn side_endpoints(
    id: &str,
    role: BlueGreenRole,
    nodes: &Nodes,
) -> Vec<BlueGreenEndpoint> {
    let suffix = match role {
        BlueGreenRole::Source => "",
        BlueGreenRole::Target => GREEN_SUFFIX,
    };
    let endpoint = |host: String, kind, (node, port): &(String, u16)| BlueGreenEndpoint {
        host,
        role,
        kind,
        node: node.clone(),
        port: *port,
    };
    let primary = &nodes[0];
    let reader = nodes.get(1).unwrap_or(primary);
    let mut endpoints = vec![
        endpoint(
            format!("{id}{suffix}.cluster-{DOMAIN}"),
            EndpointKind::Cluster,
            primary,
        ),
        endpoint(
            format!("{id}{suffix}.cluster-ro-{DOMAIN}"),
            EndpointKind::Reader,
            reader,
        ),
    ];
    endpoints.extend(nodes.iter().map(|node| {
        endpoint(
            format!("{id}-{}{suffix}.{DOMAIN}", node.0),
            EndpointKind::Instance,
            node,
        )
    }));
    endpoints
}

/// `host` with [`OLD_SUFFIX`] appended to its first label: what AWS renames a blue endpoint to
/// at switchover.
pub(crate) fn old_host(host: &str) -> String {
    match host.split_once('.') {
        Some((first, rest)) => format!("{first}{OLD_SUFFIX}.{rest}"),
        None => format!("{host}{OLD_SUFFIX}"),
    }
}

/// A DNS change: the name, and where it now points (`None`: it no longer resolves).
pub(crate) type DnsChange = (String, Option<(IpAddr, u16)>);

/// DNS before a switchover (and after a rollback): every name at its own node; no `-old1`
/// names.
pub(crate) fn dns_before(
    blue: &[BlueGreenEndpoint],
    green: &[BlueGreenEndpoint],
) -> Vec<DnsChange> {
    let at = |e: &BlueGreenEndpoint| (e.host.clone(), Some(loopback(e.port)));
    let old = |e: &BlueGreenEndpoint| (old_host(&e.host), None);
    blue.iter()
        .map(at)
        .chain(green.iter().map(at))
        .chain(blue.iter().map(old))
        .collect()
}

/// DNS after a switchover: each blue name at the green node its green counterpart reached (the
/// endpoint of the same kind and position), the green names gone, and the blue nodes reachable
/// by their `-old1` names.
pub(crate) fn dns_after(blue: &[BlueGreenEndpoint], green: &[BlueGreenEndpoint]) -> Vec<DnsChange> {
    let moved = blue
        .iter()
        .zip(green)
        .map(|(b, g)| (b.host.clone(), Some(loopback(g.port))));
    let gone = green.iter().map(|g| (g.host.clone(), None));
    let old = blue
        .iter()
        .map(|b| (old_host(&b.host), Some(loopback(b.port))));
    moved.chain(gone).chain(old).collect()
}

fn loopback(port: u16) -> (IpAddr, u16) {
    (IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[cfg(test)]
mod test {
    use super::*;

    fn nodes(ports: &[u16]) -> Nodes {
        ports
            .iter()
            .enumerate()
            .map(|(i, &port)| match i {
                0 => ("primary".to_owned(), port),
                i => (format!("replica-{i}"), port),
            })
            .collect()
    }

    #[test]
    fn names_follow_aws() {
        let blue = side_endpoints("app", BlueGreenRole::Source, &nodes(&[1, 2]));
        let hosts: Vec<&str> = blue.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "app.cluster-xyz.us-east-1.rds.amazonaws.com",
                "app.cluster-ro-xyz.us-east-1.rds.amazonaws.com",
                "app-primary.xyz.us-east-1.rds.amazonaws.com",
                "app-replica-1.xyz.us-east-1.rds.amazonaws.com",
            ]
        );
        assert_eq!(blue[1].port, 2, "the reader endpoint reaches the replica");
        let green = side_endpoints("app", BlueGreenRole::Target, &nodes(&[3]));
        let hosts: Vec<&str> = green.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "app-green-abcdef.cluster-xyz.us-east-1.rds.amazonaws.com",
                "app-green-abcdef.cluster-ro-xyz.us-east-1.rds.amazonaws.com",
                "app-primary-green-abcdef.xyz.us-east-1.rds.amazonaws.com",
            ]
        );
        assert_eq!(
            green[1].port, 3,
            "without replicas the reader endpoint is the primary"
        );
        assert_eq!(
            old_host("app.cluster-xyz.us-east-1.rds.amazonaws.com"),
            "app-old1.cluster-xyz.us-east-1.rds.amazonaws.com"
        );
    }

    #[test]
    fn switching_moves_blue_names_to_green_nodes() {
        let blue = side_endpoints("app", BlueGreenRole::Source, &nodes(&[1, 2]));
        let green = side_endpoints("app", BlueGreenRole::Target, &nodes(&[3, 4]));
        let after = dns_after(&blue, &green);
        let find = |host: &str| {
            after
                .iter()
                .find(|(h, _)| h == host)
                .map(|(_, to)| to.map(|(_, port)| port))
        };
        assert_eq!(find(&blue[0].host), Some(Some(3)));
        assert_eq!(find(&blue[3].host), Some(Some(4)));
        assert_eq!(find(&green[0].host), Some(None));
        assert_eq!(find(&old_host(&blue[2].host)), Some(Some(1)));
        let before = dns_before(&blue, &green);
        assert_eq!(before.len(), 12);
        assert!(before.contains(&(green[2].host.clone(), Some(loopback(3)))));
        assert!(before.contains(&(old_host(&blue[0].host), None)));
    }
}
