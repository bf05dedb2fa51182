//! Where topologies come from: the [`TopologySource`] extension point.

use std::future::Future;

use super::Topology;
use crate::error::Result;

/// Yields the cluster's current members when asked.
///
/// Implemented by the built-in sources and, through a blanket impl, by any
/// `Fn() -> impl Future<Output = Result<Topology>>` closure, so a test or a custom discovery
/// mechanism needs no new type:
///
/// ```
/// use rds_balancer::{Instance, Topology, TopologySource};
///
/// let source = || async {
///     Ok(Topology::new(vec![Instance::writer("app-1").with_endpoint("10.0.0.1", 5432)]))
/// };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let topology = source.fetch().await?;
/// assert_eq!(topology.instances.len(), 1);
/// # Ok::<(), rds_balancer::Error>(()) }).unwrap();
/// ```
#[async_trait::async_trait]
pub trait TopologySource: Send + Sync + 'static {
    /// The cluster's members now. An error keeps the last good topology in use.
    async fn fetch(&self) -> Result<Topology>;
}

#[async_trait::async_trait]
impl<F, Fut> TopologySource for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Topology>> + Send,
{
    async fn fetch(&self) -> Result<Topology> {
        self().await
    }
}
