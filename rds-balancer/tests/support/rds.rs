//! Helpers for tests against the RDS API emulator.

use rds_balancer::{RdsApiSource, RdsApiSourceBuilder};
use rds_balancer_testkit::{RdsEmulator, resolve_to_loopback};

/// A source builder for `cluster` on the emulator, with the emulator's dummy credentials.
pub fn emulator_source_builder(rds: &RdsEmulator, cluster: &str) -> RdsApiSourceBuilder {
    RdsApiSource::builder(cluster)
        .region(rds.region())
        .endpoint_url(rds.endpoint_url())
        .credentials(
            RdsEmulator::ACCESS_KEY_ID,
            RdsEmulator::SECRET_ACCESS_KEY,
            None,
        )
}

/// A source for `cluster` on the emulator.
pub async fn emulator_source(rds: &RdsEmulator, cluster: &str) -> RdsApiSource {
    emulator_source_builder(rds, cluster)
        .build()
        .await
        .expect("build the source")
}

/// The endpoint resolver for emulated clusters: the emulator's fake host names are dialled on
/// 127.0.0.1, at the port it reports.
pub fn dial_loopback(host: &str, port: u16) -> (String, u16) {
    let ip = resolve_to_loopback(host).map_or_else(|| host.to_owned(), |ip| ip.to_string());
    (ip, port)
}

/// The Aurora engine the RDS API names for a cluster of `kind`: `aurora-postgresql` or
/// `aurora-mysql`.
pub fn engine(kind: super::Kind) -> &'static str {
    match kind {
        super::Kind::Postgres => "aurora-postgresql",
        super::Kind::MySql => "aurora-mysql",
    }
}

/// Describes `cluster` on the emulator as Aurora cluster `cluster_id` of its engine
/// (`describe_pg_cluster` or `describe_mariadb_cluster`): the current primary first (the
/// writer), then each replica, with their ports. Returns the instance ids in that order:
/// `<cluster_id>-primary`, `<cluster_id>-replica-1`, ...
pub fn describe_cluster(
    rds: &RdsEmulator,
    cluster_id: &str,
    cluster: &super::Cluster,
) -> Vec<String> {
    match cluster {
        super::Cluster::Postgres(c) => rds.describe_pg_cluster(cluster_id, c),
        super::Cluster::MySql(c) => rds.describe_mariadb_cluster(cluster_id, c),
    }
    .unwrap_or_else(|e| panic!("describe {cluster_id} on the emulator: {e}"))
}
