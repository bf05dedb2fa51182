//! A PostgreSQL primary with streaming replicas in a temporary directory.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::bin::PgBin;
use super::options::PgClusterBuilder;
use super::tls::Tls;
use super::{Ctx, PgNode, setup};
use crate::error::Error;
use crate::history::History;
use crate::net::free_port;
use crate::process::RunAs;
use crate::supervisor::Supervisor;

/// How long the set-up steps that wait on replication may take.
pub(super) const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

/// A real PostgreSQL primary with N streaming replicas, each on its own loopback port, in a
/// temporary directory. See the [crate docs](crate) for an example.
///
/// Every server runs as the `postgres` OS user when the test process is root (as in CI), else
/// as the current user. Dropping the cluster stops every server (fast shutdown) and removes the
/// directory; if the process dies without dropping it (a `static`, `process::exit`, an abort, a
/// `SIGKILL`), a supervisor process does the same.
pub struct PgCluster {
    pub(super) ctx: Arc<Ctx>,
    /// Who is primary and who replicates from it; each promotion uses up a replica.
    pub(super) layout: History<Layout>,
    /// What it was started with.
    options: PgClusterBuilder,
    /// Its CA and server certificate, when it serves TLS.
    tls: Option<Tls>,
    teardown: Teardown,
}

/// Who is primary and who replicates from it.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) primary: PgNode,
    pub(super) replicas: Box<[PgNode]>,
}

/// Stops the nodes (fast shutdown), then ends the supervisor (which removes the directory),
/// then removes whatever is left of the directory. Also the clean-up of a failed `start`.
struct Teardown {
    nodes: Vec<PgNode>,
    supervisor: Option<Supervisor>,
    dir: Option<TempDir>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        PgNode::stop_all(&self.nodes);
        drop(self.supervisor.take());
        drop(self.dir.take());
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<PgCluster>();
    assert_send_sync::<PgNode>();
};

impl PgCluster {
    /// Starts a primary and `replicas` streaming replicas and returns once every replica is
    /// streaming from the primary and in recovery.
    ///
    /// Fails with [`Error::PostgresNotInstalled`] (whose message holds the install command) when
    /// the PostgreSQL server binaries are missing.
    ///
    /// The same as `PgCluster::builder().replicas(replicas).start()`: no TLS, `max_connections`
    /// 200; [`builder`](Self::builder) sets those.
    pub fn start(replicas: usize) -> Result<PgCluster, Error> {
        PgCluster::builder().replicas(replicas).start()
    }

    /// Options for starting a cluster with TLS or another `max_connections`; see
    /// [`PgClusterBuilder`].
    ///
    /// ```no_run
    /// use rds_balancer_testkit::PgCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::builder()
    ///     .replicas(1)
    ///     .tls(true)
    ///     .max_connections(20)
    ///     .start()?;
    /// assert_eq!(cluster.replicas()[0].psql("postgres", "SHOW ssl")?, "on");
    /// # Ok(()) }
    /// ```
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder::default()
    }

    pub(super) fn start_with(options: PgClusterBuilder) -> Result<PgCluster, Error> {
        let replicas = options.replicas;
        let bin = PgBin::find()?;
        let run_as = RunAs::server_user("postgres")?;
        let dir = tempfile::Builder::new()
            .prefix("rds-balancer-pg-")
            .tempdir()
            .map_err(|e| Error::io("could not create a temporary directory", e))?;
        run_as.chown(dir.path())?;
        let supervisor = Supervisor::spawn(dir.path(), &run_as, "INT")?;
        let ctx = Arc::new(Ctx {
            bin,
            run_as,
            root: dir.path().to_path_buf(),
        });
        let mut teardown = Teardown {
            nodes: Vec::new(),
            supervisor: Some(supervisor),
            dir: Some(dir),
        };

        let tls = if options.serves_tls() {
            Some(Tls::generate(&ctx.run_as, &ctx.root.join("tls"))?)
        } else {
            None
        };
        let settings = setup::settings(&options, tls.as_ref());
        PgNode::new(Arc::clone(&ctx), "primary", 0)
            .init_primary(&settings, &setup::hba(&options))?;
        let primary = start_on_free_port(&ctx, "primary")?;
        teardown.nodes.push(primary.handle());

        let results: Vec<Result<PgNode, Error>> = thread::scope(|scope| {
            let workers: Vec<_> = (1..=replicas)
                .map(|i| {
                    let (ctx, primary) = (&ctx, &primary);
                    scope.spawn(move || {
                        let name = format!("replica-{i}");
                        PgNode::new(Arc::clone(ctx), &name, 0).base_backup(primary)?;
                        start_on_free_port(ctx, &name)
                    })
                })
                .collect();
            let panicked = || {
                Error::io(
                    "a replica set-up thread panicked",
                    std::io::Error::other("panic"),
                )
            };
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err(panicked())))
                .collect()
        });
        let mut replica_nodes = Vec::with_capacity(replicas);
        for result in results {
            let node = result?;
            teardown.nodes.push(node.handle());
            replica_nodes.push(node);
        }
        super::replication::wait_streaming(&primary, &replica_nodes, REPLICATION_TIMEOUT)?;
        Ok(PgCluster {
            ctx,
            layout: History::new(
                Layout {
                    primary,
                    replicas: replica_nodes.into(),
                },
                replicas,
            ),
            options,
            tls,
            teardown,
        })
    }

    pub(super) fn layout(&self) -> &Layout {
        self.layout.current()
    }

    /// The current primary (after [`promote`](Self::promote), the promoted node).
    pub fn primary(&self) -> &PgNode {
        &self.layout().primary
    }

    /// The current replicas, in creation order. A promoted replica leaves this list, and so
    /// does the primary it replaced.
    pub fn replicas(&self) -> &[PgNode] {
        &self.layout().replicas
    }

    /// Every node ever started in this cluster (a replaced primary included), in creation order:
    /// `primary`, `replica-1`, ...
    pub fn nodes(&self) -> impl Iterator<Item = &PgNode> {
        self.teardown.nodes.iter()
    }

    /// The node listening on `port`, e.g. the answer to [`SERVER_PORT_SQL`](crate::SERVER_PORT_SQL).
    pub fn node_by_port(&self, port: u16) -> Option<&PgNode> {
        self.nodes().find(|node| node.port() == port)
    }

    /// The cluster's temporary directory (one sub-directory per node).
    pub fn dir(&self) -> &Path {
        &self.ctx.root
    }

    /// The CA certificate (PEM) that signed the servers' certificate, for clients to verify
    /// it with (`sslrootcert=<path>`, `sslmode=verify-full`); `None` when the cluster was not
    /// started with [`tls`](PgClusterBuilder::tls) (or
    /// [`require_tls`](PgClusterBuilder::require_tls)). The file is in the cluster's directory
    /// and goes with it.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::PgCluster;
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::builder().replicas(1).tls(true).start()?;
    /// let ca = cluster.ca_path().expect("started with tls(true)");
    /// for node in cluster.nodes() {
    ///     let url = format!(
    ///         "{}?sslmode=verify-full&sslrootcert={}",
    ///         node.url("postgres"),
    ///         ca.display()
    ///     );
    ///     let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    ///     assert_eq!(cluster.psql_conninfo(&url, sql, Duration::from_secs(10))?, "t");
    /// }
    /// assert!(PgCluster::start(0)?.ca_path().is_none());
    /// # Ok(()) }
    /// ```
    pub fn ca_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.ca.as_path())
    }

    /// The servers' `max_connections` ([`PgClusterBuilder::max_connections`]; 200 unless set).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = rds_balancer_testkit::PgCluster::start(0)?;
    /// assert_eq!(cluster.max_connections(), 200);
    /// # Ok(()) }
    /// ```
    pub fn max_connections(&self) -> u32 {
        self.options.max_connections
    }

    /// Creates database `name` on the primary and waits until every answering replica has it.
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        self.psql("postgres", &format!("CREATE DATABASE {quoted}"))?;
        self.wait_replicated(REPLICATION_TIMEOUT)
    }

    /// Runs admin SQL on the primary in database `db`; see [`PgNode::psql`].
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        self.primary().psql(db, sql)
    }

    /// Runs `sql` like [`PgNode::psql_with_timeout`], with this cluster's `psql`, on whatever
    /// listens on `127.0.0.1:port`: a [`FaultProxy`](crate::FaultProxy) in front of a node, say.
    /// Connecting gives up after `timeout` (at least 2 s, at most 10 s: libpq's
    /// `connect_timeout`), and psql is killed after `timeout` ([`Error::Timeout`]).
    pub fn psql_at(
        &self,
        port: u16,
        db: &str,
        sql: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        super::node::run_psql(&self.ctx, "127.0.0.1", port, db, sql, timeout)
    }

    /// Runs `sql` like [`PgNode::psql`], with this cluster's `psql`, connecting with the libpq
    /// connection string `conninfo`: keyword/value (`host=127.0.0.1 port=5432 user=app
    /// password=... dbname=app sslmode=verify-full sslrootcert=/path/ca.crt`) or a URI
    /// (`postgres://app:pw@127.0.0.1:5432/app?sslmode=require`, see [`PgNode::url_as`]). Nothing
    /// is added to it (no user, no host): it says exactly how to connect, as a client would.
    /// psql never prompts for a password: a missing or wrong one is an [`Error::Command`] whose
    /// `stderr` holds the server's refusal (`password authentication failed for user "app"`).
    /// Connecting gives up after `timeout` (at least 2 s, at most 10 s, unless `conninfo` has a
    /// `connect_timeout`), and psql is killed after `timeout` ([`Error::Timeout`]). Error
    /// messages show `conninfo` with its password masked.
    ///
    /// When the test process is root, psql runs as the `postgres` OS user: files named in
    /// `conninfo` (`sslrootcert`) must be readable by it, as [`ca_path`](Self::ca_path) is.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use rds_balancer_testkit::{Error, PgCluster};
    ///
    /// # fn main() -> Result<(), rds_balancer_testkit::Error> {
    /// let cluster = PgCluster::start(0)?;
    /// cluster.create_role("app", "right")?;
    /// let port = cluster.primary().port();
    /// let timeout = Duration::from_secs(10);
    /// let wrong = format!("host=127.0.0.1 port={port} dbname=postgres user=app password=wrong");
    /// match cluster.psql_conninfo(&wrong, "SELECT 1", timeout) {
    ///     Err(Error::Command { stderr, .. }) => {
    ///         assert!(stderr.contains("password authentication failed"))
    ///     }
    ///     other => panic!("a wrong password was not refused: {other:?}"),
    /// }
    /// let right = format!("host=127.0.0.1 port={port} dbname=postgres user=app password=right");
    /// assert_eq!(cluster.psql_conninfo(&right, "SELECT current_user", timeout)?, "app");
    /// # Ok(()) }
    /// ```
    pub fn psql_conninfo(
        &self,
        conninfo: &str,
        sql: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        super::node::run_psql_conninfo(&self.ctx, conninfo, sql, timeout)
    }
}

/// Starts the prepared node `name` on a free port, picking another when the port was taken
/// between choosing and binding it.
fn start_on_free_port(ctx: &Arc<Ctx>, name: &str) -> Result<PgNode, Error> {
    let mut attempt = 1;
    loop {
        let node = PgNode::new(Arc::clone(ctx), name, free_port()?);
        match node.start() {
            Err(err) if err.is_port_conflict() && attempt < 5 => attempt += 1,
            result => return result.map(|()| node),
        }
    }
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.ctx.root)
            .field("bin", &self.ctx.bin.dir())
            .field("version", &self.ctx.bin.major())
            .field("options", &self.options)
            .field("primary", self.primary())
            .field("replicas", &self.replicas())
            .finish_non_exhaustive()
    }
}
