//! A MariaDB primary with binary-log replicas in a temporary directory.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::node::{Role, SlaveStatus, status_field};
use super::options::MariaDbClusterBuilder;
use super::{Ctx, MariaDbBin, MariaDbNode};
use crate::error::Error;
use crate::history::History;
use crate::net::free_port;
use crate::process::RunAs;
use crate::supervisor::Supervisor;

/// How long the set-up steps that wait on replication may take.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

/// A real MariaDB primary with N replicas (binary log, GTID), each on its own loopback port, in
/// a temporary directory.
///
/// Every node is reachable as `root` with no password over TCP on 127.0.0.1. The replicas run
/// with `read_only=1`, which does not stop `root` (it has `SUPER`): give the code under test a
/// user of its own with [`create_user`](Self::create_user). Every node writes a binary log
/// (`--log-bin --log-slave-updates`, GTID domain 0, its own server id), so that a replica can
/// take over with [`promote`](Self::promote). Every server runs as the `mysql` OS
/// user when the test process is root (as in CI), else as the current user. Dropping the cluster
/// stops every server and removes the directory; if the process dies without dropping it (a
/// `static`, `process::exit`, an abort, a `SIGKILL`), a supervisor process does the same.
///
/// ```no_run
/// use std::time::Duration;
///
/// use rds_balancer_testkit::MariaDbCluster;
///
/// # fn main() -> Result<(), rds_balancer_testkit::Error> {
/// let cluster = MariaDbCluster::start(1)?;
/// cluster.create_database("app")?;
/// cluster.sql("app", "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)")?;
/// cluster.wait_replicated(Duration::from_secs(30))?;
/// let replica = &cluster.replicas()[0];
/// assert_eq!(replica.sql("app", "SELECT @@port")?, replica.port().to_string());
/// assert_eq!(replica.sql("app", "SELECT count(*) FROM t")?, "1");
/// # Ok(()) }
/// ```
pub struct MariaDbCluster {
    ctx: Arc<Ctx>,
    /// Who is primary; replaced by each promotion (which uses up a replica).
    layout: History<Layout>,
    teardown: Teardown,
}

/// Who is primary and who replicates from it.
#[derive(Debug)]
struct Layout {
    primary: MariaDbNode,
    replicas: Box<[MariaDbNode]>,
}

/// Stops the nodes, then ends the supervisor (which removes the directory), then removes
/// whatever is left of the directory. Also the clean-up of a failed `start`.
struct Teardown {
    nodes: Vec<MariaDbNode>,
    supervisor: Option<Supervisor>,
    dir: Option<TempDir>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        MariaDbNode::stop_all(&self.nodes);
        drop(self.supervisor.take());
        drop(self.dir.take());
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<MariaDbCluster>();
    assert_send_sync::<MariaDbNode>();
};

impl MariaDbCluster {
    /// Starts a primary and `replicas` replicas and returns once every replica is connected to
    /// the primary and has applied everything it logged.
    ///
    /// Fails (never skips) when MariaDB is missing, with an [`Error::Io`] whose message holds the
    /// install command ([`MARIADB_INSTALL_HINT`](crate::MARIADB_INSTALL_HINT)).
    ///
    /// The same as `MariaDbCluster::builder().replicas(replicas).start()`: `max_connections`
    /// 200; [`builder`](Self::builder) sets that.
    pub fn start(replicas: usize) -> Result<MariaDbCluster, Error> {
        MariaDbCluster::builder().replicas(replicas).start()
    }

    /// Options for starting a cluster with another `max_connections`; see
    /// [`MariaDbClusterBuilder`].
    ///
    /// ```no_run
    /// use rds_balancer_testkit::MariaDbCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::builder()
    ///     .replicas(1)
    ///     .max_connections(20)
    ///     .start()?;
    /// assert_eq!(cluster.replicas()[0].sql("", "SELECT @@max_connections")?, "20");
    /// # Ok(()) }
    /// ```
    pub fn builder() -> MariaDbClusterBuilder {
        MariaDbClusterBuilder::default()
    }

    pub(super) fn start_with(options: MariaDbClusterBuilder) -> Result<MariaDbCluster, Error> {
        let replicas = options.replicas;
        let bin = MariaDbBin::find()?;
        let run_as = RunAs::server_user("mysql")?;
        let dir = tempfile::Builder::new()
            .prefix("rds-balancer-mariadb-")
            .tempdir()
            .map_err(|e| Error::io("could not create a temporary directory", e))?;
        run_as.chown(dir.path())?;
        // mariadbd shuts down cleanly on SIGTERM.
        let supervisor = Supervisor::spawn(dir.path(), &run_as, "TERM")?;
        let ctx = Arc::new(Ctx {
            bin,
            run_as,
            root: dir.path().to_path_buf(),
            max_connections: options.max_connections,
        });
        let mut teardown = Teardown {
            nodes: Vec::new(),
            supervisor: Some(supervisor),
            dir: Some(dir),
        };

        // Every node is installed and started at once: mariadb-install-db takes seconds.
        let results: Vec<Result<MariaDbNode, Error>> = thread::scope(|scope| {
            let workers: Vec<_> = (0..=replicas)
                .map(|i| {
                    let ctx = &ctx;
                    scope.spawn(move || {
                        let (name, role) = match i {
                            0 => ("primary".to_owned(), Role::Primary),
                            i => (format!("replica-{i}"), Role::Replica),
                        };
                        let server_id = u32::try_from(i + 1).unwrap_or(u32::MAX);
                        MariaDbNode::new(Arc::clone(ctx), &name, server_id, 0, role).install()?;
                        start_on_free_port(ctx, &name, server_id, role)
                    })
                })
                .collect();
            let panicked = || {
                Error::io(
                    "a MariaDB set-up thread panicked",
                    std::io::Error::other("panic"),
                )
            };
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err(panicked())))
                .collect()
        });
        let mut nodes = Vec::with_capacity(replicas + 1);
        let mut first_err = None;
        for result in results {
            match result {
                Ok(node) => {
                    teardown.nodes.push(node.handle());
                    nodes.push(node);
                }
                Err(err) => first_err = first_err.or(Some(err)),
            }
        }
        if let Some(err) = first_err {
            return Err(err);
        }
        let primary = nodes.remove(0);
        for replica in &nodes {
            replica.follow(primary.port())?;
        }
        wait_connected(&primary, &nodes, REPLICATION_TIMEOUT)?;
        let cluster = MariaDbCluster {
            ctx,
            layout: History::new(
                Layout {
                    primary,
                    replicas: nodes.into(),
                },
                replicas,
            ),
            teardown,
        };
        cluster.wait_replicated(REPLICATION_TIMEOUT)?;
        Ok(cluster)
    }

    /// The current primary (after [`promote`](Self::promote), the promoted node).
    pub fn primary(&self) -> &MariaDbNode {
        &self.layout.current().primary
    }

    /// The current replicas, in creation order: `replica-1`, `replica-2`, ... A promoted replica
    /// leaves this list, and so does the primary it replaced.
    pub fn replicas(&self) -> &[MariaDbNode] {
        &self.layout.current().replicas
    }

    /// Every node ever started in this cluster (a replaced primary included), in creation order:
    /// `primary`, `replica-1`, ...
    pub fn nodes(&self) -> impl Iterator<Item = &MariaDbNode> {
        self.teardown.nodes.iter()
    }

    /// The servers' `max_connections` ([`MariaDbClusterBuilder::max_connections`]; 200 unless
    /// set).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::MariaDbCluster::start(0)?;
    /// assert_eq!(cluster.max_connections(), 200);
    /// # Ok(()) }
    /// ```
    pub fn max_connections(&self) -> u32 {
        self.ctx.max_connections
    }

    /// Promotes `replicas()[replica]` to primary, as a failover does, and re-points the other
    /// replicas at it, then waits until the answering ones replicate from it.
    ///
    /// The promoted node first applies every transaction it had received, then becomes writable:
    /// `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`, and stays so when restarted
    /// ([`MariaDbNode::start`] no longer gives it `--read-only=ON`). The others get `STOP SLAVE;
    /// CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=<its port>, ...,
    /// MASTER_USE_GTID=slave_pos; START SLAVE`: they go on from the GTID position they had
    /// applied, which the new primary has in its binary log (`--log-slave-updates`).
    ///
    /// Afterwards [`primary`](Self::primary) is the promoted node and [`replicas`](Self::replicas)
    /// the others; the former primary is in neither list (it is left as it is: stop or kill it
    /// first to simulate a failover, or it goes on as a diverged second primary). It is not made
    /// to rejoin as a replica. A cluster can be promoted again, until it has no replica left.
    /// Fails with [`Error::NoSuchReplica`] when there is no replica `replica`, and with
    /// [`Error::NotRunning`] when it is stopped or paused (nothing changes then).
    ///
    /// Replicas that are stopped or paused at the time are re-pointed too, once started or
    /// resumed (a stopped one is started with `--skip-slave-start`, so it never reconnects to the
    /// old primary); they are not waited for. A replica that had applied more than the promoted
    /// one cannot follow it (MariaDB refuses a GTID position past the end of the new primary's
    /// binary log and stops its replication with an error), and then this, or the next
    /// [`wait_replicated`](Self::wait_replicated), times out naming it: call `wait_replicated`
    /// before killing the primary, as a test of a clean failover should.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::MariaDbCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::start(2)?;
    /// cluster.create_database("app")?;
    /// cluster.sql("app", "CREATE TABLE t (id int primary key)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// cluster.primary().kill()?; // the writer crashes ...
    /// cluster.promote(0)?; // ... and replica-1 takes over; replica-2 follows it
    /// assert_eq!(cluster.primary().name(), "replica-1");
    /// assert_eq!(cluster.primary().sql("", "SELECT @@read_only")?, "0");
    /// cluster.sql("app", "INSERT INTO t VALUES (1)")?;
    /// cluster.wait_replicated(Duration::from_secs(30))?;
    /// assert_eq!(cluster.replicas()[0].sql("app", "SELECT count(*) FROM t")?, "1");
    /// # Ok(()) }
    /// ```
    pub fn promote(&self, replica: usize) -> Result<(), Error> {
        let mut change = self.layout.change();
        let layout = change.current();
        let no_such = || Error::NoSuchReplica {
            index: replica,
            count: layout.replicas.len(),
        };
        let target = layout.replicas.get(replica).ok_or_else(no_such)?;
        target.promote(REPLICATION_TIMEOUT)?;
        // The promotion happened: record the new roles before anything else can fail.
        let others: Vec<MariaDbNode> = layout
            .replicas
            .iter()
            .filter(|r| r.port() != target.port())
            .map(MariaDbNode::handle)
            .collect();
        let next = Layout {
            primary: target.handle(),
            replicas: others.into(),
        };
        let next = change.replace(next).map_err(|_| no_such())?;
        for other in &next.replicas {
            other.follow(next.primary.port())?;
        }
        wait_connected(&next.primary, &next.replicas, REPLICATION_TIMEOUT)
    }

    /// The node listening on `port`, e.g. the answer to `SELECT @@port`.
    pub fn node_by_port(&self, port: u16) -> Option<&MariaDbNode> {
        self.nodes().find(|node| node.port() == port)
    }

    /// The cluster's temporary directory (one sub-directory per node).
    pub fn dir(&self) -> &Path {
        &self.ctx.root
    }

    /// Runs admin SQL on the primary as `root` in database `db`; see [`MariaDbNode::sql`].
    pub fn sql(&self, db: &str, sql: &str) -> Result<String, Error> {
        self.primary().sql(db, sql)
    }

    /// Creates database `name` on the primary and waits until every answering replica has it.
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        self.sql("", &format!("CREATE DATABASE {}", quote_ident(name)))?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }

    /// Creates user `name`@`%` with `password` and the privileges an application needs on every
    /// database (`SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY
    /// TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW`), but not `SUPER` or `READ ONLY
    /// ADMIN`: the replicas' `read_only` refuses its writes. Waits until the replicas have it.
    pub fn create_user(&self, name: &str, password: &str) -> Result<(), Error> {
        let user = format!("{}@'%'", quote_string(name));
        self.sql(
            "",
            &format!(
                "CREATE USER {user} IDENTIFIED BY {}; GRANT SELECT, INSERT, UPDATE, DELETE, \
                 CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, \
                 CREATE VIEW, SHOW VIEW ON *.* TO {user}",
                quote_string(password)
            ),
        )?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }

    /// Changes user `name`@`%`'s password to `password` on the primary (`ALTER USER ...
    /// IDENTIFIED BY`), and waits until every answering replica has the change. From then on
    /// only the new password is accepted for new connections, on every node; connections
    /// already open stay open, as in a real rotation.
    ///
    /// ```no_run
    /// use rds_balancer_testkit::MariaDbCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = MariaDbCluster::start(1)?;
    /// cluster.create_user("app", "old")?;
    /// cluster.set_password("app", "new")?;
    /// let replica = &cluster.replicas()[0];
    /// assert!(replica.sql_as("", "app", "old", "SELECT 1").is_err());
    /// assert_eq!(replica.sql_as("", "app", "new", "SELECT 1")?, "1");
    /// # Ok(()) }
    /// ```
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), Error> {
        self.sql(
            "",
            &format!(
                "ALTER USER {}@'%' IDENTIFIED BY {}",
                quote_string(name),
                quote_string(password)
            ),
        )?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }

    /// Waits until every answering (running, not paused) replica has applied everything the
    /// primary has logged so far: `MASTER_GTID_WAIT(<primary's @@gtid_binlog_pos>)` on each.
    /// Stopped, killed and paused replicas are skipped.
    pub fn wait_replicated(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let pos = self.primary().sql("", "SELECT @@gtid_binlog_pos")?;
        if pos.is_empty() {
            return Ok(());
        }
        for replica in self.replicas().iter().filter(|r| r.is_answering()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if !replica.gtid_wait(&pos, left)? {
                let at = replica
                    .sql("", "SELECT @@gtid_slave_pos")
                    .unwrap_or_default();
                return Err(Error::Timeout {
                    what: format!(
                        "{} to reach the primary's GTID position {pos} (it is at {at:?})",
                        replica.name()
                    ),
                    after: timeout,
                });
            }
        }
        Ok(())
    }
}

/// Waits until every answering replica replicates from `primary`: `SHOW SLAVE STATUS` says
/// `Master_Port` is the primary's, `Slave_IO_Running: Yes` (connected) and `Slave_SQL_Running:
/// Yes`.
fn wait_connected(
    primary: &MariaDbNode,
    replicas: &[MariaDbNode],
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let connected = |status: &SlaveStatus| {
        status_field(status, "Master_Port") == primary.port().to_string()
            && status_field(status, "Slave_IO_Running") == "Yes"
            && status_field(status, "Slave_SQL_Running") == "Yes"
    };
    for replica in replicas.iter().filter(|r| r.is_answering()) {
        loop {
            let status = replica.slave_status()?;
            if connected(&status) {
                break;
            }
            if Instant::now() >= deadline {
                let field = |column| status_field(&status, column);
                return Err(Error::Timeout {
                    what: format!(
                        "{} to replicate from {} on port {} (it replicates from port {:?}, \
                         I/O thread {:?}: {:?}, SQL thread {:?}: {:?})",
                        replica.name(),
                        primary.name(),
                        primary.port(),
                        field("Master_Port"),
                        field("Slave_IO_Running"),
                        field("Last_IO_Error"),
                        field("Slave_SQL_Running"),
                        field("Last_SQL_Error"),
                    ),
                    after: timeout,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Starts the installed node `name` on a free port, picking another when the port was taken
/// between choosing and binding it.
fn start_on_free_port(
    ctx: &Arc<Ctx>,
    name: &str,
    server_id: u32,
    role: Role,
) -> Result<MariaDbNode, Error> {
    let mut attempt = 1;
    loop {
        let node = MariaDbNode::new(Arc::clone(ctx), name, server_id, free_port()?, role);
        match node.start() {
            Err(err) if err.is_port_conflict() && attempt < 5 => attempt += 1,
            result => return result.map(|()| node),
        }
    }
}

/// `name` as a backquoted identifier.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as a single-quoted string literal.
pub(super) fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

impl fmt::Debug for MariaDbCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaDbCluster")
            .field("dir", &self.ctx.root)
            .field("server", &self.ctx.bin.server)
            .field("max_connections", &self.ctx.max_connections)
            .field("primary", self.primary())
            .field("replicas", &self.replicas())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod test {
    use super::{quote_ident, quote_string};

    #[test]
    fn names_and_strings_are_quoted() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_string("it's \\"), "'it''s \\\\'");
    }
}
