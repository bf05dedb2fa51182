//! [`BlueGreenDeployment`]: two real clusters, the metadata relation on both primaries, and the
//! DNS that names them.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::dns::Dns;
use super::endpoints::{self, BlueGreenEndpoint, EndpointKind, Nodes};
use super::options::{BlueGreenDeploymentBuilder, check_id, unexpected};
use super::relation::{BlueGreenRole, BlueGreenStatus, MetadataRelation, MetadataRow};
use crate::error::Error;
use crate::mysql::MariaDbCluster;
use crate::pg::PgCluster;

/// The driver id the kit's own reads pass to the PostgreSQL functions.
const KIT_DRIVER_ID: &str = "rds-balancer-testkit";

/// An RDS blue/green deployment made of two real local clusters the test started: `blue` (the
/// source) and `green` (the target), with AWS's metadata relation installed on both primaries
/// and a [`Dns`] that gives every node AWS-style host names.
///
/// The test drives it: [`set_status`](Self::set_status) writes one row per endpoint (the
/// cluster endpoint and every instance of each side: `BLUE_GREEN_DEPLOYMENT_SOURCE` rows for
/// blue, `BLUE_GREEN_DEPLOYMENT_TARGET` rows for green) on both primaries (a primary that is not
/// running, blue cut off as in a real switchover, is left out), so the code under test reads the
/// same whichever side it polls; [`clear`](Self::clear) leaves no rows (no
/// deployment); [`switch_dns`](Self::switch_dns) does to the names what AWS does at switchover,
/// and [`rollback`](Self::rollback) undoes it all. Every change is recorded, with the time it
/// took effect ([`history`](Self::history)).
///
/// Host names (`<id>` is the deployment's id, `<node>` a node's name: `primary`, `replica-1`,
/// ...):
///
/// | endpoint | blue | green |
/// |---|---|---|
/// | cluster (writer) | `<id>.cluster-xyz.us-east-1.rds.amazonaws.com` | `<id>-green-abcdef.cluster-xyz...` |
/// | cluster reader (not in the rows) | `<id>.cluster-ro-xyz...` | `<id>-green-abcdef.cluster-ro-xyz...` |
/// | instance | `<id>-<node>.xyz.us-east-1.rds.amazonaws.com` | `<id>-<node>-green-abcdef.xyz...` |
///
/// Each row's `port` is the loopback port of the node the endpoint names; the code under test
/// must dial through [`dns().resolver()`](Dns::resolver), which sends each name to the node it
/// currently names. Both clusters must have the same number of replicas (green is a copy of
/// blue); nodes are paired in order (primary with primary, `replica-1` with `replica-1`, ...).
/// The nodes are those of the clusters when the deployment is made.
///
/// The relation lives on the servers: one deployment per cluster at a time (on PostgreSQL, per
/// database). Dropping the deployment leaves the relation and its rows in place;
/// [`uninstall`](Self::uninstall) removes them. Replicas get the rows by replication (wait with
/// the clusters' `wait_replicated` before reading them there).
///
/// ```no_run
/// use rds_balancer_testkit::{BlueGreenDeployment, BlueGreenRole, BlueGreenStatus, PgCluster};
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let (blue, green) = (PgCluster::start(1)?, PgCluster::start(1)?);
/// let deployment = BlueGreenDeployment::postgres("app", &blue, &green)?;
/// // Give the code under test `deployment.dns().resolver()` as its endpoint resolver and
/// // `deployment.cluster_endpoint(BlueGreenRole::Source)` as its writer's host, then:
/// deployment.set_status(BlueGreenStatus::Available)?;
/// deployment.set_status(BlueGreenStatus::SwitchoverInitiated)?;
/// deployment.set_status(BlueGreenStatus::SwitchoverInProgress)?;
/// deployment.switch_dns(); // blue names reach the green nodes, green names are gone
/// deployment.set_status(BlueGreenStatus::SwitchoverInPostProcessing)?;
/// deployment.set_status(BlueGreenStatus::SwitchoverCompleted)?;
/// let writer = deployment.cluster_endpoint(BlueGreenRole::Source);
/// let (_, port) = deployment.dns().resolve(writer).expect("the blue name resolves");
/// assert_eq!(port, green.primary().port());
/// deployment.clear()?; // the deployment is deleted
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BlueGreenDeployment<'a> {
    id: String,
    servers: Servers<'a>,
    relation: MetadataRelation,
    blue: Vec<BlueGreenEndpoint>,
    green: Vec<BlueGreenEndpoint>,
    dns: Dns,
    history: Mutex<Vec<BlueGreenEvent>>,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BlueGreenDeployment<'static>>();
};

/// The two clusters, and where on them the relation lives.
#[derive(Debug)]
pub(super) enum Servers<'a> {
    Postgres {
        blue: &'a PgCluster,
        green: &'a PgCluster,
        databases: Vec<String>,
    },
    MariaDb {
        blue: &'a MariaDbCluster,
        green: &'a MariaDbCluster,
    },
}

/// One change a [`BlueGreenDeployment`] made, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlueGreenEvent {
    /// What changed.
    pub change: BlueGreenChange,
    /// When the change was complete: the rows committed on both primaries, or the names
    /// switched (after the last write, so the code under test may have seen it a little
    /// earlier, never later).
    pub at: Instant,
    /// The same moment on the wall clock.
    pub time: SystemTime,
}

/// What a [`BlueGreenEvent`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlueGreenChange {
    /// Every source row now has status `source` and every target row status `target`
    /// ([`set_status`](BlueGreenDeployment::set_status),
    /// [`set_statuses`](BlueGreenDeployment::set_statuses)).
    Status {
        /// The blue side's status.
        source: BlueGreenStatus,
        /// The green side's status.
        target: BlueGreenStatus,
    },
    /// Rows the test chose were written ([`write_rows`](BlueGreenDeployment::write_rows)).
    Rows(Vec<MetadataRow>),
    /// No rows: no deployment ([`clear`](BlueGreenDeployment::clear)).
    Cleared,
    /// The names were switched ([`switch_dns`](BlueGreenDeployment::switch_dns)).
    DnsSwitched,
    /// The names were put back ([`restore_dns`](BlueGreenDeployment::restore_dns)).
    DnsRestored,
}

impl<'a> BlueGreenDeployment<'a> {
    /// Options for a deployment with id `id` (the blue cluster's identifier, the first label of
    /// its host names: lower-case letters, digits and hyphens); see
    /// [`BlueGreenDeploymentBuilder`].
    pub fn builder(id: &str) -> BlueGreenDeploymentBuilder {
        BlueGreenDeploymentBuilder::new(id)
    }

    /// Makes PostgreSQL clusters `blue` and `green` deployment `id`, with Aurora's
    /// `pg_catalog.get_blue_green_fast_switchover_metadata` in database `postgres` of both
    /// primaries ([`builder`](Self::builder) chooses another relation or database), no rows, and
    /// every name in [`dns`](Self::dns) at its own node.
    ///
    /// Fails with [`Error::Unexpected`] when `id` cannot name hosts or the clusters have
    /// different numbers of replicas, and with the error of the first statement that fails.
    pub fn postgres(
        id: &str,
        blue: &'a PgCluster,
        green: &'a PgCluster,
    ) -> Result<BlueGreenDeployment<'a>, Error> {
        Self::builder(id).postgres(blue, green)
    }

    /// Makes MariaDB clusters `blue` and `green` deployment `id`, with `mysql.rds_topology` on
    /// both primaries, no rows, and every name in [`dns`](Self::dns) at its own node. Read the
    /// table as another user than `root` after [`grant_read`](Self::grant_read).
    ///
    /// ```no_run
    /// use rds_balancer_testkit::{BlueGreenDeployment, BlueGreenStatus, MariaDbCluster};
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let (blue, green) = (MariaDbCluster::start(0)?, MariaDbCluster::start(0)?);
    /// let deployment = BlueGreenDeployment::mariadb("app", &blue, &green)?;
    /// deployment.set_status(BlueGreenStatus::Available)?;
    /// let sql = "SELECT DISTINCT status FROM mysql.rds_topology";
    /// assert_eq!(green.sql("", sql)?, "AVAILABLE");
    /// # Ok(()) }
    /// ```
    pub fn mariadb(
        id: &str,
        blue: &'a MariaDbCluster,
        green: &'a MariaDbCluster,
    ) -> Result<BlueGreenDeployment<'a>, Error> {
        Self::builder(id).mariadb(blue, green)
    }

    pub(super) fn start(
        id: &str,
        servers: Servers<'a>,
        relation: MetadataRelation,
        blue_nodes: Nodes,
        green_nodes: Nodes,
    ) -> Result<Self, Error> {
        check_id(id)?;
        if blue_nodes.len() != green_nodes.len() {
            return Err(unexpected(format!(
                "a blue/green deployment pairs every blue node with a green one, but blue has \
                 {} nodes and green {}",
                blue_nodes.len(),
                green_nodes.len()
            )));
        }
        let blue = endpoints::side_endpoints(id, BlueGreenRole::Source, &blue_nodes);
        let green = endpoints::side_endpoints(id, BlueGreenRole::Target, &green_nodes);
        let deployment = BlueGreenDeployment {
            id: id.to_owned(),
            servers,
            relation,
            dns: Dns::new(),
            blue,
            green,
            history: Mutex::default(),
        };
        deployment
            .dns
            .apply(endpoints::dns_before(&deployment.blue, &deployment.green));
        let install = format!(
            "{} {}",
            relation.install_sql(),
            relation.replace_rows_sql(&[])
        );
        deployment.run_on_both(&install)?;
        Ok(deployment)
    }

    /// The deployment's id: the first label of every host name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The metadata relation installed on both primaries.
    pub fn relation(&self) -> MetadataRelation {
        self.relation
    }

    /// The PostgreSQL databases it is installed in (none for MariaDB).
    pub fn databases(&self) -> &[String] {
        match &self.servers {
            Servers::Postgres { databases, .. } => databases,
            Servers::MariaDb { .. } => &[],
        }
    }

    /// The name service the code under test must dial through: give it
    /// [`dns().resolver()`](Dns::resolver). Clone it to keep it beyond the deployment.
    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    /// The endpoints of one side (`Source`: blue, `Target`: green): cluster, reader, then one
    /// instance per node (primary first).
    pub fn endpoints(&self, role: BlueGreenRole) -> &[BlueGreenEndpoint] {
        match role {
            BlueGreenRole::Source => &self.blue,
            BlueGreenRole::Target => &self.green,
        }
    }

    /// One side's cluster (writer) endpoint, e.g. `app.cluster-xyz.us-east-1.rds.amazonaws.com`.
    pub fn cluster_endpoint(&self, role: BlueGreenRole) -> &str {
        self.endpoint_of_kind(role, EndpointKind::Cluster)
    }

    /// One side's cluster reader endpoint, e.g.
    /// `app.cluster-ro-xyz.us-east-1.rds.amazonaws.com`.
    pub fn reader_endpoint(&self, role: BlueGreenRole) -> &str {
        self.endpoint_of_kind(role, EndpointKind::Reader)
    }

    /// One side's instance endpoint of node `node` (`primary`, `replica-1`, ...), e.g.
    /// `app-replica-1-green-abcdef.xyz.us-east-1.rds.amazonaws.com`.
    pub fn instance_endpoint(&self, role: BlueGreenRole, node: &str) -> Option<&str> {
        self.endpoints(role)
            .iter()
            .find(|e| e.kind == EndpointKind::Instance && e.node == node)
            .map(|e| e.host.as_str())
    }

    fn endpoint_of_kind(&self, role: BlueGreenRole, kind: EndpointKind) -> &str {
        self.endpoints(role)
            .iter()
            .find(|e| e.kind == kind)
            .map_or("", |e| e.host.as_str())
    }

    /// What AWS renames blue endpoint `host` to at switchover, which
    /// [`switch_dns`](Self::switch_dns) points at the old blue node: `-old1` after the first
    /// label (`app-primary-old1.xyz...`, `app-old1.cluster-xyz...`).
    pub fn old_endpoint(host: &str) -> String {
        endpoints::old_host(host)
    }

    /// The rows [`set_statuses`](Self::set_statuses)`(source, target)` writes: one per cluster
    /// and instance endpoint of each side (not the reader endpoints), blue first; a starting
    /// point for [`write_rows`](Self::write_rows).
    pub fn rows(&self, source: BlueGreenStatus, target: BlueGreenStatus) -> Vec<MetadataRow> {
        let rows = |endpoints: &[BlueGreenEndpoint], status| -> Vec<MetadataRow> {
            endpoints
                .iter()
                .filter(|e| e.kind != EndpointKind::Reader)
                .map(|e| MetadataRow::new(&e.host, e.port, e.role, status))
                .collect()
        };
        let mut all = rows(&self.blue, source);
        all.extend(rows(&self.green, target));
        all
    }

    /// Puts both sides at `status`: [`set_statuses`](Self::set_statuses)`(status, status)`.
    pub fn set_status(&self, status: BlueGreenStatus) -> Result<(), Error> {
        self.set_statuses(status, status)
    }

    /// Replaces the rows on both primaries (blue's, then green's; each in one transaction) with
    /// [`rows`](Self::rows)`(source, target)`: the blue endpoints at `source`, the green ones at
    /// `target`, stamped with the time of the write. Recorded as [`BlueGreenChange::Status`].
    pub fn set_statuses(
        &self,
        source: BlueGreenStatus,
        target: BlueGreenStatus,
    ) -> Result<(), Error> {
        self.replace_rows(
            &self.rows(source, target),
            BlueGreenChange::Status { source, target },
        )
    }

    /// Deletes every row on both primaries: no deployment (the library's `NOT_CREATED`).
    /// Recorded as [`BlueGreenChange::Cleared`].
    pub fn clear(&self) -> Result<(), Error> {
        self.replace_rows(&[], BlueGreenChange::Cleared)
    }

    /// Replaces the rows on both primaries with `rows`, whatever they say (unknown statuses,
    /// other versions, endpoints AWS would rename, ...). Recorded as [`BlueGreenChange::Rows`].
    pub fn write_rows(&self, rows: &[MetadataRow]) -> Result<(), Error> {
        self.replace_rows(rows, BlueGreenChange::Rows(rows.to_vec()))
    }

    fn replace_rows(&self, rows: &[MetadataRow], change: BlueGreenChange) -> Result<(), Error> {
        self.run_on_both(&self.relation.replace_rows_sql(rows))?;
        self.record(change);
        Ok(())
    }

    /// The rows one side's primary returns now (`Source`: blue, `Target`: green), through the
    /// relation itself (`SELECT id, endpoint, port, role, status, version FROM <relation>`, in
    /// the first database on PostgreSQL), sorted by endpoint (byte order). Fails with
    /// [`Error::Unexpected`] on a row it cannot represent (a NULL).
    pub fn read_rows(&self, role: BlueGreenRole) -> Result<Vec<MetadataRow>, Error> {
        let sql = format!(
            "SELECT id, endpoint, port, role, status, version FROM {}",
            self.relation.from_clause(KIT_DRIVER_ID)
        );
        let (out, separator) = match &self.servers {
            Servers::Postgres {
                blue,
                green,
                databases,
            } => {
                let cluster = if role == BlueGreenRole::Source {
                    blue
                } else {
                    green
                };
                let db = databases.first().map_or("postgres", String::as_str);
                (cluster.psql(db, &sql)?, '|')
            }
            Servers::MariaDb { blue, green } => {
                let cluster = if role == BlueGreenRole::Source {
                    blue
                } else {
                    green
                };
                (cluster.sql("", &sql)?, '\t')
            }
        };
        let mut rows = out
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| parse_row(line, separator))
            .collect::<Result<Vec<_>, _>>()?;
        // Byte order, whatever the server's collation.
        rows.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        Ok(rows)
    }

    /// Lets database user `user` read the relation on both primaries (and, by replication,
    /// their replicas). MariaDB: `GRANT SELECT ON mysql.rds_topology TO 'user'@'%'`, as AWS asks
    /// of every user (the user must exist: `MariaDbCluster::create_user`, or `CREATE USER`).
    /// PostgreSQL: nothing to do, every role may call the functions, as on AWS.
    pub fn grant_read(&self, user: &str) -> Result<(), Error> {
        if self.relation.is_postgres() {
            return Ok(());
        }
        let user = user.replace('\\', "\\\\").replace('\'', "''");
        self.run_on_both(&format!(
            "GRANT SELECT ON mysql.rds_topology TO '{user}'@'%'"
        ))
    }

    /// Does to DNS what AWS does at switchover, all at once: every blue name now reaches the
    /// green node paired with its own (cluster endpoint → green primary, reader endpoint → green
    /// reader, `<id>-<node>` → green `<node>`), the green names no longer resolve, and the blue
    /// nodes stay reachable as `<name>-old1` ([`old_endpoint`](Self::old_endpoint)). The rows
    /// are not touched. Recorded as [`BlueGreenChange::DnsSwitched`].
    pub fn switch_dns(&self) {
        self.dns
            .apply(endpoints::dns_after(&self.blue, &self.green));
        self.record(BlueGreenChange::DnsSwitched);
    }

    /// Puts DNS back as it was before [`switch_dns`](Self::switch_dns): every name at its own
    /// node, no `-old1` names (names the test set itself are left alone unless they are the
    /// deployment's). Recorded as [`BlueGreenChange::DnsRestored`].
    pub fn restore_dns(&self) {
        self.dns
            .apply(endpoints::dns_before(&self.blue, &self.green));
        self.record(BlueGreenChange::DnsRestored);
    }

    /// Undoes a switchover, as AWS does when one fails: DNS back as before
    /// ([`restore_dns`](Self::restore_dns)), then both sides [`AVAILABLE`](BlueGreenStatus::Available).
    pub fn rollback(&self) -> Result<(), Error> {
        self.restore_dns();
        self.set_status(BlueGreenStatus::Available)
    }

    /// A whole switchover from [`AVAILABLE`](BlueGreenStatus::Available), in AWS's order, waiting
    /// `step` after each change: `SWITCHOVER_INITIATED`, `SWITCHOVER_IN_PROGRESS`, the names
    /// switched ([`switch_dns`](Self::switch_dns)), `SWITCHOVER_IN_POST_PROCESSING`,
    /// `SWITCHOVER_COMPLETED` (no wait after the last). For finer control (other timings, a
    /// failure half-way), make the same calls yourself.
    pub fn switchover(&self, step: Duration) -> Result<(), Error> {
        self.set_status(BlueGreenStatus::SwitchoverInitiated)?;
        thread::sleep(step);
        self.set_status(BlueGreenStatus::SwitchoverInProgress)?;
        thread::sleep(step);
        self.switch_dns();
        thread::sleep(step);
        self.set_status(BlueGreenStatus::SwitchoverInPostProcessing)?;
        thread::sleep(step);
        self.set_status(BlueGreenStatus::SwitchoverCompleted)
    }

    /// Every change so far, oldest first, each with the time it took effect.
    pub fn history(&self) -> Vec<BlueGreenEvent> {
        self.lock_history().clone()
    }

    /// Removes the relation (and its rows) from both primaries; DNS is left as it is.
    pub fn uninstall(&self) -> Result<(), Error> {
        self.run_on_both(self.relation.uninstall_sql())
    }

    fn record(&self, change: BlueGreenChange) {
        let event = BlueGreenEvent {
            change,
            at: Instant::now(),
            time: SystemTime::now(),
        };
        self.lock_history().push(event);
    }

    fn lock_history(&self) -> MutexGuard<'_, Vec<BlueGreenEvent>> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs admin `sql` on blue's primary, then green's (in every database on PostgreSQL).
    /// Runs `sql` on both primaries; a side whose primary is not running (blue cut off, as
    /// during a real switchover) is skipped, and only its metadata goes stale.
    fn run_on_both(&self, sql: &str) -> Result<(), Error> {
        let mut ran = false;
        match &self.servers {
            Servers::Postgres {
                blue,
                green,
                databases,
            } => {
                for cluster in [blue, green] {
                    if !cluster.primary().is_running() {
                        continue;
                    }
                    for db in databases {
                        cluster.psql(db, sql)?;
                    }
                    ran = true;
                }
            }
            Servers::MariaDb { blue, green } => {
                for cluster in [blue, green] {
                    if !cluster.primary().is_running() {
                        continue;
                    }
                    cluster.sql("", sql)?;
                    ran = true;
                }
            }
        }
        if ran {
            Ok(())
        } else {
            Err(unexpected(
                "neither blue's nor green's primary is running".to_owned(),
            ))
        }
    }
}

/// One line of the client's output: `id, endpoint, port, role, status, version`.
fn parse_row(line: &str, separator: char) -> Result<MetadataRow, Error> {
    let bad = || {
        unexpected(format!(
            "a blue/green metadata row the kit cannot read: {line:?}"
        ))
    };
    let fields: Vec<&str> = line.split(separator).collect();
    let [id, endpoint, port, role, status, version] = fields[..] else {
        return Err(bad());
    };
    if [endpoint, role, status, version].contains(&"NULL") {
        return Err(bad());
    }
    Ok(MetadataRow {
        id: id.parse().map_err(|_| bad())?,
        endpoint: endpoint.to_owned(),
        port: port.parse().map_err(|_| bad())?,
        role: role.to_owned(),
        status: status.to_owned(),
        version: version.to_owned(),
    })
}
