//! The moto RDS emulator ([`RdsEmulator`]): the RDS API on a loopback port, describing local
//! clusters so that the library's `RdsApi` topology source can be tested end to end, and the
//! other AWS services moto emulates on the same port (Secrets Manager, `secrets.rs`).
//!
//! The server is moto's (the app `python3 -m moto.server` serves), started by a small Python
//! launcher kept in this crate (no file needed at run time) that adds one admin route. The test
//! kit's calls (`create_cluster`, `failover`, `create_secret`, ...) are JSON `POST`s to that
//! route, each running one boto3 call against the server's real HTTP API (a few milliseconds
//! each; boto3 is imported once, at start). The launcher exits when its standard input, a pipe
//! only the test process holds, closes: on drop, and when the test process dies in any way
//! (`SIGKILL` included). See `server.rs` for the details.

mod http;
mod model;
mod secrets;
mod server;

use serde_json::{Value, json};

pub use self::model::{EmulatedCluster, EmulatedInstance, resolve_to_loopback};
pub use self::secrets::SecretVersion;
use self::server::Server;
use crate::error::Error;
use crate::mysql::MariaDbCluster;
use crate::pg::PgCluster;

/// moto's RDS API in server mode on a loopback port, describing local clusters; Secrets Manager
/// (and every other service moto emulates) answers on the same port.
///
/// Point an RDS client (`aws-sdk-rds`) at [`endpoint_url`](Self::endpoint_url) with
/// [`region`](Self::region) and the dummy credentials [`ACCESS_KEY_ID`](Self::ACCESS_KEY_ID) /
/// [`SECRET_ACCESS_KEY`](Self::SECRET_ACCESS_KEY) (moto checks no signature). Instances describe
/// fake endpoints, `<id>.aaaaaaaaaa.us-east-1.rds.amazonaws.com`, with the ports of local servers;
/// dial them through [`resolve_to_loopback`].
///
/// Needs `python3` with moto and boto3; when they are missing, [`start`](Self::start) fails
/// with [`Error::MotoNotInstalled`], whose message holds the fix ([`MOTO_INSTALL_HINT`]).
/// The API is blocking, like the rest of the test kit.
///
/// Dropping it stops the server; if the test process dies without dropping it (a `static`,
/// `process::exit`, `SIGKILL`), the server exits by itself.
///
/// ```no_run
/// use rds_balancer_testkit::{PgCluster, RdsEmulator, resolve_to_loopback};
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = PgCluster::start(2)?;
/// let rds = RdsEmulator::start()?;
/// let ids = rds.describe_pg_cluster("app", &cluster)?; // app-primary, app-replica-1, ...
/// let view = rds.describe("app")?;
/// let writer = view.writer().and_then(|w| w.port);
/// assert_eq!(writer, Some(cluster.primary().port()));
///
/// rds.failover("app", &ids[1])?; // the API now says replica-1 is the writer
/// rds.set_instance_status(&ids[2], "rebooting")?;
/// let host = rds.instance_host(&ids[1]);
/// assert!(resolve_to_loopback(&host).is_some());
/// # Ok(()) }
/// ```
///
/// [`MOTO_INSTALL_HINT`]: crate::MOTO_INSTALL_HINT
#[derive(Debug)]
pub struct RdsEmulator {
    server: Server,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RdsEmulator>();
};

/// The region every emulated resource lives in.
const REGION: &str = "us-east-1";

impl RdsEmulator {
    /// The dummy access key id to give the RDS client.
    pub const ACCESS_KEY_ID: &str = "test";
    /// The dummy secret access key to give the RDS client.
    pub const SECRET_ACCESS_KEY: &str = "test";

    /// Starts the emulator on a free loopback port and returns once it has answered an RDS
    /// call (about 1.5 s).
    pub fn start() -> Result<RdsEmulator, Error> {
        Ok(RdsEmulator {
            server: Server::start()?,
        })
    }

    /// The endpoint URL to give the RDS client: `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// The port the emulator listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The region to give the RDS client: `us-east-1`.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The version of moto serving the API.
    pub fn moto_version(&self) -> &str {
        &self.server.moto_version
    }

    /// The emulator's process id (for tests of clean-up).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Runs one RDS API call, e.g. `call("describe_db_instances", json!({"MaxRecords": 20}))`,
    /// with boto3's method and parameter names; returns the response without its
    /// `ResponseMetadata`, timestamps as strings. Other services:
    /// [`call_service`](Self::call_service).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        self.call_service("rds", method, params)
    }

    /// Creates an empty cluster `cluster_id` with `engine` (`aurora-postgresql`,
    /// `aurora-mysql`).
    pub fn create_cluster(&self, cluster_id: &str, engine: &str) -> Result<(), Error> {
        let params = json!({
            "DBClusterIdentifier": cluster_id,
            "Engine": engine,
            "MasterUsername": "admin_user",
            "MasterUserPassword": "password123",
        });
        self.call("create_db_cluster", params).map(drop)
    }

    /// Adds instance `instance_id` listening on `port` to cluster `cluster_id`, `available` at
    /// once. The cluster's first member is its writer; `promotion_tier` defaults to 1.
    pub fn add_instance(
        &self,
        cluster_id: &str,
        instance_id: &str,
        port: u16,
        promotion_tier: Option<i32>,
    ) -> Result<(), Error> {
        let cluster = self.cluster(cluster_id)?;
        let mut params = json!({
            "DBInstanceIdentifier": instance_id,
            "DBClusterIdentifier": cluster_id,
            "Engine": cluster.get("Engine").cloned().unwrap_or(Value::Null),
            "DBInstanceClass": "db.r6g.large",
            "Port": port,
        });
        if let (Some(tier), Some(map)) = (promotion_tier, params.as_object_mut()) {
            map.insert("PromotionTier".to_owned(), tier.into());
        }
        self.call("create_db_instance", params).map(drop)
    }

    /// Describes `cluster` as Aurora PostgreSQL cluster `cluster_id`: creates the cluster, then
    /// one instance per node, the current primary first (so it is the writer), each with its
    /// node's port. Returns the instance ids in that order: `<cluster_id>-primary`,
    /// `<cluster_id>-replica-1`, ... (named after the nodes, lower-cased as RDS does).
    pub fn describe_pg_cluster(
        &self,
        cluster_id: &str,
        cluster: &PgCluster,
    ) -> Result<Vec<String>, Error> {
        let nodes = std::iter::once(cluster.primary()).chain(cluster.replicas());
        let nodes = nodes.map(|node| (node.name(), node.port()));
        self.describe_nodes(cluster_id, "aurora-postgresql", nodes)
    }

    /// Describes `cluster` as Aurora MySQL cluster `cluster_id`: creates the cluster, then one
    /// instance per node, the current primary first (so it is the writer), each with its node's
    /// port. Returns the instance ids in that order: `<cluster_id>-primary`,
    /// `<cluster_id>-replica-1`, ... (named after the nodes, lower-cased as RDS does).
    ///
    /// ```no_run
    /// use rds_balancer_testkit::{MariaDbCluster, RdsEmulator};
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::start(1)?;
    /// let rds = RdsEmulator::start()?;
    /// let ids = rds.describe_mariadb_cluster("app", &cluster)?; // app-primary, app-replica-1
    /// let view = rds.describe("app")?;
    /// assert_eq!(view.engine, "aurora-mysql");
    /// let writer = view.writer().and_then(|w| w.port);
    /// assert_eq!(writer, Some(cluster.primary().port()));
    /// rds.failover("app", &ids[1])?; // the API now says replica-1 is the writer
    /// # Ok(()) }
    /// ```
    pub fn describe_mariadb_cluster(
        &self,
        cluster_id: &str,
        cluster: &MariaDbCluster,
    ) -> Result<Vec<String>, Error> {
        let nodes = std::iter::once(cluster.primary()).chain(cluster.replicas());
        let nodes = nodes.map(|node| (node.name(), node.port()));
        self.describe_nodes(cluster_id, "aurora-mysql", nodes)
    }

    /// Creates cluster `cluster_id` with `engine`, then one instance per `(node name, port)`, in
    /// order (the first is the writer), named `<cluster_id>-<node name>` lower-cased; returns
    /// those ids.
    fn describe_nodes<'a>(
        &self,
        cluster_id: &str,
        engine: &str,
        nodes: impl IntoIterator<Item = (&'a str, u16)>,
    ) -> Result<Vec<String>, Error> {
        self.create_cluster(cluster_id, engine)?;
        let mut ids = Vec::new();
        for (name, port) in nodes {
            let id = format!("{cluster_id}-{name}").to_ascii_lowercase();
            self.add_instance(cluster_id, &id, port, None)?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Deletes instance `instance_id`; it leaves its cluster at once. Deleting the writer makes
    /// the member with the lowest promotion tier the writer (moto).
    pub fn remove_instance(&self, instance_id: &str) -> Result<(), Error> {
        let params = json!({"DBInstanceIdentifier": instance_id, "SkipFinalSnapshot": true});
        self.call("delete_db_instance", params).map(drop)
    }

    /// Stops instance `instance_id` (status `stopped`); it must be `available`.
    pub fn stop_instance(&self, instance_id: &str) -> Result<(), Error> {
        let params = json!({"DBInstanceIdentifier": instance_id});
        self.call("stop_db_instance", params).map(drop)
    }

    /// Starts stopped instance `instance_id` (status `available`).
    pub fn start_instance(&self, instance_id: &str) -> Result<(), Error> {
        let params = json!({"DBInstanceIdentifier": instance_id});
        self.call("start_db_instance", params).map(drop)
    }

    /// Sets the status instance `instance_id` reports to any string (`modifying`, `rebooting`,
    /// `failed`, `available`, ...), directly in moto's backend (the RDS API has no such call).
    pub fn set_instance_status(&self, instance_id: &str, status: &str) -> Result<(), Error> {
        let request = json!({"op": "set_status", "instance_id": instance_id, "status": status});
        http::admin(self.server.port, "rds", "set_instance_status", &request).map(drop)
    }

    /// Fails cluster `cluster_id` over to `target_instance_id` (`FailoverDBCluster`), which
    /// becomes the writer; the target must be `available`.
    pub fn failover(&self, cluster_id: &str, target_instance_id: &str) -> Result<(), Error> {
        let params = json!({
            "DBClusterIdentifier": cluster_id,
            "TargetDBInstanceIdentifier": target_instance_id,
        });
        self.call("failover_db_cluster", params).map(drop)
    }

    /// Describes cluster `cluster_id` as the RDS API reports it (`DescribeDBClusters`, then
    /// `DescribeDBInstances` filtered by `db-cluster-id`, every page).
    pub fn describe(&self, cluster_id: &str) -> Result<EmulatedCluster, Error> {
        let cluster = self.cluster(cluster_id)?;
        let mut instances = Vec::new();
        let mut marker = None::<String>;
        loop {
            let mut params = json!({
                "Filters": [{"Name": "db-cluster-id", "Values": [cluster_id]}],
                "MaxRecords": 100,
            });
            if let (Some(marker), Some(map)) = (&marker, params.as_object_mut()) {
                map.insert("Marker".to_owned(), marker.as_str().into());
            }
            let mut page = self.call("describe_db_instances", params)?;
            if let Some(Value::Array(found)) = page.get_mut("DBInstances").map(Value::take) {
                instances.extend(found);
            }
            marker = page
                .get("Marker")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        Ok(EmulatedCluster::from_api(&cluster, &instances))
    }

    /// The endpoint host name the emulator gives instance `instance_id`:
    /// `<id>.aaaaaaaaaa.us-east-1.rds.amazonaws.com` (id lower-cased).
    pub fn instance_host(&self, instance_id: &str) -> String {
        format!(
            "{}.aaaaaaaaaa.{REGION}.rds.amazonaws.com",
            instance_id.to_ascii_lowercase()
        )
    }

    /// Clears every emulated resource (`POST /moto-api/reset`), e.g. between tests that share
    /// an emulator but not cluster ids.
    pub fn reset(&self) -> Result<(), Error> {
        match http::post(self.server.port, "/moto-api/reset", "") {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Rds {
                operation: "reset".to_owned(),
                code: "EmulatorUnreachable".to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// The `DBClusters[0]` entry of `DescribeDBClusters` for `cluster_id`.
    fn cluster(&self, cluster_id: &str) -> Result<Value, Error> {
        let params = json!({"DBClusterIdentifier": cluster_id});
        let mut found = self.call("describe_db_clusters", params)?;
        match found.pointer_mut("/DBClusters/0").map(Value::take) {
            Some(cluster) => Ok(cluster),
            None => Err(Error::Rds {
                operation: "describe_db_clusters".to_owned(),
                code: "DBClusterNotFoundFault".to_owned(),
                message: format!("DBCluster {cluster_id} not found."),
            }),
        }
    }
}
