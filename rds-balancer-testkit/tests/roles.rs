//! Login roles with passwords, password changes and `max_connections`, against real PostgreSQL
//! servers. Fails (never skips) when PostgreSQL is missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use rds_balancer_testkit::{Error, PgCluster, PgNode};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A primary and a replica with `max_connections = 20`, shared by the tests that leave it as
/// they found it (each with its own roles).
fn shared() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::builder()
            .replicas(1)
            .max_connections(20)
            .start()
            .unwrap_or_else(|e| panic!("could not start the cluster: {e}"))
    })
}

/// `SELECT current_user` on `node` as `user` with `password` (URI form).
fn login(cluster: &PgCluster, node: &PgNode, user: &str, password: &str) -> Result<String, Error> {
    let url = node.url_as("postgres", user, password);
    cluster.psql_conninfo(&url, "SELECT current_user", TIMEOUT)
}

/// Asserts that `result` is psql refused for a wrong password of `user`.
fn assert_refused(result: Result<String, Error>, user: &str) {
    match result {
        Err(Error::Command { stderr, .. }) => assert!(
            stderr.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{stderr}"
        ),
        other => panic!("a wrong password of {user} was not refused: {other:?}"),
    }
}

#[test]
fn max_connections_is_the_configured_value_on_every_node() {
    let cluster = shared();
    assert_eq!(cluster.max_connections(), 20);
    assert_eq!(cluster.nodes().count(), 2);
    for node in cluster.nodes() {
        assert_eq!(node.psql("postgres", "SHOW max_connections").unwrap(), "20");
    }
}

#[test]
fn a_role_needs_its_password_and_only_the_new_one_after_set_password() {
    let cluster = shared();
    cluster.create_role("rotating", "first").unwrap();
    for node in cluster.nodes() {
        assert_eq!(
            login(cluster, node, "rotating", "first").unwrap(),
            "rotating"
        );
        assert_refused(login(cluster, node, "rotating", "wrong"), "rotating");
        // Without a password psql fails at once instead of prompting.
        let no_password = format!(
            "host=127.0.0.1 port={} user=rotating dbname=postgres",
            node.port()
        );
        let err = cluster
            .psql_conninfo(&no_password, "SELECT 1", TIMEOUT)
            .unwrap_err();
        assert!(err.to_string().contains("no password supplied"), "{err}");
    }

    cluster.set_password("rotating", "second").unwrap();
    for node in cluster.nodes() {
        assert_refused(login(cluster, node, "rotating", "first"), "rotating");
        assert_eq!(
            login(cluster, node, "rotating", "second").unwrap(),
            "rotating"
        );
    }
}

#[test]
fn names_and_passwords_with_special_characters_work_in_both_connection_forms() {
    let cluster = shared();
    let (user, password) = ("Odd \"Role\"", "p@ss w'rd:/%?&=\\é");
    cluster.create_role(user, password).unwrap();
    let node = &cluster.replicas()[0];
    assert_eq!(login(cluster, node, user, password).unwrap(), user);
    assert_refused(login(cluster, node, user, "p@ss"), user);
    // Keyword/value form: single quotes and backslashes escaped with a backslash.
    let quoted = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    let conn = format!(
        "host=127.0.0.1 port={} dbname=postgres user={} password={}",
        node.port(),
        quoted(user),
        quoted(password)
    );
    assert_eq!(
        cluster
            .psql_conninfo(&conn, "SELECT current_user", TIMEOUT)
            .unwrap(),
        user
    );
}

#[test]
fn errors_do_not_show_passwords() {
    let cluster = shared();
    cluster.create_role("redacted", "the-right-one").unwrap();
    let url = cluster
        .primary()
        .url_as("postgres", "redacted", "not-the-right-one");
    let err = cluster
        .psql_conninfo(&url, "SELECT 1", TIMEOUT)
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("redacted:***@"), "{message}");
    assert!(!message.contains("not-the-right-one"), "{message}");
}

#[test]
fn the_postgres_superuser_is_trusted_without_a_password() {
    let cluster = shared();
    for node in cluster.nodes() {
        assert_eq!(
            node.url("postgres"),
            format!("postgres://postgres@127.0.0.1:{}/postgres", node.port())
        );
        let no_password = cluster
            .psql_conninfo(&node.url("postgres"), "SELECT current_user", TIMEOUT)
            .unwrap();
        assert_eq!(no_password, "postgres");
        // Trust ignores whatever password is given.
        assert_eq!(
            login(cluster, node, "postgres", "anything").unwrap(),
            "postgres"
        );
    }
}

/// The number of sessions of `user` on `cluster`'s primary.
fn sessions(cluster: &PgCluster, user: &str) -> usize {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'");
    cluster.psql("postgres", &sql).unwrap().parse().unwrap()
}

#[test]
fn the_superuser_keeps_its_reserved_connections_when_a_role_has_used_up_the_rest() {
    // Its own cluster: any other session would take one of the few slots.
    let cluster = PgCluster::builder()
        .max_connections(8)
        .start()
        .unwrap_or_else(|e| panic!("could not start the cluster: {e}"));
    assert_eq!(
        cluster.psql("postgres", "SHOW max_connections").unwrap(),
        "8"
    );
    assert_eq!(
        cluster
            .psql("postgres", "SHOW superuser_reserved_connections")
            .unwrap(),
        "3"
    );
    cluster.create_role("budget", "pw").unwrap();
    let url = cluster.primary().url_as("postgres", "budget", "pw");
    let cluster = &cluster;
    thread::scope(|scope| {
        // 8 - 3 reserved = 5 sessions, opened one at a time: one refused because the previous
        // check's backend had not exited yet is opened again.
        let mut held = Vec::new();
        while held.len() < 5 {
            let session =
                scope.spawn(|| cluster.psql_conninfo(&url, "SELECT pg_sleep(60)", TIMEOUT * 4));
            let deadline = Instant::now() + TIMEOUT;
            loop {
                if sessions(cluster, "budget") == held.len() + 1 {
                    held.push(session);
                    break;
                }
                if session.is_finished() {
                    let refused = session.join().unwrap().unwrap_err();
                    assert!(
                        refused.to_string().contains("remaining connection slots"),
                        "{refused}"
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "session {} did not open",
                    held.len() + 1
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        let refused = cluster
            .psql_conninfo(&url, "SELECT 1", TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("remaining connection slots are reserved"),
            "{refused}"
        );
        assert_eq!(
            cluster.psql("postgres", "SELECT current_user").unwrap(),
            "postgres"
        );
        let ended = cluster
            .psql(
                "postgres",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'budget'",
            )
            .unwrap();
        assert_eq!(ended, "t\nt\nt\nt\nt");
        for session in held {
            let err = session.join().unwrap().unwrap_err().to_string();
            assert!(err.contains("terminating connection"), "{err}");
        }
    });
}
