//! Every log line the process writes, at TRACE level (rds-balancer's, sqlx's, SeaORM's, the AWS
//! SDK's, and `log` records), captured while IAM auth and Secrets Manager credentials are used
//! against a real PostgreSQL with TLS and the moto emulator, through a password rotation: no
//! token, AWS secret key, database password or secret value appears in them, nor in any
//! `Debug` or `Display` of the connection, builders, providers and errors.
//!
//! One test in this binary, so that the subscriber is installed before anything else runs.

// Helpers outside `#[test]` functions panic to fail the test, as the tests themselves do.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_balancer::{
    CredentialProvider, Endpoint, ErrorKind, IamAuth, RdsConnection, SecretsManagerAuth, SslMode,
};
use rds_balancer_testkit::{PgCluster, RdsEmulator};
use sea_orm::{ConnectionTrait, Statement};
use tracing_subscriber::fmt::format::FmtSpan;

const USER: &str = "logs_app";
const OLD_PASSWORD: &str = "old-Pw-3f9a1c5e";
const NEW_PASSWORD: &str = "new-Pw-77b2e0d4";
/// The AWS keys: distinctive, so that any trace of them is found (neither moto nor the offline
/// IAM signer checks them).
const ACCESS_KEY_ID: &str = "AKIDLOGSEXAMPLE";
const AWS_SECRET_KEY: &str = "wJalrXUtnFEMI-logs-K7MDENG-bPxRfiCY";
const AWS_SESSION_TOKEN: &str = "FwoGZXIvYXdzLOGSsessionTOKEN";
/// A marker in the SQL of a statement run without `sqlx_logging(true)`.
const QUIET_SQL: &str = "quiet-by-default-7c1e";

/// The captured log output, shared by every writer the subscriber makes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `text` as `Debug` writes it inside a string (quotes and backslashes escaped).
fn escaped(text: &str) -> String {
    let debug = format!("{text:?}");
    debug[1..debug.len() - 1].to_owned()
}

fn secret_json(password: &str) -> String {
    serde_json::json!({"engine": "postgres", "username": USER, "password": password}).to_string()
}

fn url_without_password(cluster: &PgCluster, port: u16) -> String {
    format!(
        "postgres://{USER}@127.0.0.1:{port}/{USER}?sslmode=verify-full&sslrootcert={}",
        cluster.ca_path().expect("tls").display()
    )
}

fn stmt(sql: &str) -> Statement {
    Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql)
}

#[test]
fn no_secret_reaches_the_logs_or_debug_output() {
    // The body of a request or response is logged by the AWS SDK only when this is set.
    assert!(
        std::env::var_os("LOG_SENSITIVE_BODIES").is_none(),
        "unset LOG_SENSITIVE_BODIES: with it the AWS SDK logs response bodies by design"
    );
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the first subscriber of this process");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (shown, iam_token) = runtime.block_on(run());
    drop(runtime);

    let logs = capture.text();
    eprintln!(
        "captured {} bytes, {} lines of log output",
        logs.len(),
        logs.lines().count()
    );
    assert!(!logs.is_empty(), "nothing was logged");
    for target in [
        "rds_balancer::credentials::renewal",
        "rds_balancer::credentials::secrets_manager",
        "rds_balancer::credentials::iam",
        "sqlx::query",
        "aws_smithy_runtime",
        "aws_sigv4",
        "Secrets Manager.GetSecretValue",
        // The rotation went through the rejection path.
        "the database rejected the credentials; fetching new ones",
        "the database refused the secret's credentials; it will be fetched again",
    ] {
        assert!(
            logs.contains(target),
            "nothing from {target:?} was captured: the test would prove nothing about it"
        );
    }
    let signature = iam_token
        .split("X-Amz-Signature=")
        .nth(1)
        .expect("the token is signed")
        .to_owned();
    let old_secret = secret_json(OLD_PASSWORD);
    let new_secret = secret_json(NEW_PASSWORD);
    let secrets = [
        ("the IAM auth token", iam_token.as_str()),
        ("the IAM token's signature", signature.as_str()),
        ("the AWS secret access key", AWS_SECRET_KEY),
        ("the old database password", OLD_PASSWORD),
        ("the new database password", NEW_PASSWORD),
        ("the old secret value", &old_secret),
        ("the new secret value", &new_secret),
        ("the old secret value, escaped", &escaped(&old_secret)),
        ("the new secret value, escaped", &escaped(&new_secret)),
    ];
    for (what, secret) in secrets {
        if let Some(at) = logs.find(secret) {
            let line = logs[..at].lines().count();
            panic!("{what} appears in the logs (line {line})");
        }
        assert!(
            !shown.contains(secret),
            "{what} appears in a Debug or Display: {shown}"
        );
    }
    // aws-sigv4 (1.6) logs the canonical request of a presigned URL at TRACE, which for an IAM
    // auth token holds the AWS session token: rds-balancer signs with logging off.
    if let Some(at) = logs.find(AWS_SESSION_TOKEN) {
        let line = logs[..at].lines().count();
        panic!("the AWS session token appears in the logs (line {line})");
    }
    assert!(!shown.contains(AWS_SESSION_TOKEN), "{shown}");
    // sqlx's statement log was captured above (`sqlx::query`), from the connections that
    // asked for it; the statement of the one that did not is nowhere.
    assert!(
        !logs.contains(QUIET_SQL),
        "sqlx logged a statement of a connection built without sqlx_logging(true)"
    );
    // The Debug output said something: it was looked at.
    assert!(shown.contains(ACCESS_KEY_ID) && shown.contains("SecretsManagerAuth"));
}

/// Uses both providers for real; returns every `Debug` / `Display` made along the way and the
/// IAM token that was signed.
async fn run() -> (String, String) {
    let mut shown = Vec::<String>::new();
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = PgCluster::builder().replicas(1).tls(true).start().unwrap();
        cluster.create_role(USER, OLD_PASSWORD).unwrap();
        cluster
            .psql("postgres", &format!("CREATE DATABASE {USER} OWNER {USER}"))
            .unwrap();
        cluster
            .psql(
                USER,
                &format!("CREATE TABLE notes (id serial PRIMARY KEY, body text); ALTER TABLE notes OWNER TO {USER}"),
            )
            .unwrap();
        cluster.wait_replicated(Duration::from_secs(30)).unwrap();
        cluster
    })
    .await
    .unwrap();
    let cluster = Arc::new(cluster);
    let (primary, replica) = (cluster.primary().port(), cluster.replicas()[0].port());

    // IAM auth: signed offline with the explicit keys; the database (not RDS) refuses the token.
    let iam = IamAuth::builder(USER)
        .region("us-east-1")
        .credentials(
            ACCESS_KEY_ID,
            AWS_SECRET_KEY,
            Some(AWS_SESSION_TOKEN.to_owned()),
        )
        .build()
        .await
        .unwrap();
    let iam_token = iam
        .credentials(&Endpoint::new("127.0.0.1", primary))
        .await
        .unwrap()
        .password
        .expose()
        .to_owned();
    let builder = RdsConnection::builder()
        .writer(url_without_password(&cluster, primary))
        .credentials(iam.clone())
        .sqlx_logging(true);
    shown.push(format!("{builder:?}"));
    let refused = builder.build().await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Connect, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("password authentication failed"),
        "{refused}"
    );
    shown.push(format!("{refused} {refused:?} {iam:?}"));
    tracing::info!(error = %refused, ?refused, ?iam, "IAM auth refused, as expected");

    // Secrets Manager, through a rotation (secret first, then the database).
    let aws = tokio::task::spawn_blocking(RdsEmulator::start)
        .await
        .unwrap()
        .unwrap();
    let aws = Arc::new(aws);
    let created = aws
        .create_secret("logs-app", &secret_json(OLD_PASSWORD))
        .unwrap();
    let secrets_builder = SecretsManagerAuth::builder(&created.arn)
        .region(aws.region())
        .endpoint_url(aws.endpoint_url())
        .credentials(
            ACCESS_KEY_ID,
            AWS_SECRET_KEY,
            Some(AWS_SESSION_TOKEN.to_owned()),
        );
    shown.push(format!("{secrets_builder:?}"));
    let secrets = secrets_builder.build().await.unwrap();
    let builder = RdsConnection::builder()
        .writer(url_without_password(&cluster, primary))
        .reader(url_without_password(&cluster, replica))
        .ssl_mode(SslMode::VerifyFull)
        .credentials(secrets.clone())
        .max_connections(2)
        .max_lifetime(Duration::from_millis(500))
        .sqlx_logging(true);
    shown.push(format!("{builder:?}"));
    let db = builder.build().await.unwrap();
    db.execute_raw(stmt("INSERT INTO notes (body) VALUES ('before')"))
        .await
        .unwrap();
    db.query_all_raw(stmt("SELECT body FROM notes"))
        .await
        .unwrap();

    let (aws_rotate, cluster_rotate, arn) =
        (Arc::clone(&aws), Arc::clone(&cluster), created.arn.clone());
    // When the database took the new password, by its own clock.
    let rotated = tokio::task::spawn_blocking(move || {
        aws_rotate
            .put_secret_value(&arn, &secret_json(NEW_PASSWORD))
            .unwrap();
        cluster_rotate.set_password(USER, NEW_PASSWORD).unwrap();
        cluster_rotate.psql("postgres", "SELECT now()").unwrap()
    })
    .await
    .unwrap();
    // Statements until the writer has a session opened after the rotation (connections live
    // 500 ms): the old password is refused once, the secret is fetched again, and they run.
    let opened_since = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{USER}' \
         AND backend_start > '{rotated}' AND state IS NOT NULL"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        db.execute_raw(stmt("INSERT INTO notes (body) VALUES ('after')"))
            .await
            .unwrap();
        db.query_all_raw(stmt("SELECT count(*) FROM notes"))
            .await
            .unwrap();
        let (cluster, sql) = (Arc::clone(&cluster), opened_since.clone());
        let opened = tokio::task::spawn_blocking(move || cluster.psql("postgres", &sql).unwrap())
            .await
            .unwrap();
        if opened.trim() != "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection was opened with the new password"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Without `sqlx_logging(true)`, sqlx logs no statement: its SQL carries user data.
    let quiet = RdsConnection::builder()
        .writer(url_without_password(&cluster, primary))
        .ssl_mode(SslMode::VerifyFull)
        .credentials(secrets.clone())
        .build()
        .await
        .unwrap();
    quiet
        .query_all_raw(stmt(&format!("SELECT '{QUIET_SQL}' AS marker")))
        .await
        .unwrap();
    assert!(quiet.shutdown(Duration::from_secs(10)).await.drained);
    let secret = secrets.secret().await.unwrap();
    assert_eq!(secret.password.expose(), NEW_PASSWORD);
    shown.push(format!("{db:?} {secrets:?} {secret:?}"));
    tracing::info!(?db, ?secrets, ?secret, "after the rotation");

    // Failing fetches: an unknown secret, and a value that is not an RDS secret.
    let missing = SecretsManagerAuth::builder("logs-missing")
        .region(aws.region())
        .endpoint_url(aws.endpoint_url())
        .credentials(ACCESS_KEY_ID, AWS_SECRET_KEY, None)
        .build()
        .await
        .unwrap();
    let err = missing
        .credentials(&Endpoint::new("127.0.0.1", primary))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    shown.push(format!("{err} {err:?} {missing:?}"));
    tracing::warn!(error = %err, ?err, "GetSecretValue failed, as expected");
    aws.create_secret("logs-garbled", &format!("{{\"password\": {NEW_PASSWORD}}}"))
        .unwrap();
    let garbled = SecretsManagerAuth::builder("logs-garbled")
        .region(aws.region())
        .endpoint_url(aws.endpoint_url())
        .credentials(ACCESS_KEY_ID, AWS_SECRET_KEY, None)
        .build()
        .await
        .unwrap();
    let err = garbled
        .credentials(&Endpoint::new("127.0.0.1", primary))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    shown.push(format!("{err} {err:?} {garbled:?}"));
    tracing::warn!(error = %err, ?err, "an unparsable secret, as expected");

    let report = db.shutdown(Duration::from_secs(10)).await;
    shown.push(format!("{report:?}"));
    assert!(report.drained);
    drop(aws);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
    (shown.join("\n"), iam_token)
}
