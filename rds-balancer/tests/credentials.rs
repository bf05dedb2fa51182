//! Credential providers against a real cluster, on PostgreSQL and on MariaDB (each test body
//! runs on both, with a login whose password the server checks): asked for every pool
//! rds-balancer opens (by the endpoint a topology names, before the resolver), asked again
//! before what they gave expires and after the database refused them (a rotated password), and
//! never printed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies and helpers outside #[test] fns

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rds_balancer::{
    CredentialProvider, Credentials, Endpoint, ErrorKind, Instance, RdsConnection, SslMode,
    Topology,
};
use rds_balancer_testkit::PgCluster;
use sea_orm::ConnectionTrait;
use support::{Cluster, Kind, Node, backend_tests, node_admin, port_in, served_by, stmt};

backend_tests!(
    every_pool_asks_the_provider_by_its_endpoint_and_renews_before_expiry,
    credentials_that_need_tls_refuse_a_plain_connection,
    a_provider_that_fails_fails_the_build_with_a_typed_error,
    fixed_credentials_replace_the_urls_and_a_wrong_password_is_refused,
    a_rotated_password_is_fetched_again_and_the_statement_runs_once_more,
    connect_lazy_builds_without_reaching_the_hosts,
);

/// Creates login `user` with `password` on `cluster` (PostgreSQL: a role, which the kit's
/// `pg_hba.conf` makes give its password over TCP; MariaDB: a user with the application's
/// privileges), replicated to every replica.
fn create_login(cluster: &Cluster, user: &str, password: &str) {
    match cluster {
        Cluster::Postgres(c) => c.create_role(user, password),
        Cluster::MySql(c) => c.create_user(user, password),
    }
    .unwrap_or_else(|e| panic!("create login {user}: {e}"));
}

/// Changes `user`'s password (`ALTER ROLE` / `ALTER USER`) and waits for the replicas. Open
/// connections stay open; new ones need the new password.
fn set_password(cluster: &Cluster, user: &str, password: &str) {
    match cluster {
        Cluster::Postgres(c) => c.set_password(user, password),
        Cluster::MySql(c) => c.set_password(user, password),
    }
    .unwrap_or_else(|e| panic!("set {user}'s password: {e}"));
}

/// Whether `node` lets `user` in with `password`, asked with the database's own client.
fn password_accepted(cluster: &Cluster, node: Node<'_>, user: &str, password: &str) -> bool {
    match node {
        Node::Postgres(n) => cluster
            .pg()
            .psql_conninfo(
                &n.url_as("postgres", user, password),
                "SELECT 1",
                Duration::from_secs(10),
            )
            .is_ok(),
        Node::MySql(n) => n.sql_as("", user, password, "SELECT 1").is_ok(),
    }
}

/// A URL of database `db` on `node` as `user`, without a password (a provider gives it).
fn url_without_password(node: Node<'_>, db: &str, user: &str) -> String {
    let scheme = match node {
        Node::Postgres(_) => "postgres",
        Node::MySql(_) => "mysql",
    };
    format!("{scheme}://{user}@127.0.0.1:{}/{db}", node.port())
}

/// The sessions `user` has open on `node`, as the server reports them.
fn sessions_of(node: Node<'_>, user: &str) -> usize {
    let sql = match node {
        Node::Postgres(_) => {
            format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'")
        }
        Node::MySql(_) => {
            format!("SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'")
        }
    };
    node_admin(node, &sql).trim().parse().expect("a count")
}

/// Ends every session of `user` on `node` (as a server restart or an idle timeout would) and
/// waits until the server reports none: the pools' next statements need new connections.
async fn end_sessions(node: Node<'_>, user: &str) {
    let sql = match node {
        Node::Postgres(_) => format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '{user}'"
        ),
        Node::MySql(_) => format!("KILL CONNECTION USER '{user}'"),
    };
    node_admin(node, &sql);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sessions_of(node, user) > 0 {
        assert!(
            Instant::now() < deadline,
            "{user}'s sessions on {} did not end",
            node.name()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `SELECT <the serving port> AS port, <the session's user> AS who`.
fn who_sql(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "SELECT inet_server_port() AS port, current_user::text AS who",
        Kind::MySql => "SELECT @@port AS port, SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AS who",
    }
}

/// Runs `sql` (prefixed with a routing hint, if any) and returns the serving port and the
/// session's user, from [`who_sql`].
async fn who(db: &RdsConnection, hint: &str) -> (u16, String) {
    let sql = format!("{hint}{}", who_sql(db_kind(db)));
    let row = db
        .query_one_raw(stmt(db, &sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap();
    let port = port_in(&row).expect("an integer port column");
    (port, row.try_get::<String>("", "who").unwrap())
}

fn db_kind(db: &RdsConnection) -> Kind {
    match db.get_database_backend() {
        sea_orm::DbBackend::MySql => Kind::MySql,
        _ => Kind::Postgres,
    }
}

/// A provider that records what it was asked for and hands out short-lived passwords.
/// How long the recording provider's credentials are valid.
const VALIDITY: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct Recording {
    user: &'static str,
    password: &'static str,
    asked: Arc<Mutex<Vec<(Instant, Endpoint)>>>,
}

#[async_trait::async_trait]
impl CredentialProvider for Recording {
    async fn credentials(&self, endpoint: &Endpoint) -> rds_balancer::Result<Credentials> {
        self.asked
            .lock()
            .unwrap()
            .push((Instant::now(), endpoint.clone()));
        Ok(Credentials::new(self.user, self.password).expiring_at(SystemTime::now() + VALIDITY))
    }
}

impl Recording {
    fn asked_for(&self, endpoint: &Endpoint) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| e == endpoint)
            .count()
    }
}

async fn every_pool_asks_the_provider_by_its_endpoint_and_renews_before_expiry(kind: Kind) {
    const USER: &str = "credentials_ask";
    let cluster = Cluster::shared(kind);
    cluster.create_database("credentials_ask");
    // The server checks the password: the provider's credentials are the ones in use.
    create_login(cluster, USER, "hunter2-short-lived");
    let reader = cluster.replicas()[0];
    let provider = Recording {
        user: USER,
        password: "hunter2-short-lived",
        asked: Arc::default(),
    };
    let db = RdsConnection::builder()
        // The URL's user (and, on MySQL, password) are replaced by the provider's.
        .writer(cluster.writer_url("credentials_ask"))
        .credentials(provider.clone())
        // The topology names hosts that only the resolver can dial.
        .endpoint_resolver(|host: &str, port: u16| {
            let host = if host.ends_with(".example.internal") {
                "127.0.0.1"
            } else {
                host
            };
            (host.to_owned(), port)
        })
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let writer = Endpoint::new("127.0.0.1", cluster.writer_port());
    assert_eq!(
        provider.asked_for(&writer),
        1,
        "asked before the writer's pool opened"
    );
    assert_eq!(
        who(&db, "/*@writer*/ ").await,
        (cluster.writer_port(), USER.to_owned()),
        "the writer's sessions log in with the provider's credentials"
    );

    db.apply_topology(&Topology::new(vec![
        Instance::writer("w").with_endpoint("127.0.0.1", cluster.writer_port()),
        Instance::reader("r").with_endpoint("r.example.internal", reader.port()),
    ]))
    .await
    .unwrap();
    let discovered = Endpoint::new("r.example.internal", reader.port());
    assert_eq!(
        provider.asked_for(&discovered),
        1,
        "a discovered reader is asked for by its instance endpoint, not the dialled address"
    );
    assert_eq!(
        who(&db, "").await,
        (reader.port(), USER.to_owned()),
        "the reader's sessions log in with the provider's credentials"
    );

    // The credentials last VALIDITY: each pool asks again well before that (at two thirds of
    // it), and keeps working.
    let deadline = Instant::now() + 10 * VALIDITY;
    while provider.asked_for(&discovered) < 3 || provider.asked_for(&writer) < 3 {
        assert!(Instant::now() < deadline, "no renewals");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(served_by(&db).await, reader.port());
    }
    // Renewed before expiry: the gaps between two asks for one endpoint stay under VALIDITY (a
    // third of it is the slack a busy machine may take from the renewal's timer).
    let asks: Vec<Instant> = provider
        .asked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| *e == discovered)
        .map(|(at, _)| *at)
        .collect();
    for pair in asks.windows(2) {
        assert!(pair[1] - pair[0] < VALIDITY, "{asks:?}");
    }
    // No password in the connection's or builder's Debug output.
    assert!(!format!("{db:?}").contains("hunter2"));
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
    // Renewal stops with the pools.
    let after = provider.asked.lock().unwrap().len();
    tokio::time::sleep(VALIDITY).await;
    assert_eq!(provider.asked.lock().unwrap().len(), after);
}

/// A database that exists on every server of a fresh cluster.
fn system_db(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "postgres",
        Kind::MySql => "mysql",
    }
}

/// A provider whose credentials may only travel over TLS.
struct TlsOnly;

#[async_trait::async_trait]
impl CredentialProvider for TlsOnly {
    async fn credentials(&self, _: &Endpoint) -> rds_balancer::Result<Credentials> {
        Ok(Credentials::new("app", "token"))
    }

    fn requires_tls(&self) -> bool {
        true
    }
}

async fn credentials_that_need_tls_refuse_a_plain_connection(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let url = cluster.writer_url(system_db(kind));
    let err = RdsConnection::builder()
        .writer(url.clone())
        .credentials(TlsOnly)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    // Encrypted but unverified is not enough either: a server in the middle would get them.
    let unverified = match kind {
        Kind::Postgres => "sslmode=require",
        Kind::MySql => "ssl-mode=REQUIRED",
    };
    let err = RdsConnection::builder()
        .writer(format!("{url}?{unverified}"))
        .credentials(TlsOnly)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    // The builder's setting counts the same way.
    let err = RdsConnection::builder()
        .writer(url)
        .ssl_mode(SslMode::Require)
        .credentials(TlsOnly)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

async fn a_provider_that_fails_fails_the_build_with_a_typed_error(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let err = RdsConnection::builder()
        .writer(cluster.writer_url(system_db(kind)))
        .credentials(|_: &Endpoint| async {
            Err(rds_balancer::Error::Credentials(
                "the vault is sealed".into(),
            ))
        })
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials, "{err}");
}

/// The text of a refused login: PostgreSQL says `password authentication failed` (SQLSTATE
/// 28P01, which sqlx does not print); MariaDB says error 1045 (`Access denied`).
fn assert_login_refused(kind: Kind, err: &dyn std::fmt::Display) {
    let text = err.to_string();
    let expected = match kind {
        Kind::Postgres => "password authentication failed",
        Kind::MySql => "1045",
    };
    assert!(text.contains(expected), "{kind:?}: {text}");
}

async fn fixed_credentials_replace_the_urls_and_a_wrong_password_is_refused(kind: Kind) {
    const USER: &str = "fixed_login";
    let cluster = Cluster::shared(kind);
    cluster.create_database("credentials_fixed");
    create_login(cluster, USER, "fixed-pw");
    let reader = cluster.replicas()[0];
    // The URLs name the tests' usual user; the builder's credentials win.
    let builder = || {
        RdsConnection::builder()
            .writer(cluster.writer_url("credentials_fixed"))
            .reader(reader.url("credentials_fixed"))
            .sqlx_logging(false)
    };
    let db = builder()
        .credentials(Credentials::new(USER, "fixed-pw"))
        .build()
        .await
        .unwrap();
    assert_eq!(
        who(&db, "/*@writer*/ ").await,
        (cluster.writer_port(), USER.to_owned())
    );
    assert_eq!(who(&db, "").await, (reader.port(), USER.to_owned()));
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);

    // They are really checked: a wrong password is refused, with the database's reason.
    let err = builder()
        .credentials(Credentials::new(USER, "wrong"))
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_login_refused(kind, &err);
}

/// A provider with the current password of a login that the test rotates; records what it was
/// asked for and which endpoints' credentials the database refused.
#[derive(Clone)]
struct Rotating {
    user: &'static str,
    password: Arc<Mutex<&'static str>>,
    asked: Arc<Mutex<Vec<Endpoint>>>,
    rejected: Arc<Mutex<Vec<Endpoint>>>,
}

#[async_trait::async_trait]
impl CredentialProvider for Rotating {
    async fn credentials(&self, endpoint: &Endpoint) -> rds_balancer::Result<Credentials> {
        self.asked.lock().unwrap().push(endpoint.clone());
        Ok(Credentials::new(self.user, *self.password.lock().unwrap()))
    }

    fn rejected(&self, endpoint: &Endpoint) {
        self.rejected.lock().unwrap().push(endpoint.clone());
    }
}

impl Rotating {
    fn asked_for(&self, endpoint: &Endpoint) -> usize {
        let asked = self.asked.lock().unwrap();
        asked.iter().filter(|e| *e == endpoint).count()
    }

    fn rejected_for(&self, endpoint: &Endpoint) -> usize {
        let rejected = self.rejected.lock().unwrap();
        rejected.iter().filter(|e| *e == endpoint).count()
    }
}

/// The password changes under a running connection whose credentials never expire: the next
/// new connection is refused (PostgreSQL 28P01, MariaDB 1045), the provider is told and asked
/// again, and the statement, never sent, runs once more with the new password. Nothing fails.
async fn a_rotated_password_is_fetched_again_and_the_statement_runs_once_more(kind: Kind) {
    const USER: &str = "rotating_app";
    const DB: &str = "credentials_rotate";
    let cluster = Cluster::shared(kind);
    cluster.create_database(DB);
    create_login(cluster, USER, "first-pw");
    if kind == Kind::Postgres {
        // The role owns nothing; the MariaDB user has the application's privileges already.
        cluster.admin(
            DB,
            &format!(
                "GRANT SELECT, INSERT ON cake TO {USER}; GRANT USAGE ON SEQUENCE cake_id_seq TO {USER}"
            ),
        );
        cluster.wait_replicated();
    }
    let (primary, replica) = (cluster.primary(), cluster.replicas()[0]);
    let provider = Rotating {
        user: USER,
        password: Arc::new(Mutex::new("first-pw")),
        asked: Arc::default(),
        rejected: Arc::default(),
    };
    let builder = || {
        RdsConnection::builder()
            .writer(url_without_password(primary, DB, USER))
            .reader(url_without_password(replica, DB, USER))
            // No probes: the statements themselves meet the refusal.
            .health_check_interval(None)
            // Reads right after a write go to the replica: both pools are exercised.
            .read_your_writes(Duration::ZERO)
            .sqlx_logging(false)
    };
    let db = builder()
        .credentials(provider.clone())
        .build()
        .await
        .unwrap();
    // A connection whose provider still has the old password after the rotation.
    let stale = builder()
        .credentials(Credentials::new(USER, "first-pw"))
        .build()
        .await
        .unwrap();
    let (writer, reader) = (
        Endpoint::new("127.0.0.1", primary.port()),
        Endpoint::new("127.0.0.1", replica.port()),
    );
    let insert = "INSERT INTO cake (name) VALUES ('x')";
    db.execute_unprepared(insert).await.unwrap();
    assert_eq!(who(&db, "").await, (replica.port(), USER.to_owned()));
    assert_eq!(
        stale
            .execute_unprepared(insert)
            .await
            .unwrap()
            .rows_affected(),
        1
    );
    assert_eq!(cluster.count_on_primary(DB), 2);
    assert_eq!(
        (provider.asked_for(&writer), provider.asked_for(&reader)),
        (1, 1)
    );

    // The rotation: the database first, then the provider's source; then the open sessions
    // end, so that the pools' next statements need new connections.
    set_password(cluster, USER, "second-pw");
    *provider.password.lock().unwrap() = "second-pw";
    for node in [primary, replica] {
        end_sessions(node, USER).await;
        assert!(
            !password_accepted(cluster, node, USER, "first-pw"),
            "the old password still works"
        );
        assert!(
            password_accepted(cluster, node, USER, "second-pw"),
            "the new password does not work"
        );
    }

    // The write: refused at login, run once more with the new password, exactly once.
    assert_eq!(
        db.execute_unprepared(insert).await.unwrap().rows_affected(),
        1
    );
    assert_eq!(cluster.count_on_primary(DB), 3, "the write ran once");
    assert_eq!(
        provider.rejected_for(&writer),
        1,
        "the refusal reached the provider"
    );
    assert_eq!(provider.asked_for(&writer), 2, "asked again once");
    // The read: the same on the reader's pool, and it stays on the replica.
    assert_eq!(who(&db, "").await, (replica.port(), USER.to_owned()));
    assert_eq!(
        provider.rejected_for(&reader),
        1,
        "the refusal reached the provider"
    );
    assert_eq!(provider.asked_for(&reader), 2, "asked again once");
    // From then on, nothing is refused.
    for _ in 0..20 {
        db.execute_unprepared(insert).await.unwrap();
        assert_eq!(who(&db, "").await, (replica.port(), USER.to_owned()));
    }
    assert_eq!(cluster.count_on_primary(DB), 23);
    assert_eq!(
        (
            provider.rejected_for(&writer),
            provider.rejected_for(&reader)
        ),
        (1, 1)
    );
    for node in [primary, replica] {
        assert!(
            sessions_of(node, USER) > 0,
            "no session with the new password on {}",
            node.name()
        );
    }

    // A provider that still gives the old password: the statement is tried once more with
    // what it gives again, and the database's refusal reaches the caller.
    let err = stale.execute_unprepared(insert).await.unwrap_err();
    assert_login_refused(kind, &err);
    let err = who_err(&stale).await;
    assert_login_refused(kind, &err);
    assert_eq!(
        cluster.count_on_primary(DB),
        23,
        "the refused write was not sent"
    );

    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
    assert!(stale.shutdown(Duration::from_secs(10)).await.drained);
}

/// The error of a read through `db` that must fail.
async fn who_err(db: &RdsConnection) -> sea_orm::DbErr {
    let sql = who_sql(db_kind(db));
    db.query_one_raw(stmt(db, sql)).await.unwrap_err()
}

/// PostgreSQL only: the MariaDB test kit has no TLS.
#[tokio::test]
async fn builder_tls_settings_and_fixed_credentials_reach_a_verifying_server() {
    let cluster = PgCluster::builder().tls(true).start().unwrap();
    cluster.create_role("fixed_app", "fixed-pw").unwrap();
    cluster
        .psql("postgres", "CREATE DATABASE fixed_app OWNER fixed_app")
        .unwrap();
    let ca = cluster.ca_path().unwrap().to_owned();
    // No sslmode and no password in the URL: both come from the builder.
    let url = format!(
        "postgres://fixed_app@127.0.0.1:{}/fixed_app",
        cluster.primary().port()
    );
    let builder = || {
        RdsConnection::builder()
            .writer(url.clone())
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(ca.clone())
            .sqlx_logging(false)
    };
    let db = builder()
        .credentials(Credentials::new("fixed_app", "fixed-pw"))
        .build()
        .await
        .unwrap();
    let row = db
        .query_one_raw(support::stmt(
            &db,
            "/*@writer*/ SELECT current_user::text AS who, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<String>("", "who").unwrap(), "fixed_app");
    // Verified against the kit's CA, which no system trusts: the builder's root cert is used.
    assert!(row.try_get::<bool>("", "ssl").unwrap());
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);

    // The builder's mode wins over the default (`prefer`, which would use TLS here).
    let plain = RdsConnection::builder()
        .writer(url.clone())
        .ssl_mode(SslMode::Disable)
        .credentials(Credentials::new("fixed_app", "fixed-pw"))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let row = plain
        .query_one_raw(support::stmt(
            &plain,
            "/*@writer*/ SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !row.try_get::<bool>("", "ssl").unwrap(),
        "ssl_mode(Disable) applied"
    );
    assert!(plain.shutdown(Duration::from_secs(10)).await.drained);

    // The fixed credentials are really checked: a wrong password is refused.
    let err = builder()
        .credentials(Credentials::new("fixed_app", "wrong"))
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
}

async fn connect_lazy_builds_without_reaching_the_hosts(kind: Kind) {
    // A port nothing listens on; no cluster is needed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = match kind {
        Kind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        Kind::MySql => format!("mysql://app:app-secret@127.0.0.1:{port}/app"),
    };
    let err = RdsConnection::builder()
        .writer(url.clone())
        .acquire_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    let db = RdsConnection::builder()
        .writer(url)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(true)
        .build()
        .await
        .expect("nothing is dialled at build time");
    // The first statement dials, and fails.
    assert!(
        db.execute_unprepared("SELECT 1").await.is_err(),
        "the host was never reachable"
    );
}
