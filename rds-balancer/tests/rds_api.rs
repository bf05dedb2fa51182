//! `RdsApiSource` against the RDS API of a real emulator (moto, through the test kit's
//! `RdsEmulator`): what a fetch reports as the cluster changes, and how failures look.
//!
//! One emulator per test binary; each test uses its own cluster and instance ids. No database
//! is needed: the instances' ports are only numbers here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region};
use rds_balancer::{
    AwsSettings, Error, ErrorKind, Instance, RdsApiSource, Topology, TopologySource,
};
use rds_balancer_testkit::RdsEmulator;

const SECRET_KEY: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLE-session-token-value";

fn emulator() -> &'static RdsEmulator {
    static EMULATOR: OnceLock<RdsEmulator> = OnceLock::new();
    EMULATOR.get_or_init(|| match RdsEmulator::start() {
        Ok(emulator) => emulator,
        Err(err) => panic!("could not start the RDS emulator: {err}"),
    })
}

/// Creates cluster `cluster` with these `(instance id, port, promotion tier)` members, the
/// first one the writer.
fn create_cluster(rds: &RdsEmulator, cluster: &str, members: &[(&str, u16, i32)]) {
    rds.create_cluster(cluster, "aurora-postgresql")
        .expect("create cluster");
    for &(id, port, tier) in members {
        rds.add_instance(cluster, id, port, Some(tier))
            .expect("add instance");
    }
}

/// A source for `cluster` on the emulator.
async fn source(rds: &RdsEmulator, cluster: &str) -> RdsApiSource {
    support::rds::emulator_source(rds, cluster).await
}

/// What the source should report for a member created on the emulator.
fn expected(rds: &RdsEmulator, id: &str, writer: bool, port: u16, tier: i32) -> Instance {
    let instance = if writer {
        Instance::writer(id)
    } else {
        Instance::reader(id)
    };
    instance
        .with_endpoint(rds.instance_host(id), port)
        .with_promotion_tier(tier)
}

fn ids(topology: &Topology) -> Vec<&str> {
    topology.instances.iter().map(|i| i.id.as_str()).collect()
}

fn writer_id(topology: &Topology) -> Option<&str> {
    topology.writer().map(|w| w.id.as_str())
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn fetch_reports_the_writer_and_readers_as_created() {
    let rds = emulator();
    create_cluster(
        rds,
        "created",
        &[
            ("created-w", 15432, 0),
            ("created-r1", 15433, 1),
            ("created-r2", 15434, 2),
        ],
    );
    // Another cluster's instance and a standalone instance are not members.
    create_cluster(rds, "created-other", &[("created-other-w", 15435, 0)]);

    let topology = source(rds, "created").await.fetch().await.expect("fetch");

    assert_eq!(
        topology,
        Topology::new(vec![
            expected(rds, "created-w", true, 15432, 0),
            expected(rds, "created-r1", false, 15433, 1),
            expected(rds, "created-r2", false, 15434, 2),
        ])
    );
    assert!(topology.instances.iter().all(Instance::is_available));
}

#[tokio::test]
async fn the_writer_follows_a_failover() {
    let rds = emulator();
    create_cluster(
        rds,
        "failover",
        &[("failover-a", 15440, 0), ("failover-b", 15441, 1)],
    );
    let source = source(rds, "failover").await;
    assert_eq!(
        writer_id(&source.fetch().await.expect("fetch")),
        Some("failover-a")
    );

    rds.failover("failover", "failover-b").expect("failover");

    let topology = source.fetch().await.expect("fetch");
    assert_eq!(writer_id(&topology), Some("failover-b"));
    assert_eq!(topology.readers().count(), 1);
    assert_eq!(
        topology.readers().next().map(|r| r.address()),
        Some(Some((rds.instance_host("failover-a").as_str(), 15440)))
    );
}

#[tokio::test]
async fn a_stopped_instance_reports_its_status() {
    let rds = emulator();
    create_cluster(
        rds,
        "stopping",
        &[("stopping-w", 15450, 0), ("stopping-r", 15451, 1)],
    );
    let source = source(rds, "stopping").await;

    rds.stop_instance("stopping-r").expect("stop");
    let topology = source.fetch().await.expect("fetch");
    let reader = topology
        .readers()
        .next()
        .expect("the reader is still a member");
    assert_eq!(reader.status, "stopped");
    assert!(!reader.is_available());

    rds.start_instance("stopping-r").expect("start");
    rds.set_instance_status("stopping-w", "rebooting")
        .expect("set status");
    let topology = source.fetch().await.expect("fetch");
    assert!(topology.readers().all(Instance::is_available));
    assert_eq!(
        topology.writer().map(|w| w.status.as_str()),
        Some("rebooting")
    );
}

#[tokio::test]
async fn a_removed_instance_disappears() {
    let rds = emulator();
    create_cluster(
        rds,
        "removing",
        &[
            ("removing-w", 15460, 0),
            ("removing-r1", 15461, 1),
            ("removing-r2", 15462, 2),
        ],
    );
    let source = source(rds, "removing").await;
    assert_eq!(
        ids(&source.fetch().await.expect("fetch")),
        ["removing-w", "removing-r1", "removing-r2"]
    );

    rds.remove_instance("removing-r1").expect("remove");

    assert_eq!(
        ids(&source.fetch().await.expect("fetch")),
        ["removing-w", "removing-r2"]
    );
}

#[tokio::test]
async fn every_page_of_instances_is_read() {
    let rds = emulator();
    let members: Vec<(String, u16, i32)> = (0..25)
        .map(|n| (format!("paged-{n:02}"), 16000 + n, 1))
        .collect();
    let members: Vec<(&str, u16, i32)> = members
        .iter()
        .map(|(id, port, tier)| (id.as_str(), *port, *tier))
        .collect();
    create_cluster(rds, "paged", &members);
    let source = support::rds::emulator_source_builder(rds, "paged")
        .page_size(20)
        .build()
        .await
        .expect("build");

    let topology = source.fetch().await.expect("fetch");

    assert_eq!(topology.instances.len(), 25);
    assert_eq!(writer_id(&topology), Some("paged-00"));
    // Members of the second page have their endpoint too.
    assert!(topology.instances.iter().all(|i| i.address().is_some()));
    assert_eq!(topology.instances[24].port, Some(16024));
}

#[tokio::test]
async fn an_unknown_cluster_is_a_topology_error() {
    let rds = emulator();
    let err = source(rds, "no-such-cluster")
        .await
        .fetch()
        .await
        .expect_err("no such cluster");

    assert_eq!(err.kind(), ErrorKind::Topology);
    assert!(!err.is_throttling());
    match &err {
        Error::Topology {
            operation, code, ..
        } => {
            assert_eq!(operation, "DescribeDBClusters");
            assert_eq!(code.as_deref(), Some("DBClusterNotFoundFault"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("no-such-cluster"), "{err}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_topology_error_within_the_timeout() {
    let timeout = Duration::from_secs(3);
    let source = RdsApiSource::builder("app")
        .region("us-east-1")
        .endpoint_url(format!("http://127.0.0.1:{}", closed_port()))
        .credentials("AKIDEXAMPLE", SECRET_KEY, Some(SESSION_TOKEN.to_owned()))
        .operation_timeout(timeout)
        .build()
        .await
        .expect("build");

    let started = Instant::now();
    let err = source.fetch().await.expect_err("nothing listens there");

    assert!(started.elapsed() < timeout + Duration::from_secs(2));
    assert_eq!(err.kind(), ErrorKind::Topology);
    let message = err.to_string();
    assert!(
        message.starts_with("DescribeDBClusters failed"),
        "{message}"
    );
    assert!(!message.contains(SECRET_KEY) && !message.contains(SESSION_TOKEN));
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out() {
    // Connections are accepted by the kernel (the backlog) but never answered.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let timeout = Duration::from_secs(1);
    let source = RdsApiSource::builder("app")
        .region("us-east-1")
        .endpoint_url(format!("http://{}", silent.local_addr().expect("addr")))
        .credentials("AKIDEXAMPLE", SECRET_KEY, None)
        .operation_timeout(timeout)
        .build()
        .await
        .expect("build");

    let started = Instant::now();
    let err = source.fetch().await.expect_err("no answer");

    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert!(
        matches!(&err, Error::Topology { code: None, message, .. } if message.contains("timed out")),
        "{err}"
    );
}

#[tokio::test]
async fn debug_shows_neither_the_secret_key_nor_the_session_token() {
    let rds = emulator();
    create_cluster(rds, "secretive", &[("secretive-w", 15470, 0)]);
    let builder = RdsApiSource::builder("secretive")
        .region(rds.region())
        .endpoint_url(rds.endpoint_url())
        .credentials("AKIDEXAMPLE", SECRET_KEY, Some(SESSION_TOKEN.to_owned()));
    let shown_builder = format!("{builder:?}");
    let source = builder.build().await.expect("build");
    // moto checks no signature: the explicit credentials work.
    assert_eq!(
        writer_id(&source.fetch().await.expect("fetch")),
        Some("secretive-w")
    );

    let shown = format!("{source:?}");
    assert!(shown.contains("secretive"), "{shown}");
    assert!(shown.contains("us-east-1"), "{shown}");
    assert!(shown.contains(&rds.endpoint_url()), "{shown}");
    for shown in [&shown, &shown_builder, &format!("{source:#?}")] {
        assert!(!shown.contains(SECRET_KEY), "{shown}");
        assert!(!shown.contains(SESSION_TOKEN), "{shown}");
    }
    assert!(!shown.contains("AKIDEXAMPLE"), "{shown}");
}

#[tokio::test]
async fn one_aws_settings_value_serves_many_sources_and_a_shortcut_overrides_one() {
    let rds = emulator();
    create_cluster(rds, "shared", &[("shared-w", 15500, 0)]);
    create_cluster(rds, "shared-too", &[("shared-too-w", 15501, 0)]);
    let aws = AwsSettings::new()
        .region(rds.region())
        .endpoint_url(rds.endpoint_url())
        .credentials("AKIDEXAMPLE", SECRET_KEY, Some(SESSION_TOKEN.to_owned()));
    let shown = format!("{aws:?}");
    assert!(shown.contains(&rds.endpoint_url()), "{shown}");
    assert!(
        !shown.contains(SECRET_KEY) && !shown.contains(SESSION_TOKEN),
        "{shown}"
    );

    for (cluster, writer) in [("shared", "shared-w"), ("shared-too", "shared-too-w")] {
        let source = RdsApiSource::builder(cluster)
            .aws(aws.clone())
            .build()
            .await
            .expect("build");
        assert_eq!(
            writer_id(&source.fetch().await.expect("fetch")),
            Some(writer)
        );
        let shown = format!("{source:?}");
        assert!(shown.contains(&rds.endpoint_url()), "{shown}");
    }

    // A shortcut after `aws(..)` changes this builder's copy only...
    let elsewhere = RdsApiSource::builder("shared")
        .aws(aws.clone())
        .endpoint_url(format!("http://127.0.0.1:{}", closed_port()))
        .max_attempts(1)
        .operation_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("build");
    let err = elsewhere.fetch().await.expect_err("nothing listens there");
    assert_eq!(err.kind(), ErrorKind::Topology);
    // ...and `aws(..)` replaces what the shortcuts set before it.
    let replaced = RdsApiSource::builder("shared")
        .endpoint_url(format!("http://127.0.0.1:{}", closed_port()))
        .region("eu-west-1")
        .aws(aws)
        .build()
        .await
        .expect("build");
    assert_eq!(replaced.region(), Some(rds.region()));
    assert_eq!(
        writer_id(&replaced.fetch().await.expect("fetch")),
        Some("shared-w")
    );
}

#[tokio::test]
async fn a_ready_client_is_used_as_is() {
    let rds = emulator();
    create_cluster(
        rds,
        "ready",
        &[("ready-w", 15480, 0), ("ready-r", 15481, 3)],
    );
    let config = aws_sdk_rds::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(rds.region().to_owned()))
        .endpoint_url(rds.endpoint_url())
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let client = aws_sdk_rds::Client::from_conf(config);

    // The client wins over the builder's own region and endpoint.
    let source = RdsApiSource::builder("ready")
        .region("eu-west-1")
        .endpoint_url(format!("http://127.0.0.1:{}", closed_port()))
        .client(client)
        .build()
        .await
        .expect("build");

    assert_eq!(source.region(), Some("us-east-1"));
    assert_eq!(
        source.fetch().await.expect("fetch"),
        Topology::new(vec![
            expected(rds, "ready-w", true, 15480, 0),
            expected(rds, "ready-r", false, 15481, 3),
        ])
    );
}

#[tokio::test]
async fn an_sdk_config_is_the_base_of_the_client() {
    let rds = emulator();
    create_cluster(rds, "configured", &[("configured-w", 15490, 0)]);
    let config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(rds.endpoint_url())
        .credentials_provider(aws_sdk_rds::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .build();

    // Without a region of its own, the builder takes the configuration's...
    let source = RdsApiSource::builder("configured")
        .sdk_config(config.clone())
        .build()
        .await
        .expect("build");
    assert_eq!(source.region(), Some("eu-west-1"));

    // ...and its setters apply on top (moto keeps one state per region).
    let source = RdsApiSource::builder("configured")
        .sdk_config(config)
        .region(rds.region())
        .build()
        .await
        .expect("build");
    assert_eq!(
        writer_id(&source.fetch().await.expect("fetch")),
        Some("configured-w")
    );
}

#[tokio::test]
async fn settings_that_cannot_work_are_config_errors() {
    let no_region = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .build();
    let err = RdsApiSource::builder("app")
        .sdk_config(no_region)
        .build()
        .await
        .expect_err("no region");
    assert_eq!(err.kind(), ErrorKind::Config);

    for page_size in [0, 19, 101] {
        let err = RdsApiSource::builder("app")
            .region("us-east-1")
            .page_size(page_size)
            .build()
            .await
            .expect_err("page size out of range");
        assert_eq!(err.kind(), ErrorKind::Config);
    }
    let err = RdsApiSource::builder(" ")
        .region("us-east-1")
        .build()
        .await
        .expect_err("empty id");
    assert_eq!(err.kind(), ErrorKind::Config);

    // AWS settings that cannot work are refused at build, not at the first call.
    let valid = || {
        AwsSettings::new().region("us-east-1").credentials(
            "AKIDEXAMPLE",
            SECRET_KEY,
            Some(SESSION_TOKEN.to_owned()),
        )
    };
    let refused = [
        ("region", valid().region("US East 1")),
        ("region", valid().region("")),
        ("endpoint URL", valid().endpoint_url("127.0.0.1:5000")),
        ("endpoint URL", valid().endpoint_url("ftp://rds.example")),
        (
            "secret access key",
            valid().credentials("AKIDEXAMPLE", "", None),
        ),
        (
            "session token",
            valid().credentials("AKIDEXAMPLE", SECRET_KEY, Some(String::new())),
        ),
    ];
    for (what, aws) in refused {
        let err = RdsApiSource::builder("app")
            .aws(aws)
            .build()
            .await
            .expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(what), "{shown}");
        assert!(
            !shown.contains(SECRET_KEY) && !shown.contains(SESSION_TOKEN),
            "{shown}"
        );
    }
    for builder in [
        RdsApiSource::builder("app").aws(valid()).max_attempts(0),
        RdsApiSource::builder("app")
            .aws(valid())
            .operation_timeout(Duration::ZERO),
    ] {
        let err = builder.build().await.expect_err("no attempt or no time");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    }
    // The same settings are valid with an http(s) URL and a region name.
    RdsApiSource::builder("app")
        .aws(valid().endpoint_url("https://rds.eu-west-1.amazonaws.com"))
        .build()
        .await
        .expect("valid settings");
}
