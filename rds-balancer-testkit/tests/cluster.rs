//! The test kit against real PostgreSQL servers. Fails (never skips) when PostgreSQL is missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{Error, PgCluster, PgNode, SERVER_PORT_SQL};

const WAIT: Duration = Duration::from_secs(30);

/// The cluster shared by the tests that leave it as they found it.
fn shared() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let started = Instant::now();
        let cluster =
            PgCluster::start(2).unwrap_or_else(|e| panic!("could not start the cluster: {e}"));
        eprintln!("PgCluster::start(2) took {:?}", started.elapsed());
        cluster
    })
}

fn start(replicas: usize) -> PgCluster {
    PgCluster::start(replicas).unwrap_or_else(|e| panic!("could not start the cluster: {e}"))
}

/// Every pid of `pid`'s process tree (from /proc).
fn tree(pid: u32) -> BTreeSet<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut found = BTreeSet::from([pid]);
    loop {
        let more: Vec<u32> = parents
            .iter()
            .filter(|(c, p)| found.contains(p) && !found.contains(c))
            .map(|(c, _)| *c)
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            != Some("Z")
    })
}

/// The postmaster pid of `node` and all its children.
fn server_pids(node: &PgNode) -> BTreeSet<u32> {
    let pid_file = fs::read_to_string(node.data_dir().join("postmaster.pid")).unwrap();
    tree(pid_file.lines().next().unwrap().trim().parse().unwrap())
}

/// Processes whose command line names a path in `dir`.
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = format!("{}/", dir.display());
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(&needle)
                .then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_node_answers_with_its_own_port_and_only_replicas_are_in_recovery() {
    let cluster = shared();
    assert_eq!(cluster.replicas().len(), 2);
    assert_eq!(cluster.nodes().count(), 3);
    let names: Vec<&str> = cluster.nodes().map(PgNode::name).collect();
    assert_eq!(names, ["primary", "replica-1", "replica-2"]);
    for node in cluster.nodes() {
        assert_eq!(
            node.psql("postgres", SERVER_PORT_SQL).unwrap(),
            node.port().to_string()
        );
        assert!(node.is_running());
        assert_eq!(
            node.url("app"),
            format!("postgres://postgres@127.0.0.1:{}/app", node.port())
        );
        assert_eq!(
            cluster.node_by_port(node.port()).map(PgNode::name),
            Some(node.name())
        );
    }
    assert_eq!(
        cluster
            .primary()
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f"
    );
    for replica in cluster.replicas() {
        assert_eq!(
            replica
                .psql("postgres", "SELECT pg_is_in_recovery()")
                .unwrap(),
            "t"
        );
        let status = replica
            .psql("postgres", "SELECT status FROM pg_stat_wal_receiver")
            .unwrap();
        assert_eq!(status, "streaming");
    }
    let streaming = cluster
        .psql(
            "postgres",
            "SELECT application_name FROM pg_stat_replication ORDER BY 1",
        )
        .unwrap();
    assert_eq!(streaming, "replica-1\nreplica-2");
}

#[test]
fn start_keeps_its_defaults_no_tls_and_200_connections() {
    let cluster = shared();
    assert!(cluster.ca_path().is_none());
    assert_eq!(cluster.max_connections(), 200);
    for node in cluster.nodes() {
        assert_eq!(node.psql("postgres", "SHOW ssl").unwrap(), "off");
        assert_eq!(
            node.psql("postgres", "SHOW max_connections").unwrap(),
            "200"
        );
    }
}

#[test]
fn a_table_written_on_the_primary_is_on_every_replica_after_wait_replicated() {
    let cluster = shared();
    cluster.create_database("replicated_table").unwrap();
    for replica in cluster.replicas() {
        assert_eq!(
            replica
                .psql("replicated_table", "SELECT current_database()")
                .unwrap(),
            "replicated_table"
        );
    }
    cluster
        .psql(
            "replicated_table",
            "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)",
        )
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    for replica in cluster.replicas() {
        assert_eq!(
            replica
                .psql("replicated_table", "SELECT count(*) FROM t")
                .unwrap(),
            "100"
        );
        let err = replica
            .psql("replicated_table", "INSERT INTO t VALUES (0)")
            .unwrap_err();
        assert!(err.to_string().contains("read-only transaction"), "{err}");
    }
}

#[test]
fn databases_created_in_parallel_are_all_on_every_replica() {
    let cluster = shared();
    thread::scope(|scope| {
        for i in 0..4 {
            scope.spawn(move || cluster.create_database(&format!("parallel_{i}")).unwrap());
        }
    });
    for replica in cluster.replicas() {
        let sql = "SELECT count(*) FROM pg_database WHERE datname LIKE 'parallel\\_%'";
        assert_eq!(replica.psql("postgres", sql).unwrap(), "4");
    }
}

#[test]
fn failing_sql_reports_psql_stderr() {
    let err = shared()
        .psql("postgres", "SELECT no_such_column FROM pg_class")
        .unwrap_err();
    assert!(matches!(err, Error::Command { .. }), "{err:?}");
    assert!(err.to_string().contains("no_such_column"), "{err}");
}

#[test]
fn a_stopped_or_killed_node_restarts_and_catches_up() {
    let cluster = start(1);
    let replica = &cluster.replicas()[0];
    cluster.psql("postgres", "CREATE TABLE t (id int)").unwrap();

    replica.stop().unwrap();
    assert!(!replica.is_running());
    assert!(replica.psql("postgres", "SELECT 1").is_err());
    cluster
        .psql("postgres", "INSERT INTO t VALUES (1)")
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap(); // skips the stopped replica
    replica.start().unwrap();
    assert!(replica.is_running());
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(
        replica.psql("postgres", "SELECT count(*) FROM t").unwrap(),
        "1"
    );

    // A crash of the primary: every server process dies at once; restart runs crash recovery.
    let primary = cluster.primary();
    let pids = server_pids(primary);
    primary.kill().unwrap();
    assert!(!primary.is_running());
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "processes of the killed primary remain"
    );
    primary.start().unwrap();
    cluster
        .psql("postgres", "INSERT INTO t VALUES (2)")
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(
        replica.psql("postgres", "SELECT count(*) FROM t").unwrap(),
        "2"
    );

    // A server that cannot start says why, with its log.
    replica.stop().unwrap();
    let conf = replica.data_dir().join("postgresql.auto.conf");
    let good = fs::read_to_string(&conf).unwrap();
    fs::write(&conf, format!("{good}shared_buffers = 'lots'\n")).unwrap();
    let err = replica.start().unwrap_err();
    assert!(!replica.is_running());
    let msg = err.to_string();
    assert!(matches!(err, Error::ServerStart { .. }), "{err:?}");
    assert!(
        msg.contains("replica-1") && msg.contains("shared_buffers"),
        "{msg}"
    );
    fs::write(&conf, good).unwrap();
    replica.start().unwrap();
    cluster.wait_replicated(WAIT).unwrap();
}

#[test]
fn a_paused_node_answers_nothing_until_resumed() {
    let cluster = start(1);
    let replica = &cluster.replicas()[0];
    replica.pause().unwrap();
    assert!(replica.is_paused() && replica.is_running());
    let started = Instant::now();
    let err = replica
        .psql_with_timeout("postgres", "SELECT 1", Duration::from_secs(2))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    // The primary is unaffected, and replication waits skip the paused replica.
    cluster
        .psql(
            "postgres",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
        )
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();

    replica.resume().unwrap();
    assert!(!replica.is_paused());
    assert_eq!(
        replica.psql("postgres", SERVER_PORT_SQL).unwrap(),
        replica.port().to_string()
    );
    cluster.wait_replicated(WAIT).unwrap();
    assert_eq!(
        replica.psql("postgres", "SELECT count(*) FROM t").unwrap(),
        "1"
    );

    // Stopping a paused node works too.
    replica.pause().unwrap();
    replica.stop().unwrap();
    assert!(!replica.is_running());
    assert!(matches!(replica.pause(), Err(Error::NotRunning { .. })));
    replica.start().unwrap();
    assert_eq!(
        replica
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "t"
    );
}

#[test]
fn a_promoted_replica_takes_writes_and_the_other_replica_follows_it() {
    let cluster = start(2);
    let old_primary_port = cluster.primary().port();
    cluster
        .psql(
            "postgres",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
        )
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    cluster.primary().kill().unwrap();

    assert!(matches!(
        cluster.promote(2),
        Err(Error::NoSuchReplica { index: 2, count: 2 })
    ));
    cluster.promote(0).unwrap();
    let primary = cluster.primary();
    assert_eq!(primary.name(), "replica-1");
    assert_eq!(
        primary
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f"
    );
    let names: Vec<&str> = cluster.replicas().iter().map(PgNode::name).collect();
    assert_eq!(names, ["replica-2"]);
    assert_eq!(cluster.nodes().count(), 3);
    assert!(
        cluster
            .node_by_port(old_primary_port)
            .is_some_and(|n| !n.is_running())
    );

    cluster
        .psql("postgres", "INSERT INTO t VALUES (2)")
        .unwrap();
    cluster.wait_replicated(WAIT).unwrap();
    let follower = &cluster.replicas()[0];
    assert_eq!(
        follower.psql("postgres", "SELECT count(*) FROM t").unwrap(),
        "2"
    );
    assert_eq!(
        follower
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "t"
    );
    let upstream = follower
        .psql("postgres", "SELECT sender_port FROM pg_stat_wal_receiver")
        .unwrap();
    assert_eq!(upstream, primary.port().to_string());
}

#[test]
fn dropping_the_cluster_stops_every_server_and_removes_its_directory() {
    let cluster = start(1);
    let dir = cluster.dir().to_path_buf();
    let pids: BTreeSet<u32> = cluster.nodes().flat_map(server_pids).collect();
    assert!(pids.len() >= 10, "{pids:?}");
    cluster.replicas()[0].pause().unwrap();
    drop(cluster);
    assert!(!dir.exists(), "{} remains", dir.display());
    let left: Vec<u32> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
fn a_killed_test_process_leaves_no_server_behind() {
    // A separate process (src/bin/testkit-orphan-helper.rs) holds a cluster in a `static`.
    let mut helper = Command::new(env!("CARGO_BIN_EXE_testkit-orphan-helper"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    let dir = loop {
        let line = lines
            .next()
            .expect("the helper ended before reporting its cluster")
            .unwrap();
        if let Some(dir) = line.strip_prefix("DIR ") {
            break Path::new(dir).to_path_buf();
        }
    };
    let pids = tree(helper.id());
    assert!(
        pids.len() >= 12,
        "expected the helper's servers and supervisor: {pids:?}"
    );
    assert!(!processes_naming(&dir).is_empty());

    helper.kill().unwrap(); // SIGKILL: no destructor runs
    helper.wait().unwrap();
    wait_until("the helper's servers are gone", || {
        pids.iter().all(|&p| !alive(p))
    });
    wait_until("the helper's cluster directory is removed", || {
        !dir.exists()
    });
    assert_eq!(processes_naming(&dir), Vec::<String>::new());
}
