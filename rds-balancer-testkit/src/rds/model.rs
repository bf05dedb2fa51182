//! What [`RdsEmulator::describe`](super::RdsEmulator::describe) reports, and the resolver for
//! the emulator's fake host names.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

/// An emulated cluster as the RDS API describes it (`DescribeDBClusters` joined with
/// `DescribeDBInstances`), for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmulatedCluster {
    /// The cluster identifier (RDS lower-cases identifiers).
    pub id: String,
    /// Its engine: `aurora-postgresql`, `aurora-mysql`.
    pub engine: String,
    /// Its status (`available`).
    pub status: String,
    /// The cluster (writer) endpoint host name.
    pub endpoint: Option<String>,
    /// The reader endpoint host name.
    pub reader_endpoint: Option<String>,
    /// The members in the order the API lists them (moto: creation order, whoever is writer).
    pub members: Vec<EmulatedInstance>,
}

/// One member instance of an [`EmulatedCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmulatedInstance {
    /// The instance identifier (lower-cased).
    pub id: String,
    /// Whether it is the cluster's writer (`DBClusterMembers[].IsClusterWriter`).
    pub is_writer: bool,
    /// Its `DBInstanceStatus`: `available`, `stopped`, or whatever
    /// [`set_instance_status`](super::RdsEmulator::set_instance_status) set.
    pub status: String,
    /// Its endpoint's host name ([`RdsEmulator::instance_host`](super::RdsEmulator::instance_host));
    /// map it with [`resolve_to_loopback`].
    pub host: Option<String>,
    /// Its endpoint's port: the local server's port.
    pub port: Option<u16>,
    /// Its failover priority, 0 (first) to 15 (`DBClusterMembers[].PromotionTier`).
    pub promotion_tier: Option<i32>,
}

impl EmulatedCluster {
    /// The writer, if the cluster has one.
    pub fn writer(&self) -> Option<&EmulatedInstance> {
        self.members.iter().find(|m| m.is_writer)
    }

    /// The members that are not the writer, in API order.
    pub fn readers(&self) -> impl Iterator<Item = &EmulatedInstance> {
        self.members.iter().filter(|m| !m.is_writer)
    }

    /// The member `id` (compared case-insensitively, as RDS does).
    pub fn member(&self, id: &str) -> Option<&EmulatedInstance> {
        self.members.iter().find(|m| m.id.eq_ignore_ascii_case(id))
    }

    /// Builds the view from one `DBClusters[]` entry and the cluster's `DBInstances[]`.
    pub(super) fn from_api(cluster: &Value, instances: &[Value]) -> EmulatedCluster {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let members = cluster
            .get("DBClusterMembers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|member| {
                let id = text(member, "DBInstanceIdentifier").unwrap_or_default();
                let instance = instances.iter().find(|i| {
                    text(i, "DBInstanceIdentifier").is_some_and(|i| i.eq_ignore_ascii_case(&id))
                });
                let endpoint = instance.and_then(|i| i.get("Endpoint"));
                EmulatedInstance {
                    is_writer: member
                        .get("IsClusterWriter")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    status: instance
                        .and_then(|i| text(i, "DBInstanceStatus"))
                        .unwrap_or_default(),
                    host: endpoint.and_then(|e| text(e, "Address")),
                    port: endpoint
                        .and_then(|e| e.get("Port")?.as_u64())
                        .and_then(|p| u16::try_from(p).ok()),
                    promotion_tier: member
                        .get("PromotionTier")
                        .and_then(Value::as_i64)
                        .and_then(|t| i32::try_from(t).ok()),
                    id,
                }
            })
            .collect();
        EmulatedCluster {
            id: text(cluster, "DBClusterIdentifier").unwrap_or_default(),
            engine: text(cluster, "Engine").unwrap_or_default(),
            status: text(cluster, "Status").unwrap_or_default(),
            endpoint: text(cluster, "Endpoint"),
            reader_endpoint: text(cluster, "ReaderEndpoint"),
            members,
        }
    }
}

/// The address to dial for an RDS endpoint host name in tests: `127.0.0.1` for the emulator's
/// fake names (any host under `.rds.amazonaws.com`, case-insensitive, with or without a
/// trailing dot), `None` for any other host (resolve it normally).
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
///
/// use rds_balancer_testkit::resolve_to_loopback;
///
/// let host = "app-primary.aaaaaaaaaa.us-east-1.rds.amazonaws.com";
/// assert_eq!(resolve_to_loopback(host), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
/// assert_eq!(resolve_to_loopback("db.example.com"), None);
/// ```
pub fn resolve_to_loopback(host: &str) -> Option<IpAddr> {
    const SUFFIX: &str = ".rds.amazonaws.com";
    let host = host.strip_suffix('.').unwrap_or(host);
    let split = host.len().checked_sub(SUFFIX.len()).filter(|&at| at > 0)?;
    let (name, suffix) = (host.get(..split)?, host.get(split..)?);
    (suffix.eq_ignore_ascii_case(SUFFIX) && !name.ends_with('.'))
        .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod test {
    use std::net::{IpAddr, Ipv4Addr};

    use serde_json::json;

    use super::{EmulatedCluster, resolve_to_loopback};

    #[test]
    fn only_rds_host_names_resolve_to_loopback() {
        let loopback = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for host in [
            "w1.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
            "app.cluster-ro-abc.eu-west-1.rds.amazonaws.com.",
            "W1.AAAAAAAAAA.US-EAST-1.RDS.AMAZONAWS.COM",
        ] {
            assert_eq!(resolve_to_loopback(host), loopback, "{host}");
        }
        for host in [
            "rds.amazonaws.com",
            ".rds.amazonaws.com",
            "x..rds.amazonaws.com",
            "example.com",
            "rds.amazonaws.com.evil.example",
            "",
            "é",
        ] {
            assert_eq!(resolve_to_loopback(host), None, "{host}");
        }
    }

    #[test]
    fn members_are_joined_with_their_instances() {
        let cluster = json!({
            "DBClusterIdentifier": "app", "Engine": "aurora-postgresql", "Status": "available",
            "Endpoint": "app.cluster-x.us-east-1.rds.amazonaws.com",
            "DBClusterMembers": [
                {"DBInstanceIdentifier": "w", "IsClusterWriter": true, "PromotionTier": 1},
                {"DBInstanceIdentifier": "r", "IsClusterWriter": false},
            ],
        });
        let instances = [json!({
            "DBInstanceIdentifier": "w", "DBInstanceStatus": "available",
            "Endpoint": {"Address": "w.h", "Port": 5432},
        })];
        let view = EmulatedCluster::from_api(&cluster, &instances);
        assert_eq!(view.writer().map(|w| w.port), Some(Some(5432)));
        assert_eq!(view.writer().and_then(|w| w.promotion_tier), Some(1));
        let reader = view.member("R");
        assert_eq!(
            reader.map(|r| (r.host.clone(), r.status.as_str())),
            Some((None, ""))
        );
        assert_eq!(view.reader_endpoint, None);
        assert_eq!(view.readers().count(), 1);
    }
}
