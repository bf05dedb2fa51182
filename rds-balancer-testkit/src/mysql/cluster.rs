//! A MariaDB primary with binary-log replicas in a temporary directory.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::node::{Role, quote_ident};
use super::options::MariaDbClusterBuilder;
use super::replication::wait_connected;
use super::{Ctx, MariaDbBin, MariaDbNode};
use crate::error::Error;
use crate::history::History;
use crate::net::free_port;
use crate::process::RunAs;
use crate::supervisor::Supervisor;

/// How long the set-up steps that wait on replication may take.
pub(super) const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

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
    pub(super) layout: History<Layout>,
    teardown: Teardown,
}

/// Who is primary and who replicates from it.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) primary: MariaDbNode,
    pub(super) replicas: Box<[MariaDbNode]>,
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
