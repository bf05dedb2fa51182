//! Blue/green deployments against real servers: AWS's metadata relations with their exact shape
//! on PostgreSQL and MariaDB, rows driven through every phase and seen on both primaries through
//! the drivers' own queries, and the names flipping at switchover. Fails (never skips) when a
//! server cannot start.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{
    BlueGreenChange, BlueGreenDeployment, BlueGreenRole, BlueGreenStatus, Dns, EndpointKind, Error,
    MariaDbCluster, MetadataRelation, PgCluster, PgNode,
};

const TIMEOUT: Duration = Duration::from_secs(20);
/// The driver id the tests pass, as a driver would pass its own.
const DRIVER_ID: &str = "aws_jdbc_driver-2.5.0";
/// A role / user with no privilege beyond logging in, as an application has.
const APP_USER: &str = "bgapp";
const APP_PASSWORD: &str = "app-pw";

/// The PostgreSQL databases of the tests, one each, so that they can run at once.
const PG_DATABASES: [&str; 4] = ["aurora", "rdspg", "dnsflip", "sizes"];

/// Two PostgreSQL clusters, a primary and a replica each, shared by the PostgreSQL tests (each
/// in its own database).
struct PgPair {
    blue: PgCluster,
    green: PgCluster,
}

fn pg() -> &'static PgPair {
    static PAIR: OnceLock<PgPair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let (blue, green) = thread::scope(|scope| {
            let start = || {
                let cluster = PgCluster::start(1)
                    .unwrap_or_else(|e| panic!("could not start a PostgreSQL cluster: {e}"));
                cluster.create_role(APP_USER, APP_PASSWORD).unwrap();
                for db in PG_DATABASES {
                    cluster.create_database(db).unwrap();
                }
                cluster
            };
            let blue = scope.spawn(start);
            let green = scope.spawn(start);
            (blue.join().unwrap(), green.join().unwrap())
        });
        PgPair { blue, green }
    })
}

/// What the drivers' status query (`version, endpoint, port, role, status`) must return on
/// either side once both sides are at `source` / `target`: one line per cluster and instance
/// endpoint, sorted.
fn expected_lines(
    deployment: &BlueGreenDeployment<'_>,
    source: BlueGreenStatus,
    target: BlueGreenStatus,
    separator: &str,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (role, status) in [
        (BlueGreenRole::Source, source),
        (BlueGreenRole::Target, target),
    ] {
        for endpoint in deployment.endpoints(role) {
            if endpoint.kind == EndpointKind::Reader {
                continue;
            }
            lines.push(
                [
                    "1.0",
                    &endpoint.host,
                    &endpoint.port.to_string(),
                    role.as_str(),
                    status.as_str(),
                ]
                .join(separator),
            );
        }
    }
    lines.sort();
    lines
}

fn sorted_lines(out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Runs `sql` as the application role on `node`, in database `db`.
fn pg_as_app(cluster: &PgCluster, node: &PgNode, db: &str, sql: &str) -> Result<String, Error> {
    let url = node.url_as(db, APP_USER, APP_PASSWORD);
    cluster.psql_conninfo(&url, sql, TIMEOUT)
}

/// Exercises `relation` on the shared PostgreSQL pair in database `db`: its shape, its existence
/// check, what an application role reads through the drivers' query in every phase on both
/// primaries, `clear`, the history, and `uninstall`.
fn pg_relation_behaves_like_aws(relation: MetadataRelation, db: &str) {
    let PgPair { blue, green } = pg();
    let deployment = BlueGreenDeployment::builder("app")
        .relation(relation)
        .database(db)
        .postgres(blue, green)
        .unwrap();
    assert_eq!(deployment.relation(), relation);
    assert_eq!(deployment.databases(), [db]);
    let (name, schema, other) = match relation {
        MetadataRelation::AuroraPostgres => (
            "get_blue_green_fast_switchover_metadata",
            "pg_catalog",
            MetadataRelation::RdsPostgres,
        ),
        _ => (
            "rds_tools.show_topology",
            "rds_tools",
            MetadataRelation::AuroraPostgres,
        ),
    };

    for cluster in [blue, green] {
        let primary = cluster.primary();
        // The drivers' existence check resolves, for an application role too; the other
        // flavour's does not (dialect detection must not be fooled).
        let check = relation.existence_query();
        assert_eq!(primary.psql(db, check).unwrap(), name);
        assert_eq!(pg_as_app(cluster, primary, db, check).unwrap(), name);
        let err = primary.psql(db, other.existence_query()).unwrap_err();
        assert!(matches!(err, Error::Command { .. }), "{err}");

        // Exactly AWS's shape: a set-returning function of one text argument in its schema.
        let oid = format!("'{relation}'::regproc");
        let shape = primary
            .psql(
                db,
                &format!(
                    "SELECT n.nspname, pg_get_function_identity_arguments(p.oid), \
                     pg_get_function_result(p.oid), p.proretset \
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                     WHERE p.oid = {oid}"
                ),
            )
            .unwrap();
        assert_eq!(
            shape,
            format!(
                "{schema}|driver_id text|TABLE(id bigint, endpoint text, port integer, \
                 role text, status text, version text, update_stamp timestamp without time zone)|t"
            )
        );
        // No rows yet: no deployment.
        let query = relation.status_query(DRIVER_ID);
        assert_eq!(pg_as_app(cluster, primary, db, &query).unwrap(), "");
    }

    let started = Instant::now();
    for status in BlueGreenStatus::ALL {
        deployment.set_status(status).unwrap();
        let expected = expected_lines(&deployment, status, status, "|");
        assert_eq!(expected.len(), 6, "2 sides x (cluster + 2 instances)");
        for cluster in [blue, green] {
            let out = pg_as_app(
                cluster,
                cluster.primary(),
                db,
                &relation.status_query(DRIVER_ID),
            )
            .unwrap();
            assert_eq!(sorted_lines(&out), expected, "{status} on {cluster:?}");
        }
    }
    // Every column, `id` and `update_stamp` included, with the types the drivers decode.
    let typed = format!(
        "SELECT DISTINCT pg_typeof(id), pg_typeof(endpoint), pg_typeof(port), pg_typeof(role), \
         pg_typeof(status), pg_typeof(version), pg_typeof(update_stamp), \
         update_stamp > timezone('UTC', now()) - interval '1 minute' FROM {}",
        relation.from_clause(DRIVER_ID)
    );
    assert_eq!(
        pg_as_app(blue, blue.primary(), db, &typed).unwrap(),
        "bigint|text|integer|text|text|text|timestamp without time zone|t"
    );
    // The sides can differ.
    deployment
        .set_statuses(
            BlueGreenStatus::SwitchoverCompleted,
            BlueGreenStatus::SwitchoverInPostProcessing,
        )
        .unwrap();
    let expected = expected_lines(
        &deployment,
        BlueGreenStatus::SwitchoverCompleted,
        BlueGreenStatus::SwitchoverInPostProcessing,
        "|",
    );
    for cluster in [blue, green] {
        let out = pg_as_app(
            cluster,
            cluster.primary(),
            db,
            &relation.status_query(DRIVER_ID),
        )
        .unwrap();
        assert_eq!(sorted_lines(&out), expected);
    }
    assert_eq!(deployment.read_rows(BlueGreenRole::Target).unwrap(), {
        let mut rows = deployment.rows(
            BlueGreenStatus::SwitchoverCompleted,
            BlueGreenStatus::SwitchoverInPostProcessing,
        );
        rows.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        rows
    });
    // Replicas get the rows by replication.
    blue.wait_replicated(TIMEOUT).unwrap();
    let replica = &blue.replicas()[0];
    let out = pg_as_app(blue, replica, db, &relation.status_query(DRIVER_ID)).unwrap();
    assert_eq!(sorted_lines(&out), expected);

    deployment.clear().unwrap();
    for cluster in [blue, green] {
        let out = pg_as_app(
            cluster,
            cluster.primary(),
            db,
            &relation.status_query(DRIVER_ID),
        )
        .unwrap();
        assert_eq!(out, "", "no rows after clear()");
    }
    assert!(
        deployment
            .read_rows(BlueGreenRole::Source)
            .unwrap()
            .is_empty()
    );

    let history = deployment.history();
    let changes: Vec<&BlueGreenChange> = history.iter().map(|e| &e.change).collect();
    let mut expected: Vec<BlueGreenChange> = BlueGreenStatus::ALL
        .into_iter()
        .map(|s| BlueGreenChange::Status {
            source: s,
            target: s,
        })
        .collect();
    expected.push(BlueGreenChange::Status {
        source: BlueGreenStatus::SwitchoverCompleted,
        target: BlueGreenStatus::SwitchoverInPostProcessing,
    });
    expected.push(BlueGreenChange::Cleared);
    assert_eq!(changes, expected.iter().collect::<Vec<_>>());
    assert!(history.first().unwrap().at >= started);
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));

    deployment.uninstall().unwrap();
    for cluster in [blue, green] {
        assert!(cluster.psql(db, relation.existence_query()).is_err());
    }
}

#[test]
fn aurora_postgres_metadata_function_has_the_aws_shape_and_follows_every_phase() {
    pg_relation_behaves_like_aws(MetadataRelation::AuroraPostgres, "aurora");
}

#[test]
fn rds_postgres_show_topology_has_the_aws_shape_and_follows_every_phase() {
    pg_relation_behaves_like_aws(MetadataRelation::RdsPostgres, "rdspg");
}

/// Where `resolver` sends `host`, and the port of the PostgreSQL server that answers there.
fn pg_server_behind(
    cluster: &PgCluster,
    resolver: &impl Fn(&str, u16) -> (String, u16),
    host: &str,
) -> u16 {
    let (ip, port) = resolver(host, 5432);
    assert_eq!(ip, "127.0.0.1", "{host}");
    let answer = cluster
        .psql_at(port, "postgres", "SELECT inet_server_port()", TIMEOUT)
        .unwrap_or_else(|e| panic!("{host} -> {port}: {e}"));
    answer.parse().unwrap()
}

/// Asserts that `host` does not resolve: the resolver sends it where connections are refused
/// at once.
fn assert_unresolvable(resolver: &impl Fn(&str, u16) -> (String, u16), host: &str) {
    let (ip, port) = resolver(host, 5432);
    assert_eq!((ip.as_str(), port), Dns::UNRESOLVABLE, "{host}");
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let started = Instant::now();
    assert!(
        TcpStream::connect_timeout(&addr, TIMEOUT).is_err(),
        "{host}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
}

#[test]
fn switching_dns_sends_blue_names_to_green_servers_and_rollback_puts_them_back() {
    let PgPair { blue, green } = pg();
    let deployment = BlueGreenDeployment::builder("shop")
        .database("dnsflip")
        .postgres(blue, green)
        .unwrap();
    let dns = deployment.dns().clone();
    let resolver = dns.resolver(); // made before any flip: it sees every later one
    dns.set("proxy.example.test", [127, 0, 0, 1], 1234); // the test's own name
    let source = BlueGreenRole::Source;
    let target = BlueGreenRole::Target;
    let node = |cluster: &PgCluster, replica: bool| {
        if replica {
            cluster.replicas()[0].port()
        } else {
            cluster.primary().port()
        }
    };

    // Before: every name reaches its own server; the -old1 names do not exist.
    assert_eq!(
        deployment.cluster_endpoint(source),
        "shop.cluster-xyz.us-east-1.rds.amazonaws.com"
    );
    assert_eq!(
        deployment.instance_endpoint(target, "replica-1"),
        Some("shop-replica-1-green-abcdef.xyz.us-east-1.rds.amazonaws.com")
    );
    for (role, cluster) in [(source, blue), (target, green)] {
        for endpoint in deployment.endpoints(role) {
            let replica = endpoint.node != "primary";
            assert_eq!(
                pg_server_behind(cluster, &resolver, &endpoint.host),
                node(cluster, replica),
                "{endpoint:?}"
            );
        }
    }
    let old_writer = BlueGreenDeployment::old_endpoint(deployment.cluster_endpoint(source));
    assert_eq!(
        old_writer,
        "shop-old1.cluster-xyz.us-east-1.rds.amazonaws.com"
    );
    assert_unresolvable(&resolver, &old_writer);

    deployment.set_status(BlueGreenStatus::Available).unwrap();
    deployment.switchover(Duration::ZERO).unwrap();

    // After: blue names reach the paired green servers, green names are gone, the blue servers
    // answer to their -old1 names.
    let writer = deployment.cluster_endpoint(source);
    assert_eq!(
        pg_server_behind(green, &resolver, writer),
        node(green, false)
    );
    let reader = deployment.reader_endpoint(source);
    assert_eq!(
        pg_server_behind(green, &resolver, reader),
        node(green, true)
    );
    let in_recovery = green
        .psql_at(
            resolver(reader, 5432).1,
            "postgres",
            "SELECT pg_is_in_recovery()",
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(in_recovery, "t", "the reader endpoint reaches a replica");
    for (blue_node, green_node) in [(false, false), (true, true)] {
        let name = if blue_node { "replica-1" } else { "primary" };
        let host = deployment.instance_endpoint(source, name).unwrap();
        assert_eq!(
            pg_server_behind(green, &resolver, host),
            node(green, green_node)
        );
        let old = BlueGreenDeployment::old_endpoint(host);
        assert_eq!(
            pg_server_behind(blue, &resolver, &old),
            node(blue, blue_node)
        );
    }
    assert_eq!(
        pg_server_behind(blue, &resolver, &old_writer),
        node(blue, false)
    );
    for endpoint in deployment.endpoints(target) {
        assert_unresolvable(&resolver, &endpoint.host);
        assert_eq!(dns.resolve(&endpoint.host), None);
    }
    assert_eq!(
        dns.resolve("proxy.example.test"),
        Some(([127, 0, 0, 1].into(), 1234))
    );
    let out = blue
        .psql(
            "dnsflip",
            &MetadataRelation::AuroraPostgres.status_query(DRIVER_ID),
        )
        .unwrap();
    assert!(
        out.lines().all(|l| l.ends_with("|SWITCHOVER_COMPLETED")),
        "{out}"
    );

    // Rollback: the names go back, and both sides are AVAILABLE again.
    deployment.rollback().unwrap();
    for (role, cluster) in [(source, blue), (target, green)] {
        for endpoint in deployment.endpoints(role) {
            let replica = endpoint.node != "primary";
            assert_eq!(
                pg_server_behind(cluster, &resolver, &endpoint.host),
                node(cluster, replica)
            );
        }
    }
    assert_unresolvable(&resolver, &old_writer);
    assert_eq!(
        dns.resolve("proxy.example.test"),
        Some(([127, 0, 0, 1].into(), 1234))
    );
    let out = green
        .psql(
            "dnsflip",
            &MetadataRelation::AuroraPostgres.status_query(DRIVER_ID),
        )
        .unwrap();
    assert!(out.lines().all(|l| l.ends_with("|AVAILABLE")), "{out}");

    let status = |s| BlueGreenChange::Status {
        source: s,
        target: s,
    };
    let changes: Vec<BlueGreenChange> =
        deployment.history().into_iter().map(|e| e.change).collect();
    assert_eq!(
        changes,
        [
            status(BlueGreenStatus::Available),
            status(BlueGreenStatus::SwitchoverInitiated),
            status(BlueGreenStatus::SwitchoverInProgress),
            BlueGreenChange::DnsSwitched,
            status(BlueGreenStatus::SwitchoverInPostProcessing),
            status(BlueGreenStatus::SwitchoverCompleted),
            BlueGreenChange::DnsRestored,
            status(BlueGreenStatus::Available),
        ]
    );
}

#[test]
fn dns_is_a_shared_map_whose_resolver_passes_other_hosts_through() {
    let dns = Dns::new();
    let copy = dns.clone();
    let resolver = dns.resolver();
    let host = "db-1.xyz.us-east-1.rds.amazonaws.com";
    assert_eq!(dns.resolve(host), None);
    assert_unresolvable(&resolver, host);
    assert_eq!(copy.set(host, [127, 0, 0, 1], 6000), None);
    assert_eq!(
        resolver("DB-1.xyz.us-east-1.rds.amazonaws.com.", 5432),
        ("127.0.0.1".to_owned(), 6000)
    );
    assert_eq!(
        dns.set(host, [127, 0, 0, 2], 6001),
        Some(([127, 0, 0, 1].into(), 6000))
    );
    let from_thread = {
        let resolver = resolver.clone();
        thread::spawn(move || resolver(host, 5432)).join().unwrap()
    };
    assert_eq!(from_thread, ("127.0.0.2".to_owned(), 6001));
    assert_eq!(
        dns.entries(),
        [(host.to_owned(), [127, 0, 0, 2].into(), 6001)]
    );
    assert_eq!(copy.remove(host), Some(([127, 0, 0, 2].into(), 6001)));
    assert_unresolvable(&resolver, host);
    // Hosts that are not RDS names are dialled as given.
    assert_eq!(resolver("127.0.0.1", 5433), ("127.0.0.1".to_owned(), 5433));
    assert_eq!(resolver("localhost", 3306), ("localhost".to_owned(), 3306));
    // The shape rds-balancer's `endpoint_resolver` takes.
    fn takes_endpoint_resolver(_: impl Fn(&str, u16) -> (String, u16) + Send + Sync + 'static) {}
    takes_endpoint_resolver(resolver);
}

#[test]
fn deployments_refuse_ids_clusters_and_relations_that_do_not_fit() {
    let PgPair { blue, green } = pg();
    let lone =
        PgCluster::start(0).unwrap_or_else(|e| panic!("could not start a PostgreSQL cluster: {e}"));
    let message = |result: Result<BlueGreenDeployment<'_>, Error>| match result {
        Err(err @ Error::Unexpected { .. }) => err.to_string(),
        other => panic!("not refused: {other:?}"),
    };
    let err = message(BlueGreenDeployment::postgres("app", blue, &lone));
    assert!(err.contains("blue has 2 nodes and green 1"), "{err}");
    let err = message(
        BlueGreenDeployment::builder("Bad_Id")
            .database("sizes")
            .postgres(blue, green),
    );
    assert!(err.contains("cannot name hosts"), "{err}");
    let err = message(
        BlueGreenDeployment::builder("app")
            .relation(MetadataRelation::MySql)
            .database("sizes")
            .postgres(blue, green),
    );
    assert!(err.contains("MySQL relation"), "{err}");
    // Nothing was installed by the refusals.
    let check = MetadataRelation::AuroraPostgres.existence_query();
    assert!(blue.psql("sizes", check).is_err());
    assert!(lone.psql("postgres", check).is_err());
}

/// Two MariaDB clusters, a primary and a replica each, for the MariaDB test.
fn mariadb_pair() -> (MariaDbCluster, MariaDbCluster) {
    thread::scope(|scope| {
        let start = || {
            MariaDbCluster::start(1)
                .unwrap_or_else(|e| panic!("could not start a MariaDB cluster: {e}"))
        };
        let blue = scope.spawn(start);
        let green = scope.spawn(start);
        (blue.join().unwrap(), green.join().unwrap())
    })
}

#[test]
fn mysql_rds_topology_has_the_aws_shape_needs_a_grant_and_follows_every_phase() {
    let (blue, green) = mariadb_pair();
    let deployment = BlueGreenDeployment::mariadb("orders", &blue, &green).unwrap();
    assert_eq!(deployment.relation(), MetadataRelation::MySql);
    assert!(deployment.databases().is_empty());
    let relation = MetadataRelation::MySql;
    let query = relation.status_query(DRIVER_ID);
    assert_eq!(
        query,
        "SELECT version, endpoint, port, role, status FROM mysql.rds_topology"
    );
    let columns = "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                   WHERE table_schema = 'mysql' AND table_name = 'rds_topology' \
                   ORDER BY ordinal_position";

    for cluster in [&blue, &green] {
        assert_eq!(
            cluster.sql("", columns).unwrap(),
            "id\tbigint\tYES\nendpoint\ttext\tYES\nport\tint\tYES\nrole\ttext\tYES\n\
             status\ttext\tYES\nversion\ttext\tYES\nupdate_stamp\ttimestamp\tNO"
        );
        assert_eq!(cluster.sql("", relation.existence_query()).unwrap(), "1");
        // An application user with no privilege: it neither sees nor reads the table ...
        cluster
            .sql(
                "",
                &format!("CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'"),
            )
            .unwrap();
        let primary = cluster.primary();
        let as_app = |sql: &str| primary.sql_as("", APP_USER, APP_PASSWORD, sql);
        assert_eq!(as_app(relation.existence_query()).unwrap(), "");
        match as_app(&query) {
            Err(Error::Command { stderr, .. }) => {
                assert!(stderr.contains("command denied"), "{stderr}")
            }
            other => panic!("read without the grant: {other:?}"),
        }
    }
    // ... until it is granted SELECT on it, and on it alone.
    deployment.grant_read(APP_USER).unwrap();
    for cluster in [&blue, &green] {
        let primary = cluster.primary();
        let as_app = |sql: &str| primary.sql_as("", APP_USER, APP_PASSWORD, sql);
        assert_eq!(as_app(relation.existence_query()).unwrap(), "1");
        assert_eq!(as_app(&query).unwrap(), "", "no rows yet: no deployment");
        assert!(as_app("SELECT count(*) FROM mysql.user").is_err());
    }

    for status in BlueGreenStatus::ALL {
        deployment.set_status(status).unwrap();
        let expected = expected_lines(&deployment, status, status, "\t");
        assert_eq!(expected.len(), 6, "2 sides x (cluster + 2 instances)");
        for cluster in [&blue, &green] {
            let out = cluster
                .primary()
                .sql_as("", APP_USER, APP_PASSWORD, &query)
                .unwrap();
            assert_eq!(sorted_lines(&out), expected, "{status}");
        }
    }
    let typed = "SELECT count(*) FROM mysql.rds_topology \
                 WHERE update_stamp > NOW(6) - INTERVAL 1 MINUTE AND id > 0";
    assert_eq!(blue.sql("", typed).unwrap(), "6");
    // The replicas have the table, the grant and the rows by replication.
    let expected = expected_lines(
        &deployment,
        BlueGreenStatus::SwitchoverCompleted,
        BlueGreenStatus::SwitchoverCompleted,
        "\t",
    );
    for cluster in [&blue, &green] {
        cluster.wait_replicated(TIMEOUT).unwrap();
        let out = cluster.replicas()[0]
            .sql_as("", APP_USER, APP_PASSWORD, &query)
            .unwrap();
        assert_eq!(sorted_lines(&out), expected);
    }
    let mut rows = deployment.rows(
        BlueGreenStatus::SwitchoverCompleted,
        BlueGreenStatus::SwitchoverCompleted,
    );
    rows.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    assert_eq!(deployment.read_rows(BlueGreenRole::Source).unwrap(), rows);

    // Rows the test chooses, such as an unknown status, are written as given.
    let mut odd = deployment.rows(BlueGreenStatus::Available, BlueGreenStatus::Available);
    odd.truncate(1);
    odd[0].status = "SWITCHOVER_SOMETHING_NEW".to_owned();
    deployment.write_rows(&odd).unwrap();
    assert_eq!(deployment.read_rows(BlueGreenRole::Target).unwrap(), odd);

    deployment.clear().unwrap();
    for cluster in [&blue, &green] {
        let out = cluster
            .primary()
            .sql_as("", APP_USER, APP_PASSWORD, &query)
            .unwrap();
        assert_eq!(out, "", "no rows after clear()");
    }

    // The names flip as they do on PostgreSQL.
    let resolver = deployment.dns().resolver();
    let writer = deployment.cluster_endpoint(BlueGreenRole::Source);
    assert_eq!(writer, "orders.cluster-xyz.us-east-1.rds.amazonaws.com");
    assert_eq!(resolver(writer, 3306).1, blue.primary().port());
    deployment.switch_dns();
    let port = resolver(writer, 3306).1;
    assert_eq!(port, green.primary().port());
    let node = green.node_by_port(port).unwrap();
    assert_eq!(node.sql("", "SELECT @@port").unwrap(), port.to_string());
    let green_writer = deployment.cluster_endpoint(BlueGreenRole::Target);
    assert_unresolvable(&resolver, green_writer);
    deployment.restore_dns();
    assert_eq!(resolver(green_writer, 3306).1, green.primary().port());
    assert_eq!(resolver(writer, 3306).1, blue.primary().port());

    let changes: Vec<BlueGreenChange> =
        deployment.history().into_iter().map(|e| e.change).collect();
    assert_eq!(changes.len(), 9);
    assert_eq!(changes[5], BlueGreenChange::Rows(odd));
    assert_eq!(changes[6], BlueGreenChange::Cleared);

    deployment.uninstall().unwrap();
    assert_eq!(blue.sql("", relation.existence_query()).unwrap(), "");
}
