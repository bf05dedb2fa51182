//! [`RdsApiSource`]: the cluster's topology as the RDS API describes it (`DescribeDBClusters`
//! and `DescribeDBInstances`, through aws-sdk-rds).

mod error;
mod options;

use std::fmt;
use std::sync::Arc;

use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, DbInstance, Filter};

pub use self::options::RdsApiSourceBuilder;
use super::{Instance, Topology, TopologySource};
use crate::error::{Error, Result};

/// The status of a cluster member that `DescribeDBInstances` did not list: it gets no endpoint,
/// so no traffic.
const UNKNOWN_STATUS: &str = "unknown";

/// A [`TopologySource`] that asks the RDS API for an Aurora (or Multi-AZ DB) cluster's members.
///
/// Each [`fetch`](TopologySource::fetch) calls `DescribeDBClusters` for the cluster (its
/// members, which one is the writer, their promotion tiers), then `DescribeDBInstances` filtered
/// on the cluster, page by page (each member's endpoint, port and status). Instances that are
/// not members are ignored; a member the second call does not list is reported with the status
/// `unknown` and no endpoint. Any failure, including an unknown cluster, is an
/// [`Error::Topology`]; [`Error::is_throttling`] tells when to poll less often.
///
/// The IAM policy needs `rds:DescribeDBClusters` and `rds:DescribeDBInstances`.
///
/// Cloning is cheap: clones share one SDK client. `Debug` shows the cluster id, region and
/// endpoint URL only, never credentials.
///
/// ```no_run
/// use rds_balancer::{RdsApiSource, TopologySource};
///
/// # async fn run() -> rds_balancer::Result<()> {
/// let source = RdsApiSource::builder("orders-cluster").region("eu-west-1").build().await?;
/// let topology = source.fetch().await?;
/// if let Some(writer) = topology.writer() {
///     println!("writer {} at {:?}", writer.id, writer.address());
/// }
/// for reader in topology.readers() {
///     println!("reader {} ({}) at {:?}", reader.id, reader.status, reader.address());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RdsApiSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    cluster_id: String,
    /// The endpoint URL given to the builder (`None` with a ready client).
    endpoint_url: Option<String>,
    page_size: i32,
}

impl fmt::Debug for RdsApiSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsApiSource")
            .field("cluster_id", &self.cluster_id())
            .field("region", &self.region())
            .field("endpoint_url", &self.inner.endpoint_url)
            .finish()
    }
}

impl RdsApiSource {
    /// A builder for the source of cluster `cluster_id` (its `DBClusterIdentifier` or ARN).
    ///
    /// ```
    /// use rds_balancer::RdsApiSource;
    ///
    /// let builder = RdsApiSource::builder("orders-cluster").region("eu-west-1");
    /// # drop(builder);
    /// ```
    pub fn builder(cluster_id: impl Into<String>) -> RdsApiSourceBuilder {
        RdsApiSourceBuilder::new(cluster_id.into())
    }

    /// The cluster identifier it describes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let source = rds_balancer::RdsApiSource::builder("orders-cluster")
    ///     .region("eu-west-1")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .build()
    ///     .await?;
    /// assert_eq!(source.cluster_id(), "orders-cluster");
    /// # Ok(()) }
    /// ```
    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    /// The region its client calls, when it has one (`None` only with a ready client that has
    /// none).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rds_balancer::Result<()> {
    /// let source = rds_balancer::RdsApiSource::builder("orders-cluster")
    ///     .region("us-east-2")
    ///     .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
    ///     .build()
    ///     .await?;
    /// assert_eq!(source.region(), Some("us-east-2"));
    /// # Ok(()) }
    /// ```
    pub fn region(&self) -> Option<&str> {
        self.inner.client.config().region().map(|r| r.as_ref())
    }

    async fn describe_cluster(&self) -> Result<DbCluster> {
        const OPERATION: &str = "DescribeDBClusters";
        let output = self
            .inner
            .client
            .describe_db_clusters()
            .db_cluster_identifier(&self.inner.cluster_id)
            .send()
            .await
            .map_err(|err| error::from_sdk(OPERATION, err))?;
        output
            .db_clusters
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| Error::Topology {
                operation: OPERATION.into(),
                code: Some(error::CLUSTER_NOT_FOUND.to_owned()),
                message: format!("DBCluster {} not found.", self.inner.cluster_id),
            })
    }

    async fn describe_instances(&self, cluster_id: &str) -> Result<Vec<DbInstance>> {
        const OPERATION: &str = "DescribeDBInstances";
        let mut pages = self
            .inner
            .client
            .describe_db_instances()
            .filters(
                Filter::builder()
                    .name("db-cluster-id")
                    .values(cluster_id)
                    .build(),
            )
            .max_records(self.inner.page_size)
            .into_paginator()
            .send();
        let mut instances = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| error::from_sdk(OPERATION, err))?;
            instances.extend(page.db_instances.unwrap_or_default());
        }
        Ok(instances)
    }
}

#[async_trait::async_trait]
impl TopologySource for RdsApiSource {
    async fn fetch(&self) -> Result<Topology> {
        let cluster = self.describe_cluster().await?;
        let cluster_id = cluster
            .db_cluster_identifier()
            .unwrap_or(&self.inner.cluster_id)
            .to_owned();
        let instances = self.describe_instances(&cluster_id).await?;
        let topology = assemble(&cluster, &instances);
        tracing::debug!(
            cluster = %cluster_id,
            members = topology.instances.len(),
            writer = topology.writer().map(|w| w.id.as_str()),
            "described the cluster through the RDS API",
        );
        Ok(topology)
    }
}

/// The cluster's members, in the order `DescribeDBClusters` lists them, with what
/// `DescribeDBInstances` says of each.
fn assemble(cluster: &DbCluster, instances: &[DbInstance]) -> Topology {
    let members = cluster.db_cluster_members().iter().filter_map(|member| {
        let id = member.db_instance_identifier()?;
        let mut instance = if member.is_cluster_writer().unwrap_or(false) {
            Instance::writer(id)
        } else {
            Instance::reader(id)
        };
        instance.promotion_tier = member.promotion_tier();
        let described = instances
            .iter()
            .find(|i| i.db_instance_identifier() == Some(id));
        match described {
            Some(described) => {
                instance.status = described
                    .db_instance_status()
                    .unwrap_or(UNKNOWN_STATUS)
                    .to_owned();
                if let Some(endpoint) = described.endpoint() {
                    instance.host = endpoint.address().map(str::to_owned);
                    instance.port = endpoint.port().and_then(|p| u16::try_from(p).ok());
                }
            }
            None => instance.status = UNKNOWN_STATUS.to_owned(),
        }
        Some(instance)
    });
    let mut topology = Topology::default();
    for instance in members {
        if !topology.instances.iter().any(|i| i.id == instance.id) {
            topology.instances.push(instance);
        }
    }
    topology
}

#[cfg(test)]
mod tests {
    use aws_sdk_rds::types::{DbClusterMember, Endpoint};

    use super::*;

    fn member(id: &str, writer: bool, tier: i32) -> DbClusterMember {
        DbClusterMember::builder()
            .db_instance_identifier(id)
            .is_cluster_writer(writer)
            .promotion_tier(tier)
            .build()
    }

    fn instance(id: &str, status: &str, port: i32) -> DbInstance {
        DbInstance::builder()
            .db_instance_identifier(id)
            .db_instance_status(status)
            .endpoint(
                Endpoint::builder()
                    .address(format!("{id}.example"))
                    .port(port)
                    .build(),
            )
            .build()
    }

    #[test]
    fn members_get_their_endpoint_status_and_tier() {
        let cluster = DbCluster::builder()
            .db_cluster_members(member("r1", false, 2))
            .db_cluster_members(member("w1", true, 0))
            .db_cluster_members(member("gone", false, 1))
            .db_cluster_members(member("w1", true, 0))
            .build();
        let instances = [
            instance("w1", "available", 5432),
            instance("stranger", "available", 5433),
            instance("r1", "stopped", 5434),
        ];
        let topology = assemble(&cluster, &instances);
        assert_eq!(
            topology,
            Topology::new(vec![
                Instance::reader("r1")
                    .with_endpoint("r1.example", 5434)
                    .with_status("stopped")
                    .with_promotion_tier(2),
                Instance::writer("w1")
                    .with_endpoint("w1.example", 5432)
                    .with_promotion_tier(0),
                Instance::reader("gone")
                    .with_status(UNKNOWN_STATUS)
                    .with_promotion_tier(1),
            ])
        );
    }

    #[test]
    fn an_instance_without_endpoint_or_a_bad_port_has_no_address() {
        let cluster = DbCluster::builder()
            .db_cluster_members(member("creating", false, 1))
            .db_cluster_members(member("odd", false, 1))
            .build();
        let creating = DbInstance::builder()
            .db_instance_identifier("creating")
            .db_instance_status("creating")
            .build();
        let topology = assemble(&cluster, &[creating, instance("odd", "available", 70000)]);
        assert!(topology.instances.iter().all(|i| i.address().is_none()));
        assert_eq!(topology.instances[0].status, "creating");
        assert_eq!(topology.instances[1].host.as_deref(), Some("odd.example"));
    }
}
