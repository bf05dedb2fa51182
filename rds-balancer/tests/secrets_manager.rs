//! `SecretsManagerAuth` against the moto emulator and a real PostgreSQL cluster with TLS and
//! password-checked roles: the secret is cached for every endpoint, fetched again when the
//! database refuses it, and a password rotation in either order leaves traffic flowing.

// Helpers outside `#[test]` functions panic to fail the test, as the tests themselves do.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rds_balancer::{
    AwsSettings, CredentialProvider, Endpoint, ErrorKind, RdsApiSource, RdsConnection,
    SecretsManagerAuth, TopologySource,
};
use rds_balancer_testkit::{Error as KitError, PgCluster, RdsEmulator};
use sea_orm::{ConnectionTrait, DbErr, Statement};

/// One cluster (a primary and one replica, TLS) and one emulator for the tests of this binary;
/// each test has its own role, database and secret.
fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::builder()
            .replicas(1)
            .tls(true)
            .start()
            .unwrap_or_else(|err| panic!("could not start the PostgreSQL test cluster: {err}"))
    })
}

fn aws() -> &'static RdsEmulator {
    static AWS: OnceLock<RdsEmulator> = OnceLock::new();
    AWS.get_or_init(|| {
        RdsEmulator::start().unwrap_or_else(|err| panic!("could not start moto: {err}"))
    })
}

/// The standard RDS secret for `username` / `password`.
fn secret_json(username: &str, password: &str) -> String {
    serde_json::json!({
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": cluster().primary().port(),
        "username": username,
        "password": password,
        "dbname": username,
    })
    .to_string()
}

/// A provider reading `secret_id` from the emulator.
async fn provider(secret_id: &str) -> SecretsManagerAuth {
    let aws = aws();
    SecretsManagerAuth::builder(secret_id)
        .region(aws.region())
        .endpoint_url(aws.endpoint_url())
        .credentials(
            RdsEmulator::ACCESS_KEY_ID,
            RdsEmulator::SECRET_ACCESS_KEY,
            None,
        )
        .build()
        .await
        .expect("a provider with explicit settings builds offline")
}

/// Role `role` with `password`, owning database `role` with an `events` table, replicated.
fn create_role_and_database(role: &str, password: &str) {
    let cluster = cluster();
    cluster.create_role(role, password).expect("create role");
    cluster
        .psql("postgres", &format!("CREATE DATABASE {role} OWNER {role}"))
        .expect("create database");
    cluster
        .psql(
            role,
            &format!(
                "CREATE TABLE events (id bigserial PRIMARY KEY, task int NOT NULL, n int NOT NULL);
                 ALTER TABLE events OWNER TO {role};"
            ),
        )
        .expect("create table");
    cluster
        .wait_replicated(Duration::from_secs(30))
        .expect("replicated");
}

/// A URL for `node` as `user` without a password, verifying the server's certificate.
fn url_without_password(port: u16, user: &str, db: &str) -> String {
    let ca = cluster().ca_path().expect("started with tls(true)");
    format!(
        "postgres://{user}@127.0.0.1:{port}/{db}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    )
}

/// psql as `user` with `password` on `port`, over verified TLS: `Ok(true)` when accepted,
/// `Ok(false)` when the password is refused.
fn password_accepted(port: u16, user: &str, password: &str) -> bool {
    let ca = cluster().ca_path().expect("tls");
    let conninfo = format!(
        "host=127.0.0.1 port={port} dbname={user} user={user} password={password} \
         sslmode=verify-full sslrootcert={}",
        ca.display()
    );
    match cluster().psql_conninfo(&conninfo, "SELECT current_user", Duration::from_secs(10)) {
        Ok(who) => {
            assert_eq!(who, user);
            true
        }
        Err(KitError::Command { stderr, .. }) if stderr.contains("password authentication") => {
            false
        }
        Err(err) => panic!("psql failed for another reason: {err}"),
    }
}

fn stmt(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, sql, values)
}

#[tokio::test]
async fn one_fetch_serves_every_endpoint_and_a_rejection_fetches_again() {
    let aws = aws();
    let created = aws
        .create_secret("cache-app", &secret_json("cache_app", "one"))
        .unwrap();
    let auth = provider(&created.arn).await;
    let (writer, reader) = (
        Endpoint::new("writer.example", 5432),
        Endpoint::new("reader.example", 5432),
    );

    let before = SystemTime::now();
    let first = auth.credentials(&writer).await.unwrap();
    assert_eq!(first.username.as_deref(), Some("cache_app"));
    assert_eq!(first.password.expose(), "one");
    let expires_at = first.expires_at.expect("cached credentials expire");
    let ttl = expires_at.duration_since(before).unwrap();
    assert!(
        ttl >= Duration::from_secs(3599) && ttl <= Duration::from_secs(3601),
        "{ttl:?}"
    );

    // A rotation the provider has not heard of: every endpoint still gets the cached copy.
    aws.put_secret_value(&created.arn, &secret_json("cache_app", "two"))
        .unwrap();
    assert_eq!(auth.credentials(&reader).await.unwrap(), first);
    assert_eq!(auth.credentials(&writer).await.unwrap(), first);

    // Refused by the database: the next call, for any endpoint, reads the new value.
    auth.rejected(&writer);
    let fetching = Instant::now();
    let second = auth.credentials(&reader).await.unwrap();
    eprintln!("one GetSecretValue from moto took {:?}", fetching.elapsed());
    assert_eq!(second.password.expose(), "two");
    assert_eq!(auth.credentials(&writer).await.unwrap(), second);

    let secret = auth.secret().await.unwrap();
    assert_eq!(secret.host.as_deref(), Some("127.0.0.1"));
    assert_eq!(secret.port, Some(cluster().primary().port()));
    assert_eq!(secret.engine.as_deref(), Some("postgres"));
    assert_eq!(secret.dbname.as_deref(), Some("cache_app"));
    assert!(secret.version_id.is_some());
    assert!(auth.requires_tls());

    // Nothing secret in Debug output.
    let shown = format!("{auth:?} {second:?} {secret:?}");
    assert!(shown.contains(&created.arn), "{shown}");
    assert!(
        !shown.contains("\"two\"") && !shown.contains("password\":"),
        "{shown}"
    );
}

#[tokio::test]
async fn one_aws_settings_value_serves_secrets_manager_and_the_rds_api() {
    let aws = aws();
    aws.create_secret("shared-app", &secret_json("shared_app", "one"))
        .unwrap();
    aws.create_cluster("shared-cluster", "aurora-postgresql")
        .unwrap();
    aws.add_instance("shared-cluster", "shared-cluster-w", 15510, Some(0))
        .unwrap();
    let settings = AwsSettings::new()
        .region(aws.region())
        .endpoint_url(aws.endpoint_url())
        .credentials(
            RdsEmulator::ACCESS_KEY_ID,
            RdsEmulator::SECRET_ACCESS_KEY,
            None,
        );

    let auth = SecretsManagerAuth::builder("shared-app")
        .aws(settings.clone())
        .build()
        .await
        .unwrap();
    let credentials = auth
        .credentials(&Endpoint::new("127.0.0.1", 5432))
        .await
        .unwrap();
    assert_eq!(credentials.username.as_deref(), Some("shared_app"));
    assert_eq!(credentials.password.expose(), "one");
    assert_eq!(auth.region(), Some(aws.region()));

    let source = RdsApiSource::builder("shared-cluster")
        .aws(settings)
        .build()
        .await
        .unwrap();
    let topology = source.fetch().await.unwrap();
    assert_eq!(
        topology.writer().map(|w| w.id.as_str()),
        Some("shared-cluster-w")
    );
}

#[tokio::test]
async fn the_cache_expires_after_its_ttl() {
    let aws = aws();
    aws.create_secret("ttl-app", &secret_json("ttl_app", "one"))
        .unwrap();
    let auth = SecretsManagerAuth::builder("ttl-app")
        .region(aws.region())
        .endpoint_url(aws.endpoint_url())
        .credentials(
            RdsEmulator::ACCESS_KEY_ID,
            RdsEmulator::SECRET_ACCESS_KEY,
            None,
        )
        .cache_ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let endpoint = Endpoint::new("127.0.0.1", 5432);
    assert_eq!(
        auth.credentials(&endpoint).await.unwrap().password.expose(),
        "one"
    );
    aws.put_secret_value("ttl-app", &secret_json("ttl_app", "two"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let password = auth.credentials(&endpoint).await.unwrap().password;
        if password.expose() == "two" {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn failures_are_typed_and_never_show_the_secret() {
    let aws = aws();
    let endpoint = Endpoint::new("127.0.0.1", 5432);

    let missing = provider("no-such-secret")
        .await
        .credentials(&endpoint)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Credentials, "{missing}");
    let text = missing.to_string();
    assert!(text.contains("GetSecretValue"), "{text}");
    assert!(text.contains("no-such-secret"), "{text}");
    assert!(text.contains("ResourceNotFoundException"), "{text}");

    // Not the RDS format: the error says what is wrong, not what is there.
    for (name, value) in [
        ("not-json-app", "hunter2-not-json".to_owned()),
        (
            "no-password-app",
            r#"{"username":"app","pass":"hunter2-typo"}"#.to_owned(),
        ),
        (
            "number-password-app",
            r#"{"username":"app","password":987654321}"#.to_owned(),
        ),
    ] {
        aws.create_secret(name, &value).unwrap();
        let err = provider(name)
            .await
            .credentials(&endpoint)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Credentials, "{err}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(name), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("987654321"),
            "{shown}"
        );
        eprintln!("{name}: {err}");
    }

    // The emulator unreachable: a typed error naming the operation.
    let unreachable = SecretsManagerAuth::builder("app-db")
        .region("us-east-1")
        .endpoint_url("http://127.0.0.1:9")
        .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
        .max_attempts(1)
        .operation_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
        .credentials(&endpoint)
        .await
        .unwrap_err();
    assert_eq!(unreachable.kind(), ErrorKind::Credentials);
    assert!(
        unreachable
            .to_string()
            .contains("GetSecretValue for secret app-db failed"),
        "{unreachable}"
    );
    assert!(!format!("{unreachable:?}").contains("wJalrXUtnFEMI"));
}

#[tokio::test]
async fn a_plain_connection_is_refused_before_the_secret_travels() {
    let cluster = cluster();
    aws()
        .create_secret("plain-app", &secret_json("plain_app", "one"))
        .unwrap();
    let err = RdsConnection::builder()
        .writer(format!(
            "postgres://plain_app@127.0.0.1:{}/postgres",
            cluster.primary().port()
        ))
        .credentials(provider("plain-app").await)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

/// What the traffic saw during one phase of the rotation test.
#[derive(Default, Clone)]
struct PhaseStats {
    name: &'static str,
    reads: usize,
    reads_on_replica: usize,
    writes: usize,
    failed: usize,
    /// How long the failed statements took, in all.
    failed_time: Duration,
    /// The first few distinct failures.
    errors: Vec<String>,
    /// When the phase began, and the last failure in it.
    started: Option<Instant>,
    last_failure: Option<Instant>,
}

struct Traffic {
    phase: AtomicUsize,
    stop: AtomicBool,
    stats: Mutex<Vec<PhaseStats>>,
}

impl Traffic {
    fn new(phases: &[&'static str]) -> Arc<Traffic> {
        let stats = phases
            .iter()
            .map(|name| PhaseStats {
                name,
                ..PhaseStats::default()
            })
            .collect();
        let traffic = Arc::new(Traffic {
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            stats: Mutex::new(stats),
        });
        traffic.stats.lock().unwrap()[0].started = Some(Instant::now());
        traffic
    }

    fn enter(&self, phase: usize) {
        self.stats.lock().unwrap()[phase].started = Some(Instant::now());
        self.phase.store(phase, Ordering::SeqCst);
    }

    fn record(
        &self,
        phase: usize,
        outcome: Result<Option<u16>, DbErr>,
        took: Duration,
        replica: u16,
    ) {
        let mut stats = self.stats.lock().unwrap();
        let stats = &mut stats[phase];
        match outcome {
            Ok(Some(port)) => {
                stats.reads += 1;
                if port == replica {
                    stats.reads_on_replica += 1;
                }
            }
            Ok(None) => stats.writes += 1,
            Err(err) => {
                stats.failed += 1;
                stats.failed_time += took;
                stats.last_failure = Some(Instant::now());
                let text = err.to_string();
                if stats.errors.len() < 3 && !stats.errors.contains(&text) {
                    stats.errors.push(text);
                }
            }
        }
    }

    fn report(&self) -> Vec<PhaseStats> {
        let stats = self.stats.lock().unwrap().clone();
        for phase in &stats {
            let failures = match (phase.started, phase.last_failure) {
                (Some(start), Some(last)) => format!(
                    " (each took {:?} on average; the last ended {:?} into the phase)",
                    phase.failed_time / u32::try_from(phase.failed).unwrap(),
                    last.duration_since(start)
                ),
                _ => String::new(),
            };
            eprintln!(
                "{:<44} reads {:>4} (on the replica {:>4}) writes {:>4} failed {:>3}{failures}",
                phase.name, phase.reads, phase.reads_on_replica, phase.writes, phase.failed
            );
            for error in &phase.errors {
                eprintln!("    {error}");
            }
        }
        stats
    }
}

/// One traffic task: alternately a write (to the writer) and a read (to the replica), until
/// stopped.
async fn traffic(db: RdsConnection, traffic: Arc<Traffic>, task: i32, replica: u16) {
    let mut n = 0;
    while !traffic.stop.load(Ordering::SeqCst) {
        n += 1;
        let started = Instant::now();
        let outcome = if n % 2 == 0 {
            db.execute_raw(stmt(
                "INSERT INTO events (task, n) VALUES ($1, $2)",
                vec![task.into(), n.into()],
            ))
            .await
            .map(|_| None)
        } else {
            db.query_one_raw(stmt(
                "SELECT count(*) AS seen, inet_server_port() AS port FROM events WHERE task = $1",
                vec![task.into()],
            ))
            .await
            .and_then(|row| {
                let row = row.ok_or_else(|| DbErr::Custom("no row".into()))?;
                let port: i32 = row.try_get("", "port")?;
                Ok(Some(u16::try_from(port).unwrap()))
            })
        };
        // Counted in the phase it ended in: a statement that began before a rotation step and
        // failed after it counts after it.
        let phase = traffic.phase.load(Ordering::SeqCst);
        traffic.record(phase, outcome, started.elapsed(), replica);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many connections of `user` on each node of the cluster opened after `since` (the
/// primary's `now()` as text), and whether all of `user`'s connections use TLS.
fn connections_since(user: &str, since: &str) -> Vec<(u16, i64, bool)> {
    cluster()
        .nodes()
        .map(|node| {
            let answer = node
                .psql(
                    "postgres",
                    &format!(
                        "SELECT count(*) FILTER (WHERE a.backend_start > '{since}'), \
                         coalesce(bool_and(s.ssl), false) \
                         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                         WHERE a.usename = '{user}'"
                    ),
                )
                .unwrap();
            let (count, ssl) = answer.split_once('|').unwrap();
            (node.port(), count.parse().unwrap(), ssl == "t")
        })
        .collect()
}

/// [`connections_since`], sampled until every node shows a connection opened after `since`, or
/// for 10 s. A pool's connections live for a second and were opened together, so they also
/// close together: a single sample can fall between two generations and see only the
/// long-lived monitoring connection.
async fn reopened_since(user: &'static str, since: &str) -> Vec<(u16, i64, bool)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let since = since.to_owned();
        let now = blocking(move || connections_since(user, &since)).await;
        if now.iter().all(|(_, count, _)| *count > 0) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a blocking test-kit call off the runtime's workers, so that traffic keeps flowing.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_in_either_order_leave_traffic_flowing() {
    const USER: &str = "rotation_app";
    const FIRST: &str = "first-password";
    const SECOND: &str = "second-password";
    const THIRD: &str = "third-password";
    let cluster = cluster();
    let aws = aws();
    create_role_and_database(USER, FIRST);
    let secret = aws
        .create_secret("rotation-app", &secret_json(USER, FIRST))
        .unwrap();
    let (primary, replica) = (cluster.primary().port(), cluster.replicas()[0].port());

    let db = RdsConnection::builder()
        .writer(url_without_password(primary, USER, USER))
        .reader(url_without_password(replica, USER, USER))
        .credentials(provider(&secret.arn).await)
        // Small pools whose connections live for a second: new connections, authenticated
        // again, all through the test.
        .max_connections(3)
        .max_lifetime(Duration::from_secs(1))
        .idle_timeout(Duration::from_millis(500))
        .acquire_timeout(Duration::from_secs(5))
        // Each task writes and reads in turn: with read-your-writes its reads would all go to
        // the writer, and the replica's pool would see no logins to rotate.
        .read_your_writes(Duration::ZERO)
        .sqlx_logging(false)
        .build()
        .await
        .expect("connect with the secret's credentials");

    let phases = [
        "warm-up",
        "A: secret first, then database (+4 s)",
        "B: database first, secret lagging (3 s)",
        "B: secret caught up, settling (3 s)",
        "B: settled (4 s)",
    ];
    let traffic_state = Traffic::new(&phases);
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            tokio::spawn(traffic(
                db.clone(),
                Arc::clone(&traffic_state),
                task,
                replica,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Rotation A, as Secrets Manager's rotation function does it: the new password is stored
    // (AWSPENDING, then AWSCURRENT), then set on the database.
    traffic_state.enter(1);
    let rotated_a = cluster.psql("postgres", "SELECT now()").unwrap();
    let arn = secret.arn.clone();
    blocking(move || {
        aws.put_secret_value(&arn, &secret_json(USER, SECOND))
            .unwrap();
        cluster.set_password(USER, SECOND).unwrap();
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let reopened = reopened_since(USER, &rotated_a).await;
    eprintln!("connections of {USER} opened after rotation A (port, count, all TLS): {reopened:?}");
    for (port, count, ssl) in &reopened {
        assert!(*count > 0, "no new connection to {port} after rotation A");
        assert!(ssl, "a connection to {port} without TLS");
    }
    let (old_ok, new_ok) = blocking(move || {
        (
            password_accepted(primary, USER, FIRST),
            password_accepted(replica, USER, SECOND),
        )
    })
    .await;
    assert!(!old_ok, "the old password still works");
    assert!(new_ok, "the new password does not work");

    // Rotation B, the other way round: the database first, the secret only later. New
    // connections fail meanwhile; once the secret has the new password, they recover.
    traffic_state.enter(2);
    blocking(move || cluster.set_password(USER, THIRD).unwrap()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    traffic_state.enter(3);
    let arn = secret.arn.clone();
    blocking(move || {
        aws.put_secret_value(&arn, &secret_json(USER, THIRD))
            .unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    traffic_state.enter(4);
    let rotated_b = cluster.psql("postgres", "SELECT now()").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Counted while traffic flows (idle connections close within half a second).
    let reopened_b = reopened_since(USER, &rotated_b).await;

    traffic_state.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!("moto {}, statements per phase:", aws.moto_version());
    let stats = traffic_state.report();
    eprintln!("connections of {USER} opened after rotation B settled: {reopened_b:?}");
    let (second_ok, third_ok) = blocking(move || {
        (
            password_accepted(replica, USER, SECOND),
            password_accepted(primary, USER, THIRD),
        )
    })
    .await;
    assert!(
        !second_ok && third_ok,
        "the database has the third password"
    );

    let total = |range: std::ops::Range<usize>| -> usize {
        stats[range].iter().map(|phase| phase.failed).sum()
    };
    assert_eq!(
        total(0..2),
        0,
        "statements failed around rotation A (secret first)"
    );
    assert!(
        stats[2].failed > 0,
        "no statement failed while the secret lagged: no new connection was opened, so the \
         test proves nothing"
    );
    assert_eq!(
        stats[4].failed, 0,
        "statements failed after rotation B settled"
    );
    for phase in [1, 4] {
        assert!(
            stats[phase].writes > 0 && stats[phase].reads > 0,
            "{}",
            stats[phase].name
        );
        assert!(
            stats[phase].reads_on_replica > 0,
            "{}: no read reached the replica",
            stats[phase].name
        );
    }
    for (port, count, ssl) in &reopened_b {
        assert!(*count > 0, "no new connection to {port} after rotation B");
        assert!(ssl, "a connection to {port} without TLS");
    }
    let report = db.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
}

/// A health probe whose login is refused after a rotation renews the credentials: the host
/// stays in service instead of being marked unhealthy until the next scheduled renewal.
#[tokio::test]
async fn a_probe_refused_after_a_rotation_renews_the_credentials_and_keeps_the_reader() {
    const USER: &str = "probe_app";
    let cluster = cluster();
    let aws = aws();
    create_role_and_database(USER, "probe-first");
    let secret = aws
        .create_secret("probe-app", &secret_json(USER, "probe-first"))
        .unwrap();
    let (primary, replica) = (cluster.primary().port(), cluster.replicas()[0].port());
    let db = RdsConnection::builder()
        .writer(url_without_password(primary, USER, USER))
        .reader(url_without_password(replica, USER, USER))
        .credentials(provider(&secret.arn).await)
        .health_check_interval(Some(Duration::from_millis(200)))
        .failure_detection_interval(Duration::from_secs(2))
        .failure_detection_count(2)
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let reader = format!("127.0.0.1:{replica}");
    let read_port = |db: RdsConnection| async move {
        let row = db
            .query_one_raw(stmt("SELECT inet_server_port() AS port", vec![]))
            .await
            .unwrap()
            .unwrap();
        u16::try_from(row.try_get::<i32>("", "port").unwrap()).unwrap()
    };
    assert_eq!(read_port(db.clone()).await, replica);

    // Rotated while idle, then every session of the role ends: the probes' next logins use the
    // old password and are refused.
    let arn = secret.arn.clone();
    blocking(move || {
        aws.put_secret_value(&arn, &secret_json(USER, "probe-second"))
            .unwrap();
        cluster.set_password(USER, "probe-second").unwrap();
        for node in cluster.nodes() {
            node.psql(
                "postgres",
                &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{USER}'"),
            )
            .unwrap();
        }
    })
    .await;
    // For two seconds of probes, the reader never leaves service, and reads keep reaching it.
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < until {
        let health = db.health();
        let host = health.hosts.iter().find(|h| h.name == reader).unwrap();
        assert_ne!(host.state, rds_balancer::HealthState::Unhealthy, "{host:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read_port(db.clone()).await, replica);
    assert!(db.shutdown(Duration::from_secs(10)).await.drained);
}
