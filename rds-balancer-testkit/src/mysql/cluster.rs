//! A MariaDB primary with binary-log replicas in a temporary directory.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Ctx, MariaDbBin, MariaDbNode};
use crate::error::Error;
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
/// user of its own with [`create_user`](Self::create_user). Every server runs as the `mysql` OS
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
    primary: MariaDbNode,
    replicas: Box<[MariaDbNode]>,
    teardown: Teardown,
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
    pub fn start(replicas: usize) -> Result<MariaDbCluster, Error> {
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
                        let name = match i {
                            0 => "primary".to_owned(),
                            i => format!("replica-{i}"),
                        };
                        let server_id = u32::try_from(i + 1).unwrap_or(u32::MAX);
                        MariaDbNode::new(Arc::clone(ctx), &name, server_id, 0).install()?;
                        start_on_free_port(ctx, &name, server_id)
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
            replica.sql(
                "",
                &format!(
                    "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
                     MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, \
                     MASTER_CONNECT_RETRY=1; START SLAVE",
                    primary.port()
                ),
            )?;
        }
        let cluster = MariaDbCluster {
            ctx,
            primary,
            replicas: nodes.into(),
            teardown,
        };
        cluster.wait_connected(REPLICATION_TIMEOUT)?;
        cluster.wait_replicated(REPLICATION_TIMEOUT)?;
        Ok(cluster)
    }

    /// Waits until every replica's I/O thread is connected to the primary and its SQL thread
    /// runs (status `Slave_running = ON`).
    fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let sql = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                   WHERE VARIABLE_NAME = 'SLAVE_RUNNING'";
        for replica in self.replicas() {
            loop {
                if replica.sql("", sql)? == "ON" {
                    break;
                }
                if Instant::now() >= deadline {
                    let status = replica.sql("", "SHOW SLAVE STATUS").unwrap_or_default();
                    return Err(Error::Timeout {
                        what: format!(
                            "{} to connect to the primary (SHOW SLAVE STATUS: {status})",
                            replica.name()
                        ),
                        after: timeout,
                    });
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The primary.
    pub fn primary(&self) -> &MariaDbNode {
        &self.primary
    }

    /// The replicas, in creation order: `replica-1`, `replica-2`, ...
    pub fn replicas(&self) -> &[MariaDbNode] {
        &self.replicas
    }

    /// Every node, in creation order: `primary`, `replica-1`, ...
    pub fn nodes(&self) -> impl Iterator<Item = &MariaDbNode> {
        self.teardown.nodes.iter()
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
        self.primary.sql(db, sql)
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

    /// Waits until every answering (running, not paused) replica has applied everything the
    /// primary has logged so far: `MASTER_GTID_WAIT(<primary's @@gtid_binlog_pos>)` on each.
    /// Stopped, killed and paused replicas are skipped.
    pub fn wait_replicated(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let pos = self.primary.sql("", "SELECT @@gtid_binlog_pos")?;
        if pos.is_empty() {
            return Ok(());
        }
        for replica in self.replicas().iter().filter(|r| r.is_answering()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let waited = replica.sql_with_timeout(
                "",
                &format!(
                    "SELECT MASTER_GTID_WAIT({}, {})",
                    quote_string(&pos),
                    left.as_secs_f64()
                ),
                left + Duration::from_secs(10),
            )?;
            if waited != "0" {
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

/// Starts the installed node `name` on a free port, picking another when the port was taken
/// between choosing and binding it.
fn start_on_free_port(ctx: &Arc<Ctx>, name: &str, server_id: u32) -> Result<MariaDbNode, Error> {
    let mut attempt = 1;
    loop {
        let node = MariaDbNode::new(Arc::clone(ctx), name, server_id, free_port()?);
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
fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

impl fmt::Debug for MariaDbCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaDbCluster")
            .field("dir", &self.ctx.root)
            .field("server", &self.ctx.bin.server)
            .field("primary", &self.primary)
            .field("replicas", &self.replicas)
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
