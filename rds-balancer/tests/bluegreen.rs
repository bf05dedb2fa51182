//! Blue/green switchovers against two real clusters (blue and green) on PostgreSQL and on
//! MariaDB, with the test kit's metadata relation driven through the phases and its DNS map as
//! the endpoint resolver. Each body runs on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test bodies outside #[test] fns
#![allow(clippy::print_stdout)] // the measurements, for the record

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rds_balancer::{
    BlueGreenOptions, BlueGreenPhase, ErrorKind, Instance, RdsConnection, Topology, TopologyChange,
};
use rds_balancer_testkit::{BlueGreenDeployment, BlueGreenRole, BlueGreenStatus, MetadataRelation};
use sea_orm::{ConnectionTrait, TransactionTrait};
use support::{Cluster, Kind, MYSQL_USER, backend_tests, port_of, served_by, try_port_of};

backend_tests!(
    #[multi_thread]
    traffic_rides_through_a_switchover_and_lands_on_green,
    #[multi_thread]
    a_rollback_returns_to_blue,
    new_hosts_dial_the_addresses_recorded_before_the_switchover,
    a_rollback_after_green_took_over_moves_hosts_back,
    with_suspend_new_blue_connections_blue_names_wait_for_green,
    #[multi_thread]
    when_blue_is_cut_off_the_monitor_reads_green,
    a_switchover_that_never_ends_times_out,
    without_metadata_the_feature_is_inert,
);

const DB: &str = "bg";

/// Blue and green: each a primary and a replica, with the test schema in database `bg`.
fn clusters(kind: Kind) -> (Cluster, Cluster) {
    let (blue, green) = std::thread::scope(|s| {
        let blue = s.spawn(|| Cluster::start(kind, 1));
        let green = s.spawn(|| Cluster::start(kind, 1));
        (blue.join().unwrap(), green.join().unwrap())
    });
    blue.create_database(DB);
    green.create_database(DB);
    (blue, green)
}

/// The deployment over `blue` and `green`, readable by the tests' user.
fn deployment<'a>(id: &str, blue: &'a Cluster, green: &'a Cluster) -> BlueGreenDeployment<'a> {
    let deployment = match (blue, green) {
        (Cluster::Postgres(b), Cluster::Postgres(g)) => {
            BlueGreenDeployment::builder(id).database(DB).postgres(b, g)
        }
        (Cluster::MySql(b), Cluster::MySql(g)) => BlueGreenDeployment::mariadb(id, b, g),
        _ => panic!("blue and green of different kinds"),
    }
    .expect("the deployment");
    deployment.grant_read(MYSQL_USER).expect("grant");
    deployment
}

/// Fast polling for tests; `connect_timeout` as given.
fn options(connect_timeout: Duration) -> BlueGreenOptions {
    BlueGreenOptions::new()
        .baseline_interval(Duration::from_millis(200))
        .increased_interval(Duration::from_millis(100))
        .high_interval(Duration::from_millis(50))
        .connect_timeout(connect_timeout)
}

/// A connection to blue (writer and reader), dialling through the deployment's DNS.
async fn connect(
    blue: &Cluster,
    dns: &rds_balancer_testkit::Dns,
    bg: BlueGreenOptions,
) -> RdsConnection {
    RdsConnection::builder()
        .writer(blue.writer_url(DB))
        .reader(blue.replicas()[0].url(DB))
        .endpoint_resolver(dns.resolver())
        .blue_green(bg)
        .sqlx_logging(false)
        .build()
        .await
        .expect("connect")
}

/// Waits until the connection's monitor reports `phase` (and, for `CREATED`, has recorded the
/// endpoints); returns when it saw it.
async fn until_phase(db: &RdsConnection, phase: BlueGreenPhase) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = db.blue_green().expect("blue/green is on");
        let recorded = phase != BlueGreenPhase::Created
            || (!status.recorded.is_empty() && status.recorded.iter().all(|(_, a)| a.is_some()));
        // Before its first read the monitor reports NOT_CREATED with an empty timeline.
        if status.phase == phase && recorded && !status.timeline.is_empty() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the monitor did not report {phase} (it reports {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Moves `deployment` to `status` and waits until the connection's monitor reports its phase;
/// returns when it saw it.
async fn drive(
    db: &RdsConnection,
    deployment: &BlueGreenDeployment<'_>,
    status: BlueGreenStatus,
) -> Instant {
    deployment.set_status(status).unwrap();
    let phase = BlueGreenPhase::from_status(status.as_str()).expect("a known status");
    until_phase(db, phase).await
}

/// One statement of the steady load.
#[derive(Debug, Clone)]
struct Sample {
    write: bool,
    start: SystemTime,
    end: SystemTime,
    /// The port of the server that answered, or the error.
    outcome: Result<u16, String>,
}

/// Steady load: `writers` tasks inserting a row, then asking which server takes writes
/// (`nextval` / `GET_LOCK`), and `readers` tasks running plain reads, until [`Load::finish`].
struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Waits until `n` more statements have ended (served or failed), so that a phase is driven
    /// under load; fails the test after 20 s.
    async fn progress(&self, n: usize) {
        let target = self.samples.lock().unwrap().len() + n;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.samples.lock().unwrap().len() < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the tasks; every statement they ran.
    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.samples.lock().unwrap().clone()
    }
}

fn load(db: &RdsConnection, cluster: &Cluster, writers: usize, readers: usize) -> Load {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let write_sql = cluster.side_effect_port_sql();
    let read_sql = cluster.port_sql();
    let mut tasks = Vec::new();
    for i in 0..writers + readers {
        let (db, samples, stop) = (db.clone(), Arc::clone(&samples), Arc::clone(&stop));
        let write = i < writers;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let start = SystemTime::now();
                let outcome = if write {
                    match db
                        .execute_unprepared("INSERT INTO cake (name) VALUES ('bg')")
                        .await
                    {
                        Ok(_) => try_port_of(&db, write_sql).await,
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    try_port_of(&db, read_sql).await
                };
                samples.lock().unwrap().push(Sample {
                    write,
                    start,
                    end: SystemTime::now(),
                    outcome,
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    Load {
        samples,
        stop,
        tasks,
    }
}

async fn traffic_rides_through_a_switchover_and_lands_on_green(kind: Kind) {
    let (blue, green) = clusters(kind);
    let deployment = deployment("bgswitch", &blue, &green);
    let db = connect(&blue, deployment.dns(), options(Duration::from_secs(20))).await;
    let blue_ports: Vec<u16> = std::iter::once(blue.writer_port())
        .chain(blue.reader_ports())
        .collect();
    let green_ports: Vec<u16> = std::iter::once(green.writer_port())
        .chain(green.reader_ports())
        .collect();

    until_phase(&db, BlueGreenPhase::NotCreated).await;
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    let status = db.blue_green().unwrap();
    assert!(status.available);
    assert_eq!(
        status.endpoints.len(),
        6,
        "cluster + 2 instances per side: {status:?}"
    );

    let load = load(&db, &blue, 2, 2);
    load.progress(20).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInitiated).await;
    load.progress(20).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInProgress).await;
    // When statements began to be held.
    let in_progress = db
        .blue_green()
        .unwrap()
        .timeline
        .iter()
        .find(|e| e.event == "IN_PROGRESS")
        .unwrap()
        .at;
    // Statements keep coming and are held back for as long as the switchover runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    deployment.switch_dns();
    let released = SystemTime::now();
    drive(
        &db,
        &deployment,
        BlueGreenStatus::SwitchoverInPostProcessing,
    )
    .await;
    load.progress(20).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverCompleted).await;
    load.progress(20).await;
    let samples = load.finish().await;
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.outcome.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} statements failed: {failed:?}",
        failed.len()
    );
    // Nothing issued once IN_PROGRESS was seen reached blue: it waited, then ran on green.
    let after: Vec<&Sample> = samples.iter().filter(|s| s.start >= in_progress).collect();
    assert!(after.iter().any(|s| s.write) && after.iter().any(|s| !s.write));
    for sample in &after {
        let port = *sample.outcome.as_ref().unwrap();
        assert!(
            green_ports.contains(&port),
            "issued after IN_PROGRESS, served by {port} (blue: {blue_ports:?}): {sample:?}"
        );
    }
    let held: Vec<&Sample> = after
        .iter()
        .copied()
        .filter(|s| s.start < released)
        .collect();
    assert!(
        !held.is_empty(),
        "statements were issued during IN_PROGRESS"
    );
    assert!(
        held.iter().all(|s| s.end >= released),
        "a statement issued during IN_PROGRESS finished before it ended"
    );
    let before: Vec<&Sample> = samples.iter().filter(|s| s.end < in_progress).collect();
    assert!(
        before
            .iter()
            .all(|s| blue_ports.contains(s.outcome.as_ref().unwrap()))
    );
    let longest = samples
        .iter()
        .map(|s| s.end.duration_since(s.start).unwrap_or_default())
        .max()
        .unwrap();
    let writes = samples.iter().filter(|s| s.write).count();
    println!(
        "{kind:?}: {} statements ({writes} writes), 0 failed, {} held during IN_PROGRESS, longest wait {longest:?}",
        samples.len(),
        held.len()
    );
    // Reads and writes go on to green after it is over.
    assert!(green_ports.contains(&served_by(&db).await));
    assert_eq!(
        port_of(&db, blue.side_effect_port_sql()).await,
        green.writer_port()
    );

    // The summary: every phase, in order, timed from IN_PROGRESS.
    let status = db.blue_green().unwrap();
    let events: Vec<&str> = status.timeline.iter().map(|e| e.event.as_str()).collect();
    let phases: Vec<&str> = events
        .iter()
        .copied()
        .filter(|e| !e.contains("DNS"))
        .collect();
    assert_eq!(
        phases,
        [
            "NOT_CREATED",
            "CREATED",
            "PREPARATION",
            "IN_PROGRESS",
            "POST",
            "COMPLETED"
        ]
    );
    // DNS caught up (the kit switched it before POST): routing is back to normal.
    for dns in ["BLUE_DNS_UPDATED", "GREEN_DNS_REMOVED"] {
        let at = events.iter().position(|e| *e == dns).expect(dns);
        assert!(at > events.iter().position(|e| *e == "IN_PROGRESS").unwrap());
    }
    let offset = |name: &str| {
        status
            .timeline
            .iter()
            .find(|e| e.event == name)
            .unwrap()
            .offset_ms
            .unwrap()
    };
    assert!(offset("PREPARATION") < 0);
    assert_eq!(offset("IN_PROGRESS"), 0);
    assert!(offset("POST") >= 1400, "{}", status.summary());
    assert!(offset("COMPLETED") > offset("POST"));
    let summary = status.summary();
    assert!(
        summary.contains("IN_PROGRESS") && summary.contains("0 ms"),
        "{summary}"
    );
    db.shutdown(Duration::from_secs(5)).await;
}

async fn a_rollback_returns_to_blue(kind: Kind) {
    let (blue, green) = clusters(kind);
    let deployment = deployment("bgrollback", &blue, &green);
    let db = connect(&blue, deployment.dns(), options(Duration::from_secs(20))).await;
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    deployment
        .set_status(BlueGreenStatus::SwitchoverInitiated)
        .unwrap();
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInProgress).await;

    // Issued during IN_PROGRESS: held back until the rollback, then run on blue.
    let held = {
        let db = db.clone();
        let sql = blue.side_effect_port_sql();
        tokio::spawn(async move {
            let start = Instant::now();
            (port_of(&db, sql).await, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !held.is_finished(),
        "the statement waits while the switchover is in progress"
    );
    deployment.rollback().unwrap();
    let (port, waited) = held.await.unwrap();
    assert_eq!(port, blue.writer_port(), "a rollback keeps blue");
    assert!(waited >= Duration::from_millis(800), "{waited:?}");
    until_phase(&db, BlueGreenPhase::Created).await;
    blue.assert_reader(served_by(&db).await);
    assert_eq!(
        port_of(&db, blue.side_effect_port_sql()).await,
        blue.writer_port()
    );
    let events: Vec<String> = db
        .blue_green()
        .unwrap()
        .timeline
        .into_iter()
        .map(|e| e.event)
        .collect();
    let at = |name: &str| events.iter().position(|e| e == name);
    let (in_progress, rollback) = (at("IN_PROGRESS").unwrap(), at("ROLLBACK").unwrap());
    assert!(in_progress < rollback, "{events:?}");
    assert_eq!(events[rollback + 1..], ["CREATED".to_owned()], "{events:?}");
    db.shutdown(Duration::from_secs(5)).await;
}

async fn a_switchover_that_never_ends_times_out(kind: Kind) {
    let (blue, green) = clusters(kind);
    let deployment = deployment("bgtimeout", &blue, &green);
    let db = connect(
        &blue,
        deployment.dns(),
        // switchover_timeout well past connect_timeout: the open transaction below is cut in
        // between, before the switchover is given up on, however slow the machine.
        options(Duration::from_secs(1)).switchover_timeout(Duration::from_secs(4)),
    )
    .await;
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    // A transaction open on blue before the switchover.
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('open')")
        .await
        .unwrap();
    let in_progress = drive(&db, &deployment, BlueGreenStatus::SwitchoverInProgress).await;
    // It is not held back: it may finish on blue within connect_timeout.
    txn.execute_unprepared("INSERT INTO cake (name) VALUES ('open')")
        .await
        .unwrap();

    // Held longer than connect_timeout: a typed error, and nothing was sent.
    let before = blue.count_on_primary(DB);
    let start = Instant::now();
    let err = db
        .execute_unprepared("INSERT INTO cake (name) VALUES ('late')")
        .await
        .unwrap_err();
    assert_eq!(
        ErrorKind::of(&err),
        Some(ErrorKind::BlueGreenSwitchover),
        "{err}"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(blue.count_on_primary(DB), before, "nothing was sent");
    assert!(rds_balancer::is_transient(&err), "worth retrying: {err}");

    // The open transaction, still on blue past connect_timeout, is cut: its statements and its
    // commit fail typed, and nothing of it was committed.
    assert!(in_progress.elapsed() >= Duration::from_secs(1));
    for err in [
        txn.execute_unprepared("INSERT INTO cake (name) VALUES ('open')")
            .await
            .unwrap_err(),
        txn.commit().await.unwrap_err(),
    ] {
        assert_eq!(
            ErrorKind::of(&err),
            Some(ErrorKind::BlueGreenSwitchover),
            "{err}"
        );
    }
    let open = blue.admin(DB, "SELECT count(*) FROM cake WHERE name = 'open'");
    assert_eq!(open.trim(), "0", "the cut transaction committed");

    // Past switchover_timeout the switchover is taken as over, though the metadata still says
    // IN_PROGRESS: statements run again (on blue: nothing moved).
    let deadline = in_progress + Duration::from_secs(10);
    loop {
        match db
            .execute_unprepared("INSERT INTO cake (name) VALUES ('after')")
            .await
        {
            Ok(_) => break,
            Err(err) => {
                assert_eq!(
                    ErrorKind::of(&err),
                    Some(ErrorKind::BlueGreenSwitchover),
                    "{err}"
                );
                assert!(
                    Instant::now() < deadline,
                    "still held after the switchover timeout"
                );
            }
        }
    }
    assert!(in_progress.elapsed() >= Duration::from_millis(3900));
    assert_eq!(blue.count_on_primary(DB), before + 1);
    let status = db.blue_green().unwrap();
    assert_eq!(status.phase, BlueGreenPhase::InProgress);
    assert_eq!(status.timeline.last().unwrap().event, "TIMEOUT");
    db.shutdown(Duration::from_secs(5)).await;
}

async fn without_metadata_the_feature_is_inert(kind: Kind) {
    let cluster = Cluster::shared(kind);
    cluster.create_database("bg_inert");
    let db = RdsConnection::builder()
        .writer(cluster.writer_url("bg_inert"))
        .reader(cluster.replicas()[0].url("bg_inert"))
        .blue_green(options(Duration::from_secs(1)))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.blue_green().unwrap().timeline.is_empty() {
        assert!(Instant::now() < deadline, "the monitor never read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = db.blue_green().unwrap();
    assert!(!status.available, "{status:?}");
    assert_eq!(status.phase, BlueGreenPhase::NotCreated);
    assert!(status.endpoints.is_empty());
    cluster.assert_reader(served_by(&db).await);
    assert_eq!(
        port_of(&db, cluster.side_effect_port_sql()).await,
        cluster.writer_port()
    );
    // Off: no status at all.
    let off = RdsConnection::builder()
        .writer(cluster.writer_url("bg_inert"))
        .sqlx_logging(false)
        .build()
        .await
        .unwrap();
    assert!(off.blue_green().is_none());
}

async fn new_hosts_dial_the_addresses_recorded_before_the_switchover(kind: Kind) {
    let (blue, green) = clusters(kind);
    let deployment = deployment("bgdial", &blue, &green);
    let dns = deployment.dns();
    // No reader at first: the topology adds them, by name.
    let db = RdsConnection::builder()
        .writer(blue.writer_url(DB))
        .endpoint_resolver(dns.resolver())
        .blue_green(options(Duration::from_secs(20)))
        .sqlx_logging(false)
        .build()
        .await
        .expect("connect");
    let name = |role, node: &str| {
        deployment
            .instance_endpoint(role, node)
            .expect("an instance endpoint")
            .to_owned()
    };
    let (blue_replica, green_replica) = (
        name(BlueGreenRole::Source, "replica-1"),
        name(BlueGreenRole::Target, "replica-1"),
    );
    let topology = |readers: &[&str]| {
        let mut instances = vec![
            Instance::writer("primary")
                .with_endpoint(deployment.cluster_endpoint(BlueGreenRole::Source), 1),
        ];
        for (i, host) in readers.iter().enumerate() {
            instances.push(Instance::reader(format!("reader-{i}")).with_endpoint(*host, 1));
        }
        Topology::new(instances)
    };
    let read = async |db: &RdsConnection| {
        let db = db.clone();
        tokio::spawn(async move { served_by(&db).await })
            .await
            .unwrap()
    };
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInitiated).await;

    // Stale DNS during the switchover: the blue replica's name now points nowhere. A reader
    // added by that name still reaches the blue replica, at the address recorded before.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    dns.set(&blue_replica, std::net::Ipv4Addr::LOCALHOST, dead);
    let changes = db
        .apply_topology(&topology(&[&blue_replica]))
        .await
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, TopologyChange::ReaderAdded(r) if r.id == "reader-0")),
        "{changes:?}"
    );
    assert_eq!(read(&db).await, blue.replicas()[0].port());

    drive(&db, &deployment, BlueGreenStatus::SwitchoverInProgress).await;
    // A new host named by its green name waits while the switchover is in progress...
    let adding = {
        let (db, topology) = (db.clone(), topology(&[&blue_replica, &green_replica]));
        tokio::spawn(async move { db.apply_topology(&topology).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !adding.is_finished(),
        "a green name was dialled during IN_PROGRESS"
    );
    deployment.switch_dns();
    drive(
        &db,
        &deployment,
        BlueGreenStatus::SwitchoverInPostProcessing,
    )
    .await;
    // ...and is refused once green took over (its name is about to go).
    let changes = adding.await.unwrap().unwrap();
    assert!(changes.is_empty(), "a green name was let in: {changes:?}");
    // The reader added by its blue name was moved to the green replica.
    assert_eq!(read(&db).await, green.replicas()[0].port());
    // A reader named by its green name is refused while green names are about to go.
    let changes = db
        .apply_topology(&topology(&[&blue_replica, &green_replica]))
        .await
        .unwrap();
    assert!(changes.is_empty(), "a green name was let in: {changes:?}");
    for _ in 0..20 {
        assert_eq!(read(&db).await, green.replicas()[0].port());
    }

    drive(&db, &deployment, BlueGreenStatus::SwitchoverCompleted).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<String> = db
            .blue_green()
            .unwrap()
            .timeline
            .into_iter()
            .map(|e| e.event)
            .collect();
        if events.iter().any(|e| e == "BLUE_DNS_UPDATED")
            && events.iter().any(|e| e == "GREEN_DNS_REMOVED")
        {
            break;
        }
        assert!(Instant::now() < deadline, "DNS never settled: {events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.shutdown(Duration::from_secs(5)).await;
}

async fn a_rollback_after_green_took_over_moves_hosts_back(kind: Kind) {
    let (blue, green) = clusters(kind);
    let deployment = deployment("bgback", &blue, &green);
    let db = connect(&blue, deployment.dns(), options(Duration::from_secs(20))).await;
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInProgress).await;
    deployment.switch_dns();
    drive(
        &db,
        &deployment,
        BlueGreenStatus::SwitchoverInPostProcessing,
    )
    .await;
    assert_eq!(
        port_of(&db, blue.side_effect_port_sql()).await,
        green.writer_port()
    );
    // AWS gave up and put everything back: so does the connection.
    deployment.rollback().unwrap();
    until_phase(&db, BlueGreenPhase::Created).await;
    assert_eq!(
        port_of(&db, blue.side_effect_port_sql()).await,
        blue.writer_port()
    );
    let db2 = db.clone();
    let read = tokio::spawn(async move { served_by(&db2).await })
        .await
        .unwrap();
    assert_eq!(read, blue.replicas()[0].port());
    let events: Vec<String> = db
        .blue_green()
        .unwrap()
        .timeline
        .into_iter()
        .map(|e| e.event)
        .collect();
    let at = |name: &str| events.iter().position(|e| e == name).expect(name);
    assert!(at("POST") < at("ROLLBACK"), "{events:?}");
    db.shutdown(Duration::from_secs(5)).await;
}

async fn when_blue_is_cut_off_the_monitor_reads_green(kind: Kind) {
    let (blue, green) = clusters(kind);
    let deployment = deployment("bgcut", &blue, &green);
    let db = connect(&blue, deployment.dns(), options(Duration::from_secs(20))).await;
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInProgress).await;
    // A statement issued now waits...
    let held = {
        let db = db.clone();
        let sql = blue.side_effect_port_sql();
        tokio::spawn(async move { port_of(&db, sql).await })
    };
    // ...while blue goes away, as AWS cuts it off, with the monitor's own connection. What
    // follows is only on green's copy of the metadata.
    blue.primary().kill();
    blue.replicas()[0].kill();
    deployment.switch_dns();
    drive(
        &db,
        &deployment,
        BlueGreenStatus::SwitchoverInPostProcessing,
    )
    .await;
    assert_eq!(held.await.unwrap(), green.writer_port());
    let db2 = db.clone();
    let read = tokio::spawn(async move { served_by(&db2).await })
        .await
        .unwrap();
    assert_eq!(read, green.replicas()[0].port());
    db.shutdown(Duration::from_secs(5)).await;
}

async fn with_suspend_new_blue_connections_blue_names_wait_for_green(kind: Kind) {
    let (blue, green) = clusters(kind);
    let deployment = deployment("bgsuspend", &blue, &green);
    let db = RdsConnection::builder()
        .writer(blue.writer_url(DB))
        .endpoint_resolver(deployment.dns().resolver())
        .blue_green(options(Duration::from_secs(20)).suspend_new_blue_connections(true))
        .sqlx_logging(false)
        .build()
        .await
        .expect("connect");
    let blue_replica = deployment
        .instance_endpoint(BlueGreenRole::Source, "replica-1")
        .expect("an instance endpoint")
        .to_owned();
    let topology = Topology::new(vec![
        Instance::writer("primary")
            .with_endpoint(deployment.cluster_endpoint(BlueGreenRole::Source), 1),
        Instance::reader("reader-0").with_endpoint(blue_replica, 1),
    ]);
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInProgress).await;
    // A new host named by its blue name waits while the switchover is in progress...
    let adding = {
        let db = db.clone();
        tokio::spawn(async move { db.apply_topology(&topology).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !adding.is_finished(),
        "a blue name was dialled during IN_PROGRESS"
    );
    deployment.switch_dns();
    drive(
        &db,
        &deployment,
        BlueGreenStatus::SwitchoverInPostProcessing,
    )
    .await;
    // ...then, green having taken over, dials the green replica.
    let changes = adding.await.unwrap().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, TopologyChange::ReaderAdded(r) if r.id == "reader-0")),
        "{changes:?}"
    );
    let db2 = db.clone();
    let read = tokio::spawn(async move { served_by(&db2).await })
        .await
        .unwrap();
    assert_eq!(read, green.replicas()[0].port());
    db.shutdown(Duration::from_secs(5)).await;
}

/// RDS PostgreSQL (not Aurora) publishes the deployment through `rds_tools.show_topology`:
/// PostgreSQL only.
#[tokio::test]
async fn rds_postgres_metadata_is_read_too() {
    let (blue, green) = clusters(Kind::Postgres);
    let deployment = BlueGreenDeployment::builder("bgrds")
        .relation(MetadataRelation::RdsPostgres)
        .database(DB)
        .postgres(blue.pg(), green.pg())
        .expect("the deployment");
    let db = connect(
        &blue,
        deployment.dns(),
        options(Duration::from_secs(20)).bgd_id("orders"),
    )
    .await;
    drive(&db, &deployment, BlueGreenStatus::Available).await;
    drive(&db, &deployment, BlueGreenStatus::SwitchoverInitiated).await;
    let status = db.blue_green().unwrap();
    assert!(status.available);
    assert_eq!(status.bgd_id, "orders");
    assert_eq!(status.endpoints.len(), 6, "{status:?}");
    db.shutdown(Duration::from_secs(5)).await;
}
