//! The moto RDS emulator against real PostgreSQL and MariaDB clusters. Fails (never skips) when
//! python3, moto, PostgreSQL or MariaDB is missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{
    Error, MariaDbCluster, PgCluster, RdsEmulator, SERVER_PORT_SQL, resolve_to_loopback,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// The emulator shared by the tests; each uses its own cluster ids.
fn rds() -> &'static RdsEmulator {
    static RDS: OnceLock<RdsEmulator> = OnceLock::new();
    RDS.get_or_init(|| {
        let started = Instant::now();
        let rds = RdsEmulator::start().unwrap_or_else(|e| panic!("could not start moto: {e}"));
        eprintln!("RdsEmulator::start() took {:?}", started.elapsed());
        rds
    })
}

fn pg() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::start(2).unwrap_or_else(|e| panic!("could not start the cluster: {e}"))
    })
}

/// A cluster `id` with instances `<id>-1`, `<id>-2`, `<id>-3` on made-up ports 7001...
fn three_instances(id: &str) -> [String; 3] {
    let rds = rds();
    rds.create_cluster(id, "aurora-mysql").unwrap();
    let ids = [1, 2, 3].map(|i| format!("{id}-{i}"));
    for (port, instance) in (7001..).zip(&ids) {
        rds.add_instance(id, instance, port, None).unwrap();
    }
    ids
}

fn status(cluster: &str, instance: &str) -> String {
    let view = rds().describe(cluster).unwrap();
    view.member(instance).unwrap().status.clone()
}

fn writer(cluster: &str) -> String {
    rds()
        .describe(cluster)
        .unwrap()
        .writer()
        .unwrap()
        .id
        .clone()
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            != Some("Z")
    })
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn described_pg_cluster_has_the_primary_as_writer_and_replicas_with_their_ports() {
    let (rds, pg) = (rds(), pg());
    let ids = rds.describe_pg_cluster("pg-app", pg).unwrap();
    assert_eq!(
        ids,
        ["pg-app-primary", "pg-app-replica-1", "pg-app-replica-2"]
    );

    let view = rds.describe("pg-app").unwrap();
    assert_eq!(
        (view.engine.as_str(), view.status.as_str()),
        ("aurora-postgresql", "available")
    );
    let members: Vec<_> = view
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.is_writer, m.port))
        .collect();
    let port = |i: usize| Some(pg.replicas()[i].port());
    assert_eq!(
        members,
        [
            ("pg-app-primary", true, Some(pg.primary().port())),
            ("pg-app-replica-1", false, port(0)),
            ("pg-app-replica-2", false, port(1)),
        ]
    );
    for member in &view.members {
        assert_eq!(member.status, "available");
        assert_eq!(member.promotion_tier, Some(1));
        assert_eq!(
            member.host.as_deref(),
            Some(rds.instance_host(&member.id).as_str())
        );
        // Dial what the API describes, and ask the server who it is.
        let host = member.host.as_deref().unwrap();
        let ip = resolve_to_loopback(host).unwrap();
        let port = member.port.unwrap();
        TcpStream::connect((ip, port)).unwrap();
        let node = pg.node_by_port(port).unwrap();
        assert_eq!(
            node.psql("postgres", SERVER_PORT_SQL).unwrap(),
            port.to_string()
        );
        let in_recovery = node.psql("postgres", "SELECT pg_is_in_recovery()").unwrap();
        assert_eq!(in_recovery == "f", member.is_writer, "{}", member.id);
    }
    assert!(
        view.endpoint
            .is_some_and(|e| resolve_to_loopback(&e).is_some())
    );
}

#[test]
fn described_mariadb_cluster_has_the_current_primary_as_writer_and_the_nodes_ports() {
    let rds = rds();
    let maria = MariaDbCluster::start(1)
        .unwrap_or_else(|e| panic!("could not start the MariaDB cluster: {e}"));
    let ids = rds.describe_mariadb_cluster("maria-app", &maria).unwrap();
    assert_eq!(ids, ["maria-app-primary", "maria-app-replica-1"]);

    let view = rds.describe("maria-app").unwrap();
    assert_eq!(
        (view.engine.as_str(), view.status.as_str()),
        ("aurora-mysql", "available")
    );
    let members: Vec<_> = view
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.is_writer, m.port))
        .collect();
    assert_eq!(
        members,
        [
            ("maria-app-primary", true, Some(maria.primary().port())),
            (
                "maria-app-replica-1",
                false,
                Some(maria.replicas()[0].port())
            ),
        ]
    );
    for member in &view.members {
        assert_eq!(member.status, "available");
        // Dial what the API describes, and ask the server who it is.
        let host = member.host.as_deref().unwrap();
        let ip = resolve_to_loopback(host).unwrap();
        let port = member.port.unwrap();
        TcpStream::connect((ip, port)).unwrap();
        let node = maria.node_by_port(port).unwrap();
        assert_eq!(node.sql("", "SELECT @@port").unwrap(), port.to_string());
        let read_only = node.sql("", "SELECT @@read_only").unwrap();
        assert_eq!(read_only == "0", member.is_writer, "{}", member.id);
    }

    // After a promotion the promoted node is described as the writer, the old primary not at all.
    maria.promote(0).unwrap();
    let ids = rds
        .describe_mariadb_cluster("maria-promoted", &maria)
        .unwrap();
    assert_eq!(ids, ["maria-promoted-replica-1"]);
    let view = rds.describe("maria-promoted").unwrap();
    let writer = view.writer().unwrap();
    assert_eq!(writer.port, Some(maria.primary().port()));
    let writer_port = writer.port.unwrap();
    assert_eq!(
        maria
            .node_by_port(writer_port)
            .unwrap()
            .sql("", "SELECT @@read_only")
            .unwrap(),
        "0"
    );
    assert_eq!(view.members.len(), 1);
}

#[test]
fn instance_hosts_are_fake_rds_names_that_resolve_to_loopback() {
    let rds = rds();
    let host = rds.instance_host("Host-1");
    assert_eq!(host, "host-1.aaaaaaaaaa.us-east-1.rds.amazonaws.com");
    assert_eq!(resolve_to_loopback(&host), Some(Ipv4Addr::LOCALHOST.into()));
    assert_eq!(resolve_to_loopback("localhost"), None);
    rds.create_cluster("hosts", "aurora-postgresql").unwrap();
    rds.add_instance("hosts", "Host-1", 7001, None).unwrap();
    let view = rds.describe("hosts").unwrap();
    assert_eq!(view.members[0].id, "host-1");
    assert_eq!(view.members[0].host.as_deref(), Some(host.as_str()));
}

#[test]
fn added_instance_joins_and_removed_instance_leaves_at_once() {
    let rds = rds();
    let [first, second, third] = three_instances("churn");
    rds.add_instance("churn", "churn-4", 7004, Some(0)).unwrap();
    let view = rds.describe("churn").unwrap();
    let added = view.member("churn-4").unwrap();
    assert_eq!(
        (added.is_writer, added.port, added.promotion_tier),
        (false, Some(7004), Some(0))
    );
    assert_eq!(view.writer().unwrap().id, first);

    rds.remove_instance(&second).unwrap();
    let ids: Vec<String> = rds
        .describe("churn")
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [first.clone(), third, "churn-4".to_owned()]);
    // Removing the writer: moto makes the lowest promotion tier the writer.
    rds.remove_instance(&first).unwrap();
    assert_eq!(writer("churn"), "churn-4");
    let err = rds.remove_instance(&first).unwrap_err();
    assert!(
        matches!(&err, Error::Rds { code, .. } if code == "DBInstanceNotFound"),
        "{err}"
    );
}

#[test]
fn stopped_instance_reports_stopped_and_started_instance_available() {
    let rds = rds();
    let [_, reader, _] = three_instances("stops");
    rds.stop_instance(&reader).unwrap();
    assert_eq!(status("stops", &reader), "stopped");
    let err = rds.stop_instance(&reader).unwrap_err();
    assert!(
        matches!(&err, Error::Rds { code, .. } if code == "InvalidDBInstanceState"),
        "{err}"
    );
    rds.start_instance(&reader).unwrap();
    assert_eq!(status("stops", &reader), "available");
}

#[test]
fn any_instance_status_can_be_set() {
    let rds = rds();
    let [_, reader, _] = three_instances("statuses");
    for state in ["modifying", "rebooting", "failed", "available"] {
        rds.set_instance_status(&reader, state).unwrap();
        assert_eq!(status("statuses", &reader), state);
    }
    let err = rds.set_instance_status("statuses-9", "failed").unwrap_err();
    assert!(
        matches!(&err, Error::Rds { code, .. } if code == "DBInstanceNotFound"),
        "{err}"
    );
}

#[test]
fn failover_makes_the_target_the_writer() {
    let rds = rds();
    let [first, second, third] = three_instances("failover");
    assert_eq!(writer("failover"), first);
    rds.failover("failover", &third).unwrap();
    let view = rds.describe("failover").unwrap();
    assert_eq!(view.writer().unwrap().id, third);
    assert_eq!(
        view.readers().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [&first, &second]
    );
    // The target must be available.
    rds.set_instance_status(&second, "rebooting").unwrap();
    let err = rds.failover("failover", &second).unwrap_err();
    assert!(
        matches!(&err, Error::Rds { code, .. } if code == "InvalidDBInstanceState"),
        "{err}"
    );
    assert_eq!(writer("failover"), third);
    assert!(matches!(
        rds.describe("no-such-cluster"),
        Err(Error::Rds { .. })
    ));
}

#[test]
fn describe_db_instances_filters_by_cluster_and_pages_with_markers() {
    let rds = rds();
    let ids = three_instances("paged");
    let filter = json!([{"Name": "db-cluster-id", "Values": ["paged"]}]);
    let page = rds.call(
        "describe_db_instances",
        json!({"Filters": filter, "MaxRecords": 2}),
    );
    let page = page.unwrap();
    let listed = |page: &serde_json::Value| -> Vec<String> {
        let found = page["DBInstances"].as_array().unwrap();
        found
            .iter()
            .map(|i| i["DBInstanceIdentifier"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed(&page), ids[..2]);
    let marker = page["Marker"].as_str().unwrap();
    let params = json!({"Filters": filter, "MaxRecords": 2, "Marker": marker});
    let last = rds.call("describe_db_instances", params).unwrap();
    assert_eq!(listed(&last), ids[2..]);
    assert!(last.get("Marker").is_none());
}

#[test]
fn the_endpoint_speaks_the_rds_query_protocol_with_dummy_credentials() {
    let rds = rds();
    three_instances("query");
    let body = "Action=DescribeDBClusters&Version=2014-10-31&DBClusterIdentifier=query";
    let url = rds.endpoint_url();
    let authority = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    let credential = format!(
        "{}/20250101/{}/rds/aws4_request",
        RdsEmulator::ACCESS_KEY_ID,
        rds.region()
    );
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=0\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("<IsClusterWriter>true</IsClusterWriter>"),
        "{answer}"
    );
    assert!(
        answer.contains("<DBInstanceIdentifier>query-3</DBInstanceIdentifier>"),
        "{answer}"
    );
}

#[test]
fn dropping_the_emulator_stops_its_server() {
    let rds = RdsEmulator::start().unwrap();
    let (pid, port) = (rds.pid(), rds.port());
    assert!(
        rds.moto_version().starts_with('5'),
        "{}",
        rds.moto_version()
    );
    rds.create_cluster("gone", "aurora-postgresql").unwrap();
    rds.reset().unwrap();
    assert!(matches!(rds.describe("gone"), Err(Error::Rds { .. })));
    assert!(port_open(port));
    drop(rds);
    assert!(!alive(pid));
    assert!(!port_open(port));
}

#[test]
fn a_killed_test_process_leaves_no_emulator_behind() {
    // A separate process (src/bin/testkit-emulator-orphan-helper.rs) holds one in a `static`.
    let mut helper = Command::new(env!("CARGO_BIN_EXE_testkit-emulator-orphan-helper"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    let (pid, port) = loop {
        let line = lines
            .next()
            .expect("the helper ended before reporting its emulator")
            .unwrap();
        if let Some(rest) = line.strip_prefix("EMULATOR ") {
            let (pid, port) = rest.split_once(' ').unwrap();
            break (pid.parse::<u32>().unwrap(), port.parse::<u16>().unwrap());
        }
    };
    assert!(alive(pid) && port_open(port));

    helper.kill().unwrap(); // SIGKILL: no destructor runs
    helper.wait().unwrap();
    // A process whose main thread has exited shows as a zombie while its other threads (and the
    // listening socket) are still going: wait for both.
    wait_until("the helper's emulator is gone", || {
        !alive(pid) && !port_open(port)
    });
}
