//! Clusters that serve TLS with a certificate from the kit's own CA, against real PostgreSQL
//! servers, checked with libpq (psql, `sslmode=verify-full`) and with rustls/webpki (what sqlx
//! uses). Fails (never skips) when PostgreSQL or openssl is missing.
// Helper functions of tests panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rds_balancer_testkit::{Error, PgCluster, PgNode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Whether the session that runs it uses TLS.
const SSL_SQL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// A primary and a replica serving TLS, plain connections allowed.
fn tls() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::builder()
            .replicas(1)
            .tls(true)
            .start()
            .unwrap_or_else(|e| panic!("could not start the TLS cluster: {e}"))
    })
}

/// A primary and a replica that accept TLS connections only.
fn tls_only() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::builder()
            .replicas(1)
            .require_tls(true)
            .start()
            .unwrap_or_else(|e| panic!("could not start the TLS-only cluster: {e}"))
    })
}

fn ca(cluster: &PgCluster) -> &Path {
    cluster.ca_path().unwrap()
}

/// A keyword/value connection string to `node` as `postgres`, plus `extra`.
fn conninfo(node: &PgNode, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres {extra}",
        node.port()
    )
}

/// `extra` for `sslmode=verify-full` against `ca`.
fn verify_full(ca: &Path) -> String {
    format!("sslmode=verify-full sslrootcert={}", ca.display())
}

/// The standard error of a psql that was refused.
fn refusal(result: Result<String, Error>) -> String {
    match result {
        Err(Error::Command { stderr, .. }) => stderr,
        other => panic!("expected psql to be refused, got {other:?}"),
    }
}

#[test]
fn verify_full_connections_to_every_node_use_tls() {
    let cluster = tls();
    let ca = ca(cluster);
    assert!(ca.is_file(), "{}", ca.display());
    assert!(ca.starts_with(cluster.dir()));
    let pem = std::fs::read_to_string(ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(cluster.nodes().count(), 2);
    for node in cluster.nodes() {
        // The replica, made by pg_basebackup, serves the certificate too.
        assert_eq!(node.psql("postgres", "SHOW ssl").unwrap(), "on");
        for host in ["127.0.0.1", "localhost"] {
            let conn = format!(
                "host={host} port={} user=postgres dbname=postgres {}",
                node.port(),
                verify_full(ca)
            );
            let sql = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
            let out = cluster.psql_conninfo(&conn, sql, TIMEOUT).unwrap();
            assert!(
                out.starts_with("t|TLSv1."),
                "{} via {host}: {out}",
                node.name()
            );
        }
        // The URI form with node.url(), as a sqlx client would be given.
        let url = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            node.url("postgres"),
            ca.display()
        );
        assert_eq!(cluster.psql_conninfo(&url, SSL_SQL, TIMEOUT).unwrap(), "t");
    }
}

#[test]
fn plain_connections_are_still_accepted_unless_tls_is_required() {
    let cluster = tls();
    for node in cluster.nodes() {
        let plain = conninfo(node, "sslmode=disable");
        assert_eq!(
            cluster.psql_conninfo(&plain, SSL_SQL, TIMEOUT).unwrap(),
            "f"
        );
    }
    // The kit's own psql prefers TLS.
    assert_eq!(cluster.psql("postgres", SSL_SQL).unwrap(), "t");
}

#[test]
fn the_certificate_names_loopback_and_the_emulator_hosts_only() {
    let cluster = tls();
    let node = cluster.primary();
    let as_host = |host: &str| {
        let conn = format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres {}",
            node.port(),
            verify_full(ca(cluster))
        );
        cluster.psql_conninfo(&conn, SSL_SQL, TIMEOUT)
    };
    // An RDS instance host name of the emulator, dialled at 127.0.0.1 as resolve_to_loopback does.
    let rds_host = "app-primary.aaaaaaaaaa.us-east-1.rds.amazonaws.com";
    assert_eq!(as_host(rds_host).unwrap(), "t");
    let stderr = refusal(as_host("db.example.com"));
    assert!(stderr.contains("does not match host name"), "{stderr}");
}

#[test]
fn a_client_that_trusts_another_ca_refuses_the_server() {
    let (cluster, other) = (tls(), tls_only());
    assert_ne!(
        std::fs::read(ca(cluster)).unwrap(),
        std::fs::read(ca(other)).unwrap(),
        "each cluster has its own CA"
    );
    let conn = conninfo(cluster.primary(), &verify_full(ca(other)));
    let stderr = refusal(cluster.psql_conninfo(&conn, SSL_SQL, TIMEOUT));
    assert!(stderr.contains("certificate verify failed"), "{stderr}");
}

#[test]
fn require_tls_refuses_plain_connections_and_replicates_over_tls() {
    let cluster = tls_only();
    assert!(ca(cluster).is_file());
    for node in cluster.nodes() {
        let stderr =
            refusal(cluster.psql_conninfo(&conninfo(node, "sslmode=disable"), SSL_SQL, TIMEOUT));
        assert!(stderr.contains("no pg_hba.conf entry"), "{stderr}");
        assert!(stderr.contains("no encryption"), "{stderr}");
        let tls = conninfo(node, &verify_full(ca(cluster)));
        assert_eq!(cluster.psql_conninfo(&tls, SSL_SQL, TIMEOUT).unwrap(), "t");
        // The kit's own connections use TLS.
        assert_eq!(node.psql("postgres", SSL_SQL).unwrap(), "t");
    }
    let sql = "SELECT r.application_name, s.ssl FROM pg_stat_replication r \
               JOIN pg_stat_ssl s ON s.pid = r.pid";
    assert_eq!(cluster.psql("postgres", sql).unwrap(), "replica-1|t");
    // A role with the right password is refused too, without TLS.
    cluster.create_role("tls_app", "pw").unwrap();
    let url = cluster.replicas()[0].url_as("postgres", "tls_app", "pw");
    let stderr =
        refusal(cluster.psql_conninfo(&format!("{url}?sslmode=disable"), "SELECT 1", TIMEOUT));
    assert!(stderr.contains("no pg_hba.conf entry"), "{stderr}");
    let ok = cluster
        .psql_conninfo(
            &format!("{url}?sslmode=require"),
            "SELECT current_user",
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(ok, "tls_app");
}

/// Opens a TLS session to `port` the way a PostgreSQL client does (an `SSLRequest`, then the
/// handshake), with rustls verifying the server as `server_name` against `ca`; then starts a
/// session as `postgres` and returns the first message type the server answers (`R`:
/// authentication).
fn rustls_session(port: u16, ca: &Path, server_name: &str) -> Result<u8, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let mut tls = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    // SSLRequest: length 8, code 80877103.
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut answer = [0u8];
    tcp.read_exact(&mut answer).unwrap();
    assert_eq!(answer[0], b'S', "the server declined TLS");
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    // StartupMessage, protocol 3.0.
    let params = b"user\0postgres\0database\0postgres\0\0";
    let len = u32::try_from(8 + params.len()).unwrap();
    let mut startup = len.to_be_bytes().to_vec();
    startup.extend(196_608u32.to_be_bytes());
    startup.extend(params);
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    stream.write_all(&startup).unwrap();
    let mut kind = [0u8];
    stream.read_exact(&mut kind).unwrap();
    Ok(kind[0])
}

#[test]
fn rustls_verifies_the_certificate_for_ip_localhost_and_rds_names() {
    let cluster = tls();
    for node in cluster.nodes() {
        for name in [
            "127.0.0.1",
            "localhost",
            "app-replica-1.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
        ] {
            let first = rustls_session(node.port(), ca(cluster), name)
                .unwrap_or_else(|e| panic!("rustls refused {} as {name}: {e}", node.name()));
            assert_eq!(first, b'R', "{} as {name}", node.name());
        }
        let err = rustls_session(node.port(), ca(cluster), "db.example.com").unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
        let err = rustls_session(node.port(), ca(tls_only()), "127.0.0.1").unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }
}
