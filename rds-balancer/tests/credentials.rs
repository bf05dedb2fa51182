//! Credential providers against a real PostgreSQL cluster: asked for every pool rds-balancer
//! opens (by the endpoint a topology names, before the resolver), asked again before what they
//! gave expires, and never printed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rds_balancer::{
    CredentialProvider, Credentials, Endpoint, ErrorKind, Instance, RdsConnection, SslMode,
    Topology,
};
use rds_balancer_testkit::PgCluster;
use sea_orm::ConnectionTrait;
use support::{cluster, served_by};

/// A provider that records what it was asked for and hands out short-lived passwords.
#[derive(Clone, Default)]
struct Recording {
    asked: Arc<Mutex<Vec<(Instant, Endpoint)>>>,
}

#[async_trait::async_trait]
impl CredentialProvider for Recording {
    async fn credentials(&self, endpoint: &Endpoint) -> rds_balancer::Result<Credentials> {
        self.asked
            .lock()
            .unwrap()
            .push((Instant::now(), endpoint.clone()));
        // The test cluster trusts loopback connections: the password is carried, not checked.
        Ok(Credentials::new("postgres", "hunter2-short-lived")
            .expiring_at(SystemTime::now() + Duration::from_millis(900)))
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

#[tokio::test]
async fn every_pool_asks_the_provider_by_its_endpoint_and_renews_before_expiry() {
    let cluster = cluster();
    support::create_database(cluster, "credentials_ask");
    let reader = &cluster.replicas()[0];
    let provider = Recording::default();
    let db = RdsConnection::builder()
        .writer(cluster.primary().url("credentials_ask"))
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
    let writer = Endpoint::new("127.0.0.1", cluster.primary().port());
    assert_eq!(
        provider.asked_for(&writer),
        1,
        "asked before the writer's pool opened"
    );

    db.apply_topology(&Topology::new(vec![
        Instance::writer("w").with_endpoint("127.0.0.1", cluster.primary().port()),
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
    assert_eq!(served_by(&db).await, reader.port());

    // The credentials last 900 ms: each pool asks again well before that, and keeps working.
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.asked_for(&discovered) < 3 || provider.asked_for(&writer) < 3 {
        assert!(Instant::now() < deadline, "no renewals");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(served_by(&db).await, reader.port());
    }
    // Renewed before expiry: the gaps between two asks for one endpoint stay under 900 ms.
    let asks: Vec<Instant> = provider
        .asked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| *e == discovered)
        .map(|(at, _)| *at)
        .collect();
    for pair in asks.windows(2) {
        assert!(pair[1] - pair[0] < Duration::from_millis(900), "{asks:?}");
    }
    // No password in the connection's or builder's Debug output.
    assert!(!format!("{db:?}").contains("hunter2"));
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
    // Renewal stops with the pools.
    let after = provider.asked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(provider.asked.lock().unwrap().len(), after);
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

#[tokio::test]
async fn credentials_that_need_tls_refuse_a_plain_connection() {
    let cluster = cluster();
    let err = RdsConnection::builder()
        .writer(cluster.primary().url("postgres"))
        .credentials(TlsOnly)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    // Encrypted but unverified is not enough either: a server in the middle would get them.
    let err = RdsConnection::builder()
        .writer(format!(
            "{}?sslmode=require",
            cluster.primary().url("postgres")
        ))
        .credentials(TlsOnly)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[tokio::test]
async fn a_provider_that_fails_fails_the_build_with_a_typed_error() {
    let cluster = cluster();
    let err = RdsConnection::builder()
        .writer(cluster.primary().url("postgres"))
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

#[tokio::test]
async fn connect_lazy_builds_without_reaching_the_hosts() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
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
