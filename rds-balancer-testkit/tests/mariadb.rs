//! The test kit's MariaDB cluster against real servers. Fails (never skips) when MariaDB is
//! missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{Error, MariaDbCluster, MariaDbNode};

const WAIT: Duration = Duration::from_secs(30);

/// The cluster shared by the tests that leave it as they found it (a database each).
fn shared() -> &'static MariaDbCluster {
    static CLUSTER: OnceLock<MariaDbCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let started = Instant::now();
        let cluster = start(1);
        eprintln!("MariaDbCluster::start(1) took {:?}", started.elapsed());
        cluster
    })
}

fn start(replicas: usize) -> MariaDbCluster {
    MariaDbCluster::start(replicas)
        .unwrap_or_else(|e| panic!("could not start the MariaDB cluster: {e}"))
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .get(stat.rfind(')')? + 1..)?
                .split_whitespace()
                .next()?;
            Some(state != "Z")
        })
        .unwrap_or(false)
}

fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|&p| alive(p)) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn count(node: &MariaDbNode, db: &str, table: &str) -> String {
    node.sql(db, &format!("SELECT count(*) FROM {table}"))
        .unwrap()
}

#[test]
fn database_created_on_the_primary_appears_on_the_replica() {
    let cluster = shared();
    cluster.create_database("created_on_primary").unwrap();
    let sql = "SELECT schema_name FROM information_schema.schemata \
               WHERE schema_name = 'created_on_primary'";
    for replica in cluster.replicas() {
        assert_eq!(replica.sql("", sql).unwrap(), "created_on_primary");
    }
}

#[test]
fn row_written_on_the_primary_is_read_on_the_replica() {
    let cluster = shared();
    cluster.create_database("row_replicates").unwrap();
    cluster
        .sql(
            "row_replicates",
            "CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'from primary')",
        )
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    for replica in cluster.replicas() {
        assert_eq!(
            replica
                .sql("row_replicates", "SELECT v FROM t WHERE id = 1")
                .unwrap(),
            "from primary"
        );
    }
}

#[test]
fn port_tells_the_nodes_apart() {
    let cluster = shared();
    let mut ports = Vec::new();
    for node in cluster.nodes() {
        let answer = node.sql("", "SELECT @@port").unwrap();
        assert_eq!(answer, node.port().to_string(), "{}", node.name());
        let port: u16 = answer.parse().unwrap();
        assert_eq!(cluster.node_by_port(port).unwrap().name(), node.name());
        let id = node.sql("", "SELECT @@server_id").unwrap();
        assert_eq!(id, node.server_id().to_string());
        ports.push(port);
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 1 + cluster.replicas().len());
    assert_eq!(cluster.primary().name(), "primary");
    assert_eq!(cluster.replicas()[0].name(), "replica-1");
    let url = cluster.primary().url("app");
    assert_eq!(
        url,
        format!("mysql://root@127.0.0.1:{}/app", cluster.primary().port())
    );
}

#[test]
fn replica_is_read_only_and_refuses_writes_from_a_user_without_super() {
    let cluster = shared();
    cluster.create_database("read_only_replica").unwrap();
    cluster.create_user("ro_app", "pw'1").unwrap();
    cluster
        .sql("read_only_replica", "CREATE TABLE t (id int primary key)")
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    // Asked alone, in a statement of its own.
    assert_eq!(
        cluster.primary().sql("", "SELECT @@read_only").unwrap(),
        "0"
    );
    let replica = &cluster.replicas()[0];
    assert_eq!(replica.sql("", "SELECT @@read_only").unwrap(), "1");
    let db = "read_only_replica";
    cluster
        .primary()
        .sql_as(db, "ro_app", "pw'1", "INSERT INTO t VALUES (1)")
        .unwrap();
    match replica.sql_as(db, "ro_app", "pw'1", "INSERT INTO t VALUES (2)") {
        Err(Error::Command { stderr, .. }) => assert!(stderr.contains("read-only"), "{stderr}"),
        other => panic!("the replica accepted a write from a non-SUPER user: {other:?}"),
    }
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(
        replica
            .sql_as(db, "ro_app", "pw'1", "SELECT id FROM t")
            .unwrap(),
        "1"
    );
    match replica.sql_as(db, "ro_app", "wrong", "SELECT 1") {
        Err(Error::Command { stderr, .. }) => assert!(stderr.contains("Access denied"), "{stderr}"),
        other => panic!("a wrong password was accepted: {other:?}"),
    }
}

#[test]
fn killed_stopped_and_paused_replicas_come_back_and_catch_up() {
    let cluster = start(1);
    let replica = &cluster.replicas()[0];
    cluster.create_database("faults").unwrap();
    cluster
        .sql("faults", "CREATE TABLE t (id int primary key)")
        .unwrap();

    // Crash: the process is gone at once; writes meanwhile arrive after the restart.
    let pid = replica.pid().unwrap();
    replica.kill().unwrap();
    assert!(!replica.is_running() && !alive(pid));
    assert!(
        replica
            .sql_with_timeout("", "SELECT 1", Duration::from_secs(2))
            .is_err()
    );
    cluster.sql("faults", "INSERT INTO t VALUES (1)").unwrap();
    cluster.wait_replicated(WAIT).unwrap(); // skips the dead replica
    replica.start().unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(count(replica, "faults", "t"), "1");

    // Clean stop.
    let pid = replica.pid().unwrap();
    replica.stop().unwrap();
    assert!(!replica.is_running() && !alive(pid));
    cluster.sql("faults", "INSERT INTO t VALUES (2)").unwrap();
    replica.start().unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(count(replica, "faults", "t"), "2");
    assert_eq!(replica.sql("", "SELECT @@read_only").unwrap(), "1");

    // Pause: connections hang until the client's deadline.
    replica.pause().unwrap();
    assert!(replica.is_paused());
    let started = Instant::now();
    match replica.sql_with_timeout("", "SELECT 1", Duration::from_secs(2)) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("a paused server answered: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    cluster.sql("faults", "INSERT INTO t VALUES (3)").unwrap();
    replica.resume().unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(count(replica, "faults", "t"), "3");

    // The primary crashes and comes back; the replica reconnects by itself.
    cluster.primary().kill().unwrap();
    cluster.primary().start().unwrap();
    cluster.sql("faults", "INSERT INTO t VALUES (4)").unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(count(replica, "faults", "t"), "4");
}

#[test]
fn drop_leaves_no_server_and_no_directory() {
    let cluster = start(1);
    // A paused node must go too.
    cluster.replicas()[0].pause().unwrap();
    let pids: Vec<u32> = cluster.nodes().map(|n| n.pid().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    let dir = cluster.dir().to_path_buf();
    assert!(dir.is_dir());
    drop(cluster);
    assert!(
        wait_gone(&pids, Duration::from_secs(5)),
        "servers left running"
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// Set in the copy of this test binary that `killed_test_process_leaves_no_server` starts.
const ORPHAN_CHILD: &str = "RDS_BALANCER_TESTKIT_MARIADB_ORPHAN_CHILD";

#[test]
fn killed_test_process_leaves_no_server() {
    if std::env::var_os(ORPHAN_CHILD).is_some() {
        // The child: start a cluster, say where it is, and wait to be killed.
        let cluster = start(1);
        let pids: Vec<String> = cluster
            .nodes()
            .map(|n| n.pid().unwrap().to_string())
            .collect();
        println!("CLUSTER {} {}", cluster.dir().display(), pids.join(" "));
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_test_process_leaves_no_server",
            "--nocapture",
        ])
        .env(ORPHAN_CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("CLUSTER "));
    let Some(line) = line else {
        let _ = child.kill();
        let status = child.wait().unwrap();
        panic!("the child test process did not start a cluster ({status})");
    };
    let mut words = line.split_whitespace().skip(1);
    let dir = PathBuf::from(words.next().unwrap());
    let pids: Vec<u32> = words.map(|w| w.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(
        wait_gone(&pids, Duration::from_secs(30)),
        "servers outlived the killed test process"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// Names of `nodes`, in order.
fn names(nodes: &[MariaDbNode]) -> Vec<&str> {
    nodes.iter().map(MariaDbNode::name).collect()
}

/// Asserts that `node` refuses a write from `user` because it is read-only.
fn refuses_write(node: &MariaDbNode, db: &str, user: &str, password: &str, sql: &str) {
    match node.sql_as(db, user, password, sql) {
        Err(Error::Command { stderr, .. }) => assert!(stderr.contains("read-only"), "{stderr}"),
        other => panic!("{} accepted a write from {user}: {other:?}", node.name()),
    }
}

#[test]
fn failover_promotes_a_writable_replica_that_the_others_follow() {
    let cluster = start(3);
    let db = "failover";
    cluster.create_database(db).unwrap();
    cluster.create_user("app", "pw").unwrap();
    cluster
        .sql(
            db,
            "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)",
        )
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    match cluster.promote(3) {
        Err(Error::NoSuchReplica { index: 3, count: 3 }) => {}
        other => panic!("promote(3) of 3 replicas: {other:?}"),
    }
    let old_port = cluster.primary().port();
    let [r1, r2, r3] = [0, 1, 2].map(|i| cluster.replicas()[i].port());

    // replica-3 is down during the failover: it is re-pointed when it starts.
    cluster.replicas()[2].stop().unwrap();
    cluster.primary().kill().unwrap();
    cluster.promote(0).unwrap();

    let primary = cluster.primary();
    assert_eq!((primary.name(), primary.port()), ("replica-1", r1));
    assert!(!primary.is_replica());
    assert_eq!(names(cluster.replicas()), ["replica-2", "replica-3"]);
    assert!(cluster.replicas().iter().all(MariaDbNode::is_replica));
    assert!(cluster.replicas().iter().all(|r| r.port() != old_port));
    assert_eq!(cluster.nodes().count(), 4);
    assert_eq!(cluster.node_by_port(old_port).unwrap().name(), "primary");
    assert_eq!(primary.sql("", "SELECT @@read_only").unwrap(), "0");
    // A user without SUPER writes on the new primary; replica-2 still refuses it.
    primary
        .sql_as(db, "app", "pw", "INSERT INTO t VALUES (2)")
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    let replica2 = cluster.node_by_port(r2).unwrap();
    assert_eq!(count(replica2, db, "t"), "2");
    assert_eq!(replica2.sql("", "SELECT @@read_only").unwrap(), "1");
    refuses_write(replica2, db, "app", "pw", "INSERT INTO t VALUES (99)");

    // replica-3, re-pointed while stopped, follows the new primary once started.
    let replica3 = cluster.node_by_port(r3).unwrap();
    replica3.start().unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(count(replica3, db, "t"), "2");
    assert_eq!(replica3.sql("", "SELECT @@read_only").unwrap(), "1");
    refuses_write(replica3, db, "app", "pw", "INSERT INTO t VALUES (99)");

    // The promoted node restarted stays writable, and the replicas reconnect to it.
    primary.stop().unwrap();
    primary.start().unwrap();
    assert_eq!(primary.sql("", "SELECT @@read_only").unwrap(), "0");
    primary
        .sql_as(db, "app", "pw", "INSERT INTO t VALUES (3)")
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(count(replica2, db, "t"), "3");
    assert_eq!(count(replica3, db, "t"), "3");

    // A second failover, with replica-3 paused: it follows once resumed.
    replica3.pause().unwrap();
    primary.kill().unwrap();
    cluster.promote(0).unwrap();
    assert_eq!(cluster.primary().name(), "replica-2");
    assert_eq!(names(cluster.replicas()), ["replica-3"]);
    replica3.resume().unwrap();
    cluster
        .primary()
        .sql_as(db, "app", "pw", "INSERT INTO t VALUES (4)")
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(count(replica3, db, "t"), "4");
    refuses_write(replica3, db, "app", "pw", "INSERT INTO t VALUES (99)");
    // A killed former primary comes back as it was: writable, replicating from no one, in
    // neither list.
    let first = cluster.node_by_port(old_port).unwrap();
    first.start().unwrap();
    assert!(!first.is_replica());
    assert_eq!(first.sql("", "SELECT @@read_only").unwrap(), "0");
    assert_eq!(first.sql("", "SHOW SLAVE STATUS").unwrap(), "");
    assert_eq!(cluster.primary().name(), "replica-2");
    assert!(cluster.replicas().iter().all(|r| r.port() != old_port));
}

#[test]
fn promoting_a_stopped_replica_fails_and_changes_nothing() {
    let cluster = start(1);
    let replica = &cluster.replicas()[0];
    replica.stop().unwrap();
    match cluster.promote(0) {
        Err(Error::NotRunning { node }) => assert_eq!(node, "replica-1"),
        other => panic!("a stopped replica was promoted: {other:?}"),
    }
    assert_eq!(cluster.primary().name(), "primary");
    assert_eq!(names(cluster.replicas()), ["replica-1"]);
    replica.start().unwrap();
    assert!(replica.is_replica());
    assert_eq!(replica.sql("", "SELECT @@read_only").unwrap(), "1");
    cluster.create_database("after_refused_promotion").unwrap();
    let sql = "SELECT schema_name FROM information_schema.schemata \
               WHERE schema_name = 'after_refused_promotion'";
    assert_eq!(replica.sql("", sql).unwrap(), "after_refused_promotion");
}

#[test]
fn set_password_refuses_the_old_password_on_every_node() {
    let cluster = shared();
    cluster.create_user("rotated", "old'pw").unwrap();
    for node in cluster.nodes() {
        assert_eq!(
            node.sql_as("", "rotated", "old'pw", "SELECT CURRENT_USER()")
                .unwrap(),
            "rotated@%"
        );
    }
    cluster.set_password("rotated", "new\\pw").unwrap();
    for node in cluster.nodes() {
        match node.sql_as("", "rotated", "old'pw", "SELECT 1") {
            Err(Error::Command { stderr, .. }) => {
                assert!(stderr.contains("Access denied"), "{stderr}")
            }
            other => panic!("{} accepted the old password: {other:?}", node.name()),
        }
        assert_eq!(
            node.sql_as("", "rotated", "new\\pw", "SELECT CURRENT_USER()")
                .unwrap(),
            "rotated@%",
            "{}",
            node.name()
        );
    }
}

#[test]
fn builder_sets_max_connections_on_every_node() {
    let cluster = MariaDbCluster::builder()
        .replicas(1)
        .max_connections(20)
        .start()
        .unwrap_or_else(|e| panic!("could not start the MariaDB cluster: {e}"));
    assert_eq!(cluster.max_connections(), 20);
    assert_eq!(names(cluster.replicas()), ["replica-1"]);
    for node in cluster.nodes() {
        assert_eq!(node.sql("", "SELECT @@max_connections").unwrap(), "20");
    }
    cluster.create_database("limited").unwrap();
    let shared = shared();
    assert_eq!(shared.max_connections(), 200);
    for node in shared.nodes() {
        assert_eq!(node.sql("", "SELECT @@max_connections").unwrap(), "200");
    }
}
