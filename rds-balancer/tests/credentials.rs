//! Credential providers against a real PostgreSQL cluster: asked for every pool rds-balancer
//! opens (by the endpoint a topology names, before the resolver), asked again before what they
//! gave expires, and never printed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rds_balancer::{
    CredentialProvider, Credentials, Endpoint, ErrorKind, Instance, RdsConnection, Topology,
};
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
