//! Cluster topology: the model ([`Topology`], [`Instance`]), where it comes from
//! ([`TopologySource`]), and the pure diff that turns one topology into changes to the hosts in
//! use.
//!
//! Following the live cluster (the RDS API and cluster-view sources, the polling controller)
//! builds on these pieces.

mod apply;
mod balancer;
mod cluster_view;
mod diff;
mod model;
#[cfg(feature = "rds-api")]
mod rds_api;
mod resolver;
mod source;

pub(crate) use self::apply::{apply, forget};
pub use self::balancer::{
    BalancerOptions, IntoRdsConnection, RdsReplicaBalancer, attach_rds_replica_balancer, connect,
};
pub use self::cluster_view::{ClusterViewSource, ClusterViewSourceBuilder};
pub use self::diff::TopologyChange;
pub(crate) use self::diff::{ReaderFilter, diff};
pub use self::model::{AVAILABLE, Instance, Topology};
#[cfg(feature = "rds-api")]
pub use self::rds_api::{RdsApiSource, RdsApiSourceBuilder};
pub use self::resolver::EndpointResolver;
pub use self::source::TopologySource;
